"""The training configuration: one TOML file that ``workbench train CONFIG.toml`` reads and the Train panel writes.

Qt-free and torch-free (the panel writes it without importing the training stack). Every field has a
default, so the smallest config names an output folder and some data::

    [run]
    out_dir = "runs/my-noise"
    [model]
    architecture = "gtcrn"          # gtcrn, gcrn or complex_net
    init = "gtcrn-dns3"             # fine-tune a bundled checkpoint (or a path); "" trains from scratch
    [data]
    clean = ["speech/"]             # on-the-fly mixing: clean folders x noise folders ...
    noise = ["my_noise/"]
    # noise_recording = "talk.wav"  # ... and/or the noise-only spans of a recording (seconds; or its pauses)
    # noise_spans_s = [[0.0, 1.5], [7.2, 9.0]]
    # pairs = "pairs/"              # ... or a folder of noisy/clean pairs (the layouts `evaluate` reads)

Sections and fields are listed in :class:`TrainConfig` and its parts; unknown fields are refused (a typo
must not silently train something else).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..audio.audio_io import atomic_output
from ..errors import WorkbenchError

ARCHITECTURES = ("gtcrn", "gcrn", "complex_net")
#: Bundled checkpoints a run can start from (``model.init``), besides a path to a checkpoint.
BUNDLED_INITS = ("gtcrn-dns3", "gtcrn-vctk")
VALIDATION_METRICS = ("pesq_wb", "estoi", "si_sdr")


@dataclass
class RunConfig:
    """``[run]``: where results go and how long to train.

    Attributes:
        out_dir: run folder: ``last.ckpt`` (resume state), ``model.pt`` (the trained model), ``history.json``,
            ``validation.csv``, ``config.toml``, exports. Relative paths are taken from the config's folder.
        seed: seeds initialisation, data split, mixing and batch order.
        epochs: passes over ``data.examples_per_epoch`` examples (mixing) or over the training pairs.
        batch_size, lr, weight_decay, grad_clip: AdamW with gradient-norm clipping (``grad_clip`` 0: off).
        checkpoint_every_steps: atomic ``last.ckpt`` every N optimiser steps (and at every epoch end).
        threads: torch intra-op threads.
        max_steps: stop after this many steps in all (0: no limit).
    """

    out_dir: str = "runs/train"
    seed: int = 0
    epochs: int = 10
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    checkpoint_every_steps: int = 50
    threads: int = 1
    max_steps: int = 0


@dataclass
class ModelConfig:
    """``[model]``: the architecture and where its weights start.

    Attributes:
        architecture: ``gtcrn``, ``gcrn`` or ``complex_net``.
        args: keyword arguments of the architecture (``gcrn``: ``channels``, ``hidden``; ``complex_net``:
            ``hidden``, ``layers``, ``kernel``); GTCRN has none.
        init: ``""`` (from scratch), a bundled checkpoint (``gtcrn-dns3``, ``gtcrn-vctk``) or a checkpoint path.
        freeze_norm: keep batch-norm statistics fixed (the usual choice when fine-tuning on little data).
        name: the name the trained model shows in the catalogue (default: the run folder's name).
    """

    architecture: str = "gtcrn"
    args: dict = field(default_factory=dict)
    init: str = ""
    freeze_norm: bool = False
    name: str = ""


@dataclass
class LossConfig:
    """``[loss]``: ``loss`` is a weighted sum of named losses, e.g. ``"gtcrn_hybrid"`` or ``"0.5*mae + 0.5*mrstft"``."""

    loss: str = "gtcrn_hybrid"


@dataclass
class DataConfig:
    """``[data]``: pairs, or on-the-fly mixing.

    Attributes:
        pairs: a folder of noisy/clean pairs (``NAME_noisy.wav`` + ``NAME_clean.wav``, or ``noisy/`` + ``clean/``).
        clean, noise: folders or files of clean speech and of noise, mixed on the fly when ``pairs`` is empty.
        noise_recording: an audio file whose noise-only spans are a noise source too (besides or instead of
            ``noise``): a person's own noisy recording. Mixtures take noise from inside those spans only.
        noise_spans_s: those spans, ``[[start, stop], ...]`` in seconds of the recording (e.g. the span of
            *Learn noise*, a time selection, or the pauses *Learn from pauses* used).
        noise_from_pauses: instead of ``noise_spans_s``, use the recording's non-speech spans found by the
            speech activity detector (Silero VAD, default settings).
        rir: folders or files of room impulse responses convolved with the speech with ``rir_probability``.
        snr_db: ``[low, high]`` mixing SNR range (uniform).
        level_db: ``[low, high]`` RMS level of each mixture in dBFS (uniform), the target scaled alike.
        crop_s: training examples are crops of this many seconds.
        examples_per_epoch: mixtures per epoch (mixing only; pairs: one crop per training pair per epoch).
        val_fraction: share of the files held out for validation (split by file, never by crop).
        val_clips: at most this many validation clips (whole files up to ``val_max_s`` seconds).
        val_max_s: validation clips are cut to this length.
        sample_rate: the model's rate (16 kHz for every architecture here).
    """

    pairs: str = ""
    clean: list = field(default_factory=list)
    noise: list = field(default_factory=list)
    noise_recording: str = ""
    noise_spans_s: list = field(default_factory=list)
    noise_from_pauses: bool = False
    rir: list = field(default_factory=list)
    rir_probability: float = 0.5
    snr_db: list = field(default_factory=lambda: [-5.0, 15.0])
    level_db: list = field(default_factory=lambda: [-35.0, -15.0])
    crop_s: float = 2.0
    examples_per_epoch: int = 64
    val_fraction: float = 0.2
    val_clips: int = 8
    val_max_s: float = 6.0
    sample_rate: int = 16000


@dataclass
class ValidationConfig:
    """``[validation]``: metrics after every epoch (``pesq_wb``, ``estoi``, ``si_sdr``); DNSMOS OVRL on the
    first ``dnsmos_clips`` validation clips (0: off; it costs about a second per clip)."""

    metrics: list = field(default_factory=lambda: list(VALIDATION_METRICS))
    dnsmos_clips: int = 0


@dataclass
class ExportConfig:
    """``[export]``: also write ``model.ts`` (TorchScript) and/or ``model.onnx`` with its model card at the end."""

    torchscript: bool = False
    onnx: bool = False


@dataclass
class TrainConfig:
    """A whole training run. ``base_dir`` (not written) resolves relative paths."""

    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    base_dir: Path = field(default_factory=Path.cwd, compare=False)

    # -- paths -------------------------------------------------------------------------------------------
    def resolve(self, p: str | Path) -> Path:
        p = Path(p).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def out_dir(self) -> Path:
        return self.resolve(self.run.out_dir)

    # -- (de)serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("base_dir")
        return d

    @classmethod
    def from_dict(cls, data: dict, base_dir: Path | None = None, where: str = "config") -> "TrainConfig":
        sections = {f.name: f for f in fields(cls) if f.name != "base_dir"}
        unknown = [k for k in data if k not in sections]
        if unknown:
            raise WorkbenchError(f"{where}: unknown section(s) {', '.join(unknown)}; known: {', '.join(sections)}")
        parts = {}
        for name, f in sections.items():
            part_cls = f.default_factory
            values = data.get(name, {})
            if not isinstance(values, dict):
                raise WorkbenchError(f"{where}: [{name}] must be a table")
            known = {pf.name: pf for pf in fields(part_cls)}
            bad = [k for k in values if k not in known]
            if bad:
                raise WorkbenchError(f"{where}: unknown field(s) in [{name}]: {', '.join(bad)}; "
                                     f"known: {', '.join(known)}")
            part = part_cls()
            for key, value in values.items():
                default = getattr(part, key)
                setattr(part, key, _coerce(value, default, f"{where}: [{name}] {key}"))
            parts[name] = part
        cfg = cls(**parts, base_dir=Path(base_dir) if base_dir is not None else Path.cwd())
        cfg.check(where)
        return cfg

    def check(self, where: str = "config") -> None:
        """Raise :class:`WorkbenchError` with one line for the first value that cannot work."""
        r, m, d = self.run, self.model, self.data

        def need(ok: bool, text: str) -> None:
            if not ok:
                raise WorkbenchError(f"{where}: {text}")

        need(m.architecture in ARCHITECTURES, f"[model] architecture {m.architecture!r} is not one of "
                                              f"{', '.join(ARCHITECTURES)}")
        need(r.epochs >= 1 and r.batch_size >= 1, "[run] epochs and batch_size must be at least 1")
        need(math.isfinite(r.lr) and r.lr > 0, "[run] lr must be a positive number")
        need(r.checkpoint_every_steps >= 1, "[run] checkpoint_every_steps must be at least 1")
        need(r.threads >= 1 and r.max_steps >= 0, "[run] threads must be at least 1 and max_steps not negative")
        need(bool(d.pairs) or (bool(d.clean) and (bool(d.noise) or bool(d.noise_recording))),
             "[data] needs a pairs folder, or clean and noise folders (or a recording's noise spans) to mix")
        for span in d.noise_spans_s:
            need(isinstance(span, list) and len(span) == 2
                 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in span)
                 and 0 <= span[0] < span[1],
                 f"[data] noise_spans_s: {span!r} is not a span [start, stop] in seconds with 0 <= start < stop")
        if d.noise_recording:
            need(bool(d.noise_spans_s) != d.noise_from_pauses,
                 "[data] noise_recording needs either noise_spans_s or noise_from_pauses = true (not both)")
        else:
            need(not d.noise_spans_s and not d.noise_from_pauses,
                 "[data] noise_spans_s and noise_from_pauses need a noise_recording")
        need(len(d.snr_db) == 2 and d.snr_db[0] <= d.snr_db[1], "[data] snr_db must be [low, high]")
        need(len(d.level_db) == 2 and d.level_db[0] <= d.level_db[1] <= 0, "[data] level_db must be [low, high] "
                                                                             "dBFS, at most 0")
        need(d.crop_s > 0 and d.val_max_s > 0, "[data] crop_s and val_max_s must be positive")
        need(0 < d.val_fraction < 1, "[data] val_fraction must be between 0 and 1")
        need(d.examples_per_epoch >= 1 and d.val_clips >= 1, "[data] examples_per_epoch and val_clips must be at least 1")
        need(d.sample_rate == 16000, "[data] sample_rate: the architectures here run at 16000 Hz")
        bad = [x for x in self.validation.metrics if x not in VALIDATION_METRICS]
        need(not bad, f"[validation] unknown metric(s) {', '.join(map(str, bad))}; known: {', '.join(VALIDATION_METRICS)}")

    def to_toml(self) -> str:
        lines = ["# Speech Enhancement Workbench training run: `workbench train THIS_FILE`", ""]
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _coerce(value, default, where: str):
    """``value`` in the type of ``default`` (ints accepted for floats), else a one-line error."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list)
        if ok and default and isinstance(default[0], float):
            ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            value = [float(v) for v in value] if ok else value
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise WorkbenchError(f"{where}: expected {type(default).__name__}, got {value!r}")
    return value


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def read_config(path: str | Path) -> TrainConfig:
    """Read a TOML training config; relative paths in it are taken from its folder.

    Raises:
        WorkbenchError: unreadable file, TOML syntax error, unknown field or a value that cannot work.
    """
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkbenchError(f"{path}: not valid TOML ({exc})") from None
    return TrainConfig.from_dict(data, base_dir=path.resolve().parent, where=str(path))


def write_config(cfg: TrainConfig, path: str | Path, overwrite: bool = True) -> Path:
    """Write ``cfg`` as TOML, atomically."""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(cfg.to_toml(), encoding="utf-8")
    return path
