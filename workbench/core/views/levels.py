"""Colour ranges the panes choose on their own.

Views without fixed levels (compressed real and imaginary parts, differences) take a symmetric range
``(-m, m)`` from what is shown: ``m`` is the 99.5th percentile of ``|values|``. Qt-free.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: Most values the automatic symmetric range looks at (an evenly strided sample of the shown images): the
#: 99.5th percentile of a few hundred thousand values is as good a colour range as of millions, and the
#: exact one took ~10 ms per pane on the GUI thread each time a new version was shown.
LEVEL_SAMPLE_VALUES = 1 << 18


def symmetric_levels(arrays: Iterable[np.ndarray], max_values: int = LEVEL_SAMPLE_VALUES) -> tuple[float, float]:
    """``(-m, m)`` with ``m`` the 99.5th percentile of the finite ``|values|`` of ``arrays`` (sampled evenly
    down to about ``max_values``); ``(-1, 1)`` when nothing finite and non-zero is there."""
    arrays = list(arrays)
    total = sum(int(np.size(a)) for a in arrays)
    step = max(1, -(-total // max_values))
    values = np.concatenate([np.abs(np.ravel(a)[::step]) for a in arrays]) if arrays else np.zeros(0)
    values = values[np.isfinite(values)]
    m = _percentile(values, 99.5) if values.size else 1.0
    m = m if m > 0 else 1.0
    return -m, m


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation between the two nearest ranks) by a partial sort
    around those ranks: the same number, without ``np.percentile``'s general machinery, whose first call
    imports ``numpy.ma`` and cost the first painted spectrogram tens of milliseconds."""
    pos = (values.size - 1) * q / 100.0
    lo = int(np.floor(pos))
    hi = min(lo + 1, values.size - 1)
    part = np.partition(values, [lo, hi])
    a, b = float(part[lo]), float(part[hi])
    return a + (pos - lo) * (b - a)
