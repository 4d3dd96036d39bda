"""What the spectrogram panes and the overview draw over the tiles: the playhead and the loop span (both kept
when the panes are rebuilt for another layout), and the hint the empty magnitude pane shows."""

from __future__ import annotations

import pyqtgraph as pg

#: What the empty magnitude pane says before a file is open.
EMPTY_HINT = "Drop audio files here\nor use File > Open (Ctrl+O)"


class PaneMarkers:
    """Playhead, loop span and empty-state hint of a :class:`~workbench.gui.spectrogram.SpectrogramView`.

    Args:
        host: the widget; its ``panes``, ``overview``, ``master`` plot, ``scale`` and ``source`` are read.
    """

    def __init__(self, host):
        self._host = host
        self.playhead_s: float | None = None
        self.loop_s: tuple[float, float] | None = None
        self.hint: pg.TextItem | None = None

    def panes_rebuilt(self) -> None:
        """New panes: the hint goes into the new magnitude pane, playhead and loop are drawn again."""
        host = self._host
        # Two short lines: one long line was cut by the pane's edges in a narrow window.
        self.hint = pg.TextItem(EMPTY_HINT, color="#9aa3b0", anchor=(0.5, 0.5))
        self.place_hint()
        host.master.addItem(self.hint, ignoreBounds=True)
        self.hint.setVisible(host.source is None)
        self.set_loop_region(*(self.loop_s or (None, None)))
        self.set_playhead(self.playhead_s)

    def place_hint(self) -> None:
        """Centre the hint on the empty view's unit time span and the frequency axis."""
        self.hint.setPos(0.5, sum(self._host.scale.y_limits()) / 2)

    def set_playhead(self, time_s: float | None) -> None:
        """Show the playback position (seconds) as a vertical line in every pane and the overview."""
        self.playhead_s = time_s
        for line in [p.playhead for p in self._host.panes.values()] + [self._host.overview.playhead]:
            if time_s is None:
                line.hide()
            else:
                line.setPos(time_s)
                line.show()

    def set_loop_region(self, start_s: float | None, stop_s: float | None = None) -> None:
        """Shade ``[start_s, stop_s]`` (seconds) in every pane and the overview; ``None`` hides it."""
        self.loop_s = None if start_s is None or stop_s is None or stop_s <= start_s else (start_s, stop_s)
        for region in [p.loop for p in self._host.panes.values()] + [self._host.overview.loop]:
            if self.loop_s is None:
                region.hide()
            else:
                region.setRegion(self.loop_s)
                region.show()
