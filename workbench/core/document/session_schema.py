"""The schema of a saved session (``.session.json``): every field with its type and range.

:func:`check_session` is what :func:`workbench.core.document.session_file.read_session_file` runs on the parsed
JSON before anything is opened or closed, so a wrong field is one line naming the file, the field and the
problem, and the window stays as it was. View-state keys are checked by the schema registered for them
(:func:`register_view_state`; features that store state in a session add theirs next to their provider);
unknown keys are kept as they are, for the feature that owns them.
"""

from __future__ import annotations

from typing import Any

from ..audio.audio_io import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from ..jsonfile import AnyJson, Bool, Int, Key, List, Null, Num, Obj, OneOf, Optional, Schema, SchemaError, Str, check
from ..provenance import VersionKind
from ..views.registry import DisplaySettings
from ..views.stft import WINDOWS

FORMAT = "workbench-session"
FORMAT_VERSION = 1

#: A session's recordings and versions: far more than anyone opens at once, few enough to bound memory.
MAX_RECORDINGS = 1000
MAX_VERSIONS = 1000
#: Frames a session may record for one signal: 2**40 (about 260 days at 48 kHz).
MAX_FRAMES = 1 << 40

_name = Str(max_len=512, nonempty=True)
_path = Str(max_len=4096, nonempty=True)
_sha = Optional(Str(max_len=64))
_rate = Int(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, "Hz")
_channels = Int(1, MAX_CHANNELS)
_frames = Int(0, MAX_FRAMES)
_time = Num(-1e12, 1e12)  # seconds (a clock or a duration); finite and sane

PROVENANCE = Obj({
    "kind": Key(Str(choices=tuple(k.value for k in VersionKind)), required=False),
    "parent": Optional(Str(max_len=512)),
    "model_id": Optional(Str(max_len=4096)),
    "model_spec": Optional(Str(max_len=4096)),
    "model_name": Optional(Str(max_len=4096)),
    "model_source": Optional(Str(max_len=4096)),
    "model_settings": Optional(Obj()),
    "channels": Optional(List(Int(0, MAX_CHANNELS - 1), max_len=MAX_CHANNELS)),
    "output": Optional(Str(max_len=512)),
    "elapsed_s": Optional(Num(0, 1e9, "s")),
    "extra": Optional(Obj({"strength": Optional(Obj({"mix": Num(0.0, 1.0), "given_as": Str(max_len=64)}))})),
})

MODEL_INFO = Obj({
    "id": Key(Str(max_len=4096), required=True),
    "name": Str(max_len=4096),
    "description": Str(max_len=1 << 16),
    "sample_rate": _rate,
    "causal": Optional(Bool()),
    "latency_samples": Int(0, 1 << 40),
    "family": Str(max_len=256),
    "processing": Str(max_len=64),
    "block_samples": Int(1, 1 << 30),
    "source": Str(max_len=4096),
    "parameters": Optional(Int(0, 1 << 50)),
    "extra": Optional(Obj()),
    "any_rate": Bool(),
    "outputs": List(Str(max_len=256, nonempty=True), min_len=1, max_len=64),
    "processing_paths": List(Str(max_len=64), max_len=16),
    "licence": Str(max_len=4096),
    "package": Str(max_len=4096),
    "macs_per_second": Optional(Num(0, 1e18)),
})

VERSION = Obj({
    "name": Key(_name, required=True),
    "file": _path,
    "sample_rate": _rate,
    "channels": _channels,
    "frames": _frames,
    "provenance": Optional(PROVENANCE),
    "model": Optional(MODEL_INFO),
    "settings": Optional(Obj()),
    "elapsed_s": Optional(Num(0, 1e9, "s")),
    "created": Optional(_time),
})


def _version_rule(d: dict) -> str | None:
    """Every stored (non-original) version names its file and the signal it recorded."""
    missing = [k for k in ("file", "sample_rate", "channels", "frames") if k not in d]
    return f"a stored version needs {', '.join(missing)}" if missing else None


STORED_VERSION = Obj(dict(VERSION.keys), rule=_version_rule)

_strength = Obj({"mix": Key(Num(0.0, 1.0), required=True), "given_as": Str(max_len=64)})
#: One undoable change of a saved undo history (see workbench.core.history): the versions it concerns are
#: ``v<i>`` (the i-th of the recording's versions) or ``h<i>`` (the i-th version only the history holds).
COMMAND = Obj({
    "command": Key(Str(max_len=64, nonempty=True), required=True),
    "version": Key(Str(max_len=32, nonempty=True), required=True),
    "index": Int(0, MAX_VERSIONS),
    "before": _strength,
    "after": _strength,
})
HISTORY = Obj({
    "undo": List(COMMAND, max_len=10_000),
    "redo": List(COMMAND, max_len=10_000),
    "versions": List(STORED_VERSION, max_len=MAX_VERSIONS),
})

RECORDING = Obj({
    "path": Key(_path, required=True),
    "sha256": _sha,
    "sample_rate": _rate,
    "channels": _channels,
    "frames": _frames,
    "repair": Bool(),
    "reference": Optional(Obj({"path": Key(_path, required=True), "sha256": _sha})),
    "versions": List(Obj(dict(VERSION.keys)), max_len=MAX_VERSIONS),
    "history": Optional(HISTORY),
})


