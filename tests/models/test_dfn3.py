"""DeepFilterNet3 through the engine equals libDF's own frame loop, and improves PESQ-WB on dns3."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhancer import enhance_array
from workbench_models import deepfilternet as dfn


def native_frame_loop(x48: np.ndarray) -> np.ndarray:
    """Reference: drive libDF directly, one 480-sample hop per df_process_frame call, zero-padded tail."""
    lib_path, model = dfn.runtime_files()
    lib = ctypes.CDLL(str(lib_path))
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_free.argtypes = [ctypes.c_void_p]
    state = lib.df_create(str(model).encode(), 100.0, None)
    n_frames = -(-(len(x48) + dfn.LATENCY_SAMPLES) // 480)
    padded = np.zeros(n_frames * 480, np.float32)
    padded[:len(x48)] = x48
    out = np.zeros_like(padded)
    fp = ctypes.POINTER(ctypes.c_float)
    try:
        for i in range(n_frames):
            frame_in = np.ascontiguousarray(padded[i * 480:(i + 1) * 480])
            frame_out = np.zeros(480, np.float32)
            lib.df_process_frame(state, frame_in.ctypes.data_as(fp), frame_out.ctypes.data_as(fp))
            out[i * 480:(i + 1) * 480] = frame_out
    finally:
        lib.df_free(state)
    return out


@pytest.fixture(scope="module")
def model():
    return dfn.DeepFilterNet3()


def test_engine_equals_native_frame_loop_after_known_delay(shared_data, model):
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 3 * sr]
    assert sr == 48000
    ref = native_frame_loop(x)
    y = enhance_array(model, x, 48000, block_s=0.37)  # blocks that are not a divisor of the clip
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, ref[dfn.LATENCY_SAMPLES:dfn.LATENCY_SAMPLES + len(x)])


def test_latency_is_1440_samples(shared_data, model):
    """Cross-correlation of the raw native output with its input peaks at the declared delay."""
    x, _ = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 4 * 48000]
    raw = native_frame_loop(x)[: len(x)]
    n = 1 << 20
    r = np.fft.irfft(np.fft.rfft(raw, n) * np.conj(np.fft.rfft(x, n)), n)
    assert int(np.argmax(r)) == dfn.LATENCY_SAMPLES == 1440
    assert model.info.latency_samples == 1440 and model.info.block_samples == 480


def test_pesq_improves_on_every_dns3_clip(run_on_dns3, model):
    """16 kHz input -> the engine resamples to 48 kHz and back; aligned output beats the noisy input."""
    for r in run_on_dns3(model):
        assert r.enhanced.shape == r.noisy.shape and np.all(np.isfinite(r.enhanced))
        print(f"DFN3 {r.clip}: PESQ-WB {r.pesq_noisy:.2f} -> {r.pesq_enhanced:.2f}")
        assert r.pesq_enhanced > r.pesq_noisy + 0.1, r.clip
        assert r.lag == 0, r.clip


def test_stream_frees_native_state():
    stream = dfn.DeepFilterNet3().new_stream()
    stream.close()
    stream.close()  # idempotent
    assert stream._state is None


def test_parameter_count_matches_the_paper():
    """Counted from the bundled ONNX graphs; the DeepFilterNet3 paper reports 2.13 M parameters."""
    assert 2.10e6 < dfn.info().parameters < 2.16e6
