"""A model as any process loads it: its spec and the options that wrap the loaded model.

A batch's worker processes and Ray actors start empty and load every model themselves, so what a command
asked of the model has to travel with its name. :class:`ModelSpec` is that name: the spec
(:func:`~workbench.core.enhance.registry.load_enhancer`'s built-in id, plugin id, chain or model path)
and the three options that change the loaded model rather than the files written —

* ``processing``: the path of a two-path model (:func:`~workbench.core.enhance.enhancer.with_processing`);
* ``atten_lim_db``: the model's own attenuation limit, dB
  (:func:`~workbench.core.enhance.editing.with_attenuation_limit`; DeepFilterNet's ``atten_lim``);
* ``latency``: ``"auto"`` (measure the raw output's delay) or samples at the model's rate
  (:func:`~workbench.core.enhance.enhancer.with_latency`).

:meth:`ModelSpec.load` is the one place that turns these into the enhancer, used by the process that plans
a batch and by every worker, so the same command computes the same model everywhere. It pickles (process
pool, Ray) and :attr:`ModelSpec.options` is what a batch row records of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import WorkbenchError
from .editing import with_attenuation_limit
from .enhancer import Enhancer, parse_latency, with_latency, with_processing
from .registry import load_enhancer


@dataclass(frozen=True)
class ModelSpec:
    """A model spec with the options that wrap the loaded model (``None``: as the model comes).

    Attributes:
        spec: built-in id, plugin id, chain (``a+b``) or path of a model file or folder.
        processing: ``"offline"`` or ``"streaming"`` for a model with both paths.
        atten_lim_db: the model's own attenuation limit, dB above 0.
        latency: ``"auto"`` or a whole number of samples at the model's rate (see :func:`parse_latency`).
    """

    spec: str
    processing: str | None = None
    atten_lim_db: float | None = None
    latency: str | int | None = None

    def __post_init__(self):
        if self.latency is not None:
            object.__setattr__(self, "latency", parse_latency(self.latency))
        if self.atten_lim_db is not None:
            object.__setattr__(self, "atten_lim_db", float(self.atten_lim_db))

    @classmethod
    def of(cls, spec: str | ModelSpec) -> ModelSpec:
        """``spec`` itself, or a plain spec string without options."""
        return spec if isinstance(spec, ModelSpec) else cls(str(spec))

    @property
    def options(self) -> dict:
        """The options that are set, JSON-able (``{}`` for a plain spec): what a batch row's model identity
        records, so a resumed batch with other options recomputes."""
        return {k: v for k, v in (("processing", self.processing), ("atten_lim_db", self.atten_lim_db),
                                  ("latency", self.latency)) if v is not None}

    def wrap(self, enhancer: Enhancer) -> Enhancer:
        """``enhancer`` (loaded from :attr:`spec`) with the options applied, in the order processing,
        attenuation limit, latency (a latency override is about the path the model runs on).

        Raises:
            WorkbenchError: the model lacks that path, has no attenuation limit of its own, or aligns its own
                output (one line); ``enhancer`` is closed then.
        """
        try:
            if self.processing is not None:
                enhancer = with_processing(enhancer, self.processing)
            if self.atten_lim_db is not None:
                enhancer = with_attenuation_limit(enhancer, self.atten_lim_db)
            if self.latency is not None:
                enhancer = with_latency(enhancer, self.latency)
        except WorkbenchError:
            enhancer.close()
            raise
        return enhancer

    def load(self, *, isolate: bool = False) -> Enhancer:
        """Load :attr:`spec` (:func:`load_enhancer`, ``isolate`` as there) and apply the options (:meth:`wrap`)."""
        return self.wrap(load_enhancer(self.spec, isolate=isolate))
