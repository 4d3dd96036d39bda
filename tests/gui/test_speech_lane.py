"""The window's speech activity lane (Silero VAD) under the overview, Learn from pauses in the Edit panel,
and the mark on a version whose model output level is implausible."""

from __future__ import annotations

import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.gui.main_window import MainWindow


@pytest.fixture()
def window(qtbot, settings):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    yield w
    for box in list(w.error_boxes):
        box.close()
    w.close()


@pytest.fixture()
def speech_with_pauses(tmp_path, shared_data):
    speech, sr = sf.read(shared_data / "dns3" / "0016_noisy.wav", dtype="float32")
    path = tmp_path / "noisy.wav"
    sf.write(path, speech, sr, subtype="FLOAT")
    return path


def _open(qtbot, w, path):
    w.open_files([path])
    qtbot.waitUntil(w.view.is_painted, timeout=20000)
    return w.document.recording


def test_speech_lane_and_learn_from_pauses(qtbot, window, speech_with_pauses):
    rec = _open(qtbot, window, speech_with_pauses)
    assert not window.view.speech_lane.isVisible()
    assert not window.edit_panel.learn_pauses_button.isEnabled()
    window.speech_action.setChecked(True)
    qtbot.waitUntil(window.view.speech_lane.isVisible, timeout=20000)
    result = window.edit_panel.speech_activity
    assert result is not None and result.spans and result.pauses
    assert "spans" in window.view.speech_lane.toolTip()
    assert window.edit_panel.learn_pauses_button.isEnabled()
    window.edit_panel.learn_from_pauses()
    assert window.edit_panel.noise_pauses and "pauses" in window.edit_panel.noise_label.text()
    # The learned profile reaches a classical model run from the panel, and its provenance.
    window.edit_panel.model_box.setEditText("wiener")
    with qtbot.waitSignal(window.document.versionsChanged, timeout=30000):
        window.edit_panel.enhance_all()
    made = rec.versions[-1]
    assert made.provenance.model_id == "wiener"
    assert made.provenance.model_settings["noise_profile_pauses_s"] == [list(p) for p in window.edit_panel.noise_pauses]
    # A stricter threshold is another result, computed again.
    window._apply_speech_settings(0.9, 100.0)
    qtbot.waitUntil(lambda: window.edit_panel.speech_activity is not None
                    and window.edit_panel.speech_activity.settings.threshold == 0.9, timeout=20000)
    assert window.edit_panel.speech_activity.speech_s <= result.speech_s
    assert window._stored_vad_settings().threshold == 0.9  # what the next window starts with
    window.speech_action.setChecked(False)
    assert not window.view.speech_lane.isVisible() and window.edit_panel.speech_activity is None
    assert rec is window.document.recording


def test_implausible_level_is_marked(qtbot, window, speech_with_pauses):
    rec = _open(qtbot, window, speech_with_pauses)
    info = EnhancerInfo("loud", "Loud", "test", rec.source.sample_rate, True, 0)
    audio = rec.source.read_all()
    with qtbot.waitSignal(window.document.versionsChanged, timeout=3000):
        v = rec.add_enhanced(1000 * audio, rec.source.sample_rate, info,
                             extra={"level": {"gain_db": 60.0, "output_peak_dbfs": 55.2, "implausible": True}})
    window.show_version(v)
    i = window.version_box.findText("loud")
    assert i >= 0
    assert "+60.0 dB against the input" in window.version_box.itemData(i, 3)  # Qt.ToolTipRole
    assert not window.version_box.itemIcon(i).isNull()
    assert "+60.0 dB" in window.status_label.text()

