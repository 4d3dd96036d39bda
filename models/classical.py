"""Classical single-channel speech enhancement: spectral subtraction, Wiener (decision-directed), log-MMSE.

All three share one causal STFT pipeline, implemented as a *streaming* enhancer with carried state:

* analysis/synthesis with a periodic square-root-Hann window of ``n_fft`` samples (32 ms) and hop
  ``n_fft / 2``, so ``w^2`` overlap-adds to exactly 1 and an all-pass gain reconstructs the input;
* a noise power estimate ``N(l, k)`` per frame ``l`` and bin ``k`` (see :class:`NoiseTracker`);
* a real gain ``G(l, k)`` applied to the noisy spectrum ``Y(l, k)`` (noisy phase kept).

Each hop of input completes one frame; the output of that hop is the first ``hop`` samples of the
overlap-add buffer, so the algorithmic latency is the framing delay ``n_fft - hop`` samples (16 ms at
16 kHz). The engine removes it, so enhanced versions line up with the input sample for sample.

Gain rules (``gamma = |Y|^2 / N`` is the a-posteriori SNR, ``xi`` the a-priori SNR):

* **Spectral subtraction** (power subtraction with over-subtraction and a spectral floor, Berouti,
  Schwartz & Makhoul 1979): ``G = sqrt(max(1 - a * N / |Y|^2, b))`` where the over-subtraction
  factor ``a = clip(4 - 0.15 * SNR_seg_dB, 1, 5)`` grows as the frame's segmental SNR falls and
  ``b`` is the spectral floor (0.01 = -20 dB power).
* **Wiener** with decision-directed a-priori SNR (Ephraim & Malah 1984; Scalart & Vieira Filho 1996):
  ``xi = alpha * |A_prev|^2 / N + (1 - alpha) * max(gamma - 1, 0)``, ``alpha = 0.98``,
  ``xi >= xi_min`` (-25 dB), ``G = xi / (1 + xi)``.
* **Log-spectral-amplitude MMSE** (Ephraim & Malah 1985): same ``xi``, ``v = xi * gamma / (1 + xi)``,
  ``G = xi / (1 + xi) * exp(0.5 * E1(v))`` with ``E1`` the exponential integral (``scipy.special.exp1``).

The models run at 16 kHz by default (inputs at other rates are resampled by the engine); a
``sample_rate`` argument builds the same method at another rate with the same frame duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.core.audio.audio_io import resample
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError
from workbench.core.views.stft import StftConfig, window_array

METHODS = {
    "spectral-subtraction": ("Spectral subtraction",
                             "Power spectral subtraction with SNR-dependent over-subtraction and a spectral "
                             "floor (Berouti et al. 1979)."),
    "wiener": ("Wiener filter (decision-directed)",
               "Wiener gain with the decision-directed a-priori SNR estimate (Scalart & Vieira Filho 1996)."),
    "logmmse": ("Log-MMSE (Ephraim-Malah)",
                "Minimum mean-square error log-spectral amplitude estimator (Ephraim & Malah 1985) with "
                "decision-directed a-priori SNR."),
}

# Martin (2001), Table III: M(D) used in the bias of the minimum of D smoothed periodogram values.
_MARTIN_D = np.array([1, 2, 5, 8, 10, 15, 20, 30, 40, 60, 80, 120, 140, 160], float)
_MARTIN_M = np.array([0, 0.26, 0.48, 0.58, 0.61, 0.668, 0.705, 0.762, 0.8, 0.841, 0.865, 0.89, 0.9, 0.91])


def minimum_bias(window_frames: int, alpha: float) -> float:
    """Bias ``B_min = E{P} / E{min P}`` of the minimum over ``D`` values of a first-order smoothed periodogram.

    For ``P(l) = alpha P(l-1) + (1 - alpha) |Y(l)|^2`` with exponentially distributed ``|Y|^2`` the
    equivalent degrees of freedom are ``Q = 2 (1 + alpha) / (1 - alpha)`` (twice the mean squared over
    the variance). Martin (2001, eq. 17) approximates
    ``B_min(D, Q) ~= 1 + (D - 1) * 2 / Q~`` with ``Q~ = (Q - 2 M(D)) / (1 - M(D))``.
    """
    q = 2 * (1 + alpha) / (1 - alpha)
    m = float(np.interp(window_frames, _MARTIN_D, _MARTIN_M))
    q_tilde = (q - 2 * m) / (1 - m)
    return 1.0 + (window_frames - 1) * 2.0 / q_tilde


class NoiseTracker:
    """Per-bin noise power estimate, updated one frame at a time.

    ``mode="minimum-statistics"`` (Martin 2001, simplified to a fixed smoothing constant): the
    periodogram is smoothed, ``P(l) = alpha P(l-1) + (1 - alpha) |Y(l)|^2``, its minimum over the last
    ``D`` frames (~1.5 s) is tracked with ``U`` sub-windows of ``V`` frames (so the search costs O(1)
    per frame), and the minimum is multiplied by the bias compensation :func:`minimum_bias`.

    ``mode="leading"``: the mean periodogram of the first ``leading_frames`` frames (assumed noise
    only), frozen afterwards; until then, the running mean of the frames seen.

    ``mode="profile"``: a fixed spectrum ``profile`` ``(bins,)`` learned from a noise-only span chosen
    by a person (see :func:`profile_power`), used for every frame.
    """

    def __init__(self, bins: int, window_frames: int, mode: str = "minimum-statistics",
                 alpha: float = 0.85, subwindows: int = 8, leading_frames: int = 16,
                 profile: np.ndarray | None = None):
        if mode not in ("minimum-statistics", "leading", "profile"):
            raise ValueError(f"unknown noise estimator {mode!r}; choose minimum-statistics, leading or profile")
        if mode == "profile" and (profile is None or profile.shape != (bins,)):
            raise ValueError(f"the profile noise estimator needs a ({bins},) power spectrum")
        self.profile = profile
        self.mode = mode
        self.alpha = alpha
        self.sub_len = max(window_frames // subwindows, 1)
        self.subwindows = subwindows
        self.bias = minimum_bias(self.sub_len * subwindows, alpha)
        self.leading_frames = leading_frames
        self.smoothed: np.ndarray | None = None
        self.sub_minima = np.full((subwindows, bins), np.inf)
        self.current_min = np.full(bins, np.inf)
        self.frames_in_sub = 0
        self.frames_seen = 0
        self.sum = np.zeros(bins)

    def update(self, power: np.ndarray) -> np.ndarray:
        """Feed ``|Y(l, k)|^2`` ``(bins,)``; return the noise power estimate ``(bins,)`` for this frame."""
        self.frames_seen += 1
        if self.mode == "profile":
            return self.profile
        if self.mode == "leading":
            if self.frames_seen <= self.leading_frames:
                self.sum += power
            return self.sum / min(self.frames_seen, self.leading_frames)
        if self.smoothed is None:
            self.smoothed = power.copy()
        else:
            self.smoothed = self.alpha * self.smoothed + (1 - self.alpha) * power
        np.minimum(self.current_min, self.smoothed, out=self.current_min)
        self.frames_in_sub += 1
        minimum = np.minimum(self.sub_minima.min(axis=0), self.current_min)
        if self.frames_in_sub == self.sub_len:
            # Sub-window complete: it replaces the oldest one, so the search spans U * V frames.
            self.sub_minima = np.roll(self.sub_minima, -1, axis=0)
            self.sub_minima[-1] = self.current_min
            self.current_min = np.full_like(self.current_min, np.inf)
            self.frames_in_sub = 0
        return self.bias * minimum


@dataclass(frozen=True)
class ClassicalSettings:
    """Tunable constants (defaults follow the papers cited in the module docstring)."""

    frame_ms: float = 32.0
    noise: str = "minimum-statistics"     #: or "leading"; "profile" is set by with_noise_profile
    noise_window_s: float = 1.5           #: minimum-statistics search window
    leading_s: float = 0.25               #: "leading" mode: noise-only lead-in
    dd_alpha: float = 0.98                #: decision-directed smoothing
    xi_min_db: float = -25.0              #: a-priori SNR floor
    floor: float = 0.01                   #: spectral-subtraction power floor
    gain_floor_db: float = -25.0          #: lowest Wiener/log-MMSE gain


class ClassicalStream(EnhancerStream):
    """Causal frame-by-frame processor with all state carried between calls (see module docstring)."""

    def __init__(self, method: str, cfg: StftConfig, sample_rate: int, settings: ClassicalSettings,
                 profile: np.ndarray | None = None):
        self.method = method
        self.cfg = cfg
        self.s = settings
        self.win = window_array(cfg)
        n, hop = cfg.n_fft, cfg.hop
        frames_per_s = sample_rate / hop
        mode = "profile" if profile is not None else settings.noise
        self.noise = NoiseTracker(cfg.bins, int(round(settings.noise_window_s * frames_per_s)), mode,
                                  leading_frames=max(int(round(settings.leading_s * frames_per_s)), 1),
                                  profile=profile)
        self.history = np.zeros(n - hop)     # last n - hop input samples (start of the next frame)
        self.ola = np.zeros(n - hop)         # overlap-add tail not yet complete
        self.prev_amp2 = None                # |A(l-1)|^2 for the decision-directed estimate
        self.xi_min = 10 ** (settings.xi_min_db / 10)
        self.gain_floor = 10 ** (settings.gain_floor_db / 20)

    def _gain(self, power: np.ndarray, noise: np.ndarray) -> np.ndarray:
        noise = np.maximum(noise, 1e-20)
        if self.method == "spectral-subtraction":
            snr_db = 10 * np.log10(max(power.sum(), 1e-20) / noise.sum())
            over = np.clip(4.0 - 0.15 * snr_db, 1.0, 5.0)
            return np.sqrt(np.maximum(1.0 - over * noise / np.maximum(power, 1e-20), self.s.floor))
        gamma = power / noise
        ml = np.maximum(gamma - 1.0, 0.0)
        if self.prev_amp2 is None:
            xi = ml
        else:
            xi = self.s.dd_alpha * self.prev_amp2 / noise + (1 - self.s.dd_alpha) * ml
        xi = np.maximum(xi, self.xi_min)
        wiener = xi / (1 + xi)
        if self.method == "wiener":
            g = wiener
        else:
            v = np.maximum(xi * gamma / (1 + xi), 1e-10)
            # exp(0.5 E1(v)) explodes only where v -> 0, i.e. where gamma ~ 0: cap it there.
            from scipy.special import exp1  # here: only log-MMSE needs it, and scipy.special costs ~0.3 s to import

            g = wiener * np.exp(0.5 * np.minimum(exp1(v), 20.0))
        g = np.clip(g, self.gain_floor, 1.0)
        self.prev_amp2 = (g * g) * power
        return g

    def process(self, block: np.ndarray) -> np.ndarray:
        """``(m,)`` samples, m a multiple of ``hop`` -> ``(m,)`` delayed by ``n_fft - hop``."""
        x = np.asarray(block, np.float64).reshape(-1)
        n, hop = self.cfg.n_fft, self.cfg.hop
        if x.shape[0] % hop:
            raise ModelError(f"{self.method}: block of {x.shape[0]} samples is not a multiple of {hop}")
        k = x.shape[0] // hop
        if k == 0:
            return np.zeros(0, np.float32)
        sig = np.concatenate([self.history, x])
        self.history = sig[-(n - hop):].copy()
        # All frames of the block are analysed at once; only the gain recursion runs frame by frame.
        frames = np.lib.stride_tricks.sliding_window_view(sig, n)[::hop][:k]
        spec = np.fft.rfft(frames * self.win, axis=-1)
        power = spec.real ** 2 + spec.imag ** 2
        gains = np.empty_like(power)
        for i in range(k):
            gains[i] = self._gain(power[i], self.noise.update(power[i]))
        y = np.fft.irfft(spec * gains, n=n, axis=-1) * self.win
        acc = np.zeros((k - 1) * hop + n)
        acc[:n - hop] = self.ola
        for i in range(k):
            acc[i * hop:i * hop + n] += y[i]
        self.ola = acc[k * hop:].copy()
        return acc[:k * hop].astype(np.float32)


def profile_power(samples: np.ndarray, sample_rate: int, cfg: StftConfig, target_rate: int) -> np.ndarray:
    """Mean power spectrum ``mean_l |Y(l, k)|^2`` ``(bins,)`` of a noise-only span, framed like the stream.

    Args:
        samples: ``(m,)`` or ``(m, channels)`` at ``sample_rate``; resampled to ``target_rate`` (soxr)
            and averaged over channels.

    Raises:
        ModelError: the span is shorter than one STFT frame.
    """
    x = np.asarray(samples, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if sample_rate != target_rate:
        x = resample(x, sample_rate, target_rate)
        x = x[:, None] if x.ndim == 1 else x
    n, hop = cfg.n_fft, cfg.hop
    if x.shape[0] < n:
        raise ModelError(f"{x.shape[0] / target_rate * 1000:.1f} ms is shorter than one STFT frame "
                         f"({n / target_rate * 1000:.0f} ms = {n} samples at {target_rate} Hz)")
    win = window_array(cfg)
    total = np.zeros(cfg.bins)
    count = 0
    for c in range(x.shape[1]):
        frames = np.lib.stride_tricks.sliding_window_view(x[:, c].astype(np.float64), n)[::hop]
        spec = np.fft.rfft(frames * win, axis=-1)
        total += (spec.real ** 2 + spec.imag ** 2).sum(axis=0)
        count += frames.shape[0]
    return total / count


class ClassicalEnhancer(Enhancer):
    """One of :data:`METHODS` as a streaming enhancer.

    Args:
        method: ``spectral-subtraction``, ``wiener`` or ``logmmse``.
        sample_rate: processing rate in Hz (default 16 kHz); frames stay ``settings.frame_ms`` long.
        settings: constants of the noise estimator and gain rule.
        noise_profile: ``(samples, rate)`` of a noise-only span; when given, its mean power spectrum is the
            noise estimate of every frame (instead of ``settings.noise``). See :meth:`with_noise_profile`.
    """

    def __init__(self, method: str, sample_rate: int = 16000, settings: ClassicalSettings | None = None,
                 noise_profile: tuple[np.ndarray, int] | None = None):
        if method not in METHODS:
            raise ModelError(f"unknown classical method {method!r}; available: {', '.join(METHODS)}")
        self.method = method
        self.settings = settings or ClassicalSettings()
        n = int(round(self.settings.frame_ms * sample_rate / 1000)) // 2 * 2
        self.cfg = StftConfig(n_fft=n, hop=n // 2, window="sqrt-hann", center=False)
        self.noise_profile = noise_profile
        self._profile_power = (profile_power(noise_profile[0], noise_profile[1], self.cfg, sample_rate)
                               if noise_profile is not None else None)
        noise = "profile" if noise_profile is not None else self.settings.noise
        extra = {"stft": f"{n}-sample sqrt-Hann, hop {n // 2}", "noise": noise}
        if noise_profile is not None:
            extra["noise_profile_s"] = round(noise_profile[0].shape[0] / noise_profile[1], 6)
        name, desc = METHODS[method]
        self.info = EnhancerInfo(
            id=method, name=name, description=desc + f" Noise estimate: {noise}.",
            sample_rate=sample_rate, causal=True, latency_samples=n - n // 2, family="classical",
            processing="streaming", block_samples=n // 2, source="built-in", parameters=0,
            licence="MIT",
            extra=extra, any_rate=True)

    def for_rate(self, sample_rate: int) -> "ClassicalEnhancer":
        """The same method with frames of the same duration at ``sample_rate`` (no resampling needed)."""
        if sample_rate == self.info.sample_rate:
            return self
        return ClassicalEnhancer(self.method, sample_rate, self.settings, self.noise_profile)

    def with_noise_profile(self, samples: np.ndarray, sample_rate: int) -> "ClassicalEnhancer":
        """A copy that takes the mean power spectrum of ``samples`` (a noise-only span at ``sample_rate``)
        as its noise estimate. Raises ModelError when the span is shorter than one frame."""
        return ClassicalEnhancer(self.method, self.info.sample_rate, self.settings,
                                 (np.asarray(samples, np.float32), int(sample_rate)))

    def new_stream(self) -> ClassicalStream:
        return ClassicalStream(self.method, self.cfg, self.info.sample_rate, self.settings, self._profile_power)
