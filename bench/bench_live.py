"""Benchmark: live mode per model — cost per block, pipeline and end-to-end latency, dropped blocks.

For each model, in a fresh process with one intra-op thread (threadpoolctl, ``torch.set_num_threads(1)``):

* **admission** as the Live panel does it (streaming path; the causality probe unless ``--no-probe``);
* **cost per block**, pinned to one core (``sched_setaffinity``): ``--cost-blocks`` pushes of a speech-like
  signal through the model's live chain at
  ``--rate`` with ``--block-ms`` blocks; median and 99th percentile of the thread's CPU time (what a
  block costs one core by itself) and of wall-clock time (what it cost on this machine as loaded), against
  the block period;
* **a live run** of ``--seconds`` on real PortAudio devices without a sound card: ALSA's ``file`` plugin
  (the recipe in README, "Testing live audio without a sound card") plays a speech file into the capture
  device, and the playback device writes into a FIFO that a separate process drains at the sample rate,
  so the run is paced in real time. Reported: the pipeline delay (algorithmic + resampling/framing +
  one block + headroom), the delay measured on the signals (cross-correlation of what was heard with the
  microphone), the devices' buffers as PortAudio reports them, the end-to-end figure, and the blocks that
  missed their deadline (played dry) over the run.

Usage::

    .venv/bin/python bench/bench_live.py [--models rnnoise,gtcrn-dns3,...] [--seconds 60] [--rate 48000]
                                         [--block-ms 10] [--headroom-blocks 0] [--json OUT.json]

The machine it ran on and its load average are printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("rnnoise", "gtcrn-dns3", "deepfilternet3", "nsnet2-48k", "wiener", "spectral-subtraction", "logmmse")

ASOUNDRC = """pcm.!default {{ type asym playback.pcm "fileout" capture.pcm "filein" }}
pcm.fileout {{ type file slave.pcm "nullout" file "{out}" format "raw" }}
pcm.filein  {{ type file slave.pcm "nullin" file "/dev/null" infile "{inp}" format "raw" }}
pcm.nullout {{ type null }}
pcm.nullin  {{ type null }}
"""

#: Drains the playback FIFO at the sample rate, in its own process (a sound card's clock does not
#: compete with the workbench for the interpreter lock), one device block at a time: a pipe frees space in
#: whatever pieces its reader takes, so reading a page (1024 samples) at once would wake the callback in
#: bursts of two 480-sample blocks every 21 ms, and the second block of each burst would find its result
#: not yet computed — a test-rig artefact a sound card, which asks for one period at a time, does not have.
#: For the same reason the reader asks for real-time scheduling: a late reader makes the callbacks come in
#: bursts when it catches up.
READER = r"""
import fcntl, os, sys, time
path, rate, stop_file, chunk = sys.argv[1], int(sys.argv[2]), sys.argv[3], 4 * int(sys.argv[4])
try:  # a sound card's clock is never late: where allowed, the emulated one runs ahead of the machine's load
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(45))
except (AttributeError, OSError):
    pass
t0, n = None, 0
while not os.path.exists(stop_file):
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
        except OSError:
            pass
        while b := os.read(fd, chunk):
            t0 = t0 or time.perf_counter()
            n += len(b) // 4
            wait = t0 + n / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.02:
                t0 -= wait
    finally:
        os.close(fd)
"""

CHILD = r"""
import json, os, sys, time
all_cores = os.sched_getaffinity(0)
os.sched_setaffinity(0, {min(all_cores)})  # the cost per block: one core
from threadpoolctl import threadpool_limits
threadpool_limits(1)
model, rate, block, headroom, seconds, cost_blocks, probe, quality, refuse, realtime = sys.argv[1:11]
rate, block, seconds, cost_blocks = int(rate), int(block), float(seconds), int(cost_blocks)
try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    pass
from workbench.core.errors import WorkbenchError
from workbench.core.enhance.registry import load_enhancer
from workbench.core.live.chain import admit, measure_block_cost
from workbench.core.live.engine import LiveConfig, LiveEngine
res = {"model": model}
try:
    t = time.perf_counter()
    adm = admit(load_enhancer(model), rate, block, check_causality=probe == "1", check_cost=False, quality=quality)
    res["admit_s"] = time.perf_counter() - t
    cost = measure_block_cost(adm.enhancer, rate, block, blocks=cost_blocks, quality=quality)
    res.update(cost_median_ms=1000 * cost.median_s, cost_p99_ms=1000 * cost.p99_s, cost_mean_ms=1000 * cost.mean_s,
               cpu_median_ms=1000 * cost.cpu_median_s, cpu_p99_ms=1000 * cost.cpu_p99_s,
               period_ms=1000 * cost.period_s, causality=adm.causality)
    if cost.mean_s > cost.period_s and refuse == "1":
        raise WorkbenchError(f"too slow for live use: {cost.text()}")
    # the live run as a person would have it: the callback, the processing thread and the rest of the
    # machine share every core
    os.sched_setaffinity(0, all_cores)
    engine = LiveEngine(LiveConfig(rate=rate, block=block, headroom_blocks=float(headroom), realtime=realtime == "1"), adm)
    engine.start()
    time.sleep(seconds)
    stats = engine.stats(measure=True)
    engine.stop()
    lat = stats.latency
    res.update(algorithmic_ms=lat.ms(lat.algorithmic), resampling_ms=lat.ms(lat.resampling),
               pipeline_ms=lat.ms(lat.pipeline),
               measured_ms=None if stats.measured_lag is None else lat.ms(stats.measured_lag),
               device_in_ms=1000 * lat.device_in_s, device_out_ms=1000 * lat.device_out_s,
               end_to_end_ms=1000 * lat.total_s, blocks=stats.blocks, dropped=stats.dropped,
               resyncs=stats.resyncs, xruns=stats.xruns, load_median=stats.load_median, seconds=seconds,
               scheduling=stats.scheduling, loadavg_end=os.getloadavg()[0],
               burst_blocks=stats.burst_blocks, notes=stats.notes,
               drop_times_s=[round(int(p) / rate, 2) for p in engine._drop_pos[:min(engine.dropped, 50)]])
