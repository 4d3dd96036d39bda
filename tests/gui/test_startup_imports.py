"""Start-up stays light: opening the window and a recording imports neither a model runtime nor matplotlib.

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
heavy = ("torch", "onnxruntime", "matplotlib")
print("IMPORTED", code, *[m for m in heavy if m in sys.modules])
"""


def test_opening_a_file_imports_no_model_or_figure_stack(tmp_path, shared_data):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(shared_data / "dns3" / "0015_noisy.wav"),
                           str(tmp_path / "shot.png")], env=env, capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED")]
    assert proc.returncode == 0 and line, proc.stderr[-2000:]
    assert line[0].split()[1:] == ["0"], line[0]
    assert (tmp_path / "shot.png").stat().st_size > 0
