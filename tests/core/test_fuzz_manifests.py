"""Hostile batch manifests: a resumed run replaces only what this batch provably wrote; malformed rows and a
full drive are one line, never a traceback."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.workflows.batch import manifest as manifest_mod
from workbench.core.workflows.batch.manifest import Manifest, read_manifest
from workbench.core.errors import WorkbenchError


@pytest.fixture()
def one_input(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    t = np.arange(8000) / 16000
    sf.write(folder / "clip.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000, subtype="PCM_16")
    return folder


def _args(inputs, out, *extra):
    return ["batch", "enhance", str(inputs), "-m", "wiener", "-o", str(out), "--workers", "0", "--quiet", *extra]


HEADER = {"manifest": "workbench-batch", "version": 1, "kind": "enhance", "created": "x"}


def test_a_header_only_manifest_does_not_let_resume_overwrite_a_users_file(one_input, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "clip.wiener.wav"
    mine.write_bytes(b"the person's own file")
    (out / "manifest.jsonl").write_text(json.dumps(dict(HEADER, output_dir=str(out))) + "\n")
    assert main(_args(one_input, out, "--resume")) == 0
    assert mine.read_bytes() == b"the person's own file"


def test_another_batchs_manifest_is_refused(one_input, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "clip.wiener.wav"
    mine.write_bytes(b"the person's own file")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(dict(HEADER, output_dir=str(tmp_path / "elsewhere"))) + "\n")
    assert main(_args(one_input, out, "--resume", "--manifest", str(other))) == 2
    err = capsys.readouterr().err
    assert "the manifest of another batch" in err and len(err.strip().splitlines()) == 1
    assert mine.read_bytes() == b"the person's own file"


def test_a_row_claiming_a_file_it_did_not_write_does_not_let_resume_replace_it(one_input, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(one_input, out)) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    victim = out / "clip.wiener.wav"
    victim.write_bytes(b"replaced by the person")  # the row's hash no longer matches
    rows[1]["settings"] = dict(rows[1]["settings"], changed=True)  # a stale row: would be recomputed
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(_args(one_input, out, "--resume")) == 0
    assert victim.read_bytes() == b"replaced by the person"


MALFORMED = [
    {"key": ["a"], "status": "done"},
    {"key": "k", "status": "done", "index": "3"},
    {"key": "k", "status": "done", "index": 0, "outputs": ["a.wav"]},
    {"key": "k", "status": "done", "index": 0, "outputs": {"path": "a.wav"}},
    {"key": "k", "status": "done", "index": 0, "outputs": [{"path": 5}]},
]


@pytest.mark.parametrize("row", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_malformed_rows_are_one_line(tmp_path, row):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps(HEADER) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(WorkbenchError) as err:
        read_manifest(m)
    assert "line 2" in str(err.value) and "\n" not in str(err.value) and str(m) in str(err.value)


def test_a_nan_in_a_row_is_one_line(one_input, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(one_input, out)) == 0
    text = (out / "manifest.jsonl").read_text()
    lines = text.splitlines()
    row = json.loads(lines[1])
    row["timings"] = {"x": 1.0}
    lines[1] = json.dumps(row).replace('"x": 1.0', '"x": NaN')
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(_args(one_input, out, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert "NaN" in err and "line 2" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_torn_last_line_is_still_ignored(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps(HEADER) + "\n" + '{"key": "k", "sta')
    header, rows = read_manifest(m)
    assert header["kind"] == "enhance" and rows == {}


def test_a_fifo_manifest_is_refused_without_blocking(tmp_path):
    m = tmp_path / "m.jsonl"
    os.mkfifo(m)
    with pytest.raises(WorkbenchError, match="named pipe"):
        read_manifest(m)


def test_a_full_drive_while_appending_is_one_line(tmp_path, monkeypatch):
    m = Manifest(tmp_path / "m.jsonl", {"kind": "enhance"})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(manifest_mod.os, "fsync", full)
    with pytest.raises(WorkbenchError, match="No space left on the drive"):
        m.append({"key": "k", "status": "done"})
    monkeypatch.undo()
    m.close()


def test_a_full_drive_while_closing_is_one_line(tmp_path):
    m = Manifest(tmp_path / "m.jsonl", {"kind": "enhance"})

    class Full:
        closed = False

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")
    real, m._fh = m._fh, Full()
    with pytest.raises(WorkbenchError, match="No space left on the drive"):
        m.close()
    real.close()
