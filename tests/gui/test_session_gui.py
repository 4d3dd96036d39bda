"""Jobs belong to their recording, Quit asks about unsaved results, sessions restore the window."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.document.session import JobState
from workbench.gui.main_window import MainWindow

REPO = Path(__file__).resolve().parents[2]


class GatedStream(EnhancerStream):
    def __init__(self, model):
        self.model = model

    def process(self, block):
        self.model.blocks += 1
        self.model.entered.set()
        self.model.gate.wait(10)
        return block


class GatedModel(Enhancer):
    """A slow fake model: each 0.1 s block waits on a gate the test opens."""

    def __init__(self):
        self.info = EnhancerInfo("gated", "Gated", "waits per block", 16000, True, 0, processing="streaming",
                                 block_samples=1600)
        self.gate, self.entered, self.blocks = threading.Event(), threading.Event(), 0

    def new_stream(self):
        return GatedStream(self)


@pytest.fixture()
def speech(tmp_path):
    sr = 16000
    t = np.arange(2 * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(3).standard_normal(t.size))
    path = tmp_path / "speech.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1).astype(np.float32), sr, subtype="FLOAT")
    return path


@pytest.fixture()
def window(qtbot, settings):
    errors = []
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: errors.append(msg))
    w.reported = errors
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    yield w
    w.close()


def open_window(qtbot, settings, files, *models):
    """A shown window with ``files`` open and each of ``models`` run on the current one, in order."""
    w = MainWindow(settings=settings, error_reporter=lambda *a: None)
    qtbot.addWidget(w)
    w.show()
    w.open_files(list(files))
    for spec in models:
        run_model(qtbot, w, spec)
    return w


def run_model(qtbot, w, spec="logmmse"):
    w.model_panel.select(spec)
    with qtbot.waitSignal(w.model_panel.runFinished, timeout=30000) as done:
        assert w.model_panel.start()
    assert done.args == ["done"]


def test_closing_a_recording_cancels_its_run_and_reports_no_version(qtbot, window, speech):
    """Defect: a model went on for a closed file and then reported a version for it."""
    w = window
    (rec,) = w.open_files([speech])
    model = GatedModel()
    w.document.catalogue.add_loaded("gated-model", model)
    w.model_panel.select("gated-model")
    reported = []
    w.model_panel.versionReady.connect(lambda r, v: reported.append(v))
    jobs = []
    w.document.jobChanged.connect(jobs.append)
    assert w.model_panel.start()
    assert model.entered.wait(10)              # the model is inside its first block
    job = w.model_panel.job
    assert job is not None and job.owner is rec
    with qtbot.waitSignal(w.model_panel.runFinished, timeout=10000) as finished:
        w.close_current()                      # File > Close recording, mid-run
        model.gate.set()                       # let the block in progress return
    assert finished.args == ["cancelled"]
    assert model.blocks <= 2                   # stopped within one progress step
    assert reported == [] and [v.name for v in rec.versions] == ["original"]
    assert job.state is JobState.CANCELLED and w.session.jobs == []
    assert "closed" in w.model_panel.status.text()


def _answer_box(qtbot, text):
    """Click ``text`` in the Unsaved results box as soon as it is shown (it runs its own event loop)."""
    clicked = []

    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.objectName() == "unsavedResultsBox":
            for b in box.buttons():
                if b.text().replace("&", "") == text:
                    clicked.append(text)
                    b.click()
                    return
        QTimer.singleShot(20, click)
    QTimer.singleShot(0, click)
    return clicked


@pytest.mark.real_quit_prompt
def test_quit_with_unsaved_results_asks(qtbot, window, speech, tmp_path, monkeypatch):
    """Defect: Quit (Ctrl+Q) discarded every model output without asking."""
    w = window
    w.open_files([speech])
    run_model(qtbot, w)
    # Cancel: the window stays, with its results
    clicked = _answer_box(qtbot, "Cancel")
    w.close()
    assert clicked == ["Cancel"] and w.isVisible() and len(w.document.recording.versions) == 2
    # Save session…: the results go to a session file, then the window closes
    target = tmp_path / "kept.session.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    clicked = _answer_box(qtbot, "Save session…")
    w.close()
    assert clicked == ["Save session…"] and not w.isVisible() and target.exists()


@pytest.mark.real_quit_prompt
def test_quit_discard_and_nothing_unsaved(qtbot, settings, speech):
    w = MainWindow(settings=settings, error_reporter=lambda *a: None)
    qtbot.addWidget(w)
    w.show()
    w.open_files([speech])
    w.close()                                   # only the original: nothing to ask about
    assert not w.isVisible()
    w2 = open_window(qtbot, settings, [speech], "logmmse")
    clicked = _answer_box(qtbot, "Discard")
    w2.close()
    assert clicked == ["Discard"] and not w2.isVisible()


def test_saved_session_restores_the_window(qtbot, settings, speech, tmp_path):
    w = open_window(qtbot, settings, [speech], "logmmse", "wiener")
    rec = w.document.recording
    w.document.set_version(rec.version("logmmse"))
    w.document.set_channel(1)
    w.db_lo.setValue(-90)
    w.phase_box.setCurrentIndex(w.phase_box.findData("group_delay"))
    w.nfft_box.setCurrentIndex(w.nfft_box.findData(512))
    w.transport.set_loop(0.5, 1.25)
    w.view.set_time_range(0.2, 1.6)
    clean = tmp_path / "clean.wav"
    sf.write(clean, np.zeros((32000, 2), np.float32), 16000)
    w.session.set_reference(rec, clean)
    blind = [{"recording": "speech.wav", "versions": ["logmmse", "original"], "tally": {"original": 1, "logmmse": 2},
              "trials": []}]
    w.workspace.set_blind_results(blind)
    target = w.save_session_to(tmp_path / "w.session.json")
    assert target is not None and not w.session.unsaved_versions()
    before = {v.name: v.source.read_all().tobytes() for v in rec.versions}
    display, cfg = w.display_settings(), w.view.cfg
    w.close()

    # A restart with settings of its own: what comes back comes from the session file, not from the
    # settings the first window wrote when it closed.
    fresh = QSettings(str(tmp_path / "fresh.ini"), QSettings.Format.IniFormat)
    w2 = MainWindow(settings=fresh, error_reporter=lambda *a: None)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.display_settings() != display and w2.view.cfg != cfg
    assert w2.open_session_file(target) and w2.session_problems == []
    rec2 = w2.document.recording
    assert {v.name: v.source.read_all().tobytes() for v in rec2.versions} == before
    assert w2.document.version.name == "logmmse" and w2.document.channel == 1
    assert w2.display_settings() == display and w2.view.cfg == cfg
    assert w2.transport.loop_button.isChecked() and w2._loop_region == (0.5, 1.25)
    assert w2.session.reference(rec2) == clean
    assert w2.transport.blind_results == blind
    t0, t1 = w2.view.time_range()
    assert abs(t0 - 0.2) < 1e-6 and abs(t1 - 1.6) < 1e-6
    assert [v.provenance for v in rec2.versions] == [v.provenance for v in rec.versions]
    w2.close()


def test_open_session_reports_a_changed_source_in_one_line(qtbot, settings, speech, tmp_path):
    w = open_window(qtbot, settings, [speech], "wiener")
    target = w.save_session_to(tmp_path / "c.session.json")
    w.close()
    x, sr = sf.read(speech, dtype="float32")
    sf.write(speech, x[::-1].copy(), sr, subtype="FLOAT")
    reported = []
    w2 = MainWindow(settings=settings, error_reporter=lambda title, msg: reported.append(msg))
    qtbot.addWidget(w2)
    w2.show()
    assert w2.open_session_file(target)
    assert len(reported) == 1 and "speech.wav" in reported[0] and "SHA-256 differs" in reported[0]
    assert "\n" not in reported[0] and w2.document.recordings == []
    w2.close()


def test_loaded_models_are_in_the_shared_catalogue(qtbot, window, dtln_folder):
    """Defect (with the batch dialog): a model loaded in the Models panel was invisible elsewhere."""
    folder = dtln_folder
    with qtbot.waitSignal(window.model_panel.modelLoaded, timeout=30000):
        window.model_panel.load_path(folder)
    entry = window.document.catalogue.entry(str(folder))
    assert entry.origin == "file" and entry.enhancer is not None
    assert str(folder) in window.document.catalogue.specs()


def test_session_command_line_restores_and_screenshots(qtbot, settings, speech, tmp_path):
    w = open_window(qtbot, settings, [speech], "wiener")
    target = w.save_session_to(tmp_path / "cli.session.json")
    w.close()
    shot = tmp_path / "shot.png"
    res = subprocess.run([sys.executable, str(REPO / "main.py"), "--session", str(target), "--screenshot", str(shot)],
                         capture_output=True, text=True, timeout=180, cwd=REPO,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.stat().st_size > 10000


def test_two_output_onnx_model_gives_two_versions_in_the_window(qtbot, window, speech, tmp_path):
    import onnx
    from onnx import helper

    nodes = [helper.make_node("Mul", ["x", "a"], ["s"]), helper.make_node("Sub", ["x", "s"], ["n"]),
             helper.make_node("Concat", ["s", "n"], ["y"], axis=0)]
    graph = helper.make_graph(nodes, "split", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, "T"])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, "T"])],
                              initializer=[helper.make_tensor("a", onnx.TensorProto.FLOAT, [], [0.8])])
    model = tmp_path / "split.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(model))
    (tmp_path / "split.onnx.toml").write_text('kind = "waveform"\nsample_rate = 16000\noutputs = ["speech", "noise"]\n')
    w = window
    (rec,) = w.open_files([speech])
    with qtbot.waitSignal(w.model_panel.modelLoaded, timeout=30000):
        w.model_panel.load_path(model)
    qtbot.waitUntil(lambda: not w.model_panel.is_busy(), timeout=5000)
    ready = []
    w.model_panel.versionReady.connect(lambda r, v: ready.append(v.name))
    run_model(qtbot, w, str(model))
    assert ready == ["onnx:split.speech", "onnx:split.noise"]
    assert [v.name for v in rec.versions] == ["original", "onnx:split.speech", "onnx:split.noise"]
    x = rec.source.read_all()
    np.testing.assert_allclose(rec.version("onnx:split.noise").source.read_all(), 0.2 * x, atol=1e-6)
    assert w.document.version.name == "onnx:split.noise"   # the newest result is shown
    assert w.version_box.count() >= 3


def test_a_bad_session_file_leaves_the_window_as_it_was(qtbot, window, speech, tmp_path):
    w = window
    (rec,) = w.open_files([speech])
    bad = tmp_path / "broken.session.json"
    bad.write_text("{ not json")
    assert not w.open_session_file(bad)
    assert w.reported == [f"{bad}: not a session file (invalid JSON at line 1)"]
    assert w.document.recordings == [rec] and w.document.recording is rec


def _gui_tick_flag(qtbot):
    """A threading.Event the GUI thread sets from a timer: set only while the event loop runs."""
    ticked = threading.Event()
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(ticked.set)
    timer.start()
    return ticked, timer


def test_saving_and_opening_a_session_run_off_the_gui_thread(qtbot, settings, speech, tmp_path, monkeypatch):
    """Defect: Save/Open session hashed sources and wrote or read every version's audio on the GUI
    thread, so the window froze for seconds on long recordings. Now the core generators run on a worker:
    the window's event loop keeps running (a GUI timer fires while the save is in progress)."""
    import workbench.gui.session_controller as sc
    from workbench.core.document import session_file

    w = open_window(qtbot, settings, [speech], "wiener")
    seen = {}

    def watched(real, name):
        def gen(*args, **kwargs):
            seen[name] = (threading.current_thread() is threading.main_thread(), ticked.wait(10))
            return (yield from real(*args, **kwargs))
        return gen
    ticked, timer = _gui_tick_flag(qtbot)
    monkeypatch.setattr(sc, "save_session", watched(session_file.save_session, "save"))
    monkeypatch.setattr(sc, "open_session", watched(session_file.open_session, "open"))
    target = w.save_session_to(tmp_path / "bg.session.json")
    assert seen["save"] == (False, True) and target is not None and target.is_file()
    assert not w.session.unsaved_versions()
    ticked.clear()
    assert w.open_session_file(target)
    timer.stop()
    assert seen["open"] == (False, True) and w.session_problems == []
    assert [v.name for v in w.document.recording.versions] == ["original", "wiener"]
    w.close()


