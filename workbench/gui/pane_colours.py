"""Colours of the spectrogram panes: the colormap each slot draws with, its lookup table, and its colour range.

A slot's colormap follows the colormap kind of the view it shows (the chosen map for sequential views, a
cyclic one for phase-like views, a diverging one around zero). Its levels start at the view's fixed range
(:meth:`~workbench.core.views.registry.DisplaySettings.default_levels`); views without one (compressed real
and imaginary parts, differences) take a symmetric range from the first tile shown and refine it once over
everything visible (:func:`~workbench.core.views.levels.symmetric_levels`). Dragging a colour bar sets the
levels; a symmetric view's bar stays symmetric, and the magnitude bar is the display's dB range.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ..core.views.levels import symmetric_levels
from ..core.views.registry import PANE_SLOTS, view

MAGNITUDE_COLORMAPS = ("viridis", "inferno", "magma", "plasma", "cividis", "turbo", "CET-L1")
#: pyqtgraph colormap per colormap kind of the view registry (sequential views use the chosen colormap).
KIND_COLORMAPS = {"cyclic": "CET-C6",       # -pi and +pi share a colour
                  "diverging": "CET-D1A"}   # blue - white - red, symmetric around zero


class PaneColours:
    """Colormap, lookup table and levels of every pane slot of a :class:`~workbench.gui.spectrogram.SpectrogramView`.

    Args:
        host: the widget; its ``panes`` (slot -> :class:`~workbench.gui.spectrogram_pane.SpectrogramPane`),
            ``display``, ``cfg`` and ``sample_rate`` are read, never written.
        on_magnitude_range: ``on_magnitude_range(low_db, high_db)`` is called when the magnitude colour bar
            was dragged to a range other than the display's ``db_range``.
    """

    def __init__(self, host, on_magnitude_range):
        self._host = host
        self._on_magnitude_range = on_magnitude_range
        self._levels: dict[str, tuple[float, float]] = {}
        self._auto_symmetric: dict[str, bool] = {}
        self._refine_levels = False
        self._luts: dict[str, np.ndarray] = {}
        self._applied_maps: dict[str, str] = {}

    def _slot_view(self, slot: str):
        return view(self._host.display.pane_views()[slot])

    def colormap_name(self, slot: str) -> str:
        """pyqtgraph colormap drawn in pane ``slot`` (by the view's colormap kind)."""
        kind = self._slot_view(slot).colormap_kind
        return self._host.display.colormap if kind == "sequential" else KIND_COLORMAPS[kind]

    def lookup_table(self, slot: str) -> np.ndarray:
        """The ``(512, 3|4)`` uint8 colour table pane ``slot`` maps its levels onto."""
        return self._luts[slot]

    def levels(self, slot: str) -> tuple[float, float]:
        return self._levels.get(slot, self.default_levels(slot))

    def forget_applied(self) -> None:
        """The panes were rebuilt: their colour bars have none of the maps applied to the old ones."""
        self._applied_maps = {}

    def apply(self) -> None:
        """Colour tables and levels of every pane; a pane whose map and levels did not change is left
        alone (its colour bar keeps its cached drawing when only the shown version changes)."""
        luts = {}
        for name, pane in self._host.panes.items():
            map_name = self.colormap_name(name)
            self._levels.setdefault(name, self.default_levels(name))
            if self._applied_maps.get(name) == map_name:
                luts[name] = self._luts[name]   # set together with _applied_maps below
            else:
                cmap = pg.colormap.get(map_name)
                pane.bar.setColorMap(cmap)
                luts[name] = cmap.getLookupTable(nPts=512)
                self._applied_maps[name] = map_name
            if tuple(float(v) for v in pane.bar.levels()) != tuple(float(v) for v in self._levels[name]):
                pane.bar.setLevels(values=self._levels[name])
            pane.tiles.set_lookup_table(luts[name])
            pane.tiles.set_levels(self._levels[name])
        self._luts = luts

    def default_levels(self, name: str) -> tuple[float, float]:
        host = self._host
        levels = host.display.default_levels(host.display.pane_views()[name], host.cfg, host.sample_rate)
        # Automatic (None): a placeholder until the first tile sets a symmetric range.
        return levels if levels is not None else (-1.0, 1.0)

    def reset_levels(self, slot: str) -> None:
        """Pane ``slot`` shows another view (or a new analysis): back to that view's default levels."""
        self._levels[slot] = self.default_levels(slot)

    def display_changed(self, old) -> None:
        """The host's display settings changed from ``old`` (same layout and frequency scale): the magnitude
        levels follow the dB range, a slot showing another view takes that view's default levels, and
        automatic ranges are taken again when the compression or a view changed (call :meth:`apply` next)."""
        display = self._host.display
        if display.db_range != old.db_range:
            self._levels["magnitude"] = tuple(display.db_range)
        new_views, old_views = display.pane_views(), old.pane_views()
        for slot in PANE_SLOTS:
            if new_views[slot] != old_views[slot]:
                self.reset_levels(slot)
        if display.compression != old.compression or new_views != old_views:
            self.reset_auto_levels()

    def reset_auto_levels(self) -> None:
        """Panes whose view has no fixed range take a symmetric one from the next tile shown."""
        self._auto_symmetric = {slot: self._slot_view(slot).levels is None for slot in PANE_SLOTS}

    def auto_level(self, arrays: dict[str, np.ndarray]) -> None:
        """First tile after a (re)configuration sets the symmetric range of panes without fixed levels
        (real/imag) at the 99.5th percentile of ``|values|``."""
        for name in PANE_SLOTS:
            if self._auto_symmetric.get(name):
                self._refine_levels = True
                self._auto_symmetric[name] = False
                self._set_symmetric_levels(name, [arrays[name]])

    def refine_auto_levels(self) -> None:
        """Every visible tile is shown: the ranges the first tile set are refined once over all of them."""
        if not self._refine_levels:
            return
        self._refine_levels = False
        for name in PANE_SLOTS:
            if self._slot_view(name).levels is None:
                self._set_symmetric_levels(name, [im.image for im in self._host.panes[name].tiles.images()])

    def _set_symmetric_levels(self, name: str, arrays) -> None:
        self._levels[name] = symmetric_levels(arrays)
        self._host.panes[name].bar.setLevels(values=self._levels[name])

    def on_bar_levels(self, name: str) -> None:
        """The colour bar of pane ``name`` was dragged (or set)."""
        pane = self._host.panes[name]
        lo, hi = pane.bar.levels()
        if self._slot_view(name).symmetric:
            m = max(abs(lo), abs(hi))
            if (lo, hi) != (-m, m):
                pane.bar.setLevels(values=(-m, m))
                return
        self._levels[name] = (lo, hi)
        pane.tiles.set_levels((lo, hi))
        if name == "magnitude" and (lo, hi) != tuple(self._host.display.db_range):
            self._on_magnitude_range(lo, hi)
