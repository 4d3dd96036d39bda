"""Cost of crash-isolated probing: ``read_info`` of Ogg/MP3 (tail probe in a child process) vs the
same probe in process, and WAV/FLAC (never isolated). Medians of ``--runs`` opens of a 60 s file.

    .venv/bin/python bench/bench_probe_isolation.py [--runs 7] [--seconds 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import workbench.core.audio.audio_io as audio_io


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    sr = 16000
    x = (0.1 * np.random.default_rng(0).standard_normal(int(sr * args.seconds))).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        files = {}
        for name, fmt, sub in (("a.wav", "WAV", "PCM_16"), ("a.flac", "FLAC", "PCM_16"),
                               ("a.ogg", "OGG", "VORBIS"), ("a.mp3", "MP3", "MPEG_LAYER_III")):
            files[name] = Path(d) / name
            sf.write(files[name], x, sr, format=fmt, subtype=sub)

        def median_open(path: Path) -> float:
            times = []
            for _ in range(args.runs):
                audio_io._PROBE_CACHE.clear()  # measure the probe itself, not the cache
                t0 = time.perf_counter()
                audio_io.read_info(path)
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        for name, path in files.items():
            isolated = median_open(path)
            line = f"{name:7s} read_info median {1000 * isolated:7.1f} ms"
            if name.endswith((".ogg", ".mp3")):
                saved = set(audio_io._ISOLATED_PROBE_FORMATS)
                audio_io._ISOLATED_PROBE_FORMATS.clear()
                try:
                    inproc = median_open(path)
                finally:
                    audio_io._ISOLATED_PROBE_FORMATS.update(saved)
                line += f"  (in process: {1000 * inproc:6.1f} ms, isolation adds {1000 * (isolated - inproc):6.1f} ms)"
            print(line)


if __name__ == "__main__":
    main()
