"""Benchmark: playback memory of a long recording with three versions.

Writes a 48 kHz mono recording of ``--hours`` (default 1) and two more "versions" of the same length
(processed variants, as WAV files) to a temporary folder, then, in a fresh process per path (so the
imports are counted honestly and nothing is shared between the two):

    * opens them as a :class:`~workbench.core.document.recording.Recording` whose three versions are file-backed
      (the original and two results read from disk, as results restored from a session are);
    * loads them into a headless :class:`~workbench.core.audio.playback.PlaybackEngine` (no device, 48 kHz);
    * plays ``--seconds`` (default 60) of 512-frame callbacks, paced at ``--speed`` times real time (the
      feeder thread must keep up as it would with a sound card), with an A/B/C switch every 2 s, a
      strength move, a seek into the 40th minute and a 10 s loop that wraps twice;
    * reports the preparation time, peak RSS of the whole process (``VmHWM``), peak RSS during playback
      alone (``VmHWM`` reset after loading, via ``/proc/self/clear_refs``), underruns (blocks missing
      when the callback needed them), callback time (median, 99th percentile, max; the interpreter
      switch interval is 1 ms as in the window, so a callback may wait that long for the feeder thread
      to hand over the GIL) and a checksum of the output.

The two paths: ``blocks`` (the default engine: disk-backed block caches above ``RAM_PLAYBACK_BYTES``)
and ``ram`` (every version held in RAM at the device rate, the threshold forced high: the old
behaviour). Their output checksums must agree: same samples, two ways of holding them.

Usage::

    .venv/bin/python bench/bench_playback.py [--hours 1] [--seconds 60] [--speed 4] [--keep DIR]

The files are removed afterwards unless ``--keep`` is given. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RATE = 48000
BLOCK = 512


def write_versions(folder: Path, seconds: int, block_s: int = 10) -> list[Path]:
    """Write the original and two processed variants, ``seconds`` long, 48 kHz mono PCM_16, in blocks."""
    import soundfile as sf

    paths = [folder / "original.wav", folder / "denoised.wav", folder / "residual-like.wav"]
    rng = np.random.default_rng(0)
    n_block = block_s * RATE
    handles = [sf.SoundFile(p, "w", RATE, 1, subtype="PCM_16") for p in paths]
    try:
        written = 0
        while written < seconds * RATE:
            n = min(n_block, seconds * RATE - written)
            t = (np.arange(n) + written) / RATE
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
            speech = 0.1 * np.sin(2 * np.pi * 440.0 * t) * envelope + 0.03 * np.sin(2 * np.pi * 3150.0 * t)
            noise = 0.05 * rng.standard_normal(n)
            handles[0].write((speech + noise).astype(np.float32))
            handles[1].write((speech + 0.1 * noise).astype(np.float32))
            handles[2].write((0.9 * noise).astype(np.float32))
            written += n
    finally:
        for h in handles:
            h.close()
    return paths


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def child(path_kind: str, folder: Path, seconds: float, speed: float) -> dict:
    """One measured run (in its own process)."""
    t_start = time.perf_counter()
    sys.setswitchinterval(0.001)  # as the window sets it (workbench.gui.app), without importing Qt here
    from workbench.core.audio.audio_io import open_source
    from workbench.core.audio.playback import PlaybackEngine
    from workbench.core.document.recording import Recording, Version

    rss_imports = _status_kib("VmRSS")
    rec = Recording(folder / "original.wav")
    for name in ("denoised.wav", "residual-like.wav"):
        rec.versions.append(Version(name, "enhanced", open_source(folder / name)))
    kw = {"ram_limit_bytes": 1 << 62} if path_kind == "ram" else {}
    eng = PlaybackEngine(None, sample_rate=RATE, **kw)
    t0 = time.perf_counter()
    eng.load(rec)
    prepare_s = time.perf_counter() - t0
    hwm_after_load = _status_kib("VmHWM")
    try:  # reset the high-water mark: what follows is playback alone
        Path("/proc/self/clear_refs").write_text("5")
        playback_reset = True
    except OSError:
        playback_reset = False
    eng.set_loudness_match(True)
    eng.play()
    out = np.zeros((BLOCK, 2), np.float32)
    n_calls = int(seconds * RATE / BLOCK)
    period = BLOCK / RATE / speed
    times = np.zeros(n_calls)
    checksum = 0.0
    started = time.perf_counter()
    for j in range(n_calls):
        t_song = j * BLOCK / RATE
        if j and j % int(2 * RATE / BLOCK) == 0:
            eng.select_version((j // int(2 * RATE / BLOCK)) % 3)
        if j == int(10 * RATE / BLOCK):
            eng.set_strength(1, 0.5)
        if j == int(20 * RATE / BLOCK):
            eng.seek_s(40 * 60.0 if eng.duration_s > 45 * 60 else eng.duration_s / 2)
        if j == int(30 * RATE / BLOCK):
            a = eng.position_s
            eng.set_loop_s(a + 1.0, a + 11.0)  # ahead of the playhead: played through, then wrapped
        # pace: the sound card asks for a block every BLOCK / RATE seconds (here / speed)
        wait = started + t_song / speed - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        c0 = time.perf_counter()
        eng.callback(out, BLOCK, None, None)
        times[j] = time.perf_counter() - c0
        checksum += float(np.abs(out[:, 0]).sum(dtype=np.float64))
    result = {
        "path": path_kind,
        "disk_backed": eng.disk_backed,
        "prepare_s": prepare_s,
        "process_s": time.perf_counter() - t_start,
        "rss_after_imports_mib": rss_imports / 1024,
        "peak_rss_load_mib": hwm_after_load / 1024,
        "peak_rss_total_mib": max(hwm_after_load, _status_kib("VmHWM")) / 1024,
        "peak_rss_playback_mib": _status_kib("VmHWM") / 1024 if playback_reset else None,
        "underruns": eng.underruns,
        "callback_errors": eng.callback_errors,
        "callback_median_us": float(np.median(times)) * 1e6,
        "callback_p99_us": float(np.percentile(times, 99)) * 1e6,
        "callback_max_us": float(times.max()) * 1e6,
        "callbacks_over_5ms": int((times > 0.005).sum()),
        "callbacks": n_calls,
        "checksum": checksum,
    }
    eng.close()
    eng.unload()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio played per run")
    ap.add_argument("--speed", type=float, default=4.0, help="callbacks paced at this many times real time")
    ap.add_argument("--keep", type=Path, help="write the files here and keep them")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.seconds, args.speed)))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-playback-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        write_versions(folder, int(round(args.hours * 3600)))
        print(f"wrote 3 x {args.hours:g} h of 48 kHz mono PCM_16 in {time.perf_counter() - t0:.1f} s", flush=True)
        rows = []
        for kind in ("blocks", "ram"):
            proc = subprocess.run([sys.executable, __file__, "--child", kind, str(folder), "--seconds",
                                   str(args.seconds), "--speed", str(args.speed)],
                                  capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                print(f"{kind}: failed\n{proc.stderr}", file=sys.stderr)
                sys.exit(1)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{kind}: done", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\nPlayback of a {args.hours:g} h 48 kHz recording with 3 versions; {args.seconds:g} s of 512-frame "
          f"callbacks at {args.speed:g}x real time (A/B/C switches, strength, seek, loop)\n")
    print("| path | prepare s | RSS after imports | peak RSS (load + play) | peak RSS during playback "
          "| underruns | callback median / p99 / max | callbacks > 5 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        label = "disk-backed blocks (default)" if r["path"] == "blocks" else "all versions in RAM (old)"
        play = f"{r['peak_rss_playback_mib']:.0f} MiB" if r["peak_rss_playback_mib"] is not None else "n/a"
        print(f"| {label} | {r['prepare_s']:.1f} | {r['rss_after_imports_mib']:.0f} MiB | "
              f"**{r['peak_rss_total_mib']:.0f} MiB** | {play} | {r['underruns']} | "
              f"{r['callback_median_us']:.0f} / {r['callback_p99_us']:.0f} / {r['callback_max_us']:.0f} us | "
              f"{r['callbacks_over_5ms']} of {r['callbacks']} |")
    blocks, ram = rows
    print(f"\npeak RSS ratio (RAM / blocks): {ram['peak_rss_total_mib'] / blocks['peak_rss_total_mib']:.2f}x; "
          f"output checksums {'agree' if abs(blocks['checksum'] - ram['checksum']) <= 1e-6 * ram['checksum'] else 'DIFFER'}"
          f" ({blocks['checksum']:.6f} vs {ram['checksum']:.6f}); callback errors "
          f"{blocks['callback_errors']} / {ram['callback_errors']}")
    if not blocks["disk_backed"] or ram["disk_backed"]:
        print("warning: a run did not use the path it was meant to", file=sys.stderr)


if __name__ == "__main__":
    main()
