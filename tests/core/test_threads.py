"""The default thread policy: the idle cores at load time, one thread as soon as other work is running."""

from __future__ import annotations

import os

import pytest

from workbench.core import threads


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``machine(cores, load, runnable)`` sets what the policy reads."""
    for var in ("WORKBENCH_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)

    def set_machine(cores: int, load: float, runnable: int | None):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setattr(threads, "_runnable_now", lambda: runnable)

    return set_machine


def test_a_quiet_machine_gets_a_thread_per_core(machine):
    machine(2, 0.1, 1)
    assert threads.auto_threads() == 2
    machine(8, 0.3, 1)
    assert threads.auto_threads() == 8 and threads.auto_threads(limit=4) == 4


@pytest.mark.parametrize("load, runnable", [(2.0, 1), (1.0, 1), (0.7, 1), (0.0, 3), (0.0, 2), (5.0, None)])
def test_any_other_work_on_two_cores_means_one_thread(machine, load, runnable):
    """A sustained load (the average) or one that just started (runnable tasks besides this one)."""
    machine(2, load, runnable)
    assert threads.auto_threads() == 1


def test_busy_cores_take_the_larger_of_the_average_and_the_moment(machine):
    machine(4, 0.5, 4)
    assert threads.busy_cores() == 3.0 and threads.auto_threads() == 1
    machine(4, 2.6, 1)
    assert threads.busy_cores() == 2.6 and threads.auto_threads() == 1
    machine(4, 1.2, 2)
    assert threads.auto_threads() == 3


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
    """On the real machine the readers return something sane (Linux: /proc/loadavg)."""
    assert threads.available_cores() >= 1
    assert threads.busy_cores() >= 0.0
    assert 1 <= threads.auto_threads() <= threads.available_cores()
