"""The live engine: an input device (or a file played as if live) through a streaming model to an output
device, with bypass, strength, model switching, takes, and latency and overload figures.

Timeline (device samples at ``rate``; ``B`` = block, ``Q`` = pipeline delay)::

    callback i:  mic[iB:(i+1)B] <- input device            (copy into the mic ring)
                 output device  <- out[iB:(i+1)B]           (copy from the out ring, if published)
                               or mic[iB-Q:(i+1)B-Q]        (aligned bypass: the block came too late)
    processing:  mic block -> StreamChain -> wet (aligned: wet[p] answers mic[p])
                 out[n] = dry + g(n) * (wet - dry) at dry = mic[n - Q], wet = wet[n - Q]

A block that misses its deadline is played from the dry signal at the same position, so the output
never gaps; its edges are ramped so the fallback does not click: into it, the step between the last sample
played and the dry signal is carried into the dry block and ramped out over ``crossfade_ms``; back out of
it, the first ready block is crossfaded from the dry signal over the same ramp.

``Q = B + lag + headroom``: one block because callback ``i`` cannot hear block ``i``'s result (it is
processed after the callback returns), ``lag`` = :func:`~workbench.core.live.chain.pipeline_lag` (the
model's declared frame + look-ahead latency, its block buffering, the resamplers' delay both ways) and an
optional ``headroom`` that absorbs scheduling jitter. Because dry and wet are read at the same position,
bypass and strength are exact mixes of aligned signals, and a block that misses its deadline is replaced
by the dry signal at the same position: the output never gaps and its latency never grows.

Real-time rules of :meth:`LiveEngine._callback` (PortAudio's thread): it only copies between rings and
scratch blocks allocated at start (``np.copyto``), takes no lock, never raises (errors are counted) and
knows nothing of the GUI. The GUI and the processing thread talk through single attribute writes
(``_bypass``, ``_strength``, ``_incoming``, the take requests), atomic under the GIL.

Switches land on output block boundaries: a bypass or strength change starts a raised-cosine ramp of
``crossfade_ms`` (5 ms, as the transport's) on the first sample of the next block the processing thread
mixes; a model switch runs the new model beside the old one for ``warm_s`` (so its state has settled)
and crossfades from the old wet signal to the new one over the same ramp, starting on a block boundary.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError, one_line
from .chain import Admission, LiveError, StreamChain, open_stream_chain
from .realtime import (CALLBACK_PRIORITY, PROCESSING_PRIORITY, hold_gc_still, release_gc, request_realtime,
                       scheduling_line)
from .ring import SampleRing

try:  # PortAudio may be missing (libportaudio2 not installed): listing says so, the rest imports
    import sounddevice as _sd
    _SD_ERROR: str | None = None
except OSError as exc:  # pragma: no cover - depends on the machine
    _sd = None
    _SD_ERROR = f"PortAudio is not available ({exc})"


@dataclass(frozen=True)
class Device:
    """An audio device as PortAudio lists it (index, name, host API, channel counts, default rate)."""

    index: int
    name: str
    hostapi: str
    inputs: int
    outputs: int
    default_rate: float

    @property
    def label(self) -> str:
        return f"{self.index}: {self.name} ({self.hostapi})"


def list_devices() -> tuple[list[Device], tuple[int | None, int | None], str | None]:
    """``(devices, (default input index, default output index), reason)``; ``reason`` says why the list
    is empty."""
    if _sd is None:
        return [], (None, None), _SD_ERROR
    try:
        devs = _sd.query_devices()
        apis = _sd.query_hostapis()
        default = tuple(_sd.default.device)
    except Exception as exc:  # PortAudio raises several types; all mean "no devices"
        return [], (None, None), f"PortAudio could not list devices ({one_line(exc)})"
    out = [Device(i, d["name"], apis[d["hostapi"]]["name"], int(d["max_input_channels"]),
                  int(d["max_output_channels"]), float(d["default_samplerate"])) for i, d in enumerate(devs)]
    di, do = (int(v) if v is not None and int(v) >= 0 else None for v in default)
    reason = None if out else "PortAudio lists no audio device"
    return out, (di, do), reason


@dataclass
class LiveConfig:
    """Settings of one live run.

    Attributes:
        rate: device sample rate, Hz (44100, 48000 ...); models at other rates are resampled both ways.
        block: device block, samples (480 = 10 ms at 48 kHz).
        input_device, output_device: PortAudio device index or name (``None``: the default).
        output_channels: channels written (the mono result on each).
        headroom_blocks: extra delay, in blocks, that lets a late block still arrive in time.
        crossfade_ms: ramp of bypass, strength and model switches.
        warm_s: how long a newly switched-in model runs before it is faded in.
        resync_blocks: when processing falls this many blocks behind, the backlog is skipped (played
            dry) and the model continues at the present.
        realtime: ask for real-time scheduling of the callback and processing threads
            (:mod:`~workbench.core.live.realtime`); refused quietly where the system does not grant it.
    """

    rate: int = 48000
    block: int = 480
    input_device: int | str | None = None
    output_device: int | str | None = None
    output_channels: int = 1
    headroom_blocks: float = 0.0
    crossfade_ms: float = 5.0
    warm_s: float = 0.1
    resync_blocks: int = 50
    realtime: bool = True


@dataclass(frozen=True)
class LatencyReport:
    """Where the delay from microphone to ear comes from (device samples and milliseconds).

    Attributes:
        algorithmic: the model's frame + look-ahead latency (declared, at the device rate).
        resampling: the rest of the chain's lag: block buffering to the model's frame and the resamplers'
            filter delay both ways (``lag - algorithmic``).
        block: one device block (a block's result is heard in the next callback at the earliest).
        headroom: extra delay chosen for scheduling jitter.
        pipeline: ``algorithmic + resampling + block + headroom``: from a sample entering the callback to
            the same sample leaving it; exactly the offset between the take's two versions.
        device_in_s, device_out_s: the devices' buffers as PortAudio reports them.
    """

    rate: int
    algorithmic: float
    resampling: float
    block: int
    headroom: int
    pipeline: int
    device_in_s: float = 0.0
    device_out_s: float = 0.0

    def ms(self, samples: float) -> float:
        return 1000.0 * samples / self.rate

    @property
    def total_s(self) -> float:
        """Reported end-to-end: pipeline plus both device buffers."""
        return self.pipeline / self.rate + self.device_in_s + self.device_out_s

    def lines(self) -> list[str]:
        return [f"algorithmic (frame + look-ahead): {self.ms(self.algorithmic):.1f} ms",
                f"resampling and framing: {self.ms(self.resampling):.1f} ms",
                f"block ({self.block} samples): {self.ms(self.block):.1f} ms"
                + (f" + headroom {self.ms(self.headroom):.1f} ms" if self.headroom else ""),
                f"pipeline: {self.ms(self.pipeline):.1f} ms ({self.pipeline} samples)",
                f"device buffers (PortAudio): in {1000 * self.device_in_s:.1f} ms, out {1000 * self.device_out_s:.1f} ms",
                f"end to end (reported): {1000 * self.total_s:.1f} ms"]


@dataclass(frozen=True)
class LiveStats:
    """A snapshot of a running engine for the panel and the CLI.

    Attributes:
        load_median, load_max: processing time per block / block period over the last blocks.
        blocks: blocks processed. dropped: blocks the callback played dry because their result was late
            (the overload fallback). resyncs: times the backlog was skipped. xruns: PortAudio's
            input-overflow/output-underflow reports.
        fallback_recent: a block fell back within the last half second.
        measured_lag: the pipeline delay measured by cross-correlating what was heard with the microphone
            (device samples), or ``None`` before it could be measured.
        error: the model's failure, after which the engine plays the aligned dry signal.
        notes: advice for a person, e.g. the headroom that bursts of the device's callbacks need.
        scheduling: which live threads run real-time (:func:`~workbench.core.live.realtime.scheduling_line`).
        burst_blocks: the most device callbacks seen back to back.
    """

    model: str
    bypass: bool
    strength: float
    latency: LatencyReport
    load_median: float
    load_max: float
    blocks: int
    dropped: int
    late: int
    resyncs: int
    xruns: int
    callback_errors: int
    fallback_recent: bool
    running: bool
    error: str | None = None
    measured_lag: int | None = None
    notes: list[str] = field(default_factory=list)
    scheduling: str = ""
    burst_blocks: int = 0



@dataclass(frozen=True)
class LiveTake:
    """A recorded stretch of a live run, sample-aligned.

    Attributes:
        rate: device rate.
        microphone: ``(n,)`` what the input delivered.
        heard: ``(n,)`` what the output played, shifted back by the pipeline delay so ``heard[k]`` is the
            result for ``microphone[k]``.
        sent: ``(n + pipeline,)`` what the output played over the same time, unshifted.
        pipeline: the shift, device samples.
        model: id of the model that was live at the end (``bypass`` when none).
        dropped_blocks: output blocks inside the take that fell back to the dry signal.
        settings: the run's settings for the version's provenance.
    """

    rate: int
    microphone: np.ndarray
    heard: np.ndarray
    sent: np.ndarray
    pipeline: int
    model: str
    dropped_blocks: int
    settings: dict


def _fade(n: int) -> np.ndarray:
    """Raised-cosine fade-in of ``n`` samples (the transport's shape; in + out sum to one)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


class LiveEngine:
    """Runs one live session; see the module docstring.

    Build it with an :class:`~workbench.core.live.chain.Admission` (or ``None`` for a plain pass-through),
    then :meth:`start` (a duplex stream on the devices) or :meth:`start_file` (a file as if it came from the
    microphone, played on the output), :meth:`stop` when done.
    """

    def __init__(self, config: LiveConfig, admission: Admission | None):
        self.config = config
        self.rate = int(config.rate)
        self.block = int(config.block)
        if self.block < 16 or self.rate < 8000:
            raise LiveError(f"block {self.block} samples at {self.rate} Hz is not a usable live setting")
        self.admission = admission
        lag = admission.lag_samples if admission is not None else 0
        self.headroom = int(round(config.headroom_blocks * self.block))
        self.pipeline = self.block + lag + self.headroom
        B = self.block
        ring = max(8 * self.rate, 4 * (self.pipeline + B))
        self.mic = SampleRing(ring)
        self.heard = SampleRing(ring)
        self.out = SampleRing(max(64 * B, 2 * (self.pipeline + B)))
        self._fade_n = max(1, int(round(config.crossfade_ms * self.rate / 1000)))
        self._fade_w = _fade(self._fade_n)
        # callback scratch (allocated here, used by PortAudio's thread only)
        self._cb_block = np.zeros(B, np.float32)
        # the fallback's edges: a ramp of at most one block (the transport's 5 ms shape)
        self._edge_n = min(self._fade_n, B)
        self._edge_w = _fade(self._edge_n)
        self._fade_out = (1.0 - self._edge_w).astype(np.float32)
        self._cb_dry = np.zeros(B + 1, np.float32)
        self._cb_ramp = np.zeros(self._edge_n, np.float32)
        self._cb_prev_dry = False
        self._cb_last = 0.0
        self._silence = np.zeros(B, np.float32)
        self._cb_pos = 0
        self._cb_last_t = -1.0
        self._burst_gap_s = 0.25 * self.block / self.rate
        self._burst = 0
        #: the most callbacks that arrived back to back (the host buffer holds that many blocks): a block's
        #: result must then be ready that many blocks early, which headroom of ``burst_blocks - 1`` gives
        self.burst_blocks = 0
        self._drop_pos = np.full(4096, -1, np.int64)
        self.dropped = 0
        self.xruns = 0
        self.callback_errors = 0
        self._file: np.ndarray | None = None
        self._file_end = 0
        self.finished = threading.Event()
        # processing-thread state
        self._x = np.zeros(B, np.float32)
        self._dry = np.zeros(B, np.float32)
        self._wet = np.zeros(B, np.float32)
        self._wet2 = np.zeros(B, np.float32)
        self._g = np.ones(B, np.float32)
        self._y = np.zeros(B, np.float32)
        self._costs = np.zeros(256, np.float64)
        self._n_costs = 0
        self._next_in = 0
        self._next_out = 0
        self.late = 0
        self.resyncs = 0
        #: ``(input position, first output position, input fed until then)`` of each skip after the processing
        #: fell far behind: the model continues at the input position; output from the first output position
        #: on whose source lies before it is the dry input (as are the skipped blocks, counted as dropped)
        self.resync_origins: list[tuple[int, int]] = []
        self.error: str | None = None
        self._chain: StreamChain | None = None
        self._switch: tuple[StreamChain | None, StreamChain, int] | None = None
        self._incoming: StreamChain | None = None
        self._model_id = admission.enhancer.info.id if admission is not None else "bypass"
        #: ``(output position, gain from, gain to)`` of every ramp started, and ``(output position, model)``
        #: of every model crossfade: where switches landed.
        self.ramps: list[tuple[int, float, float]] = []
        self.model_switches: list[tuple[int, str]] = []
        self._bypass = False
        self._strength = 1.0
        self._g_cur = 1.0
        self._ramp: tuple[float, float, int] | None = None
        self._take_req = False
        self._take_stop_req = False
        self._take: dict | None = None
        self._take_end: int | None = None
        self.take_result: LiveTake | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._stream = None
        self._device_latency = (0.0, 0.0)
        self._dac_minus_adc = 0.0
        #: outcome of the real-time requests: ``False`` not asked, ``None`` granted, else the reason
        self.rt_callback: str | None | bool = False
        self.rt_processing: str | None | bool = False
        self._gc_held = False
        self._rt_in_callback = False  # set when PortAudio's thread, not a caller's, runs the callback
        self.running = False

    # ------------------------------------------------------------------------------------------ control

    def set_bypass(self, on: bool) -> None:
        """Hear the aligned raw input (True) or the model (False); ramps at the next block boundary."""
        self._bypass = bool(on)

    def set_strength(self, strength: float) -> None:
        """Dry/wet mix, 0 (raw) to 1 (model only); ramps at the next block boundary."""
        self._strength = float(min(max(strength, 0.0), 1.0))

    @property
    def bypass(self) -> bool:
        return self._bypass

    @property
    def strength(self) -> float:
        return self._strength

    @property
    def model_id(self) -> str:
        return self._model_id

    def can_switch_to(self, admission: Admission) -> str | None:
        """``None`` when ``admission``'s model fits this run's pipeline delay, else why not."""
        need = self.block + admission.lag_samples + self.headroom
        if need > self.pipeline:
            return (f"{admission.enhancer.info.id} needs {1000 * need / self.rate:.1f} ms of pipeline delay, this "
                    f"run has {1000 * self.pipeline / self.rate:.1f} ms; restart live mode with it")
        return None

    def switch_model(self, admission: Admission) -> None:
        """Crossfade to another admitted model without a gap (see the module docstring).

        Raises:
            LiveError: it needs a longer pipeline delay than this run has (restart with it), or a switch
                is still in progress.
        """
        why = self.can_switch_to(admission)
        if why:
            raise LiveError(why)
        if self._incoming is not None or self._switch is not None:
            raise LiveError("the previous model switch is still fading in; try again in a moment")
        self._incoming = open_stream_chain(admission.enhancer, self.rate, capacity=self.mic.capacity,
                                           quality=admission.quality)

    # ------------------------------------------------------------------------------------------ callback

    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        try:
            if self._rt_in_callback and self.rt_callback is False:
                self.rt_callback = request_realtime(CALLBACK_PRIORITY)  # once, on PortAudio's thread
            if status:
                self.xruns += 1
            pos = self._cb_pos
            now = time.perf_counter()
            # callbacks closer together than a quarter block period came in one burst of the host's buffer
            if now - self._cb_last_t < self._burst_gap_s:
                self._burst += 1
                if self._burst > self.burst_blocks:
                    self.burst_blocks = self._burst
            else:
                self._burst = 1
            self._cb_last_t = now
            if self._file is not None:
                self.mic.write(self._file[pos:pos + frames] if pos + frames <= len(self._file) else self._silence)
            else:
                self.mic.write(indata[:, 0])
            block = self._cb_block if frames == self.block else self._cb_block[:0]
            n = self._edge_n
            if frames == self.block and self.out.holds(pos, frames):
                self.out.read_into(pos, block)
                if self._cb_prev_dry:
                    # back from the fallback: crossfade from the dry signal to the result over the ramp
                    dry, edge = self._cb_dry[1:n + 1], block[:n]
                    self.mic.read_into(pos - self.pipeline, dry)
                    edge -= dry
                    edge *= self._edge_w
                    edge += dry
                    self._cb_prev_dry = False
            else:
                if frames != self.block:
                    raise ValueError("PortAudio delivered a block of another size")
                # the aligned dry block, with the sample before it
                self.mic.read_into(pos - self.pipeline - 1, self._cb_dry)
                np.copyto(block, self._cb_dry[1:])
                if not self._cb_prev_dry:
                    # into the fallback: the result just played and the dry signal differ at the seam; that
                    # step is carried into the dry block and ramped out, so the switch does not click
                    np.multiply(self._fade_out, self._cb_last - self._cb_dry[0], out=self._cb_ramp)
                    block[:n] += self._cb_ramp
                    self._cb_prev_dry = True
                self._drop_pos[self.dropped % len(self._drop_pos)] = pos
                self.dropped += 1
            if frames:
                self._cb_last = float(block[-1])
            outdata[:] = block[:, None]
            self.heard.write(block)
            self._cb_pos = pos + frames
            if time_info is not None:
                self._dac_minus_adc = time_info.outputBufferDacTime - time_info.inputBufferAdcTime
            if self._file is not None and self._cb_pos >= self._file_end:
                self.finished.set()
        except Exception:  # never raise into PortAudio: count it and play silence
            self.callback_errors += 1
            outdata.fill(0)

    # ------------------------------------------------------------------------------------------ mixing

    def _wet_ready(self, src: int, n: int) -> bool:
        end = src + n
        if self._switch is not None:
            old, new, f0 = self._switch
            need_old = min(end, f0 + self._fade_n)
            if old is not None and need_old > old.origin and old.wet.written < need_old:
                return False
            return end <= max(f0, new.origin) or new.wet.written >= end
        c = self._chain
        return c is None or end <= c.origin or c.wet.written >= end

    def _read_wet(self, chain: StreamChain | None, src: int, out: np.ndarray) -> None:
        """Aligned wet samples of ``chain`` at ``[src, src + len(out))``; before its origin, the dry signal."""
        if chain is None or src + len(out) <= chain.origin:
            np.copyto(out, self._dry)
            return
        if src < chain.origin:
            k = chain.origin - src
            np.copyto(out[:k], self._dry[:k])
            chain.wet.read_into(chain.origin, out[k:])
            return
        chain.wet.read_into(src, out)

    def _mix_block(self, j0: int) -> None:
        """Mix output block ``[j0, j0 + B)`` into ``self._y``."""
        B = self.block
        src = j0 - self.pipeline
        self.mic.read_into(src, self._dry)
        if self._switch is not None:
            old, new, f0 = self._switch
            self._read_wet(old, src, self._wet)
            self._read_wet(new, src, self._wet2)
            # weight of the new model at each position: 0 before f0, the ramp over the fade, 1 after
            w = self._g  # scratch reused before the gains are filled
            k = np.arange(src, src + B) - f0
            np.copyto(w, self._fade_w[np.clip(k, 0, self._fade_n - 1)])
            w[k < 0] = 0.0
            w[k >= self._fade_n] = 1.0
            self._wet += w * (self._wet2 - self._wet)
            if j0 <= f0 + self.pipeline < j0 + B:
                self.model_switches.append((f0 + self.pipeline, new.info.id))
            if src + B >= f0 + self._fade_n:
                if old is not None:
                    old.close()
                self._chain, self._switch = new, None
                self._model_id = new.info.id
        else:
            self._read_wet(self._chain, src, self._wet)
        if self._fill_gains(j0):
            # a constant gain of 1 or 0 copies, so the enhanced (or bypassed) output is bit-exact
            if self._g_cur == 1.0:
                np.copyto(self._y, self._wet)
                return
            if self._g_cur == 0.0:
                np.copyto(self._y, self._dry)
                return
        np.subtract(self._wet, self._dry, out=self._y)
        self._y *= self._g
        self._y += self._dry

    def _fill_gains(self, j0: int) -> bool:
        """Fill ``self._g`` for output block ``j0``; True when the gain is constant (``_g_cur``)."""
        target = 0.0 if self._bypass else self._strength
        if self._ramp is None and target != self._g_cur:
            self._ramp = (self._g_cur, target, 0)
            self.ramps.append((j0, self._g_cur, target))
        g = self._g
        if self._ramp is None:
            g.fill(self._g_cur)
            return True
        g0, g1, k = self._ramp
        m = min(self._fade_n - k, len(g))
        g[:m] = g0 + (g1 - g0) * self._fade_w[k:k + m]
        g[m:] = g1
        k += m
        if k >= self._fade_n:
            self._g_cur, self._ramp = g1, None
        else:
            self._ramp = (g0, g1, k)
        return False

    def _emit_ready(self) -> None:
        B = self.block
        while True:
            j0 = self._next_out
            src = j0 - self.pipeline
            if src + B > self._next_in or not self._wet_ready(src, B):
                return
            self._mix_block(j0)
            if self._cb_pos > j0:
                self.late += 1  # the callback already played this block dry
            else:
                self.out.write_at(j0, self._y)
            self._next_out = j0 + B

    # ------------------------------------------------------------------------------------------ thread

    def _resync(self) -> None:
        """Skip the backlog: the model continues at the present (its state kept); the skipped blocks play dry."""
        B = self.block
        self.resyncs += 1
        now = self.mic.written // B * B
        fed = self._next_in
        if self._switch is not None:  # a switch in progress: keep the new model only
            old, new, _ = self._switch
            if old is not None:
                old.close()
            self._chain, self._switch = new, None
            self._model_id = new.info.id
        if self._chain is not None:
            self._chain.restart_at(now)
        self._next_in = now
        self._next_out = max(self._next_out, -(-self._cb_pos // B) * B)
        self.resync_origins.append((now, self._next_out, fed))

    def _take_collect(self) -> None:
        if self._take_req and self._take is None:
            self._take_req = False
            r0 = self._cb_pos
            self._take = {"r0": r0, "r1": None, "mic": [], "sent": [], "mic_at": r0, "sent_at": r0,
                          "dropped_from": self.dropped}
        t = self._take
        if t is None:
            return
        if t["r1"] is None and self._take_end is not None:
            t["r1"] = self._take_end
        if self._take_stop_req and t["r1"] is None:
            self._take_stop_req = False
            t["r1"] = self._cb_pos
        mic_end = self.mic.written if t["r1"] is None else min(self.mic.written, t["r1"])
        sent_end = self.heard.written if t["r1"] is None else min(self.heard.written, t["r1"] + self.pipeline)
        for key, ring, at in (("mic", self.mic, "mic_at"), ("sent", self.heard, "sent_at")):
            end = mic_end if key == "mic" else sent_end
            if end > t[at]:
                start = max(t[at], end - ring.capacity)
                buf = np.empty(end - start, np.float32)
                ring.read_into(start, buf)
                t[key].append(buf)
                t[at] = end
        if t["r1"] is not None and t["mic_at"] >= t["r1"] and t["sent_at"] >= t["r1"] + self.pipeline:
            self._finish_take()

    def _finish_take(self) -> None:
        t = self._take
        if t is None:
            return
        self._take = None
        r0 = t["r0"]
        r1 = t["r1"] if t["r1"] is not None else t["mic_at"]
        n = r1 - r0
        mic = np.zeros(n, np.float32)
        got = np.concatenate(t["mic"]) if t["mic"] else np.zeros(0, np.float32)
        mic[:min(n, len(got))] = got[:n]
        sent = np.zeros(n + self.pipeline, np.float32)
        got = np.concatenate(t["sent"]) if t["sent"] else np.zeros(0, np.float32)
        sent[:min(len(sent), len(got))] = got[:len(sent)]
        drops = self._drop_pos[:min(self.dropped, len(self._drop_pos))]
        in_take = int(np.count_nonzero((drops >= r0) & (drops < r1 + self.pipeline)))
        settings = {"live": True, "device_rate": self.rate, "block": self.block,
                    "pipeline_samples": self.pipeline, "headroom_samples": self.headroom,
                    "strength": self._strength, "bypass": self._bypass, "dropped_blocks": in_take,
                    "model_rate": self.admission.enhancer.info.sample_rate if self.admission else self.rate}
        self.take_result = LiveTake(self.rate, mic, sent[self.pipeline:self.pipeline + n].copy(), sent,
                                    self.pipeline, self._model_id, in_take, settings)

    def _run(self) -> None:
        B = self.block
        poll = B / self.rate / 8
        if self.config.realtime:
            self.rt_processing = request_realtime(PROCESSING_PRIORITY)
        while not self._stop:
            if self._incoming is not None and self._switch is None:
                new, self._incoming = self._incoming, None
                new.restart_at(self._next_in)
                warm = int(self.config.warm_s * self.rate)
                f0 = -(-(self._next_in + warm + self.pipeline) // B) * B - self.pipeline
                self._switch = (self._chain, new, f0)
            if self.mic.written - self._next_in > self.config.resync_blocks * B:
                self._resync()
            if self.mic.written < self._next_in + B:
                self._take_collect()
                time.sleep(poll)
                continue
            t0 = time.perf_counter()
            self.mic.read_into(self._next_in, self._x)
            try:
                if self._switch is not None:
                    old, new, _ = self._switch
                    if old is not None:
                        old.push(self._x)
                    new.push(self._x)
                elif self._chain is not None:
                    self._chain.push(self._x)
            except ModelError as exc:
                self._fail(str(exc))
            self._next_in += B
            self._emit_ready()
            self._costs[self._n_costs % len(self._costs)] = time.perf_counter() - t0
            self._n_costs += 1
            self._take_collect()
        self._finish_take()

    def _fail(self, message: str) -> None:
        """The model failed: report it and go on with the aligned dry signal."""
        self.error = message
        for c in (self._chain, *(self._switch[:2] if self._switch else ())):
            if c is not None:
                c.close()
        self._chain, self._switch = None, None
        self._model_id = "bypass"

    # ------------------------------------------------------------------------------------------ start/stop

    def _prepare(self) -> None:
        if self.running:
            raise LiveError("this live run is already started")
        if self.admission is not None:
            self._warm_up()
            self._chain = open_stream_chain(self.admission.enhancer, self.rate, capacity=self.mic.capacity,
                                            quality=self.admission.quality)
        # Blocks whose source lies before the first sample are silence: publish them now, so the first
        # callbacks find their output ready.
        self._next_in = 0
        while self._next_out + self.block <= self.pipeline:
            self._mix_block(self._next_out)
            self.out.write_at(self._next_out, self._y)
            self._next_out += self.block
        self._stop = False
        hold_gc_still()
        self._gc_held = True
        self._thread = threading.Thread(target=self._run, name="live-processing", daemon=True)
        self._thread.start()

    def _warm_up(self, seconds: float = 0.25) -> None:
        """Run a throwaway stream of the model over a quarter second of quiet noise before the device
        opens: first calls allocate (sessions, caches, lazily built kernels) and would otherwise miss the
        first deadlines. The live stream itself starts from the model's initial state."""
        adm = self.admission
        chain = open_stream_chain(adm.enhancer, self.rate, capacity=8 * self.block + int(seconds * self.rate),
                                  quality=adm.quality)
        try:
            noise = (1e-3 * np.random.default_rng(0).standard_normal(self.block)).astype(np.float32)
            for _ in range(max(1, int(seconds * self.rate) // self.block)):
                chain.push(noise)
        except ModelError:
            pass  # the run itself reports a failing model
        finally:
            chain.close()

    def start(self) -> None:
        """Open a duplex stream on the configured devices and start processing.

        Raises:
            LiveError: PortAudio is missing or the devices refuse the settings (one line).
        """
        if _sd is None:
            raise LiveError(_SD_ERROR or "PortAudio is not available")
        self._prepare()
        cfg = self.config
        self._rt_in_callback = cfg.realtime
        try:
            self._stream = _sd.Stream(samplerate=self.rate, blocksize=self.block, dtype="float32", latency="low",
                                      channels=(1, cfg.output_channels),
                                      device=(cfg.input_device, cfg.output_device), callback=self._callback)
            self._device_latency = tuple(float(v) for v in self._stream.latency)
            self._stream.start()
        except Exception as exc:
            self._abort()
            raise LiveError(f"cannot open the audio devices at {self.rate} Hz, block {self.block}: "
                            f"{one_line(exc)}") from None
        self.running = True

    def prepare_file(self, audio: np.ndarray) -> None:
        """Make mono ``audio`` (at ``rate``) the input instead of a capture device and start processing;
        :meth:`start_file` then opens the output. :attr:`finished` is set once the result of its last
        sample has been played, and :attr:`take_result` then holds the file's live result (its ``heard``,
        aligned with ``audio``)."""
        x = np.asarray(audio, np.float32).reshape(-1)
        B = self.block
        self._file_end = -(-(len(x) + self.pipeline) // B) * B
        self._file = np.zeros(self._file_end + B, np.float32)
        self._file[:len(x)] = x
        # the whole file is one take, read back aligned once its last sample was heard
        self.take_result = None
        self._take = {"r0": 0, "r1": None, "mic": [], "sent": [], "mic_at": 0, "sent_at": 0, "dropped_from": 0}
        self._take_end = len(x)
        self._prepare()

    def start_file(self, audio: np.ndarray) -> None:
        """Play mono ``audio`` (at ``rate``) through the live path as if it came from the microphone, on
        the output device (see :meth:`prepare_file`).

        Raises:
            LiveError: PortAudio is missing or the output device refuses the settings.
        """
        if _sd is None:
            raise LiveError(_SD_ERROR or "PortAudio is not available")
        self.prepare_file(audio)
        cfg = self.config
        self._rt_in_callback = cfg.realtime
        try:
            self._stream = _sd.OutputStream(samplerate=self.rate, blocksize=self.block, dtype="float32", latency="low",
                                            channels=cfg.output_channels, device=cfg.output_device,
                                            callback=lambda o, f, t, s: self._callback(None, o, f, t, s))
            self._device_latency = (0.0, float(self._stream.latency))
            self._stream.start()
        except Exception as exc:
            self._abort()
            raise LiveError(f"cannot open the output device at {self.rate} Hz, block {self.block}: "
                            f"{one_line(exc)}") from None
        self.running = True

    def _abort(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._gc_held:
            self._gc_held = False
            release_gc()
        for c in (self._chain, self._incoming, *(self._switch[:2] if self._switch else ())):
            if c is not None:
                c.close()
        self._chain = self._incoming = self._switch = None
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:
                pass
            self._stream = None

    def stop(self) -> None:
        """Stop the device stream, then the processing thread; close the model streams. Idempotent."""
        if self._stream is not None:
            try:
                # abort, not stop: a live stream has nothing worth playing out, and a stop waits for
                # PortAudio to drain its buffers while the callback keeps running
                self._stream.abort()
            finally:
                self._stream.close()
                self._stream = None
        self._abort()
        self.running = False

    def __enter__(self) -> "LiveEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ takes

    def start_take(self) -> None:
        """Start recording at the next block the callback plays."""
        self.take_result = None
        self._take_req = True

    def stop_take(self, timeout_s: float = 2.0) -> LiveTake | None:
        """End the take and wait (at most ``timeout_s``; 0: do not wait) until the result of its last
        sample was played; returns :attr:`take_result` (``None`` while it is not complete)."""
        self._take_stop_req = True
        end = time.monotonic() + timeout_s
        while timeout_s > 0 and self.take_result is None and time.monotonic() < end:
            if self._thread is None or not self._thread.is_alive():
                self._finish_take()
                break
            time.sleep(0.005)
        return self.take_result

    # ------------------------------------------------------------------------------------------ figures

    def latency_report(self) -> LatencyReport:
        adm = self.admission
        alg = adm.algorithmic_samples if adm is not None else 0.0
        lag = adm.lag_samples if adm is not None else 0
        return LatencyReport(self.rate, alg, lag - alg, self.block, self.headroom, self.pipeline,
                             self._device_latency[0], self._device_latency[1])

    def measure_lag(self, seconds: float = 2.0) -> int | None:
        """The pipeline delay measured on the signals: the lag ``0 <= L <= 2·pipeline + block`` maximising
        the cross-correlation ``Σ mic[n]·heard[n + L]`` over the last ``seconds`` (``None`` when too quiet,
        or too weakly correlated, to tell). Plain numpy FFTs: cheap enough for the GUI thread."""
        n = int(seconds * self.rate)
        end = min(self.mic.written, self.heard.written)
        if end < n // 2:
            return None
        n = min(n, end)
        mic = np.empty(n, np.float32)
        heard = np.empty(n, np.float32)
        self.mic.read_into(end - n, mic)
        self.heard.read_into(end - n, heard)
        mic -= mic.mean()
        heard -= heard.mean()
        norm = float(np.linalg.norm(mic) * np.linalg.norm(heard))
        if norm < 1e-9:
            return None
        size = 1 << int(np.ceil(np.log2(2 * n)))
        corr = np.fft.irfft(np.conj(np.fft.rfft(mic, size)) * np.fft.rfft(heard, size), size)
        max_lag = min(2 * self.pipeline + self.block, n // 2)
        lag = int(np.argmax(corr[:max_lag + 1]))
        return lag if corr[lag] / norm > 0.2 else None

    def stats(self, measure: bool = False) -> LiveStats:
        k = min(self._n_costs, len(self._costs))
        period = self.block / self.rate
        recent = self._costs[:k] / period if k else np.zeros(1)
        last_drop = int(self._drop_pos[(self.dropped - 1) % len(self._drop_pos)]) if self.dropped else -1
        recent_fb = self.dropped > 0 and self._cb_pos - last_drop < self.rate // 2
        return LiveStats(self._model_id, self._bypass, self._strength, self.latency_report(),
                         float(np.median(recent)), float(np.max(recent)), self._n_costs, self.dropped, self.late,
                         self.resyncs, self.xruns, self.callback_errors, recent_fb, self.running, self.error,
                         self.measure_lag() if measure else None,
                         scheduling=scheduling_line(self.rt_callback, self.rt_processing),
                         burst_blocks=self.burst_blocks, notes=self._notes())

    def _notes(self) -> list[str]:
        need = self.burst_blocks - 1
        if self.dropped and need > 0 and self.headroom < need * self.block:
            return [f"the device delivers {self.burst_blocks} blocks at a time, so each result must be ready "
                    f"{need} block{'s' if need > 1 else ''} earlier than one block allows: headroom of {need} "
                    f"block{'s' if need > 1 else ''} (+{1000 * need * self.block / self.rate:.0f} ms) avoids "
                    "these late blocks"]
        return []

    @property
    def position(self) -> int:
        """Samples the callback has played."""
        return self._cb_pos

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def drive_callback(engine: LiveEngine, mic: np.ndarray, realtime: bool = False) -> np.ndarray:
    """Run ``engine``'s callback by hand over ``mic`` ``(n,)``, block by block, as PortAudio would, with the
    processing thread running; returns what the output received. For tests and the bench without devices.
    ``realtime`` paces the blocks at the block period; otherwise each block waits until the previous block's
    result is published (a processing thread that always keeps up)."""
    B = engine.block
    n = -(-len(mic) // B) * B
    x = np.zeros((n, 1), np.float32)
    x[:len(mic), 0] = mic
    out = np.zeros((n, 1), np.float32)
    engine._prepare()
    engine.running = True
    t0 = time.perf_counter()
    try:
        for i in range(0, n, B):
            if realtime:
                delay = t0 + i / engine.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            else:
                deadline = time.monotonic() + 10.0
                while not engine.out.holds(i, B) and time.monotonic() < deadline and engine.thread_alive:
                    time.sleep(0.0002)
            engine._callback(x[i:i + B], out[i:i + B], B, None, None)
    finally:
        engine._stop = True
        if engine._thread is not None:
            engine._thread.join()
        if engine._gc_held:
            engine._gc_held = False
            release_gc()
    return out[:len(mic), 0]


__all__ = ["LiveEngine", "LiveConfig", "LiveStats", "LatencyReport", "LiveTake", "Device", "list_devices",
           "drive_callback", "LiveError"]
