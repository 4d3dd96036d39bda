"""Enhancing a list of files with one model in this process and exporting the results (the batch dialog).

The files are one batch of the batch pipeline (planner, driver, serial backend, per-item function), so
names, options and provenance agree with ``workbench batch enhance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Sequence

from ...enhance.enhancer import Enhancer
from ...progress import Progress
from ..export import check_format, file_tag
from .item import EnhanceSettings, model_identity
from .pipeline import run_batch
from .plan import InputFile, enhance_tasks


@dataclass
class BatchSummary:
    """Outcome of :func:`export_batch`.

    Attributes:
        succeeded: ``(input file, written files)`` per file that worked.
        failed: ``(input file, one-line reason)`` per file that did not.
        skipped: ``(input file, why)`` per file left alone (an earlier output of the same model).
        elapsed_s: wall time.
    """

    succeeded: list[tuple[Path, list[Path]]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def text(self) -> str:
        total = len(self.succeeded) + len(self.failed) + len(self.skipped)
        lines = [f"{len(self.succeeded)} of {total} files enhanced in {self.elapsed_s:.1f} s"]
        lines += [f"FAILED {p}: {why}" for p, why in self.failed]
        lines += [f"SKIPPED {p}: {why}" for p, why in self.skipped]
        return "\n".join(lines)


def export_batch(files: Sequence[str | Path], enhancer: Enhancer, out_dir: str | Path, *,
                 format: str = "WAV", subtype: str = "PCM_24", rate: str | int = "source",
                 residual: bool = False, overwrite: bool = False, repair: bool = False, spec: str | None = None,
                 should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, BatchSummary]:
    """Enhance every file with ``enhancer`` and export the result into ``out_dir``.

    A generator: yields :class:`Progress` (overall fraction over all files), returns a
    :class:`BatchSummary`. The files are planned and run as one batch of ``workbench batch enhance``
    (:func:`~workbench.core.workflows.batch.plan.enhance_tasks`, then
    :func:`~workbench.core.workflows.batch.pipeline.run_batch` on its serial backend, with the model this
    process holds, without a manifest): the same names, options and provenance. A file that fails
    (unreadable, model error, an output that exists without ``overwrite`` ...) is recorded with its reason
    and the batch goes on. ``should_stop`` is polled between steps; when it returns True the batch raises
    :class:`Cancelled`. Sources are only read; a file listed twice is enhanced once. ``spec`` is what the
    model was loaded from (catalogue id or file path; stored in the provenance).
    """
    fmt, sub = check_format(format, subtype)
    inputs: list[InputFile] = []
    for f in map(Path, files):
        if all(f.absolute() != i.path.absolute() for i in inputs):
            inputs.append(InputFile(f, f.parent))
    key = spec if spec is not None else enhancer.info.id
    settings = EnhanceSettings(format=fmt, subtype=sub, rate=rate, residual=residual, repair=repair)
    # Outputs that exist already are refused here (a person confirms replacing them), not kept as an earlier
    # run's: the dialog has no manifest to resume from.
    tasks = enhance_tasks(inputs, out_dir, [(key, file_tag(enhancer.info.id), list(enhancer.info.outputs))],
                          settings, overwrite=overwrite, refuse_existing=True)
    report = yield from run_batch(tasks, backend="serial", models={key: enhancer},
                                  identities={key: model_identity(enhancer, spec)}, should_stop=should_stop)
    summary = BatchSummary(elapsed_s=report.elapsed_s)
    for row in report.rows:
        path = Path(row["input"])
        if row["status"] == "done":
            summary.succeeded.append((path, [Path(o["path"]) for o in row["outputs"]]))
        elif row["status"] == "skipped":
            summary.skipped.append((path, row["reason"]))
        else:
            summary.failed.append((path, row["reason"]))
    yield Progress(1.0, f"done: {len(summary.succeeded)} ok, {len(summary.failed)} failed")
    return summary
