"""The Phase lab panel: make oracle, swap and Griffin–Lim versions of the current recording, see their
convergence and the table, and switch the panes to the effective-mask views.

Everything is computed by :func:`workbench.core.workflows.phaselab.lab_for_recording` on one
:class:`~workbench.gui.workers.GeneratorWorker`; the versions it adds are ordinary versions of the
recording, so the transport A/B-switches them loudness-matched like any model output, the panes show
them, and Export writes them under the same tags as ``workbench phase-lab``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from ..core.audio.audio_io import atomic_output, read_info
from ..core.audio.formats import dialog_filter
from ..core.errors import WorkbenchError
from ..core.measure.metrics import METRIC_SPECS
from ..core.workflows.phaselab import (GLA_INITS, NEEDS_REFERENCE, LabRow, MaskParams, RecordingLab,
                             lab_for_recording, load_reference, render_figure, rows_csv)
from ..core.views.stft import StftConfig
from ..core.document.workspace import PhaseLabSummary
from .workers import GeneratorWorker

#: Numbers in table cells: right-aligned (one flag value built once, not per cell).
NUMBER_ALIGNMENT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter

#: Extra table columns after the metrics: the effective mask's phase deviation and distance to the cIRM.
MASK_COLUMNS = (("phase_dev", "∠M (rad)"), ("cirm_dist", "M to cIRM (dB)"))


def _lab_steps(recording, cfg, reference_path: Path | None, **kwargs):
    """The worker's generator: read the reference (a bad file is one clear error), then run the lab."""
    reference = None
    if reference_path is not None:
        reference = load_reference(reference_path, recording.source.duration_s)
    return (yield from lab_for_recording(recording, cfg, reference=reference,
                                         reference_name=reference_path.name if reference_path else "reference",
                                         **kwargs))


#: Curve colours of the convergence chart: distinct hues, all light enough to read on its near-black
#: background (relative luminance above 0.25).
CHART_COLOURS = ("#ffb000", "#56b4e9", "#5ee08a", "#f0e442", "#ff7a5c", "#e08ee0", "#a0e8ff", "#ffffff")
CHART_TEXT = "#e6e6e6"
CHART_GRID = "#808890"
CHART_LEGEND_FILL = (24, 26, 30, 225)


class LogTickAxis(pg.AxisItem):
    """Axis of a log-mode plot labelled at 1-2-5 steps (0.1, 0.2, 0.5, 1 …), only as many as keep a
    line of text between labels: pyqtgraph's own log ticks labelled every 0.01 near 0.1 and overlapped."""

    def tickValues(self, minVal, maxVal, size):
        if not self.logMode or maxVal <= minVal or size <= 0:
            return super().tickValues(minVal, maxVal, size)
        gap = self.fontMetrics_height() + 6
        per_unit = size / (maxVal - minVal)
        for mantissas in ((1, 2, 5), (1, 3), (1,)):
            values = [np.log10(m) + e for e in range(int(np.floor(minVal)) - 1, int(np.ceil(maxVal)) + 1)
                      for m in mantissas]
            values = [v for v in values if minVal <= v <= maxVal]
            if len(values) < 2 or min(np.diff(values)) * per_unit >= gap:
                return [(None, values)]
        decades = max(1, int(np.ceil(gap / per_unit)))
        return [(None, [float(e) for e in range(int(np.ceil(minVal)), int(np.floor(maxVal)) + 1)
                        if e % decades == 0])]

    def fontMetrics_height(self) -> int:  # noqa: N802 - reads like Qt's
        from PySide6.QtGui import QFontMetrics
        return QFontMetrics(self.style.get("tickFont") or self.font()).height()

    def tickStrings(self, values, scale, spacing):
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [f"{10.0 ** v:.3g}" for v in values]


