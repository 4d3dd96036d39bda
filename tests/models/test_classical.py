"""Classical enhancers: they improve SNR on generated and real signals, stay aligned, never emit NaN."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array
from workbench_models.classical import ClassicalEnhancer, ClassicalSettings, NoiseTracker, minimum_bias



def xcorr_lag(a: np.ndarray, b: np.ndarray) -> int:
    """Lag (samples) by which ``a`` trails ``b``, from the peak of their FFT cross-correlation."""
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    r = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    k = int(np.argmax(r))
    return k if k < n // 2 else k - n

METHODS = ["spectral-subtraction", "wiener", "logmmse"]
CLIPS = ["0015", "0016", "0072"]


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB: ``10 log10(|a s|^2 / |a s - e|^2)`` with ``a = <e, s> / <s, s>``."""
    a = np.dot(est, ref) / np.dot(ref, ref)
    return float(10 * np.log10(np.sum((a * ref) ** 2) / np.sum((est - a * ref) ** 2)))


def gated_tone(rng, seconds=3.0, rate=16000):
    """A 440 Hz tone switched on and off at 1.5 Hz after 0.5 s of silence, in white noise (9 dB SNR)."""
    t = np.arange(int(seconds * rate)) / rate
    gate = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)
    gate[: rate // 2] = 0
    clean = (0.3 * np.sin(2 * np.pi * 440 * t) * gate).astype(np.float32)
    return clean, clean + (0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def dns3(shared_data):
    out = {}
    for clip in CLIPS:
        clean, sr = sf.read(shared_data / "dns3" / f"{clip}_clean.wav", dtype="float32")
        noisy, _ = sf.read(shared_data / "dns3" / f"{clip}_noisy.wav", dtype="float32")
        out[clip] = (clean, noisy)
    return out


@pytest.mark.parametrize("noise", ["minimum-statistics", "leading"])
@pytest.mark.parametrize("method", METHODS)
def test_improves_gated_tone_in_white_noise(method, noise, rng):
    clean, noisy = gated_tone(rng)
    y = enhance_array(ClassicalEnhancer(method, settings=ClassicalSettings(noise=noise)), noisy, 16000)
    assert y.shape == noisy.shape and np.all(np.isfinite(y))
    assert si_sdr(clean, y) > si_sdr(clean, noisy) + 4
    assert xcorr_lag(y, noisy) == 0


@pytest.mark.parametrize("method", METHODS)
def test_improves_real_speech_in_white_noise(method, dns3, rng):
    """dns3 clean speech plus white noise at 5 dB SNR: PESQ-WB and SI-SDR both go up on every clip."""
    from pesq import pesq

    model = ClassicalEnhancer(method)
    for clip, (clean, _) in dns3.items():
        noise = rng.standard_normal(len(clean)).astype(np.float32)
        noise *= np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2) / 10 ** 0.5)
        noisy = clean + noise
        y = enhance_array(model, noisy, 16000)
        assert si_sdr(clean, y) > si_sdr(clean, noisy) + 1.5, clip
        assert pesq(16000, clean, y, "wb") > pesq(16000, clean, noisy, "wb"), clip
        assert xcorr_lag(y, noisy) == 0


@pytest.mark.parametrize("method", METHODS)
def test_improves_dns3_noisy_on_average(method, dns3):
    """The DNS noises are partly non-stationary: we require the mean SI-SDR over the clips to rise."""
    model = ClassicalEnhancer(method)
    before, after = [], []
    for clean, noisy in dns3.values():
        y = enhance_array(model, noisy, 16000)
        assert np.all(np.isfinite(y)) and y.shape == noisy.shape
        before.append(si_sdr(clean, noisy))
        after.append(si_sdr(clean, y))
    assert np.mean(after) > np.mean(before) + 1.0


def test_other_rates_and_silence(rng):
    model = ClassicalEnhancer("logmmse", sample_rate=48000)
    assert model.info.block_samples == 768 and model.info.latency_samples == 768
    silence = np.zeros(48000, np.float32)
    assert np.array_equal(enhance_array(model, silence, 48000), silence)
    clean, noisy = gated_tone(rng, rate=48000)
    assert si_sdr(clean, enhance_array(model, noisy, 48000)) > si_sdr(clean, noisy)


def test_minimum_statistics_tracks_noise_level(rng):
    """On white noise alone the bias-compensated minimum lands near the true noise power (within 3 dB)."""
    frames = rng.standard_normal((400, 257)) + 1j * rng.standard_normal((400, 257))
    power = np.abs(frames) ** 2  # mean 2 in every bin
    tracker = NoiseTracker(257, window_frames=96)
    est = np.array([tracker.update(p) for p in power])
    level_db = 10 * np.log10(np.mean(est[150:]) / 2.0)
    assert abs(level_db) < 3.0
    assert 1.5 < minimum_bias(96, 0.85) < 2.5


def test_unknown_method_is_a_model_error():
    from workbench.core.errors import ModelError

    with pytest.raises(ModelError, match="available"):
        ClassicalEnhancer("magic")
