"""The phase lab: oracle masks, magnitude/phase swaps, phase reconstruction and the effective complex mask.

Everything works on one mono signal on the project's own STFT (:mod:`workbench.core.views.stft`), for a given
:class:`~workbench.core.views.stft.StftConfig`. Notation, per time-frequency bin ``(t, k)``:

* ``Y = STFT(y)`` the noisy recording, ``S = STFT(s)`` the clean reference *aligned to* ``y`` (see
  :func:`align_reference`), ``N = Y − S`` the noise (``n = y − s`` in time, the STFT is linear);
* ``E = STFT(e)`` an enhanced version of ``y`` (same length, sample-aligned, as the engine returns it);
* ``θ_X = ∠X`` the phase of ``X``; ``istft`` the weighted overlap-add inverse of the project's STFT.

Oracle masks (all need the reference), applied as ``ŝ = istft(M · Y)``:

* ideal binary mask  ``IBM = 1[20 log10(|S|/|N|) > LC]`` (local criterion ``LC`` dB, default 0);
* ideal ratio mask   ``IRM = (|S|² / (|S|² + |N|²))^β`` (β = 0.5 by default);
* ideal amplitude mask ``IAM = |S| / |Y|`` (real, so the noisy phase is kept);
* phase-sensitive mask ``PSM = |S| / |Y| · cos(θ_S − θ_Y)``, truncated to ``[0, 1]`` by default
  (Erdogan et al. 2015);
* complex ideal ratio mask ``cIRM = S / Y`` (Williamson et al. 2016), optionally compressed per real and
  imaginary part as ``K (1 − e^{−C x}) / (1 + e^{−C x}) = K tanh(C x / 2)`` (K = 10, C = 0.1) and
  un-compressed for application with ``x = (2 / C) artanh(x_c / K)``.

Where ``|Y|`` (or ``|S|² + |N|²``) is below :data:`TINY` the ratio masks are 0.

Swaps ``istft(|A| e^{jθ_B})``: ``|clean| ∠noisy`` (the magnitude-only upper bound), ``|noisy| ∠clean``, and
for an enhanced version ``|E| ∠noisy`` and ``|E| ∠clean``.

Phase reconstruction from a magnitude ``A``: Griffin–Lim and fast Griffin–Lim (Perraudin, Balazs &
Søndergaard 2013):

    c_n = STFT(istft(A e^{j∠t_{n−1}}))         (project on consistent spectrograms, then on |·| = A)
    t_n = c_n + α (c_n − c_{n−1})               (α = 0 is Griffin–Lim, α = 0.99 the fast variant)

with ``t_0 = A e^{jφ_0}`` (``φ_0`` zero, seeded uniform random, or the noisy phase) and ``c_0 = 0``. The
spectral convergence ``SC = ‖ |STFT(x)| − A ‖_F / ‖A‖_F`` of the signal ``x = istft(A e^{j∠t_n})`` is
reported for every ``n = 0 … N`` and the final inconsistency ``‖STFT(istft(X)) − X‖_F / ‖X‖_F`` of
``X = A e^{j∠t_N}``. The loop gives librosa's ``griffinlim`` result for the same STFT (tested).

The effective complex mask of any version, ``M = E / Y`` where ``|Y|`` is more than ``floor_db`` above
the recording's quietest meaningful level (NaN elsewhere): ``20 log10 |M|`` says what a model did to the
magnitude, ``∠M`` what it did to the phase (≈ 0 for a magnitude-only model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generator, Iterable, Sequence

import numpy as np

from ..audio.audio_io import downmix, load_audio, read_info, resample
from ..progress import Progress, rescaled
from ..errors import WorkbenchError
from ..audio.correlation import estimate_lag
from ..measure.metrics import METRIC_SPECS
from ..measure.scoring import score_signal
from ..provenance import Provenance, VersionKind
from ..views.comparison import mask_magnitude_db, mask_phase
from ..views.stft import StftConfig, istft, stft

#: Magnitudes at or below this are treated as zero when dividing (float32 STFT round-off of silence).
TINY = 1e-8

#: Oracle mask kinds in table order.
MASK_KINDS = ("ibm", "irm", "iam", "psm", "cirm")

#: Griffin-Lim initial phases.
GLA_INITS = ("zero", "random", "noisy")

#: Momentum of the fast Griffin-Lim algorithm (Perraudin et al. 2013 recommend 0.99).
FGLA_MOMENTUM = 0.99


class PhaseLabError(WorkbenchError):
    """A phase-lab input that cannot be used (missing or mismatched reference, silence)."""


# ------------------------------------------------------------------------------------------ reference


@dataclass(frozen=True)
class AlignedReference:
    """The clean reference placed on the noisy recording's time axis.

    Attributes:
        clean: float64 ``(n,)`` — same length and rate as the noisy signal; ``clean[m] = s[m − lag]``,
            zeros where the reference does not reach.
        lag_samples: delay of the noisy signal relative to the reference at the noisy rate (positive:
            the noisy signal is late), from :func:`workbench.core.audio.correlation.estimate_lag` — the
            cross-correlation the metrics align with.
        correlation: normalised cross-correlation at that lag.
        coverage: fraction of the noisy samples the reference covers after alignment, ``(0, 1]``.
        resampled_from: the reference's own rate when it had to be resampled (soxr), else ``None``.
    """

    clean: np.ndarray
    lag_samples: int
    correlation: float
    coverage: float
    resampled_from: int | None = None


#: A reference covering less of the recording than this is refused as not matching.
MIN_COVERAGE = 0.5
#: Normalised correlation below this means the reference is not the speech in the recording
#: (a -20 dB SNR mixture of the right speech still correlates at about 0.1).
MIN_CORRELATION = 0.05


def _mono64(x: np.ndarray) -> np.ndarray:
    return downmix(x, np.float64)


#: A clean reference may last at most this many times the recording plus :data:`REFERENCE_SLACK_S` seconds;
#: longer ones (an hour of clean speech for a 5 s clip) are refused from their header, before being read.
REFERENCE_MAX_RATIO = 2.0
REFERENCE_SLACK_S = 60.0


def load_reference(path, recording_duration_s: float) -> tuple[np.ndarray, int]:
    """The clean reference at ``path`` as mono float ``(n,)`` and its rate, after the audio reader's checks and
    a length check made on the header: a reference far longer than the recording (more than
    ``REFERENCE_MAX_RATIO`` x its duration + ``REFERENCE_SLACK_S``) is refused before any sample is read, since
    only the part that lines up with the recording is ever used.

    Raises:
        WorkbenchError / AudioFileError: one line naming the file and the problem."""
    info = read_info(path)
    limit_s = REFERENCE_MAX_RATIO * recording_duration_s + REFERENCE_SLACK_S
    if info.duration_s > limit_s:
        raise PhaseLabError(f"{path}: the clean reference lasts {info.duration_s:.1f} s, far longer than the "
                            f"{recording_duration_s:.1f} s recording (references up to {limit_s:.0f} s are read); cut it to "
                            "the recording's span")
    audio, info = load_audio(path)
    return downmix(audio), info.sample_rate


def align_reference(noisy: np.ndarray, noisy_rate: int, reference: np.ndarray, reference_rate: int, *,
                    max_lag_s: float = 0.25, name: str = "reference") -> AlignedReference:
    """Resample ``reference`` to ``noisy_rate`` (soxr) when the rates differ, align it to ``noisy`` by the
    cross-correlation the metrics use, and cut or zero-pad it to ``noisy``'s length.

    Args:
        noisy, reference: ``(n,)`` or ``(n, ch)`` float audio (multichannel averaged to mono, as the
            metrics do) at ``noisy_rate`` and ``reference_rate`` Hz.
        max_lag_s: largest offset searched, seconds.
        name: how error messages call the reference (its file name).

    Raises:
        PhaseLabError: empty or silent signals, non-finite samples, a reference that covers less than
            :data:`MIN_COVERAGE` of the recording or does not correlate with it.
    """
    y, s = _mono64(noisy), _mono64(reference)
    if len(y) == 0:
        raise PhaseLabError("the recording is empty")
    if len(s) == 0:
        raise PhaseLabError(f"{name}: the reference is empty")
    if not np.all(np.isfinite(s)):
        raise PhaseLabError(f"{name}: the reference holds NaN or Inf samples")
    if not np.any(s):
        raise PhaseLabError(f"{name}: the reference is silent; oracle masks and swaps need clean speech")
    resampled_from = None
    if int(reference_rate) != int(noisy_rate):
        s = np.asarray(resample(s.astype(np.float32), int(reference_rate), int(noisy_rate)), np.float64)
        resampled_from = int(reference_rate)
    if not np.any(y):
        raise PhaseLabError("the recording is silent; there is nothing to align the reference to")
    lag, corr = estimate_lag(s, y, int(max_lag_s * noisy_rate))
    aligned = np.zeros(len(y))
    # noisy[m] ≈ s[m - lag]
    lo = max(lag, 0)
    hi = min(len(y), len(s) + lag)
    if hi > lo:
        aligned[lo:hi] = s[lo - lag:hi - lag]
    coverage = max(hi - lo, 0) / len(y)
    if coverage < MIN_COVERAGE:
        raise PhaseLabError(
            f"{name}: the reference covers only {100 * coverage:.0f}% of the recording after alignment "
            f"({len(s) / noisy_rate:.2f} s against {len(y) / noisy_rate:.2f} s); it does not match")
    if not math.isfinite(corr) or abs(corr) < MIN_CORRELATION:
        raise PhaseLabError(f"{name}: the reference does not match the recording (normalised "
                            f"cross-correlation {corr:.3f} at best within ±{max_lag_s:g} s)")
    return AlignedReference(aligned, int(lag), float(corr), float(coverage), resampled_from)


# ------------------------------------------------------------------------------------------------ masks


@dataclass(frozen=True)
class MaskParams:
    """Parameters of the oracle masks (stored in each version's provenance).

    Attributes:
        lc_db: IBM local criterion in dB (a bin is kept when its SNR exceeds it).
        beta: IRM exponent.
        psm_truncate: truncate the PSM to ``[0, 1]``; ``False`` keeps the raw, signed value.
        cirm_compress: compress the cIRM as Williamson et al. (bounded target) before applying it.
        cirm_k, cirm_c: compression bound ``K`` and steepness ``C``.
    """

    lc_db: float = 0.0
    beta: float = 0.5
    psm_truncate: bool = True
    cirm_compress: bool = False
    cirm_k: float = 10.0
    cirm_c: float = 0.1

    def for_mask(self, kind: str) -> dict:
        """The parameters that matter for ``kind``, for provenance and labels."""
        return {"ibm": {"lc_db": self.lc_db}, "irm": {"beta": self.beta}, "iam": {},
                "psm": {"truncate": self.psm_truncate},
                "cirm": ({"compress": True, "K": self.cirm_k, "C": self.cirm_c} if self.cirm_compress
                         else {"compress": False})}[kind]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``|den| <= TINY``."""
    den = np.asarray(den)
    ok = np.abs(den) > TINY
    out = np.zeros(np.broadcast(num, den).shape, np.result_type(num, den, np.float64))
    np.divide(num, den, out=out, where=ok)
    return out


def ideal_binary_mask(clean_spec: np.ndarray, noise_spec: np.ndarray, lc_db: float = 0.0) -> np.ndarray:
    """``IBM = 1[20 log10(|S| / |N|) > LC]`` as float64 ``(frames, bins)`` (``|S|² > 10^{LC/10} |N|²``)."""
    ps = np.abs(clean_spec).astype(np.float64) ** 2
    pn = np.abs(noise_spec).astype(np.float64) ** 2
    return ((ps > 10.0 ** (lc_db / 10.0) * pn) & (ps > TINY ** 2)).astype(np.float64)


def ideal_ratio_mask(clean_spec: np.ndarray, noise_spec: np.ndarray, beta: float = 0.5) -> np.ndarray:
    """``IRM = (|S|² / (|S|² + |N|²))^β``, float64 in ``[0, 1]``."""
    ps = np.abs(clean_spec).astype(np.float64) ** 2
    pn = np.abs(noise_spec).astype(np.float64) ** 2
    return _ratio(ps, ps + pn) ** beta


def ideal_amplitude_mask(clean_spec: np.ndarray, noisy_spec: np.ndarray) -> np.ndarray:
    """``IAM = |S| / |Y|`` (unbounded), float64."""
    return _ratio(np.abs(clean_spec).astype(np.float64), np.abs(noisy_spec).astype(np.float64))


def phase_sensitive_mask(clean_spec: np.ndarray, noisy_spec: np.ndarray, truncate: bool = True) -> np.ndarray:
    """``PSM = |S| / |Y| · cos(θ_S − θ_Y) = Re(S / Y)``, truncated to ``[0, 1]`` unless ``truncate`` is false."""
    m = np.real(complex_ideal_ratio_mask(clean_spec, noisy_spec))
    return np.clip(m, 0.0, 1.0) if truncate else m


def complex_ideal_ratio_mask(clean_spec: np.ndarray, noisy_spec: np.ndarray) -> np.ndarray:
    """``cIRM = S / Y``, complex128 ``(frames, bins)``; ``M · Y = S`` exactly wherever ``|Y| > TINY``."""
    return _ratio(np.asarray(clean_spec, np.complex128), np.asarray(noisy_spec, np.complex128))


def compress_cirm(mask: np.ndarray, k: float = 10.0, c: float = 0.1) -> np.ndarray:
    """Williamson et al.'s bounded cIRM, per real and imaginary part:
    ``x_c = K (1 − e^{−C x}) / (1 + e^{−C x}) = K tanh(C x / 2)``, so ``x_c ∈ (−K, K)``."""
    m = np.asarray(mask, np.complex128)
    return k * np.tanh(c * m.real / 2) + 1j * k * np.tanh(c * m.imag / 2)


#: Compressed values are clipped to ``±K (1 − this)`` before inverting (``tanh`` reaches ±1 in float64 for
#: large inputs, whose inverse would be infinite); this bounds |Re M|, |Im M| at about ``(2/C) · 7.6``.
CIRM_CLIP = 1e-6


def uncompress_cirm(compressed: np.ndarray, k: float = 10.0, c: float = 0.1) -> np.ndarray:
    """Inverse of :func:`compress_cirm`: ``x = (2 / C) artanh(x_c / K)`` per part, ``x_c`` clipped to
    ``±K (1 − CIRM_CLIP)``."""
    z = np.asarray(compressed, np.complex128) / k
    lim = 1.0 - CIRM_CLIP
    re = np.arctanh(np.clip(z.real, -lim, lim))
    im = np.arctanh(np.clip(z.imag, -lim, lim))
    return (2.0 / c) * (re + 1j * im)


def oracle_mask(kind: str, clean_spec: np.ndarray, noisy_spec: np.ndarray,
                params: MaskParams = MaskParams()) -> np.ndarray:
    """The oracle mask ``kind`` (one of :data:`MASK_KINDS`) that is multiplied with ``Y`` to apply it.

    For ``cirm`` with ``params.cirm_compress`` the result is the *applied* mask, i.e. the compressed mask
    un-compressed again (see :func:`uncompress_cirm`); the compressed target itself is
    :func:`compress_cirm` of :func:`complex_ideal_ratio_mask`.

    Returns:
        float64 (``ibm``, ``irm``, ``iam``, ``psm``) or complex128 (``cirm``) ``(frames, bins)``.
    """
    noise_spec = np.asarray(noisy_spec, np.complex128) - np.asarray(clean_spec, np.complex128)
    if kind == "ibm":
        return ideal_binary_mask(clean_spec, noise_spec, params.lc_db)
    if kind == "irm":
        return ideal_ratio_mask(clean_spec, noise_spec, params.beta)
    if kind == "iam":
        return ideal_amplitude_mask(clean_spec, noisy_spec)
    if kind == "psm":
        return phase_sensitive_mask(clean_spec, noisy_spec, params.psm_truncate)
    if kind == "cirm":
        m = complex_ideal_ratio_mask(clean_spec, noisy_spec)
        if params.cirm_compress:
            m = uncompress_cirm(compress_cirm(m, params.cirm_k, params.cirm_c), params.cirm_k, params.cirm_c)
        return m
    raise ValueError(f"unknown mask {kind!r}; choose one of {', '.join(MASK_KINDS)}")


def apply_mask(mask: np.ndarray, noisy_spec: np.ndarray, cfg: StftConfig, length: int) -> np.ndarray:
    """``istft(M · Y)``: float32 ``(length,)``."""
    return istft(np.asarray(mask) * np.asarray(noisy_spec, np.complex128), cfg, length)


# ------------------------------------------------------------------------------------------------ swaps


def combine(magnitude_spec: np.ndarray, phase_spec: np.ndarray, cfg: StftConfig, length: int) -> np.ndarray:
    """``istft(|A| e^{j θ_B})`` — one spectrogram's magnitude with another's phase; float32 ``(length,)``.

    Bins where ``B`` is exactly 0 take phase 0.
    """
    a = np.abs(np.asarray(magnitude_spec)).astype(np.float64)
    return istft(a * np.exp(1j * np.angle(np.asarray(phase_spec))), cfg, length)


# ----------------------------------------------------------------------------------------- Griffin-Lim


@dataclass
class Reconstruction:
    """Result of :func:`griffin_lim`.

    Attributes:
        signal: float32 ``(length,)`` — ``istft(A e^{j∠t_N})``.
        spectral_convergence: float64 ``(iterations + 1,)`` — SC of the signal after 0 … N iterations
            (entry 0 is the initial phase), ``‖|STFT(x)| − A‖_F / ‖A‖_F``.
        inconsistency: ``‖STFT(istft(X)) − X‖_F / ‖X‖_F`` of the final ``X = A e^{j∠t_N}``.
        momentum: α (0: Griffin–Lim).
        init: initial phase kind.
        iterations: N.
        seed: random seed (``init == "random"``).
    """

    signal: np.ndarray
    spectral_convergence: np.ndarray
    inconsistency: float
    momentum: float
    init: str
    iterations: int
    seed: int | None = None

    @property
    def method(self) -> str:
        return "fgla" if self.momentum > 0 else "gla"


def _norm(x: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.abs(x).astype(np.float64) ** 2)))


