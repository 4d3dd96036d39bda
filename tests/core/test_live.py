"""Live mode without devices: rings, admission (streaming path, causality, cost), the pipeline delay,
the mixer's ramps and fallback driven through the callback by hand, and the headless command on ALSA
file devices (see test_live_devices.py for the recipe)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.workflows.probes import probe_signal
from workbench.core.enhance.registry import load_enhancer
from workbench.core.live.chain import LiveError, StreamChain, admit, pipeline_lag
from workbench.core.live.engine import LiveConfig, LiveEngine, drive_callback
from workbench.core.live.ring import SampleRing

from live_fallback import fallback_edges, into_fallback, out_of_fallback, with_fallback


class _BlockNormalisingStream(EnhancerStream):
    """Normalises every block it is given by that block's own mean and RMS: statistics over future samples,
    not frozen ones, so the output depends on input up to a whole block ahead."""

    def process(self, block):
        centred = block - block.mean()
        return (centred / (np.sqrt(np.mean(centred ** 2)) + 1e-3) * 0.1).astype(np.float32)


class _SlowStream(EnhancerStream):
    def process(self, block):
        time.sleep(0.02)
        return np.array(block, np.float32)


class _Model(Enhancer):
    def __init__(self, stream_cls, model_id, processing="streaming", block_samples=1):
        self.stream_cls = stream_cls
        self.info = EnhancerInfo(model_id, model_id, "test model", 16000, None, 0, processing=processing,
                                 block_samples=block_samples)

    def new_stream(self):
        return self.stream_cls()

    def process_offline(self, audio):
        return audio


def test_ring_keeps_absolute_positions_across_the_wrap():
    ring = SampleRing(1000)
    x = np.arange(2500, dtype=np.float32)
    for i in range(0, 2500, 300):
        ring.write(x[i:i + 300])
    out = np.empty(700, np.float32)
    ring.read_into(1800, out)
    np.testing.assert_array_equal(out, x[1800:2500])
    assert ring.holds(1500, 1000) and not ring.holds(1400, 100)
    fresh = SampleRing(100)
    fresh.write(x[:20])
    fresh.read_into(-5, out[:10])  # before the stream began: silence
    np.testing.assert_array_equal(out[:10], np.r_[np.zeros(5), x[:5]])


def test_non_causal_model_is_refused_with_the_probes_reason():
    with pytest.raises(LiveError, match=r"normaliser: not causal, so it cannot run live: its output changes \d+ "
                                        r"samples before an input change; it declares 0 samples"):
        admit(_Model(_BlockNormalisingStream, "normaliser", block_samples=256), 16000, 160, check_cost=False)


def test_model_slower_than_the_block_period_is_refused_with_the_measured_cost():
    with pytest.raises(LiveError, match=r"too slow.*ms median.*per 10\.0 ms block"):
        admit(_Model(_SlowStream, "slow"), 16000, 160, check_causality=False)


def test_offline_only_model_is_refused():
    with pytest.raises(LiveError, match="needs a streaming path"):
        admit(_Model(_SlowStream, "offline-only", processing="offline"), 16000, 160)


def test_pipeline_lag_counts_the_resamplers_and_framing():
    rn = load_enhancer("rnnoise")
    at48 = pipeline_lag(rn, 48000, 480)
    at44 = pipeline_lag(rn, 44100, 441)
    assert at48 == 960  # its 10 ms frame arrives whole with each 10 ms block: only the declared 20 ms
    # at 44.1 kHz both resamplers' filters add delay and the frames no longer line up with the blocks
    assert at44 > 960 * 44100 / 48000 + 20


def test_strength_and_bypass_ramps_start_on_block_boundaries_and_are_exact_mixes():
    adm = admit(load_enhancer("wiener"), 16000, 160, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=16000, block=160), adm)
    x = probe_signal(16000, 1.5)
    # the requests arrive between callbacks, as the GUI's would, while the processing thread runs
    engine._prepare()
    y = np.zeros((len(x) // 160 * 160, 1), np.float32)
    try:
        for pos in range(0, len(y), 160):
            if pos == 4000 // 160 * 160:
                engine.set_strength(0.25)
            if pos == 9000 // 160 * 160:
                engine.set_bypass(True)
            deadline = time.monotonic() + 10
            while not engine.out.holds(pos, 160) and time.monotonic() < deadline:
                time.sleep(0.0002)
            engine._callback(x[pos:pos + 160, None], y[pos:pos + 160], 160, None, None)
    finally:
        engine.stop()
    y = y[:, 0]
    x = x[:len(y)]
    assert engine.dropped == 0
    q, fade = engine.pipeline, engine._fade_n
    assert fade == 80
    assert [(g0, g1) for _, g0, g1 in engine.ramps] == [(1.0, 0.25), (0.25, 0.0)]
    chain = StreamChain(adm.enhancer, 16000)
    for i in range(0, len(x) - 159, 160):
        chain.push(x[i:i + 160])
    wet = np.zeros(len(x), np.float32)
    chain.wet.read_into(0, wet[:chain.wet.written])
    n = len(x)
    w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
    g = np.ones(n, np.float32)
    for pos, g0, g1 in engine.ramps:
        assert pos % 160 == 0
        g[pos:pos + fade] = g0 + (g1 - g0) * w
        g[pos + fade:] = g1
    dry = np.r_[np.zeros(q, np.float32), x[:n - q]]
    wd = np.r_[np.zeros(q, np.float32), wet[:n - q]]
    np.testing.assert_allclose(y, dry + g * (wd - dry), atol=1e-6)
    # after the bypass ramp the output is the input, delayed, bit for bit
    last = engine.ramps[-1][0] + fade
    np.testing.assert_array_equal(y[last:], dry[last:])


def test_a_model_that_fails_mid_run_falls_back_to_the_aligned_input():
    class Failing(EnhancerStream):
        calls = 0

        def process(self, block):
            Failing.calls += 1
            if Failing.calls > 20:
                raise RuntimeError("native library lost its state")
            return np.array(block, np.float32)

    adm = admit(_Model(Failing, "failing"), 16000, 160, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=16000, block=160), adm)
    x = probe_signal(16000, 0.5)
    y = drive_callback(engine, x)
    assert engine.error and "native library lost its state" in engine.error
    q = engine.pipeline
    np.testing.assert_array_equal(y[q:], x[:len(x) - q])


# ------------------------------------------------------------------------------- headless command

ASOUNDRC = """pcm.!default {{ type asym playback.pcm "fileout" capture.pcm "filein" }}
pcm.fileout {{ type file slave.pcm "nullout" file "{out}" format "raw" }}
pcm.filein  {{ type file slave.pcm "nullin" file "/dev/null" infile "{inp}" format "raw" }}
pcm.nullout {{ type null }}
pcm.nullin  {{ type null }}
"""


class PacedReader(threading.Thread):
    """Drains the playback FIFO at the sample rate (reopening it: listing devices opens it too)."""

    def __init__(self, path: Path, rate: int):
        super().__init__(daemon=True)
        self.path, self.rate, self.stop, self.data = path, rate, threading.Event(), bytearray()

    def run(self):
        t0, n = None, 0
        while not self.stop.is_set():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                try:  # a small pipe: the writer runs at most ~20 ms ahead of this paced reader
                    fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
                except OSError:  # data already waiting in a reopened pipe: keep its size
                    pass
                while b := os.read(fd, 960):
                    t0 = t0 or time.perf_counter()
                    self.data.extend(b)
                    n += len(b) // 4
                    wait = t0 + n / self.rate - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    elif wait < -0.02:
                        t0 -= wait
            finally:
                os.close(fd)

    def finish(self):
        self.stop.set()
        if self.is_alive():  # wake an open() that waits for a writer
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self.join(10)


def _alsa_env(tmp_path: Path, x: np.ndarray, rate: int) -> tuple[dict, PacedReader]:
    home = tmp_path / "home"
    home.mkdir()
    inp, out = tmp_path / "in.raw", tmp_path / "out.raw"
    pad = np.zeros(len(x) + 4 * rate, np.float32)
    pad[:len(x)] = x
    pad.astype("<f4").tofile(inp)
    os.mkfifo(out)
    (home / ".asoundrc").write_text(ASOUNDRC.format(out=out, inp=inp))
    reader = PacedReader(out, rate)
    reader.start()
    return {**os.environ, "HOME": str(home)}, reader


def _workbench(args, env):
    return subprocess.run([sys.executable, "-m", "workbench", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def streaming_output(model: str, x: np.ndarray, rate: int, block: int) -> np.ndarray:
    """The model's streaming output of ``x`` pushed in ``block``-sample blocks, aligned with ``x``."""
    adm = admit(load_enhancer(model), rate, block, check_causality=False, check_cost=False)
    chain = StreamChain(adm.enhancer, rate, capacity=len(x) + block)
    for i in range(0, len(x) - block + 1, block):
        chain.push(x[i:i + block])
    wet = np.zeros(len(x), np.float32)
    chain.wet.read_into(0, wet[:min(len(x), chain.wet.written)])
    return wet


