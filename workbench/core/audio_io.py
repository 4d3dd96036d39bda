"""Audio file I/O: validated opening, block reads, soxr resampling and atomic writes.

Everything here works on float32 arrays shaped ``(frames, channels)``; mono is ``(frames, 1)``.
Files are only ever read; the one writer (:func:`write_audio_atomic`) refuses to replace an existing
file unless asked and never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioFileError, NonFiniteAudioError, WorkbenchError

#: Frames decoded per block when a whole file is scanned or streamed.
BLOCK_FRAMES = 1 << 18

_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


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


def _wav_declared_data_bytes(path: Path) -> tuple[int, int] | None:
    """For RIFF/WAVE files return ``(declared_data_bytes, data_offset)`` from the header, else ``None``.

    libsndfile silently shortens a file whose data chunk is cut off; we read the declared size ourselves
    so that a truncated recording is reported instead of passing as a shorter one.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            little = head[:4] == b"RIFF"
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I" if little else ">I", chunk[4:])[0]
                if cid == b"data":
                    return size, fh.tell()
                fh.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None


def read_info(path: str | os.PathLike) -> AudioInfo:
    """Open ``path`` far enough to validate its header and return its metadata.

    Raises:
        AudioFileError: missing, empty, unreadable, not audio, zero sample rate, no channels or frames,
            or a WAV whose data chunk is shorter than its header declares (truncated).
    """
    path = Path(path)
    if not path.exists():
        raise AudioFileError(path, "no such file")
    if path.is_dir():
        raise AudioFileError(path, "is a folder, not an audio file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioFileError(path, f"cannot be read ({exc.strerror})") from None
    if size == 0:
        raise AudioFileError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioFileError(path, "permission denied")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFileError(path, _describe_libsndfile_error(path, exc)) from None
    if info.samplerate <= 0:
        raise AudioFileError(path, f"invalid sample rate {info.samplerate} Hz in header")
    if info.channels <= 0:
        raise AudioFileError(path, f"invalid channel count {info.channels} in header")
    if info.frames <= 0:
        raise AudioFileError(path, "contains no audio frames")
    result = AudioInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames),
                       str(info.subtype), str(info.format))
    declared = _wav_declared_data_bytes(path)
    if declared is not None:
        declared_bytes, offset = declared
        frame_bytes = _frame_bytes(result)
        # 0 and 0xFFFFFFFF are used by streaming writers for "size unknown"; not a truncation.
        if frame_bytes and declared_bytes not in (0, 0xFFFFFFFF):
            available = max(size - offset, 0)
            if available < declared_bytes:
                raise AudioFileError(
                    path,
                    f"truncated data: header declares {declared_bytes // frame_bytes} frames, "
                    f"file holds {available // frame_bytes}",
                )
    return result


def _frame_bytes(info: AudioInfo) -> int:
    bits = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
            "ULAW": 8, "ALAW": 8}.get(info.subtype)
    return bits // 8 * info.channels if bits else 0


def _describe_libsndfile_error(path: Path, exc: Exception) -> str:
    text = str(exc)
    low = text.lower()
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head[:4] in (b"RIFF", b"RIFX", b"FORM", b"fLaC", b"OggS") or head[:3] == b"ID3":
        if "format not recognised" in low or "unspecified" in low or "malformed" in low or "bad" in low:
            return f"truncated or corrupt header ({_strip_prefix(text)})"
        return f"cannot be decoded ({_strip_prefix(text)})"
    return f"not a recognised audio file ({_strip_prefix(text)})"


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
        self._file: sf.SoundFile | None = None

    def _handle(self) -> sf.SoundFile:
        if self._file is None or self._file.closed:
            try:
                self._file = sf.SoundFile(str(self.path))
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioFileError(self.path, _describe_libsndfile_error(self.path, exc)) from None
        return self._file

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, 0), min(stop, self.frames)
        if stop <= start:
            return np.zeros((0, self.channels), np.float32)
        with self._lock:
            fh = self._handle()
            try:
                fh.seek(start)
                data = fh.read(stop - start, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioFileError(self.path, f"decoding failed near frame {start}: {_strip_prefix(str(exc))}"
                                     ) from None
        if data.shape[0] < stop - start:
            # Compressed streams can end early; pad rather than shift every later frame.
            data = np.concatenate([data, np.zeros((stop - start - data.shape[0], self.channels), np.float32)])
        if self.repair and self.info.subtype in _FLOAT_SUBTYPES:
            data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        return data

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


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


def resample(audio: np.ndarray, rate_in: int, rate_out: int, quality: str = "HQ") -> np.ndarray:
    """Resample ``(frames,)`` or ``(frames, channels)`` float audio with soxr; output keeps the shape kind.

    soxr compensates its own filter delay, so output frame ``i`` lines up with input time ``i / rate_out``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if rate_in == rate_out:
        return audio
    if audio.shape[0] == 0:
        shape = (0,) + audio.shape[1:]
        return np.zeros(shape, np.float32)
    return np.asarray(soxr.resample(audio, rate_in, rate_out, quality=quality), dtype=np.float32)


#: Export formats and the subtypes a person may choose for each.
WRITE_SUBTYPES = {
    "WAV": ("PCM_16", "PCM_24", "PCM_32", "FLOAT"),
    "FLAC": ("PCM_16", "PCM_24"),
}


def write_audio_atomic(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *,
                       subtype: str = "PCM_16", format: str | None = None, overwrite: bool = False,
                       protect: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Write audio so that the final name only ever holds a complete file.

    The samples go to a temporary file in the target folder, are flushed to disk, and the temporary
    file is renamed over ``path`` in one step. Any failure removes the temporary file.

    Args:
        audio: ``(frames,)`` or ``(frames, channels)`` float samples.
        subtype: libsndfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT`` ...).
        format: container; guessed from the suffix when ``None``.
        overwrite: replace an existing ``path``; otherwise an existing file is an error.
        protect: files that must never be written (the source recordings).
    """
    path = Path(path)
    for p in protect:
        if Path(p).exists() and path.exists() and path.resolve() == Path(p).resolve():
            raise WorkbenchError(f"{path}: refusing to write over the source recording")
    if path.exists() and not overwrite:
        raise WorkbenchError(f"{path}: already exists (use --overwrite to replace it)")
    if format is None:
        format = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}.get(
            path.suffix.lower(), "WAV")
    audio = np.asarray(audio)
    if not np.all(np.isfinite(audio)):
        raise WorkbenchError(f"{path}: refusing to write audio that holds NaN or Inf samples")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with sf.SoundFile(tmp_name, "w", samplerate=int(sample_rate),
                          channels=1 if audio.ndim == 1 else audio.shape[1],
                          subtype=subtype, format=format) as out:
            out.write(audio)
        with open(tmp_name, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(exc, (sf.LibsndfileError, OSError, ValueError, TypeError)):
            raise WorkbenchError(f"{path}: could not be written ({exc})") from None
        raise
    return path
