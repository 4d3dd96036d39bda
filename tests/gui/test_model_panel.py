"""The model panel with pytest-qt (offscreen): runs on a worker thread, adds versions, cancels, reports errors."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.document.recording import Recording
from workbench.gui.model_panel import ModelPanel


@pytest.fixture()
def recording(shared_data):
    return Recording(shared_data / "dns3" / "0015_noisy.wav")


@pytest.fixture()
def panel(qtbot, recording):
    holder = {"rec": recording, "channels": None}
    p = ModelPanel(lambda: holder["rec"], lambda: holder["channels"], show_dialogs=False)
    p.holder = holder
    qtbot.addWidget(p)
    p.show()
    yield p
    p.close()  # waits for any job still running


def test_lists_builtins_with_rate_latency_parameters(panel):
    specs = panel.model_specs()
    for mid in ("spectral-subtraction", "wiener", "logmmse", "deepfilternet3", "nsnet2-16k", "nsnet2-48k"):
        assert mid in specs
    row = specs.index("deepfilternet3")
    cells = [panel.table.item(row, c).text() for c in range(panel.table.columnCount())]
    assert cells[:4] == ["DeepFilterNet3", "48 kHz", "yes", "30.0 ms"]
    assert panel.table.item(specs.index("wiener"), 4).text() == "none"  # classical: no parameters


def test_enhance_adds_an_aligned_version(qtbot, panel, recording):
    panel.select("spectral-subtraction")
    with qtbot.waitSignal(panel.versionReady, timeout=20000) as ready, \
            qtbot.waitSignal(panel.runFinished, timeout=20000) as finished:
        assert panel.start()
        assert panel.is_busy() and panel.cancel_button.isEnabled() and not panel.enhance_button.isEnabled()
    rec, version = ready.args
    assert rec is recording and finished.args == ["done"]
    assert [v.name for v in recording.versions] == ["original", "spectral-subtraction"]
    assert version.kind == "enhanced" and version.model.id == "spectral-subtraction"
    assert version.source.frames == recording.source.frames and version.settings["channels"] == [0]
    y = version.source.read_all()[:, 0]
    x = recording.source.read_all()[:, 0]
    assert np.all(np.isfinite(y)) and not np.allclose(x, y)
    assert panel.progress_bar.value() == 1000 and "real-time factor" in panel.status.text()
    assert not panel.is_busy() and panel.enhance_button.isEnabled()
    # a second model on the same recording gives a second version
    panel.select("wiener")
    with qtbot.waitSignal(panel.versionReady, timeout=20000):
        panel.start()
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=5000)
    assert [v.name for v in recording.versions] == ["original", "spectral-subtraction", "wiener"]


class SlowStream(EnhancerStream):
    def __init__(self, log):
        self.log = log

    def process(self, block):
        import time
        time.sleep(0.05)
        return block

    def close(self):
        self.log.append("closed")


class SlowModel(Enhancer):
    """Takes 50 ms per 0.1 s block: long enough to cancel mid-way."""

    def __init__(self, log):
        self.log = log
        self.info = EnhancerInfo("slow", "Slow", "sleeps", 16000, True, 0, processing="streaming", block_samples=1600)

    def new_stream(self):
        return SlowStream(self.log)


class NanModel(SlowModel):
    def __init__(self):
        super().__init__([])
        self.info = EnhancerInfo("nan-model", "NaN Model", "broken", 16000, True, 0, processing="offline")

    def process_offline(self, audio):
        return np.full_like(audio, np.nan)


def test_cancel_stops_the_run_and_leaves_the_recording(qtbot, panel, recording):
    log: list[str] = []
    panel.catalogue.add_loaded("slow-model", SlowModel(log))
    panel.refresh()
    panel.select("slow-model")
    with qtbot.waitSignal(panel.runFinished, timeout=20000) as finished:
        panel.start()
        qtbot.waitUntil(lambda: panel.progress_bar.value() > 0, timeout=5000)
        panel.cancel_button.click()
    assert finished.args == ["cancelled"]
    assert log == ["closed"]  # the stream's state was released
    assert len(recording.versions) == 1 and "Cancelled" in panel.status.text()


def test_model_error_is_reported_with_the_model_name(qtbot, panel, recording):
    panel.catalogue.add_loaded("nan", NanModel())
    panel.refresh()
    panel.select("nan")
    with qtbot.waitSignal(panel.errorOccurred, timeout=10000) as err, \
            qtbot.waitSignal(panel.runFinished, timeout=10000) as finished:
        panel.start()
    assert finished.args == ["failed"]
    assert "nan-model" in err.args[0] and "NaN" in err.args[0]
    assert "NaN" in panel.status.text() and len(recording.versions) == 1
    assert panel.enhance_button.isEnabled()  # the panel stays usable


def test_no_recording_or_bad_channel(qtbot, panel):
    panel.holder["rec"] = None
    assert not panel.start() and "Open a recording" in panel.last_error
    panel.holder["rec"] = Recording.from_array(np.zeros((1600, 1), np.float32), 16000)
    panel.holder["channels"] = [1]
    panel.select("wiener")
    with qtbot.waitSignal(panel.runFinished, timeout=10000) as finished:
        panel.start()
    assert finished.args == ["failed"] and "channel 1 does not exist" in panel.last_error


def test_loading_a_bad_model_file_and_drop(qtbot, panel, tmp_path):
    bad = tmp_path / "not_a_model.onnx"
    bad.write_bytes(b"this is not protobuf")
    with qtbot.waitSignal(panel.errorOccurred, timeout=20000) as err:
        panel.load_path(bad)
    assert "not_a_model.onnx" in err.args[0]
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=5000)
    assert str(bad) not in panel.model_specs()
    # the same file dropped on the panel goes through the same path
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(panel.errorOccurred, timeout=20000):
        panel.dropEvent(event)
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=5000)


def test_load_dtln_folder_then_enhance(qtbot, panel, dtln_folder, recording):
    """A real model folder (DTLN's two ONNX files) loads off the GUI thread and joins the table."""
    folder = dtln_folder
    with qtbot.waitSignal(panel.modelLoaded, timeout=30000) as loaded:
        panel.load_path(folder)
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=5000)
    assert str(folder) in panel.model_specs() and panel.selected_spec() == str(folder)
    with qtbot.waitSignal(panel.versionReady, timeout=30000) as ready:
        panel.start()
    assert ready.args[1].model.id == loaded.args[0].id
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=5000)


