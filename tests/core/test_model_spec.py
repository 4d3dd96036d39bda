"""A model spec with the options that wrap the loaded model: what a batch's workers load."""

from __future__ import annotations

import pickle

import pytest

from workbench.cli import main
from workbench.core.enhance.model_spec import ModelSpec
from workbench.core.errors import WorkbenchError


def test_a_model_spec_travels_whole_and_says_what_it_sets():
    spec = ModelSpec("deepfilternet3", processing="streaming", atten_lim_db=12, latency="AUTO")
    assert pickle.loads(pickle.dumps(spec)) == spec  # what a pool worker or Ray actor receives
    assert spec.options == {"processing": "streaming", "atten_lim_db": 12.0, "latency": "auto"}
    assert ModelSpec("wiener").options == {} and ModelSpec.of("wiener") == ModelSpec("wiener")
    assert ModelSpec.of(spec) is spec
    assert ModelSpec("wiener", latency="7").latency == 7
    with pytest.raises(WorkbenchError, match="--latency: expected a delay of 0 or more samples"):
        ModelSpec("wiener", latency="-1")


def test_loading_applies_the_options_or_says_in_one_line_why_not():
    enh = ModelSpec("wiener", latency=3).load()
    try:
        assert (enh.info.latency_samples, enh.info.latency_source) == (3, "set")
    finally:
        enh.close()
    with pytest.raises(WorkbenchError, match="has no attenuation limit of its own"):
        ModelSpec("wiener", atten_lim_db=6).load()
    with pytest.raises(WorkbenchError, match="has only the streaming path"):
        ModelSpec("wiener", processing="offline").load()


def test_batch_enhance_refuses_an_option_a_model_lacks_before_any_item(shared_data, tmp_path, capsys):
    clip = shared_data / "dns3" / "0015_noisy.wav"
    assert main(["batch", "enhance", str(clip), "-m", "wiener", "--atten-lim-db", "6", "-o", str(tmp_path / "o"),
                 "--workers", "2", "--quiet"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no attenuation limit of its own" in err[0]
    assert not (tmp_path / "o" / "manifest.jsonl").exists()
