"""Axis helpers for the spectrogram panes: frequency scales (linear, log, mel) and tick labelling.

The panes place images in data coordinates: x is time in seconds, y is the frequency *axis value*
``fwd(f)`` of the chosen scale (Hz itself for linear). Non-linear scales resample image rows onto a
uniform grid in axis units, and the axis labels ticks back in kHz.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics

from ..core.views.registry import FREQ_SCALES, FreqScale  # noqa: F401 (re-exported: the scales live in core)

_NICE_HZ = (20, 50, 100, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 7000, 10000, 15000, 20000)


def format_hz(hz: float) -> str:
    """Tick text in kHz: ``0.5``, ``1``, ``2.5``, ``16``."""
    k = hz / 1000.0
    if abs(k) >= 10:
        return f"{k:.0f}"
    return f"{k:.3g}"


class QuietLabelAxis(pg.AxisItem):
    """An axis that sets its label's rich text only when the text changes. pyqtgraph sets it again on every
    range change and style call, almost always to the same text; each ``setHtml`` lays the text out anew,
    which was the largest single cost of building the panes (hundreds of calls) and is paid again per pan."""

    _label_html: str | None = None

    def _updateLabel(self) -> None:  # noqa: N802 (pyqtgraph naming)
        text = self.labelString()
        if text != self._label_html:
            self._label_html = text
            self.label.setHtml(text)
        self._adjustSize()
        self.picture = None
        self.update()


class FrequencyAxis(QuietLabelAxis):
    """Left axis labelled in kHz whatever the frequency scale."""

    def __init__(self, scale: FreqScale, **kwargs):
        super().__init__("left", **kwargs)
        self.freq_scale = scale
        self.enableAutoSIPrefix(False)
        self.setLabel("Frequency (kHz)")

    def set_scale(self, scale: FreqScale) -> None:
        old = self.freq_scale
        same = (old.kind, old.sample_rate, old.nfft) == (scale.kind, scale.sample_rate, scale.nfft)
        self.freq_scale = scale
        if not same:  # an unchanged scale keeps the cached ticks (no redraw when only the version changes)
            self.picture = None
            self.update()

    def tickValues(self, minVal, maxVal, size):
        if self.freq_scale.kind == "linear":
            return super().tickValues(minVal, maxVal, size)
        f_lo, f_hi = float(self.freq_scale.inv(minVal)), float(self.freq_scale.inv(maxVal))
        major = [float(self.freq_scale.fwd(f)) for f in _NICE_HZ if f_lo <= f <= f_hi]
        # Keep labels at least 18 px apart (log/mel crowd the low end).
        span = max(maxVal - minVal, 1e-12)
        kept: list[float] = []
        for v in major:
            if not kept or (v - kept[-1]) / span * size >= 18:
                kept.append(v)
        major = kept
        return [(1.0, [float(v) for v in major])]

    def tickStrings(self, values, scale, spacing):
        if self.freq_scale.kind == "linear" and spacing > 0:
            # Enough decimals (in kHz) that neighbouring ticks never read the same when zoomed in.
            decimals = max(0, int(np.ceil(-np.log10(spacing / 1000.0) - 1e-9)))
            return [f"{v / 1000.0:.{decimals}f}" for v in values]
        return [format_hz(float(self.freq_scale.inv(v))) for v in values]


class TimeAxis(QuietLabelAxis):
    """Bottom axis in seconds; spans over 5 minutes tick on whole minutes and read ``m:ss``/``h:mm:ss``."""

    _CLOCK_STEPS = (30, 60, 120, 300, 600, 900, 1200, 1800, 3600)

    #: Free space between two tick labels (px).
    LABEL_GAP_PX = 14

    def __init__(self, **kwargs):
        super().__init__("bottom", **kwargs)
        self.enableAutoSIPrefix(False)
        self._clock = False
        self.setLabel("Time (s)")
        # Only the major ticks carry labels: labelled minor ticks ran together ("9 101112").
        self.setStyle(maxTextLevel=0)

    def label_width_px(self, text: str) -> int:
        font = self.style.get("tickFont") or self.font()
        return QFontMetrics(font).horizontalAdvance(text)

    def seconds_spacing(self, min_s: float, max_s: float, size_px: float) -> tuple[float, float]:
        """``(major, minor)`` tick spacing in seconds: the smallest 1-2-5 step whose labels (as wide as the
        widest one this step would print) keep :attr:`LABEL_GAP_PX` between them on ``size_px`` pixels."""
        span = max_s - min_s
        if span <= 0 or size_px <= 0:
            return 1.0, 0.5
        exp = int(np.floor(np.log10(span))) - 4
        while True:
            for mantissa in (1, 2, 5):
                step = mantissa * 10.0 ** exp
                labels = self.tickStrings([min_s, max_s, np.floor(max_s / step) * step], 1.0, step)
                need = max(self.label_width_px(t) for t in labels) + self.LABEL_GAP_PX
                if step / span * size_px >= need:
                    return step, step / (2 if mantissa == 5 else 5 if mantissa == 1 else 4)
            exp += 1

    def tickSpacing(self, minVal, maxVal, size):
        span = maxVal - minVal
        clock = span > 300
        if clock != self._clock:
            self._clock = clock
            self.setLabel("Time (h:mm:ss)" if clock else "Time (s)")
        if not clock:
            major, minor = self.seconds_spacing(minVal, maxVal, size)
            return [(major, 0), (minor, 0)]
        wanted = max(2, int(size / 70))
        major = next((s for s in self._CLOCK_STEPS if span / s <= wanted), self._CLOCK_STEPS[-1])
        minor = major / 5 if major >= 300 else major / 2
        return [(major, 0), (minor, 0)]

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            if self._clock:
                m, s = divmod(int(round(v)), 60)
                h, m = divmod(m, 60)
                out.append(f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}")
            elif spacing >= 1:
                out.append(f"{v:.0f}")
            else:
                decimals = min(4, max(1, int(np.ceil(-np.log10(spacing)))))
                out.append(f"{v:.{decimals}f}")
        return out
