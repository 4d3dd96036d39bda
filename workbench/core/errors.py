"""Error types that carry the file and the problem, so every front end can print one clear line."""

from __future__ import annotations

import stat
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


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line for an exception raised by third-party code (a model, a library).

    TorchScript wraps a model's error in an interpreter traceback ("The following operation failed in
    the TorchScript interpreter. ... RuntimeError: boom"): its last line is the one that says what
    happened. Otherwise the first non-empty line is kept. At most ``limit`` characters.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if len(lines) > 1 and ("TorchScript interpreter" in lines[0] or lines[0].startswith("Traceback")):
        text = lines[-1]
    if text.startswith("[ONNXRuntimeError]"):
        text = text.split(" : ", 3)[-1]  # "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : msg" -> "msg"
    if "Status Message: " in text:
        # "... while running Reshape node. Name:'' Status Message: /onnxruntime_src/...h:91 fn(...) cond
        # was false. The input tensor cannot be reshaped ..." -> the node and the plain sentence.
        head, detail = text.split("Status Message: ", 1)
        if " was false. " in detail:
            detail = detail.split(" was false. ", 1)[1]
        text = head.split(". Name:")[0].rstrip(". ") + ": " + detail
    name = type(exc).__name__
    if not text.startswith(name) and ":" not in text[:40]:
        text = f"{name}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def node_kind(st_mode: int) -> str:
    """What a file-system node that is not a regular file is, in words ("a named pipe (FIFO)", ...).
    (Here rather than in :mod:`workbench.core.jsonfile`, its first user: the output checks that need it
    then do not load the JSON schema machinery with every command.)"""
    if stat.S_ISDIR(st_mode):
        return "a folder"
    if stat.S_ISFIFO(st_mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(st_mode) or stat.S_ISBLK(st_mode):
        return "a device node"
    if stat.S_ISSOCK(st_mode):
        return "a socket"
    return "not a regular file"