def griffin_lim(magnitude: np.ndarray, cfg: StftConfig, length: int, *, iterations: int = 100,
                momentum: float = 0.0, init: str = "random", noisy_spec: np.ndarray | None = None,
                seed: int = 0) -> Generator[Progress, None, Reconstruction]:
    """Reconstruct a signal from an STFT magnitude; a generator yielding :class:`Progress` once per
    iteration (closing it between yields cancels), returning a :class:`Reconstruction`.

    Args:
        magnitude: ``|A|`` float ``(frames, bins)`` on ``cfg`` (``frames = cfg.frame_count(length)``).
        length: samples of the signal to produce.
        iterations: N >= 0.
        momentum: α in ``[0, 1]``; 0 is Griffin–Lim, :data:`FGLA_MOMENTUM` the fast variant.
        init: ``zero`` (φ_0 = 0), ``random`` (uniform on ``[0, 2π)``, numpy ``default_rng(seed)``) or
            ``noisy`` (φ_0 = ∠noisy_spec).
        noisy_spec: the noisy STFT, needed for ``init="noisy"``.
    """
    a = np.abs(np.asarray(magnitude)).astype(np.float64)
    if a.ndim != 2 or a.shape[1] != cfg.bins:
        raise ValueError(f"magnitude must be (frames, {cfg.bins}), got {a.shape}")
    if a.shape[0] != cfg.frame_count(length):
        raise ValueError(f"magnitude has {a.shape[0]} frames; {length} samples need {cfg.frame_count(length)}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
    if init == "zero":
        t = a.astype(np.complex128)
    elif init == "random":
        rng = np.random.default_rng(seed)
        t = a * np.exp(2j * np.pi * rng.random(a.shape))
    elif init == "noisy":
        if noisy_spec is None or np.shape(noisy_spec) != a.shape:
            raise ValueError("init='noisy' needs the noisy STFT of the same shape")
        t = a * np.exp(1j * np.angle(noisy_spec))
    else:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(GLA_INITS)}")
    a_norm = _norm(a)

    def project(t_spec):
        """``X = A e^{j∠t}``, ``x = istft(X)``, ``c = STFT(x)``."""
        x_spec = a * np.exp(1j * np.angle(t_spec))
        x = istft(x_spec, cfg, length)
        return x_spec, x, stft(x, cfg).astype(np.complex128)

    def convergence(c):
        return _norm(np.abs(c) - a) / a_norm if a_norm > 0 else 0.0

    sc = np.zeros(iterations + 1)
    c_prev = np.zeros_like(t)
    x_spec, x, c = project(t)
    sc[0] = convergence(c)
    for n in range(1, iterations + 1):
        yield Progress((n - 1) / max(iterations, 1), f"{'fast ' if momentum else ''}Griffin–Lim {n}/{iterations}")
        t = c + momentum * (c - c_prev)
        c_prev = c
        x_spec, x, c = project(t)
        sc[n] = convergence(c)
    inconsistency = _norm(c - x_spec) / _norm(x_spec) if _norm(x_spec) > 0 else 0.0
    yield Progress(1.0, "done")
    return Reconstruction(np.asarray(x, np.float32), sc, float(inconsistency), float(momentum), init,
                          int(iterations), seed if init == "random" else None)


