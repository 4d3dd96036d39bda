"""``workbench enhance IN... -m MODEL -o OUT``: run one model over files or folders, headless.

* ``-m`` is a built-in or plugin id (see ``workbench models``) or a path to a model file/folder.
* One input and ``-o`` not an existing folder (and not ending in a separator): ``OUT`` is the output file.
* Several inputs, or a folder input, or ``-o`` an existing folder: ``OUT`` is a folder and each result
  is ``OUT/<stem>.<model id>.wav`` (characters other than letters, digits, ``._-`` become ``-``). Folder inputs are searched (not recursively) for audio files.
* A model with several outputs (``EnhancerInfo.outputs``, e.g. speech and noise) writes one file per
  output: ``OUT/<stem>.<model id>.<output>.wav``, or ``<OUT stem>.<output><OUT suffix>`` for one input.
* The files are one batch of the batch driver (:func:`workbench.core.workflows.batch.pipeline.run_batch`, no
  manifest): in this process by default, or on ``--workers N`` processes / Ray actors (``--backend``,
  ``--address``: the options of ``workbench batch``); every file goes through :func:`workbench.core.workflows.batch.item.enhance_item`, the
  per-item function of ``workbench batch`` and the GUI's batch dialog, which enhances through
  :meth:`workbench.core.document.recording.Recording.enhance`, the call the GUI uses, so versions carry the same
  provenance on every path.
* Strength: ``--mix 0.7`` keeps 70 % of the model's effect (``out = enhanced + 0.3 * (original -
  enhanced)``); ``--limit-db 12`` is the same control as a reduction limit (``g = 10^(-12/20)``).
  ``--atten-lim-db`` instead sets the model's own limit where it has one (DeepFilterNet's atten_lim).
* ``--region START:END`` (seconds, repeatable) changes only those spans (the model runs with
  ``--context-s`` around each, spliced with ``--crossfade-ms`` raised-cosine fades); everything else is
  bit-identical to the input. ``--noise-profile START:END`` gives classical enhancers that span's mean
  power spectrum as their noise estimate.
* ``-m A+B`` runs a chain (e.g. ``wpe-dereverb+deepfilternet3``), each step aligned before the next.
* What was done (model, strength, regions, noise profile) is written into the output file's comment tag
  as JSON (``workbench provenance`` ...), readable with any tag reader or ``soundfile``.
* An existing output is never replaced without ``--overwrite``; an input (by path, symlink or hard
  link) and anything that is not a regular file (folder, FIFO, device) is never written over. A batch
  is planned before the first write (:func:`workbench.core.audio.outputs.plan_batch_outputs`): inputs that
  are earlier outputs of the same model are skipped, colliding names (``x.wav``/``x.flac``) made distinct.
* The sample format follows the source where the output format can hold it (:func:`output_subtype`).
* A model output more than 20 dB louder than its input (or peaking far over full scale) is one warning
  line with the measured gain; an output with more than 1 % of its samples beyond full scale is not
  written in an integer or lossy format (the error names ``--subtype FLOAT`` and ``--normalize``).
  ``--normalize peak|loudness`` scales the result to the input's peak or loudness (in the provenance).
* ``--latency auto|N``: the delay of a model file's raw output, measured on the first seconds of each input
  (the default for model files that declare none) or set; a declared latency is used otherwise.
* ``--processing``, ``--atten-lim-db`` and ``--latency`` change the model itself; they travel with its spec
  (:class:`~workbench.core.enhance.model_spec.ModelSpec`), so worker processes and Ray actors load the same
  wrapped model, and the batch rows' model identity records them.
* Progress goes to stderr as a tqdm bar per file (on a terminal); each failure prints ``error: ...`` and the exit status
  is 2 if any file failed.
"""

from __future__ import annotations

from .numbers import number

import sys
from pathlib import Path

