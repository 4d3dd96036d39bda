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
import traceback
import types
import weakref
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal

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
    ended = Signal(int)   # internal, after finished: the pool thread no longer holds anything


class _Reaper(QObject):
    """Lives on the GUI thread and holds every started worker until its pool thread has let go of it, so
    the last reference to a worker's QObjects is always dropped on the GUI thread (a QObject destroyed on
    a pool thread while a queued call to it is pending crashes the process)."""

    def __init__(self) -> None:
        super().__init__()
        self.alive: dict[int, tuple["GeneratorWorker", "_Job"]] = {}

    def release(self, key: int) -> None:
        entry = self.alive.pop(key, None)
        if entry is not None:
            entry[1].released.wait(5.0)  # set right after `ended` was emitted: no real wait


_reaper: _Reaper | None = None
_pools: "weakref.WeakSet[QThreadPool]" = weakref.WeakSet()


def _the_reaper() -> _Reaper:
    global _reaper
    if _reaper is None:
        _reaper = _Reaper()
    return _reaper


class _Job:
    """What the pool thread holds: the work and the signals, never the GeneratorWorker itself."""

    def __init__(self, key: int, work, args, kwargs, signals: _Signals, abort: threading.Event, nice: bool):
        self.key, self.work, self.args, self.kwargs = key, work, args, kwargs
        self.signals, self.abort, self.nice = signals, abort, nice
        self.done = threading.Event()       # the work ended (signals emitted)
        self.released = threading.Event()   # the pool thread dropped its references
        self.outcome: str | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:  # pool thread
        if self.nice:
            lower_current_thread_priority()
        outcome, payload, work = "done", None, None
        try:
            if self.abort.is_set():  # cancelled while queued: do not start at all
                raise Cancelled("cancelled before it started")
            self._emit("started")
            work, args, kwargs = self.work, self.args, self.kwargs
            self.work = self.args = self.kwargs = None
            if callable(work) and not inspect.isgenerator(work):
                work = work(*args, **kwargs)
            args = kwargs = None
            payload = self._drive(work) if inspect.isgenerator(work) else work
        except Cancelled as exc:
            outcome = "cancelled"
            traceback.clear_frames(exc.__traceback__)
        except BaseException as exc:  # reported on the GUI thread; a worker must never take the app down
            outcome, payload = "failed", exc
            # The frames of the traceback may hold the work's closures (and through them GUI objects):
            # drop their locals here, so nothing outlives the job on this thread.
            traceback.clear_frames(exc.__traceback__)
        finally:
            work = args = kwargs = None
            self.work = self.args = self.kwargs = None
        self.outcome = outcome
        if outcome == "done":
            self.result = payload
            self._emit("returned", payload)
        elif outcome == "failed":
            self.error = payload
            self._emit("errored", payload)
        else:
            self._emit("cancelled")
        payload = None
        self.done.set()
        self._emit("finished")
        self._emit("ended", self.key)
        self.signals = None
        self.released.set()

    def _emit(self, name: str, *args) -> bool:
        """Emit ``name`` unless the signals' object is gone (its owner was destroyed, e.g. a window closed
        while this ran): then the result has no one to go to and is dropped quietly."""
        sig = self.signals
        if sig is None or not shiboken6.isValid(sig):
            return False
        try:
            getattr(sig, name).emit(*args)
        except RuntimeError:  # deleted between the check and the emit
            return False
        return True

    def _drive(self, gen) -> Any:
        try:
            while True:
                if self.abort.is_set():
                    raise Cancelled("cancelled on request")
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                self._emit("progress", item)
                item = None
        finally:
            gen.close()
            gen = None


#: Runnables handed to a pool and not yet started. The pool owns the C++ object, but nothing in Python
#: held the wrapper: a garbage collection before the pool got to it could leave the pool running a
#: wrapper without its attributes ("'_Runnable' object has no attribute '_job'", seen once in the suite).
_QUEUED: set = set()
_QUEUED_LOCK = threading.Lock()


