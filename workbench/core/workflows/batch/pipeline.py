"""The batch driver: decide what is already done, run the rest on a backend, keep the manifest.

:func:`run_batch` is a core generator (yields :class:`~workbench.core.progress.Progress`, returns a
:class:`BatchReport`), so the CLI drives it with a progress bar and the GUI with a worker that can
cancel between yields. Per task it

1. reuses a ``done`` row of a resumed manifest when nothing that decides the result changed: same model
   identity and settings, the input unchanged (size and modification time, else SHA-256), and every
   output still there with the recorded SHA-256;
2. recomputes (replacing its outputs) an item whose ``done`` row no longer stands;
3. never replaces an output that no row of this batch proves it wrote (recorded path and SHA-256): an
   item without a row (another batch's manifest, a header without rows, a run killed between an output's
   write and its row) is treated as in a fresh run, and a changed output of a stale row is skipped;
4. otherwise skips an enhancement whose outputs all exist already (an earlier run's, written
   atomically so complete; ``status = "skipped"``) unless ``overwrite``;
5. runs everything else on the backend, appending each row to the manifest as it arrives.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generator, Mapping, Sequence

from ...enhance.enhancer import Enhancer
from ...enhance.model_spec import ModelSpec
from ...progress import Progress
from ...document.recording import file_sha256
from .item import _base_row, current_settings, records_digests
from .backends import remove_stale_parts, run_local, run_ray, run_serial

if TYPE_CHECKING:  # the caller opens the manifest; a run without one (workbench enhance) never loads its schema
    from .manifest import Manifest


@dataclass
class BatchReport:
    """Outcome of a batch: the final rows in input order and what happened in this run.

    Attributes:
        rows: one row per task (input order): this run's, or the earlier run's it reused.
        ran: rows computed in this run; reused: ``done`` rows taken over from the manifest.
        elapsed_s: wall time of this run.
    """

    rows: list[dict]
    ran: int = 0
    reused: int = 0
    elapsed_s: float = 0.0
    backend: str = "serial"
    workers: int = 0
    manifest: Path | None = None
    cancelled: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "failed"]

    @property
    def audio_s(self) -> float:
        """Seconds of input audio processed in this run (done rows)."""
        return sum(r.get("duration_s") or 0.0 for r in self.rows if r["status"] == "done" and r.get("_ran"))

    def table(self) -> list[tuple[str, str]]:
        """``(label, value)`` lines of the end-of-run summary."""
        done = self.count("done")
        lines = [("items", str(len(self.rows))),
                 ("done", f"{done} ({self.reused} from an earlier run)" if self.reused else str(done)),
                 ("skipped", str(self.count("skipped"))),
                 ("failed", str(self.count("failed"))),
                 ("backend", f"{self.backend}, {self.workers} worker{'s' if self.workers != 1 else ''}"),
                 ("wall time", f"{self.elapsed_s:.1f} s")]
        if self.ran:
            audio_h = self.audio_s / 3600
            lines.append(("audio processed", f"{self.audio_s:.1f} s"))
            if self.elapsed_s > 0 and audio_h > 0:
                lines.append(("throughput", f"{audio_h / (self.elapsed_s / 3600):.1f} audio hours per hour"))
        if self.manifest is not None:
            lines.append(("manifest", str(self.manifest)))
        return lines

    def text(self) -> str:
        width = max(len(k) for k, _ in self.table())
        out = [f"{k.ljust(width)}  {v}" for k, v in self.table()]
        out += [f"FAILED {r['reason']}" if r["input"] in r["reason"] else f"FAILED {r['input']}: {r['reason']}"
                for r in self.failed]
        return "\n".join(out)


def _same_input(prev: Mapping, path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if prev.get("input_size") == st.st_size and prev.get("input_mtime_ns") == st.st_mtime_ns:
        return True
    return prev.get("input_size") == st.st_size and prev.get("input_sha256") == file_sha256(path)


def _outputs_intact(prev: Mapping, task: Mapping) -> bool:
    planned = [o["path"] for o in task.get("outputs", [])]
    recorded = {o["path"]: o.get("sha256") for o in prev.get("outputs", [])}
    for p in planned:
        if recorded.get(p) is None or not Path(p).is_file() or file_sha256(p) != recorded[p]:
            return False
    return True


def reusable(prev: Mapping | None, task: Mapping, identity: Mapping | None) -> bool:
    """Whether an earlier ``done`` row stands for ``task`` (see the module docstring)."""
    if prev is None or prev.get("status") != "done":
        return False
    if identity is not None and prev.get("model") != dict(identity):
        return False
    if not isinstance(prev.get("settings"), Mapping) or current_settings(prev["settings"]) != task["settings"]:
        return False
    if not _same_input(prev, Path(task["input"])):
        return False
    if task["kind"] == "evaluate":
        clean = Path(task["clean"])
        return clean.is_file() and prev.get("clean_sha256") == file_sha256(clean)
    return _outputs_intact(prev, task)


def _foreign_outputs(prev: Mapping, task: Mapping) -> list[str]:
    """Planned outputs that exist but that ``prev`` (this batch's row) does not prove it wrote: not recorded
    for that path, or the file's SHA-256 differs from the recorded one (someone changed or replaced it)."""
    recorded = {o["path"]: o.get("sha256") for o in prev.get("outputs") or []}
    foreign = []
    for o in task.get("outputs") or []:
        p = Path(o["path"])
        if not os.path.lexists(p):
            continue
        sha = recorded.get(o["path"])
        try:
            ours = sha is not None and p.is_file() and file_sha256(p) == sha
        except OSError:
            ours = False
        if not ours:
            foreign.append(o["path"])
    return foreign


def _not_ours_row(task: Mapping, identity: Mapping | None, paths: list[str]) -> dict:
    row = _base_row(task, identity)
    row["status"] = "skipped"
    row["reason"] = (f"{paths[0]}: not replaced: it is not the file this batch wrote (changed since, or another "
                     "program's); --overwrite replaces it")
    return row


def _skipped_existing(task: Mapping, identity: Mapping | None) -> dict | None:
    """A ``skipped`` row when every planned output of an enhancement exists as a regular file."""
    outs = task.get("outputs") or []
    if task["kind"] != "enhance" or task.get("overwrite") or not outs:
        return None
    if not all(Path(o["path"]).is_file() for o in outs):
        return None
    row = _base_row(task, identity)
    row["status"] = "skipped"
    row["reason"] = "outputs already exist (an earlier run's; --overwrite recomputes them)"
    if records_digests(task):
        for o in row["outputs"]:
            o["sha256"] = file_sha256(o["path"])
    return row


def run_batch(tasks: Sequence[dict], *, backend: str = "serial", workers: int = 1, threads: int = 1,
              models: Mapping[str, Enhancer] | None = None, specs: Sequence[str | ModelSpec] = (),
              identities: Mapping[str, dict] | None = None, manifest: Manifest | None = None,
              address: str | None = None, should_stop: Callable[[], bool] | None = None,
              on_row: Callable[[dict], None] | None = None) -> Generator[Progress, None, BatchReport]:
    """Run a batch; a generator yielding :class:`Progress`, returning a :class:`BatchReport`.

    Args:
        tasks: from :func:`~workbench.core.workflows.batch.item.enhance_task` / ``evaluate_task``.
        backend: ``serial`` (here, with ``models``), ``local`` (process pool) or ``ray``.
        workers: processes / actors (``ray``: ``None`` or 0 with an address uses the cluster's CPUs).
        threads: intra-op threads per worker.
        models: loaded models by key (``serial``); specs: model specs the workers load (``local``/``ray``),
            a :class:`ModelSpec` where the model is wrapped (processing path, attenuation limit, latency), so
            the workers load the model ``models`` holds.
        identities: model identity per key (recorded in rows, compared on resume).
        manifest: an open :class:`Manifest` (rows are appended as they finish, compacted at the end).
        on_row: called with each row as it is final (reused, skipped or computed).

    Raises:
        Cancelled: ``should_stop`` said so (the manifest is compacted first; resume continues it).
    """
    identities = dict(identities or {})
    t0 = time.perf_counter()
    final: dict[str, dict] = {}
    todo: list[dict] = []
    reused = 0
    previous = manifest.previous if manifest is not None else {}
    for task in tasks:
        ident = identities.get(task["model"])
        prev = previous.get(task["key"])
        if task.get("planned"):  # the planner skipped or refused it before anything ran
            row = _base_row(task, ident)
            row.update(task["planned"])
            if manifest is not None:
                manifest.append(row)
        elif reusable(prev, task, ident):
            row = dict(prev, index=task["index"], settings=task["settings"])  # an earlier version's keys renamed
            reused += 1
        elif prev is not None and prev.get("status") == "done" and task.get("overwrite"):
            todo.append(task)
            continue
        elif prev is not None and prev.get("status") == "done" and not _foreign_outputs(prev, task):
            # Our own earlier result, now stale (input, model or settings changed, or an output was removed):
            # recompute it and replace the outputs this batch's manifest proves it wrote (same path, same
            # SHA-256 now as when written).
            todo.append(dict(task, overwrite=True))
            continue
        elif prev is not None and prev.get("status") == "done":
            row = _not_ours_row(task, ident, _foreign_outputs(prev, task))
            if manifest is not None:
                manifest.append(row)
        else:
            # No row of this batch for it (a fresh run, another batch's manifest, a header without rows, or
            # a run killed between an output's write and its row): what exists is kept and skipped, never
            # replaced unproven.
            row = _skipped_existing(task, ident)
            if row is None:
                todo.append(task)
                continue
            if manifest is not None:
                manifest.append(row)
        final[task["key"]] = row
        if on_row is not None:
            on_row(row)
    # Every output folder of the batch, skipped items' too: a run killed after an item's outputs were complete
    # but before its scratch files were removed leaves them beside outputs this run will not write again.
    remove_stale_parts([o["path"] for t in tasks for o in t.get("outputs", [])])
    total = max(len(tasks), 1)
    n_final = len(final)
    yield Progress(n_final / total, f"{n_final} of {len(tasks)} already done")
    if backend == "serial":
        steps = run_serial(todo, models or {}, identities, should_stop)
    elif backend == "local":
        steps = run_local(todo, specs, workers=max(1, workers), threads=threads, should_stop=should_stop)
    elif backend == "ray":
        steps = run_ray(todo, specs, workers=workers or None, threads=threads, address=address,
                        should_stop=should_stop)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    ran = 0
    cancelled = False
    try:
        for item in steps:
            if isinstance(item, Progress):
                yield Progress((n_final + item.fraction * len(todo)) / total, item.message)
                continue
            item["_ran"] = True
            if manifest is not None:
                manifest.append({k: v for k, v in item.items() if not k.startswith("_")})
            final[item["key"]] = item
            ran += 1
            if on_row is not None:
                on_row(item)
            yield Progress(len(final) / total, f"{len(final)}/{len(tasks)} {Path(item['input']).name}: "
                                               f"{item['status']}")
    except BaseException:
        cancelled = True
        raise
    finally:
        if hasattr(steps, "close"):
            steps.close()
        if manifest is not None:
            kept = dict(previous)
            kept.update(final)
            manifest.finish([{k: v for k, v in r.items() if not k.startswith("_")} for r in kept.values()])
    order = {t["key"]: i for i, t in enumerate(tasks)}
    rows = sorted(final.values(), key=lambda r: order.get(r["key"], 0))
    return BatchReport(rows, ran, reused, time.perf_counter() - t0, backend,
                       0 if backend == "serial" else workers, manifest.path if manifest is not None else None,
                       cancelled)
