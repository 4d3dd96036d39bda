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
    p.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (non-intrusive) scores")
    p.add_argument("--dnsmos-fast", action="store_true",
                   help="DNSMOS on non-overlapping windows: about 9x fewer windows on long files, approximate "
                        "(labelled as such in the output); default: the exact, reference DNSMOS")
    p.add_argument("--overwrite", action="store_true", help="replace existing --csv/--plot files")
    p.add_argument("--metrics", metavar="LIST",
                   help="comma-separated intrusive metrics (default all): " + ", ".join(_intrusive()))


def _intrusive() -> tuple[str, ...]:
    from ..core.measure.metrics import INTRUSIVE_METRICS
    return INTRUSIVE_METRICS


def run(args) -> int:
    from ..core.errors import WorkbenchError
    from ..core.workflows.evaluation import (FILE_PREFIX, check_plot_path, evaluate, format_table, pair_inputs, plot_bars,
                                   write_csv)
    from ..core.measure.metrics import find_pairs
    from ..core.audio.outputs import check_output_target, is_same_file

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
    result = run_to_end(evaluate(args.pairs_dir, args.model, dnsmos=not args.no_dnsmos, metrics=metrics,
                                 isolate_models=True, dnsmos_fast=args.dnsmos_fast),
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
