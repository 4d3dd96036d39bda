"""Model files cannot touch the person's files: TorchScript code that maps or creates files is refused
before anything in it runs, and the model's worker process cannot write anywhere (Landlock, where the
kernel offers it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.cli import main
from workbench.core.enhance.isolated import IsolatedEnhancer
from workbench.core.enhance.registry import load_enhancer
from workbench.core.enhance.sandbox import landlock_abi
from workbench.core.errors import ModelError

UNISOLATED = partial(load_enhancer, isolate=False)

# torch marks TorchScript as deprecated; the hostile modules are written with it all the same.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class CreatesAtLoad(torch.nn.Module):
    """``__setstate__`` runs while ``torch.jit.load`` reads the archive."""

    def __init__(self, target: str):
        super().__init__()
        self.w = torch.ones(1)
        self.target = target

    def forward(self, x):
        return x * self.w

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
        self.target = state[1]
        self.training = state[2]
        t = torch.from_file(self.target, shared=True, size=16)
        self.w = state[0] + t.sum() * 0


class MapsItsInput(torch.nn.Module):
    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, x):
        y = torch.from_file(self.target, shared=True, size=4096, dtype=torch.uint8)
        y.zero_()
        return x + y.float().sum() * 0


@pytest.fixture()
def wav(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    return path


@pytest.fixture()
def in_process(monkeypatch):
    """Models loaded in this process (the worker process is tested below): the refusal must come from the
    scan, before anything in the archive runs, not from the sandbox."""
    monkeypatch.setenv("WORKBENCH_ISOLATE_MODELS", "0")


def test_a_module_that_creates_a_file_when_loaded_is_refused_and_creates_nothing(tmp_path, wav, capsys, in_process):
    created = tmp_path / "created.bin"
    model = tmp_path / "m.pt"
    torch.jit.script(CreatesAtLoad(str(created))).save(str(model))
    assert main(["enhance", str(wav), "-m", str(model), "-o", str(tmp_path / "out.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert "from_file" in err and len(err.splitlines()) == 1
    assert main(["probe", "-m", str(model)]) == 2
    assert not created.exists()


def test_a_forward_that_maps_the_input_recording_is_refused_and_the_recording_is_unchanged(tmp_path, wav, capsys,
                                                                                          in_process):
    before = wav.read_bytes()
    model = tmp_path / "m.pt"
    torch.jit.script(MapsItsInput(str(wav))).save(str(model))
    assert main(["enhance", str(wav), "-m", str(model), "-o", str(tmp_path / "out.wav")]) == 2
    assert "from_file" in capsys.readouterr().err
    assert wav.read_bytes() == before and not (tmp_path / "out.wav").exists()


def test_refused_in_process_too(tmp_path):
    model = tmp_path / "m.pt"
    torch.jit.script(MapsItsInput(str(tmp_path / "x"))).save(str(model))
    with pytest.raises(ModelError, match="from_file"):
        load_enhancer(str(model), isolate=False)


needs_landlock = pytest.mark.skipif(landlock_abi() == 0, reason="the kernel offers no Landlock")


@needs_landlock
def test_the_sandbox_forbids_every_write_and_reads_outside_the_model(tmp_path):
    code = textwrap.dedent("""
        import os, sys
        from workbench.core.enhance.sandbox import forbid_file_writes
        folder = sys.argv[1]
        # A model file brings its folder along (external weights, cards); nothing else of the person's is readable.
        assert forbid_file_writes(readable=[folder + "/model/existing.txt"]) is None
        try:
            open(folder + "/private/diary.txt").read()
            print("READ")
        except OSError:
            pass
        for attempt in (lambda: open(folder + "/new.txt", "w"),
                        lambda: os.open(folder + "/mapped.bin", os.O_RDWR | os.O_CREAT),
                        lambda: open(folder + "/model/existing.txt", "r+")):
            try:
                attempt()
                print("WROTE")
            except OSError:
                pass
        print(open(folder + "/model/existing.txt").read())
        open("/dev/null", "w").write("fine")
    """)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "existing.txt").write_text("kept")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "diary.txt").write_text("secret")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "WROTE" not in done.stdout and "READ" not in done.stdout and "kept" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "private"]
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["existing.txt"]


@needs_landlock
@pytest.mark.slow
def test_the_model_worker_process_runs_sandboxed(tmp_path, wav):
    model = tmp_path / "gain.onnx"
    _identity_onnx(model)
    iso = IsolatedEnhancer(str(model), loader=UNISOLATED)
    try:
        assert iso.sandbox_problem is None
    finally:
        iso.close()


def _identity_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_model_card_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    import os
    import threading

    from workbench_models.onnx_models import ModelCard

    card = tmp_path / "m.onnx.toml"
    os.mkfifo(card)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("e", _raises(ModelCard.read, card)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():
        os.close(os.open(card, os.O_WRONLY | os.O_NONBLOCK))
    assert not t.is_alive() and isinstance(box["e"], ModelError) and "named pipe" in str(box["e"])


def _raises(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - handed back to the test
        return exc
    return None
