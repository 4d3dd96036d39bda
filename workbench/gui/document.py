"""The GUI's view of the session: a thin Qt adapter over :class:`workbench.core.document.session.Session`.

:class:`DocumentModel` is the one object every panel talks to. The domain state — open recordings,
their versions, the reference per recording, the model catalogue, jobs — lives in the Qt-free
``document.session``; the document adds what only the window has (which version the panes show, the
channel, visible time range, cursor, playhead) and re-emits the session's notifications, which may come
from worker threads, as queued Qt signals so slots always run on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from ..core.document.recording import Recording, Version
from ..core.document.session import ModelCatalogue, Session


class DocumentModel(QObject):
    """Open recordings and the current recording/version.

    Signals:
        recordingChanged(object): the current :class:`Recording` (or ``None``) changed.
        versionsChanged(object): a recording gained/lost versions; the argument is that recording.
        currentVersionChanged(object): the :class:`Version` shown in the panes changed (or ``None``).
        recordingsChanged(): the list of open recordings changed.
        viewRangeChanged(float, float): visible time span in seconds (start, end).
        cursorMoved(float): time under the mouse in seconds.
        playheadMoved(float): playback position in seconds (set by the transport).
        channelChanged(int): channel shown in the panes.
        referenceChanged(object): the reference of this recording changed (``session.reference(rec)``).
        jobChanged(object): a :class:`~workbench.core.document.session.Job` was added or changed state.
        catalogueChanged(): the model catalogue changed (listed, a file loaded or removed).
    """

    recordingChanged = Signal(object)
    versionsChanged = Signal(object)
    currentVersionChanged = Signal(object)
    recordingsChanged = Signal()
    viewRangeChanged = Signal(float, float)
    cursorMoved = Signal(float)
    playheadMoved = Signal(float)
    channelChanged = Signal(int)
    referenceChanged = Signal(object)
    jobChanged = Signal(object)
    catalogueChanged = Signal()
    # Internal: carry core notifications (any thread) to the GUI thread.
    #: (recording, version): a version's strength changed (playback follows live; views redraw)
    strengthChanged = Signal(object, object)

    _versionsNotified = Signal(object)
    _strengthNotified = Signal(object, object)
    _sessionNotified = Signal(str, object)
    _catalogueNotified = Signal()

    def __init__(self, parent: QObject | None = None, session: Session | None = None):
        super().__init__(parent)
        self.session = session if session is not None else Session()
        self.recording: Recording | None = None
        self.version: Version | None = None
        self.channel: int = 0
        self.view_range: tuple[float, float] = (0.0, 0.0)
        self.cursor_s: float = 0.0
        self.playhead_s: float = 0.0
        self._versionsNotified.connect(self._on_versions_notified, Qt.ConnectionType.QueuedConnection)
        self._strengthNotified.connect(self.strengthChanged, Qt.ConnectionType.QueuedConnection)
        self._sessionNotified.connect(self._on_session_notified, Qt.ConnectionType.QueuedConnection)
        self._catalogueNotified.connect(self.catalogueChanged, Qt.ConnectionType.QueuedConnection)
        self.session.subscribe(self._on_session_event)
        self.session.catalogue.subscribe(lambda _cat: self._catalogueNotified.emit())

    @property
    def recordings(self) -> list[Recording]:
        """The open recordings (the session's list)."""
        return self.session.recordings

    @property
    def catalogue(self) -> ModelCatalogue:
        """The model catalogue (built-ins, plugins, loaded files) every panel and dialog reads."""
        return self.session.catalogue

    def _on_session_event(self, event: str, obj) -> None:  # any thread
        if event == "versions":
            self._versionsNotified.emit(obj)
        elif event in ("job", "reference"):
            self._sessionNotified.emit(event, obj)

    def _on_session_notified(self, event: str, obj) -> None:
        if event == "job":
            self.jobChanged.emit(obj)
        elif event == "reference":
            self.referenceChanged.emit(obj)

    # -- recordings -------------------------------------------------------------------------------------
    def open(self, path: str | Path) -> Recording:
        """Open ``path`` as a new recording (or return the one already open) and make it current.

        Raises:
            AudioFileError (a WorkbenchError) naming the file and the problem.
        """
        path = Path(path)
        rec = self.session.find(path)
        if rec is not None:
            self.set_current(rec)
            return rec
        rec = Recording(path)
        self.add_recording(rec)
        return rec

    def add_recording(self, rec: Recording) -> None:
        """Add an already built recording (e.g. :meth:`Recording.from_array`) and make it current."""
        self.session.add(rec, make_current=False)
        rec.subscribe_strength(lambda r, v: self._strengthNotified.emit(r, v))
        self.recordingsChanged.emit()
        self.set_current(rec)

    # -- undo -------------------------------------------------------------------------------------------
    def undo(self) -> str | None:
        """Undo the current recording's last add/remove/strength step; returns what was undone."""
        step = self.recording.undo() if self.recording is not None else None
        return None if step is None else step.label

    def redo(self) -> str | None:
        step = self.recording.redo() if self.recording is not None else None
        return None if step is None else step.label

    def close(self, rec: Recording) -> None:
        """Close ``rec``: its jobs are cancelled (a running model adds no version), its file released."""
        if rec not in self.recordings:
            return
        i = self.recordings.index(rec)
        self.session.close(rec)
        self.recordingsChanged.emit()
        if rec is self.recording:
            nxt = self.recordings[min(i, len(self.recordings) - 1)] if self.recordings else None
            self.set_current(nxt)

    # -- references -------------------------------------------------------------------------------------
    def reference(self, rec: Recording | None = None) -> Path | None:
        """The clean reference chosen for ``rec`` (default: the current recording)."""
        rec = rec if rec is not None else self.recording
        return self.session.reference(rec) if rec is not None else None

    def set_reference(self, rec: Recording, path: str | Path | None) -> None:
        self.session.set_reference(rec, path)

    def set_current(self, rec: Recording | None, version: Version | None = None) -> None:
        """Make ``rec`` current and show ``version`` (default: its original)."""
        if rec is not self.recording:
            self.recording = rec
            self.session.set_current(rec)
            if rec is not None and self.channel >= rec.source.channels:
                self.channel = 0
            self.recordingChanged.emit(rec)
        self.set_version(version if version is not None else (rec.original if rec is not None else None))

    def set_version(self, version: Version | None) -> None:
        """Show ``version`` (one of the current recording's versions) in the panes."""
        if version is self.version:
            return
        if version is not None and (self.recording is None or version not in self.recording.versions):
            raise ValueError(f"version {version.name!r} does not belong to the current recording")
        self.version = version
        self.currentVersionChanged.emit(version)

    def set_channel(self, channel: int) -> None:
        if channel != self.channel:
            self.channel = channel
            self.channelChanged.emit(channel)

    # -- shared view state --------------------------------------------------------------------------------
    def set_view_range(self, start_s: float, end_s: float) -> None:
        if (start_s, end_s) != self.view_range:
            self.view_range = (start_s, end_s)
            self.viewRangeChanged.emit(start_s, end_s)

    def set_cursor(self, time_s: float) -> None:
        self.cursor_s = time_s
        self.cursorMoved.emit(time_s)

    def set_playhead(self, time_s: float) -> None:
        self.playhead_s = time_s
        self.playheadMoved.emit(time_s)

    def _on_versions_notified(self, rec: Recording) -> None:
        if self.version is not None and rec is self.recording and self.version not in rec.versions:
            self.version = None
            self.set_version(rec.original)
        self.versionsChanged.emit(rec)
