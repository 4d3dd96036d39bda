"""The per-item functions of the batch pipeline: one input (or one noisy/clean pair) with one system.

Every path that processes many files goes through these two functions — ``workbench batch`` on any
backend, ``workbench enhance`` on several files, ``workbench evaluate``, and the GUI's batch dialog (via
:func:`workbench.core.workflows.batch.files.export_batch`) — so options, file names and numbers agree:

* :func:`enhance_item` reads a file, enhances it with one model through
  :func:`~workbench.core.document.version_ops.run_request` (the panels' call: typed provenance, one version
  per model output; the engine resamples with soxr and removes the latency), the whole file or regions,
  applies the strength with ``Recording.set_strength`` (``wet + (1 - mix) * (dry - wet)``), writes
  every planned output through the atomic writer (or the export writer for lossy containers) and returns a
  manifest row; whole-file runs at the source rate stream input -> model -> scratch file -> output
  (:func:`streams_to_files`), so their memory does not grow with the file;
* :func:`evaluate_item` scores one system (``noisy``, a model, or ``file:TAG``) on one pair with
  :func:`workbench.core.measure.scoring.score_signal` and returns a manifest row.

A row is a plain JSON-able dict (see the README's "Batch manifest" section for every field). Nothing
here raises for a bad input: an unreadable file, a model error or a write refusal becomes
``status = "failed"`` with a one-line ``reason``; only :class:`~workbench.core.errors.Cancelled`
propagates. Tasks are plain dicts too, so they travel unchanged to pool workers and Ray actors.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generator, Mapping

import numpy as np

from ...audio.audio_io import (WRITE_SUBTYPES, clip_for_subtype, open_source, output_format, output_subtype, resample,
                                scratch_file_beside, write_audio_atomic, write_source_atomic)
from ...audio.loudness import normalisation_gain_of_source
from ...document.recording import Recording, file_sha256
from ...document.version_ops import EnhanceRequest, run_request
from ...enhance.editing import Strength
from ...enhance.enhancer import Enhancer, enhance, measured_per_input
from ...enhance.model_spec import ModelSpec
from ...enhance.level import clipping_problem
from ...errors import Cancelled, WorkbenchError
from ...progress import Progress, rescaled
from ..export import LOSSY, export_rate, provenance_comment, write_export_audio

if TYPE_CHECKING:
    from ...measure.vad import VadSettings

#: System names of an evaluation besides model specs: the unprocessed input, and precomputed outputs
#: ``file:TAG`` found next to the pairs.
NOISY = "noisy"
FILE_PREFIX = "file:"

#: Bumped when the row layout changes incompatibly (a resumed manifest must have the same).
ROW_VERSION = 1
STATUSES = ("done", "failed", "skipped")

#: Settings keys that manifests of earlier versions wrote, by their current name (``dnsmos`` switched every
#: reference-free metric of the table, not DNSMOS alone).
RENAMED_SETTINGS = {"dnsmos": "reference_free", "dnsmos_fast": "reference_free_fast"}


def current_settings(settings: Mapping) -> dict:
    """A row's or header's ``settings`` with the keys of earlier versions under their current names, so an
    earlier run's manifest resumes with the same meaning."""
    return {RENAMED_SETTINGS.get(k, k): v for k, v in settings.items()}


