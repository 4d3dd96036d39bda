"""``workbench analyze IN --png OUT.png [--json OUT.json] ...``: four-view STFT figure and a JSON summary.

The file is read block by block (never whole), so an hour-long recording renders in bounded memory;
see :mod:`workbench.core.views.figure` for how long files are reduced to at most ``--max-frames`` columns.
"""

from __future__ import annotations

from .numbers import number

import argparse
import json
import sys
import time
from pathlib import Path

from ..core.audio.audio_io import FileSource, atomic_output, read_info
from ..core.errors import WorkbenchError
from ..core.audio.outputs import check_output_target, is_same_file
from ..core.views.figure import LAYOUTS, MAX_FRAMES, compute_views_from_source, draw_views, phase_views
from ..core.views.registry import DEFAULT_MASK_BELOW_DB, view
from ..core.views.stft import WINDOWS, StftConfig


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _channel(text: str) -> int | str:
    if text == "mix":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel number (0, 1, ...) or 'mix', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"channel numbers start at 0, got {value}")
    return value


def _one_line_error(prog: str):
    # argparse's own error() prints the usage block and then the message (two or more lines); the CLI
    # promises exactly one "error: ..." line and exit status 2, also for argument mistakes.
    def error(message: str):
        print(f"error: {prog}: {message}", file=sys.stderr)
        sys.exit(2)

    return error


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze", help="render magnitude, phase, real and imaginary STFT views to a PNG/SVG (and a JSON summary)",
        description="Render the complex STFT of an audio file as four views (magnitude in dBFS, wrapped phase "
                    "or a derived phase view, compressed real and imaginary parts) without a display.")
    p.add_argument("input", metavar="IN", help="audio file (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...)")
    p.add_argument("--png", metavar="OUT", type=Path, help="figure to write (.png, or .svg by its suffix)")
    p.add_argument("--json", metavar="OUT.json", type=Path, help="metadata, STFT settings and per-view statistics")
    p.add_argument("--n-fft", metavar="N", type=_positive_int, default=1024, help="window length in samples (default 1024)")
    p.add_argument("--hop", metavar="H", type=_positive_int, default=None, help="hop in samples (default n_fft / 4)")
    p.add_argument("--window", metavar="W", choices=WINDOWS, default="hann", help="analysis window: hann, sqrt-hann, hamming or blackman (default hann)")
    p.add_argument("--fft-size", metavar="N", type=_positive_int, default=None,
                   help="DFT length >= n_fft; larger values zero-pad each frame (default n_fft)")
    p.add_argument("--channel", metavar="C", type=_channel, default=0, help="channel to analyse, from 0, or 'mix' (default 0)")
    p.add_argument("--repair", action="store_true", help="replace NaN/Inf samples with 0 instead of refusing the file")
    p.add_argument("--phase-view", choices=phase_views(), default="phase",
                   help="second pane, a view of the registry (workbench.core.views.registry): "
                        + ", ".join(f"{n} ({view(n).label})" for n in phase_views()))
    p.add_argument("--compression", metavar="c", type=number("--compression", 0.0, 1.0), default=0.3,
                   help="exponent c of sign(x)|x|^c for the real/imaginary panes, 0 < c <= 1 (default 0.3)")
    p.add_argument("--floor-db", metavar="DB", type=number("--floor-db", -400.0, 0.0, "dB"), default=-100.0, help="magnitude floor in dBFS (default -100)")
    p.add_argument("--mask-below-db", metavar="DB", type=number("--mask-below-db", 0.0, 400.0, "dB"), default=DEFAULT_MASK_BELOW_DB,
                   help="grey out derived phase views (IF deviation, group delay) this many dB under the "
                        f"loudest bin (default {DEFAULT_MASK_BELOW_DB:g}, as the GUI panes)")
    p.add_argument("--layout", choices=LAYOUTS, default="grid", help="grid (2x2), row (side by side) or column")
    p.add_argument("--size", metavar="WxH", default=None,
                   help="figure size in pixels (default 1600x1000; 2400x700 for row, 1000x2000 for column)")
    p.add_argument("--max-frames", metavar="N", type=_positive_int, default=MAX_FRAMES,
                   help=f"draw at most this many frame columns; longer files are grouped (default {MAX_FRAMES})")
    p.add_argument("--title", default=None, help="figure title (default: the file name)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --png/--json files")
    p.error = _one_line_error("analyze")  # type: ignore[method-assign]


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise WorkbenchError(f"--size must look like 1600x1000, got {text!r}") from None
    return w, h


