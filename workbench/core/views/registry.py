"""One home for every view of the complex STFT: the view registry, the display settings and the
frequency scales.

A *view* turns complex STFT columns into one float32 image ``(columns, bins)``: magnitude in dBFS,
wrapped phase, compressed real and imaginary parts, instantaneous-frequency deviation, group delay, and
the difference views that compare a version with its partner. Each is one :class:`ViewSpec` entry in
:data:`VIEWS`, carrying its name, label, unit, colormap kind, default levels, default masking and compute
function. The panes, the tiles, the crosshair readout, the exported figure (:mod:`workbench.core.views.figure`)
and ``workbench analyze`` all iterate this one registry, so adding a view is one :func:`register_view`
call (see the README, "Adding a view").

Masking: views with ``maskable=True`` (IF deviation, group delay) are blanked (NaN) in bins whose own
magnitude lies more than ``mask_below_db`` dB under a reference level, where their phase-derived values
are noise. The panes use the top of the magnitude colour range as the reference (tile-independent, so
neighbouring tiles agree); ``workbench analyze`` uses the file's loudest bin. Either way the threshold is
an absolute ``mask_floor_dbfs`` by the time a view is computed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Callable

import numpy as np

from .comparison import difference_representation, mask_magnitude_db, mask_phase
from .stft import (StftConfig, full_scale_gain, group_delay, imag_part, instantaneous_frequency_deviation,
                   magnitude_db, phase, real_part)

#: Magnitude values below this are clipped (dBFS); far under any display range.
FLOOR_DB = -160.0
#: Colormap kinds: ``sequential`` (magnitude-like), ``cyclic`` (angles: -pi and +pi share a colour),
#: ``diverging`` (signed values, symmetric around zero).
COLORMAP_KINDS = ("sequential", "cyclic", "diverging")
#: The four pane positions ("slots"); the second slot's view is chosen by the user.
PANE_SLOTS = ("magnitude", "phase", "real", "imag")
#: Pane layouts of the window: ``grid`` (2 x 2) or ``row`` (1 x 4).
LAYOUTS = ("grid", "row")
FREQ_SCALES = ("linear", "log", "mel")
#: Masking used by the derived phase views unless the user changes it: dB under the reference level.
DEFAULT_MASK_BELOW_DB = 60.0


@dataclass(frozen=True)
class ViewInput:
    """What a view's compute function gets.

    Attributes:
        spec: complex64 ``(columns, bins)`` STFT columns.
        cfg, sample_rate: the analysis (Hz).
        previous: complex ``(columns, bins)`` of frames ``t - 1`` for each column (``None``: treat
            ``spec`` as consecutive frames); only views with ``needs_previous`` read it.
        partner: complex ``(columns, bins)``, the same frames of the compared version (difference views),
            or ``None`` (the view is then all NaN: there is nothing to compare).
        partner_is_original: ``True`` when ``partner`` is the original O and ``spec`` the enhanced E.
        compression: exponent ``c`` of ``sign(x)|x|^c`` (``None`` or 1: linear).
        floor_dbfs: bottom of the magnitude colour range (dBFS); the difference views' floor.
        frames: STFT frame index of each column, int64 ``(columns,)``, or ``None`` (consecutive from 0 is
            not assumed); frame 0 has no predecessor, so its instantaneous-frequency deviation reads 0.
    """

    spec: np.ndarray
    cfg: StftConfig
    sample_rate: int
    previous: np.ndarray | None = None
    partner: np.ndarray | None = None
    partner_is_original: bool = True
    compression: float | None = 0.3
    floor_dbfs: float = -100.0
    frames: np.ndarray | None = None


@dataclass(frozen=True)
class ViewSpec:
    """One registry entry.

    Attributes:
        name: identifier (``group_delay``), used in settings, sessions and the CLI.
        label: pane title without unit (``Group delay``).
        unit: unit of the values (``ms``; ``""`` for a dimensionless view).
        short: readout label (``GD``).
        colormap_kind: one of :data:`COLORMAP_KINDS`.
        compute: ``ViewInput -> float32 (columns, bins)``; NaN where there is nothing to show.
        levels: default colour range, ``(cfg, sample_rate, floor_dbfs, top_dbfs) -> (low, high)``; ``None``
            means automatic (symmetric at the 99.5th percentile of ``|values|`` of what is shown).
        maskable: the display masking (``mask_below_db``) applies to this view.
        needs_previous: compute reads ``ViewInput.previous``.
        needs_partner: compute compares with ``ViewInput.partner`` (a difference view).
        uses_floor: the values depend on ``ViewInput.floor_dbfs``.
        uses_compression: the values depend on ``ViewInput.compression`` (shown in the title).
        symmetric: the colour range stays symmetric around zero when the user drags it.
        second_pane: offered as a choice for the second pane.
        readout_format: ``format()`` spec of the readout value.
        group_reduce: how a figure of a long file reduces ``g`` frames to one column: ``centre`` (the
            group's centre frame, unaveraged) or ``max_abs`` (the frame-wise maximum of ``|S|``).
    """

    name: str
    label: str
    unit: str
    short: str
    colormap_kind: str
    compute: Callable[[ViewInput], np.ndarray]
    levels: Callable[[StftConfig, int, float, float], tuple[float, float]] | None = None
    maskable: bool = False
    needs_previous: bool = False
    needs_partner: bool = False
    uses_floor: bool = False
    uses_compression: bool = False
    symmetric: bool = False
    second_pane: bool = True
    readout_format: str = "+.3f"
    group_reduce: str = "centre"

    def __post_init__(self):
        if self.colormap_kind not in COLORMAP_KINDS:
            raise ValueError(f"view {self.name!r}: colormap kind must be one of {', '.join(COLORMAP_KINDS)}")
        if self.group_reduce not in ("centre", "max_abs"):
            raise ValueError(f"view {self.name!r}: group_reduce must be 'centre' or 'max_abs'")

    def title(self, compression: float | None = None) -> str:
        """Pane title: label, unit and (for compressed views) the compression, e.g. ``Real  sign·|x|^0.3``."""
        text = f"{self.label} ({self.unit})" if self.unit else self.label
        if self.uses_compression and compression not in (None, 1, 1.0):
            text += f"  sign·|x|^{compression:g}"
        return text

    def format_value(self, value: float | None) -> str:
        """Readout text: the value in the view's unit, or ``—`` where nothing is drawn."""
        if value is None or not np.isfinite(value):
            return "—"
        text = format(value, self.readout_format)
        return f"{text} {self.unit}" if self.unit else text


#: The registry, in the order the choices are offered. Use :func:`register_view` to add to it.
VIEWS: dict[str, ViewSpec] = {}


def register_view(spec: ViewSpec, *, replace_existing: bool = False) -> ViewSpec:
    """Add ``spec`` to :data:`VIEWS`; every pane, the readout, the figure and ``analyze`` then offer it."""
    if spec.name in VIEWS and not replace_existing:
        raise ValueError(f"a view named {spec.name!r} is already registered")
    VIEWS[spec.name] = spec
    return spec


def unregister_view(name: str) -> None:
    """Remove a view (tests register temporary ones)."""
    VIEWS.pop(name, None)


def view(name: str) -> ViewSpec:
    try:
        return VIEWS[name]
    except KeyError:
        raise ValueError(f"unknown view {name!r}; choose one of {', '.join(VIEWS)}") from None


def second_pane_views() -> dict[str, ViewSpec]:
    """The views the second pane offers (name -> spec), in registry order."""
    return {n: s for n, s in VIEWS.items() if s.second_pane}


# ----------------------------------------------------------------------------------------------------------
# The built-in views
# ----------------------------------------------------------------------------------------------------------

def _magnitude(inp: ViewInput) -> np.ndarray:
    return magnitude_db(inp.spec, inp.cfg, FLOOR_DB)


def _inst_freq(inp: ViewInput) -> np.ndarray:
    # Each column is paired with its own predecessor frame: the core function runs on the interleaved
    # [prev_0, cur_0, prev_1, cur_1, ...] and the odd rows are kept, so decimated columns still show the
    # true frame-to-frame phase advance.
    spec = inp.spec
    if inp.previous is None:
        return instantaneous_frequency_deviation(spec, inp.cfg, inp.sample_rate)
    pairs = np.empty((2 * spec.shape[0], spec.shape[1]), np.complex64)
    pairs[0::2], pairs[1::2] = inp.previous, spec
    out = instantaneous_frequency_deviation(pairs, inp.cfg, inp.sample_rate)[1::2]
    if inp.frames is not None:
        out[np.asarray(inp.frames) == 0] = 0.0   # frame 0 has no predecessor (as in the core function)
    return out


def _sides(inp: ViewInput) -> tuple[np.ndarray, np.ndarray]:
    """``(original, enhanced)`` of a difference view."""
    return (inp.partner, inp.spec) if inp.partner_is_original else (inp.spec, inp.partner)


def _raw_floor(inp: ViewInput) -> float:
    # The core difference functions work on raw |S|; the display floor is in dBFS (window gain applied).
    return inp.floor_dbfs - 20.0 * np.log10(full_scale_gain(inp.cfg))


def _mag_diff(inp: ViewInput) -> np.ndarray:
    """``max(20 log10|E|, floor) - max(20 log10|O|, floor)`` (dB), floor = magnitude range bottom."""
    if inp.partner is None:
        return np.full(inp.spec.shape, np.nan, np.float32)
    orig, enh = _sides(inp)
    return difference_representation("magnitude_difference_db", orig, enh, _raw_floor(inp)).astype(np.float32)


def _phase_diff(inp: ViewInput) -> np.ndarray:
    """``angle(E conj(O))`` (rad), blank where either side is under the magnitude range bottom."""
    if inp.partner is None:
        return np.full(inp.spec.shape, np.nan, np.float32)
    orig, enh = _sides(inp)
    out = difference_representation("phase_difference", orig, enh)
    quiet = np.minimum(magnitude_db(orig, inp.cfg, FLOOR_DB), magnitude_db(enh, inp.cfg, FLOOR_DB))
    return np.where(quiet < inp.floor_dbfs, np.nan, out).astype(np.float32)


def _effective_mask(inp: ViewInput) -> np.ndarray:
    """``M = E / Y`` (complex128), NaN where the original ``Y`` lies under the magnitude range bottom
    (the phase lab's guard, see :func:`workbench.core.workflows.phaselab.effective_mask`) or there is no partner."""
    if inp.partner is None:
        return np.full(inp.spec.shape, np.nan + 1j * np.nan, np.complex128)
    orig, enh = _sides(inp)
    defined = magnitude_db(orig, inp.cfg, FLOOR_DB) >= inp.floor_dbfs
    out = np.full(orig.shape, np.nan + 1j * np.nan, np.complex128)
    out[defined] = np.asarray(enh, np.complex128)[defined] / np.asarray(orig, np.complex128)[defined]
    return out


def _mask_db(inp: ViewInput) -> np.ndarray:
    """``20 log10 |E / Y|`` (dB): what a version did to the magnitude of each bin of the original."""
    return mask_magnitude_db(_effective_mask(inp), floor_db=FLOOR_DB)


def _mask_phase(inp: ViewInput) -> np.ndarray:
    """``∠(E / Y)`` (rad): what a version did to the phase (0 for a real gain)."""
    return mask_phase(_effective_mask(inp))


def _if_levels(cfg: StftConfig, sr: int, floor: float, top: float) -> tuple[float, float]:
    # The deviation wraps at ±fs/(2 hop): beyond that a phase advance is indistinguishable.
    m = sr / (2.0 * cfg.hop)
    return (-m, m)


def _gd_levels(cfg: StftConfig, sr: int, floor: float, top: float) -> tuple[float, float]:
    m = cfg.n_fft / 2 / sr * 1000.0
    return (-m, m)


for _spec in (
    ViewSpec("magnitude", "Magnitude", "dBFS", "mag", "sequential", _magnitude,
             levels=lambda cfg, sr, floor, top: (floor, top), second_pane=False, readout_format=".1f",
             group_reduce="max_abs"),
    ViewSpec("phase", "Phase", "rad", "phase", "cyclic", lambda inp: phase(inp.spec),
             levels=lambda cfg, sr, floor, top: (-np.pi, np.pi)),
    ViewSpec("real", "Real", "", "re", "diverging", lambda inp: real_part(inp.spec, inp.compression),
             uses_compression=True, symmetric=True, second_pane=False, readout_format="+.3g"),
    ViewSpec("imag", "Imaginary", "", "im", "diverging", lambda inp: imag_part(inp.spec, inp.compression),
             uses_compression=True, symmetric=True, second_pane=False, readout_format="+.3g"),
    ViewSpec("inst_freq", "Inst. freq. deviation", "Hz", "IF dev", "cyclic", _inst_freq, levels=_if_levels,
             maskable=True, needs_previous=True, symmetric=True, readout_format="+.1f"),
    ViewSpec("group_delay", "Group delay", "ms", "GD", "diverging",
             lambda inp: group_delay(inp.spec, inp.cfg, inp.sample_rate), levels=_gd_levels, maskable=True,
             symmetric=True, readout_format="+.2f"),
    ViewSpec("mag_diff", "Δ magnitude", "dB", "Δmag", "diverging", _mag_diff,
             # deep models remove 30-40 dB of noise; classical ones 10-20
             levels=lambda cfg, sr, floor, top: (-30.0, 30.0), needs_partner=True, uses_floor=True,
             symmetric=True, readout_format="+.1f"),
    ViewSpec("phase_diff", "Δ phase", "rad", "Δphase", "cyclic", _phase_diff,
             levels=lambda cfg, sr, floor, top: (-np.pi, np.pi), needs_partner=True, uses_floor=True,
             readout_format="+.3f"),
    # The phase lab's effective complex mask M = E / Y, blank where the original is under the floor.
    ViewSpec("mask_db", "Effective mask |E/Y|", "dB", "|M|", "diverging", _mask_db,
             levels=lambda cfg, sr, floor, top: (-30.0, 30.0), needs_partner=True, uses_floor=True,
             symmetric=True, readout_format="+.1f"),
    ViewSpec("mask_phase", "Effective mask ∠(E/Y)", "rad", "∠M", "cyclic", _mask_phase,
             levels=lambda cfg, sr, floor, top: (-np.pi, np.pi), needs_partner=True, uses_floor=True,
             readout_format="+.3f"),
):
    register_view(_spec)
del _spec


def mask_quiet(values: np.ndarray, magnitude_dbfs: np.ndarray, mask_floor_dbfs: float | None) -> np.ndarray:
    """``values`` with NaN where ``magnitude_dbfs < mask_floor_dbfs`` (``None``: unchanged)."""
    if mask_floor_dbfs is None:
        return values
    return np.where(magnitude_dbfs < mask_floor_dbfs, np.nan, values).astype(np.float32)


def compute_view(name: str, inp: ViewInput, mask_floor_dbfs: float | None = None) -> np.ndarray:
    """The view ``name`` of ``inp`` as float32 ``(columns, bins)``, masked for maskable views.

    Masked bins are those whose own magnitude ``20 log10(g |S|)`` (dBFS) lies under ``mask_floor_dbfs``.
    """
    spec = view(name)
    out = np.asarray(spec.compute(inp), dtype=np.float32)
    if spec.maskable and mask_floor_dbfs is not None:
        out = mask_quiet(out, magnitude_db(inp.spec, inp.cfg, FLOOR_DB), mask_floor_dbfs)
    return out


# ----------------------------------------------------------------------------------------------------------
# Display settings
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DisplaySettings:
    """How the panes draw (none of it changes the analysis).

    Attributes:
        layout: ``grid`` (2x2) or ``row`` (1x4).
        phase_view: the second pane's view (a name in :data:`VIEWS`, see :func:`second_pane_views`).
        freq_scale: ``linear``, ``log`` or ``mel``.
        colormap: colormap of the sequential views (pyqtgraph / colorcet name).
        db_range: magnitude colour range in dBFS ``(low, high)``; ``low`` is also the difference views' floor.
        compression: exponent ``c`` of ``sign(x)|x|^c`` for the real and imaginary panes (1 = linear).
        mask_below_db: maskable views (IF deviation, group delay) are blanked in bins more than this many dB
            under the top of the magnitude range; 0 turns masking off.
    """

    layout: str = "grid"
    phase_view: str = "phase"
    freq_scale: str = "linear"
    colormap: str = "inferno"
    db_range: tuple[float, float] = (-100.0, 0.0)
    compression: float = 0.3
    mask_below_db: float = DEFAULT_MASK_BELOW_DB

    def pane_views(self) -> dict[str, str]:
        """Slot -> view name for the four panes."""
        return {"magnitude": "magnitude", "phase": self.phase_view, "real": "real", "imag": "imag"}

    @property
    def mask_floor_dbfs(self) -> float | None:
        """Absolute masking threshold (dBFS) of maskable views, or ``None`` when masking is off."""
        return None if self.mask_below_db <= 0 else float(self.db_range[1]) - float(self.mask_below_db)

    def to_dict(self) -> dict:
        """JSON-ready dict (sessions); :meth:`from_dict` reads it back."""
        d = asdict(self)
        d["db_range"] = [float(v) for v in self.db_range]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "DisplaySettings":
        """Settings from :meth:`to_dict` output; unknown keys are ignored, missing ones take defaults.

        Raises ``ValueError`` naming the first invalid value.
        """
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in dict(data).items() if k in known}
        if "db_range" in kw:
            lo, hi = (float(v) for v in kw["db_range"])
            kw["db_range"] = (lo, hi)
        for k in ("compression", "mask_below_db"):
            if k in kw:
                kw[k] = float(kw[k])
        out = cls(**kw)
        out.validate()
        return out

    def validate(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}")
        if self.phase_view not in VIEWS:
            raise ValueError(f"unknown view {self.phase_view!r}")
        if self.freq_scale not in FREQ_SCALES:
            raise ValueError(f"unknown frequency scale {self.freq_scale!r}")
        if not self.db_range[0] < self.db_range[1]:
            raise ValueError(f"magnitude range {self.db_range} is empty")
        if not 0 < self.compression <= 1:
            raise ValueError(f"compression {self.compression} is outside (0, 1]")
        if self.mask_below_db < 0:
            raise ValueError(f"mask {self.mask_below_db} dB is negative")

    def view_input(self, spec: np.ndarray, cfg: StftConfig, sample_rate: int, **kw) -> ViewInput:
        return ViewInput(spec, cfg, sample_rate, compression=self.compression, floor_dbfs=float(self.db_range[0]),
                         **kw)

    def default_levels(self, name: str, cfg: StftConfig, sample_rate: int) -> tuple[float, float] | None:
        """Default colour range of view ``name`` under these settings (``None``: automatic)."""
        spec = view(name)
        if spec.levels is None:
            return None
        lo, hi = spec.levels(cfg, sample_rate, float(self.db_range[0]), float(self.db_range[1]))
        return float(lo), float(hi)

    def needs_previous(self) -> bool:
        """Some pane's view reads each column's previous frame (its tiles carry that frame)."""
        return any(view(n).needs_previous for n in self.pane_views().values())

    def needs_partner(self) -> bool:
        """Some pane compares with another version (its tiles need that version's frames too)."""
        return any(view(n).needs_partner for n in self.pane_views().values())

    def mask_caption(self, name: str) -> str:
        """Colour-bar title part saying what is masked (empty for unmasked views)."""
        if not view(name).maskable:
            return ""
        floor = self.mask_floor_dbfs
        return "no mask" if floor is None else f"masked < {floor:g} dBFS"

    def with_(self, **kw) -> "DisplaySettings":
        return replace(self, **kw)