def spectral_convergence(signal: np.ndarray, magnitude: np.ndarray, cfg: StftConfig) -> float:
    """``‖|STFT(x)| − A‖_F / ‖A‖_F`` of ``signal`` against a target magnitude ``A`` ``(frames, bins)``."""
    a = np.abs(np.asarray(magnitude)).astype(np.float64)
    c = np.abs(stft(signal, cfg)).astype(np.float64)
    n = min(len(a), len(c))
    den = _norm(a)
    return _norm(c[:n] - a[:n]) / den if den > 0 else 0.0


# ------------------------------------------------------------------------------------- effective mask


@dataclass
class EffectiveMask:
    """``M = E / Y`` of a version ``E`` of recording ``Y``.

    Attributes:
        mask: complex128 ``(frames, bins)``; NaN where undefined (``|Y|`` more than ``floor_db`` under its
            peak, or below :data:`TINY`).
        defined: bool ``(frames, bins)``.
        noisy_magnitude: ``|Y|`` float64 ``(frames, bins)`` (weights ``|E|² = |M|² |Y|²``).
        floor_db: the guard used.
    """

    mask: np.ndarray
    defined: np.ndarray
    noisy_magnitude: np.ndarray
    floor_db: float

    @property
    def magnitude_db(self) -> np.ndarray:
        """``20 log10 |M|`` in dB, float32 (NaN where undefined)."""
        return mask_magnitude_db(self.mask)

    @property
    def phase_rad(self) -> np.ndarray:
        """``∠M`` in radians, float32 (NaN where undefined)."""
        return mask_phase(self.mask)

    def phase_deviation_rad(self, min_gain_db: float = -20.0) -> float:
        """``Σ |E|² |∠M| / Σ |E|²`` (radians) over the defined bins the version kept at more than
        ``min_gain_db`` (``|M|`` in dB). Bins attenuated further hold only what the re-analysis lets
        leak in from neighbouring frames, so their phase says nothing about the model; and even a purely
        real gain that changes from frame to frame gives a small ``∠M`` because the overlap-added
        output is re-analysed (STFT consistency): about 0.02 rad for spectral subtraction on the DNS
        pairs, against 0.04–0.06 rad for DeepFilterNet3."""
        gain = np.abs(np.where(self.defined, self.mask, 0))
        sel = self.defined & (gain > 10.0 ** (min_gain_db / 20.0))
        if not np.any(sel):
            return float("nan")
        w = (gain[sel] * self.noisy_magnitude[sel]) ** 2
        ph = np.abs(np.angle(self.mask[sel]))
        return float(np.sum(w * ph) / np.sum(w)) if np.sum(w) > 0 else float("nan")


