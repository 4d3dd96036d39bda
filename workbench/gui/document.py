"""The GUI's view of the open documents: recordings, the selected version and the shared view state.

:class:`DocumentModel` is the one object every panel talks to. It holds the open
:class:`~workbench.core.recording.Recording` s, which one is current, which of its versions the panes
show, and broadcasts view state (visible time range, cursor, playhead) as Qt signals. Core recordings
notify plain callables, possibly from worker threads; the model re-emits those as queued signals so
slots always run on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from ..core.recording import Recording, Version


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
    """

    recordingChanged = Signal(object)
    versionsChanged = Signal(object)
    currentVersionChanged = Signal(object)
    recordingsChanged = Signal()
    viewRangeChanged = Signal(float, float)
    cursorMoved = Signal(float)
    playheadMoved = Signal(float)
    channelChanged = Signal(int)
    # Internal: carries core notifications (any thread) to the GUI thread.
    _versionsNotified = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.recordings: list[Recording] = []
        self.recording: Recording | None = None
        self.version: Version | None = None
        self.channel: int = 0
        self.view_range: tuple[float, float] = (0.0, 0.0)
        self.cursor_s: float = 0.0
        self.playhead_s: float = 0.0
        self._versionsNotified.connect(self._on_versions_notified, Qt.ConnectionType.QueuedConnection)

    # -- recordings -------------------------------------------------------------------------------------
    def open(self, path: str | Path) -> Recording:
        """Open ``path`` as a new recording (or return the one already open) and make it current.

        Raises:
            AudioFileError (a WorkbenchError) naming the file and the problem.
        """
        path = Path(path)
        for rec in self.recordings:
            if rec.path.resolve() == path.resolve():
                self.set_current(rec)
                return rec
        rec = Recording(path)
        self.add_recording(rec)
        return rec

    def add_recording(self, rec: Recording) -> None:
        """Add an already built recording (e.g. :meth:`Recording.from_array`) and make it current."""
        rec.subscribe(self._versionsNotified.emit)
        self.recordings.append(rec)
        self.recordingsChanged.emit()
        self.set_current(rec)

    def close(self, rec: Recording) -> None:
        if rec not in self.recordings:
            return
        i = self.recordings.index(rec)
        self.recordings.remove(rec)
        close = getattr(rec.source, "close", None)
        if close is not None:
            close()
        self.recordingsChanged.emit()
        if rec is self.recording:
            nxt = self.recordings[min(i, len(self.recordings) - 1)] if self.recordings else None
            self.set_current(nxt)

    def set_current(self, rec: Recording | None, version: Version | None = None) -> None:
        """Make ``rec`` current and show ``version`` (default: its original)."""
        if rec is not self.recording:
            self.recording = rec
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
