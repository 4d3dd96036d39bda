"""Chains: several enhancers applied one after another as one model (``-m wpe-dereverb+deepfilternet3``).

Each step runs through the engine (:func:`workbench.core.enhance.enhancer.enhance`) on the previous step's
output at the recording's rate, so every step's latency is removed by the engine before the next step
sees the audio: the chain's output is as sample-aligned with the input as a single model's. The chain
itself reports the sum of its steps' real-time latencies (what a live deployment would add).

A chain is named by its step ids joined with ``+``; :func:`parse_chain` turns such a spec into steps
with one clear error for an unknown step.
"""

from __future__ import annotations

from typing import Callable, Generator, Sequence

import numpy as np

from ..audio.audio_io import ArraySource, AudioSource
from .enhancer import Enhancer, EnhancerInfo, enhance
from ..errors import ModelError
from ..progress import Progress, rescaled, run_to_end

SEPARATOR = "+"


def is_chain_spec(spec: str) -> bool:
    return isinstance(spec, str) and SEPARATOR in spec


def parse_chain(spec: str, load: Callable[[str], Enhancer], known: Callable[[], Sequence[str]]) -> "ChainEnhancer":
    """Build the chain ``A+B+...`` with ``load(step_id)``.

    Raises:
        ModelError: an empty step or one that cannot be loaded, naming the step and its position.
    """
    parts = [p.strip() for p in spec.split(SEPARATOR)]
    if len(parts) < 2 or any(not p for p in parts):
        raise ModelError(f"chain {spec!r}: expected model ids joined by '+', like wpe-dereverb+deepfilternet3")
    steps: list[Enhancer] = []
    try:
        for i, part in enumerate(parts):
            try:
                steps.append(load(part))
            except ModelError as exc:
                if part not in known():
                    raise ModelError(f"chain {spec!r}: step {i + 1} {part!r} is not a known model; "
                                     f"known ids: {', '.join(known())}") from None
                raise ModelError(f"chain {spec!r}: step {i + 1} {part!r}: {exc}") from None
    except ModelError:
        for s in steps:
            s.close()
        raise
    return ChainEnhancer(steps)


class ChainEnhancer(Enhancer):
    """Steps applied in order; see the module docstring.

    Args:
        steps: two or more enhancers.
        name: a person's name for the chain (saved chains); default the step names joined by arrows.
    """

    def __init__(self, steps: Sequence[Enhancer], name: str | None = None):
        if len(steps) < 1:
            raise ModelError("a chain needs at least one model")
        self.steps = list(steps)
        infos = [s.info for s in self.steps]
        for i in infos:
            if i.n_outputs != 1:
                raise ModelError(f"chain step {i.id!r} has {i.n_outputs} outputs ({', '.join(i.outputs)}); "
                                 "a chain passes one signal from step to step")
        rate = max(i.sample_rate for i in infos)
        latency_s = sum(i.latency_samples / i.sample_rate for i in infos)
        causal = None if any(i.causal is None for i in infos) else all(i.causal for i in infos)
        params = [i.parameters for i in infos]
        self.info = EnhancerInfo(
            id=SEPARATOR.join(i.id for i in infos), name=name or " \u2192 ".join(i.name for i in infos),
            description="Chain: " + "; then ".join(f"{i.name}" for i in infos) + ". Each step's latency is "
                        "removed before the next step.",
            sample_rate=rate, causal=causal, latency_samples=int(round(latency_s * rate)), family="chain",
            processing="offline", source="chain", parameters=None if None in params else sum(params),
            extra={"steps": [i.id for i in infos],
                   "receptive_field_s": sum(float(i.extra.get("receptive_field_s", 0.0) or 0.0) for i in infos)},
            any_rate=True)

    def enhance_source(self, source: AudioSource, channels: Sequence[int],
                       out: np.ndarray) -> Generator[Progress, None, np.ndarray]:
        """Engine hook: run every step over ``source``'s ``channels`` and write the result into ``out``
        ``(frames, len(channels))``; progress is split evenly over the steps."""
        current: AudioSource = source
        chans: list[int] | None = list(channels)
        k = len(self.steps)
        for i, step in enumerate(self.steps):
            y = yield from rescaled(enhance(step, current, channels=chans), i / k, 1 / k,
                                    f"step {i + 1}/{k} {step.info.id}: ")
            current, chans = ArraySource(y[0], source.sample_rate), None
        out[:] = current.read_all()
        return out

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        """Mono ``(n,)`` at the chain's rate through every step (the engine uses :meth:`enhance_source`)."""
        result = run_to_end(self.enhance_source(ArraySource(audio, self.info.sample_rate), [0],
                                                np.zeros((len(audio), 1), np.float32)))
        return result[:, 0]

    def close(self) -> None:
        for s in self.steps:
            s.close()
