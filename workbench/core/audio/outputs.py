"""Output safety: where the workbench may write, decided before anything is written.

Every file the program writes (audio, CSV, JSON, PNG/SVG, sessions) goes through
:func:`workbench.core.audio.audio_io.atomic_output`, which calls :func:`check_output_target` first. The rules:

* an **input of the command** is never written over: compared by resolved path and by identity
  (``st_dev``, ``st_ino``), so symlinks and hard links to an input are caught too;
* **nothing that is not a regular file** is replaced: folders, FIFOs, device nodes (``/dev/null``)
  and sockets are refused even with ``overwrite`` (an atomic rename would swap the node for a file);
* an **existing file** is replaced only with ``overwrite=True`` (the CLI's ``--overwrite``).

Batches are planned whole before the first write (:func:`plan_batch_outputs`): no output may be an
input of the batch, two inputs that would map to one name get distinct names, and inputs that are
earlier outputs of the same model (``a.wiener.wav`` for model tag ``wiener``) are skipped, so running a
model over a folder that already holds its results does not enhance them again.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import WorkbenchError, node_kind


class OutputError(WorkbenchError):
    """A target the workbench refuses to write; the message names the path and the reason."""


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def is_same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: equal resolved paths, or equal ``(st_dev, st_ino)``
    (a hard link or a symlink to it)."""
    a, b = Path(a), Path(b)
    if _resolved(a) == _resolved(b):
        return True
    sa, sb = _stat(a), _stat(b)
    return sa is not None and sb is not None and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_output_target(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                        overwrite: bool = False) -> Path:
    """Return ``path`` when the workbench may write a file there; raise :class:`OutputError` otherwise.

    Args:
        path: the final name of the file to write.
        inputs: every file the current command reads (recordings, references, models ...).
        overwrite: allow replacing an existing *regular* file that is not an input.

    Raises:
        OutputError: ``path`` is an input (same resolved path, symlink or hard link), exists and is not
            a regular file (folder, FIFO, device, socket), or exists while ``overwrite`` is false.
    """
    path = Path(path)
    for item in inputs:
        if item is None:
            continue
        if is_same_file(path, item):
            raise OutputError(f"{path}: refusing to write over the input file {item} of this command")
    st = _stat(path)
    if st is None:
        # New path (or a dangling symlink: renaming over it replaces only the link).
        return path
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{path}: is {node_kind(st.st_mode)}; refusing to replace it with a file "
                          "(choose a new file name)")
    if not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
    return path


@dataclass(frozen=True)
class PlannedOutput:
    """One input of a batch and what will be written for it.

    Attributes:
        source: the input file.
        targets: one output path per tag, in the order of the ``tags`` given to the planner.
        skip: why the input is not processed (an earlier output of the same model), else ``None``.
        error: why its outputs cannot be written (exists without overwrite, is an input, not a regular
            file), else ``None``.
    """

    source: Path
    targets: tuple[Path, ...]
    skip: str | None = None
    error: str | None = None

    @property
    def todo(self) -> bool:
        """True when the input is to be processed and written."""
        return self.skip is None and self.error is None


def previous_output_pattern(model_tag: str) -> re.Pattern:
    """Stems that earlier runs of the model tagged ``model_tag`` produce: ``x.<tag>``, ``x.<tag>-2``,
    ``x.<tag>.residual``, ``x.<tag>.<output>`` of a model with several outputs (the name stem, i.e.
    without the audio suffix)."""
    return re.compile(rf"\.{re.escape(model_tag)}(-\d+)?(\.[A-Za-z0-9_-]+)?$")


def plan_batch_outputs(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                       tags: Sequence[str], suffix: str = ".wav", overwrite: bool = False,
                       skip_previous: bool = True, model_tag: str | None = None,
                       protect: Iterable[str | os.PathLike] = ()) -> list[PlannedOutput]:
    """Plan every output of a batch before anything is written.

    Each input ``<stem>.<ext>`` gets ``out_dir/<stem>.<tag><suffix>`` per tag (e.g. ``("wiener",
    "wiener.residual")``). Then:

    * inputs whose stem matches :func:`previous_output_pattern` of ``model_tag`` (default ``tags[0]``)
      are skipped when ``skip_previous`` (an earlier output of the same model, not a recording);
    * inputs that would share a name (``x.wav`` and ``x.flac``) are named ``<stem>-<ext>.<tag>`` instead,
      and when that still collides (same name in two folders) numbered ``<stem>-<ext>-2.<tag>`` ...;
    * a target that is an input of the batch (skipped ones and ``protect`` included), a non-regular
      file, or an existing file without ``overwrite`` gives that input an ``error`` (the others go on).

    Returns:
        one :class:`PlannedOutput` per input, in input order.
    """
    if not tags:
        raise ValueError("plan_batch_outputs needs at least one tag")
    sources = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    model_tag = tags[0] if model_tag is None else model_tag
    previous = previous_output_pattern(model_tag)
    every_input = list(sources) + [Path(p) for p in protect]

    skips: dict[int, str] = {}
    for i, src in enumerate(sources):
        if skip_previous and previous.search(src.stem):
            skips[i] = f"skipped: {src.name} looks like an earlier output of {model_tag!r}"

    # Base names, then disambiguate collisions among the inputs that will be processed.
    todo = [i for i in range(len(sources)) if i not in skips]
    stems = {i: sources[i].stem for i in todo}
    by_name: dict[str, list[int]] = {}
    for i in todo:
        by_name.setdefault(stems[i].casefold(), []).append(i)
    for group in by_name.values():
        if len(group) > 1:
            for i in group:
                ext = sources[i].suffix.lstrip(".")
                stems[i] = f"{sources[i].stem}-{ext}" if ext else sources[i].stem
    seen: dict[str, int] = {}
    for i in todo:
        key = stems[i].casefold()
        count = seen.get(key, 0) + 1
        seen[key] = count
        if count > 1:
            stems[i] = f"{stems[i]}-{count}"

    plan: list[PlannedOutput] = []
    resolved_targets: set[Path] = set()
    for i, src in enumerate(sources):
        stem = stems.get(i, src.stem)
        targets = tuple(out_dir / f"{stem}.{tag}{suffix}" for tag in tags)
        if i in skips:
            plan.append(PlannedOutput(src, targets, skip=skips[i]))
            continue
        error = None
        for t in targets:
            r = _resolved(t)
            if r in resolved_targets:  # a tag list that maps two outputs onto one name
                error = f"{t}: two outputs of this batch would get the same name"
                break
            resolved_targets.add(r)
            earlier = next((sources[k] for k in skips if is_same_file(t, sources[k])), None)
            if earlier is not None:
                error = (f"{t}: is an input of this batch (an earlier output of {model_tag!r}, skipped), so it "
                         "is not written over; write to another folder (-o) to make it again")
                break
            try:
                check_output_target(t, inputs=every_input, overwrite=overwrite)
            except OutputError as exc:
                error = str(exc)
                break
        plan.append(PlannedOutput(src, targets, error=error))
    return plan
