"""Four linked complex-spectrogram panes (magnitude, phase, real, imaginary) and a waveform overview.

:class:`SpectrogramView` shows one channel of one :class:`~workbench.core.document.recording.Version`. It keeps
nothing of the audio in memory: visible tiles (see :mod:`workbench.core.views.tiles`) are computed on a
thread pool at the level of detail the pane width needs, cached, and cancelled when the view moves
on. Images are placed in data coordinates (x: seconds, y: frequency axis value) with
``ImageItem.setRect``; every pane is X- and Y-linked to the magnitude pane.
"""

from __future__ import annotations

import html
import itertools
import time
import weakref
from dataclasses import dataclass, replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..core.audio.audio_io import AudioSource
from ..core.measure.vad import HOP_S
from ..core.views.figure import FigurePane, FigureSettings
from ..core.views.stft import StftConfig, stft_frames
from ..core.views.tiles import (TILE_COLUMNS, Tile, TileCache, TileKey, compute_pair_tile, compute_tile, level_for,
                          tile_images, tiles_in_range, waveform_envelope)
from ..core.views.registry import (FLOOR_DB, LAYOUTS, PANE_SLOTS, DisplaySettings, compute_view, images_key,  # noqa: F401
                          pane_arrays, second_pane_views, view)
from .axes import FreqScale, FrequencyAxis, TimeAxis
from .workers import GeneratorWorker

PANES = PANE_SLOTS
MAGNITUDE_COLORMAPS = ("viridis", "inferno", "magma", "plasma", "cividis", "turbo", "CET-L1")
#: pyqtgraph colormap per colormap kind of the view registry (sequential views use the chosen colormap).
KIND_COLORMAPS = {"cyclic": "CET-C6",       # -pi and +pi share a colour
                  "diverging": "CET-D1A"}   # blue - white - red, symmetric around zero


#: Finished overview envelopes kept per view (versions switched back to show theirs at once).
ENVELOPE_CACHE_ENTRIES = 16


#: What the empty magnitude pane says before a file is open.
EMPTY_HINT = "Drop audio files here\nor use File > Open (Ctrl+O)"


def phase_view_choices() -> dict[str, str]:
    """Second-pane choices, name -> menu text, straight from the view registry."""
    return {name: (f"Difference: {spec.title()}" if spec.needs_partner else spec.label)
            for name, spec in second_pane_views().items()}


def _tile_steps(source: AudioSource, key: TileKey, total_frames: int, generation: int, display: DisplaySettings,
                partner: tuple | None, cache: TileCache | None, should_stop):
    """Worker generator: :func:`compute_tile` (or the pair tile of a difference view), with the pane
    images derived there too, so the GUI thread only uploads finished arrays. Yields ``(tile, generation)``
    — or ``(exception, generation)``: a decoding error is shown once, not raised per tile."""
    try:
        if key.partner_id and partner is not None:
            gen = compute_pair_tile(source, key, total_frames, partner[0], partner[1], cache, should_stop)
        else:
            gen = compute_tile(source, key, total_frames, should_stop)
        for item in gen:
            if should_stop():
                return
            if item is not None:
                tile_images(item, source.sample_rate, display)
                yield item, generation
    except Exception as exc:  # a decoding error must not end the worker silently
        yield exc, generation


@dataclass(frozen=True)
class EnvelopeCurves:
    """The overview's curves, ready to hand to pyqtgraph: ``x`` bucket centres (s, ``(filled,)``), their
    ``mins``/``maxs`` (float32), the min-max band as segment pairs (``band_x = repeat(x, 2)``,
    ``band_y = [min0, max0, min1, max1, ...]``) and the y half-range ``y_limit`` (1.1 × peak, clipped to
    [1e-3, 1]; 1 until complete). ``complete`` when ``filled == buckets``."""
    x: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    band_x: np.ndarray
    band_y: np.ndarray
    y_limit: float
    complete: bool

    @classmethod
    def from_envelope(cls, filled: int, mins: np.ndarray, maxs: np.ndarray, frames: int,
                      sample_rate: int) -> "EnvelopeCurves":
        n = len(mins)
        x = (np.arange(filled) + 0.5) * (frames / max(n, 1)) / sample_rate
        lo, hi = mins[:filled].copy(), maxs[:filled].copy()
        band = np.empty(2 * filled, np.float64)
        band[0::2] = lo
        band[1::2] = hi
        complete = filled >= n
        peak = float(max(np.abs(lo).max(initial=0), np.abs(hi).max(initial=0)))
        y_limit = min(1.0, max(peak * 1.1, 1e-3)) if complete else 1.0
        return cls(x, lo, hi, np.repeat(x, 2), band, y_limit, complete)


def _envelope_steps(source: AudioSource, channel: int, buckets: int, generation: int, should_stop):
    """Worker generator: the overview envelope, progressively, as ``(EnvelopeCurves, generation)`` at
    most every 0.15 s (so the GUI thread is not flooded) and once complete. Everything the curves need
    is computed here, so the GUI thread only hands finished arrays to the plot items."""
    last = 0.0
    try:
        for filled, mins, maxs in waveform_envelope(source, channel, buckets, should_stop=should_stop):
            now = time.perf_counter()
            done = filled >= len(mins)
            if done or now - last > 0.15:
                last = now
                yield EnvelopeCurves.from_envelope(filled, mins, maxs, source.frames, source.sample_rate), generation
    except Exception:
        return


def _shift_held(ev) -> bool:
    return bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)


class _RegionViewBox(pg.ViewBox):
    """A view box where Shift + left drag selects a time region (the loop) and Ctrl + left drag a
    time-frequency rectangle (spectral repair), instead of panning or zooming.

    ``on_region(start_s, stop_s, finished)`` is called while dragging and once more at the release;
    ``on_box(self, x0, x1, y0, y1, finished)`` likewise, in view coordinates (seconds, scaled frequency).
    """

    def __init__(self, on_region, on_box=None, **kwargs):
        super().__init__(**kwargs)
        self._on_region = on_region
        self._on_box = on_box

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (pyqtgraph naming)
        if ev.button() == Qt.MouseButton.LeftButton and _shift_held(ev):
            ev.accept()
            a = self.mapSceneToView(ev.buttonDownScenePos()).x()
            b = self.mapSceneToView(ev.scenePos()).x()
            self._on_region(min(a, b), max(a, b), ev.isFinish())
            return
        if (self._on_box is not None and ev.button() == Qt.MouseButton.LeftButton
                and ev.modifiers() & Qt.KeyboardModifier.ControlModifier):
            ev.accept()
            p0 = self.mapSceneToView(ev.buttonDownScenePos())
            p1 = self.mapSceneToView(ev.scenePos())
            self._on_box(self, min(p0.x(), p1.x()), max(p0.x(), p1.x()), min(p0.y(), p1.y()),
                         max(p0.y(), p1.y()), ev.isFinish())
            return
        super().mouseDragEvent(ev, axis)


class _VisibleRegion(pg.LinearRegionItem):
    """The overview's visible-span marker; lets Shift-drags through to the view box (loop selection)."""

    def mouseDragEvent(self, ev):  # noqa: N802
        if _shift_held(ev):
            ev.ignore()
            return
        super().mouseDragEvent(ev)


