"""TorchScript modules scripted in the test, loaded back through torch.jit.load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import ModelError
from workbench_models.torchscript import (TorchScriptSpectralEnhancer, TorchScriptWaveformEnhancer,
                                          load_torchscript)

# Scripting modules here is the point of these tests; torch flags TorchScript as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning")


class Smoother(torch.nn.Module):
    """(1, T) -> (1, T): a 3-tap moving average with learned-looking weights."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([[[0.25, 0.5, 0.25]]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x[:, None, :])[:, 0, :]


class Delayed(torch.nn.Module):
    """(T,) -> (T,): the input delayed by 40 samples (a model with look-ahead compensation to do)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros(40), x[:-40]])


class HalfMask(torch.nn.Module):
    """(1, F, T, 2) complex spectrum -> constant complex mask 0.5 + 0j."""

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        spec = spec.permute(0, 1, 2, 3)   # insists on four axes, like a real spectral model
        mask = torch.zeros_like(spec)
        mask[..., 0] = 0.5
        return mask


def _save(module, path):
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_waveform_module(tmp_path, rng):
    enh = load_torchscript(_save(Smoother(), tmp_path / "smooth.pt"))
    assert isinstance(enh, TorchScriptWaveformEnhancer)
    assert enh.rank == 2 and enh.info.parameters == 3 and enh.info.sample_rate == 16000
    x = rng.normal(0, 0.1, 20000).astype(np.float32)
    expected = np.convolve(x, [0.25, 0.5, 0.25], mode="same")
    np.testing.assert_allclose(enhance_array(enh, x, 16000), expected, atol=1e-6)


def test_rank_one_module_with_card_latency(tmp_path, rng):
    path = _save(Delayed(), tmp_path / "late.pt")
    (tmp_path / "late.pt.toml").write_text('kind = "waveform"\nsample_rate = 8000\nlatency_samples = 40\n')
    enh = load_torchscript(path)
    assert enh.rank == 1 and enh.info.sample_rate == 8000 and enh.info.latency_samples == 0
    x = rng.normal(0, 0.1, 8000).astype(np.float32)
    np.testing.assert_allclose(enhance_array(enh, x, 8000), x, atol=1e-7)   # aligned, tail kept


def test_spectral_module_with_card(tmp_path, rng):
    path = _save(HalfMask(), tmp_path / "mask.pt")
    (tmp_path / "mask.toml").write_text(
        'kind = "spectral"\nsample_rate = 16000\nn_fft = 512\nhop = 256\nwindow = "sqrt-hann"\n'
        'input = "complex"\ninput_layout = "BFTC"\noutput = "mask"\noutput_type = "complex"\n')
    enh = load_torchscript(path)
    assert isinstance(enh, TorchScriptSpectralEnhancer)
    x = rng.normal(0, 0.1, 9000).astype(np.float32)
    np.testing.assert_allclose(enhance_array(enh, x, 16000), 0.5 * x, atol=1e-5)


def test_spectral_module_without_card_is_explained(tmp_path):
    with pytest.raises(ModelError, match="not a waveform-in/waveform-out model"):
        load_torchscript(_save(HalfMask(), tmp_path / "mask.pt"))


def test_broken_archive(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="bad.pt: cannot be loaded as a TorchScript module"):
        load_torchscript(path)
