"""Reading the files the workbench opens that are not audio: session JSON, batch manifests, model cards,
configuration. One reader, so each of them survives what a careless or hostile person hands over.

:func:`read_bytes` stats the path before opening it and refuses anything that is not a regular file
(a FIFO would block the reading thread for good; a link to ``/dev/zero`` never ends), opens it without
blocking and checks the opened descriptor again (the name may have been swapped in between), and reads
at most ``max_bytes``. :func:`parse_json` refuses nesting deeper than ``max_depth`` before the parser
recurses, and the non-standard constants ``NaN``/``Infinity`` that Python's parser accepts.

The schema half checks a parsed document field by field: :class:`Int`, :class:`Num`, :class:`Str`,
:class:`Bool`, :class:`Null`, :class:`List`, :class:`Obj`, :class:`OneOf` and :class:`AnyJson` describe
types and ranges; :func:`check` returns the value (converted where the schema says so) or raises
:class:`SchemaError` whose message is one line naming the file, the field (``recordings[0].frames``) and
the problem in a person's words — never a Python exception text.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import WorkbenchError, node_kind

#: Default size cap of a JSON/TOML/JSONL file the workbench reads (a session of many recordings is ~100 kB).
MAX_BYTES = 64 << 20
#: Default nesting cap: every format here is a few levels deep; Python's parser recurses per level.
MAX_DEPTH = 64


class JsonFileError(WorkbenchError):
    """A non-audio file that cannot be read: not a regular file, too large, not JSON, too deeply nested."""


class SchemaError(WorkbenchError):
    """A field of a parsed file with the wrong type or out of range.

    Attributes:
        file: the file (or ``None``), field: dotted path of the field, problem: what is wrong.
    """

    def __init__(self, file: str | os.PathLike | None, field_path: str, problem: str):
        self.file = None if file is None else Path(file)
        self.field = field_path
        self.problem = problem
        where = f"{self.file}: " if self.file is not None else ""
        super().__init__(f"{where}{field_path or 'the document'}: {problem}")


def check_regular(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> os.stat_result:
    """Stat ``path`` (following links) and refuse what is not a regular file or is over ``max_bytes``.

    Never opens the file, so it cannot block. Raises :class:`JsonFileError` naming ``what`` and the file."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise JsonFileError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise JsonFileError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise JsonFileError(f"{path}: {what} is {node_kind(st.st_mode)}, not a regular file; not read")
    if max_bytes is not None and st.st_size > max_bytes:
        raise JsonFileError(f"{path}: {what} is {st.st_size} bytes, more than the {max_bytes}-byte limit; not read")
    return st


def read_bytes(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, or :class:`JsonFileError` naming the problem.

    Checks before opening (:func:`check_regular`), opens with ``O_NONBLOCK`` (a FIFO swapped in after the
    check opens at once instead of waiting for a writer), checks the open descriptor again and never reads
    more than ``max_bytes + 1`` bytes (a file that grows while read is refused, not read without end)."""
    path = Path(path)
    check_regular(path, what, max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise JsonFileError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise JsonFileError(f"{path}: {what} is {node_kind(st.st_mode)}, not a regular file; not read")
        chunks, got = [], 0
        while got <= max_bytes:
            try:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - got))
            except OSError as exc:
                raise JsonFileError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > max_bytes:
            raise JsonFileError(f"{path}: {what} is larger than the {max_bytes}-byte limit; not read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES, what: str = "file",
              errors: str = "strict") -> str:
    """:func:`read_bytes` decoded as UTF-8 (a BOM is dropped); undecodable bytes are a :class:`JsonFileError`
    unless ``errors="replace"``."""
    data = read_bytes(path, max_bytes=max_bytes, what=what)
    try:
        return data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as exc:
        raise JsonFileError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def nesting_depth(value: Any, stop_at: int | None = None) -> int:
    """Deepest list/object nesting of a parsed JSON value (iterative: no recursion however deep);
    stops once ``stop_at`` is passed."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            if d > deepest:
                deepest = d
                if stop_at is not None and deepest > stop_at:
                    return deepest
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, where: str | os.PathLike, *, max_depth: int = MAX_DEPTH, what: str = "file") -> Any:
    """``json.loads`` that refuses nesting over ``max_depth`` (the parser's own recursion limit included) and the
    ``NaN``/``Infinity`` constants; any problem is a :class:`JsonFileError` naming ``where``."""
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise JsonFileError(f"{where}: not a {what} (invalid JSON at line {exc.lineno})") from None
    except ValueError as exc:
        raise JsonFileError(f"{where}: not a {what} ({exc})") from None
    except RecursionError:
        raise JsonFileError(f"{where}: {what} is nested more than {max_depth} levels deep; not read") from None
    if nesting_depth(doc, stop_at=max_depth) > max_depth:
        raise JsonFileError(f"{where}: {what} is nested more than {max_depth} levels deep; not read")
    return doc


