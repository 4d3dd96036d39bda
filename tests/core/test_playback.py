"""The playback mixer, driven by calling its PortAudio callback directly, plus one real PortAudio stream
on ALSA's null device (in a subprocess, so the ALSA configuration is in place before PortAudio starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from workbench.core.audio.audio_io import ArraySource, resample
from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.core.audio.playback import STRENGTH_SLEW_S, PlaybackEngine
from workbench.core.audio.playback_cache import BlockCacheConfig
from workbench.core.document.recording import Recording

RATE = 8000
#: The two ways the engine holds versions: every version in RAM, or disk-backed block caches (here with
#: 256-frame blocks and a 4-block window, so reads cross block edges and blocks are evicted and read
#: again within these short signals). Both must give the same output, sample for sample.
PATHS = ["ram", "blocks"]
SMALL_BLOCKS = BlockCacheConfig(block_frames=256, behind_blocks=1, ahead_blocks=3, seek_blocks=1)


def _path_kw(path: str) -> dict:
    """Engine arguments of a playback path; the block path's feeder is driven by ``_pull``."""
    if path == "blocks":
        return {"ram_limit_bytes": 0, "block_cache": SMALL_BLOCKS, "feeder_thread": False}
    return {}


def _info(model_id: str, sr: int) -> EnhancerInfo:
    return EnhancerInfo(model_id, model_id, "test", sr, True, 0)


def _ramp_recording(n: int = 4000, rate: int = RATE) -> Recording:
    """Three versions whose samples encode (version, frame): v_k[i] = k + i * 1e-5 (distinct, exact in
    float32 for the sizes used), so any output sample tells which version and frame produced it."""
    i = np.arange(n, dtype=np.float64)
    rec = Recording.from_array((0.1 + i * 1e-5).astype(np.float32), rate, "ramp.wav")
    for k in (1, 2):
        rec.add_enhanced((0.1 * (k + 1) + i * 1e-5).astype(np.float32)[:, None], rate, _info(f"m{k}", rate))
    return rec


def _engine(rec: Recording, path: str = "ram", **kw) -> PlaybackEngine:
    eng = PlaybackEngine(None, sample_rate=kw.pop("sample_rate", RATE), **_path_kw(path), **kw)
    eng.load(rec)
    assert eng.disk_backed == (path == "blocks")
    eng.set_loudness_match(False)  # unity gains: the output equals the buffers exactly
    return eng


def _fade_in(eng: PlaybackEngine) -> np.ndarray:
    """The raised-cosine ramp the engine must use: w[i] = 0.5 - 0.5 cos(pi (i + 0.5) / L)."""
    i = np.arange(eng.fade_frames)
    return (0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / eng.fade_frames)).astype(np.float32)


def _pull(eng: PlaybackEngine, frames: int, channels: int = 2) -> np.ndarray:
    out = np.full((frames, channels), np.nan, np.float32)
    eng.pump()  # the feeder's turn (block path; nothing to do in RAM)
    eng.callback(out, frames, None, None)
    assert eng.callback_errors == 0 and eng.underruns == 0
    return out


@pytest.mark.parametrize("path", PATHS)
def test_plays_buffer_exactly_on_every_channel(path):
    rec = _ramp_recording()
    eng = _engine(rec, path)
    eng.play()
    got = np.concatenate([_pull(eng, 256) for _ in range(4)])
    want = rec.versions[0].source.read_all()[:1024, 0]
    L = eng.fade_frames
    # starting from silence fades in over L frames (no click), then the buffer exactly
    np.testing.assert_allclose(got[:L, 0], want[:L] * _fade_in(eng), rtol=1e-6)
    np.testing.assert_array_equal(got[L:, 0], want[L:])
    np.testing.assert_array_equal(got[:, 1], got[:, 0])
    assert eng.position == 1024


