"""What `workbench enhance` does besides enhancing is only what its result needs: the fixed cost every run
pays above the model's own work (reading the catalogue, hashing files nobody records)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.workflows.batch import item as batch_item
from workbench.core.workflows.batch import pipeline as batch_pipeline


@pytest.fixture
def hashed(monkeypatch):
    """The files hashed for batch rows during a test."""
    seen: list[str] = []
    real = batch_item.file_sha256

    def counting(path, *a, **k):
        seen.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(batch_item, "file_sha256", counting)
    monkeypatch.setattr(batch_pipeline, "file_sha256", counting)
    return seen


def _noise(path, seconds=0.5, rate=16000):
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32), rate)


def test_enhance_hashes_no_file_for_rows_it_keeps_nowhere(tmp_path, hashed):
    """`workbench enhance` writes no manifest: the SHA-256 of its input and output (two more reads of every
    file) would go nowhere."""
    _noise(tmp_path / "a.wav")
    _noise(tmp_path / "b.wav")
    assert main(["enhance", str(tmp_path / "a.wav"), "-m", "wiener", "-o", str(tmp_path / "out.wav"), "--quiet"]) == 0
    assert main(["enhance", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "-m", "wiener",
                 "-o", str(tmp_path / "many"), "--quiet"]) == 0
    assert (tmp_path / "out.wav").is_file() and len(list((tmp_path / "many").iterdir())) == 2
    assert hashed == []


def test_batch_rows_still_record_every_digest(tmp_path, hashed):
    (tmp_path / "in").mkdir()
    _noise(tmp_path / "in" / "a.wav")
    assert main(["batch", "enhance", str(tmp_path / "in"), "-m", "wiener", "-o", str(tmp_path / "out"),
                 "--workers", "0", "--quiet"]) == 0
    assert any(p.endswith("a.wav") for p in hashed) and any("out" in p for p in hashed)


def test_a_builtin_is_found_in_this_distribution_alone(monkeypatch):
    """Running a built-in reads this project's entry points only, not every installed distribution's (and
    each one's metadata); they are exactly the ones the scan of all of them would pick out."""
    from importlib.metadata import entry_points

    from workbench.core.enhance import registry

    scanned = {(ep.name, ep.value) for ep in entry_points(group=registry.ENTRY_POINT_GROUP) if registry._is_builtin(ep)}
    assert {(ep.name, ep.value) for ep in registry._builtin_entry_points()} == scanned

    def no_scan(**_kw):
        raise AssertionError("every distribution's entry points were read to run a built-in")

    monkeypatch.setattr(registry, "entry_points", no_scan)
    monkeypatch.setattr(registry, "_builtin_cache", {})
    monkeypatch.setattr(registry, "_builtin_errors", {})
    enh = registry.load_enhancer("wiener")
    assert enh.info.id == "wiener" and enh.info.source == "built-in"
