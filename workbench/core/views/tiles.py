"""Level-of-detail spectrogram tiles for the inspection panes.

A long recording is never analysed whole. The time axis is cut into tiles of :data:`TILE_COLUMNS`
columns; at level ``L`` one column is STFT frame ``t = (tile * TILE_COLUMNS + j) * 2**L`` (a hop
multiple of ``2**L``), so a tile covers ``TILE_COLUMNS * 2**L`` frames. The view picks the level at
which the visible time span maps to roughly one column per screen pixel, asks for the tiles it lacks,
and a worker thread computes them from block reads of the source. Tiles are kept in an LRU cache bounded
in bytes. Decimation samples frames (it does not average them), so every pixel shows the exact complex
value of a real STFT frame and the readout, phase, real and imaginary panes stay consistent.

This module holds the Qt-free computation and cache; :mod:`workbench.gui.spectrogram` drives it, and
:func:`tile_images` derives the pane images through the view registry (:mod:`workbench.core.views.registry`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np

from ..audio.audio_io import AudioSource
from .stft import StftConfig, stft_frames, window_array
from .registry import DisplaySettings, images_key, pane_arrays

#: Columns per tile. 256 keeps a tile small (about 1 MB of complex64 at 513 bins) and the number of
#: tiles in view small (a 1500 px pane spans 6-12 tiles).
TILE_COLUMNS = 256

#: Above this many samples between sampled frames we seek to each frame instead of reading the span.
_SPAN_READ_LIMIT = 1 << 21


@dataclass(frozen=True)
class TileKey:
    """Identity of one tile: which audio, which analysis, which level and position."""

    source_id: int
    channel: int
    cfg: StftConfig
    level: int
    index: int
    with_previous: bool
    #: difference views: the other source of the pair (0: none) and whether that one is the original
    #: (``True``: the tile's own source is the enhanced side of ``enhanced - original``).
    partner_id: int = 0
    partner_is_original: bool = True

    @property
    def stride(self) -> int:
        return 1 << self.level

    @property
    def first_frame(self) -> int:
        return self.index * TILE_COLUMNS * self.stride


@dataclass
class Tile:
    """Complex STFT columns of one tile.

    Attributes:
        key: the tile's identity.
        frames: STFT frame index of each column, int64 ``(columns,)``.
        spec: complex64 ``(columns, bins)``.
        previous: complex64 ``(columns, bins)`` of frames ``frames - 1`` (for instantaneous
            frequency, which differentiates phase between consecutive frames), or ``None``.
        partner: complex64 ``(columns, bins)`` of the same frames of the partner source (difference
            views, see :attr:`TileKey.partner_id`), or ``None``.
    """

    key: TileKey
    frames: np.ndarray
    spec: np.ndarray
    previous: np.ndarray | None = None
    partner: np.ndarray | None = None
    #: display images derived from ``spec`` (name -> float32 ``(columns, bins)``) and the display
    #: settings they were made for; kept so that panning back redraws without recomputing.
    images: dict | None = None
    images_for: tuple | None = None

    @property
    def nbytes(self) -> int:
        n = self.spec.nbytes + sum(a.nbytes for a in (self.previous, self.partner) if a is not None)
        return n + (sum(a.nbytes for a in self.images.values()) if self.images else 0)


def level_for(visible_frames: float, pixels: int) -> int:
    """Decimation level so that the visible frames give between ``pixels`` and ``2 * pixels`` columns."""
    if pixels <= 0 or visible_frames <= pixels:
        return 0
    return max(0, int(np.floor(np.log2(visible_frames / pixels))))


def tiles_in_range(frame0: float, frame1: float, level: int, total_frames: int) -> range:
    """Indices of the tiles at ``level`` that cover frames ``[frame0, frame1]`` (clipped to the file)."""
    span = TILE_COLUMNS << level
    last_tile = max(0, (total_frames - 1) // span)
    lo = int(np.clip(np.floor(frame0 / span), 0, last_tile))
    hi = int(np.clip(np.floor(frame1 / span), 0, last_tile))
    return range(lo, hi + 1)


def _channel_reader(source: AudioSource, channel: int) -> Callable[[int, int], np.ndarray]:
    def read(a: int, b: int) -> np.ndarray:
        return source.read(a, b)[:, channel]
    return read


def frames_at(source: AudioSource, channel: int, frames: np.ndarray, cfg: StftConfig,
              should_stop: Callable[[], bool] = lambda: False) -> Iterator[np.ndarray | None]:
    """Compute the STFT frames listed in ``frames`` (sorted, evenly spaced), yielding between reads.

    Yields ``None`` after each chunk (a cancellation point) and finally the complex64
    ``(len(frames), bins)`` result. Closely spaced frames come from one contiguous read and one batched
    FFT (:func:`workbench.core.views.stft.stft_frames`); far-apart frames are read one by one so that a
    decimated view of an hour never decodes the whole hour.
    """
    read = _channel_reader(source, channel)
    n = source.frames
    out = np.zeros((len(frames), cfg.bins), np.complex64)
    if len(frames) == 0:
        yield out
        return
    step = int(frames[1] - frames[0]) if len(frames) > 1 else 1
    if step == 1:
        out[:] = stft_frames(read, n, int(frames[0]), int(frames[-1]) + 1, cfg)
        yield out
        return
    win = window_array(cfg).astype(np.float32)
    first = int(frames[0]) * cfg.hop - cfg.pad
    last = int(frames[-1]) * cfg.hop - cfg.pad + cfg.n_fft
    if step * cfg.hop <= 4 * cfg.n_fft and last - first <= _SPAN_READ_LIMIT:
        # Frames close together: one read of the span, then only the sampled frames are transformed.
        seg = np.zeros(last - first, np.float32)
        lo, hi = max(first, 0), min(last, n)
        if hi > lo:
            seg[lo - first:hi - first] = read(lo, hi)
        picked = np.lib.stride_tricks.sliding_window_view(seg, cfg.n_fft)[::step * cfg.hop][:len(frames)]
        out[:] = np.fft.rfft(picked * win, n=cfg.nfft, axis=-1)
        yield out
        return
    chunk = 32
    for c0 in range(0, len(frames), chunk):
        if should_stop():
            return
        block = np.zeros((min(chunk, len(frames) - c0), cfg.n_fft), np.float32)
        for i, t in enumerate(frames[c0:c0 + chunk]):
            first = int(t) * cfg.hop - cfg.pad
            lo, hi = max(first, 0), min(first + cfg.n_fft, n)
            if hi > lo:
                block[i, lo - first:hi - first] = read(lo, hi)
        out[c0:c0 + len(block)] = np.fft.rfft(block * win, n=cfg.nfft, axis=-1)
        yield None
    yield out


def compute_tile(source: AudioSource, key: TileKey, total_frames: int,
                 should_stop: Callable[[], bool] = lambda: False) -> Iterator[Tile | None]:
    """Generator computing one tile; yields ``None`` at cancellation points and finally the :class:`Tile`.

    The caller stops iterating (or ``should_stop`` returns true) to cancel.
    """
    first = key.first_frame
    frames = np.arange(first, min(first + (TILE_COLUMNS << key.level), total_frames), key.stride, dtype=np.int64)
    spec = None
    for item in frames_at(source, key.channel, frames, key.cfg, should_stop):
        if item is None:
            yield None
            if should_stop():
                return
        else:
            spec = item
    if spec is None:
        return
    previous = None
    if key.with_previous:
        # Frame -1 (before the first) is all padding: stft_frames reads it as zeros.
        prev_frames = frames - 1
        if key.stride == 1 and len(frames):
            # Consecutive columns: the previous frame of column j is column j-1; one extra frame in front.
            head = stft_frames(_channel_reader(source, key.channel), source.frames,
                               int(frames[0]) - 1, int(frames[0]), key.cfg)
            previous = np.concatenate([head, spec[:-1]])
        else:
            for item in frames_at(source, key.channel, prev_frames, key.cfg, should_stop):
                if item is None:
                    yield None
                    if should_stop():
                        return
                else:
                    previous = item
    yield Tile(key, frames, spec, previous)


def compute_pair_tile(source: AudioSource, key: TileKey, total_frames: int, partner: AudioSource,
                      partner_channel: int, cache: "TileCache",
                      should_stop: Callable[[], bool] = lambda: False) -> Iterator[Tile | None]:
    """Generator computing a difference-view tile: the frames of ``key`` from ``source`` and from ``partner``.

    Each side is the plain tile (no partner, no previous frames) of its source; a side already in
    ``cache`` is reused and a computed side is put there, so switching between the ordinary and the
    difference views never analyses the same audio twice. Yields ``None`` at cancellation points and
    finally a :class:`Tile` whose ``spec`` is the own source and ``partner`` the other one.
    """
    own_key = replace(key, with_previous=False, partner_id=0, partner_is_original=True)
    other_key = TileKey(key.partner_id, partner_channel, key.cfg, key.level, key.index, False)
    sides = []
    for src, k in ((source, own_key), (partner, other_key)):
        tile = cache.get(k)
        if tile is None:
            for item in compute_tile(src, k, total_frames, should_stop):
                if item is None:
                    yield None
                    if should_stop():
                        return
                else:
                    tile = item
            if tile is None:
                return
            cache.put(tile)
        sides.append(tile)
    own, other = sides
    yield Tile(key, own.frames, own.spec, None, other.spec)


class TileCache:
    """Least-recently-used tile store bounded by ``max_bytes`` (complex data only). Thread-safe."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[TileKey, Tile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: TileKey) -> Tile | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, tile: Tile) -> None:
        with self._lock:
            old = self._tiles.pop(tile.key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._tiles[tile.key] = tile
            self._bytes += tile.nbytes
            while self._bytes > self.max_bytes and len(self._tiles) > 1:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= dropped.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._tiles)

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0


