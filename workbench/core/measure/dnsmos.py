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

Speed: the P.835 network spends almost all of its time in four 3x3 convolutions over the full-resolution
log-power spectrogram (320-sample frames every 160 samples, 900 frames a window), computed before any
pooling. Windows start on whole seconds (multiples of 100 frames), so those frames are shared by up to
nine overlapping windows. :class:`P835Split` cuts the graph (loaded from the package's file, split in
memory with ``onnx.utils.Extractor``) after its first pooling layer: the front end (STFT as a convolution,
log power, the convolution stack, a 2x2 max pooling) runs once per frame over the file, in a rolling
buffer, and the rest of the network runs per window on the window's slice of it. A convolution with zero
padding at the window's edges sees different neighbours there than one over the whole file, so the first
and last ``halo`` frames of every window (4: one per 3x3 layer) are recomputed on the window's own edge
frames. The result equals the per-window network to float rounding (:func:`window_by_window_scores` is
that reference). Windows are processed in batches of :data:`BATCH_WINDOWS`; the P.808 log-mel features
of a batch share one mel spectrum of its span (:func:`p808_features_windows`, frames touching a window's
centring pad computed per window); memory stays bounded for any length (the front end
runs on at most :data:`FRONT_CHUNK_FRAMES` frames at a time, a batch holds about 5 MB per window plus the
signal) and progress/cancel come between batches.

This module gives raw scores (:class:`DnsmosScores`); the metric table
(:data:`workbench.core.measure.metrics.METRIC_SPECS`) turns them into its four columns
(``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``, ``dnsmos_p808``) with
:func:`workbench.core.measure.metrics.dnsmos_metrics_steps`.

A **fast mode** (``Dnsmos(fast=True)``, ``dnsmos_metrics_steps(..., fast=True)``) scores non-overlapping
9.01 s windows instead of one every second (about 9x fewer windows, but only about 2x faster than the
exact mode: the front end still sees every frame, and that is what the exact mode shares); it is an
approximation of DNSMOS, never the default, and is labelled as such (``DnsmosScores.mode``,
:data:`FAST_MODE_NOTE` in CLI output). Its deviation from the exact mode is printed by
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

from ..progress import Progress, run_to_end
from ..audio.audio_io import downmix, resample
from ..errors import ModelError

SAMPLE_RATE = 16000
INPUT_LENGTH_S = 9.01
WINDOW_SAMPLES = int(INPUT_LENGTH_S * SAMPLE_RATE)  # 144160
HOP_SAMPLES = SAMPLE_RATE
#: windows per model call: large enough to amortise the per-call cost, small enough to bound memory.
#: Measured on 120 s (94 windows), quiet 2-core machine, median of 3: batches of 1: 11.5 s, 4: 6.4 s,
#: 8: 5.2 s, 16: 4.5 s, 32: 4.6 s; peak RSS with 8: about 1.0 GB, with 16: 1.7 GB (onnxruntime keeps each
#: session's largest working set in its arena), so 8.
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
    x = np.asarray(window, np.float32)
    pad = MEL_N_FFT // 2
    xp = np.pad(x, (pad, pad), mode="constant")
    mel = _mel_power(np.lib.stride_tricks.sliding_window_view(xp, MEL_N_FFT)[::MEL_HOP])
    log = 10.0 * np.log10(np.maximum(mel, 1e-10))
    log -= 10.0 * np.log10(max(float(mel.max()), 1e-10))
    log = np.maximum(log, log.max() - 80.0)
    return ((log + 40.0) / 40.0).astype(np.float32)


