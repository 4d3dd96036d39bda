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


def test_enhance_refuses_options_the_workers_would_not_apply(pairs, tmp_path, capsys):
    noisy = [str(pairs / f"{n}_noisy.wav") for n in CLIPS]
    assert main(["enhance", *noisy, "-m", "wiener", "-o", str(tmp_path / "o"), "--workers", "2",
                 "--latency", "3"]) != 0
    assert "--latency" in capsys.readouterr().err
    assert main(["enhance", *noisy, "-m", "wiener", "-o", str(tmp_path / "o"), "--backend", "serial",
                 "--workers", "2"]) != 0
    assert "--backend serial runs in this process" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


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
