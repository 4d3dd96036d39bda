"""Chunk seams of the offline paths: block-wise difference against a seamless reference, in one run.

Run from the repository root::

    OMP_NUM_THREADS=1 WORKBENCH_THREADS=1 .venv/bin/python bench/bench_seams.py [--minutes 10] [--block-s 10]

Input: the DeepFilterNet sample (``dfn/noisy_snr0.wav``, 48 kHz) tiled to ``--minutes``, alternately forwards
and reversed. For each model, the engine's default chunked path is compared with a reference that has no
seams, and the difference ``d = chunked - reference`` is reported as energy relative to the reference's,
over the whole file and in the worst ``--block-s`` block (a seam hides in the first figure, not the second)::

    level_dB = 10 log10(sum d^2 / sum ref^2)

* ``deepfilternet3``: offline (ONNX, chunked) vs streaming (libDF's native frame loop), 48 kHz;
* ``gtcrn-dns3``: default offline path (4 s blocks, state carried) vs the authors' whole-utterance
  computation (``process_offline``) on the first minute (one piece of 10 minutes would need about 8 GB),
  and vs the same path in 62 s blocks (other seams) on the whole input, 16 kHz;
* ``nsnet2-16k``: default offline path vs its whole-buffer computation (``process_offline``), 16 kHz;
* ``wpe-dereverb``: default offline path (multi-pass blocks) vs nara-wpe on the whole file in one piece
  (``process_offline_channels``), 16 kHz (``--wpe-minutes`` to shorten it: the one-piece reference needs
  about 1 GB for 10 minutes).

Every line prints the machine's load when it started.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--block-s", type=float, default=10.0)
    ap.add_argument("--models", default="deepfilternet3,gtcrn-dns3,nsnet2-16k,wpe-dereverb")
    ap.add_argument("--wpe-minutes", type=float, help="WPE on the first minutes only (default: all)")
    args = ap.parse_args()
    from workbench.core.enhance.enhancer import enhance_array
    from workbench.core.enhance.registry import load_enhancer
    from workbench.core.measure.metrics import difference_levels

    x, sr = sf.read(DATA / "dfn" / "noisy_snr0.wav", dtype="float32")
    n = int(args.minutes * 60 * sr)
    x48 = np.resize(np.concatenate([x, x[::-1]]), n).astype(np.float32)
    x16 = soxr.resample(x48, sr, 16000).astype(np.float32)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"{args.minutes:g} min input; blocks of {args.block_s:g} s")
    print(f"{'model':<16} {'chunk s':>7} {'overall dB':>10} {'worst block dB':>14} {'at s':>7} {'s':>7} {'load':>5}")
    for model_id in args.models.split(","):
        load = os.getloadavg()[0]
        model = load_enhancer(model_id)
        chunk_s = model.chunk_s
        t = time.perf_counter()
        if model_id == "deepfilternet3":
            audio, rate = x48, sr
            y = enhance_array(model, audio, rate)
            ref = enhance_array(model, audio, rate, processing="streaming")
        else:
            audio, rate = x16, 16000
            if model_id == "wpe-dereverb" and args.wpe_minutes:
                audio = x16[:int(args.wpe_minutes * 60 * rate)]
            if model_id.startswith("gtcrn"):
                y = enhance_array(model, audio, rate)
                model.chunk_s = 62.0
                ref = enhance_array(model, audio, rate)
                overall, worst, at = difference_levels(y, ref, int(args.block_s * rate))
                print(f"{model_id + ' vs 62 s':<16} {chunk_s:>7g} {overall:>10.1f} {worst:>14.1f} {at / rate:>7.0f} "
                      f"{time.perf_counter() - t:>7.1f} {load:>5.2f}", flush=True)
                model.chunk_s, t, load = chunk_s, time.perf_counter(), os.getloadavg()[0]
                audio = audio[:60 * rate]
            y = enhance_array(model, audio, rate)
            # The one-piece computation on the whole buffer, independent of the engine's blocks.
            model = model.for_rate(rate)
            ref = (model.process_offline_channels(audio[:, None])[:, 0] if model_id == "wpe-dereverb"
                   else model.process_offline(audio))
        overall, worst, at = difference_levels(y, ref, int(args.block_s * rate))
        print(f"{model_id:<16} {chunk_s:>7g} {overall:>10.1f} {worst:>14.1f} {at / rate:>7.0f} "
              f"{time.perf_counter() - t:>7.1f} {load:>5.2f}", flush=True)
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
