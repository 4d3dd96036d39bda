"""One resumable batch pipeline for enhancement and evaluation (local process pool or Ray cluster).

* :mod:`.item` — the per-item functions every batch path calls (:func:`enhance_item`, :func:`evaluate_item`);
* :mod:`.plan` — inputs (folders, files, lists), output names planned for the whole batch, and the tasks;
* :mod:`.manifest` — the JSONL manifest a resumed run continues from;
* :mod:`.backends` — serial, ``local`` (spawned process pool) and ``ray`` (Ray actors);
* :mod:`.pipeline` — :func:`run_batch`, the driver;
* :mod:`.files` — :func:`~.files.export_batch`, a list of files with one model (the batch dialog), on any backend.
"""

from __future__ import annotations

from importlib import import_module

#: public name -> submodule. Imported on first use, so that a command that needs one part (``workbench
#: enhance``: the items and the serial driver) does not load the others at start-up.
_EXPORTS = {
    "EnhanceSettings": "item", "enhance_item": "item", "enhance_task": "item", "evaluate_item": "item",
    "evaluate_task": "item", "model_identity": "item", "run_task": "item",
    "Manifest": "manifest", "read_manifest": "manifest",
    "BatchReport": "pipeline", "run_batch": "pipeline",
    "InputFile": "plan", "collect_inputs": "plan", "enhance_tasks": "plan", "plan_outputs": "plan",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
