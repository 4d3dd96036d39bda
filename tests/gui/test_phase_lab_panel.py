"""The Phase lab panel in the main window: versions of the current recording, chart, table, mask views,
export, cancel, and a recording without reference."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from workbench.core.audio.playback import PlaybackEngine
from workbench.core.provenance import VersionKind
from workbench.gui.main_window import MainWindow


@pytest.fixture()
def window(qtbot, settings):
    errors = []
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: errors.append((title, msg)),
                   playback_engine=PlaybackEngine(None))
    w.reported = errors
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    yield w
    w.close()


def copy_pair(shared_data, tmp_path, clean=True):
    folder = tmp_path / "pair"
    folder.mkdir()
    shutil.copy(shared_data / "dns3" / "0015_noisy.wav", folder / "0015_noisy.wav")
    if clean:
        shutil.copy(shared_data / "dns3" / "0015_clean.wav", folder / "0015_clean.wav")
    return folder / "0015_noisy.wav"


def run_lab(qtbot, panel, timeout=120000):
    with qtbot.waitSignal(panel.labFinished, timeout=timeout) as done:
        panel.make_versions()
    qtbot.waitUntil(lambda: not panel.running())
    return done.args[0]


def test_phase_lab_makes_versions_table_chart_and_mask_views(qtbot, window, shared_data, tmp_path):
    w = window
    noisy = copy_pair(shared_data, tmp_path)
    w.open_files([str(noisy)])
    qtbot.waitUntil(lambda: w.document.recording is not None, timeout=20000)
    panel = w.phase_lab_panel
    qtbot.waitUntil(lambda: w.metrics_panel.reference_path is not None, timeout=20000)  # auto-paired
    panel.refresh_reference()
    assert "0015_clean.wav" in panel.reference_label.text()
    panel.iter_spin.setValue(5)
    result = run_lab(qtbot, panel)
    rec = w.document.recording
    kinds = {v.name: v.kind for v in rec.versions}
    assert kinds["cIRM"] == VersionKind.ORACLE and kinds["|noisy| ∠clean"] == VersionKind.SWAP
    assert kinds["FGLA |clean|"] == VersionKind.RECONSTRUCTION
    # they are versions like any other: the version chooser lists them
    qtbot.waitUntil(lambda: w.version_box.findText("cIRM") >= 0)
    # table: noisy row first, metrics and mask columns
    rows = panel.table_rows()
    assert rows[0] == "original" and "cIRM" in rows
    si_sdr = panel.cell_text("cIRM", "si_sdr")
    assert si_sdr == "∞" or float(si_sdr) > 40
    assert float(panel.cell_text("|clean| ∠noisy", "pesq_wb")) < float(panel.cell_text("cIRM", "pesq_wb"))
    assert panel.table.rowCount() == len(rows) and panel.table.columnCount() == 5
    # convergence chart: one curve per reconstruction
    assert len(panel.chart.getPlotItem().listDataItems()) == 2
    assert len(result.lab.versions[-1].reconstruction.spectral_convergence) == 6
    # mask views in the panes
    panel.mask_phase_button.click()
    assert w.phase_box.currentData() == "mask_phase"
    panel.mask_db_button.click()
    assert w.phase_box.currentData() == "mask_db"
    # export table and chart atomically, never over the recording
    out = panel.export(tmp_path / "lab.csv", tmp_path / "lab.png")
    with open(out[0], newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert {r["version"] for r in table} >= {"original", "cIRM", "|clean| ∠noisy"}
    assert out[1].stat().st_size > 10000
    with pytest.raises(Exception, match="refusing"):
        panel.export(noisy, None, overwrite=True)
    assert not w.reported


def test_phase_lab_without_reference_reconstructs_and_says_why(qtbot, window, shared_data, tmp_path):
    w = window
    noisy = copy_pair(shared_data, tmp_path, clean=False)
    w.open_files([str(noisy)])
    qtbot.waitUntil(lambda: w.document.recording is not None, timeout=20000)
    panel = w.phase_lab_panel
    panel.iter_spin.setValue(2)
    result = run_lab(qtbot, panel)
    assert [v.name for v in result.versions] == ["GLA |noisy|", "FGLA |noisy|"]
    assert "need a clean reference" in panel.status.text()
    assert panel.cell_text("original", "phase_dev") != ""


def test_phase_lab_cancel_adds_nothing(qtbot, window, shared_data, tmp_path):
    w = window
    noisy = copy_pair(shared_data, tmp_path)
    w.open_files([str(noisy)])
    qtbot.waitUntil(lambda: w.document.recording is not None, timeout=20000)
    panel = w.phase_lab_panel
    panel.iter_spin.setValue(2000)
    with qtbot.waitSignal(panel.progress.valueChanged, timeout=60000):
        panel.make_versions()
    before = len(w.document.recording.versions)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.running(), timeout=60000)
    assert panel.status.text() == "cancelled"
    assert len(w.document.recording.versions) == before == 1