def test_attach_document_shows_the_new_version(qtbot, shared_data):
    from workbench.gui.document import DocumentModel

    doc = DocumentModel()
    rec = doc.open(shared_data / "dns3" / "0072_noisy.wav")
    panel = ModelPanel(lambda: None, show_dialogs=False)
    qtbot.addWidget(panel)
    panel.attach_document(doc)
    panel.select("logmmse")
    with qtbot.waitSignal(doc.currentVersionChanged, timeout=20000) as changed:
        panel.start()
    assert changed.args[0] is doc.version and doc.version.name == "logmmse" and doc.version in rec.versions
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=5000)
    panel.close()


def test_path_choice_for_models_with_both_paths(qtbot, panel, recording):
    """DeepFilterNet3 offers offline (default) and streaming; the choice reaches the engine and the version's
    settings. Models with one path show it, disabled."""
    panel.select("wpe-dereverb")
    assert panel.processing_combo.count() == 1 and not panel.processing_combo.isEnabled()
    assert panel.processing() is None
    panel.select("deepfilternet3")
    assert panel.processing_combo.isEnabled()
    assert [panel.processing_combo.itemData(i) for i in range(panel.processing_combo.count())] == ["offline", "streaming"]
    assert panel.processing() == "offline"
    panel.set_processing("streaming")
    with qtbot.waitSignal(panel.versionReady, timeout=60000) as ready, \
            qtbot.waitSignal(panel.runFinished, timeout=60000):
        assert panel.start()
    _, version = ready.args
    assert version.settings["processing"] == "streaming"
    panel.set_processing("offline")
    with qtbot.waitSignal(panel.versionReady, timeout=60000) as ready:
        assert panel.start()
    assert ready.args[1].settings["processing"] == "offline"
