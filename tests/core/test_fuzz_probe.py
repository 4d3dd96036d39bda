"""Probing a model with several outputs, and a slow model: a report (never a traceback), saying why."""

from __future__ import annotations

import numpy as np

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.progress import run_to_end
from workbench.core.workflows import probes


class TwoOutputs(Enhancer):
    def __init__(self):
        self.info = EnhancerInfo("two", "Two", "speech and noise", 16000, True, 0, outputs=("speech", "noise"))

    def process_offline(self, audio):
        return np.stack([audio * 0.5, audio * 0.5])


def test_a_two_output_model_is_probed_without_a_traceback():
    report = run_to_end(probes.probe(TwoOutputs(), rtf_runs=1))
    assert report.causal and report.latency_samples == 0


def test_a_slow_model_is_named_as_such_and_its_rtf_measured_once(monkeypatch):
    monkeypatch.setattr(probes, "SLOW_STEP_S", 0.0)
    messages = []
    report = run_to_end(probes.probe(TwoOutputs(), rtf_runs=5), lambda p: messages.append(p.message))
    assert any("slow model" in n and "measured once" in n for n in report.notes)
    assert any("slow model" in m for m in messages)
