"""What keeps live blocks on time on a busy machine: real-time scheduling of the live threads where the
system grants it, the cyclic collector held still while a run lasts, and a warmed-up model."""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import pytest

from workbench.core.enhance.enhancer import Enhancer, EnhancerStream
from workbench.core.enhance.registry import load_enhancer
from workbench.core.live.chain import admit
from workbench.core.live.engine import LiveConfig, LiveEngine, drive_callback
from workbench.core.live.realtime import hold_gc_still, release_gc, request_realtime, scheduling_line
from workbench.core.workflows.probes import probe_signal


def test_a_thread_asks_for_real_time_scheduling_and_only_that_thread_gets_it():
    seen = {}

    def worker():
        seen["reason"] = request_realtime(1)
        seen["policy"] = os.sched_getscheduler(0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    if seen["reason"] is not None:  # an unprivileged run: refused with the reason, never raised
        assert "real-time" in seen["reason"]
        assert seen["policy"] == os.SCHED_OTHER
    else:
        assert seen["policy"] == os.SCHED_FIFO
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's thread is untouched


def test_the_scheduling_line_says_which_threads_run_real_time():
    assert "real-time (SCHED_FIFO)" in scheduling_line(None, None)
    line = scheduling_line("no permission for real-time scheduling", "no permission for real-time scheduling")
    assert line == "scheduling: ordinary — no permission for real-time scheduling"
    assert scheduling_line(None, False) == "scheduling: callback real-time; processing ordinary"


def test_holding_the_collector_nests_and_gives_every_object_back():
    assert gc.get_freeze_count() == 0
    hold_gc_still()
    hold_gc_still()
    frozen = gc.get_freeze_count()
    assert frozen > 1000
    release_gc()
    assert gc.get_freeze_count() == frozen
    release_gc()
    assert gc.get_freeze_count() == 0
    release_gc()  # one too many is harmless
    assert gc.get_freeze_count() == 0


class _Recording(EnhancerStream):
    """Wiener's stream that notes, on each call, whether the collector is held still; the first call of
    the first stream made is slow, as a model's first inference often is."""

    slow_first = True

    def __init__(self, inner, log):
        self.inner, self.log = inner, log
        self.slept = False

    def process(self, block):
        self.log.append(gc.get_freeze_count())
        if _Recording.slow_first:
            _Recording.slow_first = False
            self.slept = True
            time.sleep(0.3)
        return self.inner.process(block)


def test_a_live_run_holds_the_collector_and_warms_the_model_before_the_first_block():
    wiener = load_enhancer("wiener").for_rate(16000)
    log: list[int] = []

    class SlowStart(Enhancer):
        info = wiener.info

        def new_stream(self):
            return _Recording(wiener.new_stream(), log)

    _Recording.slow_first = True
    adm = admit(SlowStart(), 16000, 160, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=16000, block=160, headroom_blocks=1), adm)
    assert gc.get_freeze_count() == 0
    y = drive_callback(engine, probe_signal(16000, 1.0), realtime=True)
    assert np.isfinite(y).all()
    # the slow first call went to a throwaway stream before the device opened, not to the run's own
    assert not _Recording.slow_first and not engine._chain.stream.slept
    assert log and min(log[len(log) // 2:]) > 0  # the run's own calls saw the collector held
    assert gc.get_freeze_count() == 0  # and the run gave it back


@pytest.mark.parametrize("realtime", [True, False])
def test_real_time_can_be_switched_off(realtime):
    wiener = load_enhancer("wiener").for_rate(16000)
    adm = admit(wiener, 16000, 160, check_causality=False, check_cost=False)
    engine = LiveEngine(LiveConfig(rate=16000, block=160, realtime=realtime), adm)
    drive_callback(engine, probe_signal(16000, 0.2))
    line = engine.stats().scheduling
    assert "callback ordinary" in line  # the caller's thread is never changed
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    if realtime:
        assert engine.rt_processing is None or "real-time" in engine.rt_processing
    else:
        assert engine.rt_processing is False and "processing ordinary" in line


def _drive_in_bursts(engine: LiveEngine, mic: np.ndarray, burst: int) -> None:
    """Call the callback as a host with a buffer of ``burst`` blocks does: ``burst`` calls back to back,
    then a wait until the buffer's time has passed."""
    B = engine.block
    n = len(mic) // B * B
    x = mic[:n].reshape(-1, 1).astype(np.float32)
    out = np.zeros((B, 1), np.float32)
    engine._prepare()
    t0 = time.perf_counter()
    try:
        for i in range(0, n, burst * B):
            delay = t0 + (i + burst * B) / engine.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            for j in range(i, min(i + burst * B, n), B):
                engine._callback(x[j:j + B], out, B, None, None)
    finally:
        engine._abort()


def test_bursts_of_callbacks_are_seen_and_the_headroom_they_need_is_named():
    """Callbacks in pairs: with no headroom the second block of a pair is asked for before its input could
    be processed, and the engine names the headroom that avoids it; with that headroom far fewer blocks
    are late (the comparison is in one run, so a loaded machine slows both alike)."""
    wiener = load_enhancer("wiener").for_rate(16000)
    adm = admit(wiener, 16000, 160, check_causality=False, check_cost=False)
    x = probe_signal(16000, 1.5)
    blocks = len(x) // 160
    runs = {}
    for headroom in (0, 1):
        engine = LiveEngine(LiveConfig(rate=16000, block=160, headroom_blocks=headroom), adm)
        _drive_in_bursts(engine, x, burst=2)
        runs[headroom] = (engine.dropped, engine.stats())
    dropped0, stats0 = runs[0]
    dropped1, _ = runs[1]
    assert stats0.burst_blocks >= 2  # a loaded machine may run two pairs together
    assert dropped0 > 0.15 * blocks
    assert any(f"headroom of {stats0.burst_blocks - 1} block" in n for n in stats0.notes), stats0.notes
    assert dropped1 < dropped0 / 3, (dropped0, dropped1)
