"""Headless figures of the complex STFT: magnitude, phase (or a derived phase view), real and imaginary.

Drawing uses matplotlib's object API on an Agg (PNG) or SVG canvas — no pyplot state, no display, no
Qt — so it runs in the CLI, in tests and in worker threads alike.

Long recordings are handled in bounded time and memory: the STFT is computed block by block from an
:class:`~workbench.core.audio_io.AudioSource`, and when a file has more frames than ``max_frames`` the
frames are grouped into ``g = ceil(frames / max_frames)`` consecutive frames per drawn column:

* magnitude column ``j`` is the **maximum** ``|S|`` over its group (so clicks and onsets stay visible);
* phase, real, imaginary, instantaneous-frequency and group-delay columns are taken from the group's
  **centre frame** unaveraged (averaging angles or signed parts would invent values no frame has).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from .audio_io import ArraySource, AudioSource, atomic_output
from .outputs import check_output_target
from .errors import NonFiniteAudioError, WorkbenchError
from .stft import (StftConfig, full_scale_gain, group_delay, instantaneous_frequency_deviation, power_law,
                   stft_frames)

#: Phase views the figure can show in its second pane.
PHASE_VIEWS = ("phase", "inst_freq", "group_delay")
#: Pane arrangements: 2 x 2, four side by side, or four stacked.
LAYOUTS = ("grid", "row", "column")
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
        views: name -> float32 ``(columns, bins)``; names are ``magnitude`` (dBFS), the phase view
            (``phase`` rad, ``inst_freq`` Hz or ``group_delay`` ms; NaN where masked), ``real`` and
            ``imag`` (``sign(x)|x|^c`` of the raw STFT).
        phase_view: which phase view is in ``views``.
        compression: ``c`` of the real/imaginary compression (``None`` = none).
        floor_db: magnitude floor in dBFS.
        nonfinite_repaired: NaN/Inf samples replaced by 0 while reading (only with ``repair``).
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


def _check_options(phase_view: str, layout: str, compression: float | None, max_frames: int) -> None:
    if phase_view not in PHASE_VIEWS:
        raise WorkbenchError(f"unknown phase view {phase_view!r}; choose one of {', '.join(PHASE_VIEWS)}")
    if layout not in LAYOUTS:
        raise WorkbenchError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if compression is not None and not 0 < compression <= 1:
        raise WorkbenchError(f"compression exponent must be in (0, 1], got {compression}")
    if max_frames < 1:
        raise WorkbenchError(f"max_frames must be at least 1, got {max_frames}")


def compute_views(read: Callable[[int, int], np.ndarray], n_samples: int, sample_rate: int, cfg: StftConfig, *,
                  phase_view: str = "phase", compression: float | None = 0.3, floor_db: float = -100.0,
                  mask_below_db: float | None = 60.0, max_frames: int = MAX_FRAMES) -> SpectrogramViews:
    """Compute the four drawn views of a mono signal, block by block.

    Args:
        read: ``read(start, stop) -> (stop - start,)`` float samples of the signal.
        n_samples: signal length in samples.
        sample_rate: Hz.
        phase_view: ``phase`` (wrapped, rad), ``inst_freq`` (IF deviation, Hz) or ``group_delay`` (ms).
        compression: exponent ``c`` for ``sign(x)|x|^c`` on the real and imaginary parts.
        floor_db: magnitude floor, dBFS (a full-scale sine reads 0 dB).
        mask_below_db: derived phase views (IF, group delay) are blanked (NaN) in bins more than this many
            dB under the loudest drawn bin, where their values are noise; ``None`` keeps everything.
        max_frames: at most this many columns are kept (see the module docstring for the grouping).

    Returns:
        :class:`SpectrogramViews` with float32 ``(columns, bins)`` arrays.
    """
    _check_options(phase_view, "grid", compression, max_frames)
    total = cfg.frame_count(n_samples)
    group = max(1, math.ceil(total / max_frames))
    columns = math.ceil(total / group) if total else 0
    bins = cfg.bins
    mag_max = np.zeros((columns, bins), np.float32)
    centre = np.zeros((columns, bins), np.complex64)
    derived = np.zeros((columns, bins), np.float32) if phase_view != "phase" else None
    # A block holds whole groups so that no group straddles two blocks.
    block = group * max(1, _BLOCK_FRAMES // group)
    prev_frame: np.ndarray | None = None
    for t0 in range(0, total, block):
        t1 = min(t0 + block, total)
        spec = _frames_with_predecessor(read, n_samples, t0, t1, cfg, prev_frame, phase_view)
        own = spec[1:] if phase_view == "inst_freq" else spec
        c0, c1 = t0 // group, math.ceil(t1 / group)
        mags = np.abs(own)
        starts = np.arange(c0, c1) * group - t0                # block-relative first frame of each group
        ends = np.minimum(starts + group, t1 - t0)              # the last group may be short
        for c, a, b in zip(range(c0, c1), starts, ends):
            mag_max[c] = mags[a:b].max(axis=0)
        picks = (starts + ends) // 2                            # centre frame of each group
        centre[c0:c1] = own[picks]
        if phase_view == "inst_freq":
            # IF needs frame t-1 for frame t; spec[0] is the predecessor of own[0].
            pair = np.stack([spec[picks], spec[picks + 1]], axis=1)  # (columns, 2, bins)
            ifd = instantaneous_frequency_deviation(pair.reshape(-1, bins), cfg, sample_rate)
            derived[c0:c1] = ifd.reshape(-1, 2, bins)[:, 1]
            if t0 == 0 and picks[0] == 0:
                derived[c0] = 0.0  # frame 0 has no predecessor
            prev_frame = own[-1]
        elif phase_view == "group_delay":
            derived[c0:c1] = group_delay(own[picks], cfg, sample_rate)
    views: dict[str, np.ndarray] = {}
    floor = 10.0 ** (floor_db / 20.0)
    mag_db = 20.0 * np.log10(np.maximum(mag_max * np.float32(full_scale_gain(cfg)), np.float32(floor)))
    # Clamp: float32 rounding of 10^(floor/20) would otherwise put the floor a hair under floor_db.
    views["magnitude"] = np.maximum(mag_db, np.float32(floor_db)).astype(np.float32)
    if phase_view == "phase":
        views["phase"] = np.angle(centre).astype(np.float32)
    else:
        if mask_below_db is not None and columns:
            mag = np.abs(centre)
            peak = float(mag.max())
            # A silent signal has no bin whose phase means anything: blank it all.
            derived[mag <= peak * 10.0 ** (-abs(mask_below_db) / 20.0)] = np.nan
        views[phase_view] = derived
    views["real"] = power_law(centre.real, compression)
    views["imag"] = power_law(centre.imag, compression)
    return SpectrogramViews(sample_rate=int(sample_rate), cfg=cfg, n_samples=int(n_samples), frames_total=total,
                            group=group, views=views, phase_view=phase_view, compression=compression,
                            floor_db=floor_db)


def _frames_with_predecessor(read, n_samples, t0, t1, cfg, prev_frame, phase_view) -> np.ndarray:
    """Frames ``[t0, t1)``; for the IF view with frame ``t0 - 1`` (or a copy of ``t0`` at the start) first."""
    spec = stft_frames(read, n_samples, t0, t1, cfg)
    if phase_view != "inst_freq":
        return spec
    if prev_frame is None:
        prev_frame = stft_frames(read, n_samples, t0 - 1, t0, cfg)[0] if t0 > 0 else spec[0]
    return np.concatenate([prev_frame[None, :], spec], axis=0)


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
                              repair: bool = False, **kwargs) -> SpectrogramViews:
    """:func:`compute_views` of one channel (or ``"mix"``, the channel mean) of a source, read in blocks.

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
        return block.mean(axis=1) if channel == "mix" else block[:, int(channel)]

    views = compute_views(_ForwardReader(fetch), source.frames, source.sample_rate, cfg, **kwargs)
    views.nonfinite_repaired = repaired[0]
    return views


