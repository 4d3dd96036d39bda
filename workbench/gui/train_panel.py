"""The Train panel: fine-tune or train a model on the person's own data, watch it learn, A/B the result.

The panel only writes a training config (:class:`~workbench.core.workflows.train_config.TrainConfig`, the same TOML
``workbench train`` reads) and runs ``python -m workbench train CONFIG --progress json`` in a separate
process (:class:`QProcess`): a crash or a runaway model cannot take the window down, Stop sends SIGTERM
(the run finishes its step and writes its checkpoint), and pressing Train again on the same folder continues
from that checkpoint. Each JSON event moves the progress bar, the loss curves (train per step, validation per
epoch, per loss term) and the validation table; when the run is done its ``model.pt`` is loaded into the
session's model catalogue, so it appears in the Models panel at once beside the pretrained model.

*Use noise from the current recording* asks the window for the open recording's noise-only spans (the
span or pauses the Edit panel learned the noise from, else the time selection, else the pauses of the
speech activity lane, else "its pauses", found by the trainer) and writes them into the config as
``noise_recording`` / ``noise_spans_s``: a person goes from a noisy recording to a model adapted to its
noise without preparing a noise folder.
"""

from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QRadioButton, QScrollArea, QSpinBox, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout,
                               QWidget)

from ..core.errors import WorkbenchError
from ..core.workflows.batch.backends import ray_installed
from ..core.workflows.train_config import ARCHITECTURES, BUNDLED_INITS, TrainConfig, write_config
from .workers import GeneratorWorker

#: Loss choices offered in the combo (any weighted sum can be typed).
LOSS_CHOICES = ("gtcrn_hybrid", "mae", "mse", "neg_si_sdr", "0.5*mae + 0.5*mrstft", "complex_mse_c + mag_mse_c",
                "mag_mse", "irm", "cirm", "neg_sdr", "mrstft")
METRIC_COLUMNS = (("pesq_wb", "PESQ-WB"), ("estoi", "ESTOI"), ("si_sdr", "SI-SDR"), ("loss", "val loss"))


@dataclass(frozen=True)
class RecordingNoise:
    """Noise-only spans of a recording for training.

    Attributes:
        path: the recording's file.
        spans_s: ``[[start, stop], ...]`` seconds; ``None``: its pauses, found by the speech activity detector.
        origin: where the spans came from, in words ("the time selection", ...).
    """

    path: str
    spans_s: list | None
    origin: str

    def describe(self) -> str:
        name = Path(self.path).name
        if self.spans_s is None:
            return f"{name}: its pauses (found when training starts)"
        total = sum(b - a for a, b in self.spans_s)
        return f"{name}: {len(self.spans_s)} span(s), {total:.1f} s, from {self.origin}"


def _folder_row(edit: QLineEdit, parent: QWidget, title: str) -> QWidget:
    box = QWidget(parent)
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    button = QPushButton("…", box)
    button.setFixedWidth(28)
    button.setToolTip(f"Choose the {title.lower()}")

    def choose() -> None:
        folder = QFileDialog.getExistingDirectory(parent, title, edit.text() or str(Path.home()))
        if folder:
            edit.setText(folder)

    button.clicked.connect(choose)
    lay.addWidget(button)
    return box


