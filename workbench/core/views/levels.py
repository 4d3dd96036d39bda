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
    m = float(np.percentile(values, 99.5)) if values.size else 1.0
    m = m if m > 0 else 1.0
    return -m, m
