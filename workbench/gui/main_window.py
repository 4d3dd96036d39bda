"""The main window: the layout of the panes, the docks (Recordings, Models, Edit, Metrics, Phase lab, Live,
Train), the tool bars and the status bar, and the settings a person keeps between runs.

The window wires nothing but layout. Everything meets in the workspace (through the
:class:`~workbench.gui.document.DocumentModel`): each panel reads and writes it and redraws from its
events, so panels never call each other. The rest lives beside the window:

* :mod:`workbench.gui.window_actions` — the File, Edit and View menus and their shortcuts;
* :mod:`workbench.gui.display_controls` — the Display and STFT tool bars and the visible range, bound to
  the workspace's display and STFT settings;
* :mod:`workbench.gui.session_controller` — Save / Open session, Close recording and Quit, and the
  question each asks about results neither saved nor exported.

The status bar lists the workspace's running jobs (model runs, measurements, phase lab, edits, loads) with
the recording each belongs to; closing a recording cancels its jobs.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QComboBox, QDialog, QDialogButtonBox, QDockWidget,
                               QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QHeaderView, QLabel, QLineEdit,
                               QMainWindow, QMessageBox, QPlainTextEdit, QScrollArea, QStyle, QTextEdit, QToolBar,
                               QTreeWidget, QTreeWidgetItem, QWidget)

from ..core.audio.formats import dialog_filter
from ..core.enhance.registry import model_suffixes
from ..core.errors import WorkbenchError
from ..core.enhance.level import level_note
from ..core.measure import native_calls
from ..core.measure.vad import VadSettings, detect_speech
from ..core.document.recording import Recording, Version
from ..core.views.stft import StftConfig
from .document import DocumentModel
from ..core.workflows.export import default_export_folder, is_writable_folder
from .edit_panel import EditPanel
from .error_list import ProblemList
from .export_dialog import BatchDialog, ExportDialog
from .session_controller import SessionController
from .window_actions import build_menus
from .metrics_panel import MetricsPanel
from .model_panel import ModelPanel
from .phase_lab_panel import PhaseLabPanel
from .display_controls import DisplayControls
from .spectrogram import DisplaySettings, SpectrogramView
from .transport import TransportBar
from .version_labels import is_lab, lab_grouped, version_entries
from .window_fit import PREFERRED_SIZE, fit_window
from .workers import GeneratorWorker, run_with_progress, stop_all_workers

AUDIO_FILTER = dialog_filter()
MAX_RECENT = 10
#: Settings key of the folder the last export (audio, figure or comparison) was written to.
LAST_EXPORT_FOLDER = "export/last_folder"
#: Files and folders dropped on the window with these suffixes are loaded as models, not opened as audio.
#: Version of the saved dock/tool bar layout; bump it when docks or tool bars are added or renamed.
WINDOW_STATE_VERSION = 3
#: Milliseconds after the first window is built when the start-up objects leave the cyclic GC's view.
GC_FREEZE_AFTER_MS = 2000
_gc_frozen = False


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, the window's widgets: ~130 000 objects) to the
    interpreter's permanent generation (``gc.freeze``), once per process.

    Why: a full (generation 2) collection traverses all of them and took ~80 ms of held GIL in the open
    window, long enough to stall the event loop whenever it happened (a model run or a result arriving
    allocates enough to trigger one). Afterwards it only traverses what was created since: ~0 ms.
    Start-up objects mostly live until the program exits; the few that die later inside reference
    cycles (e.g. a recording opened in the first seconds and closed later) are only reclaimed at exit.
    """
    global _gc_frozen
    if not _gc_frozen:
        _gc_frozen = True
        gc.freeze()

ErrorReporter = Callable[[str, str], None]
#: Controls that take typed keys (digits, space, letters) for themselves.
TEXT_INPUTS = (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit)


