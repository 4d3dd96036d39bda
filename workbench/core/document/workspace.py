"""The workspace: everything a person sees and sets, in one evented model without Qt.

A :class:`Workspace` is a :class:`~workbench.core.document.session.Session` (open recordings and their versions,
the current recording, clean references, the model catalogue, jobs with their owners) plus what the
window shows of them:

* the shown **version** and **channel**, the visible **time range** and **frequency range**;
* the **display** settings (layout, phase view, frequency scale, colour map, dB range, compression,
  mask) and the **STFT** settings (window, size, hop), as plain dictionaries;
* the **loop region**, the **time selection** and the **repair box** of the current recording;
* **measurement results** (:class:`MeasurementStore`), keyed by the samples they were measured on, the
  reference and the metric settings, so a result is reused exactly when all three are unchanged;
* **phase-lab results** (:class:`PhaseLabSummary`: the table and the convergence curves) per recording;
* the **run parameters** of the phase lab and of the Edit panel (what their controls show);
* finished **blind tests** and the **running blind test** (its trials and votes so far), the window's
  **geometry**;
* the **undo history** of the current recording (:meth:`undo` / :meth:`redo` show the version the change
  concerned).

Every change is one event through the session's single emitter (:meth:`Session.subscribe`:
``fn(event, obj)``), whoever made it — a widget, a worker, the command line, session opening, undo:
``("state", key)`` for the keys in :data:`STATE_KEYS`, ``("measurement", key)``, ``("phase_lab",
recording)``, ``("history", command)``, besides the session's own events. The GUI's document re-emits
them as Qt signals; widgets write here and redraw from here. Saving and opening the workspace lives in
:mod:`workbench.core.document.session_file`.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..history import Command, history_to_value
from ..measure.metrics import Metric
from ..measure.scoring import AlignmentCheck, Scores
from .recording import Recording, Version, file_sha256
from .session import ModelCatalogue, Session

__all__ = ["Workspace", "MeasurementStore", "PhaseLabSummary", "STATE_KEYS", "samples_sha256"]

#: ``metric_settings`` keys that sessions of earlier versions stored, by their current name.
METRIC_SETTING_RENAMES = {"dnsmos": "reference_free"}
#: Keys of ``("state", key)`` events and of :meth:`Workspace.snapshot`'s ``state``.
STATE_KEYS = ("version", "channel", "view_range", "freq_range", "display", "stft", "loop", "selection",
              "repair_box", "metric_settings", "blind_results", "window", "phase_lab_params", "edit_params",
              "blind_test")


def samples_sha256(source) -> str:
    """SHA-256 of what a version sounds like: its float32 samples, shape and rate (not a file's bytes)."""
    audio = np.ascontiguousarray(source.read_all(), dtype=np.float32)
    h = hashlib.sha256()
    h.update(f"{source.sample_rate}:{audio.shape[0]}x{audio.shape[1] if audio.ndim > 1 else 1}:".encode())
    h.update(audio.tobytes())
    return h.hexdigest()


def plain(value):
    """``value`` as JSON would give it back: tuples as lists, numpy scalars and paths as plain values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):   # str Enums
        return value.value
    return value


def _num_out(value):
    """A float for JSON (``NaN`` → ``None``; ±∞ → ``"inf"`` / ``"-inf"``)."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _num_in(value):
    if value is None:
        return None
    if value in ("inf", "-inf"):
        return float(value)
    return float(value)


# -- measurements ------------------------------------------------------------------------------------------
def scores_to_dict(scores: Scores) -> dict:
    return {"metrics": {k: {**m.to_dict(), "value": _num_out(m.value)} for k, m in scores.metrics.items()},
            "lag_samples": scores.lag_samples,
            "alignment": None if scores.alignment is None else {
                **asdict(scores.alignment), "correlation": _num_out(scores.alignment.correlation)}}


def scores_from_dict(d: dict) -> Scores:
    metrics = {}
    for k, m in dict(d.get("metrics") or {}).items():
        lo, hi = (list(m.get("range") or [None, None]) + [None, None])[:2]
        metrics[str(k)] = Metric(str(m.get("name", k)), _num_in(m.get("value")), str(m.get("unit", "")),
                                 bool(m.get("higher_is_better", True)), (_num_in(lo), _num_in(hi)),
                                 str(m.get("reason", "")), str(m.get("label", "")))
    a = d.get("alignment")
    alignment = None
    if isinstance(a, dict):
        corr = _num_in(a.get("correlation"))
        alignment = AlignmentCheck(float("nan") if corr is None else corr, int(a["lag_samples"]),
                                   int(a["max_lag_samples"]), int(a["sample_rate"]),
                                   float(a["reference_duration_s"]), float(a["estimate_duration_s"]))
    lag = d.get("lag_samples")
    return Scores(metrics, None if lag is None else int(lag), alignment)


class MeasurementStore:
    """Measured scores keyed by ``(samples, reference, settings)``.

    * ``samples``: :func:`samples_sha256` of the version's audio as measured (a strength change or a new
      version gives other samples, so another key);
    * ``reference``: the SHA-256 of the reference file's bytes (``""``: a measurement without reference,
      DNSMOS);
    * ``settings``: which metrics, measured how (the caller's string, e.g. ``"intrusive"``).

    Hashing reads the whole signal: :meth:`samples_key` is meant for worker threads; the GUI asks
    :meth:`known_samples_key`, which only looks the key up. Thread-safe. ``on_change(key)`` is called
    after :meth:`put` (the workspace turns it into a ``("measurement", key)`` event).
    """

    def __init__(self, on_change=None):
        self._lock = threading.Lock()
        self._samples: dict[int, tuple[Any, str]] = {}   # id(source) -> (source, hash); holding the source
        self._refs: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> file SHA-256
        self._results: dict[tuple[str, str, str], Scores] = {}
        self._on_change = on_change

    # keys
    def samples_key(self, source) -> str:
        """The samples key of ``source`` (hashed once per source object; any thread)."""
        known = self.known_samples_key(source)
        if known is not None:
            return known
        key = samples_sha256(source)
        with self._lock:
            self._samples[id(source)] = (source, key)
        return key

    def known_samples_key(self, source) -> str | None:
        with self._lock:
            entry = self._samples.get(id(source))
        return entry[1] if entry is not None and entry[0] is source else None

    def reference_key(self, path: str | Path | None, *, compute: bool = True) -> str | None:
        """SHA-256 of the reference file (``""`` for no reference; ``None`` when not known and not
        ``compute``, or the file cannot be read)."""
        if path is None:
            return ""
        p = Path(path)
        try:
            st = p.stat()
        except OSError:
            return None
        stamp = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            known = self._refs.get(stamp)
        if known is not None or not compute:
            return known
        try:
            key = file_sha256(p)
        except OSError:
            return None
        with self._lock:
            self._refs[stamp] = key
        return key

    # results
    def get(self, source, reference: str | None, settings: str) -> Scores | None:
        """Scores of ``source`` under ``reference`` and ``settings`` if measured (never hashes)."""
        key = self.known_samples_key(source)
        if key is None or reference is None:
            return None
        with self._lock:
            return self._results.get((key, reference, settings))

    def get_by_key(self, samples: str, reference: str, settings: str) -> Scores | None:
        with self._lock:
            return self._results.get((samples, reference, settings))

    def put(self, source, reference: str, settings: str, scores: Scores) -> tuple[str, str, str]:
        key = (self.samples_key(source), reference, settings)
        self.put_by_key(key, scores)
        return key

    def put_by_key(self, key: tuple[str, str, str], scores: Scores) -> None:
        with self._lock:
            self._results[tuple(key)] = scores
        if self._on_change is not None:
            self._on_change(tuple(key))

    def entries(self, samples: set[str] | None = None) -> list[tuple[tuple[str, str, str], Scores]]:
        """Every stored result (only those of ``samples`` keys, when given), in a stable order."""
        with self._lock:
            items = sorted(self._results.items())
        return [(k, s) for k, s in items if samples is None or k[0] in samples]

    def clear(self) -> None:
        with self._lock:
            self._results.clear()
            self._samples.clear()


# -- phase lab ---------------------------------------------------------------------------------------------
@dataclass
class PhaseLabSummary:
    """What the phase lab showed for one recording: its long-form table, the effective-mask columns and
    the Griffin–Lim convergence curves (kept with a session; the signals themselves are versions).

    Attributes:
        rows: ``{file, version, metric, value, unit, reason}`` per cell (empty without reference).
        mask_stats: ``{version, phase_deviation_rad, cirm_distance_db}`` per version.
        curves: ``{label, spectral_convergence: [...], inconsistency, momentum}`` per reconstruction.
        notes: the status line of the run.
        channel: the recording channel analysed.
    """

    rows: list[dict] = field(default_factory=list)
    mask_stats: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    notes: str = ""
    channel: int = 0

    @classmethod
    def from_lab(cls, result, notes: str = "") -> "PhaseLabSummary":
        """From a :class:`~workbench.core.workflows.phaselab.RecordingLab`."""
        rows = [{"file": r.file, "version": r.version, "metric": r.metric, "value": _num_in(_num_out(r.value)),
                 "unit": r.unit, "reason": r.reason} for r in result.rows]
        stats = [{"version": s.version, "phase_deviation_rad": float(s.phase_deviation_rad),
                  "cirm_distance_db": None if s.cirm_distance_db is None else float(s.cirm_distance_db)}
                 for s in result.mask_stats]
        curves = [{"label": v.label, "spectral_convergence": [float(x) for x in v.reconstruction.spectral_convergence],
                   "inconsistency": float(v.reconstruction.inconsistency),
                   "momentum": float(v.reconstruction.momentum)}
                  for v in result.lab.versions if v.reconstruction is not None]
        return cls(rows, stats, curves, notes, int(result.channel))

    def to_dict(self) -> dict:
        return {"rows": [{**r, "value": _num_out(r["value"])} for r in self.rows],
                "mask_stats": [{**s, "phase_deviation_rad": _num_out(s["phase_deviation_rad"]),
                                "cirm_distance_db": _num_out(s["cirm_distance_db"])} for s in self.mask_stats],
                "curves": [{**c, "spectral_convergence": [_num_out(x) for x in c["spectral_convergence"]],
                            "inconsistency": _num_out(c["inconsistency"])} for c in self.curves],
                "notes": self.notes, "channel": self.channel}

    @classmethod
    def from_dict(cls, d: dict) -> "PhaseLabSummary":
        rows = [{"file": str(r.get("file", "")), "version": str(r["version"]), "metric": str(r["metric"]),
                 "value": _num_in(r.get("value")), "unit": str(r.get("unit", "")), "reason": str(r.get("reason", ""))}
                for r in d.get("rows") or []]
        stats = [{"version": str(s["version"]), "phase_deviation_rad": _num_in(s.get("phase_deviation_rad")),
                  "cirm_distance_db": _num_in(s.get("cirm_distance_db"))} for s in d.get("mask_stats") or []]
        curves = []
        for c in d.get("curves") or []:
            sc = [_num_in(x) for x in c.get("spectral_convergence") or []]
            curves.append({"label": str(c.get("label", "")),
                           "spectral_convergence": [float("nan") if x is None else x for x in sc],
                           "inconsistency": _num_in(c.get("inconsistency")), "momentum": float(c.get("momentum", 0.0))})
        return cls(rows, stats, curves, str(d.get("notes", "")), int(d.get("channel", 0)))


# -- the workspace -----------------------------------------------------------------------------------------
def _region(value) -> tuple[float, float] | None:
    if value is None:
        return None
    a, b = (float(x) for x in value)
    if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
        return None
    return (a, b)


class Workspace(Session):
    """A :class:`Session` plus what the window shows and sets (see the module docstring)."""

    def __init__(self, catalogue: ModelCatalogue | None = None):
        super().__init__(catalogue)
        self.version: Version | None = None
        self.channel: int = 0
        self.view_range: tuple[float, float] = (0.0, 0.0)
        self.freq_range: tuple[float, float] | None = None
        self.display: dict[str, Any] = {}
        self.stft: dict[str, Any] = {}
        self.loop: tuple[float, float] | None = None
        self.selection: tuple[float, float] | None = None
        self.repair_box: tuple[float, float, float, float] | None = None
        #: what the Metrics panel measures: the reference-free metrics (DNSMOS ...) or not, and over the whole
        #: recording or its speech only (``{"reference_free": bool, "speech_only": bool}``)
        self.metric_settings: dict[str, Any] = {"reference_free": True, "speech_only": False}
        self.blind_results: list[dict] = []
        #: the blind test in progress: ``{"recording", "trials": [{"mapping": {label: version name},
        #: "vote": label | None}], "current": index}``, or ``None``
        self.blind_test: dict | None = None
        #: the phase lab's run parameters (kinds, mask parameters, Griffin-Lim settings)
        self.phase_lab_params: dict[str, Any] = {}
        #: the Edit panel's run parameters (model, its own limit, repair mode and gain, learned noise)
        self.edit_params: dict[str, Any] = {}
        self.window: dict[str, Any] = {}
        self.measurements = MeasurementStore(on_change=lambda key: self._emit("measurement", key))
        self.phase_lab: dict[int, tuple[Recording, PhaseLabSummary]] = {}
        #: the parsed window state of the session file last opened (see session_file.open_session)
        self.restored_state: dict | None = None

    # -- state -----------------------------------------------------------------------------------------
    def _set(self, key: str, value) -> None:
        if getattr(self, key) != value:
            setattr(self, key, value)
            self._emit("state", key)

    def set_current(self, rec: Recording | None, version: Version | None = None) -> None:
        """Make ``rec`` current and show ``version`` (default its original). A new current recording
        starts without loop region, selection or repair box (they are times of the other one)."""
        if rec is not None and rec not in self.recordings:
            raise ValueError(f"{rec.name} is not open in this session")
        if rec is not self.current:
            self.current = rec
            if rec is not None and self.channel >= rec.source.channels:
                self.channel = 0
            self.loop = self.selection = self.repair_box = None
            self._emit("current", rec)
            for key in ("loop", "selection", "repair_box"):
                self._emit("state", key)
        self.set_version(version if version is not None else (rec.original if rec is not None else None))

    def set_version(self, version: Version | None) -> None:
        """Show ``version`` (one of the current recording's versions)."""
        if version is self.version:
            return
        if version is not None and (self.current is None or version not in self.current.versions):
            raise ValueError(f"version {version.name!r} does not belong to the current recording")
        self.version = version
        self._emit("state", "version")

    def set_channel(self, channel: int) -> None:
        self._set("channel", int(channel))

    def set_view_range(self, start_s: float, end_s: float) -> None:
        self._set("view_range", (float(start_s), float(end_s)))

    def set_freq_range(self, value) -> None:
        self._set("freq_range", _region(value))

    def set_display(self, display: dict) -> None:
        self._set("display", plain(dict(display)))

    def set_stft(self, stft: dict) -> None:
        self._set("stft", plain(dict(stft)))

    def set_loop(self, region) -> None:
        """The loop region in seconds (``None`` or an empty span: no region)."""
        self._set("loop", _region(region))

    def set_selection(self, region) -> None:
        self._set("selection", _region(region))

    def set_repair_box(self, box) -> None:
        """The repair rectangle ``(t0_s, t1_s, f0_hz, f1_hz)`` or ``None``."""
        self._set("repair_box", None if box is None else tuple(float(x) for x in box))

    def set_metric_settings(self, settings: dict) -> None:
        """Change some of :attr:`metric_settings`. ``"dnsmos"``, the name sessions of earlier versions stored,
        is read as ``"reference_free"``: it always switched every reference-free metric."""
        settings = {METRIC_SETTING_RENAMES.get(k, k): v for k, v in dict(settings).items()}
        self._set("metric_settings", plain({**self.metric_settings, **settings}))

    def set_blind_results(self, results: list[dict]) -> None:
        self._set("blind_results", plain([dict(r) for r in results]))

    def set_window(self, window: dict) -> None:
        self._set("window", plain(dict(window)))

    def set_phase_lab_params(self, params: dict) -> None:
        self._set("phase_lab_params", plain({**self.phase_lab_params, **dict(params)}))

    def set_edit_params(self, params: dict) -> None:
        self._set("edit_params", plain({**self.edit_params, **dict(params)}))

    def set_blind_test(self, state: dict | None) -> None:
        """The running blind test (``None``: none runs)."""
        self._set("blind_test", None if state is None else plain(dict(state)))

    # -- phase lab -------------------------------------------------------------------------------------
    def set_phase_lab(self, rec: Recording, summary: PhaseLabSummary | None) -> None:
        if summary is None:
            self.phase_lab.pop(id(rec), None)
        else:
            self.phase_lab[id(rec)] = (rec, summary)
        self._emit("phase_lab", rec)

    def phase_lab_of(self, rec: Recording | None) -> PhaseLabSummary | None:
        entry = self.phase_lab.get(id(rec)) if rec is not None else None
        return entry[1] if entry is not None and entry[0] is rec else None

    def close(self, rec: Recording) -> None:
        self.phase_lab.pop(id(rec), None)
        super().close(rec)

    # -- undo ------------------------------------------------------------------------------------------
    def undo(self) -> Command | None:
        """Undo the current recording's last command and show the version it concerned."""
        return self._step(undo=True)

    def redo(self) -> Command | None:
        return self._step(undo=False)

    def _step(self, undo: bool) -> Command | None:
        rec = self.current
        if rec is None:
            return None
        command = rec.undo() if undo else rec.redo()
        if command is None:
            return None
        shown = command.shown_after(undone=undo)
        if shown is None or shown not in rec.versions:
            shown = self.version if self.version in rec.versions else rec.original
        self.set_version(shown)
        self._emit("history", command)
        return command

    # -- the whole model, for comparisons ---------------------------------------------------------------
    def snapshot(self) -> dict:
        """The whole model as plain values: what a saved session must bring back (everything but the
        running jobs). Hashes every version's samples (slow on long recordings: for tests and
        diagnostics)."""
        recs = []
        for rec in self.recordings:
            summary = self.phase_lab_of(rec)
            ref = self.reference(rec)

            def named(version: Version) -> str:
                held = "" if any(version is v for v in rec.versions) else " (held by the history)"
                return f"{version.name}{held} {self.measurements.samples_key(version.source)}"

            recs.append({
                "path": str(rec.path.absolute()), "repair": bool(rec.repair),
                "reference": None if ref is None else str(Path(ref).absolute()),
                "versions": [{"name": v.name, "kind": v.kind.value, "provenance": v.provenance.to_dict(),
                              "strength": rec.strength_of(v).to_dict(), "settings": v.settings,
                              "samples": self.measurements.samples_key(v.source), "saved": v.saved}
                             for v in rec.versions],
                "phase_lab": None if summary is None else summary.to_dict(),
                "history": history_to_value(rec.history, named)})
        live = {s["samples"] for r in recs for s in r["versions"]}
        return plain({
            "recordings": recs,
            "current": self.recordings.index(self.current) if self.current in self.recordings else None,
            "state": {"version": None if self.version is None else self.version.name, "channel": self.channel,
                      "view_range": list(self.view_range),
                      "freq_range": None if self.freq_range is None else list(self.freq_range),
                      "display": self.display, "stft": self.stft,
                      "loop": None if self.loop is None else list(self.loop),
                      "selection": None if self.selection is None else list(self.selection),
                      "repair_box": None if self.repair_box is None else list(self.repair_box),
                      "metric_settings": self.metric_settings, "blind_results": self.blind_results, "window": self.window,
                      "phase_lab_params": self.phase_lab_params, "edit_params": self.edit_params,
                      "blind_test": self.blind_test},
            "measurements": [[list(k), scores_to_dict(s)] for k, s in self.measurements.entries(live)],
            "view_state": dict(self.view_state),
        })
