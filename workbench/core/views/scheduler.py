"""Which spectrogram tiles the panes need, which to compute, which to drop: the tile scheduler.

The panes show a time span at a pixel width; :class:`TileScheduler` turns that into the level of detail
(:func:`~workbench.core.views.tiles.level_for`) and the tiles covering the span, hands back the ones already in
the :class:`~workbench.core.views.tiles.TileCache`, starts jobs for the rest (nearest the view centre first,
and one tile either side fetched ahead so that short pans find it cached), and cancels jobs the view has moved
away from. Every reconfiguration (another source, channel or analysis) starts a new *generation*: results of
an older one are cached but never shown. Qt-free: the job itself (a thread-pool worker in the GUI) is made by
the ``start_job`` callable the scheduler is given; the scheduler only decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Container, Protocol

from .stft import StftConfig
from .tiles import TILE_COLUMNS, Tile, TileCache, TileKey, level_for, tiles_in_range

#: Priority of the tiles fetched ahead of a pan (below every visible tile).
AHEAD_PRIORITY = -100


class TileJob(Protocol):
    """A started tile computation; the scheduler only ever cancels it."""

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class TileRequest:
    """What the panes show, everything of a :class:`~workbench.core.views.tiles.TileKey` but its level and
    index: the source (by id) and channel, the analysis, the file's frame count, whether the views need each
    column's previous frame, and the difference views' partner (id 0: none)."""

    source_id: int
    channel: int
    cfg: StftConfig
    sample_rate: int
    total_frames: int
    with_previous: bool = False
    partner_id: int = 0
    partner_is_original: bool = True

    def key(self, level: int, index: int) -> TileKey:
        return TileKey(self.source_id, self.channel, self.cfg, level, index, self.with_previous, self.partner_id,
                       self.partner_is_original)


class TileScheduler:
    """Plans the tiles of a view and tracks the jobs computing them.

    Args:
        cache: finished tiles (shared with the jobs, which may read partner sides from it).
        start_job: ``start_job(key, priority) -> job`` starts computing ``key`` (higher priority first;
            visible tiles get ``-distance from the view centre in tiles``, tiles fetched ahead
            :data:`AHEAD_PRIORITY`) and returns something with ``cancel()``.
    """

    def __init__(self, cache: TileCache, start_job: Callable[[TileKey, int], TileJob]):
        self.cache = cache
        self._start_job = start_job
        #: Bumped by every reconfiguration; a job carries the generation it was started in.
        self.generation = 0
        #: Tiles covering the current view (the panes are complete when all of them are shown).
        self.needed: set[TileKey] = set()
        self.level = 0
        self._pending: dict[TileKey, TileJob] = {}
        self._error_generation = -1

    @property
    def pending(self) -> frozenset[TileKey]:
        """Tiles being computed now."""
        return frozenset(self._pending)

    def update(self, request: TileRequest, t0_s: float, t1_s: float, pixels: int,
               shown: Container[TileKey]) -> list[Tile]:
        """Plan the view ``[t0_s, t1_s]`` (seconds) drawn ``pixels`` columns wide: cancel jobs no longer
        wanted, start the missing ones, and return the cached tiles to show now (those not in ``shown``)."""
        hop_s = request.cfg.hop / request.sample_rate
        f0, f1 = t0_s / hop_s, t1_s / hop_s
        level = level_for(f1 - f0, pixels)
        self.level = level
        keys = [request.key(level, i) for i in tiles_in_range(f0, f1, level, request.total_frames)]
        self.needed = set(keys)
        keep = self.needed | {request.key(level, i) for k in keys[:1] + keys[-1:] for i in (k.index - 1, k.index + 1)}
        for key, job in list(self._pending.items()):
            if key not in keep:
                job.cancel()
                del self._pending[key]
        span = TILE_COLUMNS << level
        ahead = []
        if keys:
            for i in (keys[0].index - 1, keys[-1].index + 1):
                if 0 <= i and i * span < request.total_frames:
                    ahead.append(request.key(level, i))
        for key in ahead:
            if key not in self._pending and self.cache.get(key) is None:
                self._pending[key] = self._start_job(key, AHEAD_PRIORITY)
        centre = (f0 + f1) / 2
        show = []
        for key in keys:
            if key in shown:
                continue
            tile = self.cache.get(key)
            if tile is not None:
                show.append(tile)
            elif key not in self._pending:
                # Tiles nearest the view centre first.
                priority = -int(abs((key.index + 0.5) * span - centre) / span)
                self._pending[key] = self._start_job(key, priority)
        return show

    def finished(self, tile: Tile, generation: int) -> bool:
        """A job's tile arrived: cache it; ``True`` when it belongs on screen now (current generation, in view)."""
        self.cache.put(tile)
        self._pending.pop(tile.key, None)
        return generation == self.generation and tile.key in self.needed

    def failed(self, generation: int) -> bool:
        """A job failed: ``True`` for the first failure of the current generation (report it once, not per tile)."""
        if generation == self.generation and self._error_generation != generation:
            self._error_generation = generation
            return True
        return False

    def complete(self, shown: Container[TileKey]) -> bool:
        """Every tile the view needs is in ``shown``."""
        return bool(self.needed) and all(k in shown for k in self.needed)

    def new_generation(self) -> None:
        """A reconfiguration: results of jobs started before it are no longer shown."""
        self.generation += 1

    def cancel_all(self) -> None:
        """A new generation, with every running job cancelled."""
        self.generation += 1
        for job in self._pending.values():
            job.cancel()
        self._pending.clear()