def effective_mask(enhanced_spec: np.ndarray, noisy_spec: np.ndarray, floor_db: float = -60.0) -> EffectiveMask:
    """``M = E / Y`` per bin where ``|Y| > max(TINY, max|Y| · 10^{floor_db/20})``; NaN elsewhere.

    Args:
        enhanced_spec, noisy_spec: complex ``(frames, bins)`` on the same STFT (frames may differ by
            trailing frames; the common ones are used).
        floor_db: guard below the peak of ``|Y|`` (negative dB).
    """
    e = np.asarray(enhanced_spec, np.complex128)
    y = np.asarray(noisy_spec, np.complex128)
    n = min(len(e), len(y))
    e, y = e[:n], y[:n]
    mag = np.abs(y)
    peak = float(mag.max()) if mag.size else 0.0
    defined = mag > max(TINY, peak * 10.0 ** (-abs(floor_db) / 20.0))
    m = np.full(y.shape, np.nan + 1j * np.nan, np.complex128)
    m[defined] = e[defined] / y[defined]
    return EffectiveMask(m, defined, mag, float(floor_db))


@dataclass(frozen=True)
class MaskDistance:
    """How far an effective mask ``M`` is from the cIRM ``C = S / Y`` over the bins where ``M`` is defined.

    Attributes:
        weighted_db: ``10 log10(Σ |Y|² |M − C|² / Σ |Y|² |C|²) = 10 log10(‖E − S‖² / ‖S‖²)`` over those
            bins — the spectral error the mask leaves, relative to the clean energy (lower is better).
        mean_abs: unweighted mean ``|M − C|`` over those bins.
    """

    weighted_db: float
    mean_abs: float


