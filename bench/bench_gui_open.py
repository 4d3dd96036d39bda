"""Benchmark: open 1-minute and 1-hour 48 kHz mono recordings in the inspection window.

Measures, for each file, in a fresh process with ``QT_QPA_PLATFORM=offscreen``:
    * launch -> QApplication created (imports of Python, numpy, scipy, Qt, pyqtgraph);
    * QApplication -> first painted spectrogram (all four panes show the visible tiles), and full
      process launch -> same;
    * QApplication -> overview complete (the min/max waveform pass over the whole file);
    * peak resident memory of the process (``ru_maxrss``);
    * redraw time per scripted pan of 10 % of a 10-second view through the view box (GUI thread: move
      the view and repaint the panes; median), and the time until the newly exposed tiles are drawn
      (median); ``--pan-window`` changes the view width.

Usage::

    .venv/bin/python bench/bench_gui_open.py [--pans 30] [--keep DIR]

The test files are written in blocks (PCM_16, noise-like speech stand-in: band-limited noise bursts
with a few tones) to a temporary folder and removed afterwards unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
RATE = 48000


def write_test_file(path: Path, seconds: int, block_s: int = 10, seed: int = 0) -> None:
    """Write ``seconds`` of 48 kHz mono PCM_16 in ``block_s`` blocks (never the whole file in memory)."""
    rng = np.random.default_rng(seed)
    n_block = block_s * RATE
    t = np.arange(n_block) / RATE
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as fh:
        written = 0
        while written < seconds * RATE:
            n = min(n_block, seconds * RATE - written)
            # Syllable-rate bursts of noise plus two tones: something for every pane to show.
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * (t[:n] + written / RATE)) ** 2
            block = 0.05 * rng.standard_normal(n) * envelope
            block += 0.1 * np.sin(2 * np.pi * 440.0 * (t[:n] + written / RATE))
            block += 0.03 * np.sin(2 * np.pi * 3150.0 * (t[:n] + written / RATE))
            fh.write(block.astype(np.float32))
            written += n


def run_once(path: Path, pans: int, config_dir: Path, pan_window_s: float = 10.0) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", WORKBENCH_BENCH_MARKS="1",
               WORKBENCH_BENCH_PANS=str(pans), WORKBENCH_BENCH_PAN_WINDOW_S=str(pan_window_s),
               XDG_CONFIG_HOME=str(config_dir))
    launch = time.time()
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), str(path)], env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{path}: the window exited with {proc.returncode}\n{proc.stderr[-2000:]}")
    marks, pan_redraw, pan_complete, rss_kib = {}, [], [], None
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["WB_MARK"]:
            marks.setdefault(parts[1], float(parts[2]))
        elif parts[:1] == ["WB_PAN"]:
            pan_redraw.append(float(parts[1]))
            pan_complete.append(float(parts[2]))
        elif parts[:1] == ["WB_RSS"]:
            rss_kib = int(parts[1])
    missing = {"qapp", "spectrogram", "first_paint"} - set(marks)
    if missing:
        raise SystemExit(f"{path}: markers missing {missing}; stdout:\n{proc.stdout[-2000:]}")
    return {
        "imports_s": marks["qapp"] - launch,
        "qapp_to_spectrogram_s": marks["spectrogram"] - marks["qapp"],
        "launch_to_spectrogram_s": marks["spectrogram"] - launch,
        "qapp_to_overview_s": marks["first_paint"] - marks["qapp"],
        "peak_rss_mib": (rss_kib or 0) / 1024,
        "pan_redraw_ms": float(np.median(pan_redraw)) if pan_redraw else float("nan"),
        "pan_tiles_ms": float(np.median(pan_complete)) if pan_complete else float("nan"),
        "pans": len(pan_redraw),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pans", type=int, default=30, help="scripted pans per file (default 30)")
    parser.add_argument("--keep", type=Path, help="write the test files here and keep them")
    parser.add_argument("--repeat", type=int, default=2, help="runs per file; the best is reported")
    parser.add_argument("--pan-window", type=float, default=10.0, help="view width in seconds while panning")
    args = parser.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="wb_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for label, seconds in (("1 min", 60), ("1 hour", 3600)):
            path = folder / f"bench_{seconds}s_48k.wav"
            if not path.exists():
                t0 = time.perf_counter()
                write_test_file(path, seconds)
                print(f"wrote {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s",
                      flush=True)
            runs = [run_once(path, args.pans, folder / "config", args.pan_window) for _ in range(max(1, args.repeat))]
            best = min(runs, key=lambda r: r["qapp_to_spectrogram_s"])
            best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
            rows.append((label, best))
    finally:
        if args.keep is None:
            for p in folder.glob("bench_*.wav"):
                p.unlink()
    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}, Python {sys.version.split()[0]}, offscreen Qt")
    header = ("file", "imports s", "QApp->spectrogram s", "launch->spectrogram s", "QApp->overview s",
              "peak RSS MiB", f"pan redraw ms ({args.pan_window:g} s view)", "pan tiles ms")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for label, r in rows:
        print(f"{label} | {r['imports_s']:.2f} | {r['qapp_to_spectrogram_s']:.2f} | {r['launch_to_spectrogram_s']:.2f} | "
              f"{r['qapp_to_overview_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['pan_redraw_ms']:.1f} | "
              f"{r['pan_tiles_ms']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
