"""Benchmark of the measurement code: each metric and DNSMOS on the dns3 clips, and the model probes.

Run:  .venv/bin/python bench/bench_metrics.py [--models deepfilternet3 nsnet2-16k ...]
Prints seconds per call (median of 3) for a 5 s clip at 16 kHz, DNSMOS on 5 s and 60 s, the DNSMOS
comparison (batched split scorer vs today's window-by-window path and the batched whole network, same
run, with the score difference, and the fast mode's deviation on the shared clips; ``--only-dnsmos``
runs just that), and a probe report per model. Numbers depend on the machine; quote them with its CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from workbench.core.measure import metrics as M
from workbench.core.measure.dnsmos import shared_dnsmos
from workbench.core.workflows.probes import probe_enhancer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn, runs=3):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speech_clips() -> list[Path]:
    """Every speech clip in ../shared/data (noisy, clean and enhanced versions; not the noise and RIR files)."""
    skip = ("noise_", "rir_")
    return [p for p in sorted(DATA.rglob("*.wav")) if not p.name.startswith(skip) and "models/dtln" not in str(p)]


def scores_diff(a, b) -> float:
    return max(abs(u - v) for u, v in zip((a.sig, a.bak, a.ovrl, a.p808), (b.sig, b.bak, b.ovrl, b.p808)))


def dnsmos_batched_vs_window_by_window(seconds: float, runs: int = 3) -> None:
    """Same-run timing of the batched, split scorer against today's window-by-window path
    (:func:`~workbench.core.measure.dnsmos.window_by_window_scores`: per window, the unmodified P.835 network and one
    P.808 call, plain sessions) and the batched whole network (``split=False``), interleaved; their score
    difference; and the fast mode's deviation from the exact mode, on real + dns3 speech tiled to ``seconds``
    and on every shared speech clip."""
    from workbench.core.measure import dnsmos as dm

    parts = [sf.read(p, dtype="float32")[0] for p in sorted((DATA / "real").glob("*.wav"))
             if not p.stem.endswith(("_GTCRN", "_RNNoise"))]
    parts += [sf.read(DATA / "dns3" / f"{c}_noisy.wav", dtype="float32")[0] for c in ("0015", "0016", "0072")]
    base = np.concatenate(parts)
    x = np.tile(base, int(np.ceil(seconds * 16000 / len(base))))[: int(seconds * 16000)]
    split, whole = dm.Dnsmos(), dm.Dnsmos(split=False)
    dm.window_by_window_scores(x[:16000 * 12], 16000)  # warm-up: load the plain sessions
    split.score(x[:16000 * 12], 16000), whole.score(x[:16000 * 12], 16000)
    times: dict[str, list[float]] = {"window by window": [], "batched whole network": [], "batched split": []}
    for _ in range(runs):  # interleaved, so load changes hit all three
        for name, fn in (("window by window", lambda: dm.window_by_window_scores(x, 16000)),
                         ("batched whole network", lambda: whole.score(x, 16000)),
                         ("batched split", lambda: split.score(x, 16000))):
            t = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - t)
            if name == "window by window":
                ref = result
            else:
                diff = scores_diff(ref, result)
                assert diff < 1e-5, (name, diff)
    med = {k: float(np.median(v)) for k, v in times.items()}
    base_s = med["window by window"]
    print(f"DNSMOS on {seconds:.0f} s ({ref.windows} windows), median of {runs} interleaved runs:")
    for name, t in med.items():
        print(f"  {name:22s} {t:6.2f} s (RTF {t / seconds:.3f})  {base_s / t:5.2f}x   runs "
              + " ".join(f"{v:.2f}" for v in times[name]))
    ratios = [w / s for w, s in zip(times["window by window"], times["batched split"])]
    print(f"  split vs window by window, per run: " + " ".join(f"{r:.2f}x" for r in ratios)
          + f"; largest score difference {scores_diff(ref, split.score(x, 16000)):.1e}")
    fast = dm.Dnsmos(fast=True)
    fast.score(x[:16000 * 30], 16000)  # warm-up
    t = time.perf_counter()
    f = fast.score(x, 16000)
    t_fast = time.perf_counter() - t
    got = split.score(x, 16000)
    print(f"DNSMOS fast mode (approximate: non-overlapping windows, {f.windows} windows): {t_fast:.2f} s "
          f"(RTF {t_fast / seconds:.4f}); deviation from exact on the {seconds:.0f} s clip: SIG {f.sig - got.sig:+.3f}, "
          f"BAK {f.bak - got.bak:+.3f}, OVRL {f.ovrl - got.ovrl:+.3f}, P.808 {f.p808 - got.p808:+.3f}")
    print("shared speech clips: split vs window by window (largest score difference), fast - exact:")
    worst_ref, worst_fast = 0.0, {"sig": 0.0, "bak": 0.0, "ovrl": 0.0, "p808": 0.0}
    for p in speech_clips():
        y, rate = sf.read(p, dtype="float32")
        a, b, r = split.score(y, rate), fast.score(y, rate), dm.window_by_window_scores(y, rate)
        worst_ref = max(worst_ref, scores_diff(a, r))
        dev = {k: getattr(b, k) - getattr(a, k) for k in worst_fast}
        worst_fast = {k: max(worst_fast[k], abs(v)) for k, v in dev.items()}
        print(f"  {str(p.relative_to(DATA))[-50:]:50s} {len(y) / rate:5.1f} s  windows {a.windows:2d}/{b.windows}  "
              f"split-ref {scores_diff(a, r):.1e}  fast-exact SIG {dev['sig']:+.3f} BAK {dev['bak']:+.3f} "
              f"OVRL {dev['ovrl']:+.3f} P.808 {dev['p808']:+.3f}")
    print(f"  largest: split vs window by window {worst_ref:.1e}; fast vs exact "
          + ", ".join(f"{k.upper()} {v:.3f}" for k, v in worst_fast.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["nsnet2-16k", "deepfilternet3"])
    ap.add_argument("--dnsmos-seconds", type=float, default=120.0, help="length of the DNSMOS comparison clip")
    ap.add_argument("--dnsmos-runs", type=int, default=3, help="interleaved runs of the DNSMOS comparison")
    ap.add_argument("--only-dnsmos", action="store_true", help="run only the DNSMOS comparison")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    if args.only_dnsmos:
        dnsmos_batched_vs_window_by_window(args.dnsmos_seconds, args.dnsmos_runs)
        return
    clean, sr = sf.read(DATA / "dns3/0015_clean.wav")
    noisy, _ = sf.read(DATA / "dns3/0015_noisy.wav")
    print(f"intrusive metrics on a {len(clean) / sr:.1f} s clip at {sr} Hz (median of 3, seconds):")
    for key in M.intrusive_keys():
        print(f"  {key:18s} {timed(lambda: M.intrusive_metrics(clean, noisy, sr, metrics=[key])):.3f}")
    print(f"  {'all':18s} {timed(lambda: M.intrusive_metrics(clean, noisy, sr)):.3f}")
    d = shared_dnsmos()
    d.score(noisy, sr)  # warm-up
    long = np.tile(noisy, 12)
    print(f"DNSMOS: 5 s clip {timed(lambda: d.score(noisy, sr)):.3f} s, 60 s clip {timed(lambda: d.score(long, sr), 1):.3f} s")
    dnsmos_batched_vs_window_by_window(args.dnsmos_seconds, args.dnsmos_runs)
    from workbench.core.enhance.registry import load_enhancer

    for spec in args.models:
        rep = probe_enhancer(load_enhancer(spec), audio=noisy.astype(np.float32), sample_rate=sr)
        print(json.dumps({k: rep.to_dict()[k] for k in ("model", "causal", "lookahead_samples", "latency_samples",
                                                          "latency_ms", "rtf", "parameters", "macs_per_second")}))


if __name__ == "__main__":
    main()
