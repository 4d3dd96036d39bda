"""Error types that carry the file and the problem, so every front end can print one clear line."""

from __future__ import annotations

from pathlib import Path


class WorkbenchError(Exception):
    """Base class of every error the workbench reports to a person instead of a traceback."""


class AudioFileError(WorkbenchError):
    """A file that cannot be used as audio.

    Attributes:
        path: the offending file.
        problem: a short human sentence, e.g. "truncated data: header promises 48000 frames, file holds 1200".
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NonFiniteAudioError(AudioFileError):
    """The file decodes, but holds NaN or Inf samples. Repaired only when asked (``repair=True``)."""

    def __init__(self, path: str | Path, nan_count: int, inf_count: int, first_frame: int):
        self.nan_count = nan_count
        self.inf_count = inf_count
        self.first_frame = first_frame
        super().__init__(
            path,
            f"contains {nan_count} NaN and {inf_count} Inf samples (first at frame {first_frame}); "
            "open it with repair enabled (--repair) to replace them with 0",
        )


class ModelError(WorkbenchError):
    """A model that cannot be loaded or that misbehaved while running (NaN output, wrong shape, exception)."""


class Cancelled(WorkbenchError):
    """Raised inside a worker generator when the user asked to stop."""
