"""Signals during writes: the atomic writer removes its temporary file on SIGTERM/SIGINT, sweeps what a
SIGKILL left once its writer is dead, and a batch worker told to stop ends without a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from workbench.core.audio import audio_io
from workbench.core.audio.audio_io import write_audio_atomic


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_of_dead_writers_are_swept_on_the_next_write(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".out.wav.{dead}.0123abcd.part"
    stale.write_bytes(b"x" * 4096)
    other_stale = tmp_path / f".another.flac.{dead}.89abcdef.part"
    other_stale.write_bytes(b"y")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".out.wav.{alive.pid}.fedcba98.part"
        live.write_bytes(b"z")
        unrelated = tmp_path / ".notes.txt.part"
        unrelated.write_bytes(b"mine")
        write_audio_atomic(tmp_path / "new.wav", np.zeros(160, np.float32), 16000)
        assert not stale.exists() and not other_stale.exists()
        assert live.exists() and unrelated.exists()  # a live writer's file and files not ours are kept
    finally:
        alive.kill()
        alive.wait()


_WRITER = textwrap.dedent("""
    import os, signal, sys, time, traceback
    import numpy as np
    from workbench.core.audio import audio_io
    {setup}
    folder = sys.argv[1]
    try:
        with audio_io.atomic_output(os.path.join(folder, "out.wav")) as tmp:
            open(tmp, "wb").write(b"partial")
            print("writing", flush=True)
            os.kill(os.getpid(), signal.{sig})
            time.sleep(10)
    except BaseException:
        traceback.print_exc()
        raise
""")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_during_a_write_removes_the_temporary_file(tmp_path, sig):
    setup = "signal.signal(signal.SIGINT, signal.SIG_DFL)" if sig == "SIGINT" else ""
    code = _WRITER.format(setup=setup, sig=sig)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "writing" in done.stdout
    assert done.returncode == -getattr(signal, sig)
    assert sorted(os.listdir(tmp_path)) == []


def test_a_batch_worker_told_to_stop_ends_quietly_and_removes_its_temporary_file(tmp_path):
    code = textwrap.dedent("""
        import os, signal, sys, time
        from workbench.core.audio import audio_io
        from workbench.core.workflows.batch import backends
        import traceback
        backends._init_pool_worker([], 1)  # what every pool worker runs first
        try:  # concurrent.futures' worker catches BaseException around an item and reports it
            with audio_io.atomic_output(os.path.join(sys.argv[1], "out.wav")) as tmp:
                open(tmp, "wb").write(b"partial")
                print("writing", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)
        except BaseException:
            traceback.print_exc()
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "writing" in done.stdout and done.returncode == 143
    assert done.stderr == "" and os.listdir(tmp_path) == []


def test_live_temp_files_are_forgotten_after_the_write(tmp_path):
    write_audio_atomic(tmp_path / "a.wav", np.zeros(16, np.float32), 16000)
    assert not audio_io._LIVE_TEMPS


def test_signal_handlers_are_as_before_once_the_write_is_done(tmp_path):
    import signal as sig

    before = sig.getsignal(sig.SIGTERM), sig.getsignal(sig.SIGINT)
    write_audio_atomic(tmp_path / "b.wav", np.zeros(16, np.float32), 16000)
    assert (sig.getsignal(sig.SIGTERM), sig.getsignal(sig.SIGINT)) == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombie states are read from /proc")
def test_a_killed_writer_not_yet_reaped_counts_as_gone(tmp_path):
    """A writer killed with its parent stays a zombie until the system's first process reaps it (slowly in
    containers); it will never write again, so its temporary file is swept."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        import time

        deadline = time.monotonic() + 30
        # Wait for its end without reaping it (WNOWAIT): it stays a zombie, as an orphan not yet reaped does.
        while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        left = tmp_path / f".out.wav.{child.pid}.0badf00d.part"
        left.write_bytes(b"\0" * 32)
        assert audio_io.sweep_stale_temp_files(tmp_path, force=True) == 1 and not left.exists()
    finally:
        child.wait()
