"""The Metrics panel's "Speech only" box: ticking it measures again over the speech spans, the figures
say which mode they are in, both modes' results are kept apart and reused, other VAD settings measure
again, and a saved session brings back the mode and its figures without measuring."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.document.session_file import open_session_now, save_session_now
from workbench.core.document.workspace import Workspace
from workbench.core.measure.vad import VadSettings
from workbench.gui.metrics_panel import MetricsPanel

SR = 16000


@pytest.fixture(scope="module")
def pauses(shared_data, tmp_path_factory):
    """3 s of silence, the 5 s DNS sentence 0015, 4 s of silence; the noisy file carries that clip's own
    recorded noise throughout, pauses included (beside it, its clean reference, paired by name)."""
    clean, sr = sf.read(shared_data / "dns3/0015_clean.wav", dtype="float32")
    noisy, _ = sf.read(shared_data / "dns3/0015_noisy.wav", dtype="float32")
    long_clean = np.concatenate([np.zeros(3 * SR, np.float32), clean, np.zeros(4 * SR, np.float32)])
    long_noisy = long_clean + np.resize(noisy - clean, len(long_clean))
    folder = tmp_path_factory.mktemp("pauses")
    sf.write(folder / "pauses_noisy.wav", long_noisy, SR, subtype="FLOAT")
    sf.write(folder / "pauses_clean.wav", long_clean, SR, subtype="FLOAT")
    return folder


def _si_sdr(panel) -> float:
    return float(panel.cell_text("si_sdr", "original"))


def test_speech_only_measures_again_keeps_both_modes_and_survives_a_session(qtbot, pauses, tmp_path):
    ws = Workspace()
    rec = ws.open(pauses / "pauses_noisy.wav")
    panel = MetricsPanel(session=ws, auto_compute=False)
    qtbot.addWidget(panel)
    panel.reference_free_box.setChecked(False)   # the intrusive metrics only: quick
    panel.set_recording(rec)
    assert panel.reference_path == pauses / "pauses_clean.wav" and not panel.speech_box.isChecked()
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        assert panel.compute()
    whole = _si_sdr(panel)
    assert panel.mode_label.text() == "Figures over the whole recording"

    started = []
    panel.started.connect(lambda: started.append(1))
    panel.auto_compute = True
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.speech_box.setChecked(True)
    assert started == [1] and ws.metric_settings["speech_only"] is True
    speech = _si_sdr(panel)
    assert speech > whole + 3   # 7 s of noise alone no longer count
    text = panel.mode_label.text()
    assert text.startswith("Figures over speech only:") and "span(s) of the clean reference" in text
    assert "threshold 0.5" in text
    assert panel.table_as_tsv().splitlines()[-1].startswith("# figures over speech only")

    # both modes' results are kept: switching back and forth measures nothing
    panel.speech_box.setChecked(False)
    assert _si_sdr(panel) == whole and panel.table_as_tsv().splitlines()[-1] == "# figures over the whole recording"
    panel.speech_box.setChecked(True)
    assert _si_sdr(panel) == speech and started == [1] and not panel.running

    # other speech-activity settings find other spans: measured again
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.set_vad_settings(VadSettings(threshold=0.8, min_pause_ms=400))
    assert started == [1, 1] and "threshold 0.8" in panel.mode_label.text()
    strict = _si_sdr(panel)
    panel.set_vad_settings(VadSettings())
    assert _si_sdr(panel) == speech and len(started) == 2

    # a saved session brings back the mode and its figures, nothing measured again
    target = save_session_now(ws, tmp_path / "speech.session.json")
    restored, problems = open_session_now(target)
    assert problems == [] and restored.metric_settings["speech_only"] is True
    again = MetricsPanel(session=restored, auto_compute=False)
    qtbot.addWidget(again)
    again.reference_free_box.setChecked(False)
    again.set_recording(restored.current)
    assert again.speech_box.isChecked() and again.missing() == ([], [])
    assert _si_sdr(again) == speech
    again.set_vad_settings(VadSettings(threshold=0.8, min_pause_ms=400))
    assert _si_sdr(again) == strict and again.missing() == ([], [])
    again.speech_box.setChecked(False)
    assert _si_sdr(again) == whole and restored.metric_settings["speech_only"] is False


def test_without_a_reference_the_spans_come_from_the_recording(qtbot, pauses):
    ws = Workspace()
    rec = ws.open(pauses / "pauses_noisy.wav")
    panel = MetricsPanel(session=ws, auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(rec)
    panel.set_reference(None)
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    whole = float(panel.cell_text("dnsmos_bak", "original"))
    panel.speech_box.setChecked(True)
    assert panel.missing()[1] == [rec.original] and panel.cell_text("dnsmos_bak", "original") == ""
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    assert "span(s) of the original recording" in panel.mode_label.text()
    assert float(panel.cell_text("dnsmos_bak", "original")) != pytest.approx(whole, abs=0.05)
