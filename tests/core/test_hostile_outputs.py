"""Outputs that point at the wrong things never lose a file.

Every reproduction here failed on the old code: ``evaluate --csv`` wrote over the noisy recording,
``-o FIFO --overwrite`` replaced the pipe with a file, a batch into its own folder rewrote and re-enhanced
its earlier outputs, ``x.wav``/``x.flac`` lost one result, and FLAC output of a FLAC source failed.
"""

from __future__ import annotations

import hashlib
import os
import stat

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.errors import WorkbenchError
from workbench.core.audio.outputs import OutputError, check_output_target, plan_batch_outputs


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _tone(n=8000, sr=16000, amp=0.3):
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.fixture()
def pairs(tmp_path):
    d = tmp_path / "pairs"
    d.mkdir()
    rng = np.random.default_rng(1)
    clean = _tone(16000)
    sf.write(d / "a_clean.wav", clean, 16000, subtype="PCM_16")
    sf.write(d / "a_noisy.wav", clean + 0.05 * rng.standard_normal(16000).astype(np.float32), 16000,
             subtype="PCM_16")
    return d


# ------------------------------------------------------------------------------------ the core check
def test_check_output_target_refuses_inputs_by_path_symlink_and_hard_link(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, _tone(), 16000)
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    hard = tmp_path / "hard.wav"
    os.link(src, hard)
    for target in (src, tmp_path / "." / "in.wav", link, hard):
        with pytest.raises(OutputError, match="refusing to write over the input"):
            check_output_target(target, inputs=[src], overwrite=True)
    new = tmp_path / "new.wav"
    assert check_output_target(new, inputs=[src]) == new
    with pytest.raises(OutputError, match="already exists"):
        check_output_target(tmp_path / "hard.wav", inputs=[], overwrite=False)


def test_check_output_target_refuses_non_regular_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="named pipe"):
        check_output_target(fifo, overwrite=True)
    with pytest.raises(OutputError, match="folder"):
        check_output_target(tmp_path, overwrite=True)
    with pytest.raises(OutputError, match="device node"):
        check_output_target("/dev/null", overwrite=True)


def test_enhance_to_a_fifo_or_device_node_keeps_the_node(tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, _tone(), 16000)
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(fifo), "--overwrite", "--quiet"]) == 2
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert "named pipe" in capsys.readouterr().err
    before = os.stat("/dev/null")
    assert main(["enhance", str(src), "-m", "wiener", "-o", "/dev/null", "--overwrite", "--quiet"]) == 2
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device node" in err[0]


def test_atomic_writer_refuses_a_fifo_even_with_overwrite(tmp_path):
    from workbench.core.audio.audio_io import write_audio_atomic
    from workbench.core.workflows.export import write_text_atomic

    fifo = tmp_path / "x.csv"
    os.mkfifo(fifo)
    with pytest.raises(WorkbenchError, match="named pipe"):
        write_text_atomic(fifo, "a,b\n", overwrite=True)
    with pytest.raises(WorkbenchError, match="named pipe"):
        write_audio_atomic(fifo, _tone(), 16000, overwrite=True, format="WAV")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ------------------------------------------------------------------------------------ evaluate / analyze
def test_evaluate_csv_never_overwrites_a_noisy_input(pairs, capsys):
    noisy = pairs / "a_noisy.wav"
    before = _digest(noisy)
    for extra in ([], ["--overwrite"]):
        rc = main(["evaluate", str(pairs), "--no-reference-free", "--metrics", "snr", "--csv", str(noisy), *extra])
        assert rc == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "refusing to write over the input" in err[0]
    assert _digest(noisy) == before
    sf.info(noisy)  # still audio


