"""``workbench info FILE...``: print a file's metadata (one block per file, or JSON).

Float files (the only ones that can hold NaN/Inf) are also scanned block by block and the count of
non-finite samples is shown, so a broken export is visible before it is opened for analysis.
"""

from __future__ import annotations

import json

from ..core.audio.audio_io import FileSource, read_info, scan_nonfinite


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print metadata of audio files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")


def run(args) -> int:
    for path in args.files:
        info = read_info(path)
        source = FileSource(path, info=info)
        try:
            report = scan_nonfinite(source)
        finally:
            source.close()
        if args.json:
            print(json.dumps({**info.to_dict(), "nan_samples": report.nan_count, "inf_samples": report.inf_count}))
            continue
        depth = f"{info.bit_depth}-bit" if info.bit_depth else "compressed"
        print(f"{info.path}\n  format:      {info.format} ({info.subtype}, {depth})\n"
              f"  sample rate: {info.sample_rate} Hz\n  channels:    {info.channels}\n"
              f"  frames:      {info.frames}\n  duration:    {info.duration_s:.3f} s")
        if not report.clean:
            print(f"  non-finite:  {report.nan_count} NaN, {report.inf_count} Inf (first at frame "
                  f"{report.first_frame}); analyze/enhance need --repair")
    return 0
