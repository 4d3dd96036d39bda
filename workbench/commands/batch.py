"""``workbench batch enhance|evaluate``: corpora on this machine's cores or on a Ray cluster, resumable.

::

    workbench batch enhance INPUTS... -m MODEL [-m MODEL ...] -o OUT_DIR [--workers N]
                            [--backend serial|local|ray] [--address ADDR] [--manifest FILE] [--resume] ...
    workbench batch evaluate PAIRS_DIR -m MODEL ... --csv OUT.csv [same scaling options]

Inputs are folders (searched recursively), files, or list files (``.txt`` one path per line, ``.csv``
with a ``path`` column, an earlier ``manifest.jsonl``). Every item (one input with one model) becomes
one manifest row (``OUT_DIR/manifest.jsonl`` by default; ``OUT.csv.manifest.jsonl`` for evaluate); a
bad file is a failed row with its reason, never a failed run (exit status 2 when any item failed).
``--resume`` after Ctrl-C, a kill or a lost worker does only what is not done. Progress goes to stderr;
a summary table follows at the end.
"""

from __future__ import annotations

from .numbers import number

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..core.audio.audio_io import WRITE_SUBTYPES
from ..core.audio.formats import EXPORT_FORMATS, LOSSY_FORMATS
from ..core.errors import WorkbenchError


def _scaling(p) -> None:
    from .backend_options import add_backend_options

    g = p.add_argument_group("scaling and resume")
    add_backend_options(g, pool_by_default=True)
    g.add_argument("--manifest", metavar="FILE", help="the JSONL manifest (see README: Batch manifest)")
    g.add_argument("--resume", action="store_true", help="continue the manifest: redo only what is not done")
    g.add_argument("--overwrite", action="store_true", help="recompute and replace existing outputs / manifest")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="enhance or evaluate a corpus (local process pool or Ray cluster), resumable",
                       description=__doc__.split("\n\n")[0])
    actions = p.add_subparsers(dest="batch_command", metavar="ACTION")
    actions.required = True
    e = actions.add_parser("enhance", help="enhance every input with every model")
    e.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders (recursive), or list files")
    e.add_argument("-m", "--model", action="append", required=True, metavar="MODEL",
                   help="model id or path (repeatable: each model makes its own outputs)")
    e.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder (sub folders mirror inputs)")
    e.add_argument("--format", default="WAV", choices=EXPORT_FORMATS, type=str.upper,
                   help=f"output container ({'/'.join(LOSSY_FORMATS)}: lossy, at a rate the encoder takes)")
    e.add_argument("--subtype", default=None, choices=sorted(set(WRITE_SUBTYPES["WAV"]) | set(WRITE_SUBTYPES["FLAC"])),
                   help="sample format (default: the source's where the format holds it, else FLOAT for WAV, "
                        "PCM_24 for FLAC)")
    e.add_argument("--rate", default="source", help="output rate: source, model, or Hz (default source)")
    e.add_argument("--residual", action="store_true", help="also write input - enhanced")
    e.add_argument("--channels", metavar="LIST", help="comma-separated 0-based channels (default all)")
    e.add_argument("--repair", action="store_true", help="read NaN/Inf input samples as 0 instead of failing the file")
    e.add_argument("--reference-free", action="store_true",
                   help="score every output with the reference-free metrics (DNSMOS ...) into the manifest")
    e.add_argument("--dnsmos", dest="reference_free", action="store_true", help=argparse.SUPPRESS)
    from .enhance import add_editing_options, add_model_options
    add_editing_options(e.add_argument_group("editing (as `workbench enhance`)"))
    add_model_options(e.add_argument_group("the model (as `workbench enhance`; every -m gets them)"))
    _scaling(e)
    v = actions.add_parser("evaluate", help="score models on noisy/clean pairs (as `workbench evaluate`)")
    v.add_argument("pairs_dir", metavar="PAIRS_DIR")
    v.add_argument("-m", "--model", action="append", default=[], metavar="MODEL",
                   help="model id, model path, or file:TAG for precomputed outputs (repeatable)")
    v.add_argument("--csv", required=True, metavar="OUT.csv", help="long-form results (as `workbench evaluate --csv`)")
    v.add_argument("--metrics", metavar="LIST", help="comma-separated intrusive metrics (default all)")
    from .evaluate import add_reference_free_options, add_speech_only_options
    add_reference_free_options(v)
    add_speech_only_options(v)
    _scaling(v)


# ------------------------------------------------------------------------------------------ driving


def _choice(args):
    from .backend_options import backend_choice

    return backend_choice(args, pool_by_default=True)


