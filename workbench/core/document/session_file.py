"""Saving a :class:`~workbench.core.document.session.Session` to disk and opening it again.

A saved session is two things side by side::

    work.session.json        the description (below)
    work.session.audio/      one float32 WAV per non-original version (bit-exact; RF64 beyond 2 GiB)

Both are written through the project's atomic writer (each file appears complete or not at all; the
JSON is written last, so a session file never names audio that is not there yet). Source recordings
are never copied or written: the JSON names them by absolute path with their SHA-256, and opening
checks both.

The JSON (``format_version`` 2; version 1 files, which kept the window's state in ``view_state``, still
open)::

    {
      "format": "workbench-session",
      "format_version": 2,
      "saved_utc": "2026-12-01T08:00:00Z",
      "current": 0,                               # index of the current recording, or null
      "recordings": [{
        "path": "/abs/noisy.wav", "sha256": "…", "sample_rate": 16000, "channels": 1, "frames": 160000,
        "repair": false,
        "reference": {"path": "/abs/clean.wav", "sha256": "…"} | null,
        "versions": [
          {"name": "original", "provenance": {"kind": "original", …}},
          {"name": "deepfilternet3", "file": "work.session.audio/r0-v1-deepfilternet3.wav",
           "sample_rate": 16000, "channels": 1, "frames": 160000,
           "provenance": {"kind": "enhanced", "parent": "original", "model_id": "deepfilternet3",
                          "model_spec": "deepfilternet3", "model_name": …, "model_source": "built-in",
                          "model_settings": {…}, "channels": [0], "output": "enhanced",
                          "elapsed_s": 1.9, "extra": {}},
           "model": {EnhancerInfo fields} | null, "settings": {…}, "elapsed_s": 1.9, "created": 1764576000.0,
           "samples_sha256": "…"}                 # of the samples as shown (at the version's strength)
        ]}],
      "workspace": {                               # the window's model (workbench.core.document.workspace)
        "version": "deepfilternet3", "channel": 0, "view_range_s": [0.0, 10.0], "freq_range_hz": null,
        "display": {…}, "stft": {"n_fft": 1024, "hop": 256, "window": "hann"},
        "loop_s": [1.0, 2.5] | null, "selection_s": [1.0, 2.5] | null,
        "repair_box": [t0_s, t1_s, f0_hz, f1_hz] | null,
        "metric_settings": {"reference_free": true, "speech_only": false},   # earlier: "dnsmos", read the same
        "blind_test": [...], "running_blind_test": {…} | null, "window": {…},
        "phase_lab_params": {…}, "edit_params": {…},
        "measurements": [{"samples": "…", "reference": "…" | "", "settings": "intrusive", "scores": {…}}],
        "phase_lab": {"0": {"rows": [...], "mask_stats": [...], "curves": [...], "notes": "…"}}
      },
      "view_state": {…}                            # what other features stored (state providers)
    }

The workspace is written by :func:`_workspace_to_json` and read by :func:`_workspace_from_json` (version
2) or :func:`_workspace_from_v1` (the ``view_state`` of version 1); :func:`apply_workspace_state` puts
it into a :class:`~workbench.core.document.workspace.Workspace`. A measurement is reused after opening exactly
when the version's samples, the reference file and the metric settings are the ones it was measured on.

``file`` paths are relative to the JSON's folder. Opening (:func:`open_session`) restores every
recording whose source is present and unchanged; a missing source, a source whose SHA-256 differs, a
missing version file or a changed reference is reported as one line in the returned ``problems`` and
that item is left out — never silently replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Generator

import numpy as np

from ..audio.audio_io import ArraySource, atomic_output, open_source, read_info, write_audio_atomic
from ..audio.outputs import is_same_file
from ..enhance.enhancer import EnhancerInfo
from ..progress import Progress, run_to_end
from ..errors import AudioFileError, WorkbenchError
from ..history import history_from_value, history_to_value
from ..jsonfile import JsonFileError, SchemaError, load_json
from .session_schema import FORMAT, check_session
from ..enhance.editing import Strength
from ..provenance import Provenance, VersionKind
from .recording import Recording, Version, file_sha256
from .session import Session
from .workspace import PhaseLabSummary, Workspace, scores_from_dict, scores_to_dict

FORMAT_VERSION = 2
SUFFIX = ".session.json"


class SessionFileError(WorkbenchError):
    """A session file that cannot be read (not JSON, another format, a newer version ...)."""


def audio_folder(path: str | Path) -> Path:
    """The folder holding a session's version audio: ``work.session.json`` -> ``work.session.audio``."""
    path = Path(path)
    name = path.name[:-5] if path.name.endswith(".json") else path.name
    return path.with_name(name + ".audio")


