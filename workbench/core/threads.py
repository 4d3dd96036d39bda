"""How many threads models may use: one convention for torch and onnxruntime models alike.

``WORKBENCH_THREADS`` (else ``OMP_NUM_THREADS``) fixes the count. Without it, a model that gains from
intra-op threads (NSNet2's offline path) asks :func:`auto_threads`: the cores this process may run on (its CPU affinity) less
the ones other work keeps busy when the model is loaded, at least one. On a 2-core machine that is two
threads when the machine is quiet and one as soon as anything else runs: a second thread that has to
share a core with another process makes an onnxruntime run slower than one thread does (its threads
wait for each other at every operator), so a busy machine gets the one-thread speed, never less.

"Busy" is the larger of the 1-minute load average and the processes runnable at this moment (other
than this one), so a load that started seconds ago counts before the average has caught up.
"""

from __future__ import annotations

import os

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


def busy_cores() -> float:
    """Cores other work is using: ``max(1-minute load average, runnable tasks now - 1)``; 0 when unknown."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    running = _runnable_now()
    return max(load, float(running - 1) if running else 0.0)


def auto_threads(limit: int | None = None) -> int:
    """Intra-op threads for a model loaded now: the idle cores, rounded, between 1 and ``limit``.

    ``round(cores - busy)``: a quiet 2-core machine (load below 0.5) gets 2, any sustained second
    process or a moment with another runnable task gets 1.
    """
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
