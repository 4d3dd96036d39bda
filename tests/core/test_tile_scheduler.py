"""The tile scheduler, Qt-free: the level and tiles a view needs, the order they are computed in, what is
fetched ahead, cancelled when the view moves, taken from the cache, and shown once finished."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.audio.audio_io import ArraySource
from workbench.core.views.levels import symmetric_levels
from workbench.core.views.overview import EnvelopeCurves, envelope_curves
from workbench.core.views.scheduler import AHEAD_PRIORITY, TileRequest, TileScheduler
from workbench.core.views.stft import StftConfig
from workbench.core.views.tiles import TILE_COLUMNS, Tile, TileCache, level_for


class FakeJob:
    def __init__(self, key, priority):
        self.key, self.priority, self.cancelled = key, priority, False

    def cancel(self):
        self.cancelled = True


@pytest.fixture
def sched():
    jobs = []

    def start(key, priority):
        jobs.append(FakeJob(key, priority))
        return jobs[-1]
    s = TileScheduler(TileCache(64 << 20), start)
    s.jobs = jobs
    return s


CFG = StftConfig(n_fft=1024, hop=256)
SR = 16000
HOP_S = CFG.hop / SR


def request(total_frames=100_000, **kw):
    return TileRequest(1, 0, CFG, SR, total_frames, **kw)


def tile_for(key):
    frames = np.arange(key.first_frame, key.first_frame + TILE_COLUMNS * key.stride, key.stride)
    return Tile(key, frames, np.zeros((len(frames), 4), np.complex64))


def test_the_view_asks_for_the_tiles_covering_it_centre_first_and_one_ahead_each_side(sched):
    span_frames = 4 * TILE_COLUMNS          # four tiles at level 0 for 2000 px
    t0 = 10 * TILE_COLUMNS * HOP_S
    shown = sched.update(request(), t0, t0 + span_frames * HOP_S, 2000, shown=set())
    assert shown == [] and sched.level == level_for(span_frames, 2000) == 0
    visible = {k.index for k in sched.needed}
    assert visible == {10, 11, 12, 13, 14}   # [10, 14] inclusive: the view ends on tile 14's first frame
    started = [(j.key.index, j.priority) for j in sched.jobs]
    ahead = [i for i, p in started if p == AHEAD_PRIORITY]
    assert sorted(ahead) == [9, 15]
    in_view = {i: p for i, p in started if p != AHEAD_PRIORITY}
    # priority: minus the distance (in whole tiles) of the tile's centre from the view's centre, frame 3072
    assert in_view == {11: 0, 12: 0, 10: -1, 13: -1, 14: -2}
    assert sched.pending == {j.key for j in sched.jobs}


def test_a_wide_view_uses_a_decimated_level(sched):
    hour_frames = 3600 * SR // CFG.hop
    sched.update(request(hour_frames), 0.0, 3600.0, 1200, shown=set())
    assert sched.level == level_for(hour_frames, 1200) > 0
    assert all(k.level == sched.level for k in sched.needed)
    # about one column per pixel: the tiles hold between 1200 and 2 x 1200 columns (plus a part tile)
    columns = hour_frames / (1 << sched.level)
    assert len(sched.needed) == int(np.ceil(columns / TILE_COLUMNS))
    assert 1200 <= columns < 2 * 1200


def test_moving_away_cancels_and_finished_tiles_are_cached_and_shown_once(sched):
    sched.update(request(), 0.0, 2 * TILE_COLUMNS * HOP_S, 1000, shown=set())
    first = {j.key: j for j in sched.jobs}
    key0 = min(sched.needed, key=lambda k: k.index)
    far = 200 * TILE_COLUMNS * HOP_S
    sched.update(request(), far, far + 2 * TILE_COLUMNS * HOP_S, 1000, shown=set())
    assert first[key0].cancelled and key0 not in sched.pending
    # a late result of the old view is cached but not shown
    assert sched.finished(tile_for(key0), sched.generation) is False
    assert sched.cache.get(key0) is not None
    # back to the start: the cached tile is handed back to show at once, no job for it
    n_jobs = len(sched.jobs)
    shown = sched.update(request(), 0.0, 2 * TILE_COLUMNS * HOP_S, 1000, shown=set())
    assert key0 in {t.key for t in shown}
    assert key0 not in {j.key for j in sched.jobs[n_jobs:]}
    # a tile already on screen is not handed back again
    assert sched.update(request(), 0.0, 2 * TILE_COLUMNS * HOP_S, 1000, shown={key0}) == []


def test_a_new_generation_hides_older_results_and_reports_one_failure(sched):
    sched.update(request(), 0.0, TILE_COLUMNS * HOP_S, 1000, shown=set())
    key = next(iter(sched.needed))
    old = sched.generation
    sched.cancel_all()
    assert all(j.cancelled for j in sched.jobs) and not sched.pending
    sched.update(request(), 0.0, TILE_COLUMNS * HOP_S, 1000, shown=set())
    assert sched.finished(tile_for(key), old) is False
    assert sched.finished(tile_for(key), sched.generation) is True
    assert sched.complete(shown=set(sched.needed)) and not sched.complete(shown=set())
    assert sched.failed(sched.generation) is True
    assert sched.failed(sched.generation) is False      # reported once per generation
    assert sched.failed(old) is False


def test_symmetric_levels_take_the_995th_percentile_of_finite_magnitudes():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    a[0, :5] = np.nan
    lo, hi = symmetric_levels([a, -a])
    want = np.percentile(np.abs(a[np.isfinite(a)]), 99.5)
    assert lo == -hi and hi == pytest.approx(want, rel=0.05)
    assert symmetric_levels([np.zeros(10)]) == (-1.0, 1.0)
    assert symmetric_levels([]) == (-1.0, 1.0)


@pytest.mark.parametrize("n", [1, 2, 3, 200, 1001, 40000])
def test_symmetric_levels_equal_numpys_percentile_when_nothing_is_sampled(n):
    # The partial sort around the two nearest ranks gives numpy's linearly interpolated percentile.
    a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    lo, hi = symmetric_levels([a], max_values=n)
    assert hi == pytest.approx(float(np.percentile(np.abs(a), 99.5)), rel=1e-6)


def test_overview_curves_fill_progressively_and_end_complete():
    sr = 8000
    x = np.sin(np.linspace(0, 200, 10 * sr)).astype(np.float32) * np.linspace(0, 0.8, 10 * sr, dtype=np.float32)
    steps = list(envelope_curves(ArraySource(x, sr), 0, 100, every_s=0.0))
    assert all(isinstance(c, EnvelopeCurves) for c in steps)
    last = steps[-1]
    assert last.complete and len(last.x) == 100
    edges = np.arange(101) * len(x) // 100
    np.testing.assert_array_equal(last.maxs, [x[a:b].max() for a, b in zip(edges[:-1], edges[1:])])
    assert last.y_limit == pytest.approx(min(1.0, 1.1 * np.abs(x).max()))
    assert EnvelopeCurves.empty().x.size == 0 and not EnvelopeCurves.empty().complete