def waveform_envelope(source: AudioSource, channel: int, buckets: int, block_frames: int = 1 << 18,
                      should_stop: Callable[[], bool] = lambda: False
                      ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Min/max envelope of one channel in ``buckets`` equal time slices, computed block by block.

    Yields ``(filled, mins, maxs)`` after each block: ``mins``/``maxs`` are float32 ``(buckets,)``
    arrays (the same objects each time) whose first ``filled`` entries are final. Bucket ``b`` covers
    samples ``[b * n / buckets, (b + 1) * n / buckets)``. Integer files are scanned as stored
    (:meth:`~workbench.core.audio.audio_io.AudioSource.read_scaled`): the extremes are the same values,
    found several times faster than by decoding every sample to float.
    """
    n = source.frames
    buckets = max(1, min(buckets, n))
    mins = np.zeros(buckets, np.float32)
    maxs = np.zeros(buckets, np.float32)
    edges = (np.arange(buckets + 1, dtype=np.int64) * n) // buckets
    # Align reads with bucket edges so each bucket's extremes come from whole blocks.
    per_block = max(1, int(block_frames * buckets // n))
    b = 0
    while b < buckets:
        if should_stop():
            return
        b1 = min(b + per_block, buckets)
        data, scale = source.read_scaled(int(edges[b]), int(edges[b1]))
        data = data[:, channel]
        starts = edges[b:b1] - edges[b]
        if scale == 1.0:
            mins[b:b1] = np.minimum.reduceat(data, starts)
            maxs[b:b1] = np.maximum.reduceat(data, starts)
        else:
            mins[b:b1] = np.minimum.reduceat(data, starts) * scale
            maxs[b:b1] = np.maximum.reduceat(data, starts) * scale
        b = b1
        yield b, mins, maxs


def tile_images(tile: Tile, sample_rate: int, display: DisplaySettings) -> dict[str, np.ndarray]:
    """The pane images of one tile (slot -> float32 ``(columns, bins)``) for ``display``
    (:class:`~workbench.core.views.registry.DisplaySettings`), via :func:`workbench.core.views.registry.pane_arrays` with the
    tile's previous frames and difference partner. The result is also kept on the tile (``images``)."""
    wanted = images_key(display)
    if tile.images is None or tile.images_for != wanted:
        tile.images = pane_arrays(tile.spec, tile.previous, tile.key.cfg, sample_rate, display,
                                  tile.partner, tile.key.partner_is_original, tile.frames)
        tile.images_for = wanted
    return tile.images
