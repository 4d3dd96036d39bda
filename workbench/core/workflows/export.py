"""Export of versions, comparisons, figures and batch enhancement. Nothing here writes over a source.

Audio files are named ``<stem>.<model>.<ext>`` (residuals ``<stem>.<model>.residual.<ext>``, the
original ``<stem>.original.<ext>``) and written through
:func:`workbench.core.audio.audio_io.write_audio_atomic`: samples go to a temporary file in the target folder
that is renamed over the final name only when complete, an existing target needs ``overwrite=True``,
and the recording's own file is always protected.

A comparison (JSON or CSV) records the input file with its SHA-256, the clean reference that produced
the intrusive metrics (path and SHA-256), every version's model identity (id, name, source, native rate,
causality, latency), its settings and processing time, optional metrics per version, and the STFT
settings used for the views.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Generator, Iterable, Sequence

import numpy as np

import soundfile as sf

from ... import __version__ as wb_version
from ..audio.formats import BY_NAME, EXPORT_FORMATS, LOSSY_FORMATS
from ..audio.audio_io import (WRITE_SUBTYPES, atomic_output, ensure_folder, native_path, read_info, resample,
                              write_audio_atomic)
from ..audio.loudness import measure, normalisation_gain, true_peak
from ..audio.outputs import check_output_target
from ..document.recording import Recording, Version, file_sha256
from ..errors import WorkbenchError
from ..progress import Progress, run_to_end

#: File suffix per export format (from the format table).
SUFFIX = {name: BY_NAME[name].suffix for name in EXPORT_FORMATS}
#: Lossy formats: libsndfile's container name and the rates its encoder accepts (``None``: any).
LOSSY = {name: (BY_NAME[name].container, BY_NAME[name].encoder_rates) for name in LOSSY_FORMATS}
#: Frames per write call: libsndfile's MP3 encoder crashed on one whole-file write in this project.
WRITE_BLOCK_FRAMES = 1 << 15


def lossy_rate(format: str, rate: int) -> int:
    """The rate a lossy format is written at: ``rate`` when its encoder takes it, else the next higher
    accepted rate (48 kHz at most)."""
    accepted = LOSSY[format][1]
    if accepted is None or rate in accepted:
        return rate
    higher = [r for r in accepted if r >= rate]
    return higher[0] if higher else accepted[-1]
#: Rate choices: the recording's own rate, or the native rate of the model that made the version.
RATES = ("source", "model")


def file_tag(text: str) -> str:
    """A file-name-safe tag: letters, digits, ``.``, ``_`` and ``-``; other runs become ``-``."""
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return tag or "version"


def version_tag(version: Version) -> str:
    """The model part of an export name: ``deepfilternet3``, ``deepfilternet3.residual``, ``original``.

    Enhanced versions use their version name (the model id, or ``id #2`` for a second run, which becomes
    ``id-2``) so two runs of one model never share a file name. Phase-lab versions carry their tag
    (``cirm``, ``cleanmag_noisyphase``, ``fgla_clean``) in the provenance, the names ``workbench phase-lab``
    writes.
    """
    lab_tag = (version.provenance.extra or {}).get("phase_lab_tag") if version.provenance is not None else None
    if lab_tag:
        base = file_tag(lab_tag)
        suffix = version.name.rsplit(" #", 1)[1] if " #" in version.name else ""
        return f"{base}-{suffix}" if suffix.isdigit() else base
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
        gain_db: gain applied by loudness normalisation (0 without it).
        loudness: the normalisation's facts (measured, target, ceiling, limited_db), or ``None``.
    """

    path: Path
    version: str
    sample_rate: int
    subtype: str
    clipped_samples: int = 0
    gain_db: float = 0.0
    loudness: dict | None = None


#: Where exports go when the recording's own folder cannot be written (a read-only share, a CD, an
#: installed demo clip): a folder in the person's home directory, created on the first export.
FALLBACK_EXPORT_FOLDER = Path.home() / "Workbench exports"


