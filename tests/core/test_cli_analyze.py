"""``workbench analyze`` and ``workbench info`` end to end: figures, JSON, and one-line errors (exit 2)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from matplotlib.image import imread

from workbench.cli import main
from workbench.core.audio.audio_io import FileSource
from workbench.core.views.figure import compute_views_from_source, render_figure
from workbench.core.views.stft import StftConfig, instantaneous_frequency_deviation, magnitude_db, phase, stft

def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_cli(argv, capsys):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argument errors leave through argparse's exit, status 2
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_png(path, width=1600, height=1000):
    img = imread(path)
    assert img.shape[:2] == (height, width)
    # A real figure has many colours (four colour maps), not a blank canvas.
    assert len(np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 500
    return img


def test_analyze_real_speech_writes_png_and_json(shared_data, tmp_path, capsys):
    src = shared_data / "dns3" / "0015_noisy.wav"
    before = sha256(src)
    png, js = tmp_path / "out" / "speech.png", tmp_path / "out" / "speech.json"
    rc, _, err = run_cli(["analyze", src, "--png", png, "--json", js, "--n-fft", 512, "--hop", 128,
                          "--window", "sqrt-hann"], capsys)
    assert rc == 0, err
    assert err == ""
    assert_png(png)
    meta = json.loads(js.read_text())
    assert meta["sample_rate"] == 16000 and meta["channels"] == 1 and meta["frames"] == 80000
    assert meta["duration_s"] == pytest.approx(5.0) and meta["subtype"] == "PCM_16" and meta["format"] == "WAV"
    assert meta["bit_depth"] == 16 and meta["path"] == str(src.resolve())
    assert meta["stft"] == {**meta["stft"], "n_fft": 512, "hop": 128, "window": "sqrt-hann", "fft_size": 512,
                            "bins": 257, "frames": StftConfig(512, 128).frame_count(80000)}
    stats = meta["analysis"]["stats"]
    assert set(stats) == {"magnitude", "phase", "real", "imag"}
    # Noisy speech peaks well above the -100 dB floor; phase fills [-pi, pi].
    assert -40 < stats["magnitude"]["max"] < 0 and stats["magnitude"]["min"] >= -100.0
    assert stats["phase"]["min"] < -3.1 and stats["phase"]["max"] > 3.1
    assert stats["real"]["min"] < 0 < stats["real"]["max"]
    assert sha256(src) == before


def test_magnitude_pane_shows_where_the_energy_is(tmp_path):
    # A 2 kHz tone at 8 kHz sampling: in the magnitude pane (top-left of the grid) the bright row sits
    # at half height; the drawing is checked, not only the file's existence.
    sr = 8000
    x = 0.5 * np.sin(2 * np.pi * 2000 * np.arange(2 * sr) / sr).astype(np.float32)
    path = render_figure(x, sr, StftConfig(256, 64), tmp_path / "tone.png", width_px=800, height_px=600)
    img = imread(path)[..., :3]
    strip = img[:300, 150:300]                                   # inside the top-left pane
    white = (strip > 0.95).all(axis=2).mean(axis=1)
    image_rows = np.where(white < 0.05)[0]                       # rows of the drawn image, not margins/text
    lo, hi = image_rows.min() + 3, image_rows.max() - 3         # skip the anti-aliased frame lines
    brightness = strip.sum(axis=2).mean(axis=1)
    peak_row = lo + int(np.argmax(brightness[lo:hi + 1]))
    assert hi - lo > 150
    assert abs(peak_row - (lo + hi) / 2) < 0.05 * (hi - lo)


FORMATS = [("WAV", "PCM_U8", ".wav"), ("WAV", "PCM_24", ".wav"), ("WAV", "DOUBLE", ".wav"),
           ("FLAC", "PCM_16", ".flac"), ("OGG", "VORBIS", ".ogg"), ("MP3", "MPEG_LAYER_III", ".mp3"),
           ("AIFF", "PCM_32", ".aiff")]


@pytest.mark.parametrize("fmt,subtype,suffix", FORMATS, ids=[f"{f}-{s}" for f, s, _ in FORMATS])
def test_analyze_every_format(tmp_path, capsys, fmt, subtype, suffix, rng):
    sr = 22050
    t = np.arange(sr) / sr
    x = np.stack([0.3 * np.sin(2 * np.pi * 500 * t), 0.1 * rng.standard_normal(sr)], axis=1)
    src = tmp_path / f"in{suffix}"
    sf.write(src, x.astype(np.float32), sr, format=fmt, subtype=subtype)
    png, js = tmp_path / "v.png", tmp_path / "v.json"
    rc, _, err = run_cli(["analyze", src, "--png", png, "--json", js, "--channel", "1", "--size", "800x500",
                          "--n-fft", 512, "--hop", 256, "--window", "hamming", "--fft-size", 1024], capsys)
    assert rc == 0, err
    assert_png(png, 800, 500)
    meta = json.loads(js.read_text())
    assert meta["format"] == fmt and meta["subtype"] == subtype and meta["channels"] == 2
    assert meta["stft"]["fft_size"] == 1024 and meta["analysis"]["channel"] == 1


def test_multichannel_mix_phase_views_svg_and_layouts(tmp_path, capsys):
    sr = 96000
    x = (0.2 * np.random.default_rng(3).standard_normal((sr // 2, 6))).astype(np.float32)
    src = tmp_path / "six.wav"
    sf.write(src, x, sr, subtype="FLOAT")
    for view, layout in (("inst_freq", "row"), ("group_delay", "column")):
        js = tmp_path / f"{view}.json"
        rc, _, err = run_cli(["analyze", src, "--png", tmp_path / f"{view}.png", "--json", js, "--channel", "mix",
                              "--phase-view", view, "--layout", layout, "--size", "1200x900"], capsys)
        assert rc == 0, err
        assert set(json.loads(js.read_text())["analysis"]["stats"]) == {"magnitude", view, "real", "imag"}
    rc, _, err = run_cli(["analyze", src, "--png", tmp_path / "f.svg", "--channel", "5"], capsys)
    assert rc == 0, err
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


def test_long_file_is_drawn_in_bounded_columns(tmp_path, capsys):
    sr = 8000
    src = tmp_path / "long.wav"
    sf.write(src, (0.1 * np.random.default_rng(0).standard_normal(sr * 120)).astype(np.float32), sr,
             subtype="PCM_16")
    js = tmp_path / "long.json"
    rc, _, err = run_cli(["analyze", src, "--png", tmp_path / "long.png", "--json", js, "--n-fft", 256,
                          "--hop", 64, "--max-frames", 1000, "--size", "600x400"], capsys)
    assert rc == 0, err
    a = json.loads(js.read_text())["analysis"]
    assert a["columns_drawn"] <= 1000 and a["frames_per_column"] == 16


def test_repair_flag(tmp_path, capsys):
    x = np.zeros(16000, np.float32)
    x[5] = np.nan
    src = tmp_path / "nan.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    rc, _, err = run_cli(["analyze", src, "--png", tmp_path / "n.png"], capsys)
    assert rc == 2 and "NaN" in err and "--repair" in err
    js = tmp_path / "n.json"
    rc, _, err = run_cli(["analyze", src, "--png", tmp_path / "n.png", "--json", js, "--repair"], capsys)
    assert rc == 0, err
    assert json.loads(js.read_text())["analysis"]["nonfinite_repaired"] == 1


def test_info_prints_metadata(tmp_path, capsys):
    src = tmp_path / "i.flac"
    sf.write(src, np.zeros((44100, 2), np.float32), 44100, subtype="PCM_24")
    rc, out, _ = run_cli(["info", src], capsys)
    assert rc == 0 and "44100 Hz" in out and "FLAC" in out and "24-bit" in out
    rc, out, _ = run_cli(["info", "--json", src], capsys)
    assert json.loads(out)["frames"] == 44100
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, np.inf, np.nan], np.float32), 8000, subtype="FLOAT")
    rc, out, _ = run_cli(["info", nan], capsys)
    assert rc == 0 and "2 NaN, 1 Inf (first at frame 1)" in out


def _bad_files(tmp_path) -> dict[str, tuple[Path, str]]:
    """name -> (file, text the one error line must contain)."""
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    data = good.read_bytes()
    mp3 = tmp_path / "good.mp3"
    sf.write(mp3, (0.1 * np.sin(np.arange(32000) / 5)).astype(np.float32), 16000, format="MP3")
    files = {
        "empty": ("empty.wav", b"", "empty file"),
        "text": ("text.wav", b"just some words\n" * 40, "not a recognised audio file"),
        "truncated_header": ("cut.wav", data[:30], "truncated WAV header"),
        "truncated_data": ("half.wav", data[:len(data) // 2], "truncated data"),
        "zero_rate": ("zr.wav", data[:24] + bytes(4) + data[28:], "invalid sample rate 0 Hz"),
        "mp3_no_frames": ("none.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00", "MP3 without decodable audio frames"),
        "mp3_truncated": ("cut.mp3", mp3.read_bytes()[: len(mp3.read_bytes()) // 2], "the header promises"),
        "zero_frames": ("zero.wav", None, "contains no audio frames"),
    }
    out = {}
    for key, (name, payload, text) in files.items():
        path = tmp_path / name
        if payload is None:
            sf.write(path, np.zeros(0, np.float32), 16000)
        else:
            path.write_bytes(payload)
        out[key] = (path, text)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.inf, 0.0], np.float32), 16000, subtype="FLOAT")
    out["nonfinite"] = (nan, "Inf")
    (tmp_path / "dir.wav").mkdir()
    out["folder"] = (tmp_path / "dir.wav", "is a folder")
    out["missing"] = (tmp_path / "absent.wav", "no such file")
    return out


def test_every_bad_input_gives_exit_2_and_one_line(tmp_path, capsys):
    for key, (path, text) in _bad_files(tmp_path).items():
        before = sha256(path) if path.is_file() else None
        commands = [["analyze", path, "--png", tmp_path / "x.png"]]
        if key != "nonfinite":  # info reports NaN/Inf counts as metadata (tested below), not as an error
            commands.append(["info", path])
        for argv in commands:
            rc, out, err = run_cli(argv, capsys)
            lines = err.splitlines()
            assert rc == 2, (key, err)
            assert len(lines) == 1 and lines[0].startswith("error: "), (key, err)
            assert str(path) in lines[0] and text in lines[0], (key, lines[0])
        assert not (tmp_path / "x.png").exists()
        if before is not None:
            assert sha256(path) == before, key


@pytest.mark.parametrize("extra,text", [
    (["--window", "kaiser"], "invalid choice"),
    (["--hop", "2048"], "hop must be between 1 and n_fft=1024"),
    (["--n-fft", "abc"], "expected a whole number"),
    (["--n-fft", "512", "--fft-size", "256"], "fft_size (256) must not be smaller"),
    (["--channel", "4"], "channel 4 does not exist"),
    (["--compression", "0"], "--compression must be in (0, 1]"),
    (["--phase-view", "cepstrum"], "invalid choice"),
    (["--size", "big"], "--size must look like"),
    (["--floor-db", "20"], "--floor-db"),
])
def test_argument_errors_are_one_line_exit_2(tmp_path, capsys, extra, text):
    src = tmp_path / "ok.wav"
    sf.write(src, np.zeros(8000, np.float32), 8000)
    rc, _, err = run_cli(["analyze", src, "--png", tmp_path / "o.png", *extra], capsys)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], err


def test_argparse_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "--png", str(tmp_path / "o.png")])  # IN missing
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: analyze: the following arguments are required: IN"]


def test_output_problems(tmp_path, capsys):
    src = tmp_path / "ok.wav"
    sf.write(src, np.zeros(8000, np.float32), 8000)
    before = sha256(src)
    for argv, text in (
        (["--png", src.with_suffix(".jpg")], "needs a file name ending in .png or .svg"),
        (["--json", tmp_path / "o.txt"], "ending in .json"),
        ([], "nothing to do"),
    ):
        rc, _, err = run_cli(["analyze", src, *argv], capsys)
        assert rc == 2 and text in err and len(err.splitlines()) == 1, err
    (tmp_path / "taken.png").mkdir()
    rc, _, err = run_cli(["analyze", src, "--png", tmp_path / "taken.png"], capsys)
    assert rc == 2 and "is a folder" in err
    assert sha256(src) == before


def _subprocess_env():
    env = dict(os.environ)
    env.pop("DISPLAY", None)  # headless: the analysis must not need a display
    env["MPLBACKEND"] = "Agg"
    return env


def test_python_m_workbench_subprocess(tmp_path, shared_data):
    png = tmp_path / "p.png"
    ok = subprocess.run([sys.executable, "-m", "workbench", "analyze", str(shared_data / "pesq" / "speech.wav"),
                         "--png", str(png)], capture_output=True, text=True, env=_subprocess_env(), cwd=tmp_path,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert_png(png)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(500))
    res = subprocess.run([sys.executable, "-m", "workbench", "analyze", str(bad), "--png", str(png), "--overwrite"],
                         capture_output=True, text=True, env=_subprocess_env(), cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"error: {bad}: MP3 without decodable audio frames "
                                       "(empty, truncated or corrupt MPEG stream)"]


def test_block_wise_views_equal_a_whole_file_stft(tmp_path):
    # The figure's block-wise path (several blocks, overlapping reads) gives the same numbers as one STFT
    # of the whole signal: grouping off (max_frames >= frames).
    sr = 16000
    x = (0.3 * np.random.default_rng(5).standard_normal((sr * 3, 2))).astype(np.float32)
    path = tmp_path / "x.flac"
    sf.write(path, x, sr, subtype="PCM_24")
    cfg = StftConfig(512, 32)                       # 1501 frames: two blocks of 1024
    ref_audio = sf.read(path, dtype="float32")[0][:, 1]
    spec = stft(ref_audio, cfg)
    views = compute_views_from_source(FileSource(path), cfg, channel=1, max_frames=10_000, floor_db=-120)
    assert views.group == 1 and views.columns == len(spec)
    np.testing.assert_allclose(views.views["magnitude"], magnitude_db(spec, cfg, -120), atol=1e-3)
    np.testing.assert_allclose(views.views["phase"][np.abs(spec) > 1e-3], phase(spec)[np.abs(spec) > 1e-3],
                               atol=1e-3)
    ifd = compute_views_from_source(FileSource(path), cfg, channel=1, phase_view="inst_freq", max_frames=10_000,
                                    mask_below_db=None).views["inst_freq"]
    np.testing.assert_allclose(ifd, instantaneous_frequency_deviation(spec, cfg, sr), atol=0.05)
    grouped = compute_views_from_source(FileSource(path), cfg, channel=1, max_frames=100, floor_db=-120)
    g = grouped.group
    assert g == 16 and grouped.columns == -(-len(spec) // g)
    # Magnitude column j is the loudest of its frames.
    np.testing.assert_allclose(grouped.views["magnitude"][3], magnitude_db(spec, cfg, -120)[3 * g:4 * g].max(0),
                               atol=1e-3)


@pytest.mark.parametrize("samples", [0, 1, 100])
def test_silent_and_tiny_files(tmp_path, capsys, samples):
    src = tmp_path / "s.wav"
    x = np.zeros(16000, np.float32)
    x[:samples] = 0.5                               # 0: silence; 1, 100: shorter than one window
    if samples:
        x = x[:samples]
    sf.write(src, x, 16000, subtype="FLOAT")
    js = tmp_path / "s.json"
    rc, _, err = run_cli(["analyze", src, "--png", tmp_path / "s.png", "--json", js,
                          "--phase-view", "group_delay", "--size", "600x400"], capsys)
    assert rc == 0, err
    stats = json.loads(js.read_text())["analysis"]["stats"]
    if samples == 0:
        # Nothing but the floor, and no group delay where there is no signal.
        assert stats["magnitude"]["max"] == -100.0 and stats["group_delay"]["masked_fraction"] == 1.0
    else:
        # One sample of 0.5 under the window centre: |S| = 0.5 * 2 / sum(w) = 0.5 / 512, i.e. -54.2 dBFS.
        expected = 20 * np.log10(0.5 * 2 / 512)
        assert stats["magnitude"]["max"] >= expected - 0.01


def test_render_figure_api_checks_its_arguments(tmp_path):
    from workbench.core.errors import WorkbenchError

    x = np.zeros(4000, np.float32)
    cfg = StftConfig(256, 64)
    with pytest.raises(WorkbenchError, match="mono"):
        render_figure(np.zeros((100, 2), np.float32), 8000, cfg, tmp_path / "a.png")
    with pytest.raises(WorkbenchError, match="unknown phase view"):
        render_figure(x, 8000, cfg, tmp_path / "a.png", phase_view="chirp")
    with pytest.raises(WorkbenchError, match="unknown layout"):
        render_figure(x, 8000, cfg, tmp_path / "a.png", layout="circle")
    with pytest.raises(WorkbenchError, match=".png or .svg"):
        render_figure(x, 8000, cfg, tmp_path / "a.jpg")
    out = render_figure(x, 8000, cfg, tmp_path / "deep" / "a.svg", title="silence", width_px=500, height_px=400)
    assert out == tmp_path / "deep" / "a.svg"
    assert out.read_text().count("<image") == 8  # four panes and four colour bars
    assert [p.name for p in out.parent.iterdir()] == ["a.svg"]  # no temporary file left behind