def distance_to_cirm(effective: EffectiveMask, clean_spec: np.ndarray, noisy_spec: np.ndarray) -> MaskDistance:
    """:class:`MaskDistance` of ``effective`` from ``cIRM = S / Y`` (same STFT)."""
    n = effective.mask.shape[0]
    s = np.asarray(clean_spec, np.complex128)[:n]
    y = np.asarray(noisy_spec, np.complex128)[:n]
    d = effective.defined
    c = s[d] / y[d]
    diff = effective.mask[d] - c
    w = np.abs(y[d]) ** 2
    num, den = float(np.sum(w * np.abs(diff) ** 2)), float(np.sum(w * np.abs(c) ** 2))
    weighted = 10 * math.log10(num / den) if num > 0 and den > 0 else (float("-inf") if den > 0 else float("nan"))
    return MaskDistance(weighted, float(np.mean(np.abs(diff))) if diff.size else float("nan"))


# ------------------------------------------------------------------------------------------- the lab


#: Version kinds in a :class:`LabVersion`.
LAB_KINDS = ("oracle", "swap", "reconstruction")


@dataclass
class LabVersion:
    """One signal made by the lab.

    Attributes:
        tag: file tag (``ibm``, ``cleanmag_noisyphase``, ``gtcrn_noisyphase``, ``fgla_clean`` ...).
        label: human name (``IBM (LC 0 dB)``, ``|clean| ∠noisy``, ``FGLA |clean|``).
        kind: one of :data:`LAB_KINDS`.
        audio: float32 ``(n,)`` at the recording's rate, same length as it.
        params: parameters for provenance (mask parameters, STFT, GLA settings, sources).
        mask: the applied mask (oracles), ``(frames, bins)``, else ``None``.
        reconstruction: the :class:`Reconstruction` (GLA versions), else ``None``.
    """

    tag: str
    label: str
    kind: str
    audio: np.ndarray
    params: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    reconstruction: Reconstruction | None = None


MASK_LABELS = {"ibm": "IBM", "irm": "IRM", "iam": "IAM", "psm": "PSM", "cirm": "cIRM"}


def mask_label(kind: str, params: MaskParams) -> str:
    """Human name of an oracle mask with its parameters: ``IBM (LC 0 dB)``, ``IRM (β 0.5)`` ..."""
    if kind == "ibm":
        return f"IBM (LC {params.lc_db:g} dB)"
    if kind == "irm":
        return f"IRM (β {params.beta:g})"
    if kind == "psm":
        return "PSM [0, 1]" if params.psm_truncate else "PSM"
    if kind == "cirm":
        return f"cIRM (K {params.cirm_k:g}, C {params.cirm_c:g})" if params.cirm_compress else "cIRM"
    return MASK_LABELS[kind]


def oracle_versions(noisy: np.ndarray, clean_aligned: np.ndarray, cfg: StftConfig,
                    params: MaskParams = MaskParams(), kinds: Sequence[str] = MASK_KINDS) -> list[LabVersion]:
    """Every oracle mask in ``kinds`` applied to ``noisy``, plus the two swaps ``|clean| ∠noisy`` and
    ``|noisy| ∠clean``. ``clean_aligned`` is :attr:`AlignedReference.clean` (same length as ``noisy``)."""
    y = np.asarray(noisy, np.float64).reshape(-1)
    s = np.asarray(clean_aligned, np.float64).reshape(-1)
    if len(s) != len(y):
        raise ValueError("clean_aligned must have the recording's length (use align_reference)")
    Y = stft(y, cfg)
    S = stft(s, cfg)
    stft_params = cfg.to_dict()
    out = []
    for kind in kinds:
        m = oracle_mask(kind, S, Y, params)
        out.append(LabVersion(kind, mask_label(kind, params), "oracle", apply_mask(m, Y, cfg, len(y)),
                              {"mask": kind, **params.for_mask(kind), "stft": stft_params}, mask=m))
    out.append(LabVersion("cleanmag_noisyphase", "|clean| ∠noisy", "swap", combine(S, Y, cfg, len(y)),
                          {"magnitude": "clean", "phase": "noisy", "stft": stft_params}))
    out.append(LabVersion("noisymag_cleanphase", "|noisy| ∠clean", "swap", combine(Y, S, cfg, len(y)),
                          {"magnitude": "noisy", "phase": "clean", "stft": stft_params}))
    return out


def enhanced_swaps(name: str, tag: str, enhanced: np.ndarray, noisy: np.ndarray, cfg: StftConfig,
                   clean_aligned: np.ndarray | None = None) -> list[LabVersion]:
    """``|E| ∠noisy`` and (with a reference) ``|E| ∠clean`` for an enhanced version ``E`` named ``name``
    (file tag ``tag``); ``enhanced`` has the recording's length."""
    y = np.asarray(noisy, np.float64).reshape(-1)
    e = np.asarray(enhanced, np.float64).reshape(-1)
    if len(e) != len(y):
        raise ValueError(f"{name}: the enhanced version has {len(e)} samples, the recording {len(y)}")
    E, Y = stft(e, cfg), stft(y, cfg)
    stft_params = cfg.to_dict()
    out = [LabVersion(f"{tag}_noisyphase", f"|{name}| ∠noisy", "swap", combine(E, Y, cfg, len(y)),
                      {"magnitude": name, "phase": "noisy", "stft": stft_params})]
    if clean_aligned is not None:
        S = stft(np.asarray(clean_aligned, np.float64), cfg)
        out.append(LabVersion(f"{tag}_cleanphase", f"|{name}| ∠clean", "swap", combine(E, S, cfg, len(y)),
                              {"magnitude": name, "phase": "clean", "stft": stft_params}))
    return out


