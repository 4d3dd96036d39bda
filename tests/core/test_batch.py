"""The batch pipeline: one per-item function, byte-identical outputs across backends and worker counts,
a manifest per item, failed rows for bad files, resume after SIGKILL and after a lost worker."""

from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.audio.audio_io import write_audio_atomic
from workbench.core.workflows.batch import EnhanceSettings, collect_inputs, enhance_tasks, read_manifest
from workbench.core.workflows.batch.backends import LOST_WORKER_REASON
from workbench.core.document.recording import file_sha256

REPO = Path(__file__).resolve().parents[2]


def make_corpus(folder: Path, shared_data: Path, n: int, seconds: float, *, broken: bool = True) -> Path:
    """``n`` 16 kHz files of ``seconds`` s tiled from the dns3 noisy clips (each with its own gain), in
    two sub folders, plus a broken file and a file of NaNs when ``broken``."""
    clips = [sf.read(shared_data / "dns3" / f"{c}_noisy.wav", dtype="float32")[0] for c in ("0015", "0016", "0072")]
    frames = int(seconds * 16000)
    for i in range(n):
        x = np.resize(np.concatenate(clips[i % 3:] + clips[:i % 3]), frames) * np.float32(0.5 + 0.05 * i)
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"clip{i:02d}.wav", x, 16000, subtype="PCM_16")
    if broken:
        (folder / "a" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
        sf.write(folder / "b" / "nan.wav", np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    return folder


def output_hashes(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): file_sha256(p) for p in sorted(out.rglob("*.wav"))}


def rows_of(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data):
    return make_corpus(tmp_path_factory.mktemp("corpus"), shared_data, 4, 3.0)


@pytest.fixture(scope="module")
def serial_run(corpus, tmp_path_factory):
    """The reference: every item in this process (``--workers 0``)."""
    out = tmp_path_factory.mktemp("serial")
    rc = main(["batch", "enhance", str(corpus), "-m", "wiener", "-m", "nsnet2-16k", "-o", str(out),
               "--workers", "0", "--residual", "--quiet"])
    return rc, out


def test_float_wav_writes_are_byte_identical(tmp_path, rng):
    """libsndfile's PEAK chunk stamps the write time into float WAVs: the same samples gave other bytes."""
    x = (0.1 * rng.standard_normal((1600, 2))).astype(np.float32)
    write_audio_atomic(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    data = (tmp_path / "a.wav").read_bytes()
    assert b"PEAK" not in data
    y, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    assert sr == 16000 and np.array_equal(x, y)


def test_serial_run_rows_outputs_and_failures(serial_run, corpus):
    rc, out = serial_run
    assert rc == 2  # two bad files: failed rows, the run itself finished
    header, rows = read_manifest(out / "manifest.jsonl")
    assert header["kind"] == "enhance" and [m["id"] for m in header["models"]] == ["wiener", "nsnet2-16k"]
    assert len(rows) == 6 * 2
    failed = {Path(r["input"]).name for r in rows.values() if r["status"] == "failed"}
    assert failed == {"broken.wav", "nan.wav"}
    for r in rows.values():
        assert "\n" not in r["reason"]
        if r["status"] == "failed":
            assert Path(r["input"]).name in r["reason"]
            continue
        assert r["status"] == "done" and r["input_sha256"] == file_sha256(r["input"])
        assert r["model"]["spec"] in ("wiener", "nsnet2-16k") and r["settings"]["residual"] is True
        assert [o["name"] for o in r["outputs"]] == ["enhanced", "residual"]
        for o in r["outputs"]:
            assert file_sha256(o["path"]) == o["sha256"]
        assert r["timings"]["total_s"] >= r["timings"]["model_s"] > 0
        assert r["duration_s"] == pytest.approx(3.0) and "output_rms_dbfs" in r["metrics"]
    # sub folders mirror the inputs', names are <stem>.<model>[.residual].wav
    assert (out / "a" / "clip01.nsnet2-16k.residual.wav").is_file()
    assert (out / "b" / "clip00.wiener.wav").is_file()


def test_local_pool_outputs_equal_serial_byte_for_byte(serial_run, corpus, tmp_path):
    _, ref = serial_run
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        rc = main(["batch", "enhance", str(corpus), "-m", "wiener", "-m", "nsnet2-16k", "-o", str(out),
                   "--workers", str(workers), "--residual", "--quiet"])
        assert rc == 2
        assert output_hashes(out) == output_hashes(ref)
        rows = rows_of(out / "manifest.jsonl")
        assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)  # compacted in input order
        pids = {r["worker"] for r in rows}
        assert f"{os.uname().nodename}:{os.getpid()}" not in pids  # ran in the pool, not here


def test_rerun_skips_and_resume_reuses(serial_run, corpus, tmp_path, capsys):
    _, ref = serial_run
    out = tmp_path / "o"
    args = ["batch", "enhance", str(corpus), "-m", "wiener", "-o", str(out), "--workers", "0", "--quiet"]
    assert main(args) == 2
    capsys.readouterr()
    assert main(args) == 2 and "--resume" in capsys.readouterr().err  # an existing manifest is not clobbered
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    assert main(args + ["--resume"]) == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before  # nothing recomputed
    # an output of this batch that was altered since is no longer provably ours: kept, skipped, named
    victim = out / "a" / "clip01.wiener.wav"
    victim.write_bytes(b"changed")
    assert main(args + ["--resume"]) == 2
    assert victim.read_bytes() == b"changed"
    row = next(r for r in rows_of(out / "manifest.jsonl") if r["input"].endswith("clip01.wav"))
    assert row["status"] == "skipped" and "not the file this batch wrote" in row["reason"]
    # one that was removed is ours to write again
    victim.unlink()
    assert main(args + ["--resume", "--overwrite"]) == 2
    assert file_sha256(victim) == file_sha256(ref / "a" / "clip01.wiener.wav")
    # outputs there but no manifest (another run's): skipped rows, never overwritten
    (out / "manifest.jsonl").unlink()
    victim.write_bytes(b"someone else's")
    assert main(args) == 2
    rows = rows_of(out / "manifest.jsonl")
    assert sorted({r["status"] for r in rows}) == ["failed", "skipped"]
    assert victim.read_bytes() == b"someone else's"


def test_inputs_from_lists_and_planning_refusals(corpus, tmp_path):
    files = sorted(corpus.rglob("clip*.wav"))
    (tmp_path / "list.txt").write_text("# corpus\n" + "\n".join(str(f) for f in files[:2]) + "\n")
    (tmp_path / "list.csv").write_text("speaker,path\nx," + str(files[2]) + "\n")
    got = collect_inputs([tmp_path / "list.txt", tmp_path / "list.csv", files[0]])
    assert [f.path for f in got] == files[:3]  # duplicates dropped, list order kept
    # planned with the project's planner: colliding names made distinct, an earlier output of the model
    # among the inputs skipped, an output that would be an input refused
    (tmp_path / "x.wav").write_bytes(files[0].read_bytes())
    (tmp_path / "x.flac").write_bytes(b"")
    tasks = enhance_tasks(collect_inputs([tmp_path / "x.wav", tmp_path / "x.flac"]), tmp_path / "o",
                          [("wiener", "wiener", ["enhanced"])], EnhanceSettings())
    assert [Path(t["outputs"][0]["path"]).name for t in tasks] == ["x-wav.wiener.wav", "x-flac.wiener.wav"]
    (tmp_path / "x.wiener.wav").write_bytes(b"")
    tasks = enhance_tasks(collect_inputs([tmp_path / "x.wav", tmp_path / "x.wiener.wav"]), tmp_path,
                          [("wiener", "wiener", ["enhanced"])], EnhanceSettings())
    assert tasks[0]["planned"]["status"] == "failed" and "is an input of this batch" in \
        tasks[0]["planned"]["reason"]
    assert tasks[1]["planned"]["status"] == "skipped"


def test_mix_is_exact_dry_wet(corpus, tmp_path):
    src = sorted(corpus.rglob("clip*.wav"))[0]
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "wet.wav"), "--quiet",
                 "--subtype", "FLOAT"]) == 0
    assert main(["batch", "enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "m"), "--mix", "0.25",
                 "--workers", "0", "--quiet", "--subtype", "FLOAT"]) == 0
    wet = sf.read(tmp_path / "wet.wav", dtype="float32")[0]
    dry = sf.read(src, dtype="float32")[0]
    mixed = sf.read(tmp_path / "m" / f"{src.stem}.wiener.wav", dtype="float32")[0]
    np.testing.assert_allclose(mixed, 0.25 * wet + 0.75 * dry, atol=1e-6)


