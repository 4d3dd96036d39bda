"""WPE dereverberation (weighted prediction error; Nakatani et al. 2010, Yoshioka & Nakatani 2012)
through the numpy implementation of the ``nara-wpe`` package (Drude et al. 2018).

In the STFT domain (frames ``t``, bins ``f``, channels ``D``), late reverberation is predicted from the
``taps`` frames that lie at least ``delay`` frames in the past and subtracted:

    X(t, f) = Y(t, f) - sum_{tau = delay}^{delay + taps - 1} G(tau, f)^H Y(t - tau, f)

``G`` minimises the power-weighted prediction error; the weights (the desired signal's power) are
re-estimated ``iterations`` times. ``delay`` keeps the direct sound and early reflections (which help
intelligibility) out of the prediction. The method is offline (whole-file statistics), works at any
rate (the STFT is sized by duration: a power of two near 32 ms, hop 1/4) and processes the channels of
a multichannel recording jointly, which is where WPE is strongest.

Output is aligned with the input sample for sample (nara-wpe's STFT pads and its inverse removes the
padding), so the engine applies no latency.

Long files run as :class:`WpeChunkStream`: the same computation over the whole recording, read block by
block in several passes (the weighted correlations of every frame are sums, so they are gathered chunk by
chunk and the filters solved once per iteration), which equals the one-piece run to float rounding with
the memory of one block.
"""

from __future__ import annotations

import math

import numpy as np

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError

from .facts import fact

DEFAULT_TAPS = 10
DEFAULT_DELAY = 3
DEFAULT_ITERATIONS = 3



def stft_size(sample_rate: int) -> int:
    """Power of two nearest 32 ms (512 at 16 kHz, 1024 at 44.1/48 kHz)."""
    return 1 << max(int(round(math.log2(0.032 * sample_rate))), 6)


