"""Entry-point plugins (group ``workbench.enhancers``) found by real importlib.metadata discovery.

Instead of pip-installing the example plugin (slow), each test writes a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` into ``tmp_path`` and puts it on ``sys.path``; that is exactly
what an installed wheel leaves behind, so discovery runs through the same code path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.core.enhance import registry
from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import ModelError

EXAMPLE = Path(__file__).resolve().parent.parent / "plugins" / "example_plugin"


def install_dist(site: Path, name: str, entry_points: str) -> None:
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture()
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield tmp_path
    registry.plugin_errors(refresh=True)  # forget the temporary plugins again


def test_example_plugin_is_listed_and_runs(site):
    ep = EXAMPLE / "pyproject.toml"
    assert 'example-highpass = "workbench_example_plugin:describe_and_build"' in ep.read_text()
    install_dist(site, "workbench_example_plugin", "[workbench.enhancers]\n"
                 "example-highpass = workbench_example_plugin:describe_and_build\n")
    infos = {i.id: i for i in registry.list_enhancers(refresh=True)}
    assert "example-highpass" in infos and "wiener" in infos
    assert infos["example-highpass"].source == "plugin:workbench_example_plugin"
    enh = registry.load_enhancer("example-highpass")
    t = np.arange(16000) / 16000
    rumble = np.sin(2 * np.pi * 20 * t).astype(np.float32)
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = enhance_array(enh, rumble + tone, 16000)
    # |H(20 Hz)| = 20 / sqrt(20^2 + 100^2) ~ 0.2 (-14 dB); 1 kHz passes almost untouched
    assert np.corrcoef(y[4000:], tone[4000:])[0, 1] > 0.95
    low = enhance_array(enh, rumble, 16000)
    assert 0.15 < np.std(low[4000:]) / np.std(rumble[4000:]) < 0.25


def test_plugin_returning_an_enhancer_instance(site):
    pkg = site / "instance_plugin.py"
    pkg.write_text(
        "from workbench_models.classical import ClassicalEnhancer\n"
        "def make():\n    return ClassicalEnhancer('wiener')\n")
    install_dist(site, "instance_plugin", "[workbench.enhancers]\nmy-wiener = instance_plugin:make\n")
    infos = {i.id: i for i in registry.list_enhancers(refresh=True)}
    assert infos["my-wiener"].id == "my-wiener" and infos["my-wiener"].sample_rate == 16000
    assert registry.load_enhancer("my-wiener").info.id == "my-wiener"


def test_broken_plugins_are_reported_not_fatal(site):
    (site / "broken_plugin.py").write_text("def make():\n    return 42\n")
    install_dist(site, "broken_plugin", "[workbench.enhancers]\n"
                 "missing = no_such_module_xyz:make\nwrong-type = broken_plugin:make\nwiener = broken_plugin:make\n")
    ids = [i.id for i in registry.list_enhancers(refresh=True)]
    assert "missing" not in ids and "wrong-type" not in ids
    errors = registry.plugin_errors()
    assert "cannot be imported" in errors["missing"] and "no_such_module_xyz" in errors["missing"]
    assert "returned int" in errors["wrong-type"]
    assert "clashes with a built-in" in errors["wiener"]
    with pytest.raises(ModelError, match="returned int"):
        registry.load_enhancer("wrong-type")
    assert registry.load_enhancer("wiener").info.source == "built-in"