def test_cancelling_a_session_save_writes_no_session_file(qtbot, settings, speech, tmp_path, monkeypatch):
    import workbench.gui.session_controller as sc
    from workbench.core.document import session_file
    from workbench.core.progress import Progress

    w = open_window(qtbot, settings, [speech], "wiener")
    cancelled = threading.Event()

    def slow(*args, **kwargs):
        yield Progress(0.1, "hashing the source")
        cancelled.wait(10)   # the test presses Cancel meanwhile
        return (yield from session_file.save_session(*args, **kwargs))
    monkeypatch.setattr(sc, "save_session", slow)

    def press_cancel():
        if w.progress_dialog is None:
            QTimer.singleShot(10, press_cancel)
            return
        from PySide6.QtWidgets import QPushButton
        w.progress_dialog.findChild(QPushButton).click()   # the dialog's Cancel button
        cancelled.set()
    QTimer.singleShot(10, press_cancel)
    target = tmp_path / "cancel.session.json"
    assert w.save_session_to(target) is None
    assert not target.exists() and not session_file.audio_folder(target).exists()
    assert w.session.unsaved_versions() and w.session.path is None
    assert "cancelled" in w.statusBar().currentMessage()
    w.close()


@pytest.mark.real_quit_prompt
def test_closing_a_recording_with_unsaved_results_asks(qtbot, settings, speech, tmp_path):
    """Defect: File > Close discarded a result that was neither saved nor exported without asking."""
    w = open_window(qtbot, settings, [speech], "wiener")
    rec = w.document.recording
    clicked = _answer_box(qtbot, "Cancel")
    assert not w.close_current()
    assert clicked == ["Cancel"] and w.document.recordings == [rec] and len(rec.versions) == 2
    clicked = _answer_box(qtbot, "Discard")
    assert w.close_current()
    assert clicked == ["Discard"] and w.document.recordings == []
    w.open_files([speech])                     # nothing unsaved: closes without a question
    assert w.close_current() and w.document.recordings == []
    w.close()


