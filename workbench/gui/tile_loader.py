"""Loading what the spectrogram panes and the overview draw: tiles and the waveform envelope, on a thread pool.

:class:`TileLoader` asks the Qt-free :class:`~workbench.core.views.scheduler.TileScheduler` which tiles the
view needs, runs the missing ones as :class:`~workbench.gui.workers.GeneratorWorker` jobs (the pane images are
derived on the worker too), and hands finished tiles to the panes in batches on the GUI thread. The overview's
envelope is computed the same way, at the lowest priority, and kept for the versions seen last. The loader
knows when everything visible is drawn and says so through the view's ``tilesPainted`` and ``painted``.
"""

from __future__ import annotations

import itertools
import weakref

from PySide6.QtCore import QThreadPool, QTimer

from ..core.audio.audio_io import AudioSource
from ..core.views.overview import OVERVIEW_BUCKETS, EnvelopeCurves, envelope_curves
from ..core.views.registry import DisplaySettings
from ..core.views.scheduler import TileRequest, TileScheduler
from ..core.views.tiles import Tile, TileCache, TileKey, compute_pair_tile, compute_tile, tile_images
from . import first_paint
from .workers import GeneratorWorker

#: Finished overview envelopes kept per view (versions switched back to show theirs at once).
ENVELOPE_CACHE_ENTRIES = 16


def _tile_steps(source: AudioSource, key: TileKey, total_frames: int, generation: int, display: DisplaySettings,
                partner: tuple | None, cache: TileCache | None, should_stop):
    """Worker generator: :func:`compute_tile` (or the pair tile of a difference view), with the pane
    images derived there too, so the GUI thread only uploads finished arrays. Yields ``(tile, generation)``
    — or ``(exception, generation)``: a decoding error is shown once, not raised per tile."""
    try:
        if key.partner_id and partner is not None:
            gen = compute_pair_tile(source, key, total_frames, partner[0], partner[1], cache, should_stop)
        else:
            gen = compute_tile(source, key, total_frames, should_stop)
        for item in gen:
            if should_stop():
                return
            if item is not None:
                tile_images(item, source.sample_rate, display)
                yield item, generation
    except Exception as exc:  # a decoding error must not end the worker silently
        yield exc, generation


def _envelope_steps(source: AudioSource, channel: int, buckets: int, generation: int, should_stop):
    """Worker generator: :func:`~workbench.core.views.overview.envelope_curves` tagged with ``generation``."""
    try:
        for curves in envelope_curves(source, channel, buckets, should_stop=should_stop):
            yield curves, generation
    except Exception:
        return


