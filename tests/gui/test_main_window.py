"""The inspection window on real speech: four linked panes, correct values, errors, settings, screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.core.audio.audio_io import load_audio
from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.core.views.stft import (StftConfig, group_delay, imag_part, instantaneous_frequency_deviation,
                                 magnitude_db, phase, real_part, stft)
from workbench.gui.main_window import MainWindow
from workbench.gui.spectrogram import FLOOR_DB, PANES
from workbench.core.views.tiles import TILE_COLUMNS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def window(qtbot, settings):
    errors: list[tuple[str, str]] = []
    w = MainWindow(settings=settings)
    w.reported = errors
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    for box in list(w.error_boxes):
        box.close()
    w.close()


def wait_painted(qtbot, w, timeout=20000):
    qtbot.waitUntil(w.view.is_painted, timeout=timeout)


def x_ranges(w):
    return [tuple(w.view.panes[n].plot.getViewBox().viewRange()[0]) for n in PANES]


def y_ranges(w):
    return [tuple(w.view.panes[n].plot.getViewBox().viewRange()[1]) for n in PANES]


def test_four_panes_show_real_speech_and_stay_linked(qtbot, window, shared_data):
    path = shared_data / "dns3" / "0015_noisy.wav"
    window.open_files([path])
    wait_painted(qtbot, window)
    for name in PANES:
        images = window.view.images(name)
        assert images, f"{name} pane is empty"
        data = np.concatenate([im.image for im in images])
        assert np.isfinite(data).all() and data.std() > 0, name
    # Whole file visible at first: 5 s at 16 kHz, 0-8 kHz.
    t0, t1 = window.view.time_range()
    assert t0 <= 0.01 and t1 >= 4.99
    assert len(set(x_ranges(window))) == 1 and len(set(y_ranges(window))) == 1
    # Zoom in one pane (not the master): all others follow in time and frequency.
    window.view.panes["imag"].plot.getViewBox().setRange(xRange=(1.0, 2.0), yRange=(500, 3000), padding=0)
    xs, ys = x_ranges(window), y_ranges(window)
    assert all(np.allclose(x, (1.0, 2.0)) for x in xs), xs
    assert all(np.allclose(y, (500, 3000)) for y in ys), ys
    assert window.document.view_range == pytest.approx((1.0, 2.0))
    wait_painted(qtbot, window)
    # The overview's region marks the visible span, and dragging it moves every pane.
    assert window.view.region.getRegion() == pytest.approx((1.0, 2.0))
    window.view.region.setRegion((3.0, 3.5))
    assert all(np.allclose(x, (3.0, 3.5)) for x in x_ranges(window))
    # Keyboard: zoom out, pan, fit.
    from PySide6.QtCore import Qt
    qtbot.keyClick(window, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert window.view.time_range() == pytest.approx((2.75, 3.75))
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert window.view.time_range() == pytest.approx((3.0, 4.0))
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert window.view.time_range() == pytest.approx((0.0, 5.0))
    wait_painted(qtbot, window)


def test_images_hold_the_core_representations(qtbot, window, shared_data):
    """Pixels are the core's magnitude/phase/real/imag of the exact STFT frames, at 48 kHz too."""
    path = shared_data / "dfn" / "noisy_snr0.wav"
    window.open_files([path])
    wait_painted(qtbot, window)
    audio, info = load_audio(path)
    cfg = window.view.cfg
    spec = stft(audio[:, 0], cfg)
    c = window.view.display.compression
    expected = {"magnitude": magnitude_db(spec, cfg, FLOOR_DB), "phase": phase(spec),
                "real": real_part(spec, c), "imag": imag_part(spec, c)}
    for name in PANES:
        for item in window.view.images(name):
            frames = item.tile.frames
            np.testing.assert_allclose(item.image, expected[name][frames], atol=2e-3, rtol=1e-3, err_msg=name)
    # y axis reaches Nyquist of the 48 kHz file.
    y0, y1 = window.view.panes["magnitude"].plot.getViewBox().viewRange()[1]
    assert y1 >= 24000 - 48000 / cfg.nfft
    assert "48000 Hz" in window.status_label.text() and "16-bit" in window.status_label.text()


