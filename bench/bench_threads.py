"""Threads: one, two and the default policy, on a quiet machine and under a competing load, in one run.

Run from the repository root::

    .venv/bin/python bench/bench_threads.py [--repeats 3] [--seconds 60] [--models deepfilternet3,nsnet2-16k,gtcrn-dns3]

Each timing is a fresh process that builds the model (so the default policy reads the machine as a user's
run would, :func:`workbench.core.threads.auto_threads`), warms it up on one second and then times the
offline path on ``--seconds`` of speech (the 48 kHz ``dfn/noisy_snr0.wav`` tiled, resampled for 16 kHz
models). Thread settings: ``WORKBENCH_THREADS=1``, ``=2`` and unset (the default; the count it chose is
printed). Conditions: **quiet** (the machine as it is; its load is printed) and **loaded**: one busy-loop
process per available core started by this script, running through every timing of that condition.
Settings are interleaved within each repeat; medians; the ratios are of this run's medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"

CHILD = r"""
import json, sys, time
import numpy as np, soundfile as sf, soxr
from workbench.core.enhance.enhancer import enhance_array
from workbench.core.enhance.registry import load_enhancer
model_id, seconds, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
x, sr = sf.read(path, dtype="float32")
enh = load_enhancer(model_id)
rate = enh.info.sample_rate
if rate != sr:
    x = soxr.resample(x, sr, rate).astype(np.float32)
x = np.tile(x, int(np.ceil(seconds * rate / len(x))))[: int(seconds * rate)]
enhance_array(enh, x[:rate], rate)  # builds the sessions (the thread count is chosen here) and warms up
threads = None
for obj in (getattr(enh, "_offline", None), enh):
    sessions = getattr(obj, "_sessions", None) or ({"s": obj.session} if hasattr(obj, "session") else None)
    if sessions:
        threads = next(iter(sessions.values())).get_session_options().intra_op_num_threads
        break
if threads is None and "torch" in sys.modules:
    threads = sys.modules["torch"].get_num_threads()
t = time.perf_counter()
enhance_array(enh, x, rate)
print("RESULT", json.dumps({"seconds": time.perf_counter() - t, "threads": threads}))
"""

SETTINGS = {"1 thread": "1", "2 threads": "2", "default": None}


def timed(model_id: str, seconds: float, threads: str | None) -> tuple[float, int | None]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_THREADS", "OMP_NUM_THREADS")}
    if threads is not None:
        env["WORKBENCH_THREADS"] = threads
    proc = subprocess.run([sys.executable, "-c", CHILD, model_id, str(seconds), str(DATA / "dfn" / "noisy_snr0.wav")],
                          env=env, cwd=REPO, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not line:
        raise SystemExit(f"{model_id}: failed: {proc.stderr.strip()[-800:]}")
    got = json.loads(line[0][len("RESULT "):])
    return got["seconds"], got["threads"]


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--models", default="deepfilternet3,nsnet2-16k,gtcrn-dns3")
    args = ap.parse_args()
    models = args.models.split(",")
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, {cores} cores available; "
          f"{args.seconds:.0f} s of audio per run, medians of {args.repeats}")
    results: dict[tuple[str, str, str], list[float]] = {}
    chosen: dict[tuple[str, str], set] = {}
    loads = {}
    for condition in ("quiet", "loaded"):
        loops = busy_loops(cores) if condition == "loaded" else []
        try:
            if loops:
                time.sleep(2.0)  # the loops are running before the first model is built
            load0 = os.getloadavg()[0]
            for _ in range(args.repeats):
                for model in models:
                    for name, threads in SETTINGS.items():
                        secs, used = timed(model, args.seconds, threads)
                        results.setdefault((condition, model, name), []).append(secs)
                        if threads is None:
                            chosen.setdefault((condition, model), set()).add(used)
            loads[condition] = (load0, os.getloadavg()[0])
        finally:
            for p in loops:
                p.kill()
                p.wait()
    for condition in ("quiet", "loaded"):
        l0, l1 = loads[condition]
        extra = f", {cores} busy-loop processes" if condition == "loaded" else ""
        print(f"\n{condition} (1-minute load {l0:.2f} at start, {l1:.2f} at end{extra}): seconds (RTF)")
        print(f"  {'model':<16} {'1 thread':>15} {'2 threads':>15} {'default':>15} {'default threads':>15} "
              f"{'1 / default':>11} {'1 / 2':>7}")
        for model in models:
            med = {name: statistics.median(results[condition, model, name]) for name in SETTINGS}
            cells = " ".join(f"{med[n]:>7.2f} ({med[n] / args.seconds:.3f})" for n in SETTINGS)
            used = ",".join(str(t) for t in sorted(chosen[condition, model], key=str))
            print(f"  {model:<16} {cells} {used:>15} {med['1 thread'] / med['default']:>10.2f}x "
                  f"{med['1 thread'] / med['2 threads']:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
