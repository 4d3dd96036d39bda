"""Data-parallel training on Ray Train (``TorchTrainer``, CPU workers; the ``[cluster]`` extra).

Each worker runs the same :func:`~.trainer.train` loop with its world rank: it takes examples
``rank, rank + N, ...`` of every batch, gradients are averaged over the workers with
``torch.distributed.all_reduce`` (the gloo process group TorchTrainer sets up), and only rank 0 writes the
run folder. Every worker starts from the same seed, so the weights stay identical across workers. With one
worker the result is exactly that of ``workbench train`` in one process (tested). Resume works as in one
process (the run folder's ``last.ckpt``); on a multi-machine cluster the run folder must be on storage that
every node sees.
"""

from __future__ import annotations

import json
import os
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
    last = {}
    for ev in train(cfg, resume=config["resume"], rank=rank, world_size=world):
        if ev["event"] in ("epoch", "done"):
            last = ev
    ray.train.report({"event": last.get("event", ""), "step": last.get("step", 0)})


def train_with_ray(cfg: TrainConfig, *, workers: int = 1, address: str | None = None,
                   resume: bool = True) -> Iterator[dict]:
    """Train ``cfg`` on ``workers`` Ray Train CPU workers (a local Ray instance unless ``address``).

    Yields the run's ``start``, one ``epoch`` event per epoch (read back from ``history.json``) and ``done``.

    Raises:
        WorkbenchError: Ray Train is not installed, the cluster cannot be reached, or the run failed.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
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
    yield {"event": "start", "steps_per_epoch": 0, "total_steps": 0, "resumed_at": 0, "parameters": 0,
           "out_dir": str(out), "train_s_per_epoch": 0.0, "validation_clips": 0, "workers": workers}
    try:
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"cfg": cfg.to_dict(), "base_dir": str(cfg.base_dir), "resume": resume},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": threads}),
            run_config=RunConfig(name="workbench-train", storage_path=str((out / "ray").resolve())),
        )
        try:
            trainer.fit()
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise WorkbenchError(f"Ray Train stopped the run ({text[:400]}); its last checkpoint is in {out}, "
                                 "run the same command to continue") from None
    finally:
        if started_here:
            ray.shutdown()
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    for h in history:
        yield {"event": "epoch", "epoch": h["epoch"], "step": h["step"], "train": h["train"], "val": h["val"]}
    exports = [str(p) for p in (out / "model.ts", out / "model.onnx") if p.exists()]
    yield {"event": "done", "model": str(out / "model.pt"), "metrics": history[-1]["val"] if history else {},
           "step": history[-1]["step"] if history else 0, "exports": exports}
