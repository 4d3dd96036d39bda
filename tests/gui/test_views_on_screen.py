"""What the panes show, the readout says and the figure exports come from one view registry.

A registered view reaches the pane choices, readout and figure; File > Export figure
equals the panes (views, levels, colour tables, masking, scale, region) down to the colour-mapped
pixels; the readout shows what is drawn ("—" where nothing is); IF/group-delay masking is the CLI's,
adjustable and named in the colour bar; closing the last file leaves a clean empty state.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
import soundfile as sf

import workbench.core.views.figure as figure_module
from workbench.core.views.stft import magnitude_db, stft
from workbench.core.views.registry import FLOOR_DB, ViewSpec, register_view, unregister_view
from workbench.gui.main_window import MainWindow
from workbench.gui.spectrogram import PANES


@pytest.fixture()
def window(qtbot, settings):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    yield w
    for box in list(w.error_boxes):
        box.close()
    w.close()


def wait_painted(qtbot, w, timeout=20000):
    qtbot.waitUntil(w.view.is_painted, timeout=timeout)


def choose(box, data):
    i = box.findData(data)
    assert i >= 0, data
    box.setCurrentIndex(i)


def stitched(view, slot):
    """The pane's shown tile images ``(frames, bins)`` joined in time order, with their frame numbers."""
    items = sorted(view.images(slot), key=lambda im: int(im.tile.frames[0]))
    frames = np.concatenate([im.tile.frames for im in items])
    return frames, np.concatenate([im.image for im in items]), items


