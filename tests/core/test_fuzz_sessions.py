"""Hostile session files: whatever a session names or holds, opening it is one line per problem, never a
hang, a traceback, a whole-file read of something huge, or another recording restored as a version; saving
writes only into a real folder the session owns."""

from __future__ import annotations

import copy
import json
import os
import re
import struct
import threading
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from workbench.core.document import session_file
from workbench.core.document.session import Session
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.progress import run_to_end
from workbench.core.document.session_file import SessionFileError, audio_folder, open_session_now, read_session_file, \
    save_session_now


class Half(Enhancer):
    def __init__(self):
        self.info = EnhancerInfo("half", "Half", "x/2", 16000, True, 0)

    def process_offline(self, audio):
        return audio / 2


def _tone(n=8000, ch=1):
    t = np.arange(n) / 16000
    return (0.3 * np.stack([np.sin(2 * np.pi * (200 + 50 * c) * t) for c in range(ch)], axis=1)).astype(np.float32)


@pytest.fixture()
def saved(tmp_path):
    """A saved session of one recording with one stored version and a reference; returns (json path, doc)."""
    src = tmp_path / "noisy.wav"
    sf.write(src, _tone(), 16000, subtype="PCM_16")
    clean = tmp_path / "clean.wav"
    sf.write(clean, _tone(), 16000, subtype="FLOAT")
    s = Session()
    rec = s.open(src)
    run_to_end(rec.enhance(Half(), spec="half"))
    s.set_reference(rec, clean)
    s.set_view_state("display", {"display": {"db_range": [-90.0, 0.0], "layout": "grid"},
                                 "stft": {"n_fft": 512, "hop": 128, "window": "hann"}})
    s.set_view_state("window", {"version": "half", "channel": 0, "view_range_s": [0.0, 0.5]})
    s.set_view_state("loop", [0.1, 0.2])
    target = save_session_now(s, tmp_path / "w.session.json")
    return target, json.loads(target.read_text())


def _in_thread(fn, timeout=10.0):
    """Run ``fn`` on a daemon thread; returns (finished, result-or-exception)."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["value"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive(), out.get("value")


def _unblock_fifo(path):
    """Let a reader stuck on ``path`` go (a writer that opens and closes at once ends its read)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def test_a_fifo_session_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "p.session.json"
    os.mkfifo(fifo)
    done, value = _in_thread(lambda: read_session_file(fifo), timeout=5)
    _unblock_fifo(fifo)
    assert done, "reading a FIFO session blocked"
    assert isinstance(value, SessionFileError) and "named pipe" in str(value) and str(fifo) in str(value)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_session_linked_to_a_device_is_refused_before_reading(tmp_path, device):
    link = tmp_path / "z.session.json"
    link.symlink_to(device)
    done, value = _in_thread(lambda: read_session_file(link), timeout=5)
    assert done and isinstance(value, SessionFileError) and "device" in str(value)


def test_an_oversized_session_is_refused_before_it_is_read(tmp_path, monkeypatch):
    big = tmp_path / "big.session.json"
    big.write_text(json.dumps({"format": "workbench-session", "format_version": 1, "pad": "x" * 5000}))
    monkeypatch.setattr(session_file, "MAX_SESSION_BYTES", 4096)
    with pytest.raises(SessionFileError, match="4096-byte limit"):
        read_session_file(big)


def test_deep_nesting_is_one_line(tmp_path):
    deep = tmp_path / "d.session.json"
    deep.write_text('{"format": "workbench-session", "format_version": 1, "view_state": {"x": '
                    + "[" * 5000 + "]" * 5000 + "}}")
    with pytest.raises(SessionFileError, match="nested more than"):
        read_session_file(deep)


def _set(doc, dotted, value):
    """Set the field at ``a.b[0].c`` in a copy of ``doc``."""
    doc = copy.deepcopy(doc)
    node = doc
    parts = dotted.replace("]", "").replace("[", ".").split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


