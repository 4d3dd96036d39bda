"""Ray Train with one CPU worker: stop and continue, progress per step, exactly the single-process result."""

from __future__ import annotations

import threading

import pytest
import torch

pytest.importorskip("ray.train.torch")

from test_train import MODEL_FILE, _same_weights, tiny_config, tiny_data  # noqa: E402,F401
from workbench_models.training.ray_train import train_with_ray  # noqa: E402
from workbench_models.training.trainer import train  # noqa: E402


@pytest.mark.slow
def test_one_ray_worker_stops_continues_reports_per_step_and_equals_one_process(tiny_data, tmp_path):  # noqa: F811
    import ray

    from workbench.core.workflows.batch.backends import start_or_join_ray
    started = start_or_join_ray(None, num_cpus=2, env_vars={})  # one Ray instance for both runs
    try:
        cfg_ray = tiny_config(tiny_data, tmp_path / "ray", run={"epochs": 1, "max_steps": 2})
        # asked to stop before the workers have started: they stop after the first step, checkpoint written
        stopped = list(train_with_ray(cfg_ray, workers=1, should_stop=lambda: True))
        assert [e["event"] for e in stopped] == ["start", "step", "checkpoint", "stopped"]
        assert torch.load(tmp_path / "ray" / "last.ckpt", weights_only=True)["step"] == 1
        # the same call continues it; progress arrives per step, while the run goes
        events, fitting_at_step = [], None
        for ev in train_with_ray(cfg_ray, workers=1):
            if ev["event"] == "step":
                fitting_at_step = any(t.name == "ray-train-fit" and t.is_alive() for t in threading.enumerate())
            events.append(ev)
    finally:
        if started:
            ray.shutdown()
    assert [e["event"] for e in events] == ["start", "step", "checkpoint", "epoch", "done"]
    assert events[0]["resumed_at"] == 1 and events[0]["total_steps"] == 2 and events[0]["workers"] == 1
    assert fitting_at_step  # the step arrived while the run was still going, not after it
    list(train(tiny_config(tiny_data, tmp_path / "local", run={"epochs": 1, "max_steps": 2})))
    _same_weights(tmp_path / "ray" / MODEL_FILE, tmp_path / "local" / MODEL_FILE)
    meta = torch.load(tmp_path / "ray" / MODEL_FILE, weights_only=True)["workbench_training"]
    assert meta["steps"] == 2