def _tag(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "version"


def _info_dict(info: EnhancerInfo | None) -> dict | None:
    if info is None:
        return None
    d = info.to_dict()
    d.pop("latency_ms", None)
    d["outputs"] = list(info.outputs)
    return d


def _info_from(d: dict | None) -> EnhancerInfo | None:
    if not d:
        return None
    known = {f.name for f in fields(EnhancerInfo)}
    kw = {k: v for k, v in d.items() if k in known}
    kw["outputs"] = tuple(kw.get("outputs") or ("enhanced",))
    return EnhancerInfo(**kw)


def _json_safe(value: Any) -> Any:
    """Settings may hold tuples, numpy scalars or paths: store them as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def save_session(session: Session, path: str | Path, *, view_state: dict | None = None,
                 overwrite: bool = True) -> Generator[Progress, None, Path]:
    """Write ``session`` to ``path`` (a ``.session.json``) and its version audio beside it.

    A generator yielding :class:`Progress` (hashing sources and writing audio take time on long files);
    returns the JSON path. ``view_state`` defaults to ``session.collect_view_state()`` (call that on
    the GUI thread and pass the result when the providers read widgets). On success every version is
    marked saved and ``session.path`` is set.

    Raises:
        WorkbenchError: a file that cannot be written (named), or the JSON path is a source recording.
    """
    path = Path(path).absolute()
    if not path.name.endswith(".json"):
        path = path.with_name(path.name + SUFFIX)
    folder = audio_folder(path)
    state = _json_safe(session.collect_view_state() if view_state is None else view_state)
    recs = list(session.recordings)
    # Every file the session reads: its recordings and their clean references. No version file and no
    # session file may be written over one of them (a reference kept inside the audio folder included).
    reads = [r.path for r in recs] + [session.reference(r) for r in recs if session.reference(r) is not None]
    sources = tuple(p for p in reads if os.path.lexists(p))
    stored = [(ri, vi, v) for ri, r in enumerate(recs) for vi, v in enumerate(r.versions)
              if v.kind != VersionKind.ORIGINAL]
    made_folder = _prepare_audio_folder(folder, bool(stored),
                                        sum(v.source.frames * v.source.channels * 4 for _ri, _vi, v in stored))
    try:
        result = yield from _write_session(session, path, folder, state, recs, sources, overwrite)
    except BaseException:
        if made_folder:
            _remove_if_empty(folder)
        raise
    return result


def _prepare_audio_folder(folder: Path, needed: bool, nbytes: int) -> bool:
    """Make sure the version audio can go into ``folder``: a real folder (never a link to another one, never a
    file), with room for ``nbytes``; returns whether it was created now (removed again if saving fails)."""
    if not needed:
        return False
    if folder.is_symlink():
        raise SessionFileError(f"{folder}: the session's audio folder is a symbolic link; the version audio is "
                               "written only into a real folder the session owns (remove the link or save "
                               "under another name)")
    if folder.exists() and not folder.is_dir():
        raise SessionFileError(f"{folder}: is not a folder; the session's version audio cannot be written there")
    made = not folder.exists()
    probe = folder if folder.exists() else folder.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = None
    if free is not None and nbytes + (1 << 20) > free:
        raise SessionFileError(f"{folder}: not enough space on the drive for the session's version audio "
                               f"({_mb(nbytes)} needed, {_mb(free)} free); nothing was written")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionFileError(f"{folder}: the session's audio folder cannot be created ({exc.strerror or exc})"
                               ) from None
    return made


def _free_name(folder: Path, stem: str, reads: tuple) -> Path:
    """``folder/stem.wav``, or ``stem-2.wav`` ... when that name is a file the session reads (a reference
    someone keeps in the audio folder is never written over)."""
    target, n = folder / f"{stem}.wav", 1
    while any(is_same_file(target, p) for p in reads):
        n += 1
        target = folder / f"{stem}-{n}.wav"
    return target


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only succeeds when empty: a failed save leaves no empty audio folder behind
    except OSError:
        pass


def _write_session(session: Session, path: Path, folder: Path, state: dict, recs: list[Recording],
                   sources: tuple, overwrite: bool) -> Generator[Progress, None, Path]:
    steps = max(1, sum(len(r.versions) + 1 for r in recs))
    done = 0
    out_recs = []
    written: list[Version] = []
    for ri, rec in enumerate(recs):
        yield Progress(done / steps, f"{rec.name}: hashing the source")
        sha = file_sha256(rec.path) if rec.path.is_file() else None
        done += 1
        ref = session.reference(rec)
        entry: dict[str, Any] = {
            "path": str(rec.path.absolute()), "sha256": sha, "sample_rate": rec.source.sample_rate,
            "channels": rec.source.channels, "frames": rec.source.frames, "repair": bool(rec.repair),
            "reference": ({"path": str(Path(ref).absolute()),
                           "sha256": file_sha256(ref) if Path(ref).is_file() else None} if ref else None),
            "versions": [],
        }
        for vi, v in enumerate(rec.versions):
            item: dict[str, Any] = {"name": v.name, "provenance": _json_safe(v.provenance.to_dict())}
            if v.kind != VersionKind.ORIGINAL:
                yield Progress(done / steps, f"{rec.name}: writing {v.name}")
                item.update(_write_version(rec, v, _free_name(folder, f"r{ri}-v{vi}-{_tag(v.name)}", sources),
                                           path, sources, overwrite))
                written.append(v)
            if isinstance(session, Workspace):
                item["samples_sha256"] = session.measurements.samples_key(v.source)
            entry["versions"].append(item)
            done += 1
        # The undo history: versions an undo took out (or a redo would put back) are only held by it;
        # their samples are stored too, so Ctrl+Z after opening brings back exactly what it took away.
        detached: list[Version] = []
        for command in [*rec.history.undo_steps, *rec.history.redo_steps]:
            for v in command.versions():
                if not any(v is w for w in rec.versions) and not any(v is w for w in detached):
                    detached.append(v)
        detached_items = []
        for di, v in enumerate(detached):
            yield Progress(done / steps, f"{rec.name}: writing the undo history ({v.name})")
            detached_items.append({"name": v.name, "provenance": _json_safe(v.provenance.to_dict()),
                                   **_write_version(rec, v, _free_name(folder, f"r{ri}-h{di}-{_tag(v.name)}",
                                                                       sources), path, sources, overwrite)})

        def ref(version: Version, rec=rec, detached=detached) -> str:
            for i, w in enumerate(rec.versions):
                if w is version:
                    return f"v{i}"
            return f"h{next(i for i, w in enumerate(detached) if w is version)}"

        if rec.history.undo_steps or rec.history.redo_steps:
            entry["history"] = {**history_to_value(rec.history, ref), "versions": detached_items}
        out_recs.append(entry)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION,
           "saved_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "current": recs.index(session.current) if session.current in recs else None,
           "recordings": out_recs, "view_state": state}
    if isinstance(session, Workspace):
        doc["workspace"] = _workspace_to_json(session, recs)
    text = json.dumps(doc, indent=2, allow_nan=False)
    with atomic_output(path, overwrite=overwrite, protect=sources) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    for rec in recs:
        for v in rec.versions:
            v.saved = True
    session.path = path
    yield Progress(1.0, f"saved {path.name}")
    return path


def _write_version(rec: Recording, v: Version, target: Path, path: Path, sources: tuple, overwrite: bool) -> dict:
    """Write a version's samples to ``target``; returns what the session file records of it.

    A model result is stored at full strength; its strength (provenance.extra) is set again when the
    session is opened, so the slider can still move it."""
    audio = rec.wet_source(v).read_all()
    big = audio.nbytes > (1 << 31) - (1 << 20)
    write_audio_atomic(target, audio, v.sample_rate, subtype="FLOAT",
                       format="RF64" if big else "WAV", overwrite=overwrite, protect=sources)
    return {"file": os.path.relpath(target, path.parent), "sample_rate": v.sample_rate,
            "channels": int(audio.shape[1]), "frames": int(audio.shape[0]),
            "model": _json_safe(_info_dict(v.model)), "settings": _json_safe(v.settings),
            "elapsed_s": v.elapsed_s, "created": v.created}


#: A session file larger than this is refused before it is read (one with a thousand recordings is ~2 MB).
MAX_SESSION_BYTES = 32 << 20


def read_session_file(path: str | Path) -> dict:
    """The parsed and checked JSON of a session file.

    The file is refused before it is opened when it is not a regular file (a FIFO, a device, a link to
    ``/dev/zero``) or larger than :data:`MAX_SESSION_BYTES`; it is parsed once, nesting capped, and every
    field is checked against :mod:`workbench.core.session_schema`.

    Raises:
        SessionFileError: one line naming the file, the field and the problem.
    """
    path = Path(path)
    try:
        doc = load_json(path, max_bytes=MAX_SESSION_BYTES, what="session file")
        return check_session(doc, path, newest=FORMAT_VERSION)
    except (JsonFileError, SchemaError) as exc:
        raise SessionFileError(str(exc)) from None


def _version_file(path: Path, folder: Path, rel: str) -> Path:
    """The version file ``rel`` names, which must lie in the session's own audio folder (no ``..``, no
    absolute path, no link leading elsewhere). Raises ValueError with the reason."""
    file = Path(rel)
    if file.is_absolute() or ".." in file.parts:
        raise ValueError(f"its file {rel!r} is not inside the session's audio folder {folder.name}")
    file = path.parent / file
    try:
        inside = file.resolve().parent == folder.resolve()
    except (OSError, RuntimeError):
        inside = False
    if not inside or file.parent.absolute() != folder.absolute():
        raise ValueError(f"its file {rel!r} is not inside the session's audio folder {folder.name}")
    return file


def _read_version_audio(file: Path, item: dict, rec: Recording) -> np.ndarray:
    """The samples of a stored version, after the audio reader's checks on ``file`` and a comparison of its
    header with what the session recorded and with the recording (every version has the recording's frames
    at its rate): a file that does not match is refused before its samples are read."""
    info = read_info(file)
    recorded = (item["frames"], item["sample_rate"], item["channels"])
    found = (info.frames, info.sample_rate, info.channels)
    if found != recorded:
        raise AudioFileError(file, f"holds {info.frames} frames at {info.sample_rate} Hz in {info.channels} "
                                   f"channel(s), but the session recorded {recorded[0]} frames at {recorded[1]} Hz "
                                   f"in {recorded[2]}; not restored")
    if info.frames != rec.source.frames or info.sample_rate != rec.source.sample_rate:
        raise AudioFileError(file, f"holds {info.frames} frames at {info.sample_rate} Hz, but {rec.name} has "
                                   f"{rec.source.frames} frames at {rec.source.sample_rate} Hz; not restored")
    source = open_source(file, check_finite=True)
    try:
        return source.read_all()
    finally:
        source.close()


def _restore_versions(entry: dict, rec: Recording, src: Path, path: Path, problems: list[str]) -> None:
    folder = audio_folder(path)
    for item in (entry.get("versions") or [])[1:]:
        name = item["name"]
        try:
            file = _version_file(path, folder, item["file"])
        except ValueError as exc:
            problems.append(f"{path}: version {name!r} of {src.name}: {exc}; not restored")
            continue
        if rec.version_or_none(name) is not None:
            continue  # already there (the recording was open when the session was opened)
        try:
            prov = Provenance.from_dict(item.get("provenance") or {})
            audio = _read_version_audio(file, item, rec)
        except AudioFileError as exc:
            problems.append(f"{exc} (version {name!r} of {src.name}; not restored)")
            continue
        except (ValueError, TypeError, WorkbenchError) as exc:
            problems.append(f"{path}: version {name!r} of {src.name}: {exc}")
            continue
        try:
            v = rec.add_version(audio, int(item["sample_rate"]), prov, name, model=_info_from(item.get("model")),
                                settings=dict(item.get("settings") or {}))
        except (ValueError, TypeError) as exc:
            problems.append(f"{file}: version {name!r} of {src.name}: {exc}")
            continue
        strength = prov.extra.get("strength")
        if isinstance(strength, dict) and v.kind.is_result:
            try:
                rec.set_strength(v, Strength(float(strength.get("mix", 1.0)), str(strength.get("given_as", "mix"))),
                                 record=False)
            except (WorkbenchError, TypeError, ValueError) as exc:
                problems.append(f"{path}: version {name!r} of {src.name}: strength not restored ({exc})")
        v.elapsed_s = item.get("elapsed_s")
        v.created = float(item.get("created") or v.created)
        v.saved = True


def _restore_history(entry: dict, rec: Recording, src: Path, path: Path, problems: list[str]) -> None:
    """Put the saved undo history back into ``rec`` (its commands name versions as ``v<i>``: the i-th of the
    saved list, or ``h<i>``: one only the history held, stored in ``history.versions``). A history that
    cannot be read is left out as a whole (one line in ``problems``); so is one naming a listed version
    that was not restored (that version's own line says why)."""
    saved = entry["history"]
    listed = [rec.version_or_none(item["name"]) for item in entry.get("versions") or []]
    held: list[Version] = []
    folder = audio_folder(path)
    try:
        for item in saved.get("versions") or []:
            file = _version_file(path, folder, item["file"])
            prov = Provenance.from_dict(item.get("provenance") or {})
            audio = _read_version_audio(file, item, rec)
            if audio.ndim == 1:
                audio = audio[:, None]
            v = Version(str(item["name"]), prov.kind, ArraySource(np.asarray(audio, np.float32), int(item["sample_rate"])),
                        _info_from(item.get("model")), dict(item.get("settings") or {}), item.get("elapsed_s"),
                        float(item.get("created") or time.time()), provenance=prov, saved=True)
            strength = prov.extra.get("strength")
            if isinstance(strength, dict) and v.kind.is_result:
                v.provenance = replace(prov, extra={k: x for k, x in prov.extra.items() if k != "strength"})
                rec.set_strength(v, _strength(strength), record=False)
            held.append(v)

        def version(name: str) -> Version:
            kind, index = name[:1], int(name[1:])
            found = (listed if kind == "v" else held if kind == "h" else [])[index] if index >= 0 else None
            if found is None:
                raise _NotRestored(name)
            return found

        rec.history = history_from_value(saved, rec, version, _strength)
    except _NotRestored:
        return  # a version it names was not restored: that version's line in ``problems`` says why
    except (KeyError, IndexError, ValueError, TypeError, WorkbenchError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        problems.append(f"{path}: the undo history of {src.name} is not restored ({reason})")


class _NotRestored(LookupError):
    """A saved history names a listed version that could not be restored."""


def _strength(value: dict) -> Strength:
    return Strength(float(value.get("mix", 1.0)), str(value.get("given_as", "mix")))


def _absent(path: Path) -> str:
    """Why ``path`` (not a regular file) is not used: missing, or something else (a FIFO, a device ...)."""
    return "missing" if not os.path.lexists(path) else "not a regular file"


def open_session(path: str | Path, session: Session | None = None, *, restore_state: bool = True,
                 doc: dict | None = None) -> Generator[Progress, None, tuple[Session, list[str]]]:
    """Restore a saved session into ``session`` (default a new :class:`Workspace`); a generator of Progress
    returning ``(session, problems)``: one line per recording, reference or version that could not be
    restored.

    Into a :class:`Workspace` the saved window state (current recording and version, display, loop
    region, measurements, phase-lab results …) is parsed into ``session.restored_state`` and, with
    ``restore_state``, applied at once (:func:`apply_workspace_state`). The other stored view state goes
    to ``session.view_state`` and, with ``restore_state``, to each registered state provider's
    ``restore``. A GUI running this on a worker passes ``restore_state=False`` and applies both on its
    own thread (its widgets follow the workspace's events). ``doc`` is what :func:`read_session_file`
    returned for ``path`` when the caller has read it already (the file is then not read again)."""
    path = Path(path).absolute()
    doc = read_session_file(path) if doc is None else doc
    session = session if session is not None else Workspace()
    problems: list[str] = []
    recs = doc.get("recordings") or []
    current_index = doc.get("current")
    current: Recording | None = None
    by_index: dict[int, Recording] = {}
    for ri, entry in enumerate(recs):
        src = Path(entry["path"])
        yield Progress(ri / max(len(recs), 1), f"opening {src.name}")
        if not src.is_file():
            problems.append(f"{src}: {_absent(src)} (the session's recording is not restored; its "
                            f"versions stay in {audio_folder(path).name})")
            continue
        try:
            if entry.get("sha256") and file_sha256(src) != entry["sha256"]:
                problems.append(f"{src}: changed since the session was saved (SHA-256 differs); not restored")
                continue
            rec = session.find(src) or Recording(src, repair=bool(entry.get("repair")))
        except WorkbenchError as exc:
            problems.append(str(exc))
            continue
        except OSError as exc:
            problems.append(f"{src}: cannot be read ({exc.strerror or exc}); not restored")
            continue
        if rec not in session.recordings:
            session.add(rec, make_current=False)
        by_index[ri] = rec
        _restore_versions(entry, rec, src, path, problems)
        # Restoring the versions is not something to undo: the history is the one the session saved.
        rec.history.clear()
        if entry.get("history"):
            _restore_history(entry, rec, src, path, problems)
        ref = entry.get("reference")
        if ref:
            rp = Path(ref["path"])
            if not rp.is_file():
                problems.append(f"{rp}: reference of {src.name} is {_absent(rp)}; no reference set")
            else:
                try:
                    changed = bool(ref.get("sha256")) and file_sha256(rp) != ref["sha256"]
                except OSError as exc:
                    problems.append(f"{rp}: reference of {src.name} cannot be read ({exc.strerror or exc}); "
                                    "no reference set")
                    changed = None
                if changed:
                    problems.append(f"{rp}: reference of {src.name} changed since the session was saved "
                                    "(SHA-256 differs); no reference set")
                elif changed is False:
                    session.set_reference(rec, rp)
        if isinstance(session, Workspace):
            # Hash what each version sounds like now (on this worker), so stored measurements of the
            # same samples are found without measuring again.
            yield Progress((ri + 0.9) / max(len(recs), 1), f"{src.name}: checking measured versions")
            for v in rec.versions:
                session.measurements.samples_key(v.source)
            if session.reference(rec) is not None:
                session.measurements.reference_key(session.reference(rec))
        if ri == current_index:
            current = rec
    if current is None and session.recordings:
        current = session.recordings[0]
    state = dict(doc.get("view_state") or {})
    if isinstance(session, Workspace):
        if int(doc.get("format_version", 1)) >= 2:
            restored = _workspace_from_json(doc.get("workspace"), path, problems)
        else:
            restored = _workspace_from_v1(state)
            for key in ("display", "window", "loop", "blind_test"):
                state.pop(key, None)
        restored["current"] = current
        restored["phase_lab"] = {by_index[i]: s for i, s in restored.get("phase_lab", {}).items() if i in by_index}
        session.restored_state = restored
        if restore_state:
            apply_workspace_state(session, restored)
    else:
        session.set_current(current)
    session.view_state.update(state)
    if restore_state:
        for key, (_get, restore) in session.state_providers().items():
            if key in state:
                restore(state[key])
    session.path = path
    yield Progress(1.0, f"opened {path.name}")
    return session, problems


# -- the workspace section -----------------------------------------------------------------------------
def _pair(value) -> list | None:
    return None if value is None else [float(x) for x in value]


def _workspace_to_json(ws: Workspace, recs: list[Recording]) -> dict:
    """The window's model as JSON (measurements only of versions that are open)."""
    live = {ws.measurements.known_samples_key(v.source) for r in recs for v in r.versions} - {None}
    phase = {}
    for i, rec in enumerate(recs):
        summary = ws.phase_lab_of(rec)
        if summary is not None:
            phase[str(i)] = summary.to_dict()
    return _json_safe({
        "version": ws.version.name if ws.version is not None else None, "channel": ws.channel,
        "view_range_s": list(ws.view_range), "freq_range_hz": _pair(ws.freq_range),
        "display": ws.display, "stft": ws.stft, "loop_s": _pair(ws.loop), "selection_s": _pair(ws.selection),
        "repair_box": _pair(ws.repair_box), "metric_settings": ws.metric_settings,
        "blind_test": ws.blind_results, "window": ws.window, "running_blind_test": ws.blind_test,
        "phase_lab_params": ws.phase_lab_params, "edit_params": ws.edit_params,
        "measurements": [{"samples": k[0], "reference": k[1], "settings": k[2], "scores": scores_to_dict(sc)}
                         for k, sc in ws.measurements.entries(live)],
        "phase_lab": phase,
    })


def _floats(value, n: int) -> tuple | None:
    """``n`` finite floats from a JSON list, else ``None``."""
    if not isinstance(value, (list, tuple)) or len(value) != n:
        return None
    try:
        out = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        return None
    return out if all(np.isfinite(out)) else None


def _workspace_from_json(section, path: Path, problems: list[str]) -> dict:
    """Parse the ``workspace`` section of a version-2 file into plain values (see
    :func:`apply_workspace_state`); a part that does not parse is left out and named in ``problems``."""
    if not isinstance(section, dict):
        return {}
    out: dict[str, Any] = {}
    if isinstance(section.get("version"), str):
        out["version"] = section["version"]
    if isinstance(section.get("channel"), int):
        out["channel"] = section["channel"]
    for key, name, n in (("view_range_s", "view_range", 2), ("freq_range_hz", "freq_range", 2),
                         ("loop_s", "loop", 2), ("selection_s", "selection", 2), ("repair_box", "repair_box", 4)):
        value = _floats(section.get(key), n)
        if value is not None:
            out[name] = value
    for key in ("display", "stft", "window", "metric_settings", "phase_lab_params", "edit_params"):
        if isinstance(section.get(key), dict):
            out[key] = dict(section[key])
    if isinstance(section.get("running_blind_test"), dict):
        out["blind_test"] = dict(section["running_blind_test"])
    if isinstance(section.get("blind_test"), list):
        out["blind_results"] = [dict(r) for r in section["blind_test"] if isinstance(r, dict)]
    measurements = []
    for m in section.get("measurements") or []:
        try:
            key = (str(m["samples"]), str(m["reference"]), str(m["settings"]))
            measurements.append((key, scores_from_dict(m["scores"])))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{path}: a stored measurement is damaged and was left out ({type(exc).__name__})")
    out["measurements"] = measurements
    phase = {}
    for index, summary in dict(section.get("phase_lab") or {}).items():
        try:
            phase[int(index)] = PhaseLabSummary.from_dict(summary)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{path}: the phase-lab results of recording {index} are damaged and were left out "
                            f"({type(exc).__name__})")
    out["phase_lab"] = phase
    return out


def _workspace_from_v1(view_state: dict) -> dict:
    """The window state of a version-1 file, which kept it in ``view_state`` (display, window, loop,
    blind tests), as :func:`_workspace_from_json` returns it."""
    out: dict[str, Any] = {}
    display = view_state.get("display")
    if isinstance(display, dict):
        if isinstance(display.get("display"), dict):
            out["display"] = dict(display["display"])
        if isinstance(display.get("stft"), dict):
            out["stft"] = dict(display["stft"])
    window = view_state.get("window")
    if isinstance(window, dict):
        if isinstance(window.get("version"), str):
            out["version"] = window["version"]
        if isinstance(window.get("channel"), int):
            out["channel"] = window["channel"]
        rng = _floats(window.get("view_range_s"), 2)
        if rng is not None:
            out["view_range"] = rng
    loop = _floats(view_state.get("loop"), 2)
    if loop is not None:
        out["loop"] = loop
    if isinstance(view_state.get("blind_test"), list):
        out["blind_results"] = [dict(r) for r in view_state["blind_test"] if isinstance(r, dict)]
    return out


def apply_workspace_state(ws: Workspace, state: dict) -> None:
    """Put a parsed workspace state into ``ws`` (on the thread that owns the window: each change is an
    event its widgets follow). ``state["current"]`` is the recording to make current."""
    for key, scores in state.get("measurements", []):
        ws.measurements.put_by_key(key, scores)
    for rec, summary in state.get("phase_lab", {}).items():
        if rec in ws.recordings:
            ws.set_phase_lab(rec, summary)
    if "display" in state:
        ws.set_display(state["display"])
    if "stft" in state:
        ws.set_stft(state["stft"])
    if "window" in state:
        ws.set_window(state["window"])
    if "metric_settings" in state:
        ws.set_metric_settings(state["metric_settings"])
    if "blind_results" in state:
        ws.set_blind_results(state["blind_results"])

    current = state.get("current")
    if current is not None and current in ws.recordings:
        ws.set_current(current, current.version_or_none(state.get("version") or ""))
        if 0 <= int(state.get("channel", 0)) < current.source.channels:
            ws.set_channel(int(state.get("channel", 0)))
        duration = current.source.frames / current.source.sample_rate
        for key, setter in (("loop", ws.set_loop), ("selection", ws.set_selection)):
            region = state.get(key)
            if region is not None and 0 <= region[0] < region[1] <= duration + 1e-9:
                setter(region)
        if state.get("repair_box") is not None:
            ws.set_repair_box(state["repair_box"])
        if "freq_range" in state:
            ws.set_freq_range(state["freq_range"])
        if "view_range" in state:
            ws.set_view_range(*state["view_range"])
    elif current is None:
        ws.set_current(None)
    # After the current recording: a new current recording resets what belongs to the last one (the noise
    # the Edit panel learned), and these are the saved recording's.
    for key, setter in (("phase_lab_params", ws.set_phase_lab_params), ("edit_params", ws.set_edit_params)):
        if key in state:
            setter(state[key])
    # Last: the window resumes a running blind test once the recording and its versions are shown.
    if current is not None and state.get("blind_test") is not None:
        ws.set_blind_test(state["blind_test"])


def save_session_now(session: Session, path: str | Path, **kwargs) -> Path:
    """Blocking :func:`save_session`."""
    return run_to_end(save_session(session, path, **kwargs))


def open_session_now(path: str | Path, session: Session | None = None) -> tuple[Session, list[str]]:
    """Blocking :func:`open_session`."""
    return run_to_end(open_session(path, session))
