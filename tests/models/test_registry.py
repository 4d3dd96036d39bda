"""The registry: built-in ids, cheap listing, path specs handed to the loaders, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.core.enhance import registry
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
    code = ("import sys\nfrom workbench.core.enhance.registry import list_enhancers\nlist_enhancers()\n"
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


def test_path_specs_go_to_the_loaders(tmp_path):
    calls = []

    def load_model_path(path):
        calls.append(path)
        return registry.load_enhancer("wiener")
    registry.register_model_loader(load_model_path)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    try:
        assert registry.load_enhancer(model).info.id == "wiener"
        assert calls == [model]
    finally:
        registry.unregister_model_loader(load_model_path)

    def broken(path):
        raise ValueError("bad header")
    registry.register_model_loader(broken)
    try:
        with pytest.raises(ModelError, match="model.onnx: could not be loaded: ValueError: bad header"):
            registry.load_enhancer(str(model))
    finally:
        registry.unregister_model_loader(broken)


def test_model_files_reach_the_entry_point_loader(tmp_path):
    """Without any registered hook, a path goes to the ``workbench.model_loaders`` entry point."""
    names = [name for name, _ in registry.model_loaders()]
    assert names and names[0].startswith("workbench (workbench_models.loaders:load_model_path)")
    bogus = tmp_path / "fake.pt"
    bogus.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="fake.pt"):
        registry.load_enhancer(bogus)


def test_builtins_are_entry_points_of_this_distribution():
    from importlib.metadata import entry_points

    ours = {ep.name for ep in entry_points(group=registry.ENTRY_POINT_GROUP)
            if ep.value.startswith("workbench_models.builtins:")}
    assert set(BUILTINS) <= ours
    assert all(i.source == "built-in" for i in registry.list_enhancers()[:len(BUILTINS)])


def test_core_never_imports_the_model_package():
    """workbench.core reaches models only through entry points: importing and listing it, in a fresh
    interpreter with workbench_models blocked from being imported by core code paths, still loads no
    workbench_models module until an entry point is resolved."""
    # walk_packages, not iter_modules: the core is grouped in subpackages, and a module two levels down
    # (workbench.core.enhance.chain) importing the model package must be caught like a top-level one.
    code = ("import sys, pkgutil, importlib, workbench.core\n"
            "names = [m.name for m in pkgutil.walk_packages(workbench.core.__path__, 'workbench.core.')]\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n"
            "print(' '.join(names))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'workbench_models'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    walked, loaded = out.strip().splitlines()
    assert {"workbench.core.enhance.chain", "workbench.core.workflows.batch.item"} <= set(walked.split())
    assert loaded == "[]"


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not a model id or an existing file"):
        registry.load_enhancer(tmp_path / "nothing.onnx")


def test_a_broken_builtin_is_reported_and_the_others_stay(monkeypatch):
    """A built-in whose entry point cannot load (e.g. a missing native library) is listed nowhere, is
    reported by plugin_errors, and loading it says why; every other built-in is still listed."""
    from importlib.metadata import EntryPoint

    real = registry._builtin_entry_points

    def with_broken():
        broken = EntryPoint("broken-builtin", "no_such_module_for_tests:build", registry.ENTRY_POINT_GROUP)
        return real() + [broken]
    monkeypatch.setattr(registry, "_builtin_entry_points", with_broken)
    monkeypatch.setattr(registry, "_builtin_cache", {})
    monkeypatch.setattr(registry, "_builtin_errors", {})
    ids = [i.id for i in registry.list_enhancers()]
    assert ids[:6] == BUILTINS and "broken-builtin" not in ids
    assert "no_such_module_for_tests" in registry.plugin_errors()["broken-builtin"]
    with pytest.raises(ModelError, match="broken-builtin.*cannot be loaded"):
        registry.load_enhancer("broken-builtin")
