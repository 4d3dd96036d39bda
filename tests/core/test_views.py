"""The view registry (Qt-free): entries, masking, display settings round trip, and the figure drawing
through the same compute functions as the panes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.core.audio.audio_io import ArraySource
from workbench.core.views.figure import FigurePane, FigureSettings, compute_figure_views, figure_panes, phase_views
from workbench.core.views.stft import StftConfig, group_delay, instantaneous_frequency_deviation, magnitude_db, stft
from workbench.core.views.tiles import TileKey, compute_tile, tile_images
from workbench.core.views.registry import (DEFAULT_MASK_BELOW_DB, FLOOR_DB, VIEWS, DisplaySettings, ViewInput, ViewSpec,
                                  compute_view, register_view, second_pane_views, unregister_view, view)


@pytest.fixture(scope="module")
def signal():
    sr = 16000
    t = np.arange(2 * sr) / sr
    rng = np.random.default_rng(1)
    x = (0.3 * np.sin(2 * np.pi * 1000 * t) * (t > 0.5) + 1e-4 * rng.standard_normal(t.size)).astype(np.float32)
    return x, sr


def test_every_entry_is_complete():
    for name in ("magnitude", "phase", "real", "imag", "inst_freq", "group_delay", "mag_diff", "phase_diff"):
        spec = VIEWS[name]
        assert spec.name == name and spec.label and spec.short
        assert spec.colormap_kind in ("sequential", "cyclic", "diverging")
    assert VIEWS["magnitude"].unit == "dBFS" and VIEWS["group_delay"].unit == "ms"
    assert VIEWS["inst_freq"].maskable and VIEWS["group_delay"].maskable and not VIEWS["phase"].maskable
    # The phase lab registers its effective-mask views after the built-in ones.
    assert list(second_pane_views()) == ["phase", "inst_freq", "group_delay", "mag_diff", "phase_diff",
                                         "mask_db", "mask_phase"]
    assert phase_views() == ("phase", "inst_freq", "group_delay")
    with pytest.raises(ValueError, match="already registered"):
        register_view(VIEWS["phase"])
    with pytest.raises(ValueError, match="unknown view"):
        view("chirp")


def test_compute_functions_equal_the_core_representations(signal):
    x, sr = signal
    cfg = StftConfig(512, 128)
    spec = stft(x, cfg)
    frames = np.arange(len(spec))
    prev = np.concatenate([spec[:1], spec[:-1]])
    inp = ViewInput(spec, cfg, sr, previous=prev, frames=frames)
    np.testing.assert_allclose(compute_view("magnitude", inp), magnitude_db(spec, cfg, FLOOR_DB))
    np.testing.assert_allclose(compute_view("inst_freq", inp), instantaneous_frequency_deviation(spec, cfg, sr),
                               atol=1e-3)
    np.testing.assert_allclose(compute_view("group_delay", inp), group_delay(spec, cfg, sr), atol=1e-4)
    # Masking: NaN exactly where the bin's own magnitude is under the threshold, maskable views only.
    masked = compute_view("group_delay", inp, mask_floor_dbfs=-60.0)
    np.testing.assert_array_equal(np.isnan(masked), magnitude_db(spec, cfg, FLOOR_DB) < -60.0)
    assert not np.isnan(compute_view("phase", inp, mask_floor_dbfs=-60.0)).any()
    # Difference views without a partner draw nothing.
    assert np.isnan(compute_view("mag_diff", inp)).all()


def test_display_settings_round_trip_and_masking_threshold():
    d = DisplaySettings(layout="row", phase_view="group_delay", freq_scale="mel", colormap="viridis",
                        db_range=(-90.0, -10.0), compression=0.5, mask_below_db=40.0)
    again = DisplaySettings.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again == d
    assert d.mask_floor_dbfs == -50.0 and DisplaySettings(mask_below_db=0).mask_floor_dbfs is None
    assert DisplaySettings().mask_below_db == DEFAULT_MASK_BELOW_DB
    assert d.mask_caption("group_delay") == "masked < -50 dBFS" and d.mask_caption("phase") == ""
    with pytest.raises(ValueError, match="unknown view"):
        DisplaySettings.from_dict({"phase_view": "chirp"})
    with pytest.raises(ValueError, match="empty"):
        DisplaySettings.from_dict({"db_range": [0, -10]})


def test_display_settings_say_which_tiles_their_panes_need():
    assert not DisplaySettings().needs_previous() and not DisplaySettings().needs_partner()
    assert DisplaySettings(phase_view="inst_freq").needs_previous()
    assert not DisplaySettings(phase_view="inst_freq").needs_partner()
    assert DisplaySettings(phase_view="mag_diff").needs_partner()
    assert not DisplaySettings(phase_view="group_delay").needs_previous()


def test_tiles_and_figure_draw_the_same_masked_group_delay(signal):
    """The pane tiles and the exported figure of the same region hold the same arrays."""
    x, sr = signal
    cfg = StftConfig(512, 128)
    source = ArraySource(x, sr)
    display = DisplaySettings(phase_view="group_delay", db_range=(-100.0, 0.0))
    total = cfg.frame_count(len(x))
    tile = None
    for item in compute_tile(source, TileKey(1, 0, cfg, 0, 0, False), total):
        tile = item if item is not None else tile
    images = tile_images(tile, sr, display)
    settings = FigureSettings(panes=tuple(FigurePane(n) for n in display.pane_views().values()),
                              floor_db=-100.0, mask_below_db=None, mask_floor_dbfs=display.mask_floor_dbfs,
                              time_range_s=(0.4, 0.9), freq_range_hz=(500.0, 3000.0))
    views = compute_figure_views(source, cfg, settings)
    cols = np.arange(views.columns) + views.first_frame
    bins = slice(views.first_bin, views.first_bin + views.views["magnitude"].shape[1])
    for slot, name in display.pane_views().items():
        want = images[slot][cols][:, bins]
        got = views.views[name]
        if name == "magnitude":
            want = np.maximum(want, -100.0)
        np.testing.assert_allclose(got, want, atol=1e-3, equal_nan=True, err_msg=name)
    assert np.isnan(views.views["group_delay"]).any() and np.isfinite(views.views["group_delay"]).any()
    panes = figure_panes(views, settings)
    assert panes[1].colorbar_label == "ms  masked < -60 dBFS"
    assert panes[1].levels == pytest.approx((-512 / 2 / sr * 1000, 512 / 2 / sr * 1000))


def test_a_registered_view_reaches_the_figure(signal):
    x, sr = signal
    register_view(ViewSpec("test_abs", "Absolute value", "", "abs", "sequential",
                           lambda inp: np.abs(inp.spec).astype(np.float32)))
    try:
        assert "test_abs" in phase_views()
        views = compute_figure_views(ArraySource(x, sr), StftConfig(512, 128), None, phase_view="test_abs")
        np.testing.assert_allclose(views.views["test_abs"], np.abs(stft(x, StftConfig(512, 128))), rtol=1e-5)
        assert figure_panes(views)[1].title == "Absolute value"
    finally:
        unregister_view("test_abs")


def test_figure_difference_views_and_mel_rows_follow_the_panes(signal):
    """A figure's Δ magnitude uses the partner as the panes do; a mel figure draws the panes' rows."""
    from workbench.core.views.registry import FreqScale

    x, sr = signal
    cfg = StftConfig(512, 128)
    enhanced = (x * 0.25).astype(np.float32)
    settings = FigureSettings(panes=tuple(FigurePane(n) for n in ("magnitude", "mag_diff", "real", "imag")),
                              floor_db=-100.0, freq_scale="mel")
    views = compute_figure_views(ArraySource(enhanced, sr), cfg, settings,
                                 partner=(ArraySource(x, sr), 0, True))
    O, E = stft(x, cfg), stft(enhanced, cfg)
    want = compute_view("mag_diff", ViewInput(E, cfg, sr, partner=O, floor_dbfs=-100.0))
    np.testing.assert_allclose(views.views["mag_diff"], want, atol=1e-3)
    loud = magnitude_db(O, cfg, FLOOR_DB) > -60
    np.testing.assert_allclose(views.views["mag_diff"][loud], 20 * np.log10(0.25), atol=0.05)
    idx, _, _ = FreqScale("mel", sr, cfg.nfft).rows(cfg.bins)
    panes = figure_panes(views, settings)
    np.testing.assert_array_equal(panes[0].data, views.views["magnitude"][:, idx])
