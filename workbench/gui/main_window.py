"""The main window: open recordings and their versions, the four linked panes, display and STFT
controls, status bar, menus, docks for the other panels, and persisted settings."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDockWidget, QDoubleSpinBox, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QToolBar, QTreeWidget, QTreeWidgetItem, QWidget)

from ..core.errors import WorkbenchError
from ..core.recording import Recording, Version
from ..core.stft import WINDOWS, StftConfig
from .axes import FREQ_SCALES
from .document import DocumentModel
from .spectrogram import LAYOUTS, MAGNITUDE_COLORMAPS, PHASE_VIEWS, DisplaySettings, SpectrogramView

AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.mp3 *.aif *.aiff *.w64 *.caf *.opus);;All files (*)"
FFT_SIZES = (256, 512, 1024, 2048, 4096, 8192)
HOPS = (64, 128, 256, 512, 1024, 2048)
MAX_RECENT = 10

ErrorReporter = Callable[[str, str], None]


class MainWindow(QMainWindow):
    """The workbench window.

    Integration API:
        ``document``: the :class:`DocumentModel` (current recording/version, view-state signals).
        ``view``: the :class:`SpectrogramView` (panes; ``painted`` signal, ``readout``).
        ``add_panel(title, widget, area)``: put a panel in a dock (right by default) or, with
        ``area="bottom-toolbar"``, in the bottom tool bar; it is listed in the View menu.
        ``open_files(paths)``: open recordings; errors go to ``error_reporter(title, message)``.
        ``show_version(version)``: show a version of the current recording in the panes.
    """

    filesOpened = Signal(list)

    def __init__(self, settings: QSettings | None = None, error_reporter: ErrorReporter | None = None):
        super().__init__()
        self.setWindowTitle("Speech Enhancement Workbench")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings()
        self.error_reporter: ErrorReporter = error_reporter or self._show_error_box
        self.error_boxes: list[QMessageBox] = []
        self.document = DocumentModel(self)
        self.view = SpectrogramView(self)
        self.setCentralWidget(self.view)
        self._docks: dict[str, QDockWidget] = {}
        self._updating_controls = False
        self._shown_recording: Recording | None = None

        self._build_file_dock()
        self._build_toolbars()
        self._build_menus()
        self._build_status_bar()
        self._wire()
        self._restore_settings()

    # ------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------
    def _build_file_dock(self) -> None:
        self.file_tree = QTreeWidget()
        self.file_tree.setHeaderLabels(["Recording / version", "Kind"])
        self.file_tree.setColumnWidth(0, 170)
        self.file_tree.setMinimumWidth(200)
        self.file_tree.itemClicked.connect(self._on_tree_clicked)
        dock = QDockWidget("Recordings", self)
        dock.setObjectName("dock_recordings")
        dock.setWidget(self.file_tree)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self._docks["Recordings"] = dock

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
        self.version_box.setMinimumWidth(190)
        self.version_box.currentIndexChanged.connect(self._on_version_box)
        tb.addWidget(QLabel(" Version "))
        tb.addWidget(self.version_box)
        tb.addSeparator()
        self.layout_box = self._combo([("2 × 2", "grid"), ("Row", "row")], "Pane layout")
        tb.addWidget(QLabel(" Layout "))
        tb.addWidget(self.layout_box)
        self.phase_box = self._combo([(v, k) for k, v in PHASE_VIEWS.items()], "What the second pane shows")
        tb.addWidget(QLabel(" Phase view "))
        tb.addWidget(self.phase_box)
        self.scale_box = self._combo([(s.capitalize(), s) for s in FREQ_SCALES], "Frequency axis scale")
        tb.addWidget(QLabel(" Freq. "))
        tb.addWidget(self.scale_box)
        self.cmap_box = self._combo([(c, c) for c in MAGNITUDE_COLORMAPS], "Magnitude colormap")
        tb.addWidget(QLabel(" Colormap "))
        tb.addWidget(self.cmap_box)
        self.db_lo = QDoubleSpinBox(minimum=-200, maximum=0, singleStep=5, decimals=0, value=-100, suffix=" dB")
        self.db_hi = QDoubleSpinBox(minimum=-195, maximum=40, singleStep=5, decimals=0, value=0, suffix=" dB")
        self.db_lo.setToolTip("Bottom of the magnitude colour range (dBFS)")
        self.db_hi.setToolTip("Top of the magnitude colour range (dBFS)")
        tb.addWidget(QLabel(" Range "))
        tb.addWidget(self.db_lo)
        tb.addWidget(QLabel("…"))
        tb.addWidget(self.db_hi)
        self.comp_box = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, decimals=2, value=0.3)
        self.comp_box.setToolTip("Compression exponent c for real/imag: sign(x)|x|^c (1 = linear)")
        tb.addWidget(QLabel(" Compression "))
        tb.addWidget(self.comp_box)

        st = QToolBar("STFT", self)
        st.setObjectName("toolbar_stft")
        self.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, st)
        self.window_box = self._combo([(w, w) for w in WINDOWS], "Analysis window")
        self.nfft_box = self._combo([(str(n), n) for n in FFT_SIZES], "Window length (samples)")
        self.hop_box = self._combo([(str(h), h) for h in HOPS], "Hop (samples)")
        st.addWidget(QLabel(" STFT window "))
        st.addWidget(self.window_box)
        st.addWidget(QLabel(" Size "))
        st.addWidget(self.nfft_box)
        st.addWidget(QLabel(" Hop "))
        st.addWidget(self.hop_box)
        st.addSeparator()
        self.readout_label = QLabel("")
        self.readout_label.setMinimumWidth(600)
        self.readout_label.setTextFormat(Qt.TextFormat.PlainText)
        self.readout_label.setStyleSheet("font-family: monospace;")
        st.addWidget(self.readout_label)

        self.bottom_toolbar = QToolBar("Panels", self)
        self.bottom_toolbar.setObjectName("toolbar_bottom")
        self.addToolBar(Qt.ToolBarArea.BottomToolBarArea, self.bottom_toolbar)
        self.bottom_toolbar.hide()  # shown when a panel is added

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        self.open_action = QAction("&Open…", self, shortcut=QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.open_dialog)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.close_action = QAction("&Close recording", self, shortcut=QKeySequence.StandardKey.Close)
        self.close_action.triggered.connect(self.close_current)
        file_menu.addAction(self.close_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = mb.addMenu("&View")
        # Menu shortcuts use modifiers so they never steal keys from the spin boxes and combo boxes;
        # bare keys (=, -, F, arrows) work while the panes have focus.
        shortcuts = [
            ("Zoom &in", ["Ctrl+=", "Ctrl++"], ["=", "+"], lambda: self.view.zoom(0.5)),
            ("Zoom &out", ["Ctrl+-"], ["-"], lambda: self.view.zoom(2.0)),
            ("&Fit whole recording", ["Ctrl+0"], ["F", "Home"], self.view.fit),
            ("Pan &left", ["Alt+Left"], ["Left"], lambda: self.view.pan(-0.25)),
            ("Pan &right", ["Alt+Right"], ["Right"], lambda: self.view.pan(0.25)),
        ]
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.view.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        for text, keys, pane_keys, fn in shortcuts:
            act = QAction(text, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(fn)
            view_menu.addAction(act)
            self.addAction(act)
            local = QAction(text, self.view)
            local.setShortcuts([QKeySequence(k) for k in pane_keys])
            local.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            local.triggered.connect(fn)
            self.view.addAction(local)
        self.rubber_action = QAction("&Rubber-band zoom (drag a box)", self, checkable=True, shortcut="Ctrl+B")
        view_menu.addSeparator()
        self.panels_menu = view_menu.addMenu("&Panels")
        self.panels_menu.addAction(self._docks["Recordings"].toggleViewAction())
        for tb in self.findChildren(QToolBar):
            self.panels_menu.addAction(tb.toggleViewAction())
        self.view_menu = view_menu

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Drop audio files here or use File > Open (Ctrl+O)")
        sb.addWidget(self.status_label, 1)
        self.channel_box = QComboBox()
        self.channel_box.setToolTip("Channel shown in the panes")
        self.channel_box.currentIndexChanged.connect(self._on_channel_box)
        sb.addPermanentWidget(QLabel("Channel"))
        sb.addPermanentWidget(self.channel_box)

    def _wire(self) -> None:
        doc = self.document
        doc.recordingChanged.connect(self._on_recording_changed)
        doc.currentVersionChanged.connect(self._on_version_changed)
        doc.versionsChanged.connect(self._on_versions_changed)
        doc.recordingsChanged.connect(self._rebuild_tree)
        doc.channelChanged.connect(self.view.set_channel)
        doc.playheadMoved.connect(self.view.set_playhead)
        self.view.viewRangeChanged.connect(doc.set_view_range)
        self.view.cursorMoved.connect(doc.set_cursor)
        self.view.readoutChanged.connect(self._on_readout)
        self.view.magnitudeRangeDragged.connect(self._on_magnitude_range_dragged)
        self.view.tileError.connect(lambda msg: self.error_reporter("Cannot draw the spectrogram", msg))
        for box in (self.layout_box, self.phase_box, self.scale_box, self.cmap_box):
            box.currentIndexChanged.connect(self._on_display_controls)
        for spin in (self.db_lo, self.db_hi, self.comp_box):
            spin.valueChanged.connect(self._on_display_controls)
        for box in (self.window_box, self.nfft_box, self.hop_box):
            box.currentIndexChanged.connect(self._on_stft_controls)

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
        """Open each path as a recording; a bad file is reported (naming it) and the others still open."""
        opened = []
        for p in paths:
            try:
                rec = self.document.open(p)
            except WorkbenchError as exc:
                self.error_reporter("Cannot open recording", str(exc))
                continue
            except Exception as exc:  # anything else still must not take the window down
                self.error_reporter("Cannot open recording", f"{p}: {exc}")
                continue
            opened.append(rec)
            self._add_recent(str(Path(p).resolve()))
        if opened:
            self.filesOpened.emit(opened)
        return opened

    def show_version(self, version: Version) -> None:
        """Show ``version`` (of the current recording) in the panes."""
        self.document.set_version(version)

    def open_dialog(self) -> None:
        start = self.settings.value("last_dir", "", str)
        paths, _ = QFileDialog.getOpenFileNames(self, "Open recordings", start, AUDIO_FILTER)
        if paths:
            self.settings.setValue("last_dir", str(Path(paths[0]).parent))
            self.open_files(paths)

    def close_current(self) -> None:
        if self.document.recording is not None:
            self.document.close(self.document.recording)

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

    def _on_version_changed(self, version: Version | None) -> None:
        rec = self.document.recording
        if version is None or rec is None:
            self.view.set_source(None)
        else:
            channel = min(self.document.channel, version.source.channels - 1)
            # Switching versions of one recording keeps the zoom (A/B inspection); a new recording fits.
            same = rec is self._shown_recording
            self.view.set_source(version.source, f"{rec.name} [{version.name}]", channel, keep_view=same)
            self._shown_recording = rec
        self._fill_version_box()
        self._rebuild_tree()
        self._update_status()

    def _on_versions_changed(self, rec: Recording) -> None:
        self._rebuild_tree()
        if rec is self.document.recording:
            self._fill_version_box()

    def _fill_version_box(self) -> None:
        self._updating_controls = True
        self.version_box.clear()
        rec = self.document.recording
        if rec is not None:
            for v in rec.versions:
                self.version_box.addItem(v.name, v)
            if self.document.version in rec.versions:
                self.version_box.setCurrentIndex(rec.versions.index(self.document.version))
        self.version_box.setEnabled(rec is not None and len(rec.versions) > 1)
        self._updating_controls = False

    def _rebuild_tree(self) -> None:
        self.file_tree.clear()
        for rec in self.document.recordings:
            top = QTreeWidgetItem([rec.name, f"{rec.source.sample_rate / 1000:g} kHz"])
            top.setToolTip(0, str(rec.path))
            top.setData(0, Qt.ItemDataRole.UserRole, (rec, None))
            self.file_tree.addTopLevelItem(top)
            for v in rec.versions:
                child = QTreeWidgetItem([v.name, v.kind])
                child.setData(0, Qt.ItemDataRole.UserRole, (rec, v))
                top.addChild(child)
                if rec is self.document.recording and v is self.document.version:
                    self.file_tree.setCurrentItem(child)
            top.setExpanded(True)

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
        self.status_label.setText(
            f"{rec.name}   |   {info.sample_rate} Hz   |   {info.channels} ch   |   {dur_text}   |   "
            f"{depth} {info.format}   |   showing: {version}")
        self.setWindowTitle(f"{rec.name} — Speech Enhancement Workbench")

    def _on_tree_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        rec, version = item.data(0, Qt.ItemDataRole.UserRole)
        self.document.set_current(rec, version)

    def _on_version_box(self, index: int) -> None:
        if self._updating_controls or index < 0:
            return
        version = self.version_box.itemData(index)
        if version is not None:
            self.document.set_version(version)

    def _on_channel_box(self, index: int) -> None:
        if self._updating_controls or index < 0:
            return
        self.document.set_channel(int(self.channel_box.itemData(index)))

    def _on_magnitude_range_dragged(self, lo: float, hi: float) -> None:
        # Keep the spin boxes in step with the colour bar handles (without a second redraw).
        self._updating_controls = True
        self.db_lo.setValue(lo)
        self.db_hi.setValue(hi)
        self._updating_controls = False

    def _on_readout(self, r: dict) -> None:
        phase_view = self.view.display.phase_view
        extra = {"phase": f"phase {r['phase_rad']:+.3f} rad",
                 "inst_freq": f"IF dev {r['inst_freq_hz']:+.1f} Hz",
                 "group_delay": f"GD {r['group_delay_ms']:+.2f} ms"}[phase_view]
        self.readout_label.setText(
            f"t {r['time_s']:.4f} s  f {r['freq_hz']:.1f} Hz  |  mag {r['magnitude_db']:.1f} dB  {extra}  "
            f"re {r['real_raw']:+.3g}  im {r['imag_raw']:+.3g}")

    # ------------------------------------------------------------------------------------------------------
    # controls -> view
    # ------------------------------------------------------------------------------------------------------
    def display_settings(self) -> DisplaySettings:
        lo, hi = self.db_lo.value(), self.db_hi.value()
        if hi <= lo:
            hi = lo + 5
        return DisplaySettings(layout=self.layout_box.currentData(), phase_view=self.phase_box.currentData(),
                               freq_scale=self.scale_box.currentData(), colormap=self.cmap_box.currentData(),
                               db_range=(lo, hi), compression=round(self.comp_box.value(), 3))

    def stft_config(self) -> StftConfig:
        n_fft = int(self.nfft_box.currentData())
        hop = min(int(self.hop_box.currentData()), n_fft)
        return StftConfig(n_fft=n_fft, hop=hop, window=self.window_box.currentData())

    def _on_display_controls(self, *args) -> None:
        if self._updating_controls:
            return
        self.view.set_display(self.display_settings())

    def _on_stft_controls(self, *args) -> None:
        if self._updating_controls:
            return
        self.view.set_stft(self.stft_config())

    def _set_controls(self, display: DisplaySettings, cfg: StftConfig) -> None:
        self._updating_controls = True
        for box, value in ((self.layout_box, display.layout), (self.phase_box, display.phase_view),
                           (self.scale_box, display.freq_scale), (self.cmap_box, display.colormap),
                           (self.window_box, cfg.window), (self.nfft_box, cfg.n_fft), (self.hop_box, cfg.hop)):
            i = box.findData(value)
            if i >= 0:
                box.setCurrentIndex(i)
        self.db_lo.setValue(display.db_range[0])
        self.db_hi.setValue(display.db_range[1])
        self.comp_box.setValue(display.compression)
        self._updating_controls = False

    # ------------------------------------------------------------------------------------------------------
    # errors, drops, recent files, settings
    # ------------------------------------------------------------------------------------------------------
    def _show_error_box(self, title: str, message: str) -> None:
        """Non-modal message box, so the window stays usable (and tests are never blocked)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda *_: self.error_boxes.remove(box) if box in self.error_boxes else None)
        self.error_boxes.append(box)
        box.show()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            # Open after the drop returns so a slow or failing file never stalls the drag source.
            QTimer.singleShot(0, lambda: self.open_files(paths))

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
        d = DisplaySettings()
        try:
            display = DisplaySettings(
                layout=s.value("display/layout", d.layout, str),
                phase_view=s.value("display/phase_view", d.phase_view, str),
                freq_scale=s.value("display/freq_scale", d.freq_scale, str),
                colormap=s.value("display/colormap", d.colormap, str),
                db_range=(float(s.value("display/db_low", d.db_range[0])), float(s.value("display/db_high", d.db_range[1]))),
                compression=float(s.value("display/compression", d.compression)))
            if (display.layout not in LAYOUTS or display.phase_view not in PHASE_VIEWS
                    or display.freq_scale not in FREQ_SCALES or display.colormap not in MAGNITUDE_COLORMAPS):
                display = d
            cfg = StftConfig(n_fft=int(s.value("stft/n_fft", 1024)), hop=int(s.value("stft/hop", 256)),
                             window=s.value("stft/window", "hann", str))
        except (ValueError, TypeError):
            display, cfg = d, StftConfig()  # a damaged settings file must not stop the program
        self._set_controls(display, cfg)
        self.view.set_display(self.display_settings())
        self.view.set_stft(self.stft_config())
        geometry = s.value("window/geometry")
        size = s.value("window/size")
        restored = isinstance(geometry, QByteArray) and not geometry.isEmpty() and self.restoreGeometry(geometry)
        if isinstance(size, QSize) and size.isValid():
            # restoreGeometry can refuse (e.g. the saved screen is gone); the size alone still applies.
            self.resize(size)
        elif not restored:
            self.resize(1500, 950)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        self._rebuild_recent_menu()

    def save_settings(self) -> None:
        s = self.settings
        d = self.view.display
        s.setValue("display/layout", d.layout)
        s.setValue("display/phase_view", d.phase_view)
        s.setValue("display/freq_scale", d.freq_scale)
        s.setValue("display/colormap", d.colormap)
        s.setValue("display/db_low", d.db_range[0])
        s.setValue("display/db_high", d.db_range[1])
        s.setValue("display/compression", d.compression)
        s.setValue("stft/n_fft", self.view.cfg.n_fft)
        s.setValue("stft/hop", self.view.cfg.hop)
        s.setValue("stft/window", self.view.cfg.window)
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/size", self.size())
        s.setValue("window/state", self.saveState())
        s.sync()

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.view.shutdown()
        for rec in list(self.document.recordings):
            self.document.close(rec)
        super().closeEvent(event)