def _loop_region() -> pg.LinearRegionItem:
    region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(240, 200, 80, 55),
                                 pen=pg.mkPen((240, 200, 80, 200), width=1))
    region.setZValue(90)
    region.hide()
    return region


class _Pane:
    """One plot with its colour bar, crosshair and the tile images it currently shows."""

    def __init__(self, name: str, scale: FreqScale, on_region=None, horizontal_bar: bool = False, on_box=None):
        self.name = name
        # The title is its own layout cell spanning plot and colour bar, so a bar never covers it.
        self.title = pg.LabelItem("", color="#d8dde6", size="10pt")
        self.bar_caption = ""   # plain text of the colour bar's label (unit, masking)
        # What the title and the colour bar's label were last set to (setting either again costs a relayout).
        self.shown_title: str | None = None
        self.shown_caption: str | None = None
        self.axis = FrequencyAxis(scale)
        self.plot = pg.PlotItem(axisItems={"left": self.axis, "bottom": TimeAxis()},
                                viewBox=_RegionViewBox(on_region or (lambda a, b, done: None), on_box))
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getViewBox().setDefaultPadding(0.0)
        self.plot.showAxis("top")
        self.plot.getAxis("top").setStyle(showValues=False)
        self.plot.showAxis("right")
        self.plot.getAxis("right").setStyle(showValues=False)
        self.bar = pg.ColorBarItem(values=(0, 1), width=14, interactive=True, colorMapMenu=False, rounding=0.01,
                                   orientation="horizontal" if horizontal_bar else "vertical")
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((255, 255, 255, 110), width=1))
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen((255, 255, 255, 110), width=1))
        self.playhead = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((80, 220, 120), width=1.5))
        for line in (self.vline, self.hline, self.playhead):
            line.setZValue(100)
            self.plot.addItem(line, ignoreBounds=True)
        self.playhead.hide()
        self.loop = _loop_region()
        self.plot.addItem(self.loop, ignoreBounds=True)
        # The time-frequency selection (Ctrl + drag), in view coordinates.
        self.box = pg.PlotCurveItem(pen=pg.mkPen((120, 200, 255), width=1.5))
        self.box.setZValue(95)
        self.box.hide()
        self.plot.addItem(self.box, ignoreBounds=True)
        self.items: dict[TileKey, pg.ImageItem] = {}


