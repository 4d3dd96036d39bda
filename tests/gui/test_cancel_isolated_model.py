"""Cancel in the window stops a model file whose call never returns (an endless ONNX Loop).

On the old code the model ran in the worker thread, where Cancel is only seen between the engine's
yields, so the job never finished; model files now run in a worker process that Cancel terminates.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import soundfile as sf

from workbench.core.document.recording import Recording
from workbench.gui.model_panel import ModelPanel

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _endless_loop_onnx(path):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["", "true", "x"], ["y"], body=body)], "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T"])],
        initializer=[helper.make_tensor("true", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_cancel_stops_a_model_call_that_never_returns(qtbot, tmp_path):
    wav = tmp_path / "in.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    rec = Recording(wav)
    panel = ModelPanel(lambda: rec, lambda: None, show_dialogs=False)
    qtbot.addWidget(panel)
    model = _endless_loop_onnx(tmp_path / "loop.onnx")
    with qtbot.waitSignal(panel.modelLoaded, timeout=120000):
        panel.load_path(model)
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=10000)
    with qtbot.waitSignal(panel.runStarted, timeout=10000):
        assert panel.start()
    with qtbot.waitSignal(panel.runFinished, timeout=15000) as finished:
        panel.cancel()
    assert finished.args == ["cancelled"]
    assert [v.name for v in rec.versions] == ["original"]
    panel.close()
