"""``workbench models``: list every available enhancer (built-ins and plugins) as a table or JSON."""

from __future__ import annotations

import json
import sys

from ..core.enhance.registry import list_enhancers, load_enhancer, plugin_errors
from ..core.errors import WorkbenchError


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the available enhancement models")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="also describe these model files or folders (ONNX, TorchScript, checkpoint, DTLN or "
                        "DeepFilterNet export folder): where they come from, licence, latency")
    p.add_argument("--json", action="store_true", help="print one JSON object per model")
    # Columns: id, name, rate, causal, latency, processing paths (default first), source package, licence.


def _fmt_causal(causal: bool | None) -> str:
    return "?" if causal is None else ("yes" if causal else "no")


def run(args) -> int:
    infos = list_enhancers()
    failed = 0
    for path in args.paths:
        try:
            enhancer = load_enhancer(path)
        except WorkbenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        infos.append(enhancer.info)
        enhancer.close()
    if args.json:
        for info in infos:
            print(json.dumps(info.to_dict(), default=str))
    else:
        header = ("id", "name", "rate", "causal", "latency", "processing", "source", "licence")
        rows = [(i.id, i.name, ("any" if i.any_rate else f"{i.sample_rate / 1000:g} kHz"), _fmt_causal(i.causal),
                 i.latency_text, "/".join(i.paths), i.source_text, i.licence or "?")
                for i in infos]
        widths = [max(len(r[k]) for r in rows + [header]) for k in range(len(header))]
        for row in [header] + rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        print("\nprocessing: the default path first; `--processing streaming` on `workbench enhance` "
              "or `workbench probe` picks the other where a model has both.")
        print("Any model file or folder can also be given to `workbench enhance -m PATH` "
              "(ONNX, TorchScript, PyTorch checkpoint, DTLN or DeepFilterNet export folder); "
              "`workbench models PATH` describes it.")
        print("latency: a model file that declares none is measured on its first run (cross-correlation with the "
              "input) and compensated; `--latency N` sets it. Output level is checked on every run "
              "(`--normalize peak|loudness`).")
    for pid, msg in plugin_errors().items():
        print(f"warning: {msg}", file=sys.stderr)
    return 2 if failed else 0
