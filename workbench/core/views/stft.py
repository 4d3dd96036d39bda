"""Short-time Fourier transform, its inverse, and the representations the workbench shows.

Conventions (used everywhere in the project):
    * A spectrogram is a complex64 array shaped ``(frames, bins)`` — time first — with
      ``bins = fft_size // 2 + 1``.
    * Frame ``t`` analyses samples ``[t * hop - pad, t * hop - pad + n_fft)`` where ``pad = n_fft // 2``
      when ``center`` is true (else 0); samples outside the signal count as zeros. The centre of frame
      ``t`` is therefore at time ``t * hop / sample_rate`` seconds when centred.
    * The DFT origin is the first sample of the frame: ``S[t, k] = sum_n w[n] x[t*hop - pad + n] e^{-j2πkn/N}``
      with ``N = fft_size >= n_fft`` (zero padding after the windowed frame).
"""

from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Callable

import numpy as np

WINDOWS = ("hann", "sqrt-hann", "hamming", "blackman")


@dataclass(frozen=True)
class StftConfig:
    """STFT settings.

    Attributes:
        n_fft: window (frame) length in samples.
        hop: hop between frames in samples.
        window: one of :data:`WINDOWS`; all are periodic (DFT-even), as overlap-add wants.
        fft_size: DFT length (>= n_fft); larger values zero-pad the frame. ``None`` means ``n_fft``.
        center: pad half a window at both ends so frame ``t`` is centred at sample ``t * hop``.
    """

    n_fft: int = 1024
    hop: int = 256
    window: str = "hann"
    fft_size: int | None = None
    center: bool = True

    def __post_init__(self):
        if self.window not in WINDOWS:
            raise ValueError(f"unknown window {self.window!r}; choose one of {', '.join(WINDOWS)}")
        if self.n_fft < 2:
            raise ValueError(f"n_fft must be at least 2, got {self.n_fft}")
        if not 1 <= self.hop <= self.n_fft:
            raise ValueError(f"hop must be between 1 and n_fft={self.n_fft}, got {self.hop}")
        if self.fft_size is not None and self.fft_size < self.n_fft:
            raise ValueError(f"fft_size ({self.fft_size}) must not be smaller than n_fft ({self.n_fft})")

    @property
    def nfft(self) -> int:
        """DFT length actually used."""
        return self.fft_size or self.n_fft

    @property
    def bins(self) -> int:
        return self.nfft // 2 + 1

    @property
    def pad(self) -> int:
        return self.n_fft // 2 if self.center else 0

    def frame_count(self, n_samples: int) -> int:
        """Frames needed so that every sample lies in at least one frame."""
        if n_samples <= 0:
            return 0
        span = n_samples + 2 * self.pad - self.n_fft
        return 1 + max(0, -(-span // self.hop))

    def frame_time_s(self, t: np.ndarray | int, sample_rate: int) -> np.ndarray | float:
        """Time of the centre of frame ``t`` in seconds."""
        return (np.asarray(t) * self.hop - self.pad + self.n_fft / 2) / sample_rate

    def bin_frequencies_hz(self, sample_rate: int) -> np.ndarray:
        return np.arange(self.bins) * (sample_rate / self.nfft)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fft_size"] = self.nfft
        return d


#: numpy's symmetric window functions (``w[k]`` for ``k = 0..M-1``, e.g. Hann
#: ``0.5 - 0.5 cos(2 pi k / (M - 1))``); numpy rather than ``scipy.signal.get_window`` because importing
#: scipy.signal costs about a third of a second and the first spectrogram needs a window.
_SYMMETRIC_WINDOWS = {"hann": np.hanning, "hamming": np.hamming, "blackman": np.blackman}


def periodic_window(name: str, n: int) -> np.ndarray:
    """Periodic (DFT-even) window of length ``n``, float64: the symmetric window of ``n + 1`` points
    without its last point, i.e. ``w[k] = 0.5 - 0.5 cos(2 pi k / n)`` for Hann — the same values as
    ``scipy.signal.get_window(name, n, fftbins=True)``."""
    if n == 1:
        return np.ones(1)
    return _SYMMETRIC_WINDOWS[name](n + 1)[:-1]


def window_array(cfg: StftConfig) -> np.ndarray:
    """The analysis (= synthesis) window, float64, length ``n_fft``."""
    if cfg.window == "sqrt-hann":
        return np.sqrt(periodic_window("hann", cfg.n_fft))
    return periodic_window(cfg.window, cfg.n_fft)


def squared_window_sum(cfg: StftConfig) -> np.ndarray:
    """``sum_t w[n - t*hop]^2`` over one hop period, float64 ``(hop,)``: the weighted overlap-add
    normaliser of a steady-state frame stream (zero somewhere means the STFT cannot be inverted)."""
    w2 = window_array(cfg) ** 2
    acc = np.zeros(cfg.hop)
    for start in range(0, cfg.n_fft, cfg.hop):
        seg = w2[start:start + cfg.hop]
        acc[:len(seg)] += seg
    return acc


def is_cola(cfg: StftConfig, tol: float = 1e-10) -> bool:
    """True when the squared window overlap-adds to a constant, so synthesis needs no normalisation."""
    acc = squared_window_sum(cfg)
    return bool(np.ptp(acc) <= tol * max(acc.max(), 1e-30))


def stft_frames(read: Callable[[int, int], np.ndarray], n_samples: int, t0: int, t1: int,
                cfg: StftConfig) -> np.ndarray:
    """STFT frames ``[t0, t1)`` of a mono signal available through ``read(start, stop) -> (n,)``.

    Only the samples those frames need are read, which is what lets views of hour-long files compute
    just the visible tiles. Samples outside ``[0, n_samples)`` are zeros.

    Returns:
        complex64 array ``(t1 - t0, bins)``.
    """
    t1 = max(t1, t0)
    if t1 == t0:
        return np.zeros((0, cfg.bins), np.complex64)
    first = t0 * cfg.hop - cfg.pad
    last = (t1 - 1) * cfg.hop - cfg.pad + cfg.n_fft
    lo, hi = max(first, 0), min(last, n_samples)
    seg = np.zeros(last - first, np.float32)
    if hi > lo:
        seg[lo - first:hi - first] = np.asarray(read(lo, hi), dtype=np.float32).reshape(-1)
    frames = np.lib.stride_tricks.sliding_window_view(seg, cfg.n_fft)[::cfg.hop]
    win = window_array(cfg).astype(np.float32)
    return np.fft.rfft(frames * win, n=cfg.nfft, axis=-1).astype(np.complex64, copy=False)


def stft(x: np.ndarray, cfg: StftConfig) -> np.ndarray:
    """STFT of a mono signal ``x`` ``(n,)``; returns complex64 ``(frames, bins)`` (see module conventions)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    return stft_frames(lambda a, b: x[a:b], len(x), 0, cfg.frame_count(len(x)), cfg)


def istft(spec: np.ndarray, cfg: StftConfig, length: int | None = None) -> np.ndarray:
    """Inverse STFT by weighted overlap-add (least-squares inverse of :func:`stft`).

    ``y[n] = sum_t w[n - t*hop + pad] * frame_t[n - t*hop + pad] / sum_t w[n - t*hop + pad]^2``
    where ``frame_t = irfft(spec[t])[:n_fft]``. Reconstruction is exact wherever the squared windows
    overlap to a non-zero sum (NOLA), in particular for every COLA setting.

    Args:
        spec: complex ``(frames, bins)``.
        length: samples to return (default: as many as the frames cover, minus padding).

    Returns:
        float32 ``(length,)``.
    """
    spec = np.asarray(spec)
    if spec.ndim != 2 or spec.shape[1] != cfg.bins:
        raise ValueError(f"spectrogram must be (frames, {cfg.bins}), got {spec.shape}")
    n_frames = spec.shape[0]
    frames = np.fft.irfft(spec.astype(np.complex128), n=cfg.nfft, axis=-1)[:, :cfg.n_fft]
    win = window_array(cfg)
    total = (n_frames - 1) * cfg.hop + cfg.n_fft if n_frames else 0
    out = np.zeros(total)
    norm = np.zeros(total)
    w2 = win * win
    # Overlap-add in hop-sized strides: n_fft/hop vectorised passes instead of one per frame.
    for offset in range(0, cfg.n_fft, cfg.hop):
        part = min(cfg.hop, cfg.n_fft - offset)
        idx = (np.arange(n_frames)[:, None] * cfg.hop + offset + np.arange(part)[None, :]).reshape(-1)
        np.add.at(out, idx, (frames[:, offset:offset + part] * win[offset:offset + part]).reshape(-1))
        np.add.at(norm, idx, np.tile(w2[offset:offset + part], n_frames))
    nz = norm > 1e-10
    out[nz] /= norm[nz]
    out = out[cfg.pad:]
    if length is None:
        length = max(total - 2 * cfg.pad, 0)
    if len(out) < length:
        out = np.concatenate([out, np.zeros(length - len(out))])
    return out[:length].astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Representations
# ----------------------------------------------------------------------------------------------------------

def full_scale_gain(cfg: StftConfig) -> float:
    """Factor that maps |S| of a full-scale sine (amplitude 1) to 1: ``2 / sum(w)``."""
    return float(2.0 / window_array(cfg).sum())


def magnitude_db(spec: np.ndarray, cfg: StftConfig | None = None, floor_db: float = -120.0) -> np.ndarray:
    """Magnitude in decibels: ``20 log10(max(g |S|, 10^(floor_db/20)))``.

    With ``cfg`` given, ``g = 2 / sum(w)`` so a full-scale sine reads 0 dB (dBFS); otherwise ``g = 1``.
    Returns float32 with the shape of ``spec``.
    """
    gain = full_scale_gain(cfg) if cfg is not None else 1.0
    floor = 10.0 ** (floor_db / 20.0)
    mag = np.abs(spec).astype(np.float32) * np.float32(gain)
    return (20.0 * np.log10(np.maximum(mag, np.float32(floor)))).astype(np.float32)


def phase(spec: np.ndarray) -> np.ndarray:
    """Wrapped phase ``angle(S)`` in radians, in ``[-pi, pi]``, float32."""
    return np.angle(spec).astype(np.float32)


def power_law(x: np.ndarray, exponent: float | None) -> np.ndarray:
    """Power-law compression ``sign(x) |x|^c`` (``c = exponent``); ``None`` or 1 leaves ``x`` as is."""
    x = np.asarray(x, dtype=np.float32)
    if exponent is None or exponent == 1.0:
        return x
    return (np.sign(x) * np.abs(x) ** np.float32(exponent)).astype(np.float32)


def real_part(spec: np.ndarray, compression: float | None = 0.3) -> np.ndarray:
    """Real part ``Re(S)``, optionally power-law compressed: ``sign(Re S) |Re S|^c`` (default c = 0.3)."""
    return power_law(spec.real, compression)


def imag_part(spec: np.ndarray, compression: float | None = 0.3) -> np.ndarray:
    """Imaginary part ``Im(S)``, optionally power-law compressed: ``sign(Im S) |Im S|^c`` (default c = 0.3)."""
    return power_law(spec.imag, compression)


def wrap_phase(x: np.ndarray) -> np.ndarray:
    """Map angles to ``[-pi, pi)``."""
    return (x + np.pi) % (2 * np.pi) - np.pi


def magnitude_mask(spec: np.ndarray, below_db: float) -> np.ndarray:
    """Boolean mask, true where a bin lies more than ``below_db`` dB under the spectrogram's peak."""
    mag = np.abs(spec)
    peak = float(mag.max()) if mag.size else 0.0
    if peak <= 0:
        return np.ones(spec.shape, bool)
    return mag < peak * 10.0 ** (-abs(below_db) / 20.0)


def instantaneous_frequency_deviation(spec: np.ndarray, cfg: StftConfig, sample_rate: int,
                                      mask_below_db: float | None = None) -> np.ndarray:
    """Instantaneous-frequency deviation in Hz, per bin and frame.

    ``IFD[t, k] = wrap(phi[t, k] - phi[t-1, k] - 2 pi k hop / N) * fs / (2 pi hop)``

    i.e. the time derivative of phase minus the advance expected for the bin's centre frequency
    ``k fs / N``. A stationary sinusoid at ``f`` gives ``f - k fs / N`` in the bins around it (when the
    true deviation is within ``± fs / (2 hop)``). Frame 0 has no predecessor and gets 0.

    Args:
        mask_below_db: bins more than this many dB under the peak become NaN (drawn blank).

    Returns:
        float32 ``(frames, bins)``.
    """
    ph = np.angle(spec).astype(np.float64)
    k = np.arange(spec.shape[1])
    expected = 2 * np.pi * k * cfg.hop / cfg.nfft
    dev = np.zeros(spec.shape, np.float64)
    if spec.shape[0] > 1:
        dev[1:] = wrap_phase(np.diff(ph, axis=0) - expected[None, :])
    out = (dev * sample_rate / (2 * np.pi * cfg.hop)).astype(np.float32)
    if mask_below_db is not None:
        out[magnitude_mask(spec, mask_below_db)] = np.nan
    return out


def group_delay(spec: np.ndarray, cfg: StftConfig, sample_rate: int,
                mask_below_db: float | None = None) -> np.ndarray:
    """Group delay in milliseconds relative to the frame centre, per bin and frame.

    ``GD[t, k] = -wrap(phi[t, k+1] - phi[t, k] + 2 pi c / N) * N / (2 pi)``   samples, then ``/ fs * 1000``

    with ``c = n_fft / 2`` and ``N = fft_size``. The negative frequency derivative of phase says where in
    the frame the energy of bin ``k`` sits; because the DFT origin is the frame's first sample, a component
    at sample ``m`` of the frame has ``phi[k] = -2 pi k m / N``. Adding ``2 pi c / N`` before wrapping
    centres the unambiguous range on the window centre, so an impulse at the centre gives 0, one ``d``
    samples later ``+d`` and one ``d`` earlier ``-d``, for ``|d| < N / 2``. The last bin repeats its
    neighbour's value.

    Args:
        mask_below_db: bins more than this many dB under the peak become NaN (drawn blank).

    Returns:
        float32 ``(frames, bins)``.
    """
    ph = np.angle(spec).astype(np.float64)
    gd = np.empty(spec.shape, np.float64)
    if spec.shape[1] > 1:
        centre_advance = 2 * np.pi * (cfg.n_fft / 2) / cfg.nfft
        gd[:, :-1] = -wrap_phase(np.diff(ph, axis=1) + centre_advance) * cfg.nfft / (2 * np.pi)
        gd[:, -1] = gd[:, -2]
    else:
        gd[:] = 0.0
    out = (gd * 1000.0 / sample_rate).astype(np.float32)
    if mask_below_db is not None:
        out[magnitude_mask(spec, mask_below_db)] = np.nan
    return out

# The named views (labels, units, colour maps, masking) live in the registry workbench.core.views.registry.
