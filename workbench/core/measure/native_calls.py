"""Native calls that hold the interpreter lock, run in a helper process when the program is interactive.

PESQ's C library is called with the interpreter lock held (about 0.2–0.5 s per call on speech of a few
seconds): on a worker thread of the window it stops the event loop for as long, whatever the thread's
priority. :func:`call` runs such a function in one helper process (``multiprocessing`` *spawn*, started on
first use, kept for the next calls) once :func:`run_in_helper_process` turned that on — the window does at
start-up; the command line keeps calling in process, where nothing waits for the lock. The calling thread
waits on a pipe without the lock, so the window keeps answering.

The function and its arguments must pickle (a module-level function and arrays); its exceptions come back
as they were raised.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

_lock = threading.Lock()
_enabled = False
_pool: ProcessPoolExecutor | None = None


def run_in_helper_process(on: bool = True) -> None:
    """Whether :func:`call` runs its function in the helper process (``True``) or in this one."""
    global _enabled
    _enabled = bool(on)


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, in the helper process when that is turned on (see the module docstring)."""
    if not _enabled:
        return fn(*args)
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        pool = _pool
    try:
        return pool.submit(fn, *args).result()
    except BrokenProcessPool:
        # The helper died (killed, out of memory): a fresh one next time, this call in process.
        with _lock:
            if _pool is pool:
                _pool = None
        return fn(*args)


def shutdown() -> None:
    """End the helper process (if one runs)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
