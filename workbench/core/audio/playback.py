"""Sample-exact A/B/C playback of a recording's versions through PortAudio (sounddevice). No Qt here.

Data flow::

    Recording.versions --(once, on load, streamed piece by piece)--> one float32 signal per version,
    shape (N,), at the device rate (soxr), the displayed channel only, held either
        in RAM (up to RAM_PLAYBACK_BYTES in all), or
        in a temporary cache file, of which a feeder thread keeps the blocks around the play position
        in a fixed RAM pool (see playback_cache)
    --> PortAudio callback copies/mixes into outdata

Every version of a recording has the same duration, so after resampling to the device rate all
buffers have exactly ``N = round(frames * device_rate / source_rate)`` frames and one frame counter
(:attr:`PlaybackEngine.position`) addresses the same instant in every version. Switching the audible
version therefore never moves the position: at the start of the next audio block the callback starts a
raised-cosine crossfade of ``crossfade_ms`` from the old to the new buffer, at the same frame.

Crossfade (equal gain, because the versions are strongly correlated copies of the same recording, so
amplitudes add; an equal-power fade would bump the level by up to 3 dB in the middle)::

    w_in[i]  = 0.5 - 0.5 * cos(pi * (i + 0.5) / L),   i = 0 .. L-1,  L = round(crossfade_ms * rate / 1000)
    w_out[i] = 1 - w_in[i]
    y[i]     = g_old * old[p + d + i] * w_out[i] + g_new * new[p + i] * w_in[i]

The same ramp removes every other click: a version switch or a loudness-match toggle (``d = 0``,
only the buffer or the gain changes), a seek while playing (``d`` = old position - new position),
starting (the old sound is silence) and pausing/stopping (the new sound is silence; a stop's jump back
is applied after the fade-out). Loop wraps are the one deliberate exception: frame ``b - 1`` is followed
by frame ``a`` exactly, so a loop plays precisely the chosen samples.

Real-time rules followed by :meth:`PlaybackEngine.callback` (it runs on PortAudio's thread):

* it only reads buffers prepared before playback (or block slots published before it can reach them)
  and writes into ``outdata`` or a scratch buffer preallocated at load time
  (``np.multiply(..., out=)``, ``np.copyto``); no array is allocated, no file is read; on the
  disk-backed path it splits its work at block edges so that every read is a view of one slot;
* it takes no lock: the GUI thread communicates through plain attribute writes, each a single atomic
  reference swap under the GIL (``_want_version`` int, ``_playing``/``_match`` bools, ``_loop`` and
  ``_seek_cmd`` immutable tuples, ``_program`` a whole prepared object). A seek is a ``(serial, frame)``
  command slot: the callback applies it once when the serial changes;
* it never raises (errors are counted in :attr:`PlaybackEngine.callback_errors` and the block is
  silenced) and never touches Qt.

When PortAudio lists no output device (servers, CI), the engine still loads, seeks and mixes (the
callback can be driven by hand) and reports ``available = False`` with a ``reason``.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .loudness import LoudnessMeasure, PlaybackGain, match_gains, peak_safe_gain
from .playback_cache import (_PIECE, BlockCacheConfig, BlockStore, _FileSink, _RamSink,  # noqa: F401
                             _zero_nonfinite, prepare_signal)

try:  # PortAudio itself may be missing (libportaudio2 not installed); the rest must keep working.
    import sounddevice as _sd
    _SD_ERROR: str | None = None
except OSError as exc:  # pragma: no cover - depends on the machine
    _sd = None
    _SD_ERROR = f"PortAudio is not available ({exc})"


@dataclass(frozen=True)
class OutputDevice:
    """An output device as PortAudio lists it.

    Attributes:
        index: PortAudio device index (what ``sounddevice`` takes).
        name: device name.
        hostapi: host API name (ALSA, PulseAudio, CoreAudio, WASAPI ...).
        channels: maximum output channels.
        default_rate: default sample rate in Hz.
        is_default: whether it is the system's default output.
    """

    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float
    is_default: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.hostapi})" + (" — default" if self.is_default else "")


def list_output_devices() -> tuple[list[OutputDevice], str | None]:
    """Output devices PortAudio can see, and a reason string when there are none."""
    if _sd is None:
        return [], _SD_ERROR
    try:
        devices = _sd.query_devices()
        hostapis = _sd.query_hostapis()
        default_out = _sd.default.device[1]
    except Exception as exc:  # PortAudio errors come in several types; all mean "no devices"
        return [], f"PortAudio could not list devices ({exc})"
    out = []
    for i, d in enumerate(devices):
        if d["max_output_channels"] > 0:
            out.append(OutputDevice(i, d["name"], hostapis[d["hostapi"]]["name"], int(d["max_output_channels"]),
                                    float(d["default_samplerate"]), i == default_out))
    if not out:
        return [], "no audio output device found (PortAudio lists none); playback is off, everything else works"
    return out, None


@dataclass(frozen=True)
class VersionTrack:
    """What the engine knows about one loaded version (for the GUI's gain readout).

    Attributes:
        name: the version's name.
        kind: ``original``, ``enhanced`` or ``residual``.
        loudness: measured on the played (resampled, selected-channel) samples.
        matched: gain when loudness matching is on.
        plain: gain when it is off (0 dB unless the version would exceed 0 dBFS).
        silenced_samples: NaN/Inf samples of the version that play as 0 (a recording opened without
            repair may still hold some; they must never reach the sound card).
    """

    name: str
    kind: str
    loudness: LoudnessMeasure
    matched: PlaybackGain
    plain: PlaybackGain
    silenced_samples: int = 0


class _Program:
    """Everything the callback reads for one loaded recording; built on the GUI thread, then swapped in
    whole, so the callback always sees a consistent set.

    Strength: a model result ``i`` has ``dry[i]`` (the original's played channel; the same array object
    as the original's buffer when the channels line up) besides its ``buffers[i]`` (the model's own
    output, full strength). The callback plays ``wet + g * (dry - wet)`` with ``g`` moving towards
    ``dry_gain_target[i]`` (written by the GUI thread, one float per list slot) by at most
    :data:`STRENGTH_SLEW_S` per full swing, linearly inside each block: no click, nothing recomputed.
    """

    __slots__ = ("buffers", "frames", "matched_gains", "plain_gains", "tracks", "rate", "dry",
                 "dry_gain_target", "dry_gain_now", "dry_gain_start", "dry_gain_end", "store", "block_frames",
                 "prepared")

    def __init__(self, buffers: list, rate: int, tracks: list[VersionTrack],
                 dry: list | None = None, dry_gains: list[float] | None = None, store: BlockStore | None = None):
        self.buffers = buffers
        # Disk-backed programs: buffers/dry are BlockTracks (read inside one block at a time).
        self.store = store
        self.block_frames = store.config.block_frames if store is not None else 0
        self.frames = buffers[0].shape[0] if buffers else 0
        self.rate = rate
        self.tracks = tracks
        # Python floats: indexing a list returns an existing object, the callback allocates nothing.
        self.matched_gains = [float(t.matched.gain) for t in tracks]
        self.plain_gains = [float(t.plain.gain) for t in tracks]
        self.dry = list(dry) if dry is not None else [None] * len(buffers)
        g = [float(x) for x in (dry_gains if dry_gains is not None else [0.0] * len(buffers))]
        self.dry_gain_target = list(g)
        self.dry_gain_now = list(g)
        self.dry_gain_start = list(g)
        self.dry_gain_end = list(g)
        #: (id(source), column) -> (source, samples, measure, NaN/Inf count): what :meth:`PlaybackEngine.load`
        #: prepared, so the next load of the same recording prepares only new versions. ``samples`` is the
        #: RAM array or the cache file (never written again once prepared).
        self.prepared: dict = {}


#: Time a strength change takes from 0 % to 100 % (shorter moves take proportionally less).
STRENGTH_SLEW_S = 0.03
#: Largest block the strength ramp covers sample by sample (longer blocks step once per block).
_MIX_SCRATCH = 16384


#: Playback data (4 bytes per frame and version at the device rate) up to this size is held in RAM;
#: larger recordings play from disk-backed block caches (256 MiB: about 8 minutes of three versions
#: at 48 kHz).
RAM_PLAYBACK_BYTES = 256 << 20
#: How often the feeder thread tops up the block caches (it is also woken by seeks, loops and loads).
FEED_INTERVAL_S = 0.05
#: Longest a seek waits for a callback that may still read an evicted slot to return.
_SLOT_WAIT_S = 0.2


def _feed_loop(engine_ref, stop: threading.Event, wake: threading.Event) -> None:
    """Body of the feeder thread: pump the engine's block caches until it is closed or collected."""
    while not stop.is_set():
        engine = engine_ref()
        if engine is None:
            return
        try:
            engine.pump()
        except Exception:  # a failing cache file must not kill the thread; the callback plays silence
            engine.feeder_errors += 1
        del engine
        wake.wait(FEED_INTERVAL_S)
        wake.clear()


class PlaybackEngine:
    """A PortAudio output stream that plays one of several aligned versions, switchable at any sample.

    Args:
        device: PortAudio output device index, ``"default"`` for the system default, or ``None`` for no
            stream at all (headless; the callback can still be driven by hand).
        sample_rate: device rate in Hz; default the device's default rate (or, without a device, the
            rate of the loaded recording).
        channels: output channels (the selected channel is copied to all of them); capped by the device.
        crossfade_ms: length of the version-switch crossfade.
        latency: PortAudio latency hint (``"high"`` avoids underruns of a Python callback).
        ram_limit_bytes: playback data up to this size (``4 * N`` bytes per version) is held in RAM;
            above it the versions play from disk-backed block caches. Default :data:`RAM_PLAYBACK_BYTES`.
        block_cache: block geometry of the disk-backed path (default :class:`BlockCacheConfig`).
        feeder_thread: run the thread that keeps the block caches filled. Without it (tests, headless
            drivers) call :meth:`pump` between callbacks.

    Positions are frames at :attr:`rate` unless a name ends in ``_s`` (seconds).

    Disk-backed playback: :meth:`load` writes each version's device-rate samples to an anonymous temp
    file (see :mod:`workbench.core.audio.playback_cache`) and keeps only a window of blocks in a fixed RAM
    pool: ``behind_blocks`` before the play position, ``ahead_blocks`` after it (following the loop),
    the loop start and the last seek target. The feeder thread (:meth:`pump`) loads the window's
    missing blocks nearest first and releases the others; :meth:`seek`, :meth:`set_loop` and
    :meth:`load` load the first blocks at their target synchronously (milliseconds) before the callback
    can go there, so seeks, A/B switches and loop wraps stay sample-exact. The callback never reads a
    file nor waits: a block that is not in RAM plays as silence and counts in :attr:`underruns`.
    """

    def __init__(self, device: int | str | None = "default", *, sample_rate: int | None = None,
                 channels: int = 2, crossfade_ms: float = 5.0, latency: str | float = "high",
                 ram_limit_bytes: int | None = None, block_cache: BlockCacheConfig | None = None,
                 feeder_thread: bool = True):
        self.ram_limit_bytes = RAM_PLAYBACK_BYTES if ram_limit_bytes is None else int(ram_limit_bytes)
        self.block_cache = block_cache or BlockCacheConfig()
        self._feeder_wanted = bool(feeder_thread)
        self._feeder: threading.Thread | None = None
        self._feeder_stop = threading.Event()
        self._feeder_wake = threading.Event()
        #: exceptions the feeder thread caught (a cache file that failed to read)
        self.feeder_errors = 0
        # Serialises everything that changes block slots (feeder, seeks, loads); the callback never takes it.
        self._feed_lock = threading.RLock()
        self._protect_prev: set[int] = set()
        # Callbacks started / finished: an evicted slot is reused once every callback that could still
        # read it has returned (written only by the callback).
        self._cb_started = 0
        self._cb_finished = 0
        self.crossfade_ms = float(crossfade_ms)
        self.latency = latency
        self._requested_rate = sample_rate
        self.out_channels = int(channels)
        self.device: OutputDevice | None = None
        self.available = False
        self.reason: str | None = "no output device requested"
        self._stream = None
        self.callback_errors = 0
        self.callback_calls = 0
        self.rate = int(sample_rate) if sample_rate else 0
        # --- state written by the GUI thread (atomic reference swaps) ---
        self._program: _Program | None = None
        self._playing = False
        self._want_version = 0
        self._match = True
        self._loop: tuple[bool, int, int] = (False, 0, 0)
        self._seek_cmd: tuple[int, int] = (0, 0)
        # --- state written only by the callback ---
        self._pos = 0
        self._seek_done = 0
        self._active = 0
        self._active_match = True
        self._fade_left = 0
        self._fade_from = 0
        self._fade_from_gain = 1.0
        self._fade_delta = 0
        self._fading_out = False
        self._was_playing = False
        self._set_fade_length(self.rate or 48000)
        if device is not None:
            self._choose_device(device)

    # ------------------------------------------------------------------ devices
    def _choose_device(self, device: int | str) -> None:
        devices, reason = list_output_devices()
        if not devices:
            self.device, self.available, self.reason = None, False, reason
            return
        if device == "default":
            chosen = next((d for d in devices if d.is_default), devices[0])
        else:
            chosen = next((d for d in devices if d.index == device), None)
            if chosen is None:
                self.device, self.available = None, False
                self.reason = f"output device {device} does not exist"
                return
        self.device = chosen
        self.available, self.reason = True, None
        self.out_channels = max(1, min(self.out_channels, chosen.channels))
        if not self._requested_rate:
            self.rate = int(round(chosen.default_rate))
            self._set_fade_length(self.rate)

    def set_device(self, device: int | str | None) -> None:
        """Switch to another output device (closing the current stream); the loaded versions are
        converted to the new device rate and the position is kept in seconds."""
        was_playing = self._playing
        pos_s = self.position_s
        self.close()
        self.out_channels = 2
        self.device, self.available, self.reason = None, False, "no output device requested"
        if device is not None:
            self._choose_device(device)
        if self._source is not None:
            self.load(self._source, channel=self._channel, versions=self._versions_arg)
            self.seek_s(pos_s)
        if was_playing:
            self.play()

    def _set_fade_length(self, rate: int) -> None:
        n = max(1, int(round(self.crossfade_ms * rate / 1000.0)))
        i = np.arange(n, dtype=np.float64)
        fade_in = (0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / n)).astype(np.float32)
        self._fade_in = fade_in
        self._fade_out = np.float32(1.0) - fade_in
        self.fade_frames = n
        # Scratch for the faded part only: a fade is never longer than n frames.
        self._scratch_a = np.zeros(n, np.float32)
        self._scratch_b = np.zeros(n, np.float32)
        # Strength mixing: (dry - wet) * g + wet for one version at a time, and the per-frame gain ramp.
        self._scratch_mix = np.zeros(_MIX_SCRATCH, np.float32)
        self._scratch_gain = np.zeros(_MIX_SCRATCH, np.float32)
        self._frame_index = np.arange(1, _MIX_SCRATCH + 1, dtype=np.float32)
        self._slew_per_frame = 1.0 / max(STRENGTH_SLEW_S * rate, 1.0)
        self._block_frames = 1

    # ------------------------------------------------------------------ loading
    _source = None
    _channel = 0
    _versions_arg = None

    def load(self, recording, *, channel: int = 0, versions: Sequence | None = None) -> list[VersionTrack]:
        """Convert every version of ``recording`` (or the given ``versions``) for playback.

        Each version's ``channel`` (or its only channel) is streamed through soxr to the device rate,
        cut/padded to the common length ``N``, measured (BS.1770) and given its gains. Playback stops;
        the position and the selected version are kept when they still exist.

        Memory: ``4 * N`` bytes per version (one channel, float32) while that stays within
        :attr:`ram_limit_bytes` in all; above it the samples go to temporary cache files (the same
        ``4 * N`` bytes on disk) and RAM holds ``BlockCacheConfig.slots`` blocks per version. Preparing
        never holds a whole version in memory either way.
        """
        self._source, self._channel, self._versions_arg = recording, channel, versions
        vers = list(versions if versions is not None else recording.versions)
        if not vers:
            raise ValueError("nothing to play: no versions")
        base_src = recording.source if hasattr(recording, "source") else vers[0].source
        if not self.rate:
            self.rate = int(base_src.sample_rate)
            self._set_fade_length(self.rate)
        n_out = int(round(base_src.frames * self.rate / base_src.sample_rate))
        store = BlockStore(self.block_cache) if 4 * n_out * len(vers) > self.ram_limit_bytes else None
        # Signals the loaded program already prepared (same source object and column, same rate, length and
        # kind of storage) are taken over, so a new version of a long recording prepares only itself.
        old_prog = self._program
        reusable = (old_prog.prepared if old_prog is not None and old_prog.rate == self.rate
                    and old_prog.frames == n_out and (old_prog.store is None) == (store is None) else {})
        prepared: dict = {}

        def prepare(src, column: int):
            """(buffer, loudness, NaN/Inf count) of ``src[:, column]`` at the device rate."""
            key = (id(src), column)
            if key not in prepared:
                had = reusable.get(key)
                if had is not None and had[0] is src:
                    prepared[key] = had
                else:
                    sink = _FileSink(n_out) if store is not None else _RamSink(n_out)
                    measured, bad = prepare_signal(src, column, self.rate, n_out, sink)
                    prepared[key] = (src, sink.file if store is not None else sink.data, measured, bad)
            _src, samples, measured, bad = prepared[key]
            return (store.add_file(samples, n_out) if store is not None else samples), measured, bad

        def taken_over() -> set[int]:
            """ids of the old program's cache files the new one reads too (not to be closed with it)."""
            return {id(v[1]) for k, v in prepared.items() if reusable.get(k) is v} if store is not None else set()

        buffers, measures, silenced, dry, dry_gains = [], [], [], [], []
        original_buf = None
        try:
            for v in vers:
                wet = getattr(v, "source", v)
                strength = None
                if getattr(getattr(v, "kind", None), "is_result", False):
                    strength = getattr(wet, "strength", None)
                    wet = getattr(wet, "wet", wet)
                buf, measured, bad = prepare(wet, channel if channel < wet.channels else 0)
                if getattr(v, "kind", None) == "original":
                    original_buf = buf
                silenced.append(bad)
                buffers.append(buf)
                measures.append(measured)
                dry.append(self._dry_buffer(v, recording, channel, original_buf, prepare)
                           if getattr(getattr(v, "kind", None), "is_result", False) else None)
                dry_gains.append(0.0 if strength is None else float(strength.dry_gain))
        except BaseException:
            if store is not None:
                store.close(keep=taken_over())  # the old program still plays from those
            raise
        kinds = [getattr(v, "kind", "enhanced") for v in vers]
        matched = match_gains(measures, reference=[k != "residual" for k in kinds])
        tracks = [VersionTrack(getattr(v, "name", f"version {i}"), kinds[i], measures[i], matched[i],
                               peak_safe_gain(measures[i]), silenced[i]) for i, v in enumerate(vers)]
        with self._feed_lock:
            old = self._program
            keep_pos = min(self.position, n_out)
            self._playing = False
            self._loaded = list(vers)
            program = _Program(buffers, self.rate, tracks, dry, dry_gains, store)
            program.prepared = prepared
            self._protect_prev = set()
            if store is not None:
                self._prefetch(program, keep_pos)  # before the callback can see the program
                on, a, b = self._loop
                if on and b <= n_out:
                    self._prefetch(program, a, b)
            self._program = program
            if self._want_version >= len(buffers):
                self._want_version = 0
            self.seek(keep_pos)
            if old is not None and old.store is not None:
                # The feeder (which alone reads files) holds this lock, so it is idle; files the new
                # program took over stay open.
                old.store.close(keep=taken_over())
        if store is not None:
            self._start_feeder()
        return tracks

    def _dry_buffer(self, version, recording, channel: int, original_buf, prepare):
        """The original's samples under ``version``'s played column: the original's own buffer when the
        version holds all channels (the common case, no extra memory), else that channel prepared once."""
        original = getattr(recording, "source", None)
        if original is None:
            return None
        src = getattr(version, "source", version)
        col = channel if channel < src.channels else 0
        chans = getattr(version, "settings", {}).get("channels")
        orig_channel = col if chans is None else int(list(chans)[col])
        if original_buf is not None and orig_channel == (channel if channel < original.channels else 0):
            return original_buf
        return prepare(original, orig_channel)[0]

    def set_strength(self, index: int, mix: float) -> None:
        """Play version ``index`` at ``mix`` (wet share 0..1) from the next block on, ramped without a
        click. Only model results have a strength (others raise ValueError)."""
        prog = self._program
        if prog is None or not 0 <= index < len(prog.buffers):
            raise IndexError(f"version {index} is not loaded")
        if prog.dry[index] is None:
            raise ValueError(f"version {index} has no strength (only model results do)")
        prog.dry_gain_target[index] = float(min(max(1.0 - float(mix), 0.0), 1.0))

    def set_strength_of(self, version, mix: float) -> bool:
        """:meth:`set_strength` by version object; ``False`` when it is not loaded."""
        for i, v in enumerate(getattr(self, "_loaded", [])):
            if v is version:
                self.set_strength(i, mix)
                return True
        return False

    def strength(self, index: int) -> float:
        """The wet share version ``index`` is heading to."""
        prog = self._program
        return 1.0 - prog.dry_gain_target[index] if prog is not None else 1.0

    def unload(self) -> None:
        """Forget the loaded recording (playback stops, buffers and cache files are released)."""
        self._playing = False
        with self._feed_lock:
            old, self._program = self._program, None
            if old is not None and old.store is not None:
                old.store.close()
        self._loaded = []
        self._source = self._versions_arg = None

    # ------------------------------------------------------------------ disk-backed block caches
    @property
    def underruns(self) -> int:
        """Callback reads of the loaded program that found their block not in RAM (played as silence)."""
        prog = self._program
        return prog.store.misses if prog is not None and prog.store is not None else 0

    @property
    def disk_backed(self) -> bool:
        """Whether the loaded recording plays from block caches (else every version is in RAM)."""
        prog = self._program
        return prog is not None and prog.store is not None

    @property
    def buffered_s(self) -> float:
        """Seconds of what plays next from the position (following the loop) that every version holds
        in RAM; all of the rest in RAM mode."""
        prog = self._program
        if prog is None:
            return 0.0
        pos = self.position
        if prog.store is None:
            return (prog.frames - pos) / self.rate
        shift = prog.block_frames.bit_length() - 1
        ready = 0
        for lo, hi in self._ahead_ranges(prog, pos, prog.frames):
            j = lo >> shift
            while (j << shift) < hi and prog.store.resident(j):
                j += 1
            ready += max(min(j << shift, hi) - lo, 0)
            if (j << shift) < hi:
                break
        return ready / self.rate

    def _ahead_ranges(self, prog: _Program, start: int, count: int) -> list[tuple[int, int]]:
        """Frame ranges the callback plays in the ``count`` frames from ``start`` (following the loop)."""
        n = prog.frames
        on, a, b = self._loop
        start = min(max(start, 0), n)
        if on and start < b:
            first = (start, min(b, start + count))
            rest = count - (first[1] - first[0])
            return [first, (a, a + min(rest, b - a))] if rest > 0 else [first]
        return [(start, min(n, start + count))]

    def _wanted_blocks(self, prog: _Program) -> list[int]:
        """Blocks the callback may read soon, most urgent first: the next frames at the pending seek
        target (else the position), those of a crossfade's outgoing place, the other of position/target,
        the loop start, the ahead window, the behind window."""
        cfg = prog.store.config
        shift = cfg.block_frames.bit_length() - 1
        n_blocks = prog.store.tracks[0].n_blocks
        out: dict[int, None] = {}

        def add(lo: int, hi: int) -> None:
            if hi > lo:
                for j in range(max(lo, 0) >> shift, min(((hi - 1) >> shift) + 1, n_blocks)):
                    out[j] = None

        pos = self._pos
        serial, target = self._seek_cmd
        pending = serial != self._seek_done
        primary, secondary = (target, pos) if pending else (pos, target)
        near = cfg.seek_blocks * cfg.block_frames
        for lo, hi in self._ahead_ranges(prog, primary, near):
            add(lo, hi)
        if self._fade_left > 0 and self._fade_from >= 0:
            old = pos + self._fade_delta
            add(old, old + self.fade_frames + self._block_frames)
        for lo, hi in self._ahead_ranges(prog, secondary, near):
            add(lo, hi)
        on, a, b = self._loop
        if on:
            add(a, min(a + near, b))
        for lo, hi in self._ahead_ranges(prog, primary, cfg.ahead_blocks * cfg.block_frames):
            add(lo, hi)
        add(primary - cfg.behind_blocks * cfg.block_frames, primary)
        return list(out)

    def _prefetch(self, prog: _Program, frame: int, stop: int | None = None) -> None:
        """Load the first ``seek_blocks`` blocks played from ``frame`` (up to ``stop`` when given: a new
        loop's end) into ``prog``'s caches now (feed lock held), releasing only blocks the callback
        cannot reach."""
        store = prog.store
        cfg = store.config
        shift = cfg.block_frames.bit_length() - 1
        count = cfg.seek_blocks * cfg.block_frames
        ranges = [(frame, min(stop, frame + count))] if stop is not None else self._ahead_ranges(prog, frame, count)
        near = [j for lo, hi in ranges if hi > lo for j in range(lo >> shift, ((hi - 1) >> shift) + 1)]
        keep = set(near) | self._protect_prev
        if prog is self._program:
            keep |= set(self._wanted_blocks(prog))
        store.evict_except(keep, self._cb_started)
        self._protect_prev = keep
        for j in near:
            waited = 0.0
            while not store.load(j, self._cb_finished) and waited < _SLOT_WAIT_S:
                # every free slot was just released and a callback running now may still read it
                time.sleep(0.002)
                waited += 0.002

    def pump(self) -> int:
        """Bring the loaded program's block caches up to date with the play position: release blocks
        outside the window, then load its missing blocks, most urgent first. Returns the number of
        blocks read. The feeder thread loops over this; without it, call it between callbacks."""
        with self._feed_lock:
            prog = self._program
            if prog is None or prog.store is None:
                return 0
            wanted = self._wanted_blocks(prog)
            keep = set(wanted)
            prog.store.evict_except(keep | self._protect_prev, self._cb_started)
            self._protect_prev = keep
        loaded = 0
        for j in wanted:
            with self._feed_lock:  # one block at a time: a seek on the GUI thread never waits long
                if self._program is not prog:
                    break
                if prog.store.resident(j):
                    continue
                if not prog.store.load(j, self._cb_finished):
                    break  # no slot free yet; the next round goes on
                loaded += 1
        return loaded

    def _start_feeder(self) -> None:
        if not self._feeder_wanted or (self._feeder is not None and self._feeder.is_alive()):
            return
        self._feeder_stop = threading.Event()
        thread = threading.Thread(target=_feed_loop, name="playback-feeder", daemon=True,
                                  args=(weakref.ref(self), self._feeder_stop, self._feeder_wake))
        weakref.finalize(self, self._feeder_stop.set)
        self._feeder = thread
        thread.start()

    def _stop_feeder(self) -> None:
        thread, self._feeder = self._feeder, None
        self._feeder_stop.set()
        self._feeder_wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    @property
    def tracks(self) -> list[VersionTrack]:
        prog = self._program
        return list(prog.tracks) if prog is not None else []

    @property
    def frames(self) -> int:
        prog = self._program
        return prog.frames if prog is not None else 0

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate if self.rate else 0.0

    # ------------------------------------------------------------------ GUI-side controls
    def play(self) -> bool:
        """Start (or resume) playing; from the loop start or 0 when the end was reached.
        Returns whether audio can actually be heard (``False`` without an output device)."""
        if self._program is None:
            return False
        if self.position >= self.frames:
            on, a, _ = self._loop
            self.seek(a if on else 0)
        self._playing = True
        if self._program.store is not None:
            self._start_feeder()
            self._feeder_wake.set()
        if self.available and self._stream is None:
            self._open_stream()
        return self.available and self._stream is not None

    def pause(self) -> None:
        self._playing = False

    def stop(self) -> None:
        """Stop and return to the loop start (or the beginning)."""
        self._playing = False
        on, a, _ = self._loop
        self.seek(a if on else 0)

    @property
    def playing(self) -> bool:
        """True while playing and not parked at the end of the file."""
        return self._playing and self.position < self.frames

    def seek(self, frame: int) -> None:
        """Move to ``frame`` (device rate); applied exactly at the start of the next callback block."""
        frame = int(max(0, min(int(frame), self.frames)))
        with self._feed_lock:
            prog = self._program
            if prog is not None and prog.store is not None:
                self._prefetch(prog, frame)  # the target's first blocks are in RAM before the command
            serial = self._seek_cmd[0] + 1
            self._seek_cmd = (serial, frame)
        self._feeder_wake.set()
        # The callback applies it within one block (after any pause fade-out it is rendering, so that
        # fade is heard from the old place); :attr:`position` reports the target meanwhile.

    def seek_s(self, seconds: float) -> None:
        self.seek(int(round(seconds * self.rate)))

    def select_version(self, index: int) -> None:
        """Make version ``index`` audible from the current sample on (crossfaded)."""
        prog = self._program
        n = len(prog.buffers) if prog is not None else 0
        if not 0 <= index < max(n, 1):
            raise IndexError(f"version {index} does not exist ({n} loaded)")
        self._want_version = int(index)

    @property
    def selected_version(self) -> int:
        return self._want_version

    @property
    def audible_version(self) -> int:
        return self._active

    def set_loudness_match(self, on: bool) -> None:
        self._match = bool(on)

    @property
    def loudness_match(self) -> bool:
        return self._match

    def set_loop(self, start: int | None, stop: int | None) -> None:
        """Loop frames ``[start, stop)``; ``None`` (or an empty region) turns looping off.

        The loop applies while the position is before ``stop``; a playhead after the region plays on to
        the end. Wrapping is sample-exact: frame ``stop - 1`` is followed by frame ``start``.
        """
        if start is None or stop is None:
            self._loop = (False, 0, 0)
            return
        a = int(max(0, min(start, self.frames)))
        b = int(max(0, min(stop, self.frames)))
        with self._feed_lock:
            prog = self._program
            if b > a and prog is not None and prog.store is not None:
                self._prefetch(prog, a, b)  # the loop start stays in RAM while the loop is on
            self._loop = (b > a, a, b) if b > a else (False, 0, 0)
        self._feeder_wake.set()

    def set_loop_s(self, start_s: float | None, stop_s: float | None) -> None:
        if start_s is None or stop_s is None:
            self.set_loop(None, None)
        else:
            self.set_loop(int(round(start_s * self.rate)), int(round(stop_s * self.rate)))

    @property
    def loop(self) -> tuple[int, int] | None:
        on, a, b = self._loop
        return (a, b) if on else None

    @property
    def position(self) -> int:
        """Next frame the callback will render (device rate); a seek not yet applied counts as done."""
        serial, target = self._seek_cmd
        return target if serial != self._seek_done else self._pos

    @property
    def position_s(self) -> float:
        return self.position / self.rate if self.rate else 0.0

    @property
    def output_latency_s(self) -> float:
        stream = self._stream
        try:
            return float(stream.latency) if stream is not None else 0.0
        except Exception:
            return 0.0

    @property
    def playhead_s(self) -> float:
        """Estimate of the instant being heard: the render position minus the output latency, folded
        back into the loop region when the render position has just wrapped."""
        pos = self.position
        if not self._playing:
            return pos / self.rate if self.rate else 0.0
        lag = int(self.output_latency_s * self.rate)
        heard = pos - lag
        on, a, b = self._loop
        if on and heard < a <= pos < b:
            heard += b - a
        return max(heard, 0) / self.rate if self.rate else 0.0

    # ------------------------------------------------------------------ stream
    def _open_stream(self) -> None:
        assert _sd is not None and self.device is not None
        try:
            stream = _sd.OutputStream(device=self.device.index, samplerate=self.rate, channels=self.out_channels,
                                      dtype="float32", callback=self.callback, latency=self.latency)
            stream.start()
        except Exception as exc:
            self.available = False
            self.reason = f"could not open {self.device.label} at {self.rate} Hz ({exc})"
            self._stream = None
            return
        self._stream = stream

    def close(self) -> None:
        """Stop and close the PortAudio stream and the feeder thread (the loaded buffers and caches stay
        until :meth:`unload`, the next :meth:`load` or the engine's end; :meth:`play` starts both again)."""
        self._playing = False
        self._stop_feeder()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:
                pass

    # ------------------------------------------------------------------ the real-time part
    def callback(self, outdata: np.ndarray, frames: int, time, status) -> None:
        """PortAudio callback: fill ``outdata`` ``(frames, channels)`` float32. Never raises."""
        self._cb_started += 1
        try:
            self._render(outdata, frames)
        except Exception:
            outdata.fill(0.0)
            self.callback_errors += 1
        finally:
            self._cb_finished += 1

    def _render(self, out: np.ndarray, frames: int) -> None:
        self.callback_calls += 1
        prog = self._program
        if prog is None:
            out.fill(0.0)
            self._was_playing = self._fading_out = False
            self._fade_left = 0
            return
        n_total = prog.frames
        n_versions = len(prog.buffers)
        self._block_frames = frames
        if prog.dry_gain_now != prog.dry_gain_target or prog.dry_gain_start != prog.dry_gain_now:
            self._advance_strengths(prog, frames)
        if self._active >= n_versions or self._fade_from >= n_versions:
            self._active, self._fade_left, self._fading_out = 0, 0, False  # a smaller recording came in
        match = self._match
        gains = prog.matched_gains if match else prog.plain_gains
        want = self._want_version
        if want >= n_versions:
            want = self._active
        playing = self._playing
        if not playing:
            if self._was_playing:
                self._was_playing = False
                if self._pos < n_total:
                    # Paused while audible: fade the current sound out over L frames (no click), then
                    # silence. A pending seek (stop = pause + seek) waits until the fade is rendered.
                    self._start_fade(self._active, gains[self._active], 0)
                    self._fading_out = True
            if not self._fading_out:
                serial, target = self._seek_cmd
                if serial != self._seek_done:
                    self._seek_done = serial
                    self._pos = target
                out.fill(0.0)
                self._active = want
                self._active_match = match
                self._fade_left = 0
                return
        else:
            if self._fading_out:
                self._fading_out = False
                self._fade_left = 0
            serial, target = self._seek_cmd
            if serial != self._seek_done:
                self._seek_done = serial
                if self._was_playing and self._fade_left == 0:
                    # Seek while audible: crossfade from the old position into the new one.
                    self._start_fade(self._active, gains[self._active], self._pos - target)
                else:
                    self._fade_left = 0
                self._pos = target
            if not self._was_playing:
                # Starting from silence: fade in the requested version.
                self._was_playing = True
                self._active = want
                self._active_match = match
                self._start_fade(-1, 0.0, 0)
            elif self._fade_left == 0 and (want != self._active or match != self._active_match):
                # The audible version (or its gain) changed: crossfade at this block's first frame.
                old_gains = prog.matched_gains if self._active_match else prog.plain_gains
                self._start_fade(self._active, old_gains[self._active], 0)
                self._active = want
                self._active_match = match
        on, a, b = self._loop
        pos = self._pos
        filled = 0
        block = prog.block_frames  # disk-backed: every read must stay inside one cache block
        while filled < frames:
            if pos >= n_total or (self._fading_out and self._fade_left == 0):
                out[filled:].fill(0.0)  # end of file (position parks there) or the fade-out is done
                self._fade_left = 0
                if pos >= n_total:
                    self._fading_out = False
                break
            end = b if (on and pos < b) else n_total
            k = min(frames - filled, end - pos)
            if self._fading_out:
                k = min(k, self._fade_left)
            if block:
                k = min(k, block - pos % block)
                if self._fade_left > 0 and self._fade_from >= 0 and pos + self._fade_delta >= 0:
                    k = min(k, block - (pos + self._fade_delta) % block)
            self._mix(out[filled:filled + k], prog, gains, pos, k, n_total, filled)
            pos += k
            filled += k
            if on and pos == b:
                pos = a
        if self._fading_out and self._fade_left == 0:
            self._fading_out = False
        self._pos = pos

    def _advance_strengths(self, prog: _Program, frames: int) -> None:
        """Move each audible result's dry gain towards its target by at most ``frames`` frames of slew;
        the block then ramps linearly from ``dry_gain_start`` to ``dry_gain_end``. Inaudible ones jump."""
        now_list, target_list = prog.dry_gain_now, prog.dry_gain_target
        if now_list == target_list and prog.dry_gain_start == now_list:
            return  # nothing moving (the usual case): no arithmetic, no new objects
        limit = frames * self._slew_per_frame
        for i, now in enumerate(now_list):
            target = target_list[i]
            if now == target:
                end = now
            elif i == self._active or (self._fade_left > 0 and i == self._fade_from):
                end = now + min(max(target - now, -limit), limit)
            else:
                end = target
            prog.dry_gain_start[i] = now
            prog.dry_gain_end[i] = end
            now_list[i] = end

    def _segment(self, prog: _Program, index: int, pos: int, m: int, offset: int) -> np.ndarray:
        """Samples ``[pos, pos + m)`` of version ``index`` as heard (strength applied), for block frames
        ``[offset, offset + m)``: a view of its buffer, or the preallocated mixing scratch (m <= its size)."""
        wet = prog.buffers[index][pos:pos + m]
        dry = prog.dry[index]
        if dry is None:
            return wet
        g0, g1 = prog.dry_gain_start[index], prog.dry_gain_end[index]
        if g0 == 0.0 and g1 == 0.0:
            return wet
        mix = self._scratch_mix[:m]
        np.subtract(dry[pos:pos + m], wet, out=mix)
        frames = self._block_frames
        if g0 == g1 or offset + m > _MIX_SCRATCH:
            np.multiply(mix, g1, out=mix)
        else:
            ramp = self._scratch_gain[:m]
            np.multiply(self._frame_index[offset:offset + m], (g1 - g0) / frames, out=ramp)
            np.add(ramp, g0, out=ramp)
            np.multiply(mix, ramp, out=mix)
        np.add(mix, wet, out=mix)
        return mix

    def _start_fade(self, from_index: int, from_gain: float, delta: int) -> None:
        """Begin a crossfade whose outgoing sound is version ``from_index`` (-1: silence) read at
        ``position + delta``, with gain ``from_gain``."""
        self._fade_from = from_index
        self._fade_from_gain = from_gain
        self._fade_delta = delta
        self._fade_left = self.fade_frames

    def _mix(self, dst: np.ndarray, prog: _Program, gains: list, pos: int, k: int, n_total: int,
             offset: int = 0) -> None:
        # Per output channel with 1-D operands: a ufunc that broadcasts (k,) into a wider (k, ch) output,
        # or copies between overlapping views, allocates a temporary buffer; column by column does not.
        active = self._active
        g = gains[active]
        channels = dst.shape[1]
        m = 0
        if self._fade_left > 0:
            m = min(k, self._fade_left)
            i0 = self.fade_frames - self._fade_left
            sa = self._scratch_a[:m]
            sb = self._scratch_b[:m]
            p_old = pos + self._fade_delta
            if self._fade_from >= 0 and 0 <= p_old and p_old + m <= n_total:
                f = self._fade_from
                if prog.dry[f] is None or (prog.dry_gain_start[f] == 0.0 and prog.dry_gain_end[f] == 0.0):
                    old = prog.buffers[f][p_old:p_old + m]
                else:
                    old = self._segment(prog, f, p_old, m, offset)
                np.multiply(old, self._fade_out[i0:i0 + m], out=sa)
                old = None  # views are freed at once, as temporaries would be: the peak stays minimal
                np.multiply(sa, self._fade_from_gain, out=sa)
            else:
                sa.fill(0.0)  # fading in from silence (or the old read position left the file)
            if not self._fading_out:
                if prog.dry[active] is None or (prog.dry_gain_start[active] == 0.0
                                                and prog.dry_gain_end[active] == 0.0):
                    new = prog.buffers[active][pos:pos + m]
                else:
                    new = self._segment(prog, active, pos, m, offset)
                np.multiply(new, self._fade_in[i0:i0 + m], out=sb)
                new = None
                np.multiply(sb, g, out=sb)
                np.add(sa, sb, out=sa)
            for c in range(channels):
                np.copyto(dst[:m, c], sa)
            self._fade_left -= m
        if m == k:
            return
        if prog.dry[active] is None or (prog.dry_gain_start[active] == 0.0 and prog.dry_gain_end[active] == 0.0):
            seg = prog.buffers[active][pos + m:pos + k]  # full strength: the buffer itself
            for c in range(channels):
                np.multiply(seg, g, out=dst[m:k, c])
            return
        a = m
        while a < k:
            b = min(k, a + _MIX_SCRATCH)
            seg = self._segment(prog, active, pos + a, b - a, offset + a)
            for c in range(channels):
                np.multiply(seg, g, out=dst[a:b, c])
            a = b


def seconds_label(seconds: float) -> str:
    """``m:ss.mmm`` for position readouts."""
    seconds = max(0.0, seconds)
    minutes = int(seconds // 60)
    return f"{minutes}:{seconds - 60 * minutes:06.3f}"


def gain_label(gain: PlaybackGain) -> str:
    """Short readout of a playback gain, e.g. ``-3.2 dB`` or ``+12.0 dB (limited -4.1)``."""
    text = f"{gain.gain_db:+.1f} dB"
    if gain.limited:
        text += f" (limited {gain.limit_db:.1f})"
    if gain.reason:
        text += " (not matched: " + gain.reason.split(":")[0] + ")"
    if math.isclose(gain.gain_db, 0.0, abs_tol=0.05) and not gain.limited and not gain.reason:
        text = "0.0 dB"
    return text
