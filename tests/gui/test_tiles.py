"""Level-of-detail tiles: decimated frames equal the core STFT, envelopes, cache bounds, cancellation."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core.audio.audio_io import ArraySource
from workbench.core.views.stft import StftConfig, stft
from workbench.core.views.tiles import (TILE_COLUMNS, TileCache, TileKey, compute_pair_tile, compute_tile, frames_at,
                                 level_for, tiles_in_range, waveform_envelope)


def run(gen):
    result = None
    for item in gen:
        if item is not None:
            result = item
    return result


@pytest.fixture(scope="module")
def signal():
    rng = np.random.default_rng(7)
    sr = 16000
    t = np.arange(sr * 30) / sr
    x = (0.3 * np.sin(2 * np.pi * 700 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return x, sr


@pytest.mark.parametrize("step", [1, 3, 16, 200])
def test_sampled_frames_equal_core_stft(signal, step):
    """Contiguous, span-read and per-frame-read paths all give the core's frames."""
    x, sr = signal
    cfg = StftConfig(n_fft=512, hop=128, window="hann")
    full = stft(x, cfg)
    frames = np.arange(5, full.shape[0], step)[:40]
    got = run(frames_at(ArraySource(x, sr), 0, frames, cfg))
    np.testing.assert_allclose(got, full[frames], atol=1e-4)


def test_compute_tile_with_previous_frames(signal):
    x, sr = signal
    cfg = StftConfig(n_fft=1024, hop=256)
    full = stft(x, cfg)
    for level in (0, 2):
        key = TileKey(1, 0, cfg, level, 1, True)
        tile = run(compute_tile(ArraySource(x, sr), key, full.shape[0]))
        assert tile.frames[0] == TILE_COLUMNS << level
        np.testing.assert_allclose(tile.spec, full[tile.frames], atol=1e-4)
        np.testing.assert_allclose(tile.previous, full[tile.frames - 1], atol=1e-4)
    # The last tile is clipped to the recording.
    last = tiles_in_range(0, full.shape[0], 0, full.shape[0])[-1]
    tile = run(compute_tile(ArraySource(x, sr), TileKey(1, 0, cfg, 0, last, False), full.shape[0]))
    assert tile.frames[-1] == full.shape[0] - 1


def test_cancelled_tile_stops_early(signal):
    x, sr = signal
    cfg = StftConfig(n_fft=512, hop=128)
    total = cfg.frame_count(len(x))
    key = TileKey(1, 0, cfg, 6, 0, False)   # far-apart frames: read in chunks with cancellation points
    gen = compute_tile(ArraySource(x, sr), key, total, should_stop=lambda: True)
    assert [item for item in gen if item is not None] == []


def test_level_and_tile_ranges():
    assert level_for(500, 1000) == 0
    assert level_for(4000, 1000) == 2           # 1000 columns at stride 4
    assert level_for(675_000, 1200) == 9        # an hour at 48 kHz, hop 256, 1200 px: stride 512
    cols = 675_000 / (1 << level_for(675_000, 1200))
    assert 1200 <= cols < 2400
    assert list(tiles_in_range(0, 255, 0, 10_000)) == [0]
    assert list(tiles_in_range(250, 600, 0, 10_000)) == [0, 1, 2]
    assert list(tiles_in_range(-50, 1e9, 2, 10_000)) == list(range(0, 10))


def test_waveform_envelope_matches_numpy(signal):
    x, sr = signal
    buckets = 1000
    filled_steps = []
    for filled, mins, maxs in waveform_envelope(ArraySource(x, sr), 0, buckets, block_frames=50_000):
        filled_steps.append(filled)
    assert filled_steps[-1] == buckets and len(filled_steps) > 3   # progressive
    edges = (np.arange(buckets + 1) * len(x)) // buckets
    np.testing.assert_array_equal(mins, [x[a:b].min() for a, b in zip(edges[:-1], edges[1:])])
    np.testing.assert_array_equal(maxs, [x[a:b].max() for a, b in zip(edges[:-1], edges[1:])])


def test_cache_is_bounded_and_lru(signal):
    x, sr = signal
    cfg = StftConfig(n_fft=512, hop=128)
    total = cfg.frame_count(len(x))
    tiles = [run(compute_tile(ArraySource(x, sr), TileKey(1, 0, cfg, 0, i, False), total)) for i in range(4)]
    cache = TileCache(max_bytes=int(tiles[0].nbytes * 2.5))
    cache.put(tiles[0])
    cache.put(tiles[1])
    assert cache.get(tiles[0].key) is tiles[0]   # touch 0: 1 becomes least recently used
    cache.put(tiles[2])
    assert cache.get(tiles[1].key) is None and cache.get(tiles[0].key) is not None
    assert cache.nbytes <= cache.max_bytes and len(cache) == 2


def test_pair_tile_holds_both_versions_and_shares_the_cache(signal):
    """Difference-view tiles carry the partner's frames; each side is the plain tile of its source, taken
    from (or added to) the cache, so switching views never analyses the same audio twice."""
    x, sr = signal
    enhanced = (0.5 * x).astype(np.float32)
    orig_src, enh_src = ArraySource(x[:, None], sr), ArraySource(enhanced[:, None], sr)
    cfg = StftConfig(512, 128)
    total = cfg.frame_count(len(x))
    cache = TileCache()
    plain = run(compute_tile(enh_src, TileKey(2, 0, cfg, 1, 1, False), total))
    cache.put(plain)
    key = TileKey(2, 0, cfg, 1, 1, False, partner_id=1, partner_is_original=True)
    tile = run(compute_pair_tile(enh_src, key, total, orig_src, 0, cache))
    assert tile.key == key and tile.spec is plain.spec          # own side reused from the cache
    full_o = stft(x, cfg)
    np.testing.assert_allclose(tile.partner, full_o[tile.frames], rtol=1e-4, atol=1e-4)
    partner_plain = cache.get(TileKey(1, 0, cfg, 1, 1, False))
    assert partner_plain is not None and partner_plain.spec is tile.partner
    # the difference pane of this pair: the enhanced side is the original at half amplitude, -6.02 dB
    from workbench.core.views.registry import DisplaySettings, pane_arrays
    diff = pane_arrays(tile.spec, None, cfg, sr, DisplaySettings(phase_view="mag_diff", db_range=(-200.0, 0.0)),
                       tile.partner, True)["phase"]
    np.testing.assert_allclose(diff, 20 * np.log10(0.5), atol=1e-3)
    swapped = pane_arrays(tile.spec, None, cfg, sr, DisplaySettings(phase_view="mag_diff", db_range=(-200.0, 0.0)),
                          tile.partner, False)["phase"]
    np.testing.assert_allclose(swapped, -20 * np.log10(0.5), atol=1e-3)
