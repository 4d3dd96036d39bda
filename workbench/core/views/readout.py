"""The crosshair read-out: what every pane draws at one time-frequency point, computed on the exact STFT frame.

The panes draw decimated tiles (:mod:`workbench.core.views.tiles`); the read-out never does. It analyses the
one frame nearest the pointer (and its predecessor, for instantaneous frequency, and the partner's frame, for
the difference views) and passes it through the view registry with the display's compression, floor and
masking, so each number is the value drawn at that pixel at full resolution. Qt-free: the spectrogram widget
calls :func:`read_point` and shows :func:`readout_text`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio.audio_io import AudioSource
from .registry import PANE_SLOTS, DisplaySettings, compute_view, view
from .stft import StftConfig, stft_frames


@dataclass(frozen=True)
class ReadoutPartner:
    """The version the difference views compare with: its samples, the channel, and whether it is the
    original (``True``: the shown version is the enhanced side of ``enhanced − original``)."""

    source: AudioSource
    channel: int = 0
    is_original: bool = True


def frame_bin_at(cfg: StftConfig, sample_rate: int, total_frames: int, time_s: float,
                 freq_hz: float) -> tuple[int, int]:
    """STFT frame and bin nearest ``time_s`` (s) and ``freq_hz`` (Hz), clipped to ``[0, total_frames)`` and
    ``[0, cfg.bins)``. Frame ``t`` is centred at sample ``t * hop - pad + n_fft / 2``; bin ``k`` at
    ``k * sample_rate / nfft`` Hz."""
    t = int(round((time_s * sample_rate + cfg.pad - cfg.n_fft / 2) / cfg.hop))
    t = int(np.clip(t, 0, max(total_frames - 1, 0)))
    k = int(np.clip(round(freq_hz * cfg.nfft / sample_rate), 0, cfg.bins - 1))
    return t, k


def read_point(source: AudioSource, channel: int, cfg: StftConfig, display: DisplaySettings, time_s: float,
               freq_hz: float, partner: ReadoutPartner | None = None) -> dict:
    """Values of what the panes draw at the frame/bin nearest ``(time_s, freq_hz)`` of ``channel``.

    Returns ``time_s`` and ``freq_hz`` (of that frame centre / bin centre), ``frame``, ``bin``, and
    ``panes``: slot -> ``{"view", "short", "unit", "value", "text"}`` where ``value`` is ``None`` (and
    ``text`` ``—``) for masked bins and difference views without a partner. For convenience also
    ``magnitude_db`` (dBFS), ``phase_rad``, ``real``/``imag`` (compressed as drawn), ``real_raw``/``imag_raw``,
    ``inst_freq_hz``, ``group_delay_ms`` (unmasked) and, with a partner, ``magnitude_difference_db``/
    ``phase_difference_rad``.
    """
    sr = source.sample_rate
    t, k = frame_bin_at(cfg, sr, cfg.frame_count(source.frames), time_s, freq_hz)
    spec = stft_frames(lambda a, b: source.read(a, b)[:, channel], source.frames, t - 1, t + 1, cfg)  # frame -1: zeros
    prev, cur = spec[:1], spec[1:]
    other = None
    if partner is not None:
        src, ch = partner.source, partner.channel
        other = stft_frames(lambda a, b: src.read(a, b)[:, ch], src.frames, t, t + 1, cfg)
    inp = display.view_input(cur, cfg, sr, previous=prev, partner=other, frames=np.array([t]),
                             partner_is_original=partner.is_original if partner is not None else True)

    def value(name: str, masked: bool = True) -> float | None:
        v = float(compute_view(name, inp, display.mask_floor_dbfs if masked else None)[0, k])
        return v if np.isfinite(v) else None

    panes = {}
    for slot, name in display.pane_views().items():
        spec_ = view(name)
        v = value(name)
        panes[slot] = {"view": name, "short": spec_.short, "unit": spec_.unit, "value": v,
                       "text": spec_.format_value(v)}
    out = {
        "time_s": float(cfg.frame_time_s(t, sr)),
        "freq_hz": float(k * sr / cfg.nfft),
        "frame": t,
        "bin": k,
        "panes": panes,
        "magnitude_db": value("magnitude"),
        "phase_rad": value("phase"),
        "real": value("real"),
        "imag": value("imag"),
        "real_raw": float(cur[0, k].real),
        "imag_raw": float(cur[0, k].imag),
        "inst_freq_hz": value("inst_freq", masked=False),
        "group_delay_ms": value("group_delay", masked=False),
    }
    if other is not None:
        out["magnitude_difference_db"] = value("mag_diff")
        out["phase_difference_rad"] = value("phase_diff")
    return out


def readout_text(values: dict) -> str:
    """One line for the status area: time, frequency and each pane's value in its unit (``—`` where nothing
    is drawn); empty for an empty read-out."""
    if not values:
        return ""
    panes = values["panes"]   # a dict through a Qt signal loses its order: use the pane order
    parts = [f"{panes[slot]['short']} {panes[slot]['text']}" for slot in PANE_SLOTS if slot in panes]
    return f"t {values['time_s']:.4f} s  f {values['freq_hz']:.1f} Hz  |  " + "  ".join(parts)
