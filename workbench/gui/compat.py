"""Work-arounds for known binding bugs, applied once before any widget is created.

PySide6 6.12.0 on CPython 3.11 drops one reference to ``None``/``True``/``False`` too many each time Qt
calls a Python override of a virtual method (``QGraphicsItem.paint`` and friends): after a few
thousand repaints the interpreter aborts with ``none_dealloc`` / ``bool_dealloc``. CPython 3.12+ makes
these singletons immortal, which hides the bug. On older interpreters with that binding we give the
three singletons a reference count so large (2**40) that the leak can never bring it to zero, which is
what 3.12 does by design. Nothing else is touched. Pinning ``PySide6-Essentials<6.12`` avoids the need.
"""

from __future__ import annotations

import ctypes
import sys

_applied = False


def binding_needs_guard() -> bool:
    import PySide6

    version = tuple(int(p) for p in PySide6.__version__.split(".")[:2])
    return sys.version_info < (3, 12) and version >= (6, 12)


def apply() -> bool:
    """Apply the guard when the running binding needs it; returns whether it was applied."""
    global _applied
    if _applied or not binding_needs_guard():
        return _applied
    if sys.implementation.name != "cpython":
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object header.
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    _applied = True
    return True


_collector = None


def collect_garbage_on_gui_thread():
    """Run Python's cyclic garbage collector only from the GUI thread's event loop.

    Left automatic, a collection can start on whichever thread happens to allocate — a worker drawing a
    figure, say — and destroy Qt objects of a closed window there. Qt then takes its object mutex on the
    worker while the GUI thread, deleting widgets, waits on that mutex holding the interpreter lock: the
    worker waits for the lock, and the window freezes for good (seen in figure export). pyqtgraph's
    ``GarbageCollector`` disables automatic collection and collects on a one-second timer of the GUI
    thread instead. Call once the QApplication exists; later calls return the same collector."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=1.0)
    return _collector
