"""Resources: headers that promise more than the file holds are refused (RF64 like WAV), references far
longer than the recording are refused before being read, evaluations of unreadable pairs name every
unreadable file and do not end as a success."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.audio.audio_io import read_info
from workbench.core.errors import AudioFileError, WorkbenchError


def _rf64(path, channels, declared_frames, real_frames, bps=2):
    fmt = struct.pack("<HHIIHH", 1, channels, 16000, 16000 * channels * bps, channels * bps, 8 * bps)
    ds64 = struct.pack("<QQQI", 0, declared_frames * channels * bps, declared_frames, 0)
    body = (b"WAVE" + b"ds64" + struct.pack("<I", len(ds64)) + ds64 + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", 0xFFFFFFFF) + b"\0" * (real_frames * channels * bps))
    path.write_bytes(b"RF64" + struct.pack("<I", 0xFFFFFFFF) + body)


def test_an_rf64_header_promising_more_than_the_file_holds_is_refused(tmp_path, capsys):
    bad = tmp_path / "claims.wav"
    _rf64(bad, 1024, 2 ** 31, 4)
    with pytest.raises(AudioFileError, match="header declares 2147483648 frames, file holds 4"):
        read_info(bad)
    for argv in (["info", str(bad)], ["analyze", str(bad), "--png", str(tmp_path / "a.png")],
                 ["enhance", str(bad), "-m", "wiener", "-o", str(tmp_path / "e.wav")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "truncated data" in err and len(err.splitlines()) == 1


def test_a_true_rf64_file_still_opens(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros((1000, 2), np.float32), 16000, format="RF64", subtype="FLOAT")
    assert read_info(good).frames == 1000


def _sparse_pcm16(path, frames, rate=16000):
    data = frames * 2
    header = (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data)


def test_an_hour_long_reference_for_a_short_recording_is_refused_before_it_is_read(tmp_path):
    from workbench.core.workflows.phaselab import load_reference

    ref = tmp_path / "hour.wav"
    _sparse_pcm16(ref, 16000 * 3600)
    tracemalloc.start()
    try:
        with pytest.raises(WorkbenchError, match="far longer than the 5.0 s recording"):
            load_reference(ref, 5.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6


def test_phase_lab_refuses_the_hour_long_reference_in_one_line(tmp_path, capsys):
    ref = tmp_path / "hour.wav"
    _sparse_pcm16(ref, 16000 * 3600)
    noisy = tmp_path / "n.wav"
    sf.write(noisy, (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32), 16000)
    tracemalloc.start()
    try:
        assert main(["phase-lab", str(noisy), "--clean", str(ref), "-o", str(tmp_path / "o")]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err.strip()
    assert "hour.wav" in err and "far longer" in err and len(err.splitlines()) == 1
    assert peak < 50e6


def test_evaluate_over_empty_files_names_them_and_fails(tmp_path, capsys):
    for n in ("a", "b"):
        (tmp_path / f"{n}_noisy.wav").write_bytes(b"")
        (tmp_path / f"{n}_clean.wav").write_bytes(b"")
    csv = tmp_path / "r.csv"
    assert main(["evaluate", str(tmp_path), "--no-dnsmos", "--metrics", "si_sdr", "--csv", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "a_noisy.wav: empty file" in err and "none of the 2 pair(s) could be read" in err
    assert not csv.exists()


def test_evaluate_with_some_unreadable_pairs_exits_2_after_the_table(tmp_path, capsys):
    (tmp_path / "a_noisy.wav").write_bytes(b"")
    (tmp_path / "a_clean.wav").write_bytes(b"")
    x = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32)
    sf.write(tmp_path / "b_noisy.wav", x + 0.01, 16000)
    sf.write(tmp_path / "b_clean.wav", x, 16000)
    assert main(["evaluate", str(tmp_path), "--no-dnsmos", "--metrics", "si_sdr"]) == 2
    err = capsys.readouterr().err
    assert "a_noisy.wav: empty file" in err and "1 of 2 pair(s) could not be read" in err