def reconstruct_versions(source_name: str, source_tag: str, magnitude_signal: np.ndarray, noisy: np.ndarray,
                         cfg: StftConfig, *, iterations: int = 100, init: str = "random", seed: int = 0,
                         momentum: float = FGLA_MOMENTUM, methods: Sequence[str] = ("gla", "fgla")
                         ) -> Generator[Progress, None, list[LabVersion]]:
    """Griffin–Lim (``gla``) and fast Griffin–Lim (``fgla``) from the STFT magnitude of
    ``magnitude_signal`` (the clean reference, an enhanced version, or a masked noisy signal), tags
    ``gla_<source_tag>`` / ``fgla_<source_tag>``; a generator yielding :class:`Progress`."""
    y = np.asarray(noisy, np.float64).reshape(-1)
    a = np.abs(stft(np.asarray(magnitude_signal, np.float64).reshape(-1)[:len(y)], cfg))
    if a.shape[0] < cfg.frame_count(len(y)):
        a = np.concatenate([a, np.zeros((cfg.frame_count(len(y)) - a.shape[0], a.shape[1]), a.dtype)])
    Y = stft(y, cfg) if init == "noisy" else None
    out = []
    for i, method in enumerate(methods):
        alpha = momentum if method == "fgla" else 0.0
        rec = yield from rescaled(griffin_lim(a, cfg, len(y), iterations=iterations, momentum=alpha, init=init,
                                              noisy_spec=Y, seed=seed), i / len(methods), 1 / len(methods),
                                  f"{source_name}: ")
        label = f"{'FGLA' if method == 'fgla' else 'GLA'} |{source_name}|"
        params = {"method": method, "magnitude": source_name, "iterations": iterations, "init": init,
                  "momentum": alpha, "stft": cfg.to_dict(), "final_inconsistency": rec.inconsistency,
                  "final_spectral_convergence": float(rec.spectral_convergence[-1])}
        if init == "random":
            params["seed"] = seed
        out.append(LabVersion(f"{method}_{source_tag}", label, "reconstruction", rec.signal, params,
                              reconstruction=rec))
    return out



# ----------------------------------------------------------------------------------------- the whole lab


@dataclass
class LabResult:
    """Everything :func:`run_lab` made for one recording.

    Attributes:
        versions: oracles, swaps and reconstructions in table order.
        reference: the aligned reference, or ``None`` without one.
        notes: what could not be made and why (e.g. oracle rows without a reference).
        cfg: the STFT settings.
    """

    versions: list[LabVersion]
    reference: AlignedReference | None
    notes: list[str]
    cfg: StftConfig


#: Note given when oracle masks and swaps are asked for without a reference.
NEEDS_REFERENCE = "oracle masks (IBM, IRM, IAM, PSM, cIRM) and swaps with the clean phase or magnitude need a " \
                  "clean reference"


def gla_source_names(enhanced_names: Sequence[str], has_reference: bool) -> list[str]:
    """Default magnitudes to reconstruct: the clean reference (when there is one) and every enhanced
    version; the noisy recording when there is neither."""
    names = (["clean"] if has_reference else []) + list(enhanced_names)
    return names or ["noisy"]


def run_lab(noisy: np.ndarray, sample_rate: int, cfg: StftConfig, *, reference: np.ndarray | None = None,
            reference_rate: int | None = None, reference_name: str = "reference",
            enhanced: Sequence[tuple[str, str, np.ndarray]] = (), params: MaskParams = MaskParams(),
            gla_iterations: int = 100, gla_init: str = "random", gla_seed: int = 0,
            gla_sources: Sequence[str] | None = None, momentum: float = FGLA_MOMENTUM
            ) -> Generator[Progress, None, LabResult]:
    """Make every oracle, swap and reconstruction for one recording; a generator yielding :class:`Progress`.

    Args:
        noisy: ``(n,)`` or ``(n, ch)`` float audio at ``sample_rate`` (multichannel averaged to mono).
        reference: the clean speech at ``reference_rate`` (default ``sample_rate``), or ``None``: then only
            ``|E| ∠noisy`` swaps and reconstructions are made and :attr:`LabResult.notes` says why.
        enhanced: ``(name, tag, audio)`` per enhanced version, audio ``(n,)`` aligned with ``noisy``.
        gla_sources: magnitudes to reconstruct by name: ``clean``, ``noisy``, a mask kind (``irm`` ...,
            the masked noisy magnitude) or an enhanced version's name (default :func:`gla_source_names`).

    Raises:
        PhaseLabError: a reference that does not match (see :func:`align_reference`), an unknown GLA
            source, or a source that needs the missing reference.
    """
    y = _mono64(noisy)
    notes: list[str] = []
    ref = None
    if reference is not None:
        ref = align_reference(y, sample_rate, reference, reference_rate or sample_rate, name=reference_name)
    else:
        notes.append(NEEDS_REFERENCE)
    by_name = {name: (tag, _mono64(audio)) for name, tag, audio in enhanced}
    sources = list(gla_sources) if gla_sources is not None else gla_source_names(list(by_name), ref is not None)
    for src in sources:
        if src not in by_name and src not in ("clean", "noisy") and src not in MASK_KINDS:
            raise PhaseLabError(f"unknown reconstruction source {src!r}; choose clean, noisy, "
                                f"{', '.join(MASK_KINDS)} or one of the models ({', '.join(by_name) or 'none'})")
        if ref is None and (src == "clean" or src in MASK_KINDS):
            raise PhaseLabError(f"reconstruction from {src!r} needs a clean reference")
    versions: list[LabVersion] = []
    steps = 1 + len(by_name) + len(sources)
    yield Progress(0.0, "oracle masks")
    if ref is not None:
        versions += oracle_versions(y, ref.clean, cfg, params)
    for i, (name, (tag, e)) in enumerate(by_name.items()):
        yield Progress((1 + i) / steps, f"swaps of {name}")
        versions += enhanced_swaps(name, tag, e, y, cfg, ref.clean if ref is not None else None)
    oracle_audio = {v.tag: v.audio for v in versions if v.kind == "oracle"}
    for i, src in enumerate(sources):
        if src == "clean":
            sig, tag = ref.clean, "clean"
        elif src == "noisy":
            sig, tag = y, "noisy"
        elif src in MASK_KINDS:
            sig, tag = oracle_audio[src], src
        else:
            tag, sig = by_name[src]
        versions += yield from rescaled(
            reconstruct_versions(src, tag, sig, y, cfg, iterations=gla_iterations, init=gla_init, seed=gla_seed,
                                 momentum=momentum),
            (1 + len(by_name) + i) / steps, 1 / steps, "")
    yield Progress(1.0, "done")
    return LabResult(versions, ref, notes, cfg)


