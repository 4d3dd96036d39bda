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
from workbench.core.workflows.export import file_tag
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, enhance_outputs
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


# ------------------------------------------------------------------ every output measured as itself


def _pair(folder: Path, rng) -> tuple[np.ndarray, np.ndarray]:
    """``a_noisy.wav`` / ``a_clean.wav`` at 16 kHz in ``folder``: a low-passed signal plus white noise."""
    clean = np.convolve(rng.standard_normal(16000), np.ones(8) / 8, mode="same").astype(np.float32) * 0.3
    noisy = (clean + 0.05 * rng.standard_normal(16000)).astype(np.float32)
    sf.write(folder / "a_clean.wav", clean, 16000, subtype="FLOAT")
    sf.write(folder / "a_noisy.wav", noisy, 16000, subtype="FLOAT")
    return noisy, clean


def _expected_si_sdr(enh, noisy, clean) -> dict[str, float]:
    from workbench.core.measure.scoring import score_signal

    outs = run_to_end(enhance_outputs(enh, noisy, 16000))
    return {name: score_signal(a, 16000, clean, 16000, reference_free=False, metrics=["si_sdr"]).metrics["si_sdr"].value
            for name, a in outs.items()}


def test_evaluate_scores_each_output_of_a_two_output_model(tmp_path, rng):
    from workbench.core.workflows.evaluation import evaluate

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    noisy, clean = _pair(pairs, rng)
    model = torchscript_model(tmp_path)
    enh = load_enhancer(model)
    expected = _expected_si_sdr(enh, noisy, clean)
    assert abs(expected["speech"] - expected["noise"]) > 1.0  # the outputs differ: each needs its own row
    result = run_to_end(evaluate(pairs, [str(model)], metrics=["si_sdr"], reference_free=False))
    ident = enh.info.id
    assert result.systems == ["noisy", f"{ident}.speech", f"{ident}.noise"]
    for output in ("speech", "noise"):
        assert result.value("a", f"{ident}.{output}", "si_sdr") == pytest.approx(expected[output], abs=1e-3)


def test_batch_evaluate_scores_each_output_of_a_two_output_model(tmp_path, rng, capsys):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    noisy, clean = _pair(pairs, rng)
    model = torchscript_model(tmp_path)
    enh = load_enhancer(model)
    expected = _expected_si_sdr(enh, noisy, clean)
    csv_path = tmp_path / "scores.csv"
    assert main(["batch", "evaluate", str(pairs), "-m", str(model), "--csv", str(csv_path), "--no-reference-free",
                 "--metrics", "si_sdr", "--quiet"]) == 0
    from workbench.core.workflows.evaluation import read_csv

    rows = {r["model"]: r for r in read_csv(csv_path) if r["metric"] == "si_sdr"}
    for output in ("speech", "noise"):
        assert float(rows[f"{enh.info.id}.{output}"]["value"]) == pytest.approx(expected[output], abs=1e-3)


def test_phase_lab_measures_each_output_of_a_two_output_model(tmp_path, rng, capsys):
    noisy, clean = _pair(tmp_path, rng)
    model = torchscript_model(tmp_path)
    enh = load_enhancer(model)
    expected = _expected_si_sdr(enh, noisy, clean)
    out = tmp_path / "lab"
    assert main(["phase-lab", str(tmp_path / "a_noisy.wav"), "--clean", str(tmp_path / "a_clean.wav"),
                 "-m", str(model), "-o", str(out), "--csv", str(tmp_path / "lab.csv"), "--gla-iters", "2",
                 "--metrics", "si_sdr"]) == 0
    tag = file_tag(enh.info.id)
    for output in ("speech", "noise"):
        written, _ = sf.read(out / f"a_noisy.{tag}.{output}.wav", dtype="float32")
        assert written.shape == noisy.shape
    import csv

    with open(tmp_path / "lab.csv", newline="", encoding="utf-8") as fh:
        rows = {r["version"]: r for r in csv.DictReader(fh) if r["metric"] == "si_sdr"}
    for output in ("speech", "noise"):
        assert float(rows[f"{tag}.{output}"]["value"]) == pytest.approx(expected[output], abs=1e-3)


class LookAheadNoise(Enhancer):
    """Two outputs at 8 kHz: ``speech`` = the input (causal), ``noise`` = the input 40 samples early (it
    looks ahead), so only the second output shows the look-ahead."""

    def __init__(self):
        self.info = EnhancerInfo(id="look-ahead-noise", name="look-ahead noise", description="toy",
                                 sample_rate=8000, causal=True, latency_samples=0, processing="offline",
                                 block_samples=1, outputs=("speech", "noise"))

    def process_offline(self, audio):
        early = np.concatenate([audio[40:], np.zeros(40, audio.dtype)])
        return np.stack([audio, early]).astype(np.float32)


def test_probe_examines_every_output_of_a_two_output_model():
    from workbench.core.workflows import probes as P

    enh = LookAheadNoise()
    x = P.probe_signal(8000, 2.0)
    result = P.probe_causality(enh, x, perturb_at_s=1.0)
    assert not result.causal and result.lookahead_samples >= 40
    assert P.residual_lags(enh, x) == {"speech": 0, "noise": -40}
    report = run_to_end(P.probe(enh, audio=x, sample_rate=8000, rtf_runs=1))
    assert not report.causal
    assert "residual lag per output: speech 0, noise -40" in report.notes
