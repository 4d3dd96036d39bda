"""What a batch reads and what it will write, decided for the whole batch before anything runs.

* :func:`collect_inputs` expands folders (recursively), list files (``.txt``/``.lst``/``.list``: one
  path per line, ``#`` comments) and CSV manifests (``.csv``: the ``path``/``input``/``file`` column, or
  the first one), and earlier batch manifests (``.jsonl``: their ``input`` fields). Relative paths in a
  list are relative to the list's folder.
* :func:`plan_outputs` names every output: ``OUT/<sub folders>/<stem>.<model>.<ext>`` (the sub folders
  mirror the input's place below the folder it was found in, so ``a/x.wav`` and ``b/x.wav`` never
  collide), ``<stem>.<model>.<output>.<ext>`` for models with several outputs, and
  ``<stem>.<model>.residual.<ext>`` for residuals. No output may be an input; two items that would
  write one file are refused with both names.

The planning call is one function (:func:`plan_outputs`), so the project's shared output planner can
replace the naming here without touching the pipeline.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import WorkbenchError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3", ".w64", ".caf", ".opus"}
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


def _read_list(path: Path) -> list[Path]:
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"{path}: cannot read the input list ({exc})") from None
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
            found = sorted(f for f in walk if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
                           and not f.name.startswith(".") and not excluded(f))
            if not found:
                raise WorkbenchError(f"{p}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
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
    ext = {"WAV": ".wav", "FLAC": ".flac"}[fmt.upper()]
    return f"{stem}.{model_tag}{'.' + output if output else ''}{ext}"


def plan_outputs(inputs: Sequence[InputFile], out_dir: str | Path, models: Sequence[tuple[str, str, Sequence[str]]],
                 *, fmt: str = "WAV", residual: bool = False) -> list[list[list[dict]]]:
    """Name every output of the batch.

    Args:
        models: ``(model key, file tag, output names)`` per model; a model with one output writes
            ``<stem>.<tag>.<ext>``, one with several ``<stem>.<tag>.<output>.<ext>`` each.

    Returns:
        ``plan[i][m]``: the ``[{"name", "path"}]`` outputs of input ``i`` with model ``m``.

    Raises:
        WorkbenchError: an output would be one of the inputs, or two items would write the same file.
    """
    out_dir = Path(out_dir)
    inputs_resolved = {f.path.resolve(): f.path for f in inputs if f.path.exists()}
    claimed: dict[Path, str] = {}
    plan: list[list[list[dict]]] = []
    for f in inputs:
        per_model = []
        for key, tag, outputs in models:
            several = len(outputs) > 1
            names = [(o, output_name(f.path.stem, tag, o if several else None, fmt)) for o in outputs]
            if residual:
                names.append(("residual", output_name(f.path.stem, tag, "residual", fmt)))
            entries = []
            for name, fname in names:
                target = out_dir / f.relative_parent / fname
                rt = target.resolve()
                if rt in inputs_resolved:
                    raise WorkbenchError(f"{target}: would be written over an input of this batch "
                                         f"({inputs_resolved[rt]}); choose another output folder")
                if rt in claimed:
                    raise WorkbenchError(f"{target}: two inputs would write this file ({claimed[rt]} and "
                                         f"{f.path}); rename one or run them into separate folders")
                claimed[rt] = str(f.path)
                entries.append({"name": "enhanced" if not several and name == outputs[0] else name,
                                "path": str(target)})
            per_model.append(entries)
        plan.append(per_model)
    return plan
