"""The display controls: the Display and STFT tool bars (pane layout, phase view, frequency scale, colour
map, magnitude range, analysis window, size and hop, compression, mask), the readout, and the visible
time and frequency range — all bound to the workspace.

The controls write :attr:`Workspace.display <workbench.core.document.workspace.Workspace.display>` and
``stft``; the panes and the controls redraw from the workspace's events, so a restored session, a drag
on a colour bar or a control all go the same way. The zoom and pan of the panes write the workspace's
visible range; a change of it (a session opening) moves the panes.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QToolBar

from ..core.views.registry import DEFAULT_MASK_BELOW_DB, DisplaySettings, second_pane_views
from ..core.views.stft import WINDOWS, StftConfig
from .axes import FREQ_SCALES
from .pane_colours import MAGNITUDE_COLORMAPS

FFT_SIZES = (256, 512, 1024, 2048, 4096, 8192)
HOPS = (64, 128, 256, 512, 1024, 2048)


def phase_view_choices() -> dict[str, str]:
    """Second-pane choices, name -> menu text, straight from the view registry."""
    return {name: (f"Difference: {spec.title()}" if spec.needs_partner else spec.label)
            for name, spec in second_pane_views().items()}


def combo(items, tip: str) -> QComboBox:
    """A combo box of ``(text, data)`` items with a tool tip."""
    box = QComboBox()
    for text, data in items:
        box.addItem(text, data)
    box.setToolTip(tip)
    return box


class DisplayControls:
    """The display and STFT controls of ``window`` (its ``view``, ``document``, ``workspace``, ``settings``),
    added to ``toolbar`` (the Display tool bar) and to an STFT tool bar of their own."""

    #: the controls, by attribute name (the window offers them under the same names)
    WIDGETS = ("layout_box", "phase_box", "scale_box", "cmap_box", "db_lo", "db_hi", "window_box", "nfft_box",
               "hop_box", "comp_box", "mask_box", "readout_label")

    def __init__(self, window, toolbar: QToolBar):
        self.window = window
        self.view = window.view
        self.document = window.document
        self.workspace = window.workspace
        self.settings = window.settings
        self._updating = False
        self._combo = combo
        self._build(toolbar)

    def _build(self, toolbar: QToolBar) -> None:
        self.layout_box = self._combo([("2 × 2", "grid"), ("Row", "row")], "Pane layout")
        toolbar.addWidget(QLabel(" Layout "))
        toolbar.addWidget(self.layout_box)
        self.phase_box = self._combo([(v, k) for k, v in phase_view_choices().items()],
                                    "What the second pane shows (the views of workbench.core.views.registry)")
        toolbar.addWidget(QLabel(" Phase view "))
        toolbar.addWidget(self.phase_box)
        self.scale_box = self._combo([(s.capitalize(), s) for s in FREQ_SCALES], "Frequency axis scale")
        toolbar.addWidget(QLabel(" Freq. "))
        toolbar.addWidget(self.scale_box)
        self.cmap_box = self._combo([(c, c) for c in MAGNITUDE_COLORMAPS], "Magnitude colormap")
        toolbar.addWidget(QLabel(" Colormap "))
        toolbar.addWidget(self.cmap_box)
        self.db_lo = QDoubleSpinBox(minimum=-200, maximum=0, singleStep=5, decimals=0, value=-100, suffix=" dB")
        self.db_hi = QDoubleSpinBox(minimum=-195, maximum=40, singleStep=5, decimals=0, value=0, suffix=" dB")
        self.db_lo.setToolTip("Bottom of the magnitude colour range (dBFS)")
        self.db_hi.setToolTip("Top of the magnitude colour range (dBFS)")
        toolbar.addWidget(QLabel(" Range "))
        toolbar.addWidget(self.db_lo)
        toolbar.addWidget(QLabel("…"))
        toolbar.addWidget(self.db_hi)
        st = QToolBar("STFT", self.window)
        st.setObjectName("toolbar_stft")
        self.window.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        self.window.addToolBar(Qt.ToolBarArea.TopToolBarArea, st)
        self.window_box = self._combo([(w, w) for w in WINDOWS], "Analysis window")
        self.nfft_box = self._combo([(str(n), n) for n in FFT_SIZES], "Window length (samples)")
        self.hop_box = self._combo([(str(h), h) for h in HOPS], "Hop (samples)")
        st.addWidget(QLabel(" STFT window "))
        st.addWidget(self.window_box)
        st.addWidget(QLabel(" Size "))
        st.addWidget(self.nfft_box)
        st.addWidget(QLabel(" Hop "))
        st.addWidget(self.hop_box)
        st.addSeparator()
        self.comp_box = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, decimals=2, value=0.3)
        self.comp_box.setToolTip("Compression exponent c for real/imag: sign(x)|x|^c (1 = linear)")
        st.addWidget(QLabel(" Compression "))
        st.addWidget(self.comp_box)
        self.mask_box = QDoubleSpinBox(minimum=0, maximum=200, singleStep=10, decimals=0,
                                       value=DEFAULT_MASK_BELOW_DB, suffix=" dB")
        self.mask_box.setSpecialValueText("off")
        self.mask_box.setToolTip("Instantaneous frequency and group delay: blank bins more than this many dB "
                                 "under the top of the magnitude range (their phase is noise there); 0 = off")
        st.addWidget(QLabel(" Mask "))
        st.addWidget(self.mask_box)

        st.addSeparator()
        self.readout_label = QLabel("")
        self.readout_label.setMinimumWidth(420)
        self.readout_label.setTextFormat(Qt.TextFormat.PlainText)
        self.readout_label.setStyleSheet("font-family: monospace;")
        st.addWidget(self.readout_label)


    def wire(self) -> None:
        """Connect the controls, the panes and the workspace."""
        document = self.document
        self.view.frequencyRangeChanged.connect(self._on_frequency_range)
        self.view.readoutChanged.connect(self._on_readout)
        self.view.magnitudeRangeDragged.connect(self._on_magnitude_range_dragged)
        for box in (self.layout_box, self.phase_box, self.scale_box, self.cmap_box):
            box.currentIndexChanged.connect(self._on_display_controls)
        for spin in (self.db_lo, self.db_hi, self.comp_box, self.mask_box):
            spin.valueChanged.connect(self._on_display_controls)
        for box in (self.window_box, self.nfft_box, self.hop_box):
            box.currentIndexChanged.connect(self._on_stft_controls)
        document.displayChanged.connect(self._on_workspace_display)
        document.stftChanged.connect(self._on_workspace_display)
        document.stateChanged.connect(self._on_workspace_state)

    def restore_settings(self) -> None:
        """The display and STFT settings the person used last (settings file) into the workspace."""
        s = self.settings
        d = DisplaySettings()
        try:
            display = DisplaySettings(
                layout=s.value("display/layout", d.layout, str),
                phase_view=s.value("display/phase_view", d.phase_view, str),
                freq_scale=s.value("display/freq_scale", d.freq_scale, str),
                colormap=s.value("display/colormap", d.colormap, str),
                db_range=(float(s.value("display/db_low", d.db_range[0])), float(s.value("display/db_high", d.db_range[1]))),
                compression=float(s.value("display/compression", d.compression)),
                mask_below_db=float(s.value("display/mask_below_db", d.mask_below_db)))
            if display.colormap not in MAGNITUDE_COLORMAPS or display.phase_view not in phase_view_choices():
                display = d
            display.validate()
            cfg = StftConfig(n_fft=int(s.value("stft/n_fft", 1024)), hop=int(s.value("stft/hop", 256)),
                             window=s.value("stft/window", "hann", str))
        except (ValueError, TypeError):
            display, cfg = d, StftConfig()  # a damaged settings file must not stop the program
        self.workspace.set_display(dataclasses.asdict(display))
        self.workspace.set_stft({"n_fft": cfg.n_fft, "hop": cfg.hop, "window": cfg.window})
        self._on_workspace_display()

    def save_settings(self) -> None:
        s, d = self.settings, self.view.display
        s.setValue("display/layout", d.layout)
        s.setValue("display/phase_view", d.phase_view)
        s.setValue("display/freq_scale", d.freq_scale)
        s.setValue("display/colormap", d.colormap)
        s.setValue("display/db_low", d.db_range[0])
        s.setValue("display/db_high", d.db_range[1])
        s.setValue("display/compression", d.compression)
        s.setValue("display/mask_below_db", d.mask_below_db)
        s.setValue("stft/n_fft", self.view.cfg.n_fft)
        s.setValue("stft/hop", self.view.cfg.hop)
        s.setValue("stft/window", self.view.cfg.window)

    def _on_magnitude_range_dragged(self, lo: float, hi: float) -> None:
        # Keep the spin boxes in step with the colour bar handles (without a second redraw).
        self._updating = True
        self.db_lo.setValue(lo)
        self.db_hi.setValue(hi)
        self._updating = False

    def _on_readout(self, r: dict) -> None:
        self.readout_label.setText(self.view.readout_text(r))

    def display_settings(self) -> DisplaySettings:
        lo, hi = self.db_lo.value(), self.db_hi.value()
        if hi <= lo:
            hi = lo + 5
        return DisplaySettings(layout=self.layout_box.currentData(), phase_view=self.phase_box.currentData(),
                               freq_scale=self.scale_box.currentData(), colormap=self.cmap_box.currentData(),
                               db_range=(lo, hi), compression=round(self.comp_box.value(), 3),
                               mask_below_db=float(self.mask_box.value()))

    def stft_config(self) -> StftConfig:
        n_fft = int(self.nfft_box.currentData())
        hop = min(int(self.hop_box.currentData()), n_fft)
        return StftConfig(n_fft=n_fft, hop=hop, window=self.window_box.currentData())

    def _on_display_controls(self, *args) -> None:
        if self._updating:
            return
        self.workspace.set_display(dataclasses.asdict(self.display_settings()))

    def _on_stft_controls(self, *args) -> None:
        if self._updating:
            return
        cfg = self.stft_config()
        self.workspace.set_stft({"n_fft": cfg.n_fft, "hop": cfg.hop, "window": cfg.window})

    def _workspace_display(self) -> tuple[DisplaySettings, StftConfig]:
        """The workspace's display and STFT settings as the view's types (what is unknown keeps the
        controls' value; a damaged value falls back to the default)."""
        d = dict(self.workspace.display)
        if "db_range" in d:
            d["db_range"] = tuple(d["db_range"])
        known = {f.name for f in dataclasses.fields(DisplaySettings)}
        try:
            display = dataclasses.replace(self.display_settings(), **{k: v for k, v in d.items() if k in known})
            display.validate()
            if display.colormap not in MAGNITUDE_COLORMAPS or display.phase_view not in phase_view_choices():
                raise ValueError(display.colormap)
        except (ValueError, TypeError):
            display = DisplaySettings()
        st = self.workspace.stft
        try:
            cfg = StftConfig(n_fft=int(st.get("n_fft", self.view.cfg.n_fft)), hop=int(st.get("hop", self.view.cfg.hop)),
                             window=str(st.get("window", self.view.cfg.window)))
        except (ValueError, TypeError):
            cfg = StftConfig()
        return display, cfg

    def _on_workspace_display(self) -> None:
        display, cfg = self._workspace_display()
        self._set_controls(display, cfg)
        self.view.set_display(self.display_settings())
        self.view.set_stft(self.stft_config())

    def _on_workspace_state(self, key: str) -> None:
        if key == "view_range":
            t0, t1 = self.workspace.view_range
            v0, v1 = self.view.time_range()
            if t1 > t0 and (abs(t0 - v0) > 1e-9 or abs(t1 - v1) > 1e-9):
                self.view.set_time_range(t0, t1)
        elif key == "freq_range" and self.workspace.freq_range is not None and self.view.source is not None:
            f0, f1 = self.workspace.freq_range
            v0, v1 = self.view.visible_region()[1]
            if abs(f0 - v0) > 0.01 or abs(f1 - v1) > 0.01:
                self.view.set_visible_region(self.view.time_range(), (f0, f1))

    def _on_frequency_range(self, f0_hz: float, f1_hz: float) -> None:
        """A zoom or pan on a pane: the visible frequency span is the workspace's (a session keeps it)."""
        current = self.workspace.freq_range
        if current is None or abs(current[0] - f0_hz) > 0.01 or abs(current[1] - f1_hz) > 0.01:
            self.workspace.set_freq_range((round(f0_hz, 3), round(f1_hz, 3)))

    def _set_controls(self, display: DisplaySettings, cfg: StftConfig) -> None:
        self._updating = True
        for box, value in ((self.layout_box, display.layout), (self.phase_box, display.phase_view),
                           (self.scale_box, display.freq_scale), (self.cmap_box, display.colormap),
                           (self.window_box, cfg.window), (self.nfft_box, cfg.n_fft), (self.hop_box, cfg.hop)):
            i = box.findData(value)
            if i >= 0:
                box.setCurrentIndex(i)
        self.db_lo.setValue(display.db_range[0])
        self.db_hi.setValue(display.db_range[1])
        self.comp_box.setValue(display.compression)
        self.mask_box.setValue(display.mask_below_db)
        self._updating = False

    def set_display_settings(self, display: DisplaySettings) -> None:
        """Apply ``display`` to the workspace (the controls and the panes follow)."""
        display.validate()
        self.workspace.set_display(dataclasses.asdict(display))

