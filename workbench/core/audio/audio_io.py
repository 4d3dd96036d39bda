"""Audio file I/O: validated opening, block reads, soxr resampling and atomic writes.

Everything here works on float32 arrays shaped ``(frames, channels)``; mono is ``(frames, 1)``.
Files are only ever read; the one writer (:func:`write_audio_atomic`) refuses to replace an existing
file unless asked and never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import stat
import struct
import sys
import threading
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioFileError, NonFiniteAudioError, WorkbenchError
from .formats import BY_NAME, EXPORT_FORMATS, FORMATS, output_format_for
from .outputs import check_output_target, is_same_file

#: Frames decoded per block when a whole file is scanned or streamed.
BLOCK_FRAMES = 1 << 18

_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}

#: Sample rates a file may declare, Hz; anything else is a corrupt or hostile header.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1, 1_000_000
#: Most channels a file may hold (libsndfile's own limit).
MAX_CHANNELS = 1024
#: Most frames per byte of file a compressed stream can plausibly decode to (digital silence in Vorbis
#: or Opus at a few hundred bytes per second); a header claiming more is refused before any allocation.
MAX_FRAMES_PER_BYTE = 4096


@dataclass(frozen=True)
class AudioInfo:
    """Metadata of an audio file or buffer.

    Attributes:
        path: the file (``None`` for audio made in memory).
        sample_rate: samples per second per channel, Hz.
        channels: channel count.
        frames: samples per channel.
        subtype: libsndfile subtype, e.g. ``PCM_16``, ``FLOAT``, ``MPEG_LAYER_III``.
        format: container, e.g. ``WAV``, ``FLAC``, ``OGG``, ``MP3``, ``AIFF``.
    """

    path: str | None
    sample_rate: int
    channels: int
    frames: int
    subtype: str
    format: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def bit_depth(self) -> int | None:
        """Bits per sample for PCM/float subtypes; ``None`` for compressed formats."""
        table = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
                 "ULAW": 8, "ALAW": 8}
        return table.get(self.subtype)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        d["bit_depth"] = self.bit_depth
        return d


@dataclass(frozen=True)
class _HeaderFacts:
    """What we parse from a WAV/AIFF header ourselves, to name problems libsndfile hides or words vaguely.

    ``declared_frames`` is what the header promises (``None`` when unknown, e.g. streaming writers that
    leave the size 0 or 0xFFFFFFFF); ``available_frames`` is what the file's bytes can actually hold.
    """

    container: str
    channels: int | None = None
    sample_rate: float | None = None
    declared_frames: int | None = None
    available_frames: int | None = None
    wav_format_tag: int | None = None


_FMT_MIN_BYTES = 16

#: WAVE format tags libsndfile decodes (PCM, ADPCM variants, float, A-law, mu-law, GSM, G.72x, extensible).
_WAV_DECODABLE_TAGS = {0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031, 0x0040, 0x0064, 0x0065, 0xFFFE}
#: Names of common tags libsndfile does not decode, for the error message.
_WAV_TAG_NAMES = {0x0050: "MPEG-1 audio", 0x0055: "MPEG Layer III, i.e. MP3", 0x00FF: "AAC", 0x0161: "WMA",
                  0x1610: "AAC (HE)", 0x2000: "AC-3", 0x2001: "DTS"}


def _parse_wav_header(fh, size: int) -> _HeaderFacts:
    head = fh.read(12)
    little = head[:4] in (b"RIFF", b"RF64")
    endian = "<" if little else ">"
    facts = {"container": "WAV"}
    block_align = 0
    rf64_data_bytes = None  # RF64 keeps the real data size in its ds64 chunk (the data chunk says 0xFFFFFFFF)
    while True:
        chunk = fh.read(8)
        if len(chunk) < 8:
            break
        cid, csize = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
        if cid == b"ds64" and head[:4] == b"RF64":
            body = fh.read(min(csize, 28))
            if len(body) >= 16:
                rf64_data_bytes = struct.unpack("<Q", body[8:16])[0]
            fh.seek(csize - len(body) + (csize & 1), os.SEEK_CUR)
            continue
        if cid == b"fmt ":
            body = fh.read(min(csize, 40))
            if len(body) >= _FMT_MIN_BYTES:
                tag, ch, rate, _byte_rate, block_align, _bits = struct.unpack(endian + "HHIIHH", body[:16])
                facts.update(channels=ch, sample_rate=float(rate), wav_format_tag=tag)
            fh.seek(csize - len(body) + (csize & 1), os.SEEK_CUR)
            continue
        if cid == b"data":
            offset = fh.tell()
            if block_align > 0:
                facts["available_frames"] = max(size - offset, 0) // block_align
                # 0 and 0xFFFFFFFF are what streaming writers leave for "size unknown"; not a truncation.
                if csize not in (0, 0xFFFFFFFF) and head[:4] != b"RF64":
                    facts["declared_frames"] = csize // block_align
                elif head[:4] == b"RF64" and rf64_data_bytes not in (None, 0, 0xFFFFFFFFFFFFFFFF):
                    # The same check as WAV's, on the 64-bit size: a header may not promise more than is there.
                    facts["declared_frames"] = (csize if csize != 0xFFFFFFFF else rf64_data_bytes) // block_align
            break
        fh.seek(csize + (csize & 1), os.SEEK_CUR)
    return _HeaderFacts(**facts)


def _ieee_extended(raw: bytes) -> float:
    """Decode the 80-bit big-endian IEEE 754 extended float AIFF uses for its sample rate.

    ``value = mantissa * 2**(exponent - 16383 - 63)``; the all-ones exponent encodes Inf/NaN, and values
    beyond the range of a double come back as ``inf`` (the caller refuses rates outside its range)."""
    exp_sign, mantissa = struct.unpack(">HQ", raw)
    exponent = exp_sign & 0x7FFF
    sign = -1.0 if exp_sign & 0x8000 else 1.0
    if exponent == 0x7FFF:
        return float("nan") if mantissa & ((1 << 63) - 1) else sign * float("inf")
    if mantissa == 0:
        return 0.0
    try:
        value = math.ldexp(float(mantissa), exponent - 16383 - 63)
    except OverflowError:
        value = float("inf")
    return sign * value


def _parse_aiff_header(fh, size: int) -> _HeaderFacts:
    head = fh.read(12)
    compressed = head[8:12] == b"AIFC"
    facts = {"container": "AIFF"}
    frame_bytes = 0
    while True:
        chunk = fh.read(8)
        if len(chunk) < 8:
            break
        cid, csize = chunk[:4], struct.unpack(">I", chunk[4:])[0]
        if cid == b"COMM":
            body = fh.read(min(csize, 64))
            if len(body) >= 18:
                ch, frames, bits = struct.unpack(">hIh", body[:8])
                facts.update(channels=ch, sample_rate=_ieee_extended(body[8:18]), declared_frames=frames)
                codec = body[18:22] if compressed and len(body) >= 22 else b"NONE"
                if codec in (b"NONE", b"sowt", b"twos", b"fl32", b"FL32", b"fl64", b"FL64", b"in24", b"in32"):
                    frame_bytes = max(ch, 0) * ((bits + 7) // 8)
            fh.seek(csize - len(body) + (csize & 1), os.SEEK_CUR)
            continue
        if cid == b"SSND":
            start = fh.tell() + 8  # offset and blockSize fields precede the samples
            if frame_bytes > 0:
                facts["available_frames"] = max(min(size, start - 8 + csize) - start, 0) // frame_bytes
            break
        fh.seek(csize + (csize & 1), os.SEEK_CUR)
    if frame_bytes == 0:
        facts.pop("declared_frames", None)
    return _HeaderFacts(**facts)


def _sniff_container(head: bytes, suffix: str) -> str | None:
    """Name the container the first bytes announce (``None`` when they announce no audio format)."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if suffix == ".mp3":
        return "MP3?"
    return None


