"""Playback data of a version: prepared piece by piece, held in RAM or in a disk-backed block cache.

Preparation (:func:`prepare_signal`, on the loading thread) streams one column of a source::

    source.read(a, a + P) --> NaN/Inf -> 0 --> soxr.ResampleStream to the device rate --> cut/pad to N
        --> sink (a RAM array, or a private temporary cache file of float32 samples)
        --> LoudnessStream (BS.1770 measure of exactly the N played samples)

so no whole-file array is ever built. ``soxr.ResampleStream`` fed consecutive pieces gives the same
samples as one ``soxr.resample`` call (tested), so the result equals what the in-RAM path used to hold.

:class:`BlockTrack` is what the audio callback reads in the disk-backed case. The N frames are cut into
blocks of ``B = 2**k`` frames; a fixed pool of RAM slots (allocated once, at load) holds the blocks
around the play position. ``slot_of[j]`` (a Python list: reading one element allocates nothing) names
the slot holding block ``j`` or is -1. Only the loader (the engine's feeder thread or the GUI thread,
serialised by the engine's feed lock, never the callback) changes it:

* a block is published by writing its samples into a free slot first, then ``slot_of[j] = slot``;
* a block is evicted by ``slot_of[j] = -1``; the slot is reused only after every callback that started
  before the eviction has returned (the engine counts callbacks started and finished), so a callback
  never sees a slot change under it: it reads either the right samples or finds the block missing,
  plays silence for it and counts a miss (:attr:`BlockTrack.misses`).

The callback reads ``track[start:stop]`` with the range inside one block (the engine splits its work at
block edges) and gets a view of the slot: no allocation of samples, no lock, no file access.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass

import numpy as np
import soxr

from .audio_io import AudioSource
from ..errors import WorkbenchError
from .loudness import LoudnessMeasure, LoudnessStream

#: Source frames read (and resampled) per step of the preparation (about 22 s at 48 kHz).
PREPARE_PIECE_FRAMES = 1 << 20


#: Samples per numpy call when scrubbing NaN/Inf (about 22 s at 48 kHz).
_PIECE = 1 << 20


def _zero_nonfinite(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """``audio`` (1-D) with NaN/Inf samples set to 0 (a copy only when there are any), and their count.
    Scanned in pieces of :data:`_PIECE` samples, so no whole-file mask is built."""
    clean, count = audio, 0
    for a in range(0, audio.shape[0], _PIECE):
        piece = audio[a:a + _PIECE]
        bad = ~np.isfinite(piece)
        k = int(np.count_nonzero(bad))
        if k:
            if clean is audio:
                clean = audio.copy()
            clean[a:a + _PIECE][bad] = 0.0
            count += k
    return clean, count


@dataclass(frozen=True)
class BlockCacheConfig:
    """Geometry of the disk-backed block cache.

    Attributes:
        block_frames: frames per block (a power of two); 2**16 is 1.37 s at 48 kHz, 256 KiB float32.
        behind_blocks: blocks kept before the play position (small backward seeks stay instant).
        ahead_blocks: blocks kept filled after it (following the loop); the feeder has that much time
            to catch up after a stall.
        seek_blocks: blocks loaded synchronously at a seek target, a loop start or a new program.

    RAM per track: ``slots * block_frames * 4`` bytes with
    ``slots = 2 * (behind_blocks + ahead_blocks) + 4 * seek_blocks + 12``: the window twice (after a
    seek the old place stays protected for one feeder round, while the crossfade may still read it),
    plus the blocks at the seek target, the loop start, a crossfade's outgoing place and the partial
    blocks at the window's ends: 56 slots, 14 MiB, for the defaults.
    """

    block_frames: int = 1 << 16
    behind_blocks: int = 2
    ahead_blocks: int = 16
    seek_blocks: int = 2

    def __post_init__(self) -> None:
        b = int(self.block_frames)
        if b < 16 or b & (b - 1):
            raise ValueError(f"block_frames must be a power of two >= 16, got {self.block_frames}")
        if self.behind_blocks < 0 or self.ahead_blocks < 1 or self.seek_blocks < 1:
            raise ValueError("behind_blocks >= 0, ahead_blocks >= 1 and seek_blocks >= 1 are required")

    @property
    def slots(self) -> int:
        return 2 * (self.behind_blocks + self.ahead_blocks) + 4 * self.seek_blocks + 12


class _RamSink:
    """Collects the prepared frames in one float32 array of ``frames`` samples."""

    def __init__(self, frames: int):
        self.data = np.zeros(frames, np.float32)
        self._at = 0

    def write(self, piece: np.ndarray) -> None:
        self.data[self._at:self._at + piece.shape[0]] = piece
        self._at += piece.shape[0]


class _FileSink:
    """Writes the prepared frames as raw float32 to an anonymous temporary file in the system's temp
    folder (``tempfile.TemporaryFile``: unlinked at once on POSIX, deleted on close on Windows; it is
    never placed beside or over anyone's files and disappears with the process)."""

    def __init__(self, frames: int):
        try:
            self.file = tempfile.TemporaryFile(prefix="workbench-playback-", suffix=".f32", buffering=0)
        except OSError as exc:
            raise WorkbenchError(f"{tempfile.gettempdir()}: cannot create the playback cache ({exc})") from None
        self.frames = frames

    def write(self, piece: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(piece, np.float32)).cast("B")
        try:
            while data:
                n = self.file.write(data)
                data = data[n:]
        except OSError as exc:
            self.file.close()
            raise WorkbenchError(f"{tempfile.gettempdir()}: cannot write the playback cache ({exc}); "
                                 "free some space there or set TMPDIR to a folder with room") from None


def prepare_signal(source: AudioSource, column: int, rate: int, frames: int, sink,
                   piece_frames: int = PREPARE_PIECE_FRAMES) -> tuple[LoudnessMeasure, int]:
    """Stream ``source[:, column]`` to ``rate`` Hz into ``sink`` as exactly ``frames`` float32 samples.

    Returns the BS.1770 measure of those samples and the count of NaN/Inf source samples set to 0.
    Memory: a few pieces of ``piece_frames`` samples, whatever the length of the source.
    """
    stream = None
    if int(source.sample_rate) != int(rate):
        stream = soxr.ResampleStream(int(source.sample_rate), int(rate), 1, dtype="float32", quality="HQ")
    loudness = LoudnessStream(frames, rate, 1)
    written = silenced = 0
    n_in = int(source.frames)

    def emit(y: np.ndarray) -> None:
        nonlocal written
        y = y[:max(frames - written, 0)]
        if y.shape[0]:
            sink.write(y)
            loudness.add(y)
            written += y.shape[0]

    a = 0
    while True:  # at least once: an empty source still flushes the resampler
        b = min(a + piece_frames, n_in)
        x = np.ascontiguousarray(source.read(a, b)[:, column], np.float32)
        x, bad = _zero_nonfinite(x)
        silenced += bad
        if stream is None:
            emit(x)
        else:
            emit(np.asarray(stream.resample_chunk(x, last=b >= n_in), np.float32))
        a = b
        if b >= n_in:
            break
    zeros = np.zeros(min(max(frames - written, 0), piece_frames), np.float32)
    while written < frames:  # pad a version that came out short (every version has N frames)
        emit(zeros[:frames - written])
    return loudness.result(), silenced


class BlockTrack:
    """One prepared signal of ``frames`` samples in a cache file, read by the callback through a fixed
    pool of RAM slots (see the module docstring for the publication protocol).

    Args:
        file: the unbuffered cache file holding ``frames`` float32 samples.
        frames: N.
        config: block geometry and pool size.
    """

    def __init__(self, file, frames: int, config: BlockCacheConfig):
        self.file = file
        self.frames = int(frames)
        self.shape = (self.frames,)
        self.block_frames = int(config.block_frames)
        self.shift = self.block_frames.bit_length() - 1
        self.n_blocks = max(1, math.ceil(self.frames / self.block_frames))
        n_slots = min(config.slots, self.n_blocks)
        self._pool = np.zeros((n_slots, self.block_frames), np.float32)
        self.slots = [self._pool[i] for i in range(n_slots)]
        self.silence = np.zeros(self.block_frames, np.float32)
        #: block -> slot (-1: not in RAM); read by the callback, written by the loader
        self.slot_of = [-1] * self.n_blocks
        self._block_in = [-1] * n_slots     # slot -> block (loader only)
        self._free = list(range(n_slots - 1, -1, -1))
        self._quarantine: list[tuple[int, int]] = []   # (slot, callbacks started when it was evicted)
        #: reads of a block that was not in RAM (played as silence)
        self.misses = 0
        self.blocks_read = 0

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, frames: slice) -> np.ndarray:
        """Samples ``[start, stop)`` (inside one block): a view of its slot, or silence (a miss)."""
        start = frames.start
        block = start >> self.shift
        slot = self.slot_of[block]
        if slot < 0:
            self.misses += 1
            return self.silence[:frames.stop - start]
        offset = start - (block << self.shift)
        if offset + frames.stop - start > self.block_frames:
            raise IndexError(f"frames {start}..{frames.stop} cross a block edge")
        return self.slots[slot][offset:offset + frames.stop - start]

    # ---------------------------------------------------------------- loader side (feed lock held)
    def resident(self, block: int) -> bool:
        return self.slot_of[block] >= 0

    def evict_except(self, keep: set[int], callbacks_started: int) -> None:
        """Unmap every block not in ``keep``; its slot waits until the callbacks running now are done."""
        for slot, block in enumerate(self._block_in):
            if block >= 0 and block not in keep:
                self.slot_of[block] = -1
                self._block_in[slot] = -1
                self._quarantine.append((slot, callbacks_started))

    def _take_slot(self, callbacks_finished: int) -> int | None:
        if self._quarantine:
            still = []
            for slot, stamp in self._quarantine:
                if callbacks_finished >= stamp:
                    self._free.append(slot)
                else:
                    still.append((slot, stamp))
            self._quarantine = still
        return self._free.pop() if self._free else None

    def load(self, block: int, callbacks_finished: int) -> bool:
        """Read ``block`` from the cache file into a free slot and publish it. ``False`` when no slot is
        free yet (all hold protected blocks, or evicted ones a running callback may still read)."""
        if self.slot_of[block] >= 0:
            return True
        slot = self._take_slot(callbacks_finished)
        if slot is None:
            return False
        dst = self.slots[slot]
        a = block << self.shift
        m = min(self.block_frames, self.frames - a)
        view = memoryview(dst).cast("B")[:4 * m]
        self.file.seek(4 * a)
        got = 0
        while got < 4 * m:
            n = self.file.readinto(view[got:])
            if not n:
                break
            got += n
        dst[got // 4:].fill(0.0)
        self._block_in[slot] = block
        self.slot_of[block] = slot   # published last: the samples are in place before anyone can see it
        self.blocks_read += 1
        return True

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass


class BlockStore:
    """The block tracks of one loaded program (all on the same block grid)."""

    def __init__(self, config: BlockCacheConfig):
        self.config = config
        self.tracks: list[BlockTrack] = []

    def add(self, sink: _FileSink) -> BlockTrack:
        return self.add_file(sink.file, sink.frames)

    def add_file(self, file, frames: int) -> BlockTrack:
        """A track over an already written cache file (its own RAM slots; the file may be shared with a
        track of the previous program, which reads it only under the same feed lock)."""
        track = BlockTrack(file, frames, self.config)
        self.tracks.append(track)
        return track

    @property
    def misses(self) -> int:
        return sum(t.misses for t in self.tracks)

    def resident(self, block: int) -> bool:
        return all(t.resident(block) for t in self.tracks)

    def evict_except(self, keep: set[int], callbacks_started: int) -> None:
        for t in self.tracks:
            t.evict_except(keep, callbacks_started)

    def load(self, block: int, callbacks_finished: int) -> bool:
        ok = True
        for t in self.tracks:
            ok = t.load(block, callbacks_finished) and ok
        return ok

    def close(self, keep: set[int] = frozenset()) -> None:
        """Close the cache files, except those whose ``id`` is in ``keep`` (taken over by a new program);
        a file two tracks of this store share is closed once."""
        done: set[int] = set()
        for t in self.tracks:
            if id(t.file) not in keep and id(t.file) not in done:
                done.add(id(t.file))
                t.close()
