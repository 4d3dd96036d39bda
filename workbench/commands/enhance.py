"""``workbench enhance IN... -m MODEL -o OUT``: run one model over files or folders, headless.

* ``-m`` is a built-in or plugin id (see ``workbench models``) or a path to a model file/folder.
* One input and ``-o`` not an existing folder (and not ending in a separator): ``OUT`` is the output file.
* Several inputs, or a folder input, or ``-o`` an existing folder: ``OUT`` is a folder and each result
  is ``OUT/<stem>.<model id>.wav`` (characters other than letters, digits, ``._-`` become ``-``). Folder inputs are searched (not recursively) for audio files.
* An existing output is never replaced without ``--overwrite``, and an input is never written over.
* Progress goes to stderr as one updating line; each failure prints ``error: ...`` and the exit status
  is 2 if any file failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.audio_io import WRITE_SUBTYPES
from ..core.batch.plan import AUDIO_SUFFIXES
from ..core.batch.item import EnhanceSettings, enhance_item, enhance_task, model_identity
from ..core.enhancer import run_to_end
from ..core.errors import WorkbenchError
from ..core.export import file_tag
from ..core.registry import load_enhancer



def add_parser(sub) -> None:
    p = sub.add_parser("enhance", help="enhance audio files with a model")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")
    p.add_argument("-m", "--model", required=True, metavar="MODEL_ID_OR_PATH",
                   help="built-in/plugin id (see `workbench models`) or a model file/folder")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file, or folder for several inputs")
    p.add_argument("--channels", metavar="LIST", help="comma-separated 0-based channels to process (default all)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--subtype", default="FLOAT", choices=WRITE_SUBTYPES["WAV"], help="output sample format")
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
    enhancer = load_enhancer(args.model)  # a model that cannot load is one error for the whole run
    # Ids of path-loaded models may hold ':' or '/' (``gtcrn:model_trained_on_dns3``): the same portable
    # names as the GUI's export (``<stem>.<model>.wav``).
    model_id = file_tag(enhancer.info.id)
    progress = ProgressLine(not args.quiet)
    identity = model_identity(enhancer, args.model)
    failed = 0
    try:
        for k, path in enumerate(files):
            target = out_arg / f"{path.stem}.{model_id}.wav" if batch else out_arg
            label = f"[{k + 1}/{len(files)}] {path.name}" if batch else path.name
            try:
                if target.exists() and path.exists() and target.resolve() == path.resolve():
                    raise WorkbenchError(f"{target}: refusing to write over the input recording")
                if target.exists() and not args.overwrite:
                    raise WorkbenchError(f"{target}: already exists (use --overwrite to replace it)")
                if target.suffix.lower() not in (".wav", ".flac"):
                    raise WorkbenchError(f"{target}: enhance writes .wav or .flac files")
                fmt = "FLAC" if target.suffix.lower() == ".flac" else "WAV"
                settings = EnhanceSettings(format=fmt, subtype=args.subtype, repair=args.repair,
                                           channels=None if channels is None else tuple(channels))
                # The per-item function of the batch pipeline: same reading, engine, writing and checks
                # as `workbench batch enhance` and the window's batch export.
                task = enhance_task(k, path, args.model, [{"name": "enhanced", "path": str(target)}], settings,
                                    overwrite=args.overwrite)
                row = run_to_end(enhance_item(task, enhancer, identity),
                                 lambda p: progress.show(label, min(p.fraction / 0.9, 1.0)))
                if row["status"] != "done":
                    raise WorkbenchError(row["reason"])
                progress.done(f"{label}: {row['duration_s']:.1f} s in {row['timings']['model_s']:.2f} s -> {target}")
            except WorkbenchError as exc:
                progress.done()
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
    finally:
        enhancer.close()
    return 2 if failed else 0
