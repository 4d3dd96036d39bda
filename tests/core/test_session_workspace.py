"""The workspace model: one event stream for every change, undo that shows what it concerned, measurements
reused by content, and session files (format 2, and format 1 files still opening)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from workbench.core.document import session_file
from workbench.core.enhance.editing import Box, Strength
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.progress import run_to_end
from workbench.core.history import AddVersion, SetStrength
from workbench.core.measure.scoring import Scores
from workbench.core.measure.metrics import Metric
from workbench.core.document.session import Session
from workbench.core.document.session_file import open_session_now, save_session_now
from workbench.core.document.version_ops import repair_version
from workbench.core.document.workspace import PhaseLabSummary, Workspace


class Halve(Enhancer):
    def __init__(self):
        self.info = EnhancerInfo("halve", "Halve", "x/2", 16000, True, 0)

    def process_offline(self, audio):
        return audio / 2


@pytest.fixture()
def noisy(tmp_path):
    rng = np.random.default_rng(4)
    t = np.arange(16000) / 16000
    x = (0.4 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((16000, 1))).astype(np.float32)
    path = tmp_path / "src" / "noisy.wav"
    path.parent.mkdir()
    sf.write(path, x, 16000, subtype="FLOAT")
    return path


def differences(a, b, path="") -> list[str]:
    """Where two snapshots differ (paths into the nested dicts/lists), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only on one side" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def scores(value: float) -> Scores:
    return Scores({"si_sdr": Metric("si_sdr", value, "dB", True, (None, None), "", "SI-SDR")})


def test_every_change_is_one_event_of_the_workspace(noisy):
    ws = Workspace()
    seen = []
    ws.subscribe(lambda event, obj: seen.append((event, obj)))
    rec = ws.open(noisy)
    (v,) = run_to_end(rec.enhance(Halve()))
    rec.set_strength(v, Strength(0.5))
    ws.set_loop((0.1, 0.4))
    ws.set_loop((0.1, 0.4))                  # unchanged: no event
    ws.catalogue.add_loaded("halve-file", Halve())
    events = [e for e, _ in seen]
    assert ("strength", (rec, v)) in seen and ("state", "loop") in seen and "catalogue" in events
    assert events.count("versions") == 1 and seen.count(("state", "loop")) == 2   # opened (cleared), set


def test_undo_and_redo_show_the_version_the_change_concerned(noisy):
    ws = Workspace()
    rec = ws.open(noisy)
    (v,) = run_to_end(rec.enhance(Halve()))
    repaired = repair_version(rec, v, Box(0.2, 0.5, 200.0, 2000.0), gain_db=-20.0)
    ws.set_version(repaired)
    assert isinstance(ws.undo(), AddVersion)
    assert ws.version is v                    # the version that was repaired, not the original
    ws.redo()
    assert ws.version is repaired
    rec.set_strength(v, Strength(0.3))
    ws.set_version(rec.original)
    assert isinstance(ws.undo(), SetStrength) and ws.version is v and rec.strength_of(v).full


def test_a_restored_recordings_strength_reaches_the_workspace_listeners(noisy, tmp_path):
    ws = Workspace()
    rec = ws.open(noisy)
    (v,) = run_to_end(rec.enhance(Halve()))
    target = save_session_now(ws, tmp_path / "s.session.json")
    restored, problems = open_session_now(target)
    assert problems == []
    heard = []
    restored.subscribe(lambda event, obj: heard.append(event))
    rec2 = restored.current
    rec2.set_strength(rec2.version("halve"), Strength(0.4))
    assert heard.count("strength") == 1