def segment(a: np.ndarray, start: int, n: int) -> np.ndarray:
    """``a[start:start + n]`` with silence before 0 and after the end."""
    out = np.zeros(n, np.float32)
    lo, hi = max(start, 0), min(start + n, len(a))
    if hi > lo:
        out[lo - start:hi - start] = a[lo:hi]
    return out


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=0, atol=2e-6))


def check_blocks(sent: np.ndarray, start: int, q: int, wet: np.ndarray, x: np.ndarray, block: int,
                 resyncs: int = 0, rate: int = 48000) -> int:
    """Each ``block`` of ``sent`` (stream positions ``start + k``) is the wet signal at ``start + k - q``
    (exactly), or a late block played from the dry signal there, with the fallback's ramped edges: the
    step from the last sample heard carried in and ramped out, and the first block back on time
    crossfaded from the dry signal. Returns how many blocks were late. After a resync (processing fell
    far behind and the model restarted, reported by the run) the model's state differs from the
    reference's, so the comparison ends at the first block that is none of these."""
    ramp = fallback_edges(rate, block)
    n = len(ramp)
    dry_blocks, prev_dry, last = 0, False, 0.0
    for k in range(0, len(sent) - block + 1, block):
        src = start + k - q
        got = sent[k:k + block]
        want_wet, want_dry = segment(wet, src, block), segment(x, src, block)
        on_time = out_of_fallback(want_wet, want_dry, ramp) if prev_dry else want_wet
        late = want_dry if prev_dry else into_fallback(want_dry, last, segment(x, src - 1, 1)[0], ramp)
        if k == 0 and start > 0:
            # The block before the take is not in it: it may have been late (then this block, on time, is
            # crossfaded from the dry signal), and the last sample it played is unknown (a late block here
            # carries an unknown step over the ramp, then is the dry signal).
            if close(got, out_of_fallback(want_wet, want_dry, ramp)):
                last = float(got[-1])
                continue
            if close(got[n:], want_dry[n:]) and not np.array_equal(got, want_wet):
                prev_dry, last = True, float(got[-1])
                dry_blocks += 1
                continue
        if np.array_equal(got, on_time) or (prev_dry and close(got, on_time)):
            prev_dry = False
        elif close(got, late):
            prev_dry = True
            dry_blocks += 1
        else:
            assert resyncs, f"output block at {k} is neither the model's output nor the input"
            assert dry_blocks > 0, "a restart without a late block before it"
            break
        last = float(got[-1])
    return dry_blocks


