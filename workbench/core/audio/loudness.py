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
import sys
from dataclasses import dataclass

import numpy as np


def libraries_loaded() -> bool:
    """True once pyloudnorm and scipy.signal (imported on first use, together about 0.4 s) are loaded,
    i.e. when measuring loudness no longer starts with that import."""
    return "pyloudnorm" in sys.modules and "scipy.signal" in sys.modules


def load_libraries() -> None:
    """Import pyloudnorm and scipy.signal now (for callers that want the cost paid up front)."""
    import pyloudnorm  # noqa: F401
    import scipy.signal  # noqa: F401


#: Samples per channel one K-weighting filter call takes (about 1.4 s at 48 kHz, a millisecond or two of
#: work): see :meth:`LoudnessStream.add`.
FILTER_STEP_FRAMES = 1 << 16
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


#: Samples per channel processed at once by :func:`measure` (about 22 s at 48 kHz): bounds the float64
#: working memory (a whole-file call needs 3-4 float64 copies of the signal, ~1 GB per hour at 48 kHz)
#: and keeps every numpy/scipy call short.
MEASURE_BLOCK_FRAMES = 1 << 20
#: BS.1770 channel weights in pyloudnorm's channel order (L, R, C, Ls, Rs).
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)


def _block_bounds(n: int, rate: int, meter: pyloudnorm.Meter) -> tuple[np.ndarray, np.ndarray]:
    """Sample bounds ``[lo_j, hi_j)`` of the gating blocks, exactly as ``pyloudnorm.Meter`` computes them.

    Block ``j`` starts at ``int(T_g * j * step * rate)`` and ends ``T_g`` later (``T_g`` = 0.4 s,
    ``step`` = 1 - overlap = 0.25); the number of blocks is ``round((T - T_g) / (T_g * step)) + 1`` for a
    signal of ``T`` seconds (the last block may reach past the end; it is then cut at ``n``).
    """
    t_g, step = meter.block_size, 1.0 - meter.overlap
    count = int(np.round((n / rate - t_g) / (t_g * step))) + 1
    j = np.arange(count)
    # Same float expressions, in the same order, as pyloudnorm, so the truncated bounds agree exactly.
    lo = (t_g * (j * step) * rate).astype(np.int64)
    hi = np.minimum((t_g * (j * step + 1) * rate).astype(np.int64), n)
    return lo, hi


def measure(audio: np.ndarray, sample_rate: int, *, block_frames: int = MEASURE_BLOCK_FRAMES) -> LoudnessMeasure:
    """Integrated loudness (BS.1770-4, K-weighted, gated) and sample peak of ``audio``.

    Args:
        audio: ``(frames,)`` or ``(frames, channels)`` float samples at ``sample_rate`` Hz; channels are
            weighted 1.0 each (BS.1770 weights for L/R/C; 1.41 for the 4th and 5th, as pyloudnorm).
        block_frames: samples per channel processed at once.

    The result equals ``pyloudnorm.Meter(sample_rate).integrated_loudness(audio)`` (to rounding), but the
    signal is processed in pieces of ``block_frames`` by a :class:`LoudnessStream` (see there for the
    formulas). pyloudnorm's whole-signal call instead copies the signal to float64 several times (about
    1 GB per hour of 48 kHz mono) and loops over every block in Python.
    """
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"audio must be (frames,) or (frames, channels), got shape {x.shape}")
    n, channels = x.shape
    block_frames = max(int(block_frames), 1)
    for a in range(0, n, block_frames):  # NaN/Inf anywhere refuse the whole signal before any filtering
        if channels and not np.isfinite(np.max(np.abs(x[a:a + block_frames]))):
            raise ValueError("audio holds NaN or Inf samples; loudness is undefined")
    stream = LoudnessStream(n, sample_rate, channels)
    for a in range(0, n, block_frames):
        stream.add(x[a:a + block_frames])
    return stream.result()