def test_batch_takes_the_editing_options_of_enhance(corpus, tmp_path):
    """Defect: `workbench batch enhance` had no --region/--limit-db/--noise-profile/lossy --format/
    --loudness, although its per-item function supports them. Outputs equal `workbench enhance` with the
    same options; outside the region the input comes through bit-identical."""
    src = sorted(corpus.rglob("clip*.wav"))[0]
    opts = ["--region", "0.5:1.5", "--limit-db", "12", "--noise-profile", "0:0.4"]
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "one.wav"), "--quiet",
                 "--subtype", "FLOAT", *opts]) == 0
    assert main(["batch", "enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "b"), "--workers", "0",
                 "--quiet", "--subtype", "FLOAT", *opts]) == 0
    one = sf.read(tmp_path / "one.wav", dtype="float32")[0]
    batch, sr = sf.read(tmp_path / "b" / f"{src.stem}.wiener.wav", dtype="float32")
    dry = sf.read(src, dtype="float32")[0]
    np.testing.assert_array_equal(batch, one)
    outside = np.r_[0:int(0.45 * sr), int(1.55 * sr):len(dry)]
    np.testing.assert_array_equal(batch[outside], dry[outside])
    assert not np.allclose(batch[int(0.7 * sr):int(1.3 * sr)], dry[int(0.7 * sr):int(1.3 * sr)])
    header, _rows = read_manifest(tmp_path / "b" / "manifest.jsonl")
    st = header["settings"]
    assert st["strength_as"] == "limit_db" and st["regions_s"] == [[0.5, 1.5]] and st["noise_profile_s"] == [0, 0.4]

    assert main(["batch", "enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "mp3"), "--workers", "0",
                 "--quiet", "--format", "MP3", "--loudness", "-16", "--quality", "0.8"]) == 0
    out = tmp_path / "mp3" / f"{src.stem}.wiener.mp3"
    assert sf.info(out).format == "MP3"
    from workbench.core.audio.loudness import measure
    decoded, rate = sf.read(out, dtype="float32", always_2d=True)
    _h, rows = read_manifest(tmp_path / "mp3" / "manifest.jsonl")
    (row,) = rows.values()
    limited = row["outputs"][0]["limited_db"]
    assert abs(measure(decoded, rate).lufs - (-16 + limited)) < 0.5
    assert main(["batch", "enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "x"), "--format", "MP3",
                 "--subtype", "PCM_24", "--quiet"]) == 2


