"""Worker processes that never outlive the workbench process that started them.

A model worker can be stuck inside a call that never returns (a graph with an endless loop, a runaway
native library). When the workbench ends normally it stops its workers; when it is killed (SIGKILL, the
out-of-memory killer, a crash of the interpreter) nothing runs to stop them, and a worker busy in such a
call would spin on a core for good. :func:`die_with_parent` starts a watchdog thread in the worker that
ends it once its parent is gone. (The kernel's parent-death signal is not used: Linux sends it when the
*thread* that started the worker ends, and the window starts workers from pool threads that come and go.)
"""

from __future__ import annotations

import os
import threading
import time

#: How often the watchdog looks whether the parent is still there (seconds).
WATCH_INTERVAL_S = 0.5


def _watch(parent_pid: int, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:  # re-parented: the process that started this one has ended
            os._exit(1)  # no clean-up can be trusted in a worker nobody waits for (it may be inside a stuck call)


def die_with_parent(parent_pid: int | None = None, interval_s: float = WATCH_INTERVAL_S) -> None:
    """End this process (at once, without clean-up) within ``interval_s`` of its parent ending.

    ``parent_pid``: the parent as it was when this process was started (default: the parent now). The
    watchdog is a daemon thread; model libraries that release the interpreter lock while they compute
    (onnxruntime, torch) leave it free to run, so a worker stuck in such a call still ends.
    """
    parent = os.getppid() if parent_pid is None else parent_pid
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch, args=(parent, interval_s), name="workbench-parent-watch", daemon=True).start()
