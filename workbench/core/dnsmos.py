"""Non-intrusive quality: DNSMOS P.835 (SIG, BAK, OVRL) and P.808, from the ONNX models in ``speechmos``.

The ``speechmos`` package ships Microsoft's DNSMOS ONNX files; its Python code imports librosa and
``requests`` at import time, so we never import it. We locate the ONNX files with
``importlib.util.find_spec("speechmos")`` and reproduce its computation:

* audio at 16 kHz (other rates are resampled with soxr); a clip shorter than 9.01 s is repeated
  (concatenated with itself, doubling) until it is at least 9.01 s long;
* windows of ``int(9.01 * 16000) = 144160`` samples every 16000 samples (1 s), ``floor(len/16000 - 9.01) + 1``
  windows; windows that come out incomplete are skipped (including some whose end index the reference's
  floating-point arithmetic rounds one sample short, see :meth:`Dnsmos.windows`);
* P.835 (``sig_bak_ovr.onnx``) takes the raw window ``(1, 144160)`` and returns raw SIG, BAK, OVRL, which are
  mapped by fixed polynomials (:data:`P835_POLY`, or :data:`P835_POLY_PERSONALIZED` for the personalised
  model ``pdnsmos_models/sig_bak_ovr.onnx``);
* P.808 (``model_v8.onnx``) takes ``(1, 900, 120)`` log-mel features of the window without its last 160 samples
  (see :func:`p808_features`); its output is used as is;
* each score is the mean over windows.

Speed: windows are scored in batches of :data:`BATCH_WINDOWS` (both models take a batch axis,
``[N, 144160]`` and ``[N, 900, 120]``) and their log-mel features are computed for the whole batch at
once (:func:`p808_features_batch`), so memory stays bounded (one batch: about 40 MB) for any length and
progress/cancel come between batches. Scores equal the window-by-window computation to float rounding.

A **fast mode** (``Dnsmos(fast=True)``, ``dnsmos_metrics_steps(..., fast=True)``) scores non-overlapping
9.01 s windows instead of one every second (about 9x fewer); it is an approximation of DNSMOS, never the
default, and is labelled as such (``DnsmosScores.mode``). Its deviation from the exact mode is printed by
``bench/bench_metrics.py``.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Generator

import numpy as np
import soxr

from .enhancer import Progress, run_to_end
from .errors import ModelError
from .metrics import Metric, failed, make_metric

SAMPLE_RATE = 16000
INPUT_LENGTH_S = 9.01
WINDOW_SAMPLES = int(INPUT_LENGTH_S * SAMPLE_RATE)  # 144160
HOP_SAMPLES = SAMPLE_RATE
#: windows per model call: large enough to amortise the per-call cost, small enough to bound memory.
BATCH_WINDOWS = 8

# Third-order (personalised) and second-order polynomial maps, highest power first (numpy.poly1d order),
# from raw network outputs to the P.835 scale. Values as published with DNSMOS.
P835_POLY = {
    "sig": (-0.08397278, 1.22083953, 0.0052439),
    "bak": (-0.13166888, 1.60915514, -0.39604546),
    "ovrl": (-0.06766283, 1.11546468, 0.04602535),
}
P835_POLY_PERSONALIZED = {
    "sig": (-0.01019296, 0.02751166, 1.19576786, -0.24348726),
    "bak": (-0.04976499, 0.44276479, -0.1644611, 0.96883132),
    "ovrl": (-0.00533021, 0.005101, 1.18058466, -0.11236046),
}

# P.808 feature settings: power mel spectrogram, FFT/window length 321 (sic, odd), hop 160, 120 mel bands.
MEL_N_FFT = 321
MEL_HOP = 160
MEL_BANDS = 120


def model_dir() -> Path:
    """Folder of the installed ``speechmos`` package (holding ``dnsmos_models/``), without importing it."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("DNSMOS needs the 'speechmos' package (it ships the ONNX models); it is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def model_paths(personalized: bool = False) -> tuple[Path, Path]:
    """``(p835 model, p808 model)`` paths; raises :class:`ModelError` when a file is missing."""
    base = model_dir()
    p835 = base / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
    p808 = base / "dnsmos_models" / "model_v8.onnx"
    for p in (p835, p808):
        if not p.is_file():
            raise ModelError(f"{p}: DNSMOS model file missing from the speechmos package")
    return p835, p808


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic (27/ln 6.4 mel per e-fold) above."""
    f = np.asarray(f, np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = MEL_N_FFT, n_mels: int = MEL_BANDS) -> np.ndarray:
    """Slaney-style mel filterbank ``(n_mels, n_fft//2 + 1)`` (the librosa default: ``htk=False``, ``norm="slaney"``).

    Triangles between ``n_mels + 2`` points equally spaced on the Slaney mel scale from 0 Hz to ``sr/2``,
    evaluated at the DFT bin frequencies ``k·sr/n_fft``; each triangle is scaled by ``2 / (f_{m+2} - f_m)``
    so every band has unit area (constant energy per Hz).
    """
    fft_hz = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    mel_pts = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2)
    hz_pts = _mel_to_hz(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return weights


def p808_features(window: np.ndarray) -> np.ndarray:
    """Log-mel features of one window for the P.808 model, float32 ``(frames, 120)``.

    ``P = |STFT|²`` with a periodic Hann window of 321 samples, DFT size 321, hop 160, frames centred
    (zero padding of 160 samples at both ends); ``M = mel_filterbank · P``;
    ``L = 10·log10(max(M, 1e-10)) - 10·log10(max(max M, 1e-10))``, floored at −80 dB;
    features ``(L + 40) / 40``. For the reference window (144000 samples) that is 900 frames.
    """
    import scipy.signal  # local: imported on first use, not at start-up
    x = np.asarray(window, np.float32)
    pad = MEL_N_FFT // 2
    xp = np.pad(x, (pad, pad), mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(xp, MEL_N_FFT)[::MEL_HOP]
    win = scipy.signal.get_window("hann", MEL_N_FFT, fftbins=True).astype(np.float32)
    spec = np.fft.rfft(frames * win, axis=-1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel = power @ mel_filterbank().astype(np.float32).T
    log = 10.0 * np.log10(np.maximum(mel, 1e-10))
    log -= 10.0 * np.log10(max(float(mel.max()), 1e-10))
    log = np.maximum(log, log.max() - 80.0)
    return ((log + 40.0) / 40.0).astype(np.float32)


def p808_features_batch(windows: np.ndarray) -> np.ndarray:
    """:func:`p808_features` of a stack of windows ``(B, n)`` at once -> float32 ``(B, frames, 120)``.

    The same formula; the normalisation by the maximum and the −80 dB floor are per window.
    """
    import scipy.signal  # local: imported on first use, not at start-up
    x = np.asarray(windows, np.float32)
    pad = MEL_N_FFT // 2
    xp = np.pad(x, ((0, 0), (pad, pad)), mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(xp, MEL_N_FFT, axis=1)[:, ::MEL_HOP]   # (B, T, 321)
    win = scipy.signal.get_window("hann", MEL_N_FFT, fftbins=True).astype(np.float32)
    spec = np.fft.rfft(frames * win, axis=-1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel = power @ mel_filterbank().astype(np.float32).T                                         # (B, T, 120)
    log = 10.0 * np.log10(np.maximum(mel, 1e-10))
    peak = 10.0 * np.log10(np.maximum(mel.max(axis=(1, 2), keepdims=True), 1e-10))
    log -= peak
    log = np.maximum(log, log.max(axis=(1, 2), keepdims=True) - 80.0)
    return ((log + 40.0) / 40.0).astype(np.float32)


@dataclass(frozen=True)
class DnsmosScores:
    """DNSMOS result of one clip (means over 9.01 s windows), each on the 1..5 MOS scale."""

    sig: float
    bak: float
    ovrl: float
    p808: float
    windows: int
    #: ``"exact"`` (windows every second, the reference) or ``"fast"`` (non-overlapping windows, approximate).
    mode: str = "exact"

    def as_metrics(self) -> dict[str, Metric]:
        return {"dnsmos_sig": make_metric("dnsmos_sig", self.sig),
                "dnsmos_bak": make_metric("dnsmos_bak", self.bak),
                "dnsmos_ovrl": make_metric("dnsmos_ovrl", self.ovrl),
                "dnsmos_p808": make_metric("dnsmos_p808", self.p808)}


DNSMOS_METRICS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")


class Dnsmos:
    """DNSMOS scorer holding two onnxruntime sessions (thread-safe: calls are serialised by a lock).

    Args:
        personalized: use the personalised P.835 model and its polynomial (``model_type="dnsmos_personalized"``
            in speechmos).
        threads: onnxruntime intra-op threads (0 = library default).
        exact_reference: reproduce the reference's window selection exactly (see :meth:`windows`).
        fast: score non-overlapping windows (hop 9.01 s instead of 1 s): about 9x faster, approximate.
        batch_windows: windows per model call (memory: about 5 MB per window).
    """

    def __init__(self, personalized: bool = False, threads: int = 0, exact_reference: bool = True,
                 fast: bool = False, batch_windows: int = BATCH_WINDOWS):
        import onnxruntime as ort

        self.personalized = personalized
        self.exact_reference = exact_reference
        self.fast = fast
        self.batch_windows = max(int(batch_windows), 1)
        p835, p808 = model_paths(personalized)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self._p835 = ort.InferenceSession(str(p835), opts, providers=["CPUExecutionProvider"])
            self._p808 = ort.InferenceSession(str(p808), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{p835.parent}: cannot load DNSMOS ONNX models: {exc}") from exc
        self._p835_in = self._p835.get_inputs()[0].name
        self._p808_in = self._p808.get_inputs()[0].name
        polys = P835_POLY_PERSONALIZED if personalized else P835_POLY
        self._poly = {k: np.poly1d(v) for k, v in polys.items()}
        self._lock = threading.Lock()

    def windows(self, audio: np.ndarray) -> list[np.ndarray]:
        """The 9.01 s analysis windows of a 16 kHz mono clip, after repeat-padding short clips.

        With ``exact_reference`` (the default) the window end is computed as the reference does,
        ``int((i + 9.01) * 16000)`` in floating point, which comes out one sample short for some ``i``
        (7–23, 119–122, ...); the reference then skips those windows as incomplete, and so do we, so scores
        of clips longer than 16 s agree with speechmos. ``exact_reference=False`` uses every window.
        """
        x = self._padded(audio)
        return [x[a:a + WINDOW_SAMPLES] for a in self.window_starts(len(x))]

    @staticmethod
    def _padded(audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, np.float32).reshape(-1)
        while 0 < len(x) < WINDOW_SAMPLES:
            x = np.concatenate([x, x])
        return x

    def window_starts(self, n: int) -> list[int]:
        """Start samples of the scored windows of a (repeat-padded) 16 kHz signal of ``n`` samples.

        Exact mode: one per second, with the reference's rounding (see :meth:`windows`); fast mode:
        back to back, ``0, 144160, 288320, ...``, at least one window.
        """
        if n < WINDOW_SAMPLES:
            return []
        if self.fast:
            return list(range(0, n - WINDOW_SAMPLES + 1, WINDOW_SAMPLES))
        count = int(np.floor(n / SAMPLE_RATE) - INPUT_LENGTH_S) + 1
        out = []
        for i in range(count):
            a = i * HOP_SAMPLES
            end = int((i + INPUT_LENGTH_S) * HOP_SAMPLES) if self.exact_reference else a + WINDOW_SAMPLES
            if min(end, n) - a == WINDOW_SAMPLES:
                out.append(a)
        return out

    def score_steps(self, audio: np.ndarray, sample_rate: int) -> Generator[Progress, None, DnsmosScores]:
        """Score a mono clip ``(n,)`` (or ``(n, ch)``, averaged to mono) at ``sample_rate`` Hz, window by window.

        A generator yielding :class:`Progress` before each 9.01 s window (so long files can show progress and
        be cancelled by closing the generator); returns :class:`DnsmosScores`.

        Raises:
            ValueError: empty, non-finite or silent input (use :meth:`metrics` for a no-raise variant).
        """
        x = np.asarray(audio, np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.size == 0:
            raise ValueError("empty signal")
        if not np.all(np.isfinite(x)):
            raise ValueError("signal contains NaN or Inf samples")
        if not np.any(x):
            raise ValueError("signal is digital silence")
        if sample_rate != SAMPLE_RATE:
            x = np.asarray(soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ"), np.float32)
        x = self._padded(x)
        starts = self.window_starts(len(x))
        raws, p808 = [], []
        for k in range(0, len(starts), self.batch_windows):
            part = starts[k:k + self.batch_windows]
            yield Progress(k / len(starts), f"DNSMOS{' (fast)' if self.fast else ''} windows "
                                            f"{k + 1}-{k + len(part)}/{len(starts)}")
            batch = np.stack([x[a:a + WINDOW_SAMPLES] for a in part])          # (B, 144160)
            feats = p808_features_batch(batch[:, :-MEL_HOP])                   # (B, 900, 120)
            with self._lock:  # onnxruntime sessions are shared between threads
                raws.append(self._p835.run(None, {self._p835_in: batch})[0])   # (B, 3)
                p808.append(self._p808.run(None, {self._p808_in: feats})[0][:, 0])
        raw = np.concatenate(raws).astype(np.float64)
        sig, bak, ovrl = (self._poly[k](raw[:, j]) for j, k in enumerate(("sig", "bak", "ovrl")))
        return DnsmosScores(float(np.mean(sig)), float(np.mean(bak)), float(np.mean(ovrl)),
                            float(np.mean(np.concatenate(p808))), len(starts), "fast" if self.fast else "exact")

    def score(self, audio: np.ndarray, sample_rate: int) -> DnsmosScores:
        """Blocking :meth:`score_steps`."""
        return run_to_end(self.score_steps(audio, sample_rate))

    def metrics_steps(self, audio: np.ndarray, sample_rate: int) -> Generator[Progress, None, dict[str, Metric]]:
        """:meth:`score_steps` as :class:`Metric` s; bad signals give ``value=None`` with a reason."""
        try:
            scores = yield from self.score_steps(audio, sample_rate)
        except ValueError as exc:
            return {k: failed(k, str(exc)) for k in DNSMOS_METRICS}
        return scores.as_metrics()

    def metrics(self, audio: np.ndarray, sample_rate: int) -> dict[str, Metric]:
        """Like :meth:`score` but never raises for bad signals: failures become ``Metric(value=None, reason)``."""
        return run_to_end(self.metrics_steps(audio, sample_rate))


_shared: dict[tuple[bool, bool], Dnsmos] = {}
_shared_lock = threading.Lock()


def shared_dnsmos(personalized: bool = False, fast: bool = False) -> Dnsmos:
    """A process-wide :class:`Dnsmos` (loading the sessions once costs about a second)."""
    with _shared_lock:
        if (personalized, fast) not in _shared:
            _shared[(personalized, fast)] = Dnsmos(personalized, fast=fast)
        return _shared[(personalized, fast)]


def dnsmos_metrics_steps(audio: np.ndarray, sample_rate: int, personalized: bool = False, fast: bool = False
                         ) -> Generator[Progress, None, dict[str, Metric]]:
    """DNSMOS SIG/BAK/OVRL/P.808 as :class:`Metric` s (``dnsmos_sig`` ...) with the shared scorer; a generator
    yielding :class:`Progress` per batch of windows. A missing model gives ``value=None`` with the reason.
    ``fast``: non-overlapping windows (approximate, see the module docstring)."""
    try:
        scorer = shared_dnsmos(personalized, fast)
    except ModelError as exc:
        return {k: failed(k, str(exc)) for k in DNSMOS_METRICS}
    return (yield from scorer.metrics_steps(audio, sample_rate))


def dnsmos_metrics(audio: np.ndarray, sample_rate: int, personalized: bool = False) -> dict[str, Metric]:
    """Blocking :func:`dnsmos_metrics_steps`."""
    return run_to_end(dnsmos_metrics_steps(audio, sample_rate, personalized))


#: Seconds of DNSMOS compute per 9.01 s window (one window per second of audio): 0.48 s, i.e. about 29 s
#: per audio minute, measured on 15 s of dns3 speech (two runs, 0.48 and 0.49 s/window) on the project's
#: shared 2-core machine (README: 60 s in 26 s, 0.50 s/window). :class:`DnsmosCost` refines it from runs.
SECONDS_PER_WINDOW = 0.48


def window_count(duration_s: float) -> int:
    """Number of 9.01 s windows DNSMOS scores for ``duration_s`` seconds of audio (one per second, at least
    one: short clips are repeat-padded)."""
    return max(int(math.floor(duration_s) - INPUT_LENGTH_S) + 1, 1)


class DnsmosCost:
    """Estimate of DNSMOS compute time, ``windows(duration) × seconds_per_window``.

    Starts from :data:`SECONDS_PER_WINDOW` and, after each measured run (:meth:`observe`), moves to what
    this machine took (an exponential average, so one run on a busy machine does not dominate).
    """

    def __init__(self, seconds_per_window: float = SECONDS_PER_WINDOW):
        self.seconds_per_window = float(seconds_per_window)

    @property
    def seconds_per_audio_minute(self) -> float:
        return 60.0 * self.seconds_per_window

    def estimate_s(self, duration_s: float) -> float:
        """Seconds to score ``duration_s`` seconds of audio."""
        return window_count(duration_s) * self.seconds_per_window

    def observe(self, duration_s: float, elapsed_s: float) -> None:
        """Account for a run that scored ``duration_s`` seconds of audio in ``elapsed_s`` seconds."""
        if duration_s > 0 and elapsed_s > 0:
            measured = elapsed_s / window_count(duration_s)
            self.seconds_per_window = 0.5 * self.seconds_per_window + 0.5 * measured