# -- view state --------------------------------------------------------------------------------------------
def _display_rule(d: dict) -> str | None:
    try:
        DisplaySettings.from_dict(d)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _stft_rule(d: dict) -> str | None:
    n_fft, hop = d.get("n_fft"), d.get("hop")
    if n_fft is not None and hop is not None and hop > n_fft:
        return f"hop {hop} is larger than n_fft {n_fft}"
    return None


def _ordered_pair(values: list) -> tuple:
    if not values[0] < values[1]:
        raise ValueError(f"the start ({values[0]:g}) must be before the end ({values[1]:g})")
    return values


_seconds = Num(0.0, 1e9, "s")

DISPLAY = Obj({
    "display": Obj({
        "layout": Str(max_len=64), "phase_view": Str(max_len=128), "freq_scale": Str(max_len=64),
        "colormap": Str(max_len=128),
        "db_range": List(Num(-1000.0, 1000.0, "dB"), length=2),
        "compression": Num(0.0, 1.0), "mask_below_db": Num(0.0, 1000.0, "dB"),
    }, rule=_display_rule),
    "stft": Obj({"n_fft": Int(2, 1 << 16), "hop": Int(1, 1 << 16), "window": Str(choices=WINDOWS)},
                rule=_stft_rule),
})

WINDOW = Obj({
    "version": Optional(Str(max_len=512)),
    "channel": Optional(Int(0, MAX_CHANNELS - 1)),
    "view_range_s": List(Num(-1e9, 1e9, "s"), length=2),
})

def _loop_rule(d: dict) -> str | None:
    start, end = d.get("start_s"), d.get("end_s")
    if start is not None and end is not None and not start < end:
        return f"the start ({start:g} s) must be before the end ({end:g} s)"
    return None


#: ``[start_s, end_s]`` (or an object with those two fields), or null.
LOOP = OneOf(Null(), List(_seconds, length=2, convert=_ordered_pair),
             Obj({"start_s": Key(_seconds, required=True), "end_s": Key(_seconds, required=True)}, rule=_loop_rule))

BLIND_TEST = OneOf(Null(), List(Obj(), max_len=100_000), Obj())

def _box_rule(values: list) -> list:
    if not (values[0] < values[1] and values[2] < values[3]):
        raise ValueError("a repair box needs t0 < t1 and f0 < f1")
    return values


_pair_s = OneOf(Null(), List(_seconds, length=2, convert=_ordered_pair))

#: The window's model stored by later format versions (``workspace``): the fields whose type is fixed are
#: checked here; the rest is kept for the workspace's own reader.
WORKSPACE = Obj({
    "version": Optional(Str(max_len=512)),
    "channel": Optional(Int(0, MAX_CHANNELS - 1)),
    "view_range_s": Optional(List(Num(-1e9, 1e9, "s"), length=2)),
    "freq_range_hz": Optional(List(Num(0.0, 1e7, "Hz"), length=2)),
    "display": Optional(DISPLAY.keys["display"]),
    "stft": Optional(DISPLAY.keys["stft"]),
    "loop_s": _pair_s,
    "selection_s": _pair_s,
    "repair_box": Optional(List(Num(-1e7, 1e7), length=4, convert=_box_rule)),
    "metric_settings": Optional(Obj()),
    "blind_test": BLIND_TEST,
    "window": Optional(Obj()),
    "running_blind_test": Optional(Obj({"recording": Str(max_len=4096), "current": Int(0, 100_000),
                                        "trials": List(Obj({"mapping": Obj(), "vote": Optional(Str(max_len=8))}),
                                                       max_len=100_000)})),
    "phase_lab_params": Optional(Obj()),
    "edit_params": Optional(Obj()),
    "measurements": Optional(List(Obj(), max_len=1_000_000)),
    "phase_lab": Optional(Obj()),
})

#: view-state key -> its schema (keys not listed here are kept unchecked for the feature that owns them).
VIEW_STATE: dict[str, Schema] = {"display": Optional(DISPLAY), "window": Optional(WINDOW), "loop": LOOP,
                                 "blind_test": BLIND_TEST}


def register_view_state(key: str, schema: Schema) -> None:
    """Check the view-state value stored under ``key`` with ``schema`` when a session is opened."""
    VIEW_STATE[key] = schema


def session_schema() -> Obj:
    return Obj({
        "format": Key(Str(max_len=64), required=True),
        "format_version": Key(Int(1, 1 << 31), required=True),
        "saved_utc": Str(max_len=64),
        "current": Optional(Int(0, MAX_RECORDINGS - 1)),
        "recordings": Optional(List(RECORDING, max_len=MAX_RECORDINGS)),
        "view_state": Optional(Obj(dict(VIEW_STATE))),
        "workspace": Optional(WORKSPACE),
    })


def check_session(doc: Any, file, newest: int = FORMAT_VERSION) -> dict:
    """The checked session document; raises :class:`SchemaError` (one line: file, field, problem).

    A file of another format or a format version newer than ``newest`` (the writer's) is named as such
    before any field is checked."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SchemaError(file, "format", "not a workbench session file")
    version = doc.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > newest:
        raise SchemaError(file, "format_version", f"written by a newer workbench (format {version}; this one "
                                                  f"reads {newest})")
    out = check(doc, session_schema(), file)
    for ri, rec in enumerate(out.get("recordings") or []):
        for vi, item in enumerate(rec.get("versions") or []):
            if vi > 0:
                check(item, STORED_VERSION, file, f"recordings[{ri}].versions[{vi}]")
    return out


__all__ = ["FORMAT", "FORMAT_VERSION", "VIEW_STATE", "register_view_state", "check_session", "SchemaError",
           "AnyJson", "OneOf"]
