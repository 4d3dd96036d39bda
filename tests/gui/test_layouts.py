"""Layouts stay legible from 1366x768 up: no overlapping pane items, panes inside the window, tool bar
controls not pushed into the overflow, version buttons and metrics columns all visible."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, QRect, QRectF
from PySide6.QtWidgets import QToolBar

from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.gui.main_window import MainWindow
from workbench.gui.spectrogram import PANES

SIZES = [(1366, 768), (1500, 950), (1920, 1080)]
MODELS = ("deepfilternet3", "gtcrn", "nsnet2", "spectral_subtraction")


@pytest.fixture()
def five_versions(qtbot, settings, tmp_path):
    sr = 16000
    t = np.arange(5 * sr) / sr
    x = (0.2 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
    path = tmp_path / "speechlike.wav"
    sf.write(path, x, sr, subtype="PCM_16")
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    w.open_files([path])
    rec = w.document.recording
    for name in MODELS:
        rec.add_enhanced(x * 0.5, sr, EnhancerInfo(id=name, name=name, description="", sample_rate=sr,
                                                    causal=True, latency_samples=0))
    qtbot.waitUntil(lambda: len(w.transport.version_buttons) == 5, timeout=20000)
    yield w
    w.close()


def settle(qtbot, w, size, layout):
    w.layout_box.setCurrentIndex(w.layout_box.findData(layout))
    w.resize(*size)
    qtbot.waitUntil(lambda: w.size().width() == size[0] and w.size().height() == size[1], timeout=5000)
    qtbot.waitUntil(w.view.is_painted, timeout=20000)
    # Layout passes are queued: wait until the pane geometry stops changing.
    last = [None]

    def stable():
        now = tuple(tuple(w.view.panes[n].plot.sceneBoundingRect().getRect()) for n in PANES)
        done = now == last[0]
        last[0] = now
        return done
    qtbot.waitUntil(stable, timeout=5000)


def title_item(pane):
    """The pane's title label (its own layout cell; older builds kept it inside the plot item)."""
    return getattr(pane, "title", None) or pane.plot.titleLabel


def overlap(a: QRectF, b: QRectF) -> float:
    r = a.intersected(b)
    return max(r.width(), 0) * max(r.height(), 0)


@pytest.mark.parametrize("layout", ["grid", "row"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pane_items_do_not_overlap_and_stay_inside(qtbot, five_versions, size, layout):
    w = five_versions
    settle(qtbot, w, size, layout)
    view = w.view
    scene_view = QRectF(view.graphics.viewport().rect())
    rects = {}
    for name in PANES:
        pane = view.panes[name]
        # The view box and axes themselves: a plot item squeezed under its minimum lets them spill out of
        # its own rectangle (under a neighbour's colour bar).
        rects[f"{name}.plot"] = pane.plot.getViewBox().sceneBoundingRect()
        rects[f"{name}.left"] = pane.plot.getAxis("left").sceneBoundingRect()
        rects[f"{name}.bottom"] = pane.plot.getAxis("bottom").sceneBoundingRect()
        rects[f"{name}.bar"] = pane.bar.sceneBoundingRect()
        rects[f"{name}.title"] = title_item(pane).sceneBoundingRect()
    for key, r in rects.items():
        assert scene_view.adjusted(-1, -1, 1, 1).contains(r), f"{key} {r} outside {scene_view} at {size} {layout}"
    for (ka, a), (kb, b) in itertools.combinations(rects.items(), 2):
        same_pane = ka.split(".")[0] == kb.split(".")[0]
        parts = {ka.split(".")[1], kb.split(".")[1]}
        if same_pane and "bar" not in parts and parts != {"title", "plot"}:
            continue   # a plot's own axes reserve room for their end labels next to its view box and title
        assert overlap(a, b) <= 2.0, f"{ka} overlaps {kb} at {size} {layout}"
    # Titles fit their cells (no text running under a neighbour).
    for name in PANES:
        label = title_item(view.panes[name])
        assert label.item.boundingRect().width() <= label.sceneBoundingRect().width() + 1, name
    # Every plot keeps a usable drawing area.
    for name in PANES:
        vb = view.panes[name].plot.getViewBox().sceneBoundingRect()
        assert vb.width() >= 100 and vb.height() >= 80, (name, vb)
    # The overview's time labels are inside its widget.
    ov = view.overview
    axis = ov.getPlotItem().getAxis("bottom")
    axis_rect = ov.mapFromScene(axis.sceneBoundingRect()).boundingRect()
    assert QRect(QPoint(0, 0), ov.viewport().size()).adjusted(-1, -1, 1, 1).contains(axis_rect)
    assert axis_rect.height() >= 20


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_controls_and_five_version_buttons_fit(qtbot, five_versions, size):
    w = five_versions
    settle(qtbot, w, size, "grid")
    # No tool bar control is pushed into the overflow menu.
    for tb in w.findChildren(QToolBar):
        if not tb.isVisible():
            continue
        for action in tb.actions():
            widget = tb.widgetForAction(action)
            if widget is not None and action.isVisible():
                assert widget.isVisible(), f"{tb.windowTitle()}: a control is hidden in the overflow at {size}"
    assert w.mask_box.isVisible() and w.comp_box.isVisible()
    # All five version buttons are inside the bar, none scrolled off.
    bar = w.transport
    qtbot.waitUntil(lambda: bar.version_buttons[-1].geometry().right() <= bar.version_scroll.viewport().width(),
                    timeout=5000)
    assert not bar.version_scroll.horizontalScrollBar().isVisible() or \
        bar.version_scroll.horizontalScrollBar().maximum() == 0
    for b in bar.version_buttons:
        assert b.isVisible() and b.width() > 10


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_metrics_dock_keeps_its_width_and_scrolls_to_every_version_column(qtbot, five_versions, size):
    w = five_versions
    settle(qtbot, w, size, "grid")
    panes_before = w.view.width()
    w.metrics_dock.raise_()
    table = w.metrics_panel.table
    qtbot.waitUntil(lambda: table.columnCount() == 5, timeout=10000)
    w.metrics_panel.cancel()
    qtbot.wait(100)
    # The panes keep their room: the dock does not widen with the columns ...
    assert w.view.width() >= panes_before - 2
    # ... and every column is reached by scrolling the table sideways.
    for j in range(table.columnCount()):
        table.scrollTo(table.model().index(0, j))
        x = table.columnViewportPosition(j)
        assert 0 <= x and x + min(table.columnWidth(j), table.viewport().width()) <= table.viewport().width() + 1