@pytest.mark.parametrize("path", PATHS)
def test_switch_is_sample_exact_with_raised_cosine_crossfade(path):
    rec = _ramp_recording()
    eng = _engine(rec, path, crossfade_ms=5.0)
    L = eng.fade_frames
    assert L == 40  # 5 ms at 8 kHz
    a = rec.versions[0].source.read_all()[:, 0]
    b = rec.versions[2].source.read_all()[:, 0]
    eng.play()
    _pull(eng, 300)
    eng.select_version(2)
    assert eng.position == 300  # the switch does not move the position
    out = np.concatenate([_pull(eng, 16) for _ in range(10)])[:, 0]  # fade spans several small blocks
    seg = slice(300, 460)
    # Solve out = (1-w) a + w b for w: the weights actually used, sample by sample.
    w = (out[:L] - a[300:300 + L]) / (b[300:300 + L] - a[300:300 + L])
    i = np.arange(L)
    np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / L), atol=2e-4)
    # weights of the two versions sum to one (equal gain) and rise monotonically
    assert np.all(np.diff(w) > 0)
    # after the fade the output is exactly version 2 at the same frames: no drift, no lost samples
    np.testing.assert_array_equal(out[L:], b[300 + L:460])
    # no step at the switch bigger than the signals' own step plus the ramp of the fade
    d = np.abs(np.diff(np.concatenate([[a[299]], out])))
    max_own = max(np.abs(np.diff(a[seg])).max(), np.abs(np.diff(b[seg])).max())
    assert d.max() <= max_own + np.abs(b[300] - a[300]) * np.pi / (2 * L) + 1e-6
    assert eng.audible_version == 2


