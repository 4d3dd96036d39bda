"""Disk-backed playback: versions prepared piece by piece into temporary block caches, played
from a fixed RAM pool of blocks. Its output must equal the in-RAM path sample for sample; the callback
must never read a file, take a lock, wait or allocate."""

from __future__ import annotations

import os
import threading
import tracemalloc

import numpy as np
import pytest

from workbench.core.audio.audio_io import ArraySource, open_source, resample, write_audio_atomic
from workbench.core.enhance.editing import Strength
from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.core.audio.loudness import measure
from workbench.core.audio.playback import PlaybackEngine
from workbench.core.audio.playback_cache import BlockCacheConfig, BlockTrack, _FileSink, _RamSink, prepare_signal
from workbench.core.document.recording import Recording, Version

RATE = 8000
SMALL = BlockCacheConfig(block_frames=256, behind_blocks=1, ahead_blocks=3, seek_blocks=1)


def _info(model_id: str) -> EnhancerInfo:
    return EnhancerInfo(model_id, model_id, "test", RATE, True, 0)


def _recording(n: int = RATE * 2, seed: int = 0) -> Recording:
    """Original + two model results (noise-like, distinct), so any wrong frame or version shows."""
    rng = np.random.default_rng(seed)
    x = (0.2 * rng.standard_normal(n)).astype(np.float32)
    rec = Recording.from_array(x, RATE, "noise.wav")
    for k in range(2):
        rec.add_enhanced((0.5 * x + 0.05 * rng.standard_normal(n)).astype(np.float32)[:, None], RATE,
                         _info(f"m{k}"))
    return rec


def _pair(rec: Recording, config: BlockCacheConfig = SMALL, **kw) -> tuple[PlaybackEngine, PlaybackEngine]:
    ram = PlaybackEngine(None, sample_rate=RATE, **kw)
    blocks = PlaybackEngine(None, sample_rate=RATE, ram_limit_bytes=0, block_cache=config, feeder_thread=False, **kw)
    ram.load(rec)
    blocks.load(rec)
    assert not ram.disk_backed and blocks.disk_backed
    return ram, blocks


def _render(eng: PlaybackEngine, frames: int, pump: bool = True) -> np.ndarray:
    out = np.full((frames, 2), np.nan, np.float32)
    if pump:
        eng.pump()
    eng.callback(out, frames, None, None)
    return out


@pytest.mark.parametrize("rates", [(16000, 44100), (48000, 44100), (8000, 48000), (8000, 8000)])
def test_prepared_pieces_equal_one_resample_call(rates):
    """The streamed preparation (pieces of 1000 source frames through soxr's stream resampler) gives the
    samples one whole-signal soxr call gives, cut/padded to N, NaN/Inf zeroed in every piece, and the
    BS.1770 measure of exactly those samples."""
    rate_in, rate_out = rates
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(rate_in)).astype(np.float32)
    bad = [5, 999, 1000, 1001, rate_in - 1]  # on both sides of piece seams
    dirty = x.copy()
    dirty[bad] = [np.nan, np.inf, -np.inf, np.nan, np.nan]
    clean = x.copy()
    clean[bad] = 0.0
    n = int(round(rate_in * rate_out / rate_in))
    want = np.zeros(n + 7, np.float32)
    y = resample(clean, rate_in, rate_out)
    want[:min(n, len(y))] = y[:n]
    for frames in (n, n + 7, n - 13):  # exact, padded (a short version), cut
        sink = _RamSink(frames)
        loud, silenced = prepare_signal(ArraySource(dirty, rate_in), 0, rate_out, frames, sink, piece_frames=1000)
        assert silenced == len(bad)
        np.testing.assert_array_equal(sink.data, want[:frames])
        ref = measure(want[:frames], rate_out)
        assert loud.peak == ref.peak and loud.lufs == pytest.approx(ref.lufs, abs=1e-9)


