"""Quality metrics with a clean reference (intrusive), and pairing of noisy/clean files.

Every metric is reported as a :class:`Metric`: a value with its name, unit, direction and range, or
``value=None`` with a ``reason`` when it cannot be computed (too short, silent reference, NaN, ...).
Nothing here raises for bad *signals*; bad *files* raise :class:`~workbench.core.errors.AudioFileError`.

Conventions:
    * ``reference`` is the clean signal ``s``, ``estimate`` the signal under test ``ŝ`` (enhanced or noisy);
      both mono ``(n,)`` float at the same rate ``sample_rate`` (Hz).
    * Before measuring, the estimate is aligned to the reference by cross-correlation (:func:`align`):
      the lag (samples, positive = estimate late) is reported, then both are trimmed to the common length.
    * Metrics that need a fixed rate resample with soxr (PESQ-WB 16 kHz, PESQ-NB 8 kHz); STOI/ESTOI resample
      internally (pystoi, 10 kHz).

Metric keys (``Metric.name``) are stable and used in CSV files: see :data:`METRIC_SPECS`.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Generator, Iterable, Sequence

import numpy as np

from . import native_calls
from ..audio.audio_io import downmix, resample
from ..audio.correlation import estimate_lag
from ..audio.formats import READ_SUFFIXES
from ..errors import Cancelled, ModelError, WorkbenchError
from ..progress import Progress, rescaled, run_to_end
from ..views.stft import StftConfig, stft
from .dnsmos import DNSMOS_METRICS, FAST_MODE_NOTE, Dnsmos, DnsmosCost, shared_dnsmos

# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MetricSpec:
    """One column of the metric table: what it is and how it is computed.

    Attributes:
        name: stable key (``pesq_wb``, ``si_sdr``, ...), used in CSV files and tables.
        label: short human name (``PESQ-WB``).
        unit: ``dB``, ``MOS`` or ``""`` for dimensionless values.
        higher_is_better: direction; tables highlight the best value accordingly.
        range: ``(low, high)`` theoretical/clamped bounds, ``None`` where unbounded.
        intrusive: needs a clean reference.
        description: the definition in one or two sentences.
        compute: with a reference (``intrusive``): ``compute(reference, estimate, sample_rate) -> Metric`` on
            the aligned mono float64 signals (:func:`intrusive_metrics` runs it). Without a reference:
            ``compute(estimate, sample_rate, fast) -> {key: Metric}`` for every column of its :attr:`group`
            (one run gives them all), or a generator yielding :class:`~workbench.core.progress.Progress` and
            returning that dict (:func:`reference_free_metrics_steps` runs it once per group); ``estimate``
            is mono float32 ``(n,)``; ``fast`` asks for the metric's approximate fast mode where it has one.
        group: columns computed by one run share their group name (DNSMOS's four scores); ``""``: the
            column is its own group.
        group_label: the group's human name (``DNSMOS``; default :attr:`label`).
        fast_note: a metric with an approximate fast mode: the line that labels results measured in it.
        cost: a reference-free group's time estimate: ``cost()`` gives an object with
            ``estimate_clips_s(durations_s)`` and ``observe_clips(durations_s, elapsed_s)``
            (:class:`~workbench.core.measure.dnsmos.DnsmosCost`); ``None``: cheap, measured without asking.
    """

    name: str
    label: str
    unit: str
    higher_is_better: bool
    range: tuple[float | None, float | None]
    intrusive: bool
    description: str
    compute: Callable | None = field(default=None, compare=False, repr=False)
    group: str = ""
    group_label: str = ""
    fast_note: str = ""
    cost: Callable[[], object] | None = field(default=None, compare=False, repr=False)

    @property
    def group_key(self) -> str:
        return self.group or self.name


@dataclass(frozen=True)
class Metric:
    """One measured value (or the reason there is none).

    Attributes:
        name: key from :data:`METRIC_SPECS`.
        value: the number, or ``None`` when it could not be computed.
        unit, higher_is_better, range: copied from the spec so a result is self-describing.
        reason: why ``value`` is ``None`` (empty otherwise).
        label: human name.
    """

    name: str
    value: float | None
    unit: str
    higher_is_better: bool
    range: tuple[float | None, float | None]
    reason: str = ""
    label: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "value": self.value, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "range": list(self.range), "reason": self.reason}

    def formatted(self, digits: int = 2) -> str:
        if self.value is None:
            return "n/a"
        unit = f" {self.unit}" if self.unit and self.unit != "MOS" else ""
        return f"{self.value:.{digits}f}{unit}"


def _spec(name, label, unit, hib, rng, intrusive, desc, compute=None) -> MetricSpec:
    return MetricSpec(name, label, unit, hib, rng, intrusive, desc, compute)


def _one_run(group: str, group_label: str, compute, *, columns, fast_note: str = "", cost=None) -> list[MetricSpec]:
    """The columns ``(name, label, unit, higher_is_better, range, description)`` of a reference-free metric
    whose one run (``compute``) gives them all."""
    return [MetricSpec(name, label, unit, hib, rng, False, desc, compute, group, group_label, fast_note, cost)
            for name, label, unit, hib, rng, desc in columns]


#: Every metric the workbench computes, in table order: the one place a metric is added. ``workbench
#: evaluate``, ``workbench batch``, the Metrics panel and the phase lab loop over it (see
#: :func:`intrusive_keys`, :func:`reference_free_keys`, :func:`reference_free_metrics_steps`).
METRIC_SPECS: dict[str, MetricSpec] = {s.name: s for s in [
    _spec("pesq_wb", "PESQ-WB", "MOS", True, (1.04, 4.64), True,
          "ITU-T P.862.2 wide-band PESQ (MOS-LQO) at 16 kHz, `pesq` package",
          lambda s, e, sr: pesq_score(s, e, sr, "wb")),
    _spec("pesq_nb", "PESQ-NB", "MOS", True, (1.02, 4.55), True,
          "ITU-T P.862 narrow-band PESQ (MOS-LQO) at 8 kHz, `pesq` package",
          lambda s, e, sr: pesq_score(s, e, sr, "nb")),
    _spec("stoi", "STOI", "", True, (0.0, 1.0), True, "short-time objective intelligibility (pystoi)",
          lambda s, e, sr: stoi_score(s, e, sr, False)),
    _spec("estoi", "ESTOI", "", True, (-1.0, 1.0), True, "extended STOI (pystoi, extended=True)",
          lambda s, e, sr: stoi_score(s, e, sr, True)),
    _spec("si_sdr", "SI-SDR", "dB", True, (None, None), True,
          "scale-invariant SDR: zero-mean s, ŝ; a=<ŝ,s>/|s|²; 10·log10(|a·s|²/|a·s-ŝ|²)",
          lambda s, e, sr: si_sdr(s, e)),
    _spec("sdr", "SDR", "dB", True, (None, None), True,
          "BSS-Eval-style SDR: ŝ projected on 512 delayed copies of s (time-invariant distortion filter); "
          "10·log10(|P ŝ|²/|ŝ-P ŝ|²)",
          lambda s, e, sr: sdr(s, e)),
    _spec("snr", "SNR", "dB", True, (None, None), True, "plain SNR 10·log10(|s|²/|s-ŝ|²), no scaling",
          lambda s, e, sr: snr(s, e)),
    _spec("seg_snr", "segSNR", "dB", True, (-10.0, 35.0), True,
          "mean over 30 ms Hann frames (75% overlap) of 10·log10(|s|²/|s-ŝ|²), each clamped to [-10, 35] dB",
          lambda s, e, sr: segmental_snr(s, e, sr)),
    _spec("lsd", "LSD", "dB", False, (0.0, None), True,
          "log-spectral distance: mean over frames of sqrt(mean over bins (10·log10 P_s - 10·log10 P_ŝ)²)",
          lambda s, e, sr: log_spectral_distance(s, e, sr)),
    _spec("cepstral_distance", "CD", "dB", False, (0.0, 10.0), True,
          "Kitawaki LPC cepstral distance (10/ln10)·sqrt(2·Σ(c_k-ĉ_k)²), frames clamped to [0, 10], "
          "mean of the best 95% of frames",
          lambda s, e, sr: cepstral_distance(s, e, sr)),
    _spec("mae", "MAE", "", False, (0.0, None), True, "waveform mean absolute error mean|s-ŝ|",
          lambda s, e, sr: waveform_errors(s, e)[0]),
    _spec("mse", "MSE", "", False, (0.0, None), True, "waveform mean squared error mean(s-ŝ)²",
          lambda s, e, sr: waveform_errors(s, e)[1]),
    _spec("ccmse", "cCMSE", "", False, (0.0, None), True,
          "compressed complex spectral distance (c=0.3): 0.3·mean|S^c-Ŝ^c|² + 0.7·mean(|S|^c-|Ŝ|^c)², "
          "S^c = |S|^c·e^{j∠S}",
          lambda s, e, sr: compressed_complex_distance(s, e, sr)),
    _spec("mrstft", "MR-STFT", "", False, (0.0, None), True,
          "multi-resolution STFT distance: mean over 3 resolutions of spectral convergence + mean|log|S|-log|Ŝ||",
          lambda s, e, sr: multi_resolution_stft_distance(s, e)),
    *_one_run("dnsmos", "DNSMOS", lambda x, sr, fast: dnsmos_metrics_steps(x, sr, fast=fast),
               fast_note=FAST_MODE_NOTE, cost=DnsmosCost, columns=[
                   ("dnsmos_sig", "DNSMOS SIG", "MOS", True, (1.0, 5.0), "DNSMOS P.835 speech signal quality"),
                   ("dnsmos_bak", "DNSMOS BAK", "MOS", True, (1.0, 5.0), "DNSMOS P.835 background noise quality"),
                   ("dnsmos_ovrl", "DNSMOS OVRL", "MOS", True, (1.0, 5.0), "DNSMOS P.835 overall quality"),
                   ("dnsmos_p808", "DNSMOS P.808", "MOS", True, (1.0, 5.0), "DNSMOS P.808 overall quality")]),
]}



def intrusive_keys() -> tuple[str, ...]:
    """Keys of the metrics that need a clean reference, in table order."""
    return tuple(k for k, s in METRIC_SPECS.items() if s.intrusive)


def reference_free_keys() -> tuple[str, ...]:
    """Keys of the metrics measured without a reference (DNSMOS's columns ...), in table order."""
    return tuple(k for k, s in METRIC_SPECS.items() if not s.intrusive)


def reference_free_groups(keys: Iterable[str] | None = None) -> dict[str, list[str]]:
    """``{group: [keys]}`` of the reference-free metrics (those of ``keys`` when given), in table order: each
    group is one run of its compute function."""
    wanted = reference_free_keys() if keys is None else [k for k in reference_free_keys() if k in set(keys)]
    out: dict[str, list[str]] = {}
    for k in wanted:
        out.setdefault(METRIC_SPECS[k].group_key, []).append(k)
    return out


def reference_free_label(keys: Iterable[str] | None = None) -> str:
    """The reference-free metrics by their groups' names, for people: ``DNSMOS``."""
    specs = [METRIC_SPECS[ks[0]] for ks in reference_free_groups(keys).values()]
    return " + ".join(s.group_label or s.label for s in specs)


def fast_mode_notes(keys: Iterable[str] | None = None) -> list[str]:
    """The labels of the metrics among ``keys`` (default every reference-free one) that have a fast mode,
    one per group."""
    return [METRIC_SPECS[ks[0]].fast_note for ks in reference_free_groups(keys).values()
            if METRIC_SPECS[ks[0]].fast_note]


def make_metric(name: str, value: float | None, reason: str = "") -> Metric:
    """A :class:`Metric` for key ``name``; a non-finite value becomes ``None`` with a reason."""
    spec = METRIC_SPECS[name]
    if value is not None:
        value = float(value)
        if not math.isfinite(value):
            reason = reason or f"result was {value}"
            value = None
    return Metric(name, value, spec.unit, spec.higher_is_better, spec.range, reason if value is None else "",
                  spec.label)


def failed(name: str, reason: str) -> Metric:
    return make_metric(name, None, reason)


# ------------------------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class Alignment:
    """Result of :func:`align`.

    Attributes:
        lag_samples: delay of the estimate relative to the reference (positive: estimate is late).
        reference, estimate: trimmed, aligned ``(m,)`` float64 signals of equal length.
        correlation: normalised cross-correlation peak in [-1, 1] (NaN when a signal is silent).
    """

    lag_samples: int
    reference: np.ndarray
    estimate: np.ndarray
    correlation: float


def align(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, *, max_lag_s: float = 0.25,
          enabled: bool = True) -> Alignment:
    """Align ``estimate`` to ``reference`` by cross-correlation and trim both to the common length.

    Args:
        reference, estimate: mono ``(n,)`` and ``(m,)`` signals at ``sample_rate`` Hz.
        max_lag_s: largest delay searched, seconds (either direction).
        enabled: ``False`` only trims to the common length (lag 0).
    """
    s = np.asarray(reference, np.float64).reshape(-1)
    e = np.asarray(estimate, np.float64).reshape(-1)
    lag, corr = (estimate_lag(s, e, int(max_lag_s * sample_rate)) if enabled else (0, float("nan")))
    if lag > 0:
        e = e[lag:]
    elif lag < 0:
        s = s[-lag:]
    n = min(len(s), len(e))
    return Alignment(lag, s[:n], e[:n], corr)


# ----------------------------------------------------------------------------------- single metrics


#: Error-to-signal energy ratio below which a ratio metric is reported as infinite (-140 dB: the float64
#: rounding of the projection itself, so larger values would be numerical noise, not quality).
_EXACT = 1e-14


def _to_rate(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    return resample(x, rate_in, rate_out, dtype=np.float64)


def pesq_score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, mode: str = "wb") -> Metric:
    """PESQ (``mode="wb"`` P.862.2 at 16 kHz, ``"nb"`` P.862 at 8 kHz) after soxr resampling."""
    from pesq import pesq, PesqError  # local: the C extension is only needed when PESQ is asked for

    name = f"pesq_{mode}"
    rate = 16000 if mode == "wb" else 8000
    if sample_rate < rate:
        return failed(name, f"needs at least {rate} Hz audio, got {sample_rate} Hz")
    s = _to_rate(reference, sample_rate, rate)
    e = _to_rate(estimate, sample_rate, rate)
    if not np.any(e):
        return failed(name, "estimate is silent")
    if len(s) < rate // 4:
        return failed(name, f"signal too short for PESQ ({len(s) / rate:.2f} s; needs at least 0.25 s)")
    try:
        # Its C library holds the interpreter lock for the whole call: in the window it runs in a helper
        # process (see native_calls), so the event loop keeps running.
        return make_metric(name, native_calls.call(pesq, rate, s, e, mode))
    except PesqError as exc:
        return failed(name, f"PESQ failed: {type(exc).__name__} {exc}".strip())
    except Exception as exc:  # the C library reports some problems as generic errors
        return failed(name, f"PESQ failed: {exc}")


def stoi_score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, extended: bool = False) -> Metric:
    """STOI or ESTOI (``extended=True``) with pystoi (which resamples to 10 kHz itself)."""
    from pystoi import stoi

    name = "estoi" if extended else "stoi"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = stoi(np.asarray(reference, np.float64), np.asarray(estimate, np.float64), sample_rate,
                         extended=extended)
        except Exception as exc:
            return failed(name, f"{METRIC_SPECS[name].label} failed: {exc}")
    for w in caught:
        # pystoi returns a tiny placeholder value with this warning when there are too few speech frames.
        if "Not enough STFT frames" in str(w.message):
            return failed(name, "too little speech for STOI (needs at least 30 frames of 25.6 ms above -40 dB)")
    return make_metric(name, value)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> Metric:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean signals.

    ``a = <ŝ, s> / |s|²``, ``SI-SDR = 10·log10(|a·s|² / |a·s - ŝ|²)``.
    """
    s = np.asarray(reference, np.float64) - np.mean(reference)
    e = np.asarray(estimate, np.float64) - np.mean(estimate)
    ss = float(np.dot(s, s))
    if ss <= 0:
        return failed("si_sdr", "reference is silent")
    if not np.any(e):
        return failed("si_sdr", "estimate is silent")
    target = (float(np.dot(e, s)) / ss) * s
    noise = float(np.sum((target - e) ** 2))
    tt = float(np.dot(target, target))
    if tt <= 0:
        return failed("si_sdr", "estimate is orthogonal to the reference")
    if noise <= _EXACT * tt:
        return failed("si_sdr", "estimate is a scaled copy of the reference (infinite SI-SDR)")
    return make_metric("si_sdr", 10 * math.log10(tt / noise))


def sdr(reference: np.ndarray, estimate: np.ndarray, filter_length: int = 512) -> Metric:
    """BSS-Eval v3 style SDR for one source, in dB.

    The estimate is projected onto the span of ``filter_length`` delayed copies of the reference
    (``s[n-k]``, ``k = 0..L-1``): ``P ŝ = Σ_k g_k s[n-k]`` with ``g`` solving the Toeplitz normal
    equations ``R g = r`` (``R`` the reference autocorrelation, ``r`` the reference/estimate
    cross-correlation). ``SDR = 10·log10(|P ŝ|² / |ŝ - P ŝ|²)``; a short time-invariant filter (EQ,
    small delay) is therefore not counted as distortion, unlike SI-SDR.
    """
    import scipy.linalg  # local: imported on first use, not at start-up
    import scipy.signal  # local: imported on first use, not at start-up
    s = np.asarray(reference, np.float64)
    e = np.asarray(estimate, np.float64)
    n = len(s)
    if float(np.dot(s, s)) <= 0:
        return failed("sdr", "reference is silent")
    if not np.any(e):
        return failed("sdr", "estimate is silent")
    L = min(filter_length, n)
    nfft = 1 << int(math.ceil(math.log2(2 * n)))
    S = np.fft.rfft(s, nfft)
    E = np.fft.rfft(e, nfft)
    acf = np.fft.irfft(np.abs(S) ** 2, nfft)[:L]
    xcf = np.fft.irfft(np.conj(S) * E, nfft)[:L]
    acf = acf.copy()
    acf[0] += 1e-10 * acf[0]  # diagonal loading: keeps the solve stable for band-limited references
    try:
        g = scipy.linalg.solve_toeplitz(acf, xcf)
    except np.linalg.LinAlgError:
        return failed("sdr", "reference autocorrelation is singular")
    proj = scipy.signal.fftconvolve(s, g)[:n]
    err = float(np.sum((e - proj) ** 2))
    num = float(np.sum(proj ** 2))
    if num <= 0:
        return failed("sdr", "estimate has no component along the reference")
    if err <= _EXACT * num:
        return failed("sdr", "estimate is a filtered copy of the reference (infinite SDR)")
    return make_metric("sdr", 10 * math.log10(num / err))


def snr(reference: np.ndarray, estimate: np.ndarray) -> Metric:
    """Plain SNR ``10·log10(|s|² / |s - ŝ|²)`` in dB (no scaling, so gain errors count)."""
    s = np.asarray(reference, np.float64)
    e = np.asarray(estimate, np.float64)
    ss, err = float(np.dot(s, s)), float(np.sum((s - e) ** 2))
    if ss <= 0:
        return failed("snr", "reference is silent")
    if err <= _EXACT * ss:
        return failed("snr", "estimate equals the reference (infinite SNR)")
    return make_metric("snr", 10 * math.log10(ss / err))


def _frames(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """``(count, frame)`` view of full frames of ``x`` (no padding)."""
    if len(x) < frame:
        return np.zeros((0, frame))
    return np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]


def segmental_snr(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, frame_s: float = 0.03,
                  overlap: float = 0.75, low_db: float = -10.0, high_db: float = 35.0) -> Metric:
    """Segmental SNR in dB: Hann-windowed 30 ms frames, 75% overlap, per-frame SNR clamped to [-10, 35]."""
    import scipy.signal  # local: imported on first use, not at start-up
    frame = max(int(round(frame_s * sample_rate)), 8)
    hop = max(int(round(frame * (1 - overlap))), 1)
    win = scipy.signal.get_window("hann", frame, fftbins=False)
    s = _frames(np.asarray(reference, np.float64), frame, hop) * win
    e = _frames(np.asarray(estimate, np.float64), frame, hop) * win
    if len(s) == 0:
        return failed("seg_snr", f"signal shorter than one {1000 * frame_s:.0f} ms frame")
    if not np.any(s):
        return failed("seg_snr", "reference is silent")
    eps = np.finfo(np.float64).eps
    per = 10 * np.log10(np.sum(s ** 2, axis=1) / (np.sum((s - e) ** 2, axis=1) + eps) + eps)
    return make_metric("seg_snr", float(np.mean(np.clip(per, low_db, high_db))))


def _analysis_cfg(sample_rate: int) -> StftConfig:
    """32 ms Hann frames, 8 ms hop at any rate (512/128 at 16 kHz)."""
    n_fft = 1 << int(round(math.log2(0.032 * sample_rate)))
    return StftConfig(n_fft=n_fft, hop=n_fft // 4, window="hann", center=True)


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                          floor: float = 1e-10) -> Metric:
    """LSD in dB: ``mean_t sqrt(mean_k (10·log10 P_s(t,k) - 10·log10 P_ŝ(t,k))²)``.

    Powers ``P = |STFT|²`` (32 ms Hann, 8 ms hop) are floored at ``floor`` (−100 dB) so digital silence
    gives a finite value.
    """
    cfg = _analysis_cfg(sample_rate)
    s = np.asarray(reference, np.float32)
    if len(s) < cfg.n_fft:
        return failed("lsd", f"signal shorter than one {cfg.n_fft}-sample frame")
    if not np.any(s):
        return failed("lsd", "reference is silent")
    ps = np.abs(stft(s, cfg).astype(np.complex128)) ** 2
    pe = np.abs(stft(np.asarray(estimate, np.float32), cfg).astype(np.complex128)) ** 2
    d = 10 * np.log10(np.maximum(ps, floor)) - 10 * np.log10(np.maximum(pe, floor))
    return make_metric("lsd", float(np.mean(np.sqrt(np.mean(d ** 2, axis=1)))))


def _lpc(frame: np.ndarray, order: int) -> np.ndarray | None:
    """LPC coefficients ``a_1..a_p`` of ``A(z) = 1 + Σ a_k z^-k`` by the autocorrelation method."""
    import scipy.linalg  # local: imported on first use, not at start-up
    r = np.correlate(frame, frame, mode="full")[len(frame) - 1:len(frame) + order]
    if r[0] <= 0:
        return None
    r = r.copy()
    r[0] *= 1 + 1e-9  # slight white-noise correction keeps near-singular frames solvable
    try:
        return -scipy.linalg.solve_toeplitz(r[:order], r[1:order + 1])
    except np.linalg.LinAlgError:
        return None


def _lpc_cepstrum(a: np.ndarray) -> np.ndarray:
    """Cepstrum ``c_1..c_p`` of the all-pole model ``1/A(z)``: ``c_n = -a_n - (1/n)·Σ_{k<n} k·c_k·a_{n-k}``."""
    p = len(a)
    c = np.zeros(p)
    for n in range(1, p + 1):
        acc = a[n - 1]
        for k in range(1, n):
            acc += (k / n) * c[k - 1] * a[n - k - 1]
        c[n - 1] = -acc
    return c


def cepstral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, frame_s: float = 0.03,
                      keep_fraction: float = 0.95) -> Metric:
    """Kitawaki-style LPC cepstral distance in dB.

    Per 30 ms Hann frame (75% overlap): LPC order ``p = 10`` below 10 kHz, else 16; cepstra ``c``, ``ĉ``
    of the all-pole models; ``CD = (10/ln 10)·sqrt(2·Σ_{k=1..p} (c_k - ĉ_k)²)``, clamped to [0, 10].
    The mean is taken over the best ``keep_fraction`` of frames (the usual 95%, which discards a few
    outliers). Frames where either signal is digitally silent are skipped.
    """
    import scipy.signal  # local: imported on first use, not at start-up
    frame = max(int(round(frame_s * sample_rate)), 32)
    hop = max(frame // 4, 1)
    order = 10 if sample_rate < 10000 else 16
    win = scipy.signal.get_window("hann", frame, fftbins=False)
    fs = _frames(np.asarray(reference, np.float64), frame, hop)
    fe = _frames(np.asarray(estimate, np.float64), frame, hop)
    if len(fs) == 0:
        return failed("cepstral_distance", f"signal shorter than one {1000 * frame_s:.0f} ms frame")
    if not np.any(fs):
        return failed("cepstral_distance", "reference is silent")
    dists = []
    for xs, xe in zip(fs, fe):
        a_s, a_e = _lpc(xs * win, order), _lpc(xe * win, order)
        if a_s is None or a_e is None:
            continue
        diff = _lpc_cepstrum(a_s) - _lpc_cepstrum(a_e)
        dists.append(min(max(10 / math.log(10) * math.sqrt(2 * float(np.dot(diff, diff))), 0.0), 10.0))
    if not dists:
        return failed("cepstral_distance", "no frame with signal in both reference and estimate")
    d = np.sort(np.asarray(dists))
    keep = max(int(round(len(d) * keep_fraction)), 1)
    return make_metric("cepstral_distance", float(np.mean(d[:keep])))


def waveform_errors(reference: np.ndarray, estimate: np.ndarray) -> list[Metric]:
    """Waveform MAE ``mean|s-ŝ|`` and MSE ``mean(s-ŝ)²`` (full scale = 1.0)."""
    d = np.asarray(reference, np.float64) - np.asarray(estimate, np.float64)
    if len(d) == 0:
        return [failed("mae", "empty signal"), failed("mse", "empty signal")]
    return [make_metric("mae", float(np.mean(np.abs(d)))), make_metric("mse", float(np.mean(d ** 2)))]


def difference_levels(estimate: np.ndarray, reference: np.ndarray, block: int) -> tuple[float, float, int]:
    """How far ``estimate`` is from ``reference`` (same shape, time first, any channels), as the energy of
    ``d = estimate - reference`` relative to the reference's, ``10 log10(sum d^2 / sum ref^2)``: over the
    whole signal and in the worst block of ``block`` samples (a chunk seam hides in the first figure, not
    the second; the last block may be shorter). Blocks whose reference is near silence (mean square
    under 1e-6) are not ranked.

    Returns:
        ``(overall dB, worst block dB, worst block's first sample)``; -300 dB stands for no difference.
    """
    d = np.asarray(estimate, np.float64) - np.asarray(reference, np.float64)
    r = np.asarray(reference, np.float64)
    if d.shape != r.shape:
        raise ValueError(f"estimate has shape {d.shape}, reference {r.shape}")
    d, r = d.reshape(len(d), -1), r.reshape(len(r), -1)

    def db(num: float, den: float) -> float:
        return 10 * math.log10(max(num, 1e-30 * den) / den) if den > 0 else 0.0

    overall = db(float(np.sum(d * d)), float(np.sum(r * r)))
    worst, at = -300.0, 0
    block = max(int(block), 1)
    for i in range(0, len(r), block):  # the last block may be shorter
        e = float(np.sum(r[i:i + block] ** 2))
        if e > 1e-6 * len(r[i:i + block]) * r.shape[1]:
            level = db(float(np.sum(d[i:i + block] ** 2)), e)
            if level > worst:
                worst, at = level, i
    return overall, worst, at


def compressed_complex_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                                c: float = 0.3, alpha: float = 0.3) -> Metric:
    """Power-law compressed complex spectral distance (as in complex spectral mapping losses).

    With ``S`` the STFT (32 ms Hann, 8 ms hop, spectrum scaled by 1/Σw so a full-scale sine peaks near 0.5)
    and ``S^c = |S|^c·e^{j∠S}``: ``α·mean|S^c - Ŝ^c|² + (1-α)·mean(|S|^c - |Ŝ|^c)²`` with ``c = 0.3``,
    ``α = 0.3`` (complex term plus magnitude term, means over all time-frequency bins).
    """
    import scipy.signal  # local: imported on first use, not at start-up
    cfg = _analysis_cfg(sample_rate)
    s = np.asarray(reference, np.float32)
    if len(s) < cfg.n_fft:
        return failed("ccmse", f"signal shorter than one {cfg.n_fft}-sample frame")
    scale = 1.0 / float(np.sum(scipy.signal.get_window("hann", cfg.n_fft)))
    S = stft(s, cfg).astype(np.complex128) * scale
    E = stft(np.asarray(estimate, np.float32), cfg).astype(np.complex128) * scale
    ms, me = np.abs(S) ** c, np.abs(E) ** c
    Sc = ms * np.exp(1j * np.angle(S))
    Ec = me * np.exp(1j * np.angle(E))
    value = alpha * np.mean(np.abs(Sc - Ec) ** 2) + (1 - alpha) * np.mean((ms - me) ** 2)
    return make_metric("ccmse", float(value))


#: (fft size, hop, window length) of the multi-resolution STFT distance, as in Parallel WaveGAN.
MRSTFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


def multi_resolution_stft_distance(reference: np.ndarray, estimate: np.ndarray,
                                   resolutions: Sequence[tuple[int, int, int]] = MRSTFT_RESOLUTIONS) -> Metric:
    """Multi-resolution STFT distance (Yamamoto et al. 2020), computed with ``torch.stft``.

    For each resolution (Hann window, centred, reflect padding): spectral convergence
    ``‖|S|-|Ŝ|‖_F / ‖|S|‖_F`` plus log-magnitude distance ``mean|log|S| - log|Ŝ||`` (magnitudes
    floored at 1e-7); the result is the mean of both terms' sum over the resolutions.

    In the window torch is imported and run in the helper process of
    :mod:`~workbench.core.measure.native_calls` (importing it holds the interpreter lock for seconds).
    """
    value = native_calls.call(_mrstft_value, np.asarray(reference, np.float32), np.asarray(estimate, np.float32),
                              tuple(tuple(int(x) for x in r) for r in resolutions))
    return failed("mrstft", value) if isinstance(value, str) else make_metric("mrstft", value)


def _mrstft_value(reference: np.ndarray, estimate: np.ndarray, resolutions) -> float | str:
    """The distance of :func:`multi_resolution_stft_distance`, or why it cannot be computed (a sentence)."""
    import torch

    s = torch.as_tensor(reference)
    e = torch.as_tensor(estimate)
    if not torch.any(s != 0):
        return "reference is silent"
    total = 0.0
    for n_fft, hop, win_len in resolutions:
        if len(s) <= n_fft // 2:
            return f"signal too short for the {n_fft}-point resolution"
        w = torch.hann_window(win_len)
        ms = torch.stft(s, n_fft, hop, win_len, w, center=True, pad_mode="reflect", return_complex=True).abs()
        me = torch.stft(e, n_fft, hop, win_len, w, center=True, pad_mode="reflect", return_complex=True).abs()
        ms, me = ms.clamp_min(1e-7), me.clamp_min(1e-7)
        sc = torch.linalg.norm(ms - me) / torch.linalg.norm(ms)
        lm = torch.mean(torch.abs(torch.log(ms) - torch.log(me)))
        total += float(sc + lm)
    return total / len(resolutions)


# -------------------------------------------------------------------------------------------- drivers


@dataclass
class IntrusiveResult:
    """Metrics of one estimate against one reference.

    Attributes:
        metrics: ``{key: Metric}`` in :data:`METRIC_SPECS` order.
        lag_samples: alignment lag (positive: estimate late), at ``sample_rate``.
        sample_rate: rate the comparison ran at, Hz.
        length_samples: compared length after trimming.
        correlation: normalised cross-correlation peak of the alignment (see :class:`Alignment`); NaN when
            not aligned or a signal is silent.
        max_lag_samples: the largest lag the alignment searched, samples at ``sample_rate`` (0 when not
            aligned); ``|lag_samples| == max_lag_samples`` means the true delay may lie beyond the search.
    """

    metrics: dict[str, Metric]
    lag_samples: int = 0
    sample_rate: int = 0
    length_samples: int = 0
    correlation: float = float("nan")
    max_lag_samples: int = 0

    def values(self) -> dict[str, float | None]:
        return {k: m.value for k, m in self.metrics.items()}


def _as_mono(x: np.ndarray) -> np.ndarray:
    return downmix(x, np.float64)


def intrusive_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, *,
                      metrics: Iterable[str] | None = None, align_signals: bool = True,
                      max_lag_s: float = 0.25) -> IntrusiveResult:
    """Compute intrusive metrics of ``estimate`` against the clean ``reference``.

    Args:
        reference, estimate: ``(n,)`` or ``(n, ch)`` float audio at ``sample_rate`` Hz (multichannel is
            averaged to mono).
        metrics: keys to compute (default: every intrusive metric of the table, :func:`intrusive_keys`).
        align_signals: align by cross-correlation first (see :func:`align`).

    Returns:
        :class:`IntrusiveResult`; every requested key is present, failed ones with ``value=None``.
    """
    known = intrusive_keys()
    wanted = list(known if metrics is None else metrics)
    unknown = [k for k in wanted if k not in known]
    if unknown:
        raise ValueError(f"unknown intrusive metric(s) {', '.join(unknown)}; known: {', '.join(known)}")
    s, e = _as_mono(reference), _as_mono(estimate)
    bad = [what for what, x in (("reference", s), ("estimate", e)) if not np.all(np.isfinite(x))]
    if bad:
        reason = f"{' and '.join(bad)} contain(s) NaN or Inf samples"
        return IntrusiveResult({k: failed(k, reason) for k in wanted}, 0, sample_rate, 0)
    if len(s) == 0 or len(e) == 0:
        return IntrusiveResult({k: failed(k, "empty signal") for k in wanted}, 0, sample_rate, 0)
    al = align(s, e, sample_rate, max_lag_s=max_lag_s, enabled=align_signals)
    s, e = al.reference, al.estimate
    searched = int(max_lag_s * sample_rate) if align_signals else 0
    out: dict[str, Metric] = {}
    if len(s) == 0 or not np.any(s):
        reason = "reference is silent" if len(s) else "no overlap after alignment"
        return IntrusiveResult({k: failed(k, reason) for k in wanted}, al.lag_samples, sample_rate, len(s),
                               al.correlation, searched)
    for k in known:
        if k not in wanted:
            continue
        try:
            out[k] = METRIC_SPECS[k].compute(s, e, sample_rate)
        except Exception as exc:  # a metric library failing on odd input must not take the others down
            out[k] = failed(k, f"{type(exc).__name__}: {exc}")
    return IntrusiveResult(out, al.lag_samples, sample_rate, len(s), al.correlation, searched)


def reference_free_metrics_steps(audio: np.ndarray, sample_rate: int, *, fast: bool = False,
                                 keys: Iterable[str] | None = None) -> Generator[Progress, None, dict[str, Metric]]:
    """The reference-free metrics of ``audio`` (``(n,)`` or ``(n, ch)``, averaged to mono) at ``sample_rate``
    Hz: each group's compute function of :data:`METRIC_SPECS` run once (``keys``: only the groups holding
    them; default all); a generator yielding :class:`Progress`, returning ``{key: Metric}`` in table order
    (every column of each group run). A compute function that raises gives its columns that reason.
    ``fast``: the approximate fast mode of the metrics that have one (:func:`fast_mode_notes`)."""
    x = downmix(audio)
    groups = reference_free_groups(keys)
    out: dict[str, Metric] = {}
    for i, (group, columns) in enumerate(groups.items()):
        spec = METRIC_SPECS[columns[0]]
        try:
            got = spec.compute(x, sample_rate, fast)
            if inspect.isgenerator(got):
                got = yield from rescaled(got, i / len(groups), 1 / len(groups), "")
        except Cancelled:
            raise
        except Exception as exc:  # a metric library failing on odd input must not take the others down
            got = {k: failed(k, f"{type(exc).__name__}: {exc}") for k in columns}
        for k in [k for k, s in METRIC_SPECS.items() if s.group_key == group]:
            out[k] = got.get(k) or failed(k, "not computed")
    return out


def reference_free_metrics(audio: np.ndarray, sample_rate: int, *, fast: bool = False,
                           keys: Iterable[str] | None = None) -> dict[str, Metric]:
    """Blocking :func:`reference_free_metrics_steps`."""
    return run_to_end(reference_free_metrics_steps(audio, sample_rate, fast=fast, keys=keys))


def dnsmos_metrics_steps(audio: np.ndarray, sample_rate: int, personalized: bool = False, fast: bool = False,
                         scorer: Dnsmos | None = None) -> Generator[Progress, None, dict[str, Metric]]:
    """DNSMOS SIG/BAK/OVRL/P.808 as :class:`Metric` s (``dnsmos_sig`` ...), by ``scorer`` (default the shared
    :class:`~workbench.core.measure.dnsmos.Dnsmos`); a generator yielding :class:`Progress` per batch of
    windows. A missing model or a bad signal (empty, silent, NaN) gives ``value=None`` with the reason.
    ``fast``: non-overlapping windows (approximate, see :mod:`workbench.core.measure.dnsmos`)."""
    try:
        scorer = scorer or shared_dnsmos(personalized, fast)
    except ModelError as exc:
        return {k: failed(k, str(exc)) for k in DNSMOS_METRICS}
    try:
        scores = yield from scorer.score_steps(audio, sample_rate)
    except ValueError as exc:
        return {k: failed(k, str(exc)) for k in DNSMOS_METRICS}
    return {k: make_metric(k, v) for k, v in scores.values().items()}


def dnsmos_metrics(audio: np.ndarray, sample_rate: int, personalized: bool = False, fast: bool = False,
                   scorer: Dnsmos | None = None) -> dict[str, Metric]:
    """Blocking :func:`dnsmos_metrics_steps`."""
    return run_to_end(dnsmos_metrics_steps(audio, sample_rate, personalized, fast, scorer))


# ---------------------------------------------------------------------------------------------- pairing


@dataclass
class Pair:
    """A noisy file, its clean reference, and precomputed outputs of other systems for the same clip.

    Attributes:
        name: clip id (``0015`` for ``0015_noisy.wav``; the file stem in the folder convention).
        noisy, clean: paths.
        outputs: ``{system name: path}`` of precomputed enhanced files (``0015_GTCRN.wav`` -> ``GTCRN``).
    """

    name: str
    noisy: Path
    clean: Path
    outputs: dict[str, Path] = field(default_factory=dict)


_SUFFIX_RE = re.compile(r"^(?P<name>.+)_(?P<tag>[^_]+)$")


def find_pairs(directory: str | Path, unpaired: list[Path] | None = None) -> list[Pair]:
    """Find noisy/clean pairs in ``directory``, sorted by name.

    Two conventions (both documented in the README):

    1. *Suffix*: ``NAME_noisy.EXT`` with ``NAME_clean.EXT`` in the same folder. Any other
       ``NAME_TAG.EXT`` there (e.g. ``0015_GTCRN.wav``) is a precomputed output of system ``TAG``.
    2. *Folders*: ``noisy/NAME.EXT`` with ``clean/NAME.EXT``; any other sibling folder ``SYSTEM/NAME.EXT``
       holds precomputed outputs of ``SYSTEM``.

    A noisy file without its clean partner is skipped (it cannot be scored intrusively); when
    ``unpaired`` is a list, such files are appended to it so callers can say so.

    Raises:
        WorkbenchError: the folder does not exist or holds no pair.
    """
    d = Path(directory)
    if not d.is_dir():
        raise WorkbenchError(f"{d}: not a folder")

    def audio_files(folder: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(folder.iterdir())
                if p.is_file() and p.suffix.lower() in READ_SUFFIXES}

    pairs: dict[str, Pair] = {}
    if (d / "noisy").is_dir() and (d / "clean").is_dir():
        noisy, clean = audio_files(d / "noisy"), audio_files(d / "clean")
        for stem, path in noisy.items():
            if stem in clean:
                pairs[stem] = Pair(stem, path, clean[stem])
            elif unpaired is not None:
                unpaired.append(path)
        for sub in sorted(p for p in d.iterdir() if p.is_dir() and p.name not in ("noisy", "clean")):
            for stem, path in audio_files(sub).items():
                if stem in pairs:
                    pairs[stem].outputs[sub.name] = path
    files = audio_files(d)
    by_name: dict[str, dict[str, Path]] = {}
    for stem, path in files.items():
        m = _SUFFIX_RE.match(stem)
        if m:
            by_name.setdefault(m["name"], {})[m["tag"]] = path
    for name, tags in by_name.items():
        tl = {t.lower(): t for t in tags}
        if "noisy" in tl and "clean" in tl and name not in pairs:
            outputs = {t: p for t, p in tags.items() if t.lower() not in ("noisy", "clean")}
            pairs[name] = Pair(name, tags[tl["noisy"]], tags[tl["clean"]], outputs)
        elif "noisy" in tl and "clean" not in tl and name not in pairs and unpaired is not None:
            unpaired.append(tags[tl["noisy"]])
    if not pairs:
        raise WorkbenchError(f"{d}: no noisy/clean pairs found (expected NAME_noisy.wav with NAME_clean.wav, "
                             "or noisy/NAME.wav with clean/NAME.wav)")
    return [pairs[k] for k in sorted(pairs)]


def find_reference_for(path: str | Path) -> Path | None:
    """The clean partner of a noisy file by the :func:`find_pairs` conventions, or ``None``.

    ``X_noisy.wav`` -> ``X_clean.wav``; ``X_TAG.wav`` (an enhanced output) -> ``X_clean.wav``;
    ``.../noisy/NAME.wav`` (or any sibling folder) -> ``.../clean/NAME.wav``.
    """
    p = Path(path)
    m = _SUFFIX_RE.match(p.stem)
    if m and m["tag"].lower() != "clean":
        for suffix in (p.suffix,) + READ_SUFFIXES:
            cand = p.with_name(f"{m['name']}_clean{suffix}")
            if cand.is_file():
                return cand
    if p.parent.name != "clean":
        cand = p.parent.parent / "clean" / p.name
        if cand.is_file():
            return cand
    return None


def with_reason(metric: Metric, reason: str) -> Metric:
    """A copy of ``metric`` with ``value=None`` and ``reason``."""
    return replace(metric, value=None, reason=reason)
