"""The session controller: the window's questions and file work around sessions — Save session, Open
session, Close recording and Quit (each asks about results neither saved nor exported) — and the part
of the window's own state a session keeps (its geometry).

It holds no state of its own: what a session stores is the workspace
(:class:`~workbench.core.document.workspace.Workspace`), written and read by
:mod:`workbench.core.document.session_file` on a worker with progress and Cancel.
"""

from __future__ import annotations

import base64
from pathlib import Path

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QFileDialog

from ..core.document.session_file import (SUFFIX as SESSION_SUFFIX, apply_workspace_state, open_session,
                                          read_session_file, save_session)
from ..core.errors import WorkbenchError
from .workers import run_with_progress

SESSION_FILTER = f"Workbench sessions (*{SESSION_SUFFIX});;All files (*)"


class SessionController:
    """Save / open sessions and close recordings for ``window`` (a :class:`~workbench.gui.main_window.MainWindow`:
    its ``document``, ``settings``, ``error_reporter``, status bar and ``ask_unsaved`` question box)."""

    def __init__(self, window):
        self.window = window
        self.document = window.document
        self.workspace = window.workspace
        self.session = window.session

    def close_current(self) -> bool:
        """File > Close recording: results of it that were neither saved nor exported are asked about
        first (Save session… / Discard / Cancel), as on Quit. Returns whether it was closed."""
        rec = self.document.recording
        if rec is None:
            return False
        if not self.may_discard([(rec, v) for v in rec.unsaved_versions()],
                                f"Save them in a session before closing {rec.name}?"):
            return False
        self.document.close(rec)
        return True

    def may_discard(self, unsaved, question: str | None = None) -> bool:
        """Whether what is about to be closed may go: nothing unsaved, or the person chose Discard, or Save
        session… and the session was saved (Close recording, Open session and Quit all ask this way)."""
        if not unsaved:
            return True
        answer = (self.window.ask_unsaved(unsaved) if question is None
                  else self.window.ask_unsaved(unsaved, question))
        return answer == "discard" or (answer == "save" and self.save_session_dialog() is not None)

    def store_window_state(self) -> None:
        """Put what only Qt knows (the window's geometry) into the workspace, so a saved session holds it. The dock layout stays a preference of the person
        (settings), not of the session."""
        self.workspace.set_window({
            "geometry": base64.b64encode(bytes(self.window.saveGeometry())).decode("ascii"),
            "size": [self.window.width(), self.window.height()]})

    def apply_window_state(self) -> None:
        window = self.workspace.window
        try:
            geometry = QByteArray(base64.b64decode(str(window.get("geometry", "")), validate=True))
        except ValueError:
            return  # a damaged value: the window keeps its place
        if not geometry.isEmpty():
            self.window.restoreGeometry(geometry)
        size = window.get("size")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and x > 0 for x in size):
            # restoreGeometry places the frame for the screen it was saved on (or refuses); the size
            # itself still applies.
            self.window.resize(*size)

    def save_session_to(self, path: str | Path) -> Path | None:
        """Save the session to ``path`` (hashing sources and writing version audio on a worker, with
        progress and Cancel); reports a failure (naming the file) and returns ``None``, also when
        cancelled (no session file is written then)."""
        self.store_window_state()
        state = self.session.collect_view_state()  # providers read widgets: on the GUI thread
        worker = run_with_progress(self.window, "Saving session", save_session, self.session, path, view_state=state)
        if worker.outcome == "cancelled":
            self.window.statusBar().showMessage(f"Save cancelled; {Path(path).name} was not written", 8000)
            return None
        if worker.outcome == "failed":
            exc = worker.error
            self.window.error_reporter("Save session", str(exc) if isinstance(exc, WorkbenchError)
                                else f"{path}: cannot be saved ({type(exc).__name__}: {exc})")
            return None
        target = worker.result
        self.window.settings.setValue("last_session_dir", str(target.parent))
        self.window.statusBar().showMessage(f"Session saved to {target}", 8000)
        return target

    def save_session_dialog(self) -> Path | None:
        """File > Save session…: ask for a file (default: the session's own, or beside the current file)."""
        if self.session.path is not None:
            start = str(self.session.path)
        else:
            rec = self.document.recording
            folder = rec.path.parent if rec is not None else Path(self.window.settings.value("last_session_dir", "", str) or ".")
            stem = rec.path.stem if rec is not None else "session"
            start = str(folder / f"{stem}{SESSION_SUFFIX}")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save session", start, SESSION_FILTER)
        return self.save_session_to(path) if path else None

    def open_session_file(self, path: str | Path) -> bool:
        """Open a saved session into this window (after closing what is open). Problems — a missing or
        changed source, a missing version file — are reported as one message, one line each. A file that
        is not a session is reported and leaves the window as it was; unsaved results are asked about
        first, as on Quit."""
        try:
            # Read and checked in full (every field, every type and range) before anything open is closed:
            # a session that cannot be opened leaves the window as it was.
            doc = read_session_file(path)
            saved_recordings = len(doc.get("recordings") or [])
        except WorkbenchError as exc:
            self.window.error_reporter("Open session", str(exc))
            return False
        if not self.may_discard(self.session.unsaved_versions()):
            return False
        for rec in list(self.document.recordings):
            self.document.close(rec)
        # Hashing sources and reading version audio run on a worker (the session's notifications reach
        # the panes as queued signals); the view state is restored below, on the GUI thread.
        worker = run_with_progress(self.window, "Opening session", open_session, path, self.session, restore_state=False,
                                   doc=doc)
        if worker.outcome == "failed":
            exc = worker.error
            self.window.error_reporter("Open session", str(exc) if isinstance(exc, WorkbenchError)
                                else f"{path}: cannot be opened ({type(exc).__name__}: {exc})")
            return False
        if worker.outcome == "cancelled":
            problems = [f"{path}: opening cancelled; {len(self.session.recordings)} of "
                        f"{saved_recordings} recording(s) restored"]
        else:
            _session, problems = worker.result
        # The recordings were opened on the worker; the window's state is put into the workspace here,
        # on the GUI thread, and every widget follows its events.
        self.document.recordingsChanged.emit()
        restored = self.workspace.restored_state or {
            "current": self.workspace.recordings[0] if self.workspace.recordings else None}
        self.workspace.restored_state = None
        apply_workspace_state(self.workspace, restored)
        self.apply_window_state()
        providers = self.session.state_providers()
        for key, (_get, restore) in providers.items():  # now that the current recording is shown
            if self.session.view_state.get(key) is not None:
                try:
                    restore(self.session.view_state[key])
                except (WorkbenchError, ValueError, TypeError, KeyError, IndexError) as exc:
                    problems = [*problems, f"{path}: view_state.{key}: not restored ({exc})"]
        self.window.session_problems = problems
        if problems:
            self.window.error_reporter("Open session", "\n".join(problems))
        self.window.statusBar().showMessage(f"Opened session {Path(path).name}"
                                     + (f" ({len(problems)} problem(s))" if problems else ""), 8000)
        return True

    def open_session_dialog(self) -> None:
        start = self.window.settings.value("last_session_dir", "", str)
        path, _ = QFileDialog.getOpenFileName(self.window, "Open session", start, SESSION_FILTER)
        if path:
            self.open_session_file(path)