def _load(specs, threads):
    """Load every model here once (a :class:`ModelSpec` with its wrapping options, or a plain spec): one clear
    error for a model that cannot load. Returns ``(models, identities, model_specs)`` keyed by spec string;
    the model specs are what the workers load."""
    from ..core.workflows.batch.backends import set_thread_env
    from ..core.workflows.batch.item import model_identity
    from ..core.enhance.model_spec import ModelSpec

    set_thread_env(threads)  # the serial path and the workers compute with the same thread count
    models, identities, model_specs = {}, {}, {}
    try:
        for given in specs:
            spec = ModelSpec.of(given)
            if spec.spec in models:
                raise WorkbenchError(f"model {spec.spec!r} given twice")
            enh = spec.load()
            models[spec.spec], identities[spec.spec], model_specs[spec.spec] = enh, model_identity(enh, spec), spec
    except WorkbenchError:
        for enh in models.values():
            enh.close()
        raise
    return models, identities, model_specs


class _Display:
    """A rich progress bar on stderr (items done/failed, rate, ETA) and one line per failure."""

    def __init__(self, total: int, quiet: bool):
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.counts = {"done": 0, "failed": 0, "skipped": 0}
        self.bar = None
        if not quiet and self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=self.console)
            self.task = self.bar.add_task("batch", total=total, status="")
        self.started = time.perf_counter()

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def row(self, row: dict) -> None:
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        if row["status"] == "failed":
            reason = row["reason"] if row["input"] in row["reason"] else f"{row['input']}: {row['reason']}"
            self.console.print(f"error: {reason}", markup=False, soft_wrap=True)
        if self.bar is not None:
            c = self.counts
            rate = sum(c.values()) / max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(self.task, advance=1, status=f"{c['done']} done, {c['failed']} failed, "
                                                         f"{c['skipped']} skipped, {rate:.2f} items/s")

    def summary(self, report, extra: list[tuple[str, str]] = ()) -> None:
        from rich.table import Table

        t = Table(title="batch summary", show_header=False, title_justify="left")
        t.add_column(style="bold")
        t.add_column()
        for k, v in list(report.table()) + list(extra):
            t.add_row(k, v)
        self.console.print(t)


def _drive(tasks, args, models, identities, model_specs, manifest, display):
    from ..core.workflows.batch import run_batch
    from ..core.progress import run_to_end

    choice = _choice(args)
    backend, workers = choice.backend, choice.workers
    if backend != "serial":
        for enh in models.values():
            enh.close()  # the workers load their own; free this process's copy
    specs = list(model_specs.values())
    gen = run_batch(tasks, backend=backend, workers=workers, threads=choice.threads, models=models, specs=specs,
                    identities=identities, manifest=manifest, address=choice.address, on_row=display.row)
    with display:
        return run_to_end(gen)


def run(args) -> int:
    try:
        return _run_enhance(args) if args.batch_command == "enhance" else _run_evaluate(args)
    except KeyboardInterrupt:
        manifest = getattr(args, "_manifest_path", None)
        print("error: interrupted" + (f"; finished items are in {manifest}, continue with --resume" if manifest else ""),
              file=sys.stderr)
        return 130


def _run_enhance(args) -> int:
    from ..core.workflows.batch import EnhanceSettings, Manifest, collect_inputs, enhance_tasks
    from ..core.audio.audio_io import output_subtype
    from ..core.workflows.export import file_tag
    from .enhance import editing_settings, parse_channels

    fmt = args.format
    subtype = args.subtype
    if subtype is not None:
        if fmt in ("MP3", "OGG", "OPUS"):
            raise WorkbenchError(f"--subtype {subtype}: {fmt} is a lossy format (its encoder sets the samples); "
                                 "--subtype applies to WAV and FLAC")
        output_subtype(None, fmt, subtype)  # refuses a subtype the container cannot hold
    rate: str | int = args.rate
    if rate not in ("source", "model"):
        try:
            rate = int(rate)
        except ValueError:
            raise WorkbenchError(f"--rate: expected source, model or a number of Hz, got {args.rate!r}") from None
        if rate <= 0:
            raise WorkbenchError(f"--rate: expected a positive number of Hz, got {rate}")
    channels = parse_channels(args.channels)
    editing = editing_settings(args)  # strength, loudness, lossy quality, regions, noise profile
    settings = EnhanceSettings(format=fmt, subtype=subtype, rate=rate,
                               channels=None if channels is None else tuple(channels),
                               residual=args.residual, repair=args.repair, reference_free=args.reference_free,
                               atten_lim_db=args.atten_lim_db, **editing)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise WorkbenchError(f"{out_dir}: -o must be a folder, but this is a file")
    inputs = collect_inputs(args.inputs, exclude=[out_dir])
    if not inputs:
        raise WorkbenchError("no inputs to process")
    from .enhance import model_spec

    models, identities, model_specs = _load([model_spec(m, args) for m in args.model], _choice(args).threads)
    plan_models = [(spec, file_tag(models[spec].info.id), list(getattr(models[spec].info, "outputs", None)
                                                               or ["enhanced"])) for spec in args.model]
    tasks = enhance_tasks(inputs, out_dir, plan_models, settings, overwrite=args.overwrite)
    manifest_path = Path(args.manifest) if args.manifest else out_dir / "manifest.jsonl"
    manifest = Manifest(manifest_path, {"kind": "enhance", "models": list(identities.values()),
                                        "settings": settings.to_dict(), "output_dir": str(out_dir)},
                        resume=args.resume, overwrite=args.overwrite, protect=[f.path for f in inputs])
    args._manifest_path = manifest_path
    display = _Display(len(tasks), args.quiet)
    report = _drive(tasks, args, models, identities, model_specs, manifest, display)
    display.summary(report)
    return 2 if report.failed else 0


