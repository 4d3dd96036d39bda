"""Headless figures of the complex STFT: magnitude, phase (or a derived phase view), real and imaginary.

Drawing uses matplotlib's object API on an Agg (PNG) or SVG canvas — no pyplot state, no display, no
Qt — so it runs in the CLI, in tests and in worker threads alike.

Long recordings are handled in bounded time and memory: the STFT is computed block by block from an
:class:`~workbench.core.audio.audio_io.AudioSource`, and when a file has more frames than ``max_frames`` the
frames are grouped into ``g = ceil(frames / max_frames)`` consecutive frames per drawn column:

* magnitude column ``j`` is the **maximum** ``|S|`` over its group (so clicks and onsets stay visible);
* phase, real, imaginary, instantaneous-frequency and group-delay columns are taken from the group's
  **centre frame** unaveraged (averaging angles or signed parts would invent values no frame has).

Every pane is a view of the registry (:mod:`workbench.core.views.registry`): its compute function, label, unit,
colormap kind and default levels come from there, so the figure draws what the panes draw. A
:class:`FigureSettings` says which view each pane shows and with which levels and colour table, the
compression, masking, frequency scale and the time/frequency region — the GUI fills it from the panes
(File > Export figure), the CLI from its options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio.audio_io import ArraySource, AudioSource, atomic_output, downmix
from ..audio.outputs import check_output_target
from ..errors import NonFiniteAudioError, WorkbenchError
from .stft import StftConfig, magnitude_db, stft_frames
from .registry import FLOOR_DB, FreqScale, ViewInput, compute_view, mask_quiet, second_pane_views, view

#: Pane arrangements: 2 x 2, four side by side, or four stacked.
LAYOUTS = ("grid", "row", "column")


def phase_views() -> tuple[str, ...]:
    """Views a figure of one signal can show in its second pane (registry order; no difference views)."""
    return tuple(n for n, sp in second_pane_views().items() if not sp.needs_partner)


#: Default upper bound on drawn columns; more frames than this are grouped (see module docstring).
MAX_FRAMES = 4000
#: STFT frames computed per block while scanning a source.
_BLOCK_FRAMES = 1024
_DPI = 100


@dataclass
class SpectrogramViews:
    """The arrays one figure draws, plus what is needed to label and summarise them.

    Attributes:
        sample_rate: Hz.
        cfg: STFT settings used.
        n_samples: samples of the analysed signal.
        frames_total: STFT frames of the whole signal.
        group: frames per drawn column (1 = every frame drawn).
        views: view name -> float32 ``(columns, bins)`` (see :mod:`workbench.core.views.registry`), e.g.
            ``magnitude`` (dBFS), the phase view (``phase`` rad, ``inst_freq`` Hz or ``group_delay`` ms;
            NaN where masked), ``real`` and ``imag`` (``sign(x)|x|^c`` of the raw STFT).
        phase_view: which view the second pane shows.
        compression: ``c`` of the real/imaginary compression (``None`` = none).
        floor_db: magnitude floor in dBFS.
        nonfinite_repaired: NaN/Inf samples replaced by 0 while reading (only with ``repair``).
        pane_views: view name of each pane, in pane order.
        first_frame: STFT frame of the first column's group (a time region starts later than 0).
        first_bin: bin of the first row (a frequency region starts above 0 Hz).
        mask_floor_dbfs: the masking threshold applied to maskable views (``None``: none).
    """

    sample_rate: int
    cfg: StftConfig
    n_samples: int
    frames_total: int
    group: int
    views: dict[str, np.ndarray] = field(default_factory=dict)
    phase_view: str = "phase"
    compression: float | None = 0.3
    floor_db: float = -100.0
    nonfinite_repaired: int = 0
    pane_views: tuple[str, ...] = ()
    first_frame: int = 0
    first_bin: int = 0
    mask_floor_dbfs: float | None = None

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def columns(self) -> int:
        return next(iter(self.views.values())).shape[0] if self.views else 0

    def stats(self) -> dict[str, dict[str, float | None]]:
        """Per view: min, max, mean and the 1st/50th/99th percentiles of the drawn values (NaNs ignored)."""
        out = {}
        for name, arr in self.views.items():
            finite = arr[np.isfinite(arr)]
            if finite.size == 0:
                out[name] = {"min": None, "max": None, "mean": None, "p01": None, "p50": None, "p99": None,
                             "masked_fraction": 1.0}
                continue
            p01, p50, p99 = np.percentile(finite, [1, 50, 99])
            out[name] = {"min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean()),
                         "p01": float(p01), "p50": float(p50), "p99": float(p99),
                         "masked_fraction": float(1.0 - finite.size / arr.size)}
        return out


@dataclass(frozen=True)
class FigurePane:
    """One pane of a figure.

    Attributes:
        view: a view name of :data:`workbench.core.views.registry.VIEWS`.
        levels: colour range ``(low, high)`` in the view's unit; ``None``: the view's default (automatic
            symmetric range for views without one).
        colormap: a matplotlib colormap name, a ``(n, 3|4)`` uint8 colour table (the panes' own, so the
            figure's colours are the screen's), or ``None``: by the view's colormap kind.
    """

    view: str
    levels: tuple[float, float] | None = None
    colormap: str | np.ndarray | None = None


def default_panes(phase_view: str = "phase") -> tuple[FigurePane, ...]:
    return tuple(FigurePane(n) for n in ("magnitude", phase_view, "real", "imag"))


@dataclass(frozen=True)
class FigureSettings:
    """What a figure draws; File > Export figure fills it from the panes (what you see is what you export).

    Attributes:
        panes: the four panes (view, levels, colour table).
        layout: one of :data:`LAYOUTS`.
        compression: ``c`` of ``sign(x)|x|^c`` for compressed views.
        floor_db: bottom of the magnitude range (dBFS); magnitude is clamped there, difference views use it.
        mask_below_db: maskable views are blanked more than this many dB under the loudest drawn bin
            (``None``: no masking) — unless ``mask_floor_dbfs`` gives the threshold directly.
        mask_floor_dbfs: absolute masking threshold in dBFS (the panes' threshold), or ``None``.
        freq_scale: ``linear``, ``log`` or ``mel`` frequency axis.
        time_range_s: drawn time span ``(t0, t1)`` or ``None`` for the whole signal.
        freq_range_hz: drawn frequency span ``(f0, f1)`` or ``None`` for 0 to Nyquist.
        sequential_colormap: matplotlib colormap of sequential views without a colour table.
    """

    panes: tuple[FigurePane, ...] = default_panes()
    layout: str = "grid"
    compression: float | None = 0.3
    floor_db: float = -100.0
    mask_below_db: float | None = 60.0
    mask_floor_dbfs: float | None = None
    freq_scale: str = "linear"
    time_range_s: tuple[float, float] | None = None
    freq_range_hz: tuple[float, float] | None = None
    sequential_colormap: str = "magma"

    def __post_init__(self):
        for p in self.panes:
            view(p.view)   # raises on an unknown name
        if len(self.panes) != 4:
            raise WorkbenchError(f"a figure has four panes, got {len(self.panes)}")


def _check_options(phase_view: str, layout: str, compression: float | None, max_frames: int) -> None:
    if phase_view not in phase_views():
        raise WorkbenchError(f"unknown phase view {phase_view!r}; choose one of {', '.join(phase_views())}")
    if layout not in LAYOUTS:
        raise WorkbenchError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if compression is not None and not 0 < compression <= 1:
        raise WorkbenchError(f"compression exponent must be in (0, 1], got {compression}")
    if max_frames < 1:
        raise WorkbenchError(f"max_frames must be at least 1, got {max_frames}")


def compute_views(read: Callable[[int, int], np.ndarray], n_samples: int, sample_rate: int, cfg: StftConfig, *,
                  phase_view: str = "phase", compression: float | None = 0.3, floor_db: float = -100.0,
                  mask_below_db: float | None = 60.0, max_frames: int = MAX_FRAMES,
                  pane_views: tuple[str, ...] | None = None, mask_floor_dbfs: float | None = None,
                  time_range_s: tuple[float, float] | None = None,
                  freq_range_hz: tuple[float, float] | None = None,
                  partner_read: Callable[[int, int], np.ndarray] | None = None, partner_samples: int = 0,
                  partner_is_original: bool = True) -> SpectrogramViews:
    """Compute the drawn views of a mono signal, block by block, through the view registry.

    Args:
        read: ``read(start, stop) -> (stop - start,)`` float samples of the signal.
        n_samples: signal length in samples.
        sample_rate: Hz.
        phase_view: second pane's view (``phase``, ``inst_freq``, ``group_delay``, ... see
            :func:`phase_views`), used when ``pane_views`` is not given.
        compression: exponent ``c`` for ``sign(x)|x|^c`` on the real and imaginary parts.
        floor_db: magnitude floor, dBFS (a full-scale sine reads 0 dB); also the difference views' floor.
        mask_below_db: maskable views (IF, group delay) are blanked (NaN) in bins more than this many dB
            under the loudest drawn bin, where their values are noise; ``None`` keeps everything.
        max_frames: at most this many columns are kept (see the module docstring for the grouping).
        pane_views: view names of the four panes (default: magnitude, ``phase_view``, real, imag).
        mask_floor_dbfs: absolute masking threshold (dBFS); overrides ``mask_below_db``.
        time_range_s: only the frames whose centres lie in ``[t0, t1]`` (plus one either side).
        freq_range_hz: only the bins whose centres lie in ``[f0, f1]`` (plus one either side).
        partner_read, partner_samples, partner_is_original: the compared signal of difference views.

    Returns:
        :class:`SpectrogramViews` with float32 ``(columns, bins)`` arrays, one per distinct view.
    """
    names = tuple(pane_views) if pane_views is not None else ("magnitude", phase_view, "real", "imag")
    if pane_views is None:
        _check_options(phase_view, "grid", compression, max_frames)
    specs = {n: view(n) for n in names}
    need_prev = any(sp.needs_previous for sp in specs.values())
    need_partner = partner_read is not None and any(sp.needs_partner for sp in specs.values())
    total = cfg.frame_count(n_samples)
    f_lo, f_hi = 0, total
    if time_range_s is not None and total:
        hop_s = cfg.hop / sample_rate
        centre0 = float(cfg.frame_time_s(0, sample_rate))
        f_lo = int(np.clip(np.floor((time_range_s[0] - centre0) / hop_s), 0, total - 1))
        f_hi = int(np.clip(np.ceil((time_range_s[1] - centre0) / hop_s) + 1, f_lo + 1, total))
    count = f_hi - f_lo
    group = max(1, math.ceil(count / max_frames))
    columns = math.ceil(count / group) if count else 0
    bins = cfg.bins
    out = {n: np.zeros((columns, bins), np.float32) for n in specs}
    centre_db = np.full((columns, bins), FLOOR_DB, np.float32)
    # A block holds whole groups so that no group straddles two blocks.
    block = group * max(1, _BLOCK_FRAMES // group)
    for t0 in range(f_lo, f_hi, block):
        t1 = min(t0 + block, f_hi)
        own = stft_frames(read, n_samples, t0, t1, cfg)
        c0, c1 = (t0 - f_lo) // group, math.ceil((t1 - f_lo) / group)
        starts = np.arange(c0, c1) * group + f_lo - t0         # block-relative first frame of each group
        ends = np.minimum(starts + group, t1 - t0)              # the last group may be short
        picks = (starts + ends) // 2                            # centre frame of each group
        centre = own[picks]
        prev = stft_frames(read, n_samples, t0 - 1, t1 - 1, cfg)[picks] if need_prev else None
        partner = stft_frames(partner_read, partner_samples, t0, t1, cfg)[picks] if need_partner else None
        frames = (t0 + picks).astype(np.int64)
        centre_db[c0:c1] = magnitude_db(centre, cfg, FLOOR_DB)
        inp = ViewInput(centre, cfg, int(sample_rate), previous=prev, partner=partner,
                        partner_is_original=partner_is_original, compression=compression, floor_dbfs=floor_db,
                        frames=frames)
        for name, sp in specs.items():
            if sp.group_reduce == "max_abs" and group > 1:
                mags = np.abs(own)
                mx = np.stack([mags[a:b].max(axis=0) for a, b in zip(starts, ends)]).astype(np.complex64)
                out[name][c0:c1] = compute_view(name, replace(inp, spec=mx))
            else:
                out[name][c0:c1] = compute_view(name, inp)
    if "magnitude" in out:
        # Clamp: the figure's magnitude floor is the bottom of its colour range.
        out["magnitude"] = np.maximum(out["magnitude"], np.float32(floor_db)).astype(np.float32)
    threshold = mask_floor_dbfs
    if threshold is None and mask_below_db is not None and columns:
        peak = float(centre_db.max())
        # A silent signal has no bin whose phase means anything: blank it all.
        threshold = np.inf if peak <= FLOOR_DB else peak - abs(mask_below_db)
    if threshold is not None:
        for name, sp in specs.items():
            if sp.maskable:
                out[name] = mask_quiet(out[name], centre_db, threshold)
    k0 = 0
    if freq_range_hz is not None:
        df = sample_rate / cfg.nfft
        k0 = int(np.clip(np.floor(freq_range_hz[0] / df), 0, bins - 1))
        k1 = int(np.clip(np.ceil(freq_range_hz[1] / df), k0, bins - 1))
        out = {n: a[:, k0:k1 + 1] for n, a in out.items()}
    return SpectrogramViews(sample_rate=int(sample_rate), cfg=cfg, n_samples=int(n_samples), frames_total=total,
                            group=group, views=out, phase_view=names[1], compression=compression,
                            floor_db=floor_db, pane_views=names, first_frame=f_lo, first_bin=k0,
                            mask_floor_dbfs=None if threshold is None or not np.isfinite(threshold)
                            else float(threshold))


class _ForwardReader:
    """Serve the overlapping, forward-moving reads of a block-wise STFT, decoding each sample once.

    Consecutive STFT blocks overlap by ``n_fft - hop`` samples. Keeping the last span avoids reading
    those samples twice and, more importantly, avoids seeking backwards: compressed decoders (MP3 in
    particular) seek only approximately, while reading on is exact. NaN counts also stay exact.
    """

    def __init__(self, fetch: Callable[[int, int], np.ndarray]):
        self._fetch = fetch
        self._start = 0
        self._buf = np.zeros(0, np.float32)

    def __call__(self, a: int, b: int) -> np.ndarray:
        end = self._start + len(self._buf)
        if a < self._start or a > end:
            self._buf, self._start = np.asarray(self._fetch(a, b), np.float32), a
        elif b > end:
            self._buf = np.concatenate([self._buf[a - self._start:], self._fetch(end, b)])
            self._start = a
        return self._buf[a - self._start:b - self._start]


def compute_views_from_source(source: AudioSource, cfg: StftConfig, *, channel: int | str = 0,
                              repair: bool = False, partner: tuple[AudioSource, int, bool] | None = None,
                              **kwargs) -> SpectrogramViews:
    """:func:`compute_views` of one channel (or ``"mix"``, the channel mean) of a source, read in blocks.

    ``partner`` is ``(source, channel, partner_is_original)`` of the version difference views compare with.

    With ``repair`` true, NaN/Inf samples are replaced by 0 and counted in ``nonfinite_repaired``;
    otherwise the first block holding one raises :class:`~workbench.core.errors.NonFiniteAudioError`.
    """
    if channel != "mix" and not 0 <= int(channel) < source.channels:
        where = getattr(source, "path", "audio")
        raise WorkbenchError(f"{where}: channel {channel} does not exist (the file has {source.channels} "
                             f"channel{'s' if source.channels != 1 else ''}, numbered from 0)")
    repaired = [0]

    def fetch(a: int, b: int) -> np.ndarray:
        block = source.read(a, b)
        bad = ~np.isfinite(block)
        if bad.any():
            if not repair:
                n_nan = int(np.isnan(block).sum())
                raise NonFiniteAudioError(getattr(source, "path", "audio"), n_nan, int(bad.sum()) - n_nan,
                                          a + int(np.argmax(bad.any(axis=1))))
            repaired[0] += int(bad.sum())
            block = np.where(bad, np.float32(0), block)
        return downmix(block) if channel == "mix" else block[:, int(channel)]

    if partner is not None:
        p_src, p_ch, p_orig = partner
        kwargs.update(partner_read=lambda a, b: p_src.read(a, b)[:, int(p_ch)], partner_samples=p_src.frames,
                      partner_is_original=bool(p_orig))
    views = compute_views(_ForwardReader(fetch), source.frames, source.sample_rate, cfg, **kwargs)
    views.nonfinite_repaired = repaired[0]
    return views


# ----------------------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------------------

_KIND_CMAPS = {"cyclic": "twilight", "diverging": "RdBu_r"}


def _symmetric_limit(arr: np.ndarray, percentile: float = 99.5) -> float:
    finite = np.abs(arr[np.isfinite(arr)])
    if finite.size == 0:
        return 1.0
    lim = float(np.percentile(finite, percentile))
    return lim if lim > 0 else float(finite.max()) or 1.0


@dataclass
class PaneImage:
    """One drawn pane, resolved: what :func:`draw_views` hands to ``imshow``.

    Attributes:
        view: view name.
        title: pane title (registry label, unit, compression; difference partner where given).
        colorbar_label: unit and, for masked views, the masking threshold.
        data: float32 ``(columns, rows)`` (rows = bins, or frequency-scale rows), NaN where blank.
        levels: colour range ``(low, high)``.
        cmap: the matplotlib colormap.
        extent: ``(x0, x1, y0, y1)``: seconds and frequency-axis units (Hz on a linear scale).
    """

    view: str
    title: str
    colorbar_label: str
    data: np.ndarray
    levels: tuple[float, float]
    cmap: object
    extent: tuple[float, float, float, float]

    def rgba(self) -> np.ndarray:
        """The colour-mapped image, uint8 ``(columns, rows, 4)`` (NaN -> the colormap's 'bad' colour)."""
        from matplotlib.colors import Normalize

        return self.cmap(Normalize(*self.levels, clip=True)(np.ma.masked_invalid(self.data)), bytes=True)


def _colormap(spec, pane: FigurePane, settings: FigureSettings):
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    cm = pane.colormap
    if cm is None:
        cm = settings.sequential_colormap if spec.colormap_kind == "sequential" else _KIND_CMAPS[spec.colormap_kind]
    if isinstance(cm, str):
        try:
            cmap = colormaps[cm]
        except KeyError:
            raise WorkbenchError(f"unknown colormap {cm!r}") from None
    else:
        table = np.asarray(cm, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] not in (3, 4):
            raise WorkbenchError(f"a colour table must be (n, 3) or (n, 4), got {table.shape}")
        cmap = ListedColormap(table / 255.0 if table.max() > 1.0 else table)
    return cmap.with_extremes(bad="#d9d9d9")  # masked (quiet) bins of derived phase views


def figure_panes(views: SpectrogramViews, settings: FigureSettings | None = None,
                 partner_label: str = "") -> list[PaneImage]:
    """Resolve each pane of ``settings`` against computed ``views``: data on the frequency scale, levels,
    colormap, labels and extent (see :class:`PaneImage`)."""
    settings = settings or FigureSettings(panes=default_panes(views.phase_view), compression=views.compression,
                                          floor_db=views.floor_db)
    sr, cfg = views.sample_rate, views.cfg
    scale = FreqScale(settings.freq_scale, sr, cfg.nfft)
    stride_s = views.group * cfg.hop / sr
    x0 = float(cfg.frame_time_s(views.first_frame, sr)) - stride_s / 2
    x1 = x0 + views.columns * stride_s
    df = sr / cfg.nfft
    n_bins = next(iter(views.views.values())).shape[1] if views.views else 0
    idx, y0, height = scale.rows(cfg.bins)
    if idx is None:
        y0, y1 = (views.first_bin - 0.5) * df, (views.first_bin + n_bins - 0.5) * df
        rows = None
    else:
        # Non-linear scales: uniform rows in axis units, each the nearest bin (as the panes draw them).
        keep = (idx >= views.first_bin) & (idx < views.first_bin + n_bins)
        dy = height / len(idx)
        first = int(np.argmax(keep)) if keep.any() else 0
        last = len(keep) - int(np.argmax(keep[::-1])) if keep.any() else 0
        rows = idx[first:last] - views.first_bin
        y0, y1 = y0 + first * dy, y0 + last * dy
    auto = [n for n in {p.view for p in settings.panes} if view(n).levels is None and p_levels(settings, n) is None]
    auto_lim = max([_symmetric_limit(views.views[n]) for n in auto], default=1.0)
    out = []
    for pane in settings.panes:
        spec = view(pane.view)
        data = views.views[pane.view]
        if rows is not None:
            data = data[:, rows]
        if pane.levels is not None:
            levels = (float(pane.levels[0]), float(pane.levels[1]))
        elif pane.view == "magnitude":
            top = float(np.nanmax(data)) if data.size else 0.0
            levels = (settings.floor_db, max(10.0 * math.ceil(top / 10.0), settings.floor_db + 10.0))
        elif spec.levels is not None:
            levels = spec.levels(cfg, sr, settings.floor_db, 0.0)
        else:
            levels = (-auto_lim, auto_lim)
        title = spec.title(settings.compression)
        if spec.needs_partner and partner_label:
            title += f": {partner_label}"
        label = spec.unit
        if spec.maskable:
            floor = views.mask_floor_dbfs
            label += ("  " if label else "") + ("no mask" if floor is None else f"masked < {floor:.4g} dBFS")
        out.append(PaneImage(pane.view, title, label, data, levels, _colormap(spec, pane, settings),
                             (x0, x1, y0, y1)))
    return out


def p_levels(settings: FigureSettings, name: str):
    """Levels given for view ``name`` in ``settings`` (first pane showing it), or ``None``."""
    return next((p.levels for p in settings.panes if p.view == name and p.levels is not None), None)


def draw_views(views: SpectrogramViews, path: str | Path, *, title: str = "", width_px: int = 1600,
               height_px: int = 1000, layout: str | None = None, settings: FigureSettings | None = None,
               partner_label: str = "", overwrite: bool = True, protect: tuple = ()) -> Path:
    """Draw precomputed views to ``path`` (``.png`` or ``.svg``), written atomically; returns the path.

    ``settings`` (default: the CLI's defaults for ``views``) say which view each pane shows, with which
    levels, colours, frequency scale and region; ``layout`` overrides ``settings.layout``. ``overwrite``
    and ``protect`` (the inputs of the command) are checked by
    :func:`workbench.core.audio.outputs.check_output_target` before anything is drawn.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    layout = layout or (settings.layout if settings is not None else "grid")
    if suffix not in (".png", ".svg"):
        raise WorkbenchError(f"{path}: figure format must be .png or .svg, got {path.suffix or 'no suffix'!r}")
    if layout not in LAYOUTS:
        raise WorkbenchError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not (200 <= width_px <= 20000 and 200 <= height_px <= 20000):
        raise WorkbenchError(f"{path}: figure size {width_px}x{height_px} px is outside 200..20000 px")
    check_output_target(path, inputs=protect, overwrite=overwrite)

    # matplotlib is imported here, not at module level: the window imports this module at start-up
    # (for FigureSettings) and needs matplotlib only when a figure is exported.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, layout="constrained")
    canvas = (FigureCanvasAgg if suffix == ".png" else FigureCanvasSVG)(fig)
    shape = {"grid": (2, 2), "row": (1, 4), "column": (4, 1)}[layout]
    axes = fig.subplots(*shape, sharex=True, sharey=True, squeeze=False).ravel()
    sr = views.sample_rate
    settings = settings or FigureSettings(panes=default_panes(views.phase_view), compression=views.compression,
                                          floor_db=views.floor_db)
    panes = figure_panes(views, settings, partner_label)
    scale = FreqScale(settings.freq_scale, sr, views.cfg.nfft)
    if scale.kind == "linear":
        khz = FuncFormatter(lambda v, _pos: f"{v / 1000:g}")
    else:
        khz = FuncFormatter(lambda v, _pos: f"{float(scale.inv(v)) / 1000:.3g}")
    span_s = (settings.time_range_s[1] - settings.time_range_s[0]) if settings.time_range_s else views.duration_s
    # Past ten minutes, plain seconds (e.g. 2400) are harder to read than minutes:seconds (40:00).
    long_file = span_s > 600
    clock = FuncFormatter(lambda v, _pos: f"{int(v // 3600)}:{int(v % 3600 // 60):02d}:{int(v % 60):02d}"
                          if span_s >= 3600 else f"{int(v // 60)}:{int(v % 60):02d}")
    for i, (ax, pane) in enumerate(zip(axes, panes)):
        # Nearest-neighbour for every pane: interpolating wrapped angles or signed parts would draw
        # values that no bin holds (e.g. 0 rad halfway between +pi and -pi).
        im = ax.imshow(pane.data.T, origin="lower", aspect="auto", extent=pane.extent, interpolation="nearest",
                       cmap=pane.cmap, vmin=pane.levels[0], vmax=pane.levels[1])
        ax.set_title(pane.title, fontsize=11)
        cbar = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.05)
        cbar.set_label(pane.colorbar_label, fontsize=9)
        cbar.ax.tick_params(labelsize=8)
        if view(pane.view).colormap_kind == "cyclic" and np.allclose(pane.levels, (-math.pi, math.pi)):
            cbar.set_ticks([-math.pi, -math.pi / 2, 0, math.pi / 2, math.pi],
                           labels=["−π", "−π/2", "0", "π/2", "π"])
        ax.yaxis.set_major_formatter(khz)
        if settings.time_range_s is not None:
            ax.set_xlim(*settings.time_range_s)
        if settings.freq_range_hz is not None:
            ax.set_ylim(*(float(scale.fwd(f)) for f in settings.freq_range_hz))
        max_ticks = 8 if layout != "row" else 5
        if long_file:
            # Whole minutes (or hours) between ticks, so labels read 0:10:00 rather than 0:08:20.
            step = next((s for s in (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600)
                         if span_s / s <= max_ticks), 43200)
            ax.xaxis.set_major_locator(MultipleLocator(step))
            ax.xaxis.set_major_formatter(clock)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=max_ticks, steps=[1, 2, 2.5, 5, 10]))
        ax.tick_params(labelsize=8)
        row, col = divmod(i, shape[1])
        if row == shape[0] - 1:
            ax.set_xlabel(("time (h:mm:ss)" if span_s >= 3600 else "time (min:s)") if long_file
                          else "time (s)", fontsize=9)
        if col == 0:
            ax.set_ylabel("frequency (kHz)" + ("" if scale.kind == "linear" else f", {scale.kind} scale"),
                          fontsize=9)
    cfg = views.cfg
    sub = (f"{sr} Hz · {views.duration_s:.2f} s · {cfg.window} window, n_fft {cfg.n_fft}, hop {cfg.hop}"
           f"{f', FFT {cfg.nfft}' if cfg.nfft != cfg.n_fft else ''}")
    if settings.time_range_s is not None:
        sub += f" · shown {settings.time_range_s[0]:.3f}–{settings.time_range_s[1]:.3f} s"
    if views.group > 1:
        sub += f"\n{views.group} frames per drawn column (magnitude: maximum of the group; others: its centre frame)"
    # Narrow figures get smaller title text so the settings line is not clipped.
    size = 12 if width_px >= 1400 or layout == "row" else 10
    fig.suptitle(f"{title}\n{sub}" if title else sub, fontsize=size if title else size - 2)

    return _save_atomic(fig, canvas, path, overwrite=overwrite, protect=protect)


def _save_atomic(fig, canvas, path: Path, *, overwrite: bool, protect: tuple) -> Path:
    with atomic_output(path, overwrite=overwrite, protect=protect) as tmp:
        with open(tmp, "wb") as fh:
            if path.suffix.lower() == ".png":
                canvas.print_png(fh)
            else:
                canvas.print_svg(fh)
    return path


def render_figure(audio: np.ndarray, sample_rate: int, cfg: StftConfig, path: str | Path, *, title: str = "",
                  width_px: int = 1600, height_px: int = 1000, compression: float = 0.3,
                  floor_db: float = -100.0, phase_view: str = "phase", layout: str = "grid",
                  mask_below_db: float | None = 60.0, max_frames: int = MAX_FRAMES, overwrite: bool = True,
                  protect: tuple = ()) -> Path:
    """Draw magnitude, phase (or IF deviation / group delay), real and imaginary parts of ``audio``.

    Args:
        audio: mono float samples ``(n,)`` (``(n, 1)`` is accepted).
        sample_rate: Hz.
        cfg: STFT settings.
        path: output file; ``.png`` (Agg) or ``.svg``.
        title: first title line, usually the file name.
        width_px, height_px: figure size in pixels (100 dpi).
        compression: ``c`` in ``sign(x)|x|^c`` for the real and imaginary panes.
        floor_db: magnitude floor in dBFS (bottom of the magnitude colour scale).
        phase_view: ``phase`` | ``inst_freq`` | ``group_delay``.
        layout: ``grid`` (2 x 2), ``row`` (side by side) or ``column``.
        mask_below_db: derived phase views are greyed out more than this many dB under the peak.
        max_frames: columns drawn at most (longer signals are grouped; see module docstring).
        overwrite, protect: see :func:`draw_views`.

    Returns:
        ``path``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[1] == 1:
        audio = audio[:, 0]
    if audio.ndim != 1:
        raise WorkbenchError(f"render_figure needs mono audio (n,), got shape {audio.shape}")
    if audio.size == 0:
        raise WorkbenchError(f"{path}: nothing to draw (0 samples)")
    _check_options(phase_view, layout, compression, max_frames)
    views = compute_views_from_source(ArraySource(audio, sample_rate), cfg, channel=0, repair=False,
                                      phase_view=phase_view, compression=compression, floor_db=floor_db,
                                      mask_below_db=mask_below_db, max_frames=max_frames)
    return draw_views(views, path, title=title, width_px=width_px, height_px=height_px, layout=layout,
                      overwrite=overwrite, protect=protect)


def render_figure_source(source: AudioSource, cfg: StftConfig, path: str | Path, *, channel: int | str = 0,
                         repair: bool = False, title: str = "", width_px: int = 1600, height_px: int = 1000,
                         compression: float = 0.3, floor_db: float = -100.0, phase_view: str = "phase",
                         layout: str = "grid", mask_below_db: float | None = 60.0,
                         max_frames: int = MAX_FRAMES, settings: FigureSettings | None = None,
                         partner: tuple[AudioSource, int, bool] | None = None,
                         partner_label: str = "", overwrite: bool = True,
                         protect: tuple = ()) -> tuple[Path, SpectrogramViews]:
    """Like :func:`render_figure` for one channel (or ``"mix"``) of a source read in blocks.

    With ``settings`` (e.g. the panes' :class:`FigureSettings`), they decide the views, levels, colours,
    compression, masking, frequency scale and region, and the keyword options above them are ignored.
    ``partner`` ``(source, channel, partner_is_original)`` feeds difference views.
    Memory stays bounded by ``max_frames x bins`` whatever the file length. Returns the path and the
    computed views (for statistics).
    """
    views = compute_figure_views(source, cfg, settings, channel=channel, repair=repair, max_frames=max_frames,
                                 partner=partner, compression=compression, floor_db=floor_db,
                                 phase_view=phase_view, layout=layout, mask_below_db=mask_below_db)
    return draw_views(views, path, title=title, width_px=width_px, height_px=height_px,
                      layout=settings.layout if settings is not None else layout, settings=settings,
                      partner_label=partner_label, overwrite=overwrite, protect=protect), views


def compute_figure_views(source: AudioSource, cfg: StftConfig, settings: FigureSettings | None, *,
                         channel: int | str = 0, repair: bool = False, max_frames: int = MAX_FRAMES,
                         partner: tuple[AudioSource, int, bool] | None = None, compression: float = 0.3,
                         floor_db: float = -100.0, phase_view: str = "phase", layout: str = "grid",
                         mask_below_db: float | None = 60.0) -> SpectrogramViews:
    """The views a figure with ``settings`` draws (or, without settings, the CLI-style keyword options)."""
    if settings is None:
        _check_options(phase_view, layout, compression, max_frames)
        return compute_views_from_source(source, cfg, channel=channel, repair=repair, phase_view=phase_view,
                                         compression=compression, floor_db=floor_db, mask_below_db=mask_below_db,
                                         max_frames=max_frames, partner=partner)
    _check_options("phase", settings.layout, settings.compression, max_frames)
    return compute_views_from_source(
        source, cfg, channel=channel, repair=repair, partner=partner, pane_views=tuple(p.view for p in settings.panes),
        compression=settings.compression, floor_db=settings.floor_db, mask_below_db=settings.mask_below_db,
        mask_floor_dbfs=settings.mask_floor_dbfs, time_range_s=settings.time_range_s,
        freq_range_hz=settings.freq_range_hz, max_frames=max_frames)
