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

from ...audio.audio_io import describe_os_error, ensure_folder, same_file
from ...errors import WorkbenchError
from ...jsonfile import Int, JsonFileError, Key, List, Obj, Optional, SchemaError, Str, check, parse_json, read_text
from ..export import write_text_atomic

MAGIC = "workbench-batch"
VERSION = 1


def _same_folder(a, b) -> bool:
    if not isinstance(b, str):
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


#: A manifest larger than this is refused before it is read (a row is ~1-2 kB: half a million items).
MAX_MANIFEST_BYTES = 1 << 30

_OUTPUT = Obj({"path": Key(Str(max_len=4096, nonempty=True), required=True), "sha256": Optional(Str(max_len=64)),
               "name": Optional(Str(max_len=512))})
#: The fields of a row the driver relies on (the rest is kept as it is: metrics, timings, reasons ...).
ROW = Obj({"key": Key(Str(max_len=8192, nonempty=True), required=True),
           "status": Key(Str(choices=("done", "failed", "skipped")), required=True),
           "index": Int(0, 1 << 40), "input": Str(max_len=8192), "kind": Str(max_len=64),
           "outputs": Optional(List(_OUTPUT, max_len=1024)),
           "input_size": Optional(Int(0)), "input_mtime_ns": Optional(Int()), "input_sha256": Optional(Str(max_len=64)),
           "clean": Optional(Str(max_len=8192)), "clean_sha256": Optional(Str(max_len=64))})
HEADER = Obj({"manifest": Key(Str(choices=(MAGIC,)), required=True), "version": Int(1, VERSION),
              "kind": Key(Str(choices=("enhance", "evaluate")), required=True),
              "output_dir": Str(max_len=8192), "pairs_dir": Str(max_len=8192)})


def read_manifest(path: str | Path) -> tuple[dict | None, dict[str, dict]]:
    """``(header, {key: latest row})`` of a manifest.

    Lines that are not JSON (a torn last line of a killed run) are skipped; a line that is JSON but not a
    well-formed header or row (a key that is not a text, an index that is not a number, outputs that are not
    objects, ``NaN``) is refused in one line naming the manifest, the line and the field.

    Raises:
        WorkbenchError: not a regular file, too large, unreadable, or a malformed row.
    """
    path = Path(path)
    try:
        text = read_text(path, max_bytes=MAX_MANIFEST_BYTES, what="manifest", errors="replace")
    except JsonFileError as exc:
        raise WorkbenchError(str(exc)) from None
    header = None
    rows: dict[str, dict] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = parse_json(line, path, max_depth=32, what="manifest line")
        except JsonFileError as exc:
            if "invalid JSON" in str(exc):
                continue  # torn or foreign text: not a row
            raise WorkbenchError(f"{path}: line {n}: {str(exc).split(': ', 1)[-1]}") from None
        if not isinstance(rec, dict):
            continue
        try:
            if rec.get("manifest") == MAGIC:
                if header is None:
                    header = check(rec, HEADER, None, f"line {n}")
            elif "key" in rec and rec.get("status") in ("done", "failed", "skipped"):
                row = check(rec, ROW, None, f"line {n}")
                rows[row["key"]] = row
        except SchemaError as exc:
            raise WorkbenchError(f"{path}: {exc}; the manifest is damaged (remove the line, or start again "
                                 "with --overwrite)") from None
    return header, rows


def _space_error(path: Path, exc: OSError) -> WorkbenchError:
    return WorkbenchError(f"{path}: the manifest could not be written ({describe_os_error(path, exc)}); the "
                          "rows written so far are kept")


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
                for where in ("output_dir", "pairs_dir"):
                    mine, theirs = self.header.get(where), old_header.get(where)
                    if mine is not None and theirs is not None and not _same_folder(mine, theirs):
                        raise WorkbenchError(f"{self.path}: the manifest of another batch ({where.replace('_', ' ')} "
                                             f"{theirs!r}, not {str(mine)!r}); refusing to continue it")
                self.header["created"] = old_header.get("created", self.header["created"])
                self.resumed = True
            elif not overwrite:
                raise WorkbenchError(f"{self.path}: a manifest already exists; use --resume to continue that batch "
                                     "or --overwrite to start again")
        ensure_folder(self.path.parent)
        self._compact(self.previous.values())  # a fresh header (and the kept rows) before the first append
        try:
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise _space_error(self.path, exc) from None

    def append(self, row: Mapping) -> None:
        """Add one finished row and push it to disk (survives a kill of this process right after).

        Raises:
            WorkbenchError: the row could not be written (a full drive ...), in one line."""
        try:
            self._fh.write(_dumps(row) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise _space_error(self.path, exc) from None

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
            try:
                self._fh.close()
            except OSError as exc:
                raise _space_error(self.path, exc) from None
