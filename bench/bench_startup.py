"""What a command costs before and after its work: ``workbench enhance`` of a 1 s file, per model kind.

Run from the repository root::

    OMP_NUM_THREADS=1 WORKBENCH_THREADS=1 .venv/bin/python bench/bench_startup.py [--repeats 7] \
        [--baseline /path/to/other/checkout]

Each repeat runs, interleaved so all see the same machine load: the bare interpreter (``python -c pass``),
the floor every enhance command pays (``import numpy, soundfile, soxr``),
``workbench --help``, ``workbench models``, and ``workbench enhance`` of a 1 s file with a classical model
(``wiener``, 16 kHz), DeepFilterNet3 (48 kHz) and NSNet2 (16 kHz), each a fresh process. The work of an
enhance command is the model run its own progress line reports (``... in X s``); the overhead is the
command's wall time minus that (interpreter, imports, model load, reading and writing the file).
Medians are printed; with ``--baseline`` the same commands run on the other checkout's code in the
same loop (``PYTHONPATH`` pointing at its packages) and the same-run ratio is printed.
DeepFilterNet3's rewritten networks are cached in a temporary ``XDG_CACHE_HOME`` filled by a warm-up
run, as after a person's first run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent

CLI = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"


def commands(work: Path) -> dict[str, list[str]]:
    py = sys.executable
    enhance = [py, "-c", CLI, "enhance"]
    return {
        "python -c pass": [py, "-c", "pass"],
        "import numpy+soundfile": [py, "-c", "import numpy, soundfile, soxr"],
        "workbench --help": [py, "-c", CLI, "--help"],
        "workbench models": [py, "-c", CLI, "models"],
        "enhance wiener": enhance + [str(work / "in16.wav"), "-m", "wiener", "-o", str(work / "o1.wav"), "--overwrite"],
        "enhance deepfilternet3": enhance + [str(work / "in48.wav"), "-m", "deepfilternet3", "-o", str(work / "o2.wav"),
                                             "--overwrite"],
        "enhance nsnet2-16k": enhance + [str(work / "in16.wav"), "-m", "nsnet2-16k", "-o", str(work / "o3.wav"),
                                         "--overwrite"],
    }


def timed(cmd: list[str], env: dict) -> tuple[float, float | None]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 2) or (proc.returncode == 2 and "--help" not in cmd):
        raise SystemExit(f"{' '.join(cmd[3:])}: failed: {proc.stderr.strip()[-500:]}")
    m = re.search(r" in ([0-9.]+) s ->", proc.stderr + proc.stdout)
    return wall, (float(m.group(1)) if m else None)


def baseline_env(checkout: Path, work: Path) -> dict:
    root = work / "baseline-packages"
    root.mkdir(exist_ok=True)
    for name, sub in (("workbench", "workbench"), ("workbench_models", "models"), ("workbench_assets", "assets")):
        (root / name).symlink_to(checkout / sub)
    return {"PYTHONPATH": str(root)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--baseline", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(0)
        for rate, name in ((16000, "in16.wav"), (48000, "in48.wav")):
            sf.write(work / name, (0.1 * rng.standard_normal(rate)).astype(np.float32), rate)
        env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"))
        # An installed package has its byte code (pip compiles at install); without it every run would
        # compile the workbench's modules again and time that instead.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        variants = {"this": env}
        if args.baseline:
            variants["baseline"] = {**env, **baseline_env(args.baseline.resolve(), work)}
        cmds = commands(work)
        for venv in variants.values():  # warm-up: page cache, DFN3's graph cache
            for cmd in cmds.values():
                timed(cmd, venv)
        walls = {(v, k): [] for v in variants for k in cmds}
        works = {(v, k): [] for v in variants for k in cmds}
        load0 = os.getloadavg()
        for _ in range(args.repeats):
            for k, cmd in cmds.items():
                for v, venv in variants.items():
                    wall, model_s = timed(cmd, venv)
                    walls[v, k].append(wall)
                    if model_s is not None:
                        works[v, k].append(model_s)
        load1 = os.getloadavg()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; load {load0[0]:.2f} at start, {load1[0]:.2f} at end; "
          f"{args.repeats} interleaved repeats, medians (s)")
    head = f"{'command':<24} {'wall':>6} {'work':>6} {'overhead':>8}"
    if args.baseline:
        head += f" | {'base wall':>9} {'base overhead':>13} {'wall ratio':>10}"
    print(head)
    for k in cmds:
        wall = statistics.median(walls["this", k])
        work_s = statistics.median(works["this", k]) if works["this", k] else 0.0
        line = f"{k:<24} {wall:>6.2f} {work_s:>6.2f} {wall - work_s:>8.2f}"
        if args.baseline:
            bw = statistics.median(walls["baseline", k])
            bwork = statistics.median(works["baseline", k]) if works["baseline", k] else 0.0
            line += f" | {bw:>9.2f} {bw - bwork:>13.2f} {bw / wall:>9.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
