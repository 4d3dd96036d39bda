"""Loudness measurement and matching for fair listening comparisons (ITU-R BS.1770 via pyloudnorm).

A comparison is only fair when the versions play equally loud: a louder version tends to be judged
better. :func:`measure` gives the gated integrated loudness (LUFS) and the sample peak of one version;
:func:`match_gains` turns a list of measurements into per-version playback gains.

Matching rule (documented choice):
    target = the quietest measurable loudness among the non-residual versions
             (or ``target_lufs`` when given, e.g. -23 LUFS of EBU R 128).
    match_gain_db = target - loudness
Because the target is the quietest compared version, matching the original and the enhanced versions
only ever *attenuates*; nothing is pushed towards clipping. Residuals (what a model removed) are usually
much quieter and are raised to the same target so they can be heard, which may need more than the
available headroom.

Peak rule: no version may play above 0 dBFS. When ``peak * 10**(match_gain_db/20) > 1`` the gain is
reduced to ``-20*log10(peak)`` dB (a plain gain reduction, no dynamic limiter, so the waveform is not
altered) and the reduction is reported as ``limit_db`` (<= 0). Such a version then plays quieter than
the target by ``-limit_db`` LU, which the transport bar shows.

Silence and clips shorter than one 400 ms gating block cannot be measured; they get no match gain
(0 dB, subject to the peak rule) and a ``reason``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pyloudnorm

#: BS.1770 gating block length in seconds; shorter signals have no integrated loudness.
BLOCK_S = 0.4
#: Loudness below which a signal is treated as silence (the BS.1770 absolute gate is -70 LUFS).
SILENCE_LUFS = -70.0


@dataclass(frozen=True)
class LoudnessMeasure:
    """Loudness facts of one signal.

    Attributes:
        lufs: gated integrated loudness in LUFS, ``None`` when it cannot be measured.
        peak: largest absolute sample value (linear, 1.0 = 0 dBFS).
        reason: why ``lufs`` is ``None`` (``"silent"``, ``"shorter than 0.4 s ..."``), else ``None``.
    """

    lufs: float | None
    peak: float
    reason: str | None = None

    @property
    def peak_dbfs(self) -> float:
        return 20.0 * math.log10(self.peak) if self.peak > 0 else -math.inf


@dataclass(frozen=True)
class PlaybackGain:
    """The gain a version plays at.

    Attributes:
        gain_db: total gain applied (``match_gain_db + limit_db``).
        match_gain_db: gain that would bring the version to the target (0 when not measurable).
        limit_db: reduction (<= 0 dB) applied so that the peak stays at or below 0 dBFS.
        target_lufs: the common loudness aimed at (``None`` when nothing was measurable).
        reason: why the version is not matched, if it is not.
    """

    gain_db: float
    match_gain_db: float
    limit_db: float
    target_lufs: float | None
    reason: str | None = None

    @property
    def gain(self) -> float:
        """Linear factor ``10**(gain_db/20)``."""
        return 10.0 ** (self.gain_db / 20.0)

    @property
    def limited(self) -> bool:
        return self.limit_db < -1e-6


def measure(audio: np.ndarray, sample_rate: int) -> LoudnessMeasure:
    """Integrated loudness (BS.1770-4, K-weighted, gated) and sample peak of ``audio``.

    Args:
        audio: ``(frames,)`` or ``(frames, channels)`` float samples at ``sample_rate`` Hz; channels are
            weighted 1.0 each (BS.1770 weights for L/R/C).
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak):
        raise ValueError("audio holds NaN or Inf samples; loudness is undefined")
    n = x.shape[0]
    if n < int(round(BLOCK_S * sample_rate)) + 1:
        return LoudnessMeasure(None, peak, f"shorter than {BLOCK_S:.1f} s ({n / sample_rate:.3f} s): "
                                           "too short for BS.1770 gating")
    if peak == 0.0:
        return LoudnessMeasure(None, 0.0, "silent")
    meter = pyloudnorm.Meter(int(sample_rate))
    # Fully gated signals give log10(0); that is "silent", not an error worth a warning.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lufs = float(meter.integrated_loudness(x))
    if not np.isfinite(lufs) or lufs < SILENCE_LUFS:
        return LoudnessMeasure(None, peak, "silent (below the -70 LUFS absolute gate)")
    return LoudnessMeasure(lufs, peak)


def match_gains(measures: list[LoudnessMeasure], *, target_lufs: float | None = None,
                reference: list[bool] | None = None) -> list[PlaybackGain]:
    """Per-version gains that play every measurable version at the same loudness, never above 0 dBFS.

    Args:
        measures: one :class:`LoudnessMeasure` per version; ``peak`` must be the peak of the audio that
            will actually play (after resampling), so the 0 dBFS rule holds for the played samples.
        target_lufs: common loudness; default the quietest measurable version among ``reference``.
        reference: which versions may set the default target (default all); the transport passes
            ``False`` for residuals so that they do not drag everything down.
    """
    if reference is None:
        reference = [True] * len(measures)
    if target_lufs is None:
        candidates = [m.lufs for m, r in zip(measures, reference) if r and m.lufs is not None]
        if not candidates:
            candidates = [m.lufs for m in measures if m.lufs is not None]
        target_lufs = min(candidates) if candidates else None
    out = []
    for m in measures:
        match_db = (target_lufs - m.lufs) if (m.lufs is not None and target_lufs is not None) else 0.0
        limit_db = 0.0
        if m.peak > 0:
            peak_after_db = 20.0 * math.log10(m.peak) + match_db
            if peak_after_db > 0.0:
                limit_db = -peak_after_db
        out.append(PlaybackGain(match_db + limit_db, match_db, limit_db, target_lufs, m.reason))
    return out


def peak_safe_gain(m: LoudnessMeasure) -> PlaybackGain:
    """Gain for playing a version as it is (no matching): 0 dB, reduced only if it would exceed 0 dBFS."""
    limit_db = min(0.0, -20.0 * math.log10(m.peak)) if m.peak > 0 else 0.0
    return PlaybackGain(limit_db, 0.0, limit_db, None, m.reason)