def test_cache_files_hold_the_ram_buffers_and_the_gains_agree():
    rec = _recording()
    rec.set_strength(rec.versions[2], Strength(0.4))
    ram, blocks = _pair(rec)
    assert [t.matched for t in ram.tracks] == [t.matched for t in blocks.tracks]
    store = blocks._program.store
    assert len(store.tracks) == 3  # the results' dry signal is the original's cache, not a copy
    for buf, track in zip(ram._program.buffers, blocks._program.buffers):
        track.file.seek(0)
        on_disk = np.frombuffer(track.file.read(), np.float32)
        np.testing.assert_array_equal(on_disk, buf)
    assert blocks._program.dry[2] is blocks._program.buffers[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_path_plays_the_same_samples_as_ram_under_any_operations(seed):
    """Random sequences of what a person does (A/B switches, seeks while playing -- also to just before
    a block edge --, loops, strength moves, pause/play, loudness match) with random callback sizes:
    the disk-backed engine's output equals the in-RAM engine's bit for bit, with no underrun."""
    rng = np.random.default_rng(seed)
    rec = _recording(RATE * 3, seed)
    ram, blocks = _pair(rec)
    n = ram.frames
    for eng in (ram, blocks):
        eng.play()
    for step in range(500):
        op = rng.integers(0, 12)
        args = None
        if op == 0:
            args = ("select_version", int(rng.integers(0, 3)))
        elif op == 1:
            edge = int(rng.integers(1, n // 256)) * 256
            args = ("seek", int(rng.choice([rng.integers(0, n), edge - int(rng.integers(1, 60)), edge])))
        elif op == 2:
            a = int(rng.integers(0, n - 2000))
            args = ("set_loop", a, a + int(rng.integers(50, 2000)))
        elif op == 3:
            args = ("set_loop", None, None)
        elif op == 4:
            args = ("set_strength", int(rng.integers(1, 3)), float(rng.random()))
        elif op == 5:
            args = ("pause",) if rng.random() < 0.5 else ("play",)
        elif op == 6:
            args = ("set_loudness_match", bool(rng.random() < 0.5))
        if args is not None:
            for eng in (ram, blocks):
                getattr(eng, args[0])(*args[1:])
        frames = int(rng.choice([1, 16, 37, 64, 255, 256, 257, 512, 700]))
        a, b = _render(ram, frames), _render(blocks, frames)
        np.testing.assert_array_equal(b, a, err_msg=f"step {step}, after {args}")
        assert ram.position == blocks.position
    assert blocks.callback_errors == 0 and blocks.underruns == 0
    assert sum(t.blocks_read for t in blocks._program.store.tracks) > 3 * 94  # blocks were evicted and read again


def test_a_missing_block_plays_silence_counts_an_underrun_and_never_waits():
    rec = _recording()
    ram, blocks = _pair(rec)
    for eng in (ram, blocks):
        eng.set_loudness_match(False)
        eng.play()
    # No feeder: only the first block (prefetched at load) is in RAM; the callback plays on regardless.
    got = np.concatenate([_render(blocks, 100, pump=False) for _ in range(6)])
    want = np.concatenate([_render(ram, 100) for _ in range(6)])
    np.testing.assert_array_equal(got[:256], want[:256])
    assert np.all(got[256:] == 0) and blocks.underruns > 0 and blocks.callback_errors == 0
    # While the loader holds the feed lock (a long read, say), a callback still returns at once.
    done = threading.Event()
    with blocks._feed_lock:
        t = threading.Thread(target=lambda: (_render(blocks, 512, pump=False), done.set()))
        t.start()
        t.join(timeout=10)
        assert done.is_set()
    _render(ram, 512)  # the same frames on the RAM engine, to stay in step
    # The feeder catches up and the same frames play exactly again.
    for eng in (ram, blocks):
        eng.seek(0)
    before = blocks.underruns
    got = np.concatenate([_render(blocks, 100) for _ in range(6)])
    want = np.concatenate([_render(ram, 100) for _ in range(6)])
    np.testing.assert_array_equal(got, want)
    assert blocks.underruns == before


class _WatchedFile:
    """A cache file that records which threads read it."""

    def __init__(self, f, readers: set):
        self._f, self._readers = f, readers

    def seek(self, *a):
        self._readers.add(threading.get_ident())
        return self._f.seek(*a)

    def readinto(self, b):
        self._readers.add(threading.get_ident())
        return self._f.readinto(b)

    def read(self, *a):
        self._readers.add(threading.get_ident())
        return self._f.read(*a)

    def close(self):
        self._f.close()


def test_the_callback_reads_no_file():
    rec = _recording()
    _, eng = _pair(rec)
    readers: set[int] = set()
    for track in eng._program.store.tracks:
        track.file = _WatchedFile(track.file, readers)
    eng.set_loop(3000, 5000)
    eng.seek(2900)
    eng.play()
    callback_threads = set()

    def run_callback(frames: int) -> None:
        callback_threads.add(threading.get_ident())
        _render(eng, frames, pump=False)

    for j in range(60):
        eng.pump()  # the loader, on this thread
        if j % 9 == 4:
            eng.select_version(j % 3)
        t = threading.Thread(target=run_callback, args=(int(np.random.default_rng(j).integers(32, 600)),))
        t.start()
        t.join()
    assert readers == {threading.get_ident()} and not readers & callback_threads
    assert eng.underruns == 0 and eng.callback_errors == 0


@pytest.mark.parametrize("block", [64, 1024, 4096])
def test_block_path_callback_allocates_nothing(block):
    rng = np.random.default_rng(0)
    n = RATE * 20
    rec = Recording.from_array((0.1 * rng.standard_normal(n)).astype(np.float32), RATE, "noise.wav")
    for k in range(2):
        rec.add_enhanced((0.1 * rng.standard_normal((n, 1))).astype(np.float32), RATE, _info(f"m{k}"))
    # The loop (2 s, 16 blocks of 1024 frames, wrapping mid-block) fits the ahead window, so one pump
    # fills everything the callback reads and no loader runs inside the measured loop.
    config = BlockCacheConfig(block_frames=1024, behind_blocks=1, ahead_blocks=20)
    eng = PlaybackEngine(None, sample_rate=RATE, ram_limit_bytes=0, block_cache=config, feeder_thread=False)
    eng.load(rec)
    eng.set_loop(RATE, 3 * RATE - 300)
    eng.seek(RATE)
    eng.pump()
    eng.set_strength(1, 0.6)
    eng.play()
    out = np.zeros((block, 2), np.float32)
    for _ in range(5):
        eng.callback(out, block, None, None)
    mixes = [0.1 * (j % 10) for j in range(400)]

    def run() -> None:
        for j in range(400):
            if j % 7 == 0:
                eng.select_version(j % 3)
            if j % 13 == 0:
                eng.set_strength(1, mixes[j])
            if j % 50 == 0:
                eng.set_loudness_match(j % 100 == 0)
            eng.callback(out, block, None, None)

    tracemalloc.start()
    try:
        run()  # the first pass leaves the few objects this workload keeps (gain floats ...)
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        run()  # the second pass (other blocks of the loop, the same again) must add nothing
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert eng.callback_errors == 0 and eng.underruns == 0
    assert after - before <= 128, after - before
    # as in the RAM path: a few views and floats at a time; one array of the block would be 0.5-32 KiB
    assert peak - before < 2048, peak - before


def test_feeder_thread_keeps_the_window_filled_and_stops_on_close():
    rec = _recording(RATE * 4)
    ram = PlaybackEngine(None, sample_rate=RATE)
    eng = PlaybackEngine(None, sample_rate=RATE, ram_limit_bytes=0, block_cache=SMALL)
    ram.load(rec)
    eng.load(rec)
    for e in (ram, eng):
        e.set_loop(RATE, 3 * RATE)
        e.play()
    assert eng._feeder is not None and eng._feeder.is_alive()
    for j in range(90):  # 27000 frames: through the loop end (24000) and back into its start
        if j == 40:
            for e in (ram, eng):
                e.select_version(2)
        # like PortAudio, the callback comes when the buffer needs it; here, once the feeder is ahead
        ok = threading.Event()
        for _ in range(2000):
            if eng.buffered_s * RATE >= 400 or eng.position >= eng.frames:
                ok.set()
                break
            ok.wait(0.005)
        assert ok.is_set(), "the feeder thread did not fill the window"
        np.testing.assert_array_equal(_render(eng, 300, pump=False), _render(ram, 300))
    assert eng.underruns == 0
    thread = eng._feeder
    eng.close()
    assert not thread.is_alive()
    eng.play()  # playing again restarts it
    assert eng._feeder.is_alive()
    eng.close()


def test_cache_files_are_private_and_released(tmp_path):
    x = (0.1 * np.random.default_rng(4).standard_normal(RATE * 3)).astype(np.float32)
    path = tmp_path / "take.wav"
    write_audio_atomic(path, x[:, None], RATE)
    rec = Recording(path)
    enhanced = tmp_path / "take.enhanced.wav"
    write_audio_atomic(enhanced, (0.5 * x)[:, None], RATE)
    rec.versions.append(Version("file result", "enhanced", open_source(enhanced)))
    listing = sorted(os.listdir(tmp_path))
    contents = [(tmp_path / name).read_bytes() for name in listing]
    eng = PlaybackEngine(None, sample_rate=RATE, ram_limit_bytes=0, block_cache=SMALL, feeder_thread=False)
    eng.load(rec)
    assert sorted(os.listdir(tmp_path)) == listing  # nothing written beside the recording
    files = [t.file for t in eng._program.store.tracks]
    assert all(not f.closed for f in files)
    eng.seek(RATE)
    eng.set_device(None)  # reloads at the same rate: the prepared caches are taken over, position kept
    assert eng.disk_backed and eng.position == RATE and all(not f.closed for f in files)
    assert {id(t.file) for t in eng._program.store.tracks} == {id(f) for f in files}
    eng.unload()
    assert all(f.closed for f in files) and eng.frames == 0 and eng.underruns == 0
    assert [(tmp_path / name).read_bytes() for name in listing] == contents  # the recording is untouched


def test_short_recordings_stay_in_ram_and_long_ones_go_to_disk():
    rec = _recording()
    eng = PlaybackEngine(None, sample_rate=RATE)
    eng.load(rec)
    assert not eng.disk_backed  # 3 x 16000 frames x 4 bytes, far below RAM_PLAYBACK_BYTES
    eng = PlaybackEngine(None, sample_rate=RATE, ram_limit_bytes=3 * 4 * RATE * 2 - 1, feeder_thread=False)
    eng.load(rec)
    assert eng.disk_backed


def test_an_evicted_slot_is_not_reused_while_a_callback_may_read_it():
    sink = _FileSink(1024)
    sink.write(np.arange(1024, dtype=np.float32))
    track = BlockTrack(sink.file, 1024, BlockCacheConfig(block_frames=256, behind_blocks=0, ahead_blocks=1))
    track.slots = track.slots[:1]  # a pool of one slot
    track._free = [0]
    assert track.load(0, callbacks_finished=0)
    view = track[10:20]
    np.testing.assert_array_equal(view, np.arange(10, 20))
    # a callback is running (5 started, 4 finished) when block 0 is evicted: its slot stays untouched
    track.evict_except(set(), callbacks_started=5)
    assert not track.resident(0) and np.all(track[10:20] == 0) and track.misses == 1
    assert not track.load(3, callbacks_finished=4)
    np.testing.assert_array_equal(view, np.arange(10, 20))  # what that callback holds is still right
    assert track.load(3, callbacks_finished=5)  # it returned: the slot is reused
    np.testing.assert_array_equal(track[3 * 256:3 * 256 + 5], np.arange(768, 773))
    with pytest.raises(IndexError):
        track[3 * 256 + 250:3 * 256 + 260]  # reads never cross a block edge (the engine splits its work there)
    sink.file.close()


def test_a_full_temp_folder_is_one_clear_error_and_the_loaded_program_stays(monkeypatch):
    import errno
    import tempfile

    from workbench.core.errors import WorkbenchError

    rec = _recording()
    eng = PlaybackEngine(None, sample_rate=RATE, ram_limit_bytes=0, block_cache=SMALL, feeder_thread=False)
    eng.load(rec)
    before = eng._program
    opened = []
    real = tempfile.TemporaryFile

    class Full:
        def __init__(self, *a, **k):
            self._f = real(*a, **k)
            opened.append(self._f)

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self._f.close()

    monkeypatch.setattr(tempfile, "TemporaryFile", Full)
    # A new version must be prepared (the loaded ones are taken over without writing).
    rec.add_enhanced((0.3 * rec.source.read_all()).astype(np.float32), RATE, _info("m-new"))
    with pytest.raises(WorkbenchError, match="cannot write the playback cache .*No space left"):
        eng.load(rec)
    assert eng._program is before and eng.frames == rec.source.frames  # still plays what it played
    assert opened and all(f.closed for f in opened)
    eng.play()
    assert np.any(_render(eng, 256))


@pytest.mark.parametrize("disk", [False, True])
def test_a_reload_prepares_only_new_versions_and_plays_like_a_fresh_load(monkeypatch, disk):
    """Before, every load (a new version arriving, a device change at the same rate) prepared every
    version again: 7-10 s per version-hour on a long recording. Now the signals the loaded program
    prepared are taken over (same source, column, rate and length), only the new one is prepared, and
    the output equals a fresh engine's sample for sample."""
    import workbench.core.audio.playback as pb

    calls = []
    real = pb.prepare_signal

    def counted(src, column, *a, **k):
        calls.append((id(src), column))
        return real(src, column, *a, **k)
    monkeypatch.setattr(pb, "prepare_signal", counted)
    rec = _recording()
    kw = dict(ram_limit_bytes=0, block_cache=SMALL, feeder_thread=False) if disk else {}
    eng = PlaybackEngine(None, sample_rate=RATE, **kw)
    eng.load(rec)
    assert len(calls) == 3 and eng.disk_backed == disk
    old_files = [t.file for t in eng._program.store.tracks] if disk else []
    rec.add_enhanced((0.4 * rec.source.read_all()).astype(np.float32), RATE, _info("m-late"))
    calls.clear()
    eng.load(rec)
    assert len(calls) == 1                       # only the new version
    assert all(not f.closed for f in old_files)  # taken over, still open
    fresh = PlaybackEngine(None, sample_rate=RATE, **kw)
    fresh.load(rec)
    outputs = []
    for e in (eng, fresh):
        e.seek(RATE // 2)
        e.select_version(3)
        e.play()
        out = []
        for _ in range(12):
            if disk:
                e.pump()
            out.append(_render(e, 256))
            if len(out) == 4:
                e.select_version(1)
        outputs.append(np.concatenate(out))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.any(outputs[0])
    eng.unload()
    assert all(f.closed for f in old_files)
