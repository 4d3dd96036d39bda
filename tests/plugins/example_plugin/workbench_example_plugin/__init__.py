"""Example workbench plugin: a causal first-order high-pass filter as a streaming enhancer.

The entry point returns ``(EnhancerInfo, factory)`` so the workbench can list the model without
building it. ``y[n] = a * (y[n-1] + x[n] - x[n-1])`` with ``a = rc / (rc + 1/fs)``, ``rc = 1/(2 pi fc)``.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream

RATE = 16000
CUTOFF_HZ = 100.0


def _info() -> EnhancerInfo:
    return EnhancerInfo(id="example-highpass", name="Example high-pass", sample_rate=RATE,
                        description=f"First-order high-pass at {CUTOFF_HZ:g} Hz (example plugin).",
                        causal=True, latency_samples=0, family="classical", processing="streaming",
                        block_samples=1, parameters=0)


class _Stream(EnhancerStream):
    def __init__(self):
        rc = 1 / (2 * np.pi * CUTOFF_HZ)
        a = rc / (rc + 1 / RATE)
        self.b, self.a = [a, -a], [1.0, -a]
        self.zi = np.zeros(1)

    def process(self, block):
        y, self.zi = lfilter(self.b, self.a, block, zi=self.zi)
        return y.astype(np.float32)


class HighPass(Enhancer):
    def __init__(self):
        self.info = _info()

    def new_stream(self):
        return _Stream()


def describe_and_build():
    """Entry point: ``(info, factory)``."""
    return _info(), HighPass
