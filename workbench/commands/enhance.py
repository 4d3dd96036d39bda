"""``workbench enhance IN... -m MODEL -o OUT``: run one model over files or folders, headless.

* ``-m`` is a built-in or plugin id (see ``workbench models``) or a path to a model file/folder.
* One input and ``-o`` not an existing folder (and not ending in a separator): ``OUT`` is the output file.
* Several inputs, or a folder input, or ``-o`` an existing folder: ``OUT`` is a folder and each result
  is ``OUT/<stem>.<model id>.wav`` (characters other than letters, digits, ``._-`` become ``-``). Folder inputs are searched (not recursively) for audio files.
* An existing output is never replaced without ``--overwrite``; an input (by path, symlink or hard
  link) and anything that is not a regular file (folder, FIFO, device) is never written over. A batch
  is planned before the first write (:func:`workbench.core.outputs.plan_batch_outputs`): inputs that
  are earlier outputs of the same model are skipped, colliding names (``x.wav``/``x.flac``) made distinct.
* The sample format follows the source where the output format can hold it (:func:`output_subtype`).
* Progress goes to stderr as one updating line; each failure prints ``error: ...`` and the exit status
  is 2 if any file failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.audio_io import WRITE_SUBTYPES, output_format
from ..core.batch.item import EnhanceSettings, enhance_item, enhance_task, model_identity
from ..core.batch.plan import AUDIO_SUFFIXES
from ..core.enhancer import run_to_end
from ..core.errors import WorkbenchError
from ..core.export import file_tag
from ..core.outputs import PlannedOutput, check_output_target, plan_batch_outputs
from ..core.registry import load_enhancer



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
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise WorkbenchError(f"{p}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
            files += found
        else:
            files.append(p)  # a missing file is reported per file below
    return files, batch


class ProgressLine:
    """A single stderr line rewritten with ``\\r``: ``[3/10] name  42% ###########``."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr is not None
        # Only a terminal can redraw a line; elsewhere (logs, pipes) just the summary lines are printed.
        self.live = self.enabled and sys.stderr.isatty()
        self.last = -1.0

    def show(self, label: str, fraction: float) -> None:
        if not self.live or (fraction - self.last < 0.01 and fraction < 1.0):
            return
        self.last = fraction
        bar = "#" * int(30 * fraction)
        sys.stderr.write(f"\r{label} {100 * fraction:3.0f}% [{bar:<30}]")
        sys.stderr.flush()

    def done(self, text: str = "") -> None:
        if self.live:
            sys.stderr.write(f"\r{text}\033[K\n" if text else "\n")
        elif self.enabled and text:
            sys.stderr.write(text + "\n")
        if self.enabled:
            sys.stderr.flush()
        self.last = -1.0


def run(args) -> int:
    channels = parse_channels(args.channels)
    files, batch = collect_inputs(args.inputs)
    out_arg = Path(args.output)
    if out_arg.is_dir() or str(args.output).endswith(("/", "\\")):
        batch = True
    if batch and out_arg.exists() and not out_arg.is_dir():
        raise WorkbenchError(f"{out_arg}: several inputs need -o to be a folder, but this is a file")
    # The model file is an input too (``-o model.onnx`` must not replace it).
    protected = files + ([Path(args.model)] if Path(args.model).exists() else [])
    if not batch:
        # Refused before the model loads: an input, a folder/FIFO/device, an existing file without --overwrite.
        check_output_target(out_arg, inputs=protected, overwrite=args.overwrite)
        output_format(out_arg)
    # A model that cannot load is one error for the whole run; model files run in a worker process
    # (Ctrl-C stops them at once, a hanging call hits its time budget).
    enhancer = load_enhancer(args.model, isolate=True)
    # Ids of path-loaded models may hold ':' or '/' (``gtcrn:model_trained_on_dns3``): the same portable
    # names as the GUI's export (``<stem>.<model>.wav``).
    model_id = file_tag(enhancer.info.id)
    if batch:
        # The whole batch is planned first: no output is an input, colliding names are made distinct,
        # earlier outputs of this model in the inputs are skipped rather than enhanced again.
        plan = plan_batch_outputs(files, out_arg, tags=(model_id,), suffix=".wav", overwrite=args.overwrite,
                                  protect=protected)
    else:
        plan = [PlannedOutput(files[0], (out_arg,))]
    progress = ProgressLine(not args.quiet)
    identity = model_identity(enhancer, args.model)
    failed = 0
    try:
        for k, item in enumerate(plan):
            path, target = item.source, item.targets[0]
            label = f"[{k + 1}/{len(plan)}] {path.name}" if batch else path.name
            if item.skip:
                progress.done(f"{label}: {item.skip}")
                continue
            try:
                if item.error:
                    raise WorkbenchError(item.error)
                # The per-item function of the batch pipeline: the same reading, engine, subtype rule,
                # clipping and atomic writing as `workbench batch enhance` and the window's batch export.
                settings = EnhanceSettings(format=output_format(target), subtype=args.subtype, repair=args.repair,
                                           channels=None if channels is None else tuple(channels))
                task = enhance_task(k, path, args.model, [{"name": "enhanced", "path": str(target)}], settings,
                                    overwrite=args.overwrite)
                task["protect"] = [str(p) for p in protected]
                row = run_to_end(enhance_item(task, enhancer, identity),
                                 lambda p: progress.show(label, min(p.fraction / 0.9, 1.0)))
                if row["status"] != "done":
                    raise WorkbenchError(row["reason"])
                out = row["outputs"][0]
                progress.done(f"{label}: {row['duration_s']:.1f} s in {row['timings']['model_s']:.2f} s -> {target}")
                if row["metrics"].get("clipped_samples"):
                    print(f"warning: {target}: {row['metrics']['clipped_samples']} samples beyond ±1.0 were clipped "
                          f"to fit {out.get('subtype')} (use --subtype FLOAT to keep them)", file=sys.stderr)
            except WorkbenchError as exc:
                progress.done()
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
            except ValueError as exc:  # e.g. a channel the file does not have
                progress.done()
                print(f"error: {path}: {exc}", file=sys.stderr)
                failed += 1
    finally:
        enhancer.close()
    return 2 if failed else 0