def test_measurements_are_kept_by_content_and_reused_after_opening(noisy, tmp_path):
    ws = Workspace()
    rec = ws.open(noisy)
    (v,) = run_to_end(rec.enhance(Halve()))
    clean = tmp_path / "clean.wav"
    sf.write(clean, np.zeros((16000, 1), np.float32), 16000)
    ws.set_reference(rec, clean)
    ref = ws.measurements.reference_key(clean)
    ws.measurements.put(v.source, ref, "intrusive", scores(7.5))
    ws.measurements.put(rec.original.source, "", "dnsmos", scores(2.0))
    rec.set_strength(v, Strength(0.5))        # other samples: the stored result is not theirs
    assert ws.measurements.get(v.source, ref, "intrusive") is None
    rec.set_strength(v, Strength(1.0))
    ws.measurements.samples_key(v.source)
    assert ws.measurements.get(v.source, ref, "intrusive").metrics["si_sdr"].value == 7.5
    target = save_session_now(ws, tmp_path / "m.session.json")
    restored, _ = open_session_now(target)    # hashes the restored versions on this (worker) thread
    rec2 = restored.current
    got = restored.measurements.get(rec2.version("halve").source, ref, "intrusive")
    assert got is not None and got.metrics["si_sdr"].value == 7.5
    assert restored.measurements.get(rec2.original.source, "", "dnsmos").metrics["si_sdr"].value == 2.0
    assert differences(restored.snapshot(), ws.snapshot()) == []


def test_the_whole_workspace_round_trips(noisy, tmp_path):
    ws = Workspace()
    rec = ws.open(noisy)
    (v,) = run_to_end(rec.enhance(Halve()))
    rec.set_strength(v, Strength(0.7))
    ws.set_version(v)
    ws.set_display({"layout": "row", "db_range": (-90.0, 0.0)})
    ws.set_stft({"n_fft": 512, "hop": 128, "window": "hann"})
    ws.set_view_range(0.1, 0.8)
    ws.set_freq_range((100.0, 4000.0))
    ws.set_loop((0.25, 0.5))
    ws.set_selection((0.25, 0.5))
    ws.set_repair_box((0.1, 0.2, 300.0, 900.0))
    ws.set_blind_results([{"recording": "noisy.wav", "tally": {"halve": 2}}])
    ws.set_window({"geometry": "AAAA"})
    ws.set_phase_lab_params({"kinds": ["swap"], "gla_iterations": 7, "lc_db": -3.0})
    ws.set_edit_params({"model": "wiener", "repair": "interpolate", "gain_db": -12.0, "noise_span_s": [0.1, 0.3]})
    ws.set_blind_test({"recording": "noisy.wav", "current": 1,
                       "trials": [{"mapping": {"X": "halve", "Y": "original"}, "vote": "X"},
                                  {"mapping": {"X": "original", "Y": "halve"}, "vote": None}]})
    ws.set_phase_lab(rec, PhaseLabSummary(
        rows=[{"file": "noisy.wav", "version": "original", "metric": "si_sdr", "value": float("inf"), "unit": "dB",
               "reason": ""}],
        mask_stats=[{"version": "halve", "phase_deviation_rad": 0.01, "cirm_distance_db": None}],
        curves=[{"label": "GLA", "spectral_convergence": [1.0, 0.5, float("nan")], "inconsistency": 0.2,
                 "momentum": 0.0}], notes="lab", channel=0))
    target = save_session_now(ws, tmp_path / "w.session.json")
    before = ws.snapshot()                    # saving marks the versions saved
    assert json.loads(target.read_text())["format_version"] == 2
    restored, problems = open_session_now(target)
    assert problems == [] and differences(restored.snapshot(), before) == []


def test_a_format_1_session_file_still_opens_into_the_workspace(noisy, tmp_path, monkeypatch):
    """A file written the old way: the window's state inside ``view_state``, no workspace section."""
    old = Session()
    rec = old.open(noisy)
    run_to_end(rec.enhance(Halve()))
    old.set_view_state("display", {"display": {"layout": "row", "db_range": [-80.0, -10.0]},
                                   "stft": {"n_fft": 2048, "hop": 512, "window": "hann"}})
    old.set_view_state("window", {"version": "halve", "channel": 0, "view_range_s": [0.2, 0.6]})
    old.set_view_state("loop", [0.3, 0.7])
    old.set_view_state("blind_test", [{"recording": "noisy.wav"}])
    old.set_view_state("other_feature", {"kept": True})
    monkeypatch.setattr(session_file, "FORMAT_VERSION", 1)
    target = save_session_now(old, tmp_path / "old.session.json")
    monkeypatch.undo()
    doc = json.loads(target.read_text())
    assert doc["format_version"] == 1 and "workspace" not in doc
    ws, problems = open_session_now(target)
    assert problems == [] and isinstance(ws, Workspace)
    assert ws.version.name == "halve" and ws.loop == (0.3, 0.7) and ws.view_range == (0.2, 0.6)
    assert ws.display == {"layout": "row", "db_range": [-80.0, -10.0]} and ws.stft["n_fft"] == 2048
    assert ws.blind_results == [{"recording": "noisy.wav"}]
    assert ws.view_state == {"other_feature": {"kept": True}}


