"""What a person meets at the window's edges: a first window that fits the screen, versions that can be
told apart and reached, version keys that work after any panel, an empty state that really is empty,
readable axes and charts, and small consistency rules (repair box, ties, Stop, residuals)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage, QPainter, QScreen
from PySide6.QtWidgets import QApplication, QTabBar

from workbench.core.audio.playback import PlaybackEngine
from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.gui.main_window import MainWindow
from workbench.gui.spectrogram import PANES

#: A 1366x768 screen less a 40-pixel task bar.
SMALL_SCREEN = QRect(0, 0, 1366, 728)


def _info(name: str, sr: int = 16000) -> EnhancerInfo:
    return EnhancerInfo(id=name, name=name, description="", sample_rate=sr, causal=True, latency_samples=0)


def _speech(tmp_path, seconds: float, shared_data, name="take.wav"):
    x, sr = sf.read(shared_data / "dns3/0015_noisy.wav", dtype="float32")
    y = np.resize(x, int(seconds * sr)).astype(np.float32)
    path = tmp_path / name
    sf.write(path, y, sr, subtype="PCM_16")
    return path, y, sr


@pytest.fixture()
def small_screen(monkeypatch):
    monkeypatch.setattr(QScreen, "availableGeometry", lambda self: QRect(SMALL_SCREEN))


def _inside(outer: QRect, widget, window) -> bool:
    top_left = widget.mapTo(window, widget.rect().topLeft())
    return outer.contains(QRect(top_left, widget.size()))


def test_first_window_fits_a_1366x768_screen_and_every_control_is_reachable(qtbot, settings, small_screen):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.width() <= SMALL_SCREEN.width() and w.height() <= SMALL_SCREEN.height() - 20, w.size()
    frame = w.frameGeometry()
    assert SMALL_SCREEN.contains(QRect(frame.topLeft(), w.size())), frame
    client = QRect(0, 0, w.width(), w.height())
    for widget in (w.view.overview, w.transport.play_button, w.transport.device_box, w.statusBar(),
                   w.view.graphics):
        assert widget.isVisible() and _inside(client, widget, w), widget
    # The tabs of the docks tabified on the right (Models, Edit, Metrics, Phase lab).
    tabs = [t for t in w.findChildren(QTabBar) if t.parent() is w and t.isVisible() and t.count() >= 2]
    assert tabs and all(_inside(client, t, w) for t in tabs)
    w.close()


def test_saved_geometry_from_a_larger_screen_is_shrunk_to_this_one(qtbot, settings, small_screen):
    from PySide6.QtCore import QSize
    settings.setValue("window/size", QSize(1900, 1050))
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    assert w.width() <= SMALL_SCREEN.width() and w.height() <= SMALL_SCREEN.height()
    w.close()


def _drawn_tick_labels(axis) -> list[tuple[QRect, str]]:
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect.toRect(), text) for rect, _flags, text in specs[2]]


@pytest.mark.parametrize("length_px", [160, 200, 250, 330, 900])
def test_time_axis_labels_never_run_together(qtbot, length_px):
    import pyqtgraph as pg

    from workbench.gui.axes import TimeAxis
    plot = pg.PlotWidget(axisItems={"bottom": TimeAxis()})
    qtbot.addWidget(plot)
    plot.resize(length_px + 60, 200)
    plot.setXRange(0, 12.9, padding=0)
    plot.show()
    qtbot.waitExposed(plot)
    axis = plot.getPlotItem().getAxis("bottom")
    labels = sorted(_drawn_tick_labels(axis), key=lambda r: r[0].left())
    assert len(labels) >= 2, labels
    for (a, ta), (b, tb) in zip(labels, labels[1:]):
        assert b.left() - a.right() >= 8, f"{ta!r} and {tb!r} run together at {length_px} px"
