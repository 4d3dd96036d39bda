"""Is a model's output level plausible against its input, and how to bring it back.

An enhancer removes noise: its output is about as loud as its input or quieter. Some public model files
are not: their authors peak-normalise the result afterwards, so the raw graph output can be 60 dB louder
than the input and peak far beyond full scale. Written as integer PCM such a result is clipped into a
square wave. This module measures that and offers the two repairs:

* :func:`level_check`: the output's gain against the input, ``gain_db = 10 log10(mean(y^2) / mean(x^2))``
  over the samples both hold, and the output's peak in dBFS; implausible when ``gain_db`` exceeds
  :data:`IMPLAUSIBLE_GAIN_DB` or the peak exceeds :data:`IMPLAUSIBLE_PEAK_DBFS`.
* :func:`normalise_to_input`: one gain for the whole output so its peak (``"peak"``) or its BS.1770
  integrated loudness (``"loudness"``) equals the input's.
* :func:`clipping_problem`: the one-line error when more than :data:`MAX_CLIPPED_FRACTION` of the samples
  would be clipped by an integer sample format.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: An output this much louder (RMS, dB) than its input is not an enhancement of it.
IMPLAUSIBLE_GAIN_DB = 20.0
#: Or whose peak is this far over full scale (dBFS): no sane file holds it.
IMPLAUSIBLE_PEAK_DBFS = 12.0
#: More clipped samples than this share destroy a file written in an integer format.
MAX_CLIPPED_FRACTION = 0.01
NORMALISE_MODES = ("peak", "loudness")


@dataclass(frozen=True)
class LevelCheck:
    """Output level against input level.

    Attributes:
        gain_db: RMS ratio output/input in dB (``None`` when the input is silent).
        output_peak_dbfs: the output's largest sample, dBFS (``None`` when silent).
        implausible: gain or peak beyond the limits above.
    """

    gain_db: float | None
    output_peak_dbfs: float | None
    implausible: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self, what: str = "the output") -> str:
        """One line: ``the output is +60.0 dB louder than its input (peak +66.1 dBFS)``."""
        gain = "of unknown gain" if self.gain_db is None else (
            f"{self.gain_db:+.1f} dB " + ("louder than" if self.gain_db >= 0 else "against"))
        peak = "" if self.output_peak_dbfs is None else f" (peak {self.output_peak_dbfs:+.1f} dBFS)"
        return f"{what} is {gain} its input{peak}"


def _rms_db(x: np.ndarray) -> float | None:
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return _ms_db(ms)


def _ms_db(ms: float) -> float | None:
    return 10.0 * math.log10(ms) if ms > 0 else None


def _check_from(in_db: float | None, out_db: float | None, peak: float) -> LevelCheck:
    gain = None if in_db is None or out_db is None else round(out_db - in_db, 2)
    peak_db = round(20.0 * math.log10(peak), 2) if peak > 0 else None
    implausible = (gain is not None and gain > IMPLAUSIBLE_GAIN_DB) or (
        peak_db is not None and peak_db > IMPLAUSIBLE_PEAK_DBFS)
    return LevelCheck(gain, peak_db, bool(implausible))


def level_check(original: np.ndarray, output: np.ndarray) -> LevelCheck:
    """Compare ``output`` with ``original`` (both ``(frames,)`` or ``(frames, channels)``, same rate)."""
    n = min(len(original), len(output))
    x, y = np.asarray(original[:n]), np.asarray(output[:n])
    return _check_from(_rms_db(x), _rms_db(y), float(np.max(np.abs(y))) if y.size else 0.0)


class RunningLevel:
    """Peak, mean square and (optionally) BS.1770 loudness of a signal fed in consecutive pieces, so a
    level check and a normalisation need never hold the whole signal: :func:`level_check` and
    :func:`normalise_to_input` on streams (:meth:`check_against`, :meth:`normalise_gain_db`).

    Args:
        frames, sample_rate, channels: the whole signal's length, rate and channels.
        loudness: also measure the integrated loudness (:class:`~workbench.core.audio.loudness.LoudnessStream`).
    """

    def __init__(self, frames: int, sample_rate: int, channels: int, loudness: bool = False):
        from ..audio.loudness import LoudnessStream

        self.sum_sq, self.count, self.peak = 0.0, 0, 0.0
        self._loudness = LoudnessStream(frames, sample_rate, channels) if loudness else None

    def add(self, piece: np.ndarray) -> None:
        """Feed the next ``(m, channels)`` samples."""
        x = np.asarray(piece)
        if x.size:
            self.sum_sq += float(np.sum(np.square(x, dtype=np.float64)))
            self.count += x.size
            self.peak = max(self.peak, float(np.max(np.abs(x))))
        if self._loudness is not None:
            self._loudness.add(x)

    @property
    def mean_square(self) -> float:
        return self.sum_sq / self.count if self.count else 0.0

    def lufs(self) -> float | None:
        return None if self._loudness is None else self._loudness.result().lufs

    def check_against(self, original: "RunningLevel") -> LevelCheck:
        """:func:`level_check` of this output against ``original`` (fed the same number of frames)."""
        return _check_from(_ms_db(original.mean_square), _ms_db(self.mean_square), self.peak)

    def normalise_gain_db(self, original: "RunningLevel", mode: str) -> float:
        """The gain :func:`normalise_to_input` applies to this output to match ``original`` (0 when
        either is silent or, for loudness, not measurable)."""
        if mode not in NORMALISE_MODES:
            raise ValueError(f"normalise mode must be one of {', '.join(NORMALISE_MODES)}, not {mode!r}")
        if mode == "peak":
            return _normalise_db(original.peak, self.peak, None, None, mode)
        return _normalise_db(0.0, 0.0, original.lufs(), self.lufs(), mode)


def _normalise_db(p_in: float, p_out: float, l_in: float | None, l_out: float | None, mode: str) -> float:
    if mode == "peak":
        if p_in <= 0 or p_out <= 0:
            return 0.0
        return 20.0 * math.log10(p_in / p_out)
    if l_in is None or l_out is None:
        return 0.0
    return l_in - l_out


def normalise_to_input(original: np.ndarray, output: np.ndarray, sample_rate: int, mode: str) -> tuple[np.ndarray, float]:
    """``(output * g, gain_db)`` with ``g`` making the output's peak (``"peak"``) or integrated loudness
    (``"loudness"``, BS.1770) equal to the input's. ``gain_db`` is 0 when either side is silent or (for
    loudness) too short to measure.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode not in NORMALISE_MODES:
        raise ValueError(f"normalise mode must be one of {', '.join(NORMALISE_MODES)}, not {mode!r}")
    n = min(len(original), len(output))
    if mode == "peak":
        p_in = float(np.max(np.abs(original[:n]))) if n else 0.0
        p_out = float(np.max(np.abs(output))) if output.size else 0.0
        gain_db = _normalise_db(p_in, p_out, None, None, mode)
    else:
        from ..audio.loudness import measure

        gain_db = _normalise_db(0.0, 0.0, measure(original[:n], sample_rate).lufs, measure(output, sample_rate).lufs,
                                mode)
    if gain_db == 0.0:
        return output, 0.0
    g = np.float32(10.0 ** (gain_db / 20.0))
    return (np.asarray(output, np.float32) * g).astype(np.float32, copy=False), round(gain_db, 4)


