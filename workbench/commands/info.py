"""``workbench info FILE...``: print a file's metadata (one block per file, or JSON)."""

from __future__ import annotations

import json

from ..core.audio_io import read_info


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print metadata of audio files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")


def run(args) -> int:
    for path in args.files:
        info = read_info(path)
        if args.json:
            print(json.dumps(info.to_dict()))
            continue
        depth = f"{info.bit_depth}-bit" if info.bit_depth else "compressed"
        print(f"{info.path}\n  format:      {info.format} ({info.subtype}, {depth})\n"
              f"  sample rate: {info.sample_rate} Hz\n  channels:    {info.channels}\n"
              f"  frames:      {info.frames}\n  duration:    {info.duration_s:.3f} s")
    return 0
