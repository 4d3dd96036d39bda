"""Hostile model files hang, bomb or lie; none of it reaches the user.

On the old code: an ONNX graph with an endless Loop made ``enhance``/``probe`` ignore Ctrl-C; a card with
``n_fft = 50000000`` hung at load and ``sample_rate = 1`` gave near-silence; complex TorchScript output
became an all-zero file; card fields of the wrong type showed Python internals; a TorchScript error
printed 19 lines; a ``.ts`` TorchScript file was an "unsupported model file type"; a zip bomb was
inflated and an opcode flood scanned for half a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from functools import partial

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.cli import main
from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import Cancelled, ModelError
from workbench.core.enhance.isolated import IsolatedEnhancer
from workbench.core.enhance.registry import load_enhancer
from workbench_models.loaders import load_model_path
from workbench_models.onnx_models import ModelCard

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning")

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

# What the child process of an isolated model loads its file with (as the registry passes it).
UNISOLATED = partial(load_enhancer, isolate=False)


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def endless_loop_onnx(path):
    """A waveform graph ``y = Loop(x)`` whose loop condition is always true and has no trip count."""
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
    return _save(graph, path)


def gain_onnx(path, gain=0.5):
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "g"], ["y"])], "gain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T"])],
        initializer=[helper.make_tensor("g", TensorProto.FLOAT, [], [gain])])
    return _save(graph, path)


def failing_onnx(path):
    """Reshapes ``(1, T)`` to ``(1, T + 1)``: a waveform graph by its signature that onnxruntime
    fails to run on any input."""
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Add", ["s", "one"], ["shape"]),
         helper.make_node("Reshape", ["x", "shape"], ["y"])], "fails",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T"])],
        initializer=[helper.make_tensor("one", TensorProto.INT64, [2], [0, 1])])
    return _save(graph, path)


@pytest.fixture()
def wav(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    return path


def _children(pid: int) -> list[tuple[int, int]]:
    """(pid, CPU ticks) of the direct children of ``pid`` (Linux /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append((int(d), int(fields[11]) + int(fields[12])))
    return out


# ------------------------------------------------------------------------------------ item 7: hangs
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to see the worker process")
def test_ctrl_c_stops_enhance_on_an_endless_onnx_loop(tmp_path, wav):
    model = endless_loop_onnx(tmp_path / "loop.onnx")
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "enhance", str(wav), "-m", str(model), "-o",
                             str(tmp_path / "out.wav"), "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        busy = []
        while time.monotonic() < deadline and not busy:  # until the worker is spinning inside the Loop
            busy = [pid for pid, ticks in _children(proc.pid) if ticks > 50]
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        assert busy, "the model never started"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=10)
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130 and stopped_after < 5, (rc, stopped_after)
    assert proc.stderr.read().strip().splitlines() == ["error: interrupted"]
    time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{pid}") and "State:\tZ" not in open(f"/proc/{pid}/status").read()
                   for pid in busy), "the model process outlived the command"
    assert not (tmp_path / "out.wav").exists()