def test_the_undo_history_is_saved_and_undoes_after_opening(noisy, tmp_path):
    """Both stacks come back: versions an undo took out are stored with the history, and Ctrl+Z after
    opening undoes the last change made before saving and shows the version it concerned."""
    ws = Workspace()
    rec = ws.open(noisy)
    (v,) = run_to_end(rec.enhance(Halve()))
    repaired = repair_version(rec, v, Box(0.2, 0.5, 200.0, 2000.0), gain_db=-20.0)
    residual = rec.residual_of(v)
    rec.remove(residual)                      # held by the history only
    rec.set_strength(v, Strength(0.6))
    ws.undo()                                 # the strength change waits on the redo stack
    rec.set_strength(v, Strength(0.8))        # ... and is dropped by a new change
    ws.undo()
    ws.set_version(repaired)
    target = save_session_now(ws, tmp_path / "h.session.json")
    before = ws.snapshot()
    assert [c["command"] for c in before["recordings"][0]["history"]["undo"]] == ["add", "add", "add", "remove"]
    restored, problems = open_session_now(target)
    assert problems == [] and differences(restored.snapshot(), before) == []
    rec2 = restored.current
    assert restored.redo().name.startswith("strength") and rec2.strength_of(rec2.version("halve")).mix == 0.8
    restored.undo()
    command = restored.undo()                 # the removal of the residual
    assert command.name == f"remove {residual.name}" and restored.version.name == residual.name
    np.testing.assert_array_equal(restored.version.source.read_all(), residual.source.read_all())
    restored.undo()                           # adding the residual
    restored.undo()                           # the repair: shows the version that was repaired
    assert restored.version is rec2.version("halve") and rec2.version_or_none(repaired.name) is None
    restored.redo()
    assert restored.version.name == repaired.name
    np.testing.assert_array_equal(restored.version.source.read_all(), repaired.source.read_all())


def test_a_history_naming_a_version_that_is_not_there_is_left_out_with_one_line(noisy, tmp_path):
    ws = Workspace()
    rec = ws.open(noisy)
    run_to_end(rec.enhance(Halve()))
    target = save_session_now(ws, tmp_path / "bad.session.json")
    doc = json.loads(target.read_text())
    doc["recordings"][0]["history"]["undo"][0]["version"] = "h7"
    target.write_text(json.dumps(doc))
    restored, problems = open_session_now(target)
    assert len(problems) == 1 and "undo history of noisy.wav" in problems[0]
    assert not restored.current.history.can_undo and restored.current.version_or_none("halve") is not None


def test_a_session_that_stored_the_reference_free_switch_as_dnsmos_opens_with_it(noisy, tmp_path):
    """Earlier sessions wrote ``metric_settings: {"dnsmos": false}``; it always meant every reference-free metric."""
    ws = Workspace()
    ws.open(noisy)
    ws.set_metric_settings({"reference_free": False, "speech_only": True})
    target = save_session_now(ws, tmp_path / "s.session.json")
    doc = json.loads(target.read_text())
    assert doc["workspace"]["metric_settings"] == {"reference_free": False, "speech_only": True}
    doc["workspace"]["metric_settings"] = {"dnsmos": False, "speech_only": True}  # as an earlier version wrote it
    target.write_text(json.dumps(doc))
    restored, problems = open_session_now(target)
    assert problems == []
    assert restored.metric_settings == {"reference_free": False, "speech_only": True}
