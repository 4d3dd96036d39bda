"""DeepFilterNet3: offline ONNX path vs the native library's frame loop, speed and fidelity in one run.

Run from the repository root::

    .venv/bin/python bench/bench_dfn3.py [--repeats 3] [--seconds 60] [--threads 1] [--no-fidelity]

* **Speed in one process**: ``--seconds`` (default 60) of 48 kHz speech (``dfn/noisy_snr0.wav`` tiled), one
  thread unless ``--threads`` (``WORKBENCH_THREADS`` is set for this process and the commands below). Three
  timings interleaved per repeat so they see the same machine state: the library's own frame loop driven
  from Python through ctypes (one ``df_process_frame`` per 480 samples, state already created), the engine
  on the streaming path (``processing="streaming"``), and the engine on the offline path (default). The
  state pool's background ``df_create`` after a streaming run is waited for outside the timings. RTF =
  seconds / audio seconds, medians; ratios are of the medians of this run. The CPU time of the same runs
  is printed too (the process's user + system time, a command's likewise), which load distorts less.
* **Speed through the command line**: the same audio as a WAV file, ``workbench enhance -m deepfilternet3``
  offline and ``--processing streaming``, each a fresh process (wall time: start-up, model load, reading
  and writing included), interleaved with the above; ratios against the offline command.
* **Fidelity**: every clip of ``../shared/data`` (dns3, real, pesq, dfn; 16 and 48 kHz) through the
  engine on both paths: circular cross-correlation lag, waveform correlation, and PESQ-WB of each
  path against the clean reference where one exists (dns3), else against the noisy input.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def processor() -> str:
    """The processor as /proc/cpuinfo names it, with its widest vector extension and clock: the frame loop's
    speed against the offline path's differs between hosts (see README)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    vector = next((f for f in ("avx512f", "avx2", "avx") if f in flags), "no AVX")
    clock = f", {float(fields['cpu MHz']):.0f} MHz" if "cpu MHz" in fields else ""
    return (f"{fields.get('model name', platform.machine())} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}, {vector}{clock})")


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


def cli_wall(wav: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """``(wall, CPU)`` seconds of one ``workbench enhance`` process (CPU: its user + system time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # installed: byte code kept
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", "enhance", str(wav), "-m", "deepfilternet3", "-o",
                           str(out), "--overwrite", "--quiet", *extra], env=env, cwd=REPO, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"workbench enhance failed: {proc.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length of the speed runs (seconds)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (WORKBENCH_THREADS)")
    ap.add_argument("--no-fidelity", action="store_true", help="speed only")
    args = ap.parse_args()
    os.environ["WORKBENCH_THREADS"] = str(args.threads)
    from pesq import pesq

    from workbench.core.enhance.enhancer import enhance_array
    from workbench_models import deepfilternet as dfn

    print(f"Machine: {platform.node()}, {processor()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, WORKBENCH_THREADS={args.threads}; 1-minute load "
          f"{os.getloadavg()[0]:.2f} at start")
    enh = dfn.DeepFilterNet3()
    clip, sr = sf.read(DATA / "dfn" / "noisy_snr0.wav", dtype="float32")
    x48 = np.tile(clip, int(np.ceil(args.seconds * sr / len(clip))))[: int(args.seconds * sr) // 480 * 480]
    dur = len(x48) / sr
    lib = dfn.load_library()
    _, model = dfn.runtime_files()
    enhance_array(enh, x48[:sr], sr)  # warm-up: ONNX sessions
    enhance_array(enh, x48[:sr], sr, processing="streaming")  # and the state pool
    dfn.NATIVE_STATES.wait_filled()
    tmp = Path(tempfile.mkdtemp(prefix="bench_dfn3_"))
    atexit.register(shutil.rmtree, tmp, True)
    wav = tmp / "in.wav"
    sf.write(wav, x48, sr, subtype="FLOAT")
    cli_wall(wav, tmp / "warm.wav", [])  # the rewritten networks are in the cache, as after a first run
    wall: dict[str, list[float]] = {k: [] for k in ("native", "streaming", "offline", "cli_off", "cli_str")}
    cpu: dict[str, list[float]] = {k: [] for k in wall}

    def timed(key: str, run) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        run()
        wall[key].append(time.perf_counter() - t0)
        cpu[key].append(time.process_time() - c0)

    for _ in range(args.repeats):
        state = lib.df_create(str(model).encode(), 100.0, None)
        timed("native", lambda: native_frame_loop(state, lib, x48))
        lib.df_free(state)
        timed("streaming", lambda: enhance_array(enh, x48, sr, processing="streaming"))
        dfn.NATIVE_STATES.wait_filled()  # the pool's background df_create must not overlap a timing
        timed("offline", lambda: enhance_array(enh, x48, sr))
        for key, extra in (("cli_off", []), ("cli_str", ["--processing", "streaming"])):
            w, c = cli_wall(wav, tmp / f"{key}.wav", extra)
            wall[key].append(w)
            cpu[key].append(c)
    n, s, o, co, cs = (statistics.median(wall[k]) for k in wall)
    print(f"\nSpeed, {dur:.0f} s at 48 kHz, {args.threads} thread(s), medians of {args.repeats} "
          f"(1-minute load {os.getloadavg()[0]:.2f} at the end):")
    print(f"  one process:  native frame loop {n:.2f} s (RTF {n / dur:.4f})   engine streaming {s:.2f} s "
          f"(RTF {s / dur:.4f})   engine offline {o:.2f} s (RTF {o / dur:.4f})")
    print(f"                offline is {n / o:.1f}x the native frame loop, {s / o:.1f}x the engine's streaming "
          f"path (streaming/native = {s / n:.3f})")
    print(f"  command line: workbench enhance offline {co:.2f} s (RTF {co / dur:.4f})   --processing streaming "
          f"{cs:.2f} s (RTF {cs / dur:.4f})")
    print(f"                offline command is {cs / co:.1f}x the streaming command and {n / co:.1f}x the "
          f"in-process native frame loop")
    # Load stretches wall time unevenly (the frame loop's thousands of calls more than a few large ones);
    # CPU time (this process's; the command's user + system) is what the machine's load changes least.
    n, s, o, co, cs = (statistics.median(cpu[k]) for k in cpu)
    print(f"  CPU time:     native frame loop {n:.3f} s, engine streaming {s:.3f} s, engine offline {o:.3f} s "
          f"({n / o:.1f}x), workbench enhance offline {co:.3f} s ({n / co:.1f}x), --processing streaming "
          f"{cs:.3f} s")
    if args.no_fidelity:
        return 0

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
