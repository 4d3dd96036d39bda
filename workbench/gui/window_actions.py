"""The window's actions: the File, Edit and View menus and their keyboard shortcuts.

Each action calls one method of the window (or of its panes); the actions hold no state. Menu shortcuts use
modifiers so that they never take keys from spin boxes and combo boxes; bare keys (=, -, F, arrows) work
while the panes have the focus.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QToolBar


def build_menus(window) -> None:
    """Build the menu bar of ``window`` (a :class:`~workbench.gui.main_window.MainWindow`); its actions become
    attributes of the window (``open_action``, ``undo_action``, ``speech_action`` ...)."""
    mb = window.menuBar()
    file_menu = mb.addMenu("&File")
    window.open_action = QAction("&Open…", window, shortcut=QKeySequence.StandardKey.Open)
    window.open_action.triggered.connect(window.open_dialog)
    file_menu.addAction(window.open_action)
    window.recent_menu = file_menu.addMenu("Open &Recent")
    window.close_action = QAction("&Close recording", window, shortcut=QKeySequence.StandardKey.Close)
    window.close_action.triggered.connect(window.close_current)
    file_menu.addAction(window.close_action)
    file_menu.addSeparator()
    window.save_session_action = QAction("&Save session…", window, shortcut=QKeySequence.StandardKey.Save)
    window.save_session_action.setToolTip("Save the open recordings, every version (bit-exact), references and "
                                        "view settings to a session file")
    window.save_session_action.triggered.connect(lambda: window.save_session_dialog())
    file_menu.addAction(window.save_session_action)
    window.open_session_action = QAction("Open s&ession…", window, shortcut="Ctrl+Shift+O")
    window.open_session_action.triggered.connect(window.open_session_dialog)
    file_menu.addAction(window.open_session_action)
    file_menu.addSeparator()
    window.load_model_action = QAction("Load &model…", window, shortcut="Ctrl+M")
    window.load_model_action.setToolTip("Load an ONNX / TorchScript / PyTorch model file into the model panel")
    window.load_model_action.triggered.connect(window.load_model_dialog)
    file_menu.addAction(window.load_model_action)
    window.export_action = QAction("&Export versions / figure / comparison…", window, shortcut="Ctrl+E")
    window.export_action.triggered.connect(window.open_export_dialog)
    file_menu.addAction(window.export_action)
    window.batch_action = QAction("&Batch enhance…", window, shortcut="Ctrl+Shift+E")
    window.batch_action.setToolTip("Enhance many files with one model and export them (or Ctrl+drop files)")
    window.batch_action.triggered.connect(lambda: window.open_batch_dialog())
    file_menu.addAction(window.batch_action)
    file_menu.addSeparator()
    quit_action = QAction("&Quit", window, shortcut=QKeySequence.StandardKey.Quit)
    quit_action.triggered.connect(window.close)
    file_menu.addAction(quit_action)

    edit_menu = mb.addMenu("&Edit")
    window.undo_action = QAction("&Undo", window, shortcut=QKeySequence("Ctrl+Z"))
    window.undo_action.setToolTip("Undo the last added or deleted version or strength change")
    window.undo_action.triggered.connect(window.undo)
    window.redo_action = QAction("&Redo", window, shortcut=QKeySequence("Ctrl+Shift+Z"))
    window.redo_action.triggered.connect(window.redo)
    window.delete_version_action = QAction("&Delete shown version", window, shortcut=QKeySequence("Ctrl+Backspace"))
    window.delete_version_action.setToolTip("Remove the shown version (the original stays; Ctrl+Z brings it back)")
    window.delete_version_action.triggered.connect(window.delete_shown_version)
    for act in (window.undo_action, window.redo_action, window.delete_version_action):
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        edit_menu.addAction(act)
    window.edit_menu = edit_menu

    view_menu = mb.addMenu("&View")
    # Menu shortcuts use modifiers so they never steal keys from the spin boxes and combo boxes;
    # bare keys (=, -, F, arrows) work while the panes have focus.
    shortcuts = [
        ("Zoom &in", ["Ctrl+=", "Ctrl++"], ["=", "+"], lambda: window.view.zoom(0.5)),
        ("Zoom &out", ["Ctrl+-"], ["-"], lambda: window.view.zoom(2.0)),
        ("&Fit whole recording", ["Ctrl+0"], ["F", "Home"], window.view.fit),
        ("Pan &left", ["Alt+Left"], ["Left"], lambda: window.view.pan(-0.25)),
        ("Pan &right", ["Alt+Right"], ["Right"], lambda: window.view.pan(0.25)),
    ]
    window.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    window.view.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    for text, keys, pane_keys, fn in shortcuts:
        act = QAction(text, window)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.triggered.connect(fn)
        view_menu.addAction(act)
        window.addAction(act)
        local = QAction(text, window.view)
        local.setShortcuts([QKeySequence(k) for k in pane_keys])
        local.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        local.triggered.connect(fn)
        window.view.addAction(local)
    window.rubber_action = QAction("&Rubber-band zoom (drag a box)", window, checkable=True, shortcut="Ctrl+B")
    window.rubber_action.toggled.connect(window.view.set_rubber_band)
    view_menu.addSeparator()
    view_menu.addAction(window.rubber_action)
    window.speech_action = QAction("&Speech activity lane", window, checkable=True, shortcut="Ctrl+Shift+A")
    window.speech_action.setToolTip("Silero VAD's speech probability and speech spans under the overview; "
                                  "the Edit panel can learn the noise from every pause")
    window.speech_action.toggled.connect(lambda _on: window._refresh_speech_lane())
    view_menu.addAction(window.speech_action)
    window.speech_settings_action = QAction("Speech activity se&ttings…", window)
    window.speech_settings_action.triggered.connect(window.speech_settings_dialog)
    view_menu.addAction(window.speech_settings_action)
    view_menu.addSeparator()
    window.panels_menu = view_menu.addMenu("&Panels")
    window.panels_menu.addAction(window._docks["Recordings"].toggleViewAction())
    for tb in window.findChildren(QToolBar):
        window.panels_menu.addAction(tb.toggleViewAction())
    window.view_menu = view_menu
