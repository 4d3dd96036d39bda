"""One resumable batch pipeline for enhancement and evaluation (local process pool or Ray cluster).

* :mod:`.item` — the per-item functions every batch path calls (:func:`enhance_item`, :func:`evaluate_item`);
* :mod:`.plan` — inputs (folders, files, lists), output names planned for the whole batch, and the tasks;
* :mod:`.manifest` — the JSONL manifest a resumed run continues from;
* :mod:`.backends` — serial, ``local`` (spawned process pool) and ``ray`` (Ray Data actors);
* :mod:`.pipeline` — :func:`run_batch`, the driver;
* :mod:`.files` — :func:`~.files.export_batch`, a list of files with one model in this process (the batch dialog).
"""

from __future__ import annotations

from .item import EnhanceSettings, enhance_item, enhance_task, evaluate_item, evaluate_task, model_identity, run_task
from .manifest import Manifest, read_manifest
from .pipeline import BatchReport, run_batch
from .plan import InputFile, collect_inputs, enhance_tasks, plan_outputs

__all__ = ["EnhanceSettings", "enhance_item", "enhance_task", "evaluate_item", "evaluate_task", "model_identity",
           "run_task", "Manifest", "read_manifest", "BatchReport", "run_batch", "InputFile", "collect_inputs",
           "plan_outputs", "enhance_tasks"]

