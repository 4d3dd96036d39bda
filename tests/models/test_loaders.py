"""load_model_path: dispatch by suffix and content, and clear refusals."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import ModelError
from workbench_models.dtln import DtlnEnhancer
from workbench_models.gtcrn import GtcrnEnhancer
from workbench_models.loaders import load_model_path
from workbench_models.onnx_models import OnnxSpectralEnhancer
from workbench_models.torchscript import TorchScriptWaveformEnhancer
from workbench_assets import gtcrn_checkpoint_path

# Scripting modules here is the point of these tests; torch flags TorchScript as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning")


class _Marker:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_gtcrn_checkpoints_by_keys(shared_data, tmp_path):
    enh = load_model_path(gtcrn_checkpoint_path("vctk"))
    assert isinstance(enh, GtcrnEnhancer) and enh.info.id == "gtcrn:model_trained_on_vctk"
    sd = torch.load(gtcrn_checkpoint_path("dns3"), map_location="cpu",
                    weights_only=True)["model"]
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "wrapped.ckpt")
    torch.save(sd, tmp_path / "bare.pth")
    for name in ("wrapped.ckpt", "bare.pth"):
        assert isinstance(load_model_path(tmp_path / name), GtcrnEnhancer)


def test_onnx_and_folder(shared_data, dtln_folder):
    assert isinstance(load_model_path(shared_data / "models/gtcrn/gtcrn_simple.onnx"), OnnxSpectralEnhancer)
    dtln = load_model_path(dtln_folder)
    assert isinstance(dtln, DtlnEnhancer) and dtln.info.id == "dtln"


@pytest.mark.parametrize("stage", ["model_1.onnx", "model_2.onnx"])
def test_lone_dtln_stage_points_to_folder(dtln_folder, stage):
    with pytest.raises(ModelError, match="load the folder"):
        load_model_path(dtln_folder / stage)


def test_torchscript_archive_detected(tmp_path, rng):
    class Gain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x
    torch.jit.save(torch.jit.script(Gain()), str(tmp_path / "gain.pth"))
    enh = load_model_path(tmp_path / "gain.pth")
    assert isinstance(enh, TorchScriptWaveformEnhancer)
    x = rng.normal(0, 0.1, 3000).astype(np.float32)
    np.testing.assert_allclose(enhance_array(enh, x, 16000), 0.5 * x, atol=1e-7)


def test_folder_with_one_model_and_card(tmp_path):
    class Gain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x
    torch.jit.save(torch.jit.script(Gain()), str(tmp_path / "gain.pt"))
    (tmp_path / "gain.pt.toml").write_text('kind = "waveform"\nsample_rate = 24000\n')
    assert load_model_path(tmp_path).info.sample_rate == 24000


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_code_executing_pickle_is_refused_and_not_run(tmp_path, how):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    payload = {"model": _Marker(marker)}
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    assert not marker.exists()
    with pytest.raises(ModelError) as err:
        load_model_path(path)
    assert "refused: this checkpoint needs to execute code to load" in str(err.value)
    assert "evil.pt" in str(err.value)
    assert not marker.exists()


def test_unknown_state_dict(tmp_path):
    torch.save({"model": {"layer.weight": torch.zeros(4, 4)}}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match=r"other.pt: a state dict with 1 tensors .*layer.weight.*GTCRN"):
        load_model_path(tmp_path / "other.pt")


def test_checkpoint_that_is_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ModelError, match="list.pt: a PyTorch file holding a list"):
        load_model_path(tmp_path / "list.pt")


@pytest.mark.parametrize("name,content,message", [
    ("noise.tar", b"\x80\x02garbage", "cannot be read as a PyTorch checkpoint"),
    ("empty.onnx", b"", "the file is empty"),
    ("model.h5", b"HDF", "unsupported model file type '.h5'"),
    ("broken.onnx", b"\x08\x07junk" * 9, "onnxruntime cannot load"),
])
def test_broken_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelError, match=message):
        load_model_path(tmp_path / name)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        load_model_path(tmp_path / "nothing.onnx")
    with pytest.raises(ModelError, match="no model files"):
        load_model_path(tmp_path)


@pytest.mark.parametrize("content,kind", [
    (b"this is not a model\n", "a text file starting 'this is not a model'"),   # was "(pop from empty list)"
    (b"hello\n", "a text file starting 'hello'"),                               # was "(101)"
    (bytes(range(7, 200)), "unrecognised binary data"),
    (b"PK\x03\x04junk", "unrecognised binary data"),                            # was a miniz error
])
def test_a_fake_pt_says_what_is_wrong_in_user_terms(tmp_path, content, kind):
    """A fake .pt reported the unpickler's internals ("pop from empty list")."""
    path = tmp_path / "fake.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError) as err:
        load_model_path(path)
    text = str(err.value)
    assert text.startswith(f"{path}: not a PyTorch checkpoint or TorchScript archive")
    assert kind in text and "pop from empty list" not in text


def test_a_zip_without_a_checkpoint_inside(tmp_path):
    import zipfile

    path = tmp_path / "weights.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not a model")
    with pytest.raises(ModelError, match="not a PyTorch checkpoint or TorchScript archive .a zip archive without"):
        load_model_path(path)
