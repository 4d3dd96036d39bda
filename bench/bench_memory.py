"""Peak memory and speed of long files through the engine, file in -> file out, one process per run.

Run from the repository root::

    OMP_NUM_THREADS=1 WORKBENCH_THREADS=1 .venv/bin/python bench/bench_memory.py \
        [--models deepfilternet3,gtcrn-dns3,nsnet2-48k,wpe-dereverb] [--durations 60,600,3600] \
        [--baseline /path/to/other/checkout] [--baseline-max-s 600]

* **Input**: 48 kHz stereo 16-bit WAV files of each duration, made once under ``--workdir`` by tiling the
  DeepFilterNet sample (``dfn/noisy_snr0.wav``; the second channel is the first reversed).
* **This checkout**: the file is opened as a block-reading source and ``enhance(..., sink=...)`` hands the
  output, as it becomes final, to a ``soundfile`` writer: no whole-file float buffer anywhere.
* **Baseline** (``--baseline``, e.g. the main checkout): the same model through that code's ``enhance``
  into a whole-file array, then written (what its ``workbench enhance`` holds at least), or with
  ``--baseline-mode sink`` streamed as this checkout is (a like-for-like speed comparison); run in the same
  loop, interleaved (``--repeats``: median seconds), so the speed ratio sees the same machine load.
* Each run is a fresh Python process; peak RSS is its ``ru_maxrss`` (MiB), which includes the
  interpreter, numpy and the model runtime. ``loaded`` is the RSS once the model is loaded, ``run +`` what
  the run added above that, ``audio`` what the recording itself takes as float32 (for scale: a run that
  held the file would add at least that). Seconds are the model run (load excluded, printed apart).
* After the table, the curve per model: peak RSS at each duration and its growth from the shortest to
  the longest; it is flat when that growth is a few MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"

CHILD = r"""
import json, resource, sys, time
import numpy as np, soundfile as sf
model_id, src_path, dst_path, mode = sys.argv[1:5]
from workbench.core.audio.audio_io import open_source
from workbench.core.enhance.enhancer import enhance, run_to_end
from workbench.core.enhance.registry import load_enhancer
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20
t0 = time.perf_counter()
model = load_enhancer(model_id)
t1 = time.perf_counter()
loaded = rss_mib()
source = open_source(src_path, check_finite=False)
if mode == "sink":
    with sf.SoundFile(dst_path, "w", source.sample_rate, source.channels, "FLOAT") as out:
        run_to_end(enhance(model, source, sink=lambda a, block: out.write(block[0])))  # (outputs, m, channels)
else:
    y = run_to_end(enhance(model, source))
    y = y[0] if y.ndim == 3 else y  # one-shape engines return (outputs, frames, channels)
    sf.write(dst_path, y, source.sample_rate, "FLOAT")