def test_cursor_readout_matches_core(qtbot, window, shared_data):
    path = shared_data / "dns3" / "0016_noisy.wav"
    window.open_files([path])
    wait_painted(qtbot, window)
    audio, _ = load_audio(path)
    cfg, sr = window.view.cfg, 16000
    spec = stft(audio[:, 0], cfg)
    # Drive the crosshair through a scene position, as the mouse does.
    vb = window.view.panes["phase"].plot.getViewBox()
    scene_pos = vb.mapViewToScene(vb.mapSceneToView(vb.sceneBoundingRect().center()))
    target = vb.mapSceneToView(scene_pos)
    with qtbot.waitSignal(window.view.readoutChanged, timeout=2000) as blocker:
        window.view.gestures.on_mouse((scene_pos,))
    r = blocker.args[0]
    t = int(round(target.x() * sr / cfg.hop))
    k = int(round(target.y() * cfg.nfft / sr))
    assert (r["frame"], r["bin"]) == (t, k)
    c = window.view.display.compression
    assert r["magnitude_db"] == pytest.approx(float(magnitude_db(spec, cfg, FLOOR_DB)[t, k]), abs=1e-3)
    assert r["phase_rad"] == pytest.approx(float(phase(spec)[t, k]), abs=1e-4)
    assert r["real"] == pytest.approx(float(real_part(spec, c)[t, k]), rel=1e-4, abs=1e-5)
    assert r["imag"] == pytest.approx(float(imag_part(spec, c)[t, k]), rel=1e-4, abs=1e-5)
    assert r["real_raw"] == pytest.approx(float(spec[t, k].real), rel=1e-4, abs=1e-5)
    assert r["inst_freq_hz"] == pytest.approx(float(instantaneous_frequency_deviation(spec, cfg, sr)[t, k]), abs=1e-2)
    assert r["group_delay_ms"] == pytest.approx(float(group_delay(spec, cfg, sr)[t, k]), abs=1e-3)
    assert f"{r['magnitude_db']:.1f} dB" in window.readout_label.text()
    # A few more points straight through the readout method.
    for time_s, f_hz in ((0.0, 0.0), (2.5, 1000.0), (4.99, 7999.0)):
        r = window.view.readout(time_s, f_hz)
        t, k = r["frame"], r["bin"]
        assert r["time_s"] == pytest.approx(t * cfg.hop / sr)
        assert r["magnitude_db"] == pytest.approx(float(magnitude_db(spec, cfg, FLOOR_DB)[t, k]), abs=1e-3)
        assert r["imag_raw"] == pytest.approx(float(spec[t, k].imag), rel=1e-4, abs=1e-5)


def test_bad_file_shows_error_and_window_stays_usable(qtbot, window, tmp_path, shared_data):
    bad = tmp_path / "not_audio.wav"
    bad.write_bytes(b"this is not a wave file" * 10)
    truncated = tmp_path / "truncated.wav"
    data = (shared_data / "dns3" / "0015_noisy.wav").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    opened = window.open_files([bad, truncated])
    assert opened == []
    # Two bad files: one list with a line each, not two stacked popups.
    assert len(window.error_boxes) == 1
    problems = window.error_boxes[0].problems()
    assert len(problems) == 2
    assert "not_audio.wav" in problems[0] and "truncated.wav" in problems[1] and "truncated" in problems[1]
    assert all(not b.isModal() for b in window.error_boxes)
    # Still usable: dropping a good and a bad file opens the good one and reports the bad one.
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(shared_data / "dns3" / "0015_noisy.wav")), QUrl.fromLocalFile(str(bad))])
    drop = QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    qtbot.waitUntil(lambda: window.document.recording is not None)
    wait_painted(qtbot, window)
    assert window.document.recording.name == "0015_noisy.wav"
    # The list is still open: the next problem joins it instead of raising another popup.
    assert len(window.error_boxes) == 1 and len(window.error_boxes[0].problems()) == 2
    assert "not_audio.wav" in window.error_boxes[0].text()


