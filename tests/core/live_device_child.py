"""Child process of the live device tests: runs one live scenario on the ALSA file devices that the parent
configured through ``HOME/.asoundrc`` (PortAudio reads the ALSA configuration when sounddevice is
imported, so it has to happen in a fresh process).

The capture device reads ``in.raw`` (float32) and the playback device writes into the FIFO ``out.raw``,
which this process drains at the sample rate: the null devices behind the file plugin accept audio as fast
as it comes, the paced reader makes the run real-time. Prints one JSON line with what the parent checks.

Usage: python live_device_child.py DIR SCENARIO MODEL RATE BLOCK HEADROOM_BLOCKS SECONDS
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time

import numpy as np


class _SometimesSlowStream:
    """Pass-through that stalls for ``stall_s`` on every ``every``-th call: an artificially overloaded model."""

    def __init__(self, every: int, stall_s: float):
        self.calls, self.every, self.stall_s = 0, every, stall_s

    def process(self, block):
        self.calls += 1
        if self.calls % self.every == 0:
            time.sleep(self.stall_s)
        return np.array(block, np.float32)

    def close(self):
        pass


def _slow_model():
    from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo

    class Slow(Enhancer):
        info = EnhancerInfo("stalling-pass-through", "Stalling pass-through", "test model", 48000, True, 0,
                            processing="streaming", block_samples=1, any_rate=True)

        def for_rate(self, rate):
            return self

        def new_stream(self):
            return _SometimesSlowStream(every=25, stall_s=0.06)

    return Slow()


def _drain(path: str, rate: int, into: bytearray, done: threading.Event, stop: threading.Event) -> None:
    """Read the playback FIFO at ``rate`` samples per second from its first byte on. Listing devices
    opens and closes it too, so it is reopened until the run is over."""
    t0 = None
    n = 0
    try:
        while not stop.is_set():
            fd = os.open(path, os.O_RDONLY)
            try:
                # a small pipe: the writer can run at most ~20 ms ahead of the paced reader
                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
            except OSError:
                pass
            try:
                while True:
                    b = os.read(fd, 4 * 240)
                    if not b:
                        break
                    if t0 is None:
                        t0 = time.perf_counter()
                    into.extend(b)
                    n += len(b) // 4
                    wait = t0 + n / rate - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    elif wait < -0.02:
                        # a reader held up (by another thread) does not burst to catch up, as a sound
                        # card's clock would not: the time lost is lost
                        t0 -= wait
            finally:
                os.close(fd)
    finally:
        done.set()


def _reader_waiting(thread: threading.Thread) -> bool:
    return thread.is_alive()


def main() -> None:
    folder, scenario, model, rate, block, headroom, seconds = sys.argv[1:8]
    rate, block, headroom, seconds = int(rate), int(block), float(headroom), float(seconds)
    got = bytearray()
    drained, stop = threading.Event(), threading.Event()
    fifo = os.path.join(folder, "out.raw")
    drain = threading.Thread(target=_drain, args=(fifo, rate, got, drained, stop))
    drain.start()
    import sounddevice as sd
    from workbench.core.enhance.registry import load_enhancer
    from workbench.core.live.chain import admit
    from workbench.core.live.engine import LiveConfig, LiveEngine

    devices = [d["name"] for d in sd.query_devices()]
    enh = _slow_model() if model == "slow" else load_enhancer(model)
    adm = admit(enh, rate, block, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=rate, block=block, headroom_blocks=headroom), adm)
    engine.start()
    t0 = time.monotonic()
    measured = None
    switch_origin = None
    if scenario == "switches":
        time.sleep(0.4)
        engine.set_bypass(True)
        time.sleep(0.3)
        engine.set_bypass(False)
        time.sleep(0.2)
        engine.set_strength(0.4)
        time.sleep(0.2)
        other = admit(load_enhancer("spectral-subtraction"), rate, block, check_causality=False, check_cost=False)
        engine.switch_model(other)
        while engine._incoming is not None:
            time.sleep(0.005)
        switch_origin = engine._switch[1].origin if engine._switch is not None else engine._chain.origin
    elif scenario == "take":
        time.sleep(0.3)
        engine.start_take()
    while time.monotonic() - t0 < seconds:
        time.sleep(0.02)
    if scenario == "take":
        take = engine.stop_take()
        np.savez(os.path.join(folder, "take.npz"), microphone=take.microphone, heard=take.heard, sent=take.sent)
    measured = engine.measure_lag(seconds=min(1.5, seconds / 2))
    stats = engine.stats()
    engine.stop()
    stop.set()
    # wake a drain thread that waits in open() for a writer that will not come
    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)) if not drained.is_set() and _reader_waiting(drain) else None
    threads_after = sorted(t.name for t in threading.enumerate() if t is not threading.current_thread()
                           and t is not drain)
    drained.wait(10)
    drain.join(10)
    fds = []
    for f in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink(f"/proc/self/fd/{f}"))
        except OSError:
            pass
    heard = np.empty(engine.heard.written, np.float32)
    engine.heard.read_into(0, heard)
    np.save(os.path.join(folder, "heard.npy"), heard)
    with open(os.path.join(folder, "out.bin"), "wb") as fh:
        fh.write(bytes(got))
    drops = engine._drop_pos[:min(engine.dropped, len(engine._drop_pos))].tolist()
    print(json.dumps({
        "devices": devices, "pipeline": engine.pipeline, "lag": adm.lag_samples, "played": engine.position,
        "dropped": engine.dropped, "late": engine.late, "drops": drops, "ramps": engine.ramps,
        "switches": engine.model_switches, "switch_origin": switch_origin, "measured": measured,
        "device_out_s": stats.latency.device_out_s, "threads_after": threads_after,
        "open_files": [f for f in fds if folder in f], "running_after": engine.running,
        "thread_alive_after": engine.thread_alive, "callback_errors": engine.callback_errors,
        "resyncs": engine.resyncs, "resync_origins": engine.resync_origins, "fade": engine._fade_n}))


if __name__ == "__main__":
    main()
