"""Training: exact resume, self-describing checkpoints that load as models, causality, fine-tuning, CLI, loss lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.cli import main as cli_main
from workbench.core.errors import WorkbenchError
from workbench.core.workflows.train_config import TrainConfig, read_config, write_config
from workbench_models.training.trainer import MODEL_FILE, STATE_FILE, train

RATE = 16000


def _speechlike(seconds: float, f0: float, seed: int) -> np.ndarray:
    """Harmonic tone with a syllable-rate envelope and pauses: enough structure for a loss to fall."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t + seed * k) / k for k in range(1, 10))
    env = np.clip(np.sin(2 * np.pi * (2.5 + 0.3 * seed) * t), 0, None)
    return (0.1 * x * env).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    (root / "clean").mkdir()
    (root / "noise").mkdir()
    for i in range(4):
        sf.write(root / "clean" / f"s{i}.wav", _speechlike(1.0, 110 + 25 * i, i), RATE)
    rng = np.random.default_rng(5)
    for i in range(2):
        sf.write(root / "noise" / f"n{i}.wav", (0.03 * rng.standard_normal(RATE)).astype(np.float32), RATE)
    return root


def tiny_config(root: Path, out: Path, /, **over) -> TrainConfig:
    data = root
    d = {"run": {"out_dir": str(out), "epochs": 2, "batch_size": 2, "checkpoint_every_steps": 2, "seed": 3},
         "model": {"architecture": "gcrn", "args": {"channels": 4, "hidden": 16}},
         "loss": {"loss": "0.5*mae + complex_mse_c"},
         "data": {"clean": [str(data / "clean")], "noise": [str(data / "noise")], "crop_s": 0.25,
                  "examples_per_epoch": 6, "val_max_s": 1.0},
         "validation": {"metrics": ["si_sdr"]}}
    for section, values in over.items():
        d.setdefault(section, {}).update(values)
    return TrainConfig.from_dict(d)


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


def _history(run: Path) -> list:
    return json.loads((run / "history.json").read_text())


def test_resume_after_stops_is_bit_exact(tiny_data, tmp_path):
    whole = tmp_path / "whole"
    events = list(train(tiny_config(tiny_data, whole)))
    assert [e["event"] for e in events].count("epoch") == 2
    assert events[-1]["event"] == "done"
    parts = tmp_path / "parts"
    cfg = tiny_config(tiny_data, parts)
    # stop mid-epoch (step 2 of 3), then across the epoch boundary (steps 3-4), then run to the end
    first = list(train(cfg, stop_after_steps=2))
    assert first[-1] == {"event": "stopped", "step": 2}
    second = list(train(cfg, stop_after_steps=2))
    assert second[0]["resumed_at"] == 2 and second[-1] == {"event": "stopped", "step": 4}
    third = list(train(cfg))
    assert third[0]["resumed_at"] == 4
    _same_weights(whole / MODEL_FILE, parts / MODEL_FILE)
    assert _history(whole) == _history(parts)
    steps_whole = [e["loss"] for e in events if e["event"] == "step"]
    steps_parts = [e["loss"] for e in first + second + third if e["event"] == "step"]
    assert steps_whole == steps_parts


def test_resume_after_sigkill_continues_from_the_last_checkpoint(tiny_data, tmp_path):
    """A killed `workbench train` leaves an atomic last.ckpt; continuing it ends where an uninterrupted run ends."""
    cfg = tiny_config(tiny_data, tmp_path / "killed", run={"checkpoint_every_steps": 1})
    config_path = write_config(cfg, tmp_path / "killed.toml")
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(config_path), "--progress", "json"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for line in proc.stdout:
            if json.loads(line)["event"] == "checkpoint":
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    state = torch.load(tmp_path / "killed" / STATE_FILE, weights_only=True)
    assert 1 <= state["step"] < 6
    resumed = list(train(read_config(config_path)))
    assert resumed[0]["resumed_at"] == state["step"]
    list(train(tiny_config(tiny_data, tmp_path / "whole", run={"checkpoint_every_steps": 1})))
    _same_weights(tmp_path / "whole" / MODEL_FILE, tmp_path / "killed" / MODEL_FILE)


