"""``workbench enhance IN... -m MODEL -o OUT``: run one model over files or folders, headless.

* ``-m`` is a built-in or plugin id (see ``workbench models``) or a path to a model file/folder.
* One input and ``-o`` not an existing folder (and not ending in a separator): ``OUT`` is the output file.
* Several inputs, or a folder input, or ``-o`` an existing folder: ``OUT`` is a folder and each result
  is ``OUT/<stem>.<model id>.wav`` (characters other than letters, digits, ``._-`` become ``-``). Folder inputs are searched (not recursively) for audio files.
* An existing output is never replaced without ``--overwrite``, and an input is never written over.
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
* Progress goes to stderr as one updating line; each failure prints ``error: ...`` and the exit status
  is 2 if any file failed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.audio_io import WRITE_SUBTYPES, atomic_output, open_source
from ..core.editing import (Strength, apply_strength, enhance_regions, noise_profile_samples, parse_span,
                            with_attenuation_limit, with_noise_profile)
from ..core.enhancer import enhance, run_to_end
from ..core.errors import WorkbenchError
from ..core.export import SUFFIX, file_tag, write_export_audio
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
    p.add_argument("--subtype", default="FLOAT", choices=WRITE_SUBTYPES["WAV"], help="output sample format")
    p.add_argument("--repair", action="store_true", help="replace NaN/Inf input samples by 0 instead of failing")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--format", default="WAV", choices=["WAV", "MP3", "OGG", "OPUS"],
                   help="output container (lossy ones are written in blocks; WAV carries the provenance tag)")
    p.add_argument("--quality", type=float, metavar="Q", help="MP3/OGG/OPUS quality 0..1 (1 = best, highest bitrate)")
    p.add_argument("--loudness", type=float, metavar="LUFS", help="normalise to this BS.1770 loudness (e.g. -16)")
    p.add_argument("--true-peak", type=float, default=-1.0, metavar="DBTP",
                   help="true-peak ceiling for --loudness (default -1 dBTP)")
    strength = p.add_mutually_exclusive_group()
    strength.add_argument("--mix", type=float, metavar="A",
                          help="wet share 0..1 (1 = model output, 0 = original): out = A*enhanced + (1-A)*original")
    strength.add_argument("--limit-db", type=float, metavar="DB",
                          help="most the mix removes, dB: out = enhanced + 10^(-DB/20)*(original - enhanced)")
    p.add_argument("--atten-lim-db", type=float, metavar="DB",
                   help="the model's own attenuation limit where it has one (DeepFilterNet's atten_lim)")
    p.add_argument("--region", action="append", metavar="START:END",
                   help="enhance only this span in seconds (repeatable); the rest stays bit-identical")
    p.add_argument("--context-s", type=float, default=1.0, help="model context around each region (default 1 s)")
    p.add_argument("--crossfade-ms", type=float, default=20.0, help="region splice crossfade (default 20 ms)")
    p.add_argument("--noise-profile", metavar="START:END",
                   help="noise-only span whose mean power spectrum classical enhancers use as noise estimate")


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
    strength = options_strength(args)
    regions = [parse_span(r, "--region") for r in (args.region or [])]
    profile_span = parse_span(args.noise_profile, "--noise-profile") if args.noise_profile else None
    if args.context_s < 0 or args.crossfade_ms < 0:
        raise WorkbenchError("--context-s and --crossfade-ms must not be negative")
    enhancer = load_enhancer(args.model)  # a model that cannot load is one error for the whole run
    if args.atten_lim_db is not None:
        try:
            enhancer = with_attenuation_limit(enhancer, args.atten_lim_db)
        except WorkbenchError:
            enhancer.close()
            raise
    # Ids of path-loaded models may hold ':' or '/' (``gtcrn:model_trained_on_dns3``): the same portable
    # names as the GUI's export (``<stem>.<model>.wav``).
    model_id = file_tag(enhancer.info.id)
    progress = ProgressLine(not args.quiet)
    failed = 0
    try:
        for k, path in enumerate(files):
            target = out_arg / f"{path.stem}.{model_id}{SUFFIX[args.format]}" if batch else out_arg
            label = f"[{k + 1}/{len(files)}] {path.name}" if batch else path.name
            try:
                if target.exists() and path.exists() and target.resolve() == path.resolve():
                    raise WorkbenchError(f"{target}: refusing to write over the input recording")
                if target.exists() and not args.overwrite:
                    raise WorkbenchError(f"{target}: already exists (use --overwrite to replace it)")
                source = open_source(path, repair=args.repair)
                try:
                    t0 = time.perf_counter()
                    audio, provenance = enhance_file(enhancer, source, path, channels, strength, regions,
                                                     profile_span, args, lambda p: progress.show(label, p.fraction))
                    elapsed = time.perf_counter() - t0
                    if args.format == "WAV" and args.loudness is None:
                        write_with_provenance(target, audio, source.sample_rate, args.subtype, provenance,
                                              overwrite=args.overwrite, protect=(path,))
                    else:
                        sub = args.subtype if args.format == "WAV" else WRITE_SUBTYPES[args.format][0]
                        write_export_audio(target, audio, source.sample_rate, source.sample_rate, args.format, sub,
                                           quality=args.quality,
                                           loudness_target=None if args.loudness is None else
                                           (args.loudness, args.true_peak),
                                           overwrite=args.overwrite, protect=(path,))
                finally:
                    source.close()
                progress.done(f"{label}: {source.duration_s:.1f} s in {elapsed:.2f} s -> {target}")
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


def options_strength(args) -> Strength:
    if args.mix is not None:
        return Strength(args.mix, "mix")
    if args.limit_db is not None:
        return Strength.from_limit_db(args.limit_db)
    return Strength()


def enhance_file(enhancer, source, path: Path, channels, strength: Strength, regions, profile_span, args,
                 on_progress) -> tuple:
    """Run the model as the options ask; returns ``(audio (frames, channels), provenance dict)``."""
    where = str(path)
    if enhancer.info.n_outputs != 1:
        raise WorkbenchError(f"model {enhancer.info.id!r} has {enhancer.info.n_outputs} outputs "
                             f"({', '.join(enhancer.info.outputs)}); the command line writes single-output models only")
    chans = list(range(source.channels)) if channels is None else list(channels)
    for c in chans:
        if not 0 <= c < source.channels:
            raise ValueError(f"channel {c} does not exist (the recording has {source.channels})")
    provenance: dict = {"workbench provenance": 1, "input": path.name, "model": enhancer.info.id,
                        "channels": chans, "strength": strength.to_dict()}
    if args.atten_lim_db is not None:
        provenance["model_attenuation_limit"] = {"atten_lim_db": args.atten_lim_db,
                                                 "used": "the model's own limit (inside the network)"}
    model = enhancer
    if profile_span is not None:
        samples = noise_profile_samples(source, profile_span, where, chans)
        model = with_noise_profile(enhancer, samples, source.sample_rate, profile_span, where)
        provenance["noise_profile"] = {"start_s": profile_span[0], "end_s": profile_span[1],
                                       "estimate": "mean power spectrum of the span"}
    if regions:
        audio = run_to_end(enhance_regions(model, source, regions, channels=chans, context_s=args.context_s,
                                           crossfade_s=args.crossfade_ms / 1000.0, where=where), on_progress)
        provenance["regions"] = {"spans_s": [list(r) for r in regions], "context_s": args.context_s,
                                 "crossfade_ms": args.crossfade_ms}
    else:
        audio = run_to_end(enhance(model, source, channels=chans), on_progress)
    if not strength.full:
        audio = apply_strength(audio, source.read_all()[:, chans], strength)
    return audio, provenance


def write_with_provenance(target: Path, audio, rate: int, subtype: str, provenance: dict, *, overwrite: bool,
                          protect: tuple) -> Path:
    """WAV through the atomic writer, written in blocks, with ``provenance`` as JSON in the comment tag."""
    if not np.all(np.isfinite(audio)):
        raise WorkbenchError(f"{target}: refusing to write audio that holds NaN or Inf samples")
    with atomic_output(target, overwrite=overwrite, protect=protect) as tmp:
        with sf.SoundFile(str(tmp), "w", samplerate=int(rate), channels=audio.shape[1], subtype=subtype,
                          format="WAV") as out:
            out.comment = json.dumps(provenance, sort_keys=True)
            for a in range(0, audio.shape[0], 1 << 16):
                out.write(audio[a:a + (1 << 16)])
    return target