def test_versions_from_worker_thread_reach_selector_and_panes(qtbot, window, shared_data):
    path = shared_data / "dns3" / "0072_noisy.wav"
    window.open_files([path])
    wait_painted(qtbot, window)
    rec = window.document.recording
    enhanced, _ = sf.read(shared_data / "models" / "gtcrn" / "reference" / "0072_noisy.gtcrn_dns3.wav",
                          dtype="float32", always_2d=True)
    info = EnhancerInfo(id="gtcrn-authors", name="GTCRN (authors' output)", description="published output",
                        sample_rate=16000, causal=True, latency_samples=0)
    with qtbot.waitSignal(window.document.versionsChanged, timeout=3000):
        th = threading.Thread(target=rec.add_enhanced, args=(enhanced[: rec.source.frames], 16000, info))
        th.start()
        th.join()
    assert [window.version_box.itemText(i) for i in range(window.version_box.count())] == [
        "original", "gtcrn-authors", "residual (gtcrn-authors)"]
    window.version_box.setCurrentIndex(1)
    assert window.document.version.name == "gtcrn-authors"
    wait_painted(qtbot, window)
    img = window.view.images("magnitude")[0]
    cfg = window.view.cfg
    expected = magnitude_db(stft(enhanced[: rec.source.frames, 0], cfg), cfg, FLOOR_DB)[img.tile.frames]
    np.testing.assert_allclose(img.image, expected, atol=2e-3)
    residual = rec.residual_of(window.document.version)
    qtbot.waitUntil(lambda: window.version_box.count() == 3)
    window.show_version(residual)
    wait_painted(qtbot, window)
    assert "residual" in window.status_label.text()
    tree_versions = [window.file_tree.topLevelItem(0).child(i).text(0) for i in range(3)]
    assert tree_versions == ["original", "gtcrn-authors", "residual (gtcrn-authors)"]


def test_display_options_redraw(qtbot, window, shared_data):
    window.open_files([shared_data / "dfn" / "noisy_snr0.wav"])
    wait_painted(qtbot, window)
    # dB range: levels change at once, no recomputation needed.
    window.db_lo.setValue(-80)
    assert window.view.levels("magnitude") == (-80, 0)
    assert all(im.levels[0] == -80 for im in window.view.images("magnitude"))
    # Compression: real pane re-derived immediately.
    before = window.view.images("real")[0].image.copy()
    window.comp_box.setValue(1.0)
    after = window.view.images("real")[0].image
    np.testing.assert_allclose(after, np.sign(before) * np.abs(before) ** (1 / 0.3), rtol=1e-3, atol=1e-3)
    # Derived phase views, layouts and scales all paint.
    for box, value in ((window.phase_box, "inst_freq"), (window.phase_box, "group_delay"),
                       (window.layout_box, "row"), (window.scale_box, "mel"), (window.scale_box, "log")):
        box.setCurrentIndex(box.findData(value))
        wait_painted(qtbot, window)
    assert window.view.display.layout == "row"
    gd = np.concatenate([im.image for im in window.view.images("phase")])
    assert np.isnan(gd).any() and np.isfinite(gd).any()  # quiet bins blanked, others shown
    assert len(set(x_ranges(window))) == 1


def test_stft_settings_recompute(qtbot, window, shared_data):
    window.open_files([shared_data / "dns3" / "0015_noisy.wav"])
    wait_painted(qtbot, window)
    window.nfft_box.setCurrentIndex(window.nfft_box.findData(512))
    window.hop_box.setCurrentIndex(window.hop_box.findData(128))
    window.window_box.setCurrentIndex(window.window_box.findData("hamming"))
    wait_painted(qtbot, window)
    cfg = window.view.cfg
    assert cfg == StftConfig(n_fft=512, hop=128, window="hamming")
    img = window.view.images("magnitude")[0]
    assert img.image.shape[1] == 257


