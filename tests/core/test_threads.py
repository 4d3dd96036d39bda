"""The default thread policy: the idle cores at load time, one thread as soon as other work is running."""

from __future__ import annotations

import os
import time

import pytest

from workbench.core import threads


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``machine(cores, busy, runnable, load)`` sets what the policy reads (``busy``: cores
    other work used during the policy's look at /proc/stat; ``None``: not readable)."""
    for var in ("WORKBENCH_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)

    def set_machine(cores: int, busy: float | None, runnable: int | None, load: float = 0.0):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setattr(threads, "_busy_over", lambda window_s: busy)
        monkeypatch.setattr(threads, "_runnable_now", lambda: runnable)

    return set_machine


def test_a_quiet_machine_gets_a_thread_per_core(machine):
    machine(2, 0.05, 1)
    assert threads.auto_threads() == 2
    machine(8, 0.3, 1)
    assert threads.auto_threads() == 8 and threads.auto_threads(limit=4) == 4


def test_a_machine_that_has_just_become_free_gets_its_cores(machine):
    """The 1-minute average still says 1.6 (a run just ended); what runs now decides."""
    machine(2, 0.0, 1, load=1.6)
    assert threads.auto_threads() == 2


@pytest.mark.parametrize("busy, runnable", [(2.0, 1), (1.0, 1), (0.7, 1), (0.0, 3), (0.0, 2), (1.0, None),
                                            (None, 2)])
def test_any_other_work_on_two_cores_means_one_thread(machine, busy, runnable):
    """Another process using a core during the look, or one runnable besides this one right now."""
    machine(2, busy, runnable)
    assert threads.auto_threads() == 1


def test_busy_cores_take_the_larger_of_the_look_and_the_moment(machine):
    machine(4, 0.5, 4)
    assert threads.busy_cores() == 3.0 and threads.auto_threads() == 1
    machine(4, 2.6, 1)
    assert threads.busy_cores() == 2.6 and threads.auto_threads() == 1
    machine(4, 1.2, 2)
    assert threads.auto_threads() == 3


def test_the_load_average_is_the_fallback_only(machine):
    machine(2, None, None, load=1.5)
    assert threads.busy_cores() == 1.5 and threads.auto_threads() == 1
    machine(2, None, None, load=0.2)
    assert threads.auto_threads() == 2


def test_a_limit_of_one_measures_nothing(machine, monkeypatch):
    machine(2, 0.0, 1)
    monkeypatch.setattr(threads, "_busy_over", lambda window_s: pytest.fail("measured"))
    assert threads.auto_threads(limit=1) == 1


def test_the_affinity_counts_not_the_machine(machine, monkeypatch):
    machine(1, 0.0, 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads.available_cores() == 1 and threads.auto_threads() == 1


def test_the_variable_wins_over_the_policy(machine, monkeypatch):
    machine(2, 0.0, 1)
    monkeypatch.setenv("WORKBENCH_THREADS", "3")
    assert threads.threads_from_env(None) == 3
    monkeypatch.delenv("WORKBENCH_THREADS")
    assert threads.threads_from_env(None) is None and threads.threads_from_env(1) == 1


def test_this_machine_is_read():
    """On the real machine the readers return something sane (Linux: /proc/stat and /proc/loadavg)."""
    assert threads.available_cores() >= 1
    assert threads.busy_cores() >= 0.0
    assert 1 <= threads.auto_threads() <= threads.available_cores()


def test_a_process_spinning_on_a_core_is_seen(tmp_path):
    """The real look at /proc/stat sees a busy loop started beside it (about one core)."""
    import subprocess
    import sys

    if threads._cpu_times() is None:
        pytest.skip("no /proc/stat on this system")
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 5\nwhile time.time() < t: pass"])
    try:
        time.sleep(0.3)
        assert threads._busy_over(0.2) >= 0.6
    finally:
        spin.kill()
        spin.wait()
