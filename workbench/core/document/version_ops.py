"""Editing operations as new versions of a :class:`~workbench.core.document.recording.Recording` (GUI and tests).

Each one is non-destructive: it reads the original (or the version it repairs) and adds a version with a
typed provenance through :meth:`Recording.add_version`, so it appears in the version list, can be
played, measured and exported, and is undone like any other added version.

* :func:`enhance_region` — a model over time spans only (``VersionKind.REGION``).
* :func:`repair_version` — spectral repair of a box in any version (``VersionKind.REPAIR``).
* :func:`noise_profile_model` — a classical model with the noise learned from a span.
* :class:`EnhanceRequest` and :func:`run_request` — one enhancement of a recording as asked (model path,
  channels, regions, noise profile), the one driver of the Models panel, the Edit panel, ``workbench
  enhance``, ``workbench batch`` and the batch dialog; it returns every new version, one per model output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Mapping, Sequence

import numpy as np

from ..enhance.editing import Box, enhance_regions, noise_profile_samples, repair_stft_config, spectral_repair, with_noise_profile
from ..enhance.enhancer import Enhancer, with_processing
from ..errors import WorkbenchError
from ..progress import Progress, rescaled
from ..provenance import Provenance, VersionKind
from .recording import Recording, Version


def enhance_region(recording: Recording, enhancer: Enhancer, spans_s: Sequence[tuple[float, float]], *,
                   channels: Sequence[int] | None = None, context_s: float = 1.0, crossfade_s: float = 0.020,
                   spec: str | None = None, noise_profile_s: tuple[float, float] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, Version]:
    """Run ``enhancer`` over ``spans_s`` only and add the spliced result as a ``REGION`` version.

    Raises:
        WorkbenchError: a span outside the recording; ModelError from the model.
    """
    chans = list(range(recording.source.channels)) if channels is None else [int(c) for c in channels]
    t0 = time.perf_counter()
    audio = yield from rescaled(enhance_regions(enhancer, recording.source, spans_s, channels=chans,
                                                context_s=context_s, crossfade_s=crossfade_s,
                                                where=recording.name), 0.0, 1.0, should_stop=should_stop)
    info = enhancer.info
    extra = {"regions_s": [[float(a), float(b)] for a, b in spans_s], "context_s": context_s,
             "crossfade_ms": 1000.0 * crossfade_s}
    if noise_profile_s is not None:
        extra["noise_profile_s"] = [float(noise_profile_s[0]), float(noise_profile_s[1])]
    prov = Provenance(VersionKind.REGION, parent="original", model_id=info.id, model_spec=spec or info.id,
                      model_name=info.name, model_source=info.source,
                      model_settings={"model_rate": info.sample_rate, "processing": info.processing,
                                      "latency_samples": info.latency_samples},
                      channels=tuple(chans), output="enhanced", elapsed_s=time.perf_counter() - t0, extra=extra)
    return recording.add_version(audio, recording.source.sample_rate, prov, f"{info.id} (region)", model=info)


def repair_version(recording: Recording, version: Version, box: Box, *, gain_db: float | None = None,
                   interpolate: bool = False) -> Version:
    """Spectral repair of ``box`` in ``version`` (any version, the original included), as a new version
    whose parent is ``version``.

    Raises:
        WorkbenchError: an empty box or one outside the recording.
    """
    rate = recording.source.sample_rate
    cfg = repair_stft_config(rate)
    audio = spectral_repair(version.source.read_all(), rate, box, gain_db=gain_db, interpolate=interpolate,
                            cfg=cfg, where=recording.name)
    method = "interpolate" if interpolate else f"{gain_db:+g} dB"
    p = version.provenance
    prov = Provenance(VersionKind.REPAIR, parent=version.name, model_id=p.model_id, model_spec=p.model_spec,
                      model_name=p.model_name, model_source=p.model_source, model_settings=dict(p.model_settings),
                      channels=p.channels, output=p.output,
                      extra={"box": box.to_dict(), "method": "interpolate" if interpolate else {"gain_db": gain_db},
                             "stft": {"n_fft": cfg.n_fft, "hop": cfg.hop, "window": cfg.window}})
    return recording.add_version(audio, rate, prov, f"{version.name} (repair {method})", model=version.model,
                                 settings=dict(version.settings))


#: Pauses shorter than this are left out of a profile learned from many pauses (edges of speech).
MIN_PAUSE_FOR_PROFILE_S = 0.1


def noise_profile_from_pauses(recording: Recording, enhancer: Enhancer, pauses: Sequence[tuple[float, float]],
                              channels: Sequence[int] | None = None) -> Enhancer:
    """``enhancer`` with the noise estimate learned from every pause (non-speech span) of ``recording``
    at least :data:`MIN_PAUSE_FOR_PROFILE_S` long: the mean power spectrum over their samples together.

    Raises:
        WorkbenchError/ModelError: no pause long enough, a span outside the file, or a model without profiles.
    """
    usable = [(a, b) for a, b in pauses if b - a >= MIN_PAUSE_FOR_PROFILE_S]
    if not usable:
        raise WorkbenchError(f"{recording.name}: no pause of {MIN_PAUSE_FOR_PROFILE_S:g} s or longer to learn "
                             "the noise from")
    samples = np.concatenate([noise_profile_samples(recording.source, span, recording.name, channels)
                              for span in usable])
    return with_noise_profile(enhancer, samples, recording.source.sample_rate, (usable[0][0], usable[-1][1]),
                              recording.name)


def noise_profile_model(recording: Recording, enhancer: Enhancer, span_s: tuple[float, float],
                        channels: Sequence[int] | None = None) -> Enhancer:
    """``enhancer`` with the noise estimate learned from ``span_s`` of ``recording`` (classical models).

    Raises:
        WorkbenchError/ModelError: span outside the file, shorter than one frame, or a model without profiles.
    """
    samples = noise_profile_samples(recording.source, span_s, recording.name, channels)
    return with_noise_profile(enhancer, samples, recording.source.sample_rate, span_s, recording.name)


@dataclass(frozen=True)
class EnhanceRequest:
    """One enhancement of a recording, as a person or a command asks for it.

    Attributes:
        spec: what the model was loaded from (catalogue id, chain or path), kept in the provenance.
        channels: 0-based channels to process (``None``: all).
        processing: ``"streaming"`` or ``"offline"`` for a model with both paths (``None``: its default).
        regions_s: enhance only these ``(start, end)`` spans (seconds), spliced into the original with
            ``context_s`` of model context and ``crossfade_s`` raised-cosine seams; single-output models.
        noise_profile_s: a noise-only ``(start, end)`` span the (classical) model learns its noise from.
        noise_pauses_s: or every pause (non-speech span) it learns from together
            (:func:`noise_profile_from_pauses`); used instead of ``noise_profile_s`` when given.
        normalize: ``"peak"`` or ``"loudness"``: scale each output of a whole-file run to the input's peak or
            loudness (:meth:`Recording.enhance`).
        settings: further facts for the provenance's ``model_settings`` (e.g. ``{"batch": True}``).
    """

    spec: str | None = None
    channels: tuple[int, ...] | None = None
    processing: str | None = None
    regions_s: tuple[tuple[float, float], ...] | None = None
    context_s: float = 1.0
    crossfade_s: float = 0.020
    noise_profile_s: tuple[float, float] | None = None
    noise_pauses_s: tuple[tuple[float, float], ...] | None = None
    normalize: str | None = None
    settings: Mapping = field(default_factory=dict)


def run_request(recording: Recording, enhancer: Enhancer, request: EnhanceRequest = EnhanceRequest(), *,
                should_stop: Callable[[], bool] | None = None,
                scratch: Callable[[str], Path] | None = None) -> Generator[Progress, None, list[Version]]:
    """Run ``request`` with ``enhancer`` on ``recording``; a generator of :class:`Progress` returning the new
    versions, always a list: one per model output for the whole file (:meth:`Recording.enhance`, versions
    ``<id>`` or ``<id>.<output>``), or the one ``REGION`` version of :func:`enhance_region`.

    ``scratch``: whole-file runs stream each output into a scratch file the caller owns (see
    :meth:`Recording.enhance`); region runs keep their result in memory.

    Raises:
        WorkbenchError: regions with a model of several outputs, a span outside the recording, a model
            without noise profiles; ModelError from the model.
    """
    chans = None if request.channels is None else [int(c) for c in request.channels]
    model = enhancer if request.processing is None else with_processing(enhancer, request.processing)
    extra = dict(request.settings)
    noise_span = request.noise_profile_s
    if request.noise_pauses_s:
        model = noise_profile_from_pauses(recording, model, request.noise_pauses_s, chans)
        extra["noise_profile_pauses_s"] = [[float(a), float(b)] for a, b in request.noise_pauses_s]
        noise_span = None
    elif request.noise_profile_s is not None:
        model = noise_profile_model(recording, model, request.noise_profile_s, chans)
        extra["noise_profile_s"] = [float(t) for t in request.noise_profile_s]
    if request.regions_s:
        if enhancer.info.n_outputs != 1:
            raise WorkbenchError(f"regions: model {enhancer.info.id!r} has several outputs; regions take "
                                 "single-output models")
        v = yield from enhance_region(recording, model, list(request.regions_s), channels=chans,
                                      context_s=request.context_s, crossfade_s=request.crossfade_s,
                                      spec=request.spec, noise_profile_s=noise_span, should_stop=should_stop)
        return [v]
    return (yield from recording.enhance(model, chans, spec=request.spec, settings=extra, normalize=request.normalize,
                                         should_stop=should_stop, scratch=scratch))