def test_model_file_is_self_describing_loads_as_a_causal_model_and_joins_the_catalogue(tiny_data, tmp_path):
    from workbench.core.workflows.probes import probe_causality
    from workbench.core.document.session import ModelCatalogue
    run = tmp_path / "described"
    list(train(tiny_config(tiny_data, run, run={"epochs": 1}, model={"name": "my-noise"})))
    obj = torch.load(run / MODEL_FILE, map_location="cpu", weights_only=True)
    meta = obj["workbench_training"]
    assert meta["architecture"] == "gcrn" and meta["args"] == {"channels": 4, "hidden": 16}
    assert meta["stft"] == {"n_fft": 512, "hop": 256, "window": "sqrt-hann", "center": True}
    assert meta["loss"] == "0.5*mae + complex_mse_c" and meta["seed"] == 3
    assert meta["workbench_version"] and meta["data"]["mode"] == "mixing" and "si_sdr" in meta["metrics"]
    assert set(meta["data"]["validation_files"]).isdisjoint(meta["data"]["clean_files"])
    catalogue = ModelCatalogue()
    catalogue._listed = []  # no built-ins needed here
    enh = catalogue.load(run / MODEL_FILE)
    assert [e.spec for e in catalogue.loaded_files()] == [str(run / MODEL_FILE)]
    assert enh.info.id == "trained:my-noise" and enh.info.family == "complex-mapping"
    assert probe_causality(enh).causal
    y = enh.process_offline(np.zeros(1000, np.float32))
    assert y.shape == (1000,)


@pytest.mark.parametrize("arch,args", [("complex_net", {"hidden": 8, "layers": 2}), ("gtcrn", {})])
def test_other_architectures_train_and_are_causal(tiny_data, tmp_path, arch, args):
    from workbench.core.workflows.probes import probe_causality
    from workbench_models.loaders import load_model_path
    run = tmp_path / arch
    events = list(train(tiny_config(tiny_data, run, run={"epochs": 1, "max_steps": 2},
                                    model={"architecture": arch, "args": args})))
    assert events[-1]["event"] == "done"
    assert probe_causality(load_model_path(run / MODEL_FILE)).causal


def test_fine_tune_bundled_gtcrn_with_frozen_norm_statistics(tiny_data, tmp_path):
    from workbench_models.training.architectures import init_state_dict
    run = tmp_path / "ft"
    list(train(tiny_config(tiny_data, run, run={"epochs": 1, "max_steps": 1, "lr": 1e-4},
                           model={"architecture": "gtcrn", "args": {}, "init": "gtcrn-dns3", "freeze_norm": True},
                           loss={"loss": "gtcrn_hybrid"})))
    before, after = init_state_dict("gtcrn-dns3"), _weights(run / MODEL_FILE)
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    assert not torch.equal(before["decoder.de_convs.4.conv.weight"], after["decoder.de_convs.4.conv.weight"])
    assert torch.load(run / MODEL_FILE, weights_only=True)["workbench_training"]["init"] == "gtcrn-dns3"


def test_a_different_run_in_the_same_folder_is_refused(tiny_data, tmp_path):
    list(train(tiny_config(tiny_data, tmp_path / "r", run={"max_steps": 1})))
    with pytest.raises(WorkbenchError, match="different run"):
        list(train(tiny_config(tiny_data, tmp_path / "r", loss={"loss": "mse"})))