def info(sample_rate: int = 16000, taps: int = DEFAULT_TAPS, delay: int = DEFAULT_DELAY,
         iterations: int = DEFAULT_ITERATIONS) -> EnhancerInfo:
    size = stft_size(sample_rate)
    return EnhancerInfo(
        id="wpe-dereverb", name="WPE dereverberation",
        description="Weighted prediction error dereverberation (Nakatani et al. 2010) from nara-wpe: "
                    "removes late reverberation, keeps the direct sound; offline, any rate, channels jointly.",
        sample_rate=sample_rate, causal=False, latency_samples=0, family="classical", processing="offline",
        block_samples=1, source="built-in", package="nara-wpe", licence=fact("wpe-dereverb", "licence", ""), parameters=0,
        extra={"stft": f"{size}-point, hop {size // 4}", "taps": taps, "delay": delay, "iterations": iterations,
               "receptive_field_s": round((taps + delay) * (size // 4) / sample_rate + size / sample_rate, 4)},
        any_rate=True)


class WpeDereverb(Enhancer):
    """WPE through ``nara_wpe.wpe.wpe`` on ``nara_wpe.utils.stft`` frames.

    Args:
        sample_rate: processing rate (the engine builds it at the input's rate).
        taps: prediction filter length in frames (10 = 80 ms of reverberation tail at hop 8 ms).
        delay: prediction delay in frames (3 = 24 ms kept as direct sound and early reflections).
        iterations: weight re-estimations (3 is the package's default).
    """

    #: Joint multichannel processing: the engine passes all selected channels to
    #: :meth:`process_offline_channels` at once.
    joint_channels = True
    #: The offline path runs as :class:`WpeChunkStream` (whole-file statistics gathered over several
    #: passes); the block length sets memory and per-call overhead only.
    chunk_s = 10.0
    overlap_s = 0.0
    #: frequency bins per WPE call (see process_offline_channels)
    BINS_PER_STEP = 32

    def __init__(self, sample_rate: int = 16000, taps: int = DEFAULT_TAPS, delay: int = DEFAULT_DELAY,
                 iterations: int = DEFAULT_ITERATIONS):
        for name, value, low in (("taps", taps, 1), ("delay", delay, 0), ("iterations", iterations, 1)):
            if int(value) != value or value < low:
                raise ModelError(f"wpe-dereverb: {name} must be a whole number >= {low}, got {value}")
        self.taps, self.delay, self.iterations = int(taps), int(delay), int(iterations)
        self.size = stft_size(sample_rate)
        self.shift = self.size // 4
        self.info = info(sample_rate, self.taps, self.delay, self.iterations)

    def for_rate(self, sample_rate: int) -> "WpeDereverb":
        if sample_rate == self.info.sample_rate:
            return self
        other = WpeDereverb(sample_rate, self.taps, self.delay, self.iterations)
        other.chunk_s, other.overlap_s = self.chunk_s, self.overlap_s
        return other

    def process_offline_channels(self, audio: np.ndarray) -> np.ndarray:
        """``(n, D)`` float32 -> ``(n, D)`` dereverberated jointly over the ``D`` channels."""
        from nara_wpe.utils import istft, stft
        from nara_wpe.wpe import wpe

        x = np.asarray(audio, np.float64)
        n = x.shape[0]
        if n < self.size:  # too short for one frame of statistics: nothing to predict from
            return x.astype(np.float32)
        spec = stft(x.T, size=self.size, shift=self.shift)          # (D, T, F)
        del x
        by_bin = spec.transpose(2, 0, 1)                             # (F, D, T) view
        # Every frequency bin is predicted on its own (its own filter and power estimate), so bins are
        # processed a few at a time, written back in place: the same result with the stacked
        # (taps * D)-row observation tensors of a few bins in memory instead of all of them.
        for f0 in range(0, by_bin.shape[0], self.BINS_PER_STEP):
            f1 = min(f0 + self.BINS_PER_STEP, by_bin.shape[0])
            by_bin[f0:f1] = wpe(by_bin[f0:f1], taps=self.taps, delay=self.delay, iterations=self.iterations,
                                statistics_mode="full")
        y = istft(spec, size=self.size, shift=self.shift)           # (D, n')
        y = y[:, :n]
        if y.shape[1] < n:
            y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
        return np.ascontiguousarray(y.T, dtype=np.float32)

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        """Mono ``(n,)`` -> ``(n,)``."""
        return self.process_offline_channels(np.asarray(audio)[:, None])[:, 0]

    def new_offline_stream(self) -> "WpeChunkStream":
        """The offline path as a multi-pass stream over the whole recording (see :class:`WpeChunkStream`)."""
        return WpeChunkStream(self)


def _window(size: int) -> np.ndarray:
    """nara-wpe's analysis window: periodic Blackman of ``size``."""
    from scipy.signal.windows import blackman

    return blackman(size + 1)[:-1]


class WpeChunkStream(EnhancerStream):
    """:meth:`WpeDereverb.process_offline_channels` over a recording fed block by block, equal to the
    one-piece run to float rounding.

    What the one-piece run does per group of :attr:`WpeDereverb.BINS_PER_STEP` bins, and how each part is
    gathered from blocks:

    * nara-wpe's STFT (``size - shift`` zeros of fade on both ends, zeros to fill the last frame): frames
      are cut from the running input with the last ``size - shift`` samples carried; the frame count is
      known from the number of real samples the engine announces (:meth:`begin_pass`).
    * The delayed observation ``Y~(t)`` (``taps`` frames from ``delay`` frames back, zeros before the
      start): the last ``delay + taps - 1`` frames are carried.
    * Each iteration's power weights ``1 / max(p(t), 1e-10 max p)`` need the group's largest power over
      the whole file, then the sums ``R = sum Y~ Y~^H / p``, ``P = sum Y~ Y^H / p``: one pass for the
      maximum, one for the sums, then ``G = R^-1 P``. The output pass subtracts ``G^H Y~`` and resynthesises
      with nara-wpe's biorthogonal window, the last ``size - shift`` samples of overlap-add carried.

    So the engine feeds the recording ``2 * iterations + 1`` times; only the last pass's output is kept,
    delayed by ``size + shift`` samples (removed by the engine).
    """

    #: STFT frames processed at once (bounds the working set whatever the block length).
    FRAMES_PER_STEP = 128

    def __init__(self, model: WpeDereverb):
        from nara_wpe.utils import _biorthogonal_window_fastest

        self.size, self.shift = model.size, model.shift
        self.taps, self.delay, self.iterations = model.taps, model.delay, model.iterations
        self.step = model.BINS_PER_STEP
        self.passes = 2 * self.iterations + 1
        self.latency_samples = self.size + self.shift
        self._win = _window(self.size)
        self._synth = _biorthogonal_window_fastest(self._win, self.shift)
        bins = self.size // 2 + 1
        self._groups = [(f0, min(f0 + self.step, bins)) for f0 in range(0, bins, self.step)]
        self._filters: list[np.ndarray] | None = None  # G per group from the last finished iteration
        self._pass = -1

    def begin_pass(self, index: int, frames: int) -> None:
        self._pass = index
        self._n = int(frames)
        self._fed = 0                       # real samples received in this pass
        self._padded: np.ndarray | None = None  # padded-signal samples not yet consumed by a frame start
        self._frame = 0                     # index of the next frame to cut
        fade = self.size - self.shift
        self._frames_total = -(-(self._n + 2 * fade - self.size + self.shift) // self.shift)
        self._past: np.ndarray | None = None  # last delay + taps - 1 frames (F, D, k)
        kind = self._kind()
        if kind == "max":
            self._peak = [0.0] * len(self._groups)
        elif kind == "sums":
            self._r = [None] * len(self._groups)
            self._p = [None] * len(self._groups)
        else:
            self._ola: np.ndarray | None = None  # overlap-add tail (D, size - shift)
            self._ready: list[np.ndarray] = []   # output samples (D, m) waiting, in order
            self._ready_n = 0
            self._skip = fade if self._n >= self.size else 0  # the fade-in zeros' share of the output
            self._queued = self.latency_samples  # delay: zeros handed out before the first real sample
            self._emitted = 0

    def _kind(self) -> str:
        if self._pass == self.passes - 1:
            return "output"
        return "max" if self._pass % 2 == 0 else "sums"

    def process(self, block: np.ndarray) -> np.ndarray:
        if self._pass < 0:
            raise ModelError("wpe-dereverb: its offline stream needs the recording's length first "
                             "(begin_pass); it cannot run live")
        x = np.asarray(block, np.float64)
        mono = x.ndim == 1
        x = x.reshape(len(x), -1)           # (m, D)
        m, d = x.shape
        # Samples past the announced end are padding: nara-wpe's STFT sees zeros there.
        real = max(min(m, self._n - self._fed), 0)
        x = x.T.copy()                      # (D, m)
        x[:, real:] = 0.0
        self._fed += m
        fade = self.size - self.shift
        if self._n < self.size:  # the one-piece run returns so short a recording unchanged
            if self._kind() == "output" and real:
                self._ready.append(x[:, :real])
                self._ready_n += real
            out = self._take(d, m) if self._kind() == "output" else np.zeros((d, m), np.float32)
            return out[0] if mono else out
        if self._padded is None:
            self._padded = np.zeros((d, fade))
        buf = np.concatenate([self._padded, x], axis=1)
        start = 0
        while True:  # at most FRAMES_PER_STEP frames at a time: the working set does not grow with the block
            count = max((buf.shape[1] - start - self.size) // self.shift + 1, 0)
            count = min(count, self._frames_total - self._frame, self.FRAMES_PER_STEP)
            if count <= 0:
                break
            seg = buf[:, start:start + (count - 1) * self.shift + self.size]
            frames = np.lib.stride_tricks.sliding_window_view(seg, self.size, axis=1)[:, ::self.shift]
            spec = np.fft.rfft(frames * self._win, n=self.size, axis=-1)   # (D, k, F)
            self._frames(spec.transpose(2, 0, 1))                         # (F, D, k)
            self._frame += count
            start += count * self.shift
            if self._kind() == "sums" and self._frame >= self._frames_total:
                self._end_of_sums()
        self._padded = buf[:, start:]
        if self._kind() != "output":
            out = np.zeros((d, m), np.float32)
        else:
            out = self._take(d, m)
        return out[0] if mono else out

    def _frames(self, spec: np.ndarray) -> None:
        """Advance every bin group over the frames ``spec`` (F, D, k)."""
        lag = self.delay + self.taps - 1
        f_, d, k = spec.shape
        past = self._past if self._past is not None else np.zeros((f_, d, lag), spec.dtype)
        ext = np.concatenate([past, spec], axis=2)                          # (F, D, lag + k)
        self._past = ext[:, :, ext.shape[2] - lag:] if lag else ext[:, :, :0]
        # Y~(t) stacks Y(t - delay - j) for j = 0..taps-1, channels fastest (nara-wpe's build_y_tilde).
        kind = self._kind()
        result = np.empty_like(spec) if kind == "output" else None
        for g, (f0, f1) in enumerate(self._groups):
            y = spec[f0:f1]                                                 # (b, D, k)
            e = ext[f0:f1]
            tilde = np.concatenate([e[:, :, lag - self.delay - j:lag - self.delay - j + k]
                                    for j in range(self.taps)], axis=1)     # (b, taps*D, k)
            if self._filters is None:
                x = y
            else:
                x = y - np.matmul(self._filters[g].swapaxes(-2, -1).conj(), tilde)
            if kind == "output":
                result[f0:f1] = x
                continue
            power = np.mean(x.real ** 2 + x.imag ** 2, axis=1)             # (b, k)
            if kind == "max":
                self._peak[g] = max(self._peak[g], float(power.max(initial=0.0)))
                continue
            eps = 1e-10 * self._peak[g]
            inverse = np.ones_like(power) if eps == 0 else 1 / np.maximum(power, eps)
            weighted = tilde * inverse[:, None, :]
            r = np.matmul(weighted, tilde.swapaxes(-2, -1).conj())
            p = np.matmul(weighted, y.swapaxes(-2, -1).conj())
            self._r[g] = r if self._r[g] is None else self._r[g] + r
            self._p[g] = p if self._p[g] is None else self._p[g] + p
        if kind == "output":
            self._synthesise(result)

    def _end_of_sums(self) -> None:
        from nara_wpe.wpe import _stable_solve

        self._filters = [_stable_solve(r, p) for r, p in zip(self._r, self._p)]
        self._r = self._p = None

    def _synthesise(self, spec: np.ndarray) -> None:
        """Overlap-add the frames ``spec`` (F, D, k) as nara-wpe's ``istft``; queue what is final."""
        fade = self.size - self.shift
        frames = np.fft.irfft(spec.transpose(1, 2, 0), n=self.size, axis=-1)[..., :self.size] * self._synth
        d, k, _ = frames.shape
        acc = np.zeros((d, k * self.shift + fade))
        if self._ola is not None:
            acc[:, :fade] += self._ola
        for i in range(k):
            acc[:, i * self.shift:i * self.shift + self.size] += frames[:, i]
        done = self._frame + k >= self._frames_total
        final = acc if done else acc[:, :k * self.shift]
        self._ola = None if done else acc[:, k * self.shift:]
        cut = min(self._skip, final.shape[1])
        final = final[:, cut:]
        self._skip -= cut
        if final.shape[1]:
            self._ready.append(final)
            self._ready_n += final.shape[1]

    def _take(self, d: int, m: int) -> np.ndarray:
        """The next ``m`` output samples: ``latency_samples`` zeros, then the recording's, then zeros."""
        out = np.zeros((d, m), np.float32)
        lead = min(self._queued, m)
        self._queued -= lead
        pos = lead
        while pos < m and self._ready:
            piece = self._ready[0]
            take = min(piece.shape[1], m - pos, max(self._n - self._emitted, 0))
            if take <= 0:
                self._ready.clear()
                break
            out[:, pos:pos + take] = piece[:, :take]
            pos += take
            self._emitted += take
            if take == piece.shape[1]:
                self._ready.pop(0)
            else:
                self._ready[0] = piece[:, take:]
        if pos < m and self._emitted < self._n and (self._frame < self._frames_total or self._n < self.size):
            raise RuntimeError("wpe stream: output fell behind its declared delay")
        return out
