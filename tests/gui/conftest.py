"""Qt test setup: offscreen platform, isolated settings, binding guard, pyqtgraph options.

QT_QPA_PLATFORM must be set before Qt is imported, so it is done at import time of this conftest.
Settings go to a per-session temporary folder under a test organisation name, so tests never read or
write the person's real workbench settings.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from workbench.gui import compat  # noqa: E402

compat.apply()


@pytest.fixture(scope="session", autouse=True)
def _workbench_qt(qapp, tmp_path_factory):
    from PySide6.QtCore import QSettings

    from workbench.gui.app import configure_pyqtgraph

    qapp.setOrganizationName("WorkbenchTests")
    qapp.setOrganizationDomain("tests.workbench.invalid")
    qapp.setApplicationName("WorkbenchTests")
    compat.collect_garbage_on_gui_thread()  # as the application does (see there why)
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    configure_pyqtgraph()
    # Short clips are prepared for playback synchronously only once the loudness libraries are loaded
    # (the app's first preparation goes to a worker); the tests rely on the synchronous path.
    from workbench.core.audio.loudness import load_libraries
    load_libraries()
    yield


@pytest.fixture()
def settings(tmp_path):
    """A fresh settings file for one test."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "workbench.ini"), QSettings.Format.IniFormat)


@pytest.fixture(autouse=True)
def _quit_without_asking(request, monkeypatch):
    """Windows closed by tests discard their results without the modal "Unsaved results" box; tests of
    that box are marked ``real_quit_prompt`` and answer it themselves."""
    if request.node.get_closest_marker("real_quit_prompt") is not None:
        return
    from workbench.gui.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, unsaved, question="": "discard")