# -------------------------------------------------------------------------------------------- the table

#: Metrics of the phase-lab table unless more are asked for.
DEFAULT_METRICS = ("pesq_wb", "estoi", "si_sdr")


@dataclass(frozen=True)
class LabRow:
    """One cell of the long-form table: ``file, version, metric, value, unit`` (+ why it is empty)."""

    file: str
    version: str
    metric: str
    value: float | None
    unit: str
    reason: str = ""


def score_rows(file: str, signals: Sequence[tuple[str, np.ndarray]], sample_rate: int, reference: np.ndarray,
               reference_rate: int, metrics: Sequence[str] = DEFAULT_METRICS
               ) -> Generator[Progress, None, list[LabRow]]:
    """Score ``(version tag, audio)`` signals against the clean reference with the same
    :func:`~workbench.core.measure.scoring.score_signal` as ``workbench evaluate`` and the metrics panel;
    a generator yielding :class:`Progress`, returning :class:`LabRow` s."""
    rows: list[LabRow] = []
    for i, (tag, audio) in enumerate(signals):
        yield Progress(i / max(len(signals), 1), f"measuring {tag}")
        sc = score_signal(audio, sample_rate, reference, reference_rate, reference_free=False, metrics=metrics)
        for k in metrics:
            m = sc.metrics[k]
            # An exact reconstruction (the unbounded cIRM) has an infinite SI-SDR: the metric gives no
            # number and says so; the table reports inf, keeping the reason.
            value = math.inf if m.value is None and "infinite" in m.reason else m.value
            rows.append(LabRow(file, tag, k, value, m.unit, m.reason))
    yield Progress(1.0, "done")
    return rows


LAB_CSV_COLUMNS = ("file", "version", "metric", "value", "unit", "reason")


