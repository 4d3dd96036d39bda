"""Measure and Export in the window: DNSMOS on long files waits for its button, the batch dialog
offers the session's models and the open recordings, errors say what failed, dialogs start where the
file is, exports avoid read-only folders, the comparison names its reference."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtWidgets import QFileDialog

from workbench.core.workflows import export as export_module
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.document.recording import Recording
from workbench.gui.export_dialog import ExportDialog
from workbench.gui.main_window import MainWindow


class HalfGain(Enhancer):
    def __init__(self):
        self.info = EnhancerInfo("half-file", "Half gain (file)", "multiplies by 0.5", 16000, True, 0)

    def process_offline(self, audio):
        return (0.5 * audio).astype(np.float32)


@pytest.fixture()
def window(qtbot, settings):
    errors: list[tuple[str, str]] = []
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: errors.append((title, msg)))
    w.reported = errors
    w.ask_unsaved = lambda unsaved: "discard"
    # Listed now, so the deferred background listing has nothing to do after the window is gone.
    w.model_panel.ensure_listed()
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    yield w
    w.close()


def test_opening_the_metrics_tab_on_a_long_file_does_not_start_dnsmos(qtbot, window):
    """A 10-minute file used to start minutes of DNSMOS (slowing a model run 3x) when the tab was shown."""
    sr = 16000
    noise = (0.05 * np.random.default_rng(1).standard_normal(600 * sr)).astype(np.float32)
    window.document.add_recording(Recording.from_array(noise, sr, "long.wav"))
    panel = window.metrics_panel
    window.metrics_dock.show()
    window.metrics_dock.raise_()
    qtbot.waitUntil(panel.isVisible, timeout=5000)
    assert not panel.running
    assert panel.auto_compute and panel.current_job() == {"intrusive": [], "dnsmos": []}
    # The cost is shown where DNSMOS would be started: 591 windows x the seconds per window, over the
    # limit of what starts on its own.
    from workbench.gui.metrics_panel import AUTO_REFERENCE_FREE_MAX_COST_S, format_duration

    estimate = panel.reference_free_estimate_s()
    assert estimate == pytest.approx(panel.costs["dnsmos"].estimate_s(600.0)) and estimate > AUTO_REFERENCE_FREE_MAX_COST_S
    assert f"DNSMOS ≈ {format_duration(estimate)}" in panel.compute_button.text()
    assert "press Measure" in panel.status.text()
    # Asked for, it starts (and is cancelled here: the test does not wait minutes).
    with qtbot.waitSignal(panel.cancelled, timeout=60000):
        panel.compute_button.click()
        assert panel.current_job()["dnsmos"] == ["original"]
        panel.cancel()


def test_a_short_file_is_measured_when_the_tab_is_shown(qtbot, window, shared_data):
    window.open_files([shared_data / "dns3/0015_noisy.wav"])
    panel = window.metrics_panel
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        window.metrics_dock.show()
        window.metrics_dock.raise_()
    assert float(panel.cell_text("dnsmos_ovrl", "original")) > 0
    assert float(panel.cell_text("pesq_wb", "original")) > 0   # auto-paired 0015_clean.wav


def test_batch_dialog_offers_loaded_models_open_recordings_and_any_rate(qtbot, window, shared_data, tmp_path):
    """Batch enhance offered only the built-ins, started empty and listed any-rate models as 16000 Hz."""
    first, second = shared_data / "dns3/0015_noisy.wav", shared_data / "dns3/0016_noisy.wav"
    window.open_files([first, second])
    model_path = tmp_path / "half.onnx"   # stands for a model file loaded in the Models panel
    window.session.catalogue.add_loaded(str(model_path), HalfGain())
    dlg = window.open_batch_dialog()
    qtbot.addWidget(dlg)
    assert dlg.files() == [first, second]
    assert str(model_path) in dlg.model_specs() and "spectral-subtraction" in dlg.model_specs()
    labels = {dlg.model_box.itemData(i): dlg.model_box.itemText(i) for i in range(dlg.model_box.count())}
    assert "any rate" in labels["spectral-subtraction"] and "16000 Hz" not in labels["spectral-subtraction"]
    assert labels["nsnet2-16k"].endswith("16000 Hz)")
    assert "loaded file" in labels[str(model_path)]
    # The loaded model runs from the catalogue (no file is read: the kept instance is used).
    dlg.select_model(str(model_path))
    dlg.folder_edit.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(dlg.batchFinished, timeout=60000) as done:
        dlg.start()
    summary = done.args[0]
    assert not summary.failed and len(summary.succeeded) == 2
    out, sr = sf.read(tmp_path / "out" / "0015_noisy.half-file.wav", dtype="float32")
    src, _ = sf.read(first, dtype="float32")
    assert np.max(np.abs(out - 0.5 * src)) < 1e-4


def test_a_failed_model_load_says_load_failed_and_why(qtbot, window, tmp_path):
    """The status bar said "Model run failed" for a file that never loaded."""
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x08\x07junk" * 9)
    # The load runs in the model worker process behind whatever else the shared thread pool holds; the bound
    # only catches a load that never reports (a few seconds on a quiet machine).
    with qtbot.waitSignal(window.model_panel.runFinished, timeout=120000):
        window.model_panel.load_path(fake)
    message = window.statusBar().currentMessage()
    assert message.startswith("Model load failed: ") and "fake.onnx" in message
    assert "onnxruntime cannot load" in message and "run" not in message.split(":")[0]


def test_file_dialogs_start_in_the_current_files_folder(qtbot, window, shared_data, monkeypatch):
    window.open_files([shared_data / "dns3/0015_noisy.wav"])
    starts = []
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda parent, caption, start, *a, **k: (starts.append(start), ([], ""))[1]))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda parent, caption, start, *a, **k: (starts.append(start), ("", ""))[1]))
    window.open_dialog()
    window.load_model_dialog()
    folder = str((shared_data / "dns3").resolve())
    assert starts == [folder, folder]


def test_export_defaults_to_a_writable_folder_when_the_source_folder_is_read_only(qtbot, tmp_path, monkeypatch,
                                                                                   shared_data):
    source_folder = (shared_data / "dns3").resolve()
    real_access = os.access
    # The shared data folder stands for a read-only share (root may write anywhere, so the check is faked
    # at the operating-system boundary).
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == source_folder
                        else real_access(p, mode, *a, **k))
    fallback = tmp_path / "Workbench exports"
    monkeypatch.setattr(export_module, "FALLBACK_EXPORT_FOLDER", fallback)
    rec = Recording(shared_data / "dns3/0015_noisy.wav")
    dlg = ExportDialog(rec)
    qtbot.addWidget(dlg)
    assert dlg.folder_edit.text() == str(fallback) == dlg.comparison_folder.text()
    assert "read-only" in dlg.status.text()
    monkeypatch.setattr(os, "access", real_access)
    writable = Recording.from_array(np.zeros(1600, np.float32), 16000, str(tmp_path / "x.wav"))
    dlg2 = ExportDialog(writable)
    qtbot.addWidget(dlg2)
    assert dlg2.folder_edit.text() == str(tmp_path.resolve())


def test_comparison_from_the_window_names_the_reference_and_its_hash(qtbot, window, shared_data, tmp_path):
    """The comparison JSON/CSV did not say which clean reference produced the intrusive metrics."""
    window.open_files([shared_data / "dns3/0015_noisy.wav"])
    panel = window.metrics_panel
    panel.reference_free_box.setChecked(False)
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    clean = shared_data / "dns3/0015_clean.wav"
    dlg = window.open_export_dialog(folder=tmp_path)
    qtbot.addWidget(dlg)
    assert str(clean) in dlg.reference_label.text()
    paths = dlg.export_comparison()
    data = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    digest = hashlib.sha256(clean.read_bytes()).hexdigest()
    assert data["reference"]["path"] == str(clean.resolve()) and data["reference"]["sha256"] == digest
    assert "pesq_wb" in data["reference"]["metrics"]
    assert {"role": "reference", "sha256": digest}.items() <= next(f for f in data["files"]
                                                                  if f["role"] == "reference").items()
    csv_text = next(p for p in paths if p.suffix == ".csv").read_text()
    header, first = csv_text.splitlines()[:2]
    assert "reference_sha256" in header.split(",") and digest in first