def is_writable_folder(folder: str | Path) -> bool:
    """Whether files can be created in ``folder``: it exists and is writable, or its nearest existing parent
    is (it would be created)."""
    import os

    p = Path(folder).expanduser()
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def default_export_folder(source_path: str | Path | None, fallback: str | Path | None = None) -> Path:
    """The folder an export dialog proposes: the recording's own folder when it is writable, else
    ``fallback`` (default :data:`FALLBACK_EXPORT_FOLDER`)."""
    if source_path is not None:
        folder = Path(source_path).expanduser().resolve().parent
        if is_writable_folder(folder):
            return folder
    return Path(fallback) if fallback is not None else FALLBACK_EXPORT_FOLDER


def planned_targets(recording: Recording, versions: Sequence[Version], out_dir: str | Path,
                    format: str = "WAV") -> list[Path]:
    """The paths :func:`export_versions` would write (the GUI asks before replacing existing ones)."""
    return [Path(out_dir) / export_name(recording.path, v, format) for v in versions]


def export_version(recording: Recording, version: Version, out_dir: str | Path, *, format: str = "WAV",
                   subtype: str = "PCM_24", rate: str | int = "source", overwrite: bool = False,
                   path: str | Path | None = None, quality: float | None = None, bitrate_mode: str | None = None,
                   loudness_target: tuple[float, float] | None = None,
                   audio: "np.ndarray | None" = None) -> ExportedFile:
    """Write one version (all its channels) as an audio file.

    Args:
        out_dir: target folder (created if missing); ignored when ``path`` is given.
        format: ``WAV``, ``FLAC``, ``MP3``, ``OGG`` (Vorbis) or ``OPUS``; subtype ``PCM_16``, ``PCM_24``
            (WAV/FLAC), ``PCM_32``/``FLOAT`` (WAV), ``MPEG_LAYER_III``, ``VORBIS``, ``OPUS``.
        rate: see :func:`export_rate`; conversion uses soxr. Lossy encoders take only some rates
            (:func:`lossy_rate` picks the next accepted one).
        quality: lossy formats, 0..1 (1 = best): libsndfile's ``compression_level = 1 - quality``, which
            sets the bitrate (MP3, Opus) or the VBR quality (Vorbis). Default: libsndfile's.
        bitrate_mode: MP3/Opus ``CONSTANT``, ``AVERAGE`` or ``VARIABLE``.
        loudness_target: ``(target_lufs, ceiling_dbtp)``, e.g. ``(-16, -1)`` for podcasts: the version is
            scaled to the target (BS.1770, :func:`workbench.core.audio.loudness.normalisation_gain`), less where
            its true peak would pass the ceiling.
        audio: samples to write instead of the version's own (e.g. with a strength applied).
        overwrite: replace an existing target (never the recording's own file).

    Every container carries the version's provenance as JSON in its comment tag
    (:func:`provenance_comment`: model, settings, strength, channels, parent).

    Raises:
        WorkbenchError naming the target: exists, is the source, bad format, write failure.
    """
    fmt, sub = check_format(format, subtype)
    target = Path(path) if path is not None else Path(out_dir) / export_name(recording.path, version, fmt)
    protect = [recording.path] + [getattr(v.source, "path", None) for v in recording.versions]
    protect = tuple(p for p in protect if p is not None)
    check_output_target(target, inputs=protect, overwrite=overwrite)
    audio = version.source.read_all() if audio is None else np.asarray(audio, np.float32)
    written, sr_out, clipped, gain_db, facts = write_export_audio(
        target, audio, version.source.sample_rate, export_rate(recording, version, rate), fmt, sub,
        quality=quality, bitrate_mode=bitrate_mode, loudness_target=loudness_target, overwrite=overwrite,
        protect=protect, comment=provenance_comment(recording, version))
    version.saved = True  # the result is kept on disk: quitting need not ask about it
    return ExportedFile(written, version.name, sr_out, sub, clipped, gain_db, facts)


