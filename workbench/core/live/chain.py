"""One model's streaming path run at the device rate, and the checks a model passes before it goes live.

:class:`StreamChain` takes device-rate blocks of any length, resamples them to the model's rate with
soxr's streaming resampler, feeds whole multiples of the model's ``block_samples`` to its
:class:`~workbench.core.enhance.enhancer.EnhancerStream`, drops the model's declared
``latency_samples`` from the front of its output and resamples back. Its output (``wet``) is therefore
*sample-aligned* with its input: ``wet[p]`` is the model's answer for input sample ``p``. What delay
costs is how far the published ``wet`` lags behind the input pushed so far; :func:`pipeline_lag`
measures that exactly (it depends only on the rates, the model's block and latency, not on the audio).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import soxr

from ..enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream, with_processing
from ..errors import ModelError, WorkbenchError, one_line
from ..workflows.probes import probe_causality, probe_signal
from .ring import SampleRing


class LiveError(WorkbenchError):
    """A live run cannot start or continue (model not streamable, too slow, no device ...)."""


class LiveCascade(Enhancer):
    """A chain of models as live mode runs it: each step on its own streaming path, between the device
    rate and its own rate (:class:`CascadeChain`), the next step fed with the previous step's aligned
    output. Built by :func:`live_enhancer` from a chain (``rnnoise+deepfilternet3``)."""

    def __init__(self, steps: list[Enhancer], info: EnhancerInfo):
        self.steps = steps
        self.info = replace(info, processing="streaming", processing_paths=("streaming",),
                            causal=None if any(s.info.causal is None for s in steps)
                            else all(s.info.causal for s in steps))

    def new_stream(self) -> EnhancerStream:
        raise ModelError(f"{self.info.id}: a live chain runs step by step (open it with open_stream_chain)")

    def close(self) -> None:
        for s in self.steps:
            s.close()


def live_enhancer(enhancer: Enhancer, device_rate: int) -> Enhancer:
    """The enhancer as live mode runs it: built for ``device_rate`` when the method works at any rate,
    on its streaming path; a chain of models becomes a :class:`LiveCascade` of its steps so prepared.
    Raises :class:`LiveError` when it (or a step of the chain) has no streaming path."""
    if isinstance(enhancer, LiveCascade):
        return enhancer
    steps = getattr(enhancer, "steps", None)
    if getattr(enhancer, "enhance_source", None) is not None and steps:
        live_steps = []
        for i, step in enumerate(steps):
            try:
                live_steps.append(live_enhancer(step, device_rate))
            except LiveError as exc:
                raise LiveError(f"{enhancer.info.id}: step {i + 1}: {exc}") from None
        return LiveCascade(live_steps, enhancer.info)
    if getattr(enhancer, "enhance_source", None) is not None:
        raise LiveError(f"{enhancer.info.id}: runs file by file; live mode needs a streaming model")
    if enhancer.info.any_rate:
        enhancer = enhancer.for_rate(int(device_rate))
    if "streaming" not in enhancer.info.paths:
        raise LiveError(f"{enhancer.info.id}: has only the {' and '.join(enhancer.info.paths)} path; live mode "
                        "needs a streaming path (a model that carries its state from block to block)")
    try:
        return with_processing(enhancer, "streaming")
    except ModelError as exc:
        raise LiveError(str(exc)) from None


class _CountingStream(EnhancerStream):
    """Stand-in for a model stream that returns silence of the right length: the delay bookkeeping of a
    chain does not depend on what the model computes."""

    def __init__(self, n_outputs: int):
        self.n_outputs = n_outputs

    def process(self, block: np.ndarray) -> np.ndarray:
        return np.zeros(len(block), np.float32)


class StreamChain:
    """A model's stream between the device rate and the model's rate; see the module docstring.

    Attributes:
        info: the model as run (native rate, block, latency).
        wet: aligned output at the device rate; ``wet.written`` starts at ``origin``.
        origin: stream position of the first input sample this chain saw.
    """

    def __init__(self, enhancer: Enhancer, device_rate: int, origin: int = 0, capacity: int | None = None,
                 stream: EnhancerStream | None = None, quality: str = "HQ"):
        self.enhancer = enhancer
        self.info: EnhancerInfo = enhancer.info
        self.device_rate = int(device_rate)
        self.native_rate = int(self.info.sample_rate)
        self.gran = max(int(self.info.block_samples), 1)
        self.latency_native = int(self.info.latency_samples)
        self.origin = int(origin)
        self.stream = stream if stream is not None else enhancer.new_stream()
        self.quality = quality
        self.wet = SampleRing(capacity or 4 * self.device_rate)
        self.closed = False
        self.restart_at(self.origin)

    def restart_at(self, origin: int) -> None:
        """Continue from input position ``origin`` after skipping input: the model keeps its stream (a
        native model may take seconds to open a new one), the resamplers and the frame buffer start afresh,
        and the model's first ``latency`` output samples, which still answer the skipped input, are dropped,
        so :attr:`wet` stays aligned."""
        resampled = self.native_rate != self.device_rate
        q = self.quality
        self._down = soxr.ResampleStream(self.device_rate, self.native_rate, 1, dtype="float32", quality=q) if resampled else None
        self._up = soxr.ResampleStream(self.native_rate, self.device_rate, 1, dtype="float32", quality=q) if resampled else None
        self._pending = np.zeros(0, np.float32)
        self._skip = self.latency_native
        self.origin = int(origin)
        self.wet.written = self.origin

    def push(self, x: np.ndarray) -> int:
        """Process device-rate samples ``x`` ``(n,)``; append what became ready to :attr:`wet`. Returns
        how many wet samples were published.

        Raises:
            ModelError: the model raised or returned a wrong shape or NaN/Inf.
        """
        native = self._down.resample_chunk(x) if self._down is not None else x
        # a copy either way: ``x`` is the caller's scratch block, overwritten by the next push
        pending = np.concatenate([self._pending, native]) if len(self._pending) else np.array(native, np.float32)
        usable = len(pending) // self.gran * self.gran
        self._pending = pending[usable:]
        if not usable:
            return 0
        block = np.ascontiguousarray(pending[:usable], np.float32)
        try:
            y = np.asarray(self.stream.process(block))
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"model {self.info.id!r} failed: {one_line(exc)}") from exc
        if y.ndim == 2:  # a multi-output model: its first output is what is heard
            y = y[0]
        if y.shape != (usable,) or not np.isfinite(y).all():
            raise ModelError(f"model {self.info.id!r} returned {y.shape} samples for {usable}, or NaN/Inf")
        y = y.astype(np.float32, copy=False)
        if self._skip:
            cut = min(self._skip, len(y))
            y = y[cut:]
            self._skip -= cut
        if self._up is not None and len(y):
            y = self._up.resample_chunk(y)
        if len(y):
            self.wet.write(np.asarray(y, np.float32))
        return len(y)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stream.close()


class CascadeChain:
    """A :class:`LiveCascade` at the device rate: one :class:`StreamChain` per step, each step fed with
    what the previous one published. Every step's output is aligned with the input, so the last step's
    :attr:`wet` is too; the delay is the steps' delays added (:func:`pipeline_lag` measures it).

    It offers what the live engine uses of a :class:`StreamChain`: ``info``, ``wet``, ``origin``,
    :meth:`push`, :meth:`restart_at`, :meth:`close`.
    """

    def __init__(self, cascade: LiveCascade, device_rate: int, origin: int = 0, capacity: int | None = None,
                 quality: str = "HQ", counting: bool = False):
        self.info = cascade.info
        cap = capacity or 4 * int(device_rate)
        self.steps = [StreamChain(step, device_rate, origin, cap, quality=quality,
                                  stream=_CountingStream(step.info.n_outputs) if counting else None)
                      for step in cascade.steps]
        self._fed = [int(origin)] * len(self.steps)
        self._scratch = np.zeros(cap, np.float32)
        self.closed = False

    @property
    def wet(self) -> SampleRing:
        return self.steps[-1].wet

    @property
    def origin(self) -> int:
        return self.steps[0].origin

    def restart_at(self, origin: int) -> None:
        for step in self.steps:
            step.restart_at(origin)
        self._fed = [int(origin)] * len(self.steps)

    def push(self, x: np.ndarray) -> int:
        """Push device-rate samples through every step; returns how many aligned samples the last step
        published."""
        n = self.steps[0].push(x)
        for i in range(1, len(self.steps)):
            prev, step = self.steps[i - 1], self.steps[i]
            end = prev.wet.written
            start = max(self._fed[i], end - prev.wet.capacity)
            if end <= start:
                n = 0
                continue
            buf = self._scratch[:end - start] if end - start <= len(self._scratch) else np.empty(end - start, np.float32)
            prev.wet.read_into(start, buf)
            self._fed[i] = end
            n = step.push(buf)
        return n

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for step in self.steps:
                step.close()


def open_stream_chain(enhancer: Enhancer, device_rate: int, origin: int = 0, capacity: int | None = None,
                      quality: str = "HQ", counting: bool = False) -> "StreamChain | CascadeChain":
    """The device-rate chain live mode runs for ``enhancer`` (as :func:`live_enhancer` made it): a
    :class:`CascadeChain` for a chain of models, else a :class:`StreamChain`. ``counting`` swaps the
    models for silence of the right length (for :func:`pipeline_lag`)."""
    if isinstance(enhancer, LiveCascade):
        return CascadeChain(enhancer, device_rate, origin, capacity, quality, counting)
    return StreamChain(enhancer, device_rate, origin, capacity, quality=quality,
                       stream=_CountingStream(enhancer.info.n_outputs) if counting else None)


def pipeline_lag(enhancer: Enhancer, device_rate: int, block: int, seconds: float = 2.0, quality: str = "HQ") -> int:
    """Largest number of device samples by which a chain's published wet output trails the input pushed
    into it, over ``seconds`` of ``block``-sample pushes: the model's latency and its block buffering,
    plus the resamplers' filter delay both ways. Exact for this chain (the same arithmetic runs live)."""
    chain = open_stream_chain(enhancer, device_rate, quality=quality, counting=True)
    x = np.zeros(block, np.float32)
    worst = 0
    pushed = 0
    for _ in range(max(int(seconds * device_rate / block), 8)):
        chain.push(x)
        pushed += block
        worst = max(worst, pushed - chain.wet.written)
    return worst


