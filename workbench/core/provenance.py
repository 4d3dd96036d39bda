"""What produced a version: its kind (an Enum) and the typed record of how it was made.

Other features add kinds by adding a member to :class:`VersionKind` (``MIXED = "mixed"``,
``REGION = "region"`` ...); everything that stores or shows provenance (sessions, the comparison
export, the version list) works from the member's ``value`` and needs no other change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


class VersionKind(str, Enum):
    """Kind of a version. A ``str`` Enum, so ``version.kind == "enhanced"`` keeps working.

    Members: ``ORIGINAL`` (the file as read), ``ENHANCED`` (one output of a model run; multi-output models
    give one ENHANCED version per output), ``RESIDUAL`` (original - enhanced, what a model removed),
    ``REGION``, ``REPAIR``, ``CHAIN`` (the editor's operations), ``ORACLE`` (an oracle mask applied
    with the clean reference), ``SWAP`` (one signal's magnitude with another's phase), ``RECONSTRUCTION``
    (a phase reconstructed from a magnitude by Griffin-Lim); the last three come from the phase lab
    (:mod:`workbench.core.workflows.phaselab`). A version's strength (wet/dry) is not a kind: it is a setting of a
    model result, kept in ``provenance.extra["strength"]``.
    """

    ORIGINAL = "original"
    ENHANCED = "enhanced"
    RESIDUAL = "residual"
    #: a model run on time regions only, spliced into the original (``extra``: spans, context, crossfade)
    REGION = "region"
    #: spectral repair of a parent version (``extra``: box, method)
    REPAIR = "repair"
    #: a chain of models run as one (``model_id`` ``A+B``; ``extra``: steps)
    CHAIN = "chain"
    ORACLE = "oracle"
    SWAP = "swap"
    RECONSTRUCTION = "reconstruction"

    @property
    def is_result(self) -> bool:
        """A version made by processing (enhanced, region, repair, chain, phase lab): not the original, not
        a residual."""
        return self not in (VersionKind.ORIGINAL, VersionKind.RESIDUAL)

    def __str__(self) -> str:  # f"{kind}" prints "enhanced", not "VersionKind.ENHANCED"
        return self.value

    @classmethod
    def parse(cls, value: "str | VersionKind") -> "VersionKind":
        """The member for ``value``; raises ValueError naming the known kinds."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown version kind {value!r}; known: {', '.join(m.value for m in cls)}") from None


@dataclass(frozen=True)
class Provenance:
    """How a version was made (stored in sessions and comparison exports).

    Attributes:
        kind: the :class:`VersionKind`.
        parent: name of the version it was derived from (``None`` for the original; ``"original"`` for a
            model run on the original; the enhanced version's name for a residual).
        model_id: the enhancer's id (``deepfilternet3``, a plugin id, ``gtcrn:model.onnx``), or ``None``.
        model_spec: what the catalogue loads it from again: a built-in/plugin id or a model file path.
        model_name: human name of the model.
        model_source: ``built-in``, ``plugin:<dist>`` or the file path (``EnhancerInfo.source``).
        model_settings: the run's settings (input/model rate, processing, latency samples, chunking ...).
        channels: 0-based source channels the version holds, in column order (``None`` = all).
        output: the model output it holds (``"enhanced"`` for single-output models; ``"speech"``,
            ``"noise"`` ... for multi-output ones), ``None`` when not a model output.
        elapsed_s: processing time of the run in seconds (``None`` when not measured).
        extra: kind-specific facts other features add (region bounds, mix weights ...); JSON-serialisable.
    """

    kind: VersionKind
    parent: str | None = None
    model_id: str | None = None
    model_spec: str | None = None
    model_name: str | None = None
    model_source: str | None = None
    model_settings: dict = field(default_factory=dict)
    channels: tuple[int, ...] | None = None
    output: str | None = None
    elapsed_s: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict (``kind`` as its string value, ``channels`` as a list)."""
        d = asdict(self)
        d["kind"] = self.kind.value
        d["channels"] = None if self.channels is None else list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Provenance":
        """Inverse of :meth:`to_dict`; unknown keys are ignored (files from newer versions still load)."""
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        kw["kind"] = VersionKind.parse(kw.get("kind", "original"))
        if kw.get("channels") is not None:
            kw["channels"] = tuple(int(c) for c in kw["channels"])
        kw["model_settings"] = dict(kw.get("model_settings") or {})
        kw["extra"] = dict(kw.get("extra") or {})
        return cls(**kw)
