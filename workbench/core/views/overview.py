"""The overview's waveform: a min/max envelope of the whole file, computed progressively and ready to draw.

:func:`~workbench.core.views.tiles.waveform_envelope` fills the buckets block by block; :func:`envelope_curves`
turns its progress into :class:`EnvelopeCurves` at a pace the GUI thread can draw, so the GUI only hands
finished arrays to its plot items. Qt-free.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..audio.audio_io import AudioSource
from .tiles import waveform_envelope

#: Buckets of the overview envelope: more than the pixels of any overview, few enough to draw in ms.
OVERVIEW_BUCKETS = 4000
#: Shortest time between two partial envelopes handed to the GUI (s).
PARTIAL_EVERY_S = 0.15


@dataclass(frozen=True)
class EnvelopeCurves:
    """The overview's curves, ready to hand to pyqtgraph: ``x`` bucket centres (s, ``(filled,)``), their
    ``mins``/``maxs`` (float32), the min-max band as segment pairs (``band_x = repeat(x, 2)``,
    ``band_y = [min0, max0, min1, max1, ...]``) and the y half-range ``y_limit`` (1.1 × peak, clipped to
    [1e-3, 1]; 1 until complete). ``complete`` when ``filled == buckets``."""
    x: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray
    band_x: np.ndarray
    band_y: np.ndarray
    y_limit: float
    complete: bool

    @classmethod
    def from_envelope(cls, filled: int, mins: np.ndarray, maxs: np.ndarray, frames: int,
                      sample_rate: int) -> "EnvelopeCurves":
        n = len(mins)
        x = (np.arange(filled) + 0.5) * (frames / max(n, 1)) / sample_rate
        lo, hi = mins[:filled].copy(), maxs[:filled].copy()
        band = np.empty(2 * filled, np.float64)
        band[0::2] = lo
        band[1::2] = hi
        complete = filled >= n
        peak = float(max(np.abs(lo).max(initial=0), np.abs(hi).max(initial=0)))
        y_limit = min(1.0, max(peak * 1.1, 1e-3)) if complete else 1.0
        return cls(x, lo, hi, np.repeat(x, 2), band, y_limit, complete)

    @classmethod
    def partial(cls, x: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> "EnvelopeCurves":
        """Curves of buckets centred at ``x`` (s) with their ``mins``/``maxs``, not yet complete."""
        band = np.empty(2 * len(x), np.float64)
        band[0::2] = mins
        band[1::2] = maxs
        return cls(x, mins, maxs, np.repeat(x, 2), band, 1.0, False)

    @classmethod
    def empty(cls) -> "EnvelopeCurves":
        return cls.partial(np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.float32))


def envelope_curves(source: AudioSource, channel: int, buckets: int = OVERVIEW_BUCKETS,
                    should_stop: Callable[[], bool] = lambda: False,
                    every_s: float = PARTIAL_EVERY_S) -> Iterator[EnvelopeCurves]:
    """The envelope of ``channel`` as :class:`EnvelopeCurves`, progressively: at most every ``every_s``
    seconds while it fills (so a drawing thread is not flooded) and once complete."""
    last = 0.0
    for filled, mins, maxs in waveform_envelope(source, channel, buckets, should_stop=should_stop):
        now = time.perf_counter()
        if filled >= len(mins) or now - last > every_s:
            last = now
            yield EnvelopeCurves.from_envelope(filled, mins, maxs, source.frames, source.sample_rate)
