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

from .core.errors import WorkbenchError

#: command name -> module under workbench.commands
COMMANDS = {
    "info": "info",
    "analyze": "analyze",
    "models": "models",
    "enhance": "enhance",
    "probe": "probe",
    "evaluate": "evaluate",
    "gui": "gui",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="workbench", description="Speech Enhancement Workbench")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, mod in COMMANDS.items():
        try:
            module = importlib.import_module(f"workbench.commands.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name == f"workbench.commands.{mod}":
                continue  # command not part of this build
            raise
        module.add_parser(sub)
        modules[name] = module
    return parser, modules


class _ArgumentError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, modules = build_parser()
    if not argv:
        argv = ["gui"]
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
