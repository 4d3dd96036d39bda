"""The strip under the panes: the whole file's waveform envelope with the visible span, playhead and loop
(:class:`OverviewPlot`), and the speech-activity lane under it (:class:`SpeechLane`)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ..core.measure.vad import HOP_S
from ..core.views.overview import EnvelopeCurves
from .axes import QuietLabelAxis, TimeAxis
from .spectrogram_pane import RegionViewBox, loop_region, shift_held

#: Width of the left axes (px), the same in the panes, the overview and the speech lane so they line up.
AXIS_WIDTH = 52
BACKGROUND = "#16181c"


def _quiet_axes(**given) -> dict:
    """Axes for all four sides (see :class:`~workbench.gui.axes.QuietLabelAxis`), with ``given`` ones kept."""
    return {side: given.get(side) or QuietLabelAxis(side) for side in ("left", "bottom", "top", "right")}


def _hide_top_and_right(plot_item) -> None:
    """Axes passed in are shown; top and right stay hidden here, as pyqtgraph's own are."""
    plot_item.hideAxis("top")
    plot_item.hideAxis("right")


class VisibleRegion(pg.LinearRegionItem):
    """The overview's visible-span marker; lets Shift-drags through to the view box (loop selection)."""

    def mouseDragEvent(self, ev):  # noqa: N802
        if shift_held(ev):
            ev.ignore()
            return
        super().mouseDragEvent(ev)


class OverviewPlot(pg.PlotWidget):
    """The waveform envelope of the whole file (min/max band and curves), the visible span (draggable),
    the playhead and the loop. ``on_region(start_s, stop_s, finished)`` receives Shift-drags."""

    def __init__(self, on_region):
        super().__init__(axisItems=_quiet_axes(bottom=TimeAxis()), viewBox=RegionViewBox(on_region, enableMenu=False))
        self.setBackground(BACKGROUND)
        self.setMaximumHeight(110)
        self.setMinimumHeight(90)
        ov = self.getPlotItem()
        _hide_top_and_right(ov)
        ov.setMenuEnabled(False)
        ov.hideButtons()
        ov.setMouseEnabled(x=False, y=False)
        ov.getAxis("left").setWidth(AXIS_WIDTH)
        ov.setLabel("left", "Wave")
        ov.getAxis("left").enableAutoSIPrefix(False)
        ov.getAxis("bottom").setLabel("")
        ov.getViewBox().setDefaultPadding(0.0)
        ov.setYRange(-1, 1, padding=0.02)
        self.env_max = pg.PlotDataItem(pen=pg.mkPen((110, 170, 230), width=1))
        self.env_min = pg.PlotDataItem(pen=pg.mkPen((110, 170, 230), width=1))
        # The band between min and max is drawn as one vertical segment per bucket (``connect="pairs"``),
        # not as a filled polygon: Qt rasterises a filled 8000-vertex outline in ~200 ms on the GUI thread
        # (pg.FillBetweenItem), the 4000 segments in ~5 ms, and at 4000 buckets across at most a few
        # thousand pixels the segments cover the band just as a fill would.
        self.env_fill = pg.PlotCurveItem(pen=pg.mkPen((70, 130, 200, 160), width=1), connect="pairs")
        for it in (self.env_fill, self.env_max, self.env_min):
            ov.addItem(it)
        self.region = VisibleRegion(brush=pg.mkBrush(255, 255, 255, 40), pen=pg.mkPen((200, 205, 215), width=1.5))
        self.region.setZValue(50)
        ov.addItem(self.region, ignoreBounds=True)
        self.playhead = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((80, 220, 120), width=1.5))
        ov.addItem(self.playhead, ignoreBounds=True)
        self.playhead.hide()
        self.loop = loop_region()
        ov.addItem(self.loop, ignoreBounds=True)

    def set_curves(self, curves: EnvelopeCurves, finish: bool = True) -> None:
        """Hand finished arrays to the curves (no computation here: the GUI thread only draws); with
        ``finish`` the amplitude axis fits the envelope's range."""
        self.env_max.setData(curves.x, curves.maxs, skipFiniteCheck=True)
        self.env_min.setData(curves.x, curves.mins, skipFiniteCheck=True)
        self.env_fill.setData(curves.band_x, curves.band_y, skipFiniteCheck=True)
        if finish:
            self.getPlotItem().setYRange(-curves.y_limit, curves.y_limit, padding=0)

    def envelope(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What is drawn now: bucket centres (s), their minima and maxima (float32)."""
        x, maxs = self.env_max.getData()
        _, mins = self.env_min.getData()
        empty = np.zeros(0)
        return (empty if x is None else x), (empty if mins is None else mins), (empty if maxs is None else maxs)

    def set_duration(self, duration_s: float) -> None:
        vb = self.getPlotItem().getViewBox()
        vb.setLimits(xMin=0, xMax=duration_s)
        vb.setXRange(0, duration_s, padding=0)


class SpeechLane(pg.PlotWidget):
    """A thin lane under the overview, X-linked to it: speech probability per 32 ms window (curve) and the
    speech spans (filled). Hidden until :meth:`set_activity` gives it a result."""

    def __init__(self, overview: OverviewPlot):
        super().__init__(enableMenu=False, axisItems=_quiet_axes())
        self.setBackground(BACKGROUND)
        self.setFixedHeight(34)
        lane = self.getPlotItem()
        _hide_top_and_right(lane)
        lane.setMenuEnabled(False)
        lane.hideButtons()
        lane.setMouseEnabled(x=False, y=False)
        lane.hideAxis("bottom")
        lane.getAxis("left").setWidth(AXIS_WIDTH)
        # The lane is too low for a rotated axis title: one horizontal tick label names it instead.
        lane.getAxis("left").setTicks([[(0.5, "speech")], []])
        lane.getViewBox().setDefaultPadding(0.0)
        lane.setYRange(0, 1.05, padding=0)
        lane.setXLink(overview.getPlotItem())
        self.spans = pg.PlotCurveItem(pen=pg.mkPen(None), brush=pg.mkBrush(90, 200, 120, 110), fillLevel=0.0)
        self.prob = pg.PlotCurveItem(pen=pg.mkPen((150, 230, 170), width=1))
        lane.addItem(self.spans)
        lane.addItem(self.prob)
        self.hide()

    def set_activity(self, result) -> None:
        """Show a :class:`~workbench.core.measure.vad.VadResult` (``None`` hides the lane)."""
        if result is None:
            self.prob.setData([], [])
            self.spans.setData([], [])
            self.hide()
            return
        probs = np.asarray(result.probabilities, np.float64)
        x = (np.arange(len(probs)) + 0.5) * HOP_S
        self.prob.setData(x, probs, skipFiniteCheck=True)
        # Spans as a step outline: 0 before each span, 1 across it, 0 after (filled down to 0).
        xs, ys = [0.0], [0.0]
        for a, b in result.spans:
            xs += [a, a, b, b]
            ys += [0.0, 1.0, 1.0, 0.0]
        xs.append(result.duration_s)
        ys.append(0.0)
        self.spans.setData(np.asarray(xs), np.asarray(ys))
        self.setToolTip(f"speech activity (Silero VAD, threshold {result.settings.threshold:g}, "
                        f"minimum pause {result.settings.min_pause_ms:g} ms): {len(result.spans)} "
                        f"spans, {result.speech_s:.1f} s of {result.duration_s:.1f} s")
        self.show()
