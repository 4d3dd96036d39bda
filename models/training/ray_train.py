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
import threading
from pathlib import Path
from typing import Iterator

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
    events = config["events"]
    for ev in train(cfg, resume=config["resume"], rank=rank, world_size=world):
        if rank == 0:
            events.put({**ev, "workers": world} if ev["event"] == "start" else ev)
        if ev["event"] == "epoch":  # every worker, every epoch: Ray Train's report is collective
            ray.train.report({"epoch": ev["epoch"], "step": ev["step"],
                              **{f"train_{k}": v for k, v in ev["train"].items()},
                              **{f"val_{k}": v for k, v in ev["val"].items()}})


def train_with_ray(cfg: TrainConfig, *, workers: int = 1, address: str | None = None,
                   resume: bool = True) -> Iterator[dict]:
    """Train ``cfg`` on ``workers`` Ray Train CPU workers (a local Ray instance unless ``address``).

    Yields rank 0's events as they happen (see :mod:`.trainer`): ``start`` (with ``workers``), ``step`` ...,
    ``epoch``, ``done``.

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
    started_here = start_or_join_ray(address, num_cpus=workers * threads + 1,
                                     env_vars={var: str(threads) for var in THREAD_VARIABLES})
    try:
        events = Queue(actor_options={"num_cpus": 0})
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"cfg": cfg.to_dict(), "base_dir": str(cfg.base_dir), "resume": resume,
                               "events": events},
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
        done = False
        while True:
            finished = not runner.is_alive()
            try:
                ev = events.get(timeout=0.2)
            except (Empty, queue_module.Empty):
                if finished:
                    break
                continue
            done |= ev["event"] == "done"
            yield ev
        runner.join()
        if "error" in outcome or not done:
            text = " ".join(str(outcome.get("error", "no result from rank 0")).split())
            raise WorkbenchError(f"Ray Train stopped the run ({text[:400]}); its last checkpoint is in {out}, "
                                 "run the same command to continue")
    finally:
        if started_here:
            ray.shutdown()
