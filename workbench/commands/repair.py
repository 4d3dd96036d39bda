"""``workbench repair IN --box T0:T1:F0:F1 (--gain-db -30 | --interpolate) -o OUT``: spectral repair.

Each ``--box`` (repeatable; seconds and Hz) is attenuated by ``--gain-db`` or has its STFT magnitude
interpolated from the frames around it, keeping the original phase (see :mod:`workbench.core.enhance.editing`).
Samples that no changed STFT frame covers are copied bit for bit. The boxes and the method are written
into the output's comment tag as JSON. The input is never written over.
"""

from __future__ import annotations

from .numbers import number

from pathlib import Path

from ..core.audio.audio_io import WRITE_SUBTYPES, load_audio, same_file
from ..core.enhance.editing import Box, repair_stft_config, spectral_repair
from ..core.errors import WorkbenchError
from ..core.workflows.export import write_with_provenance


def add_parser(sub) -> None:
    p = sub.add_parser("repair", help="attenuate or interpolate time-frequency boxes (spectral repair)")
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("--box", action="append", required=True, metavar="T0:T1:F0:F1",
                   help="time (s) and frequency (Hz) rectangle; repeatable")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--gain-db", type=number("--gain-db", -200.0, 60.0, "dB"), metavar="DB", help="multiply the box by this gain (e.g. -30)")
    how.add_argument("--interpolate", action="store_true",
                     help="replace the box's magnitude by interpolation from the frames around it (phase kept)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output WAV file")
    p.add_argument("--subtype", default="FLOAT", choices=WRITE_SUBTYPES["WAV"], help="output sample format")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args) -> int:
    path, target = Path(args.input), Path(args.output)
    if same_file(target, path):
        raise WorkbenchError(f"{target}: refusing to write over the input recording")
    boxes = [Box.parse(b) for b in args.box]
    if target.exists() and not args.overwrite:
        raise WorkbenchError(f"{target}: already exists (use --overwrite to replace it)")
    audio, info = load_audio(path)
    cfg = repair_stft_config(info.sample_rate)
    for box in boxes:
        audio = spectral_repair(audio, info.sample_rate, box, gain_db=args.gain_db, interpolate=args.interpolate,
                                cfg=cfg, where=str(path))
    provenance = {"workbench provenance": 1, "input": path.name, "operation": "spectral repair",
                  "boxes": [b.to_dict() for b in boxes],
                  "method": "interpolate" if args.interpolate else {"gain_db": args.gain_db},
                  "stft": {"n_fft": cfg.n_fft, "hop": cfg.hop, "window": cfg.window}}
    audio = audio[:, None] if audio.ndim == 1 else audio
    write_with_provenance(target, audio, info.sample_rate, args.subtype, provenance, overwrite=args.overwrite,
                          protect=(path,))
    print(f"{path.name}: {len(boxes)} box(es) repaired -> {target}")
    return 0
