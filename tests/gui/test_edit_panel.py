"""The Edit panel in the window: strength heard live and committed, enhance selection, learn noise,
Ctrl+drag repair, chains, undo/redo."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPointF, Qt

from workbench.core.enhance.editing import Strength
from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.core.provenance import VersionKind
from workbench.core.history import SetStrength
from workbench.gui.main_window import MainWindow

RATE = 16000


@pytest.fixture()
def window(qtbot, settings):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    for box in list(w.error_boxes):
        box.close()
    w.close()


@pytest.fixture()
def noisy_file(tmp_path, rng):
    t = np.arange(4 * RATE) / RATE
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 1.5) + 0.03 * rng.standard_normal(len(t))
    path = tmp_path / "take.wav"
    sf.write(path, x.astype(np.float32), RATE, subtype="FLOAT")
    return path


def _open(qtbot, w, path):
    w.open_files([path])
    qtbot.waitUntil(w.view.is_painted, timeout=20000)
    return w.document.recording


def _add_result(qtbot, w, rec):
    info = EnhancerInfo("halve", "Halve", "test", RATE, True, 0)
    with qtbot.waitSignal(w.document.versionsChanged, timeout=3000):
        v = rec.add_enhanced(0.5 * rec.source.read_all(), RATE, info)
    w.show_version(v)
    return v


def test_strength_slider_is_heard_live_and_committed_once(qtbot, window, noisy_file):
    rec = _open(qtbot, window, noisy_file)
    v = _add_result(qtbot, window, rec)
    qtbot.waitUntil(lambda: window.transport.engine.frames > 0 and len(window.transport.engine.tracks) == 2,
                    timeout=10000)
    panel = window.edit_panel
    assert panel.strength_slider.isEnabled()
    index = rec.versions.index(v)
    # dragging: the engine mixes at once, the version is not changed yet (no undo step per pixel)
    panel.strength_slider.sliderPressed.emit()
    panel.strength_slider.setValue(40)
    assert window.transport.engine.strength(index) == pytest.approx(0.4)
    assert rec.strength_of(v).full and not isinstance(rec.history.undo_steps[-1], SetStrength)
    with qtbot.waitSignal(window.document.strengthChanged, timeout=3000):
        panel.strength_slider.sliderReleased.emit()
    assert rec.strength_of(v).mix == pytest.approx(0.4)
    assert "60 %" not in panel.strength_label.text() and "40 %" in panel.strength_label.text()
    x = rec.source.read_all()
    np.testing.assert_allclose(window.view.source.read(0, 50), 0.4 * 0.5 * x[:50] + 0.6 * x[:50], atol=1e-6)
    # Ctrl+Z undoes the strength; the engine and the slider follow
    with qtbot.waitSignal(window.document.strengthChanged, timeout=3000):
        assert window.undo() is not None
    assert rec.strength_of(v).full
    qtbot.waitUntil(lambda: panel.strength_slider.value() == 100)
    assert window.transport.engine.strength(index) == pytest.approx(1.0)


def test_undo_redo_of_delete_and_add_through_the_menu(qtbot, window, noisy_file):
    rec = _open(qtbot, window, noisy_file)
    v = _add_result(qtbot, window, rec)
    with qtbot.waitSignal(window.document.versionsChanged, timeout=3000):
        window.delete_shown_version()
    assert v not in rec.versions
    with qtbot.waitSignal(window.document.versionsChanged, timeout=3000):
        window.undo_action.trigger()
    assert v in rec.versions
    with qtbot.waitSignal(window.document.versionsChanged, timeout=3000):
        window.undo_action.trigger()  # the add itself
    assert [x.name for x in rec.versions] == ["original"]
    with qtbot.waitSignal(window.document.versionsChanged, timeout=3000):
        window.redo_action.trigger()
    assert v in rec.versions
    assert window.undo_action.shortcut().toString() == "Ctrl+Z"
    assert window.redo_action.shortcut().toString() == "Ctrl+Shift+Z"


def test_enhance_selection_with_learned_noise(qtbot, window, noisy_file):
    rec = _open(qtbot, window, noisy_file)
    panel = window.edit_panel
    window.view.loopSelected.emit(0.2, 1.2)          # a noise-only pause
    panel.learn_noise()
    assert panel.noise_span_s == (0.2, 1.2) and "learned" in panel.noise_label.text()
    window.view.loopSelected.emit(2.0, 3.0)
    panel.model_box.setEditText("wiener")
    with qtbot.waitSignal(panel.operationFinished, timeout=30000):
        panel.enhance_selection()
    v = rec.versions[-1]
    assert v.kind == VersionKind.REGION and v.provenance.extra["noise_profile_s"] == [0.2, 1.2]
    x, y = rec.source.read_all(), v.source.read_all()
    np.testing.assert_array_equal(y[:int(1.98 * RATE)], x[:int(1.98 * RATE)])
    assert window.document.version is v


def test_learn_noise_refuses_a_span_shorter_than_a_frame(qtbot, window, noisy_file):
    _open(qtbot, window, noisy_file)
    panel = window.edit_panel
    window.view.loopSelected.emit(1.0, 1.01)
    with qtbot.waitSignal(panel.errorOccurred, timeout=3000) as blocker:
        panel.learn_noise()
    assert "shorter than one STFT frame" in blocker.args[0]
    assert panel.noise_span_s is None


def test_ctrl_drag_rectangle_then_repair(qtbot, window, noisy_file):
    rec = _open(qtbot, window, noisy_file)
    panel = window.edit_panel
    got = []
    window.view.boxSelected.connect(lambda *a: got.append(a))
    vb = window.view.panes["magnitude"].plot.getViewBox()

    class Drag:  # what pyqtgraph hands the view box for a mouse drag
        def __init__(self, a, b, finish):
            self.a, self.b, self.finish = a, b, finish

        def button(self):
            return Qt.MouseButton.LeftButton

        def modifiers(self):
            return Qt.KeyboardModifier.ControlModifier

        def buttonDownScenePos(self):
            return vb.mapViewToScene(self.a)

        def scenePos(self):
            return vb.mapViewToScene(self.b)

        def isFinish(self):
            return self.finish

        def accept(self):
            pass

    vb.mouseDragEvent(Drag(QPointF(2.0, 300.0), QPointF(3.0, 700.0), False))
    assert window.view.panes["magnitude"].box.isVisible()
    vb.mouseDragEvent(Drag(QPointF(2.0, 300.0), QPointF(3.0, 700.0), True))
    t0, t1, f0, f1 = got[-1]
    assert (t0, t1) == pytest.approx((2.0, 3.0), abs=1e-3) and (f0, f1) == pytest.approx((300, 700), abs=1.0)
    assert panel.box_spins[1].value() == pytest.approx(3.0, abs=1e-3)
    panel.gain_spin.setValue(-30)
    with qtbot.waitSignal(panel.operationFinished, timeout=30000):
        panel.repair()
    v = rec.versions[-1]
    assert v.kind == VersionKind.REPAIR and v.provenance.extra["method"] == {"gain_db": -30.0}


def test_saved_chain_is_listed_checked_and_named(qtbot, window, settings):
    panel = window.edit_panel
    panel.chain_name.setText("Dereverb then Wiener")
    panel.chain_spec.setText("wpe-dereverb + wiener")
    panel.save_chain()
    assert panel.chains == {"Dereverb then Wiener": "wpe-dereverb+wiener"}
    assert panel.model_spec() == "wpe-dereverb+wiener"
    assert "wpe-dereverb+wiener" in str(settings.value("edit/chains"))
    panel.chain_spec.setText("wiener+nope")
    with qtbot.waitSignal(panel.errorOccurred, timeout=3000) as blocker:
        panel.save_chain()
    assert "'nope' is not a known model" in blocker.args[0]


def test_chain_runs_on_the_whole_file(qtbot, window, noisy_file):
    rec = _open(qtbot, window, noisy_file)
    panel = window.edit_panel
    panel.model_box.setEditText("spectral-subtraction+wiener")
    with qtbot.waitSignal(panel.operationFinished, timeout=30000):
        panel.enhance_all()
    v = rec.versions[-1]
    assert v.kind == VersionKind.CHAIN and v.provenance.model_id == "spectral-subtraction+wiener"
    rec.set_strength(v, Strength(0.5))  # chains have a strength too


def test_model_own_limit_is_refused_for_models_without_one(qtbot, window, noisy_file):
    _open(qtbot, window, noisy_file)
    panel = window.edit_panel
    panel.model_box.setEditText("wiener")
    panel.atten_spin.setValue(12.0)
    with qtbot.waitSignal(panel.errorOccurred, timeout=3000) as blocker:
        panel.enhance_all()
    assert "no attenuation limit of its own" in blocker.args[0]