@pytest.mark.parametrize("path", PATHS)
def test_switch_during_playback_of_real_speech_has_no_click(shared_data, path):
    import soundfile as sf

    noisy, sr = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")
    enh, _ = sf.read(shared_data / "dns3" / "0015_GTCRN.wav", dtype="float32")
    n = min(len(noisy), len(enh))
    rec = Recording.from_array(noisy[:n], sr, "0015_noisy.wav")
    rec.add_enhanced(enh[:n, None], sr, _info("gtcrn", sr))
    eng = _engine(rec, path, sample_rate=sr)
    eng.play()
    blocks = []
    for j in range(40):
        if j in (10, 20, 30):
            eng.select_version(j // 10 % 2)
        blocks.append(_pull(eng, 512)[:, 0])
    out = np.concatenate(blocks)
    # Every sample (after the start fade-in) is a convex mix of the two versions at the same frame:
    # the position never drifts.
    L = eng.fade_frames
    lo = np.minimum(noisy[:n], enh[:n])[L: len(out)]
    hi = np.maximum(noisy[:n], enh[:n])[L: len(out)]
    assert np.all(out[L:] >= lo - 1e-6) and np.all(out[L:] <= hi + 1e-6)
    # The largest sample-to-sample step around each switch stays within the signals' own steps.
    own = max(np.abs(np.diff(noisy[:len(out)])).max(), np.abs(np.diff(enh[:len(out)])).max())
    for j in (10, 20, 30):
        k = j * 512
        assert np.abs(np.diff(out[k - 1:k + eng.fade_frames + 1])).max() <= own


@pytest.mark.parametrize("path", PATHS)
def test_loop_wraps_sample_exactly_and_stop_returns_to_loop_start(path):
    rec = _ramp_recording()
    eng = _engine(rec, path)
    src = rec.versions[0].source.read_all()[:, 0]
    eng.set_loop(1000, 1333)
    eng.seek(1300)
    eng.play()
    out = np.concatenate([_pull(eng, 100) for _ in range(10)])[:, 0]
    period = src[1000:1333]
    want = np.concatenate([src[1300:1333], np.tile(period, 4)])[:1000]
    L = eng.fade_frames  # 40 frames of fade-in at the start, crossing the first wrap (33 frames in)
    np.testing.assert_allclose(out[:L], want[:L] * _fade_in(eng), rtol=1e-6)
    np.testing.assert_array_equal(out[L:], want[L:])
    assert eng.position == 1000 + (1000 - 33) % 333
    eng.stop()
    assert eng.position == 1000 and not eng.playing


@pytest.mark.parametrize("path", PATHS)
def test_end_of_file_outputs_silence_and_parks(path):
    rec = _ramp_recording(n=1000)
    eng = _engine(rec, path)
    eng.seek(900)
    eng.play()
    L = eng.fade_frames
    src = rec.versions[0].source.read_all()[:, 0]
    out = _pull(eng, 256)
    np.testing.assert_array_equal(out[L:100, 0], src[900 + L:])
    assert np.all(out[100:] == 0)
    assert eng.position == 1000 and not eng.playing
    assert np.all(_pull(eng, 64) == 0)
    eng.play()  # playing again after the end restarts from the beginning (faded in)
    out = _pull(eng, 2 * L)[:, 0]
    np.testing.assert_allclose(out[:L], src[:L] * _fade_in(eng), rtol=1e-6)
    np.testing.assert_array_equal(out[L:], src[L:2 * L])


@pytest.mark.parametrize("path", PATHS)
def test_seek_pause_and_stop_are_sample_exact_and_faded(path):
    rec = _ramp_recording()
    eng = _engine(rec, path)
    L = eng.fade_frames
    w = _fade_in(eng)
    src = rec.versions[1].source.read_all()[:, 0]
    eng.select_version(1)
    eng.play()
    _pull(eng, 64)
    # seek while playing: crossfade from the old place (64..) into the new one (2500..), same ramp
    eng.seek(2500)
    assert eng.position == 2500
    out = _pull(eng, 64)[:, 0]
    np.testing.assert_allclose(out[:L], src[64:64 + L] * (1 - w) + src[2500:2500 + L] * w, rtol=1e-6)
    np.testing.assert_array_equal(out[L:], src[2500 + L:2564])
    # pause: the sound fades out over L frames, then silence; the position stops right after the fade
    eng.pause()
    out = _pull(eng, 64)[:, 0]
    np.testing.assert_allclose(out[:L], src[2564:2564 + L] * (1 - w), rtol=1e-6)
    assert np.all(out[L:] == 0) and eng.position == 2564 + L
    assert np.all(_pull(eng, 64) == 0) and eng.position == 2564 + L
    eng.play()
    out = _pull(eng, 2 * L)[:, 0]
    np.testing.assert_allclose(out[:L], src[2564 + L:2564 + 2 * L] * w, rtol=1e-6)
    np.testing.assert_array_equal(out[L:], src[2564 + 2 * L:2564 + 3 * L])
    # stop = fade out where we are, then go back to the start
    eng.stop()
    assert eng.position == 0
    pos_before = 2564 + 3 * L
    out = _pull(eng, 16)[:, 0]  # fade-out spans several small blocks, heard from the old place
    np.testing.assert_allclose(out, src[pos_before:pos_before + 16] * (1 - w[:16]), rtol=1e-6)
    _pull(eng, 64)
    assert eng.position == 0 and not eng.playing
    eng.seek_s(0.25)
    assert eng.position == 2000
    eng.play()
    out = _pull(eng, L + 1)[:, 0]
    assert out[L] == src[2000 + L]


@pytest.mark.parametrize("block", [64, 257, 1024, 4096])
def test_callback_allocates_nothing(block):
    rng = np.random.default_rng(0)
    rec = Recording.from_array(rng.standard_normal(RATE * 20).astype(np.float32) * 0.1, RATE, "noise.wav")
    for k in range(2):
        rec.add_enhanced(rng.standard_normal((RATE * 20, 1)).astype(np.float32) * 0.1, RATE, _info(f"m{k}", RATE))
    eng = _engine(rec)
    eng.set_loop(RATE, 3 * RATE)
    eng.play()
    out = np.zeros((block, 2), np.float32)
    for _ in range(5):  # warm up code paths (first fade, first wrap)
        eng.callback(out, block, None, None)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for j in range(400):
            if j % 7 == 0:
                eng.select_version(j % 3)  # crossfades and gain changes inside the measured loop
            if j % 50 == 0:
                eng.set_loudness_match(j % 100 == 0)
            eng.callback(out, block, None, None)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert eng.callback_errors == 0
    # No growth. The transient peak is a few small Python objects (array views, ints), the same for
    # every block size; any temporary array would scale with the block (4096 x 2 float32 = 32 KiB).
    assert after - before <= 256, after - before
    assert peak - before < 1024, peak - before


def test_versions_at_other_rates_are_resampled_once_to_the_device_rate():
    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    rec = Recording.from_array(tone, 16000, "tone.wav")
    # A version at another rate (as a model at its native rate might give) with the same duration.
    from workbench.core.document.recording import Version
    t48 = np.arange(48000) / 48000
    rec.versions.append(Version("at48k", "enhanced", ArraySource((0.25 * np.sin(2 * np.pi * 440 * t48))
                                                                  .astype(np.float32), 48000)))
    eng = PlaybackEngine(None, sample_rate=44100)
    tracks = eng.load(rec)
    assert eng.frames == 44100 and len(tracks) == 2
    prog = eng._program
    np.testing.assert_allclose(prog.buffers[0], resample(tone, 16000, 44100)[:44100], atol=1e-6)
    # same instants: the 48 kHz version is half the 16 kHz one everywhere (phase aligned)
    mid = slice(2000, 42000)
    np.testing.assert_allclose(prog.buffers[1][mid], 0.5 * prog.buffers[0][mid], atol=2e-3)
    # loudness matching: the quieter version sets the target, the louder is attenuated by ~6 dB
    assert abs(tracks[0].matched.gain_db - 20 * np.log10(0.5)) < 0.1
    assert abs(tracks[1].matched.gain_db) < 1e-9
    # buffers are not rebuilt while playing: same objects after many callbacks
    ids = [id(b) for b in prog.buffers]
    eng.play()
    for _ in range(20):
        _pull(eng, 512)
    assert [id(b) for b in eng._program.buffers] == ids


def test_loud_version_never_plays_above_full_scale():
    n = RATE * 2
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal(n)).astype(np.float32)
    rec = Recording.from_array(x, RATE, "quiet.wav")
    rec.add_enhanced((x * 0.01)[:, None], RATE, _info("tiny", RATE))  # 40 dB quieter ...
    rec.residual_of(rec.versions[1])  # ... and a residual 0.99 x, loud
    loud = (x * 30.0)  # a version far above 0 dBFS
    from workbench.core.document.recording import Version
    rec.versions.append(Version("hot", "enhanced", ArraySource(loud, RATE)))
    eng = PlaybackEngine(None, sample_rate=RATE)
    tracks = eng.load(rec)
    assert tracks[3].plain.limited and tracks[3].plain.gain_db == pytest.approx(-20 * np.log10(np.abs(loud).max()))
    eng.play()
    for v in range(4):
        for match in (True, False):
            eng.set_loudness_match(match)
            eng.select_version(v)
            eng.seek(0)
            out = np.concatenate([_pull(eng, 1000) for _ in range(n // 1000)])
            assert np.abs(out).max() <= 1.0 + 1e-6


def test_nonfinite_samples_never_reach_the_device():
    x = np.full(RATE, 0.1, np.float32)
    x[100:110] = np.nan
    x[500] = np.inf
    rec = Recording.from_array(x, RATE, "nan.wav")
    eng = PlaybackEngine(None, sample_rate=RATE)
    tracks = eng.load(rec)
    assert tracks[0].silenced_samples == 11
    eng.play()
    out = np.concatenate([_pull(eng, 256) for _ in range(4)])
    assert np.all(np.isfinite(out)) and np.all(out[100:110] == 0)


def test_null_engine_reports_why_and_still_works():
    eng = PlaybackEngine(None)
    assert eng.available is False and eng.reason
    rec = _ramp_recording()
    eng.load(rec)
    assert eng.rate == RATE and eng.play() is False
    eng.set_loudness_match(False)
    L = eng.fade_frames
    np.testing.assert_array_equal(_pull(eng, 2 * L)[L:, 0], rec.versions[0].source.read_all()[L:2 * L, 0])


ALSA_CONF = """\
</usr/share/alsa/alsa.conf>
pcm.!default { type null }
ctl.!default { type null }
"""

_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from workbench.core.audio.playback import PlaybackEngine, list_output_devices
    from workbench.core.document.recording import Recording
    devices, reason = list_output_devices()
    rec = Recording.from_array(np.zeros(48000 * 600, np.float32), 48000, "silence.wav")
    eng = PlaybackEngine("default", sample_rate=48000, ram_limit_bytes=int(sys.argv[1]))
    eng.load(rec)
    ok = eng.play()
    deadline = time.time() + 10
    while eng.callback_calls < 20 and time.time() < deadline:
        time.sleep(0.01)
    pos, calls = eng.position, eng.callback_calls
    eng.close()
    print(json.dumps({"devices": [d.name for d in devices], "reason": reason, "available": eng.available,
                      "ok": ok, "position": pos, "calls": calls, "errors": eng.callback_errors,
                      "disk_backed": eng.disk_backed}))
""")


@pytest.mark.parametrize("path", PATHS)
def test_real_portaudio_stream_on_alsa_null_device(tmp_path, path):
    if not Path("/usr/share/alsa/alsa.conf").exists():
        pytest.skip("ALSA is not installed on this system")
    conf = tmp_path / "asound.conf"
    conf.write_text(ALSA_CONF)
    # ALSA_CONFIG_PATH replaces the top-level configuration for this process only; the file includes
    # the system one and overrides the default device, so the user's home is never involved.
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf), "HOME": str(tmp_path)}
    t0 = time.perf_counter()
    limit = "0" if path == "blocks" else str(1 << 40)  # the blocks path with its feeder thread, for real
    proc = subprocess.run([sys.executable, "-c", _CHILD, limit], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["available"] and result["ok"], result
    assert result["calls"] >= 20 and result["position"] > 0 and result["errors"] == 0, result
    assert result["disk_backed"] == (path == "blocks")
    assert time.perf_counter() - t0 < 30


def test_nonfinite_samples_are_zeroed_piece_by_piece_without_touching_the_source():
    from workbench.core.audio.playback import _PIECE, _zero_nonfinite

    x = np.linspace(-0.5, 0.5, 2 * _PIECE + 5, dtype=np.float32)
    clean, count = _zero_nonfinite(x)
    assert count == 0 and clean is x  # nothing to fix: no copy
    bad_at = [3, _PIECE - 1, _PIECE, 2 * _PIECE + 4]  # in every piece, on both sides of a seam
    y = x.copy()
    y[bad_at[0]] = np.nan
    y[bad_at[1]] = np.inf
    y[bad_at[2]] = -np.inf
    y[bad_at[3]] = np.nan
    kept = y.copy()
    clean, count = _zero_nonfinite(y)
    assert count == 4
    assert np.isfinite(clean).all() and (clean[bad_at] == 0).all()
    mask = np.ones(len(y), bool)
    mask[bad_at] = False
    np.testing.assert_array_equal(clean[mask], x[mask])
    np.testing.assert_array_equal(y[mask], kept[mask])  # the version's own samples are not modified
    assert np.isnan(y[bad_at[0]])


# ------------------------------------------------------------------ strength
def _strength_recording(n: int = RATE * 4):
    rng = np.random.default_rng(3)
    dry = (0.2 * rng.standard_normal(n)).astype(np.float32)
    wet = (0.5 * dry + 0.01 * rng.standard_normal(n)).astype(np.float32)
    rec = Recording.from_array(dry, RATE, "dry.wav")
    rec.add_enhanced(wet[:, None], RATE, _info("m", RATE))
    return rec, dry, wet


@pytest.mark.parametrize("path", PATHS)
def test_strength_is_mixed_in_the_callback_from_the_two_buffers(path):
    rec, dry, wet = _strength_recording()
    eng = _engine(rec, path)
    eng.select_version(1)
    eng.play()
    _pull(eng, 512)
    eng.set_strength(1, 0.7)
    ramp = int(np.ceil(0.3 * STRENGTH_SLEW_S * RATE))  # a 30 % move takes 30 % of the full swing time
    pos = eng.position
    got = np.concatenate([_pull(eng, 256) for _ in range(8)])[:, 0]
    i = np.arange(pos, pos + len(got))
    want = wet[i] + 0.3 * (dry[i] - wet[i])
    np.testing.assert_allclose(got[ramp + 256:], want[ramp + 256:], atol=1e-6)
    # during the ramp the dry weight g rises linearly, never faster than the slew: no step, no click
    g = (got[:ramp] - wet[i[:ramp]]) / (dry[i[:ramp]] - wet[i[:ramp]])
    assert np.all(np.diff(g) <= 1.0 / (STRENGTH_SLEW_S * RATE) + 1e-3)
    assert np.abs(np.diff(got)).max() < 0.2 * 4  # nothing jumps beyond the signal's own sample steps
    assert eng.strength(1) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        eng.set_strength(0, 0.5)  # the original has no strength


@pytest.mark.parametrize("path", PATHS)
def test_a_version_loaded_with_a_strength_plays_at_it(path):
    from workbench.core.enhance.editing import Strength
    rec, dry, wet = _strength_recording()
    rec.set_strength(rec.versions[1], Strength(0.25))
    eng = _engine(rec, path)
    eng.select_version(1)
    eng.play()
    got = np.concatenate([_pull(eng, 512) for _ in range(4)])[:, 0]
    L = eng.fade_frames
    np.testing.assert_allclose(got[L:], (wet + 0.75 * (dry - wet))[L:2048], atol=1e-6)
    assert eng.set_strength_of(rec.versions[1], 1.0)


@pytest.mark.parametrize("block", [64, 1024])
def test_strength_moves_allocate_nothing(block):
    rec, dry, wet = _strength_recording(RATE * 20)
    eng = _engine(rec)
    eng.set_loop(RATE, 3 * RATE)
    eng.select_version(1)
    eng.play()
    out = np.zeros((block, 2), np.float32)
    for j in range(5):
        eng.set_strength(1, 0.5 if j % 2 else 0.9)
        eng.callback(out, block, None, None)
    mixes = [0.1 * (j % 10) for j in range(400)]  # floats made before measuring
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for j in range(400):
            if j % 3 == 0:
                eng.set_strength(1, mixes[j])
            if j % 11 == 0:
                eng.select_version(j % 2)
            eng.callback(out, block, None, None)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert eng.callback_errors == 0
    assert after - before <= 256, after - before
    # While the gain ramps, the mix holds a few more numpy views and floats at once (about 1.2 KiB for
    # every block size); one temporary array of the block would be 4 KiB (64 frames) to 64 KiB.
    assert peak - before < 2048, peak - before
