"""Undo and redo for the operations that create, remove or change a version (or its strength).

A :class:`History` belongs to one :class:`~workbench.core.document.recording.Recording`, which records every
``add_version`` / ``remove`` / ``set_strength`` in it. An undo applies the inverse (an added version is
taken out, a removed one put back at its place, a strength set back) and moves the step to the redo
stack; a new operation clears the redo stack. Versions taken out by an undo are kept (with their
samples) so that redo restores the same object. No Qt here: the GUI binds Ctrl+Z / Ctrl+Shift+Z.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    """One undoable operation.

    Attributes:
        action: ``"add"``, ``"remove"`` or ``"strength"``.
        version: the Version concerned.
        index: its place in ``recording.versions`` (add/remove).
        before, after: strengths (``"strength"`` steps).
    """

    action: str
    version: Any
    index: int = -1
    before: Any = None
    after: Any = None

    @property
    def label(self) -> str:
        name = getattr(self.version, "name", "?")
        if self.action == "add":
            return f"add {name}"
        if self.action == "remove":
            return f"remove {name}"
        return f"strength of {name} {100 * self.before.mix:.0f}% \u2192 {100 * self.after.mix:.0f}%"


class History:
    """Undo/redo stacks of :class:`Step`; the recording applies them (see :meth:`Recording.undo`)."""

    def __init__(self, limit: int = 200):
        self.limit = limit
        self.undo_steps: list[Step] = []
        self.redo_steps: list[Step] = []

    def record(self, step: Step) -> None:
        self.undo_steps.append(step)
        if len(self.undo_steps) > self.limit:
            del self.undo_steps[0]
        self.redo_steps.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_steps)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_steps)

    def undo_label(self) -> str | None:
        return self.undo_steps[-1].label if self.undo_steps else None

    def redo_label(self) -> str | None:
        return self.redo_steps[-1].label if self.redo_steps else None
