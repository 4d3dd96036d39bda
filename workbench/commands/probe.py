"""``workbench probe -m MODEL [--processing PATH] [--json]``: measure causality, latency, speed and size of a model.

The speed is given twice: the warm real-time factor (median of ``--runs`` in this process, the model loaded)
and the cold cost of a person's next command (a fresh process: start-up, model load and first run).
"""

from __future__ import annotations

from .numbers import number

import json
import sys

from ..core.enhance.enhancer import with_processing
from ..core.progress import run_to_end


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="measure a model's causality, latency, real-time factor and size")
    p.add_argument("-m", "--model", required=True, metavar="MODEL",
                   help="built-in id, plugin id, or path to a model file/folder")
    p.add_argument("--audio", metavar="FILE",
                   help="speech file used for the real-time factor (default: 5 s of a synthetic speech-like signal)")
    p.add_argument("--runs", type=number("--runs", 1, 1000, integer=True), default=3, help="timed runs for the real-time factor (median; default 3)")
    p.add_argument("--processing", choices=("offline", "streaming"),
                   help="for models with both paths (see `workbench models`): probe that path instead of the "
                        "model's default")
    p.add_argument("--no-cold", dest="cold", action="store_false",
                   help="skip the cold figure (a fresh process loading the model and running it once)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from ..core.audio.audio_io import downmix, load_audio
    from ..core.workflows.probes import format_report, probe
    from ..core.enhance.registry import load_enhancer

    enhancer = load_enhancer(args.model, isolate=True)  # stoppable by Ctrl-C / time budget
    if args.processing is not None:
        enhancer = with_processing(enhancer, args.processing)  # one clear line if the model lacks that path
    audio = sr = None
    if args.audio:
        data, info = load_audio(args.audio)
        audio, sr = downmix(data), info.sample_rate
    quiet = args.json or not sys.stderr.isatty()
    report = run_to_end(probe(enhancer, audio=audio, sample_rate=sr, rtf_runs=max(args.runs, 1),
                              cold_spec=args.model if args.cold else None),
                        None if quiet else lambda p: print(f"\r{p.message:60s}", end="", file=sys.stderr))
    if not quiet:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    print(format_report(report))
    return 0
