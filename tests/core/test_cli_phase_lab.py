"""``workbench phase-lab``: versions, long-form CSV, chart, convergence, and bad input."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main

TAGS = ("ibm", "irm", "iam", "psm", "cirm", "cleanmag_noisyphase", "noisymag_cleanphase",
        "spectral-subtraction_noisyphase", "spectral-subtraction_cleanphase", "gla_clean", "fgla_clean",
        "gla_spectral-subtraction", "fgla_spectral-subtraction")


@pytest.fixture()
def pair(shared_data, tmp_path):
    noisy = tmp_path / "in" / "rec.wav"
    clean = tmp_path / "in" / "rec_clean.wav"
    noisy.parent.mkdir()
    shutil.copy(shared_data / "dns3" / "0015_noisy.wav", noisy)
    shutil.copy(shared_data / "dns3" / "0015_clean.wav", clean)
    return noisy, clean


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {(r["version"], r["metric"]): float(r["value"]) if r["value"] else None for r in rows}, rows


def test_phase_lab_writes_versions_csv_plot_and_convergence(pair, tmp_path, capsys):
    noisy, clean = pair
    out = tmp_path / "out"
    rc = main(["phase-lab", str(noisy), "--clean", str(clean), "-m", "spectral-subtraction", "-o", str(out),
               "--csv", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png"), "--gla-iters", "8"])
    text = capsys.readouterr().out
    assert rc == 0
    for tag in TAGS:
        x, sr = sf.read(out / f"rec.{tag}.wav")
        assert sr == 16000 and len(x) == sf.info(noisy).frames, tag
    assert (out / "rec.spectral-subtraction.wav").exists()
    values, rows = read_rows(tmp_path / "t.csv")
    assert list(rows[0]) == ["file", "version", "metric", "value", "unit", "reason"]
    assert {r["metric"] for r in rows} == {"pesq_wb", "estoi", "si_sdr"}
    assert values[("cirm", "si_sdr")] > 40
    assert values[("cleanmag_noisyphase", "si_sdr")] < 30
    assert values[("cleanmag_noisyphase", "pesq_wb")] < values[("cirm", "pesq_wb")] - 0.3
    assert values[("psm", "si_sdr")] >= values[("iam", "si_sdr")] - 0.5
    assert values[("noisy", "pesq_wb")] < values[("irm", "pesq_wb")]
    assert (tmp_path / "t.png").stat().st_size > 10_000
    assert "fgla_clean: spectral convergence" in text and "final inconsistency" in text
    assert "|clean| ∠noisy" in text


def test_phase_lab_without_reference_still_reconstructs(pair, tmp_path, capsys):
    noisy, _ = pair
    out = tmp_path / "out"
    rc = main(["phase-lab", str(noisy), "-o", str(out), "--gla-iters", "3", "--csv", str(tmp_path / "t.csv")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "need a clean reference" in text
    assert sorted(p.name for p in out.iterdir()) == ["rec.fgla_noisy.wav", "rec.gla_noisy.wav"]
    values, rows = read_rows(tmp_path / "t.csv")
    assert all(v is None for v in values.values()) and rows[0]["reason"] == "needs a clean reference"


def test_phase_lab_reference_at_another_rate_and_length(pair, tmp_path, capsys):
    import soxr

    noisy, clean = pair
    s, sr = sf.read(clean)
    other = tmp_path / "clean48.wav"
    sf.write(other, soxr.resample(s[: len(s) - 4000], sr, 48000), 48000, subtype="FLOAT")
    rc = main(["phase-lab", str(noisy), "--clean", str(other), "-o", str(tmp_path / "out"), "--gla-iters", "0",
               "--csv", str(tmp_path / "t.csv")])
    text = capsys.readouterr().out
    assert rc == 0 and "resampled from 48000 Hz" in text
    values, _ = read_rows(tmp_path / "t.csv")
    assert values[("cirm", "si_sdr")] > 40


def test_phase_lab_bad_input_is_one_clear_line(pair, tmp_path, capsys, rng):
    noisy, clean = pair
    out = tmp_path / "out"
    wrong = tmp_path / "wrong.wav"
    sf.write(wrong, rng.standard_normal(80000) * 0.1, 16000)
    assert main(["phase-lab", str(noisy), "--clean", str(wrong), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wrong.wav: the reference does not match" in err[0]
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000), 16000)
    assert main(["phase-lab", str(silent), "--clean", str(clean), "-o", str(out)]) == 2
    assert "silent.wav: the recording is silent" in capsys.readouterr().err
    assert main(["phase-lab", str(noisy), "--clean", str(tmp_path / "missing.wav"), "-o", str(out)]) == 2
    assert "missing.wav" in capsys.readouterr().err
    assert main(["phase-lab", str(noisy), "-o", str(out), "--hop", "5000"]) == 2
    assert "hop" in capsys.readouterr().err
    assert not out.exists()


def test_phase_lab_never_writes_over_inputs_or_non_files(pair, tmp_path, capsys):
    noisy, clean = pair
    folder = noisy.parent
    # the clean reference is named like one of the outputs: refused before anything is written
    trap = folder / "rec.cirm.wav"
    shutil.copy(clean, trap)
    before = trap.read_bytes()
    assert main(["phase-lab", str(noisy), "--clean", str(trap), "-o", str(folder), "--gla-iters", "1",
                 "--overwrite"]) == 2
    assert "refusing to write over the input file" in capsys.readouterr().err
    assert trap.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [
        "rec.cirm.wav", "rec.wav", "rec_clean.wav"]
    out = tmp_path / "out"
    (out / "rec.irm.wav").mkdir(parents=True)
    assert main(["phase-lab", str(noisy), "--clean", str(clean), "-o", str(out), "--overwrite",
                 "--gla-iters", "1"]) == 2
    assert "is a folder; refusing to replace it" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["rec.irm.wav"]
    # an existing output needs --overwrite
    shutil.rmtree(out / "rec.irm.wav")
    assert main(["phase-lab", str(noisy), "--clean", str(clean), "-o", str(out), "--gla-iters", "1"]) == 0
    assert main(["phase-lab", str(noisy), "--clean", str(clean), "-o", str(out), "--gla-iters", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