def test_torn_manifest_line_is_ignored(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"manifest": "workbench-batch", "version": 1, "kind": "enhance"}\n'
                 '{"key": "a|x", "status": "done", "index": 0}\n{"key": "b|x", "sta')
    header, rows = read_manifest(m)
    assert header["kind"] == "enhance" and list(rows) == ["a|x"]


def test_batch_evaluate_agrees_with_evaluate(shared_data, tmp_path, capsys):
    common = ["-m", "wiener", "--no-reference-free", "--metrics", "si_sdr,estoi"]
    assert main(["evaluate", str(shared_data / "dns3"), *common, "--csv", str(tmp_path / "e.csv")]) == 0
    assert main(["batch", "evaluate", str(shared_data / "dns3"), *common, "--csv", str(tmp_path / "b.csv"),
                 "--workers", "2", "--quiet"]) == 0
    from workbench.core.workflows.evaluation import read_csv

    a = {(r["file"], r["model"], r["metric"]): r["value"] for r in read_csv(tmp_path / "e.csv")}
    b = {(r["file"], r["model"], r["metric"]): r["value"] for r in read_csv(tmp_path / "b.csv")}
    # the same per-item function; only BLAS summation order (threads) may move the last digit
    assert a.keys() == b.keys() and len(a) == 3 * 2 * 2
    assert all(b[k] == pytest.approx(a[k], rel=1e-12) for k in a)
    rows = rows_of(tmp_path / "b.csv.manifest.jsonl")
    assert {r["status"] for r in rows} == {"done"} and all(r["clean_sha256"] for r in rows)


# ------------------------------------------------------------------------------ kills and lost workers


