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

Ray's own cost, measured in the same run before the batches: **start-up** = starting a local Ray of the
batch's size and creating its actors until every one has loaded the model (``RayItemActor.ready``), and
the processes that Ray session added (this process's new descendants) with their resident memory
(``/proc``), each actor's
peak RSS included. The Ray batch is then compared with the local pool of the same number of workers:
``ray wall - local wall`` against that start-up (the goal: a short corpus is not slower on Ray by more).

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


def _descendants() -> dict[int, tuple[str, float]]:
    """pid -> (command line, resident MiB) of every process descending from this one (/proc)."""
    info, parent = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            rss = next((int(line.split()[1]) / 1024 for line in (entry / "status").read_text().splitlines()
                        if line.startswith("VmRSS:")), 0.0)
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        info[pid] = (cmd, rss)
    mine, grew = {os.getpid()}, True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return {pid: info[pid] for pid in mine if pid != os.getpid()}


def ray_startup(model: str, workers: int) -> dict:
    """Start a local Ray sized for ``workers`` actors, create them and wait until each loaded ``model``;
    the seconds that took, the processes Ray added and their memory; then shut it down."""
    import ray

    from workbench.core.workflows.batch.backends import THREAD_VARIABLES, ray_actors, start_or_join_ray

    before = set(_descendants())
    t0 = time.perf_counter()
    start_or_join_ray(None, num_cpus=workers, env_vars={var: "1" for var in THREAD_VARIABLES})
    t_init = time.perf_counter() - t0
    actors = ray_actors([model], workers, 1)
    ready = ray.get([a.ready.remote() for a in actors])
    total = time.perf_counter() - t0
    time.sleep(1.0)  # let Ray's helper processes settle
    added = {pid: v for pid, v in _descendants().items() if pid not in before}
    for a in actors:
        ray.kill(a)
    ray.shutdown()
    return {"init_s": t_init, "startup_s": total, "actor_rss": [r["peak_rss_mib"] for r in ready],
            "processes": len(added), "rss_mib": sum(rss for _cmd, rss in added.values())}


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
        startup = None
        if any(b == "ray" for b, _ in configs):
            startup = ray_startup(args.model, 2)
            print(f"ray start-up (local Ray, 2 actors, {args.model} loaded in each): {startup['startup_s']:.1f} s "
                  f"(ray.init {startup['init_s']:.1f} s); {startup['processes']} processes added, "
                  f"{startup['rss_mib']:.0f} MiB resident in all; actor peak RSS "
                  f"{', '.join(f'{r:.0f}' for r in startup['actor_rss'])} MiB; load {os.getloadavg()[0]:.2f}")
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
        walls = {(b, w): wall for b, w, wall, *_ in results}
        if startup is not None and ("local", 2) in walls:
            extra = walls["ray", 2] - walls["local", 2]
            print(f"ray (2 actors) - local (2 workers) = {extra:+.1f} s against a Ray start-up of "
                  f"{startup['startup_s']:.1f} s: {'within' if extra <= startup['startup_s'] else 'MORE than'} "
                  f"the start-up; load {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