def test_undo_and_redo_show_the_version_they_concerned(qtbot, settings, speech):
    """Defect: Ctrl+Z of a repair showed "original", and redo kept showing it."""
    from workbench.core.enhance.editing import Box
    from workbench.core.document.version_ops import repair_version

    w = open_window(qtbot, settings, [speech], "wiener")
    rec = w.document.recording
    wiener = rec.version("wiener")
    repaired = repair_version(rec, wiener, Box(0.2, 0.6, 200.0, 2000.0), gain_db=-20.0)
    w.document.set_version(repaired)
    qtbot.wait(50)
    assert w.undo() == f"add {repaired.name}"
    qtbot.wait(50)                             # the version list reaches the widgets queued
    assert w.document.version is wiener and w.version_box.currentText() == "wiener"
    assert w.redo() == f"add {repaired.name}"
    qtbot.wait(50)
    assert w.document.version is repaired and w.version_box.currentText() == repaired.name
    w.close()


def test_strength_of_a_recording_restored_from_a_session_redraws(qtbot, settings, speech, tmp_path):
    """Defect: a recording restored from a session reported nothing when its strength changed, so the
    panes and playback kept the old mix."""
    from workbench.core.enhance.editing import Strength

    w = open_window(qtbot, settings, [speech], "wiener")
    target = w.save_session_to(tmp_path / "st.session.json")
    w.close()
    w2 = MainWindow(settings=settings, error_reporter=lambda *a: None)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.open_session_file(target)
    rec = w2.document.recording
    v = rec.version("wiener")
    w2.document.set_version(v)
    with qtbot.waitSignal(w2.document.strengthChanged, timeout=5000) as changed:
        rec.set_strength(v, Strength(0.5))
    assert changed.args == [rec, v]
    assert w2.view.source is v.source          # the panes draw the new mix
    assert w2.undo() is not None and rec.strength_of(v).full
    w2.close()