from ..core.audio.audio_io import WRITE_SUBTYPES
from ..core.workflows.batch.item import EnhanceSettings, enhance_task, model_identity
from ..core.workflows.batch.pipeline import run_batch
from ..core.audio.formats import LOSSY_FORMATS, OUTPUT_SUFFIXES, READ_SUFFIXES, output_format_for
from ..core.enhance.editing import Strength, parse_span
from ..core.enhance.model_spec import ModelSpec
from ..core.enhance.level import NORMALISE_MODES
from ..core.progress import run_to_end
from ..core.errors import WorkbenchError
from ..core.workflows.export import SUFFIX, file_tag
from ..core.audio.outputs import PlannedOutput, check_output_target, plan_batch_outputs
from ..core.enhance.registry import load_enhancer



def add_parser(sub) -> None:
    p = sub.add_parser("enhance", help="enhance audio files with a model")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")
    p.add_argument("-m", "--model", required=True, metavar="MODEL_ID_OR_PATH",
                   help="built-in/plugin id (see `workbench models`) or a model file/folder")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file, or folder for several inputs")
    p.add_argument("--channels", metavar="LIST", help="comma-separated 0-based channels to process (default all)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--subtype", default=None, choices=WRITE_SUBTYPES["WAV"],
                   help="output sample format (default: the source's where the output format holds it, "
                        "e.g. PCM_24 stays PCM_24; otherwise FLOAT for WAV, PCM_24 for FLAC)")
    p.add_argument("--repair", action="store_true", help="replace NaN/Inf input samples by 0 instead of failing")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--format", default="WAV", choices=["WAV", *LOSSY_FORMATS], type=str.upper,
                   help="output container: WAV (default) lets the output's suffix decide ("
                        f"{' '.join(OUTPUT_SUFFIXES)}); {'/'.join(LOSSY_FORMATS)} force a lossy one (written in "
                        "blocks); WAV files carry the provenance tag")
    add_editing_options(p)
    add_model_options(p)
    from .backend_options import add_backend_options
    add_backend_options(p.add_argument_group("where the files run (as `workbench batch`)"), pool_by_default=False)


def add_model_options(p) -> None:
    """The options that change the loaded model itself, shared by ``workbench enhance`` and ``workbench batch
    enhance``: they travel with the model's spec (:class:`~workbench.core.enhance.model_spec.ModelSpec`), so
    worker processes and Ray actors run the model this process would."""
    p.add_argument("--processing", choices=("offline", "streaming"),
                   help="for models with both paths (see `workbench models`): offline (whole chunks, the "
                        "default for files) or streaming (the frame loop)")
    p.add_argument("--atten-lim-db", type=number("--atten-lim-db", 0.0, 200.0, "dB"), metavar="DB",
                   help="the model's own attenuation limit where it has one (DeepFilterNet's atten_lim)")
    p.add_argument("--latency", metavar="auto|N",
                   help="delay of the model's raw output in samples at its rate: auto measures it on the first "
                        "seconds of each input (the default for model files that declare none); N sets it")


def model_spec(spec: str, args) -> ModelSpec:
    """``spec`` with the :func:`add_model_options` given (one clear line for a bad ``--latency``)."""
    return ModelSpec(spec, processing=args.processing, atten_lim_db=args.atten_lim_db, latency=args.latency)


def add_editing_options(p) -> None:
    """The editor's options shared by ``workbench enhance`` and ``workbench batch enhance``: lossy
    quality, loudness, strength (``--mix``/``--limit-db``), regions and the noise profile."""
    p.add_argument("--quality", type=number("--quality", 0.0, 1.0), metavar="Q", help="MP3/OGG/OPUS quality 0..1 (1 = best, highest bitrate)")
    p.add_argument("--loudness", type=number("--loudness", -100.0, 0.0, "LUFS"), metavar="LUFS", help="normalise to this BS.1770 loudness (e.g. -16)")
    p.add_argument("--true-peak", type=number("--true-peak", -100.0, 0.0, "dBTP"), default=-1.0, metavar="DBTP",
                   help="true-peak ceiling for --loudness (default -1 dBTP)")
    strength = p.add_mutually_exclusive_group()
    strength.add_argument("--mix", type=number("--mix", 0.0, 1.0), metavar="A",
                          help="wet share 0..1 (1 = model output, 0 = original): out = A*enhanced + (1-A)*original")
    strength.add_argument("--limit-db", type=number("--limit-db", 0.0, 1000.0, "dB", allow_inf=True), metavar="DB",
                          help="most the mix removes, dB: out = enhanced + 10^(-DB/20)*(original - enhanced)")
    p.add_argument("--region", action="append", metavar="START:END",
                   help="enhance only this span in seconds (repeatable); the rest stays bit-identical")
    p.add_argument("--context-s", type=number("--context-s", 0.0, 3600.0, "s"), default=1.0, help="model context around each region (default 1 s)")
    p.add_argument("--crossfade-ms", type=number("--crossfade-ms", 0.0, 60000.0, "ms"), default=20.0, help="region splice crossfade (default 20 ms)")
    p.add_argument("--noise-profile", metavar="START:END",
                   help="noise-only span whose mean power spectrum classical enhancers use as noise estimate")
    p.add_argument("--normalize", choices=NORMALISE_MODES,
                   help="scale the model's result to the input's peak or loudness (recorded in the provenance); "
                        "for models whose raw output level is far from their input's")


