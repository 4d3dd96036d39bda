"""The registry: built-in ids, cheap listing, path specs handed to the loaders, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.core import registry
from workbench.core.errors import ModelError

BUILTINS = ["spectral-subtraction", "wiener", "logmmse", "deepfilternet3", "nsnet2-16k", "nsnet2-48k"]


def test_builtins_listed_without_loading_weights():
    infos = registry.list_enhancers()
    ids = [i.id for i in infos]
    assert ids[:6] == BUILTINS
    by_id = {i.id: i for i in infos}
    assert by_id["deepfilternet3"].sample_rate == 48000 and by_id["deepfilternet3"].latency_samples == 1440
    assert by_id["nsnet2-16k"].sample_rate == 16000 and by_id["nsnet2-48k"].sample_rate == 48000
    assert by_id["wiener"].processing == "streaming" and by_id["nsnet2-16k"].processing == "offline"


def test_listing_opens_no_model_runtime():
    """In a fresh interpreter, listing imports neither onnxruntime nor torch and opens no native library."""
    code = ("import sys\nfrom workbench.core.registry import list_enhancers\nlist_enhancers()\n"
            "from workbench_models import deepfilternet\n"
            "print(deepfilternet._LIB is None, 'onnxruntime' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False"]


@pytest.mark.parametrize("spec", BUILTINS)
def test_every_builtin_loads(spec):
    enh = registry.load_enhancer(spec)
    assert enh.info.id == spec
    assert enh.info.to_dict()["latency_ms"] == pytest.approx(1000 * enh.info.latency_samples / enh.info.sample_rate)


def test_unknown_id_names_the_known_ones():
    with pytest.raises(ModelError, match="not a model id.*deepfilternet3"):
        registry.load_enhancer("deepfilternet9")


def test_path_specs_go_to_the_loaders(tmp_path, monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("workbench_models.loaders")

    def load_model_path(path):
        calls.append(path)
        return registry.load_enhancer("wiener")
    fake.load_model_path = load_model_path
    monkeypatch.setitem(sys.modules, "workbench_models.loaders", fake)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    assert registry.load_enhancer(model).info.id == "wiener"
    assert calls == [model]

    def broken(path):
        raise ValueError("bad header")
    fake.load_model_path = broken
    with pytest.raises(ModelError, match="model.onnx: could not be loaded: ValueError: bad header"):
        registry.load_enhancer(str(model))


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not a model id or an existing file"):
        registry.load_enhancer(tmp_path / "nothing.onnx")
