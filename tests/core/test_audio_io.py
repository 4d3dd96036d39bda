"""Audio I/O: every format and layout the issue names, block reads, soxr resampling, and bad input.

Files are written by soundfile into ``tmp_path``; broken files are made there by cutting or patching
good ones, so each test knows exactly what is wrong with its file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct

import numpy as np
import pytest
import soundfile as sf

from workbench.core.audio.audio_io import (ArraySource, AudioInfo, FileSource, load_audio, open_source, read_info,
                                     resample, scan_nonfinite)
from workbench.core.errors import AudioFileError, NonFiniteAudioError

# (format, subtype, suffix, tolerance of a round trip at amplitude <= 0.5)
FORMATS = [
    ("WAV", "PCM_U8", ".wav", 1 / 64),
    ("WAV", "PCM_16", ".wav", 1e-4),
    ("WAV", "PCM_24", ".wav", 1e-6),
    ("WAV", "PCM_32", ".wav", 1e-8),
    ("WAV", "FLOAT", ".wav", 0.0),
    ("WAV", "DOUBLE", ".wav", 0.0),
    ("FLAC", "PCM_16", ".flac", 1e-4),
    ("FLAC", "PCM_24", ".flac", 1e-6),
    ("AIFF", "PCM_16", ".aiff", 1e-4),
    ("AIFF", "FLOAT", ".aiff", 0.0),
    ("OGG", "VORBIS", ".ogg", None),          # lossy: checked by level, not by sample
    ("MP3", "MPEG_LAYER_III", ".mp3", None),  # lossy, and the decoder adds delay
]


def tone(sr: int, channels: int, seconds: float = 0.5) -> np.ndarray:
    """``(n, channels)`` float32 sines, a different frequency per channel, peak 0.5."""
    t = np.arange(int(sr * seconds)) / sr
    freqs = [440.0 * (1 + 0.5 * c) for c in range(channels)]
    return (0.5 * np.stack([np.sin(2 * np.pi * f * t) for f in freqs], axis=1)).astype(np.float32)


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write(tmp_path, name, audio, sr, fmt="WAV", subtype="PCM_16"):
    path = tmp_path / name
    sf.write(path, audio, sr, format=fmt, subtype=subtype)
    return path


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# MPEG layer III holds at most two channels, so MP3 is not tried with six.
LAYOUT_CASES = [(*f, ch) for f in FORMATS for ch in (1, 2, 6) if not (f[0] == "MP3" and ch > 2)]


@pytest.mark.parametrize("fmt,subtype,suffix,tol,channels", LAYOUT_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[4]}ch" for c in LAYOUT_CASES])
def test_every_format_and_layout_loads_as_float(tmp_path, fmt, subtype, suffix, tol, channels):
    sr = 44100 if fmt == "MP3" else 22050
    x = tone(sr, channels)
    path = write(tmp_path, f"t{suffix}", x, sr, fmt, subtype)
    before = sha256(path)
    audio, info = load_audio(path)
    assert isinstance(info, AudioInfo)
    assert (info.sample_rate, info.channels, info.format, info.subtype) == (sr, channels, fmt, subtype)
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] == channels
    assert info.duration_s == pytest.approx(info.frames / sr)
    if tol is not None:
        assert audio.shape == x.shape
        assert np.max(np.abs(audio - x)) <= tol + 1e-9
    else:
        # Lossy: same length within codec padding, each channel keeps its level (0.5 / sqrt 2).
        assert abs(audio.shape[0] - x.shape[0]) < 0.05 * sr
        for c in range(channels):
            assert rms(audio[:, c]) == pytest.approx(rms(x[:, c]), rel=0.1)
        # Channel order kept: each channel's spectral peak at its own frequency.
        for c in range(channels):
            spec = np.abs(np.fft.rfft(audio[:, c]))
            assert np.argmax(spec) * sr / len(audio) == pytest.approx(440.0 * (1 + 0.5 * c), abs=5)
    assert sha256(path) == before


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 96000, 192000])
def test_odd_and_high_rates(tmp_path, sr):
    x = tone(sr, 2, 0.25)
    for fmt, subtype, suffix in (("WAV", "PCM_24", ".wav"), ("FLAC", "PCM_24", ".flac")):
        path = write(tmp_path, f"r{sr}{suffix}", x, sr, fmt, subtype)
        info = read_info(path)
        assert info.sample_rate == sr and info.frames == len(x) and info.channels == 2
        audio, _ = load_audio(path)
        assert np.max(np.abs(audio - x)) < 1e-6


def test_info_fields_and_bit_depth(tmp_path):
    path = write(tmp_path, "m.wav", tone(16000, 1), 16000, "WAV", "PCM_24")
    d = read_info(path).to_dict()
    for key in ("path", "sample_rate", "channels", "frames", "duration_s", "subtype", "format", "bit_depth"):
        assert key in d
    assert d["bit_depth"] == 24 and d["frames"] == 8000 and d["duration_s"] == pytest.approx(0.5)
    assert read_info(write(tmp_path, "v.ogg", tone(16000, 1), 16000, "OGG", "VORBIS")).bit_depth is None


@pytest.mark.parametrize("fmt,subtype,suffix", [("WAV", "PCM_16", ".wav"), ("FLAC", "PCM_24", ".flac"),
                                                ("OGG", "VORBIS", ".ogg"), ("MP3", "MPEG_LAYER_III", ".mp3")])
def test_block_reads_equal_the_whole_read(tmp_path, fmt, subtype, suffix, rng):
    sr = 44100
    x = (0.3 * rng.standard_normal((sr, 2))).astype(np.float32)
    path = write(tmp_path, f"b{suffix}", x, sr, fmt, subtype)
    src = open_source(path)
    whole = src.read_all()
    pieces = np.concatenate([blk for _, blk in src.blocks(block_frames=7919)])
    np.testing.assert_array_equal(pieces, whole)
    if fmt in ("WAV", "FLAC"):  # exact seeking: a random slice equals the same slice of the whole
        np.testing.assert_array_equal(src.read(12345, 23456), whole[12345:23456])
    assert src.read(src.frames + 10, src.frames + 20).shape == (0, 2)
    src.close()


def test_real_speech_loads_with_its_metadata(shared_data):
    audio, info = load_audio(shared_data / "dfn" / "noisy_snr0.wav")
    assert info.sample_rate == 48000 and info.channels == 1 and audio.shape == (info.frames, 1)
    assert 0.01 < rms(audio) < 0.5


def test_array_source_and_resample_with_soxr():
    sr = 48000
    x = tone(sr, 2, 1.0)
    y = resample(x, sr, 16000)
    assert y.shape == (16000, 2) and y.dtype == np.float32
    # A 440 Hz tone stays 440 Hz and keeps its level; soxr compensates its delay.
    spec = np.abs(np.fft.rfft(y[:, 0]))
    assert np.argmax(spec) == 440
    assert rms(y[1000:-1000, 0]) == pytest.approx(rms(x[:, 0]), rel=0.01)
    assert resample(x, sr, sr) is not None and resample(x[:0], sr, 8000).shape == (0, 2)
    src = ArraySource(x[:, 0], sr)
    assert src.channels == 1 and src.read(10, 20).shape == (10, 1)


# ------------------------------------------------------------------------------------------------
# Bad input: each case gets an AudioFileError naming the file and saying what is wrong.
# ------------------------------------------------------------------------------------------------

def good_bytes(tmp_path, fmt, subtype, suffix, sr=16000, seconds=1.0):
    path = write(tmp_path, f"good{suffix}", tone(sr, 1, seconds), sr, fmt, subtype)
    return path.read_bytes()


def make(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_rejected(path, *fragments):
    before = sha256(path) if path.is_file() else None
    with pytest.raises(AudioFileError) as err:
        src = open_source(path)
        src.read_all()
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg
    if before is not None:
        assert sha256(path) == before
    return msg


def test_missing_empty_folder_and_non_regular(tmp_path):
    assert_rejected(tmp_path / "nope.wav", "no such file")
    assert_rejected(make(tmp_path, "empty.wav", b""), "empty file (0 bytes)")
    (tmp_path / "folder.wav").mkdir()
    assert_rejected(tmp_path / "folder.wav", "is a folder")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert_rejected(fifo, "not a regular file")


def test_not_audio_says_what_it_looks_like(tmp_path):
    assert_rejected(make(tmp_path, "notes.wav", b"These are my meeting notes, not audio.\n" * 20),
                    "not a recognised audio file", "text file")
    assert_rejected(make(tmp_path, "doc.flac", b"%PDF-1.7\n" + bytes(range(256)) * 4), "PDF")
    assert_rejected(make(tmp_path, "noise.mp3", bytes(np.random.default_rng(1).integers(0, 255, 4000, np.uint8)
                                                      .tolist()).replace(b"\xff", b"\x00")), "not an MP3 file")


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "locked.wav", tone(8000, 1), 8000)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            # root reads anything; make the open fail the way it does for everyone else.
            real_open = open

            def guarded_open(file, *args, **kwargs):
                if str(file) == str(path):
                    raise PermissionError(13, "Permission denied", str(file))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr("builtins.open", guarded_open)
        with pytest.raises(AudioFileError, match="permission denied"):
            read_info(path)
    finally:
        monkeypatch.undo()
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.parametrize("fmt,subtype,suffix", [("WAV", "PCM_16", ".wav"), ("AIFF", "PCM_16", ".aiff"),
                                                ("FLAC", "PCM_16", ".flac"), ("OGG", "VORBIS", ".ogg"),
                                                ("MP3", "MPEG_LAYER_III", ".mp3")])
def test_truncated_header(tmp_path, fmt, subtype, suffix):
    data = good_bytes(tmp_path, fmt, subtype, suffix)
    path = make(tmp_path, f"cut_header{suffix}", data[:20])
    msg = assert_rejected(path)
    expected = {"MP3": "MP3 without decodable audio frames"}.get(fmt, f"truncated {fmt.replace('OGG', 'Ogg')} header")
    assert expected in msg


@pytest.mark.parametrize("fmt,subtype,suffix,expected", [
    ("WAV", "PCM_16", ".wav", "truncated data: header declares 16000 frames, file holds"),
    ("WAV", "FLOAT", ".wav", "truncated data: header declares 16000 frames, file holds"),
    ("AIFF", "PCM_24", ".aiff", "truncated data: header declares 16000 frames, file holds"),
    ("FLAC", "PCM_16", ".flac", "the header promises 16000 frames"),
    ("OGG", "VORBIS", ".ogg", "truncated or corrupt Ogg stream"),
    ("MP3", "MPEG_LAYER_III", ".mp3", "the header promises"),
])
def test_truncated_data(tmp_path, fmt, subtype, suffix, expected):
    data = good_bytes(tmp_path, fmt, subtype, suffix)
    path = make(tmp_path, f"cut_data{suffix}", data[:len(data) // 2])
    assert_rejected(path, expected)


def test_zero_sample_rate_and_zero_channels_in_headers(tmp_path):
    wav = bytearray(good_bytes(tmp_path, "WAV", "PCM_16", ".wav"))
    zero_rate = bytearray(wav)
    zero_rate[24:28] = struct.pack("<I", 0)
    assert_rejected(make(tmp_path, "zero_rate.wav", bytes(zero_rate)), "invalid sample rate 0 Hz in the WAV header")
    zero_ch = bytearray(wav)
    zero_ch[22:24] = struct.pack("<H", 0)
    assert_rejected(make(tmp_path, "zero_ch.wav", bytes(zero_ch)), "invalid channel count 0 in the WAV header")
    aiff = bytearray(good_bytes(tmp_path, "AIFF", "PCM_16", ".aiff"))
    comm = aiff.index(b"COMM") + 8
    aiff[comm + 8:comm + 18] = bytes(10)  # 80-bit extended sample rate = 0
    assert_rejected(make(tmp_path, "zero_rate.aiff", bytes(aiff)), "invalid sample rate 0 Hz in the AIFF header")


def test_zero_frame_files(tmp_path):
    for fmt, subtype, suffix in (("WAV", "PCM_16", ".wav"), ("AIFF", "PCM_16", ".aiff"),
                                 ("WAV", "FLOAT", ".wav")):
        path = write(tmp_path, f"zero_{subtype}{suffix}", np.zeros((0, 1), np.float32), 16000, fmt, subtype)
        assert_rejected(path, "contains no audio frames")
    # libsndfile writes nothing at all for a FLAC stream without frames.
    path = write(tmp_path, "zero.flac", np.zeros((0, 1), np.float32), 16000, "FLAC", "PCM_16")
    assert_rejected(path, "empty file (0 bytes)")


def test_mp3_with_only_an_id3_tag(tmp_path):
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10
    assert_rejected(make(tmp_path, "tag_only.mp3", tag), "MP3 without decodable audio frames")


def test_mp3_errors_do_not_print_decoder_noise(tmp_path, capfd):
    # libmpg123 writes resync warnings to the C stderr; the CLI promises one error line only.
    data = good_bytes(tmp_path, "MP3", "MPEG_LAYER_III", ".mp3")
    for i, cut in enumerate((len(data) // 2, 300)):
        with pytest.raises(AudioFileError):
            read_info(make(tmp_path, f"c{i}.mp3", data[:cut]))
    assert capfd.readouterr().err == ""


def test_nonfinite_samples_are_reported_and_repaired_only_on_request(tmp_path):
    x = tone(16000, 2)
    x[100, 0] = np.nan
    x[200, 1] = np.inf
    x[300, 1] = -np.inf
    path = write(tmp_path, "nan.wav", x, 16000, "WAV", "FLOAT")
    before = sha256(path)
    with pytest.raises(NonFiniteAudioError) as err:
        open_source(path)
    assert err.value.nan_count == 1 and err.value.inf_count == 2 and err.value.first_frame == 100
    assert "--repair" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(NonFiniteAudioError):
        load_audio(path)
    assert not scan_nonfinite(FileSource(path)).clean
    audio, _ = load_audio(path, repair=True)
    assert np.all(np.isfinite(audio)) and audio[100, 0] == 0 and audio[200, 1] == 0
    np.testing.assert_array_equal(audio[400:], x[400:])
    assert sha256(path) == before


def test_wav_with_an_undecodable_encoding_and_header_only_wav(tmp_path):
    wav = bytearray(good_bytes(tmp_path, "WAV", "PCM_16", ".wav"))
    mp3_in_wav = bytearray(wav)
    mp3_in_wav[20:22] = struct.pack("<H", 0x0055)
    assert_rejected(make(tmp_path, "mp3inside.wav", bytes(mp3_in_wav)),
                    "unsupported WAV encoding: format tag 0x0055 (MPEG Layer III")
    assert_rejected(make(tmp_path, "header_only.wav", bytes(wav[:44])), "contains no audio frames")


def test_write_audio_atomic_never_overwrites_sources_and_keeps_normal_permissions(tmp_path):
    from workbench.core.audio.audio_io import write_audio_atomic
    from workbench.core.errors import WorkbenchError

    x = tone(16000, 2)
    out = write_audio_atomic(tmp_path / "o.flac", x, 16000, subtype="PCM_24")
    np.testing.assert_allclose(load_audio(out)[0], x, atol=1e-6)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(WorkbenchError, match="already exists"):
        write_audio_atomic(out, x, 16000)
    with pytest.raises(WorkbenchError, match="refusing to write over the input"):
        write_audio_atomic(out, x, 16000, overwrite=True, protect=(out,))
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(WorkbenchError, match="NaN or Inf"):
        write_audio_atomic(tmp_path / "n.wav", bad, 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.flac"]  # no temporary files left behind
