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
"""

from __future__ import annotations

import math

import numpy as np

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
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
    #: 20 s chunks (4 s of context each side, crossfaded over 2 s): the filters are estimated from each
    #: chunk's statistics, which 20 s of speech determine well; memory grows with the chunk.
    chunk_s = 20.0
    overlap_s = 4.0
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
        return WpeDereverb(sample_rate, self.taps, self.delay, self.iterations)

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
