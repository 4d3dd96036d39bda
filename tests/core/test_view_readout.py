"""The crosshair read-out, Qt-free: the frame/bin under a point and the values every pane draws there,
computed on the exact STFT frame, equal to the core's full-file analysis."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.audio.audio_io import ArraySource
from workbench.core.views.readout import ReadoutPartner, frame_bin_at, read_point, readout_text
from workbench.core.views.registry import DisplaySettings, compute_view
from workbench.core.views.stft import StftConfig, instantaneous_frequency_deviation, magnitude_db, phase, stft


@pytest.fixture(scope="module")
def tone():
    sr = 16000
    t = np.arange(sr * 2) / sr
    rng = np.random.default_rng(3)
    x = (0.4 * np.sin(2 * np.pi * 1000 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    return x, sr


def test_frame_and_bin_nearest_a_point_are_clipped_to_the_recording():
    cfg = StftConfig(n_fft=1024, hop=256)
    sr, total = 16000, 100
    t, k = frame_bin_at(cfg, sr, total, 1.0, 1000.0)
    # the chosen frame's centre and the bin's centre are the nearest ones
    assert abs(cfg.frame_time_s(t, sr) - 1.0) <= cfg.hop / sr / 2 + 1e-9
    assert k == round(1000.0 * cfg.nfft / sr)
    assert frame_bin_at(cfg, sr, total, -5.0, -100.0) == (0, 0)
    assert frame_bin_at(cfg, sr, total, 1e6, 1e6) == (total - 1, cfg.bins - 1)


def test_values_are_the_full_analysis_at_that_frame_and_bin(tone):
    x, sr = tone
    cfg = StftConfig(n_fft=1024, hop=256)
    display = DisplaySettings()
    r = read_point(ArraySource(x, sr), 0, cfg, display, 0.7, 1000.0)
    full = stft(x, cfg)
    t, k = r["frame"], r["bin"]
    assert (t, k) == frame_bin_at(cfg, sr, full.shape[0], 0.7, 1000.0)
    assert r["magnitude_db"] == pytest.approx(float(magnitude_db(full, cfg)[t, k]), abs=1e-3)
    assert r["phase_rad"] == pytest.approx(float(phase(full)[t, k]), abs=1e-3)
    assert r["real_raw"] == pytest.approx(float(full[t, k].real), rel=1e-4, abs=1e-5)
    assert r["imag_raw"] == pytest.approx(float(full[t, k].imag), rel=1e-4, abs=1e-5)
    deviation = instantaneous_frequency_deviation(full, cfg, sr)
    assert r["inst_freq_hz"] == pytest.approx(float(deviation[t, k]), abs=0.5)
    # each pane's value is the registry's, as drawn (compression, masking)
    inp = display.view_input(full[t:t + 1], cfg, sr, previous=full[t - 1:t], frames=np.array([t]))
    for slot, name in display.pane_views().items():
        want = float(compute_view(name, inp, display.mask_floor_dbfs)[0, k])
        assert r["panes"][slot]["view"] == name
        assert r["panes"][slot]["value"] == pytest.approx(want, abs=1e-3)
    assert "magnitude_difference_db" not in r


def test_difference_views_read_the_partner(tone):
    x, sr = tone
    cfg = StftConfig(n_fft=512, hop=128)
    display = DisplaySettings().with_(phase_view="mag_diff")
    half = ArraySource(x * 0.5, sr)
    r = read_point(half, 0, cfg, display, 1.0, 1000.0, ReadoutPartner(ArraySource(x, sr), 0, True))
    # the enhanced side at half the amplitude of the original: -6.02 dB in the loud bin
    assert r["magnitude_difference_db"] == pytest.approx(-6.02, abs=0.05)
    assert r["panes"]["phase"]["value"] == pytest.approx(-6.02, abs=0.05)
    alone = read_point(half, 0, cfg, display, 1.0, 1000.0)
    assert alone["panes"]["phase"]["value"] is None and alone["panes"]["phase"]["text"] == "—"


def test_readout_text_lists_the_panes_in_their_order(tone):
    x, sr = tone
    r = read_point(ArraySource(x, sr), 0, StftConfig(), DisplaySettings(), 0.5, 1000.0)
    text = readout_text(r)
    assert text.startswith(f"t {r['time_s']:.4f} s  f {r['freq_hz']:.1f} Hz  |  ")
    shorts = [r["panes"][slot]["short"] for slot in ("magnitude", "phase", "real", "imag")]
    positions = [text.index(s + " ") for s in shorts]
    assert positions == sorted(positions)
    assert readout_text({}) == ""
