"""Benchmark: open 1-minute and 1-hour 48 kHz mono recordings in the inspection window.

Measures, for each file, in a fresh process with ``QT_QPA_PLATFORM=offscreen``:
    * launch -> QApplication created (imports of Python, numpy, scipy, Qt, pyqtgraph);
    * QApplication -> first painted spectrogram (all four panes show the visible tiles), and full
      process launch -> same;
    * QApplication -> overview complete (the min/max waveform pass over the whole file), and full process
      launch -> same; the overview pass alone (in a process of its own, file in the page cache);
    * peak resident memory of the process (``ru_maxrss``);
    * redraw time per scripted pan of 10 % of a 10-second view through the view box (GUI thread: move
      the view and repaint the panes; median), and the time until the newly exposed tiles are drawn
      (median); ``--pan-window`` changes the view width.

With ``--model-stall MODEL`` (repeatable) it instead measures how responsive the window stays while a
model runs: a 10-minute 48 kHz file is opened, MODEL is started from the model panel, and a
5 ms QTimer records the gaps between its ticks; the longest gap minus 5 ms is the longest event-loop
stall. It is reported for the run itself and for the moment the result arrives (the version is added,
the transport prepares it for playback, the panes repaint). ``--stall-trace`` also prints, for every gap
over 50 ms, the stacks of the GUI thread and the workers sampled during it (see :class:`StallTracer`).

Python runs from compiled bytecode, as an installed package does (pip compiles it; a checkout writes it on the
first start): the bench gives every run the same bytecode cache folder (``PYTHONPYCACHEPREFIX``) and makes one
unmeasured start first. ``--source-only`` instead compiles every module on every start (what a process with
``PYTHONDONTWRITEBYTECODE`` set and no cache pays).

The driver also reports CPU seconds (GUI thread, whole process) spent up to the first painted spectrogram:
on a busy shared machine they vary far less than wall-clock times.

``--baseline DIR`` also runs the code of another checkout (e.g. ``git worktree add /tmp/base main``),
interleaved with this one's runs on the same files, and prints both with the ratios: figures of one run on
a shared machine are comparable only with each other.

Usage::

    .venv/bin/python bench/bench_gui_open.py [--pans 30] [--keep DIR] [--baseline DIR]
    .venv/bin/python bench/bench_gui_open.py --model-stall deepfilternet3 [--stall-minutes 10] [--stall-trace]

The test files are written in blocks (PCM_16, noise-like speech stand-in: band-limited noise bursts
with a few tones) to a temporary folder and removed afterwards unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def run_once(path: Path, pans: int, config_dir: Path, pan_window_s: float = 10.0, repo: Path = REPO,
             pycache: Path | None = None) -> dict:
    """One start of the window on ``path`` running the code of checkout ``repo``; ``pycache``: the bytecode
    cache folder (``None``: compile from source every time)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(config_dir))
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    launch = time.time()
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gui_open_driver.py"), str(path), "--code", str(repo),
                           "--pans", str(pans), "--pan-window-s", str(pan_window_s)], env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{path}: the window exited with {proc.returncode}\n{proc.stderr[-2000:]}")
    marks, cpu, pan_redraw, pan_complete, rss_kib = {}, {}, [], [], None
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["WB_MARK"]:
            marks.setdefault(parts[1], float(parts[2]))
            cpu.setdefault(parts[1], (float(parts[3]), float(parts[4])))
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
        "launch_to_overview_s": marks["first_paint"] - launch,
        "gui_cpu_to_spectrogram_s": cpu["spectrogram"][0],
        "cpu_to_spectrogram_s": cpu["spectrogram"][1],
        "peak_rss_mib": (rss_kib or 0) / 1024,
        "pan_redraw_ms": float(np.median(pan_redraw)) if pan_redraw else float("nan"),
        "pan_tiles_ms": float(np.median(pan_complete)) if pan_complete else float("nan"),
        "pans": len(pan_redraw),
    }


_ENVELOPE_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from workbench.core.audio.audio_io import open_source
from workbench.core.views.tiles import waveform_envelope
source = open_source(sys.argv[2])
t0 = time.perf_counter()
for _ in waveform_envelope(source, 0, 4000):
    pass
