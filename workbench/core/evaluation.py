"""Scoring versions and evaluating models over a folder of noisy/clean pairs (the paper-style table).

One function scores a signal, :func:`score_signal`; the CLI (``workbench evaluate``), the metrics panel and
the tests all go through it, so they report the same numbers for the same audio.

Systems in an evaluation:

* ``noisy`` — the unprocessed input;
* a model spec (built-in id, plugin id or model path, see :func:`workbench.core.registry.load_enhancer`) —
  the model is run on every noisy file with the engine (:func:`workbench.core.enhancer.enhance`);
* ``file:TAG`` — precomputed outputs found next to the pairs (``NAME_TAG.wav``, or ``TAG/NAME.wav`` in the
  folder convention), e.g. ``file:GTCRN`` for the GTCRN authors' published outputs.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, Iterable, Sequence

import numpy as np

from .audio_io import atomic_output, load_audio, resample
from .dnsmos import DNSMOS_METRICS, dnsmos_metrics, dnsmos_metrics_steps
from .enhancer import Enhancer, Progress, rescaled
from .errors import WorkbenchError
from .outputs import check_output_target
from .metrics import INTRUSIVE_METRICS, METRIC_SPECS, Metric, Pair, failed, find_pairs, intrusive_metrics

NOISY = "noisy"
FILE_PREFIX = "file:"


@dataclass
class Scores:
    """Metrics of one signal.

    Attributes:
        metrics: ``{key: Metric}`` (intrusive ones only when a reference was given; DNSMOS when asked).
        lag_samples: alignment lag against the reference at the reference rate (None without reference).
    """

    metrics: dict[str, Metric]
    lag_samples: int | None = None


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] > 1 else a[:, 0]
    return a


def score_signal(estimate: np.ndarray, sample_rate: int, reference: np.ndarray | None = None,
                 reference_rate: int | None = None, *, dnsmos: bool = True,
                 metrics: Iterable[str] | None = None) -> Scores:
    """Score ``estimate`` (``(n,)`` or ``(n, ch)`` at ``sample_rate`` Hz; multichannel is averaged to mono).

    With a ``reference`` (clean speech at ``reference_rate``, default ``sample_rate``) the intrusive metrics
    are computed after resampling the estimate to the reference rate (soxr) and aligning it by
    cross-correlation; DNSMOS (non-intrusive) is computed on the estimate itself.

    Args:
        metrics: intrusive keys to compute (default all of :data:`INTRUSIVE_METRICS`).
    """
    est = _mono(estimate)
    out: dict[str, Metric] = {}
    lag = None
    if reference is not None:
        rate = reference_rate or sample_rate
        ref = _mono(reference)
        est_r = resample(est, sample_rate, rate) if rate != sample_rate else est
        res = intrusive_metrics(ref, est_r, rate, metrics=metrics)
        out.update(res.metrics)
        lag = res.lag_samples
    if dnsmos:
        out.update(dnsmos_metrics(est, sample_rate))
    return Scores(out, lag)


# ------------------------------------------------------------------------------------------ evaluate


@dataclass
class Measurement:
    """One row of the long-form results: one metric of one system on one file."""

    file: str
    model: str
    metric: str
    value: float | None
    unit: str
    reason: str = ""
    lag_samples: int | None = None


@dataclass
class Summary:
    """Mean and 95% confidence interval of one metric for one system.

    ``ci95 = t_{0.975, n-1} · sd / sqrt(n)`` (Student t; ``sd`` with ``n-1``); ``None`` when ``n < 2``.
    ``failed`` counts files where the metric had no value (they are left out of the mean).
    """

    model: str
    metric: str
    mean: float | None
    ci95: float | None
    n: int
    failed: int


@dataclass
class EvaluationResult:
    """All measurements of an evaluation plus the systems and metrics in table order."""

    measurements: list[Measurement]
    systems: list[str]
    metrics: list[str]
    files: list[str]
    elapsed_s: dict[str, float] = field(default_factory=dict)
    #: every file the evaluation read (noisy, clean, precomputed outputs): never written over.
    inputs: list[Path] = field(default_factory=list)

    def summaries(self) -> dict[tuple[str, str], Summary]:
        """``{(system, metric): Summary}``."""
        from scipy.stats import t as student_t

        groups: dict[tuple[str, str], list[Measurement]] = {}
        for m in self.measurements:
            groups.setdefault((m.model, m.metric), []).append(m)
        out = {}
        for (model, metric), rows in groups.items():
            vals = np.array([r.value for r in rows if r.value is not None], np.float64)
            n = len(vals)
            mean = float(vals.mean()) if n else None
            ci = (float(student_t.ppf(0.975, n - 1) * vals.std(ddof=1) / math.sqrt(n)) if n >= 2 else None)
            out[(model, metric)] = Summary(model, metric, mean, ci, n, len(rows) - n)
        return out

    def value(self, file: str, model: str, metric: str) -> float | None:
        for m in self.measurements:
            if m.file == file and m.model == model and m.metric == metric:
                return m.value
        raise KeyError((file, model, metric))


def pair_inputs(pairs: Sequence[Pair]) -> list[Path]:
    """Every file the pairs name (noisy, clean, precomputed outputs): what an evaluation reads."""
    out: list[Path] = []
    for p in pairs:
        out += [p.noisy, p.clean, *p.outputs.values()]
    return out


def _load_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, info = load_audio(path)
    return _mono(audio), info.sample_rate


def evaluate(pairs: str | Path | Sequence[Pair], models: Sequence[str | Enhancer] = (), *, dnsmos: bool = True,
             metrics: Iterable[str] | None = None, include_noisy: bool = True
             ) -> Generator[Progress, None, EvaluationResult]:
    """Run every system on every pair and measure it; a generator yielding :class:`Progress`.

    Args:
        pairs: a folder (see :func:`workbench.core.metrics.find_pairs`) or a list of :class:`Pair`.
        models: model specs, loaded :class:`Enhancer` s, or ``file:TAG`` for precomputed outputs.
        dnsmos: also compute DNSMOS SIG/BAK/OVRL/P.808.
        metrics: intrusive metric keys (default all).

    Returns:
        :class:`EvaluationResult` (long form, one :class:`Measurement` per file, system and metric).

    Raises:
        WorkbenchError: no pairs, a missing precomputed output, an unreadable file, or a model error.
    """
    pair_list = find_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    if not pair_list:
        raise WorkbenchError("no noisy/clean pairs to evaluate")
    wanted = list(INTRUSIVE_METRICS if metrics is None else metrics)
    metric_keys = wanted + (list(DNSMOS_METRICS) if dnsmos else [])
    systems: list[tuple[str, str | Enhancer | None]] = [(NOISY, None)] if include_noisy else []
    for m in models:
        if isinstance(m, Enhancer):
            systems.append((m.info.id, m))
        elif isinstance(m, str) and m.startswith(FILE_PREFIX):
            tag = m[len(FILE_PREFIX):]
            missing = [p.name for p in pair_list if tag not in p.outputs]
            if missing:
                raise WorkbenchError(f"precomputed outputs {tag!r} missing for {', '.join(missing)} "
                                     f"(expected NAME_{tag}.wav beside NAME_noisy.wav, or {tag}/NAME.wav)")
            systems.append((m, m))
        else:
            from .registry import load_enhancer  # local: listing models may import heavy packages

            enh = load_enhancer(m)
            systems.append((enh.info.id, enh))
    names = [s for s, _ in systems]
    if len(set(names)) != len(names):
        raise WorkbenchError(f"each system may be given once; got {', '.join(names)}")
    # One pair with one system is one batch item: the same function as `workbench batch evaluate` on
    # any backend, so both report the same numbers; a pair that cannot be read gets rows with reasons.
    from .batch.item import evaluate_item, evaluate_task, model_identity

    rows: list[dict] = []
    elapsed: dict[str, float] = {}
    total = len(pair_list) * len(systems)
    for pair in pair_list:
        for name, system in systems:
            done = len(rows)
            yield Progress(done / total, f"{pair.name}: {name}")
            if isinstance(system, Enhancer):
                task = evaluate_task(done, pair, name, dnsmos=dnsmos, metrics=wanted)
                row = yield from rescaled(evaluate_item(task, system, model_identity(system, name)),
                                          done / total, 1.0 / total, "")
                if row["status"] == "done":
                    elapsed[name] = elapsed.get(name, 0.0) + row["timings"].get("model_s", 0.0)
            else:
                task = evaluate_task(done, pair, name, dnsmos=dnsmos, metrics=wanted)
                row = yield from rescaled(evaluate_item(task, None), done / total, 1.0 / total, "")
            rows.append(row)
    yield Progress(1.0, "done")
    result = result_from_rows(rows, names={n: n for n in names}, pair_names=[p.name for p in pair_list],
                              metric_keys=metric_keys)
    result.elapsed_s = elapsed
    result.inputs = pair_inputs(pair_list)
    return result


def result_from_rows(rows: Sequence[dict], *, names: dict[str, str], pair_names: Sequence[str],
                     metric_keys: Sequence[str] | None = None) -> EvaluationResult:
    """An :class:`EvaluationResult` from batch evaluation rows (one per pair and system).

    Args:
        names: ``{system key in the rows: name in the table}`` in table order (``noisy`` first).
        metric_keys: column order (default: the metrics of the first row).

    A failed row gives each of its metrics a missing value with the row's reason.
    """
    if metric_keys is None:
        metric_keys = list(rows[0]["metrics"]) if rows else []
    measurements = []
    for row in rows:
        system = names.get(row["model"]["spec"], row["model"].get("id", row["model"]["spec"]))
        for key in metric_keys:
            value = row["metrics"].get(key)
            reason = row.get("metric_reasons", {}).get(key, "") if row["status"] == "done" else row["reason"]
            if value is None and not reason:
                reason = "not computed"
            measurements.append(Measurement(row["pair"], system, key, value, METRIC_SPECS[key].unit, reason,
                                            row.get("lag_samples")))
    return EvaluationResult(measurements, list(names.values()), list(metric_keys), list(pair_names))


# ------------------------------------------------------------------------------------------ outputs

CSV_COLUMNS = ("file", "model", "metric", "value", "unit", "reason", "lag_samples")


def write_csv(result: EvaluationResult, path: str | Path, *, overwrite: bool = False) -> Path:
    """Long-form CSV, one row per measurement: ``file, model, metric, value, unit, reason, lag_samples``.

    ``value`` is empty when the metric could not be computed (``reason`` says why). Written through
    :func:`~workbench.core.audio_io.atomic_output`: never over a file the evaluation read
    (``result.inputs``), a non-regular file, or an existing file without ``overwrite``.
    """
    path = Path(path)
    with atomic_output(path, overwrite=overwrite, protect=tuple(result.inputs)) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for m in result.measurements:
                w.writerow([m.file, m.model, m.metric, "" if m.value is None else repr(float(m.value)), m.unit,
                            m.reason, "" if m.lag_samples is None else m.lag_samples])
    return path
    return path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV written by :func:`write_csv` (``value`` as float or None)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["value"] = float(r["value"]) if r["value"] != "" else None
    return rows


def format_table(result: EvaluationResult, metrics: Sequence[str] | None = None, digits: int = 2) -> str:
    """A results table like a paper's: one row per system (``noisy`` first), one column per metric, cells
    ``mean ± ci95``; the best mean per column is marked with ``*`` (direction from the metric spec); the
    header shows ↑ (higher is better) or ↓."""
    summ = result.summaries()
    cols = list(metrics or result.metrics)
    headers = ["system"] + [f"{METRIC_SPECS[k].label} {'↑' if METRIC_SPECS[k].higher_is_better else '↓'}"
                            for k in cols]
    best: dict[str, str] = {}
    for k in cols:
        cands = [(summ[(s, k)].mean, s) for s in result.systems
                 if (s, k) in summ and summ[(s, k)].mean is not None]
        if cands:
            pick = max(cands) if METRIC_SPECS[k].higher_is_better else min(cands)
            best[k] = pick[1]

    def cell(s: str, k: str) -> str:
        sm = summ.get((s, k))
        if sm is None or sm.mean is None:
            return "n/a"
        d = digits if abs(sm.mean) >= 0.01 or sm.mean == 0 else 5
        text = f"{sm.mean:.{d}f}"
        if sm.ci95 is not None:
            text += f" ± {sm.ci95:.{d}f}"
        if sm.failed:
            text += f" ({sm.failed} n/a)"
        return text + ("*" if best.get(k) == s else " ")

    body = [[s] + [cell(s, k) for k in cols] for s in result.systems]
    widths = [max(len(r[i]) for r in [headers] + body) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    n = len(result.files)
    lines.append(f"mean ± 95% CI (Student t) over {n} file{'s' if n != 1 else ''}; * best per column")
    return "\n".join(lines)


#: Figure formats :func:`plot_bars` writes, by suffix.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise WorkbenchError(f"{path}: a plot is written as {', '.join(PLOT_SUFFIXES)} (by its suffix)")
    return path


def plot_bars(result: EvaluationResult, path: str | Path, metrics: Sequence[str] | None = None, *,
              overwrite: bool = False) -> Path:
    """Bar chart (PNG/SVG/PDF by suffix) with one panel per metric, one bar per system, 95% CI error bars.

    Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed). Written
    atomically with the same refusals as :func:`write_csv`.
    """
    path = check_plot_path(path)
    check_output_target(path, inputs=result.inputs, overwrite=overwrite)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summ = result.summaries()
    cols = list(metrics or result.metrics)
    ncol = min(4, len(cols))
    nrow = -(-len(cols) // ncol)
    fig = Figure(figsize=(3.2 * ncol, 2.6 * nrow + 0.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    colors = [f"C{i % 10}" for i in range(len(result.systems))]
    for i, k in enumerate(cols):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        means = [summ.get((s, k)).mean if summ.get((s, k)) and summ[(s, k)].mean is not None else np.nan
                 for s in result.systems]
        cis = [summ[(s, k)].ci95 if summ.get((s, k)) and summ[(s, k)].ci95 is not None else 0.0
               for s in result.systems]
        x = np.arange(len(result.systems))
        ax.bar(x, means, yerr=cis, color=colors, capsize=3)
        spec = METRIC_SPECS[k]
        ax.set_title(f"{spec.label} {'↑' if spec.higher_is_better else '↓'}", fontsize=9)
        if spec.unit and spec.unit != "MOS":
            ax.set_ylabel(spec.unit, fontsize=8)
        ax.set_xticks(x, result.systems, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    n = len(result.files)
    fig.suptitle(f"mean and 95% CI over {n} file{'s' if n != 1 else ''}", fontsize=10)
    with atomic_output(path, overwrite=overwrite, protect=tuple(result.inputs)) as tmp:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format=path.suffix.lower().lstrip("."))
    return path


# ------------------------------------------------------------------------------------ recording versions


def score_versions(versions: Sequence, reference: np.ndarray | None = None, reference_rate: int | None = None,
                   *, dnsmos: bool = True, metrics: Iterable[str] | None = None
                   ) -> Generator[Progress, None, dict[str, Scores]]:
    """Score each :class:`~workbench.core.recording.Version` (its whole audio, channels averaged to mono).

    The same :func:`score_signal` as ``workbench evaluate`` is used, so a version scored here and the same
    audio scored by the CLI give identical numbers. A generator yielding :class:`Progress` before each
    version (closing it between yields cancels the work); returns ``{version.name: Scores}``.
    """
    out: dict[str, Scores] = {}
    versions = list(versions)
    n = max(len(versions), 1)
    for i, v in enumerate(versions):
        yield Progress(i / n, f"measuring {v.name}")
        audio = v.source.read_all()
        # Intrusive part and DNSMOS part of score_signal, split so that long recordings report progress
        # (and can be cancelled) between DNSMOS windows; the numbers are those of score_signal.
        sc = score_signal(audio, v.source.sample_rate, reference, reference_rate, dnsmos=False, metrics=metrics)
        if dnsmos:
            scores = yield from rescaled(dnsmos_metrics_steps(_mono(audio), v.source.sample_rate),
                                         (i + 0.3) / n, 0.7 / n, f"{v.name}: ")
            sc.metrics.update(scores)
        out[v.name] = sc
    yield Progress(1.0, "done")
    return out
