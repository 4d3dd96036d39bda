"""Enhancing a list of files with one model in this process and exporting the results (the batch dialog).

Each file is one item of the batch pipeline (:func:`~workbench.core.workflows.batch.item.enhance_item`), so
names, options and provenance agree with ``workbench batch enhance``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Sequence

from ...enhance.enhancer import Enhancer
from ...progress import Progress, rescaled
from ..export import SUFFIX, check_format, file_tag
from . import item
from .item import EnhanceSettings, enhance_task, model_identity


@dataclass
class BatchSummary:
    """Outcome of :func:`export_batch`.

    Attributes:
        succeeded: ``(input file, written files)`` per file that worked.
        failed: ``(input file, one-line reason)`` per file that did not.
        elapsed_s: wall time.
    """

    succeeded: list[tuple[Path, list[Path]]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def text(self) -> str:
        lines = [f"{len(self.succeeded)} of {len(self.succeeded) + len(self.failed)} files enhanced "
                 f"in {self.elapsed_s:.1f} s"]
        lines += [f"FAILED {p}: {why}" for p, why in self.failed]
        return "\n".join(lines)


def export_batch(files: Sequence[str | Path], enhancer: Enhancer, out_dir: str | Path, *,
                 format: str = "WAV", subtype: str = "PCM_24", rate: str | int = "source",
                 residual: bool = False, overwrite: bool = False, repair: bool = False, spec: str | None = None,
                 should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, BatchSummary]:
    """Enhance every file with ``enhancer`` and export the result into ``out_dir``.

    A generator: yields :class:`Progress` (overall fraction over all files), returns a
    :class:`BatchSummary`. A file that fails (unreadable, model error, target exists ...) is recorded
    with its reason and the batch goes on. ``should_stop`` is polled between steps; when it returns
    True the batch raises :class:`Cancelled`. Sources are only read. Each file goes through
    :func:`~workbench.core.workflows.batch.item.enhance_item` (the per-item function of ``workbench batch``);
    ``spec`` is what the model was loaded from (catalogue id or file path; stored in the provenance).
    """
    fmt, sub = check_format(format, subtype)
    files = [Path(f) for f in files]
    out_dir = Path(out_dir)
    summary = BatchSummary()
    t0 = time.perf_counter()
    n = max(len(files), 1)
    outs = enhancer.info.outputs
    tag = file_tag(enhancer.info.id)
    names = [("enhanced", tag)] if len(outs) == 1 else [(o, f"{tag}.{file_tag(o)}") for o in outs]
    if residual:
        names += [("residual" if len(outs) == 1 else f"{o}.residual", f"{t}.residual") for o, t in names]
    settings = EnhanceSettings(format=fmt, subtype=sub, rate=rate, residual=residual, repair=repair)
    identity = model_identity(enhancer, spec)
    for i, f in enumerate(files):
        yield Progress(i / n, f"{f.name}: opening ({i + 1}/{len(files)})")
        outputs = [{"name": name, "path": str(out_dir / f"{f.stem}.{t}{SUFFIX[fmt]}")} for name, t in names]
        # Check targets before spending model time on a file that cannot be written.
        existing = [o["path"] for o in outputs if Path(o["path"]).exists()]
        if existing and not overwrite:
            summary.failed.append((f, f"{existing[0]}: already exists (use --overwrite to replace it)"))
            continue
        # The batch pipeline's per-item function (as `workbench batch`), which runs the model through
        # Recording.enhance (as the Models panel and `workbench enhance`): same provenance and names.
        task = enhance_task(i, f, spec if spec is not None else enhancer.info.id, outputs, settings,
                            overwrite=overwrite)
        row = yield from rescaled(item.enhance_item(task, enhancer, identity, should_stop=should_stop), i / n, 1.0 / n,
                                  "", should_stop)
        if row["status"] == "done":
            summary.succeeded.append((f, [Path(o["path"]) for o in row["outputs"]]))
        else:
            summary.failed.append((f, row["reason"]))
    summary.elapsed_s = time.perf_counter() - t0
    yield Progress(1.0, f"done: {len(summary.succeeded)} ok, {len(summary.failed)} failed")
    return summary