def images_key(display: DisplaySettings) -> tuple:
    """The display settings that change pane images (not just their colours)."""
    names = list(display.pane_views().values())
    specs = [view(n) for n in names if n in VIEWS]
    floor = display.db_range[0] if any(s.uses_floor for s in specs) else None
    mask = display.mask_floor_dbfs if any(s.maskable for s in specs) else None
    comp = display.compression if any(s.uses_compression for s in specs) else None
    return (tuple(names), comp, floor, mask)


def pane_arrays(spec: np.ndarray, previous: np.ndarray | None, cfg: StftConfig, sample_rate: int,
                display: DisplaySettings, partner: np.ndarray | None = None,
                partner_is_original: bool = True, frames: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The images of the four pane slots for complex columns ``spec`` ``(columns, bins)``.

    Returns slot -> float32 ``(columns, bins)``, each :func:`compute_view` of the slot's view with the
    display's compression, floor and masking.
    """
    inp = display.view_input(spec, cfg, sample_rate, previous=previous, partner=partner,
                             partner_is_original=partner_is_original, frames=frames)
    return {slot: compute_view(name, inp, display.mask_floor_dbfs) for slot, name in display.pane_views().items()}


# ----------------------------------------------------------------------------------------------------------
# Frequency scales
# ----------------------------------------------------------------------------------------------------------

class FreqScale:
    """Mapping between frequency in Hz and the y coordinate of the panes and figures.

    * ``linear``: ``y = f``.
    * ``log``: ``y = log10(max(f, f_min))`` with ``f_min = max(20 Hz, fs / N)`` (below it is flat).
    * ``mel``: ``y = 2595 log10(1 + f / 700)`` (O'Shaughnessy's mel formula).
    """

    def __init__(self, kind: str = "linear", sample_rate: int = 16000, nfft: int = 1024):
        if kind not in FREQ_SCALES:
            raise ValueError(f"unknown frequency scale {kind!r}; choose one of {', '.join(FREQ_SCALES)}")
        self.kind = kind
        self.sample_rate = sample_rate
        self.nfft = nfft
        self.df = sample_rate / nfft
        self.nyquist = sample_rate / 2
        self.f_min = max(20.0, self.df)

    def fwd(self, f):
        f = np.asarray(f, dtype=np.float64)
        if self.kind == "linear":
            return f
        if self.kind == "log":
            return np.log10(np.maximum(f, self.f_min))
        return 2595.0 * np.log10(1.0 + np.maximum(f, 0.0) / 700.0)

    def inv(self, y):
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "linear":
            return y
        if self.kind == "log":
            return 10.0 ** y
        return 700.0 * (10.0 ** (y / 2595.0) - 1.0)

    def rows(self, bins: int) -> tuple[np.ndarray | None, float, float]:
        """Image row layout: ``(bin_index_per_row or None, y0, height)`` in axis units.

        Linear keeps one row per bin (centred on the bin frequency). Other scales use up to 512 rows
        uniform in axis units, each showing the nearest bin.
        """
        if self.kind == "linear":
            return None, -self.df / 2, bins * self.df
        lo, hi = float(self.fwd(0.0 if self.kind == "mel" else self.f_min)), float(self.fwd(self.nyquist))
        n_rows = int(min(max(bins, 64), 512))
        dy = (hi - lo) / max(n_rows - 1, 1)
        centres = lo + dy * np.arange(n_rows)
        idx = np.clip(np.rint(self.inv(centres) / self.df), 0, bins - 1).astype(np.intp)
        return idx, lo - dy / 2, n_rows * dy

    def y_limits(self) -> tuple[float, float]:
        idx, y0, h = self.rows(self.nfft // 2 + 1)
        return y0, y0 + h
