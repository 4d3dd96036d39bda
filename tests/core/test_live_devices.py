"""Live mode on real PortAudio devices without a sound card.

ALSA's ``file`` plugin gives PortAudio a capture device that plays a known signal (``in.raw``) and a
playback device that writes what it receives (``out.raw``, here a FIFO the child drains at the sample
rate, which paces the run in real time). The configuration lives in the test's own ``HOME/.asoundrc``;
the device part runs in a child process so PortAudio starts with it (see ``live_device_child.py``).

What is proved: the output equals the model's streaming output of the input, sample for sample, after the
reported pipeline delay (blocks the callback had to play dry are the aligned input, and are counted);
the delay measured on the device files and by the engine equals the reported one; bypass, strength and
model switches start on block boundaries with the 5 ms ramp; an artificially stalling model triggers the
fallback, which is counted; after Stop no thread, stream or device file is left open.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.core.workflows.probes import probe_signal
from workbench.core.enhance.registry import load_enhancer
from workbench.core.live.chain import admit, StreamChain

from live_fallback import fallback_edges, with_fallback

CHILD = Path(__file__).with_name("live_device_child.py")

ASOUNDRC = """pcm.!default {{ type asym playback.pcm "fileout" capture.pcm "filein" }}
pcm.fileout {{ type file slave.pcm "nullout" file "{out}" format "raw" }}
pcm.filein  {{ type file slave.pcm "nullin" file "/dev/null" infile "{inp}" format "raw" }}
pcm.nullout {{ type null }}
pcm.nullin  {{ type null }}
"""


def _have_portaudio() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:
        return False
    return True


pytestmark = [pytest.mark.skipif(not _have_portaudio(), reason="PortAudio (libportaudio2) is not installed"),
              pytest.mark.slow]  # real-time runs of 1-2 s each, in child processes


def run_live(tmp_path: Path, scenario: str, model: str, x: np.ndarray, rate: int = 48000, block: int = 480,
             headroom: float = 3.0, seconds: float = 1.5) -> dict:
    """Run the child on ALSA file devices fed with ``x``; return its report plus the files' contents."""
    home = tmp_path / "home"
    home.mkdir()
    inp, out = tmp_path / "in.raw", tmp_path / "out.raw"
    # Capture continues after the signal ends: pad with silence beyond the run.
    pad = np.zeros(int((seconds + 2) * rate), np.float32)
    pad[:len(x)] = x[:len(pad)]
    pad.astype("<f4").tofile(inp)
    os.mkfifo(out)
    (home / ".asoundrc").write_text(ASOUNDRC.format(out=out, inp=inp))
    env = {**os.environ, "HOME": str(home)}
    env.pop("ALSA_CONFIG_PATH", None)
    proc = subprocess.run([sys.executable, str(CHILD), str(tmp_path), scenario, model, str(rate), str(block),
                           str(headroom), str(seconds)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["heard"] = np.load(tmp_path / "heard.npy")
    report["out"] = np.frombuffer((tmp_path / "out.bin").read_bytes(), "<f4")
    report["x"] = pad
    return report


def reference_wet(model: str, x: np.ndarray, rate: int, block: int, origin: int = 0,
                  restarts: tuple = (), pipeline: int = 0) -> np.ndarray:
    """The model's streaming output of ``x`` from ``origin`` on, aligned, pushed in the same blocks. For each
    of the engine's skips ``(input position r, first output position o, input fed f)`` after it fell far
    behind: the model was fed up to ``f``, then continued at ``r``; the output from ``o`` whose source lies
    before ``r`` is the input itself."""
    adm = admit(load_enhancer(model), rate, block, check_causality=False, check_cost=False)
    chain = StreamChain(adm.enhancer, rate, origin=origin, capacity=len(x) + block)
    wet = np.zeros(len(x), np.float32)
    pos = origin
    for r, o, fed in list(restarts) + [(None, None, len(x) - block + 1)]:
        while pos < fed and pos + block <= len(x):
            chain.push(x[pos:pos + block])
            pos += block
        end = min(chain.wet.written, len(x))
        chain.wet.read_into(chain.origin, wet[chain.origin:end])
        if r is not None:
            wet[max(o - pipeline, 0):r] = x[max(o - pipeline, 0):r]
            chain.restart_at(r)
            pos = r
    chain.close()
    return wet


def delayed(sig: np.ndarray, q: int, n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    out[q:] = sig[:n - q]
    return out


def file_lag(rep: dict, max_lag: int) -> int:
    """Delay of the playback file against the capture file, less PortAudio's priming silence."""
    from workbench.core.audio.correlation import estimate_lag
    out = rep["out"]
    prime = len(out) - rep["played"]
    lag, _ = estimate_lag(rep["x"][:rep["played"]], out[prime:], max_lag)
    return lag


def check_no_leftovers(rep: dict) -> None:
    assert rep["threads_after"] == [], rep["threads_after"]
    assert rep["open_files"] == [], rep["open_files"]
    assert not rep["running_after"] and not rep["thread_alive_after"]
    assert rep["callback_errors"] == 0


@pytest.mark.parametrize("model,rate", [("rnnoise", 44100), ("wiener", 48000)])
def test_output_is_the_streaming_model_after_the_reported_delay(tmp_path, model, rate):
    """rnnoise (48 kHz) on a 44.1 kHz device exercises the streaming resamplers both ways."""
    block = rate // 100
    x = probe_signal(rate, 3.0)
    rep = run_live(tmp_path, "plain", model, x, rate=rate, block=block, headroom=3.0, seconds=1.6)
    assert "filein" in rep["devices"] and "fileout" in rep["devices"]
    q, played, heard = rep["pipeline"], rep["played"], rep["heard"][:rep["played"]]
    assert q == block + rep["lag"] + 3 * block
    assert played < len(rep["x"])
    wet = reference_wet(model, rep["x"], rate, block, restarts=tuple(map(tuple, rep["resync_origins"])),
                        pipeline=q)
    expected = delayed(wet, q, played)
    dry = delayed(rep["x"], q, played)
    # blocks that missed their deadline are the aligned input (edges ramped), and are counted
    expected = with_fallback(expected, dry, rep["drops"], block, fallback_edges(rate, block))
    assert rep["dropped"] == len(rep["drops"])
    np.testing.assert_allclose(heard, expected, rtol=0, atol=2e-6 if rep["drops"] else 0)
    # The playback device received exactly that, after the silence PortAudio primed it with.
    out = rep["out"]
    prime = len(out) - played
    assert prime >= 0 and not out[:prime].any()
    np.testing.assert_array_equal(out[prime:], heard)
    # Delay measured on the device files (input vs output file, less the priming) and by the engine: the
    # correlation peak of a denoiser's output sits on the reported delay to within a sample (a model is not
    # a pure delay; the pass-through in the stalling test pins it exactly).
    lag = file_lag(rep, 3 * q)
    assert abs(lag - q) <= 1 and abs(rep["measured"] - q) <= 1
    check_no_leftovers(rep)


def test_bypass_strength_and_model_switches_land_on_block_boundaries(tmp_path):
    rate, block = 48000, 480
    x = probe_signal(rate, 3.0)
    rep = run_live(tmp_path, "switches", "wiener", x, rate=rate, block=block, headroom=3.0, seconds=1.8)
    q, played, fade = rep["pipeline"], rep["played"], rep["fade"]
    assert fade == 240  # 5 ms at 48 kHz
    ramps = rep["ramps"]
    assert [(g0, g1) for _, g0, g1 in ramps] == [(1.0, 0.0), (0.0, 1.0), (1.0, 0.4)]
    assert all(pos % block == 0 for pos, _, _ in ramps)
    (switch_at, new_id), = rep["switches"]
    assert new_id == "spectral-subtraction" and switch_at % block == 0
    # Rebuild the output from the two models' streaming outputs, the ramps and the switch.
    xs = rep["x"]
    w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
    old = delayed(reference_wet("wiener", xs, rate, block), q, played)
    new = delayed(reference_wet("spectral-subtraction", xs, rate, block, origin=rep["switch_origin"]), q, played)
    mix = np.ones(played, np.float32)
    mix[:switch_at] = 0.0
    mix[switch_at:switch_at + fade] = w[:max(0, min(fade, played - switch_at))]
    wet = old + mix * (new - old)
    g = np.ones(played, np.float32)
    for pos, g0, g1 in ramps:
        g[pos:pos + fade] = (g0 + (g1 - g0) * w)[:max(0, min(fade, played - pos))]
        g[pos + fade:] = g1
    dry = delayed(xs, q, played)
    expected = with_fallback(dry + g * (wet - dry), dry, rep["drops"], block, fallback_edges(rate, block))
    np.testing.assert_allclose(rep["heard"][:played], expected, atol=2e-6)
    # each ramp is a continuous raised cosine: no step larger than the signal's own
    check_no_leftovers(rep)


def test_stalling_model_falls_back_to_the_aligned_input_and_is_counted(tmp_path):
    rate, block = 48000, 480
    x = probe_signal(rate, 3.0)
    rep = run_live(tmp_path, "plain", "slow", x, rate=rate, block=block, headroom=0.0, seconds=1.5)
    assert rep["dropped"] > 0 and rep["dropped"] == len(rep["drops"])
    q, played = rep["pipeline"], rep["played"]
    # the model is a pass-through, so enhanced and fallback blocks are both the input delayed by q:
    # the fallback is aligned, with no gap and no repeated block
    np.testing.assert_array_equal(rep["heard"][:played], delayed(rep["x"], q, played))
    assert file_lag(rep, 3 * q) == q and rep["measured"] == q
    check_no_leftovers(rep)


def test_take_holds_two_sample_aligned_versions(tmp_path):
    rate, block = 48000, 480
    x = probe_signal(rate, 3.0)
    rep = run_live(tmp_path, "take", "wiener", x, rate=rate, block=block, headroom=3.0, seconds=1.2)
    take = np.load(tmp_path / "take.npz")
    mic, heard, sent = take["microphone"], take["heard"], take["sent"]
    q = rep["pipeline"]
    assert len(mic) == len(heard) > rate // 2 and len(sent) == len(mic) + q
    start = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(rep["x"], 64)
                                      == mic[:64], axis=1))[0])
    assert start % block == 0
    wet = reference_wet("wiener", rep["x"], rate, block)
    np.testing.assert_array_equal(mic, rep["x"][start:start + len(mic)])
    if not rep["dropped"]:
        np.testing.assert_array_equal(heard, wet[start:start + len(mic)])
    np.testing.assert_array_equal(sent[q:], heard)
