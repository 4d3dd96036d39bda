"""DeepFilterNet3's offline path loads from the graph cache without unpacking the wheel's tarball, and its
output is the same whichever way the networks came."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from workbench_models import deepfilternet as dfn
from workbench_models import onnx_state


def _run(x: np.ndarray) -> np.ndarray:
    net = dfn.ChunkedDeepFilterNet3(threads=1)
    stream = net.new_stream()
    n = len(x) // dfn.HOP * dfn.HOP
    return stream.process(x[:n])


def test_a_cached_run_does_not_unpack_the_tarball_and_gives_the_same_output(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    x, _ = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32", frames=3 * 48000)
    dfn._wheel_archive.cache_clear()
    first = _run(x)
    assert dfn._wheel_archive.cache_info().misses == 1  # the first run unpacks and rewrites
    dfn._wheel_archive.cache_clear()
    second = _run(x)
    assert dfn._wheel_archive.cache_info().misses == 0  # config and networks from the cache
    np.testing.assert_array_equal(second, first)


def test_a_changed_tarball_or_a_damaged_note_is_read_again(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    x, _ = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32", frames=48000)
    dfn._wheel_archive.cache_clear()
    reference = _run(x)
    _, model = dfn.runtime_files()
    key = onnx_state.source_key(model)
    note = onnx_state._source_entry_path(key)
    assert note.is_file()
    note.write_text("{not json")
    dfn._wheel_archive.cache_clear()
    np.testing.assert_array_equal(_run(x), reference)
    assert dfn._wheel_archive.cache_info().misses == 1 and onnx_state.read_source_entry(key)["config.ini"]
    # Another file (other size or time) has another key: nothing remembered about it.
    assert onnx_state.read_source_entry(key + "x") == {}
    monkeypatch.setattr(dfn, "source_key", lambda path: key + "|changed")
    dfn._wheel_archive.cache_clear()
    np.testing.assert_array_equal(_run(x), reference)
    assert dfn._wheel_archive.cache_info().misses == 1
