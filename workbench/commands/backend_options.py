"""Where the items of a command run: ``--backend``, ``--workers``, ``--address`` and ``--threads``, one
definition for ``workbench batch``, ``workbench enhance`` (several inputs) and ``workbench evaluate``.

Every one of these commands drives its files through the batch driver
(:func:`workbench.core.workflows.batch.pipeline.run_batch`); these options pick its backend:

* ``serial``: in this process, with the model this process loaded;
* ``local``: a pool of ``--workers`` spawned processes on this machine, each loading the model once;
* ``ray``: Ray actors on a local Ray instance or on the cluster at ``--address``.

``--workers 0`` always means this process. Without ``--backend`` a command uses its own default:
``workbench batch`` a pool sized to the machine, the others this process unless ``--workers`` asks for
more than one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.errors import WorkbenchError
from .numbers import number

BACKEND_CHOICES = ("serial", "local", "ray")


def add_backend_options(g, *, pool_by_default: bool) -> None:
    """Add the four options to the argparse parser or group ``g``.

    Args:
        pool_by_default: the command runs on a process pool sized to the CPU count unless told otherwise
            (``workbench batch``); otherwise in this process unless ``--workers``/``--backend`` say more.
    """
    default = ("default: local, one worker per CPU" if pool_by_default
               else "default: serial, or local when --workers is above 1")
    g.add_argument("--backend", choices=BACKEND_CHOICES, default=None,
                   help="serial: this process; local: a process pool on this machine; ray: Ray actors (a local "
                        f"instance or --address) ({default})")
    g.add_argument("--workers", type=number("--workers", 0, 1024, integer=True), default=None, metavar="N",
                   help="worker processes / Ray actors, each loading the models once ("
                        + ("default: this machine's CPU count; with --address the cluster's" if pool_by_default
                           else "default 1: this process") + "; 0 runs in this process)")
    g.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join: 'auto' (a cluster started on this machine with `ray start`) or HOST:PORT")
    g.add_argument("--threads", type=number("--threads", 1, 1024, integer=True), default=None, metavar="T",
                   help="intra-op threads per worker for torch/onnxruntime (default WORKBENCH_THREADS, else 1)")


@dataclass(frozen=True)
class BackendChoice:
    """What the options asked for: ``backend`` (``serial``/``local``/``ray``), ``workers`` (0 for serial;
    0 with ``ray`` and an address: as many as the cluster has CPUs), ``threads`` per worker (``None`` where
    nobody set one and the command keeps this process's threads) and the Ray ``address``."""

    backend: str
    workers: int
    threads: int | None
    address: str | None

    @property
    def in_process(self) -> bool:
        return self.backend == "serial"


def backend_choice(args, *, pool_by_default: bool) -> BackendChoice:
    """Resolve :func:`add_backend_options`' values (one clear line for a combination that cannot run)."""
    from ..core.threads import threads_from_env

    if args.address and args.backend not in (None, "ray"):
        raise WorkbenchError(f"--address: joins a Ray cluster; it needs --backend ray, not --backend {args.backend}")
    backend = args.backend or ("ray" if args.address else None)
    workers = args.workers
    if workers is None:
        if backend == "ray" and args.address:
            workers = 0  # size the actor pool to the cluster
        elif pool_by_default or backend in ("local", "ray"):
            workers = max(1, os.cpu_count() or 1) if pool_by_default else 1
        else:
            workers = 1
    if backend is None:
        backend = "local" if pool_by_default or workers > 1 else "serial"
    if backend == "serial" and workers > 1:
        raise WorkbenchError(f"--workers {workers}: --backend serial runs in this process; choose --backend local "
                             "or ray for several workers")
    if workers == 0 and not (backend == "ray" and args.address):
        backend = "serial"
    if backend == "serial":
        workers = 0
    threads = args.threads if args.threads is not None else threads_from_env(None)
    if threads is None and (pool_by_default or backend != "serial"):
        threads = 1  # workers compute alike, one intra-op thread each unless told
    if backend == "serial" and args.threads is not None:
        from ..core.workflows.batch.backends import set_thread_env

        set_thread_env(args.threads)  # the one worker is this process: it computes with the threads asked for
    return BackendChoice(backend, workers, threads, args.address)