def _header_facts(path: Path, size: int) -> _HeaderFacts | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            fh.seek(0)
            kind = _sniff_container(head, path.suffix.lower())
            if kind == "WAV":
                return _parse_wav_header(fh, size)
            if kind == "AIFF":
                return _parse_aiff_header(fh, size)
            return _HeaderFacts(container=kind) if kind else None
    except (OSError, struct.error):
        return None


_NATIVE_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr(enabled: bool):
    """Silence file descriptor 2 while libsndfile's MP3 decoder (libmpg123) runs.

    libmpg123 prints resync notes and warnings straight to the C ``stderr``; we report every problem
    ourselves as one clear line, so its chatter would only break the "one line per error" promise of the
    CLI. Python-level writes from other threads during the call are also swallowed, which is why this is
    enabled only for MP3 files and only around the native calls.
    """
    if not enabled:
        yield
        return
    with _NATIVE_STDERR_LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _is_mp3(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return (_sniff_container(head, path.suffix.lower()) or "").startswith("MP3")


#: Decoded at the end of compressed files to prove the promised length is really there.
_TAIL_PROBE_FRAMES = 4096
#: Containers whose tail probe runs in a short-lived child process: their decoders (libvorbis through
#: libsndfile's Ogg seeking, libmpg123) have crashed on hostile input, and a crash there must end in an
#: error message, not take the program down. FLAC and PCM are probed in process (no child cost).
_ISOLATED_PROBE_FORMATS = {"OGG", "MP3"}
#: Seconds a child probe may take (seeking in a long MP3 scans it) before it is stopped and reported.
TAIL_PROBE_TIMEOUT_S = 60.0

#: The child's program: open with libsndfile through ctypes (no numpy or soundfile import, so the child
#: starts in tens of milliseconds), seek near the end, decode, print the frames that came back or the
#: error. argv: path, first frame, frames wanted, libsndfile's path.
_TAIL_PROBE_CHILD = """
import ctypes, os, sys
class Info(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]
lib = ctypes.CDLL(sys.argv[4])
lib.sf_open.restype = ctypes.c_void_p
lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(Info)]
lib.sf_strerror.restype = ctypes.c_char_p
lib.sf_strerror.argtypes = [ctypes.c_void_p]
lib.sf_seek.restype = ctypes.c_int64
lib.sf_seek.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
lib.sf_readf_float.restype = ctypes.c_int64
lib.sf_readf_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
lib.sf_close.argtypes = [ctypes.c_void_p]
def say(text):
    sys.stdout.write(text + "\\n")
    sys.exit(0)
info = Info()
handle = lib.sf_open(os.fsencode(sys.argv[1]), 0x10, ctypes.byref(info))
if not handle:
    say("ERR " + (lib.sf_strerror(None) or b"cannot open").decode("utf-8", "replace"))
start, want = int(sys.argv[2]), int(sys.argv[3])
if lib.sf_seek(handle, start, 0) < 0:
    say("ERR " + (lib.sf_strerror(handle) or b"seek failed").decode("utf-8", "replace"))
buf = (ctypes.c_float * (max(want, 1) * max(info.channels, 1)))()
got = lib.sf_readf_float(handle, buf, want)
lib.sf_close(handle)
say("OK %d" % max(got, 0))
"""


def _libsndfile_path() -> str | None:
    """The libsndfile soundfile loaded (its bundled copy, else the system's), for the probe child."""
    for name in ("_full_path", "_libname", "_explicit_libname"):
        value = getattr(sf, name, None)
        if isinstance(value, str) and value:
            return value
    import ctypes.util

    return ctypes.util.find_library("sndfile")


def _tail_problem(info, start: int, got: int | None, error: str | None) -> str | None:
    if error is not None:
        return (f"truncated or corrupt data: the header promises {int(info.frames)} frames but decoding "
                f"fails before frame {start} ({_strip_prefix(error)})")
    want = int(info.frames) - start
    if got is not None and got < want:
        return (f"truncated data: the header promises {int(info.frames)} frames but the stream ends "
                f"before frame {start + got}")
    return None


def _probe_tail_in_process(path: Path, info, quiet: bool) -> str | None:
    start = max(int(info.frames) - _TAIL_PROBE_FRAMES, 0)
    want = int(info.frames) - start
    try:
        with _quiet_native_stderr(quiet), sf.SoundFile(native_path(path)) as fh:
            fh.seek(start)
            got = fh.read(want, dtype="float32", always_2d=True).shape[0]
    except (sf.LibsndfileError, RuntimeError, ValueError, OverflowError) as exc:
        return _tail_problem(info, start, None, str(exc))
    return _tail_problem(info, start, got, None)


def _probe_tail_isolated(path: Path, info, fmt: str) -> str | None:
    """The tail probe in a child process; a crash or hang of the decoder becomes a problem sentence."""
    import signal
    import subprocess

    start = max(int(info.frames) - _TAIL_PROBE_FRAMES, 0)
    want = int(info.frames) - start
    lib = _libsndfile_path()
    if lib is None:
        return _probe_tail_in_process(path, info, quiet=fmt == "MP3")
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _TAIL_PROBE_CHILD, native_path(path), str(start),
                               str(want), lib], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=TAIL_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return (f"the {fmt} decoder did not finish reading the end of the stream within "
                f"{TAIL_PROBE_TIMEOUT_S:.0f} s; the file is corrupt or hostile")
    except OSError:
        return _probe_tail_in_process(path, info, quiet=fmt == "MP3")  # no child possible: probe here
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return (f"corrupt {fmt} stream: the decoder crashed ({name}) while reading the end of the stream; "
                "the file cannot be opened safely")
    line = done.stdout.decode("utf-8", "replace").strip()
    if line.startswith("OK "):
        return _tail_problem(info, start, int(line[3:]), None)
    if line.startswith("ERR "):
        return _tail_problem(info, start, None, line[4:])
    return f"corrupt {fmt} stream: the decoder stopped unexpectedly (exit status {done.returncode})"


