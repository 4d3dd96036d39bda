"""Delay between two signals by cross-correlation: one search for metric alignment, the phase lab, the
probes and the engine's measurement of a model's undeclared latency."""

from __future__ import annotations

import math

import numpy as np


def estimate_lag(reference: np.ndarray, estimate: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (samples) maximising the cross-correlation ``Σ_n s[n]·ŝ[n+lag]`` for ``|lag| <= max_lag``.

    Uses FFT correlation (``scipy.signal.correlate(method="fft")``). Returns ``(lag, normalised peak)``:
    positive when ``estimate`` is late, and the peak over ``sqrt(Σ s² Σ ŝ²)`` (NaN for silence or no data).
    """
    import scipy.signal  # local: imported on first use, not at start-up
    s = np.asarray(reference, np.float64)
    e = np.asarray(estimate, np.float64)
    if len(s) == 0 or len(e) == 0:
        return 0, float("nan")
    xc = scipy.signal.correlate(e, s, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(len(e), len(s), mode="full")
    keep = np.abs(lags) <= max_lag
    xc, lags = xc[keep], lags[keep]
    # Peak of the magnitude so a polarity-inverted output is still aligned (its SI-SDR will show it).
    i = int(np.argmax(np.abs(xc)))
    denom = math.sqrt(float(np.dot(s, s)) * float(np.dot(e, e)))
    return int(lags[i]), (float(xc[i]) / denom if denom > 0 else float("nan"))
