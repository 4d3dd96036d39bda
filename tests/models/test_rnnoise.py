"""RNNoise from the pyrnnoise wheel's C library: latency, alignment, exact seams, and the authors' outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array
from workbench.core.enhance.registry import load_enhancer
from workbench_models import rnnoise as rn


@pytest.fixture(scope="module")
def model():
    return load_enhancer("rnnoise")


def test_library_output_trails_the_input_by_960_samples(shared_data):
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 4 * sr // 480 * 480]
    stream = rn.RNNoiseStream()
    raw = stream.process(x)
    stream.close()
    stream.close()  # idempotent
    n = 1 << 20
    r = np.fft.irfft(np.fft.rfft(raw, n) * np.conj(np.fft.rfft(x, n)), n)
    assert int(np.argmax(r)) == rn.LATENCY_SAMPLES == 960
    assert len(stream.voice_probability) == len(x) // 480


def test_block_size_does_not_change_the_output(shared_data, model):
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 3 * sr]
    a = enhance_array(model, x, sr, block_s=0.01)
    b = enhance_array(model, x, sr, block_s=1.37)
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape


def test_pesq_against_the_authors_rnnoise_outputs(run_on_dns3, shared_data, model):
    """dns3's ``NNNN_RNNoise.wav`` were made with the 2018 RNNoise model; the wheel bundles the RNNoise 0.2
    generation (a larger model trained on more data). Mean PESQ-WB lands within 0.1 of theirs, each clip
    improves on the noisy input, and the outputs are aligned (lag 0)."""
    from pesq import pesq
    ours, theirs = [], []
    for r in run_on_dns3(model):
        ref, _ = sf.read(shared_data / "dns3" / f"{r.clip}_RNNoise.wav", dtype="float32")
        k = min(len(ref), len(r.clean))
        ours.append(r.pesq_enhanced)
        theirs.append(pesq(r.sample_rate, r.clean[:k], ref[:k], "wb"))
        print(f"RNNoise {r.clip}: noisy {r.pesq_noisy:.3f}, ours {r.pesq_enhanced:.3f}, authors' {theirs[-1]:.3f}")
        assert r.lag == 0 and r.pesq_enhanced > r.pesq_noisy + 0.05, r.clip
        assert np.corrcoef(r.enhanced[:k], ref[:k])[0, 1] > 0.8, r.clip
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.1


def test_listing_and_loading_do_not_import_pyrnnoise_python_code():
    code = ("import sys; from workbench.core.enhance.registry import list_enhancers, load_enhancer; "
            "ids = [i.id for i in list_enhancers()]; m = load_enhancer('rnnoise'); "
            "import numpy as np; from workbench.core.enhance.enhancer import enhance_array; "
            "enhance_array(m, np.zeros(4800, np.float32), 48000); "
            "print('rnnoise' in ids, any(k.split('.')[0] in ('pyrnnoise', 'audiolab', 'av', 'matplotlib') "
            "for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def test_network_size_comes_from_the_library_weight_table():
    """Parameters and MACs are read off the compiled-in weight table, one copy per matrix: each GRU holds
    input and recurrent 3H x H matrices (+ the 3H recurrent diagonal) with H from its own biases (2 x 3H),
    and every weight is used once per 10 ms frame, so MACs/s = weights * 100."""
    layers = rn.network_weights()
    assert {"conv1", "conv2", "gru1", "gru2", "gru3", "dense_out"} <= set(layers)
    for name in ("gru1", "gru2", "gru3"):
        weights, biases = layers[name]
        hidden = biases // 6
        assert weights == 2 * 3 * hidden * hidden + 3 * hidden, (name, weights, hidden)
    parameters, macs = rn.network_size()
    weights = sum(w for w, _ in layers.values())
    assert parameters == weights + sum(b for _, b in layers.values())
    assert macs == weights * 100
    assert 1e6 < parameters < 5e6          # the 14.8 MB library holds float and int8 copies of ~2.9 M weights
    m = rn.RNNoise()
    assert m.info.parameters == parameters and m.info.macs_per_second == macs


def test_probe_reports_the_declared_macs_of_the_native_network():
    from workbench.core.workflows import probes

    report = probes.run_to_end(probes.probe(rn.RNNoise(), rtf_runs=1))
    assert report.macs_per_second == rn.network_size()[1]
    assert report.parameters == rn.network_size()[0]
    assert any("declared by the model" in n for n in report.notes)
