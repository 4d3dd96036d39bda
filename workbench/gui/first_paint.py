"""Work that waits for the window's first painted spectrogram.

Preparing playback for the first time imports the loudness libraries (scipy.signal, pyloudnorm): a few
tenths of a second of module loading on a worker thread that holds the interpreter lock most of the time.
Started while a freshly opened file's first tiles were being computed and drawn, on a 2-core machine it
delayed the first painted panes by about as much. A view that is about to paint its first tiles calls
:func:`hold`; work queued with :func:`after_first_paint` runs once every holder has called :func:`release`
(or after :data:`MAX_WAIT_MS` at the latest). Only the process's first paint is waited for; after it,
queued work runs at once.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer

#: Longest wait for the first paint (ms): work is never held back longer than this.
MAX_WAIT_MS = 3000

_holders: set[int] = set()
_waiting: list[Callable[[], None]] = []
_state = {"done": False, "timer": None}


def hold(owner: object) -> None:
    """``owner`` is about to paint for the first time; queued work waits for its :func:`release`."""
    if _state["done"]:
        return
    _holders.add(id(owner))
    if _state["timer"] is None:
        timer = QTimer(singleShot=True, interval=MAX_WAIT_MS)
        timer.timeout.connect(_finish)
        timer.start()
        _state["timer"] = timer


def release(owner: object) -> None:
    """``owner`` has painted (or gave up painting). Queued work runs from the next turn of the event loop,
    after what the release's caller is doing (e.g. painting the tiles it has just put in the scene)."""
    _holders.discard(id(owner))
    if not _holders and _state["timer"] is not None and not _state["done"]:
        _state["timer"].start(0)   # the limit's timer, fired at once


def after_first_paint(fn: Callable[[], None]) -> None:
    """Run ``fn`` (on the GUI thread) once the first paint is done; at once if it is, or if nothing paints."""
    if _state["done"] or _state["timer"] is None:   # painted already, or nothing ever held
        fn()
    else:
        _waiting.append(fn)


def waiting() -> bool:
    """True while queued work waits for a first paint."""
    return bool(_waiting)


def _finish() -> None:
    if _state["done"]:
        return
    _state["done"] = True
    _holders.clear()
    timer = _state["timer"]
    if timer is not None:
        timer.stop()
    queued, _waiting[:] = list(_waiting), []
    for fn in queued:
        fn()