def test_evaluate_outputs_refuse_existing_folders_and_wrong_plot_suffix(pairs, tmp_path, capsys):
    csv_path = tmp_path / "r.csv"
    assert main(["evaluate", str(pairs), "--no-reference-free", "--metrics", "snr", "--csv", str(csv_path)]) == 0
    first = csv_path.read_text()
    assert first.startswith("file,model,metric")
    capsys.readouterr()
    assert main(["evaluate", str(pairs), "--no-reference-free", "--metrics", "snr", "--csv", str(csv_path)]) == 2
    assert "already exists (use --overwrite" in capsys.readouterr().err
    assert main(["evaluate", str(pairs), "--no-reference-free", "--metrics", "snr", "--csv", str(csv_path),
                 "--overwrite"]) == 0
    capsys.readouterr()
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert main(["evaluate", str(pairs), "--no-reference-free", "--metrics", "snr", "--csv", str(folder)]) == 2
    assert "folder" in capsys.readouterr().err
    assert main(["evaluate", str(pairs), "--no-reference-free", "--metrics", "snr", "--plot", str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".png" in err[0]
    assert not (tmp_path / "o.wav").exists()


def test_evaluate_csv_on_a_failing_disk_leaves_nothing(pairs, tmp_path, monkeypatch, capsys):
    import csv as csv_module

    class FullDisk:
        def __init__(self, fh, *a, **k):
            self.fh = fh

        def writerow(self, row):
            self.fh.write(",".join(map(str, row)))
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv_module, "writer", FullDisk)
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(pairs), "--no-reference-free", "--metrics", "snr", "--csv", str(out)]) == 2
    assert "No space left" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".r.csv*"))


