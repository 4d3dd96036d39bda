"""The transport bar with pytest-qt (offscreen): keys drive the engine, no-device message, blind A/B."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt

from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.core.audio.playback import PlaybackEngine
from workbench.core.document.recording import Recording
from workbench.gui.transport import TransportBar


def _info(model_id: str, sr: int) -> EnhancerInfo:
    return EnhancerInfo(model_id, model_id, "test", sr, True, 0)


@pytest.fixture()
def recording(shared_data):
    dns = shared_data / "dns3"
    rec = Recording(dns / "0016_noisy.wav")
    n = rec.source.frames
    for name in ("GTCRN", "RNNoise"):
        y, sr = sf.read(dns / f"0016_{name}.wav", dtype="float32")
        y = np.pad(y, (0, max(0, n - len(y))))[:n]
        rec.add_enhanced(y[:, None], sr, _info(name.lower(), sr))
    return rec


class FakeDeviceEngine(PlaybackEngine):
    """A headless engine that claims a device, so the transport enables playback; the test drives the
    callback by hand in place of PortAudio."""

    def __init__(self, **kw):
        super().__init__(None, sample_rate=16000, **kw)
        self.available, self.reason = True, None

    def _open_stream(self):
        self._stream = None


def _pull(engine, frames=512):
    out = np.zeros((frames, 2), np.float32)
    engine.callback(out, frames, None, None)
    return out


@pytest.fixture()
def bar(qtbot, recording):
    bar = TransportBar(engine=FakeDeviceEngine())
    qtbot.addWidget(bar)
    bar.set_recording(recording)
    bar.resize(1400, bar.sizeHint().height())   # as wide as in the window's bottom tool bar
    bar.show()
    bar.activateWindow()
    qtbot.waitExposed(bar)
    yield bar
    bar.shutdown()


def test_buttons_and_gain_readout_per_version(bar, recording):
    assert [b.text() for b in bar.version_buttons] == ["A: original", "B: gtcrn", "C: rnnoise"]
    assert bar.version_buttons[0].isChecked()
    readout = bar.gain_readout()
    assert len(readout) == 3 and all("dB" in r for r in readout)
    # loudness matching is on by default and shown; off gives 0 dB for these in-range versions
    assert bar.match_check.isChecked()
    bar.match_check.click()
    assert not bar.engine.loudness_match and bar.gain_readout() == ["0.0 dB"] * 3
    assert "LUFS" in bar.version_buttons[1].toolTip()


def test_version_names_shorten_to_fit_a_narrow_bar_but_stay_readable(qtbot, bar):
    """Names shorten (widest first) only as far as they stay distinct and readable, never to bare letters;
    where even that does not fit, the bar scrolls to every button; tooltips keep the full names."""
    bar.resize(bar.minimumSizeHint().width(), bar.height())
    scroll = bar.version_scroll.horizontalScrollBar()
    qtbot.waitUntil(lambda: bar.version_buttons[-1].geometry().right() <= bar.version_scroll.viewport().width()
                    or scroll.maximum() > 0, timeout=5000)
    texts = [b.text() for b in bar.version_buttons]
    assert [t[0] for t in texts] == ["A", "B", "C"]
    bodies = [t.split(": ", 1)[1] for t in texts]
    assert all(len(b) >= 5 for b in bodies) and len(set(bodies)) == 3
    assert "gtcrn" in bar.version_buttons[1].toolTip()
    bar.resize(1400, bar.height())
    qtbot.waitUntil(lambda: [b.text() for b in bar.version_buttons] == ["A: original", "B: gtcrn", "C: rnnoise"],
                    timeout=5000)


def test_number_keys_and_tab_switch_the_engine_at_the_current_sample(qtbot, bar):
    eng = bar.engine
    with qtbot.waitSignal(bar.playingChanged, timeout=1000):
        qtbot.keyClick(bar, Qt.Key.Key_Space)
    assert eng.playing
    for _ in range(10):
        _pull(eng)
    pos = eng.position
    with qtbot.waitSignal(bar.versionSelected, timeout=1000) as sig:
        qtbot.keyClick(bar, Qt.Key.Key_3)
    assert sig.args == [2] and eng.selected_version == 2 and bar.version_buttons[2].isChecked()
    assert eng.position == pos  # switching never moves the position
    _pull(eng)
    assert eng.audible_version == 2 and eng.position == pos + 512
    qtbot.keyClick(bar, Qt.Key.Key_Tab)  # back to the previous one (A)
    assert eng.selected_version == 0
    qtbot.keyClick(bar, Qt.Key.Key_B)
    assert eng.selected_version == 2
    qtbot.keyClick(bar, Qt.Key.Key_9)  # no ninth version: ignored
    assert eng.selected_version == 2
    qtbot.keyClick(bar, Qt.Key.Key_Space)
    assert not eng.playing


def test_playhead_follows_engine_and_seek_loop(qtbot, bar):
    eng = bar.engine
    bar.set_loop(1.0, 1.5)
    assert bar.loop_button.isChecked() and eng.loop == (16000, 24000)
    assert "0:01.000" in bar.loop_label.text()
    bar.seek(1.25)
    assert eng.position == 20000
    bar.play()
    for _ in range(30):
        _pull(eng)
    with qtbot.waitSignal(bar.playheadMoved, timeout=1000) as sig:
        pass
    assert 1.0 <= sig.args[0] < 1.5  # the loop wrapped and the playhead stays inside it
    bar.stop()
    assert eng.position == 16000 and not eng.playing
    qtbot.keyClick(bar, Qt.Key.Key_L)
    assert eng.loop is None and not bar.loop_button.isChecked()


def test_no_output_device_is_reported_and_the_rest_works(qtbot, recording):
    bar = TransportBar(engine=PlaybackEngine(None))
    qtbot.addWidget(bar)
    bar.set_recording(recording)
    bar.show()
    assert bar.device_message.isVisibleTo(bar) and "No output device" in bar.device_message.text()
    assert not bar.play_button.isEnabled()
    with qtbot.waitSignal(bar.errorOccurred, timeout=1000):
        bar.play()
    assert not bar.engine.playing
    bar.select_version(1)
    assert bar.engine.selected_version == 1
    bar.seek(2.0)
    assert bar.engine.position == 32000
    bar.shutdown()


def test_default_engine_lists_devices_or_says_none(qtbot):
    from workbench.core.audio.playback import list_output_devices

    bar = TransportBar()
    qtbot.addWidget(bar)
    devices, reason = list_output_devices()
    if devices:
        assert bar.device_box.count() == len(devices) and bar.device_box.isEnabled()
    else:
        assert reason and not bar.device_box.isEnabled() and "No output device" in bar.device_message.text()
        assert reason in bar.device_message.toolTip()
    bar.shutdown()


def test_blind_ab_flow_hides_then_reveals(qtbot, bar):
    eng = bar.engine
    eng.set_loudness_match(False)
    dialog = bar.open_blind_test()
    qtbot.waitExposed(dialog)
    assert eng.loudness_match  # forced on during the blind test
    assert not any(b.isChecked() for b in bar.version_buttons) and bar.gain_label.text() == "(hidden)"
    dialog.version_checks[2].setChecked(True)  # compare all three
    dialog.trials_spin.setValue(4)
    dialog.start_button.click()
    assert len(dialog.trials) == 4
    heard = []
    for t in dialog.trials:
        assert sorted(t.mapping) == ["X", "Y", "Z"] and sorted(t.mapping.values()) == [0, 1, 2]
        dialog.listen_buttons["Y"].click()
        heard.append(eng.selected_version)
        assert eng.selected_version == t.mapping["Y"]
        # always vote for whichever label hides version 1 (gtcrn)
        label = next(lab for lab, v in t.mapping.items() if v == 1)
        dialog.vote_buttons[label].click()
    assert dialog.stack.currentIndex() == 2
    assert dialog.tally() == {"original": 0, "gtcrn": 4, "rnnoise": 0}
    assert "gtcrn" in dialog.results.toPlainText()
    # kept for saved sessions: the tally and each trial's hidden mapping and vote
    (result,) = bar.blind_results
    assert result["tally"] == {"original": 0, "gtcrn": 4, "rnnoise": 0} and len(result["trials"]) == 4
    assert all(t["preferred"] == "gtcrn" for t in result["trials"])
    dialog.accept()
    qtbot.waitUntil(lambda: bar._blind is None, timeout=1000)
    assert not eng.loudness_match  # restored
    assert bar.version_buttons[eng.selected_version].isChecked()


def test_follows_the_document_model(qtbot, recording):
    from workbench.gui.document import DocumentModel

    doc = DocumentModel()
    bar = TransportBar(engine=FakeDeviceEngine())
    qtbot.addWidget(bar)
    bar.attach_document(doc)
    doc.add_recording(recording)
    assert bar.recording is recording and len(bar.version_buttons) == 3
    # keys switch what is heard and what the panes show
    bar.select_version(2)
    assert doc.version is recording.versions[2]
    doc.set_version(recording.versions[1])
    assert bar.engine.selected_version == 1 and bar.version_buttons[1].isChecked()
    # a new version (e.g. the residual) appears as a new button, the position is kept
    bar.seek(1.5)
    with qtbot.waitSignal(doc.versionsChanged, timeout=1000):
        recording.residual_of(recording.versions[1])
    # prepared on the worker (a new version never costs the window a repaint), then shown
    qtbot.waitUntil(lambda: not bar.is_loading() and len(bar.version_buttons) == 4, timeout=10000)
    assert [b.text()[:2] for b in bar.version_buttons] == ["A:", "B:", "C:", "D:"]
    assert bar.engine.position == 24000 and bar.engine.selected_version == 1
    with qtbot.waitSignal(doc.playheadMoved, timeout=1000) as sig:
        bar.seek(2.0)
    assert sig.args == [2.0] and doc.playhead_s == 2.0
    bar.shutdown()


def test_long_recordings_are_prepared_on_first_play(qtbot, recording, monkeypatch):
    # Shrink the threshold so the 5 s test clip (3 versions) counts as "long".
    import workbench.gui.transport as transport

    monkeypatch.setattr(transport, "DEFER_LOAD_SAMPLES", recording.source.frames)
    bar = TransportBar(engine=FakeDeviceEngine())
    qtbot.addWidget(bar)
    bar.set_recording(recording)
    assert bar.is_deferred() and not bar.engine.tracks           # opening holds no playback buffers
    assert bar.play_button.isEnabled()
    with qtbot.waitSignal(bar.playingChanged, timeout=10000) as blocker:
        bar.play()
    assert blocker.args == [True]
    assert not bar.is_deferred() and len(bar.engine.tracks) == len(recording.versions)
    assert _pull(bar.engine).any()                                 # it really plays the recording
    bar.shutdown()



def _record_load_threads(monkeypatch, engine) -> list:
    """The threads ``engine.load`` runs on, appended as it is called."""
    import threading

    threads = []
    real_load = engine.load
    monkeypatch.setattr(engine, "load", lambda *a, **k: (threads.append(threading.current_thread()),
                                                         real_load(*a, **k))[1])
    return threads


def test_first_preparation_of_a_short_clip_runs_on_the_worker(qtbot, recording, monkeypatch):
    """While the loudness libraries are not imported yet (the app's first preparation, which would import
    them on the GUI thread before the first paint), a short clip is prepared on the worker too; it arrives
    complete and the buttons follow."""
    import threading

    import workbench.gui.transport as transport_module
    monkeypatch.setattr(transport_module, "libraries_loaded", lambda: False)
    engine = FakeDeviceEngine()
    threads = _record_load_threads(monkeypatch, engine)
    bar = TransportBar(engine=engine)
    qtbot.addWidget(bar)
    bar.set_recording(recording)
    assert bar.is_loading()
    qtbot.waitUntil(lambda: not bar.is_loading(), timeout=10000)
    assert len(engine.tracks) == 3 and len(bar.version_buttons) == 3
    assert threads and all(t is not threading.main_thread() for t in threads)
    bar.shutdown()


def test_a_disk_backed_recording_is_prepared_on_the_worker_and_plays(qtbot, recording, monkeypatch):
    """A recording too long for RAM (here: a limit of 0 bytes) is prepared into block caches on the
    transport's worker at the first Play; the feeder thread keeps the blocks coming, A/B switches stay at
    the current sample, and closing the bar stops the feeder."""
    import threading

    import workbench.gui.transport as transport

    monkeypatch.setattr(transport, "DEFER_LOAD_SAMPLES", recording.source.frames)
    engine = FakeDeviceEngine(ram_limit_bytes=0)
    threads = _record_load_threads(monkeypatch, engine)
    bar = TransportBar(engine=engine)
    qtbot.addWidget(bar)
    bar.set_recording(recording)
    with qtbot.waitSignal(bar.playingChanged, timeout=10000):
        bar.play()
    assert engine.disk_backed and threads and threads[0] is not threading.main_thread()
    ram = PlaybackEngine(None, sample_rate=16000)
    ram.load(recording)
    ram.play()
    for j in range(12):
        if j == 6:
            bar.select_version(2)  # what the C button and key 3 do
            ram.select_version(2)
        qtbot.waitUntil(lambda: engine.buffered_s >= 512 / 16000, timeout=10000)
        np.testing.assert_array_equal(_pull(engine), _pull(ram))
    assert engine.underruns == 0 and engine.callback_errors == 0
    feeder = engine._feeder
    bar.shutdown()
    assert feeder is not None and not feeder.is_alive()
