"""One resumable batch pipeline for enhancement and evaluation (local process pool or Ray cluster).

* :mod:`.item` — the per-item functions every batch path calls (:func:`enhance_item`, :func:`evaluate_item`);
* :mod:`.plan` — inputs (folders, files, lists) and output names, planned for the whole batch;
* :mod:`.manifest` — the JSONL manifest a resumed run continues from;
* :mod:`.backends` — serial, ``local`` (spawned process pool) and ``ray`` (Ray Data actors);
* :mod:`.pipeline` — :func:`run_batch`, the driver;
* :mod:`.files` — :func:`~.files.export_batch`, a list of files with one model in this process (the batch dialog).
"""

from __future__ import annotations

from typing import Sequence

from .item import EnhanceSettings, enhance_item, enhance_task, evaluate_item, evaluate_task, model_identity, run_task
from .manifest import Manifest, read_manifest
from .pipeline import BatchReport, run_batch
from .plan import InputFile, collect_inputs, plan_outputs

__all__ = ["EnhanceSettings", "enhance_item", "enhance_task", "evaluate_item", "evaluate_task", "model_identity",
           "run_task", "Manifest", "read_manifest", "BatchReport", "run_batch", "InputFile", "collect_inputs",
           "plan_outputs", "enhance_tasks"]


def enhance_tasks(inputs: Sequence[InputFile], out_dir, models: Sequence[tuple[str, str, Sequence[str]]],
                  settings: EnhanceSettings, *, overwrite: bool = False) -> list[dict]:
    """Tasks for every input with every model (input-major order), outputs planned by :func:`plan_outputs`.

    Args:
        models: ``(model key, file tag, output names)`` per model (see :func:`plan_outputs`).
    """
    plan = plan_outputs(inputs, out_dir, models, fmt=settings.format, residual=settings.residual)
    tasks = []
    for f, per_model in zip(inputs, plan):
        for (key, _tag, _outs), planned in zip(models, per_model):
            task = enhance_task(len(tasks), f.path, key, planned["outputs"], settings, overwrite=overwrite)
            if planned["skip"] or planned["error"]:
                task["planned"] = {"status": "skipped" if planned["skip"] else "failed",
                                   "reason": planned["skip"] or planned["error"]}
            tasks.append(task)
    return tasks
