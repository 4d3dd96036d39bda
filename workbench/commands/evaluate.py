"""``workbench evaluate PAIRS_DIR -m MODEL ... --csv OUT.csv [--plot OUT.png]``: a paper-style results table."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.progress import run_to_end


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="run models on noisy/clean pairs and tabulate quality metrics",
                       description="Pairs: NAME_noisy.wav with NAME_clean.wav, or noisy/NAME.wav with "
                                   "clean/NAME.wav. Precomputed outputs (NAME_TAG.wav or TAG/NAME.wav) are "
                                   "evaluated with -m file:TAG.")
    p.add_argument("pairs_dir", metavar="PAIRS_DIR")
    p.add_argument("-m", "--model", action="append", default=[], metavar="MODEL",
                   help="model id, model path, or file:TAG for precomputed outputs (repeatable)")
    p.add_argument("--csv", metavar="OUT.csv", help="write long-form results (file, model, metric, value, ...)")
    p.add_argument("--plot", metavar="OUT.png", help="write a bar chart (PNG, SVG or PDF by suffix)")
    add_reference_free_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing --csv/--plot files")
    add_speech_only_options(p)
    p.add_argument("--metrics", metavar="LIST",
                   help="comma-separated intrusive metrics (default all): " + ", ".join(_intrusive()))
    from .backend_options import add_backend_options
    add_backend_options(p.add_argument_group("where the pairs are scored (as `workbench batch`)"),
                        pool_by_default=False)


def add_reference_free_options(p) -> None:
    """``--no-reference-free`` and ``--reference-free-fast`` (shared with ``workbench batch evaluate``), with the
    names of earlier versions (``--no-dnsmos``, ``--dnsmos-fast``) kept as hidden aliases."""
    import argparse

    from ..core.measure.metrics import reference_free_label

    label = reference_free_label()
    p.add_argument("--no-reference-free", action="store_true",
                   help=f"skip the reference-free (non-intrusive) metrics ({label})")
    p.add_argument("--no-dnsmos", dest="no_reference_free", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--reference-free-fast", action="store_true",
                   help="the reference-free metrics in their fast, approximate mode where they have one (DNSMOS: "
                        "non-overlapping windows, about 9x fewer on long files); labelled as such in the output; "
                        "default: the exact, reference computation")
    p.add_argument("--dnsmos-fast", dest="reference_free_fast", action="store_true", help=argparse.SUPPRESS)


def add_speech_only_options(p) -> None:
    """``--speech-only`` and the speech-activity settings it uses (shared with ``workbench batch evaluate``)."""
    from ..core.measure.vad import VadSettings

    d = VadSettings()
    p.add_argument("--speech-only", action="store_true",
                   help="compute every metric over the speech spans Silero VAD finds in each clean file (the "
                        "same spans cut every system's output); labelled as such in the output")
    p.add_argument("--vad-threshold", type=float, default=d.threshold,
                   help=f"speech probability that starts speech, with --speech-only (default {d.threshold})")
    p.add_argument("--vad-min-pause-ms", type=float, default=d.min_pause_ms,
                   help=f"shortest pause that ends a span, with --speech-only (default {d.min_pause_ms:g} ms)")


def speech_only_settings(args):
    """The :class:`VadSettings` of ``--speech-only`` (``None`` without it)."""
    from ..core.errors import WorkbenchError
    from ..core.measure.vad import VadSettings

    if not args.speech_only:
        return None
    settings = VadSettings(threshold=args.vad_threshold, min_pause_ms=args.vad_min_pause_ms)
    try:
        settings.check()
    except ValueError as exc:
        raise WorkbenchError(f"--speech-only: {exc}") from None
    return settings


def _intrusive() -> tuple[str, ...]:
    from ..core.measure.metrics import intrusive_keys
    return intrusive_keys()


def run(args) -> int:
    from ..core.errors import WorkbenchError
    from ..core.workflows.evaluation import (FILE_PREFIX, check_plot_path, evaluate, format_table, pair_inputs, plot_bars,
                                   write_csv)
    from ..core.measure.metrics import find_pairs
    from ..core.audio.outputs import check_output_target, is_same_file
    from .backend_options import backend_choice

    where = backend_choice(args, pool_by_default=False)

    metrics = None
    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in _intrusive()]
        if unknown:
            raise WorkbenchError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(_intrusive())}")
    # Outputs are checked before any model runs: never an input of the evaluation (by path, symlink or
    # hard link), never a folder/FIFO/device, never an existing file without --overwrite.
    inputs = pair_inputs(find_pairs(args.pairs_dir))
    inputs += [Path(m) for m in args.model if not m.startswith(FILE_PREFIX) and Path(m).exists()]
    if args.plot:
        check_plot_path(args.plot)
    for out in (args.csv, args.plot):
        if out:
            check_output_target(out, inputs=inputs, overwrite=args.overwrite)
    if args.csv and args.plot and is_same_file(args.csv, args.plot):
        raise WorkbenchError(f"{args.csv}: --csv and --plot name the same file")
    tty = sys.stderr.isatty()
    result = run_to_end(evaluate(args.pairs_dir, args.model, reference_free=not args.no_reference_free,
                                 metrics=metrics, isolate_models=True, reference_free_fast=args.reference_free_fast,
                                 speech_only=speech_only_settings(args), backend=where.backend,
                                 workers=where.workers, threads=where.threads or 1, address=where.address),
                        (lambda p: print(f"\r{p.message[:70]:70s}", end="", file=sys.stderr)) if tty else None)
    if tty:
        print(file=sys.stderr)
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(format_table(result))
    if args.csv:
        print(f"wrote {write_csv(result, args.csv, overwrite=args.overwrite)}")
    if args.plot:
        print(f"wrote {plot_bars(result, args.plot, overwrite=args.overwrite)}")
    if result.unreadable:
        print(f"error: {len(result.unreadable)} of {len(result.files)} pair(s) could not be read (see the "
              "warnings above)", file=sys.stderr)
        return 2
    return 0
