"""Editor's operations on aligned versions: strength (wet/dry), regions, spectral repair, noise profiles.

Every operation here is non-destructive: it reads the original (and, for strength, an enhanced version)
and returns new samples; the caller adds them as a new version. All arrays are float32
``(frames, channels)`` at the recording's rate unless a docstring says otherwise; times are seconds.

Strength
    An enhanced version ``wet`` is sample-aligned with the original ``dry`` (the engine removes every
    model's latency), so a dry/wet mix is exact, with no comb filtering::

        out = wet + g * (dry - wet),   g = 10 ** (-limit_db / 20) = 1 - mix

    ``mix`` is the wet share (1.0 = 100 % = the model's output, ``limit_db = inf``); ``limit_db`` is the
    most the mix can remove from the original: where the model removes everything, ``out = g * dry``.

Regions
    :func:`enhance_regions` runs a model only over ``[start - context - crossfade, end + context +
    crossfade)`` of each region and splices the result into a copy of the original with raised-cosine
    crossfades of ``crossfade`` seconds *outside* the region: fade in over ``[start - xf, start)``, the
    model's output over ``[start, end)``, fade out over ``[end, end + xf)``. Every sample outside
    ``[start - xf, end + xf)`` is the original's, bit for bit.

Spectral repair
    :func:`spectral_repair` changes a time-frequency box of the STFT (Hann window, 75 % overlap):
    either multiplies it by ``10 ** (gain_db / 20)`` or replaces its magnitude by a linear interpolation
    of power (per bin, across time) between the mean powers of the frames just before and just after the box,
    keeping the original phase. Only the samples that the changed frames cover are replaced, so the
    signal outside ``[t0 - n_fft/2, t1 + n_fft/2]`` is bit-identical; inside that span, bins outside the
    box are reconstructed to float precision.

Noise profile
    :func:`noise_profile_samples` cuts a noise-only span; enhancers that accept a profile (the classical
    ones, ``with_noise_profile(samples, rate)``) use that span's mean power spectrum as their noise
    estimate instead of tracking it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generator, Sequence

import numpy as np

from ..audio.audio_io import ArraySource, AudioSource
from .enhancer import Enhancer, enhance
from ..progress import Progress, rescaled
from ..errors import ModelError, WorkbenchError
from ..views.stft import StftConfig, istft, stft

# ---------------------------------------------------------------------------------------- strength


@dataclass(frozen=True)
class Strength:
    """How much of a model's effect is kept.

    Attributes:
        mix: wet share in ``[0, 1]`` (1 = the model's output, 0 = the original).
        given_as: ``"mix"`` or ``"limit_db"`` — how the person set it (kept in the provenance).
    """

    mix: float = 1.0
    given_as: str = "mix"

    def __post_init__(self):
        if not (0.0 <= self.mix <= 1.0) or math.isnan(self.mix):
            raise WorkbenchError(f"strength: mix must lie between 0 and 1 (0-100 %), got {self.mix}")

    @classmethod
    def from_limit_db(cls, limit_db: float) -> "Strength":
        """``limit_db`` >= 0 dB (``inf`` = full strength): ``mix = 1 - 10 ** (-limit_db / 20)``."""
        if math.isnan(limit_db) or limit_db < 0:
            raise WorkbenchError(f"strength: --limit-db must be 0 dB or more, got {limit_db}")
        return cls(1.0 - dry_gain_from_limit(limit_db), "limit_db")

    @property
    def dry_gain(self) -> float:
        """``g = 1 - mix``, the weight of ``(dry - wet)``."""
        return 1.0 - self.mix

    @property
    def limit_db(self) -> float:
        """``-20 log10(g)``; ``inf`` at full strength."""
        g = self.dry_gain
        return math.inf if g <= 0 else -20.0 * math.log10(g)

    @property
    def full(self) -> bool:
        return self.mix >= 1.0

    def to_dict(self) -> dict:
        return {"mix": self.mix, "percent": 100.0 * self.mix,
                "limit_db": None if math.isinf(self.limit_db) else self.limit_db,
                "given_as": self.given_as, "formula": "out = enhanced + g * (original - enhanced), g = 1 - mix"}


def dry_gain_from_limit(limit_db: float) -> float:
    """``g = 10 ** (-limit_db / 20)`` (0 for ``inf``)."""
    return 0.0 if math.isinf(limit_db) else 10.0 ** (-limit_db / 20.0)


def apply_strength(wet: np.ndarray, dry: np.ndarray, strength: Strength | float) -> np.ndarray:
    """``wet + g * (dry - wet)`` as float32, same shape; ``strength`` a :class:`Strength` or a mix in [0, 1].

    Computed in float64 then rounded once, so ``mix = a`` equals ``a * wet + (1 - a) * dry`` to float32
    precision.
    """
    s = strength if isinstance(strength, Strength) else Strength(float(strength))
    wet = np.asarray(wet, np.float32)
    dry = np.asarray(dry, np.float32)
    if wet.shape != dry.shape:
        raise ValueError(f"strength: enhanced {wet.shape} and original {dry.shape} are not aligned")
    if s.full:
        return wet.copy()
    g = s.dry_gain
    return (wet.astype(np.float64) + g * (dry.astype(np.float64) - wet)).astype(np.float32)


# ---------------------------------------------------------------------------------------- spans


def parse_span(text: str, option: str = "--region") -> tuple[float, float]:
    """``"START:END"`` in seconds -> ``(start_s, end_s)``; one clear error for anything else."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, end = float(parts[0]), float(parts[1])
    except ValueError:
        raise WorkbenchError(f"{option}: expected START:END in seconds like 12.5:20, got {text!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
        raise WorkbenchError(f"{option}: END must be after START, got {text!r}")
    return start, end


def check_span(span: tuple[float, float], duration_s: float, where: str, what: str = "region") -> tuple[float, float]:
    """Raise a clear :class:`WorkbenchError` when ``span`` is empty or outside ``[0, duration_s]``."""
    start, end = span
    if end <= start:
        raise WorkbenchError(f"{where}: {what} {start:g}:{end:g} s is empty")
    if start < 0 or end > duration_s + 1e-9:
        raise WorkbenchError(f"{where}: {what} {start:g}:{end:g} s lies outside the recording "
                             f"(0:{duration_s:.3f} s)")
    return start, end


def merge_spans(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted spans with overlapping or touching ones merged."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def raised_cosine(n: int) -> np.ndarray:
    """Fade-in ``w[i] = 0.5 - 0.5 cos(pi (i + 0.5) / n)``, float64 ``(n,)``; ``1 - w`` fades out."""
    if n <= 0:
        return np.zeros(0)
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def splice(original: np.ndarray, processed: np.ndarray, offset: int, start: int, end: int,
           crossfade: int, out: np.ndarray | None = None) -> np.ndarray:
    """Splice ``processed`` into ``original`` over frames ``[start, end)`` with crossfades outside it.

    Args:
        original: ``(n, c)`` float32.
        processed: ``(m, c)``; its row 0 is frame ``offset`` of the original.
        start, end: the region in frames; crossfade: fade length in frames, placed at
            ``[start - crossfade, start)`` and ``[end, end + crossfade)`` (cut at the file's ends).
        out: array to write into (default a copy of ``original``); only ``[start - xf, end + xf)`` is touched.
    """
    n = original.shape[0]
    if out is None:
        out = original.copy()
    a0, b1 = max(start - crossfade, 0), min(end + crossfade, n)
    if offset > a0 or offset + processed.shape[0] < b1:
        raise ValueError("splice: the processed block does not cover the region and its crossfades")

    def proc(a: int, b: int) -> np.ndarray:
        return processed[a - offset:b - offset].astype(np.float64)

    w = raised_cosine(crossfade)[:, None]
    if start > a0:  # fade in: the last (start - a0) samples of the ramp
        ww = w[crossfade - (start - a0):]
        out[a0:start] = ((1 - ww) * original[a0:start] + ww * proc(a0, start)).astype(np.float32)
    out[start:end] = processed[start - offset:end - offset]
    if b1 > end:
        ww = w[::-1][:b1 - end]
        out[end:b1] = ((1 - ww) * original[end:b1] + ww * proc(end, b1)).astype(np.float32)
    return out


def enhance_regions(enhancer: Enhancer, source: AudioSource, regions_s: Sequence[tuple[float, float]], *,
                    channels: Sequence[int] | None = None, context_s: float = 1.0, crossfade_s: float = 0.020,
                    where: str = "recording") -> Generator[Progress, None, np.ndarray]:
    """Run ``enhancer`` only over ``regions_s`` and splice the results into the original (see module doc).

    The model sees ``max(context_s, its receptive field)`` of extra audio on each side of a region (the
    receptive field is taken from ``info.extra["receptive_field_s"]`` when a model declares one), so its
    warm-up and edge effects fall outside what is kept.

    Returns (generator value): float32 ``(frames, len(channels))``.

    Raises:
        WorkbenchError: a region outside the recording or empty.
    """
    if enhancer.info.n_outputs != 1:
        raise WorkbenchError(f"{where}: model {enhancer.info.id!r} has several outputs "
                             f"({', '.join(enhancer.info.outputs)}); regions take single-output models")
    rate = source.sample_rate
    chans = list(range(source.channels)) if channels is None else list(channels)
    spans = merge_spans([check_span(r, source.duration_s, where) for r in regions_s])
    if not spans:
        raise WorkbenchError(f"{where}: no region given")
    declared = float(enhancer.info.extra.get("receptive_field_s", 0.0) or 0.0)
    context = int(round(max(context_s, declared) * rate))
    xf = int(round(crossfade_s * rate))
    original = source.read_all()[:, chans].astype(np.float32)
    out = original.copy()
    n = original.shape[0]
    total = sum(b - a for a, b in spans)
    done = 0.0
    for a_s, b_s in spans:
        start, end = int(round(a_s * rate)), min(int(round(b_s * rate)), n)
        lo, hi = max(start - xf - context, 0), min(end + xf + context, n)
        share = (b_s - a_s) / total
        piece = ArraySource(original[lo:hi], rate)
        y = yield from rescaled(enhance(enhancer, piece), done, share, f"region {a_s:g}-{b_s:g} s: ")
        splice(original, y[0], lo, start, end, xf, out=out)
        done += share
    yield Progress(1.0, "regions spliced")
    return out


# ---------------------------------------------------------------------------------------- spectral repair


#: Largest magnitude of a box's times (s) and frequencies (Hz): far beyond any recording (115 days, 10 MHz),
#: small enough that frame and bin arithmetic stays exact.
BOX_LIMIT = 1e7


@dataclass(frozen=True)
class Box:
    """A time-frequency rectangle: ``[t0_s, t1_s]`` seconds x ``[f0_hz, f1_hz]`` Hz."""

    t0_s: float
    t1_s: float
    f0_hz: float
    f1_hz: float

    @classmethod
    def parse(cls, text: str) -> "Box":
        """``"T0:T1:F0:F1"`` (seconds, Hz)."""
        parts = str(text).split(":")
        try:
            if len(parts) != 4:
                raise ValueError
            t0, t1, f0, f1 = (float(p) for p in parts)
        except ValueError:
            raise WorkbenchError(f"--box: expected T0:T1:F0:F1 (seconds and Hz) like 3.2:3.6:500:4000, "
                                 f"got {text!r}") from None
        if not all(math.isfinite(v) and abs(v) <= BOX_LIMIT for v in (t0, t1, f0, f1)):
            raise WorkbenchError(f"--box: times and frequencies must be finite numbers within ±{BOX_LIMIT:g} "
                                 f"(seconds and Hz), got {text!r}")
        return cls(t0, t1, f0, f1)

    def to_dict(self) -> dict:
        return {"t0_s": self.t0_s, "t1_s": self.t1_s, "f0_hz": self.f0_hz, "f1_hz": self.f1_hz}


def repair_stft_config(sample_rate: int) -> StftConfig:
    """Hann window of the power of two nearest 43 ms (2048 samples at 44.1/48 kHz, 512 at 16 kHz), hop 1/4."""
    n_fft = 1 << max(int(round(math.log2(0.043 * sample_rate))), 6)
    return StftConfig(n_fft=n_fft, hop=n_fft // 4, window="hann", center=True)


def box_cells(box: Box, n_frames: int, sample_rate: int, cfg: StftConfig, where: str = "recording"
              ) -> tuple[slice, slice]:
    """The frames (centres in ``[t0, t1]``) and bins (centre frequencies in ``[f0, f1]``) of ``box``.

    Raises:
        WorkbenchError: the box is empty, lies outside the recording, or holds no STFT cell.
    """
    duration_s = (n_frames - 1) * cfg.hop / sample_rate if n_frames else 0.0
    nyquist = sample_rate / 2
    if not (box.t1_s > box.t0_s and box.f1_hz > box.f0_hz):
        raise WorkbenchError(f"{where}: the box {box.t0_s:g}:{box.t1_s:g} s x {box.f0_hz:g}:{box.f1_hz:g} Hz "
                             "is empty (T1 must exceed T0 and F1 exceed F0)")
    if box.t0_s < 0 or box.f0_hz < 0 or box.t0_s >= duration_s or box.f0_hz >= nyquist:
        raise WorkbenchError(f"{where}: the box {box.t0_s:g}:{box.t1_s:g} s x {box.f0_hz:g}:{box.f1_hz:g} Hz "
                             f"lies outside the recording (0:{duration_s:.3f} s, 0:{nyquist:g} Hz)")
    frame_s = cfg.hop / sample_rate
    bin_hz = sample_rate / cfg.nfft
    t1_s, f1_hz = min(box.t1_s, duration_s + frame_s), min(box.f1_hz, nyquist)  # beyond the end: to the end
    t_a = int(math.ceil(box.t0_s / frame_s - 1e-9))
    t_b = min(int(math.floor(t1_s / frame_s + 1e-9)) + 1, n_frames)
    k_a = int(math.ceil(box.f0_hz / bin_hz - 1e-9))
    k_b = min(int(math.floor(f1_hz / bin_hz + 1e-9)) + 1, cfg.bins)
    if t_b <= t_a or k_b <= k_a:
        raise WorkbenchError(f"{where}: the box {box.t0_s:g}:{box.t1_s:g} s x {box.f0_hz:g}:{box.f1_hz:g} Hz "
                             f"holds no STFT cell (frames are {1000 * frame_s:.1f} ms apart, bins "
                             f"{bin_hz:.1f} Hz); make it larger")
    return slice(t_a, t_b), slice(k_a, k_b)


def spectral_repair(audio: np.ndarray, sample_rate: int, box: Box, *, gain_db: float | None = None,
                    interpolate: bool = False, cfg: StftConfig | None = None, context_frames: int = 3,
                    where: str = "recording") -> np.ndarray:
    """Attenuate (``gain_db``) or interpolate (``interpolate=True``) the STFT cells of ``box``.

    Args:
        audio: ``(frames,)`` or ``(frames, channels)``; every channel gets the same edit.
        context_frames: frames on each side whose mean magnitude anchors the interpolation.

    Returns:
        float32, same shape; samples that no changed frame covers are copied unchanged.
    """
    if (gain_db is None) == (not interpolate):
        raise WorkbenchError("repair: choose exactly one of --gain-db or --interpolate")
    if gain_db is not None and not math.isfinite(gain_db):
        raise WorkbenchError(f"repair: --gain-db must be a finite number of dB, got {gain_db}")
    x = np.asarray(audio, np.float32)
    mono = x.ndim == 1
    x2 = x[:, None] if mono else x
    cfg = cfg or repair_stft_config(sample_rate)
    n = x2.shape[0]
    n_frames = cfg.frame_count(n)
    rows, cols = box_cells(box, n_frames, sample_rate, cfg, where)
    # Work on the frames that the box's frames overlap (plus their own support) only.
    seg_lo = max(rows.start * cfg.hop - cfg.pad - cfg.n_fft, 0)
    seg_hi = min((rows.stop - 1) * cfg.hop - cfg.pad + 2 * cfg.n_fft, n)
    # Align the segment on the frame grid so its frames are the file's frames.
    seg_lo = (seg_lo // cfg.hop) * cfg.hop
    first_frame = seg_lo // cfg.hop  # segment frame j == file frame first_frame + j
    out = x2.copy()
    a_frame, b_frame = rows.start - first_frame, rows.stop - first_frame
    for c in range(x2.shape[1]):
        seg = x2[seg_lo:seg_hi, c]
        spec = stft(seg, cfg)
        box_spec = spec[a_frame:b_frame, cols]
        if gain_db is not None:
            new = box_spec * np.float32(10.0 ** (gain_db / 20.0))
        else:
            mag = _interpolated_magnitude(np.abs(spec[:, cols]), a_frame, b_frame, context_frames,
                                          first_frame, n_frames)
            new = mag * np.exp(1j * np.angle(box_spec))
        spec[a_frame:b_frame, cols] = new
        y = istft(spec, cfg, length=len(seg))
        # Samples covered by a changed frame: frame t spans [t*hop - pad, t*hop - pad + n_fft).
        lo = max(rows.start * cfg.hop - cfg.pad, 0)
        hi = min((rows.stop - 1) * cfg.hop - cfg.pad + cfg.n_fft, n)
        out[lo:hi, c] = y[lo - seg_lo:hi - seg_lo]
    return out[:, 0] if mono else out


def _interpolated_magnitude(mag: np.ndarray, a: int, b: int, k: int, first_frame: int, n_frames: int) -> np.ndarray:
    """Per-bin linear interpolation of power across frames ``[a, b)`` between the mean power of the ``k``
    frames before ``a`` and after ``b`` (one side only at a file edge; the box is then flat); returns
    the magnitude ``sqrt(power)``, float32 ``(b - a, bins)``."""
    before = mag[max(a - k, 0):a]
    after = mag[b:b + k]
    if len(before) == 0 and len(after) == 0:
        raise WorkbenchError("repair: the box covers the whole recording; nothing to interpolate from")
    def rms(m: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean(m.astype(np.float64) ** 2, axis=0))

    left = rms(before) if len(before) else rms(after)
    right = rms(after) if len(after) else left
    frac = (np.arange(b - a) + 1.0) / (b - a + 1.0)
    power = left[None, :] ** 2 * (1 - frac[:, None]) + right[None, :] ** 2 * frac[:, None]
    return np.sqrt(power).astype(np.float32)


def box_energy(audio: np.ndarray, sample_rate: int, box: Box, cfg: StftConfig | None = None,
               shrink_frames: int = 0, shrink_bins: int = 0) -> float:
    """Sum of ``|S|^2`` over the box's STFT cells (mono), optionally shrunk by whole frames/bins at
    each edge — the cells the STFT's overlap lets leak into the box from outside are then left out."""
    cfg = cfg or repair_stft_config(sample_rate)
    x = np.asarray(audio, np.float32).reshape(-1)
    spec = stft(x, cfg)
    rows, cols = box_cells(box, spec.shape[0], sample_rate, cfg)
    r = spec[rows.start + shrink_frames:rows.stop - shrink_frames, cols.start + shrink_bins:cols.stop - shrink_bins]
    return float(np.sum(np.abs(r.astype(np.complex128)) ** 2))


# ---------------------------------------------------------------------------------------- noise profile


def noise_profile_samples(source: AudioSource, span_s: tuple[float, float], where: str = "recording",
                          channels: Sequence[int] | None = None) -> np.ndarray:
    """The samples of a noise-only span, float32 ``(m, len(channels))``; errors name the file."""
    start, end = check_span(span_s, source.duration_s, where, "noise profile")
    rate = source.sample_rate
    chans = list(range(source.channels)) if channels is None else list(channels)
    return source.read(int(round(start * rate)), int(round(end * rate)))[:, chans]


def with_noise_profile(enhancer: Enhancer, samples: np.ndarray, sample_rate: int, span_s: tuple[float, float],
                       where: str = "recording") -> Enhancer:
    """``enhancer`` rebuilt to use the mean power spectrum of ``samples`` as its noise estimate.

    Raises:
        ModelError: the model does not take a noise profile, or the span is shorter than its frame.
    """
    fn = getattr(enhancer, "with_noise_profile", None)
    if fn is None:
        raise ModelError(f"model {enhancer.info.id!r} does not take a noise profile; the classical enhancers "
                         "(spectral-subtraction, wiener, logmmse) do")
    try:
        made = fn(np.asarray(samples, np.float32), int(sample_rate))
    except ModelError as exc:
        raise ModelError(f"{where}: noise profile {span_s[0]:g}:{span_s[1]:g} s: {exc}") from None
    return made


def with_attenuation_limit(enhancer: Enhancer, atten_lim_db: float) -> Enhancer:
    """``enhancer`` with the model's *own* attenuation limit (DeepFilterNet's ``atten_lim``); in a chain,
    every step that has one gets it.

    Raises:
        ModelError: no step has its own limit (use the wet/dry strength, ``--limit-db``, instead).
    """
    if not math.isfinite(atten_lim_db) or atten_lim_db <= 0:
        raise ModelError(f"--atten-lim-db must be a positive number of dB, got {atten_lim_db}")
    steps = getattr(enhancer, "steps", None)
    if steps is not None:
        if not any(hasattr(s, "with_attenuation_limit") for s in steps):
            raise ModelError(f"no step of chain {enhancer.info.id!r} has its own attenuation limit; "
                             "use --limit-db (wet/dry) instead")
        for i, s in enumerate(steps):
            if hasattr(s, "with_attenuation_limit"):
                steps[i] = s.with_attenuation_limit(atten_lim_db)
        return enhancer
    fn = getattr(enhancer, "with_attenuation_limit", None)
    if fn is None:
        raise ModelError(f"model {enhancer.info.id!r} has no attenuation limit of its own (DeepFilterNet has); "
                         "use --limit-db (wet/dry) instead")
    return fn(float(atten_lim_db))


class StrengthSource(AudioSource):
    """A version's samples at a strength: ``read`` returns ``wet + g * (dry - wet)`` (see module doc).

    Args:
        wet: the model's output ``(frames, c)``.
        dry: the original; ``dry_channels`` are its columns that line up with ``wet``'s (``None`` = all).
        strength: the current :class:`Strength` (mutable: :attr:`strength` may be set again).
    """

    def __init__(self, wet: AudioSource, dry: AudioSource, dry_channels: Sequence[int] | None, strength: Strength):
        if wet.frames != dry.frames or wet.sample_rate != dry.sample_rate:
            raise ValueError("strength: the version and the original are not aligned")
        self.wet, self.dry = wet, dry
        self.dry_channels = None if dry_channels is None else [int(c) for c in dry_channels]
        self.strength = strength
        self.sample_rate, self.channels, self.frames = wet.sample_rate, wet.channels, wet.frames

    def read(self, start: int, stop: int) -> np.ndarray:
        wet = self.wet.read(start, stop)
        if self.strength.full:
            return wet
        dry = self.dry.read(start, stop)
        if self.dry_channels is not None:
            dry = dry[:, self.dry_channels]
        return apply_strength(wet, dry, self.strength)
