"""The Live panel in the main window: controls reach the engine, the spectrograms scroll, figures show,
a take becomes a recording with two aligned versions, and stopping leaves no processing thread.

No sound card here: the engine's callback is driven block by block as PortAudio would call it (the device
path itself is proved in tests/core/test_live_devices.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from workbench.core.audio.playback import PlaybackEngine
from workbench.core.workflows.probes import probe_signal
from workbench.core.enhance.registry import load_enhancer
from workbench.core.live.chain import admit
from workbench.core.live.engine import LiveConfig, LiveEngine, drive_callback
from workbench.gui.main_window import MainWindow


@pytest.fixture()
def window(qtbot, settings):
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: None, playback_engine=PlaybackEngine(None))
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    yield w
    w.close()


def feed(engine: LiveEngine, x: np.ndarray, start: int) -> int:
    """Call the engine's callback over ``x`` from stream position ``start`` as PortAudio would, each block
    once the previous one's result was published."""
    B = engine.block
    out = np.zeros((B, 1), np.float32)
    pos = start
    for i in range(0, len(x) - B + 1, B):
        deadline = time.monotonic() + 10
        while not engine.out.holds(pos, B) and time.monotonic() < deadline:
            time.sleep(0.0005)
        engine._callback(x[i:i + B, None], out, B, None, None)
        pos += B
    return pos


def test_live_panel_controls_figures_scopes_and_take(window, qtbot, tmp_path):
    panel = window.live_panel
    window.live_dock.raise_()
    assert panel.model_box.count() >= 1 and panel.view_box.findData("phase") >= 0
    adm = admit(load_enhancer("wiener"), 48000, 480, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=48000, block=480), adm)
    engine._prepare()
    engine.running = True
    panel.attach_engine(engine, adm)
    panel.takes_folder = tmp_path / "takes"
    x = probe_signal(48000, 3.0)
    pos = feed(engine, x[:48000], 0)
    panel.tick()
    assert "pipeline" in panel.latency_label.text() and "algorithmic" in panel.latency_label.text()
    img = panel.images[1].image
    assert img is not None and img.shape == (300, 513) and np.ptp(img) > 10  # the output scrolled in
    # bypass and strength reach the engine
    panel.bypass_box.setChecked(True)
    assert engine.bypass
    panel.bypass_box.setChecked(False)
    panel.strength_slider.setValue(60)
    assert engine.strength == pytest.approx(0.6) and panel.strength_label.text() == "60%"
    panel.view_box.setCurrentIndex(panel.view_box.findData("phase"))
    panel.tick()
    assert panel.images[0].image.min() >= -np.pi - 1e-6 and panel.images[0].image.max() <= np.pi + 1e-6
    # a take: record, speak, stop; it arrives once its tail was heard
    panel.record_button.setChecked(True)
    pos = feed(engine, x[48000:48000 + 40 * 480], pos)
    panel.record_button.setChecked(False)
    feed(engine, x[48000 + 40 * 480:48000 + 60 * 480], pos)
    qtbot.waitUntil(lambda: not panel._awaiting_take, timeout=5000)
    rec = window.document.recording
    assert rec is not None and rec.path.parent == tmp_path / "takes"
    names = [v.name for v in rec.versions]
    assert names == ["original", "heard live (wiener)"]
    mic = rec.versions[0].source.read(0, rec.source.frames)[:, 0]
    heard = rec.versions[1].source.read(0, rec.source.frames)[:, 0]
    assert len(mic) == len(heard) >= 30 * 480
    assert rec.versions[1].provenance.model_settings["pipeline_samples"] == engine.pipeline
    panel.stop()
    assert not engine.thread_alive and panel.engine is None and not panel.start_button.isChecked()


def test_recording_played_as_if_live_becomes_a_version(window, qtbot, tmp_path):
    import soundfile as sf

    x = probe_signal(16000, 1.0)
    path = tmp_path / "speech.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    rec = window.document.open(path)
    panel = window.live_panel
    adm = admit(load_enhancer("wiener"), 48000, 480, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=48000, block=480), adm)
    from workbench.core.live.take import file_input
    engine.prepare_file(file_input(rec, 48000))
    engine.running = True
    panel._file_rec, panel._file_channel = rec, 0
    panel.attach_engine(engine, adm)
    assert not panel.record_button.isEnabled()  # a file run is one take already
    out = np.zeros((480, 1), np.float32)
    pos = 0
    while not engine.finished.is_set():
        deadline = time.monotonic() + 10
        while not engine.out.holds(pos, 480) and time.monotonic() < deadline:
            time.sleep(0.0005)
        engine._callback(None, out, 480, None, None)
        pos += 480
    qtbot.waitUntil(lambda: [v.name for v in rec.versions][-1:] == ["wiener (live)"], timeout=10000)
    live = rec.versions[-1]
    assert live.source.frames == rec.source.frames and live.source.sample_rate == 16000
    assert live.provenance.extra == {"live": "file played as if live"}
    assert panel.engine is None and not engine.thread_alive


def test_start_on_a_device_that_cannot_open_says_why_and_resets(window, qtbot):
    panel = window.live_panel
    panel.output_box.addItem("a device index PortAudio does not have", 9999)
    panel.output_box.setCurrentIndex(panel.output_box.count() - 1)
    panel.model_box.setCurrentIndex(panel.model_box.findData(None))  # pass-through: no model to check
    with qtbot.waitSignal(panel.failed, timeout=10000) as failed:
        panel.start_button.click()
    assert "cannot open the audio devices" in failed.args[0] or "PortAudio" in failed.args[0]
    assert "\n" not in failed.args[0]
    assert panel.engine is None and not panel.start_button.isChecked() and panel.start_button.text() == "Start"


def test_a_saved_or_typed_chain_goes_live(qtbot, settings):
    """A chain saved in the Edit panel is listed in the Live panel; a typed one is taken as typed; either
    is admitted step by step and runs."""
    import json

    from workbench.gui.edit_panel import SETTINGS_CHAINS

    settings.setValue(SETTINGS_CHAINS, json.dumps({"gentle": "wiener+logmmse"}))
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: None, playback_engine=PlaybackEngine(None))
    qtbot.addWidget(w)
    panel = w.live_panel
    panel.refresh_models()
    i = panel.model_box.findData("wiener+logmmse")
    assert i >= 0 and panel.model_box.itemText(i) == "gentle (chain)"
    panel.model_box.setCurrentIndex(i)
    assert panel.model_spec() == "wiener+logmmse"
    panel.model_box.setEditText("logmmse+wiener")
    assert panel.model_spec() == "logmmse+wiener"
    got = []
    panel._admit_later(panel.model_spec(), got.append)
    qtbot.waitUntil(lambda: bool(got), timeout=30000)
    adm = got[0]
    assert adm is not None and adm.enhancer.info.id == "logmmse+wiener"
    engine = LiveEngine(LiveConfig(rate=adm.enhancer.steps[0].info.sample_rate, block=480), adm)
    y = drive_callback(engine, probe_signal(engine.rate, 0.5))
    assert engine.dropped == 0 and np.max(np.abs(y)) > 0.01
    w.close()
