"""The time and frequency range the spectrogram panes show.

Every pane is linked to the magnitude pane, whose view box holds the range; the overview's visible-span
marker follows it and moves it when dragged. The limits keep the view inside the recording (plus one hop
either side) and no narrower than four hops or 1/400 of the frequency axis.
"""

from __future__ import annotations

import numpy as np


class PaneRange:
    """The shown range of a :class:`~workbench.gui.spectrogram.SpectrogramView`.

    Args:
        host: the widget; its ``master`` plot, ``overview``, ``source``, ``sample_rate``, ``cfg`` and ``scale``
            are read, and its ``frequencyRangeChanged`` is emitted.
        on_time_range: ``on_time_range(t0_s, t1_s)`` is called when the visible time span or the panes' size
            changed.
    """

    def __init__(self, host, on_time_range):
        self._host = host
        self._on_time_range = on_time_range
        self._applied_limits = None
        self._syncing_region = False
        host.overview.region.sigRegionChanged.connect(self._on_region_dragged)

    def _view_box(self):
        return self._host.master.getViewBox()

    def attach(self) -> None:
        """Follow the range of the (new) master pane; an old master is let go of first (:meth:`detach`)."""
        vb = self._view_box()
        vb.sigXRangeChanged.connect(self._on_view_changed)
        vb.sigResized.connect(self._on_view_changed)
        vb.sigYRangeChanged.connect(self._on_frequency_range_changed)
        # New axes: nothing of the limits applied to the old ones holds for them.
        self._applied_limits = None

    def detach(self) -> None:
        """The master pane is about to be deleted; it stops reporting range changes on the way out."""
        vb = self._view_box()
        for sig in (vb.sigXRangeChanged, vb.sigResized):
            try:
                sig.disconnect(self._on_view_changed)
            except (RuntimeError, TypeError):
                pass

    def _duration_s(self) -> float:
        host = self._host
        return host.source.frames / host.sample_rate if host.source is not None else 1.0

    def apply_limits(self) -> None:
        host = self._host
        duration = self._duration_s()
        y0, y1 = host.scale.y_limits()
        pad = host.cfg.hop / host.sample_rate
        limits = (duration, y0, y1, pad)
        if limits == self._applied_limits:
            return  # the same file and scale (another version of it): axes keep their drawings
        self._applied_limits = limits
        self._view_box().setLimits(xMin=-pad, xMax=duration + pad, yMin=y0, yMax=y1,
                                   minXRange=max(4 * host.cfg.hop / host.sample_rate, 1e-3),
                                   minYRange=(y1 - y0) / 400)
        host.overview.set_duration(duration)

    def fit(self) -> None:
        """The whole file, all frequencies (without a source: the empty view's unit span)."""
        self._view_box().setRange(xRange=(0, self._duration_s()), yRange=self._host.scale.y_limits(), padding=0)

    def fit_frequencies(self) -> None:
        self._view_box().setYRange(*self._host.scale.y_limits(), padding=0)

    def time_range(self) -> tuple[float, float]:
        return tuple(self._view_box().viewRange()[0])

    def set_time_range(self, t0: float, t1: float) -> None:
        self._view_box().setXRange(t0, t1, padding=0)

    def visible_region(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((t0, t1) seconds, (f0, f1) Hz)`` shown in the panes (clipped to the recording)."""
        host = self._host
        (t0, t1), (y0, y1) = self._view_box().viewRange()
        duration = self._duration_s()
        f0, f1 = (float(v) for v in host.scale.inv(np.array([y0, y1])))
        return ((max(0.0, t0), min(duration, t1)), (max(0.0, f0), min(host.sample_rate / 2, f1)))

    def set_visible_region(self, time_s: tuple[float, float], freq_hz: tuple[float, float] | None = None) -> None:
        """Show ``time_s`` (seconds) and, if given, ``freq_hz`` (Hz)."""
        vb = self._view_box()
        if freq_hz is None:
            vb.setXRange(*time_s, padding=0)
        else:
            y = tuple(float(v) for v in self._host.scale.fwd(np.array(freq_hz)))
            vb.setRange(xRange=time_s, yRange=y, padding=0)

    def pixels(self) -> int:
        """Width of the panes in device pixels, so a high-DPI screen gets its full resolution."""
        return max(64, int(self._view_box().width() * self._host.devicePixelRatioF()))

    def _on_view_changed(self, *args) -> None:
        t0, t1 = self.time_range()
        self._syncing_region = True
        self._host.overview.region.setRegion((t0, t1))
        self._syncing_region = False
        self._on_time_range(t0, t1)

    def _on_frequency_range_changed(self, *args) -> None:
        if self._host.source is not None:
            self._host.frequencyRangeChanged.emit(*self.visible_region()[1])

    def _on_region_dragged(self) -> None:
        if self._syncing_region:
            return
        t0, t1 = self._host.overview.region.getRegion()
        self.set_time_range(t0, t1)
