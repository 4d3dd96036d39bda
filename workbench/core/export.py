"""Export of versions, comparisons, figures and batch enhancement. Nothing here writes over a source.

Audio files are named ``<stem>.<model>.<ext>`` (residuals ``<stem>.<model>.residual.<ext>``, the
original ``<stem>.original.<ext>``) and written through
:func:`workbench.core.audio_io.write_audio_atomic`: samples go to a temporary file in the target folder
that is renamed over the final name only when complete, an existing target needs ``overwrite=True``,
and the recording's own file is always protected.

A comparison (JSON or CSV) records the input file with its SHA-256, every version's model identity
(id, name, source, native rate, causality, latency), its settings and processing time, optional metrics
per version, and the STFT settings used for the views.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Callable, Generator, Iterable, Sequence

import numpy as np

from .audio_io import WRITE_SUBTYPES, atomic_output, ensure_folder, resample, same_file, write_audio_atomic
from .enhancer import Enhancer, Progress, rescaled
from .errors import WorkbenchError
from .outputs import check_output_target
from .recording import Recording, Version, file_sha256

#: File suffix per container.
SUFFIX = {"WAV": ".wav", "FLAC": ".flac"}
#: Rate choices: the recording's own rate, or the native rate of the model that made the version.
RATES = ("source", "model")


def file_tag(text: str) -> str:
    """A file-name-safe tag: letters, digits, ``.``, ``_`` and ``-``; other runs become ``-``."""
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return tag or "version"


def version_tag(version: Version) -> str:
    """The model part of an export name: ``deepfilternet3``, ``deepfilternet3.residual``, ``original``.

    Enhanced versions use their version name (the model id, or ``id #2`` for a second run, which becomes
    ``id-2``) so two runs of one model never share a file name.
    """
    if version.kind == "original":
        return "original"
    if version.kind == "residual":
        base = version.settings.get("residual_of") or (version.model.id if version.model else version.name)
        return f"{file_tag(base)}.residual"
    return file_tag(version.name)


def export_name(source_path: str | Path, version: Version, format: str = "WAV") -> str:
    """``<stem>.<tag>.<ext>`` for ``version`` of the recording at ``source_path``."""
    fmt = format.upper()
    if fmt not in SUFFIX:
        raise WorkbenchError(f"unknown export format {format!r}; choose one of {', '.join(SUFFIX)}")
    return f"{Path(source_path).stem}.{version_tag(version)}{SUFFIX[fmt]}"


def check_format(format: str, subtype: str) -> tuple[str, str]:
    fmt, sub = format.upper(), subtype.upper()
    if fmt not in SUFFIX:
        raise WorkbenchError(f"unknown export format {format!r}; choose one of {', '.join(SUFFIX)}")
    if sub not in WRITE_SUBTYPES[fmt]:
        raise WorkbenchError(f"{fmt} cannot hold {sub} samples; choose one of {', '.join(WRITE_SUBTYPES[fmt])}")
    return fmt, sub


def export_rate(recording: Recording, version: Version, rate: str | int) -> int:
    """The rate a version is written at: ``"source"``, ``"model"`` (the model's native rate; the
    original has none and uses the source rate) or an explicit number of Hz."""
    if isinstance(rate, (int, np.integer)):
        if rate <= 0:
            raise WorkbenchError(f"export sample rate must be positive, got {rate}")
        return int(rate)
    if rate == "source":
        return recording.source.sample_rate
    if rate == "model":
        return version.model.sample_rate if version.model is not None else recording.source.sample_rate
    raise WorkbenchError(f"unknown rate choice {rate!r}; choose 'source', 'model' or a number of Hz")


@dataclass(frozen=True)
class ExportedFile:
    """One written audio file.

    Attributes:
        path: where it was written.
        version: the version's name.
        sample_rate: rate written, Hz.
        subtype: sample format written.
        clipped_samples: samples beyond +-1.0 that PCM had to clip (0 for float files).
    """

    path: Path
    version: str
    sample_rate: int
    subtype: str
    clipped_samples: int = 0


def planned_targets(recording: Recording, versions: Sequence[Version], out_dir: str | Path,
                    format: str = "WAV") -> list[Path]:
    """The paths :func:`export_versions` would write (the GUI asks before replacing existing ones)."""
    return [Path(out_dir) / export_name(recording.path, v, format) for v in versions]


def export_version(recording: Recording, version: Version, out_dir: str | Path, *, format: str = "WAV",
                   subtype: str = "PCM_24", rate: str | int = "source", overwrite: bool = False,
                   path: str | Path | None = None) -> ExportedFile:
    """Write one version (all its channels) as an audio file.

    Args:
        out_dir: target folder (created if missing); ignored when ``path`` is given.
        format: ``WAV`` or ``FLAC``; subtype ``PCM_16``, ``PCM_24`` (both), ``PCM_32``/``FLOAT`` (WAV).
        rate: see :func:`export_rate`; conversion uses soxr.
        overwrite: replace an existing target (never the recording's own file).

    Raises:
        WorkbenchError naming the target: exists, is the source, bad format, write failure.
    """
    fmt, sub = check_format(format, subtype)
    target = Path(path) if path is not None else Path(out_dir) / export_name(recording.path, version, fmt)
    protect = [recording.path] + [getattr(v.source, "path", None) for v in recording.versions]
    protect = tuple(p for p in protect if p is not None)
    check_output_target(target, inputs=protect, overwrite=overwrite)
    audio = version.source.read_all()
    sr_in = version.source.sample_rate
    sr_out = export_rate(recording, version, rate)
    audio = resample(audio, sr_in, sr_out)
    clipped = 0
    if sub.startswith("PCM"):
        over = np.abs(audio) > 1.0
        clipped = int(over.sum())
        if clipped:
            audio = np.clip(audio, -1.0, 1.0)
    ensure_folder(target.parent)
    written = write_audio_atomic(target, audio, sr_out, subtype=sub, format=fmt, overwrite=overwrite,
                                 protect=protect)
    return ExportedFile(written, version.name, sr_out, sub, clipped)


def export_versions(recording: Recording, versions: Sequence[Version], out_dir: str | Path, *,
                    format: str = "WAV", subtype: str = "PCM_24", rate: str | int = "source",
                    overwrite: bool = False) -> list[ExportedFile]:
    """Write several versions; checks every target first so that nothing is written when one of them
    exists without ``overwrite`` (a half-done export would be confusing)."""
    fmt, sub = check_format(format, subtype)
    targets = planned_targets(recording, versions, out_dir, fmt)
    if len(set(targets)) != len(targets):
        raise WorkbenchError(f"{out_dir}: two versions would get the same file name")
    if not overwrite:
        existing = [t for t in targets if t.exists()]
        if existing:
            raise WorkbenchError(f"{existing[0]}: already exists (use --overwrite to replace it)"
                                 + (f"; {len(existing) - 1} more targets exist" if len(existing) > 1 else ""))
    return [export_version(recording, v, out_dir, format=fmt, subtype=sub, rate=rate, overwrite=overwrite)
            for v in versions]


# ---------------------------------------------------------------------------------------- comparison
def _jsonable(obj):
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # JSON has no NaN/Inf
    return obj


def model_identity(version: Version) -> dict | None:
    """id, name, source, native rate, causality, latency (samples and ms) and family of a version's
    model; ``None`` for the original."""
    m = version.model
    if m is None:
        return None
    return {"id": m.id, "name": m.name, "source": m.source, "sample_rate": m.sample_rate, "causal": m.causal,
            "latency_samples": m.latency_samples, "latency_ms": m.latency_ms, "family": m.family,
            "processing": m.processing, "parameters": m.parameters}


def comparison_record(recording: Recording, versions: Sequence[Version] | None = None, *,
                      metrics: dict[str, dict[str, float]] | None = None, stft=None,
                      exported: Iterable[ExportedFile] = (), hash_files: bool = True) -> dict:
    """The comparison as a plain dict (what the JSON file holds).

    Args:
        metrics: ``{version name: {metric name: value}}``.
        stft: a :class:`~workbench.core.stft.StftConfig` (or dict) describing the views.
        exported: audio files written for this comparison; listed with their hashes.
    """
    versions = list(recording.versions if versions is None else versions)
    metrics = metrics or {}
    info = recording.info
    files = []
    if recording.path.exists():
        files.append({"role": "source", "path": str(recording.path.resolve()),
                      "sha256": file_sha256(recording.path) if hash_files else None,
                      "sample_rate": info.sample_rate, "channels": info.channels, "frames": info.frames,
                      "format": info.format, "subtype": info.subtype})
    for f in exported:
        files.append({"role": "export", "version": f.version, "path": str(Path(f.path).resolve()),
                      "sha256": file_sha256(f.path) if hash_files else None, "sample_rate": f.sample_rate,
                      "subtype": f.subtype})
    rows = []
    for v in versions:
        rows.append({"name": v.name, "kind": v.kind, "sample_rate": v.sample_rate, "channels": v.source.channels,
                     "frames": v.source.frames, "model": model_identity(v), "settings": v.settings,
                     "elapsed_s": v.elapsed_s, "metrics": metrics.get(v.name, {})})
    from .. import __version__ as wb_version  # noqa: PLC0415 - tiny, avoids a cycle at import time
    return _jsonable({"workbench": {"version": wb_version}, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "recording": recording.name, "files": files, "versions": rows,
                      "stft": stft if stft is None or isinstance(stft, dict) else asdict(stft)})


#: Fixed CSV columns; metric columns (sorted) follow, then the settings as JSON.
CSV_COLUMNS = ("recording", "source_path", "source_sha256", "version", "kind", "sample_rate", "model_id",
               "model_name", "model_source", "model_sample_rate", "causal", "latency_samples", "latency_ms",
               "elapsed_s")


def comparison_csv(record: dict) -> str:
    """One CSV row per version: identity columns, one column per metric, settings and STFT as JSON."""
    source = next((f for f in record["files"] if f["role"] == "source"), {})
    metric_names = sorted({k for v in record["versions"] for k in v["metrics"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(CSV_COLUMNS) + [f"metric:{m}" for m in metric_names] + ["settings_json", "stft_json"])
    for v in record["versions"]:
        m = v["model"] or {}
        row = [record["recording"], source.get("path", ""), source.get("sha256", ""), v["name"], v["kind"],
               v["sample_rate"], m.get("id", ""), m.get("name", ""), m.get("source", ""), m.get("sample_rate", ""),
               m.get("causal", ""), m.get("latency_samples", ""), m.get("latency_ms", ""),
               "" if v["elapsed_s"] is None else v["elapsed_s"]]
        row += ["" if v["metrics"].get(k) is None else v["metrics"][k] for k in metric_names]
        row += [json.dumps(v["settings"], sort_keys=True), json.dumps(record["stft"], sort_keys=True)]
        w.writerow(row)
    return buf.getvalue()


def write_text_atomic(path: str | Path, text: str, *, overwrite: bool = False,
                      protect: Sequence[str | Path] = ()) -> Path:
    """Write UTF-8 text through :func:`~workbench.core.audio_io.atomic_output` (same guarantees as audio)."""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite, protect=tuple(protect)) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


def export_comparison(recording: Recording, path: str | Path, versions: Sequence[Version] | None = None, *,
                      metrics: dict[str, dict[str, float]] | None = None, stft=None,
                      exported: Iterable[ExportedFile] = (), overwrite: bool = False) -> Path:
    """Write the comparison as JSON (``.json``) or CSV (``.csv``), chosen by the suffix."""
    path = Path(path)
    check_output_target(path, inputs=(recording.path,), overwrite=overwrite)
    record = comparison_record(recording, versions, metrics=metrics, stft=stft, exported=exported)
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    elif suffix == ".csv":
        text = comparison_csv(record)
    else:
        raise WorkbenchError(f"{path}: comparison files end in .json or .csv")
    return write_text_atomic(path, text, overwrite=overwrite, protect=(recording.path,))


# ---------------------------------------------------------------------------------------- figure
def export_figure(recording: Recording, version: Version, path: str | Path, cfg, *, channel: int = 0,
                  width_px: int = 1600, height_px: int = 1000, overwrite: bool = False, **kwargs) -> Path:
    """Render the four-pane figure (magnitude, phase, real, imaginary) of one channel of ``version`` to
    PNG or SVG (by suffix) via :func:`workbench.core.figure.render_figure`.

    Like audio, the figure goes to a temporary name in the target folder and is renamed when complete.
    """
    from .figure import render_figure  # FOUNDATION's module; imported late so export works without it

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise WorkbenchError(f"{path}: figures are written as .png or .svg")
    check_output_target(path, inputs=(recording.path,), overwrite=overwrite)
    ensure_folder(path.parent)
    audio = version.source.read_all()
    c = channel if channel < audio.shape[1] else 0
    title = kwargs.pop("title", f"{recording.name} — {version.name}")
    # render_figure itself writes through a temporary file and one rename.
    out = render_figure(np.ascontiguousarray(audio[:, c]), version.sample_rate, cfg, path, title=title,
                        width_px=width_px, height_px=height_px, overwrite=overwrite,
                        protect=(recording.path,), **kwargs)
    return Path(out)


# ---------------------------------------------------------------------------------------- batch
@dataclass
class BatchSummary:
    """Outcome of :func:`export_batch`.

    Attributes:
        succeeded: ``(input file, written files)`` per file that worked.
        failed: ``(input file, one-line reason)`` per file that did not.
        elapsed_s: wall time.
    """

    succeeded: list[tuple[Path, list[Path]]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def text(self) -> str:
        lines = [f"{len(self.succeeded)} of {len(self.succeeded) + len(self.failed)} files enhanced "
                 f"in {self.elapsed_s:.1f} s"]
        lines += [f"FAILED {p}: {why}" for p, why in self.failed]
        return "\n".join(lines)


def export_batch(files: Sequence[str | Path], enhancer: Enhancer, out_dir: str | Path, *,
                 format: str = "WAV", subtype: str = "PCM_24", rate: str | int = "source",
                 residual: bool = False, overwrite: bool = False, repair: bool = False,
                 should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, BatchSummary]:
    """Enhance every file with ``enhancer`` and export the result into ``out_dir``.

    A generator: yields :class:`Progress` (overall fraction over all files), returns a
    :class:`BatchSummary`. A file that fails (unreadable, model error, target exists ...) is recorded
    with its reason and the batch goes on. ``should_stop`` is polled between steps; when it returns
    True the batch raises :class:`Cancelled`. Sources are only read.
    """
    from .batch.item import EnhanceSettings, enhance_item, enhance_task, model_identity

    fmt, sub = check_format(format, subtype)
    files = [Path(f) for f in files]
    out_dir = Path(out_dir)
    summary = BatchSummary()
    t0 = time.perf_counter()
    n = max(len(files), 1)
    tag = file_tag(enhancer.info.id)
    settings = EnhanceSettings(format=fmt, subtype=sub, rate=rate, residual=residual, repair=repair)
    identity = model_identity(enhancer)
    for i, f in enumerate(files):
        yield Progress(i / n, f"{f.name}: opening ({i + 1}/{len(files)})")
        outputs = [{"name": "enhanced", "path": str(out_dir / f"{f.stem}.{tag}{SUFFIX[fmt]}")}]
        if residual:
            outputs.append({"name": "residual", "path": str(out_dir / f"{f.stem}.{tag}.residual{SUFFIX[fmt]}")})
        # Check targets before spending model time on a file that cannot be written.
        existing = [o["path"] for o in outputs if Path(o["path"]).exists()]
        if existing and not overwrite:
            summary.failed.append((f, f"{existing[0]}: already exists (use --overwrite to replace it)"))
            continue
        # The batch pipeline's per-item function: same reading, engine, naming and writing as the CLI.
        task = enhance_task(i, f, enhancer.info.id, outputs, settings, overwrite=overwrite)
        row = yield from rescaled(enhance_item(task, enhancer, identity, should_stop=should_stop), i / n, 1.0 / n,
                                  "", should_stop)
        if row["status"] == "done":
            summary.succeeded.append((f, [Path(o["path"]) for o in row["outputs"]]))
        else:
            summary.failed.append((f, row["reason"]))
    summary.elapsed_s = time.perf_counter() - t0
    yield Progress(1.0, f"done: {len(summary.succeeded)} ok, {len(summary.failed)} failed")
    return summary