def start_cli(args: list[str]) -> subprocess.Popen:
    """The CLI in its own process group, so a kill takes every process it started with it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "workbench", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_rows(manifest: Path, n: int, proc: subprocess.Popen, timeout_s: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if manifest.exists():
            rows = [json.loads(line) for line in manifest.read_text().splitlines()[1:]
                    if line.endswith("}")]
            if len(rows) >= n:
                return rows
        if proc.poll() is not None:
            pytest.fail(f"batch ended early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    pytest.fail("no manifest rows appeared")


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory, shared_data):
    """12 clean 20 s files: long enough that a kill lands in the middle of the batch."""
    return make_corpus(tmp_path_factory.mktemp("long"), shared_data, 12, 20.0, broken=False)


@pytest.fixture(scope="module")
def long_reference(long_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("long_ref")
    assert main(["batch", "enhance", str(long_corpus), "-m", "nsnet2-16k", "-o", str(out), "--workers", "0",
                 "--quiet"]) == 0
    return output_hashes(out)


def kill_and_resume(long_corpus, long_reference, out: Path, backend_args: list[str],
                    first_run_extra: list[str] = ()) -> None:
    args = ["batch", "enhance", str(long_corpus), "-m", "nsnet2-16k", "-o", str(out), "--quiet", *backend_args]
    proc = start_cli(args + list(first_run_extra))
    wait_for_rows(out / "manifest.jsonl", 1, proc)
    kill_group(proc)
    header, done_before = read_manifest(out / "manifest.jsonl")
    assert header is not None and 1 <= len(done_before) < 12  # killed midway
    assert main(args + ["--resume"]) == 0
    assert output_hashes(out) == long_reference
    assert not list(out.rglob("*.part"))  # a killed write's temporary file is cleaned up
    rows = rows_of(out / "manifest.jsonl")
    # A kill between an output's rename and its manifest row leaves a complete file that no row proves this
    # batch wrote: the resume keeps it and reports it skipped rather than overwrite a file it cannot own.
    assert len(rows) == 12 and {r["status"] for r in rows} <= {"done", "skipped"}
    assert sum(r["status"] == "skipped" for r in rows) <= 2  # at most one item in flight per worker
    for key, old in done_before.items():  # what was done before the kill was not redone
        assert next(r for r in rows if r["key"] == key)["worker"] == old["worker"]


def test_local_backend_survives_sigkill_and_resumes(long_corpus, long_reference, tmp_path):
    kill_and_resume(long_corpus, long_reference, tmp_path / "out", ["--backend", "local", "--workers", "1"])


def test_lost_local_worker_is_retried(long_corpus, long_reference, tmp_path):
    out = tmp_path / "out"
    proc = start_cli(["batch", "enhance", str(long_corpus), "-m", "nsnet2-16k", "-o", str(out), "--quiet",
                      "--workers", "2"])
    first = wait_for_rows(out / "manifest.jsonl", 1, proc)[0]
    os.kill(int(first["worker"].rsplit(":", 1)[1]), signal.SIGKILL)  # one worker process dies
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    proc.stderr.close()
    assert output_hashes(out) == long_reference
    rows = rows_of(out / "manifest.jsonl")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"done"}
    assert not any(LOST_WORKER_REASON in r["reason"] for r in rows)


def test_evaluate_unreadable_pair_is_rows_with_reasons(tmp_path, rng, capsys):
    """`workbench evaluate` used to stop at the first unreadable pair; now it is that pair's rows."""
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    for name in ("x", "y"):
        sf.write(tmp_path / f"{name}_clean.wav", x, 16000)
        sf.write(tmp_path / f"{name}_noisy.wav", x + 0.01 * rng.standard_normal(16000).astype(np.float32), 16000)
    (tmp_path / "y_noisy.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
    # the table and CSV are written, and the exit status says not everything was measured (as batch evaluate)
    assert main(["evaluate", str(tmp_path), "--no-reference-free", "--metrics", "si_sdr", "--csv",
                 str(tmp_path / "r.csv")]) == 2
    from workbench.core.workflows.evaluation import read_csv

    rows = {r["file"]: r for r in read_csv(tmp_path / "r.csv")}
    assert rows["x"]["value"] is not None
    assert rows["y"]["value"] is None and "y_noisy.wav" in rows["y"]["reason"]


def _speech_and_noise_module():
    import torch

    class SpeechAndNoise(torch.nn.Module):
        """(1, T) -> (2, T): a 3-tap smoother as "speech" and what it removed as "noise"."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 1, 3, padding=1, bias=False)
            with torch.no_grad():
                self.conv.weight[:] = torch.tensor([[[0.25, 0.5, 0.25]]])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            speech = self.conv(x[:, None, :])[:, 0, :]
            return torch.cat([speech, x - speech], dim=0)

    return SpeechAndNoise()


def test_two_output_model_gives_one_file_per_output(tmp_path, rng):
    """A model with outputs ("speech", "noise") (two-output TorchScript module) gives
    <stem>.<model>.speech.wav and <stem>.<model>.noise.wav per input, each the matching version of
    Recording.enhance (the per-item function runs the model through it), local pool = serial bytes."""
    import torch

    from workbench.core.progress import run_to_end
    from workbench.core.workflows.export import file_tag
    from workbench.core.document.recording import Recording
    from workbench.core.enhance.registry import load_enhancer

    models = tmp_path / "models"
    models.mkdir()
    model = models / "split.pt"
    torch.jit.save(torch.jit.script(_speech_and_noise_module()), str(model))
    (models / "split.pt.toml").write_text('kind = "waveform"\nsample_rate = 16000\noutputs = ["speech", "noise"]\n')
    src = tmp_path / "in"
    src.mkdir()
    for k in range(2):
        sf.write(src / f"f{k}.wav", (0.1 * rng.standard_normal((8000, 1))).astype(np.float32), 16000, subtype="FLOAT")
    enh = load_enhancer(model)
    tag = file_tag(enh.info.id)  # portable file name part of the id (torchscript:split -> torchscript-split)
    serial, pool = tmp_path / "serial", tmp_path / "pool"
    assert main(["batch", "enhance", str(src), "-m", str(model), "-o", str(serial), "--workers", "0",
                 "--quiet"]) == 0
    assert main(["batch", "enhance", str(src), "-m", str(model), "-o", str(pool), "--workers", "2",
                 "--quiet"]) == 0
    names = sorted(p.name for p in serial.iterdir() if p.suffix == ".wav")
    assert names == sorted(f"f{k}.{tag}.{o}.wav" for k in range(2) for o in ("speech", "noise"))
    assert output_hashes(serial) == output_hashes(pool)
    rec = Recording(src / "f0.wav")
    speech, noise = run_to_end(rec.enhance(enh))
    np.testing.assert_array_equal(sf.read(serial / f"f0.{tag}.speech.wav", dtype="float32")[0][:, None],
                                  speech.source.read_all())
    np.testing.assert_array_equal(sf.read(serial / f"f0.{tag}.noise.wav", dtype="float32")[0][:, None],
                                  noise.source.read_all())
    rows = [r for r in rows_of(serial / "manifest.jsonl") if r.get("kind") == "enhance"]
    assert {r["status"] for r in rows} == {"done"} and all(len(r["outputs"]) == 2 for r in rows)


def test_enhance_folder_runs_each_file_through_the_item_function(corpus, tmp_path, monkeypatch):
    """`workbench enhance FOLDER` goes through enhance_item like `workbench batch`: the same samples for
    the same strength, and its WAVs still carry the provenance tag (with the strength) that batch leaves out."""
    import json as _json

    import workbench.core.workflows.batch.item as item

    seen = []
    real = item.enhance_item

    def spy(task, *a, **kw):
        seen.append(Path(task["input"]).name)
        return (yield from real(task, *a, **kw))

    import shutil

    src = tmp_path / "in"
    src.mkdir()
    for f in sorted(corpus.rglob("clip*.wav"))[:2]:
        shutil.copy(f, src / f.name)
    files = sorted(p.name for p in src.iterdir())
    assert main(["batch", "enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "b"), "--mix", "0.5",
                 "--workers", "0", "--quiet", "--subtype", "FLOAT"]) == 0
    monkeypatch.setattr(item, "enhance_item", spy)  # where the batch driver's run_task finds it
    assert main(["enhance", str(src), "-m", "wiener", "-o", str(tmp_path / "e") + "/", "--mix", "0.5", "--quiet",
                 "--subtype", "FLOAT"]) == 0
    assert seen == files
    for name in files:
        out = f"{Path(name).stem}.wiener.wav"
        e, b = (sf.read(tmp_path / d / out, dtype="float32")[0] for d in ("e", "b"))
        np.testing.assert_array_equal(e, b)
        tag = _json.loads(sf.SoundFile(tmp_path / "e" / out).comment)
        assert tag["strength"]["mix"] == 0.5 and tag["model_id"] == "wiener"
        assert not sf.SoundFile(tmp_path / "b" / out).comment


def test_every_output_of_a_model_with_several_gets_its_residual(tmp_path):
    """One planner for the CLI batch and the dialog: with --residual each output of a two-output model gets
    its own residual file (<stem>.<model>.<output>.residual), not only the first output's."""
    from workbench.core.workflows.batch import InputFile, plan_outputs

    [[plan]] = plan_outputs([InputFile(tmp_path / "x.wav", tmp_path)], tmp_path / "out",
                            [("sep", "sep", ["speech", "noise"])], residual=True)
    assert [(o["name"], Path(o["path"]).name) for o in plan["outputs"]] == [
        ("speech", "x.sep.speech.wav"), ("noise", "x.sep.noise.wav"),
        ("speech.residual", "x.sep.speech.residual.wav"), ("noise.residual", "x.sep.noise.residual.wav")]


def test_a_pool_that_breaks_between_two_hand_outs_is_replaced_and_no_item_is_lost(monkeypatch):
    """A worker may die just as the driver hands out the next item: ``submit`` then raises
    BrokenProcessPool itself. The driver starts a new pool, and every item still runs exactly once."""
    import concurrent.futures
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from workbench.core.workflows.batch import backends

    pools = []

    class FlakyPool:
        def __init__(self, *args, **kwargs):
            self.n = 0
            self.first = not pools
            pools.append(self)

        def submit(self, fn, task):
            self.n += 1
            if self.first and self.n >= 2:  # broken from then on, as a real pool stays
                raise BrokenProcessPool("a child process terminated abruptly")
            fut = Future()
            fut.set_result({"key": task["key"], "status": "done"})
            return fut

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", FlakyPool)
    tasks = [{"key": f"k{i}", "input": f"f{i}.wav"} for i in range(6)]
    rows = list(backends.run_local(tasks, ["wiener"], workers=2, poll_s=0.01))
    assert len(pools) >= 2
    assert sorted(r["key"] for r in rows) == sorted(t["key"] for t in tasks)


def _as_earlier_version_wrote_it(manifest: Path) -> None:
    """Rename the reference-free settings keys back to the names earlier versions wrote (``dnsmos``...)."""
    lines = []
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        settings = rec.get("settings") or {}
        rec["settings"] = {{"reference_free": "dnsmos", "reference_free_fast": "dnsmos_fast"}.get(k, k): v
                           for k, v in settings.items()}
        lines.append(json.dumps(rec))
    manifest.write_text("\n".join(lines) + "\n")


def test_a_manifest_with_the_earlier_dnsmos_settings_key_still_resumes(shared_data, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_data / "dns3" / "0015_noisy.wav", src)
    out = tmp_path / "o"
    args = ["batch", "enhance", str(src), "-m", "wiener", "-o", str(out), "--workers", "0", "--quiet"]
    assert main(args) == 0
    _as_earlier_version_wrote_it(out / "manifest.jsonl")
    assert '"dnsmos": false' in (out / "manifest.jsonl").read_text()
    written = next(out.rglob("*.wav"))
    before = written.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    assert written.stat().st_mtime_ns == before  # reused, not recomputed
    assert "1 (1 from an earlier run)" in capsys.readouterr().err
    # evaluation rows too: {"dnsmos": false, "metrics": [...]} is the same setting as reference_free false
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for kind in ("noisy", "clean"):
        shutil.copy(shared_data / "dns3" / f"0015_{kind}.wav", pairs)
    csv_path = tmp_path / "e.csv"
    eval_args = ["batch", "evaluate", str(pairs), "--no-dnsmos", "--metrics", "si_sdr", "--csv", str(csv_path),
                 "--workers", "0", "--quiet"]  # the earlier flag is a hidden alias
    assert main(eval_args) == 0
    manifest = csv_path.with_name(csv_path.name + ".manifest.jsonl")
    assert {r["settings"]["reference_free"] for r in rows_of(manifest)} == {False}
    _as_earlier_version_wrote_it(manifest)
    csv_path.unlink()  # as if the run had been stopped before its table was written
    capsys.readouterr()
    assert main(eval_args + ["--resume"]) == 0
    assert "1 (1 from an earlier run)" in capsys.readouterr().err  # the one pair scored as noisy: reused
