"""Generic ONNX loading: the GTCRN streaming export against the authors' output, and small generated graphs.

The generated graphs are built with ``onnx.helper``; each is one or two standard operators (Mul, Add,
Identity, Div), so the expected output is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import ModelError
from workbench.core.views.stft import StftConfig, istft, stft
from workbench_models.onnx_models import (ModelCard, OnnxBlockStreamEnhancer, OnnxSpectralEnhancer,
                                          OnnxWaveformEnhancer, load_onnx, pair_states, Signature, TensorSpec)


# ---------------------------------------------------------------------------------------------------------
# Small graphs built with onnx.helper
# ---------------------------------------------------------------------------------------------------------

def _node(op: str, inputs: list[str], outputs: list[str]) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs)


def write_onnx(path: Path, nodes: list[onnx.NodeProto], inputs: list[tuple[str, list]],
               outputs: list[tuple[str, list]], constants: dict[str, float] | None = None) -> Path:
    """Write a float32 graph; string dims are dynamic axes, ``constants`` become scalar initializers."""
    def value_info(name, shape):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes, "g", [value_info(n, s) for n, s in inputs], [value_info(n, s) for n, s in outputs],
        initializer=[helper.make_tensor(k, onnx.TensorProto.FLOAT, [], [v]) for k, v in (constants or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# ---------------------------------------------------------------------------------------------------------
# GTCRN streaming export (real model, authors' reference output)
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gtcrn_stream(shared_data):
    return load_onnx(shared_data / "models/gtcrn/gtcrn_simple.onnx")


def test_gtcrn_simple_recognised_without_card(gtcrn_stream):
    info = gtcrn_stream.info
    assert isinstance(gtcrn_stream, OnnxSpectralEnhancer)
    assert info.processing == "streaming" and info.sample_rate == 16000 and info.causal
    assert info.block_samples == 256
    # Frame-by-frame 512/256 framing: a hop becomes final once the frame that ends a window later is in.
    assert info.latency_samples == 512 - 256
    assert "conv_cache->conv_cache_out" in info.extra["path"]


def test_gtcrn_simple_matches_authors_stream_output(gtcrn_stream, shared_data):
    x, sr = sf.read(shared_data / "models/gtcrn/stream_mix.wav", dtype="float32")
    ref, _ = sf.read(shared_data / "models/gtcrn/stream_enh_authors.wav", dtype="float32")
    y = enhance_array(gtcrn_stream, x, sr)
    assert y.shape == x.shape
    # The carried clips are the first 4 s of the authors' files: our last frame (the model's latency
    # plus one window) is made from zeros past the cut, theirs from the speech that followed.
    n = min(len(y), len(ref)) - 512
    corr = np.corrcoef(y[:n], ref[:n])[0, 1]
    assert corr > 0.9999, corr
    lags = np.arange(-64, 65)
    scores = [np.dot(np.roll(y[:n], k), ref[:n]) for k in lags]
    assert lags[int(np.argmax(scores))] == 0


def test_gtcrn_simple_chunk_seams_are_exact(gtcrn_stream, shared_data):
    x, sr = sf.read(shared_data / "dns3/0016_noisy.wav", dtype="float32")
    a = enhance_array(gtcrn_stream, x, sr, block_s=0.1)
    b = enhance_array(gtcrn_stream, x, sr, block_s=2.0)
    assert np.max(np.abs(a - b)) < 1e-4


def test_gtcrn_simple_at_another_rate_stays_aligned(gtcrn_stream, shared_data):
    """48 kHz input is resampled to 16 kHz and back; the output stays sample-aligned with the input."""
    import soxr
    x, sr = sf.read(shared_data / "dns3/0072_noisy.wav", dtype="float32")
    x48 = soxr.resample(x, sr, 48000).astype(np.float32)
    y48 = enhance_array(gtcrn_stream, x48, 48000)
    y16 = enhance_array(gtcrn_stream, x, sr)
    assert len(y48) == len(x48)
    back = soxr.resample(y48, 48000, sr)[:len(y16)]
    lags = np.arange(-20, 21)
    scores = [np.dot(np.roll(back, k), y16) for k in lags]
    assert lags[int(np.argmax(scores))] == 0
    assert np.corrcoef(back, y16)[0, 1] > 0.98


# ---------------------------------------------------------------------------------------------------------
# Generated graphs
# ---------------------------------------------------------------------------------------------------------

def test_waveform_graph_runs_offline(tmp_path, rng):
    path = write_onnx(tmp_path / "half.onnx", [_node("Mul", ["audio", "k"], ["enhanced"])],
                      [("audio", [1, "T"])], [("enhanced", [1, "T"])], {"k": 0.5})
    enh = load_onnx(path)
    assert isinstance(enh, OnnxWaveformEnhancer)
    assert enh.info.sample_rate == 16000 and "no model card" in enh.info.extra["note"]
    x = rng.normal(0, 0.1, 40000).astype(np.float32)
    np.testing.assert_allclose(enhance_array(enh, x, 16000), 0.5 * x, atol=1e-7)


def test_waveform_graph_rate_from_card(tmp_path, rng):
    path = write_onnx(tmp_path / "half.onnx", [_node("Mul", ["audio", "k"], ["enhanced"])],
                      [("audio", ["T"])], [("enhanced", ["T"])], {"k": 0.5})
    (tmp_path / "half.onnx.toml").write_text('kind = "waveform"\nsample_rate = 8000\nname = "Half"\n')
    enh = load_onnx(path)
    assert enh.info.sample_rate == 8000 and enh.info.name == "Half"


def test_streaming_waveform_graph_feeds_state_back(tmp_path, rng):
    """y_k = x_k + state, state_out = x_k: each block adds the previous one (a comb filter)."""
    block = 160
    path = write_onnx(tmp_path / "comb.onnx",
                      [_node("Add", ["x", "h_in"], ["y"]), _node("Identity", ["x"], ["h_out"])],
                      [("x", [1, block]), ("h_in", [1, block])], [("y", [1, block]), ("h_out", [1, block])])
    enh = load_onnx(path)
    assert isinstance(enh, OnnxBlockStreamEnhancer)
    assert enh.info.block_samples == block and enh.info.processing == "streaming"
    x = rng.normal(0, 0.1, 16000).astype(np.float32)
    expected = x.copy()
    expected[block:] += x[:-block]
    for block_s in (0.01, 0.5):
        np.testing.assert_allclose(enhance_array(enh, x, 16000, block_s=block_s), expected, atol=1e-6)


def test_spectral_streaming_graph_with_card_is_aligned(tmp_path, rng):
    """Y_t = 0.5 X_t + 0.25 X_{t-1} through a state; the engine output equals the offline reference."""
    path = write_onnx(tmp_path / "spec.onnx",
                      [_node("Mul", ["mix", "a"], ["m1"]), _node("Mul", ["conv_cache", "b"], ["m2"]),
                       _node("Add", ["m1", "m2"], ["enh"]), _node("Identity", ["mix"], ["conv_cache_out"])],
                      [("mix", [1, 257, 1, 2]), ("conv_cache", [1, 257, 1, 2])],
                      [("enh", [1, 257, 1, 2]), ("conv_cache_out", [1, 257, 1, 2])], {"a": 0.5, "b": 0.25})
    (tmp_path / "spec.toml").write_text(
        'kind = "spectral"\nsample_rate = 16000\nstreaming = true\nn_fft = 512\nhop = 256\n'
        'window = "sqrt-hann"\ninput = "complex"\ninput_layout = "BFTC"\noutput = "spectrum"\n'
        'output_type = "complex"\ncausal = true\n')
    enh = load_onnx(path)
    assert enh.info.latency_samples == 256
    x = rng.normal(0, 0.1, 16000).astype(np.float32)
    cfg = StftConfig(512, 256, "sqrt-hann", center=True)
    spec = stft(x, cfg).astype(np.complex128)
    want = 0.5 * spec
    want[1:] += 0.25 * spec[:-1]
    expected = istft(want, cfg, length=len(x))
    got = enhance_array(enh, x, 16000, block_s=0.3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_spectral_whole_graph_magnitude_mask(tmp_path, rng):
    """A magnitude-in, magnitude-mask-out graph (layout B,T,F) with a constant 0.5 mask halves the signal."""
    path = write_onnx(tmp_path / "mag.onnx", [_node("Mul", ["mag", "k"], ["tmp"]),
                                             _node("Div", ["tmp", "mag"], ["mask"])],
                      [("mag", [1, "T", 257])], [("mask", [1, "T", 257])], {"k": 0.5})
    (tmp_path / "mag.card.json").write_text(
        '{"kind": "spectral", "sample_rate": 16000, "n_fft": 512, "hop": 128, "window": "hann", '
        '"input": "magnitude", "input_layout": "BTF", "output": "mask", "output_type": "magnitude"}')
    enh = load_onnx(path)
    assert enh.info.processing == "offline" and enh.info.family == "magnitude-mask"
    x = rng.normal(0, 0.1, 12345).astype(np.float32) + 0.01
    np.testing.assert_allclose(enhance_array(enh, x, 16000), 0.5 * x, atol=1e-5)


def test_spectral_graph_without_card_is_explained(tmp_path):
    path = write_onnx(tmp_path / "spec.onnx", [_node("Identity", ["spec"], ["out"])],
                      [("spec", [1, 257, "T", 2])], [("out", [1, 257, "T", 2])])
    with pytest.raises(ModelError) as err:
        load_onnx(path)
    msg = str(err.value)
    assert "spec.onnx" in msg and "spec[1,257,?,2]" in msg and "model card" in msg


def test_bad_card_is_reported(tmp_path):
    path = write_onnx(tmp_path / "half.onnx", [_node("Mul", ["audio", "k"], ["enhanced"])],
                      [("audio", [1, "T"])], [("enhanced", [1, "T"])], {"k": 0.5})
    (tmp_path / "half.toml").write_text('kind = "spectral"\ninput = "polar"\nhopp = 3\n')
    with pytest.raises(ModelError, match="half.toml: unknown field"):
        load_onnx(path)
    (tmp_path / "half.toml").write_text('kind = "spectral"\ninput = "polar"\n')
    with pytest.raises(ModelError, match="input must be 'complex' or 'magnitude'"):
        load_onnx(path)


def test_state_pairing_rules():
    def spec(name, shape=(1, 4)):
        return TensorSpec(name, shape, "tensor(float)")
    sig = Signature((spec("x"), spec("h_in"), spec("cache"), spec("s", (2, 3))),
                    (spec("y"), spec("cache_out"), spec("h_out"), spec("whatever", (2, 3))))
    pairs = {i.name: o.name for i, o in pair_states(sig, "x", "y")}
    assert pairs == {"h_in": "h_out", "cache": "cache_out", "s": "whatever"}
    bad = Signature((spec("x"), spec("h_in")), (spec("y"), spec("z", (9,))))
    with pytest.raises(ModelError, match="h_in"):
        pair_states(bad, "x", "y")


def test_garbage_onnx_file(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x00\x01not a model" * 20)
    with pytest.raises(ModelError, match="broken.onnx: onnxruntime cannot load"):
        load_onnx(path)


def test_card_requires_known_values(tmp_path):
    with pytest.raises(ModelError, match="window"):
        ModelCard.from_dict({"kind": "spectral", "window": "kaiser"}, tmp_path / "x.toml")
