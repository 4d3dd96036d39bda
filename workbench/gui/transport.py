"""The transport bar: play/pause/stop, loop, A/B/C version switching, loudness matching, output device.

It owns a :class:`~workbench.core.audio.playback.PlaybackEngine` (all audio work happens there, off the Qt
thread); this widget only writes the engine's control attributes and polls its frame counter with a
~30 Hz QTimer to move the playhead. Keys (window-wide): Space play/pause, 1..9 select version, Tab or B
toggle between the last two selected versions (A/B), L loop on/off.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QSignalBlocker, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QFontMetrics, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QFrame, QHBoxLayout, QLabel, QMenu, QScrollArea, QSizePolicy, QToolButton,
    QWidget,
)
from shiboken6 import isValid

from ..core.errors import WorkbenchError
from ..core.audio.loudness import libraries_loaded
from ..core.audio.playback import PlaybackEngine, gain_label, list_output_devices, seconds_label
from . import first_paint
from .playback_widgets import BlindABDialog
from .version_labels import display_order, distinct_labels, is_lab, lab_grouped
from .workers import GeneratorWorker

#: Version button letters; versions beyond 26 are numbered.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
POLL_MS = 33
#: Above this many samples (all versions together) the engine prepares playback (resampling, BS.1770
#: loudness of every version: about 0.5 s per 10 minutes of 48 kHz audio) on a worker thread, so the window
#: never freezes when a model result arrives; short clips are prepared at once (except the process's first
#: preparation, which also imports the loudness libraries: see :func:`~workbench.core.audio.loudness.libraries_loaded`).
ASYNC_LOAD_SAMPLES = 60 * 48000
#: Above this many samples (all versions together) playback is prepared only when it is first asked for
#: (Play), so opening an hour-long recording to look at it never holds its samples in memory.
DEFER_LOAD_SAMPLES = 20 * 60 * 48000


def version_letter(index: int) -> str:
    return LETTERS[index] if index < len(LETTERS) else str(index + 1)


class TransportBar(QWidget):
    """Playback controls for the current recording.

    Signals:
        playheadMoved(float): seconds, ~30 times a second while playing and after every seek.
        versionSelected(int): the audible version's index in ``recording.versions`` changed.
        playingChanged(bool): playback started/paused/stopped/ended.
        loopChanged(object): ``(start_s, stop_s)`` or ``None`` when looping is off.
        errorOccurred(str): a message for the status bar (e.g. a device that cannot be opened).

    Slots: :meth:`set_recording`, :meth:`refresh_versions`, :meth:`set_loop`, :meth:`clear_loop`,
    :meth:`seek`, :meth:`select_version`, :meth:`play`, :meth:`pause`, :meth:`toggle_play`, :meth:`stop`,
    :meth:`set_channel`, :meth:`attach_document`.
    """

    playheadMoved = Signal(float)
    versionSelected = Signal(int)
    playingChanged = Signal(bool)
    loopChanged = Signal(object)
    errorOccurred = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, engine: PlaybackEngine | None = None):
        super().__init__(parent)
        self.engine = engine if engine is not None else PlaybackEngine("default")
        self.recording = None
        self._document = None
        self.channel = 0
        self._previous_version = 1
        self._loop_s: tuple[float, float] | None = None
        self._was_playing = False
        self._last_emitted = -1.0
        self._blind: BlindABDialog | None = None
        #: finished blind tests: ``{"recording", "versions", "tally": {name: votes}, "trials": [...]}``
        #: (stored in saved sessions by the main window)
        self.blind_results: list[dict] = []
        self._load_pool = QThreadPool(self)
        self._load_pool.setMaxThreadCount(1)   # loads run in order; only the newest one's result is used
        self._load_serial = 0
        self._load_after = None
        self._deferred_load = None   # (recording, after) of a long recording not prepared yet
        self._prepared_recording = None
        self._versions_timer = QTimer(self)
        self._versions_timer.setSingleShot(True)
        self._versions_timer.setInterval(0)
        self._versions_timer.timeout.connect(self._refresh_if_current)
        self._build()
        self._shortcuts()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()
        self._refresh_device_state()
        app = QCoreApplication.instance()
        if app is not None:
            # A tool bar gets no closeEvent when the window closes; the stream must still be closed.
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------ layout
    def _tool(self, text: str, tip: str, checkable: bool = False) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setCheckable(checkable)
        # Buttons never take focus, so Space always means play/pause and never "press the focused button".
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return b

    def _build(self) -> None:
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        self.play_button = self._tool("▶ Play", "Play / pause (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.stop_button = self._tool("■ Stop", "Stop and return to the start (of the loop)")
        self.stop_button.clicked.connect(self.stop)
        self.loop_button = self._tool("⟲ Loop", "Loop the selected region (L)", checkable=True)
        self.loop_button.toggled.connect(self._on_loop_toggled)
        self.loop_label = QLabel("no region")
        self.loop_label.setToolTip("Loop region; drag on a pane or the waveform to set it")
        self.position_label = QLabel("0:00.000 / 0:00.000")
        self.position_label.setMinimumWidth(150)
        for w in (self.play_button, self.stop_button, self.loop_button, self.loop_label, self.position_label):
            lay.addWidget(w)
        self.version_box = QWidget()
        self.version_layout = QHBoxLayout(self.version_box)
        self.version_layout.setContentsMargins(8, 0, 8, 0)
        self.version_layout.addStretch(1)  # buttons are inserted before it: they line up on the left
        self.version_group = QButtonGroup(self)
        self.version_group.setExclusive(True)
        self.version_group.idClicked.connect(self.select_version)
        self.version_buttons: list[QToolButton] = []
        #: one button with a menu for the phase lab's versions when there are many (else None)
        self.lab_button: QToolButton | None = None
        self._lab_actions: dict[int, object] = {}
        # The version buttons scroll sideways when there are many, so the bar never widens the window.
        self.version_scroll = QScrollArea()
        self.version_scroll.setWidget(self.version_box)
        self.version_scroll.setWidgetResizable(True)
        self.version_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.version_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.version_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.version_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.version_scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.version_scroll.setMinimumWidth(120)
        self.version_scroll.viewport().installEventFilter(self)   # relabel (elide) the buttons when the bar resizes
        self.version_scroll.setFixedHeight(self.play_button.sizeHint().height()
                                           + self.version_scroll.horizontalScrollBar().sizeHint().height())
        lay.addWidget(self.version_scroll, 1)
        self.match_check = QCheckBox("Match loudness")
        self.match_check.setToolTip("Play every version at the same integrated loudness (ITU-R BS.1770); "
                                    "versions are also kept at or below 0 dBFS")
        self.match_check.setChecked(self.engine.loudness_match)
        self.match_check.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.match_check.toggled.connect(self.set_loudness_match)
        lay.addWidget(self.match_check)
        self.gain_label = QLabel("")
        self.gain_label.setToolTip("Gain applied to the audible version")
        lay.addWidget(self.gain_label)
        self.blind_button = self._tool("Blind A/B…", "Blind test: versions shuffled under hidden labels")
        self.blind_button.clicked.connect(self.open_blind_test)
        lay.addWidget(self.blind_button)
        self.device_box = QComboBox()
        self.device_box.setToolTip("Output device")
        self.device_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.device_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay.addWidget(self.device_box)
        self.device_message = QLabel("")
        self.device_message.setStyleSheet("color: #b00020;")
        self.device_message.setWordWrap(False)
        self.device_message.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.device_message)
        self._fill_devices()
        self.device_box.currentIndexChanged.connect(self._on_device_chosen)
        self._update_controls()

    def _shortcuts(self) -> None:
        def add(key, slot):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)
            return sc

        self.shortcuts = [add(Qt.Key.Key_Space, self.toggle_play), add(Qt.Key.Key_Tab, self.toggle_ab),
                          add(Qt.Key.Key_B, self.toggle_ab), add(Qt.Key.Key_L, self.loop_button.toggle)]
        for i in range(9):
            self.shortcuts.append(add(Qt.Key.Key_1.value + i, lambda i=i: self._select_if_exists(i)))

    def _fill_devices(self) -> None:
        devices, reason = list_output_devices()
        with QSignalBlocker(self.device_box):
            self.device_box.clear()
            if not devices:
                self.device_box.addItem("(no output device)", None)
                self.device_box.setEnabled(False)
            else:
                for d in devices:
                    self.device_box.addItem(d.label, d.index)
                current = self.engine.device.index if self.engine.device is not None else None
                i = self.device_box.findData(current)
                self.device_box.setCurrentIndex(max(i, 0))
                self.device_box.setEnabled(True)
        self._list_reason = reason

    def _refresh_device_state(self) -> None:
        if self.engine.available:
            self.device_message.setText("")
            self.device_message.setToolTip("")
        else:
            # Short text (the tool bar must not force a wide window); the full reason in the tooltip.
            self.device_message.setText("No output device")
            self.device_message.setToolTip("No output device: " + (self.engine.reason or "playback is off"))
        self.device_message.setVisible(not self.engine.available)
        self._update_controls()

    # ------------------------------------------------------------------ document wiring
    def attach_document(self, document, *, follow_version: bool = True) -> None:
        """Follow a :class:`workbench.gui.document.DocumentModel`: load its recording, reload when versions
        change, follow its channel, and publish the playhead through ``document.set_playhead``.

        With ``follow_version`` the panes and the ears agree: choosing a version in the document makes
        it audible, and switching by key/button shows it (``document.set_version``).
        """
        self._document = document
        document.recordingChanged.connect(self.set_recording)
        document.versionsChanged.connect(self._on_document_versions)
        document.channelChanged.connect(self.set_channel)
        self.playheadMoved.connect(document.set_playhead)
        if hasattr(document, "loopChanged"):
            # The loop region is the workspace's: a drag on a pane, this bar or a restored session set it.
            self.loopChanged.connect(document.set_loop)
            document.loopChanged.connect(self._on_document_loop)
        self._follow_version = follow_version
        if follow_version:
            document.currentVersionChanged.connect(self._on_document_version)
            self.versionSelected.connect(self._show_version_in_document)
        self.channel = getattr(document, "channel", 0)
        if document.recording is not None:
            self.set_recording(document.recording)
        if hasattr(document, "stateChanged"):
            # A running blind test is the workspace's: a restored session resumes it here.
            document.stateChanged.connect(self._on_document_state)
        if hasattr(document, "strengthPreviewed"):
            # Strengths: a drag is heard at once, a committed (or undone) one is what plays from then on;
            # a click on a pane seeks.
            document.strengthPreviewed.connect(self._on_strength_preview)
            document.strengthChanged.connect(self._on_document_strength)
            document.seekRequested.connect(self.seek)

    def _on_strength_preview(self, version, mix: float) -> None:
        self.engine.set_strength_of(version, mix)

    def _on_document_strength(self, rec, version) -> None:
        if rec is self.recording:
            self.engine.set_strength_of(version, rec.strength_of(version).mix)

    def _workspace(self):
        return getattr(self._document, "workspace", None)

    def _on_document_state(self, key: str) -> None:
        ws = self._workspace()
        if key == "blind_results" and ws is not None:
            self.blind_results = [dict(r) for r in ws.blind_results]
        elif key == "blind_test" and ws is not None and ws.blind_test is not None and self._blind is None:
            # Once the versions now current are loaded into the engine (queued after the recording change).
            QTimer.singleShot(0, self._resume_blind_test)

    def _resume_blind_test(self, tries: int = 200) -> None:
        ws = self._workspace()
        state = ws.blind_test if ws is not None else None
        if state is None or self._blind is not None:
            return
        if self.is_loading() and tries > 0:   # the versions are being prepared for playback
            QTimer.singleShot(50, lambda: self._resume_blind_test(tries - 1))
            return
        if state.get("recording") != getattr(self.recording, "name", None):
            ws.set_blind_test(None)
            return
        dialog = self.open_blind_test()
        if dialog is None or not dialog.resume(state):
            if dialog is not None:
                dialog.reject()
            ws.set_blind_test(None)
            self.errorOccurred.emit("The saved blind test names versions that are not open; it was not resumed")

    def _blind_changed(self) -> None:
        ws = self._workspace()
        state = self._blind.state() if self._blind is not None else None
        if ws is not None:
            ws.set_blind_test(None if state is None else {"recording": getattr(self.recording, "name", ""), **state})

    def _on_document_loop(self, region) -> None:
        current = self._loop_s if self.loop_button.isChecked() else None
        if region == current:
            return
        if region is None:
            self.clear_loop()
        else:
            self.set_loop(*region)

    def _on_document_versions(self, recording) -> None:
        # The phase lab adds 17 versions in one burst: one reload for the burst, not one per version.
        if recording is self.recording and not self._versions_timer.isActive():
            self._versions_timer.start()

    def _refresh_if_current(self) -> None:
        if self.recording is not None:
            self.refresh_versions()

    def _follow_document(self) -> None:
        if getattr(self, "_follow_version", False):
            # The document may already show a version the engine did not have when it was chosen (a
            # model result is shown at once; the version list reaches us queued, the load may be async).
            self._on_document_version(getattr(self._document, "version", None))

    # ------------------------------------------------------------------ loading
    def is_loading(self) -> bool:
        """True while playback of a long recording is being prepared on the worker thread."""
        return self._load_after is not None

    def _load(self, recording, after, *, background: bool = False) -> None:
        """``engine.load`` the recording, then call ``after(error_or_None)`` on the GUI thread; at once for
        short recordings, on the worker thread for long ones (or while another load is running, or with
        ``background``: a new version arriving must not cost the window its next repaint)."""
        self._load_serial += 1
        samples = recording.source.frames * len(recording.versions)
        self._deferred_load = None
        if samples > DEFER_LOAD_SAMPLES and self._prepared_recording is not recording:
            # Drop what the engine holds (another recording's versions) so nothing stale plays.
            self._load_after = None
            self._load_pool.waitForDone()
            self.engine.unload()
            self.engine.seek(0)   # nothing loaded: the position reads 0:00.000 / 0:00.000, not the old place
            self._rebuild_buttons()
            self._deferred_load = (recording, after)
            self.position_label.setText("long recording: playback is prepared when you press Play")
            self._update_controls()
            return
        self._prepared_recording = recording
        # Short clips are prepared at once -- unless this is the first preparation of the process, which
        # would import the loudness libraries (~0.4 s) on the GUI thread before the first paint.
        if samples <= ASYNC_LOAD_SAMPLES and self._load_after is None and libraries_loaded() and not background:
            try:
                self.engine.load(recording, channel=self.channel)
            except (WorkbenchError, ValueError) as exc:
                after(exc)
                return
            after(None)
            return
        self._load_after = (self._load_serial, after)
        self.position_label.setText("preparing playback…")
        self._start_load(recording)

    def _start_load(self, recording) -> None:
        """``engine.load`` on the (one-thread) load pool. The engine builds the new program aside and swaps
        it in with one reference assignment, so the GUI thread and the audio callback keep working with
        the previous one meanwhile.

        The process's first preparation imports the loudness libraries; it waits until the window has
        painted its first spectrogram (see :mod:`~workbench.gui.first_paint`), one turn of the event loop
        first so that a view showing this recording has taken hold."""
        serial = self._load_serial
        if not libraries_loaded():
            QTimer.singleShot(0, self, lambda: first_paint.after_first_paint(
                lambda: self._start_load_now(recording, serial)))
            return
        self._start_load_now(recording, serial)

    def _start_load_now(self, recording, serial: int) -> None:
        if not isValid(self) or serial != self._load_serial:
            return   # the bar is gone, or a newer load replaced this one while it waited
        engine, channel = self.engine, self.channel

        def load():  # worker thread; returns (serial, error or None) so one bound slot gets both
            try:
                engine.load(recording, channel=channel)
            except Exception as exc:  # reported on the GUI thread
                return serial, exc
            return serial, None
        worker = GeneratorWorker(load, pool=self._load_pool)
        worker.returned.connect(self._on_load_result)
        worker.start()

    @Slot(object)
    def _on_load_result(self, result) -> None:
        self._on_loaded(*result)

    def _on_loaded(self, serial: int, error) -> None:
        pending = self._load_after
        if pending is None or pending[0] != serial:
            return  # a newer load is queued behind this one; its result is the one to show
        self._load_after = None
        pending[1](error)

    def _on_document_version(self, version) -> None:
        rec = self.recording
        if version is None or rec is None or self._blind is not None:
            return
        for i, v in enumerate(rec.versions):
            if v is version and i < len(self.engine.tracks) and i != self.engine.selected_version:
                self.select_version(i)
                return

    def _show_version_in_document(self, index: int) -> None:
        doc = getattr(self, "_document", None)
        rec = self.recording
        if doc is not None and rec is not None and rec is doc.recording and index < len(rec.versions):
            doc.set_version(rec.versions[index])

    # ------------------------------------------------------------------ slots
    @Slot(object)
    def set_recording(self, recording) -> None:
        """Load ``recording``'s versions into the engine (resampled once) and show their buttons."""
        self.engine.pause()
        self.recording = recording
        self._loop_s = None
        self.engine.set_loop(None, None)
        with QSignalBlocker(self.loop_button):
            self.loop_button.setChecked(False)
        if recording is None:
            self._load_serial += 1
            self._load_after = None
            self._deferred_load = None
            self._prepared_recording = None
            self._load_pool.waitForDone()  # a running load must not install its program after the unload
            self.engine.unload()
            self.engine.seek(0)   # nothing loaded: the position reads 0:00.000 / 0:00.000, not the old place
            self._rebuild_buttons()
            self._update_loop_label()
            self._emit_playhead(force=True)
            self.loopChanged.emit(None)
            return
        # The previous recording's loop region is gone at once (not only once the new one has loaded).
        self._update_loop_label()
        self.loopChanged.emit(None)

        def after(error) -> None:
            if error is not None:
                self.errorOccurred.emit(f"Cannot prepare playback: {error}")
            self.engine.select_version(0)
            self.engine.seek(0)
            self._previous_version = 1
            self._rebuild_buttons()
            self._emit_playhead(force=True)
            # A region set while the recording was loading (a restored session) now applies to it.
            if self._loop_s is not None and self.loop_button.isChecked():
                self.engine.set_loop_s(*self._loop_s)
                self.loopChanged.emit(self._loop_s)
            else:
                self.loopChanged.emit(None)
            self._follow_document()
        self._load(recording, after)

    @Slot()
    def refresh_versions(self) -> None:
        """Reload after versions were added/removed (position, loop and selection are kept)."""
        if self.recording is None:
            return
        was_playing = self.engine.playing
        selected = self.engine.selected_version

        def after(error) -> None:
            if error is not None:
                self.errorOccurred.emit(f"Cannot prepare playback: {error}")
            # engine.load keeps the position (also one sought while a long load ran).
            if self._loop_s is not None and self.loop_button.isChecked():
                self.engine.set_loop_s(*self._loop_s)
            if selected < len(self.engine.tracks):
                self.engine.select_version(selected)
            self._rebuild_buttons()
            self._emit_playhead(force=True)
            if was_playing:
                self.engine.play()
            self._follow_document()
        # A new version (or a removed one): prepared on the worker, so the panes showing it repaint
        # without waiting for it (the versions already prepared are taken over, see PlaybackEngine.load).
        self._load(self.recording, after, background=True)

    @Slot(int)
    def set_channel(self, channel: int) -> None:
        if channel != self.channel:
            self.channel = channel
            self.refresh_versions()

    @Slot(float, float)
    def set_loop(self, start_s: float, stop_s: float) -> None:
        """Set the loop region in seconds and turn looping on; an empty region turns it off."""
        if stop_s <= start_s or start_s < 0:
            self.clear_loop()
            return
        self._loop_s = (float(start_s), float(stop_s))
        with QSignalBlocker(self.loop_button):
            self.loop_button.setChecked(True)
        self.engine.set_loop_s(start_s, stop_s)
        self._update_loop_label()
        self.loopChanged.emit(self._loop_s)

    @Slot()
    def clear_loop(self) -> None:
        self._loop_s = None
        self.engine.set_loop(None, None)
        with QSignalBlocker(self.loop_button):
            self.loop_button.setChecked(False)
        self._update_loop_label()
        self.loopChanged.emit(None)

    def _on_loop_toggled(self, on: bool) -> None:
        if on and self._loop_s is not None:
            self.engine.set_loop_s(*self._loop_s)
            self.loopChanged.emit(self._loop_s)
        elif on:
            # No region chosen yet: loop the whole recording.
            self._loop_s = (0.0, self.engine.duration_s)
            self.engine.set_loop_s(*self._loop_s)
            self.loopChanged.emit(self._loop_s)
        else:
            self.engine.set_loop(None, None)
            self.loopChanged.emit(None)
        self._update_loop_label()

    def _update_loop_label(self) -> None:
        if self._loop_s is None:
            self.loop_label.setText("no region")
        else:
            a, b = self._loop_s
            state = "" if self.loop_button.isChecked() else " (off)"
            self.loop_label.setText(f"{seconds_label(a)} – {seconds_label(b)}{state}")

    @Slot(float)
    def seek(self, seconds: float) -> None:
        self.engine.seek_s(max(0.0, seconds))
        self._emit_playhead(force=True)

    @Slot(int)
    def select_version(self, index: int) -> None:
        """Make version ``index`` audible from the current sample on (crossfaded, position kept)."""
        tracks = self.engine.tracks
        if not 0 <= index < len(tracks):
            return
        current = self.engine.selected_version
        if index != current:
            self._previous_version = current
        self.engine.select_version(index)
        if index < len(self.version_buttons) and self._blind is None:
            with QSignalBlocker(self.version_group):
                self.version_buttons[index].setChecked(True)
        self._update_lab_button()
        self._update_gain_label()
        if self._blind is None:
            self.versionSelected.emit(index)

    def _select_if_exists(self, index: int) -> None:
        if self._blind is None and index < len(self.engine.tracks):
            self.select_version(index)

    @Slot()
    def toggle_ab(self) -> None:
        """Switch between the current and the previously selected version (A/B)."""
        if self._blind is not None or len(self.engine.tracks) < 2:
            return
        target = self._previous_version
        if target >= len(self.engine.tracks) or target == self.engine.selected_version:
            target = 1 if self.engine.selected_version == 0 else 0
        self.select_version(target)

    @Slot(bool)
    def set_loudness_match(self, on: bool) -> None:
        self.engine.set_loudness_match(on)
        with QSignalBlocker(self.match_check):
            self.match_check.setChecked(on)
        self._relabel_buttons()
        self._update_gain_label()

    def is_deferred(self) -> bool:
        """True while a long recording waits for its first Play before playback is prepared."""
        return self._deferred_load is not None

    @Slot()
    def play(self) -> None:
        if self._deferred_load is not None:
            recording, after = self._deferred_load
            self._deferred_load = None
            self._prepared_recording = recording

            def after_then_play(error) -> None:
                after(error)
                if error is None and self.engine.tracks:
                    self.play()
            self._load_serial += 1
            self._load_after = (self._load_serial, after_then_play)
            self.position_label.setText("preparing playback…")
            self._start_load(recording)
            return
        if not self.engine.tracks:
            return
        self.engine.play()
        if not self.engine.available:
            self.engine.pause()  # nothing would advance; keep the state honest
            self.errorOccurred.emit("No output device: " + (self.engine.reason or "playback is off"))
        self._update_controls()

    @Slot()
    def pause(self) -> None:
        self.engine.pause()
        self._update_controls()

    @Slot()
    def toggle_play(self) -> None:
        if self.engine.playing:
            self.pause()
        else:
            self.play()

    @Slot()
    def stop(self) -> None:
        self.engine.stop()
        self._update_controls()
        self._emit_playhead(force=True)

    def _on_device_chosen(self, i: int) -> None:
        index = self.device_box.itemData(i)
        if index is None:
            return
        self.engine.set_device(index)
        if not self.engine.available:
            self.errorOccurred.emit(self.engine.reason or "the device cannot be used")
        self._refresh_device_state()
        self._relabel_buttons()

    # ------------------------------------------------------------------ blind test
    @Slot()
    def open_blind_test(self) -> BlindABDialog | None:
        """Open the blind A/B dialog; while it is open the version buttons hide the audible version."""
        tracks = self.engine.tracks
        if len(tracks) < 2:
            self.errorOccurred.emit("A blind test needs at least two versions")
            return None
        dialog = BlindABDialog([t.name for t in tracks], self._blind_listen, parent=self,
                               play_pause=self.toggle_play)
        self._blind = dialog
        # Loudness matching on: a louder version would give itself away.
        self._blind_match_before = self.engine.loudness_match
        self.set_loudness_match(True)
        self.match_check.setEnabled(False)
        self.version_box.setEnabled(False)
        with QSignalBlocker(self.version_group):
            self.version_group.setExclusive(False)
            for b in self.version_buttons:
                b.setChecked(False)
        self.gain_label.setText("(hidden)")
        dialog.finished.connect(self._blind_closed)
        dialog.revealed.connect(self._blind_revealed)
        dialog.changed.connect(self._blind_changed)
        dialog.open()
        return dialog

    def _blind_revealed(self, tally: dict) -> None:
        dialog = self._blind
        trials = [] if dialog is None else [
            {"mapping": {label: dialog.names[i] for label, i in t.mapping.items()}, "vote": t.vote,
             "preferred": dialog.names[t.mapping[t.vote]] if t.vote else None} for t in dialog.trials]
        self.blind_results.append({"recording": getattr(self.recording, "name", ""),
                                   "versions": sorted({n for t in trials for n in t["mapping"].values()}),
                                   "tally": {str(k): int(v) for k, v in tally.items()}, "trials": trials})
        ws = self._workspace()
        if ws is not None:
            ws.set_blind_test(None)
            ws.set_blind_results(self.blind_results)

    def _blind_listen(self, index: int) -> None:
        self.engine.select_version(index)

    def _blind_closed(self, _result: int) -> None:
        self._blind = None
        ws = self._workspace()
        if ws is not None:
            ws.set_blind_test(None)
        self.match_check.setEnabled(True)
        self.version_box.setEnabled(True)
        self.set_loudness_match(self._blind_match_before)
        self.version_group.setExclusive(True)
        self.select_version(self.engine.selected_version)

    # ------------------------------------------------------------------ display
    def _track_versions(self) -> list:
        """The recording's version behind each engine track (``None`` where they do not line up)."""
        rec = self.recording
        tracks = self.engine.tracks
        if rec is None:
            return [None] * len(tracks)
        versions = list(rec.versions)
        return [versions[i] if i < len(versions) and versions[i].name == t.name else None
                for i, t in enumerate(tracks)]

    def _rebuild_buttons(self) -> None:
        for b in self.version_buttons:
            self.version_group.removeButton(b)
            b.deleteLater()
        if self.lab_button is not None:
            self.lab_button.deleteLater()
            self.lab_button = None
        self.version_buttons = []
        self._lab_actions: dict[int, object] = {}
        versions = self._track_versions()
        rec = self.recording
        # Residuals sit after their enhanced version, as in the Version box and the Recordings tree.
        order = display_order(rec) if rec is not None and all(v is not None for v in versions) \
            else list(range(len(versions)))
        order = [i for i in order if i < len(versions)]
        grouped = lab_grouped([v for v in versions if v is not None])
        buttons: dict[int, QToolButton] = {}
        for i in range(len(self.engine.tracks)):
            b = self._tool("", "", checkable=True)
            self.version_group.addButton(b, i)
            buttons[i] = b
            self.version_buttons.append(b)
        lab_indices = [i for i in order if grouped and is_lab(versions[i])]
        for i in order:
            if i in lab_indices:
                if self.lab_button is None:
                    self.lab_button = self._lab_group_button()
                    self.version_layout.insertWidget(self.version_layout.count() - 1, self.lab_button)
                buttons[i].hide()   # chosen through the group's menu (keys still reach it)
                continue
            self.version_layout.insertWidget(self.version_layout.count() - 1, buttons[i])
        if self.lab_button is not None:
            menu = self.lab_button.menu()
            for i in lab_indices:
                act = menu.addAction(self.engine.tracks[i].name)
                act.setCheckable(True)
                act.triggered.connect(lambda _checked=False, i=i: self.select_version(i))
                self._lab_actions[i] = act
        self._relabel_buttons()
        sel = self.engine.selected_version
        if sel < len(self.version_buttons):
            self.version_buttons[sel].setChecked(True)
        self._update_lab_button()
        self._update_gain_label()
        self._update_controls()

    def _lab_group_button(self) -> QToolButton:
        b = self._tool("", "The phase lab's versions (oracle masks, swaps, Griffin–Lim): choose one")
        b.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        b.setMenu(QMenu(b))
        b.setCheckable(True)
        return b

    def _update_lab_button(self) -> None:
        """The group button reads the lab version that is audible, or how many it holds."""
        b = self.lab_button
        if b is None:
            return
        sel = self.engine.selected_version
        for i, act in self._lab_actions.items():
            act.setChecked(i == sel and self._blind is None)
        if sel in self._lab_actions and self._blind is None:
            b.setText(f"{version_letter(sel)}: {self.engine.tracks[sel].name}")
            b.setChecked(True)
        else:
            b.setText(f"Phase lab ({len(self._lab_actions)})")
            b.setChecked(False)

    def _relabel_buttons(self) -> None:
        tracks = self.engine.tracks
        match = self.engine.loudness_match
        texts = self._fit_button_names([t.name for t in tracks[:len(self.version_buttons)]])
        for i, (b, t) in enumerate(zip(self.version_buttons, tracks)):
            g = t.matched if match else t.plain
            key = f" (key {i + 1})" if i < 9 else ""
            b.setText(texts[i])
            lufs = f"{t.loudness.lufs:.1f} LUFS" if t.loudness.lufs is not None else t.loudness.reason
            bad = f"\n{t.silenced_samples} NaN/Inf samples play as silence" if t.silenced_samples else ""
            b.setToolTip(f"{version_letter(i)}: {t.name}{key}\nloudness {lufs}, peak {t.loudness.peak_dbfs:.1f} dBFS\n"
                         f"plays at {gain_label(g)}{bad}")
            if i in getattr(self, "_lab_actions", {}):
                self._lab_actions[i].setText(f"{version_letter(i)}: {t.name}{key}  ({gain_label(g)})")

    def _fit_button_names(self, names: list[str]) -> list[str]:
        """Button texts ``A: name``: full names where every shown button fits the bar, otherwise names
        shortened (a shared prefix dropped, then elided in the middle) only as far as they stay distinct
        from each other; the bar scrolls sideways when even those do not fit. Full names are in the
        tooltips."""
        buttons = self.version_buttons
        if not buttons:
            return []
        # Buttons and the engine's tracks can differ in number for a moment (a resize while a burst of new
        # versions waits to be applied): label the ones that have a track. Lab versions are in the menu.
        shown = [i for i in range(min(len(buttons), len(names))) if i not in self._lab_actions]
        margins = self.version_layout.contentsMargins()
        extra = self.lab_button.sizeHint().width() + self.version_layout.spacing() if self.lab_button else 0
        room = (self.version_scroll.viewport().width() - margins.left() - margins.right() - extra
                - self.version_layout.spacing() * max(len(shown) - 1, 0))
        metrics = QFontMetrics(buttons[0].font())
        # Padding and frame of a button: measured on one that shows text (an empty one has a minimum width).
        b0 = next((b for b in buttons if b.text()), None)
        chrome = (b0.sizeHint().width() - metrics.horizontalAdvance(b0.text())) if b0 is not None else 8
        chrome = max(chrome, 6) + 1   # a pixel of rounding slack per button
        prefix_w = {i: metrics.horizontalAdvance(f"{version_letter(i)}: ") + chrome for i in shown}
        labels = distinct_labels([names[i] for i in shown], metrics.horizontalAdvance,
                                 room - sum(prefix_w.values()))
        texts = [f"{version_letter(i)}: {n}" for i, n in enumerate(names)]
        for i, label in zip(shown, labels):
            texts[i] = f"{version_letter(i)}: {label}"
        return texts

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt naming
        if obj is self.version_scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._relabel_buttons()
        return super().eventFilter(obj, event)

    def _update_gain_label(self) -> None:
        if self._blind is not None:
            return
        tracks = self.engine.tracks
        sel = self.engine.selected_version
        if sel >= len(tracks):
            self.gain_label.setText("")
            return
        t = tracks[sel]
        self.gain_label.setText(gain_label(t.matched if self.engine.loudness_match else t.plain))

    def gain_readout(self) -> list[str]:
        """Per-version gain text as shown in the tooltips (for tests and the status bar)."""
        match = self.engine.loudness_match
        return [gain_label(t.matched if match else t.plain) for t in self.engine.tracks]

    def _update_controls(self) -> None:
        has = bool(self.engine.tracks)
        playing = self.engine.playing
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")
        self.play_button.setEnabled((has or self._deferred_load is not None) and self.engine.available)
        if not self.engine.available:
            self.play_button.setToolTip("No output device: " + (self.engine.reason or ""))
        else:
            self.play_button.setToolTip("Play / pause (Space)")
        # Stop means "stop playing": with nothing that can play (no device) it is as unavailable as Play.
        self.stop_button.setEnabled(self.play_button.isEnabled() or playing)
        self.loop_button.setEnabled(has)
        self.blind_button.setEnabled(len(self.engine.tracks) >= 2)
        if playing != self._was_playing:
            self._was_playing = playing
            self.playingChanged.emit(playing)

    def _emit_playhead(self, force: bool = False) -> None:
        t = self.engine.playhead_s
        if force or t != self._last_emitted:
            self._last_emitted = t
            self.position_label.setText(f"{seconds_label(t)} / {seconds_label(self.engine.duration_s)}")
            self.playheadMoved.emit(t)

    def _poll(self) -> None:
        if self.engine.playing:
            self._emit_playhead()
        if self.engine.playing != self._was_playing:
            self._emit_playhead(force=True)  # reached the end: show where it stopped
            self._update_controls()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the timer and close the audio stream (call when the main window closes)."""
        self._timer.stop()
        self._load_after = None
        self._load_pool.clear()
        self._load_pool.waitForDone(30000)
        self.engine.close()