def rows_csv(rows: Iterable[LabRow]) -> str:
    """Long-form CSV text: ``file, version, metric, value, unit, reason`` (value empty when there is none)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LAB_CSV_COLUMNS)
    for r in rows:
        w.writerow([r.file, r.version, r.metric, "" if r.value is None else repr(float(r.value)), r.unit, r.reason])
    return buf.getvalue()


def format_rows(rows: Sequence[LabRow], labels: dict[str, str] | None = None, digits: int = 2) -> str:
    """A plain-text table, one line per version (in first-seen order), one column per metric."""
    labels = labels or {}
    versions = list(dict.fromkeys(r.version for r in rows))
    metrics = list(dict.fromkeys(r.metric for r in rows))
    cell = {(r.version, r.metric): r for r in rows}
    head = ["version"] + [f"{METRIC_SPECS[k].label} {'↑' if METRIC_SPECS[k].higher_is_better else '↓'}"
                          for k in metrics]

    def fmt(r: LabRow | None) -> str:
        return "n/a" if r is None or r.value is None else f"{r.value:.{digits}f}"

    body = [[labels.get(v, v)] + [fmt(cell.get((v, k))) for k in metrics] for v in versions]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths)))
              for b in body]
    return "\n".join(lines)


def convergence_lines(versions: Sequence[LabVersion]) -> list[str]:
    """One line per reconstruction: spectral convergence at 0, 1, 10, 50 … N iterations and the final
    inconsistency, e.g. ``fgla_clean: SC 0.647 (0) 0.381 (1) 0.130 (10) 0.051 (50); inconsistency 0.051``."""
    out = []
    for v in versions:
        rec = v.reconstruction
        if rec is None:
            continue
        its = sorted({i for i in (0, 1, 10, 50, 100, 200, 500, rec.iterations) if i <= rec.iterations})
        sc = " ".join(f"{rec.spectral_convergence[i]:.3f} ({i})" for i in its)
        out.append(f"{v.tag}: spectral convergence {sc}; final inconsistency {rec.inconsistency:.3f}")
    return out


def render_figure(rows: Sequence[LabRow], versions: Sequence[LabVersion], labels: dict[str, str] | None = None,
                  kinds: dict[str, str] | None = None):
    """A matplotlib :class:`~matplotlib.figure.Figure` (Agg canvas, no pyplot state): one bar panel per
    metric (one bar per version, coloured by kind) and, when there are reconstructions, their spectral
    convergence per iteration on a log axis.

    Args:
        labels: display name per row version and per reconstruction tag (default: as given).
        kinds: lab kind per row version (default: the tags of ``versions``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = labels or {}
    kinds = kinds if kinds is not None else {v.tag: v.kind for v in versions}
    names = list(dict.fromkeys(r.version for r in rows))
    metrics = list(dict.fromkeys(r.metric for r in rows))
    recs = [v for v in versions if v.reconstruction is not None]
    panels = len(metrics) + (1 if recs else 0)
    fig = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 2.8 * panels + 0.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    colour = {"oracle": "C2", "swap": "C1", "reconstruction": "C4"}
    cell = {(r.version, r.metric): r.value for r in rows}
    x = np.arange(len(names))
    for i, k in enumerate(metrics):
        ax = fig.add_subplot(panels, 1, i + 1)
        vals = np.array([np.nan if cell.get((n, k)) is None else cell[(n, k)] for n in names], np.float64)
        finite = vals[np.isfinite(vals)]
        top = float(finite.max()) if finite.size else 1.0
        inf = np.isposinf(vals)
        heights = np.where(inf, top * 1.15 if top > 0 else 1.0, vals)
        bars = ax.bar(x, heights, color=[colour.get(kinds.get(n), "C0") for n in names])
        for j in np.flatnonzero(inf):   # exact reconstructions: drawn just above the rest, marked ∞
            bars[j].set_hatch("//")
            ax.text(x[j], heights[j], "∞", ha="center", va="bottom", fontsize=9)
        if inf.any():
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi + 0.12 * (hi - lo))   # room for the ∞ mark under the title
        spec = METRIC_SPECS[k]
        ax.set_title(f"{spec.label} {'↑' if spec.higher_is_better else '↓'}", fontsize=9)
        ax.set_xticks(x, [labels.get(n, n) for n in names], rotation=35, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    if recs:
        ax = fig.add_subplot(panels, 1, panels)
        for v in recs:
            sc = v.reconstruction.spectral_convergence
            ax.semilogy(np.arange(len(sc)), np.maximum(sc, 1e-6), label=labels.get(v.tag, v.tag),
                        linestyle="-" if v.reconstruction.momentum > 0 else "--")
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("spectral convergence", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


# -------------------------------------------------------------------------------- versions of a recording

#: Provenance kind of each lab version kind (values of :class:`~workbench.core.provenance.VersionKind`).
PROVENANCE_KINDS = {"oracle": "oracle", "swap": "swap", "reconstruction": "reconstruction"}


@dataclass(frozen=True)
class MaskStats:
    """The effective mask ``M = E / Y`` of one version, summarised.

    Attributes:
        version: its name.
        phase_deviation_rad: :meth:`EffectiveMask.phase_deviation_rad` (≈ 0.02 for a magnitude-only model).
        cirm_distance_db: :attr:`MaskDistance.weighted_db` against the cIRM, or ``None`` without reference.
    """

    version: str
    phase_deviation_rad: float
    cirm_distance_db: float | None


@dataclass
class RecordingLab:
    """What :func:`lab_for_recording` added and measured.

    Attributes:
        versions: the :class:`~workbench.core.document.recording.Version` s added to the recording.
        lab: the :class:`LabResult` (signals, reconstructions, notes).
        rows: PESQ-WB, ESTOI, SI-SDR … per version (``version`` = version name), empty without reference.
        mask_stats: effective-mask summary per enhanced and lab version.
        channel: the recording channel analysed.
    """

    versions: list
    lab: LabResult
    rows: list[LabRow]
    mask_stats: list[MaskStats]
    channel: int


def lab_for_recording(recording, cfg: StftConfig, *, reference: tuple[np.ndarray, int] | None = None,
                      reference_name: str = "reference", channel: int = 0, params: MaskParams = MaskParams(),
                      gla_iterations: int = 100, gla_init: str = "random", gla_seed: int = 0,
                      gla_sources: Sequence[str] | None = None, metrics: Sequence[str] = DEFAULT_METRICS,
                      kinds: Sequence[str] = LAB_KINDS) -> Generator[Progress, None, RecordingLab]:
    """Make the phase-lab versions of one channel of a :class:`~workbench.core.document.recording.Recording`, add
    them as versions (typed provenance, parameters in ``provenance.extra``), then measure every version;
    a generator yielding :class:`Progress` (closing it before the versions are added adds none).

    The enhanced versions of the recording are the models: each gets ``|E| ∠noisy`` (and ``|E| ∠clean``)
    and, by default, Griffin–Lim reconstructions of its magnitude.

    Args:
        reference: ``(audio, rate)`` of the clean speech, or ``None`` (then oracle and clean-phase rows are
            left out and :attr:`LabResult.notes` says they need one).
        kinds: which of :data:`LAB_KINDS` to add.
    """
    ch = min(max(int(channel), 0), recording.source.channels - 1)
    y = np.asarray(recording.source.read_all()[:, ch], np.float64)
    rate = recording.source.sample_rate
    models = []
    for v in recording.versions:
        if v.kind == "enhanced":
            a = v.source.read_all()
            models.append((v.name, v.name, a[:, min(ch, a.shape[1] - 1)]))
    lab = yield from rescaled(
        run_lab(y, rate, cfg, reference=None if reference is None else reference[0],
                reference_rate=None if reference is None else reference[1], reference_name=reference_name,
                enhanced=models, params=params, gla_iterations=gla_iterations, gla_init=gla_init,
                gla_seed=gla_seed, gla_sources=gla_sources if "reconstruction" in kinds else []),
        0.0, 0.6, "")
    added = []
    for lv in lab.versions:
        if lv.kind not in kinds:
            continue
        extra = {"phase_lab_tag": lv.tag, "label": lv.label, **lv.params}
        if lv.reconstruction is not None:
            extra["spectral_convergence"] = [float(x) for x in lv.reconstruction.spectral_convergence]
        if lab.reference is not None:
            extra["reference"] = reference_name
            extra["reference_lag_samples"] = lab.reference.lag_samples
        prov = Provenance(VersionKind(PROVENANCE_KINDS[lv.kind]), parent="original", channels=(ch,),
                          model_settings={k: v for k, v in lv.params.items() if k != "stft"}, extra=extra)
        added.append(recording.add_version(lv.audio, rate, prov, name=lv.label))
    yield Progress(0.65, "measuring")
    by_name = [(v.name, v) for v in recording.versions if v.kind == "original"] + \
              [(n, None) for n, _, _ in models] + [(v.name, v) for v in added]
    audio_of = {"original": y, **{n: a for n, _, a in models}}
    for v in added:
        audio_of[v.name] = v.source.read_all()[:, 0]
    rows: list[LabRow] = []
    if lab.reference is not None:
        signals = [(name, audio_of.get(name, y)) for name, _ in by_name]
        rows = yield from rescaled(score_rows(recording.name, signals, rate, reference[0], reference[1], metrics),
                                   0.65, 0.3, "")
    Y = stft(y, cfg)
    S = stft(lab.reference.clean, cfg) if lab.reference is not None else None
    stats = []
    for name, _ in by_name[1:]:
        m = effective_mask(stft(audio_of[name], cfg), Y)
        dist = distance_to_cirm(m, S, Y).weighted_db if S is not None else None
        stats.append(MaskStats(name, m.phase_deviation_rad(), dist))
    yield Progress(1.0, "done")
    return RecordingLab(added, lab, rows, stats, ch)