class SpectrogramView(QWidget):
    """The four linked panes plus overview for one channel of one version.

    Signals:
        painted(): every visible tile of every pane is in the scene (and the overview is complete); the
            next paint event shows them (call :meth:`paint_now` to paint synchronously).
        tilesPainted(): the same for the panes alone (the overview may still be filling).
        readoutChanged(dict): the crosshair moved; see :meth:`readout`.
        viewRangeChanged(float, float): visible time span in seconds.
        tileError(str): a tile could not be computed (decoding error); the message names the file.
        seekRequested(float): a plain left click on a pane or the overview asks to move the playhead there
            (seconds).
        loopSelected(float, float): a Shift + drag on a pane or the overview selected ``(start_s, stop_s)``
            (emitted at the release; :meth:`set_loop_region` shows a region).
        boxSelected(float, float, float, float): a Ctrl + drag on a pane selected ``(t0_s, t1_s, f0_hz,
            f1_hz)`` (emitted at the release; the rectangle stays drawn until :meth:`clear_box`).
    """

    painted = Signal()
    tilesPainted = Signal()
    readoutChanged = Signal(dict)
    viewRangeChanged = Signal(float, float)
    #: the visible frequency span (Hz) changed: a zoom, a pan, a fit or another scale
    frequencyRangeChanged = Signal(float, float)
    cursorMoved = Signal(float)
    tileError = Signal(str)
    magnitudeRangeDragged = Signal(float, float)
    seekRequested = Signal(float)
    loopSelected = Signal(float, float)
    boxSelected = Signal(float, float, float, float)

    def __init__(self, parent: QWidget | None = None, *, cache_bytes: int = 256 << 20, threads: int = 2):
        super().__init__(parent)
        self.cfg = StftConfig()
        self.display = DisplaySettings()
        self.source: AudioSource | None = None
        self.source_name = ""
        self.channel = 0
        self.sample_rate = 16000
        self.total_frames = 0
        self.cache = TileCache(cache_bytes)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, threads))
        self._generation = 0
        self._source_ids = itertools.count(1)
        self._source_id = 0
        self._source_id_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._error_generation = -1
        self._refine_levels = False
        self._pending: dict[TileKey, GeneratorWorker] = {}
        self._envelope_job: GeneratorWorker | None = None
        self._envelope_generation = -1
        self._envelope_done = True
        #: finished overview envelopes by (source id, channel), oldest first (a few hundred kB each)
        self._envelopes: dict[tuple[int, int], EnvelopeCurves] = {}
        self._envelope_key: tuple[int, int] | None = None
        self._needed: set[TileKey] = set()
        self._level = 0
        self._ready = False
        self._levels: dict[str, tuple[float, float]] = {}
        self._auto_symmetric: dict[str, bool] = {}
        # Finished tiles are shown from the next pass of the event loop, all that arrived meanwhile at once:
        # one repaint for a whole set (a new version's tiles come together) and timers and input get a
        # turn in between, instead of a repaint of the four panes after every tile in one long pass.
        self._tile_inbox: list = []
        self._tile_timer = QTimer(self, singleShot=True, interval=0)
        self._tile_timer.timeout.connect(self._drain_tiles)
        self._update_timer = QTimer(self, singleShot=True, interval=10)
        self._update_timer.timeout.connect(self.update_tiles)
        self._syncing_region = False
        self.scale = FreqScale("linear", self.sample_rate, self.cfg.nfft)
        # Difference views: (source, channel, source is the original, label) of the compared version.
        self._partner: tuple[AudioSource, int, bool, str] | None = None
        self._loop_s: tuple[float, float] | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#16181c")
        self.graphics.ci.setSpacing(6)
        self.graphics.ci.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.graphics, 1)
        self.overview = pg.PlotWidget(axisItems={"bottom": TimeAxis()},
                                      viewBox=_RegionViewBox(self._on_region_selecting))
        self.overview.setBackground("#16181c")
        self.overview.setMaximumHeight(110)
        self.overview.setMinimumHeight(90)
        ov = self.overview.getPlotItem()
        ov.setMenuEnabled(False)
        ov.hideButtons()
        ov.setMouseEnabled(x=False, y=False)
        ov.getAxis("left").setWidth(self._axis_width())
        ov.setLabel("left", "Wave")
        ov.getAxis("left").enableAutoSIPrefix(False)
        ov.getAxis("bottom").setLabel("")
        ov.getViewBox().setDefaultPadding(0.0)
        ov.setYRange(-1, 1, padding=0.02)
        self._env_max = pg.PlotDataItem(pen=pg.mkPen((110, 170, 230), width=1))
        self._env_min = pg.PlotDataItem(pen=pg.mkPen((110, 170, 230), width=1))
        # The band between min and max is drawn as one vertical segment per bucket (``connect="pairs"``),
        # not as a filled polygon: Qt rasterises a filled 8000-vertex outline in ~200 ms on the GUI thread
        # (pg.FillBetweenItem), the 4000 segments in ~5 ms, and at 4000 buckets across at most a few
        # thousand pixels the segments cover the band just as a fill would.
        self._env_fill = pg.PlotCurveItem(pen=pg.mkPen((70, 130, 200, 160), width=1), connect="pairs")
        for it in (self._env_fill, self._env_max, self._env_min):
            ov.addItem(it)
        self.region = _VisibleRegion(brush=pg.mkBrush(255, 255, 255, 40), pen=pg.mkPen((200, 205, 215), width=1.5))
        self.region.setZValue(50)
        ov.addItem(self.region, ignoreBounds=True)
        self.region.sigRegionChanged.connect(self._on_region_dragged)
        self.overview_playhead = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((80, 220, 120), width=1.5))
        ov.addItem(self.overview_playhead, ignoreBounds=True)
        self.overview_playhead.hide()
        self.overview_loop = _loop_region()
        ov.addItem(self.overview_loop, ignoreBounds=True)
        layout.addWidget(self.overview)
        self._build_speech_lane(layout)

        self.panes: dict[str, _Pane] = {}
        self._build_panes()
        self._mouse_proxy = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=60, slot=self._on_mouse)
        self.graphics.scene().sigMouseClicked.connect(self._on_click)
        self.overview.scene().sigMouseClicked.connect(lambda ev: self._on_click(ev, overview=True))

    # ------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------
    @staticmethod
    def _axis_width() -> int:
        return 52

    def _build_speech_lane(self, layout) -> None:
        """A thin lane under the overview, X-linked to it: speech probability per 32 ms window (curve) and
        the speech spans (filled). Hidden until :meth:`set_speech_activity` gives it a result."""
        self.speech_lane = pg.PlotWidget()
        self.speech_lane.setBackground("#16181c")
        self.speech_lane.setFixedHeight(34)
        lane = self.speech_lane.getPlotItem()
        lane.setMenuEnabled(False)
        lane.hideButtons()
        lane.setMouseEnabled(x=False, y=False)
        lane.hideAxis("bottom")
        lane.getAxis("left").setWidth(self._axis_width())
        # The lane is too low for a rotated axis title: one horizontal tick label names it instead.
        lane.getAxis("left").setTicks([[(0.5, "speech")], []])
        lane.getViewBox().setDefaultPadding(0.0)
        lane.setYRange(0, 1.05, padding=0)
        lane.setXLink(self.overview.getPlotItem())
        self._speech_spans = pg.PlotCurveItem(pen=pg.mkPen(None), brush=pg.mkBrush(90, 200, 120, 110),
                                              fillLevel=0.0)
        self._speech_prob = pg.PlotCurveItem(pen=pg.mkPen((150, 230, 170), width=1))
        lane.addItem(self._speech_spans)
        lane.addItem(self._speech_prob)
        self.speech_lane.hide()
        layout.addWidget(self.speech_lane)

    def set_speech_activity(self, result) -> None:
        """Show a :class:`~workbench.core.measure.vad.VadResult` in the speech lane (``None`` hides it)."""
        if result is None:
            self._speech_prob.setData([], [])
            self._speech_spans.setData([], [])
            self.speech_lane.hide()
            return
        probs = np.asarray(result.probabilities, np.float64)
        x = (np.arange(len(probs)) + 0.5) * HOP_S
        self._speech_prob.setData(x, probs, skipFiniteCheck=True)
        # Spans as a step outline: 0 before each span, 1 across it, 0 after (filled down to 0).
        xs, ys = [0.0], [0.0]
        for a, b in result.spans:
            xs += [a, a, b, b]
            ys += [0.0, 1.0, 1.0, 0.0]
        xs.append(result.duration_s)
        ys.append(0.0)
        self._speech_spans.setData(np.asarray(xs), np.asarray(ys))
        self.speech_lane.setToolTip(f"speech activity (Silero VAD, threshold {result.settings.threshold:g}, "
                                    f"minimum pause {result.settings.min_pause_ms:g} ms): {len(result.spans)} "
                                    f"spans, {result.speech_s:.1f} s of {result.duration_s:.1f} s")
        self.speech_lane.show()

    def _build_panes(self) -> None:
        """(Re)create the panes in the current layout; tile images are redrawn from the cache."""
        # New plot items and colour bars: nothing of what was applied to the old ones holds for them.
        self._applied_limits = None
        self._applied_maps = {}
        old_range = None
        if self.panes:
            vb = self.master.getViewBox()
            old_range = vb.viewRange()
            # The old panes are about to be deleted; stop them reporting range changes on the way out.
            for sig in (vb.sigXRangeChanged, vb.sigResized):
                try:
                    sig.disconnect(self._on_view_changed)
                except (RuntimeError, TypeError):
                    pass
        self.graphics.ci.clear()
        row_layout = self.display.layout == "row"
        # Side by side, the colour bars go under the plots: four vertical bars and their labels would
        # take the width the plots need at 1366 px.
        self.panes = {name: _Pane(name, self.scale, self._on_region_selecting, horizontal_bar=row_layout,
                                   on_box=self._on_box_selecting)
                      for name in PANES}
        grid = self.graphics.ci.layout
        if row_layout:
            for col, name in enumerate(PANES):
                pane = self.panes[name]
                self.graphics.addItem(pane.title, row=0, col=col)
                self.graphics.addItem(pane.plot, row=1, col=col)
                self.graphics.addItem(pane.bar, row=2, col=col)
                pane.axis.setWidth(self._axis_width())
                grid.setColumnStretchFactor(col, 1)
            for row, stretch in enumerate((0, 1, 0, 0)):
                grid.setRowStretchFactor(row, stretch)
        else:
            positions = {"magnitude": (0, 0), "phase": (0, 1), "real": (1, 0), "imag": (1, 1)}
            for name, (row, col) in positions.items():
                pane = self.panes[name]
                self.graphics.addItem(pane.title, row=2 * row, col=2 * col, colspan=2)
                self.graphics.addItem(pane.plot, row=2 * row + 1, col=2 * col)
                self.graphics.addItem(pane.bar, row=2 * row + 1, col=2 * col + 1)
                pane.axis.setWidth(self._axis_width())
            for col in range(2):
                # Plots share the width equally; colour bars keep their fixed width.
                grid.setColumnStretchFactor(2 * col, 1)
                grid.setColumnStretchFactor(2 * col + 1, 0)
            for row in range(2):
                grid.setRowStretchFactor(2 * row, 0)
                grid.setRowStretchFactor(2 * row + 1, 1)
        for name in PANES:
            self.panes[name].plot.setMinimumWidth(120)
            self.panes[name].plot.setPreferredWidth(200)
        master = self.panes["magnitude"].plot
        for name in PANES[1:]:
            self.panes[name].plot.setXLink(master)
            self.panes[name].plot.setYLink(master)
        for pane in self.panes.values():
            pane.bar.sigLevelsChanged.connect(lambda bar, n=pane.name: self._on_bar_levels(n))
        master.getViewBox().sigXRangeChanged.connect(self._on_view_changed)
        master.getViewBox().sigResized.connect(self._on_view_changed)
        master.getViewBox().sigYRangeChanged.connect(self._on_frequency_range_changed)
        self._apply_titles()
        self._apply_colormaps()
        self._apply_limits()
        if old_range is not None:
            master.getViewBox().setRange(xRange=old_range[0], yRange=old_range[1], padding=0)
        elif self.source is None:
            master.getViewBox().setRange(xRange=(0, 1), yRange=self.scale.y_limits(), padding=0)
        # Two short lines: one long line was cut by the pane's edges in a narrow window.
        self._hint = pg.TextItem(EMPTY_HINT, color="#9aa3b0", anchor=(0.5, 0.5))
        self._hint.setPos(0.5, sum(self.scale.y_limits()) / 2)
        master.addItem(self._hint, ignoreBounds=True)
        self._hint.setVisible(self.source is None)
        self._needed = set()
        self._ready = False
        self.set_loop_region(*(self._loop_s or (None, None)))
        self.set_playhead(getattr(self, "_playhead_s", None))
        self.schedule_update()

    @property
    def master(self) -> pg.PlotItem:
        return self.panes["magnitude"].plot

    def _slot_view(self, slot: str):
        """The registry entry drawn in pane ``slot``."""
        return view(self.display.pane_views()[slot])

    def _apply_titles(self) -> None:
        """Pane titles and colour-bar labels from the view registry (unit, compression, masking)."""
        label = self._partner_label()
        for slot, pane in self.panes.items():
            spec = self._slot_view(slot)
            title = spec.title(self.display.compression)
            if spec.needs_partner:
                title += f": {label}"
            # Only what changed is set again: a new text re-lays the title out and redraws the colour
            # bar's axis (tens of milliseconds for all panes, e.g. when a new version arrives).
            if pane.shown_title != title:
                pane.title.setText(title, color="#d8dde6", size="10pt")
                pane.shown_title = title
            caption = self.display.mask_caption(spec.name)
            pane.bar_caption = "  ".join(t for t in (spec.unit, caption) if t)
            if pane.shown_caption != pane.bar_caption:
                pane.shown_caption = pane.bar_caption
                if pane.bar_caption:
                    pane.bar.axis.setLabel(html.escape(pane.bar_caption))   # the label is rich text ("<")
                else:
                    pane.bar.axis.showLabel(False)

    def pane_title(self, slot: str) -> str:
        """Title text of pane ``slot``."""
        return self.panes[slot].title.text

    def colorbar_title(self, slot: str) -> str:
        """Text of the colour bar label of pane ``slot`` (unit and, for masked views, the mask)."""
        pane = self.panes[slot]
        return pane.bar_caption if pane.bar.axis.label.isVisible() else ""

    def _partner_label(self) -> str:
        """What the difference pane compares, e.g. ``deepfilternet3 − original``."""
        if self._partner is None:
            return "no enhanced version to compare"
        return self._partner[3]

    def colormap_name(self, slot: str) -> str:
        """pyqtgraph colormap drawn in pane ``slot`` (by the view's colormap kind)."""
        kind = self._slot_view(slot).colormap_kind
        return self.display.colormap if kind == "sequential" else KIND_COLORMAPS[kind]

    def lookup_table(self, slot: str) -> np.ndarray:
        """The ``(512, 3|4)`` uint8 colour table pane ``slot`` maps its levels onto."""
        return self._luts[slot]

    def _apply_colormaps(self) -> None:
        """Colour tables and levels of every pane; a pane whose map and levels did not change is left
        alone (its colour bar keeps its cached drawing when only the shown version changes)."""
        luts = {}
        for name, pane in self.panes.items():
            map_name = self.colormap_name(name)
            self._levels.setdefault(name, self._default_levels(name))
            if self._applied_maps.get(name) == map_name:
                luts[name] = self._luts[name]   # set together with _applied_maps below
            else:
                cmap = pg.colormap.get(map_name)
                pane.bar.setColorMap(cmap)
                luts[name] = cmap.getLookupTable(nPts=512)
                self._applied_maps[name] = map_name
            if tuple(float(v) for v in pane.bar.levels()) != tuple(float(v) for v in self._levels[name]):
                pane.bar.setLevels(values=self._levels[name])
            for item in pane.items.values():
                item.setLookupTable(luts[name])
                item.setLevels(self._levels[name])
        self._luts = luts

    def _default_levels(self, name: str) -> tuple[float, float]:
        levels = self.display.default_levels(self.display.pane_views()[name], self.cfg, self.sample_rate)
        # Automatic (None): a placeholder until the first tile sets a symmetric range.
        return levels if levels is not None else (-1.0, 1.0)

    def _reset_auto_levels(self) -> None:
        """Panes whose view has no fixed range take a symmetric one from the next tile shown."""
        self._auto_symmetric = {slot: self._slot_view(slot).levels is None for slot in PANES}

    def _apply_limits(self) -> None:
        duration = self.source.frames / self.sample_rate if self.source is not None else 1.0
        y0, y1 = self.scale.y_limits()
        vb = self.master.getViewBox()
        pad = self.cfg.hop / self.sample_rate
        limits = (duration, y0, y1, pad)
        if limits == self._applied_limits:
            return  # the same file and scale (another version of it): axes keep their drawings
        self._applied_limits = limits
        vb.setLimits(xMin=-pad, xMax=duration + pad, yMin=y0, yMax=y1,
                     minXRange=max(4 * self.cfg.hop / self.sample_rate, 1e-3),
                     minYRange=(y1 - y0) / 400)
        ov = self.overview.getPlotItem().getViewBox()
        ov.setLimits(xMin=0, xMax=duration)
        ov.setXRange(0, duration, padding=0)

    # ------------------------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------------------------
    def set_source(self, source: AudioSource | None, name: str = "", channel: int = 0,
                   keep_view: bool = False) -> None:
        """Show ``channel`` of ``source`` (``None`` clears the view). The view fits the whole file."""
        self._cancel_all()
        self.source = source
        self.source_name = name
        self.channel = channel
        # Tiles are keyed by source, so going back to a version already seen reuses its cached tiles.
        if source is not None:
            self._source_id = self._id_of(source)
        self._clear_items()
        self._reset_auto_levels()
        self._hint.setVisible(source is None)
        if not keep_view:
            # A new recording: nothing of the previous one's crosshair, loop or playhead stays on screen.
            self.hide_crosshair()
            self.set_loop_region(None)
            self.set_playhead(None)
        if source is None:
            # Empty state: axes, overview and limits as before any file was opened.
            self.total_frames = 0
            self._set_envelope(np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.float32))
            self._envelope_done = True
            # The closed file's amplitude scale must not stay on the empty overview.
            self.overview.getPlotItem().setRange(xRange=(0, 1), yRange=(-1, 1), padding=0)
            self.sample_rate = 16000
            self.scale = FreqScale(self.display.freq_scale, self.sample_rate, self.cfg.nfft)
            for pane in self.panes.values():
                pane.axis.set_scale(self.scale)
            self._apply_limits()
            self.master.getViewBox().setRange(xRange=(0, 1), yRange=self.scale.y_limits(), padding=0)
            self._hint.setPos(0.5, sum(self.scale.y_limits()) / 2)
            self.readoutChanged.emit({})
            return
        self.sample_rate = source.sample_rate
        self._reconfigure(fit=not keep_view)
        self._start_envelope()

    def set_channel(self, channel: int) -> None:
        if self.source is not None and channel != self.channel:
            self.set_source(self.source, self.source_name, channel, keep_view=True)

    def set_stft(self, cfg: StftConfig) -> None:
        """Change the analysis; tiles recompute on the pool while the old images stay until replaced."""
        if cfg == self.cfg:
            return
        self._cancel_all()
        self.cfg = cfg
        self._clear_items()
        if self.source is not None:
            self._reconfigure(fit=False)

    def set_display(self, display: DisplaySettings) -> None:
        """Apply drawing settings; levels and colormaps redraw at once, images are re-derived from cached
        complex tiles on the GUI thread (no new STFT)."""
        old = self.display
        if display == old:
            return
        self.display = display
        if display.layout != old.layout:
            self._build_panes()
            return
        if display.freq_scale != old.freq_scale:
            self.scale = FreqScale(display.freq_scale, self.sample_rate, self.cfg.nfft)
            for pane in self.panes.values():
                pane.axis.set_scale(self.scale)
            self._clear_items()
            self._apply_limits()
            self.master.getViewBox().setYRange(*self.scale.y_limits(), padding=0)
            self.schedule_update()
            return
        if display.db_range != old.db_range:
            self._levels["magnitude"] = tuple(display.db_range)
        new_views, old_views = display.pane_views(), old.pane_views()
        for slot in PANES:
            if new_views[slot] != old_views[slot]:
                self._levels[slot] = self._default_levels(slot)
        specs = lambda d: [view(n) for n in d.pane_views().values()]  # noqa: E731
        if (any(s.needs_previous for s in specs(display)) != any(s.needs_previous for s in specs(old))
                or any(s.needs_partner for s in specs(display)) != any(s.needs_partner for s in specs(old))):
            # Needs each column's predecessor frame, or the partner's frames: different tiles.
            self._clear_items()
        if display.compression != old.compression or new_views != old_views:
            self._reset_auto_levels()
        self._apply_titles()
        self._apply_colormaps()
        if images_key(display) != images_key(old):
            self._redraw_items()
        self.schedule_update()

    def fit(self) -> None:
        if self.source is None:
            return
        duration = self.source.frames / self.sample_rate
        self.master.getViewBox().setRange(xRange=(0, duration), yRange=self.scale.y_limits(), padding=0)

    def set_time_range(self, t0: float, t1: float) -> None:
        self.master.getViewBox().setXRange(t0, t1, padding=0)

    def time_range(self) -> tuple[float, float]:
        return tuple(self.master.getViewBox().viewRange()[0])

    def zoom(self, factor: float) -> None:
        """Zoom time by ``factor`` (<1 zooms in) around the view centre."""
        t0, t1 = self.time_range()
        c, half = (t0 + t1) / 2, (t1 - t0) / 2 * factor
        self.set_time_range(c - half, c + half)

    def pan(self, fraction: float) -> None:
        """Move the view by ``fraction`` of its width (negative = earlier)."""
        t0, t1 = self.time_range()
        d = (t1 - t0) * fraction
        self.set_time_range(t0 + d, t1 + d)

    def set_playhead(self, time_s: float | None) -> None:
        """Show the playback position (seconds) as a vertical line in every pane and the overview."""
        self._playhead_s = time_s
        for line in [p.playhead for p in self.panes.values()] + [self.overview_playhead]:
            if time_s is None:
                line.hide()
            else:
                line.setPos(time_s)
                line.show()

    def set_loop_region(self, start_s: float | None, stop_s: float | None = None) -> None:
        """Shade ``[start_s, stop_s]`` (seconds) in every pane and the overview; ``None`` hides it."""
        self._loop_s = None if start_s is None or stop_s is None or stop_s <= start_s else (start_s, stop_s)
        for region in [p.loop for p in self.panes.values()] + [self.overview_loop]:
            if self._loop_s is None:
                region.hide()
            else:
                region.setRegion(self._loop_s)
                region.show()

    def loop_region(self) -> tuple[float, float] | None:
        return self._loop_s

    def set_difference_partner(self, source: AudioSource | None, channel: int = 0, partner_is_original: bool = True,
                               label: str = "") -> None:
        """The version the difference views compare the shown one with.

        Args:
            source: the other version's samples (same length and rate as the shown source), or ``None``.
            partner_is_original: ``True`` when ``source`` is the original (the shown version is the
                enhanced side), ``False`` when the shown version is the original.
            label: pane title text, e.g. ``deepfilternet3 − original``.
        """
        new = None if source is None else (source, int(channel), bool(partner_is_original), label)
        old = self._partner
        if (new is None) == (old is None) and (new is None or (new[0] is old[0] and new[1:] == old[1:])):
            return
        self._partner = new
        self._apply_titles()
        if self._needs_partner() and self.source is not None:
            # New tile keys (the partner is part of them); the old images stay until replaced.
            self._ready = False
            self.schedule_update()

    def difference_partner(self) -> tuple[AudioSource, int, bool, str] | None:
        """``(source, channel, partner_is_original, label)`` the difference views compare with, or ``None``."""
        return self._partner

    def visible_region(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((t0, t1) seconds, (f0, f1) Hz)`` shown in the panes (clipped to the recording)."""
        (t0, t1), (y0, y1) = self.master.getViewBox().viewRange()
        duration = self.source.frames / self.sample_rate if self.source is not None else 1.0
        f0, f1 = (float(v) for v in self.scale.inv(np.array([y0, y1])))
        return ((max(0.0, t0), min(duration, t1)), (max(0.0, f0), min(self.sample_rate / 2, f1)))

    def set_visible_region(self, time_s: tuple[float, float], freq_hz: tuple[float, float] | None = None) -> None:
        """Show ``time_s`` (seconds) and, if given, ``freq_hz`` (Hz) — sessions restore the view through this."""
        vb = self.master.getViewBox()
        if freq_hz is None:
            vb.setXRange(*time_s, padding=0)
        else:
            vb.setRange(xRange=time_s, yRange=tuple(float(v) for v in self.scale.fwd(np.array(freq_hz))), padding=0)

    def figure_settings(self, whole_file: bool = False) -> FigureSettings:
        """What the panes show, as :class:`~workbench.core.views.figure.FigureSettings` for File > Export figure:
        each pane's view, colour range and colour table, compression, masking threshold, frequency scale,
        layout and (unless ``whole_file``) the visible time/frequency region."""
        d = self.display
        panes = tuple(FigurePane(d.pane_views()[slot], tuple(float(v) for v in self.levels(slot)),
                                 self._luts[slot]) for slot in PANES)
        (t0, t1), (f0, f1) = self.visible_region()
        return FigureSettings(panes=panes, layout=d.layout, compression=d.compression, floor_db=float(d.db_range[0]),
                              mask_below_db=None, mask_floor_dbfs=d.mask_floor_dbfs, freq_scale=d.freq_scale,
                              time_range_s=None if whole_file else (t0, t1),
                              freq_range_hz=None if whole_file else (f0, f1))

    def _on_region_selecting(self, a: float, b: float, finished: bool) -> None:
        if self.source is None:
            return
        duration = self.source.frames / self.sample_rate
        a, b = max(0.0, min(a, duration)), max(0.0, min(b, duration))
        self.set_loop_region(a, b)
        if finished:
            self.loopSelected.emit(a, b)

    def _on_box_selecting(self, viewbox, x0: float, x1: float, y0: float, y1: float, finished: bool) -> None:
        """Ctrl + drag on a pane: draw the rectangle there; at the release emit ``boxSelected(t0_s, t1_s,
        f0_hz, f1_hz)`` (the frequency axis may be log or mel: converted back to Hz)."""
        if self.source is None:
            return
        duration = self.source.frames / self.sample_rate
        x0, x1 = max(0.0, min(x0, duration)), max(0.0, min(x1, duration))
        # The region to repair is one time-frequency box whatever the pane dragged on: every pane shares
        # the time and frequency axes, so each outlines it (the phase and real/imaginary views show what
        # the repair will touch as well as the magnitude does).
        for pane in self.panes.values():
            pane.box.setData([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
            pane.box.show()
        if finished:
            f0, f1 = float(self.scale.inv(y0)), float(self.scale.inv(y1))
            nyquist = self.sample_rate / 2
            self.boxSelected.emit(x0, x1, max(0.0, min(f0, nyquist)), max(0.0, min(f1, nyquist)))

    def clear_box(self) -> None:
        for pane in self.panes.values():
            pane.box.hide()

    def _on_click(self, ev, overview: bool = False) -> None:
        """A plain left click (no drag, no modifier) on a pane or the overview seeks there."""
        if (self.source is None or ev.button() != Qt.MouseButton.LeftButton or ev.double()
                or ev.modifiers() != Qt.KeyboardModifier.NoModifier):
            return
        pos = ev.scenePos()
        boxes = ([self.overview.getPlotItem().getViewBox()] if overview
                 else [p.plot.getViewBox() for p in self.panes.values()])
        for vb in boxes:
            if vb.sceneBoundingRect().contains(pos):
                t = vb.mapSceneToView(pos).x()
                duration = self.source.frames / self.sample_rate
                self.seekRequested.emit(float(min(max(t, 0.0), duration)))
                return

    def set_rubber_band(self, on: bool) -> None:
        mode = pg.ViewBox.RectMode if on else pg.ViewBox.PanMode
        for pane in self.panes.values():
            pane.plot.getViewBox().setMouseMode(mode)

    def paint_now(self) -> None:
        """Paint the panes and overview synchronously (timing marks, screenshots)."""
        self.graphics.viewport().repaint()
        self.overview.viewport().repaint()

    def is_painted(self) -> bool:
        """True when every tile the current view needs is drawn and the overview is complete."""
        return self._ready and self._envelope_done

    def images(self, name: str) -> list[pg.ImageItem]:
        """Tile images currently shown in pane ``name`` (for tests and screenshots)."""
        return list(self.panes[name].items.values())

    def levels(self, name: str) -> tuple[float, float]:
        return self._levels.get(name, self._default_levels(name))

    def frame_bin_at(self, time_s: float, freq_hz: float) -> tuple[int, int]:
        """STFT frame and bin nearest to ``time_s`` and ``freq_hz`` (clipped to the recording)."""
        cfg = self.cfg
        t = int(round((time_s * self.sample_rate + cfg.pad - cfg.n_fft / 2) / cfg.hop))
        t = int(np.clip(t, 0, max(self.total_frames - 1, 0)))
        k = int(np.clip(round(freq_hz * cfg.nfft / self.sample_rate), 0, cfg.bins - 1))
        return t, k

    def readout(self, time_s: float, freq_hz: float) -> dict:
        """Values of what the panes draw at the frame/bin nearest ``(time_s, freq_hz)``.

        Computed through the view registry on the exact STFT frame (not the decimated tile), with the
        display's compression, floor and masking, so each value is the one drawn there. Returns
        ``time_s`` and ``freq_hz`` (of that frame centre / bin centre), ``frame``, ``bin``, and ``panes``:
        slot -> ``{"view", "short", "unit", "value", "text"}`` where ``value`` is ``None`` (and ``text``
        ``—``) for masked bins and difference views without a partner. For convenience also
        ``magnitude_db`` (dBFS), ``phase_rad``, ``real``/``imag`` (compressed as drawn),
        ``real_raw``/``imag_raw``, ``inst_freq_hz``, ``group_delay_ms`` (unmasked) and, with a partner,
        ``magnitude_difference_db``/``phase_difference_rad``. Empty without a source.
        """
        if self.source is None:
            return {}
        t, k = self.frame_bin_at(time_s, freq_hz)
        cfg, sr = self.cfg, self.sample_rate
        read = lambda a, b: self.source.read(a, b)[:, self.channel]  # noqa: E731
        spec = stft_frames(read, self.source.frames, t - 1, t + 1, cfg)   # frame -1 reads as zeros
        prev, cur = spec[:1], spec[1:]
        partner = None
        if self._partner is not None:
            src, ch = self._partner[0], self._partner[1]
            partner = stft_frames(lambda a, b: src.read(a, b)[:, ch], src.frames, t, t + 1, cfg)
        display = self.display
        inp = display.view_input(cur, cfg, sr, previous=prev, partner=partner, frames=np.array([t]),
                                 partner_is_original=self._partner[2] if self._partner is not None else True)

        def value(name: str, masked: bool = True) -> float | None:
            v = float(compute_view(name, inp, display.mask_floor_dbfs if masked else None)[0, k])
            return v if np.isfinite(v) else None

        panes = {}
        for slot, name in display.pane_views().items():
            spec_ = view(name)
            v = value(name)
            panes[slot] = {"view": name, "short": spec_.short, "unit": spec_.unit, "value": v,
                           "text": spec_.format_value(v)}
        out = {
            "time_s": float(cfg.frame_time_s(t, sr)),
            "freq_hz": float(k * sr / cfg.nfft),
            "frame": t,
            "bin": k,
            "panes": panes,
            "magnitude_db": value("magnitude"),
            "phase_rad": value("phase"),
            "real": value("real"),
            "imag": value("imag"),
            "real_raw": float(cur[0, k].real),
            "imag_raw": float(cur[0, k].imag),
            "inst_freq_hz": value("inst_freq", masked=False),
            "group_delay_ms": value("group_delay", masked=False),
        }
        if partner is not None:
            out["magnitude_difference_db"] = value("mag_diff")
            out["phase_difference_rad"] = value("phase_diff")
        return out

    def readout_text(self, values: dict) -> str:
        """One line for the status area: time, frequency and each pane's value in its unit (``—`` where
        nothing is drawn)."""
        if not values:
            return ""
        panes = values["panes"]   # a dict through a Qt signal loses its order: use the pane order
        parts = [f"{panes[slot]['short']} {panes[slot]['text']}" for slot in PANES if slot in panes]
        return f"t {values['time_s']:.4f} s  f {values['freq_hz']:.1f} Hz  |  " + "  ".join(parts)

    def shutdown(self) -> None:
        """Cancel work and wait for the pool (call before the widget is destroyed)."""
        self._cancel_all()
        self.pool.clear()
        self.pool.waitForDone(5000)

    # ------------------------------------------------------------------------------------------------------
    # tiles
    # ------------------------------------------------------------------------------------------------------
    def _reconfigure(self, fit: bool) -> None:
        self._generation += 1
        self.total_frames = self.cfg.frame_count(self.source.frames)
        self.scale = FreqScale(self.display.freq_scale, self.sample_rate, self.cfg.nfft)
        for pane in self.panes.values():
            pane.axis.set_scale(self.scale)
        for name in ("phase",):
            self._levels[name] = self._default_levels(name)
        self._apply_colormaps()
        self._apply_limits()
        if fit:
            self.fit()
        self._ready = False
        self.schedule_update()

    def schedule_update(self) -> None:
        self._update_timer.start()

    def _on_view_changed(self, *args) -> None:
        t0, t1 = self.time_range()
        self._syncing_region = True
        self.region.setRegion((t0, t1))
        self._syncing_region = False
        self.viewRangeChanged.emit(t0, t1)
        # Not "painted" until the tiles for the new range are known to be shown.
        self._ready = False
        self.schedule_update()

    def _on_frequency_range_changed(self, *args) -> None:
        if self.source is not None:
            self.frequencyRangeChanged.emit(*self.visible_region()[1])

    def _on_region_dragged(self) -> None:
        if self._syncing_region:
            return
        t0, t1 = self.region.getRegion()
        self.master.getViewBox().setXRange(t0, t1, padding=0)

    def _pixels(self) -> int:
        # Device pixels, so a high-DPI screen gets its full resolution.
        return max(64, int(self.master.getViewBox().width() * self.devicePixelRatioF()))

    def update_tiles(self) -> None:
        """Work out which tiles the view needs, show cached ones, queue the rest, cancel the stale."""
        if self.source is None or self.total_frames == 0:
            return
        t0, t1 = self.time_range()
        hop_s = self.cfg.hop / self.sample_rate
        f0, f1 = t0 / hop_s, t1 / hop_s
        level = level_for(f1 - f0, self._pixels())
        self._level = level
        with_prev = any(view(n).needs_previous for n in self.display.pane_views().values())
        partner_id, partner_is_original = 0, True
        if self._needs_partner() and self._partner is not None:
            partner_id, partner_is_original = self._id_of(self._partner[0]), self._partner[2]

        def key_at(i: int) -> TileKey:
            return TileKey(self._source_id, self.channel, self.cfg, level, i, with_prev, partner_id,
                           partner_is_original)
        keys = [key_at(i) for i in tiles_in_range(f0, f1, level, self.total_frames)]
        self._needed = set(keys)
        keep = self._needed | {key_at(i) for k in keys[:1] + keys[-1:] for i in (k.index - 1, k.index + 1)}
        for key, job in list(self._pending.items()):
            if key not in keep:
                job.cancel()
                del self._pending[key]
        centre = (f0 + f1) / 2
        # One tile either side is fetched ahead (not waited for) so that short pans find it cached.
        ahead = []
        if keys:
            for i in (keys[0].index - 1, keys[-1].index + 1):
                if 0 <= i and i * (TILE_COLUMNS << level) < self.total_frames:
                    ahead.append(key_at(i))
        for key in ahead:
            if key not in self._pending and self.cache.get(key) is None:
                job = self._job(key)
                self._pending[key] = job
                job.start(-100)
        for key in keys:
            if key in self.panes["magnitude"].items:
                continue
            tile = self.cache.get(key)
            if tile is not None:
                self._show_tile(tile)
            elif key not in self._pending:
                job = self._job(key)
                self._pending[key] = job
                # Tiles nearest the view centre first.
                span = TILE_COLUMNS << level
                priority = -int(abs((key.index + 0.5) * span - centre) / span)
                job.start(priority)
        self._check_complete()

    def _needs_partner(self) -> bool:
        return any(view(n).needs_partner for n in self.display.pane_views().values())

    def _job(self, key: TileKey) -> GeneratorWorker:
        partner = (self._partner[0], self._partner[1]) if key.partner_id and self._partner is not None else None
        args = (self.source, key, self.total_frames, self._generation, self.display, partner, self.cache)
        worker = GeneratorWorker(lambda: _tile_steps(*args, should_stop=worker.should_stop), pool=self.pool)
        worker.progress.connect(self._on_tile_item)
        return worker

    def _on_tile_item(self, item) -> None:
        self._tile_inbox.append(item)
        if not self._tile_timer.isActive():
            self._tile_timer.start()

    def _drain_tiles(self) -> None:
        inbox, self._tile_inbox = self._tile_inbox, []
        for item in inbox:
            self._on_tile(*item)

    def _id_of(self, source: AudioSource) -> int:
        """A small id per source object (tiles are keyed by it; a source seen again reuses its tiles)."""
        if source not in self._source_id_of:
            self._source_id_of[source] = next(self._source_ids)
        return self._source_id_of[source]

    def _on_tile(self, tile, generation: int) -> None:
        if isinstance(tile, Exception):
            # One message per (re)configuration, not one per failing tile.
            if generation == self._generation and self._error_generation != generation:
                self._error_generation = generation
                self.tileError.emit(f"{self.source_name}: {tile}")
            return
        self.cache.put(tile)
        if self._pending.get(tile.key) is not None:
            del self._pending[tile.key]
        if generation != self._generation or tile.key not in self._needed:
            return
        self._show_tile(tile)
        self._check_complete()

    def _show_tile(self, tile: Tile) -> None:
        arrays = tile_images(tile, self.sample_rate, self.display)
        self._auto_level(arrays)
        idx, y0, height = self.scale.rows(self.cfg.bins)
        stride_s = tile.key.stride * self.cfg.hop / self.sample_rate
        x0 = float(self.cfg.frame_time_s(int(tile.frames[0]), self.sample_rate)) - stride_s / 2
        width = len(tile.frames) * stride_s
        for name, pane in self.panes.items():
            data = arrays[name] if idx is None else arrays[name][:, idx]
            item = pane.items.get(tile.key)
            if item is None:
                item = pg.ImageItem(axisOrder="col-major")
                item.setZValue(10)
                pane.plot.addItem(item)
                pane.items[tile.key] = item
            item.setImage(data, autoLevels=False, levels=self._levels[name], lut=self._luts[name])
            item.setRect(x0, y0, width, height)
            item.tile = tile

    def _redraw_items(self) -> None:
        """Re-derive all shown images from their complex tiles (display settings changed)."""
        for key, item in list(self.panes["magnitude"].items.items()):
            self._show_tile(item.tile)

    def _auto_level(self, arrays: dict[str, np.ndarray]) -> None:
        """First tile after a (re)configuration sets the symmetric range of panes without fixed levels
        (real/imag) at the 99.5th percentile of ``|values|``."""
        for name in PANES:
            if self._auto_symmetric.get(name):
                self._refine_levels = True
                self._auto_symmetric[name] = False
                self._set_symmetric_levels(name, [arrays[name]])

    #: most values the automatic symmetric range looks at (an evenly strided sample of the shown images):
    #: the 99.5th percentile of a few hundred thousand values is as good a colour range as of millions, and
    #: the exact one took ~10 ms per pane on the GUI thread each time a new version was shown.
    LEVEL_SAMPLE_VALUES = 1 << 18

    def _set_symmetric_levels(self, name: str, arrays) -> None:
        total = sum(int(np.size(a)) for a in arrays)
        step = max(1, -(-total // self.LEVEL_SAMPLE_VALUES))
        values = np.concatenate([np.abs(np.ravel(a)[::step]) for a in arrays]) if arrays else np.zeros(0)
        values = values[np.isfinite(values)]
        m = float(np.percentile(values, 99.5)) if values.size else 1.0
        m = m if m > 0 else 1.0
        self._levels[name] = (-m, m)
        self.panes[name].bar.setLevels(values=(-m, m))

    def _on_bar_levels(self, name: str) -> None:
        lo, hi = self.panes[name].bar.levels()
        if self._slot_view(name).symmetric:
            m = max(abs(lo), abs(hi))
            if (lo, hi) != (-m, m):
                self.panes[name].bar.setLevels(values=(-m, m))
                return
        self._levels[name] = (lo, hi)
        for item in self.panes[name].items.values():
            item.setLevels((lo, hi))
        if name == "magnitude" and (lo, hi) != tuple(self.display.db_range):
            old_key = images_key(self.display)
            self.display = replace(self.display, db_range=(float(lo), float(hi)))
            if images_key(self.display) != old_key:   # masking / difference floor follow the range
                self._apply_titles()
                self._redraw_items()
            self.magnitudeRangeDragged.emit(float(lo), float(hi))

    def _check_complete(self) -> None:
        shown = self.panes["magnitude"].items
        complete = bool(self._needed) and all(k in shown for k in self._needed)
        if complete and self._refine_levels:
            # The first tile set the automatic ranges; refine once over everything visible.
            self._refine_levels = False
            for name in PANES:
                if self._slot_view(name).levels is None:
                    self._set_symmetric_levels(name, [im.image for im in self.panes[name].items.values()])
        if complete:
            # Drop images of other levels / far away once the current level covers the view.
            for pane in self.panes.values():
                for key in [k for k in pane.items if k not in self._needed]:
                    pane.plot.removeItem(pane.items.pop(key))
        self._set_ready(complete)

    def _set_ready(self, ready: bool) -> None:
        was = self.is_painted()
        tiles_were = self._ready
        self._ready = ready
        if ready and not tiles_were:
            self.tilesPainted.emit()
        if self.is_painted() and not was:
            self.painted.emit()

    def _clear_items(self) -> None:
        for pane in self.panes.values():
            for item in pane.items.values():
                pane.plot.removeItem(item)
            pane.items.clear()
        self._needed = set()
        self._ready = False

    def _cancel_all(self) -> None:
        self._generation += 1
        for job in self._pending.values():
            job.cancel()
        self._pending.clear()
        if self._envelope_job is not None:
            self._envelope_job.cancel()
            self._envelope_job = None

    # ------------------------------------------------------------------------------------------------------
    # overview
    # ------------------------------------------------------------------------------------------------------
    def _start_envelope(self) -> None:
        if self._envelope_job is not None:
            self._envelope_job.cancel()
            self._envelope_job = None
        cached = self._envelopes.get((self._source_id, self.channel))
        if cached is not None:
            # A version seen before (A/B switching): its finished envelope is shown at once.
            self._envelope_done = False
            self._show_envelope(cached)
            return
        self._envelope_done = False
        self._set_envelope(np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.float32))
        buckets = 4000
        self._env_gen = self._generation
        args = (self.source, self.channel, buckets, self._generation)
        key = (self._source_id, self.channel)
        job = GeneratorWorker(lambda: _envelope_steps(*args, should_stop=job.should_stop), pool=self.pool)
        self._envelope_key = key
        job.progress.connect(self._on_envelope_item)
        self._envelope_job = job
        self._envelope_generation = self._generation
        # Lowest priority: the visible spectrogram tiles come first.
        job.start(-1000)

    def _on_envelope_item(self, item) -> None:
        self._on_envelope(*item)

    def _set_envelope(self, x: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> None:
        """Show the overview envelope: bucket centres ``x`` (s, ``(m,)``) with their ``mins``/``maxs``."""
        band = np.empty(2 * len(x), np.float64)
        band[0::2] = mins
        band[1::2] = maxs
        self._show_envelope(EnvelopeCurves(x, mins, maxs, np.repeat(x, 2), band, 1.0, False), finish=False)

    def _show_envelope(self, curves: EnvelopeCurves, finish: bool = True) -> None:
        """Hand finished arrays to the curves (no computation here: the GUI thread only draws)."""
        self._env_max.setData(curves.x, curves.maxs, skipFiniteCheck=True)
        self._env_min.setData(curves.x, curves.mins, skipFiniteCheck=True)
        self._env_fill.setData(curves.band_x, curves.band_y, skipFiniteCheck=True)
        if not finish:
            return
        self.overview.getPlotItem().setYRange(-curves.y_limit, curves.y_limit, padding=0)
        if curves.complete:
            was = self.is_painted()
            self._envelope_done = True
            if self.is_painted() and not was:
                self.painted.emit()

    def overview_envelope(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the overview draws now: bucket centres (s), their minima and maxima (float32)."""
        x, maxs = self._env_max.getData()
        _, mins = self._env_min.getData()
        empty = np.zeros(0)
        return (empty if x is None else x), (empty if mins is None else mins), (empty if maxs is None else maxs)

    def _on_envelope(self, curves: EnvelopeCurves, generation: int) -> None:
        if self._envelope_job is None or generation != self._envelope_generation or self.source is None:
            return
        if curves.complete:
            self._envelope_job = None
            self._envelopes[self._envelope_key] = curves
            while len(self._envelopes) > ENVELOPE_CACHE_ENTRIES:
                self._envelopes.pop(next(iter(self._envelopes)))
        self._show_envelope(curves)

    # ------------------------------------------------------------------------------------------------------
    # crosshair
    # ------------------------------------------------------------------------------------------------------
    def _on_mouse(self, event) -> None:
        pos = event[0]
        for pane in self.panes.values():
            vb = pane.plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                p = vb.mapSceneToView(pos)
                self.show_crosshair(p.x(), float(self.scale.inv(p.y())))
                return

    def hide_crosshair(self) -> None:
        for pane in self.panes.values():
            pane.vline.hide()
            pane.hline.hide()

    def crosshair_visible(self) -> bool:
        return self.master is not None and self.panes["magnitude"].vline.isVisible()

    def show_crosshair(self, time_s: float, freq_hz: float) -> dict:
        """Place the crosshair at ``(time_s, freq_hz)`` in every pane and emit the readout."""
        if self.source is None:
            return {}
        y = float(self.scale.fwd(freq_hz))
        for pane in self.panes.values():
            pane.vline.setPos(time_s)
            pane.hline.setPos(y)
            pane.vline.show()
            pane.hline.show()
        values = self.readout(time_s, freq_hz)
        if values:
            self.cursorMoved.emit(time_s)
            self.readoutChanged.emit(values)
        return values
