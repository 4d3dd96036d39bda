"""``workbench vad IN [--csv|--json|--labels OUT]``: where a recording holds speech (Silero VAD).

Without an output option the speech spans are printed (``start end`` in seconds, one per line). ``--labels``
writes Audacity's label-track text (``start<TAB>end<TAB>speech``, File > Import > Labels); ``--csv`` a
table of spans; ``--json`` spans, settings and the per-window probabilities. Threshold and minimum pause
default to the silero-vad package's recommendation (0.5, 100 ms).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import WorkbenchError


def add_parser(sub) -> None:
    from ..core.measure.vad import VadSettings

    d = VadSettings()
    p = sub.add_parser("vad", help="find the speech spans of a recording (Silero VAD)")
    p.add_argument("input", metavar="IN", help="audio file")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--labels", metavar="OUT.txt", help="write an Audacity label track")
    out.add_argument("--csv", metavar="OUT.csv", help="write the spans as CSV")
    out.add_argument("--json", metavar="OUT.json", help="write spans, settings and probabilities as JSON")
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help=f"speech probability that starts speech (default {d.threshold})")
    p.add_argument("--min-pause-ms", type=float, default=d.min_pause_ms,
                   help=f"shortest pause that ends a span (default {d.min_pause_ms:g} ms)")
    p.add_argument("--min-speech-ms", type=float, default=d.min_speech_ms,
                   help=f"shorter spans are dropped (default {d.min_speech_ms:g} ms)")
    p.add_argument("--pad-ms", type=float, default=d.pad_ms, help=f"widen each span (default {d.pad_ms:g} ms)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args) -> int:
    from ..core.audio.audio_io import atomic_output, load_audio
    from ..core.progress import run_to_end
    from ..core.measure.vad import VadSettings, csv_text, detect_speech, labels_text

    settings = VadSettings(args.threshold, args.min_pause_ms, args.min_speech_ms, args.pad_ms)
    try:
        settings.check()
    except ValueError as exc:
        raise WorkbenchError(str(exc)) from None
    audio, info = load_audio(args.input)
    result = run_to_end(detect_speech(audio, info.sample_rate, settings))
    target = args.labels or args.csv or args.json
    if target is None:
        for a, b in result.spans:
            print(f"{a:.3f}\t{b:.3f}")
        print(f"{len(result.spans)} speech spans, {result.speech_s:.2f} s of {result.duration_s:.2f} s")
        return 0
    text = (labels_text(result.spans) if args.labels else csv_text(result.spans) if args.csv
            else json.dumps({"input": str(args.input), **result.to_dict()}))
    with atomic_output(Path(target), overwrite=args.overwrite, protect=(args.input,)) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    print(f"{target}: {len(result.spans)} speech spans, {result.speech_s:.2f} s of {result.duration_s:.2f} s")
    return 0