def _mel_power(frames: np.ndarray) -> np.ndarray:
    """Mel power ``mel_filterbank · |rfft(frame · hann)|²`` of frames ``(..., 321)`` -> float32 ``(..., 120)``."""
    import scipy.signal  # local: imported on first use, not at start-up
    win = scipy.signal.get_window("hann", MEL_N_FFT, fftbins=True).astype(np.float32)
    spec = np.fft.rfft(frames * win, axis=-1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    return power @ mel_filterbank().astype(np.float32).T


def p808_features_windows(audio: np.ndarray, starts: list[int]) -> np.ndarray:
    """:func:`p808_features` of ``audio[a : a + 144000]`` for each start ``a`` (multiples of 160) -> float32
    ``(B, 900, 120)``, sharing the mel power spectrum between overlapping windows.

    Frame k of the window at ``a`` is samples ``a + 160k - 160 .. a + 160k + 161`` with samples outside the
    window taken as zero (the centring pad); for k = 1..898 that is frame ``a/160 + k`` of the whole signal,
    computed once for the batch's span. Frames 0 and 899 reach into the pad and are computed per window.
    The log, the per-window peak normalisation and the −80 dB floor are per window, as in
    :func:`p808_features`.
    """
    x = np.asarray(audio, np.float32)
    n, pad, hop = WINDOW_SAMPLES - MEL_HOP, MEL_N_FFT // 2, MEL_HOP      # 144000, 160, 160
    frames = n // hop                                                     # 900
    g0, g1 = starts[0] // hop, starts[-1] // hop + frames
    lo, hi = g0 * hop - pad, (g1 - 1) * hop - pad + MEL_N_FFT            # samples of frames g0 .. g1-1
    seg = x[max(lo, 0):min(hi, len(x))]
    seg = np.pad(seg, (max(-lo, 0), max(hi - len(x), 0)))                # only ever inside replaced edge frames
    span = _mel_power(np.lib.stride_tricks.sliding_window_view(seg, MEL_N_FFT)[::hop])   # (g1 - g0, 120)
    edges = []
    for a in starts:
        edges.append(np.concatenate([np.zeros(pad, np.float32), x[a:a + MEL_N_FFT - pad]]))
        edges.append(np.concatenate([x[a + n - (MEL_N_FFT - 1):a + n], np.zeros(1, np.float32)]))
    edge_mel = _mel_power(np.stack(edges))                               # (2B, 120)
    mel = np.empty((len(starts), frames, MEL_BANDS), np.float32)
    for i, a in enumerate(starts):
        g = a // hop - g0
        mel[i] = span[g:g + frames]
        mel[i, 0], mel[i, -1] = edge_mel[2 * i], edge_mel[2 * i + 1]
    log = 10.0 * np.log10(np.maximum(mel, 1e-10))
    peak = 10.0 * np.log10(np.maximum(mel.max(axis=(1, 2), keepdims=True), 1e-10))
    log -= peak
    log = np.maximum(log, log.max(axis=(1, 2), keepdims=True) - 80.0)
    return ((log + 40.0) / 40.0).astype(np.float32)


#: P.835 network framing: frames of 320 samples every 160 samples (the graph slices and reshapes its input so).
P835_FRAME_SAMPLES = 320
P835_FRAME_HOP = 160
#: frames of one 9.01 s window in the P.835 network: (144160 - 160) / 160.
P835_WINDOW_FRAMES = (WINDOW_SAMPLES - P835_FRAME_HOP) // P835_FRAME_HOP  # 900
#: most frames the P.835 front end processes in one call (bounds its memory: onnxruntime's arena for the
#: front end peaks at about 0.3 MB per frame); even, so that chunks keep the pooling's frame pairs. The
#: speed is the same from 600 to 2600 frames (120 s, batches of 16, median of 3: 4.44-4.48 s).
FRONT_CHUNK_FRAMES = 800

# Operators that act on each frame (time step) on its own; with 'same'-padded stride-1 convolutions these
# are all the P.835 front end may contain for the split to be exact.
_PER_FRAME_OPS = {"Transpose", "Mul", "Add", "Sub", "Div", "Sqrt", "Pow", "Max", "Min", "Log", "Relu",
                  "Unsqueeze", "Identity"}


class P835Split:
    """The P.835 network cut in two at the output of its first pooling layer, built in memory from the ONNX file.

    * ``front``: frames ``(N, T, 320)`` float32 (T even) -> features ``(N, C, T/2, F)`` (C = 32 channels,
      F = 80 bins): the in-graph STFT (a kernel-1 convolution per frame), ``log10(max(|X|², 1e-12))``, a stack
      of 'same'-padded 3x3 convolutions with ReLU, and a 2x2 max pooling (stride 2, no padding) that merges
      frames 2j and 2j+1. Every operator acts per frame (or frame pair) except the convolutions, whose output
      at frame t depends on frames ``t - halo .. t + halo`` (``halo`` = number of 3x3 layers = 4).
      ``T`` is free: the front end runs on a whole stretch of the file at once.
    * ``back``: one window's features ``(N, C, 450, F)`` -> raw ``(N, 3)`` SIG, BAK, OVRL (more convolutions and
      pooling, global max pooling, dense layers).

    Frame k of a window starting at sample ``s`` is samples ``s + 160k .. s + 160k + 320``; windows start on even
    frames (multiples of 100 in exact mode), so their frame pairs are the file's. The structure is checked when
    loading (framing 320/160, only per-frame operators and stride-1 'same' convolutions before a 2x2/2 pooling,
    an even halo); anything else raises :class:`ValueError` and the scorer falls back to the whole network.
    """

    #: frames merged by the first pooling layer.
    POOL = 2

    def __init__(self, model_path: Path, options, providers: list[str]):
        import onnx
        import onnx.shape_inference
        import onnx.utils
        import onnxruntime as ort

        model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
        graph = model.graph
        (frames_name, features_name, output_name), self.halo = self._split_points(graph)
        self.frames_name, self.features_name = frames_name, features_name
        extractor = onnx.utils.Extractor(model)
        self.front = ort.InferenceSession(
            self._dynamic(extractor.extract_model([frames_name], [features_name]), {0, 1}, {0, 2}).SerializeToString(),
            options, providers=providers)
        self.back = ort.InferenceSession(
            self._dynamic(extractor.extract_model([features_name], [output_name]), {0}, {0}).SerializeToString(),
            options, providers=providers)

    @classmethod
    def _split_points(cls, graph) -> tuple[tuple[str, str, str], int]:
        """``((frames tensor, features tensor, output), halo)`` of the P.835 graph, checking the assumptions."""
        from onnx import helper, numpy_helper

        nodes = list(graph.node)
        consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        concat = next((k for k, n in enumerate(nodes) if n.op_type == "Concat"), None)
        pool = next((k for k, n in enumerate(nodes) if n.op_type.endswith("Pool")), None)
        if concat is None or pool is None or pool < concat:
            raise ValueError("no framing Concat before a pooling layer")
        shapes = [consts.get(n.input[1]) for n in nodes[:concat] if n.op_type == "Reshape"]
        if len(shapes) != 2 or any(sh is None or list(sh[1:]) != [P835_WINDOW_FRAMES, P835_FRAME_HOP]
                                   for sh in shapes):
            raise ValueError("input is not framed as 900 x 160 halves")
        pool_attrs = {a.name: helper.get_attribute_value(a) for a in nodes[pool].attribute}
        if (nodes[pool].op_type != "MaxPool" or list(pool_attrs.get("kernel_shape", []))[:1] != [cls.POOL]
                or list(pool_attrs.get("strides", []))[:1] != [cls.POOL] or any(pool_attrs.get("pads", []))):
            raise ValueError("the first pooling is not a 2x2 max pooling of stride 2")
        halo = 0
        for n in nodes[concat + 1:pool]:
            if n.op_type == "Conv":
                attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
                kernel = list(attrs.get("kernel_shape", []))
                if any(v != 1 for v in attrs.get("strides", [1])) or any(v != 1 for v in attrs.get("dilations", [1])):
                    raise ValueError(f"convolution {n.name} is strided or dilated")
                if len(kernel) == 1:  # the STFT: kernel 1 over the 320 samples of a frame
                    if kernel != [1] or consts[n.input[1]].shape[1] != P835_FRAME_SAMPLES:
                        raise ValueError(f"convolution {n.name} is not a per-frame transform")
                    continue
                pads = list(attrs.get("pads", []))
                if len(kernel) != 2 or kernel[0] % 2 != 1 or pads[:1] != [kernel[0] // 2] or pads[2:3] != [kernel[0] // 2]:
                    raise ValueError(f"convolution {n.name} is not 'same'-padded in time")
                halo += kernel[0] // 2
            elif n.op_type not in _PER_FRAME_OPS:
                raise ValueError(f"operator {n.op_type} ({n.name}) before the first pooling is not per frame")
        if halo % cls.POOL or 2 * halo >= P835_WINDOW_FRAMES:
            raise ValueError("receptive field odd or wider than a window")
        return (nodes[concat].output[0], nodes[pool].output[0], graph.output[0].name), halo

    @staticmethod
    def _dynamic(model, input_axes: set[int], output_axes: set[int]):
        """``model`` with the batch/time axes of its input and output made symbolic (the extracted graphs carry
        the window's fixed 900 frames from shape inference) and intermediate shapes dropped."""
        model.graph.ClearField("value_info")
        for values, axes in ((model.graph.input, input_axes), (model.graph.output, output_axes)):
            for v in values:
                for k, dim in enumerate(v.type.tensor_type.shape.dim):
                    if k in axes:
                        dim.ClearField("dim_value")
                        dim.dim_param = f"{v.name}_axis{k}"
        return model

    @staticmethod
    def frames(audio: np.ndarray, first: int, count: int) -> np.ndarray:
        """Frames ``first .. first + count`` of a 16 kHz signal as float32 ``(count, 320)``: frame k is samples
        ``160k .. 160k + 320`` (exactly what the graph's Slice/Reshape/Concat make of a window)."""
        seg = audio[first * P835_FRAME_HOP:(first + count) * P835_FRAME_HOP + P835_FRAME_SAMPLES - P835_FRAME_HOP]
        return np.lib.stride_tricks.sliding_window_view(seg, P835_FRAME_SAMPLES)[::P835_FRAME_HOP][:count]

    def front_features(self, audio: np.ndarray, first: int, count: int) -> np.ndarray:
        """Front-end features of frames ``first .. first + count`` (both even) of a whole signal,
        ``(C, count/2, F)``, in calls of at most :data:`FRONT_CHUNK_FRAMES` frames, each with ``halo`` extra
        frames either side (where the signal has them) so that every frame sees its true neighbours."""
        total = (len(audio) - P835_FRAME_SAMPLES) // P835_FRAME_HOP + 1
        parts = []
        for a in range(first, first + count, FRONT_CHUNK_FRAMES):
            b = min(a + FRONT_CHUNK_FRAMES, first + count)
            lo, hi = max(a - self.halo, 0), min(b + self.halo, total)
            out = self.front.run(None, {self.frames_name: np.ascontiguousarray(
                self.frames(audio, lo, hi - lo)[None])})[0][0]
            parts.append(out[:, (a - lo) // self.POOL:(b - lo) // self.POOL])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def window_features(self, audio: np.ndarray, starts: list[int]) -> np.ndarray:
        """Front-end features of whole windows on their own, ``(B, C, 450, F)`` (what the unsplit network computes
        inside; used for non-overlapping windows, where nothing is shared)."""
        per_call = max(FRONT_CHUNK_FRAMES // P835_WINDOW_FRAMES, 1)   # windows per call: bounded memory
        out = []
        for k in range(0, len(starts), per_call):
            frames = np.stack([self.frames(audio, a // P835_FRAME_HOP, P835_WINDOW_FRAMES)
                               for a in starts[k:k + per_call]])
            out.append(self.front.run(None, {self.frames_name: frames})[0])
        return out[0] if len(out) == 1 else np.concatenate(out)

    def edge_features(self, audio: np.ndarray, starts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Front-end features of the first and last ``halo`` frames of each window as the whole network computes
        them (zero padding at the window's edges): ``(B, C, halo/2, F)`` twice. Computed on the window's first
        and last ``2·halo`` frames; of those, the ``halo`` nearest the window edge see the same inputs as in the
        full window."""
        h, n = self.halo, P835_WINDOW_FRAMES
        segs = []
        for s in starts:
            f = s // P835_FRAME_HOP
            segs.append(self.frames(audio, f, 2 * h))
            segs.append(self.frames(audio, f + n - 2 * h, 2 * h))
        out = self.front.run(None, {self.frames_name: np.stack(segs)})[0]
        hp = h // self.POOL
        return out[0::2, :, :hp], out[1::2, :, hp:]


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

    def values(self) -> dict[str, float]:
        """The four scores under their metric keys (:data:`DNSMOS_METRICS`)."""
        return dict(zip(DNSMOS_METRICS, (self.sig, self.bak, self.ovrl, self.p808)))


#: Metric keys of the four scores, in the order of :meth:`DnsmosScores.values`.
DNSMOS_METRICS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")


def repeat_pad(audio: np.ndarray) -> np.ndarray:
    """A mono clip as float32, concatenated with itself (doubling) until it is at least 9.01 s long."""
    x = np.asarray(audio, np.float32).reshape(-1)
    while 0 < len(x) < WINDOW_SAMPLES:
        x = np.concatenate([x, x])
    return x


def window_starts(n: int, fast: bool = False, exact_reference: bool = True) -> list[int]:
    """Start samples of the scored windows of a (repeat-padded) 16 kHz signal of ``n`` samples.

    Exact mode: one per second, ``floor(n/16000 - 9.01) + 1`` candidates. With ``exact_reference`` (the
    default) the window end is computed as the reference does, ``int((i + 9.01) * 16000)`` in floating point,
    which comes out one sample short for some ``i`` (7–23, 119–122, ...); the reference then skips those windows
    as incomplete, and so do we, so scores of clips longer than 16 s agree with speechmos.
    ``exact_reference=False`` uses every window. Fast mode: back to back, ``0, 144160, 288320, ...``.
    Every start is a multiple of 160 samples (the P.835 frame hop), which :class:`P835Split` relies on.
    """
    if n < WINDOW_SAMPLES:
        return []
    if fast:
        return list(range(0, n - WINDOW_SAMPLES + 1, WINDOW_SAMPLES))
    count = int(np.floor(n / SAMPLE_RATE) - INPUT_LENGTH_S) + 1
    out = []
    for i in range(count):
        a = i * HOP_SAMPLES
        end = int((i + INPUT_LENGTH_S) * HOP_SAMPLES) if exact_reference else a + WINDOW_SAMPLES
        if min(end, n) - a == WINDOW_SAMPLES:
            out.append(a)
    return out


def analysis_windows(audio: np.ndarray, fast: bool = False, exact_reference: bool = True) -> list[np.ndarray]:
    """The 9.01 s analysis windows ``(144160,)`` of a 16 kHz mono clip after :func:`repeat_pad` (views)."""
    x = repeat_pad(audio)
    return [x[a:a + WINDOW_SAMPLES] for a in window_starts(len(x), fast, exact_reference)]


def p835_polynomials(personalized: bool = False) -> dict[str, np.poly1d]:
    """``{"sig"|"bak"|"ovrl": polynomial}`` mapping raw P.835 outputs to the MOS scale."""
    return {k: np.poly1d(v) for k, v in (P835_POLY_PERSONALIZED if personalized else P835_POLY).items()}


def prepare_signal(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz (channels averaged, other rates resampled with soxr HQ).

    Raises:
        ValueError: empty, non-finite or silent input.
    """
    x = downmix(audio)
    if x.size == 0:
        raise ValueError("empty signal")
    if not np.all(np.isfinite(x)):
        raise ValueError("signal contains NaN or Inf samples")
    if not np.any(x):
        raise ValueError("signal is digital silence")
    if sample_rate != SAMPLE_RATE:
        x = resample(x, sample_rate, SAMPLE_RATE)
    return x


class Dnsmos:
    """DNSMOS scorer holding the onnxruntime sessions (thread-safe: calls are serialised by a lock).

    Args:
        personalized: use the personalised P.835 model and its polynomial (``model_type="dnsmos_personalized"``
            in speechmos).
        threads: onnxruntime intra-op threads (0 = library default).
        exact_reference: reproduce the reference's window selection exactly (see :func:`window_starts`).
        fast: score non-overlapping windows (hop 9.01 s instead of 1 s): about 9x fewer windows, approximate.
        batch_windows: windows per batch (about 5 MB of P.835 features per window; with onnxruntime's working
            memory the peak RSS is about 1 GB with the default 8).
        split: run the P.835 network split at its first pooling layer (:class:`P835Split`, the default);
            ``False`` runs the whole network on every window (same scores, several times slower).
    """

    def __init__(self, personalized: bool = False, threads: int = 0, exact_reference: bool = True,
                 fast: bool = False, batch_windows: int = BATCH_WINDOWS, split: bool = True):
        import onnxruntime as ort

        self.personalized = personalized
        self.exact_reference = exact_reference
        self.fast = fast
        self.batch_windows = max(int(batch_windows), 1)
        p835, p808 = model_paths(personalized)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        #: the P.835 network split at its first pooling layer (see :class:`P835Split`); ``None``: whole network.
        self.split: P835Split | None = None
        #: why the split is not used (empty when it is).
        self.split_reason = "" if split else "disabled"
        try:
            if split:
                try:
                    self.split = P835Split(p835, opts, providers)
                except ValueError as exc:  # a graph of another shape: score with the whole network
                    self.split_reason = str(exc)
            self._p835 = None if self.split else ort.InferenceSession(str(p835), opts, providers=providers)
            self._p808 = ort.InferenceSession(str(p808), opts, providers=providers)
        except Exception as exc:
            raise ModelError(f"{p835.parent}: cannot load DNSMOS ONNX models: {exc}") from exc
        self._p835_in = None if self._p835 is None else self._p835.get_inputs()[0].name
        self._p808_in = self._p808.get_inputs()[0].name
        self._poly = p835_polynomials(personalized)
        self._lock = threading.Lock()

    def windows(self, audio: np.ndarray) -> list[np.ndarray]:
        """The analysis windows of a 16 kHz mono clip: :func:`analysis_windows` with this scorer's settings."""
        return analysis_windows(audio, self.fast, self.exact_reference)

    @staticmethod
    def _padded(audio: np.ndarray) -> np.ndarray:
        return repeat_pad(audio)

    def window_starts(self, n: int) -> list[int]:
        """:func:`window_starts` with this scorer's settings."""
        return window_starts(n, self.fast, self.exact_reference)

    def score_steps(self, audio: np.ndarray, sample_rate: int) -> Generator[Progress, None, DnsmosScores]:
        """Score a mono clip ``(n,)`` (or ``(n, ch)``, averaged to mono) at ``sample_rate`` Hz.

        A generator yielding :class:`Progress` before each batch of :attr:`batch_windows` windows (so long files
        can show progress and be cancelled by closing the generator); returns :class:`DnsmosScores`, equal to
        :func:`window_by_window_scores` to float rounding.

        Raises:
            ValueError: empty, non-finite or silent input (``metrics.dnsmos_metrics_steps`` turns it into a reason).
        """
        x = self._padded(prepare_signal(audio, sample_rate))
        starts = self.window_starts(len(x))
        raws, p808 = [], []
        buffer: dict = {}  # the P.835 front-end features of the frames the current batch needs
        for k in range(0, len(starts), self.batch_windows):
            part = starts[k:k + self.batch_windows]
            yield Progress(k / len(starts), f"DNSMOS{' (fast)' if self.fast else ''} windows "
                                            f"{k + 1}-{k + len(part)}/{len(starts)}")
            feats = p808_features_windows(x, part)                               # (B, 900, 120)
            with self._lock:  # onnxruntime sessions are shared between threads
                raws.append(self._p835_raw(x, part, buffer))                                   # (B, 3)
                p808.append(self._p808.run(None, {self._p808_in: feats})[0][:, 0])
        raw = np.concatenate(raws).astype(np.float64)
        sig, bak, ovrl = (self._poly[k](raw[:, j]) for j, k in enumerate(("sig", "bak", "ovrl")))
        return DnsmosScores(float(np.mean(sig)), float(np.mean(bak)), float(np.mean(ovrl)),
                            float(np.mean(np.concatenate(p808))), len(starts), "fast" if self.fast else "exact")

    def _p835_raw(self, x: np.ndarray, starts: list[int], buffer: dict) -> np.ndarray:
        """Raw P.835 outputs ``(B, 3)`` of the windows starting at ``starts`` (samples of ``x``).

        Split path: ``buffer`` holds pooled front-end features ``(C, frames/2, F)`` from frame
        ``buffer["first"]``; frames the previous batch computed are kept, only the new ones are computed, and
        frames before this batch's first window are dropped (so the buffer spans one batch:
        ``900 + 100·(B - 1)`` frames, 0.5 MB per second of audio). Each window is its slice of the buffer with
        its first and last pooled ``halo/2`` frames replaced by :meth:`P835Split.edge_features`.
        """
        split = self.split
        if split is None:
            return self._p835.run(None, {self._p835_in: np.stack([x[a:a + WINDOW_SAMPLES] for a in starts])})[0]
        if self.fast:  # non-overlapping windows share no frames: each window's front end on its own
            return split.back.run(None, {split.features_name: split.window_features(x, starts)})[0]
        n, hp = P835_WINDOW_FRAMES // split.POOL, split.halo // split.POOL   # pooled frames: 450 and 2
        f0, f1 = starts[0] // P835_FRAME_HOP, starts[-1] // P835_FRAME_HOP + P835_WINDOW_FRAMES
        feats, first = buffer.get("feats"), buffer.get("first", 0)       # first: in frames (even)
        have = first + feats.shape[1] * split.POOL if feats is not None else first
        if feats is None or not first <= f0 < have:
            feats, first = split.front_features(x, f0, f1 - f0), f0
        else:
            parts = [feats[:, (f0 - first) // split.POOL:]]
            if f1 > have:
                parts.append(split.front_features(x, have, f1 - have))
            feats, first = np.concatenate(parts, axis=1), f0
        buffer["feats"], buffer["first"] = feats, first
        head, tail = split.edge_features(x, starts)
        windows = np.empty((len(starts), feats.shape[0], n, feats.shape[2]), np.float32)
        for i, a in enumerate(starts):
            f = (a // P835_FRAME_HOP - first) // split.POOL
            windows[i] = feats[:, f:f + n]
            windows[i, :, :hp] = head[i]
            windows[i, :, n - hp:] = tail[i]
        return split.back.run(None, {split.features_name: windows})[0]

    def score(self, audio: np.ndarray, sample_rate: int) -> DnsmosScores:
        """Blocking :meth:`score_steps`."""
        return run_to_end(self.score_steps(audio, sample_rate))

@lru_cache(maxsize=2)
def _plain_sessions(personalized: bool):
    import onnxruntime as ort

    p835, p808 = model_paths(personalized)
    return (ort.InferenceSession(str(p835), providers=["CPUExecutionProvider"]),
            ort.InferenceSession(str(p808), providers=["CPUExecutionProvider"]))


def window_by_window_scores(audio: np.ndarray, sample_rate: int, personalized: bool = False,
                            exact_reference: bool = True, fast: bool = False) -> DnsmosScores:
    """DNSMOS computed the plain way, as speechmos does and as this module did before batching: for each window,
    one call of the unmodified P.835 network on the raw window ``(1, 144160)``, the log-mel features of that
    window (:func:`p808_features`) and one P.808 call ``(1, 900, 120)``. The reference for the batched, split
    :class:`Dnsmos` (tests and ``bench/bench_metrics.py``); slow."""
    p835, p808 = _plain_sessions(personalized)
    p835_in, p808_in = p835.get_inputs()[0].name, p808.get_inputs()[0].name
    polys = p835_polynomials(personalized)
    sig, bak, ovrl, mos = [], [], [], []
    for seg in analysis_windows(prepare_signal(audio, sample_rate), fast, exact_reference):
        raw = p835.run(None, {p835_in: seg[None, :]})[0][0]
        mos.append(float(p808.run(None, {p808_in: p808_features(seg[:-MEL_HOP])[None]})[0][0][0]))
        sig.append(float(polys["sig"](raw[0])))
        bak.append(float(polys["bak"](raw[1])))
        ovrl.append(float(polys["ovrl"](raw[2])))
    return DnsmosScores(float(np.mean(sig)), float(np.mean(bak)), float(np.mean(ovrl)), float(np.mean(mos)),
                        len(sig), "fast" if fast else "exact")


_shared: dict[tuple[bool, bool], Dnsmos] = {}
_shared_lock = threading.Lock()


def shared_dnsmos(personalized: bool = False, fast: bool = False) -> Dnsmos:
    """A process-wide :class:`Dnsmos` (loading the sessions once costs about a second)."""
    with _shared_lock:
        if (personalized, fast) not in _shared:
            _shared[(personalized, fast)] = Dnsmos(personalized, fast=fast)
        return _shared[(personalized, fast)]


#: The label every output of the fast mode carries (CLI warning line, CSV ``warning`` row).
FAST_MODE_NOTE = ("DNSMOS in fast mode: non-overlapping 9.01 s windows instead of one every second; "
                  "an approximation of DNSMOS, not its reference scores")


#: Seconds of DNSMOS compute per 9.01 s window (one window per second of audio) in the exact mode: 0.056 s,
#: i.e. about 3.4 s per audio minute, measured with ``bench/bench_metrics.py`` on 120 s of speech (94 windows,
#: 5.26 s, median of 3) on the project's 2-core machine while it was quiet (600 s of noise: 0.052 s/window).
#: Before the network was split it was 0.48 s. :class:`DnsmosCost` refines it from runs.
SECONDS_PER_WINDOW = 0.056


def window_count(duration_s: float) -> int:
    """Number of 9.01 s windows DNSMOS scores for ``duration_s`` seconds of audio (one per second, at least
    one: short clips are repeat-padded)."""
    return max(int(math.floor(duration_s) - INPUT_LENGTH_S) + 1, 1)


#: Seconds of DNSMOS compute per scored clip besides its windows: the P.835 front network runs once over the
#: whole (padded) clip. Measured here with ``metrics.dnsmos_metrics`` on 5, 13 and 30 s of speech on the shared 2-core
#: machine under load (3.4 s for one window, 6.3 s for 21: about 3.3 s per clip + 0.15 s per window) and scaled
#: to the quiet machine's :data:`SECONDS_PER_WINDOW` (x 0.056 / 0.15). Twenty short versions cost twenty of
#: these, which an estimate from windows alone missed (it said 18 s where 80 s were needed).
SECONDS_PER_CLIP = 1.2


class DnsmosCost:
    """Estimate of DNSMOS compute time per clip: ``seconds_per_clip + windows(duration) × seconds_per_window``.

    Starts from :data:`SECONDS_PER_CLIP` and :data:`SECONDS_PER_WINDOW` and, after each measured run
    (:meth:`observe_clips`), scales both towards what this machine took (an exponential average, so one run
    on a busy machine does not dominate).
    """

    def __init__(self, seconds_per_window: float = SECONDS_PER_WINDOW, seconds_per_clip: float = SECONDS_PER_CLIP):
        self.seconds_per_window = float(seconds_per_window)
        self.seconds_per_clip = float(seconds_per_clip)

    @property
    def seconds_per_audio_minute(self) -> float:
        return 60.0 * self.seconds_per_window

    def estimate_s(self, duration_s: float) -> float:
        """Seconds to score one clip of ``duration_s`` seconds of audio."""
        return self.seconds_per_clip + window_count(duration_s) * self.seconds_per_window

    def estimate_clips_s(self, durations_s) -> float:
        """Seconds to score clips of ``durations_s`` seconds each (one per version)."""
        return sum(self.estimate_s(d) for d in durations_s)

    def observe_clips(self, durations_s, elapsed_s: float) -> None:
        """Account for a run that scored clips of ``durations_s`` seconds in ``elapsed_s`` seconds in all."""
        expected = self.estimate_clips_s(durations_s)
        if expected > 0 and elapsed_s > 0:
            factor = 0.5 + 0.5 * elapsed_s / expected
            self.seconds_per_window *= factor
            self.seconds_per_clip *= factor

    def observe(self, duration_s: float, elapsed_s: float) -> None:
        """Account for a run that scored one clip of ``duration_s`` seconds in ``elapsed_s`` seconds."""
        if duration_s > 0:
            self.observe_clips([duration_s], elapsed_s)
