"""Benchmark: how long the window stops answering during the actions that used to freeze it.

Each action runs in a fresh process (so "the first GTCRN run in a process" really is the first) with the
main window offscreen. A QTimer firing every ``--interval-ms`` (default 2 ms) records the gaps between its
ticks; a gap longer than the interval is the time the event loop could not run (a stall). Printed per
action: the worst stall (longest gap minus the interval), the number of stalls over 50 ms, and how long
the action took. ``--trace`` also prints, for every stall over 50 ms, the stacks of the GUI thread and the
workers sampled during it (bench_gui_open's StallTracer).

Actions:
    gtcrn-first   open a 10 s 16 kHz recording, run GTCRN (DNS3) from the Models panel: the process's first
                  torch model, from pressing Enhance until the result is shown and ready to play;
    phase-lab     the phase lab on dns3/0015 with two model versions and its clean reference: 17 versions
                  (oracle masks, swaps, Griffin-Lim with 30 iterations), from Make versions until the table
                  and chart are filled;
    metrics-20    the Metrics panel measuring 20 versions of a 5 s recording against its reference
                  (intrusive metrics; ``--dnsmos`` adds DNSMOS), from Measure until every cell is filled.

Usage::

    .venv/bin/python bench/bench_stalls.py [ACTION ...] [--repeat 3] [--trace] [--dnsmos]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The real recordings carried with the tests (dns3/0015: noisy, clean, GTCRN and RNNoise outputs).
DATA = REPO / "tests" / "data"
ACTIONS = ("gtcrn-first", "phase-lab", "metrics-20")


def _speech(folder: Path, seconds: float, name: str):
    import numpy as np
    import soundfile as sf
    x, sr = sf.read(DATA / "dns3/0015_noisy.wav", dtype="float32")
    y = np.resize(x, int(seconds * sr)).astype(np.float32)
    path = folder / name
    sf.write(path, y, sr, subtype="PCM_16")
    return path, y, sr


def run_action(action: str, interval_ms: float, trace: bool, dnsmos: bool) -> dict:
    """Run ``action`` in this process; returns ``{"worst_ms", "over_50", "seconds", "trace"}``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from workbench.gui.app import make_application

    app = make_application()
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from workbench.core.audio.playback import PlaybackEngine
    from workbench.core.enhance.enhancer import EnhancerInfo
    from workbench.gui.main_window import MainWindow

    folder = Path(tempfile.mkdtemp(prefix="bench_stalls_"))
    settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: print(f"  {title}: {msg}"),
                   playback_engine=PlaybackEngine(None))
    w.ask_unsaved = lambda unsaved: "discard"
    w.resize(1366, 728)
    w.show()

    def wait_until(predicate, timeout_s: float = 600.0) -> None:
        end = time.perf_counter() + timeout_s
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(10)
        poll.timeout.connect(lambda: loop.quit() if predicate() or time.perf_counter() > end else None)
        poll.start()
        loop.exec()
        poll.stop()
        if not predicate():
            raise TimeoutError(f"{action}: did not finish in {timeout_s:.0f} s")

    def info(name: str, sr: int) -> EnhancerInfo:
        return EnhancerInfo(id=name, name=name, description="", sample_rate=sr, causal=True, latency_samples=0)

    # -- set the scene (not measured)
    if action == "gtcrn-first":
        path, _x, _sr = _speech(folder, 10.0, "take.wav")
        w.open_files([path])
        w.model_panel.ensure_listed()
        w.model_panel.select("gtcrn-dns3")
    elif action == "phase-lab":
        import numpy as np
        import soundfile as sf
        w.open_files([DATA / "dns3/0015_noisy.wav"])
        rec = w.document.recording
        for tag in ("GTCRN", "RNNoise"):
            y, sr = sf.read(DATA / f"dns3/0015_{tag}.wav", dtype="float32")
            y = np.pad(y, (0, max(0, rec.source.frames - len(y))))[:rec.source.frames]
            rec.add_enhanced(y, sr, info(tag, sr))
        w.metrics_panel.set_reference(DATA / "dns3/0015_clean.wav")
        w.phase_lab_dock.show()
        w.phase_lab_dock.raise_()
        w.phase_lab_panel.iter_spin.setValue(30)
    elif action == "metrics-20":
        import shutil
        # Beside its clean reference, so the panel pairs them as it does for real recordings.
        shutil.copy(DATA / "dns3/0015_clean.wav", folder / "0015_clean.wav")
        path, x, sr = _speech(folder, 5.0, "0015_noisy.wav")
        w.open_files([path])
        rec = w.document.recording
        for i in range(19):
            rec.add_enhanced(x * (0.3 + 0.03 * i), sr, info(f"gtcrn-variant-{i:02d}", sr))
        w.metrics_panel.reference_free_box.setChecked(dnsmos)
        w.metrics_panel.set_reference(folder / "0015_clean.wav")
        w.metrics_dock.show()
        w.metrics_dock.raise_()
        w.metrics_panel.cancel()
        w.metrics_panel.wait()
    else:
        raise SystemExit(f"unknown action {action!r}; choose from {', '.join(ACTIONS)}")
    wait_until(lambda: w.view.is_painted() and len(w.transport.engine.tracks) == len(w.document.recording.versions)
               and not getattr(w.model_panel, "loading", False) and w.model_panel.table.rowCount() > 3)
    time.sleep(0.2)

    # -- the measured action
    gaps: list[float] = []
    state = {"last": time.perf_counter()}
    tracer = None
    if trace:
        sys.path.insert(0, str(REPO / "bench"))
        from bench_gui_open import StallTracer
        tracer = StallTracer()
        tracer.start()

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - state["last"]) * 1000)
        state["last"] = now
        if tracer is not None:
            tracer.tick(now)

    timer = QTimer()
    timer.setInterval(int(interval_ms))
    timer.timeout.connect(tick)
    timer.start()
    state["last"] = time.perf_counter()
    t0 = time.perf_counter()
    if action == "gtcrn-first":
        n = len(w.document.recording.versions)
        w.model_panel.start()
        wait_until(lambda: len(w.document.recording.versions) > n and w.model_panel.worker is None
                   and len(w.transport.engine.tracks) == n + 1 and w.view.is_painted())
    elif action == "phase-lab":
        w.phase_lab_panel.make_versions()
        wait_until(lambda: w.phase_lab_panel.result is not None and not w.phase_lab_panel.running()
                   and len(w.transport.engine.tracks) == len(w.document.recording.versions))
    elif action == "metrics-20":
        panel = w.metrics_panel
        panel.compute()
        wait_until(lambda: not panel.running and not any(panel.missing()))
    seconds = time.perf_counter() - t0
    # A little after the end: what the last result queued (repaints, table fills) counts too.
    end = time.perf_counter() + 0.5
    wait_until(lambda: time.perf_counter() > end)
    timer.stop()
    if tracer is not None:
        tracer.stop()
    worst = max(gaps) - interval_ms if gaps else float("nan")
    out = {"worst_ms": round(worst, 1), "over_50": sum(1 for g in gaps if g - interval_ms > 50),
           "seconds": round(seconds, 2), "versions": len(w.document.recording.versions)}
    if tracer is not None:
        out["trace"] = tracer.report()
    w.close()
    app.processEvents()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("actions", nargs="*", default=list(ACTIONS), help=f"from {', '.join(ACTIONS)} (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="fresh processes per action (worst and median shown)")
    ap.add_argument("--interval-ms", type=float, default=2.0)
    ap.add_argument("--trace", action="store_true", help="stacks sampled during every stall over 50 ms")
    ap.add_argument("--dnsmos", action="store_true", help="metrics-20 also measures DNSMOS (minutes)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_action(args.child, args.interval_ms, args.trace, args.dnsmos)))
        return 0
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; event-loop ping every "
          f"{args.interval_ms:g} ms")
    for action in args.actions:
        runs = []
        for _ in range(args.repeat):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", action,
                   "--interval-ms", str(args.interval_ms)] + (["--trace"] if args.trace else []) + \
                  (["--dnsmos"] if args.dnsmos else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                print(f"{action}: failed\n{proc.stderr[-3000:]}")
                break
            runs.append(json.loads(lines[-1]))
        if not runs:
            continue
        worst = sorted(r["worst_ms"] for r in runs)
        print(f"{action:12s} worst stall {worst[-1]:7.1f} ms (median of {len(runs)}: {worst[len(worst) // 2]:.1f} ms)"
              f"; stalls > 50 ms: {max(r['over_50'] for r in runs)}; action took "
              f"{min(r['seconds'] for r in runs):.1f} s; {runs[-1]['versions']} versions")
        for r in runs:
            if r.get("trace"):
                print(r["trace"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
