"""Enhancing a list of files with one model and exporting the results (the batch dialog), in this process or on
the batch driver's worker processes.

The files are one batch of the batch pipeline (planner, driver, serial backend, per-item function), so
names, options and provenance agree with ``workbench batch enhance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Sequence

from ...enhance.enhancer import Enhancer, EnhancerInfo
from ...enhance.registry import is_registered_id
from ...enhance.chain import SEPARATOR, is_chain_spec
from ...errors import WorkbenchError
from ...progress import Progress
from ..export import check_format, file_tag
from .item import EnhanceSettings, model_identity
from .pipeline import run_batch
from .plan import InputFile, enhance_tasks


def worker_spec_problem(spec: str | None) -> str | None:
    """Why a pool worker or Ray actor could not load the model named ``spec`` by itself (``None`` when it
    can): a worker starts empty and loads by spec, so only a built-in or plugin id, a chain of those, or a
    model file or folder that exists can go there — not a model built in this process without one."""
    if spec is None or not str(spec).strip():
        return "the model has no spec (catalogue id or file path) a worker process could load it from"
    if is_registered_id(spec) or Path(spec).exists():
        return None
    if is_chain_spec(spec) and all(is_registered_id(part.strip()) or Path(part.strip()).exists()
                                   for part in str(spec).split(SEPARATOR)):
        return None
    return f"{spec!r} is neither a catalogue id nor a model file a worker process could load"


@dataclass
class BatchSummary:
    """Outcome of :func:`export_batch`.

    Attributes:
        succeeded: ``(input file, written files)`` per file that worked.
        failed: ``(input file, one-line reason)`` per file that did not.
        skipped: ``(input file, why)`` per file left alone (an earlier output of the same model).
        elapsed_s: wall time.
        backend, workers: where the files ran (``serial``: this process, 0 workers).
        rows: the batch rows (one per file; ``worker`` names the ``host:pid`` that enhanced it).
    """

    succeeded: list[tuple[Path, list[Path]]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    backend: str = "serial"
    workers: int = 0
    rows: list[dict] = field(default_factory=list)

    @property
    def text(self) -> str:
        total = len(self.succeeded) + len(self.failed) + len(self.skipped)
        where = ""
        if self.backend != "serial":
            one, many = {"local": ("worker process", "worker processes"), "ray": ("Ray actor", "Ray actors")}.get(
                self.backend, (f"{self.backend} worker", f"{self.backend} workers"))
            where = f" on {self.workers} {one if self.workers == 1 else many}"
        lines = [f"{len(self.succeeded)} of {total} files enhanced in {self.elapsed_s:.1f} s{where}"]
        lines += [f"FAILED {p}: {why}" for p, why in self.failed]
        lines += [f"SKIPPED {p}: {why}" for p, why in self.skipped]
        return "\n".join(lines)


def export_batch(files: Sequence[str | Path], enhancer: Enhancer | EnhancerInfo, out_dir: str | Path, *,
                 format: str = "WAV", subtype: str = "PCM_24", rate: str | int = "source",
                 residual: bool = False, overwrite: bool = False, repair: bool = False, spec: str | None = None,
                 backend: str = "serial", workers: int = 1, threads: int = 1,
                 should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, BatchSummary]:
    """Enhance every file with ``enhancer`` and export the result into ``out_dir``.

    A generator: yields :class:`Progress` (overall fraction over all files), returns a
    :class:`BatchSummary`. The files are planned and run as one batch of ``workbench batch enhance``
    (:func:`~workbench.core.workflows.batch.plan.enhance_tasks`, then
    :func:`~workbench.core.workflows.batch.pipeline.run_batch`, without a manifest): the same names, options
    and provenance. ``backend`` ``serial`` runs the model this process holds; ``local`` (``workers``
    spawned processes) and ``ray`` (Ray actors on a local instance) load the model by ``spec`` in each
    worker, so ``enhancer`` may then be just its :class:`EnhancerInfo`. A file that fails (unreadable, model
    error, an output that exists without ``overwrite`` ...) is recorded with its reason and the batch goes
    on. ``should_stop`` is polled between steps (and by the pool while files run); when it returns True the
    batch raises :class:`Cancelled` (the pool's processes are stopped). Sources are only read; a file listed
    twice is enhanced once. ``spec`` is what the model was loaded from (catalogue id or file path; stored in
    the provenance).

    Raises:
        WorkbenchError: another backend than ``serial`` without a ``spec`` its workers can load.
    """
    info = enhancer.info if isinstance(enhancer, Enhancer) else enhancer
    if backend != "serial":
        problem = worker_spec_problem(spec)
        if problem:
            raise WorkbenchError(f"{info.name}: {problem}; it runs in this process only")
    elif not isinstance(enhancer, Enhancer):
        raise WorkbenchError(f"{info.name}: the serial backend runs a loaded model, not only its description")
    fmt, sub = check_format(format, subtype)
    inputs: list[InputFile] = []
    for f in map(Path, files):
        if all(f.absolute() != i.path.absolute() for i in inputs):
            inputs.append(InputFile(f, f.parent))
    key = spec if spec is not None else info.id
    settings = EnhanceSettings(format=fmt, subtype=sub, rate=rate, residual=residual, repair=repair)
    # Outputs that exist already are refused here (a person confirms replacing them), not kept as an earlier
    # run's: the dialog has no manifest to resume from.
    tasks = enhance_tasks(inputs, out_dir, [(key, file_tag(info.id), list(info.outputs))],
                          settings, overwrite=overwrite, refuse_existing=True)
    if backend == "serial":
        report = yield from run_batch(tasks, backend="serial", models={key: enhancer},
                                      identities={key: model_identity(enhancer, spec)}, should_stop=should_stop)
    else:
        yield Progress(0.0, f"starting {workers} worker{'s' if workers != 1 else ''} ({backend}), each loading "
                            f"{info.name}")
        report = yield from run_batch(tasks, backend=backend, workers=workers, threads=threads, specs=[key],
                                      should_stop=should_stop)
    summary = BatchSummary(elapsed_s=report.elapsed_s, backend=report.backend, workers=report.workers,
                           rows=report.rows)
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