@dataclass(frozen=True)
class BlockCost:
    """Processing cost of one device block through a chain, measured before going live.

    Attributes:
        median_s, p99_s, mean_s: over the timed blocks (seconds of wall-clock time per block).
        cpu_median_s, cpu_p99_s: the processing thread's CPU time per block (what the block costs one core
            when nothing else competes for it; on a loaded machine the wall-clock figures are larger).
        period_s: the block period (block / device rate).
        blocks: number of timed blocks.
    """

    median_s: float
    p99_s: float
    mean_s: float
    period_s: float
    blocks: int
    cpu_median_s: float = 0.0
    cpu_p99_s: float = 0.0

    @property
    def load(self) -> float:
        """Mean cost / block period (1.0: exactly real time)."""
        return self.mean_s / self.period_s

    def text(self) -> str:
        return (f"{1000 * self.median_s:.2f} ms median, {1000 * self.p99_s:.2f} ms p99 per "
                f"{1000 * self.period_s:.1f} ms block (load {100 * self.load:.0f}%)")


def measure_block_cost(enhancer: Enhancer, device_rate: int, block: int, blocks: int = 150,
                       warmup: int = 10, quality: str = "HQ") -> BlockCost:
    """Time ``blocks`` pushes of a speech-like signal through a fresh chain (after ``warmup`` untimed)."""
    chain = open_stream_chain(enhancer, device_rate, quality=quality)
    n = (blocks + warmup) * block
    sig = probe_signal(device_rate, n / device_rate + 0.1)
    sig = np.resize(sig, n).astype(np.float32)
    times, cpu = [], []
    try:
        for i in range(blocks + warmup):
            t, c = time.perf_counter(), time.thread_time()
            chain.push(sig[i * block:(i + 1) * block])
            if i >= warmup:
                times.append(time.perf_counter() - t)
                cpu.append(time.thread_time() - c)
    finally:
        chain.close()
    arr, carr = np.asarray(times), np.asarray(cpu)
    return BlockCost(float(np.median(arr)), float(np.percentile(arr, 99)), float(arr.mean()),
                     block / device_rate, len(arr), float(np.median(carr)), float(np.percentile(carr, 99)))


