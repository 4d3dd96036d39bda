"""What a listener hears when live blocks miss their deadline: the engine's fallback to the aligned dry
signal, with ramped edges so that the switch does not click (see ``workbench.core.live.engine``).

Into the fallback, the step between the last sample played and the dry signal is carried into the dry
block and ramped out; back out of it, the first block on time is crossfaded from the dry signal. The
tests rebuild the expected output with these functions.
"""

from __future__ import annotations

import numpy as np


def fallback_edges(rate: int, block: int, crossfade_ms: float = 5.0) -> np.ndarray:
    """The fade-in ramp of the fallback's edges: the engine's raised cosine over at most one block."""
    n = min(max(1, int(round(crossfade_ms * rate / 1000))), block)
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def into_fallback(dry: np.ndarray, last_played: float, dry_before: float, ramp: np.ndarray) -> np.ndarray:
    """A late block as it is heard: the dry block with the step at its seam carried in and ramped out."""
    out = dry.copy()
    n = min(len(ramp), len(out))
    out[:n] += (1.0 - ramp[:n]).astype(np.float32) * np.float32(last_played - dry_before)
    return out


def out_of_fallback(wet: np.ndarray, dry: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """The first block on time after late ones: crossfaded from the dry signal over the ramp."""
    out = wet.copy()
    n = min(len(ramp), len(out))
    edge = out[:n]
    edge -= dry[:n]
    edge *= ramp[:n]
    edge += dry[:n]
    return out


def with_fallback(on_time: np.ndarray, dry: np.ndarray, drops, block: int, ramp: np.ndarray) -> np.ndarray:
    """The stream as heard from its first sample: ``on_time`` (what the model's results give) with the
    blocks starting at the positions ``drops`` played from ``dry`` (the input aligned with it), edges
    ramped as the engine does. Silence was heard before the stream started."""
    out = on_time.astype(np.float32, copy=True)
    late = set(int(p) for p in drops)
    prev_dry, last = False, 0.0
    for p in range(0, len(out), block):
        seg = slice(p, min(p + block, len(out)))
        if p in late:
            blk = dry[seg].astype(np.float32, copy=True)
            if not prev_dry:
                blk = into_fallback(blk, last, float(dry[p - 1]) if p > 0 else 0.0, ramp)
            prev_dry = True
        else:
            blk = out[seg]
            if prev_dry:
                blk = out_of_fallback(blk, dry[seg], ramp)
            prev_dry = False
        out[seg] = blk
        if len(blk):
            last = float(blk[-1])
    return out
