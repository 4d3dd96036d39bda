"""Models with several outputs: a two-output TorchScript module and a two-output ONNX graph, built here,
give two versions through Recording.enhance and two files from ``workbench enhance``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from onnx import helper

from workbench.cli import main
from workbench.core.enhance.enhancer import enhance_outputs
from workbench.core.progress import run_to_end
from workbench.core.document.recording import Recording
from workbench.core.enhance.registry import load_enhancer

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning")


class SpeechAndNoise(torch.nn.Module):
    """(1, T) -> (2, T): a 3-tap smoother as "speech" and what it removed as "noise"."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([[[0.25, 0.5, 0.25]]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        speech = self.conv(x[:, None, :])[:, 0, :]
        return torch.cat([speech, x - speech], dim=0)


def torchscript_model(folder: Path, card: bool = True) -> Path:
    path = folder / "split.pt"
    torch.jit.save(torch.jit.script(SpeechAndNoise()), str(path))
    if card:
        (folder / "split.pt.toml").write_text('kind = "waveform"\nsample_rate = 16000\noutputs = ["speech", "noise"]\n')
    return path


def onnx_model(folder: Path) -> Path:
    """(1, T) -> (2, T): 0.75 x as "speech" and 0.25 x as "noise", concatenated on the first axis."""
    nodes = [helper.make_node("Mul", ["x", "a"], ["s"]), helper.make_node("Mul", ["x", "b"], ["n"]),
             helper.make_node("Concat", ["s", "n"], ["y"], axis=0)]
    graph = helper.make_graph(
        nodes, "split", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, "T"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, "T"])],
        initializer=[helper.make_tensor("a", onnx.TensorProto.FLOAT, [], [0.75]),
                     helper.make_tensor("b", onnx.TensorProto.FLOAT, [], [0.25])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path = folder / "split.onnx"
    onnx.save(model, str(path))
    (folder / "split.onnx.toml").write_text('kind = "waveform"\nsample_rate = 16000\noutputs = ["speech", "noise"]\n')
    return path


@pytest.fixture()
def noisy(tmp_path, rng):
    x = (0.1 * rng.standard_normal((16000, 2))).astype(np.float32)
    path = tmp_path / "in.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    return path, x


def test_torchscript_two_outputs_become_two_versions(tmp_path, noisy):
    enh = load_enhancer(torchscript_model(tmp_path))
    assert enh.info.outputs == ("speech", "noise")
    path, x = noisy
    rec = Recording(path)
    versions = run_to_end(rec.enhance(enh))
    assert [v.name for v in versions] == [f"{enh.info.id}.speech", f"{enh.info.id}.noise"]
    speech, noise = (v.source.read_all() for v in versions)
    np.testing.assert_allclose(speech + noise, x, atol=1e-6)  # the two outputs partition the input
    expected = np.stack([np.convolve(x[:, c], [0.25, 0.5, 0.25], mode="same") for c in range(2)], axis=1)
    np.testing.assert_allclose(speech, expected, atol=1e-6)
    assert versions[1].provenance.output == "noise" and versions[1].provenance.parent == "original"


def test_torchscript_without_card_names_outputs_by_position(tmp_path):
    enh = load_enhancer(torchscript_model(tmp_path, card=False))
    assert enh.info.outputs == ("output1", "output2")


def test_onnx_two_outputs_through_the_engine(tmp_path, noisy):
    enh = load_enhancer(onnx_model(tmp_path))
    assert enh.info.outputs == ("speech", "noise")
    path, x = noisy
    out = run_to_end(enhance_outputs(enh, x, 16000))
    np.testing.assert_allclose(out["speech"], 0.75 * x, atol=1e-6)
    np.testing.assert_allclose(out["noise"], 0.25 * x, atol=1e-6)


def test_cli_writes_one_file_per_output(tmp_path, noisy, capsys):
    model = onnx_model(tmp_path)
    path, x = noisy
    out = tmp_path / "out"
    out.mkdir()
    assert main(["enhance", str(path), "-m", str(model), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["in.onnx-split.noise.wav", "in.onnx-split.speech.wav"]
    speech, _ = sf.read(out / "in.onnx-split.speech.wav", dtype="float32")
    np.testing.assert_allclose(speech, 0.75 * x, atol=1e-6)
    # one input, -o a file: <stem>.<output><suffix>
    assert main(["enhance", str(path), "-m", str(torchscript_model(tmp_path)), "-o", str(tmp_path / "res.wav")]) == 0
    assert (tmp_path / "res.speech.wav").exists() and (tmp_path / "res.noise.wav").exists()