class LoudnessStream:
    """:func:`measure` of a signal of known length fed piece by piece, in order (for signals that are
    never whole in memory, e.g. playback data written to a cache file as it is made).

    Args:
        frames: total length ``n`` of the signal in samples per channel (fixes the gating-block grid).
        sample_rate: Hz.
        channels: channels of every piece.

    Feed consecutive pieces ``(m,)`` / ``(m, channels)`` with :meth:`add` (any sizes, ``n`` in all), then
    call :meth:`result`. pyloudnorm's own K-weighting filters (its ``Meter`` stages, ``passband_gain *
    lfilter(b, a, x)``) run piece by piece with their state carried over (``lfilter(..., zi=)``, exact),
    the squared output is summed per segment of the 400 ms gating-block grid (every block bound is a
    segment edge), and :meth:`result` applies the BS.1770 gating to the block mean squares
    ``z_j = sum(y[lo_j:hi_j]**2) / (0.4 * rate)``:

        l_j = -0.691 + 10 log10(sum_i G_i z_ij)
        absolute gate: l_j >= -70;  relative gate: l_j > -0.691 + 10 log10(sum_i G_i mean_abs(z_i)) - 10
        LUFS = -0.691 + 10 log10(sum_i G_i mean_gated(z_i))

    Working memory: the float64 copy of one piece and ``8 * n / (0.1 * rate)`` bytes of segment sums.
    """

    def __init__(self, frames: int, sample_rate: int, channels: int = 1):
        import pyloudnorm  # local: imported on first use, not at start-up
        self.frames = int(frames)
        self.rate = int(sample_rate)
        self.channels = int(channels)
        self.peak = 0.0
        self._fed = 0
        self._measurable = self.frames >= int(round(BLOCK_S * sample_rate)) + 1 and 0 < self.channels
        if not self._measurable or self.channels > len(_CHANNEL_WEIGHTS):
            return
        self._meter = meter = pyloudnorm.Meter(self.rate)
        self._stages = list(meter._filters.values())  # pyloudnorm's K-weighting: high shelf, then high pass
        self._state = [np.zeros((max(len(f.a), len(f.b)) - 1, self.channels)) for f in self._stages]
        self._lo, self._hi = _block_bounds(self.frames, self.rate, meter)
        # Segment edges: every block bound; the blocks are unions of consecutive segments.
        self._edges = np.unique(np.concatenate([self._lo, self._hi, [0, self.frames]]))
        self._seg = np.zeros((len(self._edges) - 1, self.channels))

    def add(self, piece: np.ndarray) -> None:
        """Feed the next ``m`` samples per channel (``(m,)`` or ``(m, channels)``); NaN/Inf raise ValueError.

        Long pieces are filtered :data:`FILTER_STEP_FRAMES` at a time (the filter state carries over, so
        the samples are the same): scipy's ``lfilter`` keeps the GIL for the whole call, and a worker
        measuring a long recording must not hold the window's thread off for tens of milliseconds."""
        x = np.asarray(piece)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"piece must be (frames, {self.channels}), got shape {x.shape}")
        for a in range(0, max(x.shape[0], 1), FILTER_STEP_FRAMES):
            self._add(x[a:a + FILTER_STEP_FRAMES])

    def _add(self, x: np.ndarray) -> None:
        import scipy.signal  # local: imported on first use, not at start-up
        a = self._fed
        b = a + x.shape[0]
        if b > self.frames:
            raise ValueError(f"{b} samples fed to a loudness stream of {self.frames}")
        self._fed = b
        if b == a:
            return
        piece_peak = float(np.max(np.abs(x))) if x.size else 0.0
        if not np.isfinite(piece_peak):
            raise ValueError("audio holds NaN or Inf samples; loudness is undefined")
        self.peak = max(self.peak, piece_peak)
        if not self._measurable or self.channels > len(_CHANNEL_WEIGHTS):
            return
        y = np.asarray(x, np.float64)
        for k, f in enumerate(self._stages):
            y, self._state[k] = scipy.signal.lfilter(f.b, f.a, y, axis=0, zi=self._state[k])
            y *= f.passband_gain
        np.square(y, out=y)
        edges = self._edges
        # Segments overlapping [a, b): the first may have started in an earlier piece.
        first = int(np.searchsorted(edges, a, side="right")) - 1
        inner = edges[(edges > a) & (edges < b)] - a
        starts = np.concatenate([[0], inner]).astype(np.intp)
        self._seg[first:first + len(starts)] += np.add.reduceat(y, starts, axis=0)

    def result(self) -> LoudnessMeasure:
        """The measure of everything fed (which must be all ``frames`` samples)."""
        if self._fed != self.frames:
            raise ValueError(f"loudness stream fed {self._fed} of {self.frames} samples")
        n, rate, channels, peak = self.frames, self.rate, self.channels, self.peak
        if not self._measurable:
            return LoudnessMeasure(None, peak, f"shorter than {BLOCK_S:.1f} s ({n / rate:.3f} s): "
                                               "too short for BS.1770 gating")
        if peak == 0.0:
            return LoudnessMeasure(None, 0.0, "silent")
        if channels > len(_CHANNEL_WEIGHTS):
            raise ValueError(f"BS.1770 loudness supports up to {len(_CHANNEL_WEIGHTS)} channels, got {channels}")
        edges, seg, lo, hi = self._edges, self._seg, self._lo, self._hi
        il = np.searchsorted(edges, lo)
        ih = np.searchsorted(edges, hi)
        z = np.zeros((len(lo), channels))
        for s in range(int((ih - il).max())):  # a block spans a handful of segments: add them up, no cumsum
            take = il + s < ih
            z[take] += seg[il[take] + s]
        z /= self._meter.block_size * rate
        g = np.asarray(_CHANNEL_WEIGHTS[:channels])
        with np.errstate(divide="ignore", invalid="ignore"):
            block_lufs = -0.691 + 10.0 * np.log10(z @ g)
            above_abs = block_lufs >= SILENCE_LUFS
            if not above_abs.any():
                return LoudnessMeasure(None, peak, "silent (below the -70 LUFS absolute gate)")
            gamma_r = -0.691 + 10.0 * np.log10(z[above_abs].mean(axis=0) @ g) - 10.0
            gated = (block_lufs > gamma_r) & (block_lufs > SILENCE_LUFS)
            lufs = float(-0.691 + 10.0 * np.log10(z[gated].mean(axis=0) @ g)) if gated.any() else -math.inf
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


