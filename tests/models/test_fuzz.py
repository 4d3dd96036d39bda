"""Seeded mutation fuzzing of the audio readers and the model loaders, bounded in time.

Each test generates small valid files of every kind we read (WAV PCM/float, AIFF, FLAC, Ogg Vorbis,
MP3; ONNX graphs, TorchScript archives, checkpoints, model cards), mutates them with a fixed seed
(byte flips, extreme header values, truncation, splices) and opens every mutant. The only acceptable
outcomes are success or one of our one-line errors (``WorkbenchError``): any other exception is a
defect, and so is a crash — which is why the cases run in a child process (this file run as a
script), which reports the case it was working on. Each test stops starting new cases after
``BUDGET_S`` seconds, so CI time stays bounded on slow machines; the case list itself is fixed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

BUDGET_S = 25.0
SEED = 20260110


# ------------------------------------------------------------------------------------ mutations
def _mutants(base: bytes, rng: random.Random, n: int, header: int = 64) -> list[bytes]:
    """``n`` mutants of ``base``: flips (mostly in the first ``header`` bytes), extreme 2/4/8-byte
    values, truncation and splices of the file with itself."""
    out = []
    extremes = [b"\x00", b"\xff", b"\x7f", b"\x80"]
    for _ in range(n):
        d = bytearray(base)
        how = rng.randrange(5)
        if how == 0:  # a few byte flips, biased to the header
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(min(header, len(d))) if rng.random() < 0.7 else rng.randrange(len(d))
                d[i] = rng.randrange(256)
        elif how == 1:  # an extreme value over a header field
            width = rng.choice((2, 4, 8))
            i = rng.randrange(max(min(header, len(d)) - width, 1))
            d[i:i + width] = rng.choice(extremes) * width
        elif how == 2:  # truncation
            d = d[:rng.randrange(1, len(d))]
        elif how == 3:  # splice: a random slice repeated or moved
            a = rng.randrange(len(d))
            b = min(len(d), a + rng.randint(1, 512))
            at = rng.randrange(len(d))
            d[at:at] = d[a:b] * rng.randint(1, 3)
        else:  # flips anywhere
            for _ in range(rng.randint(1, 16)):
                d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
        out.append(bytes(d))
    return out


# ------------------------------------------------------------------------------------ child programs
def _audio_bases(folder: Path) -> dict[str, bytes]:
    import numpy as np
    import soundfile as sf

    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    stereo = np.stack([x, -x], axis=1)
    specs = {"pcm16.wav": ("WAV", "PCM_16", x), "float.wav": ("WAV", "FLOAT", stereo),
             "pcm24.aiff": ("AIFF", "PCM_24", x), "pcm16.flac": ("FLAC", "PCM_16", stereo),
             "vorbis.ogg": ("OGG", "VORBIS", x), "layer3.mp3": ("MP3", "MPEG_LAYER_III", x)}
    bases = {}
    for name, (fmt, sub, data) in specs.items():
        path = folder / name
        sf.write(path, data, 16000, format=fmt, subtype=sub)
        bases[name] = path.read_bytes()
    return bases


def _model_bases(folder: Path) -> dict[str, bytes]:
    import torch
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "g"], ["y"])], "gain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T"])],
        initializer=[helper.make_tensor("g", TensorProto.FLOAT, [], [0.5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, str(folder / "gain.onnx"))

    class Gain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Gain()), str(folder / "gain.pt"))
    torch.save({"model": {"layer.weight": torch.zeros(2, 2)}}, folder / "state.pth")
    torch.save({"layer.weight": torch.zeros(2, 2)}, folder / "legacy.tar", _use_new_zipfile_serialization=False)
    (folder / "card.toml").write_text('kind = "spectral"\nsample_rate = 16000\nn_fft = 512\nhop = 256\n'
                                      'input = "complex"\ninput_layout = "BFTC"\noutput = "mask"\n'
                                      'streaming = false\n')
    (folder / "card.json").write_text(json.dumps({"kind": "waveform", "sample_rate": 16000,
                                                  "latency_samples": 0}))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _child(kind: str, folder: str, progress: str) -> int:  # runs in the child process
    from workbench.core.errors import WorkbenchError

    folder_p = Path(folder)
    rng = random.Random(SEED + (0 if kind == "audio" else 1))
    start = time.monotonic()
    done = 0
    problems = []
    if kind == "audio":
        from workbench.core.audio.audio_io import open_source, read_info

        bases = _audio_bases(folder_p)
        per = {"vorbis.ogg": 25, "layer3.mp3": 25}  # their probes start a child each: fewer cases
        cases = [(name, m) for name, base in bases.items() for m in _mutants(base, rng, per.get(name, 150))]
    else:
        from workbench_models.loaders import load_model_path
        from workbench_models.onnx_models import ModelCard

        bases = _model_bases(folder_p)
        cases = [(name, m) for name, base in bases.items() for m in _mutants(base, rng, 80, header=128)]
    rng.shuffle(cases)  # every format gets its share when the budget ends early
    with open(progress, "w") as log:
        for i, (name, data) in enumerate(cases):
            if time.monotonic() - start > BUDGET_S:
                break
            target = folder_p / f"case{i}{Path(name).suffix}"
            target.write_bytes(data)
            log.write(f"{i} {name} {target}\n")
            log.flush()
            try:
                if kind == "audio":
                    read_info(target)
                    src = open_source(target)
                    src.read(0, 4096)
                    src.close()
                elif name.startswith("card"):
                    ModelCard.read(target)
                else:
                    load_model_path(target)
            except WorkbenchError as exc:
                if "\n" in str(exc):
                    problems.append(f"case {i} ({name}): multi-line message {str(exc)!r}")
            except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
                problems.append(f"case {i} ({name}): {type(exc).__name__}: {exc}"[:300])
                target.rename(folder_p / f"failing{i}{Path(name).suffix}")
                continue
            target.unlink()
            done += 1
        log.write(f"DONE {done} of {len(cases)}\n")
    print(json.dumps({"done": done, "total": len(cases), "problems": problems}))
    return 0


def _run_child(kind: str, tmp_path: Path) -> dict:
    progress = tmp_path / "progress.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_THREADS": "1"}
    res = subprocess.run([sys.executable, __file__, kind, str(tmp_path), str(progress)], capture_output=True,
                         text=True, timeout=BUDGET_S + 240, env=env)
    last = progress.read_text().splitlines()[-1:] if progress.exists() else []
    assert res.returncode == 0, (f"the {kind} fuzzer crashed (exit {res.returncode}) at {last}; "
                                 f"stderr: {res.stderr[-2000:]}")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert not report["problems"], "\n".join(report["problems"][:20])
    assert report["done"] >= 20, report  # the budget let a meaningful number of cases run
    return report


def test_fuzz_audio_readers(tmp_path):
    _run_child("audio", tmp_path)


def test_fuzz_model_loaders(tmp_path):
    pytest.importorskip("onnx")
    _run_child("models", tmp_path)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], sys.argv[3]))