@dataclass(frozen=True)
class Admission:
    """A model accepted for live use at one device rate and block.

    Attributes:
        enhancer: the enhancer as run live (see :func:`live_enhancer`).
        quality: soxr quality of the chain's resamplers (``QQ`` ... ``VHQ``).
        lag_samples: :func:`pipeline_lag`, device samples.
        algorithmic_samples: the model's declared latency in device samples (frame + look-ahead).
        cost: measured per-block cost.
        causality: the probe's one-line verdict.
    """

    enhancer: Enhancer
    lag_samples: int
    quality: str
    algorithmic_samples: float
    cost: BlockCost | None
    causality: str


#: soxr's qualities. Its streaming resampler works in internal blocks whose size grows with the filter:
#: at 48 <-> 16 kHz in 10 ms blocks, HQ emits ~490 samples every third call (about 36 ms of delay each
#: way), QQ (cubic interpolation, aliasing) emits every call with no added delay.
RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def admit(enhancer: Enhancer, device_rate: int, block: int, *, check_causality: bool = True,
          check_cost: bool = True, quality: str = "HQ") -> Admission:
    """Refuse a model live mode cannot run, with the reason; otherwise say what it will cost.

    Refused: no streaming path; not causal by the probe (:func:`~workbench.core.workflows.probes.probe_causality`:
    its output changes before an input change by more than its declared latency plus one block); a mean
    per-block cost above the block period (it could never keep up).

    Raises:
        LiveError: with the measured reason.
    """
    if quality not in RESAMPLE_QUALITIES:
        raise LiveError(f"resampling quality must be one of {', '.join(RESAMPLE_QUALITIES)}, not {quality!r}")
    enh = live_enhancer(enhancer, device_rate)
    info = enh.info
    verdict = "not checked"
    if check_causality and isinstance(enh, LiveCascade):
        verdicts = []
        for step in enh.steps:
            verdicts.append(f"{step.info.id}: " + admit(step, device_rate, block, check_cost=False,
                                                         quality=quality).causality)
        verdict = "; ".join(verdicts)
    elif check_causality:
        if info.causal is False:
            raise LiveError(f"{info.id}: declares itself not causal; live mode needs a causal model")
        try:
            caus = probe_causality(enh)
        except ModelError:
            raise
        except Exception as exc:
            raise LiveError(f"{info.id}: the causality probe failed: {one_line(exc)}") from exc
        if not caus.causal:
            why = ("a late input change altered the output from the very first sample (unbounded look-ahead)"
                   if caus.reaches_start else
                   f"its output changes {caus.lookahead_samples} samples before an input change; it declares "
                   f"{info.latency_samples} samples of latency (+{caus.allowance_samples - info.latency_samples} "
                   "for block buffering)")
            raise LiveError(f"{info.id}: not causal, so it cannot run live: {why}")
        verdict = (f"causal: look-ahead {caus.lookahead_samples} samples within the allowed "
                   f"{caus.allowance_samples}")
    cost = None
    if check_cost:
        cost = measure_block_cost(enh, device_rate, block, quality=quality)
        if cost.mean_s > cost.period_s or cost.median_s > cost.period_s:
            raise LiveError(f"{info.id}: too slow for live use at {device_rate} Hz with {block}-sample blocks: "
                            f"{cost.text()}; try a larger block or a lighter model")
    if isinstance(enh, LiveCascade):
        algorithmic = sum(s.info.latency_samples * device_rate / s.info.sample_rate for s in enh.steps)
    else:
        algorithmic = info.latency_samples * device_rate / info.sample_rate
    return Admission(enh, pipeline_lag(enh, device_rate, block, quality=quality), quality, algorithmic, cost, verdict)
