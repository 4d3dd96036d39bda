"""DeepFilterNet3: offline ONNX path vs the native library's frame loop, speed and fidelity in one run.

Run from the repository root (one thread, as the issue's goal is stated)::

    WORKBENCH_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dfn3.py [--repeats 5] [--long-s 600]

* **Speed**: 48 kHz speech (``dfn/noisy_snr0.wav``, 10.6 s). Three timings interleaved per repeat so they
  see the same machine state: the library's own frame loop driven from Python through ctypes (one
  ``df_process_frame`` per 480 samples, state already created), the engine on the streaming path
  (``processing="streaming"``), and the engine on the offline path (default). The state pool's
  background ``df_create`` after a streaming run is waited for outside the timings. RTF = seconds / audio
  seconds, medians; ratios are of the medians of this run. ``--long-s`` adds one run of each path on
  a file that long (the clip tiled), so the 60 s chunking of the offline path is timed too.
* **Fidelity**: every clip of ``../shared/data`` (dns3, real, pesq, dfn; 16 and 48 kHz) through the
  engine on both paths: circular cross-correlation lag, waveform correlation, and PESQ-WB of each
  path against the clean reference where one exists (dns3), else against the noisy input.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


def native_frame_loop(state, lib, x48: np.ndarray) -> None:
    fp = ctypes.POINTER(ctypes.c_float)
    out = np.zeros(480, np.float32)
    for i in range(len(x48) // 480):
        frame = np.ascontiguousarray(x48[i * 480:(i + 1) * 480])
        lib.df_process_frame(state, frame.ctypes.data_as(fp), out.ctypes.data_as(fp))


def clips() -> list[Path]:
    out = []
    for folder in ("dns3", "real", "pesq", "dfn"):
        for p in sorted((DATA / folder).glob("*.wav")):
            if p.stem.endswith(("_GTCRN", "_RNNoise", "_clean")) or p.name.startswith(("rir_", "clean_", "noise_")):
                continue
            out.append(p)
    return out


def lag_and_corr(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    n = 1 << int(np.ceil(np.log2(2 * len(a))))
    r = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    k = int(np.argmax(r))
    return (k if k < n // 2 else k - n), float(np.corrcoef(a, b)[0, 1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--long-s", type=float, default=0.0, help="also time a file this long (seconds)")
    args = ap.parse_args()
    from pesq import pesq

    from workbench.core.enhance.enhancer import enhance_array
    from workbench_models import deepfilternet as dfn

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, WORKBENCH_THREADS={os.environ.get('WORKBENCH_THREADS', 'unset')}")
    enh = dfn.DeepFilterNet3()
    x48, sr = sf.read(DATA / "dfn" / "noisy_snr0.wav", dtype="float32")
    x48 = x48[: len(x48) // 480 * 480]
    dur = len(x48) / sr
    lib = dfn.load_library()
    _, model = dfn.runtime_files()
    enhance_array(enh, x48[:sr], sr)  # warm-up: ONNX sessions
    enhance_array(enh, x48[:sr], sr, processing="streaming")  # and the state pool
    dfn.NATIVE_STATES.wait_filled()
    native, streaming, offline = [], [], []
    for _ in range(args.repeats):
        state = lib.df_create(str(model).encode(), 100.0, None)
        t0 = time.perf_counter()
        native_frame_loop(state, lib, x48)
        native.append(time.perf_counter() - t0)
        lib.df_free(state)
        t0 = time.perf_counter()
        enhance_array(enh, x48, sr, processing="streaming")
        streaming.append(time.perf_counter() - t0)
        dfn.NATIVE_STATES.wait_filled()  # the pool's background df_create must not overlap a timing
        t0 = time.perf_counter()
        enhance_array(enh, x48, sr)
        offline.append(time.perf_counter() - t0)
    n, s, o = (statistics.median(v) / dur for v in (native, streaming, offline))
    print(f"\nSpeed, {dur:.1f} s at 48 kHz, medians of {args.repeats}:")
    print(f"  native frame loop RTF {n:.4f}   engine streaming RTF {s:.4f}   engine offline RTF {o:.4f}")
    print(f"  offline is {n / o:.1f}x faster than the native frame loop, {s / o:.1f}x faster than the "
          f"engine's streaming path (streaming/native = {s / n:.3f})")
    if args.long_s > 0:
        reps = int(np.ceil(args.long_s * sr / len(x48)))
        long = np.tile(x48, reps)[: int(args.long_s * sr)]
        t0 = time.perf_counter()
        enhance_array(enh, long, sr)
        t_off = time.perf_counter() - t0
        state = lib.df_create(str(model).encode(), 100.0, None)
        t0 = time.perf_counter()
        native_frame_loop(state, lib, long)
        t_nat = time.perf_counter() - t0
        lib.df_free(state)
        print(f"  {args.long_s:.0f} s file: offline RTF {t_off / args.long_s:.4f}, native frame loop RTF "
              f"{t_nat / args.long_s:.4f}, ratio {t_nat / t_off:.1f}x")

    print("\nFidelity, offline vs streaming (native frame loop) through the engine:")
    print(f"  {'clip':58s} {'rate':>5s} {'lag':>4s} {'correlation':>14s} {'PESQ off':>8s} {'PESQ str':>8s} {'diff':>6s}")
    worst_corr, worst_pesq = 1.0, 0.0
    for path in clips():
        x, rate = sf.read(path, dtype="float32")
        if x.ndim > 1:
            x = x[:, 0]
        y_off = enhance_array(enh, x, rate)
        y_str = enhance_array(enh, x, rate, processing="streaming")
        lag, corr = lag_and_corr(y_off, y_str)
        clean_path = path.with_name(path.name.replace("_noisy", "_clean"))
        ref = sf.read(clean_path, dtype="float32")[0] if clean_path != path and clean_path.exists() else x
        ref16, o16, s16 = ref, y_off, y_str
        if rate != 16000:
            import soxr
            ref16, o16, s16 = (soxr.resample(v, rate, 16000) for v in (ref, y_off, y_str))
        p_off, p_str = pesq(16000, ref16, o16, "wb"), pesq(16000, ref16, s16, "wb")
        worst_corr, worst_pesq = min(worst_corr, corr), max(worst_pesq, abs(p_off - p_str))
        print(f"  {path.parent.name + '/' + path.name[:50]:58s} {rate // 1000:>4d}k {lag:>4d} {corr:14.10f} "
              f"{p_off:8.3f} {p_str:8.3f} {p_off - p_str:+6.3f}")
    print(f"  worst correlation {worst_corr:.10f}, largest PESQ-WB difference {worst_pesq:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
