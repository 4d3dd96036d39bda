"""Window geometry that fits the screen it opens on.

A fresh start (or a saved geometry from a larger monitor) must never place the overview, the transport
bar, the status bar or the dock tabs beyond the screen's usable area (without the task bar / dock)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QGuiApplication

#: The size a fresh window asks for on a large screen (px, client area).
PREFERRED_SIZE = QSize(1500, 950)
#: Room left for the window manager's title bar and borders when the frame is not known yet (px).
FRAME_ALLOWANCE = QSize(16, 40)


def fitted_size(available: QRect, preferred: QSize = PREFERRED_SIZE, frame: QSize = FRAME_ALLOWANCE) -> QSize:
    """The client size a window should take on a screen whose usable area is ``available``: ``preferred``
    where it fits, else the usable area less the window frame."""
    return QSize(max(1, min(preferred.width(), available.width() - frame.width())),
                 max(1, min(preferred.height(), available.height() - frame.height())))


def available_area(widget) -> QRect:
    """Usable area of the screen ``widget`` is on (the primary screen before it is shown)."""
    screen = widget.screen() if widget is not None else None
    screen = screen or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, PREFERRED_SIZE.width(),
                                                                       PREFERRED_SIZE.height())


def fit_window(window, preferred: QSize | None = None) -> None:
    """Resize ``window`` to ``preferred`` (default: its current size) as far as its screen allows and move
    it so that it lies inside the usable area."""
    area = available_area(window)
    want = fitted_size(area, preferred if preferred is not None else window.size())
    if want != window.size():
        window.resize(want)
    geo = window.frameGeometry()
    x = min(max(geo.x(), area.x()), max(area.x(), area.right() + 1 - geo.width()))
    y = min(max(geo.y(), area.y()), max(area.y(), area.bottom() + 1 - geo.height()))
    if (x, y) != (geo.x(), geo.y()):
        window.move(x, y)
