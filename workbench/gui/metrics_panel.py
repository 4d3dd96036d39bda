"""Metrics panel: every version of the current recording measured side by side.

Rows are metrics, one per column of the metric table (:data:`~workbench.core.measure.metrics.METRIC_SPECS`):
intrusive ones only when a clean reference is set, the reference-free ones (DNSMOS) when their box is ticked;
columns are versions. The best value of each row is highlighted according to the metric's direction.

Measuring runs on a :class:`QThreadPool` worker that drives the core generator
:func:`workbench.core.measure.scoring.score_versions` (the same code as ``workbench evaluate``, so the numbers
match the CLI). What the panel keeps, and why:

* Results live in the workspace's :class:`~workbench.core.document.workspace.MeasurementStore`, keyed by the
  samples measured, the reference file's content and the metric settings: intrusive scores per (samples,
  reference) and the reference-free ones (DNSMOS) per samples. Choosing another reference therefore
  re-measures only the intrusive rows; DNSMOS (which needs no reference) stays; a restored session shows its
  measurements again without measuring, as long as the versions sound the same and the reference is the same file.
* Cells fill as each version's part arrives (``on_result`` of the generator), not when the whole job ends.
* The clean reference belongs to the recording (the session model holds it,
  :meth:`~workbench.core.document.session.Session.reference`), not to this widget: switching recordings shows each
  one's own reference.
* DNSMOS is slow (a 9 s window every second of audio). Automatic measuring (tab visible, a new version, a
  new reference) includes it only when its estimated cost is small; otherwise the Measure button shows
  the estimate and DNSMOS starts when pressed. While a model job runs (:meth:`set_model_busy`, fed from
  the session's jobs) a running measurement pauses between steps, so it never slows the model.
* **Speech only** (a box, kept in the workspace's metric settings so a session keeps it): every metric is
  computed over the speech spans that Silero VAD finds, with the window's speech-activity settings
  (:attr:`MetricsPanel.vad_settings`), the samples inside the spans joined. The spans are found on the clean
  reference when there is one (clean speech is where the detector is surest, and the intrusive metrics
  compare against it), else on the original recording; the same spans cut every version (versions share
  the original's timeline). The measurement key's settings name the mode, the VAD settings and the content
  of what the spans were found on, so figures of the two modes never mix. The line above the table says
  which mode the figures are in, and so does the copied table's last line.
* After measuring, the alignment of the reference with the original recording is checked
  (:class:`~workbench.core.measure.scoring.AlignmentCheck`); a reference that does not match (low aligned
  correlation, lag at the search limit) is reported in the panel's warning line.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator

from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QAbstractScrollArea, QApplication, QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.audio.audio_io import downmix, load_audio, read_info
from ..core.audio.formats import dialog_filter
from ..core.progress import Progress, rescaled
from ..core.errors import Cancelled, WorkbenchError
from ..core.measure.scoring import (INTRUSIVE, NON_INTRUSIVE, Scores, measurement_settings, score_versions,
                                    speech_settings)
from ..core.measure.metrics import (METRIC_SPECS, find_reference_for, intrusive_keys, reference_free_groups,
                                    reference_free_keys, reference_free_label)
from ..core.measure.vad import VadSettings, detect_speech
from ..core.document.recording import Recording, Version
from ..core.document.session import JobState, Session
from ..core.document.workspace import MeasurementStore
from .workers import GeneratorWorker

#: Numbers in table cells: right-aligned (one flag value built once, not per cell).
NUMBER_ALIGNMENT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter

BEST_BRUSH = QBrush(QColor(46, 125, 50, 90))
WARNING_STYLE = "color: #8a4b00; background: #fff3cd; padding: 3px; border-radius: 3px;"
#: Automatic measuring (no button pressed) includes the reference-free metrics (DNSMOS) only when their
#: estimate is at most this long.
AUTO_REFERENCE_FREE_MAX_COST_S = 20.0
#: Widest a version's column gets (px); longer names are elided in the middle.
MAX_COLUMN_PX = 130
#: Shortest time between two rebuilds of the table while results arrive (ms).
REFRESH_MS = 150
#: Automatic measuring of the intrusive metrics only for recordings up to this duration (PESQ and the
#: alignment read the whole file into memory); longer ones wait for the Measure button.
AUTO_INTRUSIVE_MAX_S = 600.0


@dataclass(frozen=True)
class SpeechOnly:
    """A speech-only measurement: the VAD settings and the recording's original (whose speech spans are
    used when there is no reference)."""

    settings: VadSettings
    original: object   # the original version's AudioSource


@dataclass(frozen=True)
class SpeechSpans:
    """The spans a speech-only measurement used: found on ``found_on`` (``reference`` or ``original``)."""

    spans: tuple[tuple[float, float], ...]
    duration_s: float
    found_on: str

    @property
    def speech_s(self) -> float:
        return float(sum(b - a for a, b in self.spans))


def format_value(value: float) -> str:
    """Two decimals for ordinary magnitudes, three significant digits for small loss values."""
    return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"


def format_duration(seconds: float) -> str:
    """``8 s``, ``2 min 10 s``, ``1 h 05 min``: a cost estimate for people."""
    s = int(round(seconds))
    if s < 60:
        return f"{max(s, 1)} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def measure_steps(intrusive: list[Version], reference_free: list[Version], reference_path: Path | None,
                  resume: threading.Event, should_stop: Callable[[], bool],
                  on_result: Callable[[Version, str, Scores], None],
                  on_paused: Callable[[bool], None], store: MeasurementStore | None = None,
                  reference_key: str | None = None, speech: SpeechOnly | None = None,
                  on_spans: Callable[[str, SpeechSpans], None] | None = None) -> Generator[Progress, None, dict[str, Scores]]:
    """The panel's measurement, run on the worker thread: load the reference file, then
    :func:`~workbench.core.measure.scoring.score_versions` (intrusive metrics of ``intrusive``, the
    reference-free ones of ``reference_free``).

    Yields the core's :class:`~workbench.core.progress.Progress`; ``on_result(version, part, scores)`` is
    called as each part of each version is measured (so the table fills cell by cell). While ``resume`` is
    clear (a model job runs) it waits between steps — ``on_paused(True)`` before, ``on_paused(False)``
    after — until ``resume`` is set or ``should_stop()`` says to end (then it raises Cancelled).

    With a ``store`` each version's samples are hashed first (here, on the worker): what the store holds
    for the same samples, reference and settings is reported at once and not measured again; what is
    measured is stored under the samples it was measured on.

    With ``speech`` every metric covers the speech spans only (see the module docstring);
    ``on_spans(settings suffix, SpeechSpans)`` reports the spans before measuring. No speech found is an error.
    """
    suffix = ""
    ref = None
    if store is not None:
        sources = {id(v): v.source for v in list(intrusive) + list(reference_free)}
        for i, source in enumerate(sources.values()):
            yield Progress(0.0, f"checking version {i + 1} of {len(sources)}")
            store.samples_key(source)
        ref = reference_key if reference_key is not None else store.reference_key(reference_path)
        if speech is not None:
            suffix = speech_settings(speech.settings, f"reference:{ref}" if reference_path is not None
                                     else f"original:{store.samples_key(speech.original)}")

        def reuse(versions, reference, settings, part):
            left = []
            for v in versions:
                found = store.get(sources[id(v)], reference, settings)
                if found is None:
                    left.append(v)
                else:
                    on_result(v, part, found)
            return left
        intrusive = reuse(intrusive, ref, measurement_settings(INTRUSIVE, suffix), INTRUSIVE) if ref is not None \
            else intrusive
        reference_free = reuse(reference_free, "", measurement_settings(NON_INTRUSIVE, suffix), NON_INTRUSIVE)
        inner = on_result

        def on_result(version, part, scores):   # noqa: F811 - stores, then reports
            if part == INTRUSIVE and ref is not None:
                store.put(sources[id(version)], ref, measurement_settings(INTRUSIVE, suffix), scores)
            elif part == NON_INTRUSIVE:
                store.put(sources[id(version)], "", measurement_settings(NON_INTRUSIVE, suffix), scores)
            inner(version, part, scores)
    if not intrusive and not reference_free:
        return {}
    reference = rate = None
    if (intrusive or speech is not None) and reference_path is not None:
        audio, info = load_audio(reference_path)
        reference = downmix(audio)
        rate = info.sample_rate
    spans = None
    if speech is not None:
        found_on, audio, spans_rate = (("reference", reference, rate) if reference is not None
                                       else ("original", speech.original.read_all(), speech.original.sample_rate))
        vad = yield from rescaled(detect_speech(audio, spans_rate, speech.settings), 0.0, 0.05,
                                  f"speech activity of the {found_on}: ")
        if not vad.spans:
            where = reference_path.name if found_on == "reference" else "the original recording"
            raise WorkbenchError(f"{where}: the speech activity detector found no speech (threshold "
                                 f"{speech.settings.threshold:g}); speech-only metrics need some")
        spans = vad.spans
        if on_spans is not None:
            on_spans(suffix, SpeechSpans(tuple(spans), vad.duration_s, found_on))
    if not intrusive:
        reference = rate = None
    gen = score_versions(intrusive, reference, rate, intrusive=bool(intrusive),
                         reference_free=bool(reference_free), reference_free_versions=reference_free,
                         on_result=on_result, speech_spans=spans)
    try:
        while True:
            if not resume.is_set() and not should_stop():
                on_paused(True)
                while not resume.wait(0.05) and not should_stop():
                    pass
                on_paused(False)
            if should_stop():
                raise Cancelled("cancelled on request")
            try:
                step = next(gen)
            except StopIteration as done:
                return done.value
            yield step
    finally:
        gen.close()


class _Job:
    """The panel's running measurement: what it measures, its worker and its session job."""

    def __init__(self, intrusive: list[Version], reference_free: list[Version], reference_path: Path | None,
                 reference_key: str, speech: SpeechOnly | None = None):
        self.intrusive, self.reference_free = intrusive, reference_free
        self.speech = speech
        self.reference_path, self.reference_key = reference_path, reference_key
        self.stop = threading.Event()
        self.started = time.perf_counter()
        self.reference_free_audio_s = 0.0
        #: seconds of audio of each version whose DNSMOS this job measured
        self.reference_free_durations: list[float] = []
        self.worker: GeneratorWorker | None = None
        self.session_job = None

    def should_stop(self) -> bool:
        """Cancel asked here, or by the session (the recording was closed)."""
        return self.stop.is_set() or (self.session_job is not None and self.session_job.cancel_requested)

    def cancel(self) -> None:
        self.stop.set()
        if self.worker is not None:
            self.worker.cancel()
        if self.session_job is not None:
            self.session_job.cancel()