def final_counts(stdout: str) -> tuple[int, int]:
    """``(blocks played dry, resyncs)`` from the command's final status line."""
    final = [line for line in stdout.splitlines() if line.startswith("final:")][-1]
    dropped = int(final.split(" played dry")[0].rsplit(" ", 1)[1])
    resyncs = int(final.split(" resyncs")[0].rsplit(" ", 1)[1])
    return dropped, resyncs


@pytest.mark.slow
def test_headless_take_writes_aligned_input_output_and_result(tmp_path):
    pytest.importorskip("sounddevice")
    rate = 48000
    x = probe_signal(rate, 3.0)
    env, reader = _alsa_env(tmp_path, x, rate)
    out = tmp_path / "take.wav"
    try:
        proc = _workbench(["live", "-m", "rnnoise", "--no-probe", "--headroom-blocks", "3", "--record", str(out),
                           "--duration", "1.0"], env)
    finally:
        reader.finish()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pipeline: 60.0 ms (2880 samples)" in proc.stdout
    result, sr = sf.read(out, dtype="float32")
    mic, _ = sf.read(tmp_path / "take-input.wav", dtype="float32")
    sent, _ = sf.read(tmp_path / "take-output.wav", dtype="float32")
    q = 2880
    assert sr == rate and len(result) == len(mic) >= rate // 2 and len(sent) == len(mic) + q
    np.testing.assert_array_equal(sent[q:], result)
    # the microphone is the capture file from a block boundary on
    start = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(x, 64) == mic[:64], axis=1))[0])
    assert start % 480 == 0
    np.testing.assert_array_equal(mic, x[start:start + len(mic)])
    # every output block is the model's streaming output of the input, or (a block that was late) the
    # input itself, both delayed by exactly the pipeline; no other sample values occur
    wet = streaming_output("rnnoise", x, rate, 480)
    dropped, resyncs = final_counts(proc.stdout)
    assert check_blocks(sent, start, q, wet, x, 480, resyncs) <= dropped
    # an existing output is never replaced without --overwrite, before any device is opened
    again = _workbench(["live", "--record", str(out), "--duration", "0.1"], env)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_play_file_as_if_live_gives_the_streaming_result_aligned(tmp_path):
    pytest.importorskip("sounddevice")
    rate = 48000
    x = probe_signal(rate, 1.0)
    src = tmp_path / "speech.wav"
    sf.write(src, x, rate, subtype="FLOAT")
    env, reader = _alsa_env(tmp_path, np.zeros(rate, np.float32), rate)
    out = tmp_path / "live.wav"
    try:
        proc = _workbench(["live", "-m", "wiener", "--no-probe", "--headroom-blocks", "3", "--play", str(src),
                           "--record", str(out)], env)
    finally:
        reader.finish()
    assert proc.returncode == 0, proc.stderr[-2000:]
    result, _ = sf.read(out, dtype="float32")
    assert len(result) == len(x)
    wet = streaming_output("wiener", np.r_[x, np.zeros(rate, np.float32)], rate, 480)
    sent, _ = sf.read(tmp_path / "live-output.wav", dtype="float32")
    q = len(sent) - len(x)
    assert q == 480 + admit(load_enhancer("wiener"), rate, 480, check_causality=False, check_cost=False).lag_samples + 3 * 480
    np.testing.assert_array_equal(sent[q:], result)
    dropped, resyncs = final_counts(proc.stdout)
    assert check_blocks(sent, 0, q, wet, np.r_[x, np.zeros(rate, np.float32)], 480, resyncs) <= dropped