def test_analyze_refuses_existing_png_and_json_without_overwrite(tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, _tone(), 16000)
    js = tmp_path / "o.json"
    js.write_text("keep")
    assert main(["analyze", str(src), "--json", str(js)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert js.read_text() == "keep"
    assert main(["analyze", str(src), "--json", str(js), "--overwrite"]) == 0
    assert js.read_text() != "keep"
    hard = tmp_path / "same.png"
    os.link(src, hard)
    before = _digest(src)
    assert main(["analyze", str(src), "--png", str(hard), "--overwrite"]) == 2
    assert _digest(src) == before


# ------------------------------------------------------------------------------------ batch planning
def test_plan_skips_previous_outputs_and_never_targets_an_input(tmp_path):
    d = tmp_path
    for name in ("a.wav", "a.wiener.wav", "b.wav"):
        sf.write(d / name, _tone(), 16000)
    plan = plan_batch_outputs([d / "a.wav", d / "a.wiener.wav", d / "b.wav"], d, tags=("wiener",),
                              overwrite=True)
    by = {p.source.name: p for p in plan}
    assert by["a.wiener.wav"].skip and not by["a.wiener.wav"].todo
    assert by["a.wav"].error and "is an input of this batch" in by["a.wav"].error
    assert by["b.wav"].todo and by["b.wav"].targets == (d / "b.wiener.wav",)


def test_plan_gives_colliding_inputs_distinct_names(tmp_path):
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    files = [tmp_path / "x.wav", tmp_path / "x.flac", tmp_path / "d1" / "y.wav", tmp_path / "d2" / "y.wav"]
    plan = plan_batch_outputs(files, tmp_path / "out", tags=("wiener", "wiener.residual"))
    targets = [t for p in plan for t in p.targets]
    assert len(set(targets)) == len(targets)
    assert all(p.todo for p in plan)
    assert plan[0].targets[0].name == "x-wav.wiener.wav" and plan[1].targets[0].name == "x-flac.wiener.wav"


def test_batch_into_its_own_folder_never_rewrites_or_reenhances(tmp_path, capsys):
    d = tmp_path / "dir"
    d.mkdir()
    sf.write(d / "a.wav", _tone(), 16000)
    assert main(["enhance", str(d), "-m", "wiener", "-o", str(d), "--quiet"]) == 0
    first = _digest(d / "a.wiener.wav")
    capsys.readouterr()
    # Second run with --overwrite: a.wiener.wav is now an input of the batch; it is neither rewritten
    # nor enhanced again as a.wiener.wiener.wav.
    main(["enhance", str(d), "-m", "wiener", "-o", str(d), "--overwrite", "--quiet"])
    assert _digest(d / "a.wiener.wav") == first
    assert not (d / "a.wiener.wiener.wav").exists()
    # Without --overwrite the earlier output is skipped, not processed.
    main(["enhance", str(d), "-m", "wiener", "-o", str(d), "--quiet"])
    assert not (d / "a.wiener.wiener.wav").exists()
    assert sorted(p.name for p in d.iterdir()) == ["a.wav", "a.wiener.wav"]


def test_batch_same_stem_two_formats_keeps_both_results(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "x.wav", _tone(amp=0.3), 16000)
    sf.write(d / "x.flac", _tone(amp=0.1), 16000)
    out = tmp_path / "out"
    assert main(["enhance", str(d), "-m", "wiener", "-o", str(out) + "/", "--quiet"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["x-flac.wiener.wav", "x-wav.wiener.wav"]
    assert abs(sf.read(out / "x-wav.wiener.wav")[0]).max() > abs(sf.read(out / "x-flac.wiener.wav")[0]).max()


# ------------------------------------------------------------------------------------ item 4: subtypes
@pytest.mark.parametrize("src_name,src_subtype,out_name,want", [
    ("in.flac", "PCM_24", "out.flac", "PCM_24"),
    ("in.flac", "PCM_16", "out.flac", "PCM_16"),
    ("in.wav", "PCM_24", "out.wav", "PCM_24"),
    ("in.wav", "FLOAT", "out.flac", "PCM_24"),
    ("in.ogg", "VORBIS", "out.wav", "FLOAT"),
])
def test_default_output_subtype_follows_the_source(tmp_path, capsys, src_name, src_subtype, out_name, want):
    src = tmp_path / src_name
    sf.write(src, _tone(), 16000, subtype=src_subtype)
    out = tmp_path / out_name
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert sf.info(out).subtype == want


def test_float_source_beyond_full_scale_warns_when_written_as_pcm(tmp_path, capsys):
    src = tmp_path / "loud.wav"
    x = 0.01 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    x[15920:] += 10 * _tone(80)  # quiet noise, then a short tone at 3.0 (float files may exceed full scale)
    sf.write(src, x, 16000, subtype="FLOAT")
    out = tmp_path / "o.wav"
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(out), "--subtype", "PCM_16", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "clipped" in err and str(out) in err
    # Past 1 % of the samples, clipping would destroy the result: refused, naming the fix, nothing written.
    x[12000:] += 10 * _tone(4000)
    sf.write(src, x, 16000, subtype="FLOAT")
    out.unlink()
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(out), "--subtype", "PCM_16", "--quiet"]) == 2
    assert "--subtype FLOAT" in capsys.readouterr().err and not out.exists()
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "o.flac"), "--subtype", "FLOAT",
                 "--quiet"]) == 2
    assert "FLAC cannot hold FLOAT" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ item 11: pairs
def test_evaluation_warns_about_length_mismatch_and_missing_references(tmp_path, capsys):
    d = tmp_path / "pairs"
    d.mkdir()
    rng = np.random.default_rng(3)
    sf.write(d / "a_clean.wav", _tone(16000), 16000)
    sf.write(d / "a_noisy.wav", np.tile(_tone(16000), 3) + 0.01 * rng.standard_normal(48000).astype(np.float32),
             16000)
    sf.write(d / "b_noisy.wav", _tone(16000), 16000)  # no b_clean.wav
    out = tmp_path / "r.csv"
    assert main(["evaluate", str(d), "--no-reference-free", "--metrics", "snr", "--csv", str(out)]) == 0
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2
    # Named by the alignment check ("lengths differ") or, when that finds nothing else, by the length check.
    assert any("a_noisy.wav" in w and ("lengths differ" in w or "2.00 s longer" in w) for w in warnings)
    assert any("b_noisy.wav" in w and "no clean reference" in w for w in warnings)
    from workbench.core.workflows.evaluation import read_csv

    rows = [r for r in read_csv(out) if r["metric"] == "warning"]
    assert len(rows) == 2 and {os.path.basename(r["file"]) for r in rows} >= {"b_noisy.wav"}
