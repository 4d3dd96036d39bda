"""How versions are listed and labelled wherever a person picks one (the Version box, the Recordings tree,
the transport's A/B buttons): the same entries in the same order, names shortened only as far as they
stay distinct, and the phase lab's many versions kept together in one group.

Qt-free except for the width function the callers pass (``QFontMetrics.horizontalAdvance``)."""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

#: Version kinds the phase lab makes; from :data:`LAB_GROUP_MIN` of them on they are grouped.
LAB_KINDS = ("oracle", "swap", "reconstruction")
LAB_GROUP_MIN = 3
ELLIPSIS = "…"


class VersionEntry(NamedTuple):
    """One entry of a version list: ``label`` as shown, the ``version`` (``None`` for a residual not made
    yet) and ``residual_of`` (the enhanced version whose residual choosing this entry makes)."""
    label: str
    version: object
    residual_of: object


def is_lab(version) -> bool:
    """A version the phase lab made (oracle mask, swap, Griffin–Lim reconstruction)."""
    return version is not None and version.kind in LAB_KINDS


def version_entries(recording) -> list[VersionEntry]:
    """Every version in order; after each enhanced version its residual (original − enhanced): the
    existing residual version, or an entry with ``version=None`` that makes it when chosen."""
    if recording is None:
        return []
    out: list[VersionEntry] = []
    residuals = {v.settings.get("residual_of"): v for v in recording.versions if v.kind == "residual"}
    for v in recording.versions:
        if v.kind == "residual":
            continue
        out.append(VersionEntry(v.name, v, None))
        if v.kind.is_result and not is_lab(v):
            r = residuals.pop(v.name, None)
            out.append(VersionEntry(f"residual ({v.name})", r, None if r is not None else v))
    out += [VersionEntry(r.name, r, None) for r in residuals.values()]  # residuals whose version is gone
    return out


def display_order(recording) -> list[int]:
    """Indices into ``recording.versions`` in the order the lists show them (residuals after their
    enhanced version)."""
    index = {id(v): i for i, v in enumerate(recording.versions)}
    order = [index[id(e.version)] for e in version_entries(recording) if e.version is not None]
    seen = set(order)
    return order + [i for i in range(len(recording.versions)) if i not in seen]


def lab_grouped(versions) -> bool:
    """Whether the lab versions among ``versions`` are many enough to be grouped."""
    return sum(1 for v in versions if is_lab(v)) >= LAB_GROUP_MIN


def _common_prefix(names: list[str]) -> str:
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    # Cut at a separator so "gtcrn-dns3" and "gtcrn-vctk" share "gtcrn-", not "gtcrn-" plus a letter.
    cut = max(prefix.rfind(c) for c in "-_ .(/") + 1 if prefix else 0
    return prefix[:cut]


def elide_middle(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters by replacing its middle with an ellipsis."""
    if len(text) <= chars:
        return text
    if chars <= 1:
        return ELLIPSIS
    head = (chars - 1 + 1) // 2
    tail = chars - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def distinct_labels(names: list[str], width: Callable[[str], int], room: int) -> list[str]:
    """:func:`fit_labels` down to :data:`MIN_CHARS_TO_FIT` characters where that makes them all fit ``room``;
    where even that does not fit (the caller scrolls anyway), no shorter than :data:`MIN_CHARS_READABLE`."""
    tight = fit_labels(names, width, room, min_chars=MIN_CHARS_TO_FIT)
    if sum(width(t) for t in tight) <= room:
        return tight
    return fit_labels(names, width, room, min_chars=MIN_CHARS_READABLE)


#: Shortest label body when shortening lets every label fit; and when they must scroll anyway.
MIN_CHARS_TO_FIT = 6
MIN_CHARS_READABLE = 10


def fit_labels(names: list[str], width: Callable[[str], int], room: int, *,
               min_chars: int = MIN_CHARS_TO_FIT) -> list[str]:
    """Shortest-first-needed labels for ``names`` whose total ``width`` fits ``room`` where possible.

    Full names when they fit; otherwise a prefix shared with other names is dropped (``…dns3-streaming``)
    and the longest labels are elided in the middle, never below ``min_chars`` characters and never so far
    that two labels read the same (then the list is allowed to be wider than ``room``: the caller scrolls).
    """
    bases = list(names)      # what each label shows, before eliding
    lead = [""] * len(names)  # an ellipsis standing for a dropped shared prefix

    def label(i: int, chars: int | None = None) -> str:
        body = bases[i] if chars is None else elide_middle(bases[i], chars)
        return lead[i] + body

    labels = [label(i) for i in range(len(names))]
    cache: dict[str, int] = {}

    def measure(text: str) -> int:
        if text not in cache:
            cache[text] = width(text)
        return cache[text]

    def total() -> int:
        return sum(measure(t) for t in labels)

    if total() <= room:
        return labels
    # 1. Drop a prefix shared with other names (gtcrn-…) from each member of such a family.
    for i, n in enumerate(names):
        prefixes = [_common_prefix([n, m]) for j, m in enumerate(names) if j != i]
        prefix = max(prefixes, key=len, default="")
        if prefix and len(n) - len(prefix) >= 2:
            bases[i], lead[i] = n[len(prefix):], ELLIPSIS
    labels = [label(i) for i in range(len(names))]
    if len(set(labels)) < len(labels):   # two would read the same: keep the full names
        bases, lead = list(names), [""] * len(names)
        labels = list(names)
    if total() <= room:
        return labels
    # 2. Elide the widest label in the middle, a character at a time, keeping every label distinct.
    chars = [len(b) for b in bases]
    frozen = [False] * len(labels)
    while total() > room:
        candidates = [i for i in range(len(labels)) if not frozen[i]]
        if not candidates:
            break
        i = max(candidates, key=lambda k: measure(labels[k]))
        if chars[i] - 1 < min_chars:
            frozen[i] = True
            continue
        shorter = label(i, chars[i] - 1)
        if shorter in labels[:i] + labels[i + 1:]:
            frozen[i] = True
            continue
        chars[i] -= 1
        labels[i] = shorter
    return labels
