"""One spectrogram pane: its plot, colour bar, crosshair, playhead, loop and selection, and the graphics item
that draws its tiles.

:class:`TileImagesItem` is the pane's image: one ``ImageItem`` per tile, placed in data coordinates (x:
seconds, y: frequency axis value) with ``ImageItem.setRect``. :class:`SpectrogramPane` puts it in a plot
whose view box (:class:`RegionViewBox`) turns Shift- and Ctrl-drags into selections. The widget that composes
four panes and the overview is :class:`~workbench.gui.spectrogram.SpectrogramView`; :func:`place_panes` lays
the panes out in it.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt

from ..core.views.tiles import Tile, TileKey
from .axes import FreqScale, FrequencyAxis, QuietLabelAxis, TimeAxis


def shift_held(ev) -> bool:
    return bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)


class RegionViewBox(pg.ViewBox):
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
        if ev.button() == Qt.MouseButton.LeftButton and shift_held(ev):
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


def loop_region() -> pg.LinearRegionItem:
    """The shaded loop span (hidden until set)."""
    region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(240, 200, 80, 55),
                                 pen=pg.mkPen((240, 200, 80, 200), width=1))
    region.setZValue(90)
    region.hide()
    return region


class TileImagesItem(pg.GraphicsObject):
    """A pane's spectrogram image, drawn as one ``ImageItem`` child per tile.

    Each tile's image is float32 ``(columns, rows)`` (col-major: x is time) mapped through the pane's levels
    and colour table, and placed at ``(x0_s, y0, width_s, height)`` in data coordinates. The item draws
    nothing itself; its data bounds are the union of its tiles (so the view box ranges over them as it did
    over the images themselves).
    """

    def __init__(self):
        super().__init__()
        self.setFlag(self.GraphicsItemFlag.ItemHasNoContents)
        self._images: dict[TileKey, pg.ImageItem] = {}

    # -- drawing -------------------------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt naming)
        return QRectF()

    def paint(self, painter, *args) -> None:
        pass

    def dataBounds(self, axis: int, frac: float = 1.0, orthoRange=None):  # noqa: N802 (pyqtgraph naming)
        if not self._images:
            return None
        rects = [im.mapRectToParent(im.boundingRect()) for im in self._images.values()]
        if axis == 0:
            return min(r.left() for r in rects), max(r.right() for r in rects)
        return min(r.top() for r in rects), max(r.bottom() for r in rects)

    # -- tiles ---------------------------------------------------------------------------------------------
    def set_tile(self, tile: Tile, image: np.ndarray, rect: tuple[float, float, float, float],
                 levels: tuple[float, float], lut: np.ndarray) -> None:
        """Show ``image`` for ``tile`` at ``rect`` = ``(x0_s, y0, width_s, height)`` (replacing what it showed)."""
        item = self._images.get(tile.key)
        if item is None:
            item = pg.ImageItem(axisOrder="col-major")
            item.setParentItem(self)
            self._images[tile.key] = item
        item.setImage(image, autoLevels=False, levels=levels, lut=lut)
        item.setRect(*rect)
        item.tile = tile
        self.informViewBoundsChanged()

    def keys(self):
        """Keys of the tiles shown (a live view)."""
        return self._images.keys()

    def __contains__(self, key: TileKey) -> bool:
        return key in self._images

    def tiles(self) -> list[Tile]:
        return [im.tile for im in self._images.values()]

    def images(self) -> list[pg.ImageItem]:
        return list(self._images.values())

    def set_levels(self, levels: tuple[float, float]) -> None:
        for item in self._images.values():
            item.setLevels(levels)

    def set_lookup_table(self, lut: np.ndarray) -> None:
        for item in self._images.values():
            item.setLookupTable(lut)

    def keep_only(self, keys) -> None:
        """Drop the images of tiles not in ``keys`` (other levels, or far away)."""
        for key in [k for k in self._images if k not in keys]:
            self._drop(key)
        self.informViewBoundsChanged()

    def clear(self) -> None:
        for key in list(self._images):
            self._drop(key)
        self.informViewBoundsChanged()

    def _drop(self, key: TileKey) -> None:
        item = self._images.pop(key)
        item.setParentItem(None)
        if item.scene() is not None:
            item.scene().removeItem(item)


class SpectrogramPane:
    """One plot with its colour bar, crosshair, playhead, loop, time-frequency selection and tile images.

    Args:
        name: the pane slot (``magnitude``, ``phase``, ``real``, ``imag``).
        scale: the frequency axis scale.
        on_region, on_box: see :class:`RegionViewBox`.
        horizontal_bar: the colour bar under the plot (side-by-side layout) instead of beside it.
    """

    def __init__(self, name: str, scale: FreqScale, on_region=None, horizontal_bar: bool = False, on_box=None):
        self.name = name
        # The title is its own layout cell spanning plot and colour bar, so a bar never covers it.
        self.title = pg.LabelItem("", color="#d8dde6", size="10pt")
        self.bar_caption = ""   # plain text of the colour bar's label (unit, masking)
        # What the title and the colour bar's label were last set to (setting either again costs a relayout).
        self.shown_title: str | None = None
        self.shown_caption: str | None = None
        self.axis = FrequencyAxis(scale)
        # No context menu (the window has its own controls): not building one saves start-up time.
        self.plot = pg.PlotItem(axisItems={"left": self.axis, "bottom": TimeAxis(), "top": QuietLabelAxis("top"),
                                           "right": QuietLabelAxis("right")},
                                viewBox=RegionViewBox(on_region or (lambda a, b, done: None), on_box,
                                                      enableMenu=False))
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
        self.loop = loop_region()
        self.plot.addItem(self.loop, ignoreBounds=True)
        # The time-frequency selection (Ctrl + drag), in view coordinates.
        self.box = pg.PlotCurveItem(pen=pg.mkPen((120, 200, 255), width=1.5))
        self.box.setZValue(95)
        self.box.hide()
        self.plot.addItem(self.box, ignoreBounds=True)
        self.tiles = TileImagesItem()
        self.tiles.setZValue(10)
        self.plot.addItem(self.tiles)

    # Only what changed is set again: a new text re-lays the title out and redraws the colour bar's axis (tens
    # of milliseconds for all panes, e.g. when a new version arrives).
    def show_title(self, title: str) -> None:
        if self.shown_title != title:
            self.title.setText(title, color="#d8dde6", size="10pt")
            self.shown_title = title

    def show_caption(self, caption: str) -> None:
        """Label the colour bar with ``caption`` (plain text: unit, masking); an empty one hides the label."""
        self.bar_caption = caption
        if self.shown_caption != caption:
            self.shown_caption = caption
            if caption:
                self.bar.axis.setLabel(html.escape(caption))   # the label is rich text ("<")
            else:
                self.bar.axis.showLabel(False)

    def caption(self) -> str:
        """The colour bar's label as shown (empty while hidden)."""
        return self.bar_caption if self.bar.axis.label.isVisible() else ""

    def set_crosshair(self, x: float | None, y: float = 0.0) -> None:
        """Show the crosshair at view coordinates ``(x, y)``; ``None`` hides it."""
        for line, pos in ((self.vline, x), (self.hline, y)):
            if x is None:
                line.hide()
            else:
                line.setPos(pos)
                line.show()


