"""Fixtures for model tests: running a model over the dns3 clips and scoring it as the issues ask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array

DNS3_CLIPS = ("0015", "0016", "0072")


@dataclass
class Dns3Result:
    """One clip through a model: the signals, PESQ-WB before/after, and the circular xcorr lag (samples)
    of the enhanced signal against the clean reference (0 = aligned)."""

    clip: str
    sample_rate: int
    clean: np.ndarray
    noisy: np.ndarray
    enhanced: np.ndarray
    pesq_noisy: float
    pesq_enhanced: float
    lag: int


@pytest.fixture()
def run_on_dns3(shared_data):
    """``run(model) -> list[Dns3Result]``: enhance every dns3 noisy clip through the engine and score it."""
    from pesq import pesq

    def run(model) -> list[Dns3Result]:
        results = []
        for clip in DNS3_CLIPS:
            clean, sr = sf.read(shared_data / "dns3" / f"{clip}_clean.wav", dtype="float32")
            noisy, _ = sf.read(shared_data / "dns3" / f"{clip}_noisy.wav", dtype="float32")
            y = enhance_array(model, noisy, sr)
            n = 1 << 18
            r = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(clean, n)), n)
            k = int(np.argmax(r))
            results.append(Dns3Result(clip, sr, clean, noisy, y, pesq(sr, clean, noisy, "wb"),
                                      pesq(sr, clean, y, "wb") if np.all(np.isfinite(y)) else float("nan"),
                                      k if k < n // 2 else k - n))
        return results

    return run
