"""Built-in GTCRN (bundled checkpoints): the authors' outputs, both paths, exact seams on long files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array
from workbench.core.enhance.registry import list_enhancers, load_enhancer
from workbench.core.measure.metrics import difference_levels
from workbench_models import gtcrn, gtcrn_builtin


@pytest.fixture(scope="module")
def dns3_model():
    return load_enhancer("gtcrn-dns3")


def test_listed_with_source_and_licence_without_torch():
    code = ("import sys; from workbench.core.enhance.registry import list_enhancers; "
            "infos = {i.id: i for i in list_enhancers()}; i = infos['gtcrn-dns3']; "
            "print(i.licence.startswith('MIT'), 'Xiaobin-Rong/gtcrn' in i.package, i.parameters, "
            "'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "48245", "False"]


@pytest.mark.parametrize("model_id", ["gtcrn-dns3", "gtcrn-vctk"])
def test_static_facts_match_the_loaded_model(model_id):
    described = next(i for i in list_enhancers() if i.id == model_id)
    enh = load_enhancer(model_id)
    assert enh.info.id == model_id and enh.info.parameters == described.parameters == 48245
    assert (gtcrn_builtin.SAMPLE_RATE, gtcrn_builtin.N_FFT, gtcrn_builtin.HOP) == (gtcrn.SAMPLE_RATE, gtcrn.N_FFT, gtcrn.HOP)
    assert enh.info.paths == described.paths == ("offline", "streaming")
    assert enh.info.latency_samples == described.latency_samples and enh.info.licence == described.licence


def test_dns3_builtin_reproduces_the_authors_outputs(shared_data, dns3_model):
    for clip in ("0072",):    # the clip whose reference output tests/data carries
        x, sr = sf.read(shared_data / "dns3" / f"{clip}_noisy.wav", dtype="float32")
        ref, _ = sf.read(shared_data / "models" / "gtcrn" / "reference" / f"{clip}_noisy.gtcrn_dns3.wav",
                         dtype="float32")
        y = enhance_array(dns3_model, x, sr)
        assert y.shape == ref.shape
        assert np.corrcoef(y, ref)[0, 1] > 0.9999999 and np.max(np.abs(y - ref)) < 1e-5, clip


def test_vctk_builtin_improves_pesq(run_on_dns3):
    """Trained on VCTK-DEMAND, so on DNS3 noise it helps less than the DNS3 checkpoint (measured +0.05 mean)."""
    results = run_on_dns3(load_enhancer("gtcrn-vctk"))
    for r in results:
        print(f"gtcrn-vctk {r.clip}: PESQ-WB {r.pesq_noisy:.2f} -> {r.pesq_enhanced:.2f}")
        assert r.lag == 0, r.clip
    assert np.mean([r.pesq_enhanced - r.pesq_noisy for r in results]) > 0.03
    assert all(r.pesq_enhanced > r.pesq_noisy - 0.02 for r in results)


def test_long_files_run_the_offline_path_in_blocks_and_the_live_path_differs_only_at_the_end(shared_data,
                                                                                               dns3_model):
    """A file over one block (here 3 s) stays on the offline path, run in blocks with the state carried:
    it equals the authors' whole-file run; the streaming path, which cannot know where the file ends,
    differs from it only over the last frame."""
    x, sr = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")
    x = np.concatenate([x, x[::-1]])  # 10 s
    model = load_enhancer("gtcrn-dns3")
    model.chunk_s = 3.0
    auto = enhance_array(model, x, sr)
    whole = dns3_model.process_offline(x)
    assert difference_levels(auto, whole, sr)[1] < -90
    live = enhance_array(model, x, sr, processing="streaming")
    assert difference_levels(live[:-512], whole[:-512], sr)[1] < -90
    assert not np.allclose(live[-256:], whole[-256:], atol=1e-6)


