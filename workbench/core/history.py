"""Undo and redo as a history of commands.

Every change a person can take back is a :class:`Command`: it has a ``name`` shown in the Edit menu and
the status bar, and knows how to :meth:`~Command.do` and :meth:`~Command.undo` itself. A recording
records the commands for adding, removing and re-weighting (strength) its versions; a
:class:`History` keeps them in two stacks. An undo runs the command's ``undo`` and moves it to the redo
stack; a new command clears the redo stack. Versions taken out by an undo are kept (with their samples)
so that redo restores the same object.

Each command also says which version a person should look at after it ran in either direction
(:meth:`~Command.shown_after`): after undoing a repair the version that was repaired, after redoing it
the repaired one. No Qt here: the GUI binds Ctrl+Z / Ctrl+Shift+Z.

A history is saved with a session as plain values (:func:`history_to_value`, :func:`history_from_value`):
each command becomes ``{"command": kind, ...}`` whose versions are names given by the caller (a saved
session refers to a version by its place in the recording's list or in the list of versions only the
history still holds), so that undo and redo work the same after the session is opened again.
"""

from __future__ import annotations

from typing import Any


class Command:
    """One undoable change. Subclasses implement :meth:`do`, :meth:`undo` and :meth:`shown_after`."""

    #: what the change is, in words ("add deepfilternet3", "strength of gtcrn 100% → 60%")
    name: str = ""

    def do(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def undo(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def shown_after(self, undone: bool) -> Any:
        """The version to show once the command was undone (``undone``) or (re)done; ``None``: no choice."""
        return None

    @property
    def label(self) -> str:
        return self.name

    #: the name of the command's kind in a saved history (see :data:`COMMAND_KINDS`)
    kind: str = ""

    def versions(self) -> list:
        """The versions the command refers to (a saved history stores their samples)."""
        return []

    def to_value(self, ref) -> dict:  # pragma: no cover - interface
        """The command as a plain value; ``ref(version)`` names a version."""
        raise NotImplementedError


def _parent_or_original(recording, version):
    """The version ``version`` was made from (by its provenance's parent name), else the original."""
    parent = getattr(version.provenance, "parent", None)
    found = recording.version_or_none(parent) if parent else None
    return found if found is not None else recording.original


class AddVersion(Command):
    """A version added to a recording (a model result, a repair, a residual, a lab version)."""

    kind = "add"

    def __init__(self, recording, version, index: int):
        self.recording, self.version, self.index = recording, version, index
        self.name = f"add {version.name}"

    def do(self) -> None:
        self.recording._insert(self.version, self.index)

    def undo(self) -> None:
        self.recording._take_out(self.version)

    def shown_after(self, undone: bool):
        return _parent_or_original(self.recording, self.version) if undone else self.version

    def versions(self) -> list:
        return [self.version]

    def to_value(self, ref) -> dict:
        return {"command": self.kind, "version": ref(self.version), "index": int(self.index)}

    @classmethod
    def from_value(cls, value: dict, recording, version, strength) -> "AddVersion":
        return cls(recording, version(value["version"]), int(value["index"]))


class RemoveVersion(Command):
    """A version deleted from a recording (kept here so that undo puts the same object back)."""

    kind = "remove"

    def __init__(self, recording, version, index: int):
        self.recording, self.version, self.index = recording, version, index
        self.name = f"remove {version.name}"

    def do(self) -> None:
        self.recording._take_out(self.version)

    def undo(self) -> None:
        self.recording._insert(self.version, self.index)

    def shown_after(self, undone: bool):
        return self.version if undone else _parent_or_original(self.recording, self.version)

    def versions(self) -> list:
        return [self.version]

    def to_value(self, ref) -> dict:
        return {"command": self.kind, "version": ref(self.version), "index": int(self.index)}

    @classmethod
    def from_value(cls, value: dict, recording, version, strength) -> "RemoveVersion":
        return cls(recording, version(value["version"]), int(value["index"]))


class SetStrength(Command):
    """A model result's strength (how much of the model's effect it keeps) changed."""

    kind = "strength"

    def __init__(self, recording, version, before, after):
        self.recording, self.version, self.before, self.after = recording, version, before, after
        self.name = f"strength of {version.name} {100 * before.mix:.0f}% \u2192 {100 * after.mix:.0f}%"

    def do(self) -> None:
        self.recording.set_strength(self.version, self.after, record=False)

    def undo(self) -> None:
        self.recording.set_strength(self.version, self.before, record=False)

    def shown_after(self, undone: bool):
        return self.version

    def versions(self) -> list:
        return [self.version]

    def to_value(self, ref) -> dict:
        return {"command": self.kind, "version": ref(self.version),
                "before": {"mix": float(self.before.mix), "given_as": str(self.before.given_as)},
                "after": {"mix": float(self.after.mix), "given_as": str(self.after.given_as)}}

    @classmethod
    def from_value(cls, value: dict, recording, version, strength) -> "SetStrength":
        return cls(recording, version(value["version"]), strength(value["before"]), strength(value["after"]))


#: command kind in a saved history -> its class (a new undoable change is one entry here)
COMMAND_KINDS: dict[str, type] = {c.kind: c for c in (AddVersion, RemoveVersion, SetStrength)}


class History:
    """Undo/redo stacks of :class:`Command`."""

    def __init__(self, limit: int = 200):
        self.limit = limit
        self.undo_steps: list[Command] = []
        self.redo_steps: list[Command] = []

    def record(self, command: Command) -> None:
        """Remember a command that has already been done."""
        self.undo_steps.append(command)
        if len(self.undo_steps) > self.limit:
            del self.undo_steps[0]
        self.redo_steps.clear()

    def push(self, command: Command) -> Command:
        """Do ``command`` and remember it."""
        command.do()
        self.record(command)
        return command

    def undo(self) -> Command | None:
        """Undo the last command; returns it (``None`` when there is nothing to undo)."""
        if not self.undo_steps:
            return None
        command = self.undo_steps.pop()
        command.undo()
        self.redo_steps.append(command)
        return command

    def redo(self) -> Command | None:
        """Redo the last undone command; returns it (``None`` when there is nothing to redo)."""
        if not self.redo_steps:
            return None
        command = self.redo_steps.pop()
        command.do()
        self.undo_steps.append(command)
        return command

    def clear(self) -> None:
        self.undo_steps.clear()
        self.redo_steps.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_steps)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_steps)

    def undo_label(self) -> str | None:
        return self.undo_steps[-1].name if self.undo_steps else None

    def redo_label(self) -> str | None:
        return self.redo_steps[-1].name if self.redo_steps else None


def history_to_value(history: History, ref) -> dict:
    """``{"undo": [...], "redo": [...]}``: both stacks, oldest first, each command a plain value
    (``ref(version)`` names the versions)."""
    return {"undo": [c.to_value(ref) for c in history.undo_steps],
            "redo": [c.to_value(ref) for c in history.redo_steps]}


def history_from_value(value: dict, recording, version, strength) -> History:
    """The :class:`History` of ``recording`` a saved value describes.

    Args:
        version: ``version(name)`` -> the Version a saved name refers to (raises ``KeyError`` when it is
            not there).
        strength: ``strength(dict)`` -> the strength object a saved ``{"mix", "given_as"}`` describes.

    Raises:
        KeyError, ValueError, TypeError: an unknown command kind or a version that is not there.
    """
    history = History()
    for stack, steps in ((history.undo_steps, value.get("undo") or []), (history.redo_steps, value.get("redo") or [])):
        for item in steps:
            kind = COMMAND_KINDS.get(item.get("command"))
            if kind is None:
                raise ValueError(f"unknown command {item.get('command')!r}")
            stack.append(kind.from_value(item, recording, version, strength))
    return history
