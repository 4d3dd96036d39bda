"""Evaluating models over a folder of noisy/clean pairs (the paper-style table), its CSV, table and plot.

Every signal is scored by :func:`workbench.core.measure.scoring.score_signal`, as in the metrics panel, so
both report the same numbers for the same audio; each pair and system is one batch item
(:func:`workbench.core.workflows.batch.item.evaluate_item`), and :func:`evaluate` drives them with the batch
driver (:func:`workbench.core.workflows.batch.pipeline.run_batch`, on any of its backends) as ``workbench batch
evaluate`` does: one evaluate driver, two ways to report it.

Systems in an evaluation:

* ``noisy`` — the unprocessed input;
* a model spec (built-in id, plugin id or model path, see :func:`workbench.core.enhance.registry.load_enhancer`) —
  the model is run on every noisy file with the engine (:func:`workbench.core.enhance.enhancer.enhance`);
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

from ..audio.audio_io import atomic_output, read_info
from ..audio.outputs import check_output_target
from ..enhance.enhancer import Enhancer
from ..enhance.registry import load_enhancer
from ..errors import WorkbenchError
from ..measure.metrics import METRIC_SPECS, Pair, fast_mode_notes, find_pairs, intrusive_keys, reference_free_keys
from ..measure.vad import VadSettings
from ..progress import Progress
from .batch import item
from .batch.item import FILE_PREFIX, NOISY
from .batch.pipeline import run_batch


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
    """All measurements of an evaluation plus the systems and metrics in table order.

    ``warnings``: one line per pair whose clean file does not line up with its noisy file (see
    :class:`AlignmentCheck`), e.g. a pair that is not one; per noisy file without its clean reference;
    per pair whose lengths differ.
    """

    measurements: list[Measurement]
    systems: list[str]
    metrics: list[str]
    files: list[str]
    elapsed_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: every file the evaluation read (noisy, clean, precomputed outputs): never written over.
    inputs: list[Path] = field(default_factory=list)
    #: names of the pairs whose noisy or clean file could not be read (their rows hold the reason).
    unreadable: list[str] = field(default_factory=list)

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


def evaluate(pairs: str | Path | Sequence[Pair], models: Sequence[str | Enhancer] = (), *,
             reference_free: bool = True,
             metrics: Iterable[str] | None = None, include_noisy: bool = True, isolate_models: bool = False,
             reference_free_fast: bool = False, speech_only: VadSettings | None = None, backend: str = "serial",
             workers: int = 1, threads: int = 1, address: str | None = None
             ) -> Generator[Progress, None, EvaluationResult]:
    """Run every system on every pair and measure it; a generator yielding :class:`Progress`.

    Args:
        pairs: a folder (see :func:`workbench.core.measure.metrics.find_pairs`) or a list of :class:`Pair`.
        models: model specs, loaded :class:`Enhancer` s, or ``file:TAG`` for precomputed outputs.
        reference_free: also compute the reference-free metrics of the table (DNSMOS SIG/BAK/OVRL/P.808 ...).
        metrics: intrusive metric keys (default every intrusive metric of the table).
        reference_free_fast: the reference-free metrics in their fast, approximate mode (DNSMOS: non-overlapping
            windows); the result's warnings say so (each metric's ``fast_note``).
        isolate_models: load model files in a worker process (see ``load_enhancer(isolate=True)``).
        speech_only: every metric over the speech spans Silero VAD finds (with these settings) in each clean
            file, the same spans cutting every system's output; the result's warnings say so
            (:func:`speech_only_note`).
        backend: where the pairs are scored (see :func:`~workbench.core.workflows.batch.pipeline.run_batch`):
            ``serial`` in this process with the models loaded here; ``local`` on ``workers`` spawned processes or
            ``ray`` on Ray actors (at ``address``), each loading every model by its spec, with ``threads``
            intra-op threads. Models given as loaded :class:`Enhancer` s have no spec a worker could load:
            they run ``serial`` only.

    Returns:
        :class:`EvaluationResult` (long form, one :class:`Measurement` per file, system and metric).

    Raises:
        WorkbenchError: no pairs, a missing precomputed output, an unreadable file, a model error, or a
            loaded model asked to run on another backend.
    """
    in_process = backend == "serial"
    if not in_process:
        given = [m.info.id for m in models if isinstance(m, Enhancer)]
        if given:
            raise WorkbenchError(f"model {given[0]!r} was given loaded, and a loaded model runs in this process "
                                 f"only: name it by its spec (id or path) for the {backend} backend, or use serial")
    unpaired: list[Path] = []
    pair_list = find_pairs(pairs, unpaired) if isinstance(pairs, (str, Path)) else list(pairs)
    warnings = [f"{p}: no clean reference beside it ({p.stem.rsplit('_', 1)[0]}_clean{p.suffix} or "
                f"clean/{p.name}); not evaluated" for p in unpaired]
    if not pair_list:
        raise WorkbenchError("no noisy/clean pairs to evaluate")
    if reference_free and reference_free_fast:
        warnings += [f"{pair_list[0].noisy.parent}: {note}" for note in fast_mode_notes()]
    if speech_only is not None:
        speech_only.check()
        warnings.append(f"{pair_list[0].noisy.parent}: {speech_only_note(speech_only)}")
    wanted = list(intrusive_keys() if metrics is None else metrics)
    metric_keys = wanted + (list(reference_free_keys()) if reference_free else [])
    # (table name, system, output of a model with several outputs)
    systems: list[tuple[str, str | Enhancer | None, str | None]] = [(NOISY, None, None)] if include_noisy else []
    for m in models:
        if isinstance(m, Enhancer):
            systems += [(name, m, output) for output, name in item.model_systems(m.info.id, m)]
        elif isinstance(m, str) and m.startswith(FILE_PREFIX):
            tag = m[len(FILE_PREFIX):]
            missing = [p.name for p in pair_list if tag not in p.outputs]
            if missing:
                raise WorkbenchError(f"precomputed outputs {tag!r} missing for {', '.join(missing)} "
                                     f"(expected NAME_{tag}.wav beside NAME_noisy.wav, or {tag}/NAME.wav)")
            systems.append((m, m, None))
        else:
            enh = load_enhancer(m, isolate=isolate_models)
            systems += [(name, enh if in_process else m, output) for output, name in item.model_systems(m, enh)]
            if not in_process:
                enh.close()  # loaded here for its outputs only: the workers load their own
    names = [s for s, _, _ in systems]
    if len(set(names)) != len(names):
        raise WorkbenchError(f"each system may be given once; got {', '.join(names)}")
    # One task per pair and system (pair-major: a model's outputs on one pair follow each other and share its
    # run), driven as `workbench batch evaluate` drives them: on the serial backend with the models held here,
    # or on workers that load every model by its spec.
    held: dict[str, Enhancer] = {}  # the loaded models by the key their tasks name
    specs = list(dict.fromkeys(s for _, s, _ in systems if isinstance(s, str) and not s.startswith(FILE_PREFIX)))
    tasks, named = [], []
    for pair in pair_list:
        for name, system, output in systems:
            key = system if system in specs else name if not isinstance(system, Enhancer) else _model_key(system, held)
            task = item.evaluate_task(len(tasks), pair, key, reference_free=reference_free, metrics=wanted,
                                      reference_free_fast=reference_free_fast, output=output, speech_only=speech_only)
            task["key"] = f"{len(tasks)}|{task['key']}"  # unique even when two pairs share a name
            tasks.append(task)
            named.append((pair, name, system))

    def stop_on_system_failure(row: dict) -> None:
        # A model or precomputed output that fails stops the run; a pair that cannot be read does not.
        if row["status"] == "failed" and row.get("failed_in") != "read":
            raise WorkbenchError(row["reason"])

    try:
        report = yield from run_batch(tasks, backend=backend, workers=workers, threads=threads, models=held,
                                      specs=specs, identities={k: {"spec": k, "id": k} for k in held},
                                      address=address, on_row=stop_on_system_failure)
    finally:
        if in_process:
            for enh in {id(e): e for _, e, _ in systems if isinstance(e, Enhancer)
                        and not any(e is m for m in models)}.values():
                enh.close()
    rows: list[Measurement] = []
    elapsed: dict[str, float] = {}
    unreadable_pairs: list[str] = []
    unreadable: dict[int, str] = {}  # pair index -> why it cannot be read
    run_s: dict[tuple[int, int], float] = {}  # model time per pair and model: its outputs share one run
    for i, row in enumerate(report.rows):
        pair, name, system = named[i]
        p = i // len(systems)
        if p not in unreadable and row["status"] == "failed":
            # Every system's rows of an unreadable pair carry the same reason (and one warning).
            unreadable[p] = _pair_problems(pair) or row["reason"]
            unreadable_pairs.append(pair.name)
            warnings.append(unreadable[p])
        if p in unreadable:
            rows.extend(Measurement(pair.name, name, key, None, METRIC_SPECS[key].unit, unreadable[p])
                        for key in metric_keys)
            continue
        if isinstance(system, Enhancer) or system in specs:
            model_s = run_s.setdefault((p, system if system in specs else id(system)), row["timings"]["model_s"])
            elapsed[name] = elapsed.get(name, 0.0) + model_s
        if system is None:
            if row["alignment_problems"]:
                warnings.append(f"{pair.clean}: may not be the clean version of {pair.noisy.name}: "
                                + "; ".join(row["alignment_problems"]))
            else:  # the alignment check names differing lengths itself
                mismatch = length_mismatch(row["clean_duration_s"], row["duration_s"])
                if mismatch:
                    warnings.append(f"{pair.noisy}: {mismatch} than its clean reference {pair.clean.name}; "
                                    "scored on the overlap only")
        for key in metric_keys:
            reason = row["metric_reasons"].get(key, "")
            value = row["metrics"].get(key)
            if value is None and not reason:
                reason = "not computed"
            rows.append(Measurement(pair.name, name, key, value, METRIC_SPECS[key].unit, reason,
                                    row["lag_samples"]))
    if len(unreadable_pairs) == len(pair_list):
        where = pairs if isinstance(pairs, (str, Path)) else pair_list[0].noisy.parent
        raise WorkbenchError(f"{where}: none of the {len(pair_list)} pair(s) could be read; "
                             f"{warnings[len(warnings) - len(unreadable_pairs)]}"
                             + (f" (and {len(pair_list) - 1} more)" if len(pair_list) > 1 else ""))
    yield Progress(1.0, "done")
    return EvaluationResult(rows, names, metric_keys, [p.name for p in pair_list], elapsed,
                            inputs=pair_inputs(pair_list), warnings=warnings, unreadable=unreadable_pairs)


def _model_key(enhancer: Enhancer, models: dict[str, Enhancer]) -> str:
    """The key ``enhancer`` runs under in ``models`` (its id; a second model with that id gets ``id#2``),
    added there on first use."""
    for key, held in models.items():
        if held is enhancer:
            return key
    key, n = enhancer.info.id, 1
    while key in models:
        n += 1
        key = f"{enhancer.info.id}#{n}"
    models[key] = enhancer
    return key


def speech_only_note(settings: VadSettings) -> str:
    """The caveat a speech-only evaluation carries (CLI warning line, CSV ``warning`` row)."""
    return (f"metrics over speech only: the spans Silero VAD finds in each clean file (threshold "
            f"{settings.threshold:g}, minimum pause {settings.min_pause_ms:g} ms, minimum speech "
            f"{settings.min_speech_ms:g} ms, padding {settings.pad_ms:g} ms), joined; the same spans cut every "
            "system's output")


def _pair_problems(pair: Pair) -> str:
    """Every reason the noisy and the clean file of ``pair`` cannot be read, noisy first ("" when both open)."""
    problems = []
    for path in (pair.noisy, pair.clean):
        try:
            read_info(path)
        except WorkbenchError as exc:
            problems.append(str(exc))
    return "; ".join(problems)


#: Noisy and clean may differ by this much (seconds, or this fraction of the clean length) unremarked.
LENGTH_TOLERANCE_S = 0.05
LENGTH_TOLERANCE_FRACTION = 0.01


def length_mismatch(clean_s: float, noisy_s: float) -> str | None:
    """``"3.00 s long, 2.00 s longer"`` style words when the noisy file's duration differs from the
    clean one's by more than ``max(LENGTH_TOLERANCE_S, LENGTH_TOLERANCE_FRACTION * clean_s)``."""
    diff = noisy_s - clean_s
    if abs(diff) <= max(LENGTH_TOLERANCE_S, LENGTH_TOLERANCE_FRACTION * clean_s):
        return None
    return f"{noisy_s:.2f} s long, {abs(diff):.2f} s {'longer' if diff > 0 else 'shorter'}"


def result_from_rows(rows: Sequence[dict], *, names: dict[str, str], pair_names: Sequence[str],
                     metric_keys: Sequence[str] | None = None) -> EvaluationResult:
    """An :class:`EvaluationResult` from batch evaluation rows (one per pair and system).

    Args:
        names: ``{system key (:func:`~workbench.core.workflows.batch.item.system_key` of the row's spec and
            output): name in the table}`` in table order (``noisy`` first).
        metric_keys: column order (default: the metrics of the first row).

    A failed row gives each of its metrics a missing value with the row's reason.
    """
    if metric_keys is None:
        metric_keys = list(rows[0]["metrics"]) if rows else []
    measurements = []
    for row in rows:
        key = item.system_key(row["model"]["spec"], row.get("output"))
        system = names.get(key, item.system_key(row["model"].get("id", row["model"]["spec"]), row.get("output")))
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

    ``value`` is empty when the metric could not be computed (``reason`` says why); each of
    ``result.warnings`` is a row with metric ``warning`` (file, then the caveat as reason). Written through
    :func:`~workbench.core.audio.audio_io.atomic_output`: never over a file the evaluation read
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
            for text in result.warnings:  # metric "warning": the caveat in the reason column
                w.writerow([text.split(": ", 1)[0], "", "warning", "", "", text.split(": ", 1)[-1], ""])
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
