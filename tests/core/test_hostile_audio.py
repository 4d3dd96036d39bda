"""Hostile audio headers and names end in one clear line.

On the old code: an AIFF with an Inf/NaN 80-bit rate raised OverflowError, an AIFF claiming 800 MHz made
``enhance`` allocate gigabytes, an Ogg whose last granule claims 1e12 frames was accepted (then a TiB
allocation), a decoder crash in the tail probe took the process down, a 1000-channel file decoded every
channel once per channel, and a name with non-UTF-8 bytes was refused as "cannot be decoded".
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import workbench.core.audio.audio_io as audio_io
from workbench.cli import main
from workbench.core.audio.audio_io import FileSource, read_info
from workbench.core.errors import AudioFileError


def _noise(n=16000, ch=1, seed=0):
    x = 0.2 * np.random.default_rng(seed).standard_normal((n, ch)).astype(np.float32)
    return x[:, 0] if ch == 1 else x


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], err[0]
    return err[0]


# ------------------------------------------------------------------------------------ Ogg pages
def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_pages(data: bytes) -> list[tuple[int, int]]:
    pages, pos = [], 0
    while pos < len(data):
        assert data[pos:pos + 4] == b"OggS"
        nseg = data[pos + 26]
        length = 27 + nseg + sum(data[pos + 27:pos + 27 + nseg])
        pages.append((pos, length))
        pos += length
    return pages


def _fix_crc(data: bytearray, pos: int, length: int) -> None:
    page = bytearray(data[pos:pos + length])
    page[22:26] = b"\0\0\0\0"
    data[pos + 22:pos + 26] = struct.pack("<I", _ogg_crc(bytes(page)))


def _ogg(tmp_path, name="x.ogg", seconds=2):
    path = tmp_path / name
    sf.write(path, _noise(16000 * seconds), 16000, format="OGG", subtype="VORBIS")
    return path


@pytest.mark.parametrize("granule", [10 ** 12, 2 ** 63 - 1])
def test_ogg_last_granule_claiming_absurd_length_is_refused(tmp_path, capsys, granule):
    path = _ogg(tmp_path)
    data = bytearray(path.read_bytes())
    pos, length = _ogg_pages(data)[-1]
    data[pos + 6:pos + 14] = struct.pack("<q", granule)
    _fix_crc(data, pos, length)
    path.write_bytes(bytes(data))
    with pytest.raises(AudioFileError):
        read_info(path)
    assert main(["enhance", str(path), "-m", "wiener", "-o", str(tmp_path / "o.wav"), "--quiet"]) == 2
    _one_error_line(capsys, str(path))
    assert not (tmp_path / "o.wav").exists()


def test_ogg_with_corrupted_first_page_and_valid_crc_never_crashes(tmp_path):
    path = _ogg(tmp_path, seconds=4)
    base = path.read_bytes()
    pos, length = _ogg_pages(base)[0]
    body = pos + 27 + base[pos + 26]
    rng = np.random.default_rng(5)
    for k in range(6):
        data = bytearray(base)
        for i in rng.integers(body, pos + length, size=3):
            data[int(i)] = int(rng.integers(0, 256))
        _fix_crc(data, pos, length)
        bad = tmp_path / f"bad{k}.ogg"
        bad.write_bytes(bytes(data))
        for cmd in (["info", str(bad)], ["analyze", str(bad), "--json", str(tmp_path / f"a{k}.json")]):
            res = subprocess.run([sys.executable, "-m", "workbench", *cmd], capture_output=True, text=True,
                                 timeout=120)
            assert res.returncode in (0, 2), (cmd, res.returncode, res.stderr)
            if res.returncode == 2:
                assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_a_decoder_crash_in_the_tail_probe_is_an_error_not_a_crash(tmp_path, monkeypatch):
    path = _ogg(tmp_path)
    # What libsndfile did with the hostile Ogg of the report: die inside the seek of the probe.
    monkeypatch.setattr(audio_io, "_TAIL_PROBE_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    audio_io._PROBE_CACHE.clear()
    with pytest.raises(AudioFileError, match="decoder crashed \\(SIGSEGV\\)"):
        read_info(path)
    monkeypatch.setattr(audio_io, "_TAIL_PROBE_CHILD", "import time; time.sleep(60)")
    monkeypatch.setattr(audio_io, "TAIL_PROBE_TIMEOUT_S", 1.0)
    audio_io._PROBE_CACHE.clear()
    with pytest.raises(AudioFileError, match="did not finish"):
        read_info(path)
    audio_io._PROBE_CACHE.clear()


def test_mp3_with_bogus_headers_and_concatenated_streams_gives_no_traceback(tmp_path):
    good = tmp_path / "g.mp3"
    sf.write(good, _noise(48000), 16000, format="MP3", subtype="MPEG_LAYER_III")
    b = good.read_bytes()
    cases = {"id3": b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b, "concat": b + b + b}
    k = b.find(b"Xing")
    if k >= 0:
        for v in (1, 0xFFFFFFFF):
            d = bytearray(b)
            d[k + 8:k + 12] = struct.pack(">I", v)
            cases[f"xing{v}"] = bytes(d)
    for name, data in cases.items():
        p = tmp_path / f"{name}.mp3"
        p.write_bytes(data)
        res = subprocess.run([sys.executable, "-m", "workbench", "info", str(p)], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode in (0, 2) and "Traceback" not in res.stderr, (name, res.stderr)


# ------------------------------------------------------------------------------------ AIFF / WAV headers
def _aiff_with_rate(tmp_path, raw_rate: bytes, name="x.aiff"):
    path = tmp_path / name
    sf.write(path, _noise(4000), 16000, format="AIFF", subtype="PCM_16")
    data = bytearray(path.read_bytes())
    comm = data.find(b"COMM")
    data[comm + 16:comm + 26] = raw_rate
    path.write_bytes(bytes(data))
    return path


def _extended(value: float) -> bytes:
    mantissa, exponent = np.frexp(value)  # value = m * 2**e, 0.5 <= m < 1
    return struct.pack(">HQ", int(exponent) - 1 + 16383, int(mantissa * 2 ** 64))


@pytest.mark.parametrize("raw,label", [
    (b"\x7f\xff" + b"\x80" + bytes(7), "Inf"),
    (b"\xff" * 10, "NaN 0xFF"),
    (b"\x7f\xfe" + b"\xff" * 8, "beyond a double"),
    (_extended(8e8), "800 MHz"),
    (_extended(0.5), "0.5 Hz"),
])
def test_aiff_with_hostile_rate_is_one_clear_line(tmp_path, capsys, raw, label):
    path = _aiff_with_rate(tmp_path, raw)
    assert main(["info", str(path)]) == 2, label
    _one_error_line(capsys, str(path), "invalid sample rate")
    assert main(["enhance", str(path), "-m", "wiener", "-o", str(tmp_path / "o.wav"), "--quiet"]) == 2
    _one_error_line(capsys, "invalid sample rate")


def test_wav_claiming_too_many_channels_is_refused(tmp_path, capsys):
    path = tmp_path / "x.wav"
    sf.write(path, _noise(4000), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    fmt = data.find(b"fmt ")
    data[fmt + 10:fmt + 12] = struct.pack("<H", 5000)
    path.write_bytes(bytes(data))
    assert main(["info", str(path)]) == 2
    _one_error_line(capsys, "channel count 5000")


def test_many_channels_are_decoded_once_not_once_per_channel(tmp_path, monkeypatch):
    path = tmp_path / "many.wav"
    sf.write(path, _noise(4000, ch=1000), 8000, subtype="PCM_16")
    calls = []
    real_read = sf.SoundFile.read

    def counting_read(self, *a, **k):
        calls.append(1)
        return real_read(self, *a, **k)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    out = tmp_path / "o.wav"
    assert main(["enhance", str(path), "-m", "wiener", "-o", str(out), "--quiet"]) == 0
    assert sf.info(out).channels == 1000
    assert len(calls) < 50, f"{len(calls)} decodes for 1000 channels"


# ------------------------------------------------------------------------------------ names and encodings
def test_file_names_that_are_not_utf8_work(tmp_path, capsys):
    folder = os.fsencode(tmp_path)
    src = folder + b"/bad\xff.wav"
    sf.write(src, _noise(8000), 16000)
    src_name = os.fsdecode(src)
    assert read_info(src_name).frames == 8000
    out = os.fsdecode(folder + b"/out\xfe.wav")
    assert main(["enhance", src_name, "-m", "wiener", "-o", out, "--quiet"]) == 0, capsys.readouterr().err
    assert sf.info(os.fsencode(out)).frames == 8000
    assert FileSource(src_name).read(0, 10).shape == (10, 1)


def test_info_with_an_ascii_terminal_and_odd_names(tmp_path):
    folder = os.fsencode(tmp_path)
    for name in (b"caf\xc3\xa9.wav", b"bad\xff.wav"):
        sf.write(folder + b"/" + name, _noise(800), 8000)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    res = subprocess.run([sys.executable, "-m", "workbench", "info", os.fsdecode(folder + b"/caf\xc3\xa9.wav"),
                          os.fsdecode(folder + b"/bad\xff.wav")], capture_output=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert b"Traceback" not in res.stderr and res.stdout.count(b"frames:") == 2
