"""Four linked complex-spectrogram panes (magnitude, phase, real, imaginary) and a waveform overview.

:class:`SpectrogramView` shows one channel of one :class:`~workbench.core.document.recording.Version`. It is
the thin widget that composes the parts, pyqtgraph's way:

* :class:`~workbench.core.views.scheduler.TileScheduler` (Qt-free) decides which tiles
  (:mod:`workbench.core.views.tiles`) the view needs at the level of detail the pane width asks for, which to
  compute on the thread pool, which to cancel when the view moves on; finished tiles are cached;
* one :class:`~workbench.gui.spectrogram_pane.SpectrogramPane` per slot, whose
  :class:`~workbench.gui.spectrogram_pane.TileImagesItem` draws its tiles in data coordinates (x: seconds,
  y: frequency axis value); every pane is X- and Y-linked to the magnitude pane;
* :class:`~workbench.gui.overview_plot.OverviewPlot` and :class:`~workbench.gui.overview_plot.SpeechLane`
  under them, the overview's envelope computed progressively by :mod:`workbench.core.views.overview`;
* :class:`~workbench.gui.tile_loader.TileLoader` runs the tile and envelope jobs and hands their results to
  the panes and the overview;
* :class:`~workbench.gui.pane_colours.PaneColours` owns each pane's colormap, lookup table and levels;
* :class:`~workbench.gui.pane_gestures.PaneGestures` turns clicks, drags and mouse moves into signals;
* :class:`~workbench.gui.pane_range.PaneRange` holds the linked time/frequency range and its limits, with the
  overview's visible-span marker in step;
* :class:`~workbench.gui.pane_markers.PaneMarkers` draws the playhead, the loop span and the empty-state hint;
* the crosshair read-out from :mod:`workbench.core.views.readout`, on the exact STFT frame.

The widget keeps what is shown (source, channel, analysis, display settings, difference partner), builds the
panes for the layout, and tells the parts when any of it changes. Nothing of the audio is held in memory.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..core.audio.audio_io import AudioSource
from ..core.views.figure import FigurePane, FigureSettings
from ..core.views.readout import ReadoutPartner, frame_bin_at, read_point, readout_text
from ..core.views.registry import FLOOR_DB, PANE_SLOTS, DisplaySettings, images_key, view  # noqa: F401
from ..core.views.stft import StftConfig
from . import first_paint
from .axes import FreqScale
from .overview_plot import AXIS_WIDTH, BACKGROUND, OverviewPlot, SpeechLane
from .pane_colours import PaneColours
from .pane_gestures import PaneGestures
from .pane_markers import PaneMarkers
from .pane_range import PaneRange
from .spectrogram_pane import SpectrogramPane, place_panes
from .tile_loader import TileLoader

PANES = PANE_SLOTS


class SpectrogramView(QWidget):
    """The four linked panes plus overview for one channel of one version.

    Signals:
        painted(): every visible tile of every pane is in the scene (and the overview is complete); the
            next paint event shows them (call :meth:`paint_now` to paint synchronously).
        tilesPainted(): the same for the panes alone (the overview may still be filling).
        readoutChanged(dict): the crosshair moved; see :meth:`readout`.
        viewRangeChanged(float, float): visible time span in seconds.
        tileError(str): a tile could not be computed (decoding error); the message names the file.
        seekRequested(float): a plain left click on a pane or the overview asks to move the playhead there
            (seconds).
        loopSelected(float, float): a Shift + drag on a pane or the overview selected ``(start_s, stop_s)``
            (emitted at the release; :meth:`set_loop_region` shows a region).
        boxSelected(float, float, float, float): a Ctrl + drag on a pane selected ``(t0_s, t1_s, f0_hz,
            f1_hz)`` (emitted at the release; the rectangle stays drawn until :meth:`clear_box`).
    """

    painted = Signal()
    tilesPainted = Signal()
    readoutChanged = Signal(dict)
    viewRangeChanged = Signal(float, float)
    #: the visible frequency span (Hz) changed: a zoom, a pan, a fit or another scale
    frequencyRangeChanged = Signal(float, float)
    cursorMoved = Signal(float)
    tileError = Signal(str)
    magnitudeRangeDragged = Signal(float, float)
    seekRequested = Signal(float)
    loopSelected = Signal(float, float)
    boxSelected = Signal(float, float, float, float)

    def __init__(self, parent: QWidget | None = None, *, cache_bytes: int = 256 << 20, threads: int = 2):
        super().__init__(parent)
        self.cfg = StftConfig()
        self.display = DisplaySettings()
        self.source: AudioSource | None = None
        self.source_name = ""
        self.channel = 0
        self.sample_rate = 16000
        self.total_frames = 0
        self.loader = TileLoader(self, cache_bytes, threads)
        self.cache = self.loader.cache
        self.pool = self.loader.pool
        self.tiles = self.loader.scheduler
        self.colours = PaneColours(self, self._on_magnitude_range_dragged)
        self.gestures = PaneGestures(self)
        self.markers = PaneMarkers(self)
        self._update_timer = QTimer(self, singleShot=True, interval=10)
        self._update_timer.timeout.connect(self.update_tiles)
        self.scale = FreqScale("linear", self.sample_rate, self.cfg.nfft)
        # Difference views: (source, channel, source is the original, label) of the compared version.
        self._partner: tuple[AudioSource, int, bool, str] | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(BACKGROUND)
        self.graphics.ci.setSpacing(6)
        self.graphics.ci.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.graphics, 1)
        self.overview = OverviewPlot(self.gestures.on_region_selecting)
        self.region = self.overview.region
        self.view_range = PaneRange(self, self._on_time_range)
        self.overview_playhead = self.overview.playhead
        self.overview_loop = self.overview.loop
        layout.addWidget(self.overview)
        self.speech_lane = SpeechLane(self.overview)
        layout.addWidget(self.speech_lane)

        self.panes: dict[str, SpectrogramPane] = {}
        self._build_panes()
        self.gestures.connect_scenes(self.graphics, self.overview)

    # ------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------
    def set_speech_activity(self, result) -> None:
        """Show a :class:`~workbench.core.measure.vad.VadResult` in the speech lane (``None`` hides it)."""
        self.speech_lane.set_activity(result)

    def _build_panes(self) -> None:
        """(Re)create the panes in the current layout; tile images are redrawn from the cache."""
        # New colour bars: nothing of what was applied to the old ones holds for them.
        self.colours.forget_applied()
        old_range = None
        if self.panes:
            old_range = self.master.getViewBox().viewRange()
            self.view_range.detach()
        self.graphics.ci.clear()
        row_layout = self.display.layout == "row"
        # Side by side, the colour bars go under the plots: four vertical bars and their labels would
        # take the width the plots need at 1366 px.
        self.panes = {name: SpectrogramPane(name, self.scale, self.gestures.on_region_selecting,
                                            horizontal_bar=row_layout, on_box=self.gestures.on_box_selecting)
                      for name in PANES}
        place_panes(self.graphics, self.panes, row_layout, AXIS_WIDTH)
        master = self.master
        for pane in self.panes.values():
            pane.bar.sigLevelsChanged.connect(lambda bar, n=pane.name: self.colours.on_bar_levels(n))
        self.view_range.attach()
        self._apply_titles()
        self.colours.apply()
        self.view_range.apply_limits()
        if old_range is not None:
            master.getViewBox().setRange(xRange=old_range[0], yRange=old_range[1], padding=0)
        elif self.source is None:
            self.view_range.fit()
        self.tiles.needed = set()
        self.loader.ready = False
        self.markers.panes_rebuilt()
        self.schedule_update()

    @property
    def master(self) -> pg.PlotItem:
        return self.panes["magnitude"].plot

    def _apply_titles(self) -> None:
        """Pane titles and colour-bar labels from the view registry (unit, compression, masking)."""
        label = self._partner_label()
        for slot, pane in self.panes.items():
            spec = view(self.display.pane_views()[slot])
            title = spec.title(self.display.compression)
            if spec.needs_partner:
                title += f": {label}"
            pane.show_title(title)
            pane.show_caption("  ".join(t for t in (spec.unit, self.display.mask_caption(spec.name)) if t))

    def pane_title(self, slot: str) -> str:
        """Title text of pane ``slot``."""
        return self.panes[slot].title.text

    def colorbar_title(self, slot: str) -> str:
        """Text of the colour bar label of pane ``slot`` (unit and, for masked views, the mask)."""
        return self.panes[slot].caption()

    def _partner_label(self) -> str:
        """What the difference pane compares, e.g. ``deepfilternet3 − original``."""
        if self._partner is None:
            return "no enhanced version to compare"
        return self._partner[3]

    def colormap_name(self, slot: str) -> str:
        """pyqtgraph colormap drawn in pane ``slot`` (by the view's colormap kind)."""
        return self.colours.colormap_name(slot)

    def lookup_table(self, slot: str) -> np.ndarray:
        """The ``(512, 3|4)`` uint8 colour table pane ``slot`` maps its levels onto."""
        return self.colours.lookup_table(slot)

    def _on_magnitude_range_dragged(self, lo: float, hi: float) -> None:
        """The magnitude colour bar was dragged: it is the display's dB range from now on."""
        old_key = images_key(self.display)
        self.display = replace(self.display, db_range=(float(lo), float(hi)))
        if images_key(self.display) != old_key:   # masking / difference floor follow the range
            self._apply_titles()
            self.loader.redraw()
        self.magnitudeRangeDragged.emit(float(lo), float(hi))

    # ------------------------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------------------------
    def set_source(self, source: AudioSource | None, name: str = "", channel: int = 0,
                   keep_view: bool = False) -> None:
        """Show ``channel`` of ``source`` (``None`` clears the view). The view fits the whole file."""
        self.loader.cancel_all()
        self.source = source
        self.source_name = name
        self.channel = channel
        # Tiles are keyed by source, so going back to a version already seen reuses its cached tiles.
        if source is not None:
            self.loader.source_id = self.loader.id_of(source)
        self.loader.clear()
        self.colours.reset_auto_levels()
        self.markers.hint.setVisible(source is None)
        if not keep_view:
            # A new recording: nothing of the previous one's crosshair, loop or playhead stays on screen.
            self.hide_crosshair()
            self.set_loop_region(None)
            self.set_playhead(None)
        if source is None:
            first_paint.release(self)
            # Empty state: axes, overview and limits as before any file was opened.
            self.total_frames = 0
            self.loader.clear_envelope()
            # The closed file's amplitude scale must not stay on the empty overview.
            self.overview.getPlotItem().setRange(xRange=(0, 1), yRange=(-1, 1), padding=0)
            self.sample_rate = 16000
            self._set_scale()
            self.view_range.apply_limits()
            self.view_range.fit()
            self.markers.place_hint()
            self.readoutChanged.emit({})
            return
        first_paint.hold(self)   # work that can wait (see first_paint) waits until these tiles are drawn
        self.sample_rate = source.sample_rate
        self._reconfigure(fit=not keep_view)
        self.loader.start_envelope()

    def set_channel(self, channel: int) -> None:
        if self.source is not None and channel != self.channel:
            self.set_source(self.source, self.source_name, channel, keep_view=True)

    def set_stft(self, cfg: StftConfig) -> None:
        """Change the analysis; tiles recompute on the pool while the old images stay until replaced."""
        if cfg == self.cfg:
            return
        self.loader.cancel_all()
        self.cfg = cfg
        self.loader.clear()
        if self.source is not None:
            self._reconfigure(fit=False)

    def set_display(self, display: DisplaySettings) -> None:
        """Apply drawing settings; levels and colormaps redraw at once, images are re-derived from cached
        complex tiles on the GUI thread (no new STFT)."""
        old = self.display
        if display == old:
            return
        self.display = display
        if display.layout != old.layout:
            self._build_panes()
            return
        if display.freq_scale != old.freq_scale:
            self._set_scale()
            self.loader.clear()
            self.view_range.apply_limits()
            self.view_range.fit_frequencies()
            self.schedule_update()
            return
        self.colours.display_changed(old)
        if display.needs_previous() != old.needs_previous() or display.needs_partner() != old.needs_partner():
            # Needs each column's predecessor frame, or the partner's frames: different tiles.
            self.loader.clear()
        self._apply_titles()
        self.colours.apply()
        if images_key(display) != images_key(old):
            self.loader.redraw()
        self.schedule_update()

    def fit(self) -> None:
        if self.source is None:
            return
        self.view_range.fit()

    def set_time_range(self, t0: float, t1: float) -> None:
        self.view_range.set_time_range(t0, t1)

    def time_range(self) -> tuple[float, float]:
        return self.view_range.time_range()

    def zoom(self, factor: float) -> None:
        """Zoom time by ``factor`` (<1 zooms in) around the view centre."""
        t0, t1 = self.time_range()
        c, half = (t0 + t1) / 2, (t1 - t0) / 2 * factor
        self.set_time_range(c - half, c + half)

    def pan(self, fraction: float) -> None:
        """Move the view by ``fraction`` of its width (negative = earlier)."""
        t0, t1 = self.time_range()
        d = (t1 - t0) * fraction
        self.set_time_range(t0 + d, t1 + d)

    def set_playhead(self, time_s: float | None) -> None:
        """Show the playback position (seconds) as a vertical line in every pane and the overview."""
        self.markers.set_playhead(time_s)

    def set_loop_region(self, start_s: float | None, stop_s: float | None = None) -> None:
        """Shade ``[start_s, stop_s]`` (seconds) in every pane and the overview; ``None`` hides it."""
        self.markers.set_loop_region(start_s, stop_s)

    def loop_region(self) -> tuple[float, float] | None:
        return self.markers.loop_s

    def set_difference_partner(self, source: AudioSource | None, channel: int = 0, partner_is_original: bool = True,
                               label: str = "") -> None:
        """The version the difference views compare the shown one with.

        Args:
            source: the other version's samples (same length and rate as the shown source), or ``None``.
            partner_is_original: ``True`` when ``source`` is the original (the shown version is the
                enhanced side), ``False`` when the shown version is the original.
            label: pane title text, e.g. ``deepfilternet3 − original``.
        """
        new = None if source is None else (source, int(channel), bool(partner_is_original), label)
        old = self._partner
        if (new is None) == (old is None) and (new is None or (new[0] is old[0] and new[1:] == old[1:])):
            return
        self._partner = new
        self._apply_titles()
        if self.display.needs_partner() and self.source is not None:
            # New tile keys (the partner is part of them); the old images stay until replaced.
            self.loader.ready = False
            self.schedule_update()

    def difference_partner(self) -> tuple[AudioSource, int, bool, str] | None:
        """``(source, channel, partner_is_original, label)`` the difference views compare with, or ``None``."""
        return self._partner

    def visible_region(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((t0, t1) seconds, (f0, f1) Hz)`` shown in the panes (clipped to the recording)."""
        return self.view_range.visible_region()

    def set_visible_region(self, time_s: tuple[float, float], freq_hz: tuple[float, float] | None = None) -> None:
        """Show ``time_s`` (seconds) and, if given, ``freq_hz`` (Hz) — sessions restore the view through this."""
        self.view_range.set_visible_region(time_s, freq_hz)

    def figure_settings(self, whole_file: bool = False) -> FigureSettings:
        """What the panes show, as :class:`~workbench.core.views.figure.FigureSettings` for File > Export figure:
        each pane's view, colour range and colour table, compression, masking threshold, frequency scale,
        layout and (unless ``whole_file``) the visible time/frequency region."""
        d = self.display
        panes = tuple(FigurePane(d.pane_views()[slot], tuple(float(v) for v in self.levels(slot)),
                                 self.colours.lookup_table(slot)) for slot in PANES)
        (t0, t1), (f0, f1) = self.visible_region()
        return FigureSettings(panes=panes, layout=d.layout, compression=d.compression, floor_db=float(d.db_range[0]),
                              mask_below_db=None, mask_floor_dbfs=d.mask_floor_dbfs, freq_scale=d.freq_scale,
                              time_range_s=None if whole_file else (t0, t1),
                              freq_range_hz=None if whole_file else (f0, f1))

    def clear_box(self) -> None:
        """Hide the time-frequency box drawn by a Ctrl + drag."""
        self.gestures.clear_box()

    def set_rubber_band(self, on: bool) -> None:
        """Left drags on the panes zoom to a rectangle (``True``) or pan (``False``)."""
        self.gestures.set_rubber_band(on)

    def paint_now(self) -> None:
        """Paint the panes and overview synchronously (timing marks, screenshots)."""
        self.graphics.viewport().repaint()
        self.overview.viewport().repaint()

    def is_painted(self) -> bool:
        """True when every tile the current view needs is drawn and the overview is complete."""
        return self.loader.is_painted()

    def images(self, name: str) -> list[pg.ImageItem]:
        """Tile images currently shown in pane ``name`` (for tests and screenshots)."""
        return self.panes[name].tiles.images()

    def levels(self, name: str) -> tuple[float, float]:
        return self.colours.levels(name)

    def frame_bin_at(self, time_s: float, freq_hz: float) -> tuple[int, int]:
        """STFT frame and bin nearest to ``time_s`` and ``freq_hz`` (clipped to the recording)."""
        return frame_bin_at(self.cfg, self.sample_rate, self.total_frames, time_s, freq_hz)

    def readout(self, time_s: float, freq_hz: float) -> dict:
        """Values of what the panes draw at the frame/bin nearest ``(time_s, freq_hz)``, on the exact STFT
        frame (see :func:`~workbench.core.views.readout.read_point`); empty without a source."""
        if self.source is None:
            return {}
        partner = None
        if self._partner is not None:
            partner = ReadoutPartner(self._partner[0], self._partner[1], self._partner[2])
        return read_point(self.source, self.channel, self.cfg, self.display, time_s, freq_hz, partner)

    def readout_text(self, values: dict) -> str:
        """One line for the status area (see :func:`~workbench.core.views.readout.readout_text`)."""
        return readout_text(values)

    def shutdown(self) -> None:
        """Cancel work and wait for the pool (call before the widget is destroyed)."""
        first_paint.release(self)
        self.loader.shutdown()

    # ------------------------------------------------------------------------------------------------------
    # tiles
    # ------------------------------------------------------------------------------------------------------
    def _reconfigure(self, fit: bool) -> None:
        self.tiles.new_generation()
        self.total_frames = self.cfg.frame_count(self.source.frames)
        self._set_scale()
        self.colours.reset_levels("phase")
        self.colours.apply()
        self.view_range.apply_limits()
        if fit:
            self.fit()
        self.loader.ready = False
        self.schedule_update()

    def _set_scale(self) -> None:
        """The frequency axis for the display's scale, the sample rate and the FFT size."""
        self.scale = FreqScale(self.display.freq_scale, self.sample_rate, self.cfg.nfft)
        for pane in self.panes.values():
            pane.axis.set_scale(self.scale)

    def schedule_update(self) -> None:
        self._update_timer.start()

    def _on_time_range(self, t0: float, t1: float) -> None:
        self.viewRangeChanged.emit(t0, t1)
        # Not "painted" until the tiles for the new range are known to be shown.
        self.loader.ready = False
        self.schedule_update()

    def update_tiles(self) -> None:
        """Work out which tiles the view needs, show cached ones, queue the rest, cancel the stale."""
        self.loader.update()

    def overview_envelope(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the overview draws now: bucket centres (s), their minima and maxima (float32)."""
        return self.overview.envelope()

    # ------------------------------------------------------------------------------------------------------
    # crosshair
    # ------------------------------------------------------------------------------------------------------
    def hide_crosshair(self) -> None:
        self.gestures.hide_crosshair()

    def crosshair_visible(self) -> bool:
        return self.gestures.crosshair_visible()

    def show_crosshair(self, time_s: float, freq_hz: float) -> dict:
        """Place the crosshair at ``(time_s, freq_hz)`` in every pane and emit the readout."""
        return self.gestures.show_crosshair(time_s, freq_hz)
