"""A session that cannot be opened leaves the window as it was; a worker whose signals are gone ends quietly."""

from __future__ import annotations

import json
import threading

import numpy as np
import shiboken6
import soundfile as sf

from workbench.core.enhance.enhancer import Progress
from workbench.gui.main_window import MainWindow
from workbench.gui.workers import GeneratorWorker


def test_a_session_with_a_wrong_field_leaves_the_open_recordings_open(qtbot, settings, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((16000, 1), np.float32), 16000, subtype="FLOAT")
    reported = []
    w = MainWindow(settings=settings, error_reporter=lambda title, msg: reported.append(msg))
    qtbot.addWidget(w)
    w.show()
    w.open_files([str(wav)])
    rec = w.document.recording
    bad = tmp_path / "bad.session.json"
    bad.write_text(json.dumps({"format": "workbench-session", "format_version": 1,
                               "recordings": [{"path": str(wav), "versions": "x"}]}))
    assert not w.open_session_file(bad)
    assert len(reported) == 1 and "recordings[0].versions" in reported[0] and "\n" not in reported[0]
    assert w.document.recordings == [rec] and w.document.recording is rec and not rec.closed
    w.close()


def gated(gate):
    gate.wait(5)
    yield Progress(0.5, "half")
    return 1


def test_a_result_whose_signals_are_gone_is_dropped(qtbot):
    gate = threading.Event()
    worker = GeneratorWorker(gated, gate)
    worker.start()
    shiboken6.delete(worker._signals)  # its owner went away with it, as when a window closes mid-run
    gate.set()
    assert worker.wait(5000), "the worker died emitting to a deleted signal source"
    assert worker.outcome == "done" and worker.result == 1
