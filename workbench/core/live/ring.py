"""Preallocated sample rings addressed by absolute stream position (single producer, any readers).

The producer copies into the storage and only then publishes the new end position (``written``, one
attribute assignment: atomic under the GIL), so a reader that checks ``written`` first never sees a
half-written block. No lock is taken and nothing is allocated per call (``np.copyto`` into slices of
the preallocated storage), which is what the PortAudio callback needs.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    """``capacity`` float32 samples; sample ``p`` of the stream lives at ``p % capacity``.

    Attributes:
        written: absolute position one past the last published sample.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("a ring needs at least one sample")
        self.capacity = int(capacity)
        self.data = np.zeros(self.capacity, np.float32)
        self.written = 0

    def write(self, x: np.ndarray) -> None:
        """Append ``x`` ``(n,)`` (n <= capacity) at ``written`` and publish it."""
        self.write_at(self.written, x)

    def write_at(self, pos: int, x: np.ndarray) -> None:
        """Copy ``x`` to positions ``[pos, pos + n)`` and publish ``written = pos + n`` (``pos`` may skip
        ahead of ``written``: the skipped positions keep stale samples and must not be read)."""
        n = len(x)
        a = pos % self.capacity
        first = min(n, self.capacity - a)
        np.copyto(self.data[a:a + first], x[:first])
        if first < n:
            np.copyto(self.data[:n - first], x[first:])
        self.written = pos + n

    def read_into(self, pos: int, out: np.ndarray) -> None:
        """Copy positions ``[pos, pos + len(out))`` into ``out``; positions before 0 read as silence.

        The caller makes sure the range was published and not yet overwritten (``written - capacity <=
        pos`` and ``pos + len(out) <= written``)."""
        n = len(out)
        if pos < 0:
            k = min(-pos, n)
            out[:k] = 0.0
            if k == n:
                return
            out = out[k:]
            n -= k
            pos = 0
        a = pos % self.capacity
        first = min(n, self.capacity - a)
        np.copyto(out[:first], self.data[a:a + first])
        if first < n:
            np.copyto(out[first:], self.data[:n - first])

    def holds(self, pos: int, n: int) -> bool:
        """Whether ``[pos, pos + n)`` is published and still in the ring (negative positions count as held)."""
        end = pos + n
        return end <= self.written and (pos >= self.written - self.capacity or end <= 0)

    def snapshot(self, n: int) -> tuple[int, np.ndarray]:
        """``(start position, copy of the last n published samples)`` for a reader on another thread
        (display, latency measurement). The copy is checked against the producer afterwards: if the
        producer wrapped over part of it meanwhile, the overwritten head is dropped."""
        end = self.written
        n = max(0, min(n, end, self.capacity))
        out = np.empty(n, np.float32)
        self.read_into(end - n, out)
        overrun = self.written - self.capacity - (end - n)
        if overrun > 0:
            return end - n + overrun, out[overrun:]
        return end - n, out