# (field, wrong value): each must end in one line naming the file and that field, nothing Python-internal.
WRONG = [
    ("format_version", "1"), ("format_version", None), ("format_version", 1.5), ("format_version", True),
    ("current", "0"), ("current", -1),
    ("recordings", "x"), ("recordings[0]", "x"), ("recordings[0].path", 3), ("recordings[0].path", None),
    ("recordings[0].versions", {"a": 1}), ("recordings[0].versions[1]", "v"), ("recordings[0].versions[1].name", 7),
    ("recordings[0].versions[1].file", ["a"]), ("recordings[0].versions[1].frames", "many"),
    ("recordings[0].versions[1].frames", -5), ("recordings[0].versions[1].sample_rate", 0),
    ("recordings[0].versions[1].channels", 5000), ("recordings[0].versions[1].provenance", [1]),
    ("recordings[0].versions[1].provenance.kind", "alien"), ("recordings[0].versions[1].provenance.channels", "0"),
    ("recordings[0].versions[1].model", "m"), ("recordings[0].versions[1].model.outputs", "enhanced"),
    ("recordings[0].versions[1].settings", [1]), ("recordings[0].versions[1].created", "yesterday"),
    ("recordings[0].versions[1].provenance.extra.strength", {"mix": 7}),
    ("recordings[0].reference", "clean.wav"), ("recordings[0].reference.path", {}),
    ("recordings[0].repair", "yes"),
    ("view_state", "x"), ("view_state.display", 3), ("view_state.display.display", "grid"),
    ("view_state.display.display.db_range", 5), ("view_state.display.display.db_range", [0, -10]),
    ("view_state.display.display.layout", "hexagon"), ("view_state.display.stft.hop", 0),
    ("view_state.display.stft.n_fft", "big"), ("view_state.display.stft.hop", 4096),
    ("view_state.display.stft.window", "kaiser"),
    ("view_state.window.channel", "left"), ("view_state.window.view_range_s", [0, "a"]),
    ("view_state.loop", [0, "a"]), ("view_state.loop", [3, 1]), ("view_state.loop", "all"),
    ("view_state.blind_test", "x"),
    ("workspace", "x"), ("workspace", {"loop_s": [0, "a"]}), ("workspace", {"repair_box": [0, 1e308, 0, 100]}),
    ("workspace", {"stft": {"n_fft": "big"}}), ("workspace", {"channel": -1}),
]


@pytest.mark.parametrize("field,value", WRONG, ids=[f"{f}={v!r}" for f, v in WRONG])
def test_every_wrong_field_is_one_line_naming_file_and_field(saved, field, value):
    target, doc = saved
    target.write_text(json.dumps(_set(doc, field, value)))
    with pytest.raises(SessionFileError) as err:
        read_session_file(target)
    text = str(err.value)
    assert "\n" not in text and str(target) in text
    assert field.split("[")[0].split(".")[0] in text
    for internal in ("object has no attribute", "not subscriptable", "NoneType", "Traceback", "invalid literal"):
        assert internal not in text


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_format_version_is_refused(saved, raw):
    target, doc = saved
    text = re.sub(r'"format_version": \d+', f'"format_version": {raw}', json.dumps(doc))
    target.write_text(text)
    with pytest.raises(SessionFileError, match="w.session.json"):
        read_session_file(target)


def test_a_version_file_outside_the_audio_folder_is_not_restored(saved, tmp_path):
    target, doc = saved
    other = tmp_path / "other.wav"
    sf.write(other, _tone() * 0.1, 16000, subtype="FLOAT")
    target.write_text(json.dumps(_set(doc, "recordings[0].versions[1].file", "w.session.audio/../other.wav")))
    restored, problems = open_session_now(target)
    assert [v.name for v in restored.recordings[0].versions] == ["original"]
    assert len(problems) == 1 and "not inside the session's audio folder" in problems[0]


def test_a_version_file_linked_out_of_the_audio_folder_is_not_restored(saved, tmp_path):
    target, doc = saved
    other = tmp_path / "other.wav"
    sf.write(other, _tone() * 0.1, 16000, subtype="FLOAT")
    rel = doc["recordings"][0]["versions"][1]["file"]
    victim = target.parent / rel
    victim.unlink()
    victim.symlink_to(other)
    restored, problems = open_session_now(target)
    assert [v.name for v in restored.recordings[0].versions] == ["original"] and len(problems) == 1


def test_a_version_file_that_does_not_match_what_the_session_recorded_is_not_restored(saved):
    target, doc = saved
    rel = doc["recordings"][0]["versions"][1]["file"]
    sf.write(target.parent / rel, np.zeros((8000, 2), np.float32), 16000, subtype="FLOAT")  # two channels now
    restored, problems = open_session_now(target)
    assert [v.name for v in restored.recordings[0].versions] == ["original"]
    assert len(problems) == 1 and "session recorded" in problems[0]