class MetricsPanel(QWidget):
    """Table of metrics (rows) x versions (columns) for one :class:`Recording`.

    Args:
        document: optional ``workbench.gui.document.DocumentModel``; the panel follows its current recording
            and its version list. Without one, call :meth:`set_recording`.
        session: the :class:`~workbench.core.document.session.Session` that holds each recording's clean reference and
            the jobs (a running model job pauses measuring; measurements are registered as jobs owned by
            their recording, so closing it cancels them); default: the document's ``session``, else a new one.
        auto_compute: measure on recording, version and reference changes (cheap parts only, see the
            module docstring); the main window turns it on while the Metrics tab is visible.
        costs: ``{group: time estimate}`` of the reference-free metrics that have one (default: each
            group's ``MetricSpec.cost()``; DNSMOS's :class:`~workbench.core.measure.dnsmos.DnsmosCost`),
            updated from each run.

    Signals:
        started(): a measurement began.
        progress(float, str): fraction done and a message.
        partialResult(str, str): ``(version name, part)`` once that part's cells are filled.
        resultsReady(object): ``{version name: Scores}`` for every measured version (all cached results).
        failed(str): a message for the person.
        cancelled(): the running measurement was stopped.
        referenceChanged(object): the reference ``Path`` (or ``None``).
        pausedChanged(bool): the running measurement waits for a model job to end (True) or goes on.
    """

    started = Signal()
    progress = Signal(float, str)
    partialResult = Signal(str, str)
    resultsReady = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    referenceChanged = Signal(object)
    pausedChanged = Signal(bool)
    # Internal: session events and worker reports (any thread) carried to the GUI thread.
    _sessionNotified = Signal(str, object)
    _partialNotified = Signal(object, object, str, object)   # job, version, part, Scores
    _pausedNotified = Signal(object, bool)                   # job, paused
    _spansNotified = Signal(str, object)                     # speech settings suffix, SpeechSpans

    def __init__(self, document=None, parent: QWidget | None = None, *, auto_compute: bool = True,
                 pool: QThreadPool | None = None, session: Session | None = None,
                 costs: dict | None = None, vad_settings: VadSettings | None = None):
        super().__init__(parent)
        self.document = document
        self.session: Session = session or getattr(document, "session", None) or Session()
        self.recording: Recording | None = None
        self._paired: weakref.WeakSet = weakref.WeakSet()   # recordings already offered an automatic pair
        self._shown_key = ""   # reference key the table currently shows
        #: the measured scores (the workspace's, so a saved session keeps them)
        self.store: MeasurementStore = getattr(self.session, "measurements", None) or MeasurementStore()
        self._worker: _Job | None = None
        self._pending: bool | None = None   # None: no re-run; else re-run with this "with DNSMOS" flag
        self._resume = threading.Event()
        self._resume.set()
        self._model_busy = False      # set_model_busy (a panel without session jobs)
        self._session_busy = False    # a model job of the session runs
        self._paused = False
        self.auto_compute = auto_compute
        self.pool = pool or QThreadPool.globalInstance()
        self.costs = costs if costs is not None else {
            g: METRIC_SPECS[ks[0]].cost() for g, ks in reference_free_groups().items() if METRIC_SPECS[ks[0]].cost}
        #: speech activity settings of the speech-only mode (the window's speech-activity settings)
        self.vad_settings = vad_settings or VadSettings()
        self._spans_seen: dict[str, SpeechSpans] = {}   # speech settings suffix -> the spans it measured

        self.reference_label = QLabel(f"reference: none ({reference_free_label()} only)")
        self.reference_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.choose_button = QPushButton("Choose reference…")
        self.choose_button.setToolTip("Pick the clean recording to compare against (intrusive metrics)")
        self.choose_button.clicked.connect(self._choose_reference)
        self.clear_button = QPushButton("No reference")
        self.clear_button.clicked.connect(lambda: self.set_reference(None))
        self.compute_button = QPushButton("Measure")
        self.compute_button.clicked.connect(lambda: self.compute(auto=False))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.copy_button = QPushButton("Copy table")
        self.copy_button.setToolTip("Copy the metrics as tab-separated text (full precision) for a spreadsheet")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        # The reference-free metrics of the table (DNSMOS), on or off together.
        self.reference_free_box = QCheckBox(reference_free_label())
        self.reference_free_box.setChecked(True)
        self.reference_free_box.setToolTip(", ".join(METRIC_SPECS[k].label for k in reference_free_keys())
                                   + " (no reference needed)")
        self.reference_free_box.setChecked(
            bool(getattr(self.session, "metric_settings", {}).get("reference_free", True)))
        self.reference_free_box.toggled.connect(self._on_reference_free_toggled)
        self.speech_box = QCheckBox("Speech only")
        self.speech_box.setToolTip(
            "Compute every metric over the speech the voice-activity detector (Silero VAD, the speech-activity "
            "settings) finds: on the clean reference when there is one, else on the original recording")
        self.speech_box.setChecked(bool(getattr(self.session, "metric_settings", {}).get("speech_only", False)))
        self.speech_box.toggled.connect(self._on_speech_toggled)
        self.mode_label = QLabel("")
        self.mode_label.setWordWrap(True)
        self.mode_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("")
        self.warning_label = QLabel("")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet(WARNING_STYLE)
        self.warning_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_label.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        # Sized once per fill (_fit_columns): with ResizeToContents every cell set re-measured its whole
        # column, about 90 ms per rebuild of a 20-version table on the GUI thread.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # One column per version: long names are elided in the middle (the full name is the header's
        # tooltip) and the table scrolls sideways rather than widening its dock.
        header.setMaximumSectionSize(MAX_COLUMN_PX)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustIgnored)
        self.table.setMinimumWidth(120)

        # Three short rows rather than two long ones, so the panel fits a narrow dock beside the panes.
        self.reference_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.choose_button)
        top.addWidget(self.clear_button)
        top.addWidget(self.reference_free_box)
        top.addWidget(self.speech_box)
        top.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.compute_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.copy_button)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.reference_label)
        lay.addLayout(top)
        lay.addLayout(row)
        # Its own row, as wide as the dock: the step being measured reads in full more often.
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.warning_label)
        lay.addWidget(self.mode_label)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.status)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_after_results)
        self._versions_timer = QTimer(self)
        self._versions_timer.setSingleShot(True)
        self._versions_timer.setInterval(0)
        self._versions_timer.timeout.connect(self._apply_versions_changed)
        self._sessionNotified.connect(self._on_session_event, Qt.ConnectionType.QueuedConnection)
        self._partialNotified.connect(self._on_partial, Qt.ConnectionType.QueuedConnection)
        self._pausedNotified.connect(self._on_paused, Qt.ConnectionType.QueuedConnection)
        self._spansNotified.connect(self._on_spans, Qt.ConnectionType.QueuedConnection)
        self.session.subscribe(self._session_listener)
        if document is not None:
            document.recordingChanged.connect(self.set_recording)
            document.versionsChanged.connect(self._on_versions_changed)
            if hasattr(document, "stateChanged"):
                document.stateChanged.connect(self._on_state)
            if getattr(document, "recording", None) is not None:
                self.set_recording(document.recording)

    # -- inputs -------------------------------------------------------------------------------------------
    @property
    def reference_path(self) -> Path | None:
        """The current recording's clean reference in the session (``None``: reference-free metrics only)."""
        return self.session.reference(self.recording) if self.recording is not None else None

    @property
    def reference_auto(self) -> bool:
        """Whether the reference is the automatic pair (``X_noisy.wav`` -> ``X_clean.wav``)."""
        path = self.reference_path
        return path is not None and path == find_reference_for(self.recording.path)

    def _on_reference_free_toggled(self, on: bool) -> None:
        if hasattr(self.session, "set_metric_settings"):
            self.session.set_metric_settings({"reference_free": bool(on)})
        self._refresh_table()

    def _on_speech_toggled(self, on: bool) -> None:
        """Speech only on or off: other figures (the stored ones of that mode, or a measurement)."""
        if hasattr(self.session, "set_metric_settings"):
            self.session.set_metric_settings({"speech_only": bool(on)})
        self._settings_changed()

    @property
    def speech_only(self) -> bool:
        return self.speech_box.isChecked()

    def set_vad_settings(self, settings: VadSettings) -> None:
        """The speech-activity settings the speech-only mode finds its spans with."""
        if settings != self.vad_settings:
            self.vad_settings = settings
            if self.speech_only:
                self._settings_changed()

    def _settings_changed(self) -> None:
        """What the figures mean changed: a running measurement measures the old thing (stopped, and run
        again when it ends); the table shows what is stored for the new settings."""
        if self._worker is not None:
            self._pending = bool(self._worker.reference_free)
            self._worker.cancel()
        self._refresh_table()
        self._update_warning()
        self._show_state()
        if self.auto_compute:
            self.compute(auto=True)

    def _on_state(self, key: str) -> None:
        """The workspace's metric settings changed (here, or by a restored session)."""
        if key == "metric_settings":
            on = bool(self.session.metric_settings.get("reference_free", True))
            if on != self.reference_free_box.isChecked():
                self.reference_free_box.setChecked(on)
            speech = bool(self.session.metric_settings.get("speech_only", False))
            if speech != self.speech_box.isChecked():
                self.speech_box.setChecked(speech)

    @Slot(object)
    def set_recording(self, recording: Recording | None) -> None:
        """Show ``recording``; auto-pairs a clean reference (``X_noisy.wav`` -> ``X_clean.wav``,
        ``noisy/NAME.wav`` -> ``clean/NAME.wav``) when the recording has none yet."""
        if recording is self.recording:
            return
        self.cancel()
        self.recording = recording
        if recording is not None and recording not in self._paired:
            # Offered once per recording: "No reference" chosen later is not undone by switching back.
            self._paired.add(recording)
            if self.session.reference(recording) is None:
                ref = find_reference_for(recording.path)
                if ref is not None and self._check_reference_file(ref):
                    self.session.set_reference(recording, ref)
        self._shown_key = self._ref_key()
        self._show_reference()
        self._refresh_table()
        self._update_warning()
        self._show_state()
        if self.auto_compute:
            self.compute(auto=True)

    @Slot(object)
    def _on_versions_changed(self, recording) -> None:
        if recording is self.recording and not self._versions_timer.isActive():
            self._versions_timer.start()   # one rebuild for a burst of new versions

    def _apply_versions_changed(self) -> None:
        if self.recording is not None:
            self._refresh_table()
            self._show_state()
            if self.auto_compute:
                self.compute(auto=True)

    def set_reference(self, path: str | Path | None) -> bool:
        """Use the clean file at ``path`` as the current recording's reference (``None``: reference-free
        metrics only).

        Only the intrusive rows change: the reference-free results stay (in the speech-only mode they change
        too, their spans being found on the reference). A bad file is reported through :attr:`failed`
        and the status line, and the previous reference is kept (returns False). With ``auto_compute`` the
        intrusive metrics are measured at once.
        """
        if self.recording is None:
            self._report("Open a recording before choosing its reference")
            return False
        path = Path(path) if path is not None else None
        if path is not None and not self._check_reference_file(path):
            return False
        self._paired.add(self.recording)
        self.session.set_reference(self.recording, path)   # the session event refreshes the panel
        self._after_reference_change()
        if self.auto_compute:
            self.compute(auto=True)
        return True

    def _after_reference_change(self) -> None:
        """The current recording's reference may have changed (here or through the session)."""
        key = self._ref_key()
        if (self._worker is not None and (self._worker.intrusive or self._worker.speech is not None)
                and self._worker.reference_key != key):
            # The running job measures against the old reference: stop it, keep what it finished.
            self._pending = bool(self._worker.reference_free)
            self._worker.cancel()
        if key == self._shown_key:
            return
        self._shown_key = key
        self._show_reference()
        self._refresh_table()
        self._update_warning()
        self._show_state()
        self.referenceChanged.emit(self.reference_path)

    def _check_reference_file(self, path: Path) -> bool:
        try:
            read_info(path)  # header only: fast; the samples are read by the worker
        except WorkbenchError as exc:
            self._report(str(exc))
            return False
        return True

    def _show_reference(self) -> None:
        path = self.reference_path
        if path is None:
            self.reference_label.setText(f"reference: none ({reference_free_label()} only)")
            self.reference_label.setToolTip("")
        else:
            how = "auto-paired" if self.reference_auto else "chosen"
            self.reference_label.setText(f"reference ({how}): {path.name}")
            self.reference_label.setToolTip(str(path))

    def _choose_reference(self) -> None:
        start = str(self.recording.path.parent) if self.recording is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, "Clean reference", start,
                                              dialog_filter())
        if path and self.set_reference(path) and not self.auto_compute:
            self.compute(auto=True)  # the person asked for this reference: measure what it changes

    # -- jobs of other panels -----------------------------------------------------------------------------
    def _session_listener(self, event: str, obj) -> None:  # any thread
        if event in ("job", "reference"):
            try:
                self._sessionNotified.emit(event, obj)
            except RuntimeError:  # the panel is gone (its C++ object deleted)
                self.session.unsubscribe(self._session_listener)

    @Slot(str, object)
    def _on_session_event(self, event: str, obj) -> None:
        if event == "job":
            mine = self._worker.session_job if self._worker is not None else None
            busy = any(j.state == JobState.RUNNING and j is not mine and not getattr(j, "is_measurement", False)
                       for j in list(self.session.jobs))
            if busy != self._session_busy:
                self._session_busy = busy
                self._apply_busy()
        elif event == "reference" and obj is self.recording:
            self._after_reference_change()

    @Slot(bool)
    def set_model_busy(self, busy: bool) -> None:
        """A model job runs (True) or none does, for a panel whose session does not see the job: a running
        measurement waits between steps meanwhile. Model jobs of the session are followed automatically."""
        self._model_busy = bool(busy)
        self._apply_busy()

    @property
    def model_busy(self) -> bool:
        return self._model_busy or self._session_busy

    def _apply_busy(self) -> None:
        if self.model_busy:
            self._resume.clear()
        else:
            self._resume.set()
        self._show_state()

    @property
    def paused(self) -> bool:
        """The running measurement is waiting for a model job to end."""
        return self._paused

    # -- measuring ----------------------------------------------------------------------------------------
    def _ref_key(self) -> str:
        """The reference file's content key (SHA-256; ``""`` without reference; ``"?"`` unreadable)."""
        key = self.store.reference_key(self.reference_path)
        return "?" if key is None else key

    def _settings(self, part: str) -> str | None:
        """The settings key of ``part`` in the current mode (``None``: speech only, and the content of
        what its spans are found on is not hashed yet)."""
        if not self.speech_only:
            return measurement_settings(part)
        if self.recording is None:
            return None
        if self.reference_path is not None:
            key = self._ref_key()
            spans_of = None if key == "?" else f"reference:{key}"
        else:
            known = self.store.known_samples_key(self.recording.original.source)
            spans_of = None if known is None else f"original:{known}"
        return None if spans_of is None else measurement_settings(part, speech_settings(self.vad_settings, spans_of))

    def versions(self) -> list[Version]:
        """Versions shown as columns: the original and enhanced ones (residuals are not speech estimates)."""
        if self.recording is None:
            return []
        return [v for v in self.recording.versions if v.kind != "residual"]

    @property
    def running(self) -> bool:
        return self._worker is not None

    def missing(self) -> tuple[list[Version], list[Version]]:
        """``(versions without intrusive scores for the current reference, versions without the
        reference-free ones)`` in the current mode; the second list is empty when the reference-free box is
        off, the first without a reference."""
        key = self._ref_key()
        vs = self.versions()
        intr_settings, free_settings = self._settings(INTRUSIVE), self._settings(NON_INTRUSIVE)
        intr = ([v for v in vs if intr_settings is None or self.store.get(v.source, key, intr_settings) is None]
                if self.reference_path else [])
        free = ([v for v in vs if free_settings is None or self.store.get(v.source, "", free_settings) is None]
               if self.reference_free_box.isChecked() else [])
        return intr, free

    def reference_free_estimate_s(self, versions: list[Version] | None = None) -> float:
        """Estimated seconds of the reference-free metrics (DNSMOS) for ``versions`` (default: those still
        missing them): the sum of each group's cost estimate (groups without one count as free)."""
        vs = self.missing()[1] if versions is None else versions
        durations = [v.source.frames / v.source.sample_rate for v in vs]
        return sum(cost.estimate_clips_s(durations) for cost in self.costs.values())

    def current_job(self) -> dict[str, list[str]]:
        """What the running measurement measures: ``{"intrusive": [names], "dnsmos": [names]}`` (empty lists
        when nothing runs)."""
        w = self._worker
        return {INTRUSIVE: [v.name for v in w.intrusive] if w else [],
                NON_INTRUSIVE: [v.name for v in w.reference_free] if w else []}

    @Slot()
    def compute(self, auto: bool = False) -> bool:
        """Measure what is missing (on the thread pool); returns whether a job started.

        ``auto=False`` (the Measure button) measures everything missing, DNSMOS included however long.
        ``auto=True`` (tab shown, new version, new reference) measures the intrusive metrics (recordings up
        to :data:`AUTO_INTRUSIVE_MAX_S`) and DNSMOS only when its estimate is at most
        :data:`AUTO_REFERENCE_FREE_MAX_COST_S`; what is left shows its cost on the Measure button.
        """
        if self.recording is None:
            return False
        if self._worker is not None:
            # Re-run once the current job ends (versions or the reference may have changed meanwhile).
            self._pending = bool(self._pending) or not auto
            return False
        intr, free = self.missing()
        if auto:
            if self.recording.source.frames / self.recording.source.sample_rate > AUTO_INTRUSIVE_MAX_S:
                intr = []
            if self.reference_free_estimate_s(free) > AUTO_REFERENCE_FREE_MAX_COST_S:
                free = []
        if not intr and not free:
            self._refresh_table()
            self._show_state()
            self.resultsReady.emit(self.results())
            return False
        speech = SpeechOnly(self.vad_settings, self.recording.original.source) if self.speech_only else None
        job = _Job(intr, free, self.reference_path, self._ref_key(), speech)

        def on_result(version, part, scores, job=job) -> None:   # worker thread: queued to the GUI thread
            try:
                self._partialNotified.emit(job, version, part, scores)
            except RuntimeError:  # the panel is gone
                pass

        def on_paused(paused: bool, job=job) -> None:   # worker thread
            try:
                self._pausedNotified.emit(job, paused)
            except RuntimeError:
                pass

        def on_spans(suffix: str, spans: SpeechSpans) -> None:   # worker thread
            try:
                self._spansNotified.emit(suffix, spans)
            except RuntimeError:
                pass

        steps = measure_steps(intr, free, job.reference_path, self._resume, job.should_stop, on_result, on_paused,
                              self.store, None if job.reference_key == "?" else job.reference_key, speech, on_spans)
        if self.recording in self.session.recordings:
            # A job of the recording: closing it cancels the measurement like any other of its jobs.
            job.session_job = self.session.new_job(steps, self.recording, f"metrics of {self.recording.name}")
            job.session_job.is_measurement = True
            steps = job.session_job.steps()
        worker = GeneratorWorker(steps, pool=self.pool)
        worker.progress.connect(lambda p, job=job: self._on_progress(job, p))
        worker.returned.connect(lambda result, job=job: self._on_finished(job))
        worker.errored.connect(lambda exc, job=job: self._on_failed(job, exc))
        worker.cancelled.connect(lambda job=job: self._on_cancelled(job))
        job.worker = worker
        self._worker = job
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("measuring…")
        parts = ([f"intrusive metrics of {len(intr)} version(s)"] if intr else []) + \
            ([f"{reference_free_label()} of {len(free)} version(s) "
              f"(about {format_duration(self.reference_free_estimate_s(free))})"] if free else [])
        self.status.setText("measuring " + " and ".join(parts) + (" (speech only)" if speech else "") + "…")
        self._refresh_table()
        self.started.emit()
        worker.start()
        return True

    @Slot()
    def cancel(self) -> None:
        """Ask the running measurement to stop after the step it is working on."""
        self._pending = None
        if self._worker is not None:
            self._worker.cancel()

    def wait(self, timeout_ms: int = 60000) -> bool:
        """Block until the running measurement's thread ended (after :meth:`cancel`, at shutdown)."""
        job = self._worker
        return job is None or job.worker is None or job.worker.wait(timeout_ms)

    def _on_progress(self, job: _Job, p: Progress) -> None:
        if job is self._worker and not self._paused:
            self.progress_bar.setValue(int(1000 * p.fraction))
            self.set_progress_text(p.message)
            self.progress.emit(p.fraction, p.message)

    @Slot(object, bool)
    def _on_paused(self, job: _Job, paused: bool) -> None:
        if job is self._worker:
            self._paused = paused
            if paused:
                self.progress_bar.setFormat("paused while a model runs")
            self.pausedChanged.emit(paused)

    @Slot(object, object, str, object)
    def _on_partial(self, job: _Job, version, part: str, scores: Scores) -> None:
        # Kept even from a cancelled job: a finished part is valid for its own reference key.
        # Stored by the worker (measure_steps) under the samples it measured.
        if part != INTRUSIVE:
            job.reference_free_audio_s += version.source.frames / version.source.sample_rate
            job.reference_free_durations.append(version.source.frames / version.source.sample_rate)
        if job is self._worker:
            # Results of 20 versions arrive in quick succession: the table (every cell, columns sized to
            # their contents) is rebuilt at most every REFRESH_MS, not once per result.
            self._fill_column(version)
            if not self._refresh_timer.isActive():
                self._refresh_timer.start()
            self.partialResult.emit(version.name, part)

    def _refresh_after_results(self) -> None:
        self._refresh_table()
        self._update_warning()

    def _job_done(self, job: _Job) -> bool:
        if job is not self._worker:
            return False
        # The worker frees itself once finished; no reference cycle (job -> worker -> slot -> job) is left
        # for the cyclic GC to tear down later on whichever thread it happens to run.
        job.worker = None
        self._worker = None
        self._paused = False
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        return True

    def _on_finished(self, job: _Job) -> None:
        if not self._job_done(job):
            return
        if job.reference_free_audio_s > 0 and not self.model_busy:
            # Wall time includes the intrusive part; it is small beside DNSMOS and errs on the safe side.
            # Per clip: each version's DNSMOS has a fixed part (see DnsmosCost), so 20 short versions cost
            # 20 times it, not what their total audio would as one file.
            for cost in self.costs.values():
                cost.observe_clips(job.reference_free_durations, time.perf_counter() - job.started)
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat("done")
        self._refresh_table()
        self._update_warning()
        self._show_state()
        self.resultsReady.emit(self.results())
        self._maybe_rerun()

    def _on_failed(self, job: _Job, exc) -> None:
        if self._job_done(job):
            message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
            self.progress_bar.setFormat("failed")
            self._refresh_table()
            self._report(message)
            self._maybe_rerun()

    def _on_cancelled(self, job: _Job) -> None:
        if self._job_done(job):
            self._refresh_table()
            if self._pending is None:
                self.progress_bar.setFormat("cancelled")
                self.status.setText("measuring cancelled")
                self.cancelled.emit()
            self._maybe_rerun()

    def _maybe_rerun(self) -> None:
        if self._pending is not None:
            with_reference_free, self._pending = self._pending, None
            self.compute(auto=not with_reference_free)

    def set_progress_text(self, message: str) -> None:
        """Show ``message`` in the progress bar, elided in the middle to the bar's width (in full in its
        tooltip), so the version being measured and the step never run off the bar's edge."""
        bar = self.progress_bar
        room = max(bar.contentsRect().width() - 12, 20)
        text = bar.fontMetrics().elidedText(message, Qt.TextElideMode.ElideMiddle, room)
        bar.setFormat(text.replace("%", "%%"))
        bar.setToolTip(message)

    def _report(self, message: str) -> None:
        self.status.setText(message)
        self.failed.emit(message)

    def _show_state(self) -> None:
        """Measure button label and status line: what is missing and what it would cost."""
        self._show_mode()
        if self._worker is not None:
            if self.model_busy:
                self.status.setText("paused while a model runs; measuring goes on when it ends")
            return
        intr, free = self.missing()
        cost = self.reference_free_estimate_s(free)
        label = reference_free_label()
        per_minute = sum(c.seconds_per_audio_minute for c in self.costs.values())
        self.compute_button.setText(f"Measure ({label} ≈ {format_duration(cost)})" if free and cost > 0
                                    else "Measure")
        self.compute_button.setToolTip(
            f"{label} of {len(free)} version(s): about {format_duration(cost)} at "
            f"{per_minute:.0f} s per audio minute (measured on this machine)"
            if free and cost > 0 else "Measure every metric that has no value yet")
        if self.recording is None:
            self.status.setText("")
            self.progress_bar.setFormat("")
            self.progress_bar.setValue(0)
        elif intr or free:
            missing = (["intrusive metrics"] if intr else []) + (
                [f"{label} (about {format_duration(cost)})"] if free else [])
            self.status.setText("not measured yet: " + " and ".join(missing) + " — press Measure")
            self.progress_bar.setFormat("")
            self.progress_bar.setValue(0)
        elif not self.status.text().startswith(("measuring cancelled",)):
            self.status.setText("")

    def _update_warning(self) -> None:
        """Warn when the reference does not line up with the original recording (or, failing that, with the
        versions measured so far)."""
        results = self.results()
        rec = self.recording
        checks = []
        if rec is not None and self.reference_path is not None:
            order = [rec.original] + [v for v in self.versions() if v is not rec.original]
            checks = [(v.name, results[v.name].alignment) for v in order
                      if v.name in results and results[v.name].alignment is not None]
        if not checks:
            self.warning_label.hide()
            self.warning_label.setText("")
            return
        name, check = checks[0]
        if check.suspicious:
            self.warning_label.setText(
                f"⚠ The reference {self.reference_path.name} may not be the clean version of {rec.name}: "
                + "; ".join(check.problems()) + f" (against {name}). Intrusive metrics against it are not "
                "meaningful.")
        elif check.length_mismatch:
            self.warning_label.setText(f"Note: {check.problems()[0]}; the metrics cover the overlap only.")
        else:
            self.warning_label.hide()
            self.warning_label.setText("")
            return
        self.warning_label.show()

    @property
    def warning(self) -> str:
        """The reference warning shown in the panel ('' when there is none)."""
        return self.warning_label.text() if not self.warning_label.isHidden() else ""

    # -- results ------------------------------------------------------------------------------------------
    def results(self) -> dict[str, Scores]:
        """Scores of the current recording's versions under the current reference and mode (whole signals
        or speech only), ``{name: Scores}``: the intrusive part (if measured) merged with the reference-free
        one (if measured)."""
        key = self._ref_key()
        intr_settings, free_settings = self._settings(INTRUSIVE), self._settings(NON_INTRUSIVE)
        out = {}
        for v in self.versions():
            intr = (self.store.get(v.source, key, intr_settings)
                    if self.reference_path and intr_settings is not None else None)
            free = (self.store.get(v.source, "", free_settings)
                   if self.reference_free_box.isChecked() and free_settings is not None else None)
            if intr is None and free is None:
                continue
            metrics = {}
            if intr is not None:
                metrics.update(intr.metrics)
            if free is not None:
                metrics.update(free.metrics)
            out[v.name] = Scores(metrics, intr.lag_samples if intr else None, intr.alignment if intr else None)
        return out

    def metric_rows(self) -> list[str]:
        rows = list(intrusive_keys()) if self.reference_path is not None else []
        if self.reference_free_box.isChecked():
            rows += list(reference_free_keys())
        return rows

    def best_version(self, metric: str) -> str | None:
        """Name of the version with the best value of ``metric`` (None when no version has one)."""
        vals = [(s.metrics[metric].value, name) for name, s in self.results().items()
                if metric in s.metrics and s.metrics[metric].value is not None]
        if not vals:
            return None
        return (max(vals) if METRIC_SPECS[metric].higher_is_better else min(vals))[1]

    def best_versions(self, metric: str, results: dict[str, Scores] | None = None) -> set[str]:
        """Names of every version whose ``metric`` equals the best value (ties are all best: the same
        score shown twice must not read as a win for one of them)."""
        results = self.results() if results is None else results
        vals = {name: s.metrics[metric].value for name, s in results.items()
                if metric in s.metrics and s.metrics[metric].value is not None}
        if not vals:
            return set()
        best = (max if METRIC_SPECS[metric].higher_is_better else min)(vals.values())
        return {name for name, v in vals.items() if v == best}

    def _pending_cell(self, metric: str, version: Version) -> str:
        """Text of a cell without a value: ``…`` while the running job will fill it, else empty."""
        w = self._worker
        if w is None:
            return ""
        todo = w.intrusive if METRIC_SPECS[metric].intrusive else w.reference_free
        return "…" if any(v is version for v in todo) else ""

    def _refresh_table(self) -> None:
        self._refresh_timer.stop()   # whatever was pending is drawn now
        self.table.setUpdatesEnabled(False)
        try:
            self._fill_table()
            self._fit_columns()
        finally:
            self.table.setUpdatesEnabled(True)

    def _fit_columns(self, columns=None) -> None:
        """Columns as wide as their contents, at most :data:`MAX_COLUMN_PX`."""
        for j in (range(self.table.columnCount()) if columns is None else columns):
            self.table.resizeColumnToContents(j)
            if self.table.columnWidth(j) > MAX_COLUMN_PX:
                self.table.setColumnWidth(j, MAX_COLUMN_PX)

    def _fill_table(self) -> None:
        versions = self.versions()
        rows = self.metric_rows()
        results = self.results()
        self.table.clear()
        self.table.setRowCount(len(rows))
        self.table.setColumnCount(len(versions))
        self.table.setHorizontalHeaderLabels([v.name for v in versions])
        for j, v in enumerate(versions):
            self.table.horizontalHeaderItem(j).setToolTip(v.name)
            sc = results.get(v.name)
            if sc is not None and sc.alignment is not None:
                a = sc.alignment
                self.table.horizontalHeaderItem(j).setToolTip(
                    f"{v.name}: aligned to the reference with a lag of {a.lag_samples} samples, correlation "
                    f"{abs(a.correlation):.2f}")
        labels = []
        for k in rows:
            spec = METRIC_SPECS[k]
            unit = f" [{spec.unit}]" if spec.unit and spec.unit != "MOS" else ""
            labels.append(f"{spec.label}{unit} {'↑' if spec.higher_is_better else '↓'}")
        self.table.setVerticalHeaderLabels(labels)
        for i, k in enumerate(rows):
            spec = METRIC_SPECS[k]
            self.table.verticalHeaderItem(i).setToolTip(spec.description)
            best = self.best_versions(k, results) if len(versions) > 1 else set()
            for j, v in enumerate(versions):
                self.table.setItem(i, j, self._cell_item(k, v, results, v.name in best))

    def _cell_item(self, metric: str, version: Version, results: dict[str, Scores], best: bool) -> QTableWidgetItem:
        sc = results.get(version.name)
        m = sc.metrics.get(metric) if sc is not None else None
        if m is None:
            item = QTableWidgetItem(self._pending_cell(metric, version))
            if not item.text() and not METRIC_SPECS[metric].intrusive:
                item.setToolTip("not measured: press Measure")
        elif m.value is None:
            item = QTableWidgetItem("n/a")
            item.setToolTip(m.reason or "not computed")
        else:
            item = QTableWidgetItem(format_value(m.value))
            item.setToolTip(f"{m.value!r} {m.unit}".strip())
            if best:
                bold = QFont()
                bold.setBold(True)
                item.setBackground(BEST_BRUSH)
                item.setFont(bold)
        item.setTextAlignment(NUMBER_ALIGNMENT)
        return item

    def _fill_column(self, version: Version) -> None:
        """Put ``version``'s measured values in its column at once (the best-value marks follow with the
        next full refresh)."""
        versions, rows = self.versions(), self.metric_rows()
        j = next((j for j, v in enumerate(versions) if v is version), None)
        if j is None or self.table.columnCount() != len(versions) or self.table.rowCount() != len(rows):
            self._refresh_table()
            return
        results = self.results()
        for i, k in enumerate(rows):
            self.table.setItem(i, j, self._cell_item(k, version, results, False))
        self._fit_columns([j])

    def table_as_tsv(self) -> str:
        """The table as tab-separated text: header ``metric, unit, direction, <versions>``, full-precision
        values, empty cells where a metric has no value; the last line says what the figures cover
        (:meth:`mode_text`)."""
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
        lines.append(f"# {self.mode_text()}")
        return "\n".join(lines) + "\n"

    def mode_text(self) -> str:
        """What the figures cover, in words: the whole recording, or its speech (the spans, where they were
        found, the VAD settings)."""
        if not self.speech_only:
            return "figures over the whole recording"
        vad = self.vad_settings
        found_on = "the clean reference" if self.reference_path is not None else "the original recording"
        settings = f"Silero VAD threshold {vad.threshold:g}, minimum pause {vad.min_pause_ms:g} ms"
        suffix = self._settings(NON_INTRUSIVE)
        seen = self._spans_seen.get(suffix[suffix.index("|"):]) if suffix else None
        if seen is None:
            return f"figures over speech only: the speech spans of {found_on} ({settings})"
        return (f"figures over speech only: {seen.speech_s:.1f} s of {seen.duration_s:.1f} s in "
                f"{len(seen.spans)} span(s) of {found_on} ({settings})")

    def _show_mode(self) -> None:
        text = self.mode_text()
        self.mode_label.setText(text[0].upper() + text[1:])

    @Slot(str, object)
    def _on_spans(self, suffix: str, spans: SpeechSpans) -> None:
        self._spans_seen[suffix] = spans
        self._show_mode()

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

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Stop a running measurement, wait for its thread, stop following the session."""
        self.cancel()
        self.wait(timeout_ms)
        self.session.unsubscribe(self._session_listener)

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)
