"""``workbench evaluate PAIRS_DIR -m MODEL ... --csv OUT.csv [--plot OUT.png]``: a paper-style results table."""

from __future__ import annotations

import sys

from ..core.enhancer import run_to_end


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
    p.add_argument("--metrics", metavar="LIST",
                   help="comma-separated intrusive metrics (default all): " + ", ".join(_intrusive()))


def _intrusive() -> tuple[str, ...]:
    from ..core.metrics import INTRUSIVE_METRICS
    return INTRUSIVE_METRICS


def run(args) -> int:
    from ..core.errors import WorkbenchError
    from ..core.evaluation import evaluate, format_table, plot_bars, write_csv

    metrics = None
    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in _intrusive()]
        if unknown:
            raise WorkbenchError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(_intrusive())}")
    tty = sys.stderr.isatty()
    result = run_to_end(evaluate(args.pairs_dir, args.model, dnsmos=not args.no_dnsmos, metrics=metrics),
                        (lambda p: print(f"\r{p.message[:70]:70s}", end="", file=sys.stderr)) if tty else None)
    if tty:
        print(file=sys.stderr)
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(format_table(result))
    if args.csv:
        print(f"wrote {write_csv(result, args.csv)}")
    if args.plot:
        print(f"wrote {plot_bars(result, args.plot)}")
    return 0
