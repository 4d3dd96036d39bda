"""The audio-format table: an output's suffix chooses its format, pairing reads every readable format, and
dialogs, CLI choices and writers derive from the one table."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.audio import formats as F
from workbench.core.audio.audio_io import OUTPUT_FORMATS, WRITE_SUBTYPES, output_format
from workbench.core.errors import WorkbenchError
from workbench.core.measure.metrics import find_pairs
from workbench.core.workflows.export import LOSSY, SUFFIX


@pytest.fixture()
def noisy(tmp_path, rng):
    t = np.arange(8000) / 16000
    x = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
    path = tmp_path / "in.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    return path


@pytest.mark.parametrize("suffix, container, subtype", [(".mp3", "MP3", "MPEG_LAYER_III"), (".opus", "OGG", "OPUS"),
                                                         (".ogg", "OGG", "VORBIS"), (".flac", "FLAC", "PCM_16")])
def test_enhance_output_suffix_chooses_the_format(tmp_path, noisy, suffix, container, subtype):
    out = tmp_path / f"out{suffix}"
    assert main(["enhance", str(noisy), "-m", "wiener", "-o", str(out), "--quiet"]) == 0
    info = sf.info(out)
    assert (info.format, info.subtype, info.samplerate) == (container, subtype, 16000)
    assert abs(info.frames - 8000) < 2000  # lossy codecs pad to their frame size


@pytest.mark.parametrize("suffix, container", [(".w64", "W64"), (".caf", "CAF")])
def test_w64_and_caf_outputs_round_trip(tmp_path, noisy, suffix, container):
    """libsndfile writes Wave64 and CAF: an output named so is written in that container, keeps the source's
    16-bit samples, and reads back as what the same run writes to WAV."""
    out = tmp_path / f"out{suffix}"
    ref = tmp_path / "out.wav"
    for target in (out, ref):
        assert main(["enhance", str(noisy), "-m", "wiener", "-o", str(target), "--quiet"]) == 0
    info = sf.info(out)
    assert (info.format, info.subtype, info.samplerate, info.frames) == (container, "PCM_16", 16000, 8000)
    np.testing.assert_array_equal(sf.read(out, dtype="int16")[0], sf.read(ref, dtype="int16")[0])
    assert F.output_format_for(out).suffix == suffix and suffix in F.dialog_filter(writable=True)
    with sf.SoundFile(out) as f:  # CAF carries the provenance like WAV; libsndfile writes no tag into Wave64
        assert ('"model_id": "wiener"' in (f.comment or "")) == (container == "CAF")


def test_a_suffix_nothing_writes_is_one_clear_line(tmp_path, noisy, capsys):
    assert main(["enhance", str(noisy), "-m", "wiener", "-o", str(tmp_path / "out.xyz"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "out.xyz: cannot write .xyz" in err and ".mp3" in err and ".opus" in err


@pytest.mark.parametrize("suffix, fmt, subtype", [(".opus", "OGG", "OPUS"), (".w64", "W64", "FLOAT"),
                                                  (".caf", "CAF", "FLOAT"), (".flac", "FLAC", "PCM_16")])
def test_evaluate_pairs_every_readable_format(tmp_path, rng, suffix, fmt, subtype):
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    for role in ("noisy", "clean"):
        sf.write(tmp_path / f"clip_{role}{suffix}", x, 16000, format=fmt, subtype=subtype)
    [pair] = find_pairs(tmp_path)
    assert (pair.noisy.name, pair.clean.name) == (f"clip_noisy{suffix}", f"clip_clean{suffix}")


def test_everything_derives_from_the_table():
    assert set(F.READ_SUFFIXES) >= {".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff", ".w64", ".caf"}
    for s in F.READ_SUFFIXES:
        assert f"*{s}" in F.dialog_filter()
    assert set(WRITE_SUBTYPES) == set(F.EXPORT_FORMATS) == set(SUFFIX)
    assert set(LOSSY) == set(F.LOSSY_FORMATS) == {"MP3", "OGG", "OPUS"}
    assert {s: output_format(f"x{s}") for s in (".mp3", ".opus", ".aif")} == {".mp3": "MP3", ".opus": "OPUS",
                                                                                 ".aif": "AIFF"}
    assert set(OUTPUT_FORMATS) == set(F.OUTPUT_SUFFIXES)
    with pytest.raises(WorkbenchError, match="cannot write .xyz"):
        output_format("x.xyz")
    for f in F.FORMATS:  # libsndfile agrees with every subtype the table lets a person choose
        for sub in f.subtypes:
            assert sf.check_format(f.container, sub), (f.name, sub)
