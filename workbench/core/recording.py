"""The document model: a :class:`Recording` (a source file) and the :class:`Version` s made from it.

Version 0 is always the original. Each model run adds an enhanced version; a residual version
(original - enhanced) can be derived from any enhanced one. Every version has the same number of
frames as the original at its own rate (the engine guarantees alignment), so views, playback and
metrics can treat them interchangeably. Listeners (plain callables) are told when versions change;
the GUI subscribes with Qt signals, the core never knows about Qt.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .audio_io import ArraySource, AudioInfo, AudioSource, open_source
from .enhancer import EnhancerInfo


@dataclass
class Version:
    """One audible/visible variant of a recording.

    Attributes:
        name: label shown to people (``original``, ``deepfilternet3``, ``residual (deepfilternet3)``).
        kind: ``original``, ``enhanced`` or ``residual``.
        source: the samples (file-backed for the original, in memory for results).
        model: the enhancer's info for enhanced/residual versions.
        settings: what produced it (channels, chunking ...), exported with comparisons.
        elapsed_s: processing time for enhanced versions.
    """

    name: str
    kind: str
    source: AudioSource
    model: EnhancerInfo | None = None
    settings: dict = field(default_factory=dict)
    elapsed_s: float | None = None
    created: float = field(default_factory=time.time)

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
        self.versions: list[Version] = [Version("original", "original", self.source)]
        self._listeners: list[Callable[[Recording], None]] = []

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

    def add_enhanced(self, audio: np.ndarray, sample_rate: int, model: EnhancerInfo,
                     settings: dict | None = None, elapsed_s: float | None = None) -> Version:
        """Add a model's output (``(frames, channels)`` aligned with the original) as a new version."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        if audio.shape[0] != self.source.frames or sample_rate != self.source.sample_rate:
            raise ValueError(f"enhanced audio must have {self.source.frames} frames at {self.source.sample_rate} Hz, "
                             f"got {audio.shape[0]} at {sample_rate} Hz")
        v = Version(self.unique_name(model.id), "enhanced", ArraySource(audio, sample_rate), model,
                    dict(settings or {}), elapsed_s)
        self.versions.append(v)
        self._changed()
        return v

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
        v = Version(name, "residual", ArraySource(orig - enhanced, self.source.sample_rate), version.model,
                    {"residual_of": version.name, **version.settings})
        self.versions.append(v)
        self._changed()
        return v

    def remove(self, version: Version) -> None:
        if version.kind == "original":
            raise ValueError("the original cannot be removed")
        self.versions.remove(version)
        self._changed()

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
