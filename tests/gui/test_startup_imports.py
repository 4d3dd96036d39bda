"""Start-up stays light: opening the window and a recording imports neither a model runtime nor matplotlib,
nor the Live and Train panels (built when their tab is first shown).

torch, onnxruntime and matplotlib cost tenths of seconds to seconds to import; they are imported when a
model runs or is probed, or a figure is exported — never to show a file or to list the models.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Opens the window with the file offscreen, waits until every pane is painted and the model list is
#: filled (``--screenshot`` does both), then reports which heavy packages the process has imported.
SCRIPT = r"""
import sys
from workbench.gui import app
code = app.run_gui([sys.argv[1]], screenshot=sys.argv[2])
heavy = ("torch", "onnxruntime", "matplotlib", "workbench.gui.live_panel", "workbench.core.live.engine",
         "workbench.gui.train_panel")
print("IMPORTED", code, *[m for m in heavy if m in sys.modules])
"""


def test_opening_a_file_imports_no_model_figure_live_or_train_stack(tmp_path, shared_data):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(shared_data / "dns3" / "0015_noisy.wav"),
                           str(tmp_path / "shot.png")], env=env, capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED")]
    assert proc.returncode == 0 and line, proc.stderr[-2000:]
    assert line[0].split()[1:] == ["0"], line[0]
    assert (tmp_path / "shot.png").stat().st_size > 0


#: Opens the window offscreen, runs GTCRN from the Models panel on a recording, and reports whether this
#: process imported torch and how the result compares with GTCRN run in this process afterwards.
RUN_GTCRN = r"""
import sys
import numpy as np
from PySide6.QtCore import QSettings
from workbench.gui.app import make_application
app = make_application()
from workbench.core.audio.playback import PlaybackEngine
from workbench.gui.main_window import MainWindow
w = MainWindow(settings=QSettings(sys.argv[2], QSettings.Format.IniFormat), error_reporter=print,
               playback_engine=PlaybackEngine(None))
w.ask_unsaved = lambda unsaved: "discard"
w.open_files([sys.argv[1]])
w.model_panel.ensure_listed()
w.model_panel.select("gtcrn-dns3")
rec = w.document.recording
assert w.model_panel.start()
while w.model_panel.worker is not None:
    app.processEvents()
in_window = "torch" in sys.modules
(version,) = [v for v in rec.versions if v.name == "gtcrn-dns3"]
from workbench.core.document.version_ops import EnhanceRequest, run_request
from workbench.core.enhance.registry import load_enhancer
from workbench.core.progress import run_to_end
(here,) = run_to_end(run_request(rec, load_enhancer("gtcrn-dns3"), EnhanceRequest(spec="gtcrn-dns3")))
same = np.array_equal(version.source.read_all(), here.source.read_all())
w.close()
print("RESULT", in_window, same)
"""


def test_the_first_torch_model_of_the_window_runs_in_a_child_process(tmp_path, shared_data):
    """Importing torch holds the interpreter lock for seconds (the window stops answering), on whichever
    thread: the window runs GTCRN in a child process while torch is not loaded in its own, with the same
    result as a run in process."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, "-c", RUN_GTCRN, str(shared_data / "dns3" / "0015_noisy.wav"),
                           str(tmp_path / "settings.ini")], env=env, capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert line[0].split()[1:] == ["False", "True"], line[0]


def test_live_and_train_panels_are_built_when_their_tab_shows(qtbot, settings):
    from workbench.gui.live_panel import LivePanel
    from workbench.gui.main_window import MainWindow
    from workbench.gui.train_panel import TrainPanel

    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert "Live" not in w._deferred and "Train" not in w._deferred
    assert [a.text() for a in w.panels_menu.actions()].count("Live") == 1  # listed in View > Panels all along
    w.live_dock.raise_()
    qtbot.waitUntil(lambda: "Live" in w._deferred)
    assert isinstance(w._docks["Live"].widget().widget(), LivePanel)  # inside its scroll area
    assert w.live_panel is w._deferred["Live"]  # built once
    assert "Train" not in w._deferred
    panel = w.train_panel  # asked for before its tab was shown
    assert isinstance(panel, TrainPanel) and w._docks["Train"].widget() is panel
    w.train_dock.raise_()
    assert w.train_panel is panel
