"""Real-time scheduling for the live threads, where the system grants it.

Audio servers (JACK, PipeWire through RTKit) run their audio threads under the kernel's ``SCHED_FIFO``
policy: such a thread runs as soon as it is runnable, ahead of every ordinary process, so a busy machine
(a compile, a training run, a browser) does not make it miss a block deadline. The live engine asks the
same for PortAudio's callback thread and its processing thread. Without the permission (an unprivileged
user whose ``ulimit -r`` is 0, a container without ``CAP_SYS_NICE``) the request is refused and the
threads stay ordinary; the reason is reported beside the latency figures.

The kernel keeps a safety margin for real-time threads (``/proc/sys/kernel/sched_rt_runtime_us``, by
default 95 % of each second), so a runaway model cannot lock the machine; both threads sleep between
blocks.
"""

from __future__ import annotations

import gc
import os
import threading

#: ``SCHED_FIFO`` priorities: the callback, which must never be late, above the processing thread; both
#: below the kernel's interrupt threads (50) and the usual audio-server levels (70–88).
CALLBACK_PRIORITY = 40
PROCESSING_PRIORITY = 35


def request_realtime(priority: int) -> str | None:
    """Run the calling thread under ``SCHED_FIFO`` at ``priority``; ``None`` when granted, else why not
    (one line). Never raises: it is called from PortAudio's callback thread."""
    try:
        policy = getattr(os, "SCHED_FIFO", None)
        if policy is None or not hasattr(os, "sched_setscheduler"):
            return "this system has no real-time scheduling"
        # pid 0 is the calling thread on Linux (a thread is a task of its own)
        os.sched_setscheduler(0, policy, os.sched_param(int(priority)))
        return None
    except PermissionError:
        return "no permission for real-time scheduling (ulimit -r is 0 and no CAP_SYS_NICE)"
    except OSError as exc:
        return f"real-time scheduling refused ({exc.strerror or exc})"
    except Exception as exc:  # pragma: no cover - never raise into PortAudio
        return f"real-time scheduling failed ({type(exc).__name__})"


_freeze_lock = threading.Lock()
_freezes = 0


def hold_gc_still() -> None:
    """Move every object that exists now out of the cyclic collector's reach (``gc.freeze``) while a live
    run lasts. A full collection walks every object of the process — about 200,000 once torch and
    onnxruntime are imported, 0.1–0.5 s on this machine — with the interpreter lock held, so the
    processing thread would miss a dozen deadlines at a time; after the freeze it walks only what was
    made since. Nested runs count; :func:`release_gc` undoes it when the last one ends."""
    global _freezes
    with _freeze_lock:
        if _freezes == 0:
            gc.freeze()
        _freezes += 1


def release_gc() -> None:
    """End one :func:`hold_gc_still`; the last one gives the frozen objects back to the collector."""
    global _freezes
    with _freeze_lock:
        if _freezes == 0:
            return
        _freezes -= 1
        if _freezes == 0:
            gc.unfreeze()


def scheduling_line(callback: str | None | bool, processing: str | None | bool) -> str:
    """One line for the latency budget: which live threads run real-time, or why they do not.
    ``False`` means the thread has not asked (yet, or real-time was switched off)."""
    def one(name: str, state: str | None | bool) -> str:
        if state is False:
            return f"{name} ordinary"
        return f"{name} real-time" if state is None else f"{name} ordinary: {state}"
    if callback is None and processing is None:
        return "scheduling: real-time (SCHED_FIFO) for the callback and the processing thread"
    if callback == processing and isinstance(callback, str):
        return f"scheduling: ordinary — {callback}"
    return "scheduling: " + "; ".join((one("callback", callback), one("processing", processing)))


__all__ = ["request_realtime", "scheduling_line", "hold_gc_still", "release_gc", "CALLBACK_PRIORITY", "PROCESSING_PRIORITY"]
