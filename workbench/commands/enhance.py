"""``workbench enhance IN... -m MODEL -o OUT``: run one model over files or folders, headless.

* ``-m`` is a built-in or plugin id (see ``workbench models``) or a path to a model file/folder.
* One input and ``-o`` not an existing folder (and not ending in a separator): ``OUT`` is the output file.
* Several inputs, or a folder input, or ``-o`` an existing folder: ``OUT`` is a folder and each result
  is ``OUT/<stem>.<model id>.wav`` (characters other than letters, digits, ``._-`` become ``-``). Folder inputs are searched (not recursively) for audio files.
* A model with several outputs (``EnhancerInfo.outputs``, e.g. speech and noise) writes one file per
  output: ``OUT/<stem>.<model id>.<output>.wav``, or ``<OUT stem>.<output><OUT suffix>`` for one input.
* Every file is enhanced through :meth:`workbench.core.recording.Recording.enhance`, the call the GUI
  uses, so versions carry the same provenance on both paths.
* An existing output is never replaced without ``--overwrite``; an input (by path, symlink or hard
  link) and anything that is not a regular file (folder, FIFO, device) is never written over. A batch
  is planned before the first write (:func:`workbench.core.outputs.plan_batch_outputs`): inputs that
  are earlier outputs of the same model are skipped, colliding names (``x.wav``/``x.flac``) made distinct.
* The sample format follows the source where the output format can hold it (:func:`output_subtype`).
* Progress goes to stderr as a tqdm bar per file (on a terminal); each failure prints ``error: ...`` and the exit status
  is 2 if any file failed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..core.audio_io import (WRITE_SUBTYPES, clip_for_subtype, open_source, output_format, output_subtype,
                             write_audio_atomic)
from ..core.enhancer import run_to_end, with_processing
from ..core.errors import WorkbenchError
from ..core.export import file_tag
from ..core.outputs import PlannedOutput, check_output_target, plan_batch_outputs
from ..core.recording import Recording
from ..core.registry import load_enhancer

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3", ".w64", ".caf", ".opus"}


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
    p.add_argument("--processing", choices=("offline", "streaming"),
                   help="for models with both paths (see `workbench models`): offline (whole chunks, the "
                        "default for files) or streaming (the frame loop)")


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
                   batch: bool) -> dict[str, Path]:
    """Output name -> file: ``<stem>.<model>.wav`` (one output) or ``<stem>.<model>.<output>.wav``;
    for a single input with ``-o FILE``, FILE itself or ``<FILE stem>.<output><FILE suffix>``."""
    if len(outputs) == 1:
        return {outputs[0]: out_arg / f"{path.stem}.{model_id}.wav" if batch else out_arg}
    if batch:
        return {o: out_arg / f"{path.stem}.{model_id}.{file_tag(o)}.wav" for o in outputs}
    return {o: out_arg.with_name(f"{out_arg.stem}.{file_tag(o)}{out_arg.suffix or '.wav'}") for o in outputs}


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
    if args.processing is not None:
        enhancer = with_processing(enhancer, args.processing)  # one clear line if the model lacks that path
    # Ids of path-loaded models may hold ':' or '/' (``gtcrn:model_trained_on_dns3``): the same portable
    # names as the GUI's export (``<stem>.<model>.wav``).
    model_id = file_tag(enhancer.info.id)
    outputs = enhancer.info.outputs
    if batch:
        # The whole batch is planned first: no output is an input, colliding names are made distinct,
        # earlier outputs of this model in the inputs are skipped rather than enhanced again.
        tags = (model_id,) if len(outputs) == 1 else tuple(f"{model_id}.{file_tag(o)}" for o in outputs)
        plan = plan_batch_outputs(files, out_arg, tags=tags, suffix=".wav", overwrite=args.overwrite,
                                  protect=protected, model_tag=model_id)
    else:
        targets = tuple(output_targets(out_arg, files[0], model_id, outputs, False).values())
        error = None
        for t in targets:
            try:
                check_output_target(t, inputs=protected, overwrite=args.overwrite)
                output_format(t)
            except WorkbenchError as exc:
                error = str(exc)
                break
        plan = [PlannedOutput(files[0], targets, error=error)]
    progress = ProgressLine(not args.quiet)
    failed = 0
    try:
        for k, item in enumerate(plan):
            path = item.source
            targets = dict(zip(outputs, item.targets))
            label = f"[{k + 1}/{len(plan)}] {path.name}" if batch else path.name
            if item.skip:
                progress.done(f"{label}: {item.skip}")
                continue
            try:
                if item.error:
                    raise WorkbenchError(item.error)
                rec = Recording(path, source=open_source(path, repair=args.repair))
                notes = []
                try:
                    t0 = time.perf_counter()
                    versions = run_to_end(rec.enhance(enhancer, channels, spec=args.model),
                                          lambda p: progress.show(label, p.fraction))
                    elapsed = time.perf_counter() - t0
                    for v in versions:
                        target = targets[v.provenance.output]
                        fmt = output_format(target)
                        subtype = output_subtype(rec.source.info.subtype, fmt, args.subtype)
                        audio, clipped = clip_for_subtype(v.source.read_all(), subtype)
                        write_audio_atomic(target, audio, v.sample_rate, subtype=subtype, format=fmt,
                                           overwrite=args.overwrite, protect=tuple(protected))
                        if clipped:
                            notes.append(f"warning: {target}: {clipped} samples beyond ±1.0 were clipped to fit "
                                         f"{subtype} (use --subtype FLOAT to keep them)")
                finally:
                    rec.close()
                shown = ", ".join(str(t) for t in targets.values())
                progress.done(f"{label}: {rec.source.duration_s:.1f} s in {elapsed:.2f} s -> {shown}")
                for line in notes:
                    print(line, file=sys.stderr)
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