@dataclass(frozen=True)
class EnhanceSettings:
    """Everything that changes the bytes an enhancement writes (recorded in each manifest row).

    Attributes:
        format: ``WAV`` or ``FLAC`` (the planner's suffix; each output's container follows its suffix), or
            ``MP3``/``OGG``/``OPUS`` (that lossy container, its first subtype, an encoder-accepted rate).
        subtype: sample format (``FLOAT``, ``PCM_16``, ``PCM_24`` ...); ``None`` keeps the source's where
            the container holds it, else the container's best (FLOAT for WAV, PCM_24 for FLAC).
        rate: ``"source"`` (the input's rate), ``"model"`` (the model's native rate) or Hz.
        channels: 0-based channels to process (``None``: all).
        mix: wet fraction ``a`` in ``out = a * enhanced + (1 - a) * input`` (1.0: the model's output).
        residual: also write ``input - enhanced`` (``<stem>.<model>.residual.<ext>``).
        repair: read NaN/Inf input samples as 0 instead of failing the file.
        reference_free: score each written output with every reference-free metric of the table (DNSMOS ...)
            into the row's metrics.
        quality: MP3/OGG/OPUS quality 0..1 (``format`` naming a lossy container forces it for every output).
        loudness_lufs: normalise each output to this BS.1770 loudness, true peak under ``true_peak_dbtp``.
        strength_as: how the strength was given (``mix`` or ``limit_db``; kept in the provenance).
        regions_s: enhance only these ``(start, end)`` spans in seconds (``context_s`` of model context
            around each, ``crossfade_s`` raised-cosine splices); the rest stays bit-identical.
        noise_profile_s: ``(start, end)`` noise-only span whose mean power spectrum classical models use.
        atten_lim_db: the model's own attenuation limit the caller set (recorded in the provenance only).
        normalize: ``"peak"`` or ``"loudness"``: scale each model output to the input's peak or BS.1770
            loudness before anything else (recorded in the provenance); ``None``: as the model gave it.
        provenance_tag: outputs (every container) carry the version's provenance as JSON in their
            comment tag (``workbench enhance``). Off in ``workbench batch``: the tag holds the run time,
            so outputs would differ in bytes between runs.
    """

    format: str = "WAV"
    subtype: str | None = None
    rate: str | int = "source"
    channels: tuple[int, ...] | None = None
    mix: float = 1.0
    residual: bool = False
    repair: bool = False
    reference_free: bool = False
    quality: float | None = None
    loudness_lufs: float | None = None
    true_peak_dbtp: float = -1.0
    strength_as: str = "mix"
    regions_s: tuple[tuple[float, float], ...] | None = None
    context_s: float = 1.0
    crossfade_s: float = 0.020
    noise_profile_s: tuple[float, float] | None = None
    atten_lim_db: float | None = None
    normalize: str | None = None
    provenance_tag: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = None if self.channels is None else list(self.channels)
        d["regions_s"] = None if self.regions_s is None else [list(r) for r in self.regions_s]
        d["noise_profile_s"] = None if self.noise_profile_s is None else list(self.noise_profile_s)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "EnhanceSettings":
        d = current_settings(d)
        if d.get("channels") is not None:
            d["channels"] = tuple(int(c) for c in d["channels"])
        if d.get("regions_s") is not None:
            d["regions_s"] = tuple((float(a), float(b)) for a, b in d["regions_s"])
        if d.get("noise_profile_s") is not None:
            d["noise_profile_s"] = tuple(float(t) for t in d["noise_profile_s"])
        return cls(**d)