def load_json(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
              what: str = "file") -> Any:
    """Read and parse a JSON file once: :func:`read_text` then :func:`parse_json`."""
    text = read_text(path, max_bytes=max_bytes, what=what)
    return parse_json(text, path, max_depth=max_depth, what=what)


# -- schema ------------------------------------------------------------------------------------------------
def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "…'"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:39] + "…"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Schema:
    """A check of one value; :meth:`check` returns the (possibly converted) value or raises SchemaError."""

    def describe(self) -> str:  # "an integer from 1 to 1024"
        raise NotImplementedError

    def check(self, value: Any, where: str, file) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, where: str, file, problem: str | None = None):
        raise SchemaError(file, where, problem or f"expected {self.describe()}, got {_show(value)}")


def _range_words(lo, hi, unit: str) -> str:
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f" from {lo:g} to {hi:g}{u}"
    if lo is not None:
        return f" of at least {lo:g}{u}"
    if hi is not None:
        return f" of at most {hi:g}{u}"
    return u


@dataclass
class Int(Schema):
    """An integer (``true``/``false`` and floats are refused; ``3.0`` too) within ``[lo, hi]``."""

    lo: int | None = None
    hi: int | None = None
    unit: str = ""

    def describe(self) -> str:
        return "an integer" + _range_words(self.lo, self.hi, self.unit)

    def check(self, value, where, file):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(value, where, file)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            self.fail(value, where, file)
        return value


@dataclass
class Num(Schema):
    """A finite number within ``[lo, hi]`` (integers accepted, returned as float)."""

    lo: float | None = None
    hi: float | None = None
    unit: str = ""

    def describe(self) -> str:
        return "a finite number" + _range_words(self.lo, self.hi, self.unit)

    def check(self, value, where, file):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(value, where, file)
        try:
            v = float(value)
        except OverflowError:
            self.fail(value, where, file)
        if not math.isfinite(v) or (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            self.fail(value, where, file)
        return v


@dataclass
class Str(Schema):
    """A string of at most ``max_len`` characters, one of ``choices`` when given."""

    max_len: int = 4096
    choices: Sequence[str] | None = None
    nonempty: bool = False

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return "a non-empty text" if self.nonempty else "a text"

    def check(self, value, where, file):
        if not isinstance(value, str):
            self.fail(value, where, file)
        if len(value) > self.max_len:
            self.fail(value, where, file, f"text of {len(value)} characters, more than {self.max_len}")
        if (self.choices is not None and value not in self.choices) or (self.nonempty and not value):
            self.fail(value, where, file)
        return value


@dataclass
class Bool(Schema):
    def describe(self) -> str:
        return "true or false"

    def check(self, value, where, file):
        if not isinstance(value, bool):
            self.fail(value, where, file)
        return value


@dataclass
class Null(Schema):
    def describe(self) -> str:
        return "null"

    def check(self, value, where, file):
        if value is not None:
            self.fail(value, where, file)
        return None


@dataclass
class AnyJson(Schema):
    """Any JSON value (already depth-capped by the parser); numbers must still be finite."""

    def describe(self) -> str:
        return "a JSON value"

    def check(self, value, where, file):
        return value


class OneOf(Schema):
    """The first alternative that accepts the value (``OneOf(Null(), Int(0))`` for "null or an index").

    When every alternative refuses it and one of them got past the value's own type (the problem is in a
    field inside it), that alternative's message is reported: it names the field that is wrong."""

    def __init__(self, *options: Schema):
        self.options = options

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)

    def check(self, value, where, file):
        deeper: SchemaError | None = None
        for o in self.options:
            try:
                return o.check(value, where, file)
            except SchemaError as exc:
                if exc.field != where and deeper is None:
                    deeper = exc
                elif exc.field == where and isinstance(o, (Obj, List)) and _type_fits(o, value) and deeper is None:
                    deeper = exc
        if deeper is not None:
            raise deeper
        self.fail(value, where, file)


