"""The Ray backend on a real local Ray cluster (2 CPUs): outputs byte-identical to the serial run, and a
SIGKILL of the driver mid-batch resumed with ``--resume``. Needs the ``[cluster]`` extra."""

from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray", reason="the [cluster] extra (scripts/setup.sh installs it)")

from workbench.cli import main  # noqa: E402

import signal  # noqa: E402

from test_batch import (corpus, kill_and_resume, long_corpus, long_reference, output_hashes,  # noqa: E402,F401
                         rows_of, serial_run, start_cli, wait_for_rows)



@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray cluster of 2 CPUs for this module's Ray tests, without dashboard or usage report."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"WORKBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def test_ray_outputs_equal_serial_byte_for_byte(local_ray, serial_run, corpus, tmp_path):
    _, ref = serial_run
    out = tmp_path / "ray"
    rc = main(["batch", "enhance", str(corpus), "-m", "wiener", "-m", "nsnet2-16k", "-o", str(out),
               "--backend", "ray", "--workers", "2", "--residual", "--quiet"])
    assert rc == 2
    assert output_hashes(out) == output_hashes(ref)
    rows = rows_of(out / "manifest.jsonl")
    assert len(rows) == 12 and sum(r["status"] == "failed" for r in rows) == 4
    assert ray.is_initialized()  # a cluster it joined is left running


def test_ray_actors_load_the_model_with_its_options(local_ray, corpus, tmp_path):
    """The options that wrap a model travel to the actors with its spec: the same files as this process."""
    common = ["batch", "enhance", str(corpus), "-m", "wiener", "--latency", "3", "--quiet"]
    assert main([*common, "-o", str(tmp_path / "serial"), "--workers", "0"]) == 2  # the corpus holds bad files
    assert main([*common, "-o", str(tmp_path / "ray"), "--backend", "ray", "--workers", "2"]) == 2
    assert output_hashes(tmp_path / "ray") == output_hashes(tmp_path / "serial")
    done = [r for r in rows_of(tmp_path / "ray" / "manifest.jsonl") if r["status"] == "done"]
    assert done and all(r["model"]["options"] == {"latency": 3} for r in done)
    assert all(int(r["worker"].rsplit(":", 1)[1]) != os.getpid() for r in done)  # run by the actors


def test_ray_backend_survives_sigkill_and_resumes(local_ray, long_corpus, long_reference, tmp_path):
    """A driver joined to the running cluster (``--address``) is killed mid-batch; the rerun resumes."""
    address = ray.get_runtime_context().gcs_address
    kill_and_resume(long_corpus, long_reference, tmp_path / "out", ["--backend", "ray", "--workers", "2"],
                    first_run_extra=["--address", address])


def test_a_lost_ray_actor_is_restarted_and_its_item_rerun(local_ray, long_corpus, long_reference, tmp_path):
    """One actor's process is killed mid-batch: Ray restarts it, its item runs again, every output is the
    serial one and no row fails."""
    address = ray.get_runtime_context().gcs_address
    out = tmp_path / "out"
    proc = start_cli(["batch", "enhance", str(long_corpus), "-m", "nsnet2-16k", "-o", str(out), "--quiet",
                      "--backend", "ray", "--workers", "2", "--address", address])
    first = wait_for_rows(out / "manifest.jsonl", 1, proc)[0]
    os.kill(int(first["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    proc.stderr.close()
    assert output_hashes(out) == long_reference
    rows = rows_of(out / "manifest.jsonl")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"done"}
    assert len({r["worker"] for r in rows}) >= 3  # the restarted actor is a new process
