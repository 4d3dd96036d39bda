"""Chunk seams of the offline paths: block-wise difference against a seamless reference, in one run.

Run from the repository root::

    OMP_NUM_THREADS=1 WORKBENCH_THREADS=1 .venv/bin/python bench/bench_seams.py [--minutes 10] [--block-s 10]

Input: the DeepFilterNet sample (``dfn/noisy_snr0.wav``, 48 kHz) tiled to ``--minutes``, alternately forwards
and reversed. For each model, the engine's default chunked path is compared with a reference that has no
seams, and the difference ``d = chunked - reference`` is reported as energy relative to the reference's,
over the whole file and in the worst ``--block-s`` block (a seam hides in the first figure, not the second)::

    level_dB = 10 log10(sum d^2 / sum ref^2)

* ``deepfilternet3``: offline (ONNX, chunked) vs streaming (libDF's native frame loop), 48 kHz;
* ``gtcrn-dns3``: default path for a long file vs the offline path forced to one chunk, 16 kHz;
* ``nsnet2-16k``: default chunked offline path vs its whole-buffer computation (``process_offline``), 16 kHz;
* ``wpe-dereverb`` (``--wpe``): default chunked offline path vs one chunk, 16 kHz, first 3 minutes only
  (one chunk of an hour would need gigabytes).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


def levels(y: np.ndarray, ref: np.ndarray, block: int) -> tuple[float, float, float]:
    """``(overall dB, worst block dB, worst block start s)`` of ``y - ref`` relative to ``ref``."""
    d = (y - ref).astype(np.float64)
    r = ref.astype(np.float64)
    overall = 10 * np.log10(max(np.sum(d * d), 1e-30) / np.sum(r * r))
    worst, at = -np.inf, 0
    for i in range(0, len(r) - block + 1, block):
        e = np.sum(r[i:i + block] ** 2)
        if e > 1e-6 * block:
            lvl = 10 * np.log10(max(np.sum(d[i:i + block] ** 2), 1e-30) / e)
            if lvl > worst:
                worst, at = lvl, i
    return overall, worst, at


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--block-s", type=float, default=10.0)
    ap.add_argument("--models", default="deepfilternet3,gtcrn-dns3,nsnet2-16k")
    ap.add_argument("--wpe", action="store_true", help="also WPE on the first 3 minutes")
    args = ap.parse_args()
    from workbench.core.enhance.enhancer import enhance_array, with_processing
    from workbench.core.enhance.registry import load_enhancer

    x, sr = sf.read(DATA / "dfn" / "noisy_snr0.wav", dtype="float32")
    n = int(args.minutes * 60 * sr)
    x48 = np.resize(np.concatenate([x, x[::-1]]), n).astype(np.float32)
    x16 = soxr.resample(x48, sr, 16000).astype(np.float32)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"{args.minutes:g} min input; blocks of {args.block_s:g} s")
    print(f"{'model':<16} {'chunk s':>7} {'overall dB':>10} {'worst block dB':>14} {'at s':>7} {'s':>7}")
    models = args.models.split(",") + (["wpe-dereverb"] if args.wpe else [])
    for model_id in models:
        model = load_enhancer(model_id)
        chunk_s = model.chunk_s
        t = time.perf_counter()
        if model_id == "deepfilternet3":
            audio, rate = x48, sr
            y = enhance_array(model, audio, rate)
            ref = enhance_array(model, audio, rate, processing="streaming")
        else:
            audio, rate = (x16[:3 * 60 * 16000] if model_id == "wpe-dereverb" else x16), 16000
            y = enhance_array(model, audio, rate)
            if model_id.startswith("nsnet2"):
                # The whole-buffer computation, independent of the chunked path's state carrying.
                ref = model.process_offline(audio)
            else:
                whole = with_processing(model, "offline")
                whole.chunk_s, whole.overlap_s, whole.long_file_processing = len(audio) / rate + 1, 0.0, None
                ref = enhance_array(whole, audio, rate, processing="offline")
        overall, worst, at = levels(y, ref, int(args.block_s * rate))
        print(f"{model_id:<16} {chunk_s:>7g} {overall:>10.1f} {worst:>14.1f} {at / rate:>7.0f} "
              f"{time.perf_counter() - t:>7.1f}", flush=True)
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