class TruePeakStream:
    """:func:`true_peak` of a signal fed in consecutive pieces ``(m, channels)`` (:meth:`add`, the last one
    with ``last=True``), for signals never whole in memory."""

    def __init__(self, sample_rate: int, channels: int):
        import soxr  # noqa: PLC0415 - only export needs it

        self._stream = soxr.ResampleStream(sample_rate, 4 * sample_rate, channels, dtype="float32", quality="HQ")
        self.peak = 0.0

    def add(self, piece: np.ndarray, last: bool = False) -> None:
        piece = np.ascontiguousarray(piece, np.float32)
        up = self._stream.resample_chunk(piece, last=last)
        self.peak = max(self.peak, float(np.max(np.abs(piece))) if piece.size else 0.0,
                        float(np.max(np.abs(up))) if up.size else 0.0)


def true_peak(audio: np.ndarray, sample_rate: int, *, block_frames: int = MEASURE_BLOCK_FRAMES) -> float:
    """Estimated true peak (linear) per BS.1770-4 Annex 2: the largest absolute value of the signal
    interpolated to 4x its rate (soxr's linear-phase resampler stands in for the annex's FIR), and never
    below the sample peak. Processed in pieces of ``block_frames`` with a streaming resampler."""
    x = np.asarray(audio, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if x.shape[0] == 0:
        return 0.0
    stream = TruePeakStream(sample_rate, x.shape[1])
    for a in range(0, x.shape[0], block_frames):
        stream.add(x[a:a + block_frames], last=a + block_frames >= x.shape[0])
    return stream.peak


@dataclass(frozen=True)
class NormalisationGain:
    """Gain of a loudness-normalised export.

    Attributes:
        gain_db: applied gain.
        measured_lufs: loudness before; ``None`` when not measurable (then ``gain_db`` is 0).
        target_lufs: the loudness asked for.
        ceiling_dbtp: the true-peak ceiling; ``limited_db`` (<= 0) is how much the gain was lowered so
            the true peak stays under it (the file is then quieter than the target by that much).
    """

    gain_db: float
    measured_lufs: float | None
    target_lufs: float
    ceiling_dbtp: float
    limited_db: float = 0.0


def normalisation_gain(audio: np.ndarray, sample_rate: int, target_lufs: float = -16.0,
                       ceiling_dbtp: float = -1.0) -> NormalisationGain:
    """``gain_db = target - measured``, lowered when ``true_peak * gain`` would exceed the ceiling (a plain
    gain, no limiter: the waveform's shape is kept)."""
    m = measure(audio, sample_rate)
    if m.lufs is None:
        return NormalisationGain(0.0, None, target_lufs, ceiling_dbtp)
    return _limited_gain(m.lufs, true_peak(audio, sample_rate), target_lufs, ceiling_dbtp)


def normalisation_gain_of_source(source, target_lufs: float = -16.0, ceiling_dbtp: float = -1.0,
                                 block_frames: int = 1 << 16) -> NormalisationGain:
    """:func:`normalisation_gain` of an audio source (``frames``, ``sample_rate``, ``channels``, ``blocks()``,
    e.g. a file or a scratch file) read block by block: one pass, memory of one block."""
    loud = LoudnessStream(source.frames, source.sample_rate, source.channels)
    peak = TruePeakStream(source.sample_rate, source.channels)
    for pos, block in source.blocks(block_frames):
        loud.add(block)
        peak.add(block, last=pos + len(block) >= source.frames)
    m = loud.result()
    if m.lufs is None:
        return NormalisationGain(0.0, None, target_lufs, ceiling_dbtp)
    return _limited_gain(m.lufs, peak.peak, target_lufs, ceiling_dbtp)


def _limited_gain(lufs: float, tp: float, target_lufs: float, ceiling_dbtp: float) -> NormalisationGain:
    gain_db = target_lufs - lufs
    limited = 0.0
    if tp > 0:
        headroom = ceiling_dbtp - 20.0 * math.log10(tp)
        if gain_db > headroom:
            limited = headroom - gain_db
            gain_db = headroom
    return NormalisationGain(gain_db, lufs, target_lufs, ceiling_dbtp, limited)
