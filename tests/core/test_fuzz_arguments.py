"""Numbers checked at the edge: every time, frequency, gain and size option is finite and in range, or the
command stops with one line naming the option (never an OverflowError traceback, never argparse's
"expected one argument" for a negative start)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main


@pytest.fixture()
def wav(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    return path


REPAIR = [
    (["--box", "0:1e308:0:100", "--gain-db", "-20"], "--box"),
    (["--box", "0:inf:0:100", "--gain-db", "-20"], "--box"),
    (["--box", "nan:1:0:100", "--gain-db", "-20"], "--box"),
    (["--box", "0.1:0.5:0:100", "--gain-db", "1e308"], "--gain-db"),
    (["--box", "0.1:0.5:0:100", "--gain-db", "inf"], "--gain-db"),
    (["--box", "0.1:0.5:0:100", "--gain-db", "nan"], "--gain-db"),
    (["--box", "-0.5:0.5:0:100", "--gain-db", "-20"], "outside the recording"),
    (["--box", "-1e308:0.5:0:100", "--gain-db", "-20"], "--box"),
]


@pytest.mark.parametrize("extra,named", REPAIR, ids=[" ".join(e) for e, _ in REPAIR])
def test_repair_refuses_out_of_range_numbers_in_one_line(wav, tmp_path, capsys, extra, named):
    out = tmp_path / "out.wav"
    assert main(["repair", str(wav), *extra, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and named in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_box_reaching_past_the_end_is_clipped_to_the_recording(wav, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert main(["repair", str(wav), "--box", "0.2:9e6:1000:9e6", "--gain-db", "-30", "-o", str(out)]) == 0
    assert sf.info(out).frames == 16000


OPTIONS = [
    (["enhance", "{wav}", "-m", "wiener", "-o", "{out}", "--mix", "1e308"], "--mix"),
    (["enhance", "{wav}", "-m", "wiener", "-o", "{out}", "--loudness", "inf"], "--loudness"),
    (["enhance", "{wav}", "-m", "wiener", "-o", "{out}", "--context-s", "1e308"], "--context-s"),
    (["enhance", "{wav}", "-m", "wiener", "-o", "{out}", "--crossfade-ms", "nan"], "--crossfade-ms"),
    (["enhance", "{wav}", "-m", "wiener", "-o", "{out}", "--quality", "-1"], "--quality"),
    (["enhance", "{wav}", "-m", "wiener", "-o", "{out}", "--atten-lim-db", "1e999"], "--atten-lim-db"),
    (["enhance", "{wav}", "-m", "wiener", "-o", "{out}.wav", "--region", "-1e308:1"], "region"),
    (["phase-lab", "{wav}", "-o", "{out}", "--hop", "0"], "--hop"),
    (["phase-lab", "{wav}", "-o", "{out}", "--n-fft", "big"], "--n-fft"),
    (["phase-lab", "{wav}", "-o", "{out}", "--gla-iters", "99999999999"], "--gla-iters"),
    (["phase-lab", "{wav}", "-o", "{out}", "--irm-beta", "inf"], "--irm-beta"),
    (["analyze", "{wav}", "--png", "{out}.png", "--floor-db", "1e308"], "--floor-db"),
    (["analyze", "{wav}", "--png", "{out}.png", "--compression", "0"], "--compression"),
    (["batch", "enhance", "{wav}", "-m", "wiener", "-o", "{out}", "--workers", "-3"], "--workers"),
    (["probe", "wiener", "--runs", "0"], "--runs"),
]


@pytest.mark.parametrize("argv,named", OPTIONS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OPTIONS])
def test_every_numeric_option_is_checked_in_one_line(wav, tmp_path, capsys, argv, named):
    out = tmp_path / "out"
    argv = [a.format(wav=wav, out=out) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and named in err and len(err.splitlines()) == 1
    assert "Traceback" not in err and "expected one argument" not in err
