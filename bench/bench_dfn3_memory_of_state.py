"""How long DeepFilterNet3's recurrent state remembers: can chunks run side by side from rest?

Run from the repository root::

    .venv/bin/python bench/bench_dfn3_memory_of_state.py [--warmups 1,2,5,10,20] [--length-s 4]

Running a file's chunks side by side (as one batch, or on several cores) needs each chunk to start from
rest and "warm up" on some seconds of audio before its own, with that warm-up's output thrown away. That
only works if the networks forget their start: if the output after ``W`` seconds of warm-up matches what
the one-piece run gives there. This script measures that, on one long recording made of every clip in
``../shared/data`` (dns3, real, pesq, dfn; resampled to 48 kHz and joined, so nothing repeats):

* the reference: the offline path over the whole recording in one call (every state carried);
* for each start ``s`` (every 7 s) and warm-up ``W``: a fresh run from rest over ``[s - W, s + L)``;
  its output over ``[s, s + L)`` is compared with the reference's there.

It prints, per warm-up, the level of the difference relative to the reference over the kept span (median
and worst over the starts) and in the worst 1 s block, both by
:func:`~workbench.core.measure.metrics.difference_levels` as ``bench_seams.py`` measures seams (near-silent
blocks are not ranked). The seam goal of the chunked paths is -40 dB in
every block; a warm-up that cannot reach it rules the side-by-side scheme out.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
RATE = 48000


def recording() -> np.ndarray:
    """Every noisy clip of ``../shared/data`` at 48 kHz, mono, joined."""
    import soxr

    parts = []
    for folder in ("dns3", "real", "pesq", "dfn"):
        for p in sorted((DATA / folder).glob("*.wav")):
            if p.stem.endswith(("_GTCRN", "_RNNoise", "_clean")) or p.name.startswith(("rir_", "clean_")):
                continue
            x, rate = sf.read(p, dtype="float32", always_2d=True)
            x = x[:, 0]
            parts.append(x if rate == RATE else soxr.resample(x, rate, RATE).astype(np.float32))
    return np.concatenate(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warmups", default="1,2,5,10,20", help="warm-ups to try, seconds (comma-separated)")
    ap.add_argument("--length-s", type=float, default=4.0, help="span kept after each warm-up, seconds")
    args = ap.parse_args()
    os.environ.setdefault("WORKBENCH_THREADS", "1")
    from workbench.core.measure.metrics import difference_levels
    from workbench_models import deepfilternet as dfn

    warmups = [float(w) for w in args.warmups.split(",")]
    x = recording()
    enh = dfn.DeepFilterNet3()
    print(f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"recording: {len(x) / RATE:.1f} s at 48 kHz from {DATA}")
    ref = enh.process_offline(x)
    hop, kept = dfn.HOP, int(args.length_s * RATE) // dfn.HOP * dfn.HOP
    first = int(max(warmups) * RATE) // hop * hop
    starts = list(range(first, len(x) - kept, 7 * RATE // hop * hop))
    print(f"{len(starts)} starts, {args.length_s:g} s kept after each warm-up; difference to the one-piece run "
          f"relative to its level over the kept span:")
    print(f"  {'warm-up':>8s} {'median':>9s} {'worst':>9s} {'worst 1 s block':>16s}")
    for w in warmups:
        lead = int(w * RATE) // hop * hop
        spans, blocks = [], []
        for s in starts:
            y = enh.process_offline(x[s - lead:s + kept])[lead:]
            overall, worst, _ = difference_levels(y, ref[s:s + kept], RATE)
            spans.append(overall)
            blocks.append(worst)
        print(f"  {w:7.0f}s {statistics.median(spans):8.1f}dB {max(spans):8.1f}dB {max(blocks):15.1f}dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
