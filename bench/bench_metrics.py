"""Benchmark of the measurement code: each metric and DNSMOS on the dns3 clips, and the model probes.

Run:  .venv/bin/python bench/bench_metrics.py [--models deepfilternet3 nsnet2-16k ...]
Prints seconds per call (median of 3) for a 5 s clip at 16 kHz, DNSMOS on 5 s and 60 s, and a probe
report per model. Numbers depend on the machine; quote them with its CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from workbench.core import metrics as M
from workbench.core.dnsmos import shared_dnsmos
from workbench.core.probes import probe_enhancer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn, runs=3):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["nsnet2-16k", "deepfilternet3"])
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    clean, sr = sf.read(DATA / "dns3/0015_clean.wav")
    noisy, _ = sf.read(DATA / "dns3/0015_noisy.wav")
    print(f"intrusive metrics on a {len(clean) / sr:.1f} s clip at {sr} Hz (median of 3, seconds):")
    for key in M.INTRUSIVE_METRICS:
        print(f"  {key:18s} {timed(lambda: M.intrusive_metrics(clean, noisy, sr, metrics=[key])):.3f}")
    print(f"  {'all':18s} {timed(lambda: M.intrusive_metrics(clean, noisy, sr)):.3f}")
    d = shared_dnsmos()
    d.score(noisy, sr)  # warm-up
    long = np.tile(noisy, 12)
    print(f"DNSMOS: 5 s clip {timed(lambda: d.score(noisy, sr)):.3f} s, 60 s clip {timed(lambda: d.score(long, sr), 1):.3f} s")
    from workbench.core.registry import load_enhancer

    for spec in args.models:
        rep = probe_enhancer(load_enhancer(spec), audio=noisy.astype(np.float32), sample_rate=sr)
        print(json.dumps({k: rep.to_dict()[k] for k in ("model", "causal", "lookahead_samples", "latency_samples",
                                                          "latency_ms", "rtf", "parameters", "macs_per_second")}))


if __name__ == "__main__":
    main()
