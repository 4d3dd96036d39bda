"""Export dialogs: versions / figure / comparison of one recording, and batch enhancement of many files.

Both dialogs are thin: the work is done by :mod:`workbench.core.workflows.export`. Errors are shown in the
dialog's status line (and sent through ``errorOccurred``) instead of a blocking message box; the only
question asked is whether to replace existing files.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDialog, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
    QLineEdit,
    QListWidget, QListWidgetItem, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QTabWidget,
    QVBoxLayout, QWidget,
)

from ..core.audio.audio_io import WRITE_SUBTYPES, output_subtype
from ..core.audio.formats import dialog_filter
from ..core.errors import WorkbenchError
from ..core.progress import Progress
from ..core.workflows.export import (
    ExportedFile, default_export_folder, export_comparison, export_figure, export_versions_steps, planned_targets,
    version_tag,
)
from ..core.workflows.batch.backends import ray_installed
from ..core.workflows.batch.files import export_batch, worker_spec_problem
from .workers import GeneratorWorker, run_with_progress

SUBTYPE_LABELS = {"PCM_16": "16-bit PCM", "PCM_24": "24-bit PCM", "PCM_32": "32-bit PCM", "FLOAT": "32-bit float"}


def confirm_overwrite(parent: QWidget, paths: Sequence[Path]) -> bool:
    """Ask whether existing files may be replaced (the one question the export dialogs ask)."""
    shown = "\n".join(str(p) for p in paths[:10]) + (f"\n… and {len(paths) - 10} more" if len(paths) > 10 else "")
    answer = QMessageBox.question(parent, "Replace existing files?",
                                  f"These files already exist and would be replaced:\n\n{shown}",
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def _format_row(parent_layout: QFormLayout, source_subtype: str | None = None) -> tuple[QComboBox, QComboBox]:
    """Format and sample-format choices. With ``source_subtype`` the sample format follows the source as the
    CLI's does (:func:`~workbench.core.audio.audio_io.output_subtype`: a 16-bit source stays 16-bit) until
    the person picks one; without it (batch: many sources) it starts at 24-bit."""
    fmt = QComboBox()
    fmt.addItems(list(WRITE_SUBTYPES))
    sub = QComboBox()
    chosen: list[str] = []   # the sample format the person picked, if any

    def default() -> str:
        if source_subtype is None:
            return "PCM_24"
        try:
            return output_subtype(source_subtype, fmt.currentText())
        except WorkbenchError:
            return "PCM_24"

    def refill() -> None:
        sub.blockSignals(True)
        sub.clear()
        for s in WRITE_SUBTYPES[fmt.currentText()]:
            sub.addItem(SUBTYPE_LABELS.get(s, s), s)
        i = sub.findData(chosen[-1]) if chosen else -1
        if i < 0:
            i = sub.findData(default())
        if i < 0:
            i = sub.findData("PCM_24")
        sub.setCurrentIndex(i if i >= 0 else 0)
        sub.blockSignals(False)

    sub.activated.connect(lambda _i: chosen.append(sub.currentData()))
    fmt.currentIndexChanged.connect(refill)
    refill()
    parent_layout.addRow("Format", fmt)
    parent_layout.addRow("Samples", sub)
    return fmt, sub


def _folder_row(layout: QFormLayout | QHBoxLayout, parent: QWidget, start: Path) -> QLineEdit:
    edit = QLineEdit(str(start))
    browse = QPushButton("Browse…")

    def pick() -> None:
        d = QFileDialog.getExistingDirectory(parent, "Export folder", edit.text())
        if d:
            edit.setText(d)

    browse.clicked.connect(pick)
    if isinstance(layout, QFormLayout):
        row = QHBoxLayout()
        layout.addRow("Folder", row)
    else:
        row = layout
        row.addWidget(QLabel("Folder"))
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return edit


class ExportDialog(QDialog):
    """Export versions (audio), the four-pane figure, and the comparison of one recording.

    Args:
        recording: the :class:`~workbench.core.document.recording.Recording`.
        stft_config: the views' :class:`~workbench.core.views.stft.StftConfig` (figure and comparison).
        metrics: ``{version name: {metric: value}}`` to include in the comparison.
        current_version: preselected in the figure tab.
        channel: channel drawn in the figure.
        folder: initial export folder (default: the recording's folder, or
            :data:`~workbench.core.workflows.export.FALLBACK_EXPORT_FOLDER` when that one is read-only).
        reference: the clean reference behind the intrusive metrics (recorded in the comparison with its
            SHA-256).
        figure_settings: ``whole_file -> FigureSettings`` of the panes (what the screen shows); without
            it the figure uses the CLI's defaults.
        partner: ``(source, channel, partner_is_original, label)`` of the difference views, or ``None``.

    Signals:
        exported(list): paths written by the last action.
        errorOccurred(str): a one-line error (also shown in the dialog).
    """

    #: the progress dialog of a job :func:`~workbench.gui.workers.run_with_progress` waits for (or None)
    progress_dialog = None

    exported = Signal(list)
    errorOccurred = Signal(str)

    def __init__(self, recording, parent: QWidget | None = None, *, stft_config=None,
                 metrics: dict | None = None, current_version=None, channel: int = 0,
                 folder: str | Path | None = None, reference: str | Path | None = None,
                 confirm: Callable[[QWidget, Sequence[Path]], bool] = confirm_overwrite,
                 figure_settings: Callable[[bool], object] | None = None, partner=None):
        super().__init__(parent)
        self.setWindowTitle(f"Export — {recording.name}")
        self.recording = recording
        self.reference = Path(reference) if reference is not None else None
        self.stft_config = stft_config
        self.metrics = metrics or {}
        self.channel = channel
        self.confirm = confirm
        self.figure_settings = figure_settings
        self.partner = partner
        self.shown_version = current_version
        self.written: list[ExportedFile] = []
        start = Path(folder) if folder else default_export_folder(recording.path)
        self.tabs = QTabWidget()
        lay = QVBoxLayout(self)
        # One folder for audio, figure and comparison: they belong together (the comparison lists the
        # audio's hashes), and one field cannot disagree with another.
        folder_row = QHBoxLayout()
        self.folder_edit = _folder_row(folder_row, self, start)
        self.folder_edit.setToolTip("Where audio, figure and comparison are written")
        lay.addLayout(folder_row)
        #: the same field (the figure and the comparison go to the audio's folder)
        self.figure_folder = self.comparison_folder = self.folder_edit
        lay.addWidget(self.tabs)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        source_folder = recording.path.expanduser().resolve().parent
        if folder is None and start != source_folder:
            self.status.setText(f"{source_folder} is read-only: exports go to {start}")
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)

        # --- audio
        audio = QWidget()
        form = QFormLayout(audio)
        self.version_list = QListWidget()
        self._fill_versions()
        form.addRow("Versions", self.version_list)
        self.format_box, self.subtype_box = _format_row(form, recording.info.subtype)
        self.rate_box = QComboBox()
        self.rate_box.addItem(f"Source rate ({recording.source.sample_rate} Hz)", "source")
        self.rate_box.addItem("Model rate (each model's native rate)", "model")
        form.addRow("Sample rate", self.rate_box)
        self.quality_spin = QDoubleSpinBox()
        self.quality_spin.setRange(0.0, 1.0)
        self.quality_spin.setSingleStep(0.1)
        self.quality_spin.setValue(0.7)
        self.quality_spin.setToolTip("MP3 / Vorbis / Opus: 1 = best (highest bitrate), 0 = smallest file")
        form.addRow("Quality", self.quality_spin)
        self.loudness_check = QCheckBox("Normalise loudness to")
        self.loudness_spin = QDoubleSpinBox()
        self.loudness_spin.setRange(-40.0, 0.0)
        self.loudness_spin.setValue(-16.0)
        self.loudness_spin.setSuffix(" LUFS")
        self.ceiling_spin = QDoubleSpinBox()
        self.ceiling_spin.setRange(-12.0, 0.0)
        self.ceiling_spin.setValue(-1.0)
        self.ceiling_spin.setSuffix(" dBTP ceiling")
        loud = QHBoxLayout()
        for w in (self.loudness_check, self.loudness_spin, self.ceiling_spin):
            loud.addWidget(w)
        form.addRow("Loudness", loud)

        def lossy_enabled() -> None:
            self.quality_spin.setEnabled(self.format_box.currentText() in ("MP3", "OGG", "OPUS"))
        self.format_box.currentIndexChanged.connect(lossy_enabled)
        lossy_enabled()
        self.audio_button = QPushButton("Export audio")
        self.audio_button.clicked.connect(self.export_audio)
        form.addRow(self.audio_button)
        self.tabs.addTab(audio, "Audio")

        # --- figure
        fig = QWidget()
        ff = QFormLayout(fig)
        self.figure_version = QComboBox()
        for v in recording.versions:
            self.figure_version.addItem(v.name, v)
        if current_version is not None and current_version in recording.versions:
            self.figure_version.setCurrentIndex(recording.versions.index(current_version))
        ff.addRow("Version", self.figure_version)
        self.figure_format = QComboBox()
        self.figure_format.addItems(["PNG", "SVG"])
        ff.addRow("Format", self.figure_format)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(320, 8000)
        self.width_spin.setValue(1600)
        self.height_spin = QSpinBox()
        self.height_spin.setRange(240, 8000)
        self.height_spin.setValue(1000)
        if figure_settings is not None and figure_settings(False).layout == "row":
            self.width_spin.setValue(2400)   # four panes side by side, as on screen
            self.height_spin.setValue(800)
        size = QHBoxLayout()
        size.addWidget(self.width_spin)
        size.addWidget(QLabel("×"))
        size.addWidget(self.height_spin)
        size.addWidget(QLabel("px"))
        ff.addRow("Size", size)
        self.whole_file_check = QCheckBox("Whole file and full band (ignore the zoom)")
        self.whole_file_check.setToolTip("Unchecked, the figure shows what the panes show: the same views, "
                                         "colour ranges and maps, masking, frequency scale and visible region")
        self.whole_file_check.setEnabled(figure_settings is not None)
        ff.addRow("Region", self.whole_file_check)
        self.figure_button = QPushButton("Export figure")
        self.figure_button.clicked.connect(self.export_figure)
        ff.addRow(self.figure_button)
        if stft_config is None:
            self.figure_button.setEnabled(False)
            self.figure_button.setToolTip("No STFT settings were given to the dialog")
        self.tabs.addTab(fig, "Figure")

        # --- comparison
        cmp_ = QWidget()
        cf = QFormLayout(cmp_)
        self.json_check = QCheckBox("JSON")
        self.json_check.setChecked(True)
        self.csv_check = QCheckBox("CSV")
        self.csv_check.setChecked(True)
        kinds = QHBoxLayout()
        kinds.addWidget(self.json_check)
        kinds.addWidget(self.csv_check)
        cf.addRow("Files", kinds)
        cf.addRow(QLabel("Metrics, settings, model identities and SHA-256 of the source, of the clean "
                         "reference and of the audio exported in this dialog"))
        self.reference_label = QLabel(
            f"Reference: {self.reference}" if self.reference is not None
            else "Reference: none (the comparison holds no intrusive metrics)")
        self.reference_label.setWordWrap(True)
        cf.addRow(self.reference_label)
        self.comparison_button = QPushButton("Export comparison")
        self.comparison_button.clicked.connect(self.export_comparison)
        cf.addRow(self.comparison_button)
        self.tabs.addTab(cmp_, "Comparison")

    # ------------------------------------------------------------------ helpers
    def _fill_versions(self) -> None:
        self.version_list.clear()
        rec = self.recording
        names = {v.name for v in rec.versions}
        for v in rec.versions:
            item = QListWidgetItem(f"{v.name}  →  {version_tag(v)}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if v.kind.is_result else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, ("version", v))
            self.version_list.addItem(item)
            if v.kind.is_result and f"residual ({v.name})" not in names:
                # The residual is computed only if it is asked for.
                r = QListWidgetItem(f"residual ({v.name})  →  {version_tag(v)}.residual")
                r.setFlags(r.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                r.setCheckState(Qt.CheckState.Unchecked)
                r.setData(Qt.ItemDataRole.UserRole, ("residual", v))
                self.version_list.addItem(r)

    def set_checked(self, names: Sequence[str]) -> None:
        """Tick exactly the versions whose list label starts with one of ``names``."""
        for i in range(self.version_list.count()):
            item = self.version_list.item(i)
            label = item.text().split("  →  ")[0]
            item.setCheckState(Qt.CheckState.Checked if label in names else Qt.CheckState.Unchecked)

    def selected_versions(self) -> list:
        out = []
        for i in range(self.version_list.count()):
            item = self.version_list.item(i)
            if item.checkState() != Qt.CheckState.Checked:
                continue
            kind, v = item.data(Qt.ItemDataRole.UserRole)
            out.append(self.recording.residual_of(v) if kind == "residual" else v)
        return out

    def _ok(self, text: str) -> None:
        self.status.setStyleSheet("")
        self.status.setText(text)

    def _fail(self, text: str) -> None:
        self.status.setStyleSheet("color: #b00020;")
        self.status.setText(text)
        self.errorOccurred.emit(text)

    # ------------------------------------------------------------------ actions
    @Slot()
    def export_audio(self) -> list[ExportedFile] | None:
        versions = self.selected_versions()
        if not versions:
            self._fail("Tick at least one version to export")
            return None
        folder = Path(self.folder_edit.text())
        fmt = self.format_box.currentText()
        sub = self.subtype_box.currentData()
        targets = planned_targets(self.recording, versions, folder, fmt)
        existing = [t for t in targets if t.exists()]
        overwrite = False
        if existing:
            if not self.confirm(self, existing):
                self._ok("Nothing written: existing files kept")
                return None
            overwrite = True
        lossy = fmt in ("MP3", "OGG", "OPUS")
        loudness = ((self.loudness_spin.value(), self.ceiling_spin.value())
                    if self.loudness_check.isChecked() else None)
        # Encoding an hour of MP3 takes a while: on a worker, with progress per file and Cancel.
        worker = run_with_progress(self, "Exporting audio", export_versions_steps, self.recording, versions, folder,
                                   format=fmt, subtype=sub, rate=self.rate_box.currentData(), overwrite=overwrite,
                                   quality=self.quality_spin.value() if lossy else None, loudness_target=loudness)
        if worker.outcome == "cancelled":
            self._ok("Export cancelled: files finished before Cancel are complete, nothing is half-written")
            return None
        if worker.outcome == "failed":
            exc = worker.error
            self._fail(str(exc) if isinstance(exc, WorkbenchError) else f"{folder}: export failed "
                       f"({type(exc).__name__}: {exc})")
            return None
        files = worker.result
        self.written = [w for w in self.written if w.path not in {f.path for f in files}] + files
        clipped = sum(f.clipped_samples for f in files)
        note = f"; {clipped} samples beyond full scale were clipped (choose 32-bit float to keep them)" \
            if clipped else ""
        limited = [f for f in files if f.loudness and f.loudness["limited_db"] < 0]
        if limited:
            note += (f"; {len(limited)} file(s) stayed {-min(f.loudness['limited_db'] for f in limited):.1f} dB "
                     "under the loudness target to keep the true-peak ceiling")
        self._ok(f"Wrote {len(files)} file(s) to {folder}{note}")
        self.exported.emit([f.path for f in files])
        return files

    @Slot()
    def export_figure(self) -> Path | None:
        version = self.figure_version.currentData()
        suffix = ".png" if self.figure_format.currentText() == "PNG" else ".svg"
        path = Path(self.figure_folder.text()) / f"{self.recording.path.stem}.{version_tag(version)}{suffix}"
        overwrite = False
        if path.exists():
            if not self.confirm(self, [path]):
                self._ok("Nothing written: existing figure kept")
                return None
            overwrite = True
        try:
            settings = (self.figure_settings(self.whole_file_check.isChecked())
                        if self.figure_settings is not None else None)  # reads the panes: GUI thread
        except (WorkbenchError, ValueError) as exc:
            self._fail(str(exc))
            return None
        # The difference views' partner belongs to the version the panes show.
        partner = self.partner if version is self.shown_version else None
        # Computing a whole-file STFT and drawing it takes seconds on long files: on a worker.
        worker = run_with_progress(self, "Exporting figure", export_figure, self.recording, version, path,
                                   self.stft_config, busy=True, channel=self.channel,
                                   width_px=self.width_spin.value(), height_px=self.height_spin.value(),
                                   overwrite=overwrite, settings=settings,
                                   partner=partner[:3] if partner is not None else None,
                                   partner_label=partner[3] if partner is not None else "")
        if worker.outcome != "done":
            exc = worker.error
            self._fail(str(exc) if isinstance(exc, (WorkbenchError, ValueError)) else
                       f"{path}: figure export failed ({type(exc).__name__}: {exc})")
            return None
        out = worker.result
        self._ok(f"Wrote {out}")
        self.exported.emit([out])
        return out

    @Slot()
    def export_comparison(self) -> list[Path]:
        folder = Path(self.comparison_folder.text())
        suffixes = [s for s, box in ((".json", self.json_check), (".csv", self.csv_check)) if box.isChecked()]
        if not suffixes:
            self._fail("Tick JSON and/or CSV")
            return []
        paths = [folder / f"{self.recording.path.stem}.comparison{s}" for s in suffixes]
        existing = [p for p in paths if p.exists()]
        overwrite = False
        if existing:
            if not self.confirm(self, existing):
                self._ok("Nothing written: existing files kept")
                return []
            overwrite = True
        out = []
        try:
            for p in paths:
                out.append(export_comparison(self.recording, p, metrics=self.metrics, stft=self.stft_config,
                                             exported=self.written, overwrite=overwrite,
                                             reference=self.reference))
        except WorkbenchError as exc:
            self._fail(str(exc))
            return out
        self._ok("Wrote " + ", ".join(str(p) for p in out))
        self.exported.emit(out)
        return out


# ======================================================================================== batch
def _batch_steps(files, model_spec, out_dir, options, load_enhancer, info=None):
    """The batch dialog's one run call, as one core generator for the worker: in this process, load the model
    (by catalogue spec: an id or a loaded file's path); on worker processes, hand them the spec (each loads
    its own) with the model's ``info``; then :func:`~workbench.core.workflows.batch.files.export_batch` over the
    files; returns the :class:`~workbench.core.workflows.batch.files.BatchSummary`."""
    if options.get("backend", "serial") != "serial" and info is not None:
        return (yield from export_batch(files, info, out_dir, spec=model_spec, **options))
    yield Progress(0.0, f"loading {model_spec}")
    enhancer = load_enhancer(model_spec)
    return (yield from export_batch(files, enhancer, out_dir, spec=model_spec, **options))


#: "Run on" choices of the batch dialog: label and backend of the batch driver.
RUN_ON_CHOICES = (("this process", "serial"), ("worker processes", "local"), ("Ray (local instance)", "ray"))


def model_choice_label(info, loaded: bool = False) -> str:
    """``DeepFilterNet3 (deepfilternet3, 48000 Hz)``; any-rate models say ``any rate``; models loaded from
    a file say so."""
    rate = "any rate" if getattr(info, "any_rate", False) else f"{info.sample_rate} Hz"
    return f"{info.name} ({info.id}, {rate}{', loaded file' if loaded else ''})"


def _registry():
    try:
        from ..core.enhance import registry
    except ImportError:
        return None
    return registry


class BatchDialog(QDialog):
    """Enhance many files with one model and export them all to a folder.

    Drop files onto the dialog (or use "Add files…"), pick a model and a folder, press Start. Progress is
    shown while a worker thread runs; at the end a summary lists every failure with its reason.

    Args:
        files: initial files (the main window passes the open recordings).
        enhancers: the model choices: ``EnhancerInfo`` s (chosen by id) and/or ``(spec, EnhancerInfo)`` pairs
            (spec: an id or the path of a model file the person loaded); default ``registry.list_enhancers()``.
            The main window passes the session's model catalogue: built-ins, plugins and loaded files.
        load_enhancer: ``spec -> Enhancer``; default ``registry.load_enhancer`` (ids and paths).

    Signals:
        batchFinished(object): the :class:`~workbench.core.workflows.batch.files.BatchSummary`.
    """

    batchFinished = Signal(object)

    def __init__(self, parent: QWidget | None = None, files: Sequence[str | Path] = (), *,
                 enhancers: Sequence | None = None, load_enhancer: Callable | None = None,
                 folder: str | Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("Batch enhancement")
        self.setAcceptDrops(True)
        reg = _registry()
        self.registry_error: str | None = None
        if enhancers is None:
            try:
                enhancers = reg.list_enhancers() if reg is not None else []
            except Exception as exc:  # a broken plugin must not keep the dialog from opening
                enhancers = []
                self.registry_error = f"could not list models: {exc}"
        self.load_enhancer = load_enhancer or (reg.load_enhancer if reg is not None else None)
        self.summary = None
        self._worker: GeneratorWorker | None = None
        self._stop = threading.Event()

        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Drop audio files here, or add them:"))
        self.file_list = QListWidget()
        self.file_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        lay.addWidget(self.file_list, 1)
        row = QHBoxLayout()
        add = QPushButton("Add files…")
        add.clicked.connect(self._browse_files)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self._remove_selected)
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        lay.addLayout(row)
        form = QFormLayout()
        self.model_box = QComboBox()
        self._infos: dict[str, object] = {}
        for entry in enhancers:
            spec, info = entry if isinstance(entry, tuple) else (entry.id, entry)
            self._infos[str(spec)] = info
            loaded = str(spec) != info.id
            self.model_box.addItem(model_choice_label(info, loaded), str(spec))
            self.model_box.setItemData(self.model_box.count() - 1, f"{info.description}\n{spec}",
                                       Qt.ItemDataRole.ToolTipRole)
        if not enhancers:
            self.model_box.addItem("(no models available)", None)
            self.model_box.setEnabled(False)
        form.addRow("Model", self.model_box)
        self.run_box = QComboBox()
        for label, backend in RUN_ON_CHOICES:
            if backend != "ray" or ray_installed():
                self.run_box.addItem(label, backend)
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(1, 256)
        self.workers_spin.setValue(max(1, min(os.cpu_count() or 1, 8)))
        self.workers_spin.setSuffix(" workers")
        self.workers_spin.setToolTip("Processes (or Ray actors), each loading the model once and enhancing one "
                                     "file at a time with one thread")
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_box, 1)
        run_row.addWidget(self.workers_spin)
        form.addRow("Run on", run_row)
        self.model_box.currentIndexChanged.connect(self._update_run_on)
        self.run_box.currentIndexChanged.connect(self._update_run_on)
        self._update_run_on()
        self.format_box, self.subtype_box = _format_row(form)
        self.rate_box = QComboBox()
        self.rate_box.addItem("Source rate", "source")
        self.rate_box.addItem("Model rate", "model")
        form.addRow("Sample rate", self.rate_box)
        self.residual_check = QCheckBox("Also export the residual (original − enhanced)")
        form.addRow(self.residual_check)
        self.overwrite_check = QCheckBox("Replace existing output files")
        form.addRow(self.overwrite_check)
        self.folder_edit = _folder_row(form, self, Path(folder) if folder else Path.cwd())
        lay.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel("")
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_label)
        self.summary_view = QPlainTextEdit()
        self.summary_view.setReadOnly(True)
        self.summary_view.setPlaceholderText("Summary of the batch appears here")
        lay.addWidget(self.summary_view, 1)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, close):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.add_files(files)

    # ------------------------------------------------------------------ files
    def files(self) -> list[Path]:
        return [Path(self.file_list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.file_list.count())]

    def add_files(self, paths: Sequence[str | Path]) -> None:
        have = set(self.files())
        for p in paths:
            p = Path(p)
            if p.is_dir():
                self.add_files(sorted(q for q in p.iterdir() if q.is_file()))
                continue
            if p in have:
                continue
            item = QListWidgetItem(str(p))
            item.setData(Qt.ItemDataRole.UserRole, str(p))
            self.file_list.addItem(item)
            have.add(p)
        self._update_buttons()

    def model_specs(self) -> list[str]:
        """Specs (ids or model paths) offered in the model box, in order."""
        return [self.model_box.itemData(i) for i in range(self.model_box.count())
                if self.model_box.itemData(i) is not None]

    def select_model(self, spec: str | Path) -> None:
        i = self.model_box.findData(str(spec))
        if i < 0:
            raise KeyError(spec)
        self.model_box.setCurrentIndex(i)

    def run_on(self) -> tuple[str, int]:
        """``(backend, workers)`` the batch will run on (``("serial", 0)``: this process)."""
        backend = self.run_box.currentData() if self.run_box.isEnabled() else "serial"
        return backend, 0 if backend == "serial" else self.workers_spin.value()

    def _update_run_on(self, *_args) -> None:
        """A worker process loads the model by its spec: a model without one this process could hand over (one
        only this window can build) stays here, and the control says why."""
        spec = self.model_box.currentData()
        problem = worker_spec_problem(spec) if spec is not None else None
        if problem is not None:
            self.run_box.setCurrentIndex(self.run_box.findData("serial"))
        self.run_box.setEnabled(problem is None and self.run_box.count() > 1)
        self.run_box.setToolTip(
            f"Runs in this process: {problem}" if problem is not None else
            "This process: the model loaded once here. Worker processes: each loads the model by its spec and "
            "enhances files side by side (outputs identical). "
            + ("Ray: actors on a private local Ray instance." if ray_installed() else
               "Ray is not installed (the [cluster] extra)."))
        self.workers_spin.setEnabled(self.run_box.isEnabled() and self.run_box.currentData() != "serial")

    def _browse_files(self) -> None:
        files = self.files()
        start = str(files[-1].parent) if files else str(Path.cwd())
        paths, _ = QFileDialog.getOpenFileNames(self, "Audio files", start,
                                                dialog_filter())
        self.add_files(paths)

    def _remove_selected(self) -> None:
        for item in self.file_list.selectedItems():
            self.file_list.takeItem(self.file_list.row(item))
        self._update_buttons()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt naming
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        self.add_files(paths)
        event.acceptProposedAction()

    def _update_buttons(self) -> None:
        running = self._worker is not None
        self.start_button.setEnabled(not running and self.file_list.count() > 0
                                     and self.model_box.currentData() is not None and self.load_enhancer is not None)
        self.cancel_button.setEnabled(running)

    # ------------------------------------------------------------------ run
    @Slot()
    def start(self) -> None:
        if self._worker is not None or self.model_box.currentData() is None or not self.files():
            return
        backend, workers = self.run_on()
        self._stop = threading.Event()
        options = {"format": self.format_box.currentText(), "subtype": self.subtype_box.currentData(),
                   "rate": self.rate_box.currentData(), "residual": self.residual_check.isChecked(),
                   "overwrite": self.overwrite_check.isChecked(), "should_stop": self._stop.is_set}
        if backend != "serial":
            options.update(backend=backend, workers=workers)
        self.summary = None
        self.summary_view.clear()
        self.progress.setValue(0)
        spec = self.model_box.currentData()
        self._worker = GeneratorWorker(_batch_steps, self.files(), spec, Path(self.folder_edit.text()), options,
                                       self.load_enhancer, self._infos.get(spec))
        self._worker.progress.connect(self._on_progress)
        self._worker.returned.connect(self._on_done)
        self._worker.errored.connect(self._on_error)
        self._worker.cancelled.connect(self._on_cancelled)
        self._worker.start()
        self._update_buttons()

    @Slot()
    def cancel(self) -> None:
        if self._worker is not None:
            self._stop.set()  # also heard while worker processes run: they are stopped, not waited for
            self._worker.cancel()
            self.progress_label.setText("Stopping after the current step…")

    def _on_progress(self, p: Progress) -> None:
        self.progress.setValue(int(round(1000 * p.fraction)))
        self.progress_label.setText(p.message)

    def _finish_thread(self) -> None:
        if self._worker is not None:
            self._worker.wait()
        self._worker = None
        self._update_buttons()

    def _on_error(self, exc: BaseException) -> None:
        # a model may raise anything; the dialog must say so and stay usable
        self._on_failed(str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}")

    def _on_cancelled(self) -> None:
        self._on_failed("Cancelled")

    def _on_done(self, summary) -> None:
        self._finish_thread()
        self.summary = summary
        self.progress.setValue(1000)
        self.progress_label.setText("Done")
        lines = [summary.text, ""] + [f"ok {src.name}: " + ", ".join(p.name for p in outs)
                                      for src, outs in summary.succeeded]
        self.summary_view.setPlainText("\n".join(lines))
        self.batchFinished.emit(summary)

    def _on_failed(self, message: str) -> None:
        self._finish_thread()
        self.progress_label.setText(message)
        self.summary_view.setPlainText(f"Batch stopped: {message}")

    def done(self, result: int) -> None:  # closing the dialog stops a running batch first
        if self._worker is not None:
            self._stop.set()
            self._worker.cancel()
            self._finish_thread()
        super().done(result)
