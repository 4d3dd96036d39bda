"""GTCRN's streaming step in onnxruntime equals its PyTorch step, block size does not matter, the export is
cached by the weights, and a stream falls back to PyTorch (saying why) where the export cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench_models import gtcrn as g
from workbench_models.gtcrn_onnx import GtcrnOnnxStream, _cache_folder, onnx_session


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def speech(shared_data):
    x, sr = sf.read(sorted((shared_data / "dns3").glob("*_noisy.wav"))[0], dtype="float32")
    assert sr == 16000
    return (x if x.ndim == 1 else x[:, 0])[:int(1.5 * sr)]


def run(stream, x, block):
    n = len(x) // block * block
    return np.concatenate([stream.process(x[i:i + block]) for i in range(0, n, block)])


def test_the_onnx_step_equals_the_pytorch_step_at_any_block(cache, speech):
    torch.manual_seed(0)
    net = g.GTCRN()
    for p in net.parameters():  # random weights: a real checkpoint's weights would hide no path
        p.data.normal_(0, 0.1)
    enh = g.GtcrnEnhancer(net.eval(), processing="streaming")
    stream = enh.new_stream()
    assert isinstance(stream, GtcrnOnnxStream) and enh.stream_fallback is None
    want = run(g._GtcrnStream(enh), speech, 256)
    got = run(stream, speech, 256)
    assert np.max(np.abs(want)) > 1e-3
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.max(np.abs(want)))
    longer = run(enh.new_stream(), speech, 1024)
    np.testing.assert_allclose(longer, got[:len(longer)], rtol=0, atol=1e-6)
    # the graph is kept by the weights' hash: a second network with the same weights reads it back
    files = sorted(p.name for p in _cache_folder().iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".onnx")
    session, shapes = onnx_session(net, 257)
    assert sorted(p.name for p in _cache_folder().iterdir()) == files and len(shapes) == len(session.get_inputs()) - 1


def test_the_built_in_checkpoint_streams_through_onnxruntime_as_through_pytorch(cache, speech):
    from workbench_assets import gtcrn_checkpoint_path

    enh = g.GtcrnEnhancer.from_checkpoint(gtcrn_checkpoint_path("dns3"), processing="streaming")
    want = run(g._GtcrnStream(enh), speech, 512)
    got = run(enh.new_stream(), speech, 512)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_without_onnxruntime_a_stream_runs_in_pytorch_and_says_why(cache, speech, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ort(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    enh = g.GtcrnEnhancer(g.GTCRN().eval(), processing="streaming")
    stream = enh.new_stream()
    assert isinstance(stream, g._GtcrnStream)
    assert "onnxruntime" in enh.stream_fallback
    assert run(stream, speech, 256).shape == (len(speech) // 256 * 256,)