# ----------------------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------------------

_PHASE_LABELS = {
    "phase": ("Phase (wrapped)", "phase (rad)"),
    "inst_freq": ("Instantaneous-frequency deviation", "IF deviation (Hz)"),
    "group_delay": ("Group delay (re. frame centre)", "group delay (ms)"),
}


def _compression_label(c: float | None, part: str) -> str:
    if c is None or c == 1.0:
        return f"{part} S"
    return f"sign({part} S)·|{part} S|^{c:g}"


def _symmetric_limit(arr: np.ndarray, percentile: float = 99.5) -> float:
    finite = np.abs(arr[np.isfinite(arr)])
    if finite.size == 0:
        return 1.0
    lim = float(np.percentile(finite, percentile))
    return lim if lim > 0 else float(finite.max()) or 1.0


def draw_views(views: SpectrogramViews, path: str | Path, *, title: str = "", width_px: int = 1600,
               height_px: int = 1000, layout: str = "grid", overwrite: bool = True,
               protect: tuple = ()) -> Path:
    """Draw precomputed views to ``path`` (``.png`` or ``.svg``), written atomically; returns the path.

    ``overwrite`` and ``protect`` (the inputs of the command) are checked by
    :func:`workbench.core.outputs.check_output_target` before anything is drawn."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise WorkbenchError(f"{path}: figure format must be .png or .svg, got {path.suffix or 'no suffix'!r}")
    if layout not in LAYOUTS:
        raise WorkbenchError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not (200 <= width_px <= 20000 and 200 <= height_px <= 20000):
        raise WorkbenchError(f"{path}: figure size {width_px}x{height_px} px is outside 200..20000 px")
    check_output_target(path, inputs=protect, overwrite=overwrite)

    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, layout="constrained")
    canvas = (FigureCanvasAgg if suffix == ".png" else FigureCanvasSVG)(fig)
    shape = {"grid": (2, 2), "row": (1, 4), "column": (4, 1)}[layout]
    axes = fig.subplots(*shape, sharex=True, sharey=True, squeeze=False).ravel()

    sr = views.sample_rate
    extent = (0.0, views.duration_s, 0.0, sr / 2.0)
    mag = views.views["magnitude"]
    mag_top = float(np.nanmax(mag)) if mag.size else 0.0
    vmax = max(10.0 * math.ceil(mag_top / 10.0), views.floor_db + 10.0)
    ph_name = views.phase_view
    ph = views.views[ph_name]
    if ph_name == "phase":
        ph_kw = dict(cmap="twilight", vmin=-math.pi, vmax=math.pi)
    elif ph_name == "inst_freq":
        # The deviation wraps at ±fs/(2 hop): beyond that, a phase advance is indistinguishable.
        lim = sr / (2.0 * views.cfg.hop)
        ph_kw = dict(cmap="twilight_shifted", vmin=-lim, vmax=lim)
    else:
        lim = _symmetric_limit(ph, 99.0)
        ph_kw = dict(cmap="RdBu_r", vmin=-lim, vmax=lim)
    re_lim = max(_symmetric_limit(views.views["real"]), _symmetric_limit(views.views["imag"]))
    panes = [
        ("Magnitude", mag, dict(cmap="magma", vmin=views.floor_db, vmax=vmax), "magnitude (dBFS)"),
        (_PHASE_LABELS[ph_name][0], ph, ph_kw, _PHASE_LABELS[ph_name][1]),
        ("Real part", views.views["real"], dict(cmap="RdBu_r", vmin=-re_lim, vmax=re_lim),
         _compression_label(views.compression, "Re")),
        ("Imaginary part", views.views["imag"], dict(cmap="RdBu_r", vmin=-re_lim, vmax=re_lim),
         _compression_label(views.compression, "Im")),
    ]
    khz = FuncFormatter(lambda v, _pos: f"{v / 1000:g}")
    # Past ten minutes, plain seconds (e.g. 2400) are harder to read than minutes:seconds (40:00).
    long_file = views.duration_s > 600
    clock = FuncFormatter(lambda v, _pos: f"{int(v // 3600)}:{int(v % 3600 // 60):02d}:{int(v % 60):02d}"
                          if views.duration_s >= 3600 else f"{int(v // 60)}:{int(v % 60):02d}")
    for i, (ax, (name, arr, kw, unit)) in enumerate(zip(axes, panes)):
        cmap = _cmap_with_bad(kw.pop("cmap"))
        # Nearest-neighbour for every pane: interpolating wrapped angles or signed parts would draw
        # values that no bin holds (e.g. 0 rad halfway between +pi and -pi).
        im = ax.imshow(arr.T, origin="lower", aspect="auto", extent=extent, interpolation="nearest",
                       cmap=cmap, **kw)
        ax.set_title(name, fontsize=11)
        cbar = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.05)
        cbar.set_label(unit, fontsize=9)
        cbar.ax.tick_params(labelsize=8)
        if ph_name == "phase" and arr is ph:
            cbar.set_ticks([-math.pi, -math.pi / 2, 0, math.pi / 2, math.pi],
                           labels=["−π", "−π/2", "0", "π/2", "π"])
        ax.yaxis.set_major_formatter(khz)
        max_ticks = 8 if layout != "row" else 5
        if long_file:
            # Whole minutes (or hours) between ticks, so labels read 0:10:00 rather than 0:08:20.
            step = next((s for s in (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600)
                         if views.duration_s / s <= max_ticks), 43200)
            ax.xaxis.set_major_locator(MultipleLocator(step))
            ax.xaxis.set_major_formatter(clock)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=max_ticks, steps=[1, 2, 2.5, 5, 10]))
        ax.tick_params(labelsize=8)
        row, col = divmod(i, shape[1])
        if row == shape[0] - 1:
            ax.set_xlabel(("time (h:mm:ss)" if views.duration_s >= 3600 else "time (min:s)") if long_file
                          else "time (s)", fontsize=9)
        if col == 0:
            ax.set_ylabel("frequency (kHz)", fontsize=9)
    cfg = views.cfg
    sub = (f"{sr} Hz · {views.duration_s:.2f} s · {cfg.window} window, n_fft {cfg.n_fft}, hop {cfg.hop}"
           f"{f', FFT {cfg.nfft}' if cfg.nfft != cfg.n_fft else ''}")
    if views.group > 1:
        sub += f"\n{views.group} frames per drawn column (magnitude: maximum of the group; others: its centre frame)"
    # Narrow figures get smaller title text so the settings line is not clipped.
    size = 12 if width_px >= 1400 or layout == "row" else 10
    fig.suptitle(f"{title}\n{sub}" if title else sub, fontsize=size if title else size - 2)

    return _save_atomic(fig, canvas, path, overwrite=overwrite, protect=protect)


def _cmap_with_bad(name: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad="#d9d9d9")  # masked (quiet) bins of derived phase views


def _save_atomic(fig: Figure, canvas, path: Path, *, overwrite: bool, protect: tuple) -> Path:
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
                         max_frames: int = MAX_FRAMES) -> tuple[Path, SpectrogramViews]:
    """Like :func:`render_figure` for one channel (or ``"mix"``) of a source read in blocks.

    Memory stays bounded by ``max_frames x bins`` whatever the file length. Returns the path and the
    computed views (for statistics).
    """
    _check_options(phase_view, layout, compression, max_frames)
    views = compute_views_from_source(source, cfg, channel=channel, repair=repair, phase_view=phase_view,
                                      compression=compression, floor_db=floor_db, mask_below_db=mask_below_db,
                                      max_frames=max_frames)
    return draw_views(views, path, title=title, width_px=width_px, height_px=height_px, layout=layout), views
