"""Scheduling of background work: worker threads yield the CPU to the GUI thread.

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

import os
import sys
import threading

from PySide6.QtCore import QThread

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