def write_export_audio(target: Path, audio: np.ndarray, sr_in: int, sr_out: int, fmt: str, sub: str, *,
                       quality: float | None = None, bitrate_mode: str | None = None,
                       loudness_target: tuple[float, float] | None = None, overwrite: bool = False,
                       protect: tuple = (), comment: str | None = None) -> tuple[Path, int, int, float, dict | None]:
    """Resample, normalise, clip and write ``audio`` ``(frames, channels)`` as :func:`export_version`
    describes (also used by ``workbench enhance`` and ``workbench batch``); ``comment`` goes into the
    file's comment tag in every container (see :func:`provenance_comment`). Returns ``(path, rate
    written, clipped samples, gain_db, loudness facts)``."""
    fmt, sub = check_format(fmt, sub)
    if fmt in LOSSY:
        sr_out = lossy_rate(fmt, sr_out)
    audio = resample(audio, sr_in, sr_out)
    gain_db, facts = 0.0, None
    if loudness_target is not None:
        norm = normalisation_gain(audio, sr_out, *loudness_target)
        gain_db = norm.gain_db
        facts = asdict(norm)
        audio = (audio * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
    clipped = 0
    if sub != "FLOAT":
        over = np.abs(audio) > 1.0
        clipped = int(over.sum())
        if clipped:
            audio = np.clip(audio, -1.0, 1.0)
    ensure_folder(target.parent)
    if fmt in LOSSY:
        written = _write_lossy(target, audio, sr_out, fmt, sub, quality, bitrate_mode, overwrite, protect, comment)
        if facts is not None and facts["measured_lufs"] is not None:
            # The codec's low-pass and quantisation change the loudness (0.5 LU for noisy 16 kHz speech in
            # MP3): measure what was written and encode once more with the gain corrected by the difference.
            decoded, _ = sf.read(native_path(written), dtype="float32", always_2d=True)
            got = measure(decoded, sr_out).lufs
            wanted = loudness_target[0] + facts["limited_db"]
            if got is not None and abs(got - wanted) > 0.05:
                fix_db = wanted - got
                tp = true_peak(audio, sr_out)
                if tp > 0:  # still under the ceiling after the correction
                    fix_db = min(fix_db, loudness_target[1] - 20.0 * math.log10(tp))
                audio = (audio * np.float32(10.0 ** (fix_db / 20.0))).astype(np.float32)
                gain_db += fix_db
                facts = {**facts, "gain_db": gain_db, "codec_correction_db": fix_db}
                written = _write_lossy(target, audio, sr_out, fmt, sub, quality, bitrate_mode, True, protect,
                                       comment)
    else:
        written = write_audio_atomic(target, audio, sr_out, subtype=sub, format=fmt, overwrite=overwrite,
                                     protect=protect, comment=comment)
    return written, sr_out, clipped, gain_db, facts


def _write_lossy(target: Path, audio: np.ndarray, rate: int, fmt: str, sub: str, quality: float | None,
                 bitrate_mode: str | None, overwrite: bool, protect: tuple, comment: str | None = None) -> Path:
    """MP3/Vorbis/Opus through libsndfile, in blocks of :data:`WRITE_BLOCK_FRAMES`, via the atomic writer."""
    import soundfile as sf  # noqa: PLC0415

    if quality is not None and not 0.0 <= quality <= 1.0:
        raise WorkbenchError(f"{target}: quality must lie between 0 and 1, got {quality}")
    if bitrate_mode is not None and bitrate_mode.upper() not in ("CONSTANT", "AVERAGE", "VARIABLE"):
        raise WorkbenchError(f"{target}: bitrate mode must be CONSTANT, AVERAGE or VARIABLE, got {bitrate_mode}")
    if not np.all(np.isfinite(audio)):
        raise WorkbenchError(f"{target}: refusing to write audio that holds NaN or Inf samples")
    audio = audio[:, None] if audio.ndim == 1 else audio
    extra = {}
    if quality is not None:
        extra["compression_level"] = 1.0 - float(quality)
    if bitrate_mode is not None and fmt != "OGG":
        extra["bitrate_mode"] = bitrate_mode.upper()
    with atomic_output(target, overwrite=overwrite, protect=protect) as tmp:
        with sf.SoundFile(native_path(tmp), "w", samplerate=int(rate), channels=audio.shape[1], format=LOSSY[fmt][0],
                          subtype=sub, **extra) as out:
            if comment is not None:
                out.comment = comment  # Vorbis/Opus comments, MP3's ID3 tag
            for a in range(0, audio.shape[0], WRITE_BLOCK_FRAMES):
                out.write(np.ascontiguousarray(audio[a:a + WRITE_BLOCK_FRAMES]))
    return target


def export_versions_steps(recording: Recording, versions: Sequence[Version], out_dir: str | Path, *,
                          format: str = "WAV", subtype: str = "PCM_24", rate: str | int = "source",
                          overwrite: bool = False, quality: float | None = None,
                          loudness_target: tuple[float, float] | None = None
                          ) -> Generator[Progress, None, list[ExportedFile]]:
    """:func:`export_versions` as a generator: one :class:`Progress` before each file (a worker can
    cancel between files; every file is written atomically, so a cancelled export leaves the files
    finished so far and nothing half-written). Returns the written files."""
    fmt, sub = check_format(format, subtype)
    targets = planned_targets(recording, versions, out_dir, fmt)
    if len(set(targets)) != len(targets):
        raise WorkbenchError(f"{out_dir}: two versions would get the same file name")
    if not overwrite:
        existing = [t for t in targets if t.exists()]
        if existing:
            raise WorkbenchError(f"{existing[0]}: already exists (use --overwrite to replace it)"
                                 + (f"; {len(existing) - 1} more targets exist" if len(existing) > 1 else ""))
    written: list[ExportedFile] = []
    for i, (v, target) in enumerate(zip(versions, targets)):
        yield Progress(i / max(len(versions), 1), f"writing {target.name} ({i + 1} of {len(versions)})")
        written.append(export_version(recording, v, out_dir, format=fmt, subtype=sub, rate=rate,
                                      overwrite=overwrite, quality=quality, loudness_target=loudness_target))
    yield Progress(1.0, f"wrote {len(written)} file(s)")
    return written


def export_versions(recording: Recording, versions: Sequence[Version], out_dir: str | Path, *,
                    format: str = "WAV", subtype: str = "PCM_24", rate: str | int = "source",
                    overwrite: bool = False, quality: float | None = None,
                    loudness_target: tuple[float, float] | None = None) -> list[ExportedFile]:
    """Write several versions; checks every target first so that nothing is written when one of them
    exists without ``overwrite`` (a half-done export would be confusing). ``quality`` and
    ``loudness_target`` as in :func:`export_version` (each version normalised on its own)."""
    return run_to_end(export_versions_steps(recording, versions, out_dir, format=format, subtype=subtype,
                                            rate=rate, overwrite=overwrite, quality=quality,
                                            loudness_target=loudness_target))


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


def reference_record(reference: str | Path | None, metrics: dict[str, dict[str, float]] | None = None, *,
                     hash_files: bool = True) -> dict | None:
    """The clean reference behind the intrusive metrics: ``{"path", "sha256", "sample_rate", "channels",
    "frames", "metrics"}`` (``metrics``: the intrusive metric keys present in ``metrics``), or ``None``.

    Raises:
        WorkbenchError: the reference file cannot be read (it was moved or changed since it was measured).
    """
    if reference is None:
        return None
    from ..measure.metrics import intrusive_keys  # not at import: `workbench enhance` measures nothing

    path = Path(reference)
    info = read_info(path)
    present = {k for row in (metrics or {}).values() for k in row}
    try:
        digest = file_sha256(path) if hash_files else None
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot read the reference ({exc.strerror or exc})") from None
    return {"path": str(path.resolve()), "sha256": digest, "sample_rate": info.sample_rate,
            "channels": info.channels, "frames": info.frames,
            "metrics": [k for k in intrusive_keys() if k in present]}


def comparison_record(recording: Recording, versions: Sequence[Version] | None = None, *,
                      metrics: dict[str, dict[str, float]] | None = None, stft=None,
                      exported: Iterable[ExportedFile] = (), hash_files: bool = True,
                      reference: str | Path | None = None) -> dict:
    """The comparison as a plain dict (what the JSON file holds).

    Args:
        metrics: ``{version name: {metric name: value}}``.
        stft: a :class:`~workbench.core.views.stft.StftConfig` (or dict) describing the views.
        exported: audio files written for this comparison; listed with their hashes.
        reference: the clean reference file the intrusive metrics were measured against; recorded as
            ``"reference"`` (path, SHA-256, format, which metrics it produced) and as a ``files`` entry
            with role ``reference``. ``None``: no reference (``"reference": null``).
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
    ref = reference_record(reference, metrics, hash_files=hash_files)
    if ref is not None:
        files.append({"role": "reference", "path": ref["path"], "sha256": ref["sha256"],
                      "sample_rate": ref["sample_rate"], "channels": ref["channels"], "frames": ref["frames"]})
    for f in exported:
        files.append({"role": "export", "version": f.version, "path": str(Path(f.path).resolve()),
                      "sha256": file_sha256(f.path) if hash_files else None, "sample_rate": f.sample_rate,
                      "subtype": f.subtype})
    rows = []
    for v in versions:
        # The metrics of a model result were measured at its strength: the record says which.
        strength = recording.strength_of(v).to_dict() if v.kind.is_result else None
        rows.append({"name": v.name, "kind": v.kind, "sample_rate": v.sample_rate, "channels": v.source.channels,
                     "frames": v.source.frames, "model": model_identity(v), "settings": v.settings,
                     "elapsed_s": v.elapsed_s, "strength": strength, "metrics": metrics.get(v.name, {})})
    return _jsonable({"workbench": {"version": wb_version}, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "recording": recording.name, "reference": ref, "files": files, "versions": rows,
                      "stft": stft if stft is None or isinstance(stft, dict) else asdict(stft)})


#: Fixed CSV columns; metric columns (sorted) follow, then the settings as JSON.
CSV_COLUMNS = ("recording", "source_path", "source_sha256", "reference_path", "reference_sha256", "version",
               "kind", "sample_rate", "model_id", "model_name", "model_source", "model_sample_rate", "causal",
               "latency_samples", "latency_ms", "elapsed_s", "strength_percent", "strength_given_as")


def comparison_csv(record: dict) -> str:
    """One CSV row per version: identity columns (source and reference with their SHA-256), one column per
    metric, settings and STFT as JSON. The reference columns are empty when no reference was set."""
    source = next((f for f in record["files"] if f["role"] == "source"), {})
    reference = record.get("reference") or {}
    metric_names = sorted({k for v in record["versions"] for k in v["metrics"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(CSV_COLUMNS) + [f"metric:{m}" for m in metric_names] + ["settings_json", "stft_json"])
    for v in record["versions"]:
        m = v["model"] or {}
        row = [record["recording"], source.get("path", ""), source.get("sha256", ""), reference.get("path", ""),
               reference.get("sha256", "") or "", v["name"], v["kind"],
               v["sample_rate"], m.get("id", ""), m.get("name", ""), m.get("source", ""), m.get("sample_rate", ""),
               m.get("causal", ""), m.get("latency_samples", ""), m.get("latency_ms", ""),
               "" if v["elapsed_s"] is None else v["elapsed_s"]]
        strength = v.get("strength") or {}
        row += [strength.get("percent", ""), strength.get("given_as", "")]
        row += ["" if v["metrics"].get(k) is None else v["metrics"][k] for k in metric_names]
        row += [json.dumps(v["settings"], sort_keys=True), json.dumps(record["stft"], sort_keys=True)]
        w.writerow(row)
    return buf.getvalue()


def write_text_atomic(path: str | Path, text: str, *, overwrite: bool = False,
                      protect: Sequence[str | Path] = ()) -> Path:
    """Write UTF-8 text through :func:`~workbench.core.audio.audio_io.atomic_output` (same guarantees as audio)."""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite, protect=tuple(protect)) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


def export_comparison(recording: Recording, path: str | Path, versions: Sequence[Version] | None = None, *,
                      metrics: dict[str, dict[str, float]] | None = None, stft=None,
                      exported: Iterable[ExportedFile] = (), overwrite: bool = False,
                      reference: str | Path | None = None) -> Path:
    """Write the comparison as JSON (``.json``) or CSV (``.csv``), chosen by the suffix (``reference``: the
    clean file behind the intrusive metrics, see :func:`comparison_record`)."""
    path = Path(path)
    protect = (recording.path,) + ((Path(reference),) if reference is not None else ())
    check_output_target(path, inputs=protect, overwrite=overwrite)
    record = comparison_record(recording, versions, metrics=metrics, stft=stft, exported=exported,
                               reference=reference)
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    elif suffix == ".csv":
        text = comparison_csv(record)
    else:
        raise WorkbenchError(f"{path}: comparison files end in .json or .csv")
    protect = (recording.path,) + ((Path(reference),) if reference is not None else ())
    return write_text_atomic(path, text, overwrite=overwrite, protect=protect)


# ---------------------------------------------------------------------------------------- figure
def export_figure(recording: Recording, version: Version, path: str | Path, cfg, *, channel: int = 0,
                  width_px: int = 1600, height_px: int = 1000, overwrite: bool = False, settings=None,
                  partner=None, partner_label: str = "", **kwargs) -> Path:
    """Render the four-pane figure of one channel of ``version`` to PNG or SVG (by suffix), read block by
    block via :func:`workbench.core.views.figure.render_figure_source`.

    ``settings`` (a :class:`~workbench.core.views.figure.FigureSettings`, e.g. the panes' own) decide views,
    levels, colours, masking, frequency scale and region; ``partner`` ``(source, channel,
    partner_is_original)`` feeds difference views. Like audio, the figure goes to a temporary name in the
    target folder and is renamed when complete.
    """

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise WorkbenchError(f"{path}: figures are written as .png or .svg")
    check_output_target(path, inputs=(recording.path,), overwrite=overwrite)
    ensure_folder(path.parent)
    c = channel if channel < version.source.channels else 0
    title = kwargs.pop("title", f"{recording.name} — {version.name}")
    # Imported here, not with the module: the enhance and batch paths that import this module draw nothing.
    from ..views.figure import render_figure_source

    # render_figure_source itself writes through a temporary file and one rename.
    out, _views = render_figure_source(version.source, cfg, path, channel=c, title=title, width_px=width_px,
                                       height_px=height_px, settings=settings, partner=partner,
                                       partner_label=partner_label, overwrite=overwrite,
                                       protect=(recording.path,), **kwargs)
    return Path(out)


# ------------------------------------------------------------------------- provenance-tagged WAV
def provenance_tag(rec: Recording, version: Version) -> dict:
    """What the output's comment tag holds: the version's typed provenance plus its strength."""
    p = version.provenance.to_dict()
    strength = rec.strength_of(version)
    return {"workbench provenance": 1, "input": rec.path.name, "version": version.name, **p,
            "strength": strength.to_dict()}


def provenance_comment(rec: Recording, version: Version) -> str:
    """:func:`provenance_tag` as the JSON text every output's comment tag holds."""
    return json.dumps(provenance_tag(rec, version), sort_keys=True)


def write_with_provenance(target: Path, audio, rate: int, subtype: str, provenance: dict, *, overwrite: bool,
                          protect: tuple) -> Path:
    """WAV through the atomic writer, written in blocks, with ``provenance`` as JSON in the comment tag."""
    return write_audio_atomic(target, audio, rate, subtype=subtype, format="WAV", overwrite=overwrite,
                              protect=protect, comment=json.dumps(provenance, sort_keys=True))