def test_config_round_trip_and_one_line_errors(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "x")
    path = write_config(cfg, tmp_path / "c.toml")
    again = read_config(path)
    assert again.to_dict() == cfg.to_dict()
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\narchitecture = "unet"\n[data]\npairs = "p"\n')
    with pytest.raises(WorkbenchError, match="architecture 'unet'"):
        read_config(bad)
    bad.write_text('[run]\nepochz = 3\n')
    with pytest.raises(WorkbenchError, match="unknown field"):
        read_config(bad)
    bad.write_text('[data]\nclean = ["a"]\n')
    with pytest.raises(WorkbenchError, match="needs a pairs folder"):
        read_config(bad)


def test_cli_train_and_bad_loss(tiny_data, tmp_path, capsys):
    cfg = tiny_config(tiny_data, tmp_path / "cli", run={"epochs": 1})
    path = write_config(cfg, tmp_path / "cli.toml")
    assert cli_main(["train", str(path)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1 done" in out and "model: " in out
    cfg.loss.loss = "mae + nonsense"
    write_config(cfg, path)
    assert cli_main(["train", str(path), "--restart"]) == 2
    assert "cannot read term 'nonsense'" in capsys.readouterr().err


def test_pairs_folder_split_by_file(tmp_path):
    from workbench.core.workflows.train_config import DataConfig
    from workbench_models.training.data import TrainingData
    for i in range(5):
        s = _speechlike(0.5, 100 + 20 * i, i)
        sf.write(tmp_path / f"c{i}_clean.wav", s, RATE)
        sf.write(tmp_path / f"c{i}_noisy.wav", s + 0.01 * np.random.default_rng(i).standard_normal(len(s)).astype(np.float32), RATE)
    data = TrainingData(DataConfig(pairs=str(tmp_path), crop_s=0.2, val_fraction=0.4), seed=1, base_dir=tmp_path)
    train_names = set(data.description["train_files"])
    val_names = set(data.description["validation_files"])
    assert len(val_names) == 2 and len(train_names) == 3 and not train_names & val_names
    a, b = data.example(0, 1), data.example(0, 1)
    assert np.array_equal(a[0], b[0]) and a[0].shape == (3200,)
    assert not np.array_equal(data.example(1, 1)[0], a[0])  # another epoch, another crop/order


def test_loss_lab_writes_table_and_chart(tiny_data, tmp_path, capsys):
    cfg = tiny_config(tiny_data, tmp_path / "base", run={"epochs": 1, "max_steps": 1},
                      validation={"metrics": ["si_sdr", "estoi"]})
    path = write_config(cfg, tmp_path / "lab.toml")
    assert cli_main(["loss-lab", str(path), "--losses", "mae,mse", "-o", str(tmp_path / "lab")]) == 0
    table = (tmp_path / "lab" / "loss_lab.csv").read_text().splitlines()
    assert table[0].startswith("loss,estoi,si_sdr") and [r.split(",")[0] for r in table[1:]] == ["mae", "mse"]
    assert (tmp_path / "lab" / "loss_lab.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "lab" / "mae" / MODEL_FILE).is_file()


def _enhanced(enh, x):
    from workbench.core.enhance.enhancer import enhance, run_to_end
    return run_to_end(enhance(enh, x, RATE))[0, :, 0]  # (outputs, frames, channels)


@pytest.mark.parametrize("arch,args", [("gcrn", {"channels": 4, "hidden": 16}), ("gtcrn", {})])
def test_exports_load_with_their_cards_and_equal_the_checkpoint(tiny_data, tmp_path, arch, args):
    from workbench_models.loaders import load_model_path
    run = tmp_path / "exp"
    events = list(train(tiny_config(tiny_data, run, run={"epochs": 1, "max_steps": 2},
                                    model={"architecture": arch, "args": args},
                                    export={"torchscript": True, "onnx": True})))
    exports = [Path(p) for p in events[-1]["exports"]]
    assert [p.name for p in exports] == ["model.ts", "model.onnx"]
    checkpoint = load_model_path(run / MODEL_FILE)
    rng = np.random.default_rng(2)
    # a length off the hop grid, a clip shorter than half a frame, and (GCRN) a file the engine cuts into chunks
    lengths = [RATE + 77, 200] + ([65 * RATE + 1000] if arch == "gcrn" else [])
    for p in exports:
        assert (p.parent / (p.name + ".toml")).is_file()
        enh = load_model_path(p)
        for n in lengths:
            x = np.resize(_speechlike(1.0, 130, 1), n) + 0.02 * rng.standard_normal(n).astype(np.float32)
            ref = _enhanced(checkpoint, x)
            y = _enhanced(enh, x)
            assert y.shape == ref.shape
            assert np.max(np.abs(y - ref)) <= 1e-4, (p.name, n, np.max(np.abs(y - ref)))


def _span_recording(path: Path, spans_s: list, seconds: float = 3.0) -> None:
    """Noise whose samples are positive inside ``spans_s`` and negative outside: the sign says where a
    sample of the recording came from."""
    n = int(seconds * RATE)
    magnitude = 0.01 + 0.04 * np.abs(np.random.default_rng(9).standard_normal(n))
    sign = -np.ones(n)
    for a, b in spans_s:
        sign[int(round(a * RATE)):int(round(b * RATE))] = 1.0
    sf.write(path, (sign * magnitude).astype(np.float32), RATE, subtype="FLOAT")


def test_mixtures_take_noise_only_from_inside_the_recording_spans(tiny_data, tmp_path):
    from workbench.core.workflows.train_config import DataConfig
    from workbench_models.training.data import TrainingData
    spans = [[0.2, 0.8], [1.5, 2.45], [2.6, 2.95]]
    _span_recording(tmp_path / "talk.wav", spans)
    cfg = DataConfig(clean=[str(tiny_data / "clean")], noise_recording=str(tmp_path / "talk.wav"),
                     noise_spans_s=spans + [[2.97, 2.99]],  # shorter than 0.1 s: not used
                     crop_s=0.5, examples_per_epoch=40, snr_db=[-5.0, 15.0])
    data = TrainingData(cfg, seed=4, base_dir=tmp_path)
    assert data.description["noise_recording"]["spans_s"] == spans
    # three spans act as three noise files: one is held out for validation, the others train
    assert len(data.train_noise) == 2 and len(data.validation) >= 1
    for epoch in range(2):
        for i in range(cfg.examples_per_epoch):
            noisy, clean = data.example(epoch, i)
            # noisy - clean = (positive gain) x noise: every noise sample came from inside a span
            assert np.all(noisy - clean > 0), (epoch, i)
    for clip in data.validation:
        assert np.all(clip.noisy - clip.clean > 0)


def test_a_config_with_recording_spans_trains_a_model(tiny_data, tmp_path):
    spans = [[0.1, 1.0], [1.6, 2.8]]
    _span_recording(tmp_path / "talk.wav", spans)
    cfg = tiny_config(tiny_data, tmp_path / "run", run={"epochs": 1, "max_steps": 3},
                      data={"noise": [], "noise_recording": str(tmp_path / "talk.wav"), "noise_spans_s": spans})
    events = list(train(cfg))
    assert events[-1]["event"] == "done" and events[-1]["step"] == 3
    meta = torch.load(tmp_path / "run" / MODEL_FILE, weights_only=True)["workbench_training"]
    assert meta["data"]["noise_recording"]["spans_s"] == spans
    assert read_config(tmp_path / "run" / "config.toml").data.noise_spans_s == spans


def test_recording_noise_from_its_pauses(shared_data, tmp_path):
    from workbench.core.workflows.train_config import DataConfig
    from workbench_models.training.data import recording_noise
    noisy = next(p for p in sorted((shared_data / "dns3").rglob("*.wav")))
    pieces, spans = recording_noise(noisy, [], True, RATE)
    assert pieces and len(pieces) == len(spans)
    info = sf.info(noisy)
    assert all(0 <= a < b <= info.duration + 1e-6 for a, b in spans)


def test_recording_spans_outside_the_recording_are_refused(tiny_data, tmp_path):
    base = {"clean": [str(tiny_data / "clean")], "noise_recording": str(tmp_path / "talk.wav")}
    _span_recording(tmp_path / "talk.wav", [[0.0, 1.0]])
    cfg = tiny_config(tiny_data, tmp_path / "run", data={"noise": [], **base, "noise_spans_s": [[5.0, 6.0]]})
    with pytest.raises(WorkbenchError, match="talk.wav: no noise span of at least 0.1 s"):
        list(train(cfg))


def test_complex_net_exports_to_onnx_as_its_real_valued_equivalent(tiny_data, tmp_path):
    from workbench_models.complex_net import ComplexNet, RealValuedComplexNet
    from workbench_models.loaders import load_model_path
    torch.manual_seed(0)
    net = ComplexNet(hidden=6, layers=3, kernel=3).eval()
    spec = torch.randn(2, 257, 31, 2)
    with torch.no_grad():
        assert torch.allclose(RealValuedComplexNet(net)(spec), net(spec), atol=1e-5, rtol=1e-4)
    run = tmp_path / "cx"
    events = list(train(tiny_config(tiny_data, run, run={"epochs": 1, "max_steps": 2},
                                    model={"architecture": "complex_net", "args": {"hidden": 8, "layers": 2}},
                                    export={"torchscript": True, "onnx": True})))
    onnx_path = run / "model.onnx"
    assert str(onnx_path) in events[-1]["exports"]
    x = _speechlike(1.0, 120, 2) + 0.02 * np.random.default_rng(4).standard_normal(RATE).astype(np.float32)
    ref = _enhanced(load_model_path(run / MODEL_FILE), x)
    for p in (onnx_path, run / "model.ts"):
        y = _enhanced(load_model_path(p), x)
        assert np.max(np.abs(y - ref)) <= 1e-4, (p.name, np.max(np.abs(y - ref)))


@pytest.mark.parametrize("arch,args", [("gcrn", {"channels": 4, "hidden": 16}),
                                       ("complex_net", {"hidden": 8, "layers": 3})])
def test_streaming_path_equals_the_whole_utterance_run(tiny_data, tmp_path, arch, args):
    from workbench_models.loaders import load_model_path
    run = tmp_path / arch
    list(train(tiny_config(tiny_data, run, run={"epochs": 1, "max_steps": 2},
                           model={"architecture": arch, "args": args})))
    enh = load_model_path(run / MODEL_FILE)
    assert "streaming" in enh.info.processing_paths and enh.info.latency_samples == 256
    n = 40 * 256
    x = np.resize(_speechlike(1.0, 140, 3), n) + 0.02 * np.random.default_rng(6).standard_normal(n).astype(np.float32)
    offline = enh.process_offline(x)
    stream = enh.new_stream()
    blocks = [256, 512, 256 * 7, 256 * 3, 256 * 19, 256 * 8]      # any multiples of the hop, any split
    y = np.concatenate([stream.process(x[a:a + m]) for a, m in zip(np.cumsum([0] + blocks[:-1]), blocks)])
    assert y.shape == (n,)
    # output lags by 256 samples; only the last frame (which the stream cannot mirror) may differ
    assert np.max(np.abs(y[256:n - 512] - offline[:n - 768])) <= 1e-4


def test_card_chunking_fields_are_checked():
    from workbench.core.errors import ModelError
    from workbench_models.onnx_models import ModelCard
    card = ModelCard.from_dict({"start_padding": "reflect", "chunk_s": 60, "overlap_s": 4.0})
    assert card.chunk_s == 60 and card.overlap_s == 4.0
    for bad, text in (({"chunk_s": 0.5}, "chunk_s must be from 1 to 3600"),
                      ({"chunk_s": 10.0, "overlap_s": 6.0}, "overlap_s must be from 0 to half of chunk_s"),
                      ({"chunk_s": "long"}, "chunk_s must be a number of seconds")):
        with pytest.raises(ModelError, match=text):
            ModelCard.from_dict(bad)
