"""Ray Train with one CPU worker gives exactly the single-process result, and its progress arrives per step."""

from __future__ import annotations

import threading

import pytest
import torch

pytest.importorskip("ray.train.torch")

from test_train import MODEL_FILE, _same_weights, tiny_config, tiny_data  # noqa: E402,F401
from workbench_models.training.ray_train import train_with_ray  # noqa: E402
from workbench_models.training.trainer import train  # noqa: E402


@pytest.mark.slow
def test_one_ray_worker_equals_one_process(tiny_data, tmp_path):  # noqa: F811
    cfg_ray = tiny_config(tiny_data, tmp_path / "ray", run={"epochs": 1, "max_steps": 2})
    events, fitting_at_first_step = [], None
    for ev in train_with_ray(cfg_ray, workers=1):
        if ev["event"] == "step" and fitting_at_first_step is None:
            fitting_at_first_step = any(t.name == "ray-train-fit" and t.is_alive() for t in threading.enumerate())
        events.append(ev)
    assert [e["event"] for e in events] == ["start", "step", "step", "checkpoint", "epoch", "done"]
    assert events[0]["total_steps"] == 2 and events[0]["workers"] == 1
    assert fitting_at_first_step  # the step arrived while the run was still going, not after it
    list(train(tiny_config(tiny_data, tmp_path / "local", run={"epochs": 1, "max_steps": 2})))
    _same_weights(tmp_path / "ray" / MODEL_FILE, tmp_path / "local" / MODEL_FILE)
    meta = torch.load(tmp_path / "ray" / MODEL_FILE, weights_only=True)["workbench_training"]
    assert meta["steps"] == 2