def test_a_fifo_version_file_does_not_block(saved):
    target, doc = saved
    rel = doc["recordings"][0]["versions"][1]["file"]
    vf = target.parent / rel
    vf.unlink()
    os.mkfifo(vf)
    done, value = _in_thread(lambda: open_session_now(target), timeout=10)
    _unblock_fifo(vf)
    assert done, "a FIFO version file blocked opening the session"
    restored, problems = value
    assert len(problems) == 1 and "not a regular file" in problems[0]


def _sparse_float_wav(path, frames, channels=1, rate=16000):
    """A float WAV whose header declares ``frames`` and whose data is a hole (sparse, costs no disk)."""
    data_bytes = frames * channels * 4
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 3, channels, rate, rate * channels * 4, channels * 4, 32)
    header += b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data_bytes)


def test_a_huge_sparse_version_file_is_refused_from_its_header(saved):
    target, doc = saved
    rel = doc["recordings"][0]["versions"][1]["file"]
    _sparse_float_wav(target.parent / rel, 50_000_000)  # 200 MB declared; the recording has 8000 frames
    tracemalloc.start()
    try:
        restored, problems = open_session_now(target)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [v.name for v in restored.recordings[0].versions] == ["original"] and len(problems) == 1
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated: the version file was read before it was checked"


def test_a_recording_that_is_a_fifo_is_a_problem_not_a_hang(saved, tmp_path):
    target, doc = saved
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    target.write_text(json.dumps(_set(doc, "recordings[0].path", str(fifo))))
    done, value = _in_thread(lambda: open_session_now(target), timeout=10)
    _unblock_fifo(fifo)
    assert done
    _restored, problems = value
    assert len(problems) == 1 and "not a regular file" in problems[0]


# -- saving ---------------------------------------------------------------------------------------------------
def _session_with_version(tmp_path):
    src = tmp_path / "noisy.wav"
    sf.write(src, _tone(), 16000, subtype="PCM_16")
    s = Session()
    rec = s.open(src)
    run_to_end(rec.enhance(Half(), spec="half"))
    return s, rec


def test_saving_never_writes_through_a_linked_audio_folder(tmp_path):
    s, _rec = _session_with_version(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "w.session.json"
    audio_folder(target).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(SessionFileError, match="symbolic link"):
        save_session_now(s, target)
    assert list(elsewhere.iterdir()) == [] and not target.exists()


def test_saving_never_writes_over_a_reference_kept_in_the_audio_folder(tmp_path):
    s, rec = _session_with_version(tmp_path)
    target = tmp_path / "w.session.json"
    folder = audio_folder(target)
    folder.mkdir()
    clean = folder / "r0-v1-half.wav"  # exactly the name the version would get
    sf.write(clean, _tone(), 16000, subtype="PCM_16")
    before = clean.read_bytes()
    s.set_reference(rec, clean)
    save_session_now(s, target)
    assert clean.read_bytes() == before
    restored, problems = open_session_now(target)
    assert problems == [] and [v.name for v in restored.recordings[0].versions] == ["original", "half"]
    assert restored.reference(restored.recordings[0]) == clean


def test_a_full_drive_is_named_and_leaves_no_empty_audio_folder(tmp_path, monkeypatch):
    s, _rec = _session_with_version(tmp_path)
    target = tmp_path / "w.session.json"

    class Usage:
        free = 1000
    monkeypatch.setattr(session_file.shutil, "disk_usage", lambda p: Usage)
    with pytest.raises(SessionFileError, match="not enough space on the drive"):
        save_session_now(s, target)
    assert not audio_folder(target).exists() and not target.exists()


def test_a_failed_write_leaves_no_empty_audio_folder(tmp_path, monkeypatch):
    s, _rec = _session_with_version(tmp_path)
    target = tmp_path / "w.session.json"

    def full(path, *a, **k):
        path.parent.mkdir(parents=True, exist_ok=True)  # as the atomic writer does before its first byte
        raise session_file.WorkbenchError(f"{path}: could not be written (No space left on the drive)")
    monkeypatch.setattr(session_file, "write_audio_atomic", full)
    with pytest.raises(session_file.WorkbenchError, match="No space left"):
        save_session_now(s, target)
    assert not audio_folder(target).exists() and not target.exists()
