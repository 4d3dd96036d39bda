"""Shared fixtures: where the real recordings live, and small generated signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (see its PROVENANCE.md). Missing data is a failure, not a skip."""
    if not (SHARED_DATA / "PROVENANCE.md").exists():
        pytest.fail(f"test data not found at {SHARED_DATA}; the checkout must sit beside shared/")
    return SHARED_DATA


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
