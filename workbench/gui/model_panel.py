"""The model panel: pick a built-in or loaded model, run it on the current recording off the GUI thread.

Layout: a table of models (name, rate, causal, latency, parameters, processing, source), a
"Load model file..." / "Load model folder..." pair, "Probe", "Enhance" and "Cancel" buttons, a progress
bar, a status line and a details box with the selected model's facts and, once probed, what the probes
measured (causality, latency, real-time factor, parameters, MACs; :mod:`workbench.core.workflows.probes`). Model
files and folders can also be dropped on the panel.

The models listed are the session's :class:`~workbench.core.document.session.ModelCatalogue` (built-ins,
plugins, files loaded here), which the batch dialog and the CLI read too.

Threading: listing, loading a model file, probing and running all happen in a
:class:`~workbench.gui.workers.GeneratorWorker`. A run is a session job owned by its recording: it
drives :meth:`workbench.core.document.recording.Recording.enhance` (the one enhancement call), which adds one
version per model output; Cancel — or closing the recording — stops it between two progress steps, the
generator is closed (releasing the model's per-run state) and no version is added.

Integration with the main window's document::

    panel = ModelPanel(lambda: None)
    panel.attach_document(document)   # enhances document.recording, then shows the new version
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPlainTextEdit,
    QProgressBar,
    QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)
from shiboken6 import isValid

from ..core.enhance.enhancer import Enhancer, EnhancerInfo, with_processing
from ..core.enhance.level import level_note
from ..core.enhance.registry import (is_registered_id, isolation_on, load_in_child, model_suffixes,
                                      runtime_not_loaded)
from ..core.progress import Progress
from ..core.errors import WorkbenchError
from ..core.workflows.probes import ProbeReport, format_report, probe
from ..core.document.recording import Recording
from ..core.document.version_ops import EnhanceRequest, run_request
from ..core.document.session import Job, ModelCatalogue, Session
from . import first_paint
from .workers import GeneratorWorker, job_steps

COLUMNS = ("Model", "Rate", "Causal", "Latency", "Parameters", "Processing", "Source")
def model_file_filter() -> str:
    """The model dialog's filter: every suffix the model loaders declare (asked when the dialog opens)."""
    return f"Models ({' '.join('*' + s for s in model_suffixes())});;All files (*)"


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
            info.latency_text if info.latency_source != "declared" else f"{info.latency_ms:.1f} ms",
            format_parameters(info.parameters), "/".join(info.paths), info.source_text)


def failure_text(label: str, spec: str, exc: BaseException, doing: str = "failed") -> str:
    """One line naming the model and the problem (the label is not repeated when the message has it)."""
    if isinstance(exc, WorkbenchError):
        text = str(exc)
        return text if (label in text or spec in text) else f"{label}: {text}"
    if isinstance(exc, ValueError):  # e.g. a channel the recording does not have
        return f"{label}: {exc}"
    return f"{label}: {doing} with {type(exc).__name__}: {exc}"


