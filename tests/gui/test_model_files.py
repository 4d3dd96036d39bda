"""A dropped model file is a model whatever suffix its loader opens (never opened as audio)."""

from __future__ import annotations

import pytest

from workbench.core.enhance.registry import model_suffixes
from workbench.gui.main_window import AUDIO_FILTER, MainWindow


@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".bin", ".zip", ".torchscript"])
def test_dropped_model_files_are_models(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"x")
    assert suffix in model_suffixes()
    assert MainWindow.is_model_path(path)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / f"weights{suffix}").write_bytes(b"x")
    assert MainWindow.is_model_path(folder)


def test_audio_is_not_a_model_and_every_readable_format_is_offered(tmp_path):
    assert not MainWindow.is_model_path(tmp_path / "speech.opus")
    assert "*.opus" in AUDIO_FILTER and "*.caf" in AUDIO_FILTER and "*.w64" in AUDIO_FILTER