def _check_output(out: Path, source: Path, flag: str, suffixes: tuple[str, ...], overwrite: bool) -> None:
    if out.suffix.lower() not in suffixes:
        raise WorkbenchError(f"{out}: {flag} needs a file name ending in {' or '.join(suffixes)}")
    check_output_target(out, inputs=(source,), overwrite=overwrite)


def _write_json_atomic(path: Path, payload: dict, source: Path, overwrite: bool) -> None:
    with atomic_output(path, overwrite=overwrite, protect=(source,)) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def run(args) -> int:
    path = Path(args.input)
    if args.png is None and args.json is None:
        raise WorkbenchError(f"{path}: nothing to do; give --png OUT.png and/or --json OUT.json")
    if args.png is not None:
        _check_output(args.png, path, "--png", (".png", ".svg"), args.overwrite)
    if args.json is not None:
        _check_output(args.json, path, "--json", (".json",), args.overwrite)
    if args.png is not None and args.json is not None and is_same_file(args.png, args.json):
        raise WorkbenchError(f"{args.png}: --png and --json name the same file")
    default_size = {"row": "2400x700", "column": "1000x2000"}.get(args.layout, "1600x1000")
    width, height = _parse_size(args.size or default_size)
    if not -300.0 <= args.floor_db < 0.0:
        raise WorkbenchError(f"{path}: --floor-db must be between -300 and 0 dBFS, got {args.floor_db:g}")
    if not 0.0 < args.compression <= 1.0:
        raise WorkbenchError(f"{path}: --compression must be in (0, 1], got {args.compression:g}")
    hop = args.hop if args.hop is not None else max(1, args.n_fft // 4)
    try:
        cfg = StftConfig(n_fft=args.n_fft, hop=hop, window=args.window, fft_size=args.fft_size)
    except ValueError as exc:
        raise WorkbenchError(f"{path}: invalid STFT settings: {exc}") from None

    info = read_info(path)
    started = time.perf_counter()
    source = FileSource(path, info=info, repair=False)
    try:
        views = compute_views_from_source(
            source, cfg, channel=args.channel, repair=args.repair, phase_view=args.phase_view,
            compression=args.compression, floor_db=args.floor_db, mask_below_db=args.mask_below_db,
            max_frames=args.max_frames)
    finally:
        source.close()
    if args.png is not None:
        draw_views(views, args.png, title=args.title if args.title is not None else path.name,
                   width_px=width, height_px=height, layout=args.layout, overwrite=args.overwrite,
                   protect=(path,))
    elapsed = time.perf_counter() - started

    if args.json is not None:
        meta = info.to_dict()
        meta["path"] = str(path.resolve())
        payload = {
            **meta,
            "stft": {**cfg.to_dict(), "bins": cfg.bins, "frames": views.frames_total,
                     "frame_rate_hz": info.sample_rate / cfg.hop, "bin_spacing_hz": info.sample_rate / cfg.nfft},
            "analysis": {
                "channel": args.channel,
                "phase_view": args.phase_view,
                "compression": args.compression,
                "floor_db": args.floor_db,
                "mask_below_db": args.mask_below_db,
                "mask_floor_dbfs": views.mask_floor_dbfs,
                "columns_drawn": views.columns,
                "frames_per_column": views.group,
                "nonfinite_repaired": views.nonfinite_repaired,
                "stats": views.stats(),
                "elapsed_s": round(elapsed, 4),
            },
            "figure": str(args.png.resolve()) if args.png is not None else None,
        }
        _write_json_atomic(args.json, payload, path, args.overwrite)
    return 0