def test_settings_and_recent_files_persist(qtbot, settings, shared_data, monkeypatch):
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QScreen
    # A screen larger than the saved window (the offscreen one is 800x800; a saved size that does not
    # fit the screen is shrunk to it, see test_window_seams).
    monkeypatch.setattr(QScreen, "availableGeometry", lambda self: QRect(0, 0, 2560, 1400))
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    path = shared_data / "pesq" / "speech.wav"
    w.open_files([path])
    w.layout_box.setCurrentIndex(w.layout_box.findData("row"))
    w.cmap_box.setCurrentIndex(w.cmap_box.findData("magma"))
    w.nfft_box.setCurrentIndex(w.nfft_box.findData(2048))
    w.hop_box.setCurrentIndex(w.hop_box.findData(512))
    w.db_lo.setValue(-90)
    w.resize(1234, 876)
    w.close()
    w2 = MainWindow(settings=settings)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.view.display.layout == "row" and w2.view.display.colormap == "magma"
    assert w2.view.display.db_range == (-90, 0)
    assert (w2.view.cfg.n_fft, w2.view.cfg.hop) == (2048, 512)
    assert w2.recent_files()[0] == str(path.resolve())
    assert w2.recent_menu.actions()[0].text() == str(path.resolve())
    assert (w2.width(), w2.height()) == (1234, 876)
    w2.close()


def test_multichannel_selector_and_panels(qtbot, window, tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 3000 * t)], axis=1).astype(np.float32) * 0.5
    path = tmp_path / "two_tones.wav"
    sf.write(path, stereo, sr, subtype="PCM_24")
    window.open_files([path])
    wait_painted(qtbot, window)
    assert window.channel_box.count() == 2 and window.channel_box.isEnabled()
    r = window.view.readout(0.5, 3000)
    assert r["magnitude_db"] < -60   # channel 1 holds 440 Hz only
    window.channel_box.setCurrentIndex(1)
    wait_painted(qtbot, window)
    r = window.view.readout(0.5, 3000)
    assert r["magnitude_db"] > -12   # 0.5 amplitude sine reads about -6 dBFS
    assert "24-bit" in window.status_label.text() and "2 ch" in window.status_label.text()
    from PySide6.QtWidgets import QLabel
    dock = window.add_panel("Metrics", QLabel("metrics"))
    assert dock.widget().text() == "metrics"
    assert "Metrics" in [a.text() for a in window.panels_menu.actions()]
    window.add_panel("Transport", QLabel("transport"), "bottom-toolbar")
    assert window.bottom_toolbar.isVisible()


def test_long_file_renders_at_screen_resolution(qtbot, window, tmp_path):
    """A 20-minute file: the fit view computes about one column per pixel, not every frame."""
    sr = 8000
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(3)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as fh:
        for _ in range(20):
            fh.write((rng.standard_normal(60 * sr) * 0.05).astype(np.float32))
    window.open_files([path])
    wait_painted(qtbot, window)
    view = window.view
    total = view.total_frames
    columns = sum(im.image.shape[0] for im in view.images("magnitude"))
    pixels = view.view_range.pixels()
    assert columns < total / 8
    assert pixels <= columns <= 2 * pixels + 2 * TILE_COLUMNS
    assert view.cache.nbytes < 64 << 20
    # Zooming in switches to full resolution for the visible frames only.
    view.set_time_range(600.0, 602.0)
    wait_painted(qtbot, window)
    frames = np.concatenate([im.tile.frames for im in view.images("magnitude")])
    assert np.all(np.diff(frames) == 1)
    assert frames[0] <= 600 * sr / view.cfg.hop <= frames[-1]


def test_screenshot_command(tmp_path, shared_data):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), str(shared_data / "dns3" / "0015_noisy.wav"),
                           "--screenshot", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert img.width() >= 1200 and img.height() >= 800
    # Not blank: the spectrogram area holds many distinct colours.
    colours = {img.pixel(x, y) for x in range(300, 1200, 7) for y in range(120, 700, 7)}
    assert len(colours) > 200


def test_screenshot_of_bad_file_fails_clearly(tmp_path):
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), str(bad), "--screenshot", str(tmp_path / "x.png")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "empty.wav" in proc.stderr and "empty" in proc.stderr
