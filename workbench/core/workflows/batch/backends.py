"""Where the items of a batch run: in this process, in a local process pool, or on a Ray cluster.

Every backend runs the same :func:`workbench.core.workflows.batch.item.run_task` on the same JSON-able tasks and
yields the same rows; they differ only in where the model lives:

* ``serial`` (:func:`run_serial`): in the calling process with models it already holds (the GUI's
  loaded models and chains; ``--workers 0``). Progress inside an item is forwarded.
* ``local`` (:func:`run_local`): :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn``
  start method. Each worker loads every model of the batch once (initializer) and runs with a fixed
  number of intra-op threads (``WORKBENCH_THREADS``, default 1 — see :mod:`workbench.core.threads`).
  A worker that dies (killed, out of memory, a crash in a native decoder) breaks the pool; the pool is
  rebuilt and the items that were running are retried one at a time, so the file that kills a worker
  alone gets a failed row and the others finish.
* ``ray`` (:func:`run_ray`): ``workers`` Ray actors (:class:`RayItemActor`), each loading every model of
  the batch once and then running the items the driver hands it, one at a time (the driver keeps each
  actor busy with ``ray.wait``). Plain actors rather than a Ray Data pipeline: Ray Data's executor added
  scheduling cost per item and processes per run that a corpus of short files paid for. An actor that
  dies is restarted (models loaded again) and its item run once more; an item that kills its actor twice
  gets a failed row, and the others finish. With an
  ``address`` (``auto`` or ``HOST:PORT``) it joins that cluster; without, it starts a local Ray sized to
  ``workers``, bound to 127.0.0.1, without dashboard and with usage reporting off.

Outputs are per item (each task writes its own files), never a shared stream, so order and placement
do not change a single byte.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

from ...audio.audio_io import remove_live_temp_files, sweep_stale_temp_files
from ...enhance.enhancer import Enhancer
from ...enhance.model_spec import ModelSpec
from ...progress import Progress, run_to_end
from ...errors import Cancelled, WorkbenchError
from ...processes import die_with_parent
from .item import _base_row, model_identity, run_task

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

BACKENDS = ("local", "ray")
THREAD_VARIABLES = ("WORKBENCH_THREADS", "OMP_NUM_THREADS")
LOST_WORKER_REASON = ("the worker process died while processing this file (killed, out of memory, or a crash "
                      "inside a native library)")


def set_thread_env(threads: int) -> None:
    """Fix intra-op threads for models loaded from now on in this process (torch too, if imported), and
    the BLAS/OpenMP pools numpy already started (threadpoolctl): a sum split over another number of
    threads rounds differently, and every worker must compute alike."""
    from threadpoolctl import threadpool_limits

    for var in THREAD_VARIABLES:
        os.environ[var] = str(int(threads))
    threadpool_limits(limits=int(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def load_models(specs: Sequence[str | ModelSpec]) -> tuple[dict[str, Enhancer], dict[str, dict], dict[str, str]]:
    """Load each model once, with the options its :class:`ModelSpec` carries (the driver's very model):
    ``(models, identities, errors)`` keyed by the spec string, the key tasks name their model by."""
    models, identities, errors = {}, {}, {}
    for given in specs:
        spec = ModelSpec.of(given)
        try:
            enh = spec.load()
        except Exception as exc:  # reported per item, the worker stays usable for the other models
            errors[spec.spec] = " ".join(str(exc).split()) or type(exc).__name__
            continue
        models[spec.spec] = enh
        identities[spec.spec] = model_identity(enh, spec)
    return models, identities, errors


class _Worker:
    """What a pool worker or Ray actor holds: the loaded models and their identities."""

    def __init__(self, specs: Sequence[str | ModelSpec], threads: int):
        set_thread_env(threads)
        self.models, self.identities, self.errors = load_models(specs)

    def run(self, task: Mapping) -> dict:
        if task["model"] in self.errors:
            row = _base_row(task, None)
            row["reason"] = f"{task['input']}: {self.errors[task['model']]}"
            return row
        return run_to_end(run_task(task, self.models, self.identities))


# ------------------------------------------------------------------------------------------- serial


def run_serial(tasks: Sequence[Mapping], models: Mapping[str, Enhancer], identities: Mapping[str, dict],
               should_stop: Callable[[], bool] | None = None) -> Iterator[Progress | dict]:
    """Run tasks one after another here; yields :class:`Progress` within items and each row."""
    n = max(len(tasks), 1)
    for i, task in enumerate(tasks):
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled on request")
        gen = run_task(task, models, identities, should_stop=should_stop)
        try:
            while True:
                p = next(gen)
                yield Progress((i + p.fraction) / n, p.message)
        except StopIteration as stop:
            yield stop.value
        finally:
            gen.close()


# -------------------------------------------------------------------------------------------- local

_POOL_WORKER: _Worker | None = None


def _end_worker(signum, frame) -> None:
    """SIGTERM in a pool worker (the driver stopping the pool): remove the temporary file of a write in
    progress and end at once, quietly. Raising SystemExit instead would unwind into concurrent.futures,
    which sends it to the driver as the item's result and prints its traceback."""
    remove_live_temp_files()
    os._exit(143)


def _init_pool_worker(specs: Sequence[str | ModelSpec], threads: int, parent_pid: int | None = None) -> None:
    global _POOL_WORKER
    # Ctrl-C goes to the whole process group; only the driver acts on it (it stops the pool). SIGTERM
    # (the driver stopping the pool) unwinds Python code, so atomic writes remove their temporary file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _end_worker)
    die_with_parent(parent_pid)  # a killed driver leaves no worker computing on
    _POOL_WORKER = _Worker(specs, threads)


def _run_in_pool(task: Mapping) -> dict:
    return _POOL_WORKER.run(task)


def _stop_pool(executor: ProcessPoolExecutor, grace_s: float = 3.0) -> None:
    """End the pool's worker processes now and return once each is reaped (no process outlives the run).

    concurrent.futures (3.11) has no public way to stop running workers: they are terminated (killed after
    ``grace_s``). The executor's own management thread notices the deaths and joins the same processes, so
    this does not join them itself: two threads reaping one child race (the loser's ``waitpid`` fails, and
    ``multiprocessing`` then reports the dead process as running until the winner records its exit code).
    It waits for the deaths on the processes' sentinels, lets the management thread finish, and only then
    reaps what that thread left.
    """
    from multiprocessing.connection import wait as wait_ready

    procs = list((getattr(executor, "_processes", None) or {}).values())
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    pending = [p for p in procs if p.exitcode is None]
    while pending and time.monotonic() < deadline:
        ready = wait_ready([p.sentinel for p in pending], timeout=max(deadline - time.monotonic(), 0.0))
        pending = [p for p in pending if p.sentinel not in ready]
    for p in pending:
        p.kill()
    manager = getattr(executor, "_executor_manager_thread", None)  # shutdown() forgets it
    executor.shutdown(wait=False, cancel_futures=True)
    if manager is not None and manager is not threading.current_thread():
        manager.join(timeout=grace_s)
    for p in procs:
        p.join(timeout=grace_s)  # reaps a process the management thread did not (a no-op for the others)


def run_local(tasks: Sequence[Mapping], specs: Sequence[str | ModelSpec], *, workers: int, threads: int = 1,
              should_stop: Callable[[], bool] | None = None, poll_s: float = 0.2) -> Iterator[dict]:
    """Run tasks on ``workers`` spawned processes; yields rows as they finish (any order)."""
    # Imported here: `workbench enhance` drives its files through the serial backend of this module and
    # should not load the process pool's machinery (multiprocessing, its queues) at start-up.
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_pool_worker,
                                   initargs=(list(specs), threads, os.getpid()))

    queue = deque(tasks)
    suspects: deque = deque()  # items that were running when a worker died: rerun one at a time
    inflight: dict = {}
    pool = new_pool()
    try:
        while queue or suspects or inflight:
            limit = 1 if suspects else 2 * workers
            broken = False
            while len(inflight) < limit and (suspects or queue):
                if suspects and inflight:
                    break
                from_suspects = bool(suspects)
                task = suspects.popleft() if from_suspects else queue.popleft()
                try:
                    inflight[pool.submit(_run_in_pool, task)] = task
                except BrokenProcessPool:
                    # a worker died between two hand-outs: this task never started; those in flight are
                    # suspects like any lost with a worker
                    (suspects if from_suspects else queue).appendleft(task)
                    broken = True
                    break
            if broken and not inflight:
                _stop_pool(pool)
                pool = new_pool()
                continue
            done, _ = wait(list(inflight), timeout=poll_s, return_when=FIRST_COMPLETED)
            if should_stop is not None and should_stop():
                raise Cancelled("cancelled on request")
            lost = []
            for fut in done:
                task = inflight.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    lost.append(task)
            if lost:
                lost += list(inflight.values())
                alone = len(lost) == 1 and limit == 1
                inflight.clear()
                _stop_pool(pool)
                pool = new_pool()
                if alone:
                    row = _base_row(lost[0], None)
                    row["reason"] = f"{lost[0]['input']}: {LOST_WORKER_REASON}"
                    yield row
                else:
                    suspects.extend(lost)
    finally:
        _stop_pool(pool)