class _Runnable(QRunnable):
    def __init__(self, job: _Job):
        super().__init__()
        self._job = job
        self.setAutoDelete(True)
        with _QUEUED_LOCK:
            _QUEUED.add(self)

    def run(self) -> None:
        job, self._job = self._job, None
        with _QUEUED_LOCK:
            _QUEUED.discard(self)  # this call's frame keeps the wrapper until run returns
        job.run()


class GeneratorWorker(QObject):
    """Runs a core generator (or a plain function) on a background thread; napari's
    ``GeneratorWorker`` is the model.

    ``work`` is a generator object, or a callable (called on the worker thread with ``args``/``kwargs``)
    returning a generator or a plain value. For a generator every ``yield`` becomes one ``progress``
    signal (the yielded object, usually a :class:`~workbench.core.progress.Progress`), and
    :meth:`cancel` is honoured between yields: the generator is closed (its ``finally`` blocks release
    what it holds) and ``cancelled`` is emitted. The thread runs at background priority
    (:func:`lower_current_thread_priority`).

    Signals (queued to the GUI thread; exactly one of returned/errored/cancelled, then finished):
        started(): the work began on the worker thread.
        progress(object): one per yield.
        returned(object): the generator's return value (or the function's result).
        errored(object): the exception it raised (:class:`~workbench.core.errors.Cancelled` excluded).
        cancelled(): stopped by :meth:`cancel` (or raised Cancelled), or cancelled before it started.
        finished(): always last.

    Safe when the owner goes away: the worker is kept alive until its thread has let go of it, and the
    pool thread never holds the worker itself (only the work and the signals), so its QObjects are always
    destroyed on the GUI thread. Connect bound methods of QObjects (Qt disconnects them when the receiver
    is deleted), and call :meth:`cancel` + :meth:`wait` from the owner's close/shutdown.

    Example::

        worker = GeneratorWorker(recording.enhance, enhancer, channels)
        worker.progress.connect(lambda p: bar.setValue(int(1000 * p.fraction)))
        worker.returned.connect(on_versions)
        worker.start()
    """

    _keys = iter(range(1, 1 << 62))

    def __init__(self, work: Any, *args, pool: QThreadPool | None = None, nice: bool = True, **kwargs):
        super().__init__(None)
        self._pool = pool
        self._abort = threading.Event()
        self._signals = _Signals()
        self._job = _Job(next(GeneratorWorker._keys), work, args, kwargs, self._signals, self._abort, nice)
        self._started = False
        self.started = self._signals.started
        self.progress = self._signals.progress
        self.returned = self._signals.returned
        self.errored = self._signals.errored
        self.cancelled = self._signals.cancelled
        self.finished = self._signals.finished

    # -- outcome -----------------------------------------------------------------------------------------
    @property
    def outcome(self) -> str | None:
        """``"done"``, ``"failed"`` or ``"cancelled"`` once finished, else ``None``."""
        return self._job.outcome

    @property
    def result(self) -> Any:
        return self._job.result

    @property
    def error(self) -> BaseException | None:
        return self._job.error

    # -- control (GUI thread) ----------------------------------------------------------------------------
    def start(self, priority: int = 0) -> "GeneratorWorker":
        """Queue the work on the pool (default: the global QThreadPool) with QThreadPool's ``priority``
        (higher runs first). Returns ``self``."""
        if self._started:
            raise RuntimeError("a GeneratorWorker runs once")
        self._started = True
        reaper = _the_reaper()
        reaper.alive[self._job.key] = (self, self._job)
        self._signals.ended.connect(reaper.release, Qt.ConnectionType.QueuedConnection)
        pool = self._pool or QThreadPool.globalInstance()
        _pools.add(pool)
        pool.start(_Runnable(self._job), priority)
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next yield (thread-safe). A plain function runs to its end."""
        self._abort.set()

    quit = cancel  # napari's name

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def should_stop(self) -> bool:
        """Thread-safe: whether :meth:`cancel` was called. Hand it to core generators that can also stop
        inside one step (``compute_tile(..., should_stop=worker.should_stop)``)."""
        return self._abort.is_set()

    def is_running(self) -> bool:
        return self._started and not self._job.done.is_set()

    def wait(self, timeout_ms: int | None = None) -> bool:
        """Block until the work ended (``True``) or ``timeout_ms`` passed (``False``). Signals already
        emitted are still delivered by the event loop afterwards."""
        if not self._started:
            return True
        return self._job.done.wait(None if timeout_ms is None else timeout_ms / 1000)


def stop_all_workers(timeout_ms: int = 30000) -> bool:
    """Cancel every started worker and wait for the pools they run on; returns whether all ended.

    Call it when the window closes, before the application and the interpreter go away: a pool thread
    still emitting while they are torn down crashes the process."""
    for _worker, job in list(_the_reaper().alive.values()):
        job.abort.set()
    ok = True
    # The global pool's Python wrapper can be collected between calls (and drop out of the weak set).
    for pool in {QThreadPool.globalInstance(), *_pools}:
        if shiboken6.isValid(pool):  # a widget's pool may already be gone with its widget
            ok = pool.waitForDone(timeout_ms) and ok
    return ok


def create_worker(work: Callable | Any, *args, start: bool = True, **kwargs) -> GeneratorWorker:
    """Build a :class:`GeneratorWorker` for ``work`` (see there) and, by default, start it."""
    worker = GeneratorWorker(work, *args, **kwargs)
    return worker.start() if start else worker


def run_with_progress(parent, title: str, work: Callable | Any, *args, busy: bool = False,
                      **kwargs) -> GeneratorWorker:
    """Run ``work(*args, **kwargs)`` (a core generator function, or with ``busy`` a plain function) on a
    worker thread and wait for it while the event loop keeps running, so the window keeps painting.

    A window-modal progress dialog over ``parent`` (shown only after 0.4 s) carries the generator's
    messages and fraction, and its Cancel button stops the work at the next step; a plain function
    (``busy=True``) gets a busy bar and no Cancel button (it cannot be stopped inside). While it runs the
    dialog is ``parent.progress_dialog`` (``None`` afterwards). Returns the finished worker: ``outcome``
    (``"done"``, ``"failed"``, ``"cancelled"``), ``result``, ``error``.
    """
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QProgressDialog

    worker = GeneratorWorker(work, *args, **kwargs)
    dialog = QProgressDialog(title, "Cancel", 0, 0 if busy else 1000, parent)
    dialog.setWindowTitle(title)
    dialog.setMinimumWidth(380)  # messages change length per step; the dialog should not jump
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(400)
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    if busy:
        dialog.setCancelButton(None)
    dialog.setValue(0)
    parent.progress_dialog = dialog

    def show(p) -> None:
        if not busy:
            dialog.setValue(int(1000 * min(max(float(getattr(p, "fraction", 0.0)), 0.0), 1.0)))
        dialog.setLabelText(str(getattr(p, "message", "")) or title)
    waiting = QEventLoop()
    worker.progress.connect(show)
    dialog.canceled.connect(worker.cancel)
    worker.finished.connect(waiting.quit)
    # Also look at the job itself now and then: the loop ends once the work has ended, whether or not
    # its queued finished() has been delivered yet.
    watch = QTimer()
    watch.setInterval(100)
    watch.timeout.connect(lambda: worker.wait(0) and waiting.quit())
    worker.start()
    if not worker.wait(0):
        watch.start()
        waiting.exec()  # until the work ends
        watch.stop()
    worker.wait()
    worker.progress.disconnect(show)  # progress still queued must not reach the closed dialog
    worker.finished.disconnect(waiting.quit)
    dialog.canceled.disconnect(worker.cancel)
    dialog.close()
    dialog.deleteLater()
    parent.progress_dialog = None
    return worker


def job_steps(work, *args, **kwargs):
    """A generator running ``work(*args, **kwargs)`` — a generator function or a plain one — to its result, so
    that any background work can be a :class:`~workbench.core.document.session.Job` (``session.new_job``)."""
    result = work(*args, **kwargs)
    if isinstance(result, types.GeneratorType):
        result = yield from result
    return result
