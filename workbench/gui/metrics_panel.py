"""Metrics panel: every version of the current recording measured side by side.

Rows are metrics (intrusive ones only when a clean reference is set; DNSMOS always), columns are versions.
The best value of each row is highlighted according to the metric's direction. Measuring runs on a
:class:`~workbench.gui.workers.GeneratorWorker` that drives the core generator :func:`workbench.core.evaluation.score_versions`
(the same code as ``workbench evaluate``, so the numbers match the CLI); between versions the worker checks
a cancel flag, so :meth:`MetricsPanel.cancel` stops it without killing a thread. Results are cached per
version and reference, so adding a version only measures the new one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget, QHeaderView, QCheckBox)

from ..core.audio_io import load_audio
from ..core.dnsmos import DNSMOS_METRICS
from ..core.errors import WorkbenchError
from ..core.evaluation import Scores, score_versions
from ..core.metrics import INTRUSIVE_METRICS, METRIC_SPECS, find_reference_for
from ..core.recording import Recording, Version
from .workers import GeneratorWorker

BEST_BRUSH = QBrush(QColor(46, 125, 50, 90))


def format_value(value: float) -> str:
    """Two decimals for ordinary magnitudes, three significant digits for small loss values."""
    return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"


class MetricsWorker(GeneratorWorker):
    """:class:`~workbench.gui.workers.GeneratorWorker` over :func:`score_versions`, remembering what it
    measures (``versions``, reference ``key``) so the panel can file results and ignore a stale job."""

    def __init__(self, versions: list[Version], reference: np.ndarray | None, reference_rate: int | None,
                 dnsmos: bool = True, key: str = "", pool: QThreadPool | None = None):
        super().__init__(score_versions, versions, reference, reference_rate, dnsmos=dnsmos, pool=pool)
        self.key = key
        self.versions = versions


class MetricsPanel(QWidget):
    """Table of metrics (rows) x versions (columns) for one :class:`Recording`.

    Args:
        document: optional ``workbench.gui.document.DocumentModel``; the panel follows its current recording
            and its version list. Without one, call :meth:`set_recording`.

    Signals:
        started(): a measurement began.
        progress(float, str): fraction done and a message.
        resultsReady(object): ``{version name: Scores}`` for every measured version (all cached results).
        failed(str): a message for the person.
        cancelled(): the running measurement was stopped.
        referenceChanged(object): the reference ``Path`` (or ``None``).
    """

    started = Signal()
    progress = Signal(float, str)
    resultsReady = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    referenceChanged = Signal(object)

    def __init__(self, document=None, parent: QWidget | None = None, *, auto_compute: bool = True,
                 pool: QThreadPool | None = None):
        super().__init__(parent)
        self.document = document
        self.recording: Recording | None = None
        self.reference_path: Path | None = None
        self.reference_auto = False
        self._reference: tuple[np.ndarray, int] | None = None
        # (id(version.source), reference key) -> (source, Scores); holding the source keeps its id from being reused
        self._cache: dict[tuple[int, str], tuple[object, Scores]] = {}
        self._worker: MetricsWorker | None = None
        self._pending = False
        self.auto_compute = auto_compute
        self.pool = pool or QThreadPool.globalInstance()

        self.reference_label = QLabel("reference: none (DNSMOS only)")
        self.reference_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.choose_button = QPushButton("Choose reference…")
        self.choose_button.setToolTip("Pick the clean recording to compare against (intrusive metrics)")
        self.choose_button.clicked.connect(self._choose_reference)
        self.clear_button = QPushButton("No reference")
        self.clear_button.clicked.connect(lambda: self.set_reference(None))
        self.compute_button = QPushButton("Measure")
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.copy_button = QPushButton("Copy table")
        self.copy_button.setToolTip("Copy the metrics as tab-separated text (full precision) for a spreadsheet")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.dnsmos_box = QCheckBox("DNSMOS")
        self.dnsmos_box.setChecked(True)
        self.dnsmos_box.setToolTip("Non-intrusive DNSMOS P.835/P.808 (no reference needed)")
        self.dnsmos_box.toggled.connect(lambda _: self._refresh_table())
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

        # Three short rows rather than two long ones, so the panel fits a narrow dock beside the panes.
        self.reference_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.choose_button)
        top.addWidget(self.clear_button)
        top.addWidget(self.dnsmos_box)
        top.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.compute_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.copy_button)
        row.addWidget(self.progress_bar, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.reference_label)
        lay.addLayout(top)
        lay.addLayout(row)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.status)

        if document is not None:
            document.recordingChanged.connect(self.set_recording)
            document.versionsChanged.connect(self._on_versions_changed)
            if getattr(document, "recording", None) is not None:
                self.set_recording(document.recording)

    # -- inputs -------------------------------------------------------------------------------------------
    @Slot(object)
    def set_recording(self, recording: Recording | None) -> None:
        """Show ``recording``; auto-pairs a clean reference (``X_noisy.wav`` -> ``X_clean.wav``,
        ``noisy/NAME.wav`` -> ``clean/NAME.wav``) when one exists and none was chosen by hand."""
        if recording is self.recording:
            return
        self.cancel()
        self.recording = recording
        if self.reference_path is None or self.reference_auto:
            ref = find_reference_for(recording.path) if recording is not None else None
            self._set_reference(ref, auto=ref is not None)
        self._refresh_table()
        if self.auto_compute:
            self.compute()

    @Slot(object)
    def _on_versions_changed(self, recording) -> None:
        if recording is self.recording:
            self._refresh_table()
            if self.auto_compute:
                self.compute()

    def set_reference(self, path: str | Path | None) -> None:
        """Use the clean file at ``path`` as reference (``None``: DNSMOS only). A bad file is reported through
        :attr:`failed` and the status line; the previous reference is kept."""
        self._set_reference(Path(path) if path is not None else None, auto=False)
        self._refresh_table()
        if self.auto_compute:
            self.compute()

    def _set_reference(self, path: Path | None, auto: bool) -> None:
        if path is None:
            self._reference, self.reference_path, self.reference_auto = None, None, False
            self.reference_label.setText("reference: none (DNSMOS only)")
        else:
            try:
                audio, info = load_audio(path)
            except WorkbenchError as exc:
                self._report(str(exc))
                return
            self._reference = (audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0], info.sample_rate)
            self.reference_path, self.reference_auto = path, auto
            how = "auto-paired" if auto else "chosen"
            self.reference_label.setText(f"reference ({how}): {path.name}")
            self.reference_label.setToolTip(str(path))
        self.referenceChanged.emit(self.reference_path)

    def _choose_reference(self) -> None:
        start = str(self.recording.path.parent) if self.recording is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, "Clean reference", start,
                                              "Audio (*.wav *.flac *.ogg *.aiff *.aif *.mp3);;All files (*)")
        if path:
            self.set_reference(path)

    # -- measuring ----------------------------------------------------------------------------------------
    def _ref_key(self) -> str:
        return f"{self.reference_path}|dnsmos={self.dnsmos_box.isChecked()}"

    def versions(self) -> list[Version]:
        """Versions shown as columns: the original and enhanced ones (residuals are not speech estimates)."""
        if self.recording is None:
            return []
        return [v for v in self.recording.versions if v.kind != "residual"]

    @property
    def running(self) -> bool:
        return self._worker is not None

    @Slot()
    def compute(self) -> None:
        """Measure every version without a cached result (on the thread pool)."""
        if self.recording is None:
            return
        if self._worker is not None:
            self._pending = True  # re-run once the current job ends (versions may have changed)
            return
        key = self._ref_key()
        todo = [v for v in self.versions() if (id(v.source), key) not in self._cache]
        if not todo:
            self._refresh_table()
            self.resultsReady.emit(self.results())
            return
        ref, rate = self._reference if self._reference is not None else (None, None)
        worker = MetricsWorker(todo, ref, rate, dnsmos=self.dnsmos_box.isChecked(), key=key, pool=self.pool)
        worker.progress.connect(lambda p, w=worker: self._on_progress(w, p.fraction, p.message))
        worker.returned.connect(lambda results, w=worker: self._on_finished(w, results))
        worker.errored.connect(lambda exc, w=worker: self._on_failed(
            w, str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"))
        worker.cancelled.connect(lambda w=worker: self._on_cancelled(w))
        self._worker = worker
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"measuring {len(todo)} version(s)…")
        self.started.emit()
        worker.start()

    @Slot()
    def cancel(self) -> None:
        """Ask the running measurement to stop after the version it is working on."""
        self._pending = False
        if self._worker is not None:
            self._worker.cancel()

    @Slot(object, float, str)
    def _on_progress(self, worker, fraction: float, message: str) -> None:
        if worker is not self._worker:
            return
        self.progress_bar.setValue(int(1000 * fraction))
        self.progress_bar.setFormat(message)
        self.progress.emit(fraction, message)

    def _job_done(self, worker: MetricsWorker) -> bool:
        if worker is not self._worker:
            return False
        self._worker = None
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        return True

    @Slot(object, object)
    def _on_finished(self, worker: MetricsWorker, results: dict) -> None:
        if not self._job_done(worker):
            return
        for v in worker.versions:
            if v.name in results:
                self._cache[(id(v.source), worker.key)] = (v.source, results[v.name])
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat("done")
        self.status.setText("")
        self._refresh_table()
        self.resultsReady.emit(self.results())
        self._maybe_rerun()

    @Slot(object, str)
    def _on_failed(self, worker: MetricsWorker, message: str) -> None:
        if self._job_done(worker):
            self._report(message)
            self._maybe_rerun()

    @Slot(object)
    def _on_cancelled(self, worker: MetricsWorker) -> None:
        if self._job_done(worker):
            self.progress_bar.setFormat("cancelled")
            self.status.setText("measuring cancelled")
            self.cancelled.emit()
            self._maybe_rerun()

    def _maybe_rerun(self) -> None:
        if self._pending:
            self._pending = False
            self.compute()

    def _report(self, message: str) -> None:
        self.status.setText(message)
        self.failed.emit(message)

    # -- results ------------------------------------------------------------------------------------------
    def results(self) -> dict[str, Scores]:
        """Cached scores of the current recording's versions under the current reference: ``{name: Scores}``."""
        key = self._ref_key()
        return {v.name: self._cache[(id(v.source), key)][1] for v in self.versions()
                if (id(v.source), key) in self._cache}

    def metric_rows(self) -> list[str]:
        rows = list(INTRUSIVE_METRICS) if self._reference is not None else []
        if self.dnsmos_box.isChecked():
            rows += list(DNSMOS_METRICS)
        return rows

    def best_version(self, metric: str) -> str | None:
        """Name of the version with the best value of ``metric`` (None when no version has one)."""
        vals = [(s.metrics[metric].value, name) for name, s in self.results().items()
                if metric in s.metrics and s.metrics[metric].value is not None]
        if not vals:
            return None
        return (max(vals) if METRIC_SPECS[metric].higher_is_better else min(vals))[1]

    def _refresh_table(self) -> None:
        versions = self.versions()
        rows = self.metric_rows()
        results = self.results()
        self.table.clear()
        self.table.setRowCount(len(rows))
        self.table.setColumnCount(len(versions))
        self.table.setHorizontalHeaderLabels([v.name for v in versions])
        for j, v in enumerate(versions):
            sc = results.get(v.name)
            if sc is not None and sc.lag_samples is not None:
                self.table.horizontalHeaderItem(j).setToolTip(f"aligned to the reference with a lag of "
                                                              f"{sc.lag_samples} samples")
        labels = []
        for k in rows:
            spec = METRIC_SPECS[k]
            unit = f" [{spec.unit}]" if spec.unit and spec.unit != "MOS" else ""
            labels.append(f"{spec.label}{unit} {'↑' if spec.higher_is_better else '↓'}")
        self.table.setVerticalHeaderLabels(labels)
        bold = QFont()
        bold.setBold(True)
        for i, k in enumerate(rows):
            spec = METRIC_SPECS[k]
            self.table.verticalHeaderItem(i).setToolTip(spec.description)
            best = self.best_version(k)
            for j, v in enumerate(versions):
                sc = results.get(v.name)
                if sc is None:
                    item = QTableWidgetItem("…" if self.running else "")
                else:
                    m = sc.metrics.get(k)
                    if m is None or m.value is None:
                        item = QTableWidgetItem("n/a")
                        item.setToolTip(m.reason if m is not None else "not computed")
                    else:
                        item = QTableWidgetItem(format_value(m.value))
                        item.setToolTip(f"{m.value!r} {m.unit}".strip())
                        if v.name == best and len(versions) > 1:
                            item.setBackground(BEST_BRUSH)
                            item.setFont(bold)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)

    def table_as_tsv(self) -> str:
        """The table as tab-separated text: header ``metric, unit, direction, <versions>``, full-precision
        values, empty cells where a metric has no value."""
        versions = [v.name for v in self.versions()]
        results = self.results()
        lines = ["\t".join(["metric", "unit", "better"] + versions)]
        for k in self.metric_rows():
            spec = METRIC_SPECS[k]
            cells = []
            for name in versions:
                m = results[name].metrics.get(k) if name in results else None
                cells.append("" if m is None or m.value is None else repr(float(m.value)))
            lines.append("\t".join([k, spec.unit, "higher" if spec.higher_is_better else "lower"] + cells))
        return "\n".join(lines) + "\n"

    @Slot()
    def copy_to_clipboard(self) -> None:
        QApplication.clipboard().setText(self.table_as_tsv())

    def cell_text(self, metric: str, version_name: str) -> str:
        """Text shown for ``metric`` x ``version_name`` (for tests and copy/paste)."""
        rows, cols = self.metric_rows(), [v.name for v in self.versions()]
        item = self.table.item(rows.index(metric), cols.index(version_name))
        return item.text() if item is not None else ""

    def is_highlighted(self, metric: str, version_name: str) -> bool:
        rows, cols = self.metric_rows(), [v.name for v in self.versions()]
        item = self.table.item(rows.index(metric), cols.index(version_name))
        return item is not None and item.font().bold()

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)