except WorkbenchError as exc:
    res["refused"] = str(exc)
print("RESULT " + json.dumps(res))
"""


def run_model(model: str, args, folder: Path, speech) -> dict:
    import numpy as np

    work = folder / model
    work.mkdir()
    home = work / "home"
    home.mkdir()
    inp, out, stop = work / "in.raw", work / "out.raw", work / "stop"
    reps = int(np.ceil((args.seconds + 30) * args.rate / len(speech)))
    np.tile(speech, reps).astype("<f4").tofile(inp)
    os.mkfifo(out)
    (home / ".asoundrc").write_text(ASOUNDRC.format(out=out, inp=inp))
    block = int(args.rate * args.block_ms / 1000)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out), str(args.rate), str(stop), str(block)])
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, model, str(args.rate), str(block),
                               str(args.headroom_blocks), str(args.seconds), str(args.cost_blocks),
                               "0" if args.no_probe else "1", args.resample_quality,
                               "0" if args.no_refuse else "1", "0" if args.no_realtime else "1"], env=env, capture_output=True, text=True,
                              timeout=args.seconds + 900)
    finally:
        stop.touch()
        try:  # wake the reader if it waits for a writer
            os.close(os.open(out, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        reader.wait(10)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return {"model": model, "refused": "failed: " + proc.stderr.strip().splitlines()[-1] if proc.stderr else "?"}
    return json.loads(lines[-1][7:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each live run (default 60)")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--headroom-blocks", type=float, default=0.0)
    ap.add_argument("--cost-blocks", type=int, default=500)
    ap.add_argument("--resample-quality", default="HQ", help="soxr quality of the live resamplers (default HQ)")
    ap.add_argument("--no-refuse", action="store_true",
                    help="run the live part even when the mean cost exceeds the block period")
    ap.add_argument("--no-probe", action="store_true", help="skip the causality probe in the admission")
    ap.add_argument("--no-realtime", action="store_true",
                    help="keep the live threads at ordinary priority (default: real-time where allowed)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    import numpy as np
    import soundfile as sf
    import soxr

    demo = Path(__file__).resolve().parents[1] / "assets" / "demo"
    wavs = sorted(demo.glob("*.wav"))
    x, sr = sf.read(wavs[0], dtype="float32") if wavs else (None, None)
    if x is None:
        from workbench.core.workflows.probes import probe_signal
        x, sr = probe_signal(args.rate, 10.0), args.rate
    x = x if x.ndim == 1 else x.mean(axis=1)
    speech = soxr.resample(x, sr, args.rate).astype(np.float32) if sr != args.rate else x
    results = []
    # the device files live in memory (tmpfs) where there is one: a sound card's samples never wait for a
    # disk, and the file plugin reads the capture file on the callback's thread
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bench-live-", dir=shm) as tmp:
        for model in args.models.split(","):
            t = time.time()
            res = run_model(model.strip(), args, Path(tmp), speech)
            res["wall_s"] = time.time() - t
            results.append(res)
            print(json.dumps(res), flush=True)
    load = os.getloadavg()
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; {args.rate} Hz, {args.block_ms:g} ms blocks, "
          f"headroom {args.headroom_blocks:g} blocks, {args.seconds:g} s runs, resampling {args.resample_quality}; "
          "cost on one core; live threads " + ("ordinary" if args.no_realtime else "real-time where allowed"))
    head = (f"{'model':22s} {'cpu med':>7s} {'p99':>6s} {'wall med':>8s} {'p99':>7s} {'period':>6s} {'algor.':>7s} {'pipeline':>8s} "
            f"{'measured':>8s} {'devices':>9s} {'e2e':>6s} {'dropped':>10s}")
    print(head)
    for r in results:
        if "refused" in r and "cost_median_ms" not in r:
            print(f"{r['model']:22s} refused: {r['refused']}")
            continue
        cpu = f"{r['cpu_median_ms']:7.2f} {r['cpu_p99_ms']:6.2f} "
        if "refused" in r:
            print(f"{r['model']:22s} {cpu}{r['cost_median_ms']:7.2f}  {r['cost_p99_ms']:6.2f} {r['period_ms']:6.1f} "
                  f"refused: {r['refused']}")
            continue
        meas = f"{r['measured_ms']:.1f}" if r.get("measured_ms") is not None else "n/a"
        print(f"{r['model']:22s} {cpu}{r['cost_median_ms']:7.2f}  {r['cost_p99_ms']:6.2f} {r['period_ms']:6.1f} "
              f"{r['algorithmic_ms']:7.1f} {r['pipeline_ms']:8.1f} {meas:>8s} "
              f"{r['device_in_ms']:4.0f}+{r['device_out_ms']:<4.0f} {r['end_to_end_ms']:6.1f} "
              f"{r['dropped']:>4d}/{r['blocks']:<5d}")
        if r.get("scheduling"):
            print(f"{'':22s} {r['scheduling']}; load average at the end {r.get('loadavg_end', 0):.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
