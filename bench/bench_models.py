"""Model speed figures: real-time factors, DFN3 engine vs native frame loop, and GUI event-loop stalls.

Run from the repository root::

    .venv/bin/python bench/bench_models.py            # RTFs at 1 and 2 threads + DFN3 ratio
    .venv/bin/python bench/bench_models.py --stall    # also: longest event-loop stall on a 10-minute file

* **RTF** (real-time factor) = processing seconds / audio seconds, through the engine
  (:func:`workbench.core.enhance.enhancer.enhance`, including soxr resampling when the model's rate differs),
  on the three dns3 clips joined (15 s, 16 kHz). Median of ``--repeats`` runs, after one warm-up.
  Each thread count runs in its own process with ``WORKBENCH_THREADS``/``OMP_NUM_THREADS`` set, so
  torch and onnxruntime size their pools from the start. The native DFN3 library and the classical
  methods are single-threaded whatever the setting.
* **DFN3 ratio**: the engine on 48 kHz audio (no resampling), streaming and offline paths, vs. the
  library's own hop-by-hop loop driven from Python through ctypes (one ``df_process_frame`` per 480
  samples). ``bench/bench_dfn3.py`` adds fidelity and a long file.
* **Stall**: a ``ModelPanel`` runs a model on a 10-minute recording while a 5 ms QTimer records the
  longest gap between its ticks (offscreen Qt). Goal: under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
GTCRN_CKPT = DATA / "models" / "gtcrn" / "model_trained_on_dns3.tar"
#: Model files people download, loaded by path: GTCRN's streaming ONNX export and DTLN's folder.
PATH_MODELS = [DATA / "models" / "gtcrn" / "gtcrn_simple.onnx", DATA / "models" / "dtln"]
#: Every built-in on its default path, plus the second path of models that have two.
BUILTINS = ["spectral-subtraction", "wiener", "logmmse", "nsnet2-16k", "nsnet2-48k", "deepfilternet3",
            "deepfilternet3@streaming", "rnnoise", "gtcrn-dns3", "gtcrn-dns3@streaming", "gtcrn-vctk"]


def dns3_joined() -> np.ndarray:
    return np.concatenate([sf.read(DATA / "dns3" / f"{c}_noisy.wav", dtype="float32")[0]
                           for c in ("0015", "0016", "0072")])


def load(spec: str):
    from workbench.core.enhance.registry import load_enhancer
    return load_enhancer(spec)


def specs() -> list[str]:
    out = list(BUILTINS)
    try:
        import workbench_models.loaders  # noqa: F401
        if GTCRN_CKPT.exists():
            out.append(str(GTCRN_CKPT))
        out += [str(p) for p in PATH_MODELS if p.exists()]
    except ImportError:
        pass
    return out


def time_engine(enhancer, audio: np.ndarray, rate: int, repeats: int, processing: str | None = None) -> list[float]:
    from workbench.core.enhance.enhancer import enhance_array
    enhance_array(enhancer, audio[: rate], rate, processing=processing)  # warm-up (sessions, first calls)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        enhance_array(enhancer, audio, rate, processing=processing)
        times.append(time.perf_counter() - t0)
    return times


def native_dfn3_loop(x48: np.ndarray) -> None:
    """The library's own frame loop, as its C API is meant to be driven: one hop per call."""
    import ctypes
    from workbench_models import deepfilternet as dfn

    lib = dfn.load_library()
    _, model = dfn.runtime_files()
    state = lib.df_create(str(model).encode(), 100.0, None)
    fp = ctypes.POINTER(ctypes.c_float)
    out = np.zeros(480, np.float32)
    try:
        for i in range(len(x48) // 480):
            frame = np.ascontiguousarray(x48[i * 480:(i + 1) * 480])
            lib.df_process_frame(state, frame.ctypes.data_as(fp), out.ctypes.data_as(fp))
    finally:
        lib.df_free(state)


def worker(threads: int, repeats: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    audio = dns3_joined()
    seconds = len(audio) / 16000
    rows = []
    for spec in specs():
        spec, _, path = spec.partition("@")
        enh = load(spec)
        times = time_engine(enh, audio, 16000, repeats, processing=path or None)
        rows.append({"id": enh.info.id + (f"@{path}" if path else ""), "processing": path or enh.info.processing,
                     "rate": enh.info.sample_rate, "rtf": statistics.median(times) / seconds, "runs": len(times)})
        enh.close()
    result = {"threads": threads, "audio_s": seconds, "models": rows}
    if threads == 1:
        from workbench_models.deepfilternet import DeepFilterNet3
        x48, sr = sf.read(DATA / "dfn" / "noisy_snr0.wav", dtype="float32")
        x48 = x48[: len(x48) // 480 * 480]
        native, engine, offline = [], [], []
        enh = DeepFilterNet3()
        time_engine(enh, x48, sr, 0)
        time_engine(enh, x48, sr, 0, processing="streaming")
        for _ in range(repeats):  # interleaved so all see the same machine state
            t0 = time.perf_counter()
            native_dfn3_loop(x48)
            native.append(time.perf_counter() - t0)
            engine += time_engine(enh, x48, sr, 1, processing="streaming")[-1:]
            __import__("workbench_models.deepfilternet").deepfilternet.NATIVE_STATES.wait_filled()
            offline += time_engine(enh, x48, sr, 1)[-1:]
        dur = len(x48) / sr
        result["dfn3"] = {"audio_s": dur, "native_rtf": statistics.median(native) / dur,
                          "engine_rtf": statistics.median(engine) / dur,
                          "offline_rtf": statistics.median(offline) / dur,
                          "ratio": statistics.median(engine) / statistics.median(native),
                          "offline_speedup": statistics.median(native) / statistics.median(offline)}
    return result


def stall(seconds: float, models: list[str]) -> list[dict]:
    """Longest gap between 5 ms timer ticks while the model panel runs each model on a long file."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from workbench.core.document.recording import Recording
    from workbench.gui import compat
    from workbench.gui.model_panel import ModelPanel

    compat.apply()
    app = QApplication.instance() or QApplication([])
    base = dns3_joined()
    long = np.tile(base, int(np.ceil(seconds * 16000 / len(base))))[: int(seconds * 16000)]
    out = []
    for spec in models:
        rec = Recording.from_array(long[:, None], 16000, name="long.wav")
        panel = ModelPanel(lambda: rec, show_dialogs=False)
        panel.show()
        panel.refresh()
        if spec not in panel.model_specs():
            panel._loaded[spec] = load(spec)
            panel.refresh()
        panel.select(spec)
        clock = QElapsedTimer()
        gaps: list[float] = []
        last = [0.0]

        def tick():
            now = clock.nsecsElapsed() / 1e6
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(tick)
        done = []
        panel.runFinished.connect(done.append)
        clock.start()
        timer.start()
        t0 = time.perf_counter()
        panel.start()
        while not done:
            app.processEvents()
            time.sleep(0.001)  # the loop sleeps like an idle GUI; gaps come from the worker's GIL use
        elapsed = time.perf_counter() - t0
        timer.stop()
        panel.close()
        g = np.array(gaps[1:])
        out.append({"model": spec, "outcome": done[0], "audio_s": seconds, "elapsed_s": elapsed,
                    "max_gap_ms": float(g.max()), "p99_gap_ms": float(np.percentile(g, 99)),
                    "ticks": len(g)})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--worker", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    ap.add_argument("--stall", action="store_true", help="measure GUI event-loop stalls on a long file")
    ap.add_argument("--stall-seconds", type=float, default=600.0)
    ap.add_argument("--stall-models", default="spectral-subtraction,nsnet2-16k,deepfilternet3")
    ap.add_argument("--json", metavar="FILE", help="also write all results as JSON")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats)))
        return 0
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.python_implementation()} {platform.python_version()}", "runs": []}
    for threads in (1, 2):
        env = dict(os.environ, WORKBENCH_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        proc = subprocess.run([sys.executable, __file__, "--worker", str(threads), "--repeats", str(args.repeats)],
                              env=env, capture_output=True, text=True, check=True)
        results["runs"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"Machine: {results['machine']}; RTF = compute s / audio s (median of {args.repeats}), "
          f"{results['runs'][0]['audio_s']:.0f} s of dns3 speech at 16 kHz through the engine")
    print(f"{'model':36s} {'path':10s} {'rate':>6s} {'RTF 1 thr':>10s} {'RTF 2 thr':>10s}")
    by_threads = [{r['id']: r for r in run["models"]} for run in results["runs"]]
    for mid, row in by_threads[0].items():
        print(f"{mid:36s} {row['processing']:10s} {row['rate'] // 1000:>4d}k {row['rtf']:10.4f} "
              f"{by_threads[1][mid]['rtf']:10.4f}")
    d = results["runs"][0]["dfn3"]
    print(f"DeepFilterNet3 on {d['audio_s']:.1f} s at 48 kHz: native frame loop RTF {d['native_rtf']:.4f}, "
          f"engine streaming RTF {d['engine_rtf']:.4f} (engine/native = {d['ratio']:.3f}), engine offline RTF "
          f"{d['offline_rtf']:.4f} ({d['offline_speedup']:.1f}x faster than the native frame loop)")
    if args.stall:
        results["stall"] = stall(args.stall_seconds, args.stall_models.split(","))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
