"""``workbench loss-lab CONFIG.toml --losses mae,mse,neg_si_sdr,... -o OUT``: one architecture, several losses.

Trains the run CONFIG describes once per loss (same architecture, data and seed; each in ``OUT/<loss>/``,
resumable), then writes ``OUT/loss_lab.csv`` (validation PESQ-WB, ESTOI, SI-SDR and loss terms per loss) and
``OUT/loss_lab.png`` (a chart of the metrics). Loss names: ``workbench loss-lab --list``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import WorkbenchError


def add_parser(sub) -> None:
    p = sub.add_parser("loss-lab", help="train one architecture with several losses; table and chart per loss",
                       description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[1])
    p.add_argument("config", metavar="CONFIG.toml", nargs="?")
    p.add_argument("--losses", metavar="LIST",
                   help="comma-separated losses (weighted sums allowed: '0.5*mae+0.5*mrstft')")
    p.add_argument("-o", "--out", metavar="OUT_DIR", help="lab folder (default: the config's out_dir + '-lab')")
    p.add_argument("--restart", action="store_true", help="retrain every loss instead of continuing")
    p.add_argument("--list", action="store_true", help="list the loss names with their definitions")


def run(args) -> int:
    from workbench_models.training.losses import describe_losses
    if args.list:
        for name, doc in describe_losses():
            print(f"{name:14s} {doc}")
        return 0
    if not args.config or not args.losses:
        raise WorkbenchError("loss-lab needs CONFIG.toml and --losses (see --list)")
    from workbench_models.training.loss_lab import loss_lab
    from ..core.workflows.train_config import read_config
    from .train import StopFlag, format_event
    cfg = read_config(args.config)
    losses = [x.strip() for x in args.losses.split(",") if x.strip()]
    out = Path(args.out) if args.out else cfg.out_dir.with_name(cfg.out_dir.name + "-lab")
    stop = StopFlag()
    stop.install()
    try:
        for ev in loss_lab(cfg, losses, out, resume=not args.restart, should_stop=stop):
            if ev["event"] == "lab":
                for r in ev["rows"]:
                    print(f"{r['loss']:28s} " + "  ".join(f"{k} {r['values'][k]:.3f}"
                                                          for k in ("pesq_wb", "estoi", "si_sdr") if k in r["values"]))
                print(f"table: {ev['table']}\nchart: {ev['chart']}")
                continue
            line = format_event(ev)
            if line and ev["event"] != "step":
                print(f"[{ev['loss_name']}] {line}", flush=True)
            if ev["event"] == "stopped":
                return 130
    except ValueError as exc:
        raise WorkbenchError(f"{args.config}: {exc}") from None
    finally:
        stop.restore()
    sys.stdout.flush()
    return 0
