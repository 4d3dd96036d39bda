"""Batch throughput: the local process pool at 1 and 2 workers and Ray Data at 2 actors, same corpus.

Run from the repository root::

    .venv/bin/python bench/bench_batch.py                      # 40 files x 15 s, nsnet2-16k
    .venv/bin/python bench/bench_batch.py --model deepfilternet3 --files 40 --seconds 10

The corpus (``--files`` files of ``--seconds`` s, 16 kHz PCM_16) is tiled from ``../shared/data/dns3``'s
noisy clips into a temporary folder, never into the repository. Each configuration runs the whole
batch through :func:`workbench.core.workflows.batch.run_batch` (what ``workbench batch enhance`` runs), one thread
per worker, into its own output folder; the wall time includes starting the workers (and Ray) and
loading the model in each. Figures:

* **throughput** = audio hours processed / wall hours;
* **ratio** = throughput / throughput of the local backend with 1 worker (same run of this script);
* **item s** = median time one item took inside its worker (read + model + write);
* **overhead per item** = (wall x workers - sum of item times) / items: what each worker slot spent
  not processing items (process/actor start, model load, scheduling, transfers), per item;
* **worker RSS** = the largest peak resident memory a worker reported (``getrusage``).

Outputs of every configuration are compared byte for byte with the first one.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))


def make_corpus(folder: Path, n: int, seconds: float) -> float:
    clips = [sf.read(DATA / "dns3" / f"{c}_noisy.wav", dtype="float32")[0] for c in ("0015", "0016", "0072")]
    frames = int(seconds * 16000)
    for i in range(n):
        x = np.resize(np.concatenate(clips[i % 3:] + clips[:i % 3]), frames) * np.float32(0.5 + 0.01 * i)
        sf.write(folder / f"clip{i:03d}.wav", x, 16000, subtype="PCM_16")
    return n * frames / 16000


def run_config(corpus: Path, out: Path, model: str, backend: str, workers: int):
    from workbench.core.workflows.batch import EnhanceSettings, collect_inputs, enhance_tasks, run_batch
    from workbench.core.workflows.batch.backends import load_models, set_thread_env
    from workbench.core.progress import run_to_end
    from workbench.core.workflows.export import file_tag

    set_thread_env(1)
    models, identities, errors = load_models([model])
    if errors:
        raise SystemExit(errors[model])
    tag = file_tag(models[model].info.id)
    for enh in models.values():
        enh.close()
    tasks = enhance_tasks(collect_inputs([corpus]), out, [(model, tag, ["enhanced"])], EnhanceSettings())
    t0 = time.perf_counter()
    report = run_to_end(run_batch(tasks, backend=backend, workers=workers, threads=1, specs=[model],
                                  identities=identities))
    wall = time.perf_counter() - t0
    rows = report.rows
    bad = [r for r in rows if r["status"] != "done"]
    if bad:
        raise SystemExit(f"{backend}: {len(bad)} items failed, first: {bad[0]['reason']}")
    item_s = [r["timings"]["total_s"] for r in rows]
    rss = max((r.get("worker_peak_rss_mib") or 0) for r in rows)
    return wall, item_s, rss


def hashes(folder: Path) -> dict[str, str]:
    from workbench.core.document.recording import file_sha256

    return {p.name: file_sha256(p) for p in sorted(folder.glob("*.wav"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="nsnet2-16k")
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    configs = [("local", 1), ("local", 2)]
    from workbench.core.workflows.batch.backends import ray_available

    if not args.no_ray and ray_available():
        configs.append(("ray", 2))
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        corpus = tmp / "corpus"
        corpus.mkdir()
        audio_s = make_corpus(corpus, args.files, args.seconds)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}; corpus {args.files} files x {args.seconds:g} s = {audio_s:.0f} s; "
              f"model {args.model}; 1 thread per worker")
        results = []
        ref = None
        for backend, workers in configs:
            out = tmp / f"out-{backend}-{workers}"
            wall, item_s, rss = run_config(corpus, out, args.model, backend, workers)
            h = hashes(out)
            same = "reference" if ref is None else ("identical" if h == ref else "DIFFERENT")
            ref = ref or h
            results.append((backend, workers, wall, item_s, rss, same))
        base = audio_s / results[0][2]
        print("| backend | workers | wall s | throughput (audio h/h) | ratio to 1 worker | item s (median) "
              "| overhead per item s | worker RSS MiB | outputs |")
        print("|---|---|---|---|---|---|---|---|---|")
        for backend, workers, wall, item_s, rss, same in results:
            thr = audio_s / wall
            overhead = (wall * workers - sum(item_s)) / len(item_s)
            print(f"| {backend} | {workers} | {wall:.1f} | {thr:.0f} | {thr / base:.2f} | "
                  f"{statistics.median(item_s):.3f} | {overhead:.3f} | {rss:.0f} | {same} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