def _differences(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only on one side" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            out += _differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_a_saved_workspace_comes_back_whole_in_a_fresh_window(qtbot, settings, speech, tmp_path, monkeypatch):
    """Save, re-open in a fresh window (its own settings) and compare the whole workspace model; then
    check what the person sees of it: the loop region on the panes and the overview and in the Edit
    panel, the phase-lab table and curves, the metrics table (not measured again), the strength."""
    import workbench.gui.metrics_panel as mp
    from workbench.core.enhance.editing import Strength
    from workbench.core.audio.playback import PlaybackEngine

    sr = 16000
    t = np.arange(2 * sr) / sr
    clean = tmp_path / "clean.wav"
    sf.write(clean, np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32), sr, subtype="FLOAT")
    w = open_window(qtbot, settings, [speech], "wiener")
    rec = w.document.recording
    w.session.set_reference(rec, clean)
    # the phase lab (swaps and two short Griffin-Lim runs) and the intrusive metrics
    lab = w.phase_lab_panel
    lab.oracle_box.setChecked(False)
    lab.iter_spin.setValue(3)
    with qtbot.waitSignal(lab.labFinished, timeout=120000):
        lab.make_versions()
    qtbot.waitUntil(lambda: not lab.running(), timeout=20000)
    w.metrics_panel.reference_free_box.setChecked(False)
    with qtbot.waitSignal(w.metrics_panel.resultsReady, timeout=60000):
        assert w.metrics_panel.compute()
    qtbot.waitUntil(lambda: not w.metrics_panel.running, timeout=20000)
    wiener = rec.version("wiener")
    rec.set_strength(wiener, Strength(0.6))
    with qtbot.waitSignal(w.metrics_panel.resultsReady, timeout=60000):
        assert w.metrics_panel.compute()      # the new mix is measured too
    qtbot.waitUntil(lambda: not w.metrics_panel.running, timeout=20000)
    w.document.set_version(wiener)
    w.document.set_channel(1)
    w.db_lo.setValue(-80)
    w.nfft_box.setCurrentIndex(w.nfft_box.findData(512))
    w.view.loopSelected.emit(0.5, 1.25)        # Shift + drag on a pane
    w.view.boxSelected.emit(0.2, 0.4, 300.0, 900.0)
    w.view.set_time_range(0.1, 1.7)
    w.view.master.getViewBox().scaleBy((1.0, 0.5))   # a wheel zoom on the frequency axis
    w.edit_panel.interpolate_radio.setChecked(True)
    w.edit_panel.gain_spin.setValue(-12.0)
    blind = w.transport.open_blind_test()
    blind.start()
    blind.vote("Y")                            # the first of five trials is done
    w.resize(1200, 700)
    qtbot.wait(50)
    freq = w.view.visible_region()[1]
    assert w.workspace.freq_range == pytest.approx(freq, abs=0.01) and freq[1] - freq[0] < 7000
    assert w.workspace.phase_lab_params["gla_iterations"] == 3 and "oracle" not in w.workspace.phase_lab_params["kinds"]
    assert w.workspace.edit_params["repair"] == "interpolate" and w.workspace.blind_test["current"] == 1
    blind_trials = blind.state()["trials"]
    lab_rows = lab.table_rows()
    lab_cells = [lab.cell_text(r, "si_sdr") for r in lab_rows]
    metric_cells = {v.name: w.metrics_panel.cell_text("si_sdr", v.name) for v in w.metrics_panel.versions()}
    assert lab_rows and all(metric_cells.values())
    size = (w.width(), w.height())
    target = w.save_session_to(tmp_path / "whole.session.json")
    before = w.workspace.snapshot()
    w.close()

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again although nothing changed")
    monkeypatch.setattr(mp, "score_versions", no_measuring)
    fresh = QSettings(str(tmp_path / "fresh.ini"), QSettings.Format.IniFormat)
    w2 = MainWindow(settings=fresh, error_reporter=lambda *a: None, playback_engine=PlaybackEngine(None))
    qtbot.addWidget(w2)
    w2.show()
    assert w2.open_session_file(target) and w2.session_problems == []
    qtbot.wait(100)
    after = w2.workspace.snapshot()
    assert _differences(after, before) == []
    # what the person sees of it
    assert w2.view.loop_region() == (0.5, 1.25) and w2.view.overview_loop.isVisible()
    assert all(p.loop.isVisible() for p in w2.view.panes.values())
    assert w2.transport.loop_button.isChecked() and w2.edit_panel.selection_s == (0.5, 1.25)
    assert w2.edit_panel.enhance_selection_button.isEnabled()          # Enhance selection can use it
    assert tuple(vars(w2.edit_panel.box()).values()) == (0.2, 0.4, 300.0, 900.0)
    assert w2.phase_lab_panel.table_rows() == lab_rows
    assert [w2.phase_lab_panel.cell_text(r, "si_sdr") for r in lab_rows] == lab_cells
    assert len(w2.phase_lab_panel.chart.listDataItems()) == len(before["recordings"][0]["phase_lab"]["curves"]) > 0
    w2.metrics_dock.show()
    w2.metrics_dock.raise_()
    qtbot.wait(100)
    assert not w2.metrics_panel.running and w2.metrics_panel.missing() == ([], [])
    assert {n: w2.metrics_panel.cell_text("si_sdr", n) for n in metric_cells} == metric_cells
    assert w2.view.cfg.n_fft == 512 and w2.display_settings().db_range[0] == -80
    assert w2.document.version.name == "wiener" and w2.document.channel == 1
    assert (w2.width(), w2.height()) == size
    # the panes' frequency zoom, the run parameters in the panels' controls, the blind test where it was
    assert w2.view.visible_region()[1] == pytest.approx(freq, abs=0.05)
    assert w2.phase_lab_panel.iter_spin.value() == 3 and not w2.phase_lab_panel.oracle_box.isChecked()
    assert w2.edit_panel.interpolate_radio.isChecked() and w2.edit_panel.gain_spin.value() == -12.0
    qtbot.waitUntil(lambda: w2.transport._blind is not None, timeout=10000)
    resumed = w2.transport._blind
    assert resumed.state() == {"trials": blind_trials, "current": 1} and resumed.stack.currentIndex() == 1
    resumed.reject()
    w2.close()