t2 = time.perf_counter()
print("RESULT", json.dumps({"load_s": t1 - t0, "run_s": t2 - t1, "loaded_mib": loaded,
                            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_input(path: Path, seconds: int) -> None:
    if path.is_file():
        return
    x, sr = sf.read(DATA / "dfn" / "noisy_snr0.wav", dtype="float32")
    assert sr == 48000
    stereo = np.stack([x, x[::-1]], axis=1)
    tmp = path.with_suffix(".part.wav")
    with sf.SoundFile(tmp, "w", sr, 2, "PCM_16") as f:
        left = seconds * sr
        while left > 0:
            piece = stereo[:left]
            f.write(piece)
            left -= len(piece)
    os.replace(tmp, path)


def run(code_root: Path | None, model: str, src: Path, dst: Path, mode: str) -> dict:
    env = dict(os.environ)
    cwd = tempfile.gettempdir()
    if code_root is not None:
        env["PYTHONPATH"] = str(code_root)
    proc = subprocess.run([sys.executable, "-c", CHILD, model, str(src), str(dst), mode], env=env, cwd=cwd,
                          capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(line[0][7:])


def merged(results: list[dict]) -> dict:
    """Repeated runs of one point: the median seconds and the largest peak (or the first error)."""
    for r in results:
        if "error" in r:
            return r
    out = dict(results[0])
    for key in ("run_s", "load_s"):
        out[key] = float(np.median([r[key] for r in results]))
    for key in ("peak_rss_mib", "loaded_mib"):
        out[key] = max(r[key] for r in results)
    return out


def baseline_root(checkout: Path, workdir: Path) -> Path:
    """A folder whose ``workbench``, ``workbench_models``, ``workbench_assets`` are the other checkout's."""
    root = workdir / "baseline-packages"
    root.mkdir(parents=True, exist_ok=True)
    for name, sub in (("workbench", "workbench"), ("workbench_models", "models"), ("workbench_assets", "assets")):
        link = root / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(checkout / sub)
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="deepfilternet3,gtcrn-dns3,nsnet2-48k,wpe-dereverb")
    ap.add_argument("--durations", default="60,600,3600", help="seconds, comma-separated")
    ap.add_argument("--baseline", type=Path, help="another checkout to compare with (same loop, interleaved)")
    ap.add_argument("--baseline-max-s", type=int, default=600,
                    help="run the baseline only up to this duration (it holds whole arrays)")
    ap.add_argument("--baseline-mode", choices=("array", "sink"), default="array",
                    help="the baseline returns a whole array (memory before streaming) or streams too "
                         "(the same path: a speed comparison)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per point, interleaved; median seconds, "
                    "largest peak")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "workbench-bench-memory")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    durations = [int(d) for d in args.durations.split(",")]
    base = baseline_root(args.baseline.resolve(), args.workdir) if args.baseline else None
    print(f"machine: {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"input: 48 kHz stereo PCM_16; this checkout streams into a writer (sink); baseline: "
          f"{'whole array' if args.baseline_mode == 'array' else 'sink'}; {args.repeats} run(s) per point\n")
    print(f"{'model':<15} {'dur s':>6} {'peak MiB':>9} {'loaded':>7} {'run +':>6} {'audio':>6} {'run s':>8} "
          f"{'load s':>7} {'load1':>6}"
          + (f" | {'base MiB':>9} {'base run s':>10} {'speed ratio':>11}" if base else ""))
    curves: dict[str, list[tuple[int, float]]] = {}
    for model in args.models.split(","):
        for seconds in durations:
            src = args.workdir / f"in_{seconds}s.wav"
            make_input(src, seconds)
            dst = args.workdir / f"out_{model}_{seconds}s.wav"
            load1 = os.getloadavg()[0]
            news, olds = [], []
            for _ in range(max(args.repeats, 1)):
                news.append(run(None, model, src, dst, "sink"))
                if base and seconds <= args.baseline_max_s:
                    olds.append(run(base, model, src, dst, args.baseline_mode))
            dst.unlink(missing_ok=True)
            new, old = merged(news), (merged(olds) if olds else None)
            if "error" in new:
                print(f"{model:<15} {seconds:>6} error: {new['error']}")
                continue
            curves.setdefault(model, []).append((seconds, new["peak_rss_mib"]))
            audio_mib = seconds * 48000 * 2 * 4 / 2 ** 20
            line = (f"{model:<15} {seconds:>6} {new['peak_rss_mib']:>9.0f} {new['loaded_mib']:>7.0f} "
                    f"{new['peak_rss_mib'] - new['loaded_mib']:>6.0f} {audio_mib:>6.0f} {new['run_s']:>8.2f} "
                    f"{new['load_s']:>7.2f} {load1:>6.2f}")
            if old is not None:
                if "error" in old:
                    line += f" | baseline error: {old['error']}"
                else:
                    line += (f" | {old['peak_rss_mib']:>9.0f} {old['run_s']:>10.2f} "
                             f"{old['run_s'] / new['run_s']:>10.2f}x")
            print(line, flush=True)
    print("\npeak RSS curve (MiB) by duration, and its growth from the shortest to the longest:")
    for model, points in curves.items():
        text = "  ".join(f"{s // 60 if s % 60 == 0 else s / 60:g} min: {m:.0f}" for s, m in points)
        print(f"  {model:<15} {text}   growth {points[-1][1] - points[0][1]:+.0f}")
    print(f"\nload at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
