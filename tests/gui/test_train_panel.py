"""The Train panel trains a tiny model in a separate process, stops and continues it, and puts the result
in the session's model catalogue."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from workbench.core.errors import WorkbenchError
from workbench.core.workflows.train_config import read_config

RATE = 16000


def _tiny_data(root):
    (root / "clean").mkdir()
    (root / "noise").mkdir()
    t = np.arange(RATE) / RATE
    for i in range(3):
        x = sum(np.sin(2 * np.pi * (110 + 30 * i) * k * t) / k for k in range(1, 8))
        sf.write(root / "clean" / f"s{i}.wav", (0.1 * x * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)).astype(np.float32), RATE)
    sf.write(root / "noise" / "n.wav", (0.03 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32), RATE)


def test_panel_trains_stops_continues_and_adds_the_model(qtbot, tmp_path, settings):
    from workbench.gui.main_window import MainWindow
    _tiny_data(tmp_path)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    panel = w.train_panel
    assert w._docks["Train"].widget() is panel
    panel.clean_edit.setText(str(tmp_path / "clean"))
    panel.noise_edit.setText(str(tmp_path / "noise"))
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("gcrn"))
    panel.args_edit.setText("channels = 4, hidden = 16")
    panel.loss_combo.setEditText("0.5*mae + 0.5*mrstft")
    panel.crop_spin.setValue(0.25)
    # enough steps (2 x 100) that Stop lands mid-run however slowly the window reads the events
    panel.examples_spin.setValue(100)
    panel.batch_spin.setValue(1)
    panel.epochs_spin.setValue(2)
    panel.out_edit.setText(str(tmp_path / "run"))

    panel.start()
    assert panel.running and not panel.train_button.isEnabled()
    cfg = read_config(tmp_path / "run" / "config.toml")  # the panel wrote the config the command reads
    assert cfg.model.args == {"channels": 4, "hidden": 16} and cfg.loss.loss == "0.5*mae + 0.5*mrstft"
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=240000)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    assert "stopped at step" in panel.status.text()
    stopped_at = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["step"]
    assert 1 <= stopped_at < 200

    with qtbot.waitSignal(panel.modelReady, timeout=240000) as ready:
        panel.start()
    model = str(tmp_path / "run" / "model.pt")
    assert ready.args == [model]
    assert [e.spec for e in w.session.catalogue.loaded_files()] == [model]
    assert "Models panel" in panel.status.text()
    assert panel.table.rowCount() == 2  # one validation row per epoch
    assert {"train loss", "train mae", "train mrstft", "val loss"} <= set(panel._curves)
    assert float(panel.table.item(1, 3).text()) < 100  # SI-SDR column filled


def test_panel_refuses_a_form_that_cannot_train(qtbot, tmp_path):
    from workbench.gui.train_panel import TrainPanel
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.out_edit.setText(str(tmp_path / "run"))
    with qtbot.waitSignal(panel.failed) as failed:
        panel.start()
    assert "needs a pairs folder, or clean and noise folders" in failed.args[0]
    assert not panel.running and not (tmp_path / "run").exists()
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("gcrn"))
    panel.args_edit.setText("channels = ")
    panel.clean_edit.setText("a")
    panel.noise_edit.setText("b")
    with qtbot.waitSignal(panel.failed) as failed:
        panel.start()
    assert "architecture arguments" in failed.args[0]


def test_noise_of_the_open_recording_trains_a_model_to_run_beside_the_pretrained_one(qtbot, tmp_path, settings):
    """From a noisy recording to an adapted model A/B'd against the pretrained GTCRN, in the window."""
    from workbench.gui.main_window import MainWindow
    _tiny_data(tmp_path)
    # a recording: 1 s of noise alone, then speech in the same noise
    rng = np.random.default_rng(3)
    t = np.arange(2 * RATE) / RATE
    speech = 0.1 * np.sin(2 * np.pi * 150 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    speech[:RATE] = 0.0
    talk = tmp_path / "talk.wav"
    sf.write(talk, (speech + 0.02 * rng.standard_normal(2 * RATE)).astype(np.float32), RATE)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    panel = w.train_panel
    with qtbot.waitSignal(panel.failed) as failed:
        panel.use_recording_noise()
    assert "open a recording first" in failed.args[0]
    [rec] = w.open_files([str(talk)])
    w.document.set_selection((0.05, 0.95))          # the noise-only stretch
    panel.recording_button.click()
    assert panel.recording_noise.spans_s == [[0.05, 0.95]] and "time selection" in panel.recording_label.text()
    panel.clean_edit.setText(str(tmp_path / "clean"))
    panel.noise_edit.setText("")                     # the recording is the only noise
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("gcrn"))
    panel.args_edit.setText("channels = 4, hidden = 16")
    panel.loss_combo.setEditText("mae")
    panel.crop_spin.setValue(0.25)
    panel.examples_spin.setValue(4)
    panel.batch_spin.setValue(2)
    panel.epochs_spin.setValue(1)
    panel.out_edit.setText(str(tmp_path / "adapted"))
    with qtbot.waitSignal(panel.modelReady, timeout=120000) as ready:
        panel.start()
    cfg = read_config(tmp_path / "adapted" / "config.toml")
    assert cfg.data.noise_recording == str(talk.resolve()) and cfg.data.noise_spans_s == [[0.05, 0.95]]
    assert cfg.data.noise == []
    model = ready.args[0]
    assert model in w.model_panel.model_specs()

    # the adapted model and the pretrained one run as two versions of the recording
    for spec in (model, "gtcrn-dns3"):
        w.model_panel.select(spec)
        with qtbot.waitSignal(w.model_panel.versionReady, timeout=60000):
            assert w.model_panel.start()
        qtbot.waitUntil(lambda: not w.model_panel.is_busy(), timeout=10000)
    assert len(rec.versions) == 3
    assert [v.model.id for v in rec.versions[1:]] == ["trained:adapted", "gtcrn-dns3"]

    # the Edit panel's learned noise wins over the selection; clearing takes the recording out of the config
    w.edit_panel._set_noise(None, pauses=[(0.0, 0.5), (0.6, 0.9)])
    panel.use_recording_noise()
    assert panel.recording_noise.spans_s == [[0.0, 0.5], [0.6, 0.9]]
    # nothing marked: its pauses, found by the trainer's speech activity detector
    w.edit_panel._set_noise(None)
    w.document.set_selection(None)
    panel.use_recording_noise()
    assert panel.recording_noise.spans_s is None and "its pauses" in panel.recording_label.text()
    assert panel.config().data.noise_from_pauses and panel.config().data.noise_spans_s == []
    panel.recording_clear.click()
    assert panel.recording_noise is None and panel.recording_label.text() == ""
    with pytest.raises(WorkbenchError, match="needs a pairs folder"):  # no noise left at all
        panel.config()


def test_ray_workers_reach_the_command_and_the_status(qtbot, tmp_path):
    from workbench.gui.train_panel import TrainPanel
    panel = TrainPanel()
    qtbot.addWidget(panel)
    config = tmp_path / "config.toml"
    assert "--ray" not in panel.command_args(config)   # 0: one process
    if not panel.ray_spin.isEnabled():
        pytest.skip("Ray Train is not installed")
    panel.ray_spin.setValue(2)
    panel.restart_check.setChecked(True)
    assert panel.command_args(config) == ["-m", "workbench", "train", str(config), "--progress", "json",
                                          "--restart", "--ray", "2"]
    panel.handle_event({"event": "start", "total_steps": 8, "resumed_at": 0, "parameters": 1000, "workers": 2})
    assert "8 steps on 2 Ray workers" in panel.status.text()
