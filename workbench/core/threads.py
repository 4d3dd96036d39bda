"""How many threads models may use: one convention for torch and onnxruntime models alike."""

from __future__ import annotations

import os


def threads_from_env(default: int | None = 1) -> int | None:
    """Intra-op thread count from ``WORKBENCH_THREADS``, else ``OMP_NUM_THREADS``, else ``default``.

    Small enhancement models usually run fastest on one thread (GTCRN offline on the 2-core test
    machine: RTF 0.016 with 1 thread, 0.032 with 2), which also leaves a core to the window; the
    benchmarks set the variables to compare. ``default=None`` lets the runtime decide.
    """
    for var in ("WORKBENCH_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return default
