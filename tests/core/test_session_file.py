"""Saved sessions: bit-exact versions, equal settings, and changed or missing sources reported."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.progress import run_to_end
from workbench.core.document.session import Provenance, Session, VersionKind
from workbench.core.document.session_file import SessionFileError, audio_folder, open_session_now, save_session_now


class Gain(Enhancer):
    def __init__(self, outputs=("enhanced",)):
        self.info = EnhancerInfo("gain", "Gain", "x/2", 16000, True, 0, outputs=outputs)

    def process_offline(self, audio):
        return audio / 2


def tone(n=16000, ch=1, rate=16000):
    t = np.arange(n) / rate
    return (0.5 * np.stack([np.sin(2 * np.pi * (300 + 100 * c) * t) for c in range(ch)], axis=1)).astype(np.float32)


@pytest.fixture()
def noisy(tmp_path):
    rng = np.random.default_rng(1)
    x = (tone(16000, ch=2) + 0.05 * rng.standard_normal((16000, 2))).astype(np.float32)
    path = tmp_path / "src" / "noisy.wav"
    path.parent.mkdir()
    sf.write(path, x, 16000, subtype="PCM_24")
    clean = tmp_path / "src" / "clean.wav"
    sf.write(clean, tone(16000, ch=2), 16000, subtype="FLOAT")
    return path, clean


def build(noisy) -> Session:
    path, clean = noisy
    s = Session()
    rec = s.open(path)
    (v,) = run_to_end(rec.enhance(Gain(outputs=("enhanced",)), channels=[1], spec="gain"))
    rec.residual_of(v)
    rng = np.random.default_rng(2)
    odd = rng.standard_normal((16000, 2)).astype(np.float32) * 1e-3  # values no PCM format holds exactly
    rec.add_version(odd, 16000, Provenance(VersionKind.ENHANCED, parent="original", model_id="odd",
                                           extra={"note": "random"}))
    s.set_reference(rec, clean)
    s.set_view_state("display", {"db_min": -100.0, "db_max": 0.0, "views": ["magnitude", "group_delay"]})
    s.set_view_state("loop", {"start_s": 0.25, "end_s": 0.5})
    return s


def test_round_trip_is_bit_exact_with_equal_settings(noisy, tmp_path):
    s = build(noisy)
    assert s.unsaved_versions()
    target = save_session_now(s, tmp_path / "work.session.json")
    assert target.exists() and audio_folder(target).is_dir() and not s.unsaved_versions()
    doc = json.loads(target.read_text())
    assert doc["format"] == "workbench-session" and doc["format_version"] == 2
    assert len(doc["recordings"][0]["sha256"]) == 64
    # a new process would start from nothing: a fresh Session
    restored, problems = open_session_now(target)
    assert problems == []
    (a,), (b,) = s.recordings, restored.recordings
    assert [v.name for v in b.versions] == [v.name for v in a.versions]
    for va, vb in zip(a.versions, b.versions):
        assert vb.provenance == va.provenance and vb.kind is va.kind
        assert va.source.read_all().tobytes() == vb.source.read_all().tobytes()
        assert vb.settings == va.settings or va.kind == VersionKind.ORIGINAL
    assert b.versions[1].model.id == "gain" and b.versions[1].model.outputs == ("enhanced",)
    assert restored.reference(b) == noisy[1]
    assert restored.view_state == s.view_state
    assert restored.current is b and not restored.unsaved_versions()


def test_state_providers_are_saved_and_restored(noisy, tmp_path):
    s = build(noisy)
    blind = {"trials": [{"a": "original", "b": "gain", "choice": "b"}]}
    s.add_state_provider("blind_test", lambda: blind, lambda v: None)
    target = save_session_now(s, tmp_path / "p.session.json")
    got = {}
    fresh = Session()
    fresh.add_state_provider("blind_test", lambda: None, lambda v: got.setdefault("v", v))
    open_session_now(target, fresh)
    assert got["v"] == blind


def test_changed_source_is_reported_not_replaced(noisy, tmp_path):
    s = build(noisy)
    target = save_session_now(s, tmp_path / "c.session.json")
    x, sr = sf.read(noisy[0], dtype="float32")
    sf.write(noisy[0], x * 0.5, sr, subtype="PCM_24")  # edited behind the session's back
    restored, problems = open_session_now(target)
    assert len(problems) == 1 and "noisy.wav" in problems[0] and "SHA-256 differs" in problems[0]
    assert restored.recordings == []


def test_missing_source_and_missing_reference_are_reported(noisy, tmp_path):
    s = build(noisy)
    target = save_session_now(s, tmp_path / "m.session.json")
    noisy[1].unlink()
    restored, problems = open_session_now(target)
    assert problems == [f"{noisy[1]}: reference of noisy.wav is missing; no reference set"]
    assert restored.reference(restored.recordings[0]) is None
    shutil.rmtree(noisy[0].parent)
    restored, problems = open_session_now(target)
    assert len(problems) == 1 and "noisy.wav: missing" in problems[0] and restored.recordings == []


def test_not_a_session_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "x.session.json"
    bad.write_text("{nope")
    with pytest.raises(SessionFileError, match=r"x.session.json: not a session file \(invalid JSON"):
        open_session_now(bad)
    bad.write_text(json.dumps({"format": "workbench-session", "format_version": 99}))
    with pytest.raises(SessionFileError, match="newer workbench"):
        open_session_now(bad)


def test_saving_never_writes_over_a_source(noisy):
    s = build(noisy)
    before = noisy[0].read_bytes()
    target = save_session_now(s, noisy[0])  # the person typed the recording's own name
    assert target.name == "noisy.wav.session.json" and noisy[0].read_bytes() == before
