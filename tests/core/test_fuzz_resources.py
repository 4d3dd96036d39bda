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
    assert main(["evaluate", str(tmp_path), "--no-reference-free", "--metrics", "si_sdr", "--csv", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "a_noisy.wav: empty file" in err and "none of the 2 pair(s) could be read" in err
    assert not csv.exists()


def test_evaluate_with_some_unreadable_pairs_exits_2_after_the_table(tmp_path, capsys):
    (tmp_path / "a_noisy.wav").write_bytes(b"")
    (tmp_path / "a_clean.wav").write_bytes(b"")
    x = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32)
    sf.write(tmp_path / "b_noisy.wav", x + 0.01, 16000)
    sf.write(tmp_path / "b_clean.wav", x, 16000)
    assert main(["evaluate", str(tmp_path), "--no-reference-free", "--metrics", "si_sdr"]) == 2
    err = capsys.readouterr().err
    assert "a_noisy.wav: empty file" in err and "1 of 2 pair(s) could not be read" in err


def _enhance_peak_bytes(src, out, *options):
    """Peak Python heap (numpy arrays included) of one ``workbench enhance`` run."""
    tracemalloc.start()
    try:
        rc = main(["enhance", str(src), "-m", "wiener", "-o", str(out), "--quiet", *options])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc == 0
    return peak


@pytest.mark.parametrize("options", [(), ("--normalize", "loudness", "--mix", "0.5", "--loudness", "-20",
                                         "--subtype", "PCM_16")])
def test_enhance_streams_a_long_file_with_memory_independent_of_its_length(tmp_path, options):
    warm, short, long = tmp_path / "warm.wav", tmp_path / "short.wav", tmp_path / "long.wav"
    _sparse_pcm16(warm, 16000)
    _sparse_pcm16(short, 16000 * 30)
    _sparse_pcm16(long, 16000 * 150)  # two and a half minutes: one float32 copy is 9.6 MB
    _enhance_peak_bytes(warm, tmp_path / "o" / "warm.wav", *options)  # imports and caches, once
    peak_short = _enhance_peak_bytes(short, tmp_path / "o" / "short.wav", *options)
    peak_long = _enhance_peak_bytes(long, tmp_path / "o" / "long.wav", *options)
    assert peak_long < peak_short + 3e6, (peak_short, peak_long)
    assert sf.info(tmp_path / "o" / "long.wav").frames == 16000 * 150
    # Only the outputs are left: every scratch file is gone.
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["long.wav", "short.wav", "warm.wav"]


def test_the_streamed_output_is_the_in_memory_version_written(shared_data, tmp_path):
    """Normalisation, strength, clipping to PCM_16 and the provenance of the streamed CLI path agree with the
    Recording's in-memory enhancement of the same file."""
    import json

    from workbench.core.audio.audio_io import clip_for_subtype
    from workbench.core.document.recording import Recording
    from workbench.core.enhance.editing import Strength
    from workbench.core.enhance.registry import load_enhancer
    from workbench.core.progress import run_to_end

    src = next((shared_data / "real").glob("*.wav"))
    out = tmp_path / "out.wav"
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(out), "--quiet", "--normalize", "loudness",
                 "--mix", "0.6", "--subtype", "PCM_16"]) == 0
    rec = Recording(src)
    (v,) = run_to_end(rec.enhance(load_enhancer("wiener"), normalize="loudness"))
    rec.set_strength(v, Strength(0.6))
    expected, _ = clip_for_subtype(v.source.read_all(), "PCM_16")
    got, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == rec.source.sample_rate and got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1.0 / 32768 + 1e-7
    written = json.loads(sf.SoundFile(out).comment)
    level = written["extra"]["level"]
    want = v.provenance.extra["level"]
    assert level["normalized"] == "loudness" and abs(level["normalize_gain_db"] - want["normalize_gain_db"]) < 1e-3
    assert level["gain_db"] == want["gain_db"] and written["strength"]["mix"] == 0.6


def test_scratch_files_go_on_signal_and_are_swept_after_a_kill(tmp_path):
    import os

    from workbench.core.audio import audio_io

    stale = tmp_path / f".x.wav.{2 ** 22 + 7}.0badf00d.part"  # what SIGKILL left: a pid no process has
    stale.write_bytes(b"\0" * 64)
    target = tmp_path / "x.wav"
    with audio_io.scratch_file_beside(target) as scratch:
        assert not stale.exists()
        assert scratch.parent == tmp_path and audio_io.TEMP_NAME_RE.match(scratch.name)
        audio_io.remove_live_temp_files()  # what SIGTERM's handler runs
        assert not scratch.exists()
    with audio_io.scratch_file_beside(tmp_path / "y.wav") as scratch:
        scratch.write_bytes(b"\0" * 64)
    assert os.listdir(tmp_path) == []


def _enhance_max_rss_kib(src, out):
    """Peak resident memory (KiB) of ``workbench enhance`` in a process of its own."""
    import subprocess
    import sys

    code = ("import resource, sys\nfrom workbench.cli import main\n"
            f"rc = main(['enhance', {str(src)!r}, '-m', 'wiener', '-o', {str(out)!r}, '--quiet'])\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_enhance_resident_memory_does_not_grow_with_the_file(tmp_path):
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    _sparse_pcm16(short, 16000 * 30)
    _sparse_pcm16(long, 16000 * 360)  # six minutes: one float32 copy is 23 MB
    rss_short = _enhance_max_rss_kib(short, tmp_path / "short.out.wav")
    rss_long = _enhance_max_rss_kib(long, tmp_path / "long.out.wav")
    assert rss_long < rss_short + 12 * 1024, (rss_short, rss_long)
