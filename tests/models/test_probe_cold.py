"""`workbench probe` reports the cold cost (a fresh process: start-up, model load, first run) beside the warm RTF."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.core.enhance.registry import load_enhancer
from workbench.core.errors import ModelError
from workbench.core.progress import run_to_end
from workbench.core.workflows import probes


def test_cold_figure_is_measured_in_a_fresh_process_and_split_into_its_parts():
    report = run_to_end(probes.probe(load_enhancer("wiener"), rtf_runs=1, cold_spec="wiener"))
    assert report.cold_s is not None and report.cold_start_s > 0 and report.cold_load_s >= 0
    assert report.cold_first_run_s > 0
    assert report.cold_start_s + report.cold_load_s + report.cold_first_run_s == pytest.approx(report.cold_s)
    assert report.cold_rtf == pytest.approx(report.cold_s / report.rtf_audio_s)
    text = probes.format_report(report)
    assert "warm" in text and "cold:" in text and "fresh process" in text
    assert report.to_dict()["cold_rtf"] == report.cold_rtf


def test_without_a_spec_there_is_no_cold_figure():
    report = run_to_end(probes.probe(load_enhancer("wiener"), rtf_runs=1))
    assert report.cold_s is None and report.cold_rtf is None
    assert "cold:" not in probes.format_report(report)


def test_a_model_the_fresh_process_cannot_load_is_one_line():
    gen = probes.probe_cold("no-such-model-anywhere", probes.probe_signal(16000, 0.5), 16000)
    with pytest.raises(ModelError) as err:
        run_to_end(gen)
    assert "cold run failed" in str(err.value) and "\n" not in str(err.value)


def test_closing_the_probe_ends_the_child():
    gen = probes.probe_cold("wiener", probes.probe_signal(16000, 0.5), 16000)
    next(gen)  # the child is running
    child = gen.gi_frame.f_locals["child"]
    gen.close()
    assert child.poll() is not None


def test_the_command_prints_both_figures(capfd):
    proc = subprocess.run([sys.executable, "-m", "workbench", "probe", "-m", "wiener", "--runs", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["rtf"] > 0 and got["cold_s"] > 0 and got["cold_rtf"] > got["rtf"]
    # --no-cold is an argument of the same command: the run above proved the command from a fresh process,
    # this one only needs the option parsed and the figure left out, which this process shows as well
    from workbench.cli import main
    capfd.readouterr()
    assert main(["probe", "-m", "wiener", "--runs", "1", "--json", "--no-cold"]) == 0
    assert json.loads(capfd.readouterr().out)["cold_s"] is None