def path_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder as ``sha256`` over its files' ``relative name + NUL + sha256``
    lines in sorted order (DTLN's two-ONNX folder is one model)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def model_identity(enhancer: Enhancer, spec: str | ModelSpec | None = None) -> dict:
    """What a manifest row records of a model: the spec it was loaded from, the options it was loaded with
    (``options``, only when a :class:`ModelSpec` sets some), its declared identity, and for models loaded
    from a path the SHA-256 of the file (or folder) — so a resumed run notices a replaced checkpoint or
    another attenuation limit, path or latency."""
    info = enhancer.info
    options = spec.options if isinstance(spec, ModelSpec) else {}
    if isinstance(spec, ModelSpec):
        spec = spec.spec
    ident = {"spec": str(spec if spec is not None else info.id), "id": info.id, "name": info.name,
             "source": info.source, "sample_rate": info.sample_rate, "processing": info.processing,
             "latency_samples": info.latency_samples, "family": info.family}
    outputs = getattr(info, "outputs", None)
    if outputs:
        ident["outputs"] = list(outputs)
    if options:
        ident["options"] = options
    if spec is not None and os.path.exists(str(spec)):
        ident["sha256"] = path_sha256(spec)
    return ident


def worker_name() -> str:
    """``host:pid`` of the process running an item (shows which worker did what in the manifest)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process so far, MiB (``getrusage``; ``None`` where unavailable)."""
    try:
        import resource
    except ImportError:
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024, 1) if sys.platform != "darwin" else round(kib / 2**20, 1)


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def streams_to_files(settings: EnhanceSettings) -> bool:
    """Whether :func:`enhance_item` streams input -> model -> output files with memory independent of the
    file's length (scratch files beside the first output, removed afterwards): whole-file runs written at
    the source rate into WAV/FLAC/AIFF, with or without strength, ``normalize`` and ``loudness_lufs``.
    Regions, residuals, DNSMOS, lossy containers and other rates keep the result in memory."""
    return (not settings.regions_s and not settings.residual and not settings.reference_free and settings.rate == "source"
            and settings.format.upper() not in LOSSY)


def _source_level_dbfs(source) -> tuple[float | None, float | None]:
    """Peak and RMS level in dBFS (``20 log10 max|x|``, ``10 log10 mean(x^2)``) of an audio source, read
    block by block."""
    peak, sum_sq, count = 0.0, 0.0, 0
    for _pos, block in source.blocks():
        if block.size:
            peak = max(peak, float(np.max(np.abs(block))))
            sum_sq += float(np.sum(np.square(block, dtype=np.float64)))
            count += block.size
    if count == 0:
        return None, None
    return (round(20 * np.log10(peak), 4) if peak > 0 else None,
            round(10 * np.log10(sum_sq / count), 4) if sum_sq > 0 else None)


def _write_streamed(out: dict, target: Path, source, fmt: str, sub: str, settings: EnhanceSettings,
                    comment: str | None, overwrite: bool, protect: tuple) -> int:
    """Write one output from its (scratch-backed) source block by block; the clipping check counts while
    the temporary file is written and refuses it before the rename. Returns the clipped samples."""
    gain_db = 0.0
    refuse = None
    if settings.loudness_lufs is not None:
        norm = normalisation_gain_of_source(source, settings.loudness_lufs, settings.true_peak_dbtp)
        gain_db = norm.gain_db
        out.update(gain_db=round(float(gain_db), 6), measured_lufs=norm.measured_lufs, limited_db=norm.limited_db)
    elif sub not in ("FLOAT", "DOUBLE"):
        def refuse(n_clipped: int, total: int) -> str | None:
            return clipping_problem(str(target), n_clipped, total, sub)
    _path, n_clipped = write_source_atomic(target, source, subtype=sub, format=fmt, gain=10.0 ** (gain_db / 20.0),
                                           overwrite=overwrite, protect=protect, comment=comment,
                                           refuse_clipping=refuse)
    return n_clipped


def enhance_task(index: int, input_path: str | Path, model_key: str, outputs: list[dict],
                 settings: EnhanceSettings, *, overwrite: bool = False, protect=(), digests: bool = True) -> dict:
    """A JSON-able enhancement task.

    Args:
        index: position in the batch (rows are sorted by it in the final manifest).
        model_key: the key under which a worker holds the loaded model (the model spec).
        outputs: ``[{"name": "enhanced" | "residual" | <output name>, "path": str}]`` in write order,
            as planned for the whole batch (:mod:`workbench.core.workflows.batch.plan`).
        protect: further files no output may replace (besides the input), e.g. the model file.
        digests: record the SHA-256 of the input and of every output in the row (what a resumed manifest
            compares). ``False`` for rows nobody keeps (``workbench enhance`` writes no manifest): their
            ``input_sha256`` and outputs' ``sha256`` stay ``None``, saving two reads of every file
            (about 25 ms for a minute of 48 kHz float audio).
    """
    return {"kind": "enhance", "index": int(index), "key": f"{Path(input_path)}|{model_key}",
            "input": str(input_path), "model": model_key, "outputs": [dict(o) for o in outputs],
            "settings": settings.to_dict(), "overwrite": bool(overwrite),
            **({"protect": [str(p) for p in protect]} if protect else {}),
            **({} if digests else {"digests": False})}