class TileLoader:
    """Tile and envelope jobs of a :class:`~workbench.gui.spectrogram.SpectrogramView`.

    Args:
        host: the widget; the loader reads what it shows (``source``, ``channel``, ``cfg``, ``display``,
            ``sample_rate``, ``total_frames``, ``scale``, ``panes``, ``overview``, the difference partner, the
            ``view_range``), draws tiles into its panes with the levels of its
            ``colours``, and emits its ``tileError``, ``tilesPainted`` and ``painted``.
        cache_bytes: size of the tile cache.
        threads: pool threads computing tiles.
    """

    def __init__(self, host, cache_bytes: int, threads: int):
        self._host = host
        self.cache = TileCache(cache_bytes)
        self.pool = QThreadPool(host)
        self.pool.setMaxThreadCount(max(1, threads))
        self.scheduler = TileScheduler(self.cache, self._start_tile_job)
        self._source_ids = itertools.count(1)
        #: id of the shown source (tiles and envelopes are keyed by it)
        self.source_id = 0
        self._source_id_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        #: every tile the view needs is drawn
        self.ready = False
        self._envelope_job: GeneratorWorker | None = None
        self._envelope_generation = -1
        #: the overview's envelope is complete
        self.envelope_done = True
        #: finished overview envelopes by (source id, channel), oldest first (a few hundred kB each)
        self._envelopes: dict[tuple[int, int], EnvelopeCurves] = {}
        self._envelope_key: tuple[int, int] | None = None
        # Finished tiles are shown from the next pass of the event loop, all that arrived meanwhile at once:
        # one repaint for a whole set (a new version's tiles come together) and timers and input get a
        # turn in between, instead of a repaint of the four panes after every tile in one long pass.
        self._tile_inbox: list = []
        self._tile_timer = QTimer(host, singleShot=True, interval=0)
        self._tile_timer.timeout.connect(self._drain_tiles)

    def id_of(self, source: AudioSource) -> int:
        """A small id per source object (tiles are keyed by it; a source seen again reuses its tiles)."""
        if source not in self._source_id_of:
            self._source_id_of[source] = next(self._source_ids)
        return self._source_id_of[source]

    def is_painted(self) -> bool:
        return self.ready and self.envelope_done

    # -- tiles ---------------------------------------------------------------------------------------------
    def update(self) -> None:
        """Work out which tiles the view needs, show cached ones, queue the rest, cancel the stale."""
        host = self._host
        if host.source is None or host.total_frames == 0:
            return
        t0, t1 = host.time_range()
        partner = host.difference_partner()
        partner_id, partner_is_original = 0, True
        if host.display.needs_partner() and partner is not None:
            partner_id, partner_is_original = self.id_of(partner[0]), partner[2]
        request = TileRequest(self.source_id, host.channel, host.cfg, host.sample_rate, host.total_frames,
                              host.display.needs_previous(), partner_id, partner_is_original)
        for tile in self.scheduler.update(request, t0, t1, host.view_range.pixels(), host.panes["magnitude"].tiles):
            self._show_tile(tile)
        self._check_complete()

    def _start_tile_job(self, key: TileKey, priority: int) -> GeneratorWorker:
        host = self._host
        partner = host.difference_partner()
        partner = (partner[0], partner[1]) if key.partner_id and partner is not None else None
        args = (host.source, key, host.total_frames, self.scheduler.generation, host.display, partner, self.cache)
        worker = GeneratorWorker(lambda: _tile_steps(*args, should_stop=worker.should_stop), pool=self.pool)
        worker.progress.connect(self._on_tile_item)
        worker.start(priority)
        return worker

    def _on_tile_item(self, item) -> None:
        self._tile_inbox.append(item)
        if not self._tile_timer.isActive():
            self._tile_timer.start()

    def _drain_tiles(self) -> None:
        inbox, self._tile_inbox = self._tile_inbox, []
        for item in inbox:
            self._on_tile(*item)

    def _on_tile(self, tile, generation: int) -> None:
        if isinstance(tile, Exception):
            # One message per (re)configuration, not one per failing tile.
            if self.scheduler.failed(generation):
                self._host.tileError.emit(f"{self._host.source_name}: {tile}")
            return
        if not self.scheduler.finished(tile, generation):
            return
        self._show_tile(tile)
        self._check_complete()

    def _show_tile(self, tile: Tile) -> None:
        host = self._host
        arrays = tile_images(tile, host.sample_rate, host.display)
        host.colours.auto_level(arrays)
        idx, y0, height = host.scale.rows(host.cfg.bins)
        stride_s = tile.key.stride * host.cfg.hop / host.sample_rate
        x0 = float(host.cfg.frame_time_s(int(tile.frames[0]), host.sample_rate)) - stride_s / 2
        rect = (x0, y0, len(tile.frames) * stride_s, height)
        for name, pane in host.panes.items():
            data = arrays[name] if idx is None else arrays[name][:, idx]
            pane.tiles.set_tile(tile, data, rect, host.colours.levels(name), host.colours.lookup_table(name))

    def redraw(self) -> None:
        """Re-derive all shown images from their complex tiles (display settings changed)."""
        for tile in self._host.panes["magnitude"].tiles.tiles():
            self._show_tile(tile)

    def _check_complete(self) -> None:
        host = self._host
        complete = self.scheduler.complete(host.panes["magnitude"].tiles)
        if complete:
            # The first tile set the automatic ranges; refine once over everything visible.
            host.colours.refine_auto_levels()
            # Drop images of other levels / far away once the current level covers the view.
            for pane in host.panes.values():
                pane.tiles.keep_only(self.scheduler.needed)
        self._set_ready(complete)

    def _set_ready(self, ready: bool) -> None:
        was = self.is_painted()
        tiles_were = self.ready
        self.ready = ready
        if ready and not tiles_were:
            self._host.tilesPainted.emit()
            first_paint.release(self._host)
        if self.is_painted() and not was:
            self._host.painted.emit()

    def clear(self) -> None:
        """Remove every tile image from the panes (nothing is needed until the next update)."""
        for pane in self._host.panes.values():
            pane.tiles.clear()
        self.scheduler.needed = set()
        self.ready = False

    def cancel_all(self) -> None:
        self.scheduler.cancel_all()
        if self._envelope_job is not None:
            self._envelope_job.cancel()
            self._envelope_job = None

    def shutdown(self) -> None:
        """Cancel work and wait for the pool."""
        self.cancel_all()
        self.pool.clear()
        self.pool.waitForDone(5000)

    # -- overview ------------------------------------------------------------------------------------------
    def start_envelope(self) -> None:
        if self._envelope_job is not None:
            self._envelope_job.cancel()
            self._envelope_job = None
        host = self._host
        cached = self._envelopes.get((self.source_id, host.channel))
        if cached is not None:
            # A version seen before (A/B switching): its finished envelope is shown at once.
            self.envelope_done = False
            self.show_envelope(cached)
            return
        self.envelope_done = False
        self.show_envelope(EnvelopeCurves.empty(), finish=False)
        generation = self.scheduler.generation
        args = (host.source, host.channel, OVERVIEW_BUCKETS, generation)
        key = (self.source_id, host.channel)
        job = GeneratorWorker(lambda: _envelope_steps(*args, should_stop=job.should_stop), pool=self.pool)
        self._envelope_key = key
        job.progress.connect(self._on_envelope_item)
        self._envelope_job = job
        self._envelope_generation = generation
        # Lowest priority: the visible spectrogram tiles come first.
        job.start(-1000)

    def clear_envelope(self) -> None:
        """No source: the overview is empty, and complete as such."""
        self.show_envelope(EnvelopeCurves.empty(), finish=False)
        self.envelope_done = True

    def _on_envelope_item(self, item) -> None:
        self._on_envelope(*item)

    def show_envelope(self, curves: EnvelopeCurves, finish: bool = True) -> None:
        """Hand finished arrays to the overview (no computation here: the GUI thread only draws)."""
        self._host.overview.set_curves(curves, finish)
        if finish and curves.complete:
            was = self.is_painted()
            self.envelope_done = True
            if self.is_painted() and not was:
                self._host.painted.emit()

    def _on_envelope(self, curves: EnvelopeCurves, generation: int) -> None:
        if self._envelope_job is None or generation != self._envelope_generation or self._host.source is None:
            return
        if curves.complete:
            self._envelope_job = None
            self._envelopes[self._envelope_key] = curves
            while len(self._envelopes) > ENVELOPE_CACHE_ENTRIES:
                self._envelopes.pop(next(iter(self._envelopes)))
        self.show_envelope(curves)