def tone_file(path, seconds, sr=16000, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(3)
    x = amp * np.sin(2 * np.pi * 1000 * t) + 1e-4 * rng.standard_normal(t.size)
    sf.write(path, x.astype(np.float32), sr, subtype="FLOAT")
    return path


# ------------------------------------------------------------------------------------------ registry
@pytest.fixture()
def test_view():
    """A view registered for one test: log power, 10 log10(|S|^2) (dB re. 1), automatic levels."""
    spec = register_view(ViewSpec("test_power", "Test power", "dBp", "TP", "sequential",
                                  lambda inp: (10 * np.log10(np.abs(inp.spec) ** 2 + 1e-12)).astype(np.float32),
                                  levels=lambda cfg, sr, floor, top: (-60.0, 40.0), readout_format=".2f"))
    yield spec
    unregister_view("test_power")


def test_a_registered_view_is_a_pane_choice_in_the_readout_and_in_the_figure(qtbot, settings, shared_data,
                                                                              test_view, tmp_path, monkeypatch):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    try:
        assert w.phase_box.findData("test_power") >= 0, "the pane choices come from the registry"
        w.open_files([shared_data / "dns3" / "0015_noisy.wav"])
        wait_painted(qtbot, w)
        choose(w.phase_box, "test_power")
        wait_painted(qtbot, w)
        assert w.view.pane_title("phase").startswith("Test power (dBp)")
        frames, shown, _ = stitched(w.view, "phase")
        audio = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")[0]
        spec = stft(audio, w.view.cfg)
        np.testing.assert_allclose(shown, 10 * np.log10(np.abs(spec[frames]) ** 2 + 1e-12), atol=1e-3)
        r = w.view.show_crosshair(1.0, 1000.0)
        want = 10 * np.log10(np.abs(spec[r["frame"], r["bin"]]) ** 2 + 1e-12)
        assert r["panes"]["phase"]["value"] == pytest.approx(want, abs=1e-3)
        assert f"TP {want:.2f} dBp" in w.readout_label.text()
        drawn = {}
        original = figure_module.draw_views
        monkeypatch.setattr(figure_module, "draw_views",
                            lambda views, path, **kw: drawn.update(views=views, **kw) or original(views, path, **kw))
        dlg = w.open_export_dialog(folder=tmp_path)
        out = dlg.export_figure()
        assert out is not None and out.exists()
        panes = figure_module.figure_panes(drawn["views"], drawn["settings"])
        assert panes[1].view == "test_power" and panes[1].title.startswith("Test power (dBp)")
        dlg.close()
    finally:
        w.close()


# ------------------------------------------------------------------------------------------ export
def test_exported_figure_equals_the_panes(qtbot, window, shared_data, tmp_path, monkeypatch):
    """Group delay, a -100..0 dB range and a zoomed view on screen: the figure has the panes' views,
    levels, colour tables, masking, scale and region, and its colour-mapped images are the panes'."""
    window.open_files([shared_data / "dns3" / "0015_noisy.wav"])
    wait_painted(qtbot, window)
    choose(window.phase_box, "group_delay")
    window.db_lo.setValue(-100)
    window.db_hi.setValue(0)
    window.view.set_visible_region((1.0, 2.2), (0.0, 4000.0))
    wait_painted(qtbot, window)
    view = window.view
    drawn = {}
    original = figure_module.draw_views
    monkeypatch.setattr(figure_module, "draw_views",
                        lambda views, path, **kw: drawn.update(views=views, **kw) or original(views, path, **kw))
    dlg = window.open_export_dialog(folder=tmp_path)
    assert not dlg.whole_file_check.isChecked()
    assert dlg.export_figure() is not None
    fs, views = drawn["settings"], drawn["views"]
    assert [p.view for p in fs.panes] == ["magnitude", "group_delay", "real", "imag"]
    assert fs.panes[0].levels == (-100.0, 0.0)
    for slot, pane in zip(PANES, fs.panes):
        assert pane.levels == pytest.approx(view.levels(slot))
        np.testing.assert_array_equal(pane.colormap, view.lookup_table(slot))
    assert fs.compression == view.display.compression and fs.freq_scale == view.display.freq_scale
    assert fs.mask_floor_dbfs == view.display.mask_floor_dbfs == -60.0
    (t0, t1), (f0, f1) = view.visible_region()
    assert fs.time_range_s == pytest.approx((t0, t1)) and fs.freq_range_hz == pytest.approx((f0, f1))
    assert fs.time_range_s == pytest.approx((1.0, 2.2), abs=0.02)
    # Pixels: the figure's data and colour-mapped images equal the panes' over the same frames and bins.
    panes = figure_module.figure_panes(views, fs)
    cols = np.arange(views.columns) + views.first_frame
    n_bins = panes[0].data.shape[1]
    for slot, pane in zip(PANES, panes):
        frames, shown, items = stitched(view, slot)
        assert set(cols) <= set(frames), slot
        screen = shown[np.searchsorted(frames, cols)][:, views.first_bin:views.first_bin + n_bins]
        fig = pane.data
        if slot == "magnitude":
            screen = np.maximum(screen, fs.floor_db)   # the figure's floor is its colour-range bottom
        np.testing.assert_array_equal(np.isnan(screen), np.isnan(fig), err_msg=slot)
        np.testing.assert_allclose(screen, fig, atol=2e-3, rtol=1e-4, equal_nan=True, err_msg=slot)
        # Colour-mapped as the panes do (their LUT and levels), against the figure's colormap.
        argb = pg.functions.makeARGB(np.ascontiguousarray(screen), lut=view.lookup_table(slot),
                                     levels=view.levels(slot))[0]           # (cols, rows, 4) BGRA
        screen_rgb = argb[..., [2, 1, 0]].astype(int)
        fig_rgb = pane.rgba()[..., :3].astype(int)
        finite = np.isfinite(fig)
        same = np.all(np.abs(screen_rgb - fig_rgb) <= 2, axis=-1)[finite]
        assert same.mean() > 0.999, (slot, same.mean())
    # The whole-file option draws every frame and bin.
    dlg.whole_file_check.setChecked(True)
    (tmp_path / f"{window.document.recording.path.stem}.original.png").unlink()
    assert dlg.export_figure() is not None
    assert drawn["settings"].time_range_s is None and drawn["views"].columns == view.total_frames
    dlg.close()


# ------------------------------------------------------------------------------------------ readout
def test_readout_shows_what_is_drawn(qtbot, window, shared_data):
    window.open_files([shared_data / "dns3" / "0015_noisy.wav"])
    wait_painted(qtbot, window)
    view = window.view
    r = view.show_crosshair(1.3, 900.0)
    text = window.readout_label.text()
    # Real/imaginary: the compressed values the panes draw, not the raw STFT.
    c = view.display.compression
    raw = r["real_raw"]
    assert r["panes"]["real"]["value"] == pytest.approx(np.sign(raw) * abs(raw) ** c, rel=1e-4)
    assert f"re {r['panes']['real']['value']:+.3g}" in text and f"{raw:+.3g}" not in text
    frames, shown, _ = stitched(view, "real")
    assert shown[np.searchsorted(frames, r["frame"]), r["bin"]] == pytest.approx(r["panes"]["real"]["value"],
                                                                                  rel=1e-3)
    assert "dBFS" in text
    # A difference view without a partner draws nothing: "—", never "nan".
    choose(window.phase_box, "mag_diff")
    wait_painted(qtbot, window)
    r = view.show_crosshair(1.3, 900.0)
    assert r["panes"]["phase"]["value"] is None
    text = window.readout_label.text()
    assert "Δmag —" in text and "nan" not in text.lower()
    # A masked group-delay bin reads "—" too; an unmasked one its value in ms.
    choose(window.phase_box, "group_delay")
    wait_painted(qtbot, window)
    mag = None
    for f_hz in np.arange(7900.0, 100.0, -50.0):
        r = view.readout(0.02, f_hz)
        mag = r["magnitude_db"]
        if mag < view.display.mask_floor_dbfs:
            break
    assert mag < view.display.mask_floor_dbfs, "expected a quiet bin"
    assert r["panes"]["phase"]["value"] is None and r["panes"]["phase"]["text"] == "—"
    loud = max(((view.readout(1.3, f)["magnitude_db"], f) for f in np.arange(100, 4000, 100.0)))[1]
    r = view.readout(1.3, loud)
    assert r["panes"]["phase"]["value"] == pytest.approx(r["group_delay_ms"]) and r["panes"]["phase"]["text"].endswith(" ms")


# ------------------------------------------------------------------------------------------ masking
def test_derived_views_use_the_cli_masking_adjustable_and_named_in_the_colour_bar(qtbot, window, tmp_path):
    path = tone_file(tmp_path / "tone.wav", 3.0)
    window.open_files([path])
    wait_painted(qtbot, window)
    view = window.view
    assert view.display.mask_below_db == figure_module.FigureSettings().mask_below_db == 60.0
    for name in ("inst_freq", "group_delay"):
        choose(window.phase_box, name)
        wait_painted(qtbot, window)
        frames, shown, items = stitched(view, "phase")
        mag = stitched(view, "magnitude")[1]
        # Default: bins more than 60 dB under the range top (0 dBFS) are blank, the rest are drawn.
        np.testing.assert_array_equal(np.isnan(shown), mag < -60.0, err_msg=name)
        assert "masked < -60 dBFS" in view.colorbar_title("phase")
        window.mask_box.setValue(100)
        wait_painted(qtbot, window)
        shown = stitched(view, "phase")[1]
        np.testing.assert_array_equal(np.isnan(shown), mag < -100.0, err_msg=name)
        assert "masked < -100 dBFS" in view.colorbar_title("phase")
        window.mask_box.setValue(0)
        wait_painted(qtbot, window)
        assert not np.isnan(stitched(view, "phase")[1]).any()
        assert "no mask" in view.colorbar_title("phase") and window.mask_box.text() == "off"
        window.mask_box.setValue(60)
    # The plain phase pane is not masked and says so by not naming a mask.
    choose(window.phase_box, "phase")
    wait_painted(qtbot, window)
    assert "mask" not in view.colorbar_title("phase")


# ------------------------------------------------------------------------------------------ empty state
def test_closing_the_last_file_leaves_a_clean_empty_state(qtbot, window, tmp_path):
    long_path = tone_file(tmp_path / "long.wav", 40.0)
    short_path = tone_file(tmp_path / "short.wav", 5.0)
    window.open_files([long_path])
    wait_painted(qtbot, window)
    qtbot.waitUntil(lambda: bool(window.transport.engine.tracks), timeout=20000)
    window.view.show_crosshair(27.3, 1000.0)
    assert "t 27.2" in window.readout_label.text()
    window.transport.set_loop(20.0, 30.0)
    assert window.view.loop_region() == (20.0, 30.0)
    window.close_current()
    assert window.document.recording is None
    assert window.readout_label.text() == ""
    assert window.view.loop_region() is None and window.transport.loop_label.text() == "no region"
    assert window.view.time_range() == pytest.approx((0.0, 1.0))
    assert not window.view.crosshair_visible()
    assert "40" not in window.transport.position_label.text()
    assert all(not view_images for view_images in (window.view.images(n) for n in PANES))
    # The next file starts clean: no loop, no readout and axes of its own length.
    window.open_files([short_path])
    wait_painted(qtbot, window)
    assert window.readout_label.text() == ""
    assert window.view.loop_region() is None
    assert window.view.time_range()[1] == pytest.approx(5.0, abs=0.1)
    r = window.view.show_crosshair(4.0, 1000.0)
    assert r["time_s"] <= 5.0 and f"t {r['time_s']:.4f} s" in window.readout_label.text()


def test_a_loop_region_does_not_follow_to_the_next_file(qtbot, window, tmp_path):
    a = tone_file(tmp_path / "a.wav", 20.0)
    b = tone_file(tmp_path / "b.wav", 5.0)
    window.open_files([a])
    wait_painted(qtbot, window)
    qtbot.waitUntil(lambda: bool(window.transport.engine.tracks), timeout=20000)
    window.transport.set_loop(12.0, 16.0)
    window.open_files([b])
    wait_painted(qtbot, window)
    assert window.view.loop_region() is None
    assert window.transport.loop_label.text() == "no region"
