"""DTLN two-stage ONNX model: streaming, delay compensation, seams and quality on real speech."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from pesq import pesq

from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import ModelError
from workbench_models.dtln import DtlnEnhancer, load_dtln_folder

CLIPS = ("0015", "0016", "0072")


@pytest.fixture(scope="module")
def dtln(dtln_folder):
    return load_dtln_folder(dtln_folder)


def test_info(dtln):
    info = dtln.info
    assert info.processing == "streaming" and info.block_samples == 128 and info.sample_rate == 16000
    assert info.latency_samples == 512 - 128 and info.causal


@pytest.mark.parametrize("clip", CLIPS)
def test_improves_pesq_and_is_aligned(dtln, shared_data, clip):
    x, sr = sf.read(shared_data / f"dns3/{clip}_noisy.wav", dtype="float32")
    clean, _ = sf.read(shared_data / f"dns3/{clip}_clean.wav", dtype="float32")
    y = enhance_array(dtln, x, sr)
    assert y.shape == x.shape
    lags = np.arange(-600, 601)
    assert lags[int(np.argmax([np.dot(np.roll(y, k), clean) for k in lags]))] == 0
    assert pesq(sr, clean, y, "wb") > pesq(sr, clean, x, "wb") + 0.2


def test_raw_stream_delay_is_the_declared_latency(dtln, shared_data):
    """Without compensation the stream lags by exactly 384 samples (cross-correlation with the input)."""
    x, sr = sf.read(shared_data / "dns3/0016_noisy.wav", dtype="float32")
    raw = dtln.new_stream().process(x[:len(x) // 128 * 128])
    lags = np.arange(0, 800)
    best = lags[int(np.argmax([np.dot(raw[k:], x[:len(raw) - k]) for k in lags]))]
    assert best == dtln.info.latency_samples


def test_chunk_seams(dtln, shared_data):
    x, sr = sf.read(shared_data / "dns3/0072_noisy.wav", dtype="float32")
    a = enhance_array(dtln, x, sr, block_s=0.1)
    b = enhance_array(dtln, x, sr, block_s=2.0)
    assert np.max(np.abs(a - b)) < 1e-4


def test_stages_swapped_are_refused(dtln_folder):
    d = dtln_folder
    with pytest.raises(ModelError, match="expected DTLN stage 1"):
        DtlnEnhancer(d / "model_2.onnx", d / "model_1.onnx")


def test_folder_without_pair(tmp_path):
    with pytest.raises(ModelError, match="no DTLN pair"):
        load_dtln_folder(tmp_path)
