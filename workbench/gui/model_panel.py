"""The model panel: pick a built-in or loaded model, run it on the current recording off the GUI thread.

Layout: a table of models (name, rate, causal, latency, parameters, processing, source), a
"Load model file..." / "Load model folder..." pair, "Probe", "Enhance" and "Cancel" buttons, a progress
bar, a status line and a details box with the selected model's facts and, once probed, what the probes
measured (causality, latency, real-time factor, parameters, MACs; :mod:`workbench.core.probes`). Model
files and folders can also be dropped on the panel.

Threading: loading a model file and running the engine both happen in a :class:`EngineJob` (a
``QThread``). The job drives a core generator (:func:`workbench.core.enhancer.enhance`) and checks a
cancel flag between its yields; Cancel sets the flag and the job closes the generator, which releases
the model's per-run state. Results travel back by queued signals, and the new version is added to the
recording on the GUI thread.

Integration with the main window's document::

    panel = ModelPanel(lambda: None)
    panel.attach_document(document)   # enhances document.recording, then shows the new version
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PySide6.QtCore import QThread, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPlainTextEdit, QProgressBar,
    QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from ..core.enhancer import Enhancer, EnhancerInfo, enhance, run_to_end
from ..core.errors import Cancelled, WorkbenchError
from ..core.probes import ProbeReport, format_report, probe
from ..core.recording import Recording
from ..core.registry import list_enhancers, load_enhancer
from .workers import lower_current_thread_priority

COLUMNS = ("Model", "Rate", "Causal", "Latency", "Parameters", "Processing", "Source")
MODEL_FILE_FILTER = "Models (*.onnx *.pt *.pth *.tar *.ckpt *.jit *.zip *.bin);;All files (*)"


def format_parameters(n: int | None) -> str:
    if n is None:
        return "?"
    if n == 0:
        return "none"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def info_cells(info: EnhancerInfo) -> tuple[str, ...]:
    causal = "?" if info.causal is None else ("yes" if info.causal else "no")
    return (info.name, ("any" if info.any_rate else f"{info.sample_rate / 1000:g} kHz"), causal,
            f"{info.latency_ms:.1f} ms", format_parameters(info.parameters), info.processing, info.source)


class EngineJob(QThread):
    """Runs one model load and, optionally, one enhancement, on a worker thread.

    Signals:
        loaded(object): the Enhancer, once built (emitted before any processing).
        progress(float, str): fraction 0..1 and a message, at each yield of the engine.
        succeeded(object, float): the ``(frames, channels)`` float32 result and the elapsed seconds.
        failed(str): a message naming the model and the problem.
        cancelled(): the run stopped because :meth:`cancel` was called.
    """

    loaded = Signal(object)
    progress = Signal(float, str)
    succeeded = Signal(object, float)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, spec: str | Path, enhancer: Enhancer | None = None, recording: Recording | None = None,
                 channels: Sequence[int] | None = None, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.enhancer = enhancer
        self.recording = recording
        self.channels = None if channels is None else list(channels)
        self._cancel = False

    def cancel(self) -> None:
        """Ask the job to stop at the engine's next yield (thread-safe: a plain flag); a model running in
        a worker process (model files) is stopped at once, even inside a long call."""
        self._cancel = True
        interrupt = getattr(self.enhancer, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def run(self) -> None:  # runs on the worker thread
        # Background priority: the model must not take the GUI thread's core (see workbench.gui.workers).
        lower_current_thread_priority()
        label = str(self.spec)
        try:
            if self.enhancer is None:
                self.enhancer = load_enhancer(self.spec, isolate=True)
            label = self.enhancer.info.name
            self.loaded.emit(self.enhancer)
            if self.recording is None:
                return
            t0 = time.perf_counter()
            result = run_to_end(enhance(self.enhancer, self.recording.source, channels=self.channels),
                                lambda p: self.progress.emit(p.fraction, p.message), lambda: self._cancel)
            self.succeeded.emit(result, time.perf_counter() - t0)
        except Cancelled:
            self.cancelled.emit()
        except WorkbenchError as exc:
            self.failed.emit(f"{label}: {exc}" if label not in str(exc) and str(self.spec) not in str(exc)
                             else str(exc))
        except ValueError as exc:  # e.g. a channel the recording does not have
            self.failed.emit(f"{label}: {exc}")
        except Exception as exc:  # never let a model take the window down
            self.failed.emit(f"{label}: unexpected {type(exc).__name__}: {exc}")


class _ListJob(QThread):
    """Lists the available models (:func:`list_enhancers`) off the GUI thread.

    Signals:
        listed(object): the list of EnhancerInfo, or the exception listing raised.
    """

    listed = Signal(object)

    def run(self) -> None:  # worker thread
        lower_current_thread_priority()
        try:
            infos = list_enhancers()
        except Exception as exc:  # reported on the GUI thread; a broken plugin must not take the panel down
            self.listed.emit(exc)
            return
        self.listed.emit(infos)


class ProbeJob(QThread):
    """Loads a model (unless given) and runs :func:`workbench.core.probes.probe` on a worker thread.

    Signals:
        progress(float, str): fraction 0..1 and a message, at each yield of the probe.
        succeeded(object): the :class:`~workbench.core.probes.ProbeReport`.
        failed(str): a message naming the model and the problem.
        cancelled(): stopped at a yield because :meth:`cancel` was called.
    """

    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, spec: str, enhancer: Enhancer | None = None, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.enhancer = enhancer
        self._cancel = False

    def cancel(self) -> None:
        self._cancel = True
        interrupt = getattr(self.enhancer, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def run(self) -> None:  # worker thread
        label = str(self.spec)
        try:
            if self.enhancer is None:
                self.enhancer = load_enhancer(self.spec, isolate=True)
            label = self.enhancer.info.name
            report = run_to_end(probe(self.enhancer), lambda p: self.progress.emit(p.fraction, p.message),
                                lambda: self._cancel)
            self.succeeded.emit(report)
        except Cancelled:
            self.cancelled.emit()
        except WorkbenchError as exc:
            self.failed.emit(str(exc) if label in str(exc) else f"{label}: {exc}")
        except Exception as exc:  # a model may raise anything while probed; the window stays up
            self.failed.emit(f"{label}: probe failed with {type(exc).__name__}: {exc}")


def info_text(info: EnhancerInfo, report: ProbeReport | None = None) -> str:
    """The details box: declared facts of a model, then the probe report (or how to get one)."""
    causal = "unknown" if info.causal is None else ("yes" if info.causal else "no")
    lines = [f"{info.name} [{info.id}]", info.description,
             f"rate {info.sample_rate} Hz · causal (declared) {causal} · latency {info.latency_samples} samples "
             f"({info.latency_ms:.1f} ms) · parameters {format_parameters(info.parameters)}",
             f"{info.processing}, block {info.block_samples} samples, family {info.family}, source {info.source}"]
    lines += [f"{k}: {v}" for k, v in info.extra.items()]
    lines.append("")
    lines.append(format_report(report) if report is not None
                 else "Probe: press Probe to measure causality, latency, real-time factor, parameters and MACs.")
    return "\n".join(lines)


class ModelPanel(QWidget):
    """Lists models and runs the selected one on the current recording.

    Args:
        current_recording: returns the Recording to enhance (or ``None`` when nothing is open).
        current_channels: returns the channel indices to process, or ``None`` for all channels.
        show_dialogs: also show errors in a (non-blocking) message box, besides the status line.
        list_now: fill the model table at once; with ``False`` it is filled by the first call of
            :meth:`refresh` or of any method that needs it (the main window defers it past its first paint:
            listing reads model metadata, e.g. DeepFilterNet3's archive, about 0.2 s).

    Signals:
        versionReady(object, object): ``(recording, version)`` after ``recording.add_enhanced``.
        runStarted(str): the model id of a run that started.
        runFinished(str): ``"done"``, ``"cancelled"`` or ``"failed"`` when a run or a load ends.
        errorOccurred(str): a message naming the model (or file) and the problem.
        modelLoaded(object): the EnhancerInfo of a model loaded from a file or folder.
        busyChanged(bool): a load, run or probe started (True) or ended (False).
        probeReady(object): a :class:`~workbench.core.probes.ProbeReport` (also shown in the details box).
    """

    versionReady = Signal(object, object)
    runStarted = Signal(str)
    runFinished = Signal(str)
    errorOccurred = Signal(str)
    modelLoaded = Signal(object)
    busyChanged = Signal(bool)
    probeReady = Signal(object)

    def __init__(self, current_recording: Callable[[], Recording | None],
                 current_channels: Callable[[], Sequence[int] | None] | None = None, parent: QWidget | None = None,
                 *, show_dialogs: bool = True, list_now: bool = True):
        super().__init__(parent)
        self.current_recording = current_recording
        self.current_channels = current_channels or (lambda: None)
        self.show_dialogs = show_dialogs
        self.setAcceptDrops(True)
        self._specs: list[str] = []                 # row -> spec (built-in id, plugin id or path)
        self._infos: list[EnhancerInfo] = []
        self._loaded: dict[str, Enhancer] = {}      # spec -> enhancer kept for reuse (files, folders)
        self._job: EngineJob | None = None
        self._run_recording: Recording | None = None
        self._run_spec: str | None = None
        self.last_error = ""
        self.last_elapsed_s: float | None = None
        self.probe_reports: dict[str, ProbeReport] = {}   # spec -> last report
        self._listed = False
        self._list_job: _ListJob | None = None
        self._build()
        if list_now:
            self.refresh()

    # -- construction --------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemSelectionChanged.connect(self._show_details)
        self.table.doubleClicked.connect(lambda _index: self.start())

        self.load_file_button = QPushButton("Load model file...", self)
        self.load_file_button.setToolTip("ONNX, TorchScript or PyTorch checkpoint (you can also drop files here)")
        self.load_file_button.clicked.connect(self._ask_file)
        self.load_folder_button = QPushButton("Load model folder...", self)
        self.load_folder_button.setToolTip("A folder holding a model, e.g. DTLN's model_1.onnx and model_2.onnx")
        self.load_folder_button.clicked.connect(self._ask_folder)
        self.probe_button = QPushButton("Probe", self)
        self.probe_button.setToolTip("Measure the selected model: causality, latency, real-time factor on this "
                                     "machine, parameters, MACs (runs on a worker thread)")
        self.probe_button.clicked.connect(self.start_probe)
        self.enhance_button = QPushButton("Enhance", self)
        self.enhance_button.setToolTip("Run the selected model on the current recording (adds a version)")
        self.enhance_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.status = QLabel("Select a model, then Enhance. Drop model files here to load them.", self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QPlainTextEdit(self)
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.details.setStyleSheet("font-family: monospace; font-size: 9pt;")
        self.details.setMinimumHeight(120)

        loaders = QHBoxLayout()
        loaders.addWidget(self.load_file_button)
        loaders.addWidget(self.load_folder_button)
        loaders.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.probe_button)
        buttons.addStretch(1)
        buttons.addWidget(self.enhance_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 3)
        layout.addLayout(loaders)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.details, 2)
        self._update_buttons()

    def attach_document(self, document) -> None:
        """Work on ``document.recording`` (a ``workbench.gui.document.DocumentModel``) and show each new
        version in the panes as soon as it is ready (all channels are processed)."""
        self.current_recording = lambda: document.recording

        def show(rec, version):
            # The person may have switched recordings meanwhile: show the result with its own recording.
            if rec in getattr(document, "recordings", [rec]):
                document.set_current(rec, version)
        self.versionReady.connect(show)

    # -- model list ----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the table: built-ins and plugins, then models loaded from files (keeps the selection)."""
        self._fill(list_enhancers())

    def list_in_background(self) -> None:
        """Fill the table from a worker thread (listing reads model metadata: DeepFilterNet3's archive,
        NSNet2's ONNX graph, plugin entry points; about 0.5 s that would otherwise freeze the window).
        Does nothing once listed; a synchronous :meth:`ensure_listed` meanwhile simply wins."""
        if self._listed or self._list_job is not None:
            return
        job = _ListJob(self)
        job.listed.connect(self._on_listed)
        self._list_job = job
        job.start()

    @Slot(object)
    def _on_listed(self, infos) -> None:
        job, self._list_job = self._list_job, None
        if job is not None:
            job.wait()
            job.deleteLater()
        if self._listed:
            return  # listed synchronously in the meantime
        if isinstance(infos, Exception):
            self._error(f"Could not list the models: {infos}")
            return
        self._fill(infos)

    def _fill(self, infos: list[EnhancerInfo]) -> None:
        keep = self.selected_spec() if self._listed else None
        self._listed = True
        self._specs, self._infos = [], []
        for info in infos:
            self._specs.append(info.id)
            self._infos.append(info)
        for spec, enh in self._loaded.items():
            self._specs.append(spec)
            self._infos.append(enh.info)
        self.table.setRowCount(len(self._specs))
        for row, info in enumerate(self._infos):
            for col, text in enumerate(info_cells(info)):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{info.id}: {info.description}")
                self.table.setItem(row, col, item)
        if keep in self._specs:
            self.select(keep)
        elif self._specs and not self.table.selectedItems():
            self.table.selectRow(0)
        self._update_buttons()
        self._show_details()

    def ensure_listed(self) -> None:
        if not self._listed:
            self.refresh()

    def model_specs(self) -> list[str]:
        """Specs of the listed models in table order (ids, or paths for loaded files)."""
        self.ensure_listed()
        return list(self._specs)

    def model_info(self, spec: str) -> EnhancerInfo:
        self.ensure_listed()
        return self._infos[self._specs.index(spec)]

    def selected_spec(self) -> str | None:
        rows = {i.row() for i in self.table.selectedIndexes()} if hasattr(self, "table") else set()
        return self._specs[min(rows)] if rows else None

    def select(self, spec: str) -> None:
        """Select the row of ``spec`` (a model id or a loaded path)."""
        self.ensure_listed()
        self.table.selectRow(self._specs.index(str(spec)))

    def _show_details(self) -> None:
        spec = self.selected_spec()
        if spec is None:
            self.details.setPlainText("")
            return
        self.details.setPlainText(info_text(self.model_info(spec), self.probe_reports.get(spec)))

    # -- probing -------------------------------------------------------------------------------------------
    @Slot()
    def start_probe(self) -> bool:
        """Probe the selected model on a worker thread; the report appears in the details box."""
        if self.is_busy():
            return False
        spec = self.selected_spec()
        if spec is None:
            self._error("Select a model first")
            return False
        job = ProbeJob(spec, self._loaded.get(spec), parent=self)
        job.progress.connect(self._on_progress)
        job.succeeded.connect(lambda report, spec=spec: self._on_probed(spec, report))
        job.cancelled.connect(self._on_cancelled)
        self.progress_bar.setValue(0)
        self._set_status(f"Probing {self.model_info(spec).name}…")
        self._start_job(job, run_spec=None)
        return True

    def _on_probed(self, spec: str, report: ProbeReport) -> None:
        self.probe_reports[spec] = report
        self.progress_bar.setValue(1000)
        verdict = "causal" if report.causal else "NOT causal"
        self._set_status(f"{report.model}: {verdict}, latency {report.latency_ms:.1f} ms, RTF {report.rtf:.3f}")
        if self.selected_spec() == spec:
            self._show_details()
        self.probeReady.emit(report)

    # -- loading model files -------------------------------------------------------------------------------
    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model file", "", MODEL_FILE_FILTER)
        if path:
            self.load_path(path)

    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Load model folder")
        if path:
            self.load_path(path)

    def load_path(self, path: str | Path) -> None:
        """Load a model file or folder on the worker thread; it joins the table when ready."""
        spec = str(Path(path))
        if self.is_busy():
            self._error(f"{spec}: wait for the running job to finish before loading another model")
            return
        self._set_status(f"Loading {Path(spec).name}...")
        job = EngineJob(spec, parent=self)
        job.loaded.connect(lambda enh, spec=spec: self._on_loaded(spec, enh))
        self._start_job(job, run_spec=None)

    @Slot(object)
    def _on_loaded(self, spec: str, enhancer: Enhancer) -> None:
        if self._run_recording is not None:
            return  # a run's own load: nothing to list
        self._loaded[spec] = enhancer
        self.refresh()
        self.select(spec)
        info = enhancer.info
        self._set_status(f"Loaded {info.name} ({info.sample_rate / 1000:g} kHz, {info.processing}) from {spec}")
        self.modelLoaded.emit(info)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.load_path(paths[0])
            if len(paths) > 1:
                self._set_status(f"Loading {Path(paths[0]).name}; drop one model file or folder at a time")

    # -- running -------------------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._job is not None

    @Slot()
    def start(self) -> bool:
        """Enhance the current recording with the selected model; returns False when it cannot start."""
        if self.is_busy():
            return False
        spec = self.selected_spec()
        rec = self.current_recording()
        if spec is None:
            self._error("Select a model first")
            return False
        if rec is None:
            self._error("Open a recording first")
            return False
        channels = self.current_channels()
        job = EngineJob(spec, self._loaded.get(spec), rec, channels, parent=self)
        job.progress.connect(self._on_progress)
        job.succeeded.connect(self._on_succeeded)
        job.cancelled.connect(self._on_cancelled)
        self._run_recording = rec
        self._run_spec = spec
        self.progress_bar.setValue(0)
        self._set_status(f"Running {self.model_info(spec).name} on {rec.name}...")
        self.runStarted.emit(self.model_info(spec).id)
        self._start_job(job, run_spec=spec)
        return True

    @Slot()
    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._set_status("Cancelling...")

    def _start_job(self, job: EngineJob, run_spec: str | None) -> None:
        self._job = job
        self._job_outcome = "done"
        job.failed.connect(self._on_failed)
        job.finished.connect(self._on_job_finished)
        self._update_buttons()
        self.busyChanged.emit(True)
        job.start()

    @Slot(float, str)
    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(int(round(1000 * fraction)))
        self.progress_bar.setFormat(message)
        self.progress_bar.setToolTip(message)

    @Slot(object, float)
    def _on_succeeded(self, audio: np.ndarray, elapsed_s: float) -> None:
        rec, spec = self._run_recording, self._run_spec
        job = self._job
        enhancer = job.enhancer
        channels = job.channels if job.channels is not None else list(range(rec.source.channels))
        settings = {"model_spec": spec, "channels": channels, "input_rate": rec.source.sample_rate,
                    "model_rate": enhancer.info.sample_rate, "processing": enhancer.info.processing,
                    "latency_samples": enhancer.info.latency_samples}
        try:
            version = rec.add_enhanced(audio, rec.source.sample_rate, enhancer.info, settings, elapsed_s)
        except ValueError as exc:  # the engine guarantees alignment; this guards against a broken plugin
            self._on_failed(f"{enhancer.info.name}: {exc}")
            return
        self.last_elapsed_s = elapsed_s
        rtf = elapsed_s / max(rec.source.duration_s, 1e-9)
        self.progress_bar.setValue(1000)
        self._set_status(f"{enhancer.info.name}: {rec.source.duration_s:.1f} s in {elapsed_s:.1f} s "
                         f"(real-time factor {rtf:.3f}) -> version '{version.name}'")
        self.versionReady.emit(rec, version)

    @Slot()
    def _on_cancelled(self) -> None:
        self._job_outcome = "cancelled"
        self.progress_bar.setValue(0)
        self._set_status("Cancelled; the recording is unchanged" if isinstance(self._job, EngineJob)
                         else "Cancelled")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._job_outcome = "failed"
        self.progress_bar.setValue(0)
        self._error(message)

    @Slot()
    def _on_job_finished(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.deleteLater()
        self._run_recording = None
        self._run_spec = None
        self._update_buttons()
        self.busyChanged.emit(False)
        self.runFinished.emit(self._job_outcome)

    # -- helpers -------------------------------------------------------------------------------------------
    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #c0392b;" if error else "")
        self.status.setText(text)

    def _error(self, message: str) -> None:
        self.last_error = message
        self._set_status(message, error=True)
        self.errorOccurred.emit(message)
        if self.show_dialogs:
            box = QMessageBox(QMessageBox.Icon.Warning, "Model", message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()  # window-modal but non-blocking: the event loop keeps running

    def _update_buttons(self) -> None:
        busy = self._job is not None
        self.enhance_button.setEnabled(not busy and self.selected_spec() is not None)
        self.probe_button.setEnabled(not busy and self.selected_spec() is not None)
        self.cancel_button.setEnabled(busy)
        self.load_file_button.setEnabled(not busy)
        self.load_folder_button.setEnabled(not busy)

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Cancel a running load/run/probe and wait for its thread (call before the panel is destroyed:
        a QThread must not be destroyed while running)."""
        if self._job is not None:
            self._job.cancel()
            self._job.wait(timeout_ms)
        if self._list_job is not None:
            self._list_job.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
