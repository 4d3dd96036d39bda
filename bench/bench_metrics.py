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


def window_by_window(d, x16: np.ndarray) -> tuple[float, ...]:
    """The previous DNSMOS loop: per window, the features and two model calls one at a time."""
    from workbench.core import dnsmos as dm
    sig, bak, ovrl, p808 = [], [], [], []
    for seg in d.windows(x16):
        raw = d._p835.run(None, {d._p835_in: seg[None, :]})[0][0]
        p808.append(float(d._p808.run(None, {d._p808_in: dm.p808_features(seg[:-dm.MEL_HOP])[None]})[0][0][0]))
        sig.append(float(d._poly["sig"](raw[0])))
        bak.append(float(d._poly["bak"](raw[1])))
        ovrl.append(float(d._poly["ovrl"](raw[2])))
    return tuple(float(np.mean(v)) for v in (sig, bak, ovrl, p808))


def dnsmos_batched_vs_window_by_window(d, seconds: float) -> None:
    """Same-run timing of the batched scorer against the window-by-window loop, their score difference, and
    the fast mode's deviation from the exact mode, on real + dns3 speech tiled to ``seconds``."""
    from workbench.core.dnsmos import Dnsmos
    parts = [sf.read(p, dtype="float32")[0] for p in sorted((DATA / "real").glob("*.wav"))
             if not p.stem.endswith(("_GTCRN", "_RNNoise"))]
    parts += [sf.read(DATA / "dns3" / f"{c}_noisy.wav", dtype="float32")[0] for c in ("0015", "0016", "0072")]
    base = np.concatenate(parts)
    x = np.tile(base, int(np.ceil(seconds * 16000 / len(base))))[: int(seconds * 16000)]
    old, new = [], []
    for _ in range(3):  # interleaved
        t = time.perf_counter()
        ref = window_by_window(d, x)
        old.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = d.score(x, 16000)
        new.append(time.perf_counter() - t)
    diff = max(abs(a - b) for a, b in zip(ref, (got.sig, got.bak, got.ovrl, got.p808)))
    t_old, t_new = float(np.median(old)), float(np.median(new))
    print(f"DNSMOS on {seconds:.0f} s ({got.windows} windows), median of 3: window by window {t_old:.2f} s "
          f"(RTF {t_old / seconds:.3f}), batched {t_new:.2f} s (RTF {t_new / seconds:.3f}), "
          f"{t_old / t_new:.2f}x faster; largest score difference {diff:.1e}")
    fast = Dnsmos(fast=True)
    t = time.perf_counter()
    f = fast.score(x, 16000)
    t_fast = time.perf_counter() - t
    print(f"DNSMOS fast mode (non-overlapping windows, {f.windows} windows): {t_fast:.2f} s "
          f"(RTF {t_fast / seconds:.4f}); deviation from exact: SIG {f.sig - got.sig:+.3f}, BAK "
          f"{f.bak - got.bak:+.3f}, OVRL {f.ovrl - got.ovrl:+.3f}, P.808 {f.p808 - got.p808:+.3f}")
    for p in sorted((DATA / "dns3").glob("*_noisy.wav")) + [q for q in sorted((DATA / "real").glob("*.wav"))
                                                            if not q.stem.endswith(("_GTCRN", "_RNNoise"))]:
        y, rate = sf.read(p, dtype="float32")
        a, b = d.score(y, rate), fast.score(y, rate)
        print(f"  {p.name[:50]:50s} {len(y) / rate:5.1f} s  OVRL exact {a.ovrl:.3f} fast {b.ovrl:.3f} "
              f"({b.ovrl - a.ovrl:+.3f}), windows {a.windows} vs {b.windows}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["nsnet2-16k", "deepfilternet3"])
    ap.add_argument("--dnsmos-seconds", type=float, default=120.0, help="length of the DNSMOS comparison clip")
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
    dnsmos_batched_vs_window_by_window(d, args.dnsmos_seconds)
    from workbench.core.registry import load_enhancer

    for spec in args.models:
        rep = probe_enhancer(load_enhancer(spec), audio=noisy.astype(np.float32), sample_rate=sr)
        print(json.dumps({k: rep.to_dict()[k] for k in ("model", "causal", "lookahead_samples", "latency_samples",
                                                          "latency_ms", "rtf", "parameters", "macs_per_second")}))


if __name__ == "__main__":
    main()