#: Runs an endless graph in a model worker, says the worker's pid once it computes, then waits to be killed.
KILLED_DRIVER = r"""
import sys, threading, time
from functools import partial
from workbench.core.enhance.isolated import IsolatedEnhancer
from workbench.core.enhance.registry import load_enhancer
import numpy as np
enh = IsolatedEnhancer(sys.argv[1], loader=partial(load_enhancer, isolate=False))
threading.Thread(target=enh.process_offline, args=(np.zeros(16000, np.float32),), daemon=True).start()
print(enh._proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to see the worker process")
def test_a_model_worker_ends_when_the_workbench_is_killed(tmp_path):
    """SIGKILL leaves the workbench no chance to stop its workers: a worker stuck in an endless call must
    still end by itself instead of spinning on a core for good."""
    model = endless_loop_onnx(tmp_path / "loop.onnx")
    driver = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, str(model)], stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        worker = int(driver.stdout.readline())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(p == worker and ticks > 20
                                                      for p, ticks in _children(driver.pid)):
            time.sleep(0.05)  # until the worker computes inside the endless loop
        driver.kill()
        driver.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(worker):
            time.sleep(0.1)
        assert not _running(worker), "the model worker outlived the killed workbench"
    finally:
        if driver.poll() is None:
            driver.kill()
        if worker is not None and _running(worker):
            os.kill(worker, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return "State:\tZ" not in open(f"/proc/{pid}/status").read()
    except OSError:
        return False


def test_probe_of_an_endless_graph_ends_at_its_time_budget(tmp_path, capsys, monkeypatch):
    model = endless_loop_onnx(tmp_path / "loop.onnx")
    monkeypatch.setenv("WORKBENCH_CALL_BUDGET_S", "2")
    assert main(["probe", "-m", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "time budget" in err[0] and "loop" in err[0]


def test_cancel_interrupts_a_call_that_never_returns(tmp_path):
    enh = IsolatedEnhancer(str(endless_loop_onnx(tmp_path / "loop.onnx")), loader=UNISOLATED)
    try:
        timer = threading.Timer(1.0, enh.interrupt)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(Cancelled):
            enh.process_offline(np.zeros(1600, np.float32))
        assert time.monotonic() - t0 < 10
    finally:
        enh.close()


def test_isolated_model_gives_the_same_samples_as_in_process(tmp_path):
    model = gain_onnx(tmp_path / "gain.onnx")
    x = 0.1 * np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    local = load_model_path(model)
    iso = IsolatedEnhancer(str(model), loader=UNISOLATED)
    try:
        assert iso.info == local.info
        np.testing.assert_array_equal(enhance_array(iso, x, 16000), enhance_array(local, x, 16000))
        # A Cancel between calls stops the next one; the call after it starts a fresh worker.
        iso.interrupt()
        with pytest.raises(Cancelled):
            enhance_array(iso, x, 16000)
        np.testing.assert_allclose(enhance_array(iso, x, 16000), 0.5 * x, atol=1e-7)
    finally:
        iso.close()


def test_slow_torchscript_load_hits_the_load_budget(tmp_path, monkeypatch):
    class Slow(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x
            for _ in range(200000000):
                y = y + 0.0
            return y
    path = tmp_path / "slow.pt"
    torch.jit.save(torch.jit.script(Slow()), str(path))
    monkeypatch.setenv("WORKBENCH_LOAD_BUDGET_S", "3")
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="time budget"):
        IsolatedEnhancer(str(path), loader=UNISOLATED)
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("fields,message", [
    ({"n_fft": 50000000, "hop": 1}, "n_fft must be from"),
    ({"n_fft": 4096, "hop": 1}, "hop 1 is too small"),
    ({"sample_rate": 1}, "sample_rate must be an integer from 4000"),
    ({"sample_rate": 2}, "sample_rate must be an integer from 4000"),
    ({"n_fft": "512"}, "n_fft must be a whole number, not the string '512'"),
    ({"input_layout": 5}, "input_layout must be a string"),
    ({"streaming": "yes"}, "streaming must be true or false"),
    ({"sample_rate": True}, "sample_rate must be a whole number"),
])
def test_cards_outside_the_schema_are_refused_at_once(tmp_path, fields, message):
    card = tmp_path / "m.json"
    card.write_text(json.dumps({"kind": "spectral", **fields}))
    t0 = time.monotonic()
    with pytest.raises(ModelError) as err:
        ModelCard.read(card)
    assert message in str(err.value) and str(card) in str(err.value)
    assert "\n" not in str(err.value)
    assert time.monotonic() - t0 < 5


def test_card_that_is_a_json_list(tmp_path):
    card = tmp_path / "m.json"
    card.write_text("[1, 2]")
    with pytest.raises(ModelError, match="a model card is a table of fields .* not a list"):
        ModelCard.read(card)


# ------------------------------------------------------------------------------------ item 9: wrong outputs
@pytest.mark.parametrize("kind", ["complex", "integer"])
def test_torchscript_with_non_real_float_output_is_refused(tmp_path, kind):
    class Complex(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.complex(x, x)

    class Integer(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * 1000).to(torch.int32)
    path = tmp_path / f"{kind}.pt"
    torch.jit.save(torch.jit.script(Complex() if kind == "complex" else Integer()), str(path))
    with pytest.raises(ModelError, match="expected real floating point"):
        load_model_path(path)


def test_engine_refuses_integer_samples_from_any_model():
    from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo

    class IntModel(Enhancer):
        info = EnhancerInfo("int", "int", "", 16000, True, 0)

        def process_offline(self, audio):
            return (audio * 1000).astype(np.int16)
    with pytest.raises(ModelError, match="int16 samples, expected real floating point"):
        enhance_array(IntModel(), np.zeros(1600, np.float32), 16000)


# ------------------------------------------------------------------------------------ item 10: messages
def test_exception_inside_a_torchscript_model_is_one_line(tmp_path, wav, capsys):
    class Raises(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] > 2000:
                raise RuntimeError("the model broke on long input")
            return x
    path = tmp_path / "raises.pt"
    torch.jit.save(torch.jit.script(Raises()), str(path))
    assert main(["enhance", str(wav), "-m", str(path), "-o", str(tmp_path / "o.wav"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the model broke on long input" in err[0], err


def test_onnx_runtime_error_is_one_line(tmp_path, wav, capfd):
    path = failing_onnx(tmp_path / "fails.onnx")
    assert main(["enhance", str(wav), "-m", str(path), "-o", str(tmp_path / "o.wav"), "--quiet"]) == 2
    # capfd: onnxruntime's own logger writes to file descriptor 2 (of the worker process too).
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fails" in err[0] and "cannot be reshaped" in err[0], err
    assert "onnxruntime_src" not in err[0]


# ------------------------------------------------------------------------------------ item 12: content sniffing
def test_torchscript_named_ts_is_recognised_by_content(tmp_path):
    class Gain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.25 * x
    path = tmp_path / "model.ts"
    torch.jit.save(torch.jit.script(Gain()), str(path))
    x = 0.1 * np.random.default_rng(2).standard_normal(3000).astype(np.float32)
    np.testing.assert_allclose(enhance_array(load_model_path(path), x, 16000), 0.25 * x, atol=1e-7)
    onnx_path = gain_onnx(tmp_path / "gain.model")
    assert load_model_path(onnx_path).info.family == "time-domain"


# ------------------------------------------------------------------------------------ item 8: resource bombs
def test_zip_bomb_checkpoint_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with zf.open("archive/data/0", "w") as fh:
            block = bytes(1 << 20)
            for _ in range(80):
                fh.write(block)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ModelError, match="zip bomb"):
        load_model_path(path)


def test_opcode_flood_pickle_is_refused_quickly(tmp_path):
    path = tmp_path / "flood.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02" + b"(" * (33 << 20) + b".")
    assert path.stat().st_size < 1 << 20
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="more than a state dict needs"):
        load_model_path(path)
    assert time.monotonic() - t0 < 20