def records_digests(task: Mapping) -> bool:
    """Whether the rows of ``task`` record file digests (:func:`enhance_task`'s ``digests``)."""
    return task.get("digests", True)


def _base_row(task: Mapping, identity: Mapping | None) -> dict:
    return {"row": ROW_VERSION, "kind": task["kind"], "index": task["index"], "key": task["key"],
            "input": task["input"], "input_sha256": None, "input_size": None, "input_mtime_ns": None,
            "model": dict(identity) if identity else {"spec": task["model"]}, "settings": dict(task["settings"]),
            "outputs": [{"name": o["name"], "path": o["path"], "sha256": None} for o in task.get("outputs", [])],
            "status": "failed", "reason": "", "timings": {}, "metrics": {}, "worker": worker_name(),
            **({"pair": task["pair"], "clean": task["clean"]} if task["kind"] == "evaluate" else {})}


def _stat_input(row: dict, path: Path, digest: bool = True) -> None:
    st = path.stat()
    row["input_size"], row["input_mtime_ns"] = st.st_size, st.st_mtime_ns
    if digest:
        row["input_sha256"] = file_sha256(path)
    else:
        with open(path, "rb"):  # an unreadable input fails here with the same words as when it is hashed
            pass


def _request(settings: EnhanceSettings, chans: list[int], spec: str) -> EnhanceRequest:
    """The enhancement a task's settings ask for (the file-writing parts stay in the settings)."""
    extra: dict = {"batch": True}
    if settings.atten_lim_db is not None:
        extra["model_attenuation_limit_db"] = settings.atten_lim_db
    return EnhanceRequest(spec=spec, channels=tuple(chans), regions_s=settings.regions_s,
                          context_s=settings.context_s, crossfade_s=settings.crossfade_s,
                          noise_profile_s=settings.noise_profile_s, settings=extra,
                          normalize=settings.normalize)