class PhaseLabPanel(QWidget):
    """Dock panel of the phase lab.

    Signals:
        showView(str): the user asked the panes to show a view (``mask_db`` or ``mask_phase``).
        failed(str): one line for the status bar.
        labFinished(object): the :class:`~workbench.core.workflows.phaselab.RecordingLab` of a finished run.
    """

    showView = Signal(str)
    failed = Signal(str)
    labFinished = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = None
        self._stft_config: Callable[[], StftConfig] = StftConfig
        self._reference_path: Callable[[], Path | None] = lambda: None
        self._choose_reference: Callable[[], None] | None = None
        self.worker: GeneratorWorker | None = None
        #: the workspace's job of the run (closing its recording cancels it), or None
        self.job = None
        self._showing_params = False
        self._run_pending = False   # a run started whose finished() has not been handled yet
        #: the last run's full result (signals included; for the figure export), or None
        self.result: RecordingLab | None = None
        #: what the table and the chart show: the workspace's summary for the current recording
        self.summary: PhaseLabSummary | None = None

        self.reference_label = QLabel("reference: none")
        self.reference_label.setWordWrap(True)
        self.choose_button = QPushButton("Choose reference…")
        self.choose_button.clicked.connect(lambda: self._choose_reference and self._choose_reference())

        self.oracle_box = QCheckBox("Oracle masks")
        self.oracle_box.setToolTip("IBM, IRM, IAM, PSM and cIRM applied to the recording (need the reference)")
        self.swap_box = QCheckBox("Swaps")
        self.swap_box.setToolTip("|clean| ∠noisy, |noisy| ∠clean, and |model| ∠noisy / ∠clean for each model version")
        self.gla_box = QCheckBox("Griffin–Lim")
        self.gla_box.setToolTip("GLA and fast GLA (momentum 0.99) from the clean magnitude and each model's")
        for b in (self.oracle_box, self.swap_box, self.gla_box):
            b.setChecked(True)
        self.lc_spin = self._spin(-30, 30, 0.0, 1.0, " dB", "IBM local criterion: keep bins whose SNR exceeds it")
        self.beta_spin = self._spin(0.1, 2.0, 0.5, 0.1, "", "IRM exponent β")
        self.psm_box = QCheckBox("truncate PSM to [0, 1]")
        self.psm_box.setChecked(True)
        self.cirm_box = QCheckBox("compress cIRM (K 10, C 0.1)")
        self.iter_spin = QSpinBox()
        self.iter_spin.setRange(0, 2000)
        self.iter_spin.setValue(100)
        self.iter_spin.setToolTip("Griffin–Lim iterations")
        self.init_box = QComboBox()
        for name in GLA_INITS:
            self.init_box.addItem(name, name)
        self.init_box.setCurrentIndex(GLA_INITS.index("random"))
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2 ** 31 - 1)

        params = QGroupBox("Settings (on the panes' STFT)")
        grid = QGridLayout(params)
        grid.setContentsMargins(6, 4, 6, 4)
        grid.addWidget(QLabel("IBM LC"), 0, 0)
        grid.addWidget(self.lc_spin, 0, 1)
        grid.addWidget(QLabel("IRM β"), 0, 2)
        grid.addWidget(self.beta_spin, 0, 3)
        grid.addWidget(self.psm_box, 1, 0, 1, 2)
        grid.addWidget(self.cirm_box, 1, 2, 1, 2)
        grid.addWidget(QLabel("GLA iterations"), 2, 0)
        grid.addWidget(self.iter_spin, 2, 1)
        grid.addWidget(QLabel("init"), 2, 2)
        grid.addWidget(self.init_box, 2, 3)
        grid.addWidget(QLabel("seed"), 3, 2)
        grid.addWidget(self.seed_spin, 3, 3)

        self.make_button = QPushButton("Make versions")
        self.make_button.clicked.connect(self.make_versions)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.chart = pg.PlotWidget(axisItems={"left": LogTickAxis("left")})
        self.chart.setMinimumHeight(110)
        self.chart.setLogMode(y=True)
        self.chart.setLabel("bottom", "iteration")
        self.chart.setLabel("left", "spectral convergence")
        legend = self.chart.addLegend(offset=(-5, 5), labelTextColor=CHART_TEXT)
        # An opaque box: the curves run behind the legend's upper-right corner.
        legend.setBrush(pg.mkBrush(CHART_LEGEND_FILL))
        legend.setPen(pg.mkPen(CHART_GRID))
        self.chart.showGrid(x=True, y=True, alpha=0.3)
        self.chart.getAxis("left").enableAutoSIPrefix(False)

        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(110)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.results = QTabWidget()
        self.results.addTab(self.table, "Table")
        self.results.addTab(self.chart, "GLA convergence")

        self.mask_db_button = QPushButton("Show |M|")
        self.mask_db_button.setToolTip("Second pane: effective mask |E/Y| of the shown version (dB)")
        self.mask_db_button.clicked.connect(lambda: self.show_view("mask_db"))
        self.mask_phase_button = QPushButton("Show ∠M")
        self.mask_phase_button.setToolTip("Second pane: effective mask phase ∠(E/Y) of the shown version")
        self.mask_phase_button.clicked.connect(lambda: self.show_view("mask_phase"))
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Export the table (CSV) and the bar chart with GLA convergence (PNG)")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_dialog)

        ref_row = QHBoxLayout()
        ref_row.addWidget(self.reference_label, 1)
        ref_row.addWidget(self.choose_button)
        run_row = QHBoxLayout()
        run_row.addWidget(self.make_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)
        view_row = QGridLayout()
        view_row.addWidget(self.mask_db_button, 0, 0)
        view_row.addWidget(self.mask_phase_button, 0, 1)
        view_row.addWidget(self.export_button, 0, 2)
        kinds_row = QHBoxLayout()
        for b in (self.oracle_box, self.swap_box, self.gla_box):
            kinds_row.addWidget(b)
        kinds_row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setSpacing(4)
        lay.addLayout(ref_row)
        lay.addLayout(kinds_row)
        lay.addWidget(params)
        lay.addLayout(run_row)
        lay.addWidget(self.status)
        lay.addWidget(self.results, 1)
        lay.addLayout(view_row)

    @staticmethod
    def _spin(lo, hi, value, step, suffix, tip) -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setRange(lo, hi)
        s.setSingleStep(step)
        s.setValue(value)
        s.setSuffix(suffix)
        s.setToolTip(tip)
        return s

    # -- wiring -------------------------------------------------------------------------------------------
    def attach(self, document, *, stft_config: Callable[[], StftConfig] | None = None,
               reference_path: Callable[[], Path | None] | None = None,
               choose_reference: Callable[[], None] | None = None) -> None:
        """Follow ``document`` (a DocumentModel). The clean reference is the current recording's in the
        workspace and the STFT settings are the workspace's (the panes'), unless ``reference_path()`` /
        ``stft_config()`` are given; Choose reference sets the workspace's reference (or calls
        ``choose_reference``)."""
        self.document = document
        ws = self._workspace()
        self._stft_config = stft_config or (lambda: self._workspace_stft())
        self._reference_path = reference_path or (lambda: document.reference() if ws is not None else None)
        self._choose_reference = choose_reference or (self._ask_reference if ws is not None else None)
        self.choose_button.setVisible(self._choose_reference is not None)
        document.recordingChanged.connect(lambda _rec: self._on_recording_changed())
        if hasattr(document, "referenceChanged"):
            document.referenceChanged.connect(lambda rec: rec is document.recording and self.refresh_reference())
        if hasattr(document, "phaseLabChanged"):
            # The results are the workspace's: a run here or a restored session puts them there.
            document.phaseLabChanged.connect(self._on_phase_lab_changed)
        self.refresh_reference()
        self._show_summary()
        ws = self._workspace()
        if ws is not None:
            # The run parameters are the workspace's: a restored session sets them, the controls write them.
            if ws.phase_lab_params:
                self._show_params(ws.phase_lab_params)
            else:
                ws.set_phase_lab_params(self.run_params())
            document.stateChanged.connect(self._on_state)
            for box in (self.oracle_box, self.swap_box, self.gla_box, self.psm_box, self.cirm_box):
                box.toggled.connect(self._params_edited)
            for spin in (self.lc_spin, self.beta_spin, self.iter_spin, self.seed_spin):
                spin.valueChanged.connect(self._params_edited)
            self.init_box.currentIndexChanged.connect(self._params_edited)

    def run_params(self) -> dict:
        """What the controls set: the kinds of versions to make, the mask parameters, Griffin–Lim's."""
        return {"kinds": [k for k, b in (("oracle", self.oracle_box), ("swap", self.swap_box),
                                         ("reconstruction", self.gla_box)) if b.isChecked()],
                "lc_db": self.lc_spin.value(), "beta": self.beta_spin.value(),
                "psm_truncate": self.psm_box.isChecked(), "cirm_compress": self.cirm_box.isChecked(),
                "gla_iterations": self.iter_spin.value(), "gla_init": self.init_box.currentData(),
                "gla_seed": self.seed_spin.value()}

    def _params_edited(self, *_args) -> None:
        if not self._showing_params:
            self._workspace().set_phase_lab_params(self.run_params())

    def _on_state(self, key: str) -> None:
        if key == "phase_lab_params":
            self._show_params(self._workspace().phase_lab_params)

    def _show_params(self, params: dict) -> None:
        """Put the workspace's run parameters into the controls (values a control cannot take are left)."""
        self._showing_params = True
        try:
            kinds = params.get("kinds")
            if isinstance(kinds, list):
                for kind, box in (("oracle", self.oracle_box), ("swap", self.swap_box),
                                  ("reconstruction", self.gla_box)):
                    box.setChecked(kind in kinds)
            for key, box in (("psm_truncate", self.psm_box), ("cirm_compress", self.cirm_box)):
                if isinstance(params.get(key), bool):
                    box.setChecked(params[key])
            for key, spin in (("lc_db", self.lc_spin), ("beta", self.beta_spin)):
                if isinstance(params.get(key), (int, float)):
                    spin.setValue(float(params[key]))
            for key, spin in (("gla_iterations", self.iter_spin), ("gla_seed", self.seed_spin)):
                if isinstance(params.get(key), int):
                    spin.setValue(params[key])
            i = self.init_box.findData(params.get("gla_init"))
            if i >= 0:
                self.init_box.setCurrentIndex(i)
        finally:
            self._showing_params = False

    def _workspace_stft(self) -> StftConfig:
        """The workspace's STFT settings (what the panes show), the defaults where it has none."""
        st, default = self._workspace().stft, StftConfig()
        try:
            return StftConfig(n_fft=int(st.get("n_fft", default.n_fft)), hop=int(st.get("hop", default.hop)),
                              window=str(st.get("window", default.window)))
        except (TypeError, ValueError):
            return default

    def _ask_reference(self) -> None:
        """Choose the clean reference of the current recording (the workspace's: the Metrics panel uses it too)."""
        rec = self.document.recording
        if rec is None:
            self._fail("open a recording first")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Clean reference", str(rec.path.parent), dialog_filter())
        if not path:
            return
        try:
            read_info(path)   # header only: a file that cannot be read is said now
        except WorkbenchError as exc:
            self._fail(str(exc))
            return
        self.document.set_reference(rec, path)

    def show_view(self, name: str) -> None:
        """Show the view ``name`` in the second pane (the workspace's display settings; the controls follow)."""
        ws = self._workspace()
        if ws is not None:
            ws.set_display({**ws.display, "phase_view": name})
        self.showView.emit(name)

    def refresh_reference(self) -> None:
        path = self._reference_path()
        self.reference_label.setText(f"reference: {path.name}" if path else
                                     "reference: none — oracle masks and clean-phase swaps need one")
        self.reference_label.setToolTip(str(path) if path else "")

    def _on_recording_changed(self) -> None:
        self.cancel()
        self.result = None
        self.status.setText("")
        self.refresh_reference()
        self._show_summary()

    def _on_phase_lab_changed(self, rec) -> None:
        if self.document is not None and rec is self.document.recording:
            self._show_summary()

    def _workspace(self):
        return getattr(self.document, "workspace", None)

    def _show_summary(self) -> None:
        """Show the current recording's phase-lab results (the workspace's), or nothing."""
        ws = self._workspace()
        rec = self.document.recording if self.document is not None else None
        self.summary = ws.phase_lab_of(rec) if ws is not None else (
            PhaseLabSummary.from_lab(self.result) if self.result is not None else None)
        if self.summary is None:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            self.chart.clear()
            self.export_button.setEnabled(False)
            return
        if not self.status.text():
            self.status.setText(self.summary.notes)
        self._draw_chart()
        self._fill_table()
        self.export_button.setEnabled(True)

    # -- running ------------------------------------------------------------------------------------------
    def params(self) -> MaskParams:
        return MaskParams(lc_db=self.lc_spin.value(), beta=self.beta_spin.value(),
                          psm_truncate=self.psm_box.isChecked(), cirm_compress=self.cirm_box.isChecked())

    def running(self) -> bool:
        """From the start of a run until its ``finished`` has been handled here (the worker's thread can end
        before its queued outcome — "cancelled", an error, the versions — reaches the panel)."""
        return self.worker is not None and (self.worker.is_running() or self._run_pending)

    def make_versions(self) -> None:
        """Start the lab on the current recording (one run at a time)."""
        rec = self.document.recording if self.document is not None else None
        if rec is None:
            self._fail("open a recording first")
            return
        if self.running():
            return
        kinds = tuple(k for k, b in (("oracle", self.oracle_box), ("swap", self.swap_box),
                                     ("reconstruction", self.gla_box)) if b.isChecked())
        if not kinds:
            self._fail("choose at least one kind of version to make")
            return
        self.refresh_reference()
        ref = self._reference_path()
        gen = _lab_steps(rec, self._stft_config(), ref, channel=self.document.channel, params=self.params(),
                         gla_iterations=self.iter_spin.value(), gla_init=self.init_box.currentData(),
                         gla_seed=self.seed_spin.value(), kinds=kinds)
        ws = self._workspace()
        self.job = None
        if ws is not None and rec in ws.recordings:
            # A job of the recording, as a model run is: the window lists it, closing the recording cancels it.
            self.job = ws.new_job(gen, rec, f"phase lab on {rec.name}")
            gen = self.job.steps()
        self.worker = w = GeneratorWorker(gen)
        w.progress.connect(self._on_progress)
        w.returned.connect(self._on_returned)
        w.errored.connect(lambda exc: self._fail(str(exc) if isinstance(exc, WorkbenchError)
                                                 else f"{type(exc).__name__}: {exc}"))
        w.cancelled.connect(lambda: self.status.setText("cancelled"))
        w.finished.connect(self._on_finished)
        self.make_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("")
        self._run_pending = True
        w.start()

    def cancel(self) -> None:
        if self.running():
            if self.job is not None:
                self.job.cancel()
            self.worker.cancel()

    def shutdown(self) -> None:
        """Cancel a run and wait for its thread (window closing)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(60000)

    def _on_progress(self, p) -> None:
        self.progress.setValue(int(1000 * p.fraction))
        self.progress.setFormat(p.message[:60])

    def _on_finished(self) -> None:
        self._run_pending = False
        self.make_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.setFormat("")

    def _fail(self, message: str) -> None:
        self.status.setText(message)
        self.failed.emit(message)

    def _on_returned(self, result: RecordingLab) -> None:
        self.result = result
        notes = list(result.lab.notes)
        ref = result.lab.reference
        if ref is not None:
            extra = f", resampled from {ref.resampled_from} Hz" if ref.resampled_from else ""
            notes.insert(0, f"reference aligned: lag {ref.lag_samples} samples, covers "
                            f"{100 * ref.coverage:.0f}%{extra}")
        notes.append(f"added {len(result.versions)} versions (channel {result.channel + 1})")
        self.status.setText("; ".join(notes))
        summary = PhaseLabSummary.from_lab(result, "; ".join(notes))
        ws = self._workspace()
        rec = self.document.recording if self.document is not None else None
        if ws is not None and rec is not None and rec in ws.recordings:
            ws.set_phase_lab(rec, summary)   # the panel redraws from the workspace's event
        else:
            self._show_summary()
        self.labFinished.emit(result)

    # -- results ------------------------------------------------------------------------------------------
    def _draw_chart(self) -> None:
        self.chart.clear()
        curves = self.summary.curves if self.summary is not None else []
        for i, c in enumerate(curves):
            sc = np.maximum(np.nan_to_num(np.asarray(c["spectral_convergence"], float), nan=1e-6), 1e-6)
            # GLA and fast GLA of one magnitude share a colour (dashed / solid); colours bright on the dark plot.
            pen = pg.mkPen(CHART_COLOURS[(i // 2) % len(CHART_COLOURS)], width=2,
                           style=Qt.PenStyle.SolidLine if c["momentum"] > 0 else Qt.PenStyle.DashLine)
            inconsistency = c["inconsistency"]
            self.chart.plot(np.arange(len(sc)), sc, pen=pen,
                            name=f"{c['label']}: " + ("—" if inconsistency is None else f"{inconsistency:.3f}"))

    def table_columns(self) -> list[tuple[str, str]]:
        rows = self.summary.rows if self.summary is not None else []
        metrics = list(dict.fromkeys(r["metric"] for r in rows))
        return [(k, METRIC_SPECS[k].label if k in METRIC_SPECS else k) for k in metrics] + list(MASK_COLUMNS)

    def table_rows(self) -> list[str]:
        """Version names in table order: original (noisy), models, lab versions."""
        if self.summary is None:
            return []
        names = list(dict.fromkeys(r["version"] for r in self.summary.rows))
        for st in self.summary.mask_stats:
            if st["version"] not in names:
                names.append(st["version"])
        if "original" not in names:
            names.insert(0, "original")
        return names

    def cell_text(self, version: str, column: str) -> str:
        if self.summary is None:
            return ""
        if column in ("phase_dev", "cirm_dist"):
            st = next((x for x in self.summary.mask_stats if x["version"] == version), None)
            value = None if st is None else st["phase_deviation_rad" if column == "phase_dev" else "cirm_distance_db"]
            digits = 3 if column == "phase_dev" else 1
        else:
            row = next((r for r in self.summary.rows if r["version"] == version and r["metric"] == column), None)
            value = None if row is None else row["value"]
            digits = 2
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "—"
        return "∞" if np.isinf(value) else f"{value:.{digits}f}"

    def _fill_table(self) -> None:
        cols = self.table_columns()
        names = self.table_rows()
        self.table.clear()
        self.table.setColumnCount(len(cols))
        self.table.setRowCount(len(names))
        self.table.setHorizontalHeaderLabels([label for _, label in cols])
        self.table.setVerticalHeaderLabels(["noisy (original)" if n == "original" else n for n in names])
        for i, name in enumerate(names):
            for j, (key, _) in enumerate(cols):
                item = QTableWidgetItem(self.cell_text(name, key))
                item.setTextAlignment(NUMBER_ALIGNMENT)
                self.table.setItem(i, j, item)
        self.table.setToolTip(NEEDS_REFERENCE if not self.summary.rows else "")

    # -- export -------------------------------------------------------------------------------------------
    def export(self, csv_path: str | Path, figure_path: str | Path | None = None, *, overwrite: bool = False
               ) -> list[Path]:
        """Write the long-form table (``file, version, metric, value, unit, reason``) and the bar chart with
        the convergence curves through the atomic writer; the recording and its reference are protected."""
        if self.summary is None:
            raise WorkbenchError("make the phase-lab versions first")
        rec = self.document.recording
        protect = tuple(p for p in (rec.path if rec is not None else None, self._reference_path()) if p)
        written = []
        rows = [LabRow(**r) for r in self.summary.rows]
        with atomic_output(csv_path, overwrite=overwrite, protect=protect) as tmp:
            Path(tmp).write_text(rows_csv(rows), encoding="utf-8")
        written.append(Path(csv_path))
        # The figure draws the signals of this run (a restored session keeps the table and curves only).
        if figure_path is not None and self.result is not None:
            labels = {v.tag: v.label for v in self.result.lab.versions}
            kinds = {v.name: v.kind.value for v in self.result.versions}
            fig = render_figure(self.result.rows, self.result.lab.versions, labels, kinds)
            fmt = Path(figure_path).suffix.lower().lstrip(".") or "png"
            with atomic_output(figure_path, overwrite=overwrite, protect=protect) as tmp:
                fig.savefig(tmp, format=fmt)
            written.append(Path(figure_path))
        return written

    def _export_dialog(self) -> None:
        rec = self.document.recording
        start = str(rec.path.with_suffix("")) + ".phase-lab.csv" if rec is not None else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export phase-lab table", start, "CSV (*.csv)")
        if not path:
            return
        try:
            # The dialog already asked before replacing an existing CSV.
            written = self.export(path, Path(path).with_suffix(".png"), overwrite=True)
        except WorkbenchError as exc:
            self._fail(str(exc))
            return
        self.status.setText("wrote " + ", ".join(p.name for p in written))