@pytest.mark.slow
def test_a_long_stall_skips_the_backlog_and_the_model_continues_aligned():
    """Processing stalls for 0.8 s (80 blocks) with blocks arriving in real time: the late blocks play dry,
    the backlog is skipped, and the model continues at the present with its output still aligned."""
    from tests.core.test_live_devices import reference_wet

    wiener = load_enhancer("wiener").for_rate(16000)

    class StallOnce(EnhancerStream):
        def __init__(self):
            self.inner, self.calls = wiener.new_stream(), 0

        def process(self, block):
            self.calls += 1
            if self.calls == 30:
                time.sleep(0.8)
            return self.inner.process(block)

    class Stalling(Enhancer):
        info = wiener.info

        def new_stream(self):
            return StallOnce()

    adm = admit(Stalling(), 16000, 160, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=16000, block=160, resync_blocks=20), adm)
    x = probe_signal(16000, 2.0)
    y = drive_callback(engine, x, realtime=True)
    assert engine.resyncs >= 1 and engine.dropped >= 20
    q = engine.pipeline
    wet = reference_wet("wiener", x, 16000, 160, restarts=tuple(engine.resync_origins), pipeline=q)
    expected = np.r_[np.zeros(q, np.float32), wet[:len(x) - q]]
    dry = np.r_[np.zeros(q, np.float32), x[:len(x) - q]]
    late = engine._drop_pos[:engine.dropped]
    expected = with_fallback(expected, dry, late, 160, fallback_edges(16000, 160))
    np.testing.assert_allclose(y, expected, rtol=0, atol=2e-6)


