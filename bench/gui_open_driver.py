"""Opens the workbench window on one file for ``bench_gui_open.py`` and reports what that bench reads.

    python bench/gui_open_driver.py FILE [--pans N] [--pan-window-s S]

Prints ``WB_MARK <name> <unix time> <GUI-thread CPU s> <process CPU s>`` at the window's start-up milestones (``qapp``, ``window``,
``spectrogram``, ``first_paint``; see ``workbench.gui.app.run_gui``), then with ``--pans N`` zooms to a
``--pan-window-s`` window at a quarter of the file, as when someone reads through a recording, pans right
by 10 % per step and prints ``WB_PAN <redraw ms> <tiles complete ms>`` per pan and the medians; finally
``WB_RSS <peak KiB>``. Without ``--pans`` the window closes after the first paint. ``--code DIR`` runs the
workbench package of another checkout (same-run comparisons).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path



def mark(name: str) -> None:
    # CPU seconds of the GUI thread (the marks are called on it) and of the whole process: on a busy
    # machine they change far less than the wall-clock times.
    print(f"WB_MARK {name} {time.time():.6f} {time.thread_time():.6f} {time.process_time():.6f}", flush=True)


def pan_through(app, window, count: int, width_s: float) -> None:
    """Redraw time of each pan (one synchronous paint of the moved view: what a drag costs per displayed
    frame) and the time until its tiles are complete."""
    view = window.view
    duration = view.source.frames / view.sample_rate
    start = max(0.0, min(duration * 0.25, duration - width_s * (1 + 0.1 * count)))
    view.set_time_range(start, start + width_s)
    deadline = time.perf_counter() + 30
    app.processEvents()
    while not view.is_painted() and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)
    redraw, complete = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        view.pan(0.1)
        view.graphics.viewport().repaint()
        t1 = time.perf_counter()
        deadline = t1 + 30
        while not view.is_painted() and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.001)
        t2 = time.perf_counter()
        redraw.append((t1 - t0) * 1000)
        complete.append((t2 - t0) * 1000)
        print(f"WB_PAN {redraw[-1]:.2f} {complete[-1]:.2f}", flush=True)
    if redraw:
        print(f"WB_PAN_MEDIAN {statistics.median(redraw):.2f} {statistics.median(complete):.2f}", flush=True)
    window.close()
    app.quit()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--pans", type=int, default=0)
    ap.add_argument("--pan-window-s", type=float, default=10.0)
    ap.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1],
                    help="checkout whose workbench package runs (default: this one)")
    args = ap.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    from workbench.gui.app import run_gui

    code = run_gui([args.file], on_mark=mark,
                   after_first_paint=lambda app, window: pan_through(app, window, args.pans, args.pan_window_s))
    print(f"WB_RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
