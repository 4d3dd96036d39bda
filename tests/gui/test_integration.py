"""End-to-end user stories in the main window (pytest-qt, offscreen): open a real noisy clip, enhance it with
the model panel, inspect the result (versions, residual, difference view), listen (transport, seeking by
click, loop by Shift + drag), measure against the auto-paired clean reference, export, close cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent
from PySide6.QtWidgets import QApplication

from workbench.core.measure.scoring import score_signal
from workbench.core.views.comparison import difference_representation
from workbench.core.audio.playback import PlaybackEngine
from workbench.core.views.stft import full_scale_gain, magnitude_db, stft
from workbench.gui.main_window import MainWindow
from workbench.gui.metrics_panel import format_value
from workbench.gui.spectrogram import FLOOR_DB, PANES

REPO = Path(__file__).resolve().parents[2]
MODEL = "spectral-subtraction"


@pytest.fixture()
def window(qtbot, settings):
    errors: list[tuple[str, str]] = []
    # No output device on purpose: the transport must say so while everything else works.
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: errors.append((title, msg)),
                   playback_engine=PlaybackEngine(None))
    w.reported = errors
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    yield w
    w.close()


def wait_painted(qtbot, w, timeout=20000):
    qtbot.waitUntil(w.view.is_painted, timeout=timeout)


def enhance(qtbot, w, model=MODEL):
    panel = w.model_panel
    panel.select(model)
    with qtbot.waitSignal(panel.runFinished, timeout=60000) as finished:
        with qtbot.waitSignal(panel.versionReady, timeout=60000) as ready:
            assert panel.start()
    assert finished.args == ["done"], panel.last_error
    return ready.args


def _viewport_point(w, vb, t_s, y):
    scene = vb.mapViewToScene(QPointF(t_s, y))
    view = vb.scene().views()[0]
    return view, view.mapFromScene(scene)


def _mouse(widget, kind, pos: QPoint, buttons, modifiers=Qt.KeyboardModifier.NoModifier,
           button=Qt.MouseButton.LeftButton):
    local = QPointF(pos)
    ev = QMouseEvent(kind, local, QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def shift_drag(qtbot, view, a: QPoint, b: QPoint):
    """Press at ``a``, move in steps to ``b`` and release, with Shift held throughout."""
    vp = view.viewport()
    shift = Qt.KeyboardModifier.ShiftModifier
    left = Qt.MouseButton.LeftButton
    _mouse(vp, QEvent.Type.MouseButtonPress, a, left, shift)
    for f in (0.25, 0.5, 0.75, 1.0):
        p = QPoint(int(a.x() + f * (b.x() - a.x())), int(a.y() + f * (b.y() - a.y())))
        qtbot.wait(25)  # pyqtgraph rate-limits move events
        _mouse(vp, QEvent.Type.MouseMove, p, left, shift, Qt.MouseButton.NoButton)
    qtbot.wait(25)
    _mouse(vp, QEvent.Type.MouseButtonRelease, b, Qt.MouseButton.NoButton, shift)


def test_enhance_inspect_listen_measure_export(qtbot, window, shared_data, tmp_path):
    noisy = shared_data / "dns3" / "0015_noisy.wav"
    window.open_files([noisy])
    wait_painted(qtbot, window)
    rec = window.document.recording

    # --- run a model from the model panel: a new version, shown in the panes and listed everywhere
    got_rec, version = enhance(qtbot, window)
    assert got_rec is rec and version in rec.versions and version.kind == "enhanced"
    assert window.document.version is version
    labels = [window.version_box.itemText(i) for i in range(window.version_box.count())]
    assert labels == ["original", MODEL, f"residual ({MODEL})"]
    assert window.version_box.currentText() == MODEL
    wait_painted(qtbot, window)
    cfg = window.view.cfg
    enhanced = version.source.read_all()[:, 0]
    img = window.view.images("magnitude")[0]
    expected = magnitude_db(stft(enhanced, cfg), cfg, FLOOR_DB)[img.tile.frames]
    np.testing.assert_allclose(img.image, expected, atol=2e-3)
    original = rec.source.read_all()[:, 0]
    assert not np.allclose(enhanced, original, atol=1e-3), "the model changed nothing"

    # --- the transport got both versions and follows the shown one; no device -> a message
    transport, engine = window.transport, window.transport.engine
    # a new version is prepared on the transport's worker: the engine holds it a moment before the GUI
    # thread has taken the result (buttons, selection), so wait for the load to be finished, not only held
    qtbot.waitUntil(lambda: not transport.is_loading() and len(engine.tracks) == 2, timeout=5000)
    assert [b.text() for b in transport.version_buttons] == ["A: original", f"B: {MODEL}"]
    assert engine.selected_version == 1
    assert transport.device_message.isVisibleTo(transport) and "No output device" in transport.device_message.text()
    assert not transport.play_button.isEnabled()
    # ... and the engine's callback can still be driven by hand: it plays the enhanced samples
    transport.set_loudness_match(False)
    assert engine.tracks[1].plain.gain_db == pytest.approx(0.0)
    engine.seek(0)
    engine.play()
    out = np.zeros((2048, 2), np.float32)
    engine.callback(out, 2048, None, None)
    fade = engine.fade_frames
    np.testing.assert_allclose(out[fade:, 0], enhanced[fade:2048], atol=1e-6)
    qtbot.waitUntil(lambda: window.document.playhead_s == pytest.approx(2048 / 16000), timeout=3000)
    assert window.view.panes["magnitude"].playhead.value() == pytest.approx(2048 / 16000)
    assert window.view.overview_playhead.value() == pytest.approx(2048 / 16000)
    engine.pause()

    # --- a plain click on a pane seeks there
    vb = window.view.panes["real"].plot.getViewBox()
    view, p = _viewport_point(window, vb, 3.0, 2000.0)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=p)
    assert engine.position_s == pytest.approx(3.0, abs=0.03)
    assert window.document.playhead_s == pytest.approx(engine.position_s)
    assert all(window.view.panes[n].playhead.value() == pytest.approx(engine.position_s) for n in PANES)

    # --- Shift + drag on a pane sets the loop; the region is shaded in every pane and the overview
    vb = window.view.panes["magnitude"].plot.getViewBox()
    view, a = _viewport_point(window, vb, 1.0, 3000.0)
    _, b = _viewport_point(window, vb, 2.5, 1000.0)
    t_before = window.view.time_range()
    with qtbot.waitSignal(transport.loopChanged, timeout=3000) as looped:
        shift_drag(qtbot, view, a, b)
    start, stop = looped.args[0]
    assert (start, stop) == (pytest.approx(1.0, abs=0.03), pytest.approx(2.5, abs=0.03))
    assert engine.loop == (round(start * 16000), round(stop * 16000)) and transport.loop_button.isChecked()
    assert window.view.time_range() == pytest.approx(t_before), "a Shift-drag must not pan"
    for region in [window.view.panes[n].loop for n in PANES] + [window.view.overview_loop]:
        assert region.isVisible() and region.getRegion() == pytest.approx((start, stop))
    # ... also on the waveform overview
    ovb = window.view.overview.getPlotItem().getViewBox()
    view, a = _viewport_point(window, ovb, 3.5, 0.0)
    _, b = _viewport_point(window, ovb, 4.5, 0.0)
    with qtbot.waitSignal(transport.loopChanged, timeout=3000) as looped:
        shift_drag(qtbot, view, a, b)
    assert looped.args[0] == (pytest.approx(3.5, abs=0.03), pytest.approx(4.5, abs=0.03))
    assert window.view.panes["imag"].loop.getRegion() == pytest.approx(looped.args[0])
    transport.clear_loop()
    assert not window.view.panes["phase"].loop.isVisible()

    # --- difference view: enhanced minus original, through the tiles (worker pool)
    window.phase_box.setCurrentIndex(window.phase_box.findData("mag_diff"))
    wait_painted(qtbot, window)
    assert f"{MODEL} − original" in window.view.pane_title("phase")
    img = window.view.images("phase")[0]
    frames = img.tile.frames
    floor_raw = window.view.display.db_range[0] - 20 * np.log10(full_scale_gain(cfg))
    expected = difference_representation("magnitude_difference_db", stft(original, cfg)[frames],
                                         stft(enhanced, cfg)[frames], floor_raw)
    assert np.isfinite(img.image).all() and img.image.std() > 0.5
    np.testing.assert_allclose(img.image, expected, atol=1e-3)
    assert img.image.min() < -3, "spectral subtraction removes energy somewhere"
    r = window.view.show_crosshair(2.0, 1000.0)
    fr, k = r["frame"], r["bin"]
    want = difference_representation("magnitude_difference_db", stft(original, cfg)[fr:fr + 1],
                                     stft(enhanced, cfg)[fr:fr + 1])[0, k]
    assert r["magnitude_difference_db"] == pytest.approx(float(want), abs=1e-3)
    assert f"Δmag {want:+.1f} dB" in window.readout_label.text()
    window.phase_box.setCurrentIndex(window.phase_box.findData("phase_diff"))
    wait_painted(qtbot, window)
    data = window.view.images("phase")[0].image
    shown = data[np.isfinite(data)]
    assert shown.size > 0.1 * data.size and np.abs(shown).max() <= np.pi + 1e-5 and shown.std() > 0

    # --- the residual is created on demand from the selector
    window.select_version_named(f"residual ({MODEL})")
    residual = window.document.version
    assert residual.kind == "residual" and residual in rec.versions
    np.testing.assert_allclose(residual.source.read_all()[:, 0], original - enhanced, atol=1e-6)
    wait_painted(qtbot, window)
    qtbot.waitUntil(lambda: not transport.is_loading() and len(engine.tracks) == 3, timeout=5000)
    assert engine.selected_version == 2
    window.phase_box.setCurrentIndex(window.phase_box.findData("phase"))

    # --- metrics with the auto-paired clean reference, equal to the core's score
    panel = window.metrics_panel
    panel.reference_free_box.setChecked(False)  # intrusive metrics only: keeps the test fast
    with qtbot.waitSignal(panel.resultsReady, timeout=60000):
        window.metrics_dock.raise_()   # measuring starts when the tab becomes visible
    assert panel.reference_path == shared_data / "dns3" / "0015_clean.wav" and panel.reference_auto
    clean, sr = sf.read(panel.reference_path, dtype="float32")
    core = score_signal(enhanced, 16000, clean, sr, reference_free=False)
    results = panel.results()
    assert set(results) == {"original", MODEL}
    for key in ("pesq_wb", "estoi", "si_sdr"):
        # Same code path; the last bit can differ (numpy's SIMD sums depend on the arrays' alignment).
        assert results[MODEL].metrics[key].value == pytest.approx(core.metrics[key].value, rel=1e-12, abs=1e-12)
        assert panel.cell_text(key, MODEL) == format_value(core.metrics[key].value)
    core_noisy = score_signal(original, 16000, clean, sr, reference_free=False)
    assert results["original"].metrics["pesq_wb"].value == core_noisy.metrics["pesq_wb"].value
    best = MODEL if core.metrics["si_sdr"].value > core_noisy.metrics["si_sdr"].value else "original"
    assert panel.best_version("si_sdr") == best and panel.is_highlighted("si_sdr", best)

    # --- export: <stem>.<model>.wav, and the comparison carries the measured metrics
    dlg = window.open_export_dialog(folder=tmp_path)
    assert dlg.stft_config == cfg and dlg.metrics[MODEL]["pesq_wb"] == core.metrics["pesq_wb"].value
    dlg.set_checked([MODEL])
    dlg.subtype_box.setCurrentIndex(dlg.subtype_box.findData("FLOAT"))
    files = dlg.export_audio()
    target = tmp_path / f"0015_noisy.{MODEL}.wav"
    assert [f.path for f in files] == [target]
    written, rate = sf.read(target, dtype="float32")
    assert rate == 16000 and np.array_equal(written, enhanced)
    paths = dlg.export_comparison()
    record = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    row = next(v for v in record["versions"] if v["name"] == MODEL)
    assert row["metrics"]["pesq_wb"] == pytest.approx(core.metrics["pesq_wb"].value)
    dlg.close()
    assert window.reported == []

    # --- closing stops the stream and waits for the workers
    window.close()
    assert engine._stream is None and not window.transport._timer.isActive()
    assert not window.model_panel.is_busy() and window.metrics_pool.activeThreadCount() == 0


def test_probe_results_and_model_info_in_the_panel(qtbot, window):
    panel = window.model_panel
    panel.select(MODEL)
    assert "rate 16000 Hz" in panel.details.toPlainText() and "latency" in panel.details.toPlainText()
    with qtbot.waitSignal(panel.probeReady, timeout=60000) as ready:
        assert panel.start_probe()
    report = ready.args[0]
    assert report.model == MODEL and report.causal and report.rtf > 0
    text = panel.details.toPlainText()
    assert "causality:   causal" in text and f"RTF {report.rtf:.3f}" in text and "parameters:" in text
    assert f"{report.latency_samples} samples" in text and "compute:" in text
    assert report.cold_s is not None and f"cold:        {report.cold_s:.2f} s" in text
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=5000)


def test_closing_while_a_model_and_metrics_run(qtbot, settings, tmp_path):
    """Closing mid-run cancels and waits: no thread outlives the window, no Qt warning, no crash."""
    sr = 16000
    rng = np.random.default_rng(5)
    path = tmp_path / "long_noisy.wav"
    from workbench.core.measure.dnsmos import SECONDS_PER_WINDOW
    from workbench.gui.metrics_panel import AUTO_REFERENCE_FREE_MAX_COST_S

    # long enough that DNSMOS is not started by showing the tab: 1.5x the audio the auto limit covers
    duration_s = int(1.5 * AUTO_REFERENCE_FREE_MAX_COST_S / SECONDS_PER_WINDOW) + 10
    t = np.arange(duration_s * sr) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32), sr)
    w = MainWindow(settings=settings, error_reporter=lambda *a: None, playback_engine=PlaybackEngine(None))
    qtbot.addWidget(w)
    w.show()
    w.open_files([path])
    w.model_panel.select("logmmse")
    with qtbot.waitSignal(w.model_panel.runStarted, timeout=5000):
        w.model_panel.start()
    w.metrics_dock.raise_()
    # DNSMOS of a long file is not started by showing the tab; the Measure button starts it,
    # and it waits while the model runs.
    with qtbot.waitSignal(w.metrics_panel.started, timeout=5000):
        w.metrics_panel.compute_button.click()
    worker = w.model_panel.worker
    w.close()
    assert not worker.is_running() and w.metrics_pool.activeThreadCount() == 0
    assert w.document.recordings == []


def test_drops_route_audio_models_and_batches(qtbot, window, shared_data):
    dns = shared_data / "dns3"

    def drop(paths, modifiers=Qt.KeyboardModifier.NoModifier):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, modifiers)
        window.dropEvent(ev)

    # Ctrl + drop of several files: the batch dialog, not the panes
    drop([dns / "0015_noisy.wav", dns / "0016_noisy.wav"], Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.batch_dialog is not None, timeout=3000)
    assert [p.name for p in window.batch_dialog.files()] == ["0015_noisy.wav", "0016_noisy.wav"]
    assert window.document.recordings == []
    window.batch_dialog.close()
    # a model file: loaded into the model panel
    onnx = shared_data / "models" / "gtcrn" / "gtcrn_simple.onnx"
    with qtbot.waitSignal(window.model_panel.modelLoaded, timeout=30000):
        drop([onnx])
    assert str(onnx) in window.model_panel.model_specs()
    # plain drop: opened as recordings
    drop([dns / "0016_noisy.wav"])
    qtbot.waitUntil(lambda: len(window.document.recordings) == 1, timeout=5000)
    qtbot.waitUntil(lambda: not window.model_panel.is_busy(), timeout=5000)


def test_gui_command_enhances_before_the_screenshot(tmp_path, shared_data):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), str(shared_data / "dns3" / "0015_noisy.wav"),
                           "--enhance", MODEL, "--screenshot", str(out)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    from PySide6.QtGui import QImage
    image = QImage(str(out))
    assert image.width() == 1500 and image.height() == 950
    bad = subprocess.run([sys.executable, str(REPO / "main.py"), str(shared_data / "dns3" / "0015_noisy.wav"),
                          "--enhance", "no-such-model", "--screenshot", str(tmp_path / "bad.png")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no-such-model" in bad.stderr


def test_long_recordings_prepare_playback_off_the_gui_thread(qtbot, window, shared_data, monkeypatch):
    """Above ASYNC_LOAD_SAMPLES the transport prepares playback on its worker: the window keeps running,
    the versions arrive, and the shown version is the audible one."""
    import threading

    import workbench.gui.transport as transport_module
    monkeypatch.setattr(transport_module, "ASYNC_LOAD_SAMPLES", 1000)
    engine = window.transport.engine
    threads = []
    real_load = engine.load
    monkeypatch.setattr(engine, "load", lambda *a, **k: (threads.append(threading.current_thread()),
                                                         real_load(*a, **k))[1])
    window.open_files([shared_data / "dns3" / "0016_noisy.wav"])
    assert window.transport.is_loading()
    qtbot.waitUntil(lambda: not window.transport.is_loading() and len(engine.tracks) == 1, timeout=10000)
    assert "preparing" not in window.transport.position_label.text()
    _, version = enhance(qtbot, window, "wiener")
    qtbot.waitUntil(lambda: not window.transport.is_loading() and len(engine.tracks) == 2, timeout=10000)
    assert engine.selected_version == 1 and window.transport.version_buttons[1].isChecked()
    assert threads and all(t is not threading.main_thread() for t in threads)
