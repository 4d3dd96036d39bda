"""`workbench enhance` (several files), `workbench evaluate`, `evaluate()` and the dialog's `export_batch` run
on the batch driver's process pool when asked, and give what the serial path gives."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.commands import enhance as enhance_command
from workbench.core.enhance.registry import load_enhancer
from workbench.core.errors import WorkbenchError
from workbench.core.progress import run_to_end
from workbench.core.workflows import evaluation
from workbench.core.workflows.batch import files as batch_files
from workbench.core.workflows.batch import read_manifest

CLIPS = ("0015", "0016")


@pytest.fixture()
def pairs(shared_data, tmp_path):
    """Two 5 s noisy/clean pairs."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    for name in CLIPS:
        for kind in ("noisy", "clean"):
            shutil.copy(shared_data / "dns3" / f"{name}_{kind}.wav", folder)
    return folder


def spy_on_run_batch(monkeypatch, module) -> list:
    """Record the :class:`BatchReport` of every batch ``module`` drives."""
    reports = []
    real = module.run_batch

    def spy(*args, **kwargs):
        report = yield from real(*args, **kwargs)
        reports.append(report)
        return report

    monkeypatch.setattr(module, "run_batch", spy)
    return reports


def pids(report) -> set[int]:
    return {int(row["worker"].rsplit(":", 1)[1]) for row in report.rows}


def assert_ran_on_two_pool_workers(report) -> None:
    assert (report.backend, report.workers) == ("local", 2)
    assert os.getpid() not in pids(report)  # every item ran in a worker process, none here


def test_enhance_several_files_on_a_pool_equals_serial(pairs, tmp_path, monkeypatch):
    noisy = [str(pairs / f"{n}_noisy.wav") for n in CLIPS]
    reports = spy_on_run_batch(monkeypatch, enhance_command)
    common = ["-m", "wiener", "--subtype", "FLOAT", "--quiet"]
    assert main(["enhance", *noisy, *common, "-o", str(tmp_path / "serial")]) == 0
    assert main(["enhance", *noisy, *common, "-o", str(tmp_path / "pool"), "--workers", "2"]) == 0
    assert reports[0].backend == "serial" and pids(reports[0]) == {os.getpid()}
    assert_ran_on_two_pool_workers(reports[1])
    for n in CLIPS:
        a, _ = sf.read(tmp_path / "serial" / f"{n}_noisy.wiener.wav")
        b, _ = sf.read(tmp_path / "pool" / f"{n}_noisy.wiener.wav")
        assert np.array_equal(a, b)


def short_clips(shared_data, folder, seconds: float) -> list[str]:
    """The first ``seconds`` of each noisy clip, as files of their own (a heavy model stays quick)."""
    folder.mkdir()
    paths = []
    for name in CLIPS:
        audio, rate = sf.read(shared_data / "dns3" / f"{name}_noisy.wav", dtype="float32")
        path = folder / f"{name}_noisy.wav"
        sf.write(path, audio[: int(seconds * rate)], rate, subtype="FLOAT")
        paths.append(str(path))
    return paths


def samples(folder, model_tag: str) -> list[np.ndarray]:
    return [sf.read(folder / f"{n}_noisy.{model_tag}.wav", dtype="float64")[0] for n in CLIPS]


# Each option that wraps the loaded model: the model, the option, and how long the clips are (DeepFilterNet3 at
# 48 kHz is the heavy one). The option must change the output (else equality would prove nothing) and the
# pool's workers, which load the model themselves, must give the serial run's samples exactly.
MODEL_OPTIONS = [("wiener", ["--latency", "3"], 5.0, {"latency": 3}),
                 ("deepfilternet3", ["--processing", "streaming"], 1.5, {"processing": "streaming"}),
                 ("deepfilternet3", ["--atten-lim-db", "6"], 1.5, {"atten_lim_db": 6.0})]


@pytest.mark.parametrize("model, option, seconds, recorded", MODEL_OPTIONS, ids=[o[1][0] for o in MODEL_OPTIONS])
def test_enhance_options_that_wrap_the_model_travel_to_pool_workers(shared_data, tmp_path, monkeypatch, model,
                                                                    option, seconds, recorded):
    clips = short_clips(shared_data, tmp_path / "in", seconds)
    reports = spy_on_run_batch(monkeypatch, enhance_command)
    common = [*clips, "-m", model, "--subtype", "FLOAT", "--quiet"]
    assert main(["enhance", *common, "-o", str(tmp_path / "plain")]) == 0
    assert main(["enhance", *common, *option, "-o", str(tmp_path / "serial")]) == 0
    assert main(["enhance", *common, *option, "-o", str(tmp_path / "pool"), "--workers", "2"]) == 0
    assert reports[1].backend == "serial"
    assert_ran_on_two_pool_workers(reports[2])
    plain, serial, pool = (samples(tmp_path / d, model) for d in ("plain", "serial", "pool"))
    for p, a, b in zip(plain, serial, pool):
        assert not np.array_equal(p, a)  # the option changes the result ...
        assert np.array_equal(a, b)  # ... and the workers apply it as this process does
    assert all(row["model"]["options"] == recorded for row in reports[1].rows + reports[2].rows)


