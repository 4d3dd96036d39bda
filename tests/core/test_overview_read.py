"""The overview envelope scans integer files as stored: the same extremes as decoding every sample to float."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.audio.audio_io import ArraySource, FileSource
from workbench.core.views.tiles import waveform_envelope


def _envelope(source, channel, buckets):
    *_, (filled, mins, maxs) = list(waveform_envelope(source, channel, buckets, block_frames=20_000))
    assert filled == buckets
    return mins.copy(), maxs.copy()


@pytest.mark.parametrize("fmt, subtype, suffix", [("WAV", "PCM_16", ".wav"), ("WAV", "PCM_24", ".wav"),
                                                  ("FLAC", "PCM_16", ".flac"), ("FLAC", "PCM_24", ".flac"),
                                                  ("AIFF", "PCM_16", ".aiff"), ("WAV", "FLOAT", ".wav"),
                                                  ("WAV", "PCM_U8", ".wav")])
def test_scaled_reads_and_envelopes_equal_the_float_decode(tmp_path, fmt, subtype, suffix):
    rng = np.random.default_rng(5)
    n = 48_000 * 3 + 77
    x = np.clip(rng.standard_normal((n, 2)) * 0.3, -1, 1).astype(np.float32)
    x[1000, 0], x[2000, 1] = -1.0, 0.99   # full scale and near it
    path = tmp_path / f"a{suffix}"
    sf.write(path, x, 48_000, subtype=subtype, format=fmt)
    src = FileSource(path)
    data, scale = src.read_scaled(123, 45_678)
    np.testing.assert_array_equal((data * scale).astype(np.float32), src.read(123, 45_678))
    decoded = ArraySource(src.read_all(), 48_000)   # every sample decoded to float32 by libsndfile
    for channel in (0, 1):
        for buckets in (1, 997, 4000):
            got, want = _envelope(src, channel, buckets), _envelope(decoded, channel, buckets)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
    if subtype.startswith("PCM_") and subtype != "PCM_U8":
        assert data.dtype.kind == "i"   # scanned as stored
