"""One resumable batch pipeline for enhancement and evaluation (local process pool or Ray cluster).

* :mod:`.item` — the per-item functions every batch path calls (:func:`enhance_item`, :func:`evaluate_item`);
* :mod:`.plan` — inputs (folders, files, lists) and output names, planned for the whole batch;
* :mod:`.manifest` — the JSONL manifest a resumed run continues from;
* :mod:`.backends` — serial, ``local`` (spawned process pool) and ``ray`` (Ray Data actors);
* :mod:`.pipeline` — :func:`run_batch`, the driver;
* :mod:`.files` — :func:`~.files.export_batch`, a list of files with one model in this process (the batch dialog).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .plan import InputFile
    from .item import EnhanceSettings

#: public name -> submodule. Imported on first use, so that ``workbench enhance`` (which needs only
#: :mod:`.item`) does not load the pool and Ray drivers and their multiprocessing machinery at start-up.
_EXPORTS = {
    "EnhanceSettings": "item", "enhance_item": "item", "enhance_task": "item", "evaluate_item": "item",
    "evaluate_task": "item", "model_identity": "item", "run_task": "item",
    "Manifest": "manifest", "read_manifest": "manifest",
    "BatchReport": "pipeline", "run_batch": "pipeline",
    "InputFile": "plan", "collect_inputs": "plan", "plan_outputs": "plan",
}

__all__ = [*_EXPORTS, "enhance_tasks"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def enhance_tasks(inputs: Sequence[InputFile], out_dir, models: Sequence[tuple[str, str, Sequence[str]]],
                  settings: EnhanceSettings, *, overwrite: bool = False) -> list[dict]:
    """Tasks for every input with every model (input-major order), outputs planned by :func:`plan_outputs`.

    Args:
        models: ``(model key, file tag, output names)`` per model (see :func:`plan_outputs`).
    """
    from .item import enhance_task
    from .plan import plan_outputs

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
