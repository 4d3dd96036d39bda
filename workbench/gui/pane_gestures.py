"""What the mouse does on the spectrogram panes and the overview.

A plain left click seeks; Shift + drag selects the loop (on a pane or the overview); Ctrl + drag outlines a
time-frequency box on every pane (the region spectral repair touches); the rubber-band mode zooms to a
dragged rectangle; moving over a pane places the crosshair in all of them and reads the values there.
Times and frequencies are clipped to the recording before they are reported.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt


class PaneGestures:
    """Turns mouse input on the panes and the overview of a :class:`~workbench.gui.spectrogram.SpectrogramView`
    into its signals (``seekRequested``, ``loopSelected``, ``boxSelected``, ``cursorMoved``, ``readoutChanged``).

    Args:
        host: the widget; its ``source``, ``sample_rate``, ``scale``, ``panes``, ``overview`` and
            :meth:`~workbench.gui.spectrogram.SpectrogramView.readout` are used.
    """

    def __init__(self, host):
        self._host = host
        self._mouse_proxy = None

    def connect_scenes(self, graphics: pg.GraphicsLayoutWidget, overview: pg.PlotWidget) -> None:
        """Listen to mouse moves over the panes and clicks on the panes and the overview."""
        self._mouse_proxy = pg.SignalProxy(graphics.scene().sigMouseMoved, rateLimit=60, slot=self.on_mouse)
        graphics.scene().sigMouseClicked.connect(self.on_click)
        overview.scene().sigMouseClicked.connect(lambda ev: self.on_click(ev, overview=True))

    def _duration_s(self) -> float:
        host = self._host
        return host.source.frames / host.sample_rate

    def on_region_selecting(self, a: float, b: float, finished: bool) -> None:
        """Shift + drag on a pane or the overview: shade the loop; at the release emit ``loopSelected``."""
        host = self._host
        if host.source is None:
            return
        duration = self._duration_s()
        a, b = max(0.0, min(a, duration)), max(0.0, min(b, duration))
        host.set_loop_region(a, b)
        if finished:
            host.loopSelected.emit(a, b)

    def on_box_selecting(self, viewbox, x0: float, x1: float, y0: float, y1: float, finished: bool) -> None:
        """Ctrl + drag on a pane: draw the rectangle there; at the release emit ``boxSelected(t0_s, t1_s,
        f0_hz, f1_hz)`` (the frequency axis may be log or mel: converted back to Hz)."""
        host = self._host
        if host.source is None:
            return
        duration = self._duration_s()
        x0, x1 = max(0.0, min(x0, duration)), max(0.0, min(x1, duration))
        # The region to repair is one time-frequency box whatever the pane dragged on: every pane shares
        # the time and frequency axes, so each outlines it (the phase and real/imaginary views show what
        # the repair will touch as well as the magnitude does).
        for pane in host.panes.values():
            pane.box.setData([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
            pane.box.show()
        if finished:
            f0, f1 = float(host.scale.inv(y0)), float(host.scale.inv(y1))
            nyquist = host.sample_rate / 2
            host.boxSelected.emit(x0, x1, max(0.0, min(f0, nyquist)), max(0.0, min(f1, nyquist)))

    def clear_box(self) -> None:
        for pane in self._host.panes.values():
            pane.box.hide()

    def on_click(self, ev, overview: bool = False) -> None:
        """A plain left click (no drag, no modifier) on a pane or the overview seeks there."""
        host = self._host
        if (host.source is None or ev.button() != Qt.MouseButton.LeftButton or ev.double()
                or ev.modifiers() != Qt.KeyboardModifier.NoModifier):
            return
        pos = ev.scenePos()
        boxes = ([host.overview.getPlotItem().getViewBox()] if overview
                 else [p.plot.getViewBox() for p in host.panes.values()])
        for vb in boxes:
            if vb.sceneBoundingRect().contains(pos):
                t = vb.mapSceneToView(pos).x()
                host.seekRequested.emit(float(min(max(t, 0.0), self._duration_s())))
                return

    def set_rubber_band(self, on: bool) -> None:
        """Left drags on the panes zoom to a rectangle (``True``) or pan (``False``)."""
        mode = pg.ViewBox.RectMode if on else pg.ViewBox.PanMode
        for pane in self._host.panes.values():
            pane.plot.getViewBox().setMouseMode(mode)

    def on_mouse(self, event) -> None:
        """The mouse moved over the panes' scene (``event[0]``: scene position)."""
        pos = event[0]
        for pane in self._host.panes.values():
            vb = pane.plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                p = vb.mapSceneToView(pos)
                self.show_crosshair(p.x(), float(self._host.scale.inv(p.y())))
                return

    def hide_crosshair(self) -> None:
        for pane in self._host.panes.values():
            pane.set_crosshair(None)

    def crosshair_visible(self) -> bool:
        return self._host.master is not None and self._host.panes["magnitude"].vline.isVisible()

    def show_crosshair(self, time_s: float, freq_hz: float) -> dict:
        """Place the crosshair at ``(time_s, freq_hz)`` in every pane and emit the readout."""
        host = self._host
        if host.source is None:
            return {}
        y = float(host.scale.fwd(freq_hz))
        for pane in host.panes.values():
            pane.set_crosshair(time_s, y)
        values = host.readout(time_s, freq_hz)
        if values:
            host.cursorMoved.emit(time_s)
            host.readoutChanged.emit(values)
        return values