class MainWindow(QMainWindow):
    """The workbench window.

    Integration API:
        ``document``: the :class:`DocumentModel` (current recording/version, view-state signals).
        ``view``: the :class:`SpectrogramView` (panes; ``painted`` signal, ``readout``).
        ``add_panel(title, widget, area)``: put a panel in a dock (right by default) or, with
        ``area="bottom-toolbar"``, in the bottom tool bar; it is listed in the View menu.
        ``open_files(paths)``: open recordings; errors go to ``error_reporter(title, message)``.
        ``show_version(version)``: show a version of the current recording in the panes.
        ``model_panel``, ``metrics_panel``, ``transport``: the docked panels and the transport bar.
        ``open_export_dialog()``, ``open_batch_dialog(files)``: File menu actions (return the dialog).

    Args:
        playback_engine: the transport's :class:`~workbench.core.audio.playback.PlaybackEngine` (default: one on
            the system's default output device; tests pass a headless one).
    """

    filesOpened = Signal(list)

    def __init__(self, settings: QSettings | None = None, error_reporter: ErrorReporter | None = None, *,
                 playback_engine=None):
        super().__init__()
        self.setWindowTitle("Speech Enhancement Workbench")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings()
        self.error_reporter: ErrorReporter = error_reporter or self._show_error_box
        #: the open problem list (at most one; see _show_error_box)
        self.error_boxes: list[ProblemList] = []
        self.document = DocumentModel(self)
        self.view = SpectrogramView(self)
        self.setCentralWidget(self.view)
        self._docks: dict[str, QDockWidget] = {}
        self._updating_controls = False
        self._shown_recording: Recording | None = None
        self._tree_dirty = False   # versions changed; the Recordings tree is rebuilt on the next loop pass
        self._closed = False
        self.export_dialog: ExportDialog | None = None
        self.batch_dialog: BatchDialog | None = None
        #: the Qt-free workspace (recordings, versions, references, catalogue, jobs, and what the window
        #: shows and sets) the document bridges; ``session`` is the same object
        self.workspace = self.document.workspace
        self.session = self.workspace
        #: problems reported by the last Open session (one line each)
        self.session_problems: list[str] = []
        #: speech activity: settings, results by (recording id, settings), runs in progress
        self.vad_settings = self._stored_vad_settings()
        self._vad_results: dict = {}
        self._vad_running: set = set()

        # Native calls that hold the interpreter lock for tenths of seconds (PESQ) run in a helper process
        # while a window is open: on a worker thread here they would stop the event loop as long.
        native_calls.run_in_helper_process(True)
        #: Save session, Open session, Close recording and the questions they ask
        self.sessions = SessionController(self)
        self._build_file_dock()
        self._build_toolbars()
        self._build_menus()
        self._build_status_bar()
        self._wire()
        self._build_panels(playback_engine)
        self._restore_settings()
        app = QApplication.instance()
        if app is not None:
            app.focusChanged.connect(self._on_focus_changed)

    # ------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------
    def _build_file_dock(self) -> None:
        self.file_tree = QTreeWidget()
        self.file_tree.setHeaderLabels(["Recording / version", "Kind"])
        # Names take the room they need (the dock scrolls sideways); a narrow dock elides in the middle,
        # where names of one family differ least ("gtcrn-dns3-…" read the same for every GTCRN run).
        header = self.file_tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.file_tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.file_tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.file_tree.setMinimumWidth(200)
        self.file_tree.itemClicked.connect(self._on_tree_clicked)
        dock = QDockWidget("Recordings", self)
        dock.setObjectName("dock_recordings")
        dock.setWidget(self.file_tree)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self._docks["Recordings"] = dock

    def _build_panels(self, playback_engine) -> None:
        doc = self.document
        # The model list is filled after start-up (or when first needed), off the GUI thread.
        self.model_panel = ModelPanel(lambda: None, show_dialogs=False, list_now=False)
        # Started as soon as the event loop runs (the first paint is queued before it): the table says
        # "Loading models…" meanwhile.
        self._list_models_timer = QTimer(self, singleShot=True, interval=0)
        # Listed on a worker thread: reading the models' metadata takes ~0.5 s of CPU.
        self._list_models_timer.timeout.connect(self.model_panel.list_in_background)
        self._list_models_timer.start()
        QTimer.singleShot(GC_FREEZE_AFTER_MS, freeze_startup_objects)  # after the listing and first paint
        self.model_panel.attach_document(doc)
        self.model_panel.errorOccurred.connect(lambda msg: self.error_reporter("Model", msg))
        self.model_panel.runStarted.connect(lambda mid: self.statusBar().showMessage(f"Running {mid}…"))
        self.model_panel.runFinished.connect(self._on_model_job_finished)
        # Its own pool (one thread), so closing the window waits for the metrics and nothing else.
        self.metrics_pool = QThreadPool(self)
        self.metrics_pool.setMaxThreadCount(1)
        # It measures on its own only while its tab is visible (auto_compute follows the dock's visibility);
        # long DNSMOS waits for its Measure button, and measuring pauses while any model job runs.
        self.metrics_panel = MetricsPanel(doc, auto_compute=False, pool=self.metrics_pool, session=self.session,
                                          vad_settings=self.vad_settings)
        self.metrics_panel.failed.connect(lambda msg: self.statusBar().showMessage(f"Metrics: {msg}", 8000))
        # Panels never call each other: model loads and probes are jobs of the workspace, which the Metrics
        # panel waits for; the phase lab reads the reference and the STFT settings from the workspace and
        # writes the view it asks for there.
        self.phase_lab_panel = PhaseLabPanel()
        self.phase_lab_panel.attach(doc)
        self.phase_lab_panel.failed.connect(lambda msg: self.statusBar().showMessage(f"Phase lab: {msg}", 8000))
        self.transport = TransportBar(engine=playback_engine)
        self.transport.attach_document(doc)
        self.transport.errorOccurred.connect(lambda msg: self.statusBar().showMessage(msg, 8000))
        # The loop region, the selection and the repair box are the workspace's: the panes write them,
        # the transport, the Edit panel and the panes themselves draw what the workspace holds.
        doc.loopChanged.connect(self._on_loop_changed)
        self.view.seekRequested.connect(doc.request_seek)
        self.view.loopSelected.connect(self._on_span_selected)
        self.edit_panel = EditPanel(self.settings)
        self.edit_panel.attach(doc)
        self.edit_panel.errorOccurred.connect(lambda msg: self.statusBar().showMessage(msg, 8000))
        self.view.boxSelected.connect(lambda t0, t1, f0, f1: doc.set_repair_box((t0, t1, f0, f1)))
        doc.strengthChanged.connect(self._on_strength_changed)
        self.model_dock = self.add_panel("Models", self.model_panel)
        # Scrolled: its four groups are taller than a 768-pixel screen leaves for a dock.
        edit_scroll = QScrollArea()
        edit_scroll.setWidgetResizable(True)
        edit_scroll.setFrameShape(QFrame.Shape.NoFrame)
        edit_scroll.setWidget(self.edit_panel)
        self.edit_dock = self.add_panel("Edit", edit_scroll)
        self.metrics_dock = self.add_panel("Metrics", self.metrics_panel)
        self.phase_lab_dock = self.add_panel("Phase lab", self.phase_lab_panel)
        # The Live and Train panels (and the modules behind them: audio devices, the live engine, the
        # trainer) are built the first time their tab shows or something asks for them, not before the
        # first spectrogram is painted: most sessions never open them.
        self._deferred: dict[str, QWidget] = {}
        self._deferred_builders: dict[str, Callable[[], QWidget]] = {}
        # Scrolled, as the Edit panel: the Live panel's controls, figures and two spectrograms are taller
        # than a 768-pixel screen leaves for a dock, and must not widen the dock for the other panels.
        self.live_dock = self.add_deferred_panel("Live", self._build_live_panel, scrolled=True)
        # Trained models join the session's catalogue, so the Models panel lists them at once.
        self.train_dock = self.add_deferred_panel("Train", self._build_train_panel)
        self.model_dock.raise_()
        self.metrics_dock.visibilityChanged.connect(self._on_metrics_visibility)
        self._metrics_visible = False
        # The metrics table grows a column per version and scrolls sideways: the dock keeps its width, so
        # the panes keep theirs however many versions are measured.
        self.transport_bar = self.add_panel("Transport", self.transport, "bottom-toolbar")
        self.bottom_toolbar.setMovable(False)
        self.resizeDocks([self._docks["Recordings"], self.model_dock], [210, 430], Qt.Orientation.Horizontal)

    def add_deferred_panel(self, title: str, build: Callable[[], QWidget], *, scrolled: bool = False,
                           area: str = "right") -> QDockWidget:
        """Add a panel whose widget ``build()`` makes the first time the dock becomes visible or
        :meth:`deferred_panel` asks for it; until then the dock holds an empty widget (the scroll area the
        panel will sit in when ``scrolled``), so the layout and View > Panels are as with :meth:`add_panel`."""
        if scrolled:
            holder = QScrollArea()
            holder.setWidgetResizable(True)
            holder.setFrameShape(QFrame.Shape.NoFrame)
        else:
            holder = QWidget()
        dock = self.add_panel(title, holder, area)

        def realise(visible: bool) -> None:
            if visible:
                self.deferred_panel(title)

        self._deferred_builders[title] = build
        dock.visibilityChanged.connect(realise)
        return dock

    def deferred_panel(self, title: str) -> QWidget:
        """The panel of the deferred dock ``title``, built now if it was not yet."""
        panel = self._deferred.get(title)
        if panel is None:
            dock = self._docks[title]
            holder = dock.widget()
            panel = self._deferred_builders[title]()
            self._deferred[title] = panel
            if isinstance(holder, QScrollArea):
                holder.setWidget(panel)
            else:
                dock.setWidget(panel)
                holder.deleteLater()
        return panel

    @property
    def live_panel(self):
        """The Live panel (built on first use)."""
        return self.deferred_panel("Live")

    @property
    def train_panel(self):
        """The Train panel (built on first use)."""
        return self.deferred_panel("Train")

    def _build_live_panel(self) -> QWidget:
        from .live_panel import LivePanel

        panel = LivePanel(self.document, settings=self.settings)
        panel.failed.connect(lambda msg: self.statusBar().showMessage(f"Live: {msg}", 8000))
        return panel

    def _build_train_panel(self) -> QWidget:
        from .train_panel import TrainPanel

        panel = TrainPanel(catalogue=self.session.catalogue)
        panel.failed.connect(lambda msg: self.statusBar().showMessage(f"Train: {msg}", 8000))
        panel.recording_noise_source = self.recording_noise_for_training
        return panel

    def _combo(self, items, tip: str) -> QComboBox:
        box = QComboBox()
        for text, data in items:
            box.addItem(text, data)
        box.setToolTip(tip)
        return box

    def _build_toolbars(self) -> None:
        tb = QToolBar("Display", self)
        tb.setObjectName("toolbar_display")
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        self.version_box = self._combo([], "Version of the recording shown in the panes")
        self.version_box.setMinimumWidth(150)
        self.version_box.currentIndexChanged.connect(self._on_version_box)
        tb.addWidget(QLabel(" Version "))
        tb.addWidget(self.version_box)
        tb.addSeparator()
        self.display_controls = DisplayControls(self, tb)
        for name in DisplayControls.WIDGETS:   # the controls, under their names
            setattr(self, name, getattr(self.display_controls, name))
        self.bottom_toolbar = QToolBar("Panels", self)
        self.bottom_toolbar.setObjectName("toolbar_bottom")
        self.addToolBar(Qt.ToolBarArea.BottomToolBarArea, self.bottom_toolbar)
        self.bottom_toolbar.hide()  # shown when a panel is added

    def _build_menus(self) -> None:
        build_menus(self)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Drop audio files here or use File > Open (Ctrl+O)")
        sb.addWidget(self.status_label, 1)
        self.channel_box = QComboBox()
        self.channel_box.setToolTip("Channel shown in the panes")
        self.channel_box.currentIndexChanged.connect(self._on_channel_box)
        # The workspace's running jobs (model runs, measurements, phase lab, edits, loads), with their owners.
        self.jobs_label = QLabel("")
        self.jobs_label.setObjectName("jobsLabel")
        sb.addPermanentWidget(self.jobs_label)
        self.document.jobChanged.connect(self._show_jobs)
        sb.addPermanentWidget(QLabel("Channel"))
        sb.addPermanentWidget(self.channel_box)

    def _show_jobs(self, _job=None) -> None:
        """What runs in the background, read from the workspace: the first job and its progress, every job
        (with the recording it belongs to) in the tool tip."""
        running = [j for j in list(self.workspace.jobs) if not j.state.finished]
        if not running:
            self.jobs_label.setText("")
            self.jobs_label.setToolTip("")
            return
        first = running[0]
        more = f" (+{len(running) - 1})" if len(running) > 1 else ""
        self.jobs_label.setText(f"{first.label}: {100 * first.progress.fraction:.0f} %{more}")
        self.jobs_label.setToolTip("\n".join(
            f"{j.label} — {j.state.value}, {100 * j.progress.fraction:.0f} %"
            + (f" (closing {j.owner.name} cancels it)" if j.owner is not None else "") for j in running))

    def _wire(self) -> None:
        doc = self.document
        doc.recordingChanged.connect(self._on_recording_changed)
        doc.currentVersionChanged.connect(self._on_version_changed)
        doc.versionsChanged.connect(self._on_versions_changed)
        doc.recordingsChanged.connect(self._rebuild_tree)
        doc.channelChanged.connect(self.view.set_channel)
        doc.channelChanged.connect(lambda _ch: self._update_difference_partner())
        doc.playheadMoved.connect(self.view.set_playhead)
        self.display_controls.wire()
        self.view.viewRangeChanged.connect(doc.set_view_range)
        self.view.cursorMoved.connect(doc.set_cursor)
        self.view.tileError.connect(lambda msg: self.error_reporter("Cannot draw the spectrogram", msg))

    # ------------------------------------------------------------------------------------------------------
    # integration API
    # ------------------------------------------------------------------------------------------------------
    def add_panel(self, title: str, widget: QWidget, area: str = "right") -> QDockWidget | QToolBar:
        """Add another engineer's panel.

        Args:
            area: ``right`` / ``left`` / ``bottom`` (a dock widget) or ``bottom-toolbar`` (the widget goes
                into the bottom tool bar, e.g. the transport bar).

        Returns:
            the QDockWidget (or the bottom QToolBar). The panel is listed in View > Panels.
        """
        if area == "bottom-toolbar":
            self.bottom_toolbar.addWidget(widget)
            self.bottom_toolbar.setWindowTitle(title)
            self.bottom_toolbar.show()
            return self.bottom_toolbar
        areas = {"right": Qt.DockWidgetArea.RightDockWidgetArea, "left": Qt.DockWidgetArea.LeftDockWidgetArea,
                 "bottom": Qt.DockWidgetArea.BottomDockWidgetArea}
        if area not in areas:
            raise ValueError(f"unknown panel area {area!r}; use right, left, bottom or bottom-toolbar")
        dock = QDockWidget(title, self)
        dock.setObjectName("dock_" + "".join(ch if ch.isalnum() else "_" for ch in title.lower()))
        dock.setWidget(widget)
        self.addDockWidget(areas[area], dock)
        if area == "right":
            right = [d for d in self._docks.values()
                     if self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea and d is not dock]
            if right:
                self.tabifyDockWidget(right[-1], dock)
                dock.raise_()
        self._docks[title] = dock
        self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    def open_files(self, paths) -> list[Recording]:
        """Open each path as a recording; the others still open when one is bad, and every bad file is
        reported in one message (one line per file, naming it)."""
        opened = []
        problems = []
        for p in paths:
            try:
                rec = self.document.open(p)
            except WorkbenchError as exc:
                problems.append(str(exc))
                continue
            except Exception as exc:  # anything else still must not take the window down
                problems.append(f"{p}: {exc}")
                continue
            opened.append(rec)
            self._add_recent(str(Path(p).resolve()))
        if problems:
            title = "Cannot open recording" if len(problems) == 1 else f"Cannot open {len(problems)} recordings"
            self.error_reporter(title, "\n".join(problems))
        if opened:
            self.filesOpened.emit(opened)
        return opened

    def show_version(self, version: Version) -> None:
        """Show ``version`` (of the current recording) in the panes."""
        self.document.set_version(version)

    def load_model_dialog(self) -> None:
        """File > Load model…: pick a model file; it loads on the model panel's worker thread."""
        self.model_dock.show()
        self.model_dock.raise_()
        self.model_panel._ask_file()

    def undo(self) -> str | None:
        """Undo the current recording's last step (Ctrl+Z); says what in the status bar."""
        label = self.document.undo()
        self.statusBar().showMessage(f"Undone: {label}" if label else "Nothing to undo", 4000)
        return label

    def redo(self) -> str | None:
        label = self.document.redo()
        self.statusBar().showMessage(f"Redone: {label}" if label else "Nothing to redo", 4000)
        return label

    def delete_shown_version(self) -> None:
        rec, v = self.document.recording, self.document.version
        if rec is None or v is None or v.kind == "original":
            self.statusBar().showMessage("The original cannot be deleted", 4000)
            return
        rec.remove(v)
        self.statusBar().showMessage(f"Deleted {v.name} (Ctrl+Z brings it back)", 4000)

    def _on_focus_changed(self, old: QWidget | None, new: QWidget | None) -> None:
        """A control that had the keyboard focus was disabled (Repair, Make versions, Enhance while they
        run): Qt hands the focus to the next control in the tab chain, often a text field (the chain name),
        which would then swallow the version keys 1..9, Space and L. Give it to the panes instead."""
        if old is None or new is None or old.isEnabled() or not isinstance(new, TEXT_INPUTS):
            return
        if not (self.isAncestorOf(old) and self.isAncestorOf(new)):
            return
        self.view.graphics.setFocus(Qt.FocusReason.OtherFocusReason)

    def _on_strength_changed(self, rec: Recording, version: Version) -> None:
        """A strength was committed (or undone): the panes show the new mix (Measure scores it anew)."""
        if rec is self.document.recording and version is self.document.version:
            channel = min(self.document.channel, version.source.channels - 1)
            self.view.set_source(version.source, f"{rec.name} [{version.name}]", channel, keep_view=True)

    def metrics_by_version(self) -> dict[str, dict[str, float]]:
        """The metrics panel's results as ``{version name: {metric: value}}`` (values that exist)."""
        return {name: {k: m.value for k, m in sc.metrics.items() if m.value is not None}
                for name, sc in self.metrics_panel.results().items()}

    def open_export_dialog(self, folder: str | Path | None = None) -> ExportDialog | None:
        """File > Export: versions (audio), the figure of what the panes show (views, levels, colours,
        region; or the whole file), and the comparison with the metrics measured so far. Non-modal;
        returns the dialog."""
        rec = self.document.recording
        if rec is None:
            self.error_reporter("Export", "Open a recording first")
            return None
        if self.export_dialog is not None:
            self.export_dialog.close()
        if folder is None:
            folder = self.last_export_folder()
        dlg = ExportDialog(rec, self, stft_config=self.view.cfg, metrics=self.metrics_by_version(),
                           current_version=self.document.version, channel=self.view.channel, folder=folder,
                           reference=self.session.reference(rec),
                           figure_settings=self.view.figure_settings, partner=self.view.difference_partner())
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.errorOccurred.connect(lambda msg: self.statusBar().showMessage(f"Export: {msg}", 8000))
        dlg.exported.connect(lambda paths: self.statusBar().showMessage(f"Exported {len(paths)} file(s)", 8000))
        dlg.exported.connect(lambda _paths, dlg=dlg: self.settings.setValue(LAST_EXPORT_FOLDER,
                                                                            dlg.folder_edit.text()))
        dlg.destroyed.connect(lambda *_: setattr(self, "export_dialog", None))
        self.export_dialog = dlg
        dlg.open()
        return dlg

    def last_export_folder(self) -> Path | None:
        """The folder the last export went to, while it still exists and can be written (else ``None``:
        the dialog starts beside the recording)."""
        value = self.settings.value(LAST_EXPORT_FOLDER, "", str)
        if value and Path(value).is_dir() and is_writable_folder(Path(value)):
            return Path(value)
        return None

    def open_batch_dialog(self, files=(), folder: str | Path | None = None) -> BatchDialog:
        """File > Batch enhance (or Ctrl + drop): many files, one model, exported to a folder.

        Without ``files`` the dialog starts with the open recordings (those read from a file). The models
        offered are the session's catalogue: built-ins, plugins and every model file loaded in the Models
        panel. The folder defaults to ``enhanced/`` beside the first file, or under
        :data:`~workbench.core.workflows.export.FALLBACK_EXPORT_FOLDER` when that folder is read-only."""
        files = [Path(f) for f in files]
        if not files and self.batch_dialog is None:
            files = [rec.path for rec in self.document.recordings if rec.path.is_file()]
        if folder is None:
            base = (default_export_folder(files[0]) if files
                    else Path(self.settings.value("last_dir", str(Path.cwd()), str)))
            if not is_writable_folder(base):
                base = default_export_folder(None)
            folder = base / "enhanced"
        if self.batch_dialog is not None:
            self.batch_dialog.add_files(files)
            self.batch_dialog.raise_()
            return self.batch_dialog
        catalogue = self.session.catalogue
        try:
            self.model_panel.ensure_listed()
            choices = [(e.spec, e.info) for e in catalogue.entries()]
        except Exception as exc:  # a broken plugin must not keep the dialog from opening
            choices = []
            self.statusBar().showMessage(f"Batch: could not list models: {exc}", 8000)
        dlg = BatchDialog(self, files, folder=folder, enhancers=choices, load_enhancer=catalogue.load)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.destroyed.connect(lambda *_: setattr(self, "batch_dialog", None))
        self.batch_dialog = dlg
        dlg.show()
        return dlg

    def dialog_folder(self) -> str:
        """Where file dialogs start: the current recording's folder, else the last folder opened from."""
        rec = self.document.recording
        if rec is not None and rec.path.parent.is_dir():
            return str(rec.path.resolve().parent)
        return self.settings.value("last_dir", "", str)

    def open_dialog(self) -> None:
        start = self.dialog_folder()
        paths, _ = QFileDialog.getOpenFileNames(self, "Open recordings", start, AUDIO_FILTER)
        if paths:
            self.settings.setValue("last_dir", str(Path(paths[0]).parent))
            self.open_files(paths)

    def close_current(self) -> bool:
        """File > Close recording (see :meth:`SessionController.close_current`)."""
        return self.sessions.close_current()

    # ------------------------------------------------------------------------------------------------------
    # document -> widgets
    # ------------------------------------------------------------------------------------------------------
    def _on_recording_changed(self, rec: Recording | None) -> None:
        self._rebuild_tree()
        self._updating_controls = True
        self.channel_box.clear()
        if rec is not None:
            for ch in range(rec.source.channels):
                self.channel_box.addItem(f"{ch + 1}" if rec.source.channels > 1 else "mono", ch)
            self.channel_box.setCurrentIndex(self.document.channel)
        self.channel_box.setEnabled(rec is not None and rec.source.channels > 1)
        self._updating_controls = False
        self._fill_version_box()
        self._update_status()
        self._refresh_speech_lane()

    # ------------------------------------------------------------------------------------------------------
    # speech activity
    # ------------------------------------------------------------------------------------------------------
    def _refresh_speech_lane(self) -> None:
        """Show the current recording's speech activity when the lane is on (computed once per recording
        and settings, on a worker), and hand it to the Edit panel."""
        rec = self.document.recording
        open_ids = {id(r) for r in self.document.recordings}
        for key in [k for k in self._vad_results if k[0] not in open_ids]:
            del self._vad_results[key]  # closed recordings (their ids may be reused)
        if not self.speech_action.isChecked() or rec is None:
            self.view.set_speech_activity(None)
            self.edit_panel.set_speech_activity(None)
            return
        key = (id(rec), self.vad_settings)
        result = self._vad_results.get(key)
        self.view.set_speech_activity(result)
        self.edit_panel.set_speech_activity(result)
        if result is not None or key in self._vad_running:
            return
        self._vad_running.add(key)
        settings, source = self.vad_settings, rec.source
        worker = GeneratorWorker(lambda: detect_speech(source.read_all(), source.sample_rate, settings))
        worker.returned.connect(lambda res, key=key: self._on_speech_activity(key, res))
        worker.errored.connect(lambda exc, key=key: self._on_speech_activity(key, None, exc))
        worker.cancelled.connect(lambda key=key: self._vad_running.discard(key))
        worker.start()

    def _on_speech_activity(self, key, result, error=None) -> None:
        self._vad_running.discard(key)
        if error is not None:
            self.error_reporter("Speech activity", str(error))
            return
        rec = self.document.recording
        if key[0] not in {id(r) for r in self.document.recordings}:
            return  # closed while it ran
        self._vad_results[key] = result
        if rec is not None and key == (id(rec), self.vad_settings):
            self._refresh_speech_lane()

    def recording_noise_for_training(self):
        """The current recording's noise-only spans for the Train panel: the span or pauses the Edit panel
        learned the noise from, else the time selection, else the speech activity lane's pauses, else its
        pauses found by the trainer.

        Raises:
            WorkbenchError: no recording open, or one that is not a file on disk."""
        from .train_panel import RecordingNoise

        rec = self.document.recording
        if rec is None:
            raise WorkbenchError("open a recording first: its noise-only spans become the training noise")
        if not rec.path.is_file():
            raise WorkbenchError(f"{rec.name}: not a file on disk; export it first, then train on its noise")
        path = str(rec.path.resolve())
        # What the Edit panel learned is the workspace's (its run parameters), not the panel's to hand over.
        edit = self.workspace.edit_params
        if edit.get("noise_pauses_s"):
            return RecordingNoise(path, [[float(a), float(b)] for a, b in edit["noise_pauses_s"]],
                                  "the pauses the noise was learned from")
        if edit.get("noise_span_s") is not None:
            a, b = edit["noise_span_s"]
            return RecordingNoise(path, [[float(a), float(b)]], "the span the noise was learned from")
        selection = self.document.workspace.selection
        if selection is not None:
            return RecordingNoise(path, [[float(selection[0]), float(selection[1])]], "the time selection")
        vad = self._vad_results.get((id(rec), self.vad_settings))
        if vad is not None and vad.pauses:
            return RecordingNoise(path, [[a, b] for a, b in vad.pauses], "the speech activity lane's pauses")
        return RecordingNoise(path, None, "its pauses")

    def speech_settings_dialog(self) -> None:
        """Threshold and minimum pause of the speech activity (defaults: the silero-vad package's)."""
        dlg = QDialog(self)
        dlg.setWindowTitle("Speech activity settings")
        form = QFormLayout(dlg)
        threshold = QDoubleSpinBox(dlg)
        threshold.setRange(0.05, 0.95)
        threshold.setSingleStep(0.05)
        threshold.setValue(self.vad_settings.threshold)
        pause = QDoubleSpinBox(dlg)
        pause.setRange(0.0, 5000.0)
        pause.setDecimals(0)
        pause.setSuffix(" ms")
        pause.setValue(self.vad_settings.min_pause_ms)
        form.addRow("Speech threshold", threshold)
        form.addRow("Minimum pause", pause)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults, dlg)
        buttons.accepted.connect(dlg.accept)
        buttons.rejected.connect(dlg.reject)
        defaults = VadSettings()
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            lambda: (threshold.setValue(defaults.threshold), pause.setValue(defaults.min_pause_ms)))
        form.addRow(buttons)
        dlg.finished.connect(lambda code: self._apply_speech_settings(threshold.value(), pause.value())
                             if code == QDialog.DialogCode.Accepted else None)
        dlg.open()
        self._speech_dialog = dlg

    def _apply_speech_settings(self, threshold: float, min_pause_ms: float) -> None:
        self.vad_settings = replace(self.vad_settings, threshold=round(threshold, 4), min_pause_ms=min_pause_ms)
        self.settings.setValue("speech/threshold", self.vad_settings.threshold)
        self.settings.setValue("speech/min_pause_ms", self.vad_settings.min_pause_ms)
        self._refresh_speech_lane()
        self.metrics_panel.set_vad_settings(self.vad_settings)

    def _stored_vad_settings(self) -> VadSettings:
        """The speech activity settings a person chose before (the package's defaults otherwise)."""
        d = VadSettings()
        try:
            made = replace(d, threshold=float(self.settings.value("speech/threshold", d.threshold)),
                           min_pause_ms=float(self.settings.value("speech/min_pause_ms", d.min_pause_ms)))
            made.check()
            return made
        except (TypeError, ValueError):
            return d

    def _on_version_changed(self, version: Version | None) -> None:
        rec = self.document.recording
        if rec is not self._shown_recording:
            self.readout_label.setText("")   # values of another recording (or none)
        if version is None or rec is None:
            self.view.set_source(None)
            self._shown_recording = None
            self._update_difference_partner()
        else:
            channel = min(self.document.channel, version.source.channels - 1)
            # Switching versions of one recording keeps the zoom (A/B inspection); a new recording fits.
            same = rec is self._shown_recording
            self._update_difference_partner()
            self.view.set_source(version.source, f"{rec.name} [{version.name}]", channel, keep_view=same)
            self._shown_recording = rec
        self._fill_version_box()
        self._rebuild_tree()
        self._update_status()

    def _on_versions_changed(self, rec: Recording) -> None:
        if rec is self.document.recording:
            self._fill_version_box()
            self._update_difference_partner()
        # A burst of new versions (the phase lab adds 17 at once) rebuilds the tree once.
        if not self._tree_dirty:
            self._tree_dirty = True
            QTimer.singleShot(0, self._rebuild_tree_if_dirty)

    def _rebuild_tree_if_dirty(self) -> None:
        if self._tree_dirty and not self._closed:
            self._rebuild_tree()

    def _update_difference_partner(self) -> None:
        """The difference views compare the shown version with the original; while the original itself is
        shown they compare the most recent enhanced version with it."""
        rec, v = self.document.recording, self.document.version
        if rec is None or v is None:
            self.view.set_difference_partner(None)
            return
        channel = self.document.channel
        if v.kind == "original":
            enhanced = [x for x in rec.versions if x.kind.is_result]
            if not enhanced:
                self.view.set_difference_partner(None)
                return
            e = enhanced[-1]
            self.view.set_difference_partner(e.source, min(channel, e.source.channels - 1), False,
                                             f"{e.name} − original")
            return
        shown = min(channel, v.source.channels - 1)
        # A model run on some channels only: version channel i is original channel channels[i].
        channels = v.settings.get("channels")
        orig_ch = int(channels[shown]) if channels and shown < len(channels) else shown
        self.view.set_difference_partner(rec.source, min(orig_ch, rec.source.channels - 1), True,
                                         f"{v.name} − original")

    def _on_loop_changed(self, region) -> None:
        self.view.set_loop_region(*(region if region is not None else (None, None)))

    def _on_span_selected(self, start_s: float, stop_s: float) -> None:
        """Shift + drag on a pane: the time selection, looped (the transport and Edit panel follow)."""
        self.document.set_selection((start_s, stop_s))
        self.document.set_loop((start_s, stop_s))

    @property
    def _loop_region(self) -> tuple[float, float] | None:
        return self.workspace.loop

    def _on_metrics_visibility(self, visible: bool) -> None:
        """While the Metrics tab is visible the panel measures what is cheap on its own (see
        :meth:`MetricsPanel.compute` with ``auto=True``); DNSMOS of long recordings waits for its button."""
        self._metrics_visible = visible
        self.metrics_panel.auto_compute = visible and not self._closed
        if self.metrics_panel.auto_compute:
            self.metrics_panel.compute(auto=True)

    def _on_model_job_finished(self, outcome: str) -> None:
        """Status bar line for the end of a Models-panel job, saying which kind of job it was (a failed
        load is not a "run") and, when it failed, why."""
        kind = self.model_panel.job_kind
        what = {"load": "Model load", "probe": "Model probe"}.get(kind, "Model run")
        reason = self.model_panel.last_error if outcome == "failed" else ""
        self.statusBar().showMessage(f"{what} {outcome}" + (f": {reason}" if reason else ""),
                                     15000 if reason else 5000)

    def version_choices(self) -> list[tuple[str, Version | None, Version | None]]:
        """Entries of the version selector: ``(label, version, residual_of)``.

        Every version in order; after each enhanced version its residual (original − enhanced), either
        the existing residual version or an entry with ``version=None`` that creates it when chosen.
        The Recordings tree and the transport's buttons list the same entries in the same order.
        """
        return [tuple(e) for e in version_entries(self.document.recording)]

    def _level_icon(self):
        return self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)

    def _fill_version_box(self) -> None:
        self._updating_controls = True
        self.version_box.clear()
        current = self.document.version
        for i, (label, version, residual_of) in enumerate(self.version_choices()):
            self.version_box.addItem(label, (version, residual_of))
            if residual_of is not None:
                self.version_box.setItemData(i, "original − enhanced; computed when chosen",
                                             Qt.ItemDataRole.ToolTipRole)
            note = level_note(version.provenance.extra.get("level")) if version is not None else None
            if note:
                # A model whose raw output level is implausible (or was scaled): marked where it is chosen.
                self.version_box.setItemData(i, self._level_icon(), Qt.ItemDataRole.DecorationRole)
                self.version_box.setItemData(i, f"{label}: {note}", Qt.ItemDataRole.ToolTipRole)
            if version is not None and version is current:
                self.version_box.setCurrentIndex(i)
        self.version_box.setEnabled(self.version_box.count() > 1)
        self._updating_controls = False

    def _rebuild_tree(self) -> None:
        """One node per recording; under it the entries of the Version box (residuals after their version,
        those not made yet in grey: clicking makes them); many phase-lab versions share one node."""
        self._tree_dirty = False
        self.file_tree.clear()
        current_item = None
        for rec in self.document.recordings:
            top = QTreeWidgetItem([rec.name, f"{rec.source.sample_rate / 1000:g} kHz"])
            top.setToolTip(0, str(rec.path))
            top.setData(0, Qt.ItemDataRole.UserRole, (rec, None, None))
            self.file_tree.addTopLevelItem(top)
            entries = version_entries(rec)
            grouped = lab_grouped([e.version for e in entries])
            lab_node = None
            for label, v, residual_of in entries:
                parent = top
                if grouped and is_lab(v):
                    if lab_node is None:
                        count = sum(1 for e in entries if is_lab(e.version))
                        lab_node = QTreeWidgetItem([f"phase lab ({count})", "group"])
                        lab_node.setToolTip(0, "Versions made by the phase lab: oracle masks, swaps, Griffin–Lim")
                        lab_node.setData(0, Qt.ItemDataRole.UserRole, (rec, None, None))
                        top.addChild(lab_node)
                    parent = lab_node
                kind = v.kind if v is not None else "residual"
                child = QTreeWidgetItem([label, kind])
                if v is None:
                    child.setToolTip(0, f"{label}: original − enhanced; computed when chosen")
                    child.setForeground(0, self.palette().brush(self.palette().ColorGroup.Disabled,
                                                                self.palette().ColorRole.Text))
                else:
                    note = level_note(v.provenance.extra.get("level"))
                    child.setToolTip(0, (v.name if v.model is None else f"{v.name}: {v.model.name} ({v.model.source})")
                                     + (f"\n{note}" if note else ""))
                    if note:
                        child.setIcon(0, self._level_icon())
                        child.setToolTip(1, note)
                child.setData(0, Qt.ItemDataRole.UserRole, (rec, v, residual_of))
                parent.addChild(child)
                if rec is self.document.recording and v is not None and v is self.document.version:
                    current_item = child
            top.setExpanded(True)
            if lab_node is not None:
                lab_node.setExpanded(current_item is not None and current_item.parent() is lab_node)
        if current_item is not None:
            self.file_tree.setCurrentItem(current_item)

    def _update_status(self) -> None:
        rec = self.document.recording
        if rec is None:
            self.status_label.setText("Drop audio files here or use File > Open (Ctrl+O)")
            self.setWindowTitle("Speech Enhancement Workbench")
            return
        info = rec.info
        depth = f"{info.bit_depth}-bit" if info.bit_depth else info.subtype
        dur = info.duration_s
        h, rem = divmod(dur, 3600)
        m, s = divmod(rem, 60)
        dur_text = f"{int(h)}:{int(m):02d}:{s:06.3f}" if h else f"{int(m)}:{s:06.3f}"
        version = self.document.version.name if self.document.version is not None else ""
        note = (level_note(self.document.version.provenance.extra.get("level"))
                if self.document.version is not None else None)
        if note:
            version += f" ({note})"
        self.status_label.setText(
            f"{rec.name}   |   {info.sample_rate} Hz   |   {info.channels} ch   |   {dur_text}   |   "
            f"{depth} {info.format}   |   showing: {version}")
        self.setWindowTitle(f"{rec.name} — Speech Enhancement Workbench")

    def _on_tree_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        rec, version, residual_of = item.data(0, Qt.ItemDataRole.UserRole)
        if version is None and residual_of is not None:
            version = rec.residual_of(residual_of)  # made on demand, as from the Version box
        elif version is None and item.parent() is not None:
            return  # a group node
        self.document.set_current(rec, version)

    def _on_version_box(self, index: int) -> None:
        if self._updating_controls or index < 0:
            return
        data = self.version_box.itemData(index)
        if data is None:
            return
        version, residual_of = data
        rec = self.document.recording
        if version is None and residual_of is not None and rec is not None:
            version = rec.residual_of(residual_of)  # created on demand, then listed like any version
        if version is not None:
            self.document.set_version(version)

    def select_version_named(self, label: str) -> None:
        """Choose the selector entry ``label`` (e.g. ``residual (wiener)``), as a person would."""
        for i in range(self.version_box.count()):
            if self.version_box.itemText(i) == label:
                self.version_box.setCurrentIndex(i)
                self._on_version_box(i)  # also when it was already the current index
                return
        raise KeyError(label)

    def _on_channel_box(self, index: int) -> None:
        if self._updating_controls or index < 0:
            return
        self.document.set_channel(int(self.channel_box.itemData(index)))

    # ------------------------------------------------------------------------------------------------------
    # controls -> view
    # ------------------------------------------------------------------------------------------------------
    # ------------------------------------------------------------------------------------------------------
    # display controls (see DisplayControls)
    # ------------------------------------------------------------------------------------------------------
    def display_settings(self) -> DisplaySettings:
        """What the display controls set."""
        return self.display_controls.display_settings()

    def stft_config(self) -> StftConfig:
        return self.display_controls.stft_config()

    def set_display_settings(self, display: DisplaySettings) -> None:
        """Apply ``display`` to the workspace (the controls and the panes follow)."""
        self.display_controls.set_display_settings(display)

    # ------------------------------------------------------------------------------------------------------
    # errors, drops, recent files, settings
    # ------------------------------------------------------------------------------------------------------
    def _show_error_box(self, title: str, message: str) -> None:
        """Problems go to one non-modal list (:class:`~workbench.gui.error_list.ProblemList`), so the window
        stays usable and several bad files never stack several popups: while the list is open, new problems
        are appended to it."""
        box = self.error_boxes[-1] if self.error_boxes else None
        if box is None or not box.isVisible():
            box = ProblemList(title, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.destroyed.connect(lambda *_, box=box: self.error_boxes.remove(box) if box in self.error_boxes else None)
            self.error_boxes[:] = [box]
        box.add(title, message)
        box.show()
        box.raise_()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        """Audio files open as recordings; model files/folders load into the model panel; with Ctrl held,
        audio files go to the batch enhancement dialog instead."""
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        batch = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        # Act after the drop returns so a slow or failing file never stalls the drag source.
        QTimer.singleShot(0, lambda: self.handle_dropped(paths, batch=batch))

    @staticmethod
    def is_model_path(path: str | Path) -> bool:
        p = Path(path)
        suffixes = model_suffixes()
        if p.is_dir():
            return any(q.suffix.lower() in suffixes for q in p.iterdir())
        return p.suffix.lower() in suffixes

    def handle_dropped(self, paths, batch: bool = False) -> None:
        models = [p for p in paths if self.is_model_path(p)]
        audio = [p for p in paths if p not in models]
        for m in models[:1]:
            self.model_dock.show()
            self.model_dock.raise_()
            self.model_panel.load_path(m)
        if len(models) > 1:
            self.statusBar().showMessage("Drop one model file or folder at a time; loaded the first", 8000)
        if audio and batch:
            self.open_batch_dialog(audio)
        elif audio:
            self.open_files(audio)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        recent = [p for p in self.recent_files() if p != path]
        recent.insert(0, path)
        self.settings.setValue("recent_files", recent[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for p in recent:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda checked=False, p=p: self.open_files([p]))
        if recent:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("Clear list")
            clear.triggered.connect(lambda: (self.settings.setValue("recent_files", []), self._rebuild_recent_menu()))
        self.recent_menu.setEnabled(bool(recent))

    def _restore_settings(self) -> None:
        s = self.settings
        self.display_controls.restore_settings()
        geometry = s.value("window/geometry")
        size = s.value("window/size")
        restored = isinstance(geometry, QByteArray) and not geometry.isEmpty() and self.restoreGeometry(geometry)
        if isinstance(size, QSize) and size.isValid():
            # restoreGeometry can refuse (e.g. the saved screen is gone); the size alone still applies.
            self.resize(size)
            fit_window(self)   # saved on a larger monitor: shrink to this one's usable area
        elif not restored:
            fit_window(self, PREFERRED_SIZE)
        else:
            fit_window(self)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            # A state saved by an older layout (other docks and tool bars) is refused by its version.
            self.restoreState(state, WINDOW_STATE_VERSION)
        self._rebuild_recent_menu()

    def save_settings(self) -> None:
        s = self.settings
        self.display_controls.save_settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/size", self.size())
        s.setValue("window/state", self.saveState(WINDOW_STATE_VERSION))
        s.sync()

    def shutdown(self) -> None:
        """Stop everything that runs beside the GUI thread: the audio stream, model and probe jobs, the
        metrics worker, open dialogs' workers and the tile pool (waits for them). Idempotent."""
        if self._closed:
            return
        self._closed = True
        # The deferred model listing must not start a thread after the panel was shut down (a QThread
        # destroyed while running aborts the process).
        self._list_models_timer.stop()
        self.transport.shutdown()
        self.model_panel.shutdown()
        self.edit_panel.shutdown()
        self.metrics_panel.shutdown()
        self.phase_lab_panel.shutdown()
        for panel in self._deferred.values():  # only those that were built
            panel.shutdown()
        self.metrics_pool.waitForDone(60000)
        for dlg in (self.batch_dialog, self.export_dialog):
            if dlg is not None:
                dlg.close()
        self.view.shutdown()
        # Generator workers run on the global pool: none may still emit while the window is torn down.
        QThreadPool.globalInstance().waitForDone(60000)

    # ------------------------------------------------------------------------------------------------------
    # sessions
    # ------------------------------------------------------------------------------------------------------
    #: the progress dialog of a job :func:`~workbench.gui.workers.run_with_progress` waits for (or None)
    progress_dialog = None

    def save_session_to(self, path: str | Path) -> Path | None:
        """Save the session to ``path`` (see :meth:`SessionController.save_session_to`)."""
        return self.sessions.save_session_to(path)

    def save_session_dialog(self) -> Path | None:
        return self.sessions.save_session_dialog()

    def open_session_file(self, path: str | Path) -> bool:
        """Open a saved session into this window (see :meth:`SessionController.open_session_file`)."""
        return self.sessions.open_session_file(path)

    def open_session_dialog(self) -> None:
        self.sessions.open_session_dialog()

    def ask_unsaved(self, unsaved: list[tuple[Recording, Version]],
                    question: str = "Save them in a session before quitting?") -> str:
        """Ask what to do with results that were neither saved in a session nor exported.

        Returns ``"save"``, ``"discard"`` or ``"cancel"`` (a modal box; the event loop keeps running)."""
        names = ", ".join(f"{v.name} ({rec.name})" for rec, v in unsaved[:6]) + (" …" if len(unsaved) > 6 else "")
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved results",
                          f"{len(unsaved)} result(s) are not saved: {names}.\n{question}", parent=self)
        box.setObjectName("unsavedResultsBox")
        save = box.addButton("Save session…", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(save)
        box.setEscapeButton(cancel)
        box.exec()
        clicked = box.clickedButton()
        box.deleteLater()
        return "save" if clicked is save else "discard" if clicked is discard else "cancel"

    def closeEvent(self, event) -> None:
        if not self._closed and not self.sessions.may_discard(self.session.unsaved_versions()):
            event.ignore()
            return
        if not self._closed:
            self.save_settings()
        self.shutdown()
        for rec in list(self.document.recordings):
            self.document.close(rec)
        stop_all_workers()  # including work the closing itself started (the emptied panes)
        super().closeEvent(event)
