"""How many threads models may use: one convention for torch and onnxruntime models alike.

``WORKBENCH_THREADS`` (else ``OMP_NUM_THREADS``) fixes the count. Without it, a model that gains from
intra-op threads (NSNet2's offline path) asks :func:`auto_threads`: the cores this process may run on (its CPU affinity) less
the ones other work keeps busy when the model is loaded, at least one. On a 2-core machine that is two
threads when the machine is quiet and one as soon as anything else runs: a second thread that has to
share a core with another process makes an onnxruntime run slower than one thread does (its threads
wait for each other at every operator), so a busy machine gets the one-thread speed, never less.

"Busy" is what the other processes use *now*: the larger of the CPU time the machine spent outside idle
during a short look (``BUSY_WINDOW_S`` of ``/proc/stat``; this process sleeps meanwhile) and the tasks
runnable at this moment besides this one. The 1-minute load average is only the fallback where neither
can be read: it lags a minute behind, so a machine that has just become free would still read as busy
(a second run of a batch right after the first would never get its second core).
"""

from __future__ import annotations

import os
import time

#: How long :func:`busy_cores` watches the machine's CPU time (seconds): long enough for a kernel that
#: counts in hundredths of a second to see a core that another process keeps busy.
BUSY_WINDOW_S = 0.1


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _runnable_now() -> int | None:
    """Tasks runnable at this moment across the machine, this one included (Linux ``/proc/loadavg``)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_times() -> tuple[int, int] | None:
    """``(busy, total)`` clock ticks of all CPUs since boot (Linux ``/proc/stat``; idle and I/O wait are
    not busy), else ``None``."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return total - fields[3] - fields[4], total


def _busy_over(window_s: float) -> float | None:
    """Cores kept busy during ``window_s`` (this process sleeps through it, so they are other work's)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(window_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def busy_cores(window_s: float = BUSY_WINDOW_S) -> float:
    """Cores other work is using now: ``max(busy over window_s, runnable tasks now - 1)``; the 1-minute
    load average where neither can be read; 0 when nothing can be."""
    measured = _busy_over(window_s)
    running = _runnable_now()
    if measured is None and running is None:
        try:
            return float(os.getloadavg()[0])
        except (AttributeError, OSError):
            return 0.0
    return max(measured or 0.0, float(running - 1) if running else 0.0)


def auto_threads(limit: int | None = None) -> int:
    """Intra-op threads for a model loaded now: the idle cores, rounded, between 1 and ``limit``.

    ``round(cores - busy)``: a quiet 2-core machine gets 2; one other process keeping a core busy, or a
    moment with another runnable task, gives 1. With ``limit == 1`` nothing is measured.
    """
    if limit == 1:
        return 1
    free = available_cores() - busy_cores()
    threads = max(1, int(free + 0.5))
    return min(threads, limit) if limit else threads


def threads_from_env(default: int | None = 1) -> int | None:
    """Intra-op thread count from ``WORKBENCH_THREADS``, else ``OMP_NUM_THREADS``, else ``default``.

    Models whose calls are big enough to gain from threads (NSNet2's offline chunks: 1.3x on two threads on
    the quiet 2-core machine) use ``threads_from_env(None) or auto_threads(limit)``; ``1`` suits models whose
    calls are small (GTCRN offline: RTF 0.016 with 1 thread, 0.032 with 2; DeepFilterNet3's 4 s chunks: 2x
    slower on two threads; frame-by-frame graphs).
    """
    for var in ("WORKBENCH_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return default