def enhance_item(task: Mapping, enhancer: Enhancer, identity: Mapping | None = None, *,
                 should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, dict]:
    """Enhance one file as described by ``task`` (see :func:`enhance_task`); a generator yielding
    :class:`Progress` and returning the manifest row.

    Outputs are written in the planned order through the atomic writer (never over the input), at
    ``settings.rate`` (soxr), PCM outputs clipped to ±1 (counted in ``metrics.clipped_samples``); an output
    that clipping would destroy (more than 1 % of its samples beyond ±1 in an integer or lossy format) is
    not written and fails the item with the fix (:func:`~workbench.core.enhance.level.clipping_problem`). An output that already exists is kept, not rewritten,
    unless the task says ``overwrite`` (a kill between two outputs of one item leaves the first
    complete; the rerun writes only the missing one — outputs are deterministic, so the bytes agree).

    Raises:
        Cancelled: ``should_stop`` said so between steps (nothing half-written is left).
    """
    t_start = time.perf_counter()
    row = _base_row(task, identity or model_identity(enhancer, task["model"]))
    path = Path(task["input"])
    settings = EnhanceSettings.from_dict(task["settings"])
    rec = None
    digests = records_digests(task)
    streamed = streams_to_files(settings) and bool(task.get("outputs"))
    scratch_files = contextlib.ExitStack()

    def scratch(_output: str) -> Path:
        return scratch_files.enter_context(scratch_file_beside(Path(task["outputs"][0]["path"])))

    try:
        if not 0.0 <= settings.mix <= 1.0:
            raise WorkbenchError(f"mix must be between 0 and 1, got {settings.mix}")
        if not path.exists():
            raise WorkbenchError(f"{path}: no such file")
        if not path.is_file():
            raise WorkbenchError(f"{path}: not a regular file")
        _stat_input(row, path, digests)
        rec = Recording(path, source=open_source(path, repair=settings.repair, check_finite=True))
        src = rec.source
        row.update(sample_rate=src.sample_rate, channels=src.channels, frames=src.frames,
                   duration_s=round(src.frames / src.sample_rate, 6))
        t_read = time.perf_counter()
        chans = list(range(src.channels)) if settings.channels is None else list(settings.channels)
        for c in chans:
            if not 0 <= c < src.channels:
                raise WorkbenchError(f"{path}: channel {c} does not exist (the recording has {src.channels})")
        # The one enhancement call (Models panel, `workbench enhance`, GUI batch dialog): the same typed
        # provenance and version names on every path; a model with outputs ("speech", "noise") gives one
        # version per output (<id>.speech, <id>.noise), each written as its own file.
        # A latency still to be measured is measured on this file, whichever file came first.
        with measured_per_input(enhancer) as model:
            made = yield from rescaled(run_request(rec, model, _request(settings, chans, task["model"]),
                                                   should_stop=should_stop, scratch=scratch if streamed else None),
                                       0.0, 0.9, f"{path.name}: ", should_stop)
        if settings.mix != 1.0:
            # Strength as everywhere else: out = wet + (1 - mix) * (original - wet) (editing.Strength).
            strength = Strength(settings.mix, settings.strength_as)
            for v in made:
                rec.set_strength(v, strength, record=False)
        t_model = time.perf_counter()
        versions = {v.provenance.output or "enhanced": v for v in made}
        version = made[0]
        if settings.residual:
            for n, v in list(versions.items()):
                versions[f"{n}.residual"] = rec.residual_of(v)
            versions["residual"] = versions[f"{version.provenance.output or 'enhanced'}.residual"]
        peak, rms = _source_level_dbfs(version.source)
        row["metrics"] = {"output_peak_dbfs": peak, "output_rms_dbfs": rms}
        clipped = 0
        for out in row["outputs"]:
            if should_stop is not None and should_stop():
                raise Cancelled("cancelled on request")
            target = Path(out["path"])
            v = versions.get(out["name"])
            if v is None:
                raise WorkbenchError(f"{target}: no output named {out['name']!r} from model {enhancer.info.id!r}")
            level = v.provenance.extra.get("level")
            if level:
                out["level"] = dict(level)
            if target.is_file() and not task.get("overwrite"):
                out["kept"] = True  # an earlier run's output (atomic writes: it is complete)
            else:
                fmt = settings.format.upper() if settings.format.upper() in LOSSY else output_format(target)
                sub = (WRITE_SUBTYPES[fmt][0] if fmt in LOSSY else
                       output_subtype(getattr(src, "info", None) and src.info.subtype, fmt, settings.subtype))
                rate = export_rate(rec, v, settings.rate)
                protect = (path, *map(Path, task.get("protect", ())))
                comment = provenance_comment(rec, v) if settings.provenance_tag else None
                if streamed and fmt not in LOSSY:
                    n_clipped = _write_streamed(out, target, v.source, fmt, sub, settings, comment,
                                                bool(task.get("overwrite")), protect)
                    out.update(subtype=sub, sample_rate=rate, clipped_samples=int(n_clipped))
                    clipped += n_clipped
                    out["sha256"] = file_sha256(target) if digests else None
                    continue
                if settings.loudness_lufs is None and sub not in ("FLOAT", "DOUBLE"):
                    data = v.source.read_all()
                    problem = clipping_problem(str(target), int(np.count_nonzero(np.abs(data) > 1.0)), data.size, sub)
                    if problem:
                        raise WorkbenchError(problem)
                if fmt in LOSSY or settings.loudness_lufs is not None:
                    # Lossy containers (encoder rates, block writes) and BS.1770 loudness: the export writer.
                    loud = None if settings.loudness_lufs is None else (settings.loudness_lufs, settings.true_peak_dbtp)
                    _w, rate, n_clipped, gain_db, facts = write_export_audio(
                        target, v.source.read_all(), src.sample_rate, rate, fmt, sub, quality=settings.quality,
                        loudness_target=loud, overwrite=bool(task.get("overwrite")), protect=protect,
                        comment=comment)
                    if facts is not None:
                        out.update(gain_db=round(float(gain_db), 6), measured_lufs=facts.get("measured_lufs"),
                                   limited_db=facts.get("limited_db"))
                else:
                    audio, n_clipped = clip_for_subtype(resample(v.source.read_all(), src.sample_rate, rate), sub)
                    write_audio_atomic(target, audio, rate, subtype=sub, format=fmt,
                                       overwrite=bool(task.get("overwrite")), protect=protect, comment=comment)
                out.update(subtype=sub, sample_rate=rate, clipped_samples=int(n_clipped))
                clipped += n_clipped
            out["sha256"] = file_sha256(target) if digests else None
        row["metrics"]["clipped_samples"] = clipped
        scratch_files.close()  # every output is written: the model's scratch files go now, not after scoring
        t_write = time.perf_counter()
        if settings.reference_free:
            from ...measure.scoring import score_signal  # the metric stack loads only for runs that score

            sc = score_signal(version.source.read_all(), src.sample_rate, reference_free=True)
            row["metrics"].update({k: m.value for k, m in sc.metrics.items()})
        row["status"] = "done"
        row["timings"] = {"read_s": round(t_read - t_start, 6), "model_s": round(t_model - t_read, 6),
                          "write_s": round(t_write - t_model, 6)}
    except Cancelled:
        raise
    except GeneratorExit:
        raise
    except Exception as exc:  # any one file's problem is that file's failed row, never the batch's
        row["status"], row["reason"] = "failed", _one_line(exc)
        if str(path) not in row["reason"] and path.name not in row["reason"]:
            row["reason"] = f"{path}: {row['reason']}"
    finally:
        if rec is not None and hasattr(rec.source, "close"):
            rec.source.close()
        scratch_files.close()
    row["timings"]["total_s"] = round(time.perf_counter() - t_start, 6)
    row["worker_peak_rss_mib"] = peak_rss_mib()
    yield Progress(1.0, f"{path.name}: {row['status']}")
    return row