# ---------------------------------------------------------------------------------------------- ray


class RayItemActor:
    """A Ray actor holding the batch's models (loaded once, in its constructor); :meth:`run` runs one task.

    Tasks and rows travel as JSON text, as in the manifest (a row that JSON cannot hold fails here, loudly).
    """

    def __init__(self, specs: Sequence[str | ModelSpec], threads: int):
        self.worker = _Worker(specs, threads)

    def ready(self) -> dict:
        """Answered once the models are loaded: ``{"pid", "peak_rss_mib"}`` of this actor's process."""
        from .item import peak_rss_mib

        return {"pid": os.getpid(), "peak_rss_mib": peak_rss_mib()}

    def run(self, task: str) -> str:
        return json.dumps(self.worker.run(json.loads(task)), allow_nan=False)


def ray_actors(specs: Sequence[str | ModelSpec], workers: int, threads: int) -> list:
    """``workers`` :class:`RayItemActor` handles on the connected Ray. One that dies is restarted (its
    models loaded again) and the item it was running is run once more, as the local pool does."""
    import ray

    remote = ray.remote(num_cpus=threads, max_restarts=-1, max_task_retries=1)(RayItemActor)
    return [remote.remote(list(specs), threads) for _ in range(workers)]


def ray_installed() -> bool:
    """Whether Ray can be imported, found without importing it (that takes seconds): what a window asks before
    it offers Ray."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def start_or_join_ray(address: str | None, *, num_cpus: int, env_vars: Mapping[str, str]) -> bool:
    """Join the Ray cluster at ``address``, or start a local instance of ``num_cpus`` on loopback, unless
    this process is already connected; workers get ``env_vars`` (thread counts) and send no usage report.

    Returns whether Ray was started or joined here (the caller then shuts it down when done).

    Raises:
        WorkbenchError: the cluster cannot be reached or the local instance cannot start (one line)."""
    import logging  # only Ray's log level needs it (ray imports it anyway); the serial run does not

    import ray

    if ray.is_initialized():
        return False
    env = {**env_vars, "RAY_USAGE_STATS_ENABLED": "0"}
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                  runtime_env={"env_vars": env})
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # No idle workers started ahead for this driver: every worker here is an actor with its own
            # process, and on a small machine the spare interpreters only slowed the start (about 5 s of
            # 15-19 s on 2 cores, bench/bench_batch.py).
            ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1",
                     _system_config={"prestart_worker_first_driver": False}, **kwargs)
    except Exception as exc:
        where = address or "a local Ray instance"
        raise WorkbenchError(f"could not start or join {where}: {' '.join(str(exc).split())}") from None
    return True


def run_ray(tasks: Sequence[Mapping], specs: Sequence[str | ModelSpec], *, workers: int | None, threads: int = 1,
            address: str | None = None, should_stop: Callable[[], bool] | None = None) -> Iterator[dict]:
    """Run tasks on Ray actors (:class:`RayItemActor`); yields rows as they finish (any order).

    Raises:
        WorkbenchError: Ray is not installed, the cluster cannot be reached, or Ray gave up on a task.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read when Ray starts; no usage report is sent
    if not ray_available():
        raise WorkbenchError("the ray backend needs Ray: pip install 'speech-enhancement-workbench[cluster]'")
    import ray

    started_here = start_or_join_ray(address, num_cpus=max(1, (workers or 1) * threads),
                                     env_vars={var: str(threads) for var in THREAD_VARIABLES})
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        if not tasks:
            return
        actors = ray_actors(specs, max(1, min(workers, len(tasks))), threads)
        queue = deque(tasks)
        idle = list(actors)
        inflight: dict = {}  # object ref -> (actor, task)
        try:
            while queue or inflight:
                while idle and queue:
                    actor, task = idle.pop(), queue.popleft()
                    inflight[actor.run.remote(json.dumps(task, allow_nan=False))] = (actor, task)
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
                for ref in done:
                    actor, task = inflight.pop(ref)
                    idle.append(actor)
                    try:
                        row = json.loads(ray.get(ref))
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                        # The actor died under this item twice (Ray restarted it and ran the item again).
                        row = _base_row(task, None)
                        row["reason"] = f"{task['input']}: {LOST_WORKER_REASON}"
                    yield row
                if should_stop is not None and should_stop():
                    raise Cancelled("cancelled on request")
        except (Cancelled, GeneratorExit, KeyboardInterrupt, WorkbenchError):
            raise
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise WorkbenchError(f"Ray stopped the batch ({text[:300]}); finished rows are in the manifest, "
                                 "rerun with --resume") from None
        finally:
            for actor in actors:  # also on a cluster this run only joined: its actors end with it
                ray.kill(actor)
    finally:
        if started_here:
            ray.shutdown()


def remove_stale_parts(paths: Sequence[str]) -> int:
    """Delete temporary files that a killed run's atomic writes left in the folders of ``paths``
    (``.NAME.PID.HEX.part`` whose process is gone). Returns how many were removed."""
    folders = {os.path.dirname(p) or "." for p in paths}
    return sum(sweep_stale_temp_files(f, force=True) for f in folders)
