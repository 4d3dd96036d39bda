"""Export and batch dialogs with pytest-qt (offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.document.recording import Recording
from workbench.core.views.stft import StftConfig
from workbench.gui.export_dialog import BatchDialog, ExportDialog


class HalfGain(Enhancer):
    def __init__(self, sr: int = 16000):
        self.info = EnhancerInfo("half", "Half gain", "multiplies by 0.5", sr, True, 0)

    def process_offline(self, audio):
        return (0.5 * audio).astype(np.float32)


@pytest.fixture()
def recording(tmp_path, shared_data):
    # A copy-free setup: the source stays in shared/data, which the dialog must never write to.
    rec = Recording(shared_data / "dns3" / "0072_noisy.wav")
    audio = rec.source.read_all()
    rec.add_enhanced(audio * 0.5, rec.source.sample_rate, HalfGain().info, {"channels": [0]}, 0.1)
    return rec


def test_audio_export_with_residual_and_overwrite_confirmation(qtbot, tmp_path, recording):
    asked = []
    answer = {"yes": False}

    def confirm(_parent, paths):
        asked.append(list(paths))
        return answer["yes"]

    dlg = ExportDialog(recording, folder=tmp_path, stft_config=StftConfig(512, 128), confirm=confirm)
    qtbot.addWidget(dlg)
    labels = [dlg.version_list.item(i).text() for i in range(dlg.version_list.count())]
    assert labels == ["original  →  original", "half  →  half", "residual (half)  →  half.residual"]
    dlg.set_checked(["half", "residual (half)"])
    dlg.format_box.setCurrentText("FLAC")
    assert [dlg.subtype_box.itemData(i) for i in range(dlg.subtype_box.count())] == ["PCM_16", "PCM_24"]
    dlg.format_box.setCurrentText("WAV")
    dlg.subtype_box.setCurrentIndex(dlg.subtype_box.findData("FLOAT"))
    with qtbot.waitSignal(dlg.exported) as sig:
        dlg.audio_button.click()
    names = sorted(p.name for p in sig.args[0])
    assert names == ["0072_noisy.half.residual.wav", "0072_noisy.half.wav"]
    y, sr = sf.read(tmp_path / "0072_noisy.half.wav", dtype="float32")
    x = recording.source.read_all()[:, 0]
    np.testing.assert_array_equal(y, 0.5 * x)
    r, _ = sf.read(tmp_path / "0072_noisy.half.residual.wav", dtype="float32")
    np.testing.assert_allclose(r, x - 0.5 * x, atol=1e-7)
    assert not asked
    # exporting again asks; "No" keeps the files, "Yes" replaces them
    before = (tmp_path / "0072_noisy.half.wav").stat().st_mtime_ns
    assert dlg.export_audio() is None and len(asked) == 1 and len(asked[0]) == 2
    assert (tmp_path / "0072_noisy.half.wav").stat().st_mtime_ns == before
    answer["yes"] = True
    assert len(dlg.export_audio()) == 2
    # the source recording was not touched and no temporary files remain
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_errors_are_shown_not_raised(qtbot, tmp_path, recording):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    dlg = ExportDialog(recording, folder=blocker, confirm=lambda *_: True)
    qtbot.addWidget(dlg)
    with qtbot.waitSignal(dlg.errorOccurred) as sig:
        dlg.export_audio()
    assert "not_a_folder" in sig.args[0] and "not_a_folder" in dlg.status.text()
    dlg.set_checked([])
    assert dlg.export_audio() is None and "Tick at least one" in dlg.status.text()


# workbench.core.views.figure (not ours) still calls Colormap.set_bad, which matplotlib deprecates;
# reported to its owner. Only that warning is tolerated here.
@pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")
def test_comparison_and_figure(qtbot, tmp_path, recording):
    metrics = {"half": {"si_sdr_db": 6.0}}
    dlg = ExportDialog(recording, folder=tmp_path, stft_config=StftConfig(512, 128), metrics=metrics,
                       confirm=lambda *_: True)
    qtbot.addWidget(dlg)
    dlg.set_checked(["half"])
    dlg.export_audio()
    paths = dlg.export_comparison()
    assert [p.name for p in paths] == ["0072_noisy.comparison.json", "0072_noisy.comparison.csv"]
    data = json.loads(paths[0].read_text())
    assert data["versions"][1]["metrics"] == {"si_sdr_db": 6.0}
    assert [f["role"] for f in data["files"]] == ["source", "export"]
    assert data["stft"]["n_fft"] == 512
    dlg.figure_format.setCurrentText("SVG")
    dlg.width_spin.setValue(640)
    dlg.height_spin.setValue(480)
    out = dlg.export_figure()
    assert out is not None and out.name == "0072_noisy.original.svg" and b"<svg" in out.read_bytes()[:2000]


def test_batch_dialog_drop_run_and_summary(qtbot, tmp_path, shared_data):
    infos = [HalfGain().info]
    dlg = BatchDialog(enhancers=infos, load_enhancer=lambda model_id: HalfGain(), folder=tmp_path)
    qtbot.addWidget(dlg)
    assert not dlg.start_button.isEnabled()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(shared_data / "dns3" / "0015_noisy.wav")), QUrl.fromLocalFile(str(bad)),
                  QUrl.fromLocalFile(str(shared_data / "dns3" / "0016_noisy.wav"))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    dlg.dropEvent(drop)
    assert [p.name for p in dlg.files()] == ["0015_noisy.wav", "bad.wav", "0016_noisy.wav"]
    out = tmp_path / "out"
    dlg.folder_edit.setText(str(out))
    dlg.residual_check.setChecked(True)
    with qtbot.waitSignal(dlg.batchFinished, timeout=20000) as sig:
        dlg.start_button.click()
    summary = sig.args[0]
    assert len(summary.succeeded) == 2 and [p.name for p, _ in summary.failed] == ["bad.wav"]
    assert sorted(p.name for p in out.iterdir()) == [
        "0015_noisy.half.residual.wav", "0015_noisy.half.wav", "0016_noisy.half.residual.wav", "0016_noisy.half.wav"]
    text = dlg.summary_view.toPlainText()
    assert "2 of 3 files" in text and "FAILED" in text and "bad.wav" in text
    assert dlg.progress.value() == 1000 and dlg.start_button.isEnabled()


def test_batch_dialog_lists_registry_models(qtbot):
    from workbench.core.enhance.registry import list_enhancers

    dlg = BatchDialog()
    qtbot.addWidget(dlg)
    ids = [dlg.model_box.itemData(i) for i in range(dlg.model_box.count())]
    assert ids == [info.id for info in list_enhancers()] and ids


def test_default_confirmation_uses_a_message_box(qtbot, tmp_path, recording, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    calls = []

    def fake_question(parent, title, text, buttons, default):
        calls.append((title, text, default))
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", staticmethod(fake_question))
    dlg = ExportDialog(recording, folder=tmp_path)
    qtbot.addWidget(dlg)
    dlg.set_checked(["half"])
    target = tmp_path / "0072_noisy.half.wav"
    target.write_bytes(b"keep")
    assert dlg.export_audio() is None
    assert len(calls) == 1 and str(target) in calls[0][1] and calls[0][2] == QMessageBox.StandardButton.No
    assert target.read_bytes() == b"keep" and "existing files kept" in dlg.status.text()


def test_mp3_export_at_podcast_loudness_from_the_dialog(qtbot, tmp_path, recording):
    from workbench.core.audio.loudness import measure
    from workbench.core.enhance.editing import Strength
    enhanced = recording.versions[1]
    recording.set_strength(enhanced, Strength(0.7))  # export uses the strength that is set
    dlg = ExportDialog(recording, folder=tmp_path, confirm=lambda *_: True)
    qtbot.addWidget(dlg)
    dlg.format_box.setCurrentText("MP3")
    assert dlg.quality_spin.isEnabled() and dlg.subtype_box.currentData() == "MPEG_LAYER_III"
    dlg.loudness_check.setChecked(True)
    dlg.loudness_spin.setValue(-23.0)
    dlg.set_checked([enhanced.name])
    files = dlg.export_audio()
    assert files and files[0].path.suffix == ".mp3"
    y, rate = sf.read(files[0].path, dtype="float32")
    assert sf.info(files[0].path).format == "MP3"
    assert abs(measure(y, rate).lufs - (-23.0)) < 0.5
    dlg.format_box.setCurrentText("WAV")
    assert not dlg.quality_spin.isEnabled()


def test_audio_and_figure_export_run_off_the_gui_thread_and_audio_can_be_cancelled(qtbot, tmp_path, recording,
                                                                                   monkeypatch):
    """Defect: the dialog wrote audio (an hour of MP3 takes a while) and drew figures on the GUI thread, so
    the window froze meanwhile. Now both run on a worker while the event loop keeps running, and Cancel
    stops an audio export between files (the files written so far are complete)."""
    import threading

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QPushButton

    import workbench.gui.export_dialog as ed
    from workbench.core.workflows import export

    ticked = threading.Event()
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(ticked.set)
    timer.start()
    seen = {}

    def figure_watch(*args, **kwargs):
        seen["figure"] = (threading.current_thread() is threading.main_thread(), ticked.wait(10))
        return export.export_figure(*args, **kwargs)
    monkeypatch.setattr(ed, "export_figure", figure_watch)
    dlg = ExportDialog(recording, folder=tmp_path, stft_config=StftConfig(512, 128), confirm=lambda *_: True)
    qtbot.addWidget(dlg)
    dlg.figure_folder.setText(str(tmp_path))
    assert dlg.export_figure() is not None and seen["figure"] == (False, True)

    cancelled = threading.Event()

    def audio_watch(*args, **kwargs):
        seen["audio"] = threading.current_thread() is threading.main_thread()
        steps = export.export_versions_steps(*args, **kwargs)
        first = next(steps)                       # checks done, about to write the first file
        yield first
        cancelled.wait(10)                         # the test presses Cancel meanwhile
        return (yield from steps)
    monkeypatch.setattr(ed, "export_versions_steps", audio_watch)

    def press_cancel():
        if dlg.progress_dialog is None or "audio" not in seen:  # until the export is under way on its thread
            QTimer.singleShot(10, press_cancel)
            return
        dlg.progress_dialog.findChild(QPushButton).click()
        cancelled.set()
    QTimer.singleShot(10, press_cancel)
    dlg.set_checked(["half", "residual (half)"])
    assert dlg.export_audio() is None and seen["audio"] is False
    assert "cancelled" in dlg.status.text()
    # Cancel came while the first file was under way: it is finished, the second never started.
    assert [p.name for p in tmp_path.glob("*.wav")] == ["0072_noisy.half.wav"]
    y, _ = sf.read(tmp_path / "0072_noisy.half.wav", dtype="float32")
    assert y.shape[0] == recording.source.frames
    timer.stop()


def test_batch_dialog_runs_on_worker_processes(qtbot, tmp_path, shared_data):
    from workbench.core.enhance.registry import list_enhancers

    wiener = next(i for i in list_enhancers() if i.id == "wiener")
    loads = []
    dlg = BatchDialog(files=[shared_data / "dns3" / f"{n}_noisy.wav" for n in ("0015", "0016")],
                      enhancers=[wiener], load_enhancer=loads.append, folder=tmp_path / "out")
    qtbot.addWidget(dlg)
    assert dlg.run_box.isEnabled() and dlg.run_on() == ("serial", 0)
    dlg.run_box.setCurrentIndex(dlg.run_box.findData("local"))
    dlg.workers_spin.setValue(2)
    assert dlg.run_on() == ("local", 2) and dlg.workers_spin.isEnabled()
    with qtbot.waitSignal(dlg.batchFinished, timeout=60000) as sig:
        dlg.start_button.click()
    summary = sig.args[0]
    assert (summary.backend, summary.workers) == ("local", 2) and len(summary.succeeded) == 2
    assert all(int(r["worker"].rsplit(":", 1)[1]) != os.getpid() for r in summary.rows)
    assert loads == []  # the workers loaded the model by its spec; this process did not
    assert "on 2 worker processes" in dlg.summary_view.toPlainText()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0015_noisy.wiener.wav", "0016_noisy.wiener.wav"]


def test_batch_dialog_cancel_stops_the_worker_processes(qtbot, tmp_path, shared_data, monkeypatch):
    import multiprocessing

    from workbench.core.enhance.registry import list_enhancers
    from workbench.core.workflows.batch import backends

    # The pool's own processes, as the driver stops them (other parts of this test process may start
    # children of their own meanwhile, e.g. the metrics' native-call helper: they are not the pool's).
    stopped: list = []
    real_stop = backends._stop_pool

    def recording_stop(executor) -> None:
        stopped.extend(getattr(executor, "_processes", {}).values())
        real_stop(executor)
    monkeypatch.setattr(backends, "_stop_pool", recording_stop)

    wiener = next(i for i in list_enhancers() if i.id == "wiener")
    dlg = BatchDialog(files=[shared_data / "dns3" / f"{n}_noisy.wav" for n in ("0015", "0016", "0072")],
                      enhancers=[wiener], folder=tmp_path / "out")
    qtbot.addWidget(dlg)
    dlg.run_box.setCurrentIndex(dlg.run_box.findData("local"))
    dlg.workers_spin.setValue(2)
    earlier = set(multiprocessing.active_children())  # children other tests may have left
    dlg.start_button.click()
    assert dlg.cancel_button.isEnabled()
    # Cancel once the pool's processes exist (they take a second to start, the three files far less after)
    qtbot.waitUntil(lambda: len(set(multiprocessing.active_children()) - earlier) >= 2, timeout=30000)
    with qtbot.waitSignal(dlg._worker.finished, timeout=30000):
        dlg.cancel_button.click()
    qtbot.waitUntil(lambda: dlg.start_button.isEnabled(), timeout=5000)
    assert dlg.progress_label.text() == "Cancelled" and dlg.summary is None
    # the pool was stopped, not left running: its two processes are ended and reaped when the run ends
    assert len(stopped) == 2 and not any(p.is_alive() for p in stopped), [p.exitcode for p in stopped]


def test_batch_dialog_keeps_a_model_without_a_spec_in_this_process(qtbot):
    info = HalfGain().info
    dlg = BatchDialog(enhancers=[("chain built in the window", info)], load_enhancer=lambda spec: HalfGain())
    qtbot.addWidget(dlg)
    assert not dlg.run_box.isEnabled() and dlg.run_on() == ("serial", 0)
    assert dlg.run_box.toolTip().startswith("Runs in this process:") and "worker process" in dlg.run_box.toolTip()
    assert not dlg.workers_spin.isEnabled()
