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

#: command name -> (module under workbench.commands, the one line ``workbench --help`` lists). The line is kept
#: here so that listing the commands imports none of them (a test checks it equals the module's own help).
COMMANDS = {
    "info": ("info", "print metadata of audio files"),
    "analyze": ("analyze", "render magnitude, phase, real and imaginary STFT views to a PNG/SVG (and a JSON summary)"),
    "models": ("models", "list the available enhancement models"),
    "enhance": ("enhance", "enhance audio files with a model"),
    "probe": ("probe", "measure a model's causality, latency, real-time factor and size"),
    "evaluate": ("evaluate", "run models on noisy/clean pairs and tabulate quality metrics"),
    "repair": ("repair", "attenuate or interpolate time-frequency boxes (spectral repair)"),
    "phase-lab": ("phase_lab", "oracle masks, phase swaps and Griffin-Lim of one recording, measured"),
    "batch": ("batch", "enhance or evaluate a corpus (local process pool or Ray cluster), resumable"),
    "train": ("train", "train or fine-tune a model from a TOML config (resumable)"),
    "loss-lab": ("loss_lab", "train one architecture with several losses; table and chart per loss"),
    "vad": ("vad", "find the speech spans of a recording (Silero VAD)"),
    "live": ("live", "enhance the microphone in real time (or play a file as if live)"),
    "gui": ("gui", "open the workbench window (default when no command is given)"),
}


def _command_module(name: str):
    """The module implementing command ``name``, or ``None`` when this build leaves it out."""
    mod = COMMANDS[name][0]
    try:
        return importlib.import_module(f"workbench.commands.{mod}")
    except ModuleNotFoundError as exc:
        if exc.name == f"workbench.commands.{mod}":
            return None
        raise


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict]:
    """Parser listing every command; the full options (and the import of the implementation) only for
    ``only``, or for every command when ``only`` is ``"*"``. ``workbench --help`` so imports no command,
    and ``workbench enhance`` only the enhance command (not the metric, training and GUI stacks).

    Returns:
        ``(parser, {command name: module})`` for the commands whose modules were imported.
    """
    parser = argparse.ArgumentParser(prog="workbench", description="Speech Enhancement Workbench")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (_mod, summary) in COMMANDS.items():
        if only in (name, "*"):
            module = _command_module(name)
            if module is not None:
                module.add_parser(sub)
                modules[name] = module
        else:
            sub.add_parser(name, help=summary)  # listed; parsed only when it is the command given
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
    if argv[0] in COMMANDS and argv[0] not in modules:  # a command this build leaves out
        print(f"error: the command {argv[0]!r} is not part of this installation", file=sys.stderr)
        return 2
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