def info_text(info: EnhancerInfo, report: ProbeReport | None = None) -> str:
    """The details box: declared facts of a model, then the probe report (or how to get one)."""
    causal = "unknown" if info.causal is None else ("yes" if info.causal else "no")
    lines = [f"{info.name} [{info.id}]", info.description,
             f"rate {info.sample_rate} Hz · causal (declared) {causal} · latency "
             + (f"{info.latency_samples} samples ({info.latency_ms:.1f} ms)" if info.latency_source == "declared"
                else f"{info.latency_text} (not declared by the model)")
             + f" · parameters {format_parameters(info.parameters)}",
             f"{' or '.join(info.paths)}, block {info.block_samples} samples, family {info.family}, source {info.source_text}"
             + f", licence {info.licence or 'not stated'}"]
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
        versionReady(object, object): ``(recording, version)`` for each version a run added (one per
            model output).
        runStarted(str): the model id of a run that started.
        runFinished(str): ``"done"``, ``"cancelled"`` or ``"failed"`` when a run or a load ends.
        errorOccurred(str): a message naming the model (or file) and the problem.
        modelLoaded(object): the EnhancerInfo of a model loaded from a file or folder.
        busyChanged(bool): a load, run or probe started (True) or ended (False).
        probeReady(object): a :class:`~workbench.core.workflows.probes.ProbeReport` (also shown in the details box).
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
                 *, show_dialogs: bool = True, list_now: bool = True, catalogue: ModelCatalogue | None = None,
                 session: Session | None = None):
        super().__init__(parent)
        self.current_recording = current_recording
        self.current_channels = current_channels or (lambda: None)
        self.show_dialogs = show_dialogs
        self.setAcceptDrops(True)
        #: the models listed (shared with the batch dialog and the CLI through the session)
        self.catalogue = catalogue if catalogue is not None else ModelCatalogue()
        #: where runs are registered as jobs owned by their recording (set by :meth:`attach_document`)
        self.session = session
        self._specs: list[str] = []                 # row -> spec (built-in id, plugin id or path)
        self._infos: list[EnhancerInfo] = []
        #: the worker of the running load/run/probe, or None
        self.worker: GeneratorWorker | None = None
        self.job: Job | None = None                 # the session job of a running enhancement
        self._run_recording: Recording | None = None
        self._run_spec: str | None = None
        self._kind = ""                             # "run", "load" or "probe"
        self.last_error = ""
        self.last_elapsed_s: float | None = None
        self.probe_reports: dict[str, ProbeReport] = {}   # spec -> last report
        self._listed = False
        self._list_worker: GeneratorWorker | None = None
        self._shut_down = False
        #: True while the model list is being read (the table shows "Loading models…")
        self.loading = False
        self._build()
        if list_now:
            self.refresh()
        else:
            self._show_loading(True)

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
        self.processing_label = QLabel("Path:", self)
        self.processing_combo = QComboBox(self)
        # Wide enough for "streaming" whatever the dock's width (it was cut to "streamin").
        self.processing_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.processing_combo.setToolTip("For models with both paths: offline (whole chunks, fastest, the "
                                         "default for files) or streaming (the frame loop a real-time "
                                         "deployment runs)")
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
        buttons.addWidget(self.processing_label)
        buttons.addWidget(self.processing_combo)
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
        self.catalogue = document.catalogue
        self.session = document.session
        document.catalogueChanged.connect(self._on_catalogue_changed)

        def show(rec, version):
            # The person may have switched recordings meanwhile: show the result with its own recording.
            if rec in getattr(document, "recordings", [rec]):
                document.set_current(rec, version)
        self.versionReady.connect(show)

    # -- model list ----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the table from the catalogue: built-ins and plugins, then models loaded from files
        (keeps the selection)."""
        self._fill(self.catalogue.entries())

    def list_in_background(self) -> None:
        """Fill the table from a worker thread (listing reads model metadata: DeepFilterNet3's archive,
        NSNet2's ONNX graph, plugin entry points; about 0.5 s that would otherwise freeze the window).
        Does nothing once listed; a synchronous :meth:`ensure_listed` meanwhile simply wins.

        The listing imports the model modules (and onnx), mostly holding the interpreter lock, so it starts
        once the window has painted its first spectrogram (see :mod:`~workbench.gui.first_paint`)."""
        first_paint.after_first_paint(self._list_now)

    def _list_now(self) -> None:
        if self._shut_down or not isValid(self) or self._listed or self._list_worker is not None:
            return
        worker = GeneratorWorker(self.catalogue.entries)
        worker.returned.connect(self._on_listed)
        worker.errored.connect(lambda exc: self._error(f"Could not list the models: {exc}"))
        worker.finished.connect(self._on_list_finished)
        self._list_worker = worker
        worker.start()

    @Slot()
    def _on_list_finished(self) -> None:
        self._list_worker = None
        if not self._listed:   # the listing failed: its error is in the status line
            self._show_loading(False)

    def _show_loading(self, loading: bool) -> None:
        """While the model list is read (model metadata on a worker; seconds on a busy machine) the table
        says so, the bar runs and Enhance says why it waits, instead of an empty table and a grey button."""
        self.loading = loading
        if loading:
            self.table.setRowCount(1)
            item = QTableWidgetItem("Loading models…")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            item.setToolTip("Reading the built-in models, plugins and loaded model files")
            self.table.setItem(0, 0, item)
            self.progress_bar.setRange(0, 0)   # busy: no known fraction
            self._set_status("Loading models…")
            self.enhance_button.setToolTip("Waiting for the model list to load")
        else:
            self.progress_bar.setRange(0, 1000)
            self.enhance_button.setToolTip("Run the selected model on the current recording (adds a version)")

    @Slot(object)
    def _on_listed(self, entries) -> None:
        if self._listed:
            return  # listed synchronously in the meantime
        self._fill(entries)

    @Slot()
    def _on_catalogue_changed(self) -> None:
        if self._listed and self.catalogue.listed:
            self.refresh()

    def _fill(self, entries) -> None:
        keep = self.selected_spec() if self._listed else None
        if not self._listed and self.loading:
            self._show_loading(False)
            self._set_status("Select a model, then Enhance. Drop model files here to load them.")
        self._listed = True
        self._specs, self._infos = [], []
        for entry in entries:
            self._specs.append(entry.spec)
            self._infos.append(entry.info)
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

    def is_listed(self) -> bool:
        """Whether the model list has arrived (until then the table shows its "Loading models…" row)."""
        return self._listed

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

    def processing(self) -> str | None:
        """The path chosen for the selected model, or ``None`` for its default (one path only)."""
        if self.processing_combo.count() < 2:
            return None
        return self.processing_combo.currentData()

    def set_processing(self, processing: str) -> None:
        """Choose ``"offline"`` or ``"streaming"`` for the selected model (ValueError if it lacks it)."""
        index = self.processing_combo.findData(processing)
        if index < 0:
            raise ValueError(f"the selected model has no {processing} path")
        self.processing_combo.setCurrentIndex(index)

    def _fill_processing(self, info: EnhancerInfo | None) -> None:
        self.processing_combo.clear()
        for k, path in enumerate(info.paths if info is not None else ()):
            self.processing_combo.addItem(f"{path} (default)" if k == 0 else path, path)
        several = self.processing_combo.count() > 1
        self.processing_combo.setEnabled(several and self.worker is None)
        self.processing_label.setEnabled(several)

    def _show_details(self) -> None:
        spec = self.selected_spec()
        self._fill_processing(self.model_info(spec) if spec is not None else None)
        if spec is None:
            self.details.setPlainText("")
            return
        self.details.setPlainText(info_text(self.model_info(spec), self.probe_reports.get(spec)))

    # -- probing -------------------------------------------------------------------------------------------
    @Slot()
    def start_probe(self) -> bool:
        """Probe the selected model on a worker thread (warm and cold speed); the report appears in the details box."""
        if self.is_busy():
            return False
        spec = self.selected_spec()
        if spec is None:
            self._error("Select a model first")
            return False
        label = self.model_info(spec).name
        catalogue = self.catalogue

        def probing():  # worker thread
            # cold_spec: a fresh process loads the model by the same spec, for the cold figure beside the warm one
            report = yield from probe(catalogue.load(spec), cold_spec=spec)
            return report
        worker = self._job_worker(f"probing {label}", probing)
        worker.returned.connect(lambda report, spec=spec: self._on_probed(spec, report))
        worker.errored.connect(lambda exc, label=label, spec=spec:
                               self._on_failed(failure_text(label, spec, exc, "probe failed")))
        self.progress_bar.setValue(0)
        self._set_status(f"Probing {label}…")
        self._start_worker(worker, "probe")
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
    def dialog_folder(self) -> str:
        """Where the model file dialogs start: the current recording's folder ("" when none is open)."""
        rec = self.current_recording()
        return str(rec.path.resolve().parent) if rec is not None and rec.path.parent.is_dir() else ""

    @property
    def job_kind(self) -> str | None:
        """``"load"``, ``"run"`` or ``"probe"``: the kind of the running (or last) job."""
        return self._kind or None

    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model file", self.dialog_folder(), model_file_filter())
        if path:
            self.load_path(path)

    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Load model folder", self.dialog_folder())
        if path:
            self.load_path(path)

    def load_path(self, path: str | Path) -> None:
        """Load a model file or folder on the worker thread; it joins the table when ready."""
        spec = str(Path(path))
        if self.is_busy():
            self._error(f"{spec}: wait for the running job to finish before loading another model")
            return
        self._set_status(f"Loading {Path(spec).name}...")
        from ..core.enhance.registry import load_enhancer
        # Model files run in a worker process: Cancel stops them even inside a call that never returns.
        worker = self._job_worker(f"loading {Path(spec).name}", load_enhancer, spec, isolate=True)
        worker.returned.connect(lambda enh, spec=spec: self._on_loaded(spec, enh))
        worker.errored.connect(lambda exc, spec=spec: self._on_failed(failure_text(spec, spec, exc, "loading failed")))
        self._start_worker(worker, "load")

    @Slot(object)
    def _on_loaded(self, spec: str, enhancer: Enhancer) -> None:
        self.catalogue.add_loaded(spec, enhancer)
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
        return self.worker is not None

    @Slot()
    def start(self) -> bool:
        """Enhance the current recording with the selected model; returns False when it cannot start.

        The run is a job of the recording (when the panel is attached to a document): closing the
        recording cancels it and no version is added."""
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
        info = self.model_info(spec)
        catalogue = self.catalogue
        processing = self.processing()

        # A built-in whose runtime (torch) this process has not imported runs in a child process: importing
        # it here would hold the interpreter lock for seconds and the window would stop answering.
        in_child = (isolation_on() and is_registered_id(spec) and info is not None
                    and runtime_not_loaded(info))

        def load_and_enhance():  # runs on the worker thread
            if in_child:
                yield Progress(0.0, f"{info.name}: loading in a separate process")
            enhancer = load_in_child(spec) if in_child else catalogue.load(spec)
            try:
                if processing is not None:  # the Path choice of a model with both paths
                    enhancer = with_processing(enhancer, processing)
                self._running_enhancer = enhancer  # Cancel interrupts it (isolated models)
                yield Progress(0.0, f"{enhancer.info.name}: loaded")
                t0 = time.perf_counter()
                request = EnhanceRequest(spec=spec, channels=None if channels is None else tuple(channels))
                versions = yield from run_request(rec, enhancer, request)
                return enhancer, versions, time.perf_counter() - t0
            finally:
                if in_child:
                    enhancer.close()   # ends the child process

        gen = load_and_enhance()
        self.job = None
        if self.session is not None and rec in self.session.recordings:
            self.job = self.session.new_job(gen, rec, f"{info.name} on {rec.name}")
            worker = GeneratorWorker(self.job.steps)
        else:
            worker = GeneratorWorker(gen)
        worker.returned.connect(self._on_succeeded)
        worker.errored.connect(lambda exc, label=info.name, spec=spec: self._on_failed(failure_text(label, spec, exc)))
        self._run_recording = rec
        self._run_spec = spec
        self.progress_bar.setValue(0)
        self._set_status(f"Running {info.name} on {rec.name}...")
        self.runStarted.emit(info.id)
        self._start_worker(worker, "run")
        return True

    @Slot()
    def cancel(self) -> None:
        if self.worker is not None:
            if self.job is not None:
                self.job.cancel()
            self.worker.cancel()
            # A model file in its worker process is stopped now, not at the engine's next yield.
            interrupt = getattr(getattr(self, "_running_enhancer", None), "interrupt", None)
            if interrupt is not None:
                interrupt()
            self._set_status("Cancelling...")

    def _job_worker(self, label: str, work, *args, **kwargs) -> GeneratorWorker:
        """A worker for a load or probe: a job of nobody's in the workspace (the window lists it, the
        Metrics panel waits for it), or a plain worker without a session."""
        self.job = None
        if self.session is None:
            return GeneratorWorker(work, *args, **kwargs)
        self.job = self.session.new_job(job_steps(work, *args, **kwargs), None, label)
        return GeneratorWorker(self.job.steps)

    def _start_worker(self, worker: GeneratorWorker, kind: str) -> None:
        self.worker = worker
        self._kind = kind
        self._job_outcome = "done"
        worker.progress.connect(self._on_progress)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_job_finished)
        self._update_buttons()
        self.busyChanged.emit(True)
        worker.start()

    @Slot(object)
    def _on_progress(self, p: Progress) -> None:
        self.progress_bar.setValue(int(round(1000 * p.fraction)))
        self.progress_bar.setFormat(p.message)
        self.progress_bar.setToolTip(p.message)

    @Slot(object)
    def _on_succeeded(self, result) -> None:
        enhancer, versions, elapsed_s = result
        rec = self._run_recording
        self.last_elapsed_s = elapsed_s
        rtf = elapsed_s / max(rec.source.duration_s, 1e-9)
        self.progress_bar.setValue(1000)
        names = ", ".join(f"'{v.name}'" for v in versions)
        notes = [f"{v.name}: {n}" for v in versions if (n := level_note(v.provenance.extra.get("level")))]
        measured = enhancer.info.extra.get("latency measured")
        self._set_status(f"{enhancer.info.name}: {rec.source.duration_s:.1f} s in {elapsed_s:.1f} s "
                         f"(real-time factor {rtf:.3f}) -> version{'s' if len(versions) > 1 else ''} {names}"
                         + (f"; latency {measured}" if measured else "")
                         + (f"; level: {'; '.join(notes)}" if notes else ""))
        for v in versions:
            self.versionReady.emit(rec, v)

    @Slot()
    def _on_cancelled(self) -> None:
        self._job_outcome = "cancelled"
        self.progress_bar.setValue(0)
        rec = self._run_recording
        if self._kind == "run" and rec is not None and rec.closed:
            self._set_status(f"Cancelled: {rec.name} was closed")
        else:
            self._set_status("Cancelled; the recording is unchanged" if self._kind == "run" else "Cancelled")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._job_outcome = "failed"
        self.progress_bar.setValue(0)
        self._error(message)

    @Slot()
    def _on_job_finished(self) -> None:
        self.worker = None
        self.job = None
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
        busy = self.worker is not None
        self.enhance_button.setEnabled(not busy and self.selected_spec() is not None)
        self.probe_button.setEnabled(not busy and self.selected_spec() is not None)
        self.cancel_button.setEnabled(busy)
        self.processing_combo.setEnabled(not busy and self.processing_combo.count() > 1)
        self.load_file_button.setEnabled(not busy)
        self.load_folder_button.setEnabled(not busy)

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Cancel a running load/run/probe and wait for its thread (call before the panel is destroyed)."""
        self._shut_down = True   # a listing still waiting for the first paint never starts
        if self.worker is not None:
            self.cancel()
            self.worker.wait(timeout_ms)
        if self._list_worker is not None:
            self._list_worker.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