def test_late_blocks_fall_back_without_a_click():
    """A model that halves a low tone stalls three times: its late blocks play the dry tone, twice as loud.
    Without ramps each switch would jump by up to 0.4; with them no step between neighbouring samples is
    much larger than the tone's own (0.012 for 0.8 at 37 Hz, 16 kHz)."""
    wiener = load_enhancer("wiener").for_rate(16000)

    class HalfStalling(EnhancerStream):
        def __init__(self):
            self.inner, self.calls = wiener.new_stream(), 0

        def process(self, block):
            self.calls += 1
            if self.calls in (40, 80, 120):
                time.sleep(0.04)
            return 0.5 * self.inner.process(block)

    class Half(Enhancer):
        info = wiener.info

        def new_stream(self):
            return HalfStalling()

    adm = admit(Half(), 16000, 160, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=16000, block=160, realtime=False), adm)
    engine._warm_up = lambda: None  # the stalls are counted from the run's own first call
    t = np.arange(int(1.8 * 16000)) / 16000
    x = (0.8 * np.sin(2 * np.pi * 37 * t + 0.3)).astype(np.float32)  # no zero crossing on a block edge
    y = drive_callback(engine, x, realtime=True)
    assert engine.dropped >= 3 and engine.resyncs == 0
    settled = y[int(0.3 * 16000):]
    assert np.max(np.abs(np.diff(settled))) < 0.04


def test_a_chain_of_models_runs_live_step_by_step_and_stays_aligned():
    """``wiener+logmmse`` live: the output is logmmse's streaming output of wiener's streaming output,
    both aligned, delayed by exactly the reported pipeline, which adds the steps' delays."""
    from workbench.core.live.chain import LiveCascade

    rate, block = 16000, 160
    adm = admit(load_enhancer("wiener+logmmse"), rate, block, check_causality=True, check_cost=False)
    assert isinstance(adm.enhancer, LiveCascade) and adm.enhancer.info.id == "wiener+logmmse"
    assert adm.causality.startswith("wiener: causal") and "logmmse: causal" in adm.causality
    singles = [admit(load_enhancer(m), rate, block, check_causality=False, check_cost=False)
               for m in ("wiener", "logmmse")]
    assert adm.algorithmic_samples == sum(a.algorithmic_samples for a in singles)
    assert adm.lag_samples >= max(a.lag_samples for a in singles)
    x = probe_signal(rate, 2.0)
    engine = LiveEngine(LiveConfig(rate=rate, block=block), adm)
    y = drive_callback(engine, x)
    assert engine.dropped == 0
    first = streaming_output("wiener", x, rate, block)
    both = streaming_output("logmmse", first, rate, block)
    q = engine.pipeline
    # the end of ``both`` answers input the reference pushed without the live run's extra blocks
    n = len(x) - q - adm.lag_samples - 2 * block
    np.testing.assert_allclose(y[q:q + n], both[:n], rtol=0, atol=1e-6)
    assert np.max(np.abs(both[:n])) > 0.01  # the comparison is not between silences


def test_a_chain_with_a_step_that_cannot_stream_is_refused_naming_the_step():
    with pytest.raises(LiveError, match=r"step 2: .*streaming"):
        admit(load_enhancer("wiener+wpe-dereverb"), 16000, 160, check_causality=False, check_cost=False)


def test_nsnet2_runs_live_on_its_carried_state_path():
    """NSNet2 streams (GRU states carried, one hop of latency): admitted for live use, causal by the probe,
    and its live output is its streaming output, aligned."""
    rate, block = 48000, 480
    adm = admit(load_enhancer("nsnet2-48k"), rate, block, check_causality=True, check_cost=False)
    assert adm.causality.startswith("causal")
    x = probe_signal(rate, 1.5)
    engine = LiveEngine(LiveConfig(rate=rate, block=block), adm)
    y = drive_callback(engine, x)
    assert engine.dropped == 0
    q = engine.pipeline
    wet = streaming_output("nsnet2-48k", x, rate, block)
    n = len(x) - q
    np.testing.assert_allclose(y[q:], wet[:n], rtol=0, atol=1e-6)
    assert np.max(np.abs(wet[:n])) > 0.01
