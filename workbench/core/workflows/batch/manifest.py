"""The batch manifest: one JSON object per line (JSONL), the record a resumed run continues from.

Line 1 is a header ``{"manifest": "workbench-batch", "version": 1, "kind": "enhance"|"evaluate",
"created": ..., "models": [...], "settings": {...}}``; every further line is one item's row (see
:mod:`workbench.core.workflows.batch.item` and the README). While a batch runs, each finished row is appended
and flushed to disk at once, so a kill (Ctrl-C, SIGKILL, power loss) loses at most the line being
written — a torn last line is ignored when the manifest is read. When the run ends (also when it is
interrupted by Ctrl-C) the manifest is compacted: one row per item, the latest, in input order,
written through the atomic writer (:func:`workbench.core.workflows.export.write_text_atomic`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ...audio.audio_io import ensure_folder, same_file
from ...errors import WorkbenchError
from ..export import write_text_atomic

MAGIC = "workbench-batch"
VERSION = 1


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def read_manifest(path: str | Path) -> tuple[dict | None, dict[str, dict]]:
    """``(header, {key: latest row})`` of a manifest; lines that do not parse (a torn last line) are
    skipped."""
    path = Path(path)
    header = None
    rows: dict[str, dict] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("manifest") == MAGIC:
            header = header or rec
        elif "key" in rec and rec.get("status") in ("done", "failed", "skipped"):
            rows[rec["key"]] = rec
    return header, rows


class Manifest:
    """An open manifest: ``append`` rows as items finish, ``finish`` to compact it.

    Args:
        path: the JSONL file.
        header: the header row for a new manifest (``kind``, ``models``, ``settings``).
        resume: continue an existing manifest (its rows are :attr:`previous`); without it an existing
            manifest is refused unless ``overwrite``.
        protect: files that must never be written (the batch's inputs).
    """

    def __init__(self, path: str | Path, header: Mapping, *, resume: bool = False, overwrite: bool = False,
                 protect: Sequence[str | Path] = ()):
        self.path = Path(path)
        self.protect = tuple(protect)
        for p in self.protect:
            if same_file(self.path, p):
                raise WorkbenchError(f"{self.path}: the manifest would be written over an input of this batch")
        if self.path.exists() and not self.path.is_file():
            raise WorkbenchError(f"{self.path}: not a regular file; choose another manifest path")
        self.previous: dict[str, dict] = {}
        #: True when this run continues an existing manifest (``--resume``).
        self.resumed = False
        self.header = {"manifest": MAGIC, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       **dict(header)}
        if self.path.exists() and self.path.stat().st_size > 0:
            if resume:
                old_header, self.previous = read_manifest(self.path)
                if old_header is None:
                    raise WorkbenchError(f"{self.path}: not a workbench batch manifest; refusing to continue it")
                if old_header.get("kind") != self.header.get("kind"):
                    raise WorkbenchError(f"{self.path}: manifest of a batch {old_header.get('kind')!r} run, "
                                         f"not {self.header.get('kind')!r}")
                self.header["created"] = old_header.get("created", self.header["created"])
                self.resumed = True
            elif not overwrite:
                raise WorkbenchError(f"{self.path}: a manifest already exists; use --resume to continue that batch "
                                     "or --overwrite to start again")
        ensure_folder(self.path.parent)
        self._compact(self.previous.values())  # a fresh header (and the kept rows) before the first append
        self._fh = open(self.path, "a", encoding="utf-8")

    def append(self, row: Mapping) -> None:
        """Add one finished row and push it to disk (survives a kill of this process right after)."""
        self._fh.write(_dumps(row) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _compact(self, rows: Iterable[Mapping]) -> None:
        rows = sorted(rows, key=lambda r: (r.get("index", 0), r.get("key", "")))
        text = "".join(_dumps(r) + "\n" for r in [self.header, *rows])
        write_text_atomic(self.path, text, overwrite=True, protect=self.protect)

    def finish(self, rows: Iterable[Mapping]) -> None:
        """Close the journal and rewrite it as header + ``rows`` (one per item, input order)."""
        self.close()
        self._compact(rows)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
