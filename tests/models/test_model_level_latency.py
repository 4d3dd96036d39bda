"""Model files whose output level or delay nobody declared: measured, reported, compensated, never a
clipped file written.

The graphs are built here: a waveform ONNX model that delays its input by 25 samples and scales it by a
gain (1000 reproduces a public enhancer whose authors peak-normalise its raw output afterwards).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import TensorProto, helper, numpy_helper

from workbench.cli import main
from workbench.core.document.recording import Recording
from workbench.core.enhance.enhancer import enhance_array, with_latency
from workbench.core.progress import run_to_end
from workbench.core.enhance.level import level_check
from workbench.core.audio.correlation import estimate_lag
from workbench_models.onnx_models import load_onnx

DELAY = 25


def delayed_scaled_graph(path, gain: float, delay: int = DELAY) -> str:
    """``y[0, n] = gain * x[0, n - delay]`` (zeros before the start), input/output ``(1, T)``."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "T"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, "T"])
    inits = [numpy_helper.from_array(np.array([0, delay, 0, 0], np.int64), "pads"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array(gain, np.float32), "gain")]
    nodes = [helper.make_node("Shape", ["input"], ["shape"]),
             helper.make_node("Slice", ["shape", "one", "two"], ["length"]),
             helper.make_node("Pad", ["input", "pads"], ["padded"]),
             helper.make_node("Slice", ["padded", "zero", "length", "one"], ["delayed"]),
             helper.make_node("Mul", ["delayed", "gain"], ["output"])]
    graph = helper.make_graph(nodes, "delay_scale", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture()
def speech(shared_data):
    audio, sr = sf.read(shared_data / "dns3" / "0016_noisy.wav", dtype="float32")
    assert sr == 16000
    return audio[: 3 * sr]


def test_undeclared_delay_is_measured_and_removed(tmp_path, speech):
    enh = load_onnx(delayed_scaled_graph(tmp_path / "delay.onnx", 1.0))
    assert enh.info.latency_source == "unknown"
    y = enhance_array(enh, speech, 16000)
    lag, peak = estimate_lag(speech, y, 400)
    assert lag == 0 and peak > 0.99
    np.testing.assert_allclose(y, speech, atol=1e-6)
    assert enh.info.latency_source == "measured" and enh.info.latency_samples == DELAY
    assert "25 samples" in enh.info.extra["latency measured"]
    # Without the measurement (the old behaviour) the output lags by the graph's delay.
    raw = enh.process_offline(speech)
    assert estimate_lag(speech, raw, 400)[0] == DELAY


def test_declared_latency_wins_and_override(tmp_path, speech):
    path = delayed_scaled_graph(tmp_path / "delay.onnx", 1.0)
    (tmp_path / "delay.onnx.toml").write_text('kind = "waveform"\nsample_rate = 16000\nlatency_samples = 20\n')
    enh = load_onnx(path)
    assert enh.info.latency_source == "declared"
    y = enhance_array(enh, speech, 16000)
    assert estimate_lag(speech, y, 400)[0] == DELAY - 20  # the card is believed, even when wrong
    (tmp_path / "delay.onnx.toml").write_text('kind = "waveform"\nsample_rate = 16000\n')
    enh = load_onnx(path)
    assert enh.info.latency_source == "unknown"
    set_by_hand = with_latency(enh, 10)
    assert estimate_lag(speech, enhance_array(set_by_hand, speech, 16000), 400)[0] == DELAY - 10
    assert enh.info.latency_source == "unknown"  # the original is untouched by the override


def test_measured_latency_in_provenance(tmp_path, speech):
    enh = load_onnx(delayed_scaled_graph(tmp_path / "delay.onnx", 1.0))
    rec = Recording.from_array(speech, 16000, name="speech")
    (v,) = run_to_end(rec.enhance(enh))
    settings = v.provenance.model_settings
    assert settings["latency_samples"] == DELAY and "cross-correlation" in settings["latency_measured"]
    assert v.provenance.extra["level"]["implausible"] is False


def test_level_check_figures():
    x = np.sin(np.linspace(0, 200, 16000)).astype(np.float32) * 0.1
    loud = level_check(x, 1000 * x)
    assert loud.implausible and abs(loud.gain_db - 60.0) < 0.01
    assert "+60.0 dB louder" in loud.describe()
    assert not level_check(x, 0.5 * x).implausible


def test_loud_model_never_writes_a_clipped_file(tmp_path, speech, capsys, monkeypatch):
    model = delayed_scaled_graph(tmp_path / "loud.onnx", 1000.0)
    src = tmp_path / "noisy.wav"
    sf.write(src, speech, 16000, subtype="PCM_16")
    out = tmp_path / "out.wav"
    assert main(["enhance", str(src), "-m", model, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "would be clipped in PCM_16; not written" in err and "--subtype FLOAT" in err and "--normalize" in err
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]  # no temporary or scratch file left
    monkeypatch.setenv("WORKBENCH_ISOLATE_MODELS", "0")  # the worker process was covered above; save its start-up
    # Float keeps every sample; the implausible level is one warning line with the measured gain.
    assert main(["enhance", str(src), "-m", model, "-o", str(out), "--quiet", "--subtype", "FLOAT"]) == 0
    err = capsys.readouterr().err
    line = next(t for t in err.splitlines() if "implausible" in t)
    assert "gain +60.0 dB" in line
    y, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(y, 1000 * sf.read(src, dtype="float32")[0], rtol=1e-5, atol=1e-3)
    # Normalised to the input's peak: a 16-bit file with no clipping, the scaling in the provenance.
    out2 = tmp_path / "out2.wav"
    assert main(["enhance", str(src), "-m", model, "-o", str(out2), "--quiet", "--normalize", "peak"]) == 0
    y2, _ = sf.read(out2, dtype="float32")
    x, _ = sf.read(src, dtype="float32")
    assert sf.info(out2).subtype == "PCM_16"
    assert abs(np.max(np.abs(y2)) - np.max(np.abs(x))) < 1e-3
    assert estimate_lag(x, y2, 400)[0] == 0
    with sf.SoundFile(out2) as f:
        text = json.dumps(json.loads(f.copy_metadata()["comment"]))
    assert '"normalize": "peak"' in text and "normalize_gain_db" in text


def test_undeclared_delay_is_measured_on_each_file_of_a_batch(tmp_path, speech):
    """A measurement belongs to the file it was made on: a silent first file (nothing to measure, 0 assumed)
    must not set the delay removed from the files after it, whichever worker runs which file first."""
    model = delayed_scaled_graph(tmp_path / "delay.onnx", 1.0)
    sf.write(tmp_path / "a_silence.wav", np.zeros(16000, np.float32), 16000, subtype="FLOAT")
    sf.write(tmp_path / "b_speech.wav", speech, 16000, subtype="FLOAT")
    inputs = [str(tmp_path / "a_silence.wav"), str(tmp_path / "b_speech.wav")]
    assert main(["enhance", *inputs, "-m", model, "-o", str(tmp_path / "out"), "--quiet"]) == 0
    written = tmp_path / "out" / "b_speech.onnx-delay.wav"
    y, _ = sf.read(written, dtype="float32")
    assert estimate_lag(speech, y, 400)[0] == 0
    np.testing.assert_allclose(y, speech, atol=1e-6)
    assert "25 samples" in json.loads(sf.SoundFile(str(written)).comment)["model_settings"]["latency_measured"]
    assert main(["enhance", *inputs, "-m", model, "-o", str(tmp_path / "pool"), "--workers", "2", "--quiet"]) == 0
    for name in ("a_silence", "b_speech"):
        a, b = (sf.read(tmp_path / d / f"{name}.onnx-delay.wav", dtype="float32")[0] for d in ("out", "pool"))
        assert np.array_equal(a, b)