print(time.perf_counter() - t0)
"""


def time_overview_pass(path: Path, repo: Path) -> float:
    """Seconds of the overview's min/max pass (4000 buckets) over ``path`` alone, in a fresh process running
    the code of ``repo`` (the file is in the page cache: decoding, not the disk, is measured)."""
    proc = subprocess.run([sys.executable, "-c", _ENVELOPE_SCRIPT, str(repo), str(path)], capture_output=True,
                          text=True, timeout=600, check=True)
    return float(proc.stdout.split()[-1])


class StallTracer:
    """Samples every thread's Python stack while the GUI thread is late (``--stall-trace``).

    A watchdog thread wakes every 2 ms; while the 5 ms timer's last tick is more than ``start_ms`` old it
    records every thread's stack (``faulthandler.dump_traceback``). A gap with samples all along is Python work on the GUI thread (its
    stack says which); a gap in which the watchdog itself got no samples was a GIL-holding C call or a
    machine without a free core (the other threads' stacks right after it say whose).
    """

    def __init__(self, start_ms: float = 25.0):
        import threading

        self.start_s = start_ms / 1000
        self.last = time.perf_counter()
        self.episodes: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="stall-tracer")

    def tick(self, now: float) -> None:
        self.last = now

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _stacks(scratch) -> dict[int, list[str]]:
        """Every thread's stack (innermost first) by thread id, via faulthandler.

        faulthandler walks the frames in C without taking references. Holding frame objects from
        ``sys._current_frames()`` instead can make this thread the last owner of a finished frame, whose
        locals (Qt objects) would then be destroyed here: that deadlocked against the GUI thread.
        """
        import faulthandler

        scratch.seek(0)
        scratch.truncate()
        faulthandler.dump_traceback(scratch, all_threads=True)
        scratch.flush()
        scratch.seek(0)
        stacks: dict[int, list[str]] = {}
        current: list[str] | None = None
        for line in scratch.read().decode("utf-8", "replace").splitlines():
            if line.startswith(("Thread 0x", "Current thread 0x")):
                current = stacks.setdefault(int(line.split("0x")[1].split()[0], 16), [])
            elif current is not None and line.strip().startswith("File "):
                # '  File "/path/x.py", line 12 in func'
                path, _, rest = line.strip()[6:].partition('", line ')
                lineno, _, func = rest.partition(" in ")
                current.append(f"{func} ({Path(path).name}:{lineno})")
        return stacks

    def _watch(self) -> None:
        import tempfile
        import threading

        main_id = threading.main_thread().ident
        current = None
        scratch = tempfile.TemporaryFile()
        while not self._stop.is_set():
            time.sleep(0.002)
            last = self.last
            if time.perf_counter() - last < self.start_s:
                if current is not None:
                    current["gap_ms"] = (last - current["since"]) * 1000
                    current = None
                continue
            if current is None or current["since"] != last:
                current = {"since": last, "samples": [], "gap_ms": None}
                self.episodes.append(current)
            names = {t.ident: t.name for t in threading.enumerate()}
            at_ms = (time.perf_counter() - last) * 1000
            for tid, stack in self._stacks(scratch).items():
                if tid != threading.get_ident() and stack:
                    who = "GUI" if tid == main_id else names.get(tid, str(tid))
                    current["samples"].append((at_ms, who, " <- ".join(stack[:8 if who == "GUI" else 5])))
        scratch.close()

    def report(self, over_ms: float = 50.0) -> str:
        lines = []
        for ep in self.episodes:
            if ep["gap_ms"] is None or ep["gap_ms"] < over_ms:
                continue
            lines.append(f"  gap {ep['gap_ms']:.0f} ms:")
            seen = set()
            for at_ms, who, stack in ep["samples"]:
                if (who, stack) not in seen:
                    seen.add((who, stack))
                    lines.append(f"    +{at_ms:.0f} ms {who}: {stack}")
        return "\n".join(lines)


def measure_model_stall(path: Path, model: str, config: Path, trace: bool = False) -> dict:
    """Run ``model`` on ``path`` in the main window (in this process, offscreen); event-loop gaps in ms.
    With ``trace``, a :class:`StallTracer` report of the gaps over 50 ms is returned under ``"trace"``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from workbench.gui.app import make_application

    app = make_application()
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from workbench.core.audio.playback import PlaybackEngine
    from workbench.gui.main_window import MainWindow

    settings = QSettings(str(config / f"stall_{model}.ini"), QSettings.Format.IniFormat)
    errors: list[str] = []
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: errors.append(msg),
                   playback_engine=PlaybackEngine(None))
    w.ask_unsaved = lambda unsaved: "discard"  # closing at the end must not wait for a dialog
    w.resize(1500, 950)
    w.show()
    w.open_files([path])
    loop = QEventLoop()
    w.view.painted.connect(loop.quit)
    loop.exec()
    w.view.painted.disconnect(loop.quit)
    interval_ms = 5
    gaps: dict[str, list[float]] = {"run": [], "result": []}
    phase = {"name": "run", "last": time.perf_counter()}

    tracer = StallTracer() if trace else None

    def tick() -> None:
        now = time.perf_counter()
        gaps[phase["name"]].append((now - phase["last"]) * 1000)
        phase["last"] = now
        if tracer is not None:
            tracer.tick(now)

    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(tick)
    panel = w.model_panel
    panel.select(model)
    done = QEventLoop()

    def finished(outcome: str) -> None:
        phase["name"] = "result"
        phase["outcome"] = outcome
        if outcome != "done":
            done.quit()
        elif w.view.is_painted():
            QTimer.singleShot(200, done.quit)
        else:
            w.view.painted.connect(lambda: QTimer.singleShot(200, done.quit))

    panel.runFinished.connect(finished)
    t0 = time.perf_counter()
    timer.start()
    phase["last"] = time.perf_counter()
    if tracer is not None:
        tracer.tick(phase["last"])
        tracer.start()
    if not panel.start():
        raise SystemExit(f"{model}: could not start ({panel.last_error})")
    done.exec()
    total = time.perf_counter() - t0
    timer.stop()
    if tracer is not None:
        tracer.stop()
    if phase.get("outcome") != "done":
        raise SystemExit(f"{model}: run {phase.get('outcome')}: {panel.last_error or errors}")
    w.close()
    run, result = np.array(gaps["run"]), np.array(gaps["result"])
    return {"model": model, "run_s": panel.last_elapsed_s, "total_s": total,
            "run_max_stall_ms": float(run.max() - interval_ms), "run_p99_gap_ms": float(np.percentile(run, 99)),
            "result_max_stall_ms": float(result.max() - interval_ms) if result.size else float("nan"),
            "trace": tracer.report() if tracer is not None else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pans", type=int, default=30, help="scripted pans per file (default 30)")
    parser.add_argument("--keep", type=Path, help="write the test files here and keep them")
    parser.add_argument("--repeat", type=int, default=2, help="runs per file; medians are reported")
    parser.add_argument("--pan-window", type=float, default=10.0, help="view width in seconds while panning")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also run the driver of the checkout in DIR, interleaved, and print the ratios")
    parser.add_argument("--source-only", action="store_true",
                        help="no bytecode cache: every start compiles the modules it imports")
    parser.add_argument("--model-stall", action="append", default=[], metavar="MODEL",
                        help="measure event-loop stalls while MODEL enhances a long file (repeatable)")
    parser.add_argument("--stall-minutes", type=int, default=10, help="file length for --model-stall")
    parser.add_argument("--stall-trace", action="store_true",
                        help="with --model-stall: print the threads' stacks during every gap over 50 ms")
    args = parser.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="wb_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.model_stall:
        seconds = 60 * args.stall_minutes
        path = folder / f"bench_{seconds}s_48k.wav"
        if not path.exists():
            write_test_file(path, seconds)
        try:
            results = [measure_model_stall(path, m, folder, trace=args.stall_trace) for m in args.model_stall]
        finally:
            if args.keep is None:
                path.unlink()
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, offscreen Qt; "
              f"{args.stall_minutes}-minute 48 kHz mono file")
        header = ("model", "run s", "longest stall during run ms", "p99 tick gap ms",
                  "longest stall when the result arrives ms")
        print(" | ".join(header))
        print(" | ".join("---" for _ in header))
        for r in results:
            print(f"{r['model']} | {r['run_s']:.1f} | {r['run_max_stall_ms']:.0f} | {r['run_p99_gap_ms']:.1f} | "
                  f"{r['result_max_stall_ms']:.0f}")
        for r in results:
            if r["trace"]:
                print(f"\n{r['model']}: stacks during gaps over 50 ms\n{r['trace']}")
        return 0
    trees = [("this", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    pycache = None if args.source_only else Path(tempfile.mkdtemp(prefix="wb_bench_pycache_"))
    rows = []
    try:
        for label, seconds in (("1 min", 60), ("1 hour", 3600)):
            path = folder / f"bench_{seconds}s_48k.wav"
            if not path.exists():
                t0 = time.perf_counter()
                write_test_file(path, seconds)
                print(f"wrote {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s",
                      flush=True)
            if pycache is not None and not rows:
                for _, repo in trees:   # unmeasured: writes each tree's bytecode into the cache
                    run_once(path, 0, folder / "config", args.pan_window, repo, pycache)
            runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
            for _ in range(max(1, args.repeat)):
                for name, repo in trees:   # interleaved, so both see the same machine
                    runs[name].append(run_once(path, args.pans, folder / "config", args.pan_window, repo, pycache))
            for name, repo in trees:
                runs[name][0]["overview_pass_s"] = float(np.median(
                    [time_overview_pass(path, repo) for _ in range(max(1, args.repeat))]))
            for name, _ in trees:
                # Medians over the runs (--repeat), peak RSS the largest of them.
                median = {k: float(np.median([r[k] for r in runs[name] if k in r])) for k in runs[name][0]}
                median["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs[name])
                rows.append((label, name, median))
    finally:
        if args.keep is None:
            for p in folder.glob("bench_*.wav"):
                p.unlink()
        if pycache is not None:
            shutil.rmtree(pycache, ignore_errors=True)
    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}, Python {sys.version.split()[0]}, offscreen Qt, "
          f"{'modules compiled at every start' if pycache is None else 'bytecode cached'}, "
          f"median of {max(1, args.repeat)} runs")
    header = ("file", "code", "imports s", "QApp->spectrogram s", "launch->spectrogram s", "QApp->overview s",
              "launch->overview s", "overview pass alone s", "GUI-thread CPU to spectrogram s", "process CPU to spectrogram s", "peak RSS MiB",
              f"pan redraw ms ({args.pan_window:g} s view)", "pan tiles ms")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for label, name, r in rows:
        print(f"{label} | {name} | {r['imports_s']:.2f} | {r['qapp_to_spectrogram_s']:.2f} | "
              f"{r['launch_to_spectrogram_s']:.2f} | {r['qapp_to_overview_s']:.2f} | {r['launch_to_overview_s']:.2f} | "
              f"{r['overview_pass_s']:.2f} | {r['gui_cpu_to_spectrogram_s']:.2f} | {r['cpu_to_spectrogram_s']:.2f} | "
              f"{r['peak_rss_mib']:.0f} | {r['pan_redraw_ms']:.1f} | {r['pan_tiles_ms']:.1f}")
    if args.baseline:
        print()
        by = {(label, name): r for label, name, r in rows}
        for label in ("1 min", "1 hour"):
            new, old = by[(label, "this")], by[(label, "baseline")]
            print(f"{label}: launch->spectrogram {new['launch_to_spectrogram_s']:.2f} s vs baseline "
                  f"{old['launch_to_spectrogram_s']:.2f} s (x{new['launch_to_spectrogram_s'] / old['launch_to_spectrogram_s']:.2f}), "
                  f"GUI-thread CPU x{new['gui_cpu_to_spectrogram_s'] / old['gui_cpu_to_spectrogram_s']:.2f}, "
                  f"process CPU x{new['cpu_to_spectrogram_s'] / old['cpu_to_spectrogram_s']:.2f}; "
                  f"QApp->overview {new['qapp_to_overview_s']:.2f} s vs {old['qapp_to_overview_s']:.2f} s "
                  f"(x{new['qapp_to_overview_s'] / old['qapp_to_overview_s']:.2f}), overview pass alone "
                  f"{new['overview_pass_s']:.2f} s vs {old['overview_pass_s']:.2f} s "
                  f"(x{new['overview_pass_s'] / old['overview_pass_s']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
