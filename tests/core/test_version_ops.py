"""Strength, region, repair versions on a Recording, and undo/redo of every step."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.enhance.editing import Box, Strength
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.progress import run_to_end
from workbench.core.errors import WorkbenchError
from workbench.core.history import SetStrength
from workbench.core.workflows.export import export_version
from workbench.core.provenance import VersionKind
from workbench.core.document.recording import Recording
from workbench.core.document.version_ops import EnhanceRequest, enhance_region, repair_version, run_request

RATE = 16000


class Halve(Enhancer):
    def __init__(self):
        self.info = EnhancerInfo("halve", "Halve", "test", RATE, True, 0, processing="offline", any_rate=True)

    def process_offline(self, audio):
        return audio * 0.5


@pytest.fixture()
def rec(rng):
    x = (0.1 * rng.standard_normal((3 * RATE, 2))).astype(np.float32)
    return Recording.from_array(x, RATE, "take.wav")


def test_strength_changes_what_is_read_exported_and_is_undoable(rec, tmp_path):
    v = run_to_end(rec.enhance(Halve()))[0]
    x = rec.source.read_all()
    rec.set_strength(v, Strength(0.7))
    np.testing.assert_allclose(v.source.read(0, 100), 0.7 * 0.5 * x[:100] + 0.3 * x[:100], atol=1e-6)
    assert v.provenance.extra["strength"]["mix"] == pytest.approx(0.7)
    f = export_version(rec, v, tmp_path, format="WAV", subtype="FLOAT")
    import soundfile as sf
    y, _ = sf.read(f.path, dtype="float32")
    np.testing.assert_allclose(y, 0.35 * x + 0.3 * x, atol=1e-6)
    heard = []
    rec.subscribe_strength(lambda r, ver: heard.append(rec.strength_of(ver).mix))
    assert isinstance(rec.undo(), SetStrength)
    assert rec.strength_of(v).full and "strength" not in v.provenance.extra
    np.testing.assert_array_equal(v.source.read(0, 100), rec.wet_source(v).read(0, 100))
    rec.redo()
    assert rec.strength_of(v).mix == pytest.approx(0.7) and heard == [1.0, 0.7]
    with pytest.raises(ValueError):
        rec.set_strength(rec.original, Strength(0.5))


def test_undo_redo_round_trip_of_add_and_remove(rec):
    v = run_to_end(rec.enhance(Halve()))[0]
    r = rec.residual_of(v)
    assert [x.name for x in rec.versions] == ["original", "halve", "residual (halve)"]
    rec.remove(v)
    assert [x.name for x in rec.versions] == ["original", "residual (halve)"]
    rec.undo()                                        # the removal
    assert rec.versions[1] is v
    rec.undo()                                        # the residual
    rec.undo()                                        # the run
    assert [x.name for x in rec.versions] == ["original"]
    assert rec.undo() is None
    rec.redo()
    rec.redo()
    assert rec.versions[1:] == [v, r]
    rec.redo()
    assert rec.versions[1:] == [r]
    assert rec.redo() is None
    rec.undo()
    rec.remove(r)                                     # a new step clears the redo stack
    assert not rec.history.can_redo


def test_region_and_repair_versions_have_their_kind_and_parent(rec):
    v = run_to_end(enhance_region(rec, Halve(), [(1.0, 2.0)]))
    assert v.kind == VersionKind.REGION and v.kind.is_result
    assert v.provenance.extra["regions_s"] == [[1.0, 2.0]]
    x, y = rec.source.read_all(), v.source.read_all()
    xf = int(0.02 * RATE)
    np.testing.assert_array_equal(y[:RATE - xf], x[:RATE - xf])
    np.testing.assert_array_equal(y[RATE:2 * RATE], 0.5 * x[RATE:2 * RATE])
    fixed = repair_version(rec, v, Box(1.2, 1.6, 1000, 3000), gain_db=-20)
    assert fixed.kind == VersionKind.REPAIR and fixed.provenance.parent == v.name
    assert fixed.provenance.extra["method"] == {"gain_db": -20}
    with pytest.raises(WorkbenchError, match="empty"):
        repair_version(rec, v, Box(1.2, 1.2, 1000, 3000), gain_db=-20)
    with pytest.raises(WorkbenchError, match="outside"):
        run_to_end(enhance_region(rec, Halve(), [(2.5, 4.0)]))
    rec.undo()
    rec.undo()
    assert [x.name for x in rec.versions] == ["original"]


def test_session_file_keeps_the_strength_movable(rec, tmp_path):
    from workbench.core.document.session import Session
    from workbench.core.document.session_file import open_session_now, save_session_now
    rec.path = tmp_path / "take.wav"
    import soundfile as sf
    sf.write(rec.path, rec.source.read_all(), RATE, subtype="FLOAT")
    s = Session()
    r = Recording(rec.path)
    s.add(r)
    v = run_to_end(r.enhance(Halve()))[0]
    r.set_strength(v, Strength(0.6))
    mixed = v.source.read_all()
    target = save_session_now(s, tmp_path / "w.session.json")
    restored, problems = open_session_now(target)
    assert problems == []
    rv = restored.recordings[0].versions[1]
    assert restored.recordings[0].strength_of(rv).mix == pytest.approx(0.6)
    np.testing.assert_allclose(rv.source.read_all(), mixed, atol=1e-6)
    np.testing.assert_allclose(restored.recordings[0].wet_source(rv).read_all(), r.wet_source(v).read_all())


class SpeechAndRest(Enhancer):
    """Two outputs: half the input as ``speech``, the other half as ``rest``."""

    def __init__(self):
        self.info = EnhancerInfo("split", "Split", "test", RATE, True, 0, processing="offline", any_rate=True,
                                 outputs=("speech", "rest"))

    def process_offline(self, audio):
        return np.stack([0.5 * audio, 0.5 * audio])


def test_one_request_returns_every_new_version_as_a_list(rec):
    """run_request is the one driver of the panels, the CLI and batch: always a list of versions."""
    whole = run_to_end(run_request(rec, SpeechAndRest(), EnhanceRequest(spec="split", channels=(1,))))
    assert [v.name for v in whole] == ["split.speech", "split.rest"]
    assert all(v.source.channels == 1 and v.provenance.model_spec == "split" for v in whole)
    [region] = run_to_end(run_request(rec, Halve(), EnhanceRequest(regions_s=((1.0, 2.0),))))
    assert region.provenance.kind == VersionKind.REGION
    x, y = rec.source.read_all(), region.source.read_all()
    np.testing.assert_array_equal(y[:RATE // 2], x[:RATE // 2])  # outside the region: bit-identical
    np.testing.assert_allclose(y[int(1.3 * RATE):int(1.7 * RATE)], 0.5 * x[int(1.3 * RATE):int(1.7 * RATE)],
                               atol=1e-6)
    with pytest.raises(WorkbenchError, match="several outputs"):
        run_to_end(run_request(rec, SpeechAndRest(), EnhanceRequest(regions_s=((1.0, 2.0),))))