def editing_settings(args) -> dict:
    """The :class:`~workbench.core.workflows.batch.EnhanceSettings` fields :func:`add_editing_options` sets, checked
    (one clear line for a bad span or value)."""
    strength = options_strength(args)
    regions = [parse_span(r, "--region") for r in (args.region or [])]
    profile_span = parse_span(args.noise_profile, "--noise-profile") if args.noise_profile else None
    if args.context_s < 0 or args.crossfade_ms < 0:
        raise WorkbenchError("--context-s and --crossfade-ms must not be negative")
    if args.quality is not None and not 0.0 <= args.quality <= 1.0:
        raise WorkbenchError(f"--quality: expected a value between 0 and 1, got {args.quality}")
    return dict(mix=strength.mix, strength_as=strength.given_as, quality=args.quality,
                loudness_lufs=args.loudness, true_peak_dbtp=args.true_peak, regions_s=tuple(regions) or None,
                context_s=args.context_s, crossfade_s=args.crossfade_ms / 1000.0, noise_profile_s=profile_span,
                normalize=args.normalize)



def parse_channels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        chans = [int(t) for t in text.split(",") if t.strip() != ""]
    except ValueError:
        raise WorkbenchError(f"--channels: expected comma-separated channel numbers like 0,1, got {text!r}") from None
    if not chans or any(c < 0 for c in chans):
        raise WorkbenchError(f"--channels: expected non-negative channel numbers, got {text!r}")
    return chans


def collect_inputs(items: list[str]) -> tuple[list[Path], bool]:
    """Expand folders; returns ``(files, batch)`` where batch means the output must be a folder."""
    files: list[Path] = []
    batch = len(items) > 1
    for item in items:
        p = Path(item)
        if p.is_dir():
            batch = True
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in READ_SUFFIXES)
            if not found:
                raise WorkbenchError(f"{p}: folder holds no audio files ({', '.join(sorted(READ_SUFFIXES))})")
            files += found
        else:
            files.append(p)  # a missing file is reported per file below
    return files, batch


