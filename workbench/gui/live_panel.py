"""The Live panel: the microphone (or a file played as if live) through a streaming model, with the input's
and output's spectrograms scrolling, bypass, strength, model switching, takes, and the latency budget.

The panel is a thin view over :class:`workbench.core.live.engine.LiveEngine`: admission (the causality
probe and the per-block cost) runs on a worker; the engine's callback and processing thread never see Qt.
A display timer reads the engine's figures and its rings (published positions only, no lock) at about
30 frames per second and scrolls the two images.
"""

from __future__ import annotations

import html
import json

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QSlider, QVBoxLayout, QWidget)

from ..core.errors import WorkbenchError, one_line
from ..core.live.chain import RESAMPLE_QUALITIES, Admission, admit
from ..core.live.engine import LiveConfig, LiveEngine, list_devices
from ..core.live.scope import ScrollingSpectrogram, live_views
from ..core.live.take import add_live_file_result, file_input, take_name, take_to_recording
from ..core.views.registry import view as view_spec
from .pane_colours import KIND_COLORMAPS
from .workers import GeneratorWorker

RATES = (48000, 44100, 32000, 16000)
BLOCKS_MS = (5, 10, 20, 40)



def saved_chains(settings) -> dict[str, str]:
    """The chains saved in the Edit panel (name -> spec), from the application's settings."""
    from .edit_panel import SETTINGS_CHAINS
    if settings is None:
        return {}
    try:
        data = json.loads(str(settings.value(SETTINGS_CHAINS, "{}") or "{}"))
    except (ValueError, TypeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

class LivePanel(QWidget):
    """Live mode's controls, figures and scrolling spectrograms.

    Signals:
        failed(str): one line for the status bar (a refused model, a device that would not open).
        takeAdded(object): a take or a file's live result became a recording/version.
    """

    failed = Signal(str)
    takeAdded = Signal(object)

    def __init__(self, document=None, parent: QWidget | None = None, settings=None):
        super().__init__(parent)
        self.document = document
        self.settings = settings
        self.engine: LiveEngine | None = None
        self.admission: Admission | None = None
        self.takes_folder = Path.home() / "workbench-takes"
        self._worker: GeneratorWorker | None = None
        self._file_rec = None
        self._awaiting_take = False
        #: admissions by (model, rate, block, resampling): the probe and the timing run once per setting
        self._admitted: dict[tuple, Admission] = {}
        self._ticks = 0
        self._measured: int | None = None
        self._scopes: list[ScrollingSpectrogram] = []
        self._build()
        self.refresh_devices()
        self.refresh_models()
        self.timer = QTimer(self, interval=33)
        self.timer.timeout.connect(self.tick)
        if document is not None:
            document.catalogueChanged.connect(self.refresh_models)

    # ------------------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        setup = QGroupBox("Devices and model")
        form = QFormLayout(setup)
        self.input_box, self.output_box = QComboBox(), QComboBox()
        for box in (self.input_box, self.output_box):  # long device names must not widen the dock
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(16)
        self.rate_box, self.block_box = QComboBox(), QComboBox()
        for r in RATES:
            self.rate_box.addItem(f"{r / 1000:g} kHz", r)
        for ms in BLOCKS_MS:
            self.block_box.addItem(f"{ms} ms", ms)
        self.block_box.setCurrentIndex(BLOCKS_MS.index(10))
        self.model_box = QComboBox()
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_box.setMinimumContentsLength(16)
        self.model_box.setToolTip("models with a streaming path, and saved chains; each is probed for causality and "
                                  "timed per block before it goes live. Type a chain as ids joined by '+' "
                                  "(rnnoise+deepfilternet3) and press Enter")
        self.model_box.setEditable(True)
        self.model_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.headroom_box = QComboBox()
        for blocks in (0, 1, 2, 4):
            self.headroom_box.addItem(f"{blocks} block{'s' if blocks != 1 else ''}", blocks)
        self.headroom_box.setToolTip("extra delay that lets a late block still arrive in time")
        self.quality_box = QComboBox()
        for q in RESAMPLE_QUALITIES:
            self.quality_box.addItem(q, q)
        self.quality_box.setCurrentIndex(RESAMPLE_QUALITIES.index("HQ"))
        self.quality_box.setToolTip("soxr quality when the model's rate differs from the device's: HQ's filters "
                                    "add about 36 ms each way at 48 <-> 16 kHz; QQ adds none but aliases")
        rate_row, timing_row = QHBoxLayout(), QHBoxLayout()
        for w in (self.rate_box, QLabel("block"), self.block_box):
            rate_row.addWidget(w)
        for w in (self.headroom_box, QLabel("resampling"), self.quality_box):
            timing_row.addWidget(w)
        rate_row.addStretch(1)
        timing_row.addStretch(1)
        form.addRow("Input", self.input_box)
        form.addRow("Output", self.output_box)
        form.addRow("Rate", rate_row)
        form.addRow("Headroom", timing_row)
        form.addRow("Model", self.model_box)
        layout.addWidget(setup)

        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.setToolTip("open the devices and enhance the input live")
        self.bypass_box = QCheckBox("Bypass")
        self.bypass_box.setToolTip("hear the raw input, aligned with the enhanced one (5 ms crossfade)")
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(0, 100)
        self.strength_slider.setValue(100)
        self.strength_slider.setToolTip("dry/wet mix, exact because the dry path is delayed by the model's latency")
        self.strength_label = QLabel("100%")
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.setEnabled(False)
        self.record_button.setToolTip("record a take: the microphone and what was heard become a recording")
        for w in (self.start_button, self.bypass_box, QLabel("Strength"), self.strength_slider, self.strength_label,
                  self.record_button):
            row.addWidget(w)
        self.strength_slider.setMinimumWidth(60)
        layout.addLayout(row)
        row2 = QHBoxLayout()
        self.play_file_button = QPushButton("Play recording as if live")
        self.play_file_button.setToolTip("run the current recording through the live path in real time and add "
                                         "its result as a version beside the offline one")
        self.folder_button = QPushButton("Takes folder…")
        self.folder_button.setToolTip(str(self.takes_folder))
        row2.addWidget(self.play_file_button)
        row2.addWidget(self.folder_button)
        row2.addStretch(1)
        layout.addLayout(row2)

        figures = QGroupBox("Latency and load")
        fl = QVBoxLayout(figures)
        self.latency_label = QLabel("not running")
        self.latency_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.load_bar = QProgressBar()
        self.load_bar.setRange(0, 150)
        self.load_bar.setFormat("load %v%")
        self.load_bar.setToolTip("processing time per block / block period (median of the last blocks)")
        self.drop_label = QLabel("")
        self.drop_label.setWordWrap(True)
        fl.addWidget(self.latency_label)
        fl.addWidget(self.load_bar)
        fl.addWidget(self.drop_label)
        fl.setSpacing(2)
        layout.addWidget(figures)

        scope_row = QHBoxLayout()
        scope_row.addWidget(QLabel("View"))
        self.view_box = QComboBox()
        for name in live_views():
            self.view_box.addItem(view_spec(name).label, name)
        scope_row.addWidget(self.view_box)
        scope_row.addStretch(1)
        layout.addLayout(scope_row)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumHeight(260)
        self.plots, self.images = [], []
        for i, title in enumerate(("Input", "Output (heard)")):
            plot = self.graphics.addPlot(row=i, col=0, title=title)
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
            plot.setLabel("left", "kHz")
            img = pg.ImageItem()
            plot.addItem(img)
            self.plots.append(plot)
            self.images.append(img)
        self.plots[1].setXLink(self.plots[0])
        self.plots[1].setLabel("bottom", "s (ago)")
        layout.addWidget(self.graphics, 1)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        layout.insertWidget(3, self.status_label)
        self.latency_label.setWordWrap(True)

        self.start_button.toggled.connect(self._on_start_toggled)
        self.bypass_box.toggled.connect(self._on_bypass)
        self.strength_slider.valueChanged.connect(self._on_strength)
        self.record_button.toggled.connect(self._on_record)
        self.model_box.activated.connect(self._on_model_chosen)
        self.model_box.lineEdit().returnPressed.connect(lambda: self._on_model_chosen(-1))
        self.view_box.currentIndexChanged.connect(lambda _i: self._apply_colormap())
        self.play_file_button.clicked.connect(self.play_current_as_live)
        self.folder_button.clicked.connect(self._choose_folder)
        self._apply_colormap()

    # ------------------------------------------------------------------------------------------ lists

    def refresh_devices(self) -> None:
        devices, (di, do), reason = list_devices()
        for box, default, want in ((self.input_box, di, "inputs"), (self.output_box, do, "outputs")):
            box.clear()
            box.addItem("system default", None)
            for d in devices:
                if getattr(d, want) > 0:
                    box.addItem(d.label + (" — default" if d.index == default else ""), d.index)
        if reason:
            self.status_label.setText(reason)

    def refresh_models(self) -> None:
        current = self.model_box.currentData()
        self.model_box.clear()
        self.model_box.addItem("none (pass-through)", None)
        if self.document is None:
            return
        for entry in self.document.catalogue.known_entries():
            info = entry.info
            if "streaming" in info.paths and info.causal is not False:
                self.model_box.addItem(f"{info.id} ({info.latency_ms:.0f} ms)", entry.spec)
        for name, spec in saved_chains(self.settings).items():
            self.model_box.addItem(f"{name} (chain)" if name != spec else f"{spec} (chain)", spec)
        i = self.model_box.findData(current)
        self.model_box.setCurrentIndex(max(i, 0))

    def model_spec(self) -> str | None:
        """The chosen model's spec: a listed entry's, or a typed id or chain (``None``: pass-through)."""
        i = self.model_box.currentIndex()
        text = self.model_box.currentText().strip()
        if i >= 0 and self.model_box.itemText(i) == self.model_box.currentText():
            return self.model_box.itemData(i)
        return text or None

    # ------------------------------------------------------------------------------------------ start/stop

    def config(self) -> LiveConfig:
        rate = int(self.rate_box.currentData())
        return LiveConfig(rate=rate, block=max(16, int(rate * self.block_box.currentData() / 1000)),
                          input_device=self.input_box.currentData(), output_device=self.output_box.currentData(),
                          output_channels=1, headroom_blocks=float(self.headroom_box.currentData()))

    def _admit_later(self, spec: str | None, on_ok) -> None:
        """Load and admit ``spec`` on a worker, then call ``on_ok(admission or None)`` on the GUI thread."""
        cfg = self.config()
        quality = self.quality_box.currentData()
        if spec is None:
            on_ok(None)
            return
        key = (spec, cfg.rate, cfg.block, quality)
        if key in self._admitted:  # probed and timed before at these settings: start at once
            on_ok(self._admitted[key])
            return
        catalogue = self.document.catalogue if self.document is not None else None

        def work():
            if catalogue is not None:
                enhancer = catalogue.load(spec)
            else:
                from ..core.enhance.registry import load_enhancer
                enhancer = load_enhancer(spec)
            return admit(enhancer, cfg.rate, cfg.block, quality=quality)

        def remember(admission) -> None:
            self._admitted[key] = admission
            on_ok(admission)

        self.status_label.setText(f"checking {spec}: causality probe and per-block cost …")
        self._worker = GeneratorWorker(work)
        self._worker.returned.connect(remember)
        self._worker.errored.connect(self._on_admit_failed)
        self._worker.start()

    def _on_admit_failed(self, exc) -> None:
        message = str(exc) if isinstance(exc, WorkbenchError) else one_line(exc)
        self.status_label.setText(f"refused: {message}")
        self.failed.emit(message)
        self.start_button.blockSignals(True)
        self.start_button.setChecked(False)
        self.start_button.blockSignals(False)
        self.start_button.setText("Start")

    def _on_start_toggled(self, on: bool) -> None:
        if on:
            self.start_button.setText("Stop")
            self._admit_later(self.model_spec(), self._start_with)
        else:
            self.stop()

    def _start_with(self, admission: Admission | None) -> None:
        if not self.start_button.isChecked():
            return  # stopped while the model was being checked
        engine = LiveEngine(self.config(), admission)
        try:
            engine.start()
        except WorkbenchError as exc:
            self._on_admit_failed(exc)
            return
        self.attach_engine(engine, admission)

    def attach_engine(self, engine: LiveEngine, admission: Admission | None) -> None:
        """Show and control a started engine (also used for a file played as if live)."""
        self.engine, self.admission = engine, admission
        self._measured = None
        engine.set_bypass(self.bypass_box.isChecked())
        engine.set_strength(self.strength_slider.value() / 100)
        self._scopes = [ScrollingSpectrogram(engine.mic, engine.rate), ScrollingSpectrogram(engine.heard, engine.rate)]
        for plot, scope in zip(self.plots, self._scopes):
            plot.setXRange(-scope.duration_s, 0, padding=0)
            plot.setYRange(0, engine.rate / 2000, padding=0)
        self.record_button.setEnabled(engine._file is None)
        self.play_file_button.setEnabled(False)
        self.status_label.setText(f"live: {engine.model_id}" + (f" — {admission.causality}; {admission.cost.text()}"
                                                                 if admission and admission.cost else ""))
        self.timer.start()
        self.tick()

    def stop(self) -> None:
        """Stop the engine (device, thread, model streams); a take in progress is kept."""
        if self.record_button.isChecked():
            self.record_button.setChecked(False)
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.stop()
            if self._awaiting_take:  # stopped before the take's tail was heard: keep what there is
                self._collect_take(engine)
        self.timer.stop()
        self.start_button.blockSignals(True)
        self.start_button.setChecked(False)
        self.start_button.blockSignals(False)
        self.start_button.setText("Start")
        self.record_button.setEnabled(False)
        self.play_file_button.setEnabled(True)

    def shutdown(self) -> None:
        self.stop()
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait()

    # ------------------------------------------------------------------------------------------ controls

    def _on_bypass(self, on: bool) -> None:
        if self.engine is not None:
            self.engine.set_bypass(on)

    def _on_strength(self, value: int) -> None:
        self.strength_label.setText(f"{value}%")
        if self.engine is not None:
            self.engine.set_strength(value / 100)

    def _on_model_chosen(self, _index: int) -> None:
        if self.engine is None or self.engine._file is not None:
            return
        spec = self.model_spec()
        if spec is None:
            self.bypass_box.setChecked(True)
            return
        self._admit_later(spec, self._switch_to)

    def _switch_to(self, admission: Admission | None) -> None:
        engine = self.engine
        if engine is None or admission is None:
            return
        why = engine.can_switch_to(admission)
        if why is None:
            try:
                engine.switch_model(admission)
            except WorkbenchError as exc:
                self.status_label.setText(str(exc))
                return
            self.admission = admission
            self.status_label.setText(f"switched to {admission.enhancer.info.id} (crossfaded on a block boundary)")
            return
        # A longer pipeline delay cannot be added without a gap: restart with the new model.
        self.status_label.setText(f"{why}; restarting")
        engine.stop()
        fresh = LiveEngine(self.config(), admission)
        try:
            fresh.start()
        except WorkbenchError as exc:
            self.engine = None
            self._on_admit_failed(exc)
            return
        self.attach_engine(fresh, admission)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for live takes", str(self.takes_folder))
        if folder:
            self.takes_folder = Path(folder)
            self.folder_button.setToolTip(folder)

    def _on_record(self, on: bool) -> None:
        engine = self.engine
        if engine is None:
            return
        if on:
            engine.start_take()
            self.record_button.setText("Stop recording")
            return
        self.record_button.setText("Record")
        # The take ends once the result of its last sample was played (a pipeline delay later): the
        # display timer picks it up, so the GUI never waits for the audio.
        engine.stop_take(timeout_s=0)
        self._awaiting_take = True
        self.tick()

    def _collect_take(self, engine: LiveEngine) -> None:
        take = engine.take_result
        if take is None:
            return
        self._awaiting_take = False
        engine.take_result = None
        if len(take.microphone) == 0:
            self.status_label.setText("the take was empty")
            return
        self.add_take(take)

    def add_take(self, take) -> None:
        """A take becomes a recording (microphone) with a version (what was heard)."""
        if self.document is None:
            return
        info = self.admission.enhancer.info if self.admission is not None else None
        try:
            self.takes_folder.mkdir(parents=True, exist_ok=True)
            rec = take_to_recording(take, self.document.open, self.takes_folder, info, take_name())
        except (WorkbenchError, OSError) as exc:
            self.failed.emit(one_line(exc))
            self.status_label.setText(f"take not saved: {one_line(exc)}")
            return
        self.status_label.setText(f"take {rec.name}: {len(take.microphone) / take.rate:.1f} s, "
                                  f"{take.dropped_blocks} blocks played dry")
        self.takeAdded.emit(rec)

    def play_current_as_live(self) -> None:
        """Run the current recording through the live path on the output device; its result becomes a version."""
        rec = self.document.recording if self.document is not None else None
        if rec is None:
            self.failed.emit("open a recording to play it as if live")
            return
        if self.engine is not None:
            self.stop()
        self._file_rec = rec
        self._admit_later(self.model_spec(), self._play_with)

    def _play_with(self, admission: Admission | None) -> None:
        rec = self._file_rec
        cfg = self.config()
        engine = LiveEngine(cfg, admission)
        try:
            channel = self.document.channel if self.document.channel < rec.source.channels else 0
            engine.start_file(file_input(rec, cfg.rate, channel))
        except WorkbenchError as exc:
            self._on_admit_failed(exc)
            return
        self._file_channel = channel
        self.attach_engine(engine, admission)
        self.start_button.blockSignals(True)
        self.start_button.setChecked(True)
        self.start_button.setText("Stop")
        self.start_button.blockSignals(False)

    def _finish_file(self) -> None:
        engine = self.engine
        take = engine.stop_take()
        self.stop()
        if take is None:
            return
        info = self.admission.enhancer.info if self.admission is not None else None
        try:
            version = add_live_file_result(self._file_rec, take, info, self._file_channel)
        except (WorkbenchError, ValueError) as exc:
            self.failed.emit(one_line(exc))
            return
        self.status_label.setText(f"added {version.name} to {self._file_rec.name}: {take.dropped_blocks} blocks "
                                  "played dry")
        self.takeAdded.emit(version)

    # ------------------------------------------------------------------------------------------ display

    def _apply_colormap(self) -> None:
        spec = view_spec(self.view_box.currentData() or "magnitude")
        name = "viridis" if spec.colormap_kind == "sequential" else KIND_COLORMAPS[spec.colormap_kind]
        cmap = pg.colormap.get(name)
        for img in self.images:
            img.setColorMap(cmap)

    def tick(self) -> None:
        """Display-rate refresh: figures, then the scrolled images."""
        engine = self.engine
        if engine is None:
            return
        if engine._file is not None and engine.finished.is_set():
            self._finish_file()
            return
        if self._awaiting_take:
            self._collect_take(engine)
        self._ticks += 1
        stats = engine.stats(measure=self._ticks % 15 == 1)  # the correlation about twice a second
        lat = stats.latency
        if stats.measured_lag is not None:
            self._measured = stats.measured_lag
        measured = f"{lat.ms(self._measured):.1f} ms" if self._measured is not None else "— (needs sound)"
        rows = [("algorithmic (frame + look-ahead)", f"{lat.ms(lat.algorithmic):.1f} ms",
                 "resampling and framing", f"{lat.ms(lat.resampling):.1f} ms"),
                ("block" + (" + headroom" if lat.headroom else ""), f"{lat.ms(lat.block + lat.headroom):.1f} ms",
                 "device buffers in / out", f"{1000 * lat.device_in_s:.0f} / {1000 * lat.device_out_s:.0f} ms"),
                ("pipeline reported", f"<b>{lat.ms(lat.pipeline):.1f} ms</b>", "measured on the signals",
                 f"<b>{measured}</b>"),
                ("end to end (reported)", f"<b>{1000 * lat.total_s:.1f} ms</b>", "", "")]
        sched = stats.scheduling.removeprefix("scheduling: ")
        self.latency_label.setText("<table cellspacing=0 cellpadding=1>" + "".join(
            f"<tr><td>{a}</td><td align=right>&nbsp;{b}&nbsp;&nbsp;</td><td>{c}</td><td align=right>&nbsp;{d}</td></tr>"
            for a, b, c, d in rows) + f"<tr><td colspan=4>threads: {html.escape(sched)}</td></tr></table>")
        self.load_bar.setValue(int(min(150, round(100 * stats.load_median))))
        text = (f"{stats.model}{' (bypass)' if stats.bypass else ''}: {stats.dropped} blocks played dry (late), "
                f"{stats.resyncs} resyncs, {stats.xruns} device xruns")
        if stats.fallback_recent:
            text += " — OVERLOAD: falling back to bypass"
        if stats.error:
            text += f" — model failed: {stats.error}"
        for note in stats.notes:
            text += f"\n{note}"
        self.drop_label.setText(text)
        name = self.view_box.currentData() or "magnitude"
        for img, scope in zip(self.images, self._scopes):
            scope.update()
            values, levels = scope.image(name)
            img.setImage(values, autoLevels=False, levels=levels)
            img.setRect(-scope.duration_s, 0, scope.duration_s, engine.rate / 2000)