def test_enhance_still_refuses_several_workers_on_the_serial_backend(pairs, tmp_path, capsys):
    noisy = [str(pairs / f"{n}_noisy.wav") for n in CLIPS]
    assert main(["enhance", *noisy, "-m", "wiener", "-o", str(tmp_path / "o"), "--backend", "serial",
                 "--workers", "2"]) != 0
    assert "--backend serial runs in this process" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_batch_enhance_options_that_wrap_the_model_on_a_pool_equal_serial(pairs, tmp_path):
    noisy = [str(pairs / f"{n}_noisy.wav") for n in CLIPS]
    common = ["batch", "enhance", *noisy, "-m", "wiener", "--latency", "3", "--subtype", "FLOAT", "--quiet"]
    assert main([*common, "-o", str(tmp_path / "serial"), "--workers", "0"]) == 0
    assert main([*common, "-o", str(tmp_path / "pool"), "--workers", "2"]) == 0
    assert main(["batch", "enhance", *noisy, "-m", "wiener", "--subtype", "FLOAT", "--quiet", "-o",
                 str(tmp_path / "plain"), "--workers", "0"]) == 0
    for n in CLIPS:
        # `workbench batch` writes no provenance tag (it holds the time): the files themselves are equal
        a, b, plain = ((tmp_path / d / f"{n}_noisy.wiener.wav").read_bytes() for d in ("serial", "pool", "plain"))
        assert a == b and a != plain
    rows = list(read_manifest(tmp_path / "pool" / "manifest.jsonl")[1].values())
    assert len(rows) == len(CLIPS) and all(r["model"]["options"] == {"latency": 3} for r in rows)


def test_resumed_batch_recomputes_with_another_attenuation_limit(shared_data, tmp_path):
    from workbench.core.enhance.model_spec import ModelSpec
    from workbench.core.workflows.batch.item import model_identity
    from workbench.core.workflows.batch.pipeline import reusable

    (clip, _) = short_clips(shared_data, tmp_path / "in", 1.5)
    out = tmp_path / "out"
    run = ["batch", "enhance", clip, "-m", "deepfilternet3", "-o", str(out), "--workers", "0", "--quiet"]
    assert main([*run, "--atten-lim-db", "20"]) == 0
    header, rows = read_manifest(out / "manifest.jsonl")
    (first,) = rows.values()
    assert first["model"]["options"] == {"atten_lim_db": 20.0}
    assert header["models"][0]["options"] == {"atten_lim_db": 20.0}
    written = (out / "0015_noisy.deepfilternet3.wav").read_bytes()
    # The model identity alone (same settings, same input, same outputs) decides against the earlier row.
    task = {"kind": "enhance", "input": first["input"], "outputs": first["outputs"], "settings": first["settings"]}
    dfn = load_enhancer("deepfilternet3")
    try:
        assert reusable(first, task, model_identity(dfn, ModelSpec("deepfilternet3", atten_lim_db=20)))
        assert not reusable(first, task, model_identity(dfn, ModelSpec("deepfilternet3", atten_lim_db=30)))
        assert not reusable(first, task, model_identity(dfn, "deepfilternet3"))
    finally:
        dfn.close()
    assert main([*run, "--atten-lim-db", "30", "--resume"]) == 0
    (second,) = read_manifest(out / "manifest.jsonl")[1].values()
    assert second["model"]["options"] == {"atten_lim_db": 30.0}
    assert (out / "0015_noisy.deepfilternet3.wav").read_bytes() != written  # recomputed, not reused


def metric_values(result) -> dict:
    return {(m.file, m.model, m.metric): m.value for m in result.measurements}


def test_evaluate_on_a_pool_equals_serial(pairs, monkeypatch):
    reports = spy_on_run_batch(monkeypatch, evaluation)
    kw = dict(metrics=["si_sdr", "estoi"], reference_free=False)
    serial = run_to_end(evaluation.evaluate(pairs, ["wiener"], **kw))
    pool = run_to_end(evaluation.evaluate(pairs, ["wiener"], backend="local", workers=2, **kw))
    assert reports[0].backend == "serial"
    assert_ran_on_two_pool_workers(reports[1])
    a, b = metric_values(serial), metric_values(pool)
    assert a.keys() == b.keys() and len(a) == len(CLIPS) * 2 * 2
    # the same item function; only BLAS summation order (this process's threads) may move the last digit
    assert all(b[k] == pytest.approx(a[k], rel=1e-12) for k in a)
    assert pool.systems == serial.systems == ["noisy", "wiener"]