def test_undo_after_reopening_a_session_undoes_the_last_change_before_saving(qtbot, settings, speech, tmp_path):
    """The undo history is part of the saved workspace: Ctrl+Z in a fresh window takes back the last change
    made before saving and shows the version it concerned; Ctrl+Shift+Z puts it back."""
    from workbench.core.enhance.editing import Box
    from workbench.core.document.version_ops import repair_version

    w = open_window(qtbot, settings, [speech], "wiener")
    rec = w.document.recording
    repaired = repair_version(rec, rec.version("wiener"), Box(0.2, 0.6, 200.0, 2000.0), gain_db=-20.0)
    w.document.set_version(repaired)
    target = w.save_session_to(tmp_path / "undo.session.json")
    w.close()
    fresh = QSettings(str(tmp_path / "fresh.ini"), QSettings.Format.IniFormat)
    w2 = MainWindow(settings=fresh, error_reporter=lambda *a: None)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.open_session_file(target) and w2.session_problems == []
    rec2 = w2.document.recording
    w2.document.set_version(rec2.original)
    qtbot.wait(50)
    w2.undo_action.trigger()
    qtbot.wait(50)
    assert rec2.version_or_none(repaired.name) is None
    assert w2.document.version is rec2.version("wiener") and w2.version_box.currentText() == "wiener"
    assert w2.statusBar().currentMessage() == f"Undone: add {repaired.name}"
    w2.redo_action.trigger()
    qtbot.wait(50)
    assert w2.document.version.name == repaired.name and w2.version_box.currentText() == repaired.name
    w2.close()


