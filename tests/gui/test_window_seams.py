"""What a person meets at the window's edges: a first window that fits the screen, versions that can be
told apart and reached, version keys that work after any panel, an empty state that really is empty,
readable axes and charts, and small consistency rules (repair box, ties, Stop, residuals)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage, QPainter, QScreen
from PySide6.QtWidgets import QApplication, QTabBar

from workbench.core.audio.playback import PlaybackEngine
from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.gui.main_window import MainWindow
from workbench.gui.spectrogram import PANES

#: A 1366x768 screen less a 40-pixel task bar.
SMALL_SCREEN = QRect(0, 0, 1366, 728)


def _info(name: str, sr: int = 16000) -> EnhancerInfo:
    return EnhancerInfo(id=name, name=name, description="", sample_rate=sr, causal=True, latency_samples=0)


def _speech(tmp_path, seconds: float, shared_data, name="take.wav"):
    x, sr = sf.read(shared_data / "dns3/0015_noisy.wav", dtype="float32")
    y = np.resize(x, int(seconds * sr)).astype(np.float32)
    path = tmp_path / name
    sf.write(path, y, sr, subtype="PCM_16")
    return path, y, sr


@pytest.fixture()
def small_screen(monkeypatch):
    monkeypatch.setattr(QScreen, "availableGeometry", lambda self: QRect(SMALL_SCREEN))


def _inside(outer: QRect, widget, window) -> bool:
    top_left = widget.mapTo(window, widget.rect().topLeft())
    return outer.contains(QRect(top_left, widget.size()))


def test_first_window_fits_a_1366x768_screen_and_every_control_is_reachable(qtbot, settings, small_screen):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.width() <= SMALL_SCREEN.width() and w.height() <= SMALL_SCREEN.height() - 20, w.size()
    frame = w.frameGeometry()
    assert SMALL_SCREEN.contains(QRect(frame.topLeft(), w.size())), frame
    client = QRect(0, 0, w.width(), w.height())
    for widget in (w.view.overview, w.transport.play_button, w.transport.device_box, w.statusBar(),
                   w.view.graphics):
        assert widget.isVisible() and _inside(client, widget, w), widget
    # The tabs of the docks tabified on the right (Models, Edit, Metrics, Phase lab).
    tabs = [t for t in w.findChildren(QTabBar) if t.parent() is w and t.isVisible() and t.count() >= 2]
    assert tabs and all(_inside(client, t, w) for t in tabs)
    w.close()


def test_saved_geometry_from_a_larger_screen_is_shrunk_to_this_one(qtbot, settings, small_screen):
    from PySide6.QtCore import QSize
    settings.setValue("window/size", QSize(1900, 1050))
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    assert w.width() <= SMALL_SCREEN.width() and w.height() <= SMALL_SCREEN.height()
    w.close()


def _drawn_tick_labels(axis) -> list[tuple[QRect, str]]:
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect.toRect(), text) for rect, _flags, text in specs[2]]


@pytest.mark.parametrize("length_px", [160, 200, 250, 330, 900])
def test_time_axis_labels_never_run_together(qtbot, length_px):
    import pyqtgraph as pg

    from workbench.gui.axes import TimeAxis
    plot = pg.PlotWidget(axisItems={"bottom": TimeAxis()})
    qtbot.addWidget(plot)
    plot.resize(length_px + 60, 200)
    plot.setXRange(0, 12.9, padding=0)
    plot.show()
    qtbot.waitExposed(plot)
    axis = plot.getPlotItem().getAxis("bottom")
    labels = sorted(_drawn_tick_labels(axis), key=lambda r: r[0].left())
    assert len(labels) >= 2, labels
    for (a, ta), (b, tb) in zip(labels, labels[1:]):
        assert b.left() - a.right() >= 8, f"{ta!r} and {tb!r} run together at {length_px} px"


@pytest.fixture()
def window(qtbot, settings):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1366, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    for box in list(w.error_boxes):
        box.close()
    w.close()


def test_closing_the_last_recording_leaves_a_true_empty_state(qtbot, window, tmp_path, shared_data):
    path, _x, _sr = _speech(tmp_path, 7.935, shared_data)
    window.open_files([path])
    qtbot.waitUntil(window.view.is_painted, timeout=20000)
    window.transport.seek(7.935)
    assert window.transport.position_label.text() == "0:07.935 / 0:07.935"
    window.close_current()
    assert window.document.recording is None
    assert window.transport.position_label.text() == "0:00.000 / 0:00.000"
    # The overview's amplitude axis is the empty one (±1), not the closed file's peak.
    y_range = window.view.overview.getPlotItem().getViewBox().viewRange()[1]
    assert y_range == pytest.approx([-1.0, 1.0])
    # The hint fits inside the magnitude pane at 1366 px (the 2 x 2 grid a fresh window shows).
    assert window.layout_box.currentData() == "grid"
    vb = window.view.panes["magnitude"].plot.getViewBox()
    hint = window.view.markers.hint
    assert hint.isVisible()
    qtbot.waitUntil(lambda: vb.sceneBoundingRect().contains(hint.sceneBoundingRect()), timeout=3000)


def test_repair_box_is_outlined_on_every_pane(qtbot, window, tmp_path, shared_data):
    path, _x, _sr = _speech(tmp_path, 3.0, shared_data)
    window.open_files([path])
    qtbot.waitUntil(window.view.is_painted, timeout=20000)
    boxes = []
    window.view.boxSelected.connect(lambda *a: boxes.append(a))
    vb = window.view.panes["phase"].plot.getViewBox()   # dragged on the phase pane
    window.view.gestures.on_box_selecting(vb, 1.0, 2.0, 1000.0, 3000.0, True)
    assert boxes and boxes[0][:2] == (1.0, 2.0)
    for name in PANES:
        box = window.view.panes[name].box
        assert box.isVisible(), name
        xs, ys = box.getData()
        assert (min(xs), max(xs)) == (1.0, 2.0) and (min(ys), max(ys)) == (1000.0, 3000.0), name


def test_equal_best_values_are_all_highlighted(qtbot, shared_data):
    from workbench.core.document.recording import Recording
    from workbench.gui.metrics_panel import MetricsPanel
    rec = Recording(shared_data / "dns3/0015_noisy.wav")
    y, sr = sf.read(shared_data / "dns3/0015_GTCRN.wav", dtype="float32")
    y = np.pad(y, (0, max(0, rec.source.frames - len(y))))[:rec.source.frames]
    rec.add_enhanced(y, sr, _info("gtcrn"))
    rec.add_enhanced(y.copy(), sr, _info("gtcrn-copy"))   # the same samples: every score ties
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.reference_free_box.setChecked(False)
    panel.set_recording(rec)
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    for metric in ("pesq_wb", "si_sdr", "lsd"):
        assert panel.is_highlighted(metric, "gtcrn") and panel.is_highlighted(metric, "gtcrn-copy"), metric
        assert not panel.is_highlighted(metric, "original")


def test_stop_is_unavailable_when_play_is(qtbot, shared_data):
    from workbench.core.document.recording import Recording
    from workbench.gui.transport import TransportBar
    engine = PlaybackEngine(None, sample_rate=16000)   # no output device
    assert not engine.available
    bar = TransportBar(engine=engine)
    qtbot.addWidget(bar)
    bar.set_recording(Recording(shared_data / "dns3/0015_noisy.wav"))
    qtbot.waitUntil(lambda: len(bar.version_buttons) == 1, timeout=20000)
    assert not bar.play_button.isEnabled()
    assert not bar.stop_button.isEnabled()
    bar.shutdown()


def _button_order(bar) -> list[str]:
    shown = [(b.mapTo(bar, b.rect().topLeft()).x(), bar.engine.tracks[i].name)
             for i, b in enumerate(bar.version_buttons) if not b.isHidden()]
    return [name for _x, name in sorted(shown)]


def test_residuals_are_listed_alike_in_the_version_box_the_tree_and_the_buttons(qtbot, window, tmp_path,
                                                                                shared_data):
    path, x, sr = _speech(tmp_path, 3.0, shared_data)
    window.open_files([path])
    rec = window.document.recording
    wiener = rec.add_enhanced(x * 0.5, sr, _info("wiener"))
    rec.add_enhanced(x * 0.4, sr, _info("gtcrn"))
    qtbot.waitUntil(lambda: len(window.transport.version_buttons) == 3, timeout=20000)
    box = [window.version_box.itemText(i) for i in range(window.version_box.count())]
    assert box == ["original", "wiener", "residual (wiener)", "gtcrn", "residual (gtcrn)"]
    top = window.file_tree.topLevelItem(0)
    assert [top.child(i).text(0) for i in range(top.childCount())] == box
    # Choosing the residual in the tree makes it, as the Version box does.
    item = top.child(2)
    window.file_tree.itemClicked.emit(item, 0)
    assert window.document.version.name == "residual (wiener)"
    qtbot.waitUntil(lambda: len(window.transport.version_buttons) == 4, timeout=20000)
    # The A/B buttons: the residual right after its version, as in the box.
    qtbot.waitUntil(lambda: _button_order(window.transport) == ["original", "wiener", "residual (wiener)",
                                                                 "gtcrn"], timeout=5000)
    assert rec.residual_of(wiener).name == "residual (wiener)"


FAMILY = ["gtcrn-dns3-streaming", "gtcrn-vctk-offline", "gtcrn-dns3-offline", "gtcrn-vctk-streaming",
          "deepfilternet3-full", "nsnet2-baseline-48k"]
LAB = ["oracle IBM", "oracle IRM", "oracle IAM", "oracle PSM", "swap |clean| ∠noisy", "GLA clean", "FGLA clean"]


@pytest.mark.parametrize("width", [1366, 1920])
def test_version_buttons_can_always_be_told_apart_and_reached(qtbot, window, tmp_path, shared_data, width):
    path, x, sr = _speech(tmp_path, 2.0, shared_data)
    window.resize(width - 16, 700)
    window.open_files([path])
    rec = window.document.recording
    for name in FAMILY:
        rec.add_enhanced(x * 0.5, sr, _info(name))
    bar = window.transport
    qtbot.waitUntil(lambda: len(bar.version_buttons) == 1 + len(FAMILY), timeout=20000)
    qtbot.wait(100)
    texts = [b.text() for b in bar.version_buttons]
    bodies = [t.split(": ", 1)[1] if ": " in t else "" for t in texts]
    # Never bare letters, never two labels alike, never a "gtcrn-..." that hides what differs.
    assert all(len(b) >= 6 for b in bodies), texts
    assert len(set(bodies)) == len(bodies), texts
    for name, body in zip(["original"] + FAMILY, bodies):
        core = body.replace("…", "")
        assert core and all(part in name for part in body.split("…") if part), (name, body)
    for i, b in enumerate(bar.version_buttons):
        assert rec.versions[i].name in b.toolTip()
    # Every button is reachable: inside the bar, or the bar scrolls to it.
    scroll = bar.version_scroll.horizontalScrollBar()
    last = bar.version_buttons[-1]
    assert last.geometry().right() <= bar.version_scroll.viewport().width() or scroll.maximum() > 0


def test_many_lab_versions_are_grouped_in_the_buttons_and_the_tree(qtbot, window, tmp_path, shared_data):
    from workbench.core.provenance import Provenance, VersionKind
    path, x, sr = _speech(tmp_path, 2.0, shared_data)
    window.open_files([path])
    rec = window.document.recording
    rec.add_enhanced(x * 0.5, sr, _info("gtcrn"))
    for name in LAB:
        kind = VersionKind.SWAP if name.startswith("swap") else (
            VersionKind.RECONSTRUCTION if "GLA" in name else VersionKind.ORACLE)
        rec.add_version(x * 0.3, sr, Provenance(kind), name)
    bar = window.transport
    qtbot.waitUntil(lambda: len(bar.version_buttons) == 2 + len(LAB), timeout=20000)
    qtbot.waitUntil(lambda: len([b for b in bar.version_buttons if b.isVisible()]) == 2, timeout=5000)
    assert bar.lab_button is not None and bar.lab_button.isVisible()
    menu_texts = [a.text() for a in bar.lab_button.menu().actions()]
    assert len(menu_texts) == len(LAB) and all(any(n in t for t in menu_texts) for n in LAB)
    # Choosing one from the group makes it audible and shown; the group button names it.
    bar.lab_button.menu().actions()[2].trigger()
    assert bar.engine.selected_version == 4 and window.document.version.name == LAB[2]
    assert LAB[2] in bar.lab_button.text()
    top = window.file_tree.topLevelItem(0)
    labels = [top.child(i).text(0) for i in range(top.childCount())]
    group = next(top.child(i) for i, t in enumerate(labels) if t.startswith("phase lab"))
    assert group.childCount() == len(LAB) and "gtcrn" in labels


def test_version_keys_still_switch_versions_after_a_repair(qtbot, window, tmp_path, shared_data):
    path, x, sr = _speech(tmp_path, 3.0, shared_data)
    window.open_files([path])
    rec = window.document.recording
    rec.add_enhanced(x * 0.5, sr, _info("wiener"))
    qtbot.waitUntil(lambda: len(window.transport.version_buttons) == 2, timeout=20000)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    window.edit_dock.show()
    window.edit_dock.raise_()
    panel = window.edit_panel
    panel.set_box(0.5, 1.5, 1000.0, 3000.0)
    panel.repair_button.setFocus(Qt.FocusReason.MouseFocusReason)   # as a click leaves it
    qtbot.waitUntil(panel.repair_button.hasFocus, timeout=3000)
    with qtbot.waitSignal(panel.operationFinished, timeout=60000):
        qtbot.mouseClick(panel.repair_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.document.version.kind == "repair", timeout=5000)
    qtbot.waitUntil(lambda: len(window.transport.version_buttons) == 3, timeout=20000)
    assert not panel.chain_name.hasFocus()
    target = QApplication.focusWidget() or window
    qtbot.keyClick(target, Qt.Key.Key_1)
    assert panel.chain_name.text() == ""
    assert window.transport.engine.selected_version == 0
    assert window.document.version.name == "original"
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_2)
    assert window.document.version.name == "wiener"


def test_metrics_dock_does_not_squeeze_the_panes_and_its_progress_text_fits(qtbot, window, tmp_path, shared_data):
    path, x, sr = _speech(tmp_path, 3.0, shared_data)
    window.open_files([path])
    qtbot.waitUntil(window.view.is_painted, timeout=20000)
    panel = window.metrics_panel
    window.metrics_dock.show()
    window.metrics_dock.raise_()
    qtbot.wait(300)
    panes_before = window.view.width()
    rec = window.document.recording
    for i in range(19):
        rec.add_enhanced(x * 0.5, sr, _info(f"gtcrn-variant-{i:02d}"))
    qtbot.waitUntil(lambda: panel.table.columnCount() == 20, timeout=20000)
    messages = []
    panel.progress.connect(lambda _f, m: messages.append(m))
    with qtbot.waitSignal(panel.progress, timeout=60000, check_params_cb=lambda f, m: "DNSMOS" in m or ":" in m):
        panel.compute()
    try:
        qtbot.wait(300)
        assert window.view.width() >= panes_before - 2, (window.view.width(), panes_before)
        assert panel.table.horizontalScrollBar().maximum() > 0
        # The step being measured is shortened to the bar (whole in its tooltip), never cut at its edge.
        bar = panel.progress_bar
        shown = bar.text()
        assert bar.fontMetrics().horizontalAdvance(shown) <= bar.contentsRect().width(), (shown, messages[-1])
    finally:
        panel.cancel()
        panel.wait()


def test_reference_free_estimate_counts_every_version(qtbot, tmp_path, shared_data):
    import time

    from workbench.core.document.recording import Recording
    from workbench.gui.metrics_panel import MetricsPanel
    path, x, sr = _speech(tmp_path, 10.0, shared_data)
    rec = Recording(path)
    rec.add_enhanced(x * 0.5, sr, _info("a"))
    rec.add_enhanced(x * 0.4, sr, _info("b"))
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(rec)
    panel.set_reference(None)
    versions = panel.versions()
    t0 = time.perf_counter()
    with qtbot.waitSignal(panel.resultsReady, timeout=180000):
        panel.compute()
    elapsed = time.perf_counter() - t0
    # After a run, the estimate for the same versions is near what it took (the average moves half way
    # from the first guess, which was lower); 3 versions are 3 fixed costs, not one 30-second clip's.
    estimate = panel.reference_free_estimate_s(versions)
    assert estimate >= 0.45 * elapsed, (estimate, elapsed)


def _relative_luminance(colour) -> float:
    def channel(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(colour.red()) + 0.7152 * channel(colour.green()) + 0.0722 * channel(colour.blue())


def test_convergence_chart_is_readable(qtbot):
    from types import SimpleNamespace

    from workbench.gui.phase_lab_panel import PhaseLabPanel
    panel = PhaseLabPanel()
    qtbot.addWidget(panel)
    panel.resize(430, 600)
    panel.show()
    panel.results.setCurrentIndex(1)
    qtbot.waitExposed(panel)
    versions = []
    for k, source in enumerate(["clean", "gtcrn", "rnnoise", "dfn3", "wiener"]):
        for momentum in (0.0, 0.99):
            sc = 0.7 * np.exp(-np.arange(101) / (20 + 10 * k + 30 * momentum)) + 0.05 + 0.01 * k
            versions.append(SimpleNamespace(
                label=f"{'FGLA' if momentum else 'GLA'} |{source}|",
                reconstruction=SimpleNamespace(spectral_convergence=sc, momentum=momentum, inconsistency=sc[-1])))
    panel.result = SimpleNamespace(lab=SimpleNamespace(versions=versions))
    panel._draw_chart()
    qtbot.wait(100)
    plot = panel.chart.getPlotItem()
    # Left (log) axis: no two labels overlap.
    labels = sorted(_drawn_tick_labels(plot.getAxis("left")), key=lambda r: r[0].top())
    assert len(labels) >= 2
    for (a, ta), (b, tb) in zip(labels, labels[1:]):
        assert b.top() >= a.bottom(), f"{ta!r} overlaps {tb!r}"
    # The legend has an opaque background; every curve is light enough on the dark plot.
    legend = plot.legend
    assert legend.brush().style() != Qt.BrushStyle.NoBrush and legend.brush().color().alpha() >= 180
    for curve in plot.listDataItems():
        assert _relative_luminance(curve.opts["pen"].color()) >= 0.2, curve.opts["pen"].color().name()


def test_models_table_says_it_is_loading_until_the_list_arrives(qtbot, settings):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    panel = w.model_panel
    # Before the event loop ran the listing: the table says so and the bar runs.
    assert panel.table.rowCount() == 1 and "Loading models" in panel.table.item(0, 0).text()
    assert panel.progress_bar.maximum() == 0
    assert "Loading models" in panel.status.text()
    assert not panel.enhance_button.isEnabled() and "load" in panel.enhance_button.toolTip().lower()
    w.show()
    qtbot.waitUntil(lambda: not panel.loading, timeout=60000)
    assert panel.table.rowCount() > 3 and panel.selected_spec() is not None
    assert "Loading" not in panel.status.text() and panel.progress_bar.maximum() > 0
    assert panel.enhance_button.isEnabled()
    w.close()


def test_export_dialog_has_one_folder_remembers_it_and_follows_the_source_bit_depth(qtbot, window, tmp_path,
                                                                                   shared_data):
    from PySide6.QtWidgets import QLineEdit
    path, x, sr = _speech(tmp_path, 1.0, shared_data)   # written as 16-bit PCM
    window.open_files([path])
    dlg = window.open_export_dialog()
    folder_fields = [e for e in dlg.findChildren(QLineEdit) if e.text() == str(tmp_path.resolve())]
    assert len(folder_fields) == 1
    # A 16-bit source exports 16-bit by default, as `workbench enhance` writes it.
    assert dlg.subtype_box.currentData() == "PCM_16"
    dlg.format_box.setCurrentText("FLAC")
    assert dlg.subtype_box.currentData() == "PCM_16"
    dlg.format_box.setCurrentText("WAV")
    out = tmp_path / "exports"
    out.mkdir()
    dlg.folder_edit.setText(str(out))
    dlg.set_checked(["original"])
    files = dlg.export_audio()
    assert files and all(f.path.parent == out for f in files)
    assert sf.info(str(files[0].path)).subtype == "PCM_16"
    dlg.close()
    qtbot.waitUntil(lambda: window.export_dialog is None, timeout=3000)
    again = window.open_export_dialog()
    assert again.folder_edit.text() == str(out)
    again.close()