class TrainPanel(QWidget):
    """Dock panel that trains models into the session's catalogue.

    Signals:
        modelReady(str): path of a trained ``model.pt`` just added to the catalogue.
        failed(str): one line for the status bar.
    """

    modelReady = Signal(str)
    failed = Signal(str)

    def __init__(self, catalogue=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.catalogue = catalogue
        #: asked by *Use noise from the current recording*; the window sets it (raises WorkbenchError when
        #: there is no usable recording)
        self.recording_noise_source: Callable[[], RecordingNoise] | None = None
        self.recording_noise: RecordingNoise | None = None
        self.process: QProcess | None = None
        self._buffer = b""
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._series: dict[str, tuple[list, list]] = {}
        self._stderr: list[str] = []
        self._loader: GeneratorWorker | None = None
        self._build()
        self.set_recording_noise(None)
        self._on_architecture()
        self._on_data_mode()

    # -- layout -------------------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.tabs = QTabWidget(self)
        setup = QWidget()
        root = QVBoxLayout(setup)
        root.setContentsMargins(2, 2, 2, 2)
        # Scrolled: the form is taller than a 768-pixel screen leaves for a dock; the buttons stay in view.
        setup_scroll = QScrollArea()
        setup_scroll.setWidgetResizable(True)
        setup_scroll.setFrameShape(QFrame.Shape.NoFrame)
        setup_scroll.setWidget(setup)
        self.tabs.addTab(setup_scroll, "Setup")
        data = QGroupBox("Data", self)
        form = QFormLayout(data)
        mode = QWidget(data)
        mode_lay = QHBoxLayout(mode)
        mode_lay.setContentsMargins(0, 0, 0, 0)
        self.mix_radio = QRadioButton("Mix clean × noise", mode)
        self.pairs_radio = QRadioButton("Noisy/clean pairs", mode)
        self.mix_radio.setChecked(True)
        mode_lay.addWidget(self.mix_radio)
        mode_lay.addWidget(self.pairs_radio)
        self.mix_radio.toggled.connect(self._on_data_mode)
        form.addRow(mode)
        self.clean_edit, self.noise_edit, self.pairs_edit = QLineEdit(), QLineEdit(), QLineEdit()
        self.clean_edit.setPlaceholderText("folder of clean speech")
        self.noise_edit.setPlaceholderText("folder of noise (e.g. your noise type)")
        self.pairs_edit.setPlaceholderText("NAME_noisy.wav + NAME_clean.wav, or noisy/ + clean/")
        form.addRow("Clean", _folder_row(self.clean_edit, self, "Clean speech folder"))
        form.addRow("Noise", _folder_row(self.noise_edit, self, "Noise folder"))
        form.addRow("Pairs", _folder_row(self.pairs_edit, self, "Pairs folder"))
        rec_row = QWidget(data)
        rec_lay = QHBoxLayout(rec_row)
        rec_lay.setContentsMargins(0, 0, 0, 0)
        self.recording_button = QPushButton("Use noise from the current recording")
        self.recording_button.setToolTip("Mix the clean speech with the noise-only spans of the open recording: the "
                                         "span or pauses the Edit panel learned the noise from, else the time "
                                         "selection, else its pauses (speech activity)")
        self.recording_button.clicked.connect(self.use_recording_noise)
        self.recording_clear = QPushButton("✕")
        self.recording_clear.setFixedWidth(28)
        self.recording_clear.setToolTip("Do not use the recording's noise")
        self.recording_clear.clicked.connect(lambda: self.set_recording_noise(None))
        rec_lay.addWidget(self.recording_button, 1)
        rec_lay.addWidget(self.recording_clear)
        self.recording_label = QLabel("")
        self.recording_label.setWordWrap(True)
        rec_box = QWidget(data)
        rec_box_lay = QVBoxLayout(rec_box)
        rec_box_lay.setContentsMargins(0, 0, 0, 0)
        rec_box_lay.addWidget(rec_row)
        rec_box_lay.addWidget(self.recording_label)
        form.addRow("Recording", rec_box)
        self.data_form = form
        snr = QWidget(data)
        snr_lay = QHBoxLayout(snr)
        snr_lay.setContentsMargins(0, 0, 0, 0)
        self.snr_low, self.snr_high = QDoubleSpinBox(), QDoubleSpinBox()
        for box, value in ((self.snr_low, -5.0), (self.snr_high, 15.0)):
            box.setRange(-30, 50)
            box.setSuffix(" dB")
            box.setValue(value)
            snr_lay.addWidget(box)
        form.addRow("SNR range", snr)
        self.crop_spin = QDoubleSpinBox()
        self.crop_spin.setRange(0.1, 30.0)
        self.crop_spin.setValue(2.0)
        self.crop_spin.setSuffix(" s")
        self.examples_spin = QSpinBox()
        self.examples_spin.setRange(1, 1_000_000)
        self.examples_spin.setValue(64)
        crop = QWidget(data)
        crop_lay = QHBoxLayout(crop)
        crop_lay.setContentsMargins(0, 0, 0, 0)
        crop_lay.addWidget(self.crop_spin)
        crop_lay.addWidget(QLabel("mixtures/epoch"))
        crop_lay.addWidget(self.examples_spin)
        form.addRow("Crop", crop)
        root.addWidget(data)

        model = QGroupBox("Model and loss", self)
        mform = QFormLayout(model)
        self.arch_combo = QComboBox()
        for a in ARCHITECTURES:
            self.arch_combo.addItem({"gtcrn": "GTCRN (complex mask)", "gcrn": "GCRN (complex mapping)",
                                     "complex_net": "Complex-valued net"}[a], a)
        self.arch_combo.currentIndexChanged.connect(self._on_architecture)
        mform.addRow("Architecture", self.arch_combo)
        self.init_combo = QComboBox()
        self.init_combo.addItem("from scratch", "")
        for init in BUNDLED_INITS:
            self.init_combo.addItem(f"fine-tune {init}", init)
        start = QWidget(model)
        start_lay = QHBoxLayout(start)
        start_lay.setContentsMargins(0, 0, 0, 0)
        start_lay.addWidget(self.init_combo, 1)
        self.freeze_check = QCheckBox("fixed norm statistics")
        self.freeze_check.setToolTip("Keep batch-norm statistics as pretrained (the usual choice for fine-tuning "
                                     "on a few minutes of audio)")
        start_lay.addWidget(self.freeze_check)
        mform.addRow("Start", start)
        self.args_edit = QLineEdit()
        self.args_edit.setPlaceholderText("e.g. channels = 8, hidden = 64")
        self.args_edit.setToolTip("Architecture arguments (TOML key = value pairs); GTCRN takes none")
        mform.addRow("Arguments", self.args_edit)
        self.loss_combo = QComboBox()
        self.loss_combo.setEditable(True)
        self.loss_combo.addItems(LOSS_CHOICES)
        self.loss_combo.setToolTip("A named loss or a weighted sum, e.g. 0.5*mae + 0.5*mrstft "
                                   "(workbench loss-lab --list shows every name with its formula)")
        mform.addRow("Loss", self.loss_combo)
        root.addWidget(model)

        run = QGroupBox("Run", self)
        rform = QFormLayout(run)
        nums = QWidget(run)
        nums_lay = QHBoxLayout(nums)
        nums_lay.setContentsMargins(0, 0, 0, 0)
        self.epochs_spin, self.batch_spin = QSpinBox(), QSpinBox()
        self.epochs_spin.setRange(1, 100000)
        self.epochs_spin.setValue(10)
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setValue(4)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-5, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(1e-3)
        for label, w in (("epochs", self.epochs_spin), ("batch", self.batch_spin), ("lr", self.lr_spin)):
            nums_lay.addWidget(QLabel(label))
            nums_lay.addWidget(w)
        rform.addRow(nums)
        self.out_edit = QLineEdit(str(Path.home() / "workbench-runs" / "my-model"))
        rform.addRow("Run folder", _folder_row(self.out_edit, self, "Run folder"))
        self.restart_check = QCheckBox("start over (ignore the folder's checkpoint)")
        rform.addRow("", self.restart_check)
        self.ray_spin = QSpinBox()
        self.ray_spin.setRange(0, 256)
        self.ray_spin.setSpecialValueText("off (one process)")
        ray_available = ray_installed()
        self.ray_spin.setEnabled(ray_available)
        self.ray_spin.setToolTip("Data-parallel training on this many Ray Train CPU workers (a local Ray instance); "
                                 "progress still arrives per step" if ray_available else
                                 "Ray Train is not installed (the [cluster] extra)")
        rform.addRow("Ray workers", self.ray_spin)
        root.addWidget(run)
        root.addStretch(1)

        progress_tab = QWidget()
        plot_lay = QVBoxLayout(progress_tab)
        plot_lay.setContentsMargins(2, 2, 2, 2)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(140)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.log_check = QCheckBox("logarithmic loss axis (positive values only)")
        self.log_check.toggled.connect(lambda on: self.plot.setLogMode(y=on))
        plot_lay.addWidget(self.log_check)
        plot_lay.addWidget(self.plot, 2)
        self.table = QTableWidget(0, len(METRIC_COLUMNS) + 1)
        self.table.setHorizontalHeaderLabels(["epoch"] + [label for _k, label in METRIC_COLUMNS])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(90)
        plot_lay.addWidget(self.table, 1)
        self.tabs.addTab(progress_tab, "Curves and validation")
        outer.addWidget(self.tabs, 1)

        buttons = QWidget(self)
        blay = QHBoxLayout(buttons)
        blay.setContentsMargins(0, 0, 0, 0)
        self.train_button = QPushButton("Train")
        self.stop_button = QPushButton("Stop")
        self.save_button = QPushButton("Save config…")
        self.stop_button.setEnabled(False)
        self.train_button.setToolTip("Train in a separate process; continues the run folder's checkpoint if there is one")
        self.stop_button.setToolTip("Finish the current step, write the checkpoint and stop (Train continues it)")
        self.train_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._save_config_dialog)
        for b in (self.train_button, self.stop_button, self.save_button):
            blay.addWidget(b)
        outer.addWidget(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        outer.addWidget(self.progress)
        outer.addWidget(self.status)

    def _on_architecture(self) -> None:
        gtcrn = self.arch_combo.currentData() == "gtcrn"
        self.init_combo.setEnabled(gtcrn)
        self.freeze_check.setEnabled(gtcrn)
        self.args_edit.setEnabled(not gtcrn)
        if not gtcrn:
            self.init_combo.setCurrentIndex(0)

    def _on_data_mode(self) -> None:
        mix = self.mix_radio.isChecked()
        for w in (self.clean_edit, self.noise_edit, self.snr_low, self.snr_high, self.examples_spin):
            w.setEnabled(mix)
        self.pairs_edit.setEnabled(not mix)
        # only the rows of the chosen kind of data are shown (rows: mode, clean, noise, pairs, recording, SNR, crop)
        for row, visible in ((1, mix), (2, mix), (3, not mix), (4, mix), (5, mix)):
            self.data_form.setRowVisible(row, visible)

    # -- config -------------------------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        """The run the form describes (raises :class:`WorkbenchError` with one line when it cannot work)."""
        args_text = self.args_edit.text().strip() if self.args_edit.isEnabled() else ""
        try:
            args = tomllib.loads(f"a = {{{args_text}}}")["a"] if args_text else {}
        except tomllib.TOMLDecodeError as exc:
            raise WorkbenchError(f"architecture arguments {args_text!r}: not 'key = value, ...' ({exc})") from None
        out = Path(self.out_edit.text().strip() or ".").expanduser().absolute()
        def folder(edit: QLineEdit) -> str:
            # absolute, so the config means the same from wherever `workbench train` is run
            text = edit.text().strip()
            return str(Path(text).expanduser().absolute()) if text else ""

        data = {"crop_s": self.crop_spin.value()}
        if self.mix_radio.isChecked():
            data.update(clean=[folder(self.clean_edit)] if folder(self.clean_edit) else [],
                        noise=[folder(self.noise_edit)] if folder(self.noise_edit) else [],
                        snr_db=[self.snr_low.value(), self.snr_high.value()],
                        examples_per_epoch=self.examples_spin.value())
            rec = self.recording_noise
            if rec is not None:
                data.update(noise_recording=rec.path, noise_spans_s=[list(s) for s in rec.spans_s or []],
                            noise_from_pauses=rec.spans_s is None)
        else:
            data.update(pairs=folder(self.pairs_edit))
        d = {"run": {"out_dir": str(out), "epochs": self.epochs_spin.value(), "batch_size": self.batch_spin.value(),
                     "lr": self.lr_spin.value()},
             "model": {"architecture": self.arch_combo.currentData(), "args": args,
                       "init": self.init_combo.currentData() or "",
                       "freeze_norm": self.freeze_check.isChecked() and self.freeze_check.isEnabled(),
                       "name": out.name},
             "loss": {"loss": self.loss_combo.currentText().strip()},
             "data": data}
        return TrainConfig.from_dict(d, base_dir=out.parent, where="Train panel")

    def use_recording_noise(self) -> None:
        """Take the noise-only spans of the window's current recording as a noise source."""
        if self.recording_noise_source is None:
            self._fail("no recording window to take the noise from")
            return
        try:
            self.set_recording_noise(self.recording_noise_source())
        except WorkbenchError as exc:
            self._fail(str(exc))

    def set_recording_noise(self, noise: RecordingNoise | None) -> None:
        self.recording_noise = noise
        self.recording_label.setText("" if noise is None else noise.describe())
        self.recording_label.setToolTip("" if noise is None else noise.path)
        self.recording_clear.setEnabled(noise is not None)

    def _save_config_dialog(self) -> None:
        try:
            cfg = self.config()
        except WorkbenchError as exc:
            self._fail(str(exc))
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save training config", str(cfg.out_dir) + ".toml",
                                              "TOML (*.toml)")
        if path:
            try:
                write_config(cfg, path)
            except WorkbenchError as exc:
                self._fail(str(exc))
                return
            self.status.setText(f"saved {path}; run it with: workbench train {path}")

    # -- running ------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        """Write the config into the run folder and start ``workbench train`` on it."""
        if self.running:
            return
        try:
            cfg = self.config()
            cfg.out_dir.mkdir(parents=True, exist_ok=True)
            config_path = write_config(cfg, cfg.out_dir / "config.toml")
        except (WorkbenchError, OSError) as exc:
            self._fail(str(exc))
            return
        self._clear_curves()
        self._stderr = []
        self._buffer = b""
        self.progress.setValue(0)
        self.status.setText("starting the training process…")
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        args = self.command_args(config_path)
        self.process = proc
        self.tabs.setCurrentIndex(1)
        self.train_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        proc.start(sys.executable, args)

    def command_args(self, config_path: Path) -> list[str]:
        """Arguments of ``python`` for the training process the form describes."""
        args = ["-m", "workbench", "train", str(config_path), "--progress", "json"]
        if self.restart_check.isChecked():
            args.append("--restart")
        if self.ray_spin.isEnabled() and self.ray_spin.value() > 0:
            args += ["--ray", str(self.ray_spin.value())]
        return args

    def stop(self) -> None:
        """Ask the run to stop after its current step (SIGTERM); it writes its checkpoint first."""
        if self.running:
            self.status.setText("stopping after this step…")
            self.process.terminate()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop a run before the window closes (the checkpoint is kept; Train continues it next time)."""
        if self.running:
            self.process.terminate()
            if not self.process.waitForFinished(timeout_ms):
                self.process.kill()
                self.process.waitForFinished(2000)
        if self._loader is not None:
            self._loader.cancel()
            self._loader.wait()

    def _read_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    self.handle_event(json.loads(line))
                except (ValueError, KeyError):
                    continue  # a library printed to stdout: not an event

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        self._stderr += [ln for ln in text.splitlines() if ln.strip()]
        self._stderr = self._stderr[-20:]

    def handle_event(self, ev: dict) -> None:
        kind = ev["event"]
        if kind == "start":
            self._total = max(int(ev["total_steps"]), 1)
            resumed = f", continuing at step {ev['resumed_at']}" if ev["resumed_at"] else ""
            workers = f" on {ev['workers']} Ray workers" if ev.get("workers") else ""
            self.status.setText(f"training {ev['parameters']:,} parameters, {ev['total_steps']} steps{workers}{resumed}")
        elif kind == "step":
            self.progress.setValue(int(1000 * ev["step"] / max(ev["total_steps"], 1)))
            self._add_point("train loss", ev["step"], ev["loss"])
            if len(ev["terms"]) > 1:
                for name, value in ev["terms"].items():
                    self._add_point(f"train {name}", ev["step"], value)
            self.status.setText(f"epoch {ev['epoch'] + 1}, step {ev['step']}/{ev['total_steps']}: loss "
                                f"{ev['loss']:.4g} ({ev['audio_s_per_s']:.1f} audio-s/s)")
        elif kind == "epoch":
            for name, value in ev["val"].items():
                if name == "loss" or name in ev["train"]:
                    self._add_point(f"val {name}", ev["step"], value, symbol=True)
            self._add_row(ev)
        elif kind == "stopped":
            self.status.setText(f"stopped at step {ev['step']}; press Train to continue from the checkpoint")
        elif kind == "done":
            self.progress.setValue(1000)
            self.status.setText(f"done: {ev['model']} — adding it to the models…")
            self._add_to_catalogue(ev["model"])

    def _on_finished(self, code: int, _status) -> None:
        self.train_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if code not in (0, 130) and self._stderr:
            error = next((ln for ln in reversed(self._stderr) if ln.startswith("error:")), self._stderr[-1])
            self._fail(error.removeprefix("error: "))

    def _add_to_catalogue(self, path: str) -> None:
        if self.catalogue is None:
            self.modelReady.emit(path)
            return
        worker = GeneratorWorker(self.catalogue.load, path)
        worker.returned.connect(lambda enh: self._on_loaded(path, enh))
        worker.errored.connect(lambda exc: self._fail(str(exc)))
        self._loader = worker
        worker.start()

    def _on_loaded(self, path: str, enhancer) -> None:
        self.status.setText(f"“{enhancer.info.name}” is in the Models panel: run it on a recording and A/B it")
        self.modelReady.emit(path)

    def _fail(self, message: str) -> None:
        self.status.setText(f"⚠ {message}")
        self.failed.emit(message)

    # -- curves and table ---------------------------------------------------------------------------------
    def _clear_curves(self) -> None:
        self.plot.clear()
        legend = self.plot.plotItem.legend
        if legend is not None:
            legend.clear()
        self._curves, self._series = {}, {}
        self.table.setRowCount(0)

    def _add_point(self, name: str, x: float, y: float, symbol: bool = False) -> None:
        xs, ys = self._series.setdefault(name, ([], []))
        xs.append(x)
        ys.append(y)
        curve = self._curves.get(name)
        if curve is None:
            colour = pg.intColor(len(self._curves), hues=9)
            pen = pg.mkPen(colour, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine if symbol else
                           pg.QtCore.Qt.PenStyle.SolidLine)
            curve = self.plot.plot([], [], pen=pen, name=name, symbol="o" if symbol else None, symbolSize=5,
                                   symbolBrush=colour)
            self._curves[name] = curve
        curve.setData(xs, ys)

    def _add_row(self, ev: dict) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(str(ev["epoch"])))
        for col, (key, _label) in enumerate(METRIC_COLUMNS, start=1):
            value = ev["val"].get(key)
            self.table.setItem(row, col, QTableWidgetItem("" if value is None else f"{value:.3f}"))
        self.table.scrollToBottom()
