"""Headless command line: ``workbench COMMAND ...`` (also ``python -m workbench``).

Every command lives in ``workbench/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``; they are built on the same core calls as the GUI. Errors a person can fix end
with exit status 2 and one line ``error: <file>: <problem>`` on stderr. ``workbench`` with no command
(or ``workbench gui FILES``) opens the window.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .commands.numbers import join_negative_values
from .core.errors import WorkbenchError

#: command name -> module under workbench.commands
COMMANDS = {
    "info": "info",
    "analyze": "analyze",
    "models": "models",
    "enhance": "enhance",
    "probe": "probe",
    "evaluate": "evaluate",
    "repair": "repair",
    "phase-lab": "phase_lab",
    "batch": "batch",
    "train": "train",
    "loss-lab": "loss_lab",
    "vad": "vad",
    "live": "live",
    "gui": "gui",
}


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict]:
    """Parser with every command, or with just ``only`` (so ``workbench gui`` does not import the
    metric and model stacks of the other commands before the window appears)."""
    parser = argparse.ArgumentParser(prog="workbench", description="Speech Enhancement Workbench")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, mod in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(f"workbench.commands.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name == f"workbench.commands.{mod}":
                continue  # command not part of this build
            raise
        module.add_parser(sub)
        modules[name] = module
    return parser, modules


def _tolerant_streams() -> None:
    """Let any file name the OS gives reach the terminal: characters the output encoding cannot show
    (``PYTHONIOENCODING=ascii``, bytes that are not UTF-8 in a name) are written as escapes instead of
    raising UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass  # replaced by a test harness or a non-text stream: leave it


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["gui"]
    parser, modules = build_parser(argv[0] if argv[0] in COMMANDS else None)
    try:
        args = parser.parse_args(join_negative_values(argv))
    except WorkbenchError as exc:  # an option's value out of range (workbench.commands.numbers)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; Python would otherwise complain again at exit.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