def _probe_tail(path: Path, info: sf._SoundFileInfo, quiet: bool, fmt: str = "") -> str | None:
    """Decode the last frames of a compressed file; return a problem sentence when they are missing.

    FLAC, Ogg and MP3 headers state a length (STREAMINFO, granule positions, the Xing/LAME tag) that a
    cut-off file no longer holds. libsndfile opens such a file happily and fails or comes up short only
    when decoding reaches the cut, so we seek there now, at the cost of decoding one short block. For
    the formats in :data:`_ISOLATED_PROBE_FORMATS` this runs in a child process (tens of ms), so a
    decoder that crashes on a hostile file cannot take the program or the window down.
    """
    if fmt in _ISOLATED_PROBE_FORMATS:
        # One child per file version: the same file is validated several times while it is opened.
        try:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, int(info.frames))
        except OSError:
            key = None
        with _PROBE_CACHE_LOCK:
            if key is not None and key in _PROBE_CACHE:
                return _PROBE_CACHE[key]
        problem = _probe_tail_isolated(path, info, fmt)
        if key is not None:
            with _PROBE_CACHE_LOCK:
                if len(_PROBE_CACHE) > 256:
                    _PROBE_CACHE.clear()
                _PROBE_CACHE[key] = problem
        return problem
    return _probe_tail_in_process(path, info, quiet)


_PROBE_CACHE: dict[tuple, str | None] = {}
_PROBE_CACHE_LOCK = threading.Lock()


