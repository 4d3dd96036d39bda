"""A command imports only what it runs: running a classical model or listing the catalogue imports no
model runtime (onnx, onnxruntime, torch) and no other model's module; the catalogue's figures are data
(``facts.json``) that agree with the live counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]

RUNTIMES = ("onnx", "onnxruntime", "torch", "libdf", "nara_wpe")
OTHER_MODELS = ("workbench_models.deepfilternet", "workbench_models.nsnet2", "workbench_models.gtcrn",
                "workbench_models.rnnoise", "workbench_models.wpe")

#: Runs the command line in this process, then prints the heavy modules it imported (one JSON line).
SCRIPT = r"""
import json, sys
from workbench.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help
    code = exc.code
print("IMPORTED", json.dumps({"code": code, "modules": sorted(m for m in sys.modules)}))
"""


def _imported(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED ")]
    assert line, proc.stderr[-2000:]
    got = json.loads(line[0][len("IMPORTED "):])
    return got["code"], set(got["modules"])


def _roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("model", ["wiener", "spectral-subtraction"])
def test_enhancing_with_a_classical_model_imports_no_runtime_or_other_model(tmp_path, model):
    src = tmp_path / "one.wav"
    rng = np.random.default_rng(0)
    sf.write(src, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    code, modules = _imported("enhance", str(src), "-m", model, "-o", str(tmp_path / "out.wav"), "--quiet")
    assert code == 0 and (tmp_path / "out.wav").is_file()
    assert not _roots(modules) & set(RUNTIMES), sorted(_roots(modules) & set(RUNTIMES))
    assert not modules & set(OTHER_MODELS), sorted(modules & set(OTHER_MODELS))
    assert "scipy.special" not in modules  # only log-MMSE needs it


#: What a classical `workbench enhance` has no use for: the process pool's machinery and Ray (it runs its files
#: on the batch driver's serial backend), the manifest and its JSON schemas (it writes none), logging (only Ray's
#: start sets a log level), the metric stack, figure rendering, the other commands, and numerical libraries
#: beyond numpy.
NOT_FOR_ENHANCE = ("concurrent.futures.process", "multiprocessing.queues", "multiprocessing.connection",
                   "workbench.core.workflows.batch.manifest", "workbench.core.jsonfile", "logging",
                   "workbench.core.measure", "workbench.core.views.figure", "workbench.commands.batch",
                   "workbench.commands.evaluate", "scipy", "ray", "matplotlib")


def test_enhancing_with_a_classical_model_loads_no_driver_metric_or_figure_stack(tmp_path):
    src = tmp_path / "one.wav"
    sf.write(src, np.zeros(16000, np.float32), 16000)
    code, modules = _imported("enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "out.wav"), "--quiet")
    assert code == 0 and (tmp_path / "out.wav").is_file()
    loaded = sorted(m for m in modules for gone in NOT_FOR_ENHANCE if m == gone or m.startswith(gone + "."))
    assert not loaded, loaded


def test_listing_the_commands_imports_no_command_nor_numpy():
    code, modules = _imported("--help")
    assert code == 0
    assert not {m for m in modules if m.startswith("workbench.commands.") and m != "workbench.commands.numbers"}
    assert not _roots(modules) & {"numpy", "soundfile", "workbench_models", *RUNTIMES}


def test_command_listing_matches_each_commands_own_help():
    """The one-line summaries `workbench --help` prints without importing the commands are theirs."""
    import argparse

    from workbench.cli import COMMANDS, build_parser

    parser, modules = build_parser("*")
    assert set(modules) == set(COMMANDS)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    own = {a.dest: a.help for a in sub._choices_actions}
    assert own == {name: summary for name, (_mod, summary) in COMMANDS.items()}


def test_listing_the_catalogue_loads_no_model(capsys):
    code, modules = _imported("models")
    assert code == 0
    assert not _roots(modules) & set(RUNTIMES), sorted(_roots(modules) & set(RUNTIMES))


def test_catalogue_lists_sizes_and_licences_without_a_model_runtime():
    from workbench.core.enhance.registry import list_enhancers

    infos = {i.id: i for i in list_enhancers()}
    for model_id in ("deepfilternet3", "nsnet2-16k", "nsnet2-48k", "rnnoise", "gtcrn-dns3", "gtcrn-vctk"):
        assert infos[model_id].parameters and infos[model_id].parameters > 10_000, model_id
        assert infos[model_id].licence, model_id
    assert infos["rnnoise"].macs_per_second > 1e8


def test_stored_facts_equal_the_live_counts():
    """facts.json was measured once; a changed model package must not leave it stale."""
    from workbench_models import facts

    stored = json.loads(facts.FACTS_FILE.read_text())
    live = facts.measure()
    for model_id, measured in live.items():
        for key, value in measured.items():
            assert stored[model_id][key] == value, (model_id, key)


def test_deepfilternet3_reads_its_rewritten_networks_back_without_onnx(tmp_path):
    """The first run rewrites the networks (needs onnx) and keeps them in the cache; the next run of the
    command imports onnxruntime only."""
    import os
    src = tmp_path / "one.wav"
    rng = np.random.default_rng(1)
    sf.write(src, (0.1 * rng.standard_normal(48000)).astype(np.float32), 48000)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    runs = []
    for i in range(2):
        proc = subprocess.run([sys.executable, "-c", SCRIPT, "enhance", str(src), "-m", "deepfilternet3", "-o",
                               str(tmp_path / f"out{i}.wav"), "--quiet"], capture_output=True, text=True,
                              timeout=300, cwd=REPO, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED ")]
        assert line, proc.stderr[-2000:]
        runs.append(set(json.loads(line[0][len("IMPORTED "):])["modules"]))
    assert "onnx" in runs[0] and "onnx" not in runs[1] and "onnxruntime" in runs[1]
    assert not {"torch", "workbench_models.nsnet2", "workbench_models.gtcrn"} & runs[1]
    # nor what only the first run needs: the tarball's reader, the export-signature helpers
    assert not {"tarfile", "workbench_models.onnx_models"} & runs[1], {"tarfile", "workbench_models.onnx_models"} & runs[1]
    a, b = sf.read(tmp_path / "out0.wav")[0], sf.read(tmp_path / "out1.wav")[0]
    np.testing.assert_array_equal(a, b)
