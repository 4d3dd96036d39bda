"""Does open-voicefilter-lite (target-speaker extraction, Apache-2.0) help? SI-SDR improvement on two-talker
mixtures built from the shared clean recordings, and its effect on single-talker noisy speech.

Method: each clean recording (16 kHz; the 48 kHz one resampled with soxr) is a target; its first
``ENROL_S`` seconds enrol the speaker (as a time selection would), the rest is mixed with another
recording at a target-to-interferer ratio of 0 and 5 dB (power over the mixed span). The package's
``StreamingVoiceFilter`` runs hop by hop over the mixture (its state carried, as it is meant to run);
its output delay is measured by cross-correlation with the mixture and removed; SI-SDR against the
target is compared with the mixture's. Single-talker noisy speech: the DNS3 noisy clips, enrolled on
their own first seconds (noise included), scored against their clean references.

    .venv/bin/python bench/bench_voicefilter.py [DATA_DIR]

Needs ``pip install open-voicefilter-lite`` (not a dependency of the workbench).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from workbench.core.audio.correlation import estimate_lag
from workbench.core.measure.metrics import si_sdr

RATE = 16000
ENROL_S = 2.0


def load(path: Path) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32")
    x = x.mean(axis=1) if x.ndim == 2 else x
    return soxr.resample(x, sr, RATE).astype(np.float32) if sr != RATE else x


def extract(mixture: np.ndarray, enrolment: np.ndarray) -> tuple[np.ndarray, int, float]:
    from voicefilter_lite import StreamingVoiceFilter

    vf = StreamingVoiceFilter()
    vf.set_enrollment(enrolment)
    hop = vf.hop_length
    n = len(mixture)
    padded = np.zeros(-(-(n + RATE // 2) // hop) * hop, np.float32)  # room for the delayed tail
    padded[:n] = mixture
    t0 = time.perf_counter()
    out = np.concatenate([vf.step(padded[i:i + hop]) for i in range(0, len(padded), hop)])
    elapsed = time.perf_counter() - t0
    lag, _ = estimate_lag(mixture, out, RATE // 2)
    lag = max(lag, 0)
    return out[lag:lag + n], lag, elapsed / (n / RATE)


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"
    cleans = {p.stem: load(p) for p in sorted((data / "dns3").glob("*_clean.wav"))}
    cleans["freesound_33711"] = load(data / "dfn" / "clean_freesound_33711.wav")
    enrol_n = int(ENROL_S * RATE)
    rows = {0: [], 5: []}
    lags, rtfs = set(), []
    for (tname, target), (iname, interferer) in itertools.permutations(cleans.items(), 2):
        enrol, rest = target[:enrol_n], target[enrol_n:]
        m = min(len(rest), len(interferer))
        rest, other = rest[:m], interferer[:m]
        for sir_db in rows:
            g = np.sqrt(np.mean(rest ** 2) / (np.mean(other ** 2) * 10 ** (sir_db / 10)))
            mix = rest + g * other
            est, lag, rtf = extract(mix, enrol)
            lags.add(lag)
            rtfs.append(rtf)
            before, after = si_sdr(rest, mix).value, si_sdr(rest, est).value
            rows[sir_db].append(after - before)
            print(f"{tname:>16} + {iname:<16} SIR {sir_db} dB: SI-SDR {before:6.2f} -> {after:6.2f} dB "
                  f"({after - before:+.2f})")
    for sir_db, gains in rows.items():
        print(f"two talkers at {sir_db} dB: mean SI-SDR improvement {np.mean(gains):+.2f} dB "
              f"(min {np.min(gains):+.2f}, max {np.max(gains):+.2f}, {len(gains)} mixtures)")
    noisy_gains = []
    for noisy_path in sorted((data / "dns3").glob("*_noisy.wav")):
        noisy = load(noisy_path)
        clean = load(noisy_path.with_name(noisy_path.name.replace("_noisy", "_clean")))
        est, lag, rtf = extract(noisy[enrol_n:], noisy[:enrol_n])
        before, after = si_sdr(clean[enrol_n:], noisy[enrol_n:]).value, si_sdr(clean[enrol_n:], est).value
        noisy_gains.append(after - before)
        print(f"single talker {noisy_path.stem}: SI-SDR {before:6.2f} -> {after:6.2f} dB ({after - before:+.2f})")
    print(f"single talker, noisy: mean SI-SDR change {np.mean(noisy_gains):+.2f} dB")
    print(f"output delay measured: {sorted(lags)} samples; real-time factor {np.median(rtfs):.3f} (median, one thread)")


if __name__ == "__main__":
    main()
