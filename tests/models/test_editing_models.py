"""Noise profiles (classical enhancers), chains, WPE dereverberation, DeepFilterNet's own limit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import soxr

from workbench.cli import main
from workbench.core.audio.audio_io import ArraySource
from workbench.core.enhance.editing import noise_profile_samples, with_attenuation_limit, with_noise_profile
from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import ModelError
from workbench.core.enhance.registry import load_enhancer
from workbench_models.classical import ClassicalEnhancer, profile_power

RATE = 16000


def lag_of(y: np.ndarray, x: np.ndarray) -> int:
    c = scipy.signal.correlate(y, x, mode="full", method="fft")
    return int(np.argmax(c)) - (len(x) - 1)


# ------------------------------------------------------------------------------------------------ noise profile
@pytest.fixture()
def quiet_then_noise(rng):
    """0.5 s of near-silence, then 3 s of white noise at -26 dBFS rms."""
    x = np.concatenate([1e-4 * rng.standard_normal(RATE // 2), 0.05 * rng.standard_normal(3 * RATE)])
    return x.astype(np.float32)


def test_noise_profile_is_the_noise_estimate(quiet_then_noise):
    """A profile from the quiet lead-in says 'no noise' (the noise passes), one from the noise removes it."""
    src = ArraySource(quiet_then_noise, RATE)
    noise_part = slice(RATE, None)
    energy_in = np.sum(quiet_then_noise[noise_part] ** 2)
    results = {}
    for span in ((0.0, 0.45), (1.0, 3.0)):
        model = with_noise_profile(load_enhancer("wiener"), noise_profile_samples(src, span), RATE, span)
        assert model.info.extra["noise"] == "profile"
        y = enhance_array(model, quiet_then_noise, RATE)
        results[span] = 10 * np.log10(np.sum(y[noise_part] ** 2) / energy_in)
    assert results[(0.0, 0.45)] > -1.0    # noise estimate ~0: gain ~1
    assert results[(1.0, 3.0)] < -15.0    # noise estimate = the noise: strongly attenuated


def test_profile_power_is_the_mean_periodogram(rng):
    x = 0.1 * rng.standard_normal(RATE).astype(np.float32)
    m = ClassicalEnhancer("wiener", RATE)
    p = profile_power(x, RATE, m.cfg, RATE)
    assert p.shape == (m.cfg.bins,)
    # white noise of variance s^2 through a sqrt-Hann window: E|Y|^2 = s^2 * sum(w^2) = s^2 * n_fft / 2
    assert np.median(p) == pytest.approx(0.01 * m.cfg.n_fft / 2, rel=0.1)


def test_noise_profile_at_another_rate_is_resampled(quiet_then_noise):
    x48 = soxr.resample(quiet_then_noise, RATE, 48000).astype(np.float32)
    src = ArraySource(x48, 48000)
    model = with_noise_profile(load_enhancer("wiener"), noise_profile_samples(src, (1.0, 3.0)), 48000, (1.0, 3.0))
    y = enhance_array(model, x48, 48000)  # the engine builds the model at 48 kHz with the same profile
    assert 10 * np.log10(np.sum(y[48000:] ** 2) / np.sum(x48[48000:] ** 2)) < -15.0


def test_noise_profile_errors(tmp_path, quiet_then_noise, capsys):
    wav = tmp_path / "n.wav"
    sf.write(wav, quiet_then_noise, RATE, subtype="FLOAT")
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "o.wav"), "--noise-profile", "1:1.01"]) == 2
    assert "shorter than one STFT frame" in capsys.readouterr().err
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "o.wav"), "--noise-profile", "3:9"]) == 2
    assert "noise profile 3:9 s lies outside the recording" in capsys.readouterr().err
    with pytest.raises(ModelError, match="does not take a noise profile"):
        with_noise_profile(load_enhancer("wpe-dereverb"), quiet_then_noise, RATE, (0, 1))
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "o.wav"), "--noise-profile", "1:3",
                 "--quiet"]) == 0
    tag = json.loads(sf.SoundFile(tmp_path / "o.wav").comment)
    assert tag["model_settings"]["noise_profile_s"] == [1.0, 3.0]


# ------------------------------------------------------------------------------------------------ reverb
@pytest.fixture(scope="module")
def reverberant(shared_data):
    """Clean speech (16 kHz) convolved with the simulated RIR (RT60 0.79 s): direct+early (first 50 ms
    after the direct path) and late parts kept apart, scaled together."""
    clean, sr = sf.read(shared_data / "dfn" / "clean_freesound_33711.wav", dtype="float32")
    rir, _ = sf.read(shared_data / "dfn" / "rir_sim_1001_w11.7_l2.6_h2.5_rt60_0.7919.wav", dtype="float32")
    clean, rir = soxr.resample(clean, sr, RATE), soxr.resample(rir, sr, RATE)
    cut = int(np.argmax(np.abs(rir))) + int(0.05 * RATE)
    early = scipy.signal.fftconvolve(clean, rir[:cut])[:len(clean)]
    late = scipy.signal.fftconvolve(clean, np.r_[np.zeros(cut), rir[cut:]])[:len(clean)]
    scale = 0.9 / np.abs(early + late).max()
    return (early * scale), (late * scale)


def si_sdr(x: np.ndarray, target: np.ndarray) -> float:
    a = np.dot(x, target) / np.dot(target, target)
    return float(10 * np.log10(np.sum((a * target) ** 2) / np.sum((x - a * target) ** 2)))


def speech_to_reverberation_db(x: np.ndarray, early: np.ndarray, late: np.ndarray) -> float:
    """Least-squares fit ``x ~ a*early + b*late``; returns ``10 log10(|a early|^2 / |b late|^2)``: how
    much of the known late reverberation is left relative to the direct sound and early reflections."""
    (a, b), *_ = np.linalg.lstsq(np.stack([early, late], 1), x.astype(np.float64), rcond=None)
    return float(10 * np.log10(np.sum((a * early) ** 2) / np.sum((b * late) ** 2)))


def test_wpe_dereverberation_improves_si_sdr_and_srr(reverberant):
    early, late = reverberant
    rev = (early + late).astype(np.float32)
    y = enhance_array(load_enhancer("wpe-dereverb"), rev, RATE)
    assert lag_of(y, rev) == 0
    sisdr_in, sisdr_out = si_sdr(rev, early), si_sdr(y, early)
    srr_in, srr_out = speech_to_reverberation_db(rev, early, late), speech_to_reverberation_db(y, early, late)
    # measured: SI-SDR 9.2 -> 10.6 dB, SRR 9.3 -> 12.3 dB
    assert sisdr_out > sisdr_in + 1.0
    assert srr_out > srr_in + 2.0


def test_wpe_is_joint_over_channels_and_exposes_its_settings(reverberant):
    early, late = reverberant
    n = 4 * RATE
    rev = (early + late)[:n].astype(np.float32)
    stereo = np.stack([rev, np.roll(rev, 7) * 0.8], axis=1)
    model = load_enhancer("wpe-dereverb")
    assert {"taps", "delay", "iterations"} <= set(model.info.extra)
    joint = enhance_array(model, stereo, RATE)
    assert joint.shape == stereo.shape
    mono0 = enhance_array(model, stereo[:, 0], RATE)
    assert np.abs(joint[:, 0] - mono0).max() > 1e-4  # the second channel took part in the prediction
    from workbench_models.wpe import WpeDereverb
    with pytest.raises(ModelError, match="taps"):
        WpeDereverb(taps=0)
    assert WpeDereverb(taps=5, delay=2, iterations=1).info.extra["taps"] == 5


# ------------------------------------------------------------------------------------------------ chains
def test_chain_of_classical_models_is_aligned_and_sequential(rng):
    t = np.arange(3 * RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
         + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    chain = load_enhancer("spectral-subtraction+wiener")
    assert chain.info.id == "spectral-subtraction+wiener" and chain.info.family == "chain"
    assert chain.info.latency_samples == 2 * 256
    y = enhance_array(chain, x, RATE)
    step1 = enhance_array(load_enhancer("spectral-subtraction"), x, RATE)
    np.testing.assert_allclose(y, enhance_array(load_enhancer("wiener"), step1, RATE), atol=1e-6)
    assert lag_of(y, x) == 0


@pytest.mark.slow
def test_dereverb_then_deepfilternet3_chain_has_no_lag(reverberant, rng):
    early, late = reverberant
    n = 6 * RATE
    rev = (early + late)[:n] + 0.02 * rng.standard_normal(n)
    rev48 = soxr.resample(rev.astype(np.float32), RATE, 48000).astype(np.float32)
    chain = load_enhancer("wpe-dereverb+deepfilternet3")
    y = enhance_array(chain, rev48, 48000)
    assert y.shape == rev48.shape and lag_of(y, rev48) == 0
    clean48 = soxr.resample(early[:n].astype(np.float32), RATE, 48000)
    assert lag_of(y, clean48) == 0


def test_unknown_model_in_a_chain(tmp_path, capsys):
    with pytest.raises(ModelError, match=r"step 2 'nope' is not a known model"):
        load_enhancer("wiener+nope")
    with pytest.raises(ModelError, match="joined by"):
        load_enhancer("wiener+")
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(RATE, np.float32), RATE)
    assert main(["enhance", str(wav), "-m", "wpe-dereverb+bogus", "-o", str(tmp_path / "o.wav")]) == 2
    assert "step 2 'bogus' is not a known model" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ atten_lim
def test_model_own_attenuation_limit_only_where_there_is_one():
    dfn = with_attenuation_limit(load_enhancer("deepfilternet3"), 12.0)
    assert dfn.atten_lim_db == 12.0 and dfn.info.extra["atten_lim_db"] == 12.0
    with pytest.raises(ModelError, match="no attenuation limit of its own"):
        with_attenuation_limit(load_enhancer("wiener"), 12.0)
    chain = with_attenuation_limit(load_enhancer("wpe-dereverb+deepfilternet3"), 6.0)
    assert chain.steps[1].atten_lim_db == 6.0


@pytest.mark.slow
def test_deepfilternet_atten_lim_limits_the_reduction(shared_data):
    noisy, sr = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")
    noisy = noisy[:3 * sr]
    full = enhance_array(load_enhancer("deepfilternet3"), noisy, sr)
    limited = enhance_array(with_attenuation_limit(load_enhancer("deepfilternet3"), 6.0), noisy, sr)
    removed_full = 10 * np.log10(np.sum(noisy ** 2) / np.sum(full ** 2))
    removed_lim = 10 * np.log10(np.sum(noisy ** 2) / np.sum(limited ** 2))
    assert removed_lim < removed_full and removed_lim < 6.5
