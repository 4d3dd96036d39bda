"""``workbench gui [FILE...]`` (also plain ``workbench``): open the main window."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("gui", help="open the workbench window (default when no command is given)")
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot once every pane is painted, then exit")
    p.add_argument("--demo", action="store_true", help="open the bundled demo clip")
    p.add_argument("--session", metavar="FILE", help="restore a saved session (.session.json) as it was saved")
    p.add_argument("--enhance", action="append", default=[], metavar="MODEL",
                   help="after opening, run this model (built-in id or model file/folder) on the current "
                        "recording and show the result; repeat for several models")


def run(args) -> int:
    from ..gui.app import run_gui  # the only place the CLI reaches into Qt

    return run_gui(list(args.files), screenshot=args.screenshot, demo=args.demo, enhance=list(args.enhance),
                   session=args.session)
