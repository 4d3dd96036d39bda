"""Behavioural probes of any :class:`~workbench.core.enhance.enhancer.Enhancer`: causality, latency, speed, size.

All probes run the model through the same engine as the GUI and CLI (:func:`workbench.core.enhance.enhancer.enhance`),
at the model's native rate so no resampling filter blurs the measurements.

Definitions (sample counts at the native rate):

* **look-ahead** ``L``: the engine output is latency-compensated (aligned with the input). Perturb the input
  only from sample ``T`` on and find the first output sample ``n0`` that changes; ``L = T - n0``. It is
  measured at several positions of ``T`` inside one processing block and the largest value is kept.
  A streaming model that buffers one block and delays its output by ``D`` shows ``L <= D + block - 1``.
* **causal**: ``L <= declared latency_samples + block_samples - 1``. The model's output at time ``n``
  then depends only on input up to ``n`` plus the delay it declares (and the unavoidable buffering of one
  block) — exactly what a real-time deployment needs. A bidirectional RNN changes output all the way back
  to the start of the signal; a centred convolution changes it half a kernel early without declaring it.
* **latency** ``latency_samples``: the measured algorithmic latency, ``max(L, D_raw)``, where ``D_raw`` is the
  delay of the raw (uncompensated) streaming output found by cross-correlation (0 for offline models).
  ``residual_lag_samples`` is the lag of the compensated output against the input, normally 0; a
  non-zero value means the declared latency is wrong.
* **RTF**: wall-clock processing time / audio duration, median over runs, single process, this machine.
  That is the warm figure: the model is loaded and has run before. **Cold** (when the probe is given the
  model's spec): a fresh Python process loads the model and enhances the same audio once, as a person's
  next ``workbench enhance`` would (files in the OS cache, rewritten graphs in the model cache): its wall
  time split into start-up (interpreter and imports), model load and first run, and ``cold_s / audio s``
  beside the warm RTF.
* **parameters**: torch modules found on the enhancer: ``Σ numel`` of unique parameters (and buffers are
  not counted); ONNX graphs: initializer elements plus floating-point ``Constant`` tensors
  (see :func:`onnx_parameter_count`).
* **MACs per second** (torch models only): multiply-accumulates counted by PyTorch's
  ``FlopCounterMode`` (plus a formula for fused recurrent kernels) while the model enhances one second
  of audio; ONNX models: every onnxruntime call recorded during that second, each input-shape signature
  counted once by ``onnx-tool``. Element-wise operations (activations, norms, masks) are not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Generator, Iterator

import numpy as np

from ..enhance.enhancer import Enhancer, EnhancerInfo, enhance, with_processing
from ..progress import Progress, rescaled, run_to_end
from ..errors import ModelError
from ..audio.correlation import estimate_lag
from ..enhance.onnx_weights import onnx_parameter_count


@dataclass
class ProbeReport:
    """Everything the probes measured for one enhancer (JSON-ready through :meth:`to_dict`).

    Attributes:
        model: enhancer id.
        sample_rate: native rate, Hz.
        causal: measured causality (see module docstring).
        lookahead_samples: measured look-ahead ``L`` of the aligned output.
        lookahead_reaches_start: the perturbation changed output back to the first sample (unbounded
            look-ahead, e.g. a bidirectional RNN); ``lookahead_samples`` is then a lower bound.
        latency_samples: measured algorithmic latency ``max(L, raw delay)``.
        declared_latency_samples, declared_causal: what the model says about itself.
        raw_delay_samples: delay of the raw streaming output (None for offline models).
        residual_lag_samples: lag of the engine's compensated output versus the input.
        rtf: real-time factor (processing time / audio time), median of ``rtf_runs`` (warm).
        cold_s: seconds a fresh process took from its start to the enhanced audio of the RTF's input
            (``None``: not measured); ``cold_start_s``, ``cold_load_s``, ``cold_first_run_s``: its parts
            (interpreter and imports, model load, first enhancement).
        parameters: parameter count (None when the model's weights are not reachable).
        macs_per_second: MACs per second of audio (torch modules, onnxruntime graphs, another path's
            graphs, or the model's declaration; see the notes), else None.
        notes: human remarks (e.g. why a value is missing, or a declared/measured mismatch).
    """

    model: str
    sample_rate: int
    causal: bool
    lookahead_samples: int
    lookahead_reaches_start: bool
    latency_samples: int
    declared_latency_samples: int
    declared_causal: bool | None
    raw_delay_samples: int | None
    residual_lag_samples: int
    rtf: float
    rtf_runs: int
    rtf_audio_s: float
    parameters: int | None
    macs_per_second: float | None
    processing: str
    block_samples: int
    notes: list[str] = field(default_factory=list)
    cold_s: float | None = None
    cold_start_s: float | None = None
    cold_load_s: float | None = None
    cold_first_run_s: float | None = None

    @property
    def cold_rtf(self) -> float | None:
        """Cold seconds per audio second (start-up, load and first run together)."""
        return None if self.cold_s is None else self.cold_s / self.rtf_audio_s

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate

    def to_dict(self) -> dict:
        d = asdict(self)
        d["latency_ms"] = self.latency_ms
        d["lookahead_ms"] = 1000.0 * self.lookahead_samples / self.sample_rate
        d["cold_rtf"] = self.cold_rtf
        return d


# ------------------------------------------------------------------------------------------- signals


def probe_signal(sample_rate: int, duration_s: float = 3.0, seed: int = 7) -> np.ndarray:
    """A speech-like test signal ``(n,)`` float32: syllable-rate bursts of a glottal-pulse-like harmonic
    source with a wandering pitch (100–220 Hz), over pink-ish background noise at about -30 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 160 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25) if k * 220 < sample_rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2  # ~4 syllables per second
    white = rng.standard_normal(n)
    pink = np.cumsum(white) * 0.02
    pink -= np.convolve(pink, np.ones(256) / 256, mode="same")  # remove the random walk's drift
    x = 0.25 * envelope * voiced / 3 + 0.03 * pink / (np.std(pink) + 1e-12)
    return x.astype(np.float32)


def _run(enhancer: Enhancer, x: np.ndarray) -> np.ndarray:
    """The engine's aligned output of mono ``x``: float64 ``(n_outputs, n)``, every output of the model."""
    return run_to_end(enhance(enhancer, x, enhancer.info.sample_rate))[:, :, 0].astype(np.float64)


def _raw_stream(enhancer: Enhancer, x: np.ndarray) -> np.ndarray:
    """Run a streaming model's own stream with no delay compensation (blocks of 10 block_samples);
    float64 ``(n_outputs, n)``."""
    gran = max(int(enhancer.info.block_samples), 1)
    n = -(-len(x) // gran) * gran
    xp = np.zeros(n, np.float32)
    xp[:len(x)] = x
    stream = enhancer.new_stream()
    step = gran * 10
    out = [np.atleast_2d(np.asarray(stream.process(xp[i:i + step]), np.float64)) for i in range(0, n, step)]
    close = getattr(stream, "close", None)
    if callable(close):
        close()
    return np.concatenate(out, axis=1)[:, :len(x)]


# ------------------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class CausalityResult:
    """Result of :func:`probe_causality` (see the module docstring for definitions)."""

    causal: bool
    lookahead_samples: int
    reaches_start: bool
    allowance_samples: int
    perturb_at: tuple[int, ...]


def probe_causality(enhancer: Enhancer, signal: np.ndarray | None = None, *, perturb_at_s: float = 2.0,
                    phases: int = 3, tolerance: float = 1e-6) -> CausalityResult:
    """Measure the look-ahead of the aligned output and decide causality.

    For each of ``phases`` perturbation points ``T`` spread over one block after ``perturb_at_s``, white noise
    (about -20 dBFS) is added to the input from ``T`` on; the output is compared with the unperturbed run.
    A sample counts as changed when ``|Δy| > tolerance · max|y| + repeat_noise`` where ``repeat_noise`` is the
    largest difference between two identical runs (nondeterministic runtimes).

    Args:
        signal: ``(n,)`` at the native rate (default :func:`probe_signal`, 3 s); must extend past ``T``.
    """
    info = enhancer.info
    sr = info.sample_rate
    x = probe_signal(sr) if signal is None else np.asarray(signal, np.float32).reshape(-1)
    gran = max(int(info.block_samples), 1)
    t0 = int(perturb_at_s * sr)
    if t0 + gran + sr // 10 >= len(x):
        raise ValueError(f"probe signal too short: {len(x)} samples, perturbation at {t0}")
    base = _run(enhancer, x)
    again = _run(enhancer, x)
    repeat_noise = float(np.max(np.abs(base - again))) if base.size else 0.0
    threshold = tolerance * float(np.max(np.abs(base)) or 1.0) + repeat_noise
    rng = np.random.default_rng(11)
    points = sorted({t0 + int(round(p * (gran - 1) / max(phases - 1, 1))) for p in range(phases)})
    lookahead, reaches_start = 0, False
    for T in points:
        xp = x.copy()
        xp[T:] += (0.1 * rng.standard_normal(len(x) - T)).astype(np.float32)
        # A sample changed when any output changed there: every output is examined as itself.
        changed = np.nonzero(np.any(np.abs(_run(enhancer, xp) - base) > threshold, axis=0))[0]
        if len(changed) == 0:
            continue  # the model ignored the perturbation entirely (e.g. gated to silence)
        n0 = int(changed[0])
        lookahead = max(lookahead, T - n0)
        reaches_start |= n0 == 0
    allowance = int(info.latency_samples) + gran - 1
    causal = (not reaches_start) and lookahead <= allowance
    return CausalityResult(causal, lookahead, reaches_start, allowance, tuple(points))


def measure_delay(reference: np.ndarray, output: np.ndarray, max_lag: int) -> int:
    """Delay (samples) of ``output`` relative to ``reference`` by cross-correlation (positive: late)."""
    lag, _ = estimate_lag(reference, output, max_lag)
    return lag


def probe_latency(enhancer: Enhancer, signal: np.ndarray | None = None) -> tuple[int | None, int]:
    """``(raw_delay_samples, residual_lag_samples)``; with several outputs, the largest delay of any output
    (:func:`residual_lags` gives each output's own).

    ``raw_delay_samples``: models with a streaming path (default or not), the delay of the model's own
    stream output against the input (cross-correlation; a denoiser's output correlates strongly with its
    input's speech). ``None`` for offline-only models, whose output is aligned by contract. ``residual_lag_samples``: the lag left in the
    engine's compensated output.
    """
    info = enhancer.info
    sr = info.sample_rate
    x = probe_signal(sr) if signal is None else np.asarray(signal, np.float32).reshape(-1)
    max_lag = max(int(0.5 * sr), 4 * int(info.latency_samples))
    raw = None
    if "streaming" in info.paths:
        raw = _largest([measure_delay(x, y, max_lag) for y in _raw_stream(enhancer, x)])
    residual = _largest(list(residual_lags(enhancer, x).values()))
    return raw, residual


def _largest(lags: list[int]) -> int:
    return max(lags, key=abs)


def residual_lags(enhancer: Enhancer, signal: np.ndarray | None = None) -> dict[str, int]:
    """``{output name: lag (samples) of the engine's compensated output against the input}``, each output
    measured as itself (a model separating speech and noise gives both)."""
    info = enhancer.info
    x = probe_signal(info.sample_rate) if signal is None else np.asarray(signal, np.float32).reshape(-1)
    max_lag = max(int(0.5 * info.sample_rate), 4 * int(info.latency_samples))
    return {name: measure_delay(x, y, max_lag) for name, y in zip(info.outputs, _run(enhancer, x))}


def probe_rtf(enhancer: Enhancer, audio: np.ndarray | None = None, sample_rate: int | None = None,
              runs: int = 3) -> tuple[float, float]:
    """``(median RTF, audio seconds)``: engine time to enhance ``audio`` divided by its duration.

    ``audio`` is mono at ``sample_rate`` (default: 5 s of :func:`probe_signal` at the native rate); the
    engine resamples as it would for a user, so that cost is included.
    """
    if audio is None:
        sample_rate = enhancer.info.sample_rate
        audio = probe_signal(sample_rate, 5.0)
    if sample_rate is None:
        raise ValueError("sample_rate is required with audio")
    x = np.asarray(audio, np.float32).reshape(-1)
    duration = len(x) / sample_rate
    if duration <= 0:
        raise ValueError("empty audio")
    times = []
    for _ in range(max(runs, 1)):
        t = time.perf_counter()
        run_to_end(enhance(enhancer, x, sample_rate))
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / duration, duration


#: The fresh process of :func:`probe_cold`: times its imports, the model's load and one enhancement.
_COLD_CHILD = r"""
import json, sys, time
t_start = time.perf_counter()
import numpy as np
from workbench.core.enhance.enhancer import enhance, with_processing
from workbench.core.enhance.registry import load_enhancer
from workbench.core.progress import run_to_end
spec, processing, path, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.load(path)
t_imported = time.perf_counter()
enhancer = load_enhancer(spec)
if processing:
    enhancer = with_processing(enhancer, processing)
t_loaded = time.perf_counter()
run_to_end(enhance(enhancer, x, rate))
t_done = time.perf_counter()
print("COLD " + json.dumps({"imports_s": t_imported - t_start, "load_s": t_loaded - t_imported,
                            "first_run_s": t_done - t_loaded}), flush=True)
"""


def probe_cold(spec: str, audio: np.ndarray, sample_rate: int, processing: str | None = None, *,
               timeout_s: float = 600.0) -> Generator[Progress, None, dict]:
    """The cold cost of a model: a fresh Python process loads ``spec`` (a built-in or plugin id, or a model
    path, as ``workbench enhance -m`` takes it) and enhances ``audio`` (mono, ``sample_rate``) once.

    Returns ``{"cold_s", "start_s", "load_s", "first_run_s"}`` in seconds: the process's wall time from
    its launch to the enhanced audio (its exit, whose few milliseconds count too), the part before the
    model load (interpreter start-up and imports), the load, and the first enhancement. A generator: it
    yields while the child runs, and closing it ends the child.

    Raises:
        ModelError: the child failed (its last line of error output is the message).
    """
    x = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    with tempfile.TemporaryDirectory(prefix="workbench-probe-") as tmp:
        path = os.path.join(tmp, "audio.npy")
        np.save(path, x)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed package: byte code is kept
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", _COLD_CHILD, str(spec), processing or "", path,
                                  str(int(sample_rate))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env)
        try:
            while child.poll() is None:
                if time.perf_counter() - t0 > timeout_s:
                    raise ModelError(f"{spec}: the cold run took longer than {timeout_s:.0f} s")
                yield Progress(0.0, f"{spec}: cold run in a fresh process")
                time.sleep(0.05)
            wall = time.perf_counter() - t0
            out, err = child.communicate()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    line = [ln for ln in out.splitlines() if ln.startswith("COLD ")]
    if child.returncode != 0 or not line:
        last = (err.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        raise ModelError(f"{spec}: the cold run failed: {last[:300]}")
    got = json.loads(line[0][len("COLD "):])
    return {"cold_s": wall, "start_s": wall - got["load_s"] - got["first_run_s"], "load_s": got["load_s"],
            "first_run_s": got["first_run_s"]}


# -------------------------------------------------------------------------------- size and compute


#: Values the walker never looks into (a path or number is a leaf, an array's elements are no objects).
_LEAVES = (str, bytes, int, float, Path, np.ndarray)


def _reachable(obj, depth: int, stop=lambda o: False) -> Iterator:
    """Every object reachable from ``obj`` through attributes, list and tuple items and dict values, at most
    ``depth`` attribute levels down (a container's items sit at the container's level), each once,
    outermost first. Leaves (:data:`_LEAVES`) and objects for which ``stop`` is true are yielded but not
    entered (a torch module's own sub-modules are its business)."""
    seen: set[int] = set()

    def visit(o, d):
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, (list, tuple, dict)):  # a container's items sit at the container's level
            for item in list(o.values() if isinstance(o, dict) else o):
                yield from visit(item, d)
            return
        yield o
        if d == 0 or isinstance(o, _LEAVES) or stop(o) or not hasattr(o, "__dict__"):
            return
        for v in list(vars(o).values()):
            yield from visit(v, d - 1)

    yield from visit(obj, depth)


def _torch_modules(obj, depth: int = 2) -> list:
    """torch ``nn.Module`` s reachable from ``obj`` (:func:`_reachable`), outermost first."""
    try:
        import torch.nn as nn
    except ImportError:  # torch is a dependency, but a size probe must not crash without it
        return []

    def is_module(o):
        return isinstance(o, nn.Module)

    return [o for o in _reachable(obj, depth, is_module) if is_module(o)]


def _onnx_sessions(obj, depth: int = 3) -> list:
    """onnxruntime ``InferenceSession`` s reachable from ``obj`` (:func:`_reachable`)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []

    def is_session(o):
        return isinstance(o, ort.InferenceSession)

    return [o for o in _reachable(obj, depth, is_session) if is_session(o)]


def _onnx_paths(obj, depth: int = 2) -> list[Path]:
    """ONNX files (or tarballs of them) reachable from ``obj`` (:func:`_reachable`): onnxruntime sessions'
    model paths and values that are paths ending in ``.onnx`` / ``.tar.gz``; plus ``runtime_files()`` of
    the enhancer's module when it exposes one (how the DeepFilterNet3 adapter locates its tarball)."""
    paths: list[Path] = []

    def add(p):
        p = Path(p)
        if p.suffix == ".onnx" or p.name.endswith(".tar.gz"):
            if p.is_file() and p not in paths:
                paths.append(p)

    for o in _reachable(obj, depth):
        if isinstance(o, (str, Path)):
            add(o)
            continue
        mp = getattr(o, "_model_path", None)  # onnxruntime.InferenceSession keeps its file path here
        if isinstance(mp, str):
            add(mp)
    module = __import__(type(obj).__module__, fromlist=["_"])
    runtime_files = getattr(module, "runtime_files", None)
    if callable(runtime_files):
        try:
            for p in runtime_files():
                add(p)
        except Exception:  # a missing runtime is reported by the model itself, not by the size probe
            pass
    return paths


def count_parameters(enhancer: Enhancer) -> tuple[int | None, str]:
    """``(count, how)``: torch parameters of modules found on the enhancer, else ONNX initializers, else
    the model's own declaration (``info.parameters``), else ``(None, reason)``."""
    modules = _torch_modules(enhancer)
    if modules:
        unique = {id(p): p for m in modules for p in m.parameters()}
        return int(sum(p.numel() for p in unique.values())), "torch parameters"
    paths = _onnx_paths(enhancer)
    if paths:
        total = 0
        for p in paths:
            if p.suffix == ".onnx":
                total += onnx_parameter_count(p.read_bytes())
            else:
                with tarfile.open(p, "r:gz") as tar:
                    for member in tar.getmembers():
                        if member.isfile() and member.name.endswith(".onnx"):
                            fh = tar.extractfile(member)
                            if fh is not None:
                                total += onnx_parameter_count(fh.read())
        return total, "ONNX weights in " + ", ".join(p.name for p in paths)
    if enhancer.info.parameters is not None:
        return int(enhancer.info.parameters), "declared by the model"
    return None, "no torch module or ONNX file reachable from the enhancer"


def _recurrent_flops(input_shape, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                     batch_first, *_, out_shape=None, **__) -> int:
    """FLOPs (2 per multiply-accumulate) of ``aten.lstm/gru/rnn_*.input``: every weight matrix of every
    layer and direction multiplies one vector per time step and batch item,
    ``Σ_W 2 · batch · steps · rows(W) · cols(W)`` (biases and gate non-linearities not counted)."""
    steps = int(input_shape[0]) * int(input_shape[1]) if len(input_shape) == 3 else int(input_shape[0])
    return sum(2 * steps * int(w[0]) * int(w[1]) for w in params if len(w) == 2)


def count_macs_per_second(enhancer: Enhancer, seconds: float = 1.0) -> float | None:
    """MACs per second of audio for torch models (``None`` when no torch module is reachable).

    Runs the enhancer on ``seconds`` of :func:`probe_signal` under PyTorch's own
    :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products, convolutions and transposed
    convolutions, attention), with the fused recurrent kernels (``aten.lstm`` and friends, which the
    counter has no formula for) counted by :func:`_recurrent_flops`; MACs = FLOPs / 2, divided by
    ``seconds``. Element-wise operations (activations, norms, masks) are not counted.
    """
    remote = getattr(enhancer, "call_in_worker", None)
    if remote is not None:  # the model lives in a worker process (workbench.core.enhance.isolated): count there
        return remote("workbench.core.workflows.probes:count_macs_per_second", seconds)
    modules = _torch_modules(enhancer)
    if not modules:
        return None
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    # The counter checks the overload (``aten.lstm.input``) before running an op and books the count
    # under its packet (``aten.lstm``): both must be keys, or the op is run uncounted.
    recurrent = {}
    for packet in (aten.lstm, aten.gru, aten.rnn_tanh, aten.rnn_relu):
        recurrent[packet] = _recurrent_flops
        for name in packet.overloads():
            recurrent[getattr(packet, name)] = _recurrent_flops
    counter = FlopCounterMode(display=False, custom_mapping=recurrent)
    sr = enhancer.info.sample_rate
    with counter:
        _run(enhancer, probe_signal(sr, seconds))
    return counter.get_total_flops() / 2 / seconds


def _onnx_graph_macs(model: bytes | str, feeds: dict[str, tuple[tuple[int, ...], np.dtype]]) -> float:
    """MACs of one call of an ONNX graph with inputs of the given shapes, counted by ``onnx-tool``."""
    import contextlib
    import io

    import onnx
    import onnx_tool

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints progress
        graph = onnx_tool.Model(proto, {"verbose": False}).graph
        graph.shape_infer({k: np.zeros(shape, dtype) for k, (shape, dtype) in feeds.items()})
        graph.profile()
    macs = graph.macs
    return float(macs[0] if isinstance(macs, (list, tuple)) else macs)


def count_onnx_macs_per_second(enhancer: Enhancer, seconds: float = 1.0) -> float | None:
    """MACs per second of audio for models run by onnxruntime (``None`` when no session is reachable or
    the run called none).

    Every ``run`` of each session reachable from the enhancer is recorded while it enhances ``seconds``
    of :func:`probe_signal` (after a short warm-up, so sessions created on first use exist); each
    distinct input-shape signature is counted once with the maintained ``onnx-tool`` profiler
    (convolutions, matrix products, recurrent layers) and multiplied by its number of calls.
    """
    sr = enhancer.info.sample_rate
    _run(enhancer, probe_signal(sr, 0.2))
    sessions = _onnx_sessions(enhancer)
    if not sessions:
        return None
    calls: dict[tuple, int] = {}
    originals = {}

    def recorder(session, original):
        def run(output_names, input_feed, *args, **kwargs):
            key = (id(session), tuple(sorted((k, tuple(np.shape(v)), np.asarray(v).dtype.str)
                                             for k, v in input_feed.items())))
            calls[key] = calls.get(key, 0) + 1
            return original(output_names, input_feed, *args, **kwargs)
        return run

    for sess in sessions:
        originals[id(sess)] = sess.run
        sess.run = recorder(sess, sess.run)  # instance attribute shadows the method for this probe only
    try:
        _run(enhancer, probe_signal(sr, seconds))
    finally:
        for sess in sessions:
            del sess.run
    if not calls:
        return None  # sessions exist but this path ran none of them (e.g. a native frame loop)
    by_id = {id(s): s for s in sessions}
    total = 0.0
    for (sid, signature), count in calls.items():
        sess = by_id[sid]
        model = sess._model_bytes if getattr(sess, "_model_bytes", None) else sess._model_path
        if model is None:
            return None
        feeds = {name: (shape, np.dtype(dt)) for name, shape, dt in signature}
        total += count * _onnx_graph_macs(model, feeds)
    return total / seconds


# ------------------------------------------------------------------------------------------ driver


def _count_any_macs(enhancer: Enhancer, notes: list[str]) -> float | None:
    """MACs per second of audio from the torch modules, else the onnxruntime sessions, of ``enhancer``."""
    macs = count_macs_per_second(enhancer)
    if macs is None:
        try:
            macs = count_onnx_macs_per_second(enhancer)
        except Exception as exc:  # a graph the counter cannot read: report, do not fail the probe
            notes.append(f"ONNX MACs not counted: {type(exc).__name__}: {exc}")
            macs = None
    return macs


#: A probe step (several model calls) slower than this many seconds is reported, and the RTF run once.
SLOW_STEP_S = 10.0


def probe(enhancer: Enhancer, *, audio: np.ndarray | None = None, sample_rate: int | None = None,
          rtf_runs: int = 3, cold_spec: str | None = None) -> Generator[Progress, None, ProbeReport]:
    """Run every probe; a generator yielding :class:`Progress`, returning a :class:`ProbeReport`.

    Args:
        audio: mono speech used for the RTF (default: 5 s of :func:`probe_signal`), at ``sample_rate``.
        cold_spec: how ``enhancer`` is loaded (its id or path); given, the cold cost is measured too
            (:func:`probe_cold`, on the same audio).

    Raises:
        ModelError: the model failed while being probed.
    """
    info: EnhancerInfo = enhancer.info
    notes: list[str] = []
    yield Progress(0.0, f"{info.name}: causality")
    t0 = time.perf_counter()
    caus = probe_causality(enhancer)
    step_s = time.perf_counter() - t0
    if step_s > SLOW_STEP_S:
        # Each probe runs the model several times: say why the probe takes long, and run the RTF once.
        rtf_runs = 1
        notes.append(f"slow model: the causality probe took {step_s:.0f} s, so the real-time factor was measured "
                     "once")
        yield Progress(0.4, f"{info.name}: slow model ({step_s:.0f} s per probe step); latency next, the "
                            "real-time factor is measured once")
    yield Progress(0.4, f"{info.name}: latency")
    raw, residual = probe_latency(enhancer)
    if info.n_outputs > 1:
        lags = residual_lags(enhancer)
        notes.append("residual lag per output: " + ", ".join(f"{name} {lag}" for name, lag in lags.items()))
    if residual != 0:
        notes.append(f"compensated output still lags the input by {residual} samples: declared latency "
                     f"{info.latency_samples} looks wrong")
    if caus.lookahead_samples > caus.allowance_samples and not caus.reaches_start:
        notes.append(f"output changes {caus.lookahead_samples} samples before an input change; the model declares "
                     f"latency {info.latency_samples} (+{caus.allowance_samples - info.latency_samples} for block "
                     "buffering)")
    if caus.reaches_start:
        notes.append("a late input change altered the output from the very first sample (unbounded look-ahead)")
    yield Progress(0.55, f"{info.name}: real-time factor")
    if audio is None:
        audio, sample_rate = probe_signal(info.sample_rate, 5.0), info.sample_rate
    rtf, dur = probe_rtf(enhancer, audio, sample_rate, rtf_runs)
    cold = None
    if cold_spec is not None:
        yield Progress(0.7, f"{info.name}: cold run in a fresh process")
        cold = yield from rescaled(probe_cold(cold_spec, audio, sample_rate,
                                              info.processing if len(info.paths) > 1 else None), 0.7, 0.15)
    yield Progress(0.85, f"{info.name}: size")
    params, how = count_parameters(enhancer)
    notes.append(f"parameters: {how}")
    macs = _count_any_macs(enhancer, notes)
    if macs is None:
        # A path run by a native library (a C frame loop) exposes no graph; another path of the same
        # model runs the same networks on the same frames, so its count is this path's too.
        for other in (p for p in info.paths if p != info.processing):
            try:
                macs = _count_any_macs(with_processing(enhancer, other), notes)
            except ModelError:
                macs = None
            if macs is not None:
                notes.append(f"MACs: counted on the {other} path's graphs (the same networks run by the "
                             f"{info.processing} path's native library)")
                break
    if macs is None and info.macs_per_second is not None:
        macs = float(info.macs_per_second)
        notes.append("MACs: declared by the model (its network runs in a native library)")
    if macs is None:
        notes.append("MACs: no torch module or onnxruntime session reachable from the model")
    latency = max(caus.lookahead_samples, raw or 0)
    report = ProbeReport(
        model=info.id, sample_rate=info.sample_rate, causal=caus.causal,
        lookahead_samples=caus.lookahead_samples, lookahead_reaches_start=caus.reaches_start,
        latency_samples=int(latency), declared_latency_samples=int(info.latency_samples),
        declared_causal=info.causal, raw_delay_samples=raw, residual_lag_samples=residual, rtf=rtf,
        rtf_runs=rtf_runs, rtf_audio_s=dur, parameters=params, macs_per_second=macs,
        processing=info.processing, block_samples=int(info.block_samples), notes=notes,
        cold_s=cold and cold["cold_s"], cold_start_s=cold and cold["start_s"], cold_load_s=cold and cold["load_s"],
        cold_first_run_s=cold and cold["first_run_s"])
    yield Progress(1.0, f"{info.name}: done")
    return report


def format_report(report: ProbeReport) -> str:
    """Human-readable multi-line summary of a :class:`ProbeReport` (used by the CLI and the model panel)."""
    d = report.to_dict()
    macs = (f"{report.macs_per_second / 1e6:.1f} MMAC/s" if report.macs_per_second is not None
            else "n/a (not a torch model)")
    params = f"{report.parameters:,}" if report.parameters is not None else "unknown"
    verdict = "causal" if report.causal else "NOT causal"
    lines = [
        f"{report.model} ({report.sample_rate} Hz, {report.processing}, block {report.block_samples})",
        f"  causality:   {verdict}: look-ahead {report.lookahead_samples} samples ({d['lookahead_ms']:.1f} ms), "
        f"allowed {report.declared_latency_samples + report.block_samples - 1}",
        f"  latency:     {report.latency_samples} samples ({report.latency_ms:.1f} ms); declared "
        f"{report.declared_latency_samples}; residual lag after compensation {report.residual_lag_samples}",
        f"  speed:       RTF {report.rtf:.3f} warm (median of {report.rtf_runs} runs on {report.rtf_audio_s:.1f} s)",
        f"  parameters:  {params}",
        f"  compute:     {macs}",
    ]
    if report.cold_s is not None:
        lines.insert(4, f"  cold:        {report.cold_s:.2f} s in a fresh process = {report.cold_rtf:.3f} x the audio, "
                        f"{report.cold_rtf / report.rtf:.1f}x the warm RTF (start-up {report.cold_start_s:.2f} s, "
                        f"model load {report.cold_load_s:.2f} s, first run {report.cold_first_run_s:.2f} s)"
                     if report.rtf > 0 else f"  cold:        {report.cold_s:.2f} s in a fresh process")
    lines += [f"  note: {n}" for n in report.notes]
    return "\n".join(lines)


def probe_enhancer(enhancer: Enhancer, **kwargs) -> ProbeReport:
    """Blocking wrapper of :func:`probe`."""
    return run_to_end(probe(enhancer, **kwargs))
