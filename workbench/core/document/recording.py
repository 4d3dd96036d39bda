"""The document model: a :class:`Recording` (a source file) and the :class:`Version` s made from it.

Version 0 is always the original. Every other version is added by :meth:`Recording.add_version` with a
typed :class:`~workbench.core.provenance.Provenance`; :meth:`Recording.enhance` (the one enhancement
call of the GUI, the CLI and batch export) adds one version per model output, and a residual version
(original - enhanced) can be derived from any enhanced one. Every version has the same number of
frames as the original at its own rate (the engine guarantees alignment), so views, playback and
metrics can treat them interchangeably. Listeners (plain callables) are told when versions change;
the GUI subscribes with Qt signals, the core never knows about Qt.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Generator, Sequence

import numpy as np

from ..audio.audio_io import ArraySource, AudioInfo, AudioSource, ScratchSource, open_source
from ..enhance.enhancer import Enhancer, EnhancerInfo, enhance, enhance_outputs
from ..progress import Progress, rescaled
from ..enhance.editing import Strength, StrengthSource
from ..enhance.level import RunningLevel, level_check, normalise_to_input
from ..errors import Cancelled, ModelError
from ..history import AddVersion, Command, History, RemoveVersion, SetStrength
from ..provenance import Provenance, VersionKind


@dataclass
class Version:
    """One audible/visible variant of a recording.

    Attributes:
        name: label shown to people (``original``, ``deepfilternet3``, ``residual (deepfilternet3)``,
            ``sepformer.speech`` for one output of a multi-output model).
        kind: a :class:`VersionKind` (a ``str`` Enum: compares equal to ``"enhanced"`` ...).
        source: the samples (file-backed for the original, in memory for results).
        model: the enhancer's info for enhanced/residual versions.
        settings: what produced it (channels, chunking ...), exported with comparisons.
        elapsed_s: processing time for enhanced versions.
        provenance: the typed record of how it was made (derived from the fields above when not given).
        saved: stored in a session file or exported since it was made (Quit asks about unsaved ones).
    """

    name: str
    kind: VersionKind
    source: AudioSource
    model: EnhancerInfo | None = None
    settings: dict = field(default_factory=dict)
    elapsed_s: float | None = None
    created: float = field(default_factory=time.time)
    provenance: Provenance | None = None
    saved: bool = False

    def __post_init__(self) -> None:
        self.kind = VersionKind.parse(self.kind)
        if self.provenance is None:
            chans = self.settings.get("channels")
            m = self.model
            self.provenance = Provenance(
                self.kind, parent=None if self.kind == VersionKind.ORIGINAL else self.settings.get("residual_of", "original"),
                model_id=m.id if m else None, model_spec=self.settings.get("model_spec"),
                model_name=m.name if m else None, model_source=m.source if m else None,
                model_settings={k: v for k, v in self.settings.items() if k not in ("channels", "residual_of")},
                channels=None if chans is None else tuple(int(c) for c in chans),
                output=self.settings.get("output", "enhanced" if self.kind == VersionKind.ENHANCED else None),
                elapsed_s=self.elapsed_s)
        elif self.provenance.kind != self.kind:
            raise ValueError(f"version {self.name!r}: kind {self.kind.value} but provenance says "
                             f"{self.provenance.kind.value}")

    @property
    def sample_rate(self) -> int:
        return self.source.sample_rate

    @property
    def label(self) -> str:
        return self.name


class Recording:
    """A source file and its versions. The file is opened read-only and never modified."""

    def __init__(self, path: str | Path, *, repair: bool = False, source: AudioSource | None = None):
        self.path = Path(path)
        self.repair = repair
        self.source = source if source is not None else open_source(self.path, repair=repair, check_finite=False)
        self.versions: list[Version] = [Version("original", VersionKind.ORIGINAL, self.source, saved=True)]
        self._listeners: list[Callable[[Recording], None]] = []
        #: set by :meth:`close`: running :meth:`enhance` generators stop at their next step and add nothing.
        self.closed = False
        self._lock = threading.Lock()   # closing vs. adding a version from a worker thread
        #: undo/redo of every add, remove and strength change (see :mod:`workbench.core.history`)
        self.history = History()
        self._strength_listeners: list[Callable[[Recording, Version], None]] = []

    @classmethod
    def from_array(cls, audio: np.ndarray, sample_rate: int, name: str = "untitled") -> Recording:
        return cls(Path(name), source=ArraySource(audio, sample_rate))

    @property
    def info(self) -> AudioInfo:
        src = self.source
        return getattr(src, "info", AudioInfo(str(self.path), src.sample_rate, src.channels, src.frames,
                                              "FLOAT", "memory"))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def original(self) -> Version:
        return self.versions[0]

    def subscribe(self, listener: Callable[[Recording], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn(self)

    def unique_name(self, base: str) -> str:
        names = {v.name for v in self.versions}
        if base not in names:
            return base
        i = 2
        while f"{base} #{i}" in names:
            i += 1
        return f"{base} #{i}"

    def add_version(self, audio: np.ndarray | AudioSource, sample_rate: int, provenance: Provenance,
                    name: str | None = None, *, model: EnhancerInfo | None = None,
                    settings: dict | None = None) -> Version:
        """Add a version: ``audio`` ``(frames,)``/``(frames, channels)`` aligned with the original, or an
        :class:`AudioSource` of that length (a result kept in a scratch file, read block by block).

        The one generic way to add a version of any kind (other than the original). ``name`` defaults
        to the provenance's model id (or its kind), made unique (``name #2``). Listeners are told.

        Raises:
            ValueError: wrong length or rate (every version has the original's frames at its rate),
                or a recording that was closed.
        """
        if isinstance(audio, AudioSource):
            source, frames = audio, audio.frames
        else:
            audio = np.asarray(audio, np.float32)
            if audio.ndim == 1:
                audio = audio[:, None]
            frames = audio.shape[0] if audio.ndim == 2 else -1
            source = None
        if frames != self.source.frames or sample_rate != self.source.sample_rate:
            raise ValueError(f"a version of {self.name} must have {self.source.frames} frames at "
                             f"{self.source.sample_rate} Hz, got {frames} at {sample_rate} Hz")
        if provenance.kind == VersionKind.ORIGINAL:
            raise ValueError("a recording has exactly one original version")
        base = name or provenance.model_id or provenance.kind.value
        settings = dict(settings if settings is not None else provenance.model_settings)
        if provenance.channels is not None:
            settings.setdefault("channels", list(provenance.channels))
        if provenance.kind == VersionKind.RESIDUAL and provenance.parent:
            settings.setdefault("residual_of", provenance.parent)
        with self._lock:
            if self.closed:
                raise ValueError(f"{self.name}: the recording was closed; no version is added")
            v = Version(self.unique_name(base), provenance.kind, source or ArraySource(audio, sample_rate), model,
                        settings, provenance.elapsed_s, provenance=provenance)
            self.versions.append(v)
            self.history.record(AddVersion(self, v, len(self.versions) - 1))
        self._changed()
        return v

    def add_enhanced(self, audio: np.ndarray | AudioSource, sample_rate: int, model: EnhancerInfo,
                     settings: dict | None = None, elapsed_s: float | None = None, *,
                     output: str = "enhanced", name: str | None = None, parent: str = "original",
                     extra: dict | None = None) -> Version:
        """Add a model's output (``(frames, channels)`` aligned with the original) as a new version
        (``extra``: facts for ``provenance.extra``, e.g. the output level check)."""
        settings = dict(settings or {})
        chans = settings.get("channels")
        kind = VersionKind.CHAIN if model.family == "chain" else VersionKind.ENHANCED
        prov = Provenance(kind, parent=parent, model_id=model.id,
                          model_spec=settings.get("model_spec"), model_name=model.name, model_source=model.source,
                          model_settings={k: v for k, v in settings.items() if k != "channels"},
                          channels=None if chans is None else tuple(int(c) for c in chans), output=output,
                          elapsed_s=elapsed_s, extra=dict(extra or {}))
        return self.add_version(audio, sample_rate, prov, name or model.id, model=model, settings=settings)

    def enhance(self, enhancer: Enhancer, channels: Sequence[int] | None = None, *, spec: str | None = None,
                block_s: float = 1.0, settings: dict | None = None, normalize: str | None = None,
                should_stop: Callable[[], bool] | None = None,
                scratch: Callable[[str], Path] | None = None) -> Generator[Progress, None, list[Version]]:
        """Run ``enhancer`` on this recording; a generator of :class:`Progress` returning the new versions.

        The one enhancement call (Models panel, ``workbench enhance``, batch export), so provenance is
        the same on every path. A single-output model adds one version named by its id
        (``deepfilternet3``); a model with outputs ``("speech", "noise")`` adds ``<id>.speech`` and
        ``<id>.noise``. Versions are added only after the whole run succeeded, and never once the
        recording was closed (:class:`Cancelled` is raised instead) or ``should_stop()`` said so.

        Args:
            channels: 0-based channels to process (default all); each version has one column per channel.
            spec: what the catalogue loads the model from (id or path), stored in the provenance.
            settings: extra facts stored in ``provenance.model_settings`` (e.g. ``{"batch": True}``).
            normalize: ``"peak"`` or ``"loudness"`` scales each output to the input's peak or BS.1770
                loudness (:func:`~workbench.core.enhance.level.normalise_to_input`).
            scratch: ``scratch(output name)`` gives an empty file that the caller owns and removes later:
                the model's output is streamed into it and the version reads it block by block
                (:class:`~workbench.core.audio.audio_io.ScratchSource`), so memory stays that of a few
                blocks however long the recording is; levels and loudness are measured as it streams.

        Every output's level is checked against the input (:func:`~workbench.core.enhance.level.level_check`)
        and recorded in ``provenance.extra["level"]`` (``gain_db``, ``output_peak_dbfs``, ``implausible``,
        and ``normalized``/``normalize_gain_db`` when scaled), so the window can mark an implausible version.
        """
        chans = list(range(self.source.channels)) if channels is None else [int(c) for c in channels]
        stop = (lambda: self.closed or (should_stop is not None and should_stop()))
        t0 = time.perf_counter()
        if scratch is not None:
            outputs, levels = yield from self._enhance_to_scratch(enhancer, chans, block_s, normalize, scratch, stop)
        else:
            outputs = yield from rescaled(enhance_outputs(enhancer, self.source, channels=chans, block_s=block_s),
                                          0.0, 1.0, should_stop=stop)
        elapsed = time.perf_counter() - t0
        info = enhancer.info
        run_settings = {"model_spec": spec if spec is not None else info.id, "input_rate": self.source.sample_rate,
                        "model_rate": info.sample_rate, "processing": info.processing,
                        "latency_samples": info.latency_samples, **dict(settings or {})}
        if info.extra.get("latency measured"):
            run_settings["latency_measured"] = info.extra["latency measured"]
        if normalize is not None:
            run_settings["normalize"] = normalize
        if scratch is None:
            levels = self._levels_in_memory(outputs, chans, normalize)
        multi = len(outputs) > 1
        added = []
        for output, audio in outputs.items():
            if stop():
                for v in added:  # a close between two outputs: nothing of this run stays
                    self.remove(v)
                raise Cancelled(f"{self.name}: cancelled; no version added")
            try:
                added.append(self.add_enhanced(audio, self.source.sample_rate, info,
                                               {**run_settings, "channels": chans, "output": output}, elapsed,
                                               output=output, name=f"{info.id}.{output}" if multi else info.id,
                                               extra={"level": levels[output]}))
            except ValueError:
                if self.closed:
                    raise Cancelled(f"{self.name}: closed during the run; no version added") from None
                raise
        return added

    def _levels_in_memory(self, outputs: dict, chans: list[int], normalize: str | None) -> dict:
        """Each output's level check against the input (scaled in ``outputs`` when ``normalize``)."""
        original = self.source.read_all()[:, chans]
        levels = {}
        for output, audio in list(outputs.items()):
            level = level_check(original, audio).to_dict()
            if normalize is not None:
                audio, gain_db = normalise_to_input(original, audio, self.source.sample_rate, normalize)
                outputs[output] = audio
                level.update(normalized=normalize, normalize_gain_db=gain_db)
            levels[output] = level
        return levels

    def _enhance_to_scratch(self, enhancer: Enhancer, chans: list[int], block_s: float, normalize: str | None,
                            scratch: Callable[[str], Path], stop: Callable[[], bool]
                            ) -> Generator[Progress, None, tuple[dict, dict]]:
        """The model's outputs streamed into scratch files, with their levels measured on the way:
        ``({output: ScratchSource}, {output: level facts})``. The input is read once more, block by block,
        for its own level."""
        src, rate = self.source, self.source.sample_rate
        names = list(enhancer.info.outputs)
        files = [scratch(name) for name in names]
        loud = normalize == "loudness"
        measured = [RunningLevel(src.frames, rate, len(chans), loud) for _ in names]
        handles = [open(f, "wb") for f in files]
        written = 0

        def sink(first: int, block: np.ndarray) -> None:  # block: (outputs, m, channels)
            nonlocal written
            for fh, level, y in zip(handles, measured, block):
                y = np.ascontiguousarray(y, np.float32)
                fh.write(y.tobytes())
                level.add(y)
            written = first + block.shape[1]

        try:
            yield from rescaled(enhance(enhancer, src, channels=chans, block_s=block_s, sink=sink),
                                0.0, 0.95, should_stop=stop)
        finally:
            for fh in handles:
                fh.close()
        if written != src.frames:
            raise ModelError(f"model {enhancer.info.id!r} gave {written} of {src.frames} frames")
        original = RunningLevel(src.frames, rate, len(chans), loud)
        for pos, block in src.blocks():
            original.add(block[:, chans])
            if stop():
                raise Cancelled(f"{self.name}: cancelled; no version added")
            yield Progress(0.95 + 0.05 * (pos + len(block)) / max(src.frames, 1), f"{self.name}: level")
        outputs, levels = {}, {}
        for name, path, level in zip(names, files, measured):
            facts = level.check_against(original).to_dict()
            gain_db = 0.0
            if normalize is not None:
                gain_db = level.normalise_gain_db(original, normalize)
                facts.update(normalized=normalize, normalize_gain_db=round(gain_db, 4))
            outputs[name] = ScratchSource(path, rate, len(chans), src.frames, 10.0 ** (gain_db / 20.0))
            levels[name] = facts
        return outputs, levels

    def residual_of(self, version: Version) -> Version:
        """The residual ``original - enhanced`` (what the model removed), added once and reused."""
        name = f"residual ({version.name})"
        for v in self.versions:
            if v.name == name:
                return v
        enhanced = version.source.read_all()
        orig = self.source.read_all()
        channels = version.settings.get("channels")
        if channels is not None:
            orig = orig[:, list(channels)]
        p = version.provenance
        prov = Provenance(VersionKind.RESIDUAL, parent=version.name, model_id=p.model_id, model_spec=p.model_spec,
                          model_name=p.model_name, model_source=p.model_source,
                          model_settings=dict(p.model_settings), channels=p.channels, output=p.output)
        return self.add_version(orig - enhanced, self.source.sample_rate, prov, name, model=version.model,
                                settings={"residual_of": version.name, **version.settings})

    def unsaved_versions(self) -> list[Version]:
        """Versions neither stored in a session nor exported since they were made."""
        return [v for v in self.versions if not v.saved]

    def close(self) -> None:
        """Mark the recording closed (running enhancements stop and add nothing) and release its file."""
        with self._lock:
            self.closed = True
        close = getattr(self.source, "close", None)
        if close is not None:
            close()

    def remove(self, version: Version) -> None:
        if version.kind == VersionKind.ORIGINAL:
            raise ValueError("the original cannot be removed")
        self.history.push(RemoveVersion(self, version, self.versions.index(version)))

    # ------------------------------------------------------------------ strength and undo
    def subscribe_strength(self, listener: Callable[[Recording, Version], None]) -> None:
        """``listener(recording, version)`` after a version's strength changed (playback follows it live;
        the version list itself did not change, so :meth:`subscribe` listeners are not called)."""
        self._strength_listeners.append(listener)

    def strength_of(self, version: Version) -> Strength:
        src = version.source
        return src.strength if isinstance(src, StrengthSource) else Strength()

    def wet_source(self, version: Version) -> AudioSource:
        """The model's own output of ``version`` (its samples at full strength)."""
        src = version.source
        return src.wet if isinstance(src, StrengthSource) else src

    def set_strength(self, version: Version, strength: Strength, *, record: bool = True) -> None:
        """Set how much of a model's effect ``version`` keeps: its samples become
        ``wet + (1 - mix) * (original - wet)`` for views, playback, metrics and export (see
        :mod:`workbench.core.enhance.editing`); the strength is stored in ``provenance.extra["strength"]``.

        Raises:
            ValueError: the original or a residual (they have no strength).
        """
        if version.kind in (VersionKind.ORIGINAL, VersionKind.RESIDUAL):
            raise ValueError(f"{version.name}: only model results have a strength")
        before = self.strength_of(version)
        if before == strength:
            return
        # A new source object per strength: views cache tiles by source, so they redraw the new mix.
        chans = version.settings.get("channels")
        version.source = StrengthSource(self.wet_source(version), self.source, chans, strength)
        extra = {k: v for k, v in version.provenance.extra.items() if k != "strength"}
        if not strength.full:
            extra["strength"] = strength.to_dict()
        version.provenance = replace(version.provenance, extra=extra)
        if record:
            self.history.record(SetStrength(self, version, before, strength))
        for fn in list(self._strength_listeners):
            fn(self, version)

    def undo(self) -> Command | None:
        """Undo the last add/remove/strength command; returns it (``None`` when there is nothing to undo)."""
        return self.history.undo()

    def redo(self) -> Command | None:
        """Redo the last undone command; returns it (``None`` when there is nothing to redo)."""
        return self.history.redo()

    # Used by the commands of :mod:`workbench.core.history` (not recorded themselves).
    def _insert(self, version: Version, index: int) -> None:
        if version not in self.versions:
            self.versions.insert(min(index, len(self.versions)), version)
        self._changed()

    def _take_out(self, version: Version) -> None:
        if version in self.versions:
            self.versions.remove(version)
        self._changed()

    def version_or_none(self, name: str) -> Version | None:
        return next((v for v in self.versions if v.name == name), None)

    def version(self, name: str) -> Version:
        for v in self.versions:
            if v.name == name:
                return v
        raise KeyError(name)


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (exported with comparisons so results can be traced to inputs)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
