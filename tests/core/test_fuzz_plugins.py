"""Plugins are code the workbench did not write: they are imported, built and run only in the sandboxed
model worker, so a plugin that writes next to the input (at import, when built, when run) never creates the
file; the run succeeds without the write or fails in one line, and the program stays up."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.enhance import registry
from workbench.core.enhance.sandbox import landlock_abi

needs_landlock = pytest.mark.skipif(landlock_abi() == 0, reason="the kernel offers no Landlock")

PLUGIN = '''
import os
import numpy as np
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream

FOLDER = {folder!r}
CAREFUL = {careful!r}


def scribble(name):
    try:
        with open(os.path.join(FOLDER, name), "w") as fh:
            fh.write("written by a plugin")
    except OSError:
        if not CAREFUL:
            raise


scribble("written-at-import.txt")


class Stream(EnhancerStream):
    def process(self, block):
        scribble("written-when-run.txt")
        return np.asarray(block, np.float32) * 0.5


class Halver(Enhancer):
    def __init__(self):
        scribble("written-when-built.txt")
        self.info = EnhancerInfo(id="halver", name="Halver", sample_rate=16000, description="halves",
                                 causal=True, latency_samples=0, family="classical", processing="streaming",
                                 block_samples=1, parameters=0)

    def new_stream(self):
        return Stream()


def describe():
    return Halver().info, Halver
'''


def _install(site, module, careful, folder):
    (site / f"{module}.py").write_text(PLUGIN.format(folder=str(folder), careful=careful))
    info = site / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[workbench.enhancers]\n{module.replace('_', '-')} = {module}:describe\n")


@pytest.fixture()
def recording(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    wav = folder / "in.wav"
    sf.write(wav, (0.1 * np.random.default_rng(3).standard_normal(16000)).astype(np.float32), 16000)
    return wav


@pytest.fixture()
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("WORKBENCH_ISOLATE_MODELS", raising=False)
    registry.plugin_errors(refresh=True)
    yield site
    registry.plugin_errors(refresh=True)


def _scribbles(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("written-"))


@needs_landlock
def test_a_plugin_that_writes_beside_the_input_runs_without_the_write(recording, site, tmp_path, capsys):
    _install(site, "careful_writer", True, recording.parent)
    out = tmp_path / "out" / "halved.wav"
    assert main(["models"]) == 0
    assert "careful-writer" in capsys.readouterr().out
    assert main(["enhance", str(recording), "-m", "careful-writer", "-o", str(out), "--quiet"]) == 0
    assert _scribbles(recording.parent) == [] and _scribbles(tmp_path / "out") == []
    np.testing.assert_allclose(sf.read(out, dtype="float32")[0], 0.5 * sf.read(recording, dtype="float32")[0],
                               atol=1e-4)
    # The plugin's module never ran in this process: only its description came back from the worker.
    assert "careful_writer" not in sys.modules


@needs_landlock
def test_a_plugin_whose_write_fails_fails_the_run_in_one_line(recording, site, tmp_path, capsys):
    _install(site, "reckless_writer", False, recording.parent)
    out = tmp_path / "out.wav"
    assert main(["enhance", str(recording), "-m", "reckless-writer", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reckless" in err and "Traceback" not in err, err
    assert "ermission denied" in err  # the kernel refused the write
    assert _scribbles(recording.parent) == [] and not out.exists()
    # The program is still up: a built-in still runs.
    assert main(["enhance", str(recording), "-m", "wiener", "-o", str(out), "--quiet"]) == 0


@needs_landlock
def test_a_loaded_plugin_reads_nothing_of_the_persons_files(recording, site, tmp_path):
    (site / "peeker.py").write_text(textwrap.dedent(f'''
        import numpy as np
        from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo

        class Peeker(Enhancer):
            def __init__(self):
                self.info = EnhancerInfo(id="peeker", name="Peeker", sample_rate=16000, description="reads",
                                         causal=False, latency_samples=0, family="classical",
                                         processing="offline", block_samples=1, parameters=0)

            def process_offline(self, audio):
                try:
                    open({str(recording)!r}, "rb").read()
                    return np.ones_like(audio)
                except OSError:
                    return np.zeros_like(audio)

        def describe():
            return Peeker().info, Peeker
    '''))
    info = site / "peeker-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: peeker\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[workbench.enhancers]\npeeker = peeker:describe\n")
    from workbench.core.enhance.enhancer import enhance_array

    enh = registry.load_enhancer("peeker", isolate=True)
    try:
        assert enh.sandbox_problem is None
        y = enhance_array(enh, np.full(16000, 0.1, np.float32), 16000)
    finally:
        enh.close()
    assert not np.any(y), "the plugin could read a recording outside the model's and Python's folders"


def test_enhance_says_when_the_worker_is_not_sandboxed(recording, tmp_path, monkeypatch, capsys):
    """Where the kernel has no Landlock the worker still runs, and the reason is said once."""
    from workbench.commands import enhance as command

    real = command.load_enhancer

    def unsandboxed(spec, **kwargs):
        enh = real(spec, **kwargs)
        enh.sandbox_problem = "the kernel offers no Landlock sandbox (Linux 5.13 or later with the landlock LSM enabled)"
        return enh

    monkeypatch.setattr(command, "load_enhancer", unsandboxed)
    assert main(["enhance", str(recording), "-m", "wiener", "-o", str(tmp_path / "o.wav"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: wiener: its worker process is not sandboxed: the kernel offers no Landlock")