def _type_fits(schema: Schema, value: Any) -> bool:
    return (isinstance(schema, Obj) and isinstance(value, dict)) or (isinstance(schema, List)
                                                                     and isinstance(value, list))


def Optional(schema: Schema) -> Schema:  # noqa: N802 - reads as a type
    """``schema`` or ``null``."""
    return OneOf(Null(), schema)


@dataclass
class List(Schema):
    """A list whose items all pass ``item``; ``length`` fixes its size, else ``[min_len, max_len]``."""

    item: Schema = field(default_factory=AnyJson)
    min_len: int = 0
    max_len: int = 1_000_000
    length: int | None = None
    convert: Callable[[list], Any] | None = None

    def describe(self) -> str:
        if self.length is not None:
            return f"a list of {self.length} ({self.item.describe()})"
        return f"a list of {self.item.describe()}"

    def check(self, value, where, file):
        if not isinstance(value, list):
            self.fail(value, where, file)
        n = len(value)
        if self.length is not None and n != self.length:
            self.fail(value, where, file, f"expected {self.length} item(s), got {n}")
        if n < self.min_len or n > self.max_len:
            self.fail(value, where, file, f"expected {self.min_len} to {self.max_len} item(s), got {n}")
        out = [self.item.check(v, f"{where}[{i}]", file) for i, v in enumerate(value)]
        if self.convert is not None:
            try:
                return self.convert(out)
            except (ValueError, TypeError) as exc:
                self.fail(value, where, file, str(exc))
        return out


@dataclass
class Key:
    """A field of an :class:`Obj`: its schema, whether it must be present, and its default when absent."""

    schema: Schema
    required: bool = False
    default: Any = None


@dataclass
class Obj(Schema):
    """A JSON object with known ``keys``; unknown keys are kept (``extra``: a schema for them) or refused.

    ``rule`` (optional) sees the checked dict and returns a problem sentence or ``None`` (cross-field
    checks such as "hop must not exceed n_fft")."""

    keys: Mapping[str, Key | Schema] = field(default_factory=dict)
    extra: Schema | None = field(default_factory=AnyJson)
    rule: Callable[[dict], str | None] | None = None
    fill_defaults: bool = False

    def describe(self) -> str:
        return "an object"

    def check(self, value, where, file):
        if not isinstance(value, dict):
            self.fail(value, where, file)
        out = {}
        for name, spec in self.keys.items():
            spec = spec if isinstance(spec, Key) else Key(spec)
            sub = f"{where}.{name}" if where else name
            if name not in value:
                if spec.required:
                    raise SchemaError(file, sub, "missing")
                if self.fill_defaults:
                    out[name] = spec.default
                continue
            out[name] = spec.schema.check(value[name], sub, file)
        for name, v in value.items():
            if name in self.keys:
                continue
            sub = f"{where}.{name}" if where else str(name)
            if self.extra is None:
                raise SchemaError(file, sub, "unknown field")
            out[name] = self.extra.check(v, sub, file)
        if self.rule is not None:
            problem = self.rule(out)
            if problem:
                raise SchemaError(file, where, problem)
        return out


def check(value: Any, schema: Schema, file: str | os.PathLike | None = None, where: str = "") -> Any:
    """Check ``value`` against ``schema``; returns the checked value or raises :class:`SchemaError`."""
    return schema.check(value, where, file)