def _run_evaluate(args) -> int:
    from ..core.workflows.batch import Manifest, evaluate_task
    from ..core.workflows.batch.item import model_systems, system_key
    from ..core.workflows.evaluation import FILE_PREFIX, NOISY, format_table, result_from_rows, write_csv
    from ..core.measure.metrics import find_pairs, intrusive_keys

    metrics = None
    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in intrusive_keys()]
        if unknown:
            raise WorkbenchError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(intrusive_keys())}")
    pairs = find_pairs(args.pairs_dir)
    csv_path = Path(args.csv)
    specs = [m for m in args.model if not m.startswith(FILE_PREFIX)]
    for m in args.model:
        if m.startswith(FILE_PREFIX):
            tag = m[len(FILE_PREFIX):]
            missing = [p.name for p in pairs if tag not in p.outputs]
            if missing:
                raise WorkbenchError(f"precomputed outputs {tag!r} missing for {', '.join(missing)}")
    models, identities, model_specs = _load(specs, _choice(args).threads)
    # (system, output, table name): a model with several outputs is one system per output
    scored = [(NOISY, None, NOISY)]
    for m in args.model:
        scored += ([(m, output, name) for output, name in model_systems(m, models[m])] if m in models
                   else [(m, None, m)])
    names = [name for _, _, name in scored]
    if len(set(names)) != len(names):
        raise WorkbenchError(f"each system may be given once; got {', '.join(names)}")
    fast = args.reference_free_fast and not args.no_reference_free
    from .evaluate import speech_only_settings
    speech = speech_only_settings(args)
    tasks = [evaluate_task(0, pair, s, reference_free=not args.no_reference_free, metrics=metrics,
                           reference_free_fast=fast, output=o,
                           speech_only=speech)
             for pair in pairs for s, o, _ in scored]
    for i, t in enumerate(tasks):
        t["index"] = i
    inputs = [p.noisy for p in pairs] + [p.clean for p in pairs] + [q for p in pairs for q in p.outputs.values()]
    for p in inputs:
        from ..core.audio.audio_io import same_file

        if same_file(csv_path, p):
            raise WorkbenchError(f"{csv_path}: refusing to write the results over an input of this evaluation")
    manifest_path = Path(args.manifest) if args.manifest else csv_path.with_name(csv_path.name + ".manifest.jsonl")
    manifest = Manifest(manifest_path, {"kind": "evaluate", "models": list(identities.values()),
                                        "settings": {"reference_free": not args.no_reference_free, "metrics": metrics,
                                                     **({"reference_free_fast": True} if fast else {}),
                                                     **({"speech_only": asdict(speech)} if speech else {})},
                                        "pairs_dir": str(args.pairs_dir)},
                        resume=args.resume, overwrite=args.overwrite, protect=inputs)
    args._manifest_path = manifest_path
    display = _Display(len(tasks), args.quiet)
    report = _drive(tasks, args, models, identities, model_specs, manifest, display)
    result = result_from_rows(report.rows, names={system_key(s, o): name for s, o, name in scored},
                              pair_names=[p.name for p in pairs])
    if fast:  # the approximation is named in the table's caveats and the CSV
        from ..core.measure.metrics import fast_mode_notes

        for note in fast_mode_notes():
            result.warnings.append(f"{args.pairs_dir}: {note}")
            print(f"warning: {note}", file=sys.stderr)
    if speech is not None:
        from ..core.workflows.evaluation import speech_only_note

        result.warnings.append(f"{args.pairs_dir}: {speech_only_note(speech)}")
        print(f"warning: {speech_only_note(speech)}", file=sys.stderr)
    print(format_table(result))
    print(f"wrote {write_csv(result, csv_path)}")
    display.summary(report)
    return 2 if report.failed else 0