def place_panes(graphics: pg.GraphicsLayoutWidget, panes: dict[str, SpectrogramPane], row_layout: bool,
                axis_width: int) -> None:
    """Lay ``panes`` out in ``graphics``: side by side (``row_layout``, colour bars under the plots) or two by
    two (colour bars beside the plots), titles above, plots sharing the width equally, frequency axes
    ``axis_width`` pixels wide; every pane is X- and Y-linked to the first."""
    grid = graphics.ci.layout
    if row_layout:
        for col, pane in enumerate(panes.values()):
            graphics.addItem(pane.title, row=0, col=col)
            graphics.addItem(pane.plot, row=1, col=col)
            graphics.addItem(pane.bar, row=2, col=col)
            grid.setColumnStretchFactor(col, 1)
        for row, stretch in enumerate((0, 1, 0, 0)):
            grid.setRowStretchFactor(row, stretch)
    else:
        for i, pane in enumerate(panes.values()):
            row, col = divmod(i, 2)
            graphics.addItem(pane.title, row=2 * row, col=2 * col, colspan=2)
            graphics.addItem(pane.plot, row=2 * row + 1, col=2 * col)
            graphics.addItem(pane.bar, row=2 * row + 1, col=2 * col + 1)
        for col in range(2):
            # Colour bars keep their fixed width.
            grid.setColumnStretchFactor(2 * col, 1)
            grid.setColumnStretchFactor(2 * col + 1, 0)
        for row in range(2):
            grid.setRowStretchFactor(2 * row, 0)
            grid.setRowStretchFactor(2 * row + 1, 1)
    master = next(iter(panes.values())).plot
    for pane in panes.values():
        pane.axis.setWidth(axis_width)
        pane.plot.setMinimumWidth(120)
        pane.plot.setPreferredWidth(200)
        if pane.plot is not master:
            pane.plot.setXLink(master)
            pane.plot.setYLink(master)
