"""What a batch reads and what it will write, decided for the whole batch before anything runs.

* :func:`collect_inputs` expands folders (recursively), list files (``.txt``/``.lst``/``.list``: one
  path per line, ``#`` comments) and CSV manifests (``.csv``: the ``path``/``input``/``file`` column, or
  the first one), and earlier batch manifests (``.jsonl``: their ``input`` fields). Relative paths in a
  list are relative to the list's folder.
* :func:`plan_outputs` names every output: ``OUT/<sub folders>/<stem>.<model>.<ext>`` (the sub folders
  mirror the input's place below the folder it was found in, so ``a/x.wav`` and ``b/x.wav`` never
  collide), ``<stem>.<model>.<output>.<ext>`` for models with several outputs, and
  ``<stem>.<model>.residual.<ext>`` for residuals, through the project's one output planner
  (:func:`workbench.core.audio.outputs.plan_batch_outputs`): no output may be an input, colliding names get
  distinct ones, inputs that are earlier outputs of the model are skipped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ...audio.formats import READ_SUFFIXES, format_named
from ...audio.outputs import plan_batch_outputs
from ...errors import WorkbenchError
from ...jsonfile import JsonFileError, read_text
from ..export import file_tag
from .item import EnhanceSettings, enhance_task

LIST_SUFFIXES = {".txt", ".lst", ".list"}
CSV_PATH_COLUMNS = ("path", "input", "file", "filename")


@dataclass(frozen=True)
class InputFile:
    """One input: its path and the folder it was found under (``root``; its parent for a plain file),
    which decides the mirrored sub folder of its outputs."""

    path: Path
    root: Path

    @property
    def relative_parent(self) -> Path:
        try:
            return self.path.parent.relative_to(self.root)
        except ValueError:
            return Path()


#: An input list (paths, CSV, an earlier manifest) larger than this is refused before it is read.
LIST_MAX_BYTES = 1 << 30


def _read_list(path: Path) -> list[Path]:
    base = path.parent
    try:
        text = read_text(path, max_bytes=LIST_MAX_BYTES, what="input list")
    except JsonFileError as exc:
        raise WorkbenchError(str(exc)) from None
    items: list[str] = []
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        col = next((header.index(c) for c in CSV_PATH_COLUMNS if c in header), None)
        body = rows[1:] if col is not None else rows
        col = 0 if col is None else col
        items = [r[col].strip() for r in body if len(r) > col and r[col].strip()]
    elif suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
            if isinstance(rec, dict) and isinstance(rec.get("input"), str) and "key" in rec:
                if rec["input"] not in items:
                    items.append(rec["input"])
    else:
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [p if p.is_absolute() else base / p for p in map(Path, items)]


def collect_inputs(items: Sequence[str | Path], *, recursive: bool = True,
                   exclude: Sequence[str | Path] = ()) -> list[InputFile]:
    """Expand ``items`` into input files, in a stable order (folders sorted, lists in their order).

    A path that does not exist stays in the list (it becomes that file's failed row). Files under any
    of ``exclude`` (the output folder) are not taken from folders, so a rerun does not enhance its own
    outputs.

    Raises:
        WorkbenchError: a folder that holds no audio file, or an unreadable list file.
    """
    excl = [Path(e).resolve() for e in exclude]

    def excluded(p: Path) -> bool:
        rp = p.resolve()
        return any(rp == e or e in rp.parents for e in excl)

    out: list[InputFile] = []
    seen: set[Path] = set()

    def add(p: Path, root: Path) -> None:
        key = p.resolve() if p.exists() else p.absolute()
        if key not in seen:
            seen.add(key)
            out.append(InputFile(p, root))

    for item in items:
        p = Path(item)
        if p.is_dir():
            walk = p.rglob("*") if recursive else p.iterdir()
            found = sorted(f for f in walk if f.suffix.lower() in READ_SUFFIXES and f.is_file()
                           and not f.name.startswith(".") and not excluded(f))
            if not found:
                raise WorkbenchError(f"{p}: folder holds no audio files ({', '.join(sorted(READ_SUFFIXES))})")
            for f in found:
                add(f, p)
        elif p.suffix.lower() in LIST_SUFFIXES | {".csv", ".jsonl"} and p.is_file():
            for f in _read_list(p):
                add(f, f.parent)
        else:
            add(p, p.parent)
    return out


def output_name(stem: str, model_tag: str, output: str | None, fmt: str) -> str:
    """``<stem>.<model>[.<output>].<ext>``; ``output`` is ``None`` for a single-output model's result."""
    ext = format_named(fmt).suffix
    return f"{stem}.{model_tag}{'.' + output if output else ''}{ext}"


def plan_outputs(inputs: Sequence[InputFile], out_dir: str | Path, models: Sequence[tuple[str, str, Sequence[str]]],
                 *, fmt: str = "WAV", residual: bool = False, refuse_existing: bool = False) -> list[list[dict]]:
    """Name every output of the batch with the project's planner
    (:func:`workbench.core.audio.outputs.plan_batch_outputs`), one call per mirrored sub folder and model.

    Args:
        models: ``(model key, file tag, output names)`` per model; a model with one output writes
            ``<stem>.<tag>.<ext>``, one with several ``<stem>.<tag>.<output>.<ext>`` each.

    Returns:
        ``plan[i][m]``: ``{"outputs": [{"name", "path"}], "skip": str | None, "error": str | None}`` for
        input ``i`` with model ``m``. ``skip``: the input is an earlier output of that model; ``error``: an
        output would be an input of the batch or is not a regular file (or, with ``refuse_existing``,
        exists). Colliding names (``x.wav`` and ``x.flac``) get distinct names (``x-wav.<tag>``,
        ``x-flac.<tag>``). With ``residual`` every output gets its residual: ``<tag>.residual`` (name
        ``residual``) for one output, ``<tag>.<output>.residual`` (name ``<output>.residual``) for several.
    """
    out_dir = Path(out_dir)
    ext = format_named(fmt).suffix
    every_input = [f.path for f in inputs]
    groups: dict[Path, list[int]] = {}
    for i, f in enumerate(inputs):
        groups.setdefault(f.relative_parent, []).append(i)
    plan: list[list[dict]] = [[{} for _ in models] for _ in inputs]
    for rel, members in groups.items():
        for m, (_key, tag, outputs) in enumerate(models):
            several = len(outputs) > 1
            names = [(o if several else "enhanced", f"{tag}.{file_tag(o)}" if several else tag) for o in outputs]
            if residual:
                names += [(f"{n}.residual" if several else "residual", f"{t}.residual") for n, t in names]
            planned = plan_batch_outputs([inputs[i].path for i in members], out_dir / rel,
                                         tags=[t for _, t in names], suffix=ext, overwrite=not refuse_existing,
                                         model_tag=tag, protect=every_input)
            for i, item in zip(members, planned):
                plan[i][m] = {"outputs": [{"name": n, "path": str(t)} for (n, _), t in zip(names, item.targets)],
                              "skip": item.skip, "error": item.error}
    return plan


def enhance_tasks(inputs: Sequence[InputFile], out_dir, models: Sequence[tuple[str, str, Sequence[str]]],
                  settings: EnhanceSettings, *, overwrite: bool = False, refuse_existing: bool = False) -> list[dict]:
    """Tasks for every input with every model (input-major order), outputs planned by :func:`plan_outputs`.

    Args:
        models: ``(model key, file tag, output names)`` per model (see :func:`plan_outputs`).
        refuse_existing: an output that exists already fails its task (unless ``overwrite``), rather than
            being kept as an earlier run's (what a resumable ``workbench batch`` does).
    """
    plan = plan_outputs(inputs, out_dir, models, fmt=settings.format, residual=settings.residual,
                        refuse_existing=refuse_existing and not overwrite)
    tasks = []
    for f, per_model in zip(inputs, plan):
        for (key, _tag, _outs), planned in zip(models, per_model):
            task = enhance_task(len(tasks), f.path, key, planned["outputs"], settings, overwrite=overwrite)
            if planned["skip"] or planned["error"]:
                task["planned"] = {"status": "skipped" if planned["skip"] else "failed",
                                   "reason": planned["skip"] or planned["error"]}
            tasks.append(task)
    return tasks
