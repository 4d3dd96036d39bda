"""Numbers checked at the edge: every time, frequency, gain and size option of every command is a finite
number in its range, or the command stops before reading anything with one line naming the option.

``type=number("--gain-db", -200, 60, "dB")`` in ``add_argument``: the value is parsed and checked by argparse;
a refusal is a :class:`~workbench.core.errors.WorkbenchError` that ``workbench.cli`` prints as one line.
"""

from __future__ import annotations

import math
import re
from typing import Callable

from ..core.errors import WorkbenchError


class OptionValueError(WorkbenchError):
    """A command-line value outside what the option accepts."""


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:g}"


def number(option: str, lo: float, hi: float, unit: str = "", *, integer: bool = False,
           allow_inf: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type`` accepting a finite number (an integer with ``integer``) in ``[lo, hi]``;
    ``allow_inf`` also lets ``inf`` through (an option whose infinity means "no limit")."""
    words = f"{'an integer' if integer else 'a number'} from {_fmt(lo)} to {_fmt(hi)}{' ' + unit if unit else ''}"

    def parse(text: str):
        try:
            value = int(text, 10) if integer else float(text)
        except (TypeError, ValueError):
            raise OptionValueError(f"{option}: expected {words}, got {text!r}") from None
        if not integer and math.isinf(value) and allow_inf and value > 0:
            return value
        if not integer and not math.isfinite(value):
            raise OptionValueError(f"{option}: expected {words}, got {text!r}")
        if not lo <= value <= hi:
            raise OptionValueError(f"{option}: expected {words}, got {text!r}")
        return value

    parse.__name__ = option.lstrip("-").replace("-", "_")  # argparse names the type in its messages
    return parse


#: A value that starts with a minus and holds a colon (``-0.5:2:100:4000``, ``-1:3``) is never an option:
#: argparse would take it for one and complain "expected one argument".
_NEGATIVE_SPAN = re.compile(r"^-[\d.][^=]*:")


def join_negative_values(argv: list[str]) -> list[str]:
    """``--box -0.5:1:0:100`` -> ``--box=-0.5:1:0:100`` so argparse reads the value as a value (then checked
    and refused in one line by the command when it is out of range)."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_SPAN.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out
