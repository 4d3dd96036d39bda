"""Progress reports of long-running core generators, and the two ways to drive them.

Every layer may use these: a core generator yields :class:`Progress` between steps and returns its
result; a caller either drives it to the end (:func:`run_to_end`) or embeds it in a larger generator
(:func:`rescaled`). Closing the generator is how work is cancelled (its ``finally`` blocks release what it
holds), so a GUI worker needs nothing else to offer Cancel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """A progress report yielded by long-running core generators."""

    fraction: float
    message: str = ""


def run_to_end(gen: Generator[Progress, None, object],
               on_progress: Callable[[Progress], None] | None = None,
               should_stop: Callable[[], bool] | None = None):
    """Drive a core generator to completion and return its result (CLI, GUI workers, tests).

    ``should_stop`` is asked between steps; when it says so the generator is closed (its ``finally``
    blocks release what it holds) and :class:`Cancelled` is raised.
    """
    steps = rescaled(gen, 0.0, 1.0, should_stop=should_stop)
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(p)


def rescaled(gen: Generator[Progress, None, object], start: float, span: float, label: str = "",
             should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, object]:
    """Re-yield a sub-task's progress mapped onto ``[start, start + span]`` and return its result.

    Used as ``result = yield from rescaled(sub_generator, ...)`` inside a larger core generator.
    ``should_stop`` works as in :func:`run_to_end`.
    """
    try:
        while True:
            if should_stop is not None and should_stop():
                raise Cancelled("cancelled on request")
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            yield Progress(start + span * p.fraction, f"{label}{p.message}")
    finally:
        gen.close()