# ------------------------------------------------------------------------------------------ evaluate


def system_key(system: str, output: str | None = None) -> str:
    """The key of one scored system: ``system`` itself, or ``<system>.<output>`` for one output of a model
    with several (as its versions are named)."""
    return system if output is None else f"{system}.{output}"


def model_systems(spec: str, enhancer: Enhancer) -> list[tuple[str | None, str]]:
    """``(output, table name)`` per scored system of a loaded model: one for a single-output model, one per
    output (``<id>.<output>``) for a model with several, so every output is measured as itself."""
    outputs = enhancer.info.outputs
    if len(outputs) == 1:
        return [(None, enhancer.info.id)]
    return [(o, f"{enhancer.info.id}.{o}") for o in outputs]


def evaluate_task(index: int, pair, system: str, *, reference_free: bool = True, metrics: list[str] | None = None,
                  reference_free_fast: bool = False, output: str | None = None,
                  speech_only: VadSettings | None = None) -> dict:
    """A JSON-able evaluation task: score ``system`` (``noisy``, a model key, or ``file:TAG``) on ``pair``
    (a :class:`workbench.core.measure.metrics.Pair`). ``output``: which output of a model with several
    (see :func:`model_systems`). ``reference_free``: also the reference-free metrics of the table;
    ``reference_free_fast``: those in their approximate fast mode (the settings carry ``"reference_free_fast": true``
    only then). ``speech_only``: every metric over the speech spans Silero VAD finds
    in the clean file with these settings (the settings carry ``"speech_only": {...}`` only then)."""
    settings = {"reference_free": bool(reference_free), "metrics": None if metrics is None else list(metrics)}
    if reference_free and reference_free_fast:
        settings["reference_free_fast"] = True
    if speech_only is not None:
        settings["speech_only"] = asdict(speech_only)
    task = {"kind": "evaluate", "index": int(index), "key": f"{pair.name}|{system_key(system, output)}",
            "input": str(pair.noisy), "pair": pair.name, "clean": str(pair.clean),
            "precomputed": {k: str(v) for k, v in pair.outputs.items()}, "model": system, "outputs": [],
            "settings": settings}
    if output is not None:
        task["output"] = output
    return task