def clipping_problem(target: str, clipped: int, total: int, subtype: str) -> str | None:
    """The error for a write that clipping would destroy (more than 1 % of samples beyond ±1 in an
    integer format), naming the fixes; ``None`` when the write may go ahead."""
    if total <= 0 or clipped <= MAX_CLIPPED_FRACTION * total:
        return None
    return (f"{target}: {100.0 * clipped / total:.1f} % of the samples are beyond full scale and would be "
            f"clipped in {subtype}; not written. Use --subtype FLOAT to keep them, or --normalize peak|loudness "
            "to scale the result to the input's peak or loudness")


def level_note(level: dict | None) -> str | None:
    """What a version's recorded level check (``provenance.extra["level"]``) says worth marking: an
    implausible level (with the measured gain) and any scaling applied; ``None`` when nothing is."""
    if not level:
        return None
    parts = []
    if level.get("implausible"):
        gain = level.get("gain_db")
        peak = level.get("output_peak_dbfs")
        parts.append("model output " + ("of unknown gain" if gain is None else f"{gain:+.1f} dB against the input")
                     + ("" if peak is None else f" (peak {peak:+.1f} dBFS)"))
    if level.get("normalized"):
        parts.append(f"scaled {level.get('normalize_gain_db', 0.0):+.1f} dB to the input's {level['normalized']}")
    return "; ".join(parts) or None
