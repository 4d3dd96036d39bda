"""The scrolling spectrogram of a live signal, computed for display from a ring snapshot (no Qt).

A display timer calls :meth:`ScrollingSpectrogram.update`: it copies the samples the ring published since
the last call (:meth:`~workbench.core.live.ring.SampleRing.read_into` of published positions: no lock,
the audio callback is never waited for), cuts them into STFT frames of the analysis settings and keeps the
last ``columns`` complex frames. :meth:`image` derives any single-signal view of the registry (magnitude,
phase, real, imaginary, instantaneous frequency, group delay) from them, so the live panes show exactly
what the file panes show.
"""

from __future__ import annotations

import numpy as np

from ..views.registry import FLOOR_DB, VIEWS, ViewInput, compute_view, view
from ..views.stft import StftConfig, window_array
from .ring import SampleRing

def live_views() -> list[str]:
    """The registry's views of one signal (difference and mask views need a second one)."""
    return [name for name, spec in VIEWS.items() if not spec.needs_partner]


class ScrollingSpectrogram:
    """The last ``columns`` STFT frames of a ring's signal.

    Attributes:
        spec: complex64 ``(columns, bins)``, oldest first; frames not yet seen are zero.
        frame_pos: ring position of the next frame's first sample.
    """

    def __init__(self, ring: SampleRing, sample_rate: int, cfg: StftConfig | None = None, columns: int = 300):
        self.ring = ring
        self.rate = int(sample_rate)
        self.cfg = cfg or StftConfig(n_fft=1024 if sample_rate > 24000 else 512,
                                     hop=max(1, int(sample_rate) // 100), window="hann", center=False)
        self.window = window_array(self.cfg).astype(np.float32)
        self.columns = int(columns)
        self.spec = np.zeros((self.columns, self.cfg.nfft // 2 + 1), np.complex64)
        self.frames_seen = 0
        self.frame_pos = max(0, ring.written - self.cfg.n_fft)

    @property
    def duration_s(self) -> float:
        return self.columns * self.cfg.hop / self.rate

    def update(self, max_frames: int | None = None) -> int:
        """Add the frames that became complete since the last call; returns how many were added. When the
        display fell behind by more than the ring or the image holds, it jumps to the present."""
        cfg = self.cfg
        end = self.ring.written
        oldest = end - self.ring.capacity + cfg.n_fft
        if self.frame_pos < oldest or (end - self.frame_pos) // cfg.hop > self.columns:
            self.frame_pos = max(0, end - cfg.n_fft - (self.columns - 1) * cfg.hop)
        n = 0 if end - self.frame_pos < cfg.n_fft else (end - self.frame_pos - cfg.n_fft) // cfg.hop + 1
        if max_frames is not None:
            n = min(n, max_frames)
        if n <= 0:
            return 0
        span = (n - 1) * cfg.hop + cfg.n_fft
        buf = np.empty(span, np.float32)
        self.ring.read_into(self.frame_pos, buf)
        frames = np.lib.stride_tricks.sliding_window_view(buf, cfg.n_fft)[::cfg.hop][:n] * self.window
        cols = np.fft.rfft(frames, n=cfg.nfft, axis=1).astype(np.complex64)
        if n >= self.columns:
            self.spec[:] = cols[-self.columns:]
        else:
            self.spec = np.roll(self.spec, -n, axis=0)
            self.spec[-n:] = cols
        self.frame_pos += n * cfg.hop
        self.frames_seen += n
        return n

    def image(self, view_name: str = "magnitude", floor_dbfs: float = -100.0) -> tuple[np.ndarray, tuple[float, float]]:
        """``(values (columns, bins) float32, colour levels)`` of the view over the kept frames."""
        spec = view(view_name)
        previous = np.concatenate([np.zeros_like(self.spec[:1]), self.spec[:-1]])
        values = compute_view(view_name, ViewInput(self.spec, self.cfg, self.rate, previous=previous,
                                                   floor_dbfs=floor_dbfs))
        if spec.levels is not None:
            levels = spec.levels(self.cfg, self.rate, floor_dbfs, 0.0)
        else:
            finite = np.abs(values[np.isfinite(values)])
            top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
            levels = (-top or -1.0, top or 1.0)
        return np.nan_to_num(values, nan=levels[0], neginf=levels[0] if view_name == "magnitude" else FLOOR_DB), levels