def test_evaluate_refuses_a_loaded_model_on_a_pool(pairs):
    with pytest.raises(WorkbenchError, match="runs in this process only: name it by its spec"):
        run_to_end(evaluation.evaluate(pairs, [load_enhancer("wiener")], backend="local", workers=2,
                                       reference_free=False, metrics=["si_sdr"]))


def test_cli_evaluate_takes_the_backend_options(pairs, tmp_path, monkeypatch):
    reports = spy_on_run_batch(monkeypatch, evaluation)
    assert main(["evaluate", str(pairs), "-m", "wiener", "--no-reference-free", "--metrics", "si_sdr",
                 "--workers", "2", "--csv", str(tmp_path / "r.csv")]) == 0
    assert_ran_on_two_pool_workers(reports[0])
    rows = evaluation.read_csv(tmp_path / "r.csv")
    assert len(rows) == len(CLIPS) * 2 and all(r["value"] is not None for r in rows)


def test_export_batch_on_a_pool_equals_serial(pairs, tmp_path, monkeypatch):
    reports = spy_on_run_batch(monkeypatch, batch_files)
    noisy = [pairs / f"{n}_noisy.wav" for n in CLIPS]
    enhancer = load_enhancer("wiener")
    serial = run_to_end(batch_files.export_batch(noisy, enhancer, tmp_path / "serial", spec="wiener",
                                                 subtype="FLOAT"))
    # on a pool only the model's description is needed here: each worker loads it by its spec
    pool = run_to_end(batch_files.export_batch(noisy, enhancer.info, tmp_path / "pool", spec="wiener",
                                               subtype="FLOAT", backend="local", workers=2))
    assert reports[0].backend == "serial"
    assert_ran_on_two_pool_workers(reports[1])
    assert (pool.backend, pool.workers) == ("local", 2) and "on 2 worker processes" in pool.text
    assert len(serial.succeeded) == len(pool.succeeded) == 2
    for (_, a), (_, b) in zip(serial.succeeded, pool.succeeded):
        assert [p.name for p in a] == [p.name for p in b]
        assert np.array_equal(sf.read(a[0])[0], sf.read(b[0])[0])


def test_export_batch_refuses_a_model_no_worker_can_load(pairs, tmp_path):
    info = load_enhancer("wiener").info
    with pytest.raises(WorkbenchError, match="runs in this process only"):
        run_to_end(batch_files.export_batch([pairs / "0015_noisy.wav"], info, tmp_path / "o", spec="built-here",
                                            backend="local", workers=2))
    assert batch_files.worker_spec_problem("wiener") is None
    assert batch_files.worker_spec_problem("wiener+spectral-subtraction") is None
    assert batch_files.worker_spec_problem(str(pairs / "0015_noisy.wav")) is None  # a path a worker can open
    assert "no spec" in batch_files.worker_spec_problem(None)


def test_backend_options_resolve_as_workbench_batch_does(monkeypatch):
    import argparse

    from workbench.commands.backend_options import add_backend_options, backend_choice
    from workbench.core.workflows.batch import backends

    parser = argparse.ArgumentParser()
    add_backend_options(parser, pool_by_default=False)
    here = []
    monkeypatch.setattr(backends, "set_thread_env", here.append)
    monkeypatch.delenv("WORKBENCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def choice(*argv, pool=False):
        c = backend_choice(parser.parse_args(list(argv)), pool_by_default=pool)
        return c.backend, c.workers, c.threads

    assert choice() == ("serial", 0, None) and here == []  # this process, its threads left alone
    assert choice("--workers", "3") == ("local", 3, 1)
    assert choice("--backend", "local") == ("local", 1, 1)
    assert choice("--workers", "0", "--backend", "local") == ("serial", 0, None)
    assert choice("--backend", "ray", "--address", "auto") == ("ray", 0, 1)  # sized to the cluster
    assert choice("--threads", "2") == ("serial", 0, 2) and here == [2]  # the one worker is this process
    assert choice(pool=True)[:1] == ("local",) and choice("--workers", "0", pool=True) == ("serial", 0, 1)
    for argv, words in ((["--backend", "serial", "--workers", "2"], "runs in this process"),
                        (["--backend", "local", "--address", "auto"], "needs --backend ray")):
        with pytest.raises(WorkbenchError, match=words):
            choice(*argv)
