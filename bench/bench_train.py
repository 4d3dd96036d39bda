"""Training throughput and peak memory per architecture.

    .venv/bin/python bench/bench_train.py [--batch 8] [--seconds 4] [--steps 3] [--threads 2]

For each architecture (GTCRN, GCRN with its default size, the complex net), in a fresh process: one optimiser
step of the workbench trainer's own computation (STFT, network, inverse STFT, GTCRN's hybrid loss, backward,
AdamW) on a batch of ``batch`` clips of ``seconds`` seconds, one warm-up step then the median of ``steps``
timed steps. Prints audio-seconds trained per wall second and per CPU second (the process's CPU time, all its
threads: the figure that survives a machine shared with other work), seconds per step, the peak resident memory
of the process (``ru_maxrss``), and the wall time one epoch over 10 minutes of audio would take at that rate.

Reference (GUIDE, measured on this machine): the GTCRN authors' public training step, 8 clips x 4 s, 2 threads:
about 17 s per step (1.9 audio-seconds per second).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def one(arch: str, batch: int, seconds: float, steps: int, threads: int) -> dict:
    import resource

    import torch

    from workbench_models.training.architectures import build_network
    from workbench_models.training.losses import LossBatch, gtcrn_hybrid, stft
    from workbench_models.training.trainer import run_network

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_network(arch, {})
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    n = int(seconds * 16000)
    gen = torch.Generator().manual_seed(1)
    clean = 0.1 * torch.randn(batch, n, generator=gen)
    noisy = clean + 0.05 * torch.randn(batch, n, generator=gen)
    times, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        spec, est_spec, est = run_network(net, noisy)
        loss = gtcrn_hybrid(LossBatch(est, clean, noisy, est_spec, stft(clean), spec))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    step_s = statistics.median(times)
    cpu_s = statistics.median(cpu)
    return {"arch": arch, "parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "step_s": step_s, "audio_s_per_s": batch * seconds / step_s, "cpu_s": cpu_s,
            "audio_s_per_cpu_s": batch * seconds / cpu_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", action="append", help="only these architectures (repeatable)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one(a.child, a.batch, a.seconds, a.steps, a.threads)))
        return
    print(f"batch {a.batch} x {a.seconds:g} s, {a.threads} threads, median of {a.steps} steps after one warm-up")
    print(f"{'architecture':12s} {'params':>8s} {'s/step':>8s} {'audio-s/s':>10s} {'CPU s/step':>10s} "
          f"{'audio-s/CPU-s':>13s} {'peak MiB':>9s} {'10 min audio':>13s}")
    for arch in a.arch or ["gtcrn", "gcrn", "complex_net"]:
        out = subprocess.run([sys.executable, __file__, "--child", arch, "--batch", str(a.batch), "--seconds",
                              str(a.seconds), "--steps", str(a.steps), "--threads", str(a.threads)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{arch:12s} {r['parameters']:8d} {r['step_s']:8.2f} {r['audio_s_per_s']:10.2f} {r['cpu_s']:10.2f} "
              f"{r['audio_s_per_cpu_s']:13.2f} {r['peak_rss_mib']:9.0f} {600 / r['audio_s_per_s']:11.0f} s", flush=True)


if __name__ == "__main__":
    main()
