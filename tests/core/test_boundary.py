"""The core/GUI boundary and the packaging: core and models work without Qt, the wheel is complete."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    assert lint.exists(), f"import-linter is not installed in {lint.parent}"
    res = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert " 0 broken" in res.stdout and "KEPT" in res.stdout


def test_core_and_models_import_with_qt_blocked():
    # With these entries set to None, any `import PySide6` (or pyqtgraph) raises ImportError, exactly as
    # on a machine without Qt. Every module under workbench.core and workbench_models must still import.
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        for name in ("PySide6", "PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "pyqtgraph",
                     "shiboken6"):
            sys.modules[name] = None
        import workbench.core, workbench_models
        done = []
        for pkg in (workbench.core, workbench_models):
            for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):  # subpackages too
                importlib.import_module(mod.name)
                done.append(mod.name)
        import workbench.commands.analyze, workbench.commands.info
        loaded_qt = [m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph") and sys.modules[m]]
        assert not loaded_qt, loaded_qt
        print(len(done), " ".join(done))
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    count, names = res.stdout.strip().split(" ", 1)
    assert {"workbench.core.audio.audio_io", "workbench.core.views.stft", "workbench.core.views.figure"} <= set(names.split())
    assert int(count) >= 5


def test_headless_figure_without_qt(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["PySide6"] = None
        sys.modules["pyqtgraph"] = None
        import numpy as np
        from workbench.core.views.figure import render_figure
        from workbench.core.views.stft import StftConfig
        x = np.sin(np.arange(8000) / 3).astype(np.float32)
        render_figure(x, 8000, StftConfig(256, 64), {str(tmp_path / 'f.png')!r}, width_px=400, height_px=300)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_wheel_maps_models_and_assets_to_installed_names(tmp_path):
    # Build from a copy so setuptools' build/ and egg-info folders never land in the checkout.
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("workbench", "models", "assets"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "--disable-pip-version-check", "-q", str(src), "-w", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    wheels = list(tmp_path.glob("*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "models" not in tops, "a bare top-level 'models' package would clash with other projects"
    assert {"workbench", "workbench_models", "workbench_assets"} <= tops
    for required in ("workbench/core/audio/audio_io.py", "workbench/core/views/stft.py", "workbench/core/views/figure.py",
                     "workbench/commands/analyze.py", "workbench_models/__init__.py",
                     "workbench_assets/__init__.py", "workbench_assets/demo/demo_noisy.wav",
                     "workbench_assets/demo/demo_clean.wav", "workbench_assets/demo/LICENSE.md",
                     "workbench_assets/icons/workbench.svg"):
        assert required in names, required
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "workbench = workbench.cli:main" in zipfile.ZipFile(wheels[0]).read(entry[0]).decode()


def test_demo_assets(shared_data):
    import hashlib

    import soundfile as sf
    import workbench_assets

    noisy, clean = workbench_assets.demo_clip_path(), workbench_assets.demo_clean_path()
    for path in (noisy, clean):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels) == (16000, 1) and info.duration == pytest.approx(5.0)
    # The one allowed copy: byte-identical to the DNS3 clip it names in its LICENSE.md.
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    assert digest(noisy) == digest(shared_data / "dns3" / "0015_noisy.wav")
    assert digest(clean) == digest(shared_data / "dns3" / "0015_clean.wav")
    licence = (noisy.parent / "LICENSE.md").read_text()
    assert "CC BY 4.0" in licence and "Xiaobin-Rong/gtcrn" in licence
    assert workbench_assets.icon_path().read_text().lstrip().startswith("<svg")
