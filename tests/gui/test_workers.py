"""The one generator worker: progress per yield, cancel between yields, background priority, outcomes."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from workbench.core.progress import Progress
from workbench.gui.workers import BACKGROUND_NICE, GeneratorWorker, create_worker


def counting(n, gate=None):
    for i in range(n):
        if gate is not None:
            gate.wait(5)
        yield Progress((i + 1) / n, f"step {i + 1}")
    return n * 10


def test_progress_per_yield_then_returned(qtbot):
    got = []
    worker = GeneratorWorker(counting, 4)
    worker.progress.connect(lambda p: got.append(p.fraction))
    order = []
    worker.returned.connect(lambda r: order.append(("returned", r)))
    worker.finished.connect(lambda: order.append(("finished", None)))
    worker.start()
    qtbot.waitUntil(lambda: len(order) == 2)
    assert order == [("returned", 40), ("finished", None)]
    assert got == [0.25, 0.5, 0.75, 1.0]
    assert worker.outcome == "done" and worker.result == 40


def test_cancel_between_yields_closes_the_generator(qtbot):
    closed = threading.Event()
    gate = threading.Event()

    def gen():
        try:
            for i in range(1000):
                gate.wait(5)
                gate.clear()
                yield Progress(i / 1000)
        finally:
            closed.set()
    worker = create_worker(gen())
    worker.progress.connect(lambda _p: (worker.cancel(), gate.set()))
    with qtbot.waitSignal(worker.cancelled):
        gate.set()
    qtbot.waitUntil(lambda: not worker.is_running())
    assert closed.is_set() and worker.outcome == "cancelled"


def test_errors_are_reported_not_raised(qtbot):
    def boom():
        yield Progress(0.1)
        raise RuntimeError("model exploded")
    worker = GeneratorWorker(boom)
    with qtbot.waitSignal(worker.errored) as blocker:
        worker.start()
    assert isinstance(blocker.args[0], RuntimeError) and "exploded" in str(blocker.args[0])
    assert worker.outcome == "failed"


def test_plain_functions_run_too(qtbot):
    worker = GeneratorWorker(lambda a, b: a + b, 2, 3)
    with qtbot.waitSignal(worker.returned) as blocker:
        worker.start()
    assert blocker.args == [5]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_worker_threads_run_at_background_priority(qtbot):
    def nice_of_thread():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = GeneratorWorker(nice_of_thread)
    with qtbot.waitSignal(worker.returned) as blocker:
        worker.start()
    assert blocker.args[0] >= BACKGROUND_NICE


def test_worker_outlives_a_deleted_owner(qtbot):
    """An owner widget deleted mid-run: the worker still finishes cleanly (no crash, no Qt warning)."""
    from PySide6.QtWidgets import QLabel

    gate = threading.Event()
    owner = QLabel()
    worker = GeneratorWorker(counting, 3, gate)
    worker.progress.connect(owner.setText)  # a slot on the doomed owner
    worker.start()
    owner.deleteLater()
    qtbot.waitUntil(lambda: not owner.isVisible())
    with qtbot.waitSignal(worker.finished):
        gate.set()
    assert worker.outcome == "done"
