"""The session: everything a person is working on, without Qt.

A :class:`Session` holds

* the open :class:`~workbench.core.document.recording.Recording` s (each with its versions and their typed
  :class:`~workbench.core.provenance.Provenance`) and which one is current;
* the clean **reference** chosen for each recording (a path, used by intrusive metrics);
* the **model catalogue** (:class:`ModelCatalogue`): built-ins, plugins and the model files the person
  loaded — the one list the Models panel, the batch dialog and the CLI read;
* the **jobs** (:class:`Job`): background work owned by a recording, with a state, cancellable;
* **view state** that other features store with a saved session (display settings, the loop region,
  blind-test results ...): :meth:`Session.set_view_state` under a key of their choice.

Observers subscribe plain callables (:meth:`Session.subscribe`) and are called as ``fn(event, obj)`` with
the event names in :data:`EVENTS`, possibly from worker threads; the GUI's document re-emits them as
queued Qt signals (``workbench.gui.document``). The core never knows about Qt.

Closing a recording (:meth:`Session.close`) cancels every job it owns: a running
:meth:`Recording.enhance` stops at its next progress step and adds no version. Saving and opening
sessions lives in :mod:`workbench.core.document.session_file`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Generator

from ..enhance.enhancer import Enhancer, EnhancerInfo
from ..enhance import registry
from ..progress import Progress, rescaled
from ..errors import Cancelled
from ..provenance import Provenance, VersionKind
from .recording import Recording, Version

__all__ = ["Session", "Job", "JobState", "ModelCatalogue", "CatalogueEntry", "Provenance", "VersionKind",
           "Recording", "Version", "EVENTS"]

#: Events a session reports to its listeners: ``fn(event, obj)``.
#:  recordings — a recording was opened or closed (obj: the recording);
#:  current — the current recording changed (obj: it, or None);
#:  versions — a recording gained or lost versions (obj: the recording);
#:  reference — a recording's reference changed (obj: the recording);
#:  strength — a version's strength changed (obj: ``(recording, version)``);
#:  job — a job was added, changed state or made progress (obj: the Job);
#:  catalogue — the model catalogue was listed or a model file loaded or removed (obj: the catalogue);
#:  view_state — a view-state key changed (obj: the key).
#: Every open recording and the catalogue report through the session, so a listener of the session hears
#: every change whoever made it (a panel, a worker, session opening, undo).
EVENTS = ("recordings", "current", "versions", "reference", "strength", "job", "catalogue", "view_state")


#: A running job reports its progress to the session's listeners at most this often (seconds).
PROGRESS_REPORT_S = 0.25


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Job:
    """A piece of background work owned by a recording (or by nobody, ``owner=None``).

    Build it with :meth:`Session.new_job`, then drive :meth:`steps` (a generator of Progress that
    returns the wrapped generator's result) on a worker. :meth:`cancel` is thread-safe: the wrapped
    generator is closed before its next step and the job ends ``CANCELLED``.

    Attributes:
        owner: the recording the work is for (closing it cancels the job), or ``None``.
        label: short human description ("deepfilternet3 on speech.wav").
        state: a :class:`JobState`.
        progress: the last :class:`Progress` seen.
        error: the message of a failed job.
        result: the wrapped generator's return value once DONE.
    """

    def __init__(self, gen: Generator[Progress, None, Any], owner: Recording | None = None, label: str = "",
                 on_change: Callable[["Job"], None] | None = None):
        self._gen = gen
        self.owner = owner
        self.label = label
        self.state = JobState.QUEUED
        self.progress = Progress(0.0, "queued")
        self.error: str | None = None
        self.result: Any = None
        self._cancel = threading.Event()
        self._on_change = on_change
        self._reported = 0.0

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the job to stop before its next step (any thread). A queued job is cancelled at once."""
        self._cancel.set()
        if self.state == JobState.QUEUED:
            self._gen.close()
            self._set(JobState.CANCELLED)

    def _set(self, state: JobState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(self)

    def steps(self) -> Generator[Progress, None, Any]:
        """Drive the wrapped generator: yields its Progress, returns its result, records the state.

        Raises what the generator raises (:class:`Cancelled` when cancelled)."""
        if self.state.finished:
            raise Cancelled(f"{self.label}: already {self.state.value}")
        self._set(JobState.RUNNING)
        try:
            gen = rescaled(self._gen, 0.0, 1.0, should_stop=self._cancel.is_set)
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                self.progress = p
                now = time.monotonic()
                if now - self._reported >= PROGRESS_REPORT_S and self._on_change is not None:
                    self._reported = now
                    self._on_change(self)   # listeners see the progress, a few times a second at most
                yield p
        except (Cancelled, GeneratorExit):
            self._set(JobState.CANCELLED)
            raise
        except BaseException as exc:
            self.error = str(exc) or type(exc).__name__
            self._set(JobState.FAILED)
            raise
        if self._cancel.is_set():  # cancelled after the last step: the result is dropped
            self._set(JobState.CANCELLED)
            raise Cancelled(f"{self.label}: cancelled")
        self.result = result
        self._set(JobState.DONE)
        return result

    def __repr__(self) -> str:
        return f"<Job {self.label!r} {self.state.value}>"


# -- the model catalogue ---------------------------------------------------------------------------------
@dataclass
class CatalogueEntry:
    """One model the person can run.

    Attributes:
        spec: what :meth:`ModelCatalogue.load` takes: a built-in/plugin id, or the file/folder path.
        info: its :class:`EnhancerInfo` (cheap: listing never loads weights of built-ins).
        origin: ``"built-in"``, ``"plugin"`` or ``"file"`` (loaded by the person).
        enhancer: the loaded Enhancer for ``file`` entries (kept for reuse), else ``None``.
    """

    spec: str
    info: EnhancerInfo
    origin: str
    enhancer: Enhancer | None = None


class ModelCatalogue:
    """The one list of models: built-ins (fixed order), plugins (by id), then files the person loaded.

    Thread-safe for reading; listeners (``fn(catalogue)``) are called after :meth:`refresh`,
    :meth:`add_loaded` and :meth:`remove`.
    """

    def __init__(self) -> None:
        self._listed: list[CatalogueEntry] | None = None
        self._loaded: dict[str, CatalogueEntry] = {}
        self._lock = threading.RLock()
        self._listeners: list[Callable[[ModelCatalogue], None]] = []

    def subscribe(self, listener: Callable[["ModelCatalogue"], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn(self)

    def refresh(self, rescan_plugins: bool = False) -> list[CatalogueEntry]:
        """(Re)list built-ins and plugins (reads model metadata, ~0.5 s: call it off the GUI thread)."""
        listed = [CatalogueEntry(info.id, info, origin)
                  for info, origin in registry.list_enhancer_entries(rescan_plugins)]
        with self._lock:
            self._listed = listed
        self._changed()
        return self.entries()

    @property
    def listed(self) -> bool:
        return self._listed is not None

    def entries(self) -> list[CatalogueEntry]:
        """Every model, in display order (lists built-ins and plugins on first use)."""
        if self._listed is None:
            self.refresh()
        with self._lock:
            return list(self._listed or []) + list(self._loaded.values())

    def specs(self) -> list[str]:
        return [e.spec for e in self.entries()]

    def known_entries(self) -> list[CatalogueEntry]:
        """What :meth:`entries` returns, without listing: before the first listing only the loaded model
        files (a GUI thread reads this and refills when the catalogue reports a change)."""
        with self._lock:
            return list(self._listed or []) + list(self._loaded.values())

    def entry(self, spec: str | Path) -> CatalogueEntry:
        spec = str(spec)
        with self._lock:
            if spec in self._loaded:
                return self._loaded[spec]
        for e in self.entries():
            if e.spec == spec:
                return e
        raise KeyError(spec)

    def info(self, spec: str | Path) -> EnhancerInfo:
        return self.entry(spec).info

    def loaded_files(self) -> list[CatalogueEntry]:
        """The models the person loaded from files or folders, in loading order."""
        with self._lock:
            return list(self._loaded.values())

    def add_loaded(self, spec: str | Path, enhancer: Enhancer) -> CatalogueEntry:
        """Record a model loaded from a file/folder (replacing one loaded from the same path)."""
        entry = CatalogueEntry(str(spec), enhancer.info, "file", enhancer)
        with self._lock:
            self._loaded[str(spec)] = entry
        self._changed()
        return entry

    def remove(self, spec: str | Path) -> None:
        with self._lock:
            entry = self._loaded.pop(str(spec), None)
        if entry is not None:
            if entry.enhancer is not None:
                entry.enhancer.close()
            self._changed()

    def load(self, spec: str | Path) -> Enhancer:
        """The Enhancer for ``spec``: the kept instance of a loaded file, else built by the registry.

        A path that is not yet in the catalogue is loaded and added (so the batch dialog and the panel
        see it). Raises :class:`ModelError` with the reason."""
        spec = str(spec)
        with self._lock:
            entry = self._loaded.get(spec)
        if entry is not None and entry.enhancer is not None:
            return entry.enhancer
        enh = registry.load_enhancer(spec)
        if not registry.is_registered_id(spec):
            self.add_loaded(spec, enh)
        return enh

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        for e in loaded:
            if e.enhancer is not None:
                e.enhancer.close()


# -- the session -----------------------------------------------------------------------------------------
class Session:
    """Open recordings, the current one, references, the model catalogue, jobs and stored view state."""

    def __init__(self, catalogue: ModelCatalogue | None = None):
        self.recordings: list[Recording] = []
        self.current: Recording | None = None
        self.catalogue = catalogue if catalogue is not None else ModelCatalogue()
        self.references: dict[int, Path] = {}        # id(recording) -> reference path
        self.jobs: list[Job] = []
        self._jobs_lock = threading.Lock()   # jobs change state on worker threads
        self.view_state: dict[str, Any] = {}
        self._listeners: list[Callable[[str, Any], None]] = []
        self._rec_listeners: dict[int, Callable] = {}
        self._providers: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}
        #: set by session_file when this session was saved to / opened from a file
        self.path: Path | None = None
        self.catalogue.subscribe(lambda cat: self._emit("catalogue", cat))

    # -- observers -------------------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(event, obj)`` on every change (events: :data:`EVENTS`; any thread)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, Any], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: str, obj: Any) -> None:
        for fn in list(self._listeners):
            fn(event, obj)

    # -- recordings --------------------------------------------------------------------------------------
    def find(self, path: str | Path) -> Recording | None:
        """The open recording read from ``path``, if any."""
        p = Path(path).resolve()
        for rec in self.recordings:
            if rec.path.resolve() == p:
                return rec
        return None

    def open(self, path: str | Path, *, repair: bool = False) -> Recording:
        """Open ``path`` (or return it if already open) and make it current. Raises AudioFileError."""
        rec = self.find(path)
        if rec is None:
            rec = Recording(path, repair=repair)
            self.add(rec)
        else:
            self.set_current(rec)
        return rec

    def add(self, rec: Recording, make_current: bool = True) -> Recording:
        """Add a built recording (e.g. :meth:`Recording.from_array`)."""
        listener = (lambda r: self._emit("versions", r))
        self._rec_listeners[id(rec)] = listener
        rec.subscribe(listener)
        # However the recording was built (opened by a person, restored from a session file, made by a
        # test), its strength changes reach the session's listeners: panes and playback follow them.
        rec.subscribe_strength(lambda r, v: self._emit("strength", (r, v)))
        self.recordings.append(rec)
        self._emit("recordings", rec)
        if make_current:
            self.set_current(rec)
        return rec

    def set_current(self, rec: Recording | None) -> None:
        if rec is not None and rec not in self.recordings:
            raise ValueError(f"{rec.name} is not open in this session")
        if rec is not self.current:
            self.current = rec
            self._emit("current", rec)

    def close(self, rec: Recording) -> None:
        """Close ``rec``: cancel its jobs (they add nothing), forget its reference, release its file."""
        if rec not in self.recordings:
            return
        i = self.recordings.index(rec)
        rec.closed = True
        for job in self.jobs_of(rec):
            job.cancel()
        self.recordings.remove(rec)
        self.references.pop(id(rec), None)
        if not self.jobs_of(rec):
            rec.close()  # else released when its last job has stopped (it may be reading right now)
        self._emit("recordings", rec)
        if rec is self.current:
            self.set_current(self.recordings[min(i, len(self.recordings) - 1)] if self.recordings else None)

    def close_all(self) -> None:
        for rec in list(self.recordings):
            self.close(rec)

    # -- references ------------------------------------------------------------------------------------
    def reference(self, rec: Recording) -> Path | None:
        """The clean reference chosen for ``rec`` (a path), or ``None``."""
        return self.references.get(id(rec))

    def set_reference(self, rec: Recording, path: str | Path | None) -> None:
        if path is None:
            self.references.pop(id(rec), None)
        else:
            self.references[id(rec)] = Path(path)
        self._emit("reference", rec)

    # -- jobs --------------------------------------------------------------------------------------------
    def new_job(self, gen: Generator[Progress, None, Any], owner: Recording | None = None,
                label: str = "") -> Job:
        """Register background work for ``owner``; drive ``job.steps()`` on a worker."""
        if owner is not None and (owner.closed or owner not in self.recordings):
            gen.close()
            raise ValueError(f"{owner.name} is not open; no job started")
        job = Job(gen, owner, label, on_change=self._job_changed)
        with self._jobs_lock:
            self.jobs.append(job)
        self._emit("job", job)
        return job

    def _job_changed(self, job: Job) -> None:  # any thread
        release = False
        with self._jobs_lock:
            if job.state.finished and job in self.jobs:
                self.jobs.remove(job)
                owner = job.owner
                release = owner is not None and owner.closed and not any(
                    j.owner is owner and not j.state.finished for j in self.jobs)
        if release:
            job.owner.close()  # its file, kept open while the job could still read it
        self._emit("job", job)

    def jobs_of(self, rec: Recording | None) -> list[Job]:
        """The unfinished jobs owned by ``rec``."""
        with self._jobs_lock:
            return [j for j in self.jobs if j.owner is rec and not j.state.finished]

    def enhance_job(self, rec: Recording, enhancer: Enhancer, channels=None, *, spec: str | None = None,
                    **kwargs) -> Job:
        """A job running :meth:`Recording.enhance`; its result is the list of new versions."""
        return self.new_job(rec.enhance(enhancer, channels, spec=spec, **kwargs), rec,
                            f"{enhancer.info.name} on {rec.name}")

    # -- unsaved work --------------------------------------------------------------------------------------
    def unsaved_versions(self) -> list[tuple[Recording, Version]]:
        """Results that would be lost on quit: versions not stored in a session nor exported."""
        return [(rec, v) for rec in self.recordings for v in rec.unsaved_versions()]

    def mark_saved(self) -> None:
        for rec in self.recordings:
            for v in rec.versions:
                v.saved = True

    # -- stored view state ---------------------------------------------------------------------------------
    def set_view_state(self, key: str, value: Any) -> None:
        """Store JSON-serialisable ``value`` under ``key`` (saved with the session; e.g. ``"display"``,
        ``"loop"``, ``"blind_test"``). Features register a provider with :meth:`add_state_provider`
        instead when the value lives elsewhere and should be read at save time."""
        self.view_state[key] = value
        self._emit("view_state", key)

    def add_state_provider(self, key: str, get: Callable[[], Any], restore: Callable[[Any], None]) -> None:
        """Hook for state owned elsewhere (the GUI's display settings, loop region, blind tests ...):
        ``get()`` is called when the session is saved (JSON-serialisable result, stored under ``key``);
        ``restore(value)`` when a saved session is opened."""
        self._providers[key] = (get, restore)

    def state_providers(self) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
        return dict(self._providers)

    def collect_view_state(self) -> dict[str, Any]:
        """``view_state`` plus every provider's current value (what a saved session stores)."""
        state = dict(self.view_state)
        for key, (get, _restore) in self.state_providers().items():
            state[key] = get()
        return state
