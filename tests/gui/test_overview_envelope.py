"""The overview envelope is prepared on the worker and handed over finished; a version seen before shows
its envelope at once (A/B switching does not recompute it)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.audio.audio_io import ArraySource
from workbench.core.views.overview import EnvelopeCurves
from workbench.gui.spectrogram import SpectrogramView


def test_envelope_curves_are_the_plot_arrays():
    mins = np.array([-0.5, -0.2, 0.0, 0.0], np.float32)
    maxs = np.array([0.4, 0.3, 0.0, 0.0], np.float32)
    part = EnvelopeCurves.from_envelope(2, mins, maxs, frames=400, sample_rate=100)
    np.testing.assert_allclose(part.x, [0.5, 1.5])          # bucket centres: 100 frames = 1 s each
    np.testing.assert_array_equal(part.band_x, [0.5, 0.5, 1.5, 1.5])
    np.testing.assert_array_equal(part.band_y, np.array([-0.5, 0.4, -0.2, 0.3], np.float32))
    assert not part.complete and part.y_limit == 1.0
    full = EnvelopeCurves.from_envelope(4, mins, maxs, frames=400, sample_rate=100)
    assert full.complete and full.y_limit == pytest.approx(0.55)
    mins[0] = -0.9  # the curves own their arrays: the worker's buffers may change afterwards
    assert full.mins[0] == pytest.approx(-0.5)


@pytest.fixture()
def view(qtbot):
    v = SpectrogramView()
    qtbot.addWidget(v)
    v.resize(900, 600)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.shutdown()


def test_a_version_seen_before_shows_its_envelope_at_once(qtbot, view):
    rng = np.random.default_rng(0)
    a = ArraySource(0.5 * rng.standard_normal((48000 * 5, 1)).astype(np.float32), 48000)
    b = ArraySource(0.1 * rng.standard_normal((48000 * 5, 1)).astype(np.float32), 48000)
    with qtbot.waitSignal(view.painted, timeout=20000):
        view.set_source(a, "a")
    x_a, mins_a, maxs_a = view.overview_envelope()
    assert len(x_a) == 4000 and mins_a.min() < -1.5 and maxs_a.max() > 1.5
    with qtbot.waitSignal(view.painted, timeout=20000):
        view.set_source(b, "b", keep_view=True)
    assert view.overview_envelope()[2].max() < 0.7
    view.set_source(a, "a", keep_view=True)
    # No event processed yet: the cached, finished envelope of `a` is already drawn.
    x, mins, maxs = view.overview_envelope()
    np.testing.assert_array_equal(maxs, maxs_a)
    np.testing.assert_array_equal(x, x_a)
    qtbot.waitUntil(view.is_painted, timeout=20000)