class ProgressLine:
    """A tqdm bar on stderr per file (``[3/10] name  42%|####      | 0.42/1 [00:03<00:04]``), redrawn
    only on a terminal; elsewhere (logs, pipes) just the summary line of each file is printed."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr is not None
        self.live = self.enabled and sys.stderr.isatty()
        self._bar = None

    def show(self, label: str, fraction: float) -> None:
        if not self.live:
            return
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=1.0, desc=label, file=sys.stderr, leave=False, unit="file",
                             bar_format="{desc} {percentage:3.0f}%|{bar:30}| [{elapsed}<{remaining}]")
        self._bar.update(max(fraction - self._bar.n, 0.0))

    def done(self, text: str = "") -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled and text:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


def output_targets(out_arg: Path, path: Path, model_id: str, outputs: tuple[str, ...],
                   batch: bool, suffix: str = ".wav") -> dict[str, Path]:
    """Output name -> file: ``<stem>.<model>.wav`` (one output) or ``<stem>.<model>.<output>.wav``;
    for a single input with ``-o FILE``, FILE itself or ``<FILE stem>.<output><FILE suffix>``."""
    if len(outputs) == 1:
        return {outputs[0]: out_arg / f"{path.stem}.{model_id}{suffix}" if batch else out_arg}
    if batch:
        return {o: out_arg / f"{path.stem}.{model_id}.{file_tag(o)}{suffix}" for o in outputs}
    return {o: out_arg.with_name(f"{out_arg.stem}.{file_tag(o)}{out_arg.suffix or suffix}") for o in outputs}


def run(args) -> int:
    from .backend_options import backend_choice

    where = backend_choice(args, pool_by_default=False)
    spec = model_spec(args.model, args)  # what every worker loads: the model and the options that wrap it
    channels = parse_channels(args.channels)
    files, batch = collect_inputs(args.inputs)
    out_arg = Path(args.output)
    if out_arg.is_dir() or str(args.output).endswith(("/", "\\")):
        batch = True
    if batch and out_arg.exists() and not out_arg.is_dir():
        raise WorkbenchError(f"{out_arg}: several inputs need -o to be a folder, but this is a file")
    editing = editing_settings(args)
    regions = editing["regions_s"] or ()
    # The model file is an input too (``-o model.onnx`` must not replace it).
    protected = files + ([Path(args.model)] if Path(args.model).exists() else [])
    if not batch:
        # Refused before the model loads: an input, a folder/FIFO/device, an existing file without --overwrite.
        check_output_target(out_arg, inputs=protected, overwrite=args.overwrite)
        container_for(out_arg, args)
    # A model that cannot load is one error for the whole run; model files run in a worker process
    # (Ctrl-C stops them at once, a hanging call hits its time budget).
    enhancer = load_enhancer(args.model, isolate=True)
    unguarded = getattr(enhancer, "sandbox_problem", None)
    if unguarded:  # a model file or plugin runs, but nothing stops it writing files here
        print(f"note: {args.model}: its worker process is not sandboxed: {unguarded}", file=sys.stderr)
    enhancer = spec.wrap(enhancer)  # one clear line if the model lacks a path or limit asked for
    if regions and enhancer.info.n_outputs != 1:
        enhancer.close()
        raise WorkbenchError(f"--region: model {enhancer.info.id!r} has several outputs; regions take "
                             "single-output models")
    # Ids of path-loaded models may hold ':' or '/' (``gtcrn:model_trained_on_dns3``): the same portable
    # names as the GUI's export (``<stem>.<model>.wav``).
    model_id = file_tag(enhancer.info.id)
    outputs = enhancer.info.outputs
    if batch:
        # The whole batch is planned first: no output is an input, colliding names are made distinct,
        # earlier outputs of this model in the inputs are skipped rather than enhanced again.
        tags = (model_id,) if len(outputs) == 1 else tuple(f"{model_id}.{file_tag(o)}" for o in outputs)
        plan = plan_batch_outputs(files, out_arg, tags=tags, suffix=SUFFIX[args.format.upper()], overwrite=args.overwrite,
                                  protect=protected, model_tag=model_id)
    else:
        targets = tuple(output_targets(out_arg, files[0], model_id, outputs, False,
                                       SUFFIX[args.format.upper()]).values())
        error = None
        for t in targets:
            try:
                check_output_target(t, inputs=protected, overwrite=args.overwrite)
                container_for(t, args)
            except WorkbenchError as exc:
                error = str(exc)
                break
        plan = [PlannedOutput(files[0], targets, error=error)]
    # The settings every file is enhanced with (as `workbench batch` and the GUI's batch dialog).
    settings = EnhanceSettings(
        format=args.format.upper(), subtype=args.subtype, rate="source",
        channels=None if channels is None else tuple(channels), repair=args.repair,
        atten_lim_db=args.atten_lim_db, provenance_tag=True, **editing)
    # One task per file, planned refusals and skips included, driven by the batch driver: on its serial
    # backend with the model loaded here (as `workbench batch --workers 0`), or on the worker processes or
    # Ray actors the backend options ask for, each loading the model by its spec with the same wrapping options.
    names = outputs if len(outputs) > 1 else ("enhanced",)
    tasks = []
    for k, item in enumerate(plan):
        task = enhance_task(k, item.source, args.model, [{"name": n, "path": str(t)} for n, t in zip(names, item.targets)],
                            settings, overwrite=args.overwrite, protect=protected,
                            digests=False)  # no manifest keeps these rows: no file is hashed for them
        task["key"] = f"{k}|{task['key']}"  # a file named twice is two items here
        if item.skip or item.error:
            task["planned"] = {"status": "skipped" if item.skip else "failed", "reason": item.skip or item.error}
        tasks.append(task)
    progress = ProgressLine(not args.quiet)

    def label(k: int) -> str:
        return f"[{k + 1}/{len(plan)}] {plan[k].source.name}" if batch else plan[k].source.name

    running = [k for k, t in enumerate(tasks) if "planned" not in t]  # the order the serial backend runs them
    planned = len(tasks) - len(running)
    finished = 0  # rows of running items so far
    failed = 0

    def on_row(row: dict) -> None:
        nonlocal failed, finished
        k = row["index"]
        if "planned" not in tasks[k]:
            finished += 1
        if row["status"] == "skipped":
            progress.done(f"{label(k)}: {row['reason']}")
        elif row["status"] != "done":
            progress.done()
            print(f"error: {row['reason']}", file=sys.stderr)
            failed += 1
        else:
            shown = ", ".join(o["path"] for o in row["outputs"])
            progress.done(f"{label(k)}: {row['duration_s']:.1f} s in {row['timings']['model_s']:.2f} s -> {shown}")
            for out in row["outputs"]:
                report_output(out, args)

    def on_progress(p) -> None:
        # The driver's fraction counts finished items; what is left over is the share of the one under way.
        if finished < len(running):
            within = p.fraction * len(tasks) - planned - finished
            progress.show(label(running[finished]), min(max(within, 0.0), 1.0))

    identities = {args.model: model_identity(enhancer, spec)}
    if not where.in_process:
        enhancer.close()  # the workers load their own; free this process's copy
    try:
        run_to_end(run_batch(tasks, backend=where.backend, workers=where.workers, threads=where.threads or 1,
                             models={args.model: enhancer}, specs=[spec], identities=identities,
                             address=where.address, on_row=on_row),
                   on_progress)
    finally:
        if where.in_process:
            enhancer.close()
    return 2 if failed else 0


def report_output(out: dict, args) -> None:
    """The notes and warnings one written output deserves: clipping to an integer format, a loudness
    target that could not be measured or reached."""
    target = out["path"]
    level = out.get("level") or {}
    if level.get("implausible"):
        fix = (f"scaled by {level['normalize_gain_db']:+.1f} dB to the input's {level['normalized']}"
               if level.get("normalized") else "use --normalize peak|loudness to bring it to the input's level")
        gain = "unknown" if level.get("gain_db") is None else f"{level['gain_db']:+.1f} dB"
        peak = "" if level.get("output_peak_dbfs") is None else f", peak {level['output_peak_dbfs']:+.1f} dBFS"
        print(f"warning: {target}: the model's output level is implausible against its input (gain {gain}{peak}); "
              f"{fix}", file=sys.stderr)
    if out.get("clipped_samples"):
        print(f"warning: {target}: {out['clipped_samples']} samples beyond ±1.0 were clipped to fit the "
              "integer sample format (use --subtype FLOAT to keep them)", file=sys.stderr)
    if "measured_lufs" in out and out["measured_lufs"] is None:
        print(f"note: {target}: loudness not measurable (silent or under 0.4 s); written without a gain",
              file=sys.stderr)
    elif out.get("limited_db") is not None and out["limited_db"] < 0:
        print(f"note: {target}: {out['gain_db']:+.1f} dB applied; {-out['limited_db']:.1f} dB under the "
              f"{args.loudness:g} LUFS target to keep the true peak at {args.true_peak:g} dBTP", file=sys.stderr)


def options_strength(args) -> Strength:
    if args.mix is not None:
        return Strength(args.mix, "mix")
    if args.limit_db is not None:
        return Strength.from_limit_db(args.limit_db)
    return Strength()


def container_for(target: Path, args) -> str:
    """The container an output is written in: ``--format`` when it names a lossy one, else the target's
    suffix (``.wav``, ``.flac``, ``.aiff``, ``.ogg``, ``.mp3``, ``.opus``); one clear line otherwise."""
    if args.format.upper() != "WAV":
        return args.format.upper()
    return output_format_for(target).name
