"""Data-parallel training on Ray Train (``TorchTrainer``, CPU workers; the ``[cluster]`` extra).

Each worker runs the same :func:`~.trainer.train` loop with its world rank: it takes examples
``rank, rank + N, ...`` of every batch, gradients are averaged over the workers with
``torch.distributed.all_reduce`` (the gloo process group TorchTrainer sets up), and only rank 0 writes the
run folder. Every worker starts from the same seed, so the weights stay identical across workers. With one
worker the result is exactly that of ``workbench train`` in one process (tested). Resume works as in one
process (the run folder's ``last.ckpt``); on a multi-machine cluster the run folder must be on storage that
every node sees.

Progress reaches the driver while the run goes: rank 0 puts each of its events (``start``, every ``step``,
``checkpoint``, ``epoch``, ``done``) on a :class:`ray.util.queue.Queue` that the driver drains while
``TorchTrainer.fit`` runs on a helper thread, so ``workbench train --ray`` and the Train panel move per step;
every worker also reports each epoch's metrics through ``ray.train.report`` (Ray Train's own record).
"""

from __future__ import annotations

import os
import queue as queue_module
import signal
import threading
from pathlib import Path
from typing import Callable, Iterator

from workbench.core.errors import WorkbenchError
from workbench.core.workflows.batch.backends import start_or_join_ray
from workbench.core.workflows.train_config import TrainConfig

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _worker_loop(config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train

    from .trainer import train
    cfg = TrainConfig.from_dict(config["cfg"], base_dir=Path(config["base_dir"]))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    events, control = config["events"], config["control"]
    # rank 0 asks the driver's control queue after each step; the trainer makes every worker follow it
    should_stop = (lambda: not control.empty()) if rank == 0 else (lambda: False)
    for ev in train(cfg, resume=config["resume"], should_stop=should_stop, rank=rank, world_size=world):
        if rank == 0:
            events.put({**ev, "workers": world} if ev["event"] == "start" else ev)
        if ev["event"] == "epoch":  # every worker, every epoch: Ray Train's report is collective
            ray.train.report({"epoch": ev["epoch"], "step": ev["step"],
                              **{f"train_{k}": v for k, v in ev["train"].items()},
                              **{f"val_{k}": v for k, v in ev["val"].items()}})


def train_with_ray(cfg: TrainConfig, *, workers: int = 1, address: str | None = None, resume: bool = True,
                   should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict]:
    """Train ``cfg`` on ``workers`` Ray Train CPU workers (a local Ray instance unless ``address``).

    Yields rank 0's events as they happen (see :mod:`.trainer`): ``start`` (with ``workers``), ``step`` ...,
    ``epoch``, ``done``. ``should_stop`` is polled while the run goes; once true, every worker stops after
    its current step with the checkpoint written (``stopped``), and the same call continues it later.

    Raises:
        WorkbenchError: Ray Train is not installed, the cluster cannot be reached, or the run failed.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
        from ray.util.queue import Empty, Queue
    except ImportError as exc:
        raise WorkbenchError(f"training with Ray needs Ray Train ({exc}): pip install "
                             "'speech-enhancement-workbench[cluster]'") from None
    if workers < 1:
        raise WorkbenchError("--ray needs at least one worker")
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    threads = cfg.run.threads
    main_thread = threading.current_thread() is threading.main_thread()
    caller_sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    started_here = start_or_join_ray(address, num_cpus=workers * threads + 1,
                                     env_vars={var: str(threads) for var in THREAD_VARIABLES})
    if main_thread and caller_sigterm is not None:
        # ray.init makes SIGTERM exit the driver at once; the caller's handler (a stop request that lets
        # every worker finish its step and write the checkpoint) is the one that must run
        signal.signal(signal.SIGTERM, caller_sigterm)
    try:
        events = Queue(actor_options={"num_cpus": 0})
        control = Queue(actor_options={"num_cpus": 0})
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"cfg": cfg.to_dict(), "base_dir": str(cfg.base_dir), "resume": resume,
                               "events": events, "control": control},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": threads}),
            run_config=RunConfig(name="workbench-train", storage_path=str((out / "ray").resolve())),
        )
        outcome: dict = {}

        def fit() -> None:
            try:
                trainer.fit()
            except Exception as exc:  # noqa: BLE001 - handed to the driver's thread below
                outcome["error"] = exc

        runner = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
        runner.start()
        done, asked = False, False
        while True:
            finished = not runner.is_alive()
            if not asked and should_stop():
                control.put("stop")
                asked = True
            try:
                ev = events.get(timeout=0.2)
            except (Empty, queue_module.Empty):
                if finished:
                    break
                continue
            done |= ev["event"] in ("done", "stopped")
            yield ev
        runner.join()
        if "error" in outcome or not done:
            text = " ".join(str(outcome.get("error", "no result from rank 0")).split())
            raise WorkbenchError(f"Ray Train stopped the run ({text[:400]}); its last checkpoint is in {out}, "
                                 "run the same command to continue")
    finally:
        if started_here:
            ray.shutdown()
