"""Background work in the GUI: one generator worker, and background priority for its threads.

:class:`GeneratorWorker` (below) wraps any core generator; every background thread of the GUI runs
through it, so each gets the priority rule explained here.

Why: the window must keep answering within 50 ms while a model runs and while its result is prepared
(tiles, overview, playback buffers, loudness). Measured on a 2-core machine, the long event-loop gaps
were not one long GIL-holding call but the GUI thread waiting for a core: a model thread (plus its
intra-op threads), two tile threads, the overview thread and the playback-preparation thread all
compete with it at equal priority, so a repaint that needs 20 ms of CPU took 60-70 ms of wall time.
Giving every background thread a lower scheduling priority lets the GUI thread run as soon as it is
runnable; the workers lose nothing when the GUI thread is idle, which is most of the time.

Linux: the per-thread nice value (``setpriority(PRIO_PROCESS, thread_id, nice)``; on Linux every
thread has its own nice value, and threads it starts inherit it, e.g. a model's intra-op threads).
Other systems: ``QThread.setPriority(LowPriority)``, which their schedulers honour.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from ..core.errors import Cancelled

#: Nice value of background threads (0 = normal, 19 = lowest). 10 gives a nice-0 thread about ten times
#: the CPU share of a nice-10 thread when both want the same core.
BACKGROUND_NICE = 10


def lower_current_thread_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Lower the scheduling priority of the calling thread (call it first thing in a worker's ``run``).

    Never raises the priority (an unprivileged process could not take it back); returns whether the
    thread now runs at background priority. The GUI (main) thread is never lowered.
    """
    if threading.current_thread() is threading.main_thread():
        return False
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        tid = threading.get_native_id()
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            return os.getpriority(os.PRIO_PROCESS, tid) >= nice
        except OSError:  # e.g. a sandbox that forbids it: work goes on at normal priority
            return False
    QThread.currentThread().setPriority(QThread.Priority.LowPriority)
    return True


# -- the one worker ----------------------------------------------------------------------------------------

class _Signals(QObject):
    started = Signal()
    progress = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    cancelled = Signal()
    finished = Signal()


class GeneratorWorker(QObject):
    """Runs a core generator (or a plain function) on a background thread; napari's
    ``GeneratorWorker`` is the model.

    ``work`` is a generator object, or a callable (called on the worker thread with ``args``/``kwargs``)
    returning a generator or a plain value. For a generator every ``yield`` becomes one ``progress``
    signal (the yielded object, usually a :class:`~workbench.core.enhancer.Progress`), and
    :meth:`cancel` is honoured between yields: the generator is closed (its ``finally`` blocks release
    what it holds) and ``cancelled`` is emitted. The thread runs at background priority
    (:func:`lower_current_thread_priority`).

    Signals (queued to the GUI thread; exactly one of returned/errored/cancelled, then finished):
        started(): the work began on the worker thread.
        progress(object): one per yield.
        returned(object): the generator's return value (or the function's result).
        errored(object): the exception it raised (:class:`~workbench.core.errors.Cancelled` excluded).
        cancelled(): stopped by :meth:`cancel` (or raised Cancelled).
        finished(): always last.

    Safe when the owner goes away: the worker keeps itself alive until ``finished``; give it no Qt
    parent, connect bound methods of QObjects (Qt disconnects them when the receiver is deleted), and call
    :meth:`cancel` + :meth:`wait` from the owner's close/shutdown.

    Example::

        worker = GeneratorWorker(recording.enhance, enhancer, channels)
        worker.progress.connect(lambda p: bar.setValue(int(1000 * p.fraction)))
        worker.returned.connect(on_versions)
        worker.start()
    """

    _alive: set["GeneratorWorker"] = set()

    def __init__(self, work: Any, *args, pool: QThreadPool | None = None, nice: bool = True, **kwargs):
        super().__init__(None)
        self._work, self._args, self._kwargs = work, args, kwargs
        self._pool = pool
        self._nice = nice
        self._abort = threading.Event()
        self._done = threading.Event()
        self._started = False
        self._signals = _Signals()
        self.started = self._signals.started
        self.progress = self._signals.progress
        self.returned = self._signals.returned
        self.errored = self._signals.errored
        self.cancelled = self._signals.cancelled
        self.finished = self._signals.finished
        #: outcome once finished: "done", "failed" or "cancelled"
        self.outcome: str | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._signals.finished.connect(self._release)

    # -- control (GUI thread) ----------------------------------------------------------------------------
    def start(self) -> "GeneratorWorker":
        """Queue the work on the pool (default: the global QThreadPool). Returns ``self``."""
        if self._started:
            raise RuntimeError("a GeneratorWorker runs once")
        self._started = True
        GeneratorWorker._alive.add(self)
        runnable = QRunnable.create(self._run)
        (self._pool or QThreadPool.globalInstance()).start(runnable)
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next yield (thread-safe). A plain function runs to its end."""
        self._abort.set()

    quit = cancel  # napari's name

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def is_running(self) -> bool:
        return self._started and not self._done.is_set()

    def wait(self, timeout_ms: int | None = None) -> bool:
        """Block until the work ended (``True``) or ``timeout_ms`` passed (``False``). Signals already
        emitted are still delivered by the event loop afterwards."""
        if not self._started:
            return True
        return self._done.wait(None if timeout_ms is None else timeout_ms / 1000)

    def _release(self) -> None:
        GeneratorWorker._alive.discard(self)

    # -- worker thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        if self._nice:
            lower_current_thread_priority()
        sig = self._signals
        try:
            sig.started.emit()
            work = self._work
            if callable(work) and not inspect.isgenerator(work):
                work = work(*self._args, **self._kwargs)
            if inspect.isgenerator(work):
                result = self._drive(work)
            else:
                result = work
        except Cancelled:
            self.outcome = "cancelled"
            sig.cancelled.emit()
        except BaseException as exc:  # reported on the GUI thread; a worker must never take the app down
            self.outcome, self.error = "failed", exc
            sig.errored.emit(exc)
        else:
            self.outcome, self.result = "done", result
            sig.returned.emit(result)
        finally:
            self._done.set()
            sig.finished.emit()

    def _drive(self, gen) -> Any:
        try:
            while True:
                if self._abort.is_set():
                    raise Cancelled("cancelled on request")
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                self._signals.progress.emit(item)
        finally:
            gen.close()


def create_worker(work: Callable | Any, *args, start: bool = True, **kwargs) -> GeneratorWorker:
    """Build a :class:`GeneratorWorker` for ``work`` (see there) and, by default, start it."""
    worker = GeneratorWorker(work, *args, **kwargs)
    return worker.start() if start else worker
