"""Fine-tune GTCRN-DNS3 on one noise type and compare it with the pretrained model on held-out clips.

    .venv/bin/python bench/finetune_experiment.py OUT_DIR [--minutes 10] [--data ../shared/data]

Data (all from ``../shared/data``, see its PROVENANCE.md):

* noise: ``dfn/noise_freesound_573577.wav`` (one noise type, 4.9 s); the trainer mixes with its first 80 %;
  the test mixtures use only its last 20 % (never trained on);
* training speech: ``dns3/0015_clean.wav``, ``dns3/0016_clean.wav``, ``dfn/clean_freesound_33711.wav``
  (the trainer holds one of them out for its per-epoch validation);
* test speech (never trained on): ``dns3/0072_clean.wav``, ``pesq/speech.wav``, mixed with the held-out noise
  at 0, 5 and 10 dB SNR (6 clips);
* forgetting check: ``dns3/0072_noisy.wav`` (DNS noise) and ``pesq/speech_bab_0dB.wav`` (babble) against their
  clean references: other noises, the clean speech also never trained on.

Training: GTCRN from ``gtcrn-dns3``, batch-norm statistics fixed, GTCRN's hybrid loss, AdamW lr 1e-4, batch 4
of 2 s crops, SNR -5..10 dB, seed 0, for about ``--minutes`` of wall time (whole epochs of 32 mixtures).
Prints and writes ``OUT_DIR/experiment.csv``: PESQ-WB, ESTOI, SI-SDR per clip set for noisy, pretrained and
fine-tuned.

``--from-recording`` runs the window's path instead: adapt to *one noisy recording* with the noise of its own
pauses. The recording is ``dfn/noisy_snr0.wav`` (DeepFilterNet's 0 dB mix of ``clean_freesound_33711`` and
``noise_freesound_573577``); its noise-only spans are found by the speech activity detector
(``noise_from_pauses``: 4 spans, 2.8 s), mixed with ``dns3/0015``, ``0016`` and ``0072`` clean speech (the
recording's own speech is never trained on). Measured on the recording against its clean reference, and on
``pesq/speech_bab_0dB.wav`` (babble, speech never trained on) for forgetting.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    reps = -(-len(clean) // len(noise))
    nz = np.tile(noise, reps)[:len(clean)]
    gain = np.sqrt(np.mean(clean ** 2) / (np.mean(nz ** 2) * 10 ** (snr_db / 10)))
    return (clean + gain * nz).astype(np.float32)


def scores(ref: np.ndarray, est: np.ndarray) -> dict:
    from workbench.core.measure.metrics import pesq_score, si_sdr, stoi_score
    return {"pesq_wb": pesq_score(ref, est, 16000, "wb").value, "estoi": stoi_score(ref, est, 16000, True).value,
            "si_sdr": si_sdr(ref, est).value}


def train_for(cfg_dict: dict, minutes: float) -> tuple[int, float]:
    """Whole epochs until about ``minutes`` are spent (estimated from the first epoch); ``(epochs, seconds)``."""
    from workbench.core.workflows.train_config import TrainConfig
    from workbench_models.training.trainer import train
    t0 = time.perf_counter()
    for ev in train(TrainConfig.from_dict(cfg_dict)):
        if ev["event"] == "epoch":
            print(f"epoch {ev['epoch']}: val {ev['val']}", flush=True)
    per_epoch = time.perf_counter() - t0
    epochs = max(1, int(minutes * 60 / per_epoch))
    cfg_dict["run"]["epochs"] = epochs
    print(f"first epoch {per_epoch:.0f} s -> {epochs} epochs in all", flush=True)
    for ev in train(TrainConfig.from_dict(cfg_dict)):
        if ev["event"] == "epoch":
            print(f"epoch {ev['epoch']}: val {ev['val']}", flush=True)
    return epochs, time.perf_counter() - t0


def from_recording(a) -> None:
    from workbench_models.gtcrn_builtin import build
    from workbench_models.loaders import load_model_path
    from workbench_models.training.data import read_mono

    data, out = Path(a.data), Path(a.out_dir)
    recording, reference = data / "dfn" / "noisy_snr0.wav", data / "dfn" / "clean_freesound_33711.wav"
    cfg_dict = {"run": {"out_dir": str(out / "run"), "epochs": 1, "batch_size": 4, "lr": 1e-4, "seed": 0,
                        "threads": a.threads, "checkpoint_every_steps": 8},
                "model": {"architecture": "gtcrn", "init": "gtcrn-dns3", "freeze_norm": True,
                          "name": "gtcrn-dns3-adapted-to-noisy_snr0"},
                "loss": {"loss": "gtcrn_hybrid"},
                "data": {"clean": [str(data / "dns3" / f"{k}_clean.wav") for k in ("0015", "0016", "0072")],
                         "noise_recording": str(recording), "noise_from_pauses": True, "snr_db": [-5.0, 10.0],
                         "crop_s": 2.0, "examples_per_epoch": 32, "val_fraction": 0.34}}
    epochs, train_s = train_for(cfg_dict, a.minutes)
    tests = {"the recording (its own noise)": (reference, recording),
             "babble (forgetting)": (data / "pesq" / "speech.wav", data / "pesq" / "speech_bab_0dB.wav")}
    systems = {"noisy": None, "pretrained gtcrn-dns3": build("gtcrn-dns3"),
               "adapted": load_model_path(out / "run" / "model.pt")}
    rows = []
    for group, (clean_path, noisy_path) in tests.items():
        clean, noisy = read_mono(clean_path, 16000), read_mono(noisy_path, 16000)
        n = min(len(clean), len(noisy))
        for sys_name, enh in systems.items():
            est = noisy[:n] if enh is None else enh.process_offline(noisy[:n])
            sc = scores(clean[:n], est)
            rows.append({"clips": group, "system": sys_name, **sc})
            print(f"{group:30s} {sys_name:22s} PESQ-WB {sc['pesq_wb']:.2f}  ESTOI {sc['estoi']:.3f}  "
                  f"SI-SDR {sc['si_sdr']:.1f} dB", flush=True)
    with open(out / "experiment_recording.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"training wall time {train_s:.0f} s ({epochs} epochs of 32 x 2 s mixtures)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--from-recording", action="store_true",
                    help="adapt to one noisy recording with the noise of its own pauses (see above)")
    a = ap.parse_args()
    if a.from_recording:
        from_recording(a)
        return
    from workbench.core.workflows.train_config import TrainConfig
    from workbench_models.gtcrn_builtin import build
    from workbench_models.loaders import load_model_path
    from workbench_models.training.data import read_mono
    from workbench_models.training.trainer import train

    data = Path(a.data)
    out = Path(a.out_dir)
    noise_file = data / "dfn" / "noise_freesound_573577.wav"
    train_clean = [data / "dns3" / "0015_clean.wav", data / "dns3" / "0016_clean.wav",
                   data / "dfn" / "clean_freesound_33711.wav"]
    # Whole epochs until the time budget is spent: estimate from the first epoch, then set epochs.
    cfg_dict = {"run": {"out_dir": str(out / "run"), "epochs": 1, "batch_size": 4, "lr": 1e-4, "seed": 0,
                        "threads": a.threads, "checkpoint_every_steps": 8},
                "model": {"architecture": "gtcrn", "init": "gtcrn-dns3", "freeze_norm": True,
                          "name": "gtcrn-dns3-finetuned-freesound-noise"},
                "loss": {"loss": "gtcrn_hybrid"},
                "data": {"clean": [str(p) for p in train_clean], "noise": [str(noise_file)], "snr_db": [-5.0, 10.0],
                         "crop_s": 2.0, "examples_per_epoch": 32, "val_fraction": 0.34}}
    t0 = time.perf_counter()
    for ev in train(TrainConfig.from_dict(cfg_dict)):
        if ev["event"] == "epoch":
            print(f"epoch {ev['epoch']}: val {ev['val']}", flush=True)
    per_epoch = time.perf_counter() - t0
    epochs = max(1, int(a.minutes * 60 / per_epoch))
    cfg_dict["run"]["epochs"] = epochs
    print(f"first epoch {per_epoch:.0f} s -> {epochs} epochs in all", flush=True)
    for ev in train(TrainConfig.from_dict(cfg_dict)):
        if ev["event"] == "epoch":
            print(f"epoch {ev['epoch']}: val {ev['val']}", flush=True)
    train_s = time.perf_counter() - t0

    noise = read_mono(noise_file, 16000)
    noise_test = noise[int(len(noise) * 0.8):]
    test = []
    for name in ("dns3/0072_clean.wav", "pesq/speech.wav"):
        clean = read_mono(data / name, 16000)
        for snr in (0.0, 5.0, 10.0):
            test.append(("held-out noise", f"{name}@{snr:g}dB", clean, mix(clean, noise_test, snr)))
    for noisy_name, clean_name in (("dns3/0072_noisy.wav", "dns3/0072_clean.wav"),
                                   ("pesq/speech_bab_0dB.wav", "pesq/speech.wav")):
        clean, noisy = read_mono(data / clean_name, 16000), read_mono(data / noisy_name, 16000)
        n = min(len(clean), len(noisy))
        test.append(("other noise (forgetting)", noisy_name, clean[:n], noisy[:n]))
    systems = {"noisy": None, "pretrained gtcrn-dns3": build("gtcrn-dns3"),
               "fine-tuned": load_model_path(out / "run" / "model.pt")}
    rows = []
    for group in ("held-out noise", "other noise (forgetting)"):
        for sys_name, enh in systems.items():
            vals = []
            for g, _clip, clean, noisy in test:
                if g != group:
                    continue
                est = noisy if enh is None else enh.process_offline(noisy)
                vals.append(scores(clean, est))
            mean = {k: float(np.mean([v[k] for v in vals if v[k] is not None])) for k in vals[0]}
            rows.append({"clips": group, "n": len(vals), "system": sys_name, **mean})
            print(f"{group:26s} {sys_name:22s} PESQ-WB {mean['pesq_wb']:.2f}  ESTOI {mean['estoi']:.3f}  "
                  f"SI-SDR {mean['si_sdr']:.1f} dB  ({len(vals)} clips)")
    with open(out / "experiment.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"training wall time {train_s:.0f} s ({epochs} epochs of 32 x 2 s mixtures)")


if __name__ == "__main__":
    main()
