"""Training throughput and peak memory per architecture.

    .venv/bin/python bench/bench_train.py [--batch 8] [--seconds 4] [--steps 3] [--threads 2]
                                          [--authors-repo PATH_TO_A_GTCRN_CHECKOUT]

For each architecture (GTCRN, GCRN with its default size, the complex net), in a fresh process: one optimiser
step of the workbench trainer's own computation (STFT, network, inverse STFT, GTCRN's hybrid loss, backward,
AdamW) on a batch of ``batch`` clips of ``seconds`` seconds, one warm-up step then the median of ``steps``
timed steps. Prints audio-seconds trained per wall second and per CPU second (the process's CPU time, all its
threads: the figure that survives a machine shared with other work), seconds per step, the peak resident memory
of the process (``ru_maxrss``), and the wall time one epoch over 10 minutes of audio would take at that rate.

The GTCRN authors' public training step runs beside ours on the same clips, threads and measure when
``--authors-repo`` names a checkout of https://github.com/Xiaobin-Rong/gtcrn (nothing of it is copied here;
its ``gtcrn.py`` needs ``einops``): their ``GTCRN`` forward on the spectra their data loader would hand it
(``torch.stft``, 512/256, sqrt-Hann, computed before the timer as their loader does in its workers), their
``HybridLoss`` (``loss.py``), backward, gradient-norm clipping at 3.0 and Adam at lr 1e-3 (the settings of
their training template Xiaobin-Rong/SEtrain). Without ``--authors-repo`` the row says "not run".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def one(arch: str, batch: int, seconds: float, steps: int, threads: int) -> dict:

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
    def step():
        spec, est_spec, est = run_network(net, noisy)
        loss = gtcrn_hybrid(LossBatch(est, clean, noisy, est_spec, stft(clean), spec))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return timed_steps(arch, net, step, steps, batch * seconds)


def timed_steps(arch: str, net, step, steps: int, audio_s: float) -> dict:
    """Run ``step`` ``steps + 1`` times (the first untimed); the medians of wall and CPU time per step, the
    audio seconds per second of each, the trainable parameters and the peak RSS."""
    import resource

    times, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    step_s = statistics.median(times)
    cpu_s = statistics.median(cpu)
    return {"arch": arch, "parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "step_s": step_s, "audio_s_per_s": audio_s / step_s, "cpu_s": cpu_s,
            "audio_s_per_cpu_s": audio_s / cpu_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def authors(repo: str, batch: int, seconds: float, steps: int, threads: int) -> dict:
    """The authors' step (see the module docstring), timed like :func:`one`."""
    import torch

    sys.path.insert(0, repo)
    from gtcrn import GTCRN          # the authors' model (their repository, not ours)
    from loss import HybridLoss      # their loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = GTCRN()
    net.train()
    loss_fn = HybridLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = int(seconds * 16000)
    gen = torch.Generator().manual_seed(1)
    clean = 0.1 * torch.randn(batch, n, generator=gen)
    noisy = clean + 0.05 * torch.randn(batch, n, generator=gen)
    window = torch.hann_window(512).pow(0.5)
    noisy_spec, clean_spec = (torch.view_as_real(torch.stft(x, 512, 256, 512, window, return_complex=True))
                              for x in (noisy, clean))
    def step():
        est = net(noisy_spec)
        loss = loss_fn(est, clean_spec)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 3.0)
        opt.step()

    return timed_steps("authors", net, step, steps, batch * seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", action="append", help="only these architectures (repeatable)")
    ap.add_argument("--authors-repo", metavar="PATH",
                    help="a checkout of Xiaobin-Rong/gtcrn: time the authors' GTCRN training step beside ours")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "authors":
        print(json.dumps(authors(a.authors_repo, a.batch, a.seconds, a.steps, a.threads)))
        return
    if a.child:
        print(json.dumps(one(a.child, a.batch, a.seconds, a.steps, a.threads)))
        return
    print(f"batch {a.batch} x {a.seconds:g} s, {a.threads} threads, median of {a.steps} steps after one warm-up")
    print(f"{'architecture':13s} {'params':>8s} {'s/step':>8s} {'audio-s/s':>10s} {'CPU s/step':>10s} "
          f"{'audio-s/CPU-s':>13s} {'peak MiB':>9s} {'10 min audio':>13s}")
    rows = list(a.arch or ["gtcrn", "gcrn", "complex_net"])
    if "gtcrn" in rows:
        rows.insert(rows.index("gtcrn") + 1, "authors")
    for arch in rows:
        label = "GTCRN authors" if arch == "authors" else arch
        cmd = [sys.executable, __file__, "--child", arch, "--batch", str(a.batch), "--seconds", str(a.seconds),
               "--steps", str(a.steps), "--threads", str(a.threads)]
        if arch == "authors":
            if not a.authors_repo:
                print(f"{label:13s} not run: no --authors-repo (a checkout of Xiaobin-Rong/gtcrn)")
                continue
            if not (Path(a.authors_repo) / "gtcrn.py").is_file() or not (Path(a.authors_repo) / "loss.py").is_file():
                print(f"{label:13s} not run: {a.authors_repo} has no gtcrn.py and loss.py")
                continue
            cmd += ["--authors-repo", str(Path(a.authors_repo).resolve())]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            last = (out.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"{label:13s} not run: {last[:200]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label:13s} {r['parameters']:8d} {r['step_s']:8.2f} {r['audio_s_per_s']:10.2f} {r['cpu_s']:10.2f} "
              f"{r['audio_s_per_cpu_s']:13.2f} {r['peak_rss_mib']:9.0f} {600 / r['audio_s_per_s']:11.0f} s", flush=True)

if __name__ == "__main__":
    main()