def read_info(path: str | os.PathLike) -> AudioInfo:
    """Open ``path`` far enough to validate its header and return its metadata.

    Checks, each with its own message: missing, folder, not a regular file, unreadable, empty, not audio
    (with a hint at what it is), truncated or corrupt header, zero sample rate or channel count, no
    frames, WAV/AIFF data shorter than the header declares, compressed streams (FLAC/Ogg/MP3) that end
    before the length their header promises.

    Raises:
        AudioFileError: naming the file and the problem.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioFileError(path, "no such file") from None
    except OSError as exc:
        raise AudioFileError(path, f"cannot be read ({exc.strerror})") from None
    if path.is_dir():
        raise AudioFileError(path, "is a folder, not an audio file")
    if not path.is_file():
        raise AudioFileError(path, "is not a regular file (a device, pipe or socket)")
    size = st.st_size
    if size == 0:
        raise AudioFileError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise AudioFileError(path, "permission denied (the file cannot be opened for reading)") from None
    except OSError as exc:
        raise AudioFileError(path, f"cannot be read ({exc.strerror})") from None
    facts = _header_facts(path, size)
    if facts is not None:
        # Checked before libsndfile, whose words for these cases are "SF_INFO struct incomplete" and such.
        if facts.sample_rate is not None:
            _check_rate(path, facts.sample_rate, f"the {facts.container} header")
        if facts.channels is not None:
            _check_channels(path, facts.channels, f"the {facts.container} header")
    quiet = facts is not None and facts.container.startswith("MP3")
    try:
        with _quiet_native_stderr(quiet):
            info = sf.info(native_path(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError) as exc:
        raise AudioFileError(path, _describe_libsndfile_error(path, exc, facts, size)) from None
    _check_rate(path, info.samplerate, "header")
    _check_channels(path, info.channels, "header")
    if info.frames <= 0:
        raise AudioFileError(path, "contains no audio frames (0 samples after the header)")
    if info.frames > size * MAX_FRAMES_PER_BYTE:
        raise AudioFileError(path, f"the header claims {int(info.frames)} frames "
                                   f"({int(info.frames) / info.samplerate:.3g} s), more than a {size}-byte file "
                                   "can hold; the stream is corrupt")
    result = AudioInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames),
                       str(info.subtype), str(info.format))
    if facts is not None and facts.declared_frames is not None and facts.available_frames is not None:
        if facts.available_frames < facts.declared_frames:
            raise AudioFileError(
                path,
                f"truncated data: header declares {facts.declared_frames} frames, "
                f"file holds {facts.available_frames}",
            )
    if result.format in ("FLAC", "OGG", "MP3"):
        problem = _probe_tail(path, info, quiet=result.format == "MP3", fmt=result.format)
        if problem:
            raise AudioFileError(path, problem)
    return result


def _check_rate(path: Path, rate: float, where: str) -> None:
    if not (math.isfinite(rate) and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        shown = f"{rate:g}" if math.isfinite(rate) else str(rate)
        raise AudioFileError(path, f"invalid sample rate {shown} Hz in {where} (a file may declare "
                                   f"{MIN_SAMPLE_RATE} Hz to {MAX_SAMPLE_RATE // 1_000_000} MHz)")


def _check_channels(path: Path, channels: int, where: str) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFileError(path, f"invalid channel count {channels} in {where} (1 to {MAX_CHANNELS} supported)")


def native_path(path: str | os.PathLike) -> bytes:
    """``path`` as the bytes the OS uses, for libsndfile: file names that are not valid UTF-8
    (``bad\\xff.wav``) reach the C library unchanged instead of failing to encode."""
    return os.fsencode(path)


def _looks_like(head: bytes) -> str:
    """A short guess at what a non-audio file is, for the error message."""
    for magic, what in ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"),
                        (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                        (b"GIF8", "a GIF image"), (b"\x7fELF", "a program")):
        if head.startswith(magic):
            return f"; it looks like {what}"
    if head.lstrip()[:1] in (b"<", b"{", b"["):
        return "; it looks like a text/markup file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "; it looks like a text file"
    return ""


def _describe_libsndfile_error(path: Path, exc: Exception, facts: _HeaderFacts | None = None,
                               size: int | None = None) -> str:
    text = _strip_prefix(str(exc))
    low = text.lower()
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        head = b""
    kind = facts.container if facts is not None else _sniff_container(head, path.suffix.lower())
    if kind == "MP3?":
        return ("not an MP3 file: no MPEG audio frame or ID3 tag at the start"
                f"{_looks_like(head)}")
    if kind == "MP3":
        # libsndfile words every MPEG failure as "File does not exist or is not a regular file".
        return "MP3 without decodable audio frames (empty, truncated or corrupt MPEG stream)"
    if kind is None:
        return f"not a recognised audio file ({text}){_looks_like(head)}"
    tag = facts.wav_format_tag if facts is not None else None
    if tag is not None and tag not in _WAV_DECODABLE_TAGS:
        name = _WAV_TAG_NAMES.get(tag, "an encoding libsndfile cannot decode")
        return f"unsupported WAV encoding: format tag 0x{tag:04X} ({name}); convert it to PCM WAV or FLAC first"
    if size is not None and size < 64:
        return f"truncated {kind} header: the file is only {size} bytes ({text})"
    if kind == "Ogg" and "malformed" in low:
        # libsndfile reads the last Ogg page to learn the length, so a cut-off stream fails right at open.
        return f"truncated or corrupt Ogg stream ({text})"
    if any(w in low for w in ("malformed", "unimplemented", "incomplete", "unspecified", "not recognised",
                              "bad", "zero", "short")):
        return f"truncated or corrupt {kind} header ({text})"
    return f"{kind} file that cannot be decoded ({text})"


def _strip_prefix(text: str) -> str:
    # libsndfile messages start with "Error opening '<path>': "; the path is already in our message.
    if ": " in text and text.startswith("Error opening"):
        text = text.split(": ", 1)[1]
    return text.strip().rstrip(".")


class AudioSource:
    """Random access to audio as float32 ``(frames, channels)`` blocks.

    Subclasses hold the samples on disk (:class:`FileSource`) or in memory (:class:`ArraySource`).
    ``read`` is safe to call from several threads.
    """

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return frames ``[start, stop)`` clipped to the source, shape ``(n, channels)``, float32."""
        raise NotImplementedError

    def read_all(self) -> np.ndarray:
        return self.read(0, self.frames)

    def read_scaled(self, start: int, stop: int) -> tuple[np.ndarray, float]:
        """Frames ``[start, stop)`` as ``(samples, scale)`` where ``samples * scale`` equals :meth:`read`'s
        float32 values exactly. Integer PCM may come back as stored, as integers (decoding to float costs
        several times more than reading, e.g. for a min/max pass over an hour); the base class returns
        ``(read(start, stop), 1.0)``."""
        return self.read(start, stop), 1.0

    def blocks(self, block_frames: int = BLOCK_FRAMES, start: int = 0, stop: int | None = None
               ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_frame, block)`` pairs covering ``[start, stop)`` in order."""
        stop = self.frames if stop is None else min(stop, self.frames)
        pos = max(start, 0)
        while pos < stop:
            end = min(pos + block_frames, stop)
            yield pos, self.read(pos, end)
            pos = end


class ArraySource(AudioSource):
    """Audio held in memory. ``audio`` is ``(frames,)`` or ``(frames, channels)``."""

    def __init__(self, audio: np.ndarray, sample_rate: int):
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        if audio.ndim != 2:
            raise ValueError(f"audio must be (frames,) or (frames, channels), got shape {audio.shape}")
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.audio = audio
        self.sample_rate = int(sample_rate)
        self.channels = audio.shape[1]
        self.frames = audio.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, 0), min(stop, self.frames)
        if stop <= start:
            return np.zeros((0, self.channels), np.float32)
        return self.audio[start:stop]


class FileSource(AudioSource):
    """Audio read from a file on demand, block by block; the file is never held whole in memory."""

    def __init__(self, path: str | os.PathLike, info: AudioInfo | None = None, repair: bool = False):
        self.path = Path(path)
        self.info = info or read_info(self.path)
        self.sample_rate = self.info.sample_rate
        self.channels = self.info.channels
        self.frames = self.info.frames
        self.repair = repair
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._file: sf.SoundFile | None = None
        self._quiet = self.info.format == "MP3"

    def _handle(self) -> sf.SoundFile:
        if self._file is None or self._file.closed:
            try:
                with _quiet_native_stderr(self._quiet):
                    self._file = sf.SoundFile(native_path(self.path), "r")
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioFileError(self.path, _describe_libsndfile_error(self.path, exc)) from None
        return self._file

    #: Recently decoded blocks kept for multichannel files: the engine runs the channels side by side and
    #: each reads the same block in turn; without this every channel would decode every channel again
    #: (1000 channels: 1000 passes). A few blocks suffice, so a long file's reads never fill the cap.
    cache_bytes = 256 << 20
    cache_blocks = 4

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)``; for multichannel files recent blocks come from a small cache and are
        returned read-only (copy before modifying)."""
        start, stop = max(start, 0), min(stop, self.frames)
        if stop <= start:
            return np.zeros((0, self.channels), np.float32)
        if self.channels > 1:
            with self._lock:
                hit = self._cache.get((start, stop))
            if hit is not None:
                return hit
        data = self._decode(start, stop)
        if self.channels > 1 and data.nbytes <= self.cache_bytes:
            data.setflags(write=False)
            with self._lock:
                self._cache[(start, stop)] = data
                while (len(self._cache) > self.cache_blocks
                       or sum(a.nbytes for a in self._cache.values()) > self.cache_bytes):
                    self._cache.pop(next(iter(self._cache)))
        return data

    #: Integer subtypes read as integers by :meth:`read_scaled`: dtype and the scale that gives libsndfile's
    #: float values (16-bit ``x / 2**15``; 24-bit samples arrive in the top bits of an int32, ``x / 2**31``;
    #: both exact in float32).
    _SCALED_SUBTYPES = {"PCM_16": ("int16", 2.0 ** -15), "PCM_24": ("int32", 2.0 ** -31)}

    def read_scaled(self, start: int, stop: int) -> tuple[np.ndarray, float]:
        stored = self._SCALED_SUBTYPES.get(self.info.subtype)
        if stored is None:
            return self.read(start, stop), 1.0
        start, stop = max(start, 0), min(stop, self.frames)
        if stop <= start:
            return np.zeros((0, self.channels), stored[0]), stored[1]
        return self._decode(start, stop, stored[0]), stored[1]

    def _decode(self, start: int, stop: int, dtype: str = "float32") -> np.ndarray:
        with self._lock:
            fh = self._handle()
            try:
                with _quiet_native_stderr(self._quiet):
                    # Sequential block reads skip the seek: MP3 seeking is approximate, reading on is exact.
                    if fh.tell() != start:
                        fh.seek(start)
                    data = fh.read(stop - start, dtype=dtype, always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioFileError(self.path, f"decoding failed near frame {start}: {_strip_prefix(str(exc))}"
                                     ) from None
        if data.shape[0] < stop - start:
            # Compressed streams can end early; pad rather than shift every later frame.
            data = np.concatenate([data, np.zeros((stop - start - data.shape[0], self.channels), data.dtype)])
        if self.repair and self.info.subtype in _FLOAT_SUBTYPES:
            data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        return data

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            if self._file is not None:
                self._file.close()
                self._file = None


class ScratchSource(AudioSource):
    """Float32 samples in a raw scratch file (frames x channels, native byte order), read block by block,
    times ``gain``: a model's output on its way to an output file, never whole in memory.

    The file belongs to whoever made it (:func:`scratch_file_beside`); this object only reads it.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, frames: int, gain: float = 1.0):
        self.path = Path(path)
        self.sample_rate, self.channels, self.frames = int(sample_rate), int(channels), int(frames)
        self.gain = np.float32(gain)
        self._lock = threading.Lock()

    def scaled(self, gain: float) -> "ScratchSource":
        """The same samples times ``gain`` (a new source over the same file)."""
        return ScratchSource(self.path, self.sample_rate, self.channels, self.frames, float(self.gain) * gain)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, 0), min(stop, self.frames)
        if stop <= start:
            return np.zeros((0, self.channels), np.float32)
        with self._lock, open(self.path, "rb") as fh:
            fh.seek(start * self.channels * 4)
            data = np.fromfile(fh, np.float32, (stop - start) * self.channels)
        if data.size < (stop - start) * self.channels:
            raise WorkbenchError(f"{self.path}: the scratch file was cut short (the drive may be full)")
        data = data.reshape(stop - start, self.channels)
        return data * self.gain if self.gain != 1 else data


@contextlib.contextmanager
def scratch_file_beside(path: str | os.PathLike) -> Iterator[Path]:
    """An empty private file next to ``path`` for intermediate samples, removed when the block ends, on
    SIGTERM/SIGINT while the main thread is inside it, and (having the atomic writer's temporary name) by
    the next run's sweep when SIGKILL left it behind."""
    path = Path(path)
    with _registered_temp_beside(path, "no scratch file could be made beside it") as tmp:
        try:
            yield tmp
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            with _LIVE_LOCK:
                _LIVE_TEMPS.discard(os.fspath(tmp))


@dataclass(frozen=True)
class NonFiniteReport:
    """Where a source holds NaN/Inf samples. ``first_frame`` is -1 when there are none."""

    nan_count: int
    inf_count: int
    first_frame: int

    @property
    def clean(self) -> bool:
        return self.nan_count == 0 and self.inf_count == 0


def scan_nonfinite(source: AudioSource, block_frames: int = BLOCK_FRAMES) -> NonFiniteReport:
    """Count NaN and Inf samples block by block (integer PCM cannot hold them and is skipped)."""
    if isinstance(source, FileSource) and (source.info.subtype not in _FLOAT_SUBTYPES or source.repair):
        return NonFiniteReport(0, 0, -1)
    nan = inf = 0
    first = -1
    for pos, block in source.blocks(block_frames):
        bad = ~np.isfinite(block)
        if bad.any():
            n_nan = int(np.isnan(block).sum())
            nan += n_nan
            inf += int(bad.sum()) - n_nan
            if first < 0:
                first = pos + int(np.argmax(bad.any(axis=1)))
    return NonFiniteReport(nan, inf, first)


def open_source(path: str | os.PathLike, *, repair: bool = False, check_finite: bool = True) -> FileSource:
    """Validate ``path`` and return a block-reading source.

    Args:
        repair: replace NaN/Inf with 0 while reading instead of refusing the file.
        check_finite: scan float files for NaN/Inf now (one pass over the file, in blocks).

    Raises:
        AudioFileError / NonFiniteAudioError with the file name and the problem.
    """
    source = FileSource(path, repair=repair)
    if check_finite and not repair:
        report = scan_nonfinite(source)
        if not report.clean:
            raise NonFiniteAudioError(path, report.nan_count, report.inf_count, report.first_frame)
    return source


def load_audio(path: str | os.PathLike, *, repair: bool = False) -> tuple[np.ndarray, AudioInfo]:
    """Read a whole file as float32 ``(frames, channels)`` after validating it (see :func:`open_source`)."""
    source = open_source(path, repair=repair, check_finite=False)
    try:
        audio = source.read_all()
    finally:
        source.close()
    if not repair:
        bad = ~np.isfinite(audio)
        if bad.any():
            n_nan = int(np.isnan(audio).sum())
            raise NonFiniteAudioError(path, n_nan, int(bad.sum()) - n_nan, int(np.argmax(bad.any(axis=1))))
    return audio, source.info


def resample(audio: np.ndarray, rate_in: int, rate_out: int, quality: str = "HQ",
             dtype: type = np.float32) -> np.ndarray:
    """Resample ``(frames,)`` or ``(frames, channels)`` float audio with soxr; output keeps the shape kind.

    The one resampler of whole arrays (engine, metrics, DNSMOS, export); streams use ``soxr.ResampleStream``.
    soxr compensates its own filter delay, so output frame ``i`` lines up with input time ``i / rate_out``.
    ``dtype``: the precision soxr computes in and returns (float64 for metrics).
    """
    audio = np.asarray(audio, dtype=dtype)
    if rate_in == rate_out:
        return audio
    if audio.shape[0] == 0:
        shape = (0,) + audio.shape[1:]
        return np.zeros(shape, dtype)
    return np.asarray(soxr.resample(audio, rate_in, rate_out, quality=quality), dtype=dtype)


def downmix(audio: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Mono ``(frames,)`` of ``(frames,)`` or ``(frames, channels)`` audio: the mean of the channels, in
    ``dtype`` (a single channel is returned as it is). The one downmix for metrics, DNSMOS, the phase
    lab, figures and probes, so every mono measurement of a multichannel file means the same."""
    a = np.asarray(audio)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] > 1 else a[:, 0]
    return np.asarray(a, dtype).reshape(-1)


#: Export formats and the subtypes a person may choose for each (from the format table).
WRITE_SUBTYPES = {name: BY_NAME[name].subtypes for name in EXPORT_FORMATS}
#: Format name per writable output suffix (what :func:`write_audio_atomic` writes for a name).
OUTPUT_FORMATS = {s: f.name for f in FORMATS if f.writable for s in f.suffixes}
#: Subtypes each output format can hold, best first (used when the source's cannot be kept).
_HOLDS = {f.name: f.holds for f in FORMATS if f.writable}


def output_format(path: str | os.PathLike) -> str:
    """The format name written for ``path`` by its suffix (``out.mp3``: ``"MP3"``); WorkbenchError for a
    suffix no format writes."""
    return output_format_for(path).name


def output_subtype(source_subtype: str | None, format: str, requested: str | None = None) -> str:
    """The sample format of an output in ``format``.

    ``requested`` (``--subtype``) wins when the format can hold it (else WorkbenchError); otherwise the
    source's subtype is kept where the format holds it (a 24-bit source stays 24-bit in WAV and FLAC),
    and the best the format has otherwise (FLOAT for WAV/AIFF, PCM_24 for FLAC, VORBIS for OGG).
    """
    fmt = format.upper()
    holds = _HOLDS.get(fmt, ("PCM_16",))
    if requested is not None:
        req = requested.upper()
        if req not in holds:
            raise WorkbenchError(f"{fmt} cannot hold {req} samples; choose one of {', '.join(holds)}")
        return req
    if source_subtype is not None and source_subtype.upper() in holds:
        return source_subtype.upper()
    return holds[0]


def clip_for_subtype(audio: np.ndarray, subtype: str) -> tuple[np.ndarray, int]:
    """Clip float samples to [-1, 1] for integer (PCM) subtypes; returns ``(audio, samples clipped)``.

    libsndfile would otherwise clip or wrap silently; callers report the count."""
    if subtype.upper() in _FLOAT_SUBTYPES or subtype.upper() == "VORBIS":
        return audio, 0
    over = np.abs(audio) > 1.0
    n = int(np.count_nonzero(over))
    return (np.clip(audio, -1.0, 1.0) if n else audio), n


#: The atomic writer's temporary name: ``.<final name>.<pid of the writer>.<8 hex digits>.part``.
TEMP_NAME_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.part$")

#: Temporary files being written by this process right now (removed by the signal handler on SIGTERM).
_LIVE_TEMPS: set[str] = set()
_LIVE_LOCK = threading.Lock()
#: Folders whose stale temporary files this process has swept already (once per folder per process).
_SWEPT: set[str] = set()
_PREVIOUS_HANDLERS: dict[int, object] = {}


def remove_live_temp_files() -> None:
    """Delete the temporary files this process is writing now (called from a signal handler: no lock, no
    allocation beyond the copy of a small set)."""
    for p in list(_LIVE_TEMPS):
        try:
            os.unlink(p)
        except OSError:
            pass


def _on_terminate(signum, frame) -> None:
    """SIGTERM (and SIGINT where Python's handler is not installed): remove the temporary files being written,
    then do what would have happened without us (the previous handler, or die by the same signal)."""
    remove_live_temp_files()
    previous = _PREVIOUS_HANDLERS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_GUARD_DEPTH = 0


@contextlib.contextmanager
def _temp_files_removed_on_signal() -> Iterator[None]:
    """While the main thread writes, SIGTERM (and SIGINT where Python's Ctrl-C handler is not installed) runs
    :func:`_on_terminate`, chained to what was installed; the previous handlers come back afterwards, so a
    program that is not writing reacts to signals exactly as before (a Qt event loop, for instance, would
    otherwise wait for Python code to run before a Python handler could end it). Other threads cannot set
    handlers: what they leave is swept later."""
    global _GUARD_DEPTH
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed: dict[int, object] = {}
    if _GUARD_DEPTH == 0:
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                current = signal.getsignal(signum)
                if current is _on_terminate or current is None or (
                        signum == signal.SIGINT and current is signal.default_int_handler):
                    continue  # Ctrl-C raises KeyboardInterrupt, which unwinds the writer and removes its file
                _PREVIOUS_HANDLERS[signum] = current
                signal.signal(signum, _on_terminate)
                installed[signum] = current
            except (ValueError, OSError):
                continue
    _GUARD_DEPTH += 1
    try:
        yield
    finally:
        _GUARD_DEPTH -= 1
        for signum, previous in installed.items():
            try:
                signal.signal(signum, previous)
            except (ValueError, OSError, TypeError):
                pass


def _is_zombie(pid: int) -> bool:
    """A process that has ended but was not reaped yet (a killed writer whose parent died too, where the
    system's first process reaps slowly): it will never write again. Linux's ``/proc`` only."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat_line = fh.read()
    except OSError:
        return False
    # "pid (comm) S ...": the state follows the last ')' (a command name may hold spaces and parentheses)
    rest = stat_line[stat_line.rfind(b")") + 1:].split()
    return bool(rest) and rest[0] in (b"Z", b"X")


def sweep_stale_temp_files(folder: str | os.PathLike, *, force: bool = False) -> int:
    """Delete the atomic writer's temporary files in ``folder`` whose writing process is gone (a run killed
    with SIGKILL, a power cut): only regular files with its name pattern and the pid of a dead process.
    Done once per folder per process unless ``force``; returns how many were removed."""
    folder = os.fspath(folder) or "."
    key = os.path.abspath(folder)
    if key in _SWEPT and not force:
        return 0
    _SWEPT.add(key)
    try:
        entries = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        m = TEMP_NAME_RE.match(entry)
        if not m:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or pid <= 0:
            continue
        try:
            os.kill(pid, 0)
            if not _is_zombie(pid):
                continue  # that writer is still alive
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue
        full = os.path.join(folder, entry)
        try:
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.unlink(full)
                removed += 1
        except OSError:
            pass
    return removed


def temp_file_beside(path: Path) -> Path:
    """Create an empty, exclusive temporary file next to ``path`` with umask-respecting permissions.

    (``tempfile.mkstemp`` would create it mode 0600, and the output would keep that after the rename.)
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.part")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (hard links and symlinks included); see
    :func:`workbench.core.audio.outputs.is_same_file`."""
    return is_same_file(a, b)


def ensure_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and parents), turning OS errors into a message that names it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WorkbenchError(f"{folder}: is a file, not a folder; choose another output folder") from None
    except OSError as exc:
        raise WorkbenchError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
    return folder


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False,
                  protect: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Context manager for every file the workbench writes: yields a temporary path beside ``path``.

    The body writes the complete file to the temporary path. On success it is flushed to disk and
    renamed over ``path`` in one step, so the final name only ever holds a complete file; on any
    failure (an exception, a full disk) the temporary file is removed and ``path`` is left as it was.
    SIGTERM (and SIGINT) while the main thread writes removes it too (a handler chained to whatever was
    installed, for the duration of the write);
    what SIGKILL leaves (``.<name>.<pid>.<hex>.part`` of a dead pid) is swept the next time this process
    writes into that folder (:func:`sweep_stale_temp_files`).

    Raises:
        WorkbenchError: ``path`` is refused by :func:`workbench.core.audio.outputs.check_output_target`
            (one of ``protect``, i.e. an input of the command, by path, symlink or hard link; a folder,
            FIFO, device node or socket; an existing file while ``overwrite`` is false), its folder
            cannot be made, or the write failed.
    """
    path = check_output_target(path, inputs=protect, overwrite=overwrite)
    with _registered_temp_beside(path, "could not be written") as tmp:
        yield from _write_then_rename(path, tmp, protect, overwrite)


@contextlib.contextmanager
def _registered_temp_beside(path: Path, failure: str) -> Iterator[Path]:
    """A temporary file beside ``path`` with the atomic writer's name, known to the signal handler (which
    removes it on SIGTERM/SIGINT while the main thread is inside the block) after the folder's stale
    temporary files of dead writers were swept. ``failure`` words the one line when none can be made;
    the caller removes the file and forgets it."""
    ensure_folder(path.parent)
    sweep_stale_temp_files(path.parent)
    with _temp_files_removed_on_signal():
        try:
            tmp = temp_file_beside(path)
        except OSError as exc:
            raise WorkbenchError(f"{path}: {failure} ({exc.strerror or exc})") from None
        with _LIVE_LOCK:
            _LIVE_TEMPS.add(os.fspath(tmp))
        yield tmp


def _write_then_rename(path: Path, tmp: Path, protect, overwrite: bool) -> Iterator[Path]:
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # Checked again just before the rename: the target may have changed while the body wrote.
        check_output_target(path, inputs=protect, overwrite=overwrite)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, (sf.LibsndfileError, OSError, ValueError, TypeError)):
            raise WorkbenchError(f"{path}: could not be written ({_describe_write_error(path, exc)})") from None
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE_TEMPS.discard(os.fspath(tmp))


def _describe_write_error(path: Path, exc: BaseException) -> str:
    """The reason a write failed in a person's words (libsndfile says only "System error." for a full
    disk, a size limit or an I/O error)."""
    import errno

    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "No space left on the drive"
    if code == errno.EFBIG:
        return "the file would be larger than the system allows"
    if code == errno.EROFS:
        return "the drive is read-only"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    text = _strip_prefix(str(exc)) or type(exc).__name__
    if "system error" in text.lower():
        try:
            vfs = os.statvfs(path.parent)
            free = vfs.f_bavail * vfs.f_frsize
        except OSError:
            free = None
        if free is not None and free < (1 << 20):
            return f"No space left on the drive ({free} bytes free)"
        return "the system refused the write: the drive may be full, the file too large for it, or failing"
    return text


def describe_os_error(path: str | os.PathLike, exc: BaseException) -> str:
    """Why writing ``path`` failed, in a person's words ("No space left on the drive", "permission denied" ...)."""
    return _describe_write_error(Path(path), exc)


def write_audio_atomic(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *,
                       subtype: str = "PCM_16", format: str | None = None, overwrite: bool = False,
                       protect: tuple[str | os.PathLike, ...] = (), comment: str | None = None) -> Path:
    """Write audio so that the final name only ever holds a complete file (see :func:`atomic_output`).

    Args:
        audio: ``(frames,)`` or ``(frames, channels)`` float samples.
        subtype: libsndfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT`` ...).
        format: container; guessed from the suffix when ``None``.
        overwrite: replace an existing ``path``; otherwise an existing file is an error.
        protect: files that must never be written (the source recordings).
        comment: text for the file's comment tag (libsndfile writes it in WAV/RF64 ``LIST INFO``,
            AIFF, CAF, FLAC and Ogg comments), e.g. the version's provenance as JSON; left out for a
            container without one (Wave64, see ``AudioFormat.comments``).
    """
    path = Path(path)
    known, container = _output_container(path, format, subtype)
    audio = np.asarray(audio)
    if not np.all(np.isfinite(audio)):
        raise WorkbenchError(f"{path}: refusing to write audio that holds NaN or Inf samples")
    with atomic_output(path, overwrite=overwrite, protect=protect) as tmp:
        with sf.SoundFile(native_path(tmp), "w", samplerate=int(sample_rate),
                          channels=1 if audio.ndim == 1 else audio.shape[1],
                          subtype=subtype, format=container) as out:
            _no_peak_chunk(out)
            if comment is not None and (known is None or known.comments):
                out.comment = comment
            for a in range(0, audio.shape[0], 1 << 16):  # blocks: no whole-file temporary in libsndfile's path
                out.write(audio[a:a + (1 << 16)])
    return path


def _output_container(path: Path, format: str | None, subtype: str):
    """``(format table entry or None, libsndfile container)`` for writing ``subtype`` samples to ``path``
    (the format named, else the one its suffix chooses, else WAV); one line when it cannot hold them."""
    if format is None:
        format = OUTPUT_FORMATS.get(path.suffix.lower(), "WAV")
    known = BY_NAME.get(format.upper())
    container = known.container if known is not None else format
    if not sf.check_format(container, subtype):
        raise WorkbenchError(f"{path}: {format} cannot hold {subtype} samples; choose one of "
                             f"{', '.join(_HOLDS.get(format.upper(), ()))}")
    return known, container


def write_source_atomic(path: str | os.PathLike, source: AudioSource, *, subtype: str = "PCM_16",
                        format: str | None = None, gain: float = 1.0, overwrite: bool = False,
                        protect: tuple[str | os.PathLike, ...] = (), comment: str | None = None,
                        refuse_clipping: Callable[[int, int], str | None] | None = None) -> tuple[Path, int]:
    """:func:`write_audio_atomic` of ``source`` times ``gain``, read and written block by block (memory of
    one block whatever the length); integer subtypes get samples beyond ±1 clipped and counted
    (:func:`clip_for_subtype`).

    Args:
        refuse_clipping: ``refuse_clipping(clipped, total)`` is asked once everything is written: a
            returned line is raised as :class:`WorkbenchError` and the file is not created (the temporary
            file is removed), e.g. :func:`workbench.core.enhance.level.clipping_problem`.

    Returns:
        ``(path, clipped samples)``.
    """
    path = Path(path)
    known, container = _output_container(path, format, subtype)
    g = np.float32(gain)
    clipped = 0
    with atomic_output(path, overwrite=overwrite, protect=protect) as tmp:
        with sf.SoundFile(native_path(tmp), "w", samplerate=int(source.sample_rate), channels=source.channels,
                          subtype=subtype, format=container) as out:
            _no_peak_chunk(out)
            if comment is not None and (known is None or known.comments):  # Wave64 holds no comment tag
                out.comment = comment
            for _pos, block in source.blocks(1 << 16):
                block = block * g if g != 1 else block
                if not np.all(np.isfinite(block)):
                    raise WorkbenchError(f"{path}: refusing to write audio that holds NaN or Inf samples")
                block, n_over = clip_for_subtype(block, subtype)
                clipped += n_over
                out.write(np.ascontiguousarray(block))
        if refuse_clipping is not None:
            problem = refuse_clipping(clipped, source.frames * source.channels)
            if problem:
                raise WorkbenchError(problem)
    return path, clipped


#: libsndfile's ``SFC_SET_ADD_PEAK_CHUNK`` (sndfile.h); soundfile has no public call for it.
_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def _no_peak_chunk(out: sf.SoundFile) -> None:
    """Leave out the PEAK chunk libsndfile adds to float WAV/AIFF files: it holds the wall-clock time of
    the write, so the same samples written twice would differ in four header bytes, and batch outputs
    must be byte-identical whatever the run (the chunk is optional metadata; readers do not need it)."""
    try:
        sf._snd.sf_command(out._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
    except AttributeError:  # a soundfile without these internals: keep the chunk, lose byte identity
        pass