#: The last run of a model with several outputs, ``(enhancer, input path, (k, frames, ch) result)``: the
#: tasks of its other outputs on the same pair follow it and reuse the run instead of repeating it.
_last_multi_output_run: tuple | None = None


def _output_index(enhancer: Enhancer, system: str, output: str | None) -> int:
    outputs = enhancer.info.outputs
    if output is None:
        if len(outputs) != 1:
            raise WorkbenchError(f"model {system!r} has outputs {', '.join(outputs)}; an evaluation task names one")
        return 0
    if output not in outputs:
        raise WorkbenchError(f"model {system!r} has no output {output!r} (it has {', '.join(outputs)})")
    return outputs.index(output)


def evaluate_item(task: Mapping, enhancer: Enhancer | None = None, identity: Mapping | None = None, *,
                  should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, dict]:
    """Score one system on one pair (see :func:`evaluate_task`); a generator returning the manifest row.

    The row's ``metrics`` maps every requested metric key to its value (``None`` when it could not be
    computed; ``metric_reasons`` says why), plus ``lag_samples`` (alignment against the clean file),
    ``alignment_problems`` (the alignment check's findings when the clean file may not belong to this
    estimate, else ``None``), ``clean_duration_s``, and for a failed row ``failed_in`` (``read``,
    ``system`` or ``score``). In the speech-only mode (``settings["speech_only"]``) every metric covers the
    speech spans found in the clean file (``speech_s`` seconds of it; none found: every metric ``None`` with
    that reason), the same spans cutting the estimate.
    ``enhancer`` is the loaded model for model systems (``None`` for ``noisy`` and ``file:TAG``).
    """
    t_start = time.perf_counter()
    system = task["model"]
    if identity is None:
        identity = model_identity(enhancer, system) if enhancer is not None else {"spec": system, "id": system}
    row = _base_row(task, identity)
    row.update(pair=task["pair"], clean=task["clean"], clean_sha256=None, lag_samples=None, metric_reasons={},
               clean_duration_s=None, alignment_problems=None, failed_in=None, output=task.get("output"))
    # The metric stack loads with the first scored item, not with `workbench enhance` (start-up).
    from ...measure.metrics import failed, intrusive_keys, reference_free_keys
    from ...measure.scoring import Scores, load_mono, score_signal, speech_only
    from ...measure.vad import VadSettings, detect_speech

    stage = "read"
    wanted = list(intrusive_keys() if task["settings"]["metrics"] is None else task["settings"]["metrics"])
    keys = wanted + (list(reference_free_keys()) if task["settings"]["reference_free"] else [])
    try:
        noisy_path, clean_path = Path(task["input"]), Path(task["clean"])
        clean, clean_sr = load_mono(clean_path)  # first: an unreadable file gets the reader's one line
        noisy, noisy_sr = load_mono(noisy_path)
        _stat_input(row, noisy_path)
        row["clean_sha256"] = file_sha256(clean_path)
        row.update(sample_rate=noisy_sr, duration_s=round(len(noisy) / noisy_sr, 6),
                   clean_duration_s=round(len(clean) / clean_sr, 6))
        t_read = time.perf_counter()
        stage = "system"
        if system == NOISY:
            est, est_sr = noisy, noisy_sr
        elif system.startswith(FILE_PREFIX):
            tag = system[len(FILE_PREFIX):]
            if tag not in task["precomputed"]:
                raise WorkbenchError(f"{task['pair']}: precomputed output {tag!r} missing")
            est, est_sr = load_mono(Path(task["precomputed"][tag]))
        else:
            if enhancer is None:
                raise WorkbenchError(f"model {system!r} is not loaded in this worker")
            global _last_multi_output_run
            index = _output_index(enhancer, system, task.get("output"))
            last = _last_multi_output_run
            if last is not None and last[0] is enhancer and last[1] == task["input"]:
                result = last[2]
            else:
                with measured_per_input(enhancer) as model:
                    result = yield from rescaled(enhance(model, noisy, noisy_sr), 0.0, 0.8,
                                                 f"{task['pair']}: {identity.get('id', system)} ", should_stop)
            # (n_outputs, frames, 1): this task's output, mono as the noisy input was read
            _last_multi_output_run = ((enhancer, task["input"], result)
                                      if enhancer.info.n_outputs > 1 and index < enhancer.info.n_outputs - 1
                                      else None)
            est, est_sr = result[index, :, 0], noisy_sr
        t_model = time.perf_counter()
        stage = "score"
        speech = task["settings"].get("speech_only")
        if speech is not None:
            vad = yield from rescaled(detect_speech(clean, clean_sr, VadSettings(**speech)), 0.8, 0.05,
                                      f"{task['pair']}: speech activity ", should_stop)
            row["speech_s"] = round(vad.speech_s, 6)
            est, clean = speech_only(est, est_sr, vad.spans), speech_only(clean, clean_sr, vad.spans)
        if speech is not None and not len(clean):
            reason = f"{clean_path.name}: no speech found (speech only)"
            sc = Scores({k: failed(k, reason) for k in keys})
        else:
            sc = score_signal(est, est_sr, clean, clean_sr, reference_free=task["settings"]["reference_free"],
                              metrics=wanted, reference_free_fast=bool(task["settings"].get("reference_free_fast")))
        if sc.alignment is not None and sc.alignment.suspicious:
            row["alignment_problems"] = list(sc.alignment.problems())
        for key in keys:
            met = sc.metrics.get(key) or failed(key, "not computed")
            row["metrics"][key] = met.value
            if met.reason:
                row["metric_reasons"][key] = met.reason
        row["lag_samples"] = sc.lag_samples
        row["status"] = "done"
        row["timings"] = {"read_s": round(t_read - t_start, 6), "model_s": round(t_model - t_read, 6),
                          "score_s": round(time.perf_counter() - t_model, 6)}
    except (Cancelled, GeneratorExit):
        raise
    except Exception as exc:
        row["status"], row["reason"] = "failed", _one_line(exc)
        row["failed_in"] = stage  # read (noisy/clean), system (model run or precomputed output), score
        row["metrics"] = {k: None for k in keys}
    row["timings"]["total_s"] = round(time.perf_counter() - t_start, 6)
    row["worker_peak_rss_mib"] = peak_rss_mib()
    yield Progress(1.0, f"{task['pair']}: {system} {row['status']}")
    return row


def run_task(task: Mapping, models: Mapping[str, Enhancer], identities: Mapping[str, dict] | None = None,
             *, should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, dict]:
    """Dispatch a task to its item function with the model it names (``models[task["model"]]``)."""
    identities = identities or {}
    enhancer = models.get(task["model"])
    if task["kind"] == "enhance" and enhancer is None:
        row = _base_row(task, identities.get(task["model"]))
        row["reason"] = f"model {task['model']!r} is not loaded in this worker"
        return row
    item_function = enhance_item if task["kind"] == "enhance" else evaluate_item
    return (yield from item_function(task, enhancer, identities.get(task["model"]), should_stop=should_stop))