def test_jobs_are_the_workspaces_and_closing_a_recording_cancels_its_phase_lab_run(qtbot, settings, speech):
    """A phase-lab run is a job of its recording in the workspace: the status bar lists it from there, and
    closing the recording cancels it (its versions are not added)."""
    w = open_window(qtbot, settings, [speech])
    rec = w.document.recording
    lab = w.phase_lab_panel
    lab.oracle_box.setChecked(False)
    lab.swap_box.setChecked(False)
    lab.iter_spin.setValue(2000)              # long enough to be closed while it runs
    lab.make_versions()
    qtbot.waitUntil(lambda: any(j.label == "phase lab on speech.wav" and j.state == JobState.RUNNING
                                for j in w.workspace.jobs), timeout=20000)
    (job,) = w.workspace.jobs_of(rec)
    assert job.owner is rec
    qtbot.waitUntil(lambda: w.jobs_label.text().startswith("phase lab on speech.wav"), timeout=5000)
    assert "closing speech.wav cancels it" in w.jobs_label.toolTip()
    assert w.close_current()
    qtbot.waitUntil(lambda: not lab.running(), timeout=30000)
    assert job.state == JobState.CANCELLED and w.workspace.jobs_of(rec) == []
    assert [v.name for v in rec.versions] == ["original"]
    qtbot.waitUntil(lambda: w.jobs_label.text() == "", timeout=5000)
    w.close()


def test_the_phase_lab_and_the_metrics_panel_share_the_workspaces_reference(qtbot, settings, speech, tmp_path,
                                                                             monkeypatch):
    """Panels never call each other: the phase lab's Choose reference sets the workspace's reference, which
    the Metrics panel shows; Show |M| sets the workspace's display, which the tool bar shows."""
    clean = tmp_path / "clean.wav"
    sf.write(clean, np.zeros((32000, 2), np.float32), 16000)
    w = open_window(qtbot, settings, [speech])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(clean), ""))
    w.phase_lab_panel.choose_button.click()
    qtbot.waitUntil(lambda: w.metrics_panel.reference_path == clean, timeout=5000)
    assert w.session.reference(w.document.recording) == clean
    qtbot.waitUntil(lambda: "clean.wav" in w.phase_lab_panel.reference_label.text(), timeout=5000)
    w.phase_lab_panel.mask_phase_button.click()
    assert w.workspace.display["phase_view"] == "mask_phase" and w.phase_box.currentData() == "mask_phase"
    w.close()
