"""The GUI's view of the workspace: a thin Qt bridge over :class:`workbench.core.document.workspace.Workspace`.

:class:`DocumentModel` is the one object every panel talks to. Everything a person sees and sets — open
recordings, their versions, the reference per recording, the model catalogue, jobs, the shown version
and channel, the visible range, display and STFT settings, the loop region, selection and repair box,
measurements, phase-lab results — lives in the Qt-free ``document.workspace`` (also ``document.session``).
Every change there is one event of the workspace's single emitter, whoever made it (a panel, a worker,
session opening, undo); the document re-emits them as Qt signals, queued when they come from a worker
thread, so slots always run on the GUI thread. Widgets write the workspace (through the setters here)
and redraw from these signals; they keep no state of their own that others need.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from ..core.document.recording import Recording, Version
from ..core.document.session import ModelCatalogue, Session
from ..core.document.workspace import Workspace


class DocumentModel(QObject):
    """Open recordings and the current recording/version, as Qt signals of the workspace's events.

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
        strengthChanged(object, object): (recording, version): a version's strength changed.
        loopChanged(object): the loop region ``(start_s, stop_s)`` or ``None``.
        selectionChanged(object): the time selection ``(start_s, stop_s)`` or ``None``.
        repairBoxChanged(object): the repair rectangle ``(t0_s, t1_s, f0_hz, f1_hz)`` or ``None``.
        displayChanged(): the display settings (``workspace.display``) changed.
        stftChanged(): the STFT settings (``workspace.stft``) changed.
        stateChanged(str): any workspace state key (:data:`~workbench.core.document.workspace.STATE_KEYS`) changed.
        measurementsChanged(): a measurement was stored.
        phaseLabChanged(object): the phase-lab results of a recording changed.
        historyChanged(object): a command was undone or redone (the command).
        strengthPreviewed(object, float): (version, mix) while a strength is being dragged: heard at once,
            not yet committed (playback follows it; the version changes only on :meth:`Recording.set_strength`).
        seekRequested(float): a pane asked playback to go to this time (seconds).
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
    strengthChanged = Signal(object, object)
    loopChanged = Signal(object)
    selectionChanged = Signal(object)
    repairBoxChanged = Signal(object)
    displayChanged = Signal()
    stftChanged = Signal()
    stateChanged = Signal(str)
    measurementsChanged = Signal()
    phaseLabChanged = Signal(object)
    historyChanged = Signal(object)
    strengthPreviewed = Signal(object, float)
    seekRequested = Signal(float)

    # Internal: carry core notifications (any thread) to the GUI thread.
    _versionsNotified = Signal(object)
    _strengthNotified = Signal(object, object)
    _sessionNotified = Signal(str, object)
    _stateNotified = Signal(str, object)
    _catalogueNotified = Signal()

    def __init__(self, parent: QObject | None = None, session: Session | None = None):
        super().__init__(parent)
        self.workspace: Workspace = session if isinstance(session, Workspace) else Workspace(
            session.catalogue if session is not None else None)
        #: the same object as :attr:`workspace` (the session part: recordings, references, jobs, catalogue)
        self.session = self.workspace
        self.cursor_s: float = 0.0
        self.playhead_s: float = 0.0
        self._versionsNotified.connect(self._on_versions_notified, Qt.ConnectionType.QueuedConnection)
        self._strengthNotified.connect(self.strengthChanged, Qt.ConnectionType.QueuedConnection)
        self._sessionNotified.connect(self._on_session_notified, Qt.ConnectionType.QueuedConnection)
        # Direct when the change was made on the GUI thread (widgets see it at once), queued otherwise.
        self._stateNotified.connect(self._on_state_notified, Qt.ConnectionType.AutoConnection)
        self._catalogueNotified.connect(self.catalogueChanged, Qt.ConnectionType.QueuedConnection)
        self.workspace.subscribe(self._on_session_event)

    # -- the workspace's state, read where panels expect it ------------------------------------------------
    @property
    def recording(self) -> Recording | None:
        return self.workspace.current

    @property
    def version(self) -> Version | None:
        return self.workspace.version

    @property
    def channel(self) -> int:
        return self.workspace.channel

    @property
    def view_range(self) -> tuple[float, float]:
        return self.workspace.view_range

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
        elif event == "strength":
            self._strengthNotified.emit(*obj)
        elif event == "catalogue":
            self._catalogueNotified.emit()
        elif event in ("job", "reference"):
            self._sessionNotified.emit(event, obj)
        else:
            self._stateNotified.emit(event, obj)

    def _on_session_notified(self, event: str, obj) -> None:
        if event == "job":
            self.jobChanged.emit(obj)
        elif event == "reference":
            self.referenceChanged.emit(obj)

    def _on_state_notified(self, event: str, obj) -> None:
        ws = self.workspace
        if event == "current":
            self.recordingChanged.emit(obj)
        elif event == "recordings":
            self.recordingsChanged.emit()
        elif event == "measurement":
            self.measurementsChanged.emit()
        elif event == "phase_lab":
            self.phaseLabChanged.emit(obj)
        elif event == "history":
            self.historyChanged.emit(obj)
        elif event == "state":
            if obj == "version":
                self.currentVersionChanged.emit(ws.version)
            elif obj == "channel":
                self.channelChanged.emit(ws.channel)
            elif obj == "view_range":
                self.viewRangeChanged.emit(*ws.view_range)
            elif obj == "loop":
                self.loopChanged.emit(ws.loop)
            elif obj == "selection":
                self.selectionChanged.emit(ws.selection)
            elif obj == "repair_box":
                self.repairBoxChanged.emit(ws.repair_box)
            elif obj == "display":
                self.displayChanged.emit()
            elif obj == "stft":
                self.stftChanged.emit()
            self.stateChanged.emit(obj)

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
        self.workspace.add(rec, make_current=True)

    # -- undo -------------------------------------------------------------------------------------------
    def undo(self) -> str | None:
        """Undo the current recording's last command and show the version it concerned; returns its name."""
        command = self.workspace.undo()
        return None if command is None else command.name

    def redo(self) -> str | None:
        command = self.workspace.redo()
        return None if command is None else command.name

    def close(self, rec: Recording) -> None:
        """Close ``rec``: its jobs are cancelled (a running model adds no version), its file released."""
        self.workspace.close(rec)

    # -- references -------------------------------------------------------------------------------------
    def reference(self, rec: Recording | None = None) -> Path | None:
        """The clean reference chosen for ``rec`` (default: the current recording)."""
        rec = rec if rec is not None else self.recording
        return self.session.reference(rec) if rec is not None else None

    def set_reference(self, rec: Recording, path: str | Path | None) -> None:
        self.session.set_reference(rec, path)

    def set_current(self, rec: Recording | None, version: Version | None = None) -> None:
        """Make ``rec`` current and show ``version`` (default: its original)."""
        self.workspace.set_current(rec, version)

    def set_version(self, version: Version | None) -> None:
        """Show ``version`` (one of the current recording's versions) in the panes."""
        self.workspace.set_version(version)

    def set_channel(self, channel: int) -> None:
        self.workspace.set_channel(channel)

    # -- shared view state --------------------------------------------------------------------------------
    def set_view_range(self, start_s: float, end_s: float) -> None:
        self.workspace.set_view_range(start_s, end_s)

    def set_loop(self, region) -> None:
        """The loop region (``None``: none); panes, overview, transport and Edit panel follow."""
        self.workspace.set_loop(region)

    def set_selection(self, region) -> None:
        self.workspace.set_selection(region)

    def set_repair_box(self, box) -> None:
        self.workspace.set_repair_box(box)

    def set_cursor(self, time_s: float) -> None:
        self.cursor_s = time_s
        self.cursorMoved.emit(time_s)

    def preview_strength(self, version: Version, mix: float) -> None:
        """A strength being dragged (not committed): playback mixes it at once."""
        self.strengthPreviewed.emit(version, float(mix))

    def request_seek(self, time_s: float) -> None:
        """Ask playback to go to ``time_s`` (a click on a pane)."""
        self.seekRequested.emit(float(time_s))

    def set_playhead(self, time_s: float) -> None:
        self.playhead_s = time_s
        self.playheadMoved.emit(time_s)

    def _on_versions_notified(self, rec: Recording) -> None:
        if self.version is not None and rec is self.recording and self.version not in rec.versions:
            self.workspace.version = None
            self.set_version(rec.original)
        self.versionsChanged.emit(rec)
