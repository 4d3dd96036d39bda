"""STFT, iSTFT and the representations, checked against scipy and against signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

from workbench.core.views.stft import (WINDOWS, StftConfig, group_delay, imag_part,
                                 instantaneous_frequency_deviation, is_cola, istft, magnitude_db, phase,
                                 real_part, stft, stft_frames, window_array)
from workbench.core.views.registry import VIEWS, ViewInput, compute_view

# (window, n_fft, hop, fft_size): settings whose squared windows overlap-add to a constant.
COLA_SETTINGS = [
    ("hann", 512, 128, None),
    ("hann", 400, 100, 512),          # zero padding, non-power-of-two frame
    ("sqrt-hann", 512, 256, None),    # the usual 50 % setting of complex-mapping models
    ("sqrt-hann", 320, 160, 1024),
    ("hamming", 512, 128, None),
    ("hamming", 256, 64, 512),
    ("blackman", 768, 128, None),
    ("blackman", 600, 100, 2048),
]


@pytest.mark.parametrize("window,n_fft,hop,fft_size", COLA_SETTINGS)
def test_round_trip_is_exact_for_cola_settings(window, n_fft, hop, fft_size, rng):
    cfg = StftConfig(n_fft=n_fft, hop=hop, window=window, fft_size=fft_size)
    assert is_cola(cfg)
    x = (0.5 * rng.standard_normal(12_345)).astype(np.float32)
    y = istft(stft(x, cfg), cfg, length=len(x))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-5


def test_round_trip_on_real_speech(shared_data):
    import soundfile as sf

    x, sr = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")
    cfg = StftConfig(512, 256, "sqrt-hann")
    assert np.max(np.abs(istft(stft(x, cfg), cfg, len(x)) - x)) < 1e-5


def test_non_cola_setting_is_detected():
    assert not is_cola(StftConfig(512, 400, "hann"))


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman"])
@pytest.mark.parametrize("fft_size", [None, 1024])
def test_stft_matches_scipy(window, fft_size, rng):
    # scipy.signal.stft with boundary zeros pads n_fft/2 on both sides, like center=True, and its
    # default 'spectrum' scaling divides by sum(w); the DFT origin is the frame start in both.
    cfg = StftConfig(512, 128, window, fft_size=fft_size)
    x = rng.standard_normal(5000).astype(np.float32)
    ours = stft(x, cfg)
    _, _, ref = ss.stft(x.astype(np.float64), window=window, nperseg=512, noverlap=384, nfft=cfg.nfft,
                        boundary="zeros", padded=True, detrend=False)
    ref = ref.T * window_array(cfg).sum()
    n = min(len(ours), len(ref))
    assert n >= cfg.frame_count(len(x)) - 1
    assert ours.dtype == np.complex64 and ours.shape[1] == cfg.bins
    np.testing.assert_allclose(ours[:n], ref[:n], atol=1e-4 * np.abs(ref).max())


def test_stft_frames_of_a_slice_equal_the_whole(rng):
    cfg = StftConfig(256, 64)
    x = rng.standard_normal(4000).astype(np.float32)
    whole = stft(x, cfg)
    part = stft_frames(lambda a, b: x[a:b], len(x), 10, 25, cfg)
    np.testing.assert_array_equal(part, whole[10:25])


def test_window_names_and_bad_settings():
    assert set(WINDOWS) == {"hann", "sqrt-hann", "hamming", "blackman"}
    np.testing.assert_allclose(window_array(StftConfig(64, 16, "sqrt-hann")) ** 2,
                               ss.get_window("hann", 64), atol=1e-12)
    with pytest.raises(ValueError, match="unknown window"):
        StftConfig(window="kaiser")
    with pytest.raises(ValueError, match="hop must be between"):
        StftConfig(512, 1024)
    with pytest.raises(ValueError, match="fft_size"):
        StftConfig(512, 128, fft_size=256)


def test_full_scale_sine_reads_zero_dbfs_and_floor_applies():
    sr, f = 16000, 1000.0  # on bin 64 of a 1024-point DFT
    cfg = StftConfig(1024, 256)
    x = np.sin(2 * np.pi * f * np.arange(sr) / sr).astype(np.float32)
    mag = magnitude_db(stft(x, cfg), cfg, floor_db=-80.0)
    assert mag.dtype == np.float32
    mid = mag[len(mag) // 2]
    assert abs(mid[64] - 0.0) < 0.01
    assert mid.min() >= -80.0 - 1e-4
    assert magnitude_db(np.zeros((2, 3), np.complex64), floor_db=-50.0).max() == pytest.approx(-50.0)


def test_real_imag_compression_formula():
    spec = np.array([[4 - 9j, -0.25 + 0.0j, 0 + 1e-3j]], np.complex64)
    c = 0.3
    np.testing.assert_allclose(real_part(spec, c), np.sign(spec.real) * np.abs(spec.real) ** c, rtol=1e-6)
    np.testing.assert_allclose(imag_part(spec, c), np.sign(spec.imag) * np.abs(spec.imag) ** c, rtol=1e-6)
    assert real_part(spec)[0, 0] == pytest.approx(4 ** 0.3)  # c = 0.3 by default
    assert imag_part(spec)[0, 0] == pytest.approx(-(9 ** 0.3))
    np.testing.assert_array_equal(real_part(spec, None), spec.real)
    np.testing.assert_array_equal(phase(spec), np.angle(spec).astype(np.float32))


def test_instantaneous_frequency_deviation_of_an_off_bin_sinusoid():
    sr = 16000
    cfg = StftConfig(1024, 128, "hann")
    bin_hz = sr / cfg.nfft                      # 15.625 Hz
    k = 64
    f = (k + 0.3) * bin_hz                      # 0.3 of a bin above bin 64's centre
    x = np.cos(2 * np.pi * f * np.arange(sr) / sr).astype(np.float32)
    ifd = instantaneous_frequency_deviation(stft(x, cfg), cfg, sr)
    mid = slice(20, -20)
    for kk in (k - 1, k, k + 1):                # every bin near the peak sees the true frequency
        expected = f - kk * bin_hz
        np.testing.assert_allclose(ifd[mid, kk], expected, atol=0.05)
    assert np.all(ifd[0] == 0)


def test_ifd_mask_blanks_quiet_bins():
    sr = 8000
    cfg = StftConfig(256, 64)
    x = np.sin(2 * np.pi * 1000 * np.arange(sr) / sr).astype(np.float32)
    ifd = instantaneous_frequency_deviation(stft(x, cfg), cfg, sr, mask_below_db=40)
    assert np.isnan(ifd[10, 100]) and np.isfinite(ifd[10, 32])


@pytest.mark.parametrize("fft_size", [None, 2048])
@pytest.mark.parametrize("delay", [-200, -17, 0, 33, 300])
def test_group_delay_of_a_shifted_impulse(delay, fft_size):
    sr = 16000
    cfg = StftConfig(1024, 256, "hann", fft_size=fft_size)
    x = np.zeros(8192, np.float32)
    t = 16                                     # frame 16 is centred on sample 16 * 256 = 4096
    x[t * cfg.hop + delay] = 1.0
    gd = group_delay(stft(x, cfg), cfg, sr)
    np.testing.assert_allclose(gd[t, 5:-5], delay / sr * 1000.0, atol=1e-3)


def test_every_registered_view_gives_float32_of_the_spectrogram_shape(rng):
    sr = 16000
    cfg = StftConfig(512, 128)
    spec = stft(rng.standard_normal(4000).astype(np.float32), cfg)
    inp = ViewInput(spec, cfg, sr, partner=spec * 0.5)
    for name in VIEWS:
        out = compute_view(name, inp, mask_floor_dbfs=-80.0)
        assert out.dtype == np.float32 and out.shape == spec.shape, name
    with pytest.raises(ValueError, match="unknown view"):
        compute_view("cepstrum", inp)


@pytest.mark.parametrize("name", ["hann", "hamming", "blackman"])
@pytest.mark.parametrize("n", [1, 2, 255, 512, 1024])
def test_periodic_windows_equal_scipy_get_window(name, n):
    """The STFT windows come from numpy (scipy.signal is not imported at start-up); they are the periodic
    (DFT-even) windows scipy.signal.get_window(name, n, fftbins=True) returns."""
    import scipy.signal

    from workbench.core.views.stft import periodic_window
    np.testing.assert_allclose(periodic_window(name, n), scipy.signal.get_window(name, n, fftbins=True),
                               rtol=0, atol=1e-15)
