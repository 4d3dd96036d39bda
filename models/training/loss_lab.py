"""Loss lab: the same architecture, data and seed trained once per loss; a table and a chart of the results.

Each loss gets its own run folder ``OUT/<loss>/`` (a normal run: resumable, its ``model.pt`` loads in the
workbench), so an interrupted lab continues where it stopped. The table (``OUT/loss_lab.csv``) has one row
per loss with the final validation metrics (PESQ-WB, ESTOI, SI-SDR) and the validation value of every loss
term; the chart (``OUT/loss_lab.png``) shows the metrics per loss side by side. The texts' claims (MAE
suppresses noise harder than MSE; signal approximation beats mask approximation; SI-SDR alone distorts
speech...) are then a measurement on the person's own data.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from pathlib import Path
from typing import Callable, Iterator

from workbench.core.audio.audio_io import atomic_output
from workbench.core.workflows.train_config import TrainConfig

from .losses import parse_loss
from .trainer import train

METRICS = ("pesq_wb", "estoi", "si_sdr")
LABELS = {"pesq_wb": "PESQ-WB", "estoi": "ESTOI", "si_sdr": "SI-SDR (dB)"}


def folder_name(loss: str) -> str:
    """A file-system-safe folder name for a loss expression (``0.5*mae + mrstft`` -> ``0.5xmae+mrstft``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "", loss.replace("*", "x").replace(" ", "")) or "loss"


def loss_lab(cfg: TrainConfig, losses: list[str], out_dir: Path, *, resume: bool = True,
             should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict]:
    """Train ``cfg`` once per loss; yields each run's events (with ``loss`` added) and finally
    ``{"event": "lab", "table": csv path, "chart": png path, "rows": [{"loss", "model", "values"}, ...]}``."""
    for text in losses:
        parse_loss(text)  # refuse a bad name before hours of training
    rows = []
    for text in losses:
        run_cfg = copy.deepcopy(cfg)
        run_cfg.loss.loss = text
        run_cfg.run.out_dir = str(Path(out_dir) / folder_name(text))
        run_cfg.model.name = f"{cfg.model.name or Path(out_dir).name}-{folder_name(text)}"
        final = None
        for ev in train(run_cfg, resume=resume, should_stop=should_stop):
            yield {**ev, "loss_name": text}
            if ev["event"] == "stopped":
                return
            if ev["event"] == "done":
                final = ev
        rows.append({"loss": text, "model": final["model"], "values": dict(final["metrics"])})
    table, chart = write_table(rows, Path(out_dir)), write_chart(rows, Path(out_dir))
    yield {"event": "lab", "table": str(table), "chart": str(chart), "rows": rows}


def write_table(rows: list[dict], out_dir: Path) -> Path:
    """``loss_lab.csv``: loss, the metrics, the validation value of every loss term (``val_*``), the model file."""
    keys = [m for m in METRICS if any(m in r["values"] for r in rows)]
    others = sorted({k for r in rows for k in r["values"] if k not in METRICS})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["loss", *keys, *(f"val_{k}" for k in others), "model"])
    for r in rows:
        v = r["values"]
        w.writerow([r["loss"], *(_fmt(v.get(k)) for k in keys), *(_fmt(v.get(k)) for k in others), r["model"]])
    path = out_dir / "loss_lab.csv"
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def write_chart(rows: list[dict], out_dir: Path) -> Path:
    """One panel per metric, a bar per loss (matplotlib's Agg canvas: no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    metrics = [m for m in METRICS if any(m in r["values"] for r in rows)]
    fig = Figure(figsize=(3.2 * max(len(metrics), 1), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        values = [r["values"].get(m, float("nan")) for r in rows]
        ax.bar(range(len(rows)), values, color=[f"C{k % 10}" for k in range(len(rows))])
        ax.set_xticks(range(len(rows)), [r["loss"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(LABELS[m])
        for k, v in enumerate(values):
            ax.annotate(f"{v:.2f}", (k, v), ha="center", va="bottom", fontsize=7)
    fig.suptitle("Validation metrics per training loss (same architecture, data, seed)", fontsize=9)
    path = out_dir / "loss_lab.png"
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
