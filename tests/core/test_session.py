"""The Qt-free session model: versions with typed provenance, one enhancement call, jobs owned by recordings."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream, enhance
from workbench.core.progress import run_to_end
from workbench.core.errors import Cancelled, ModelError
from workbench.core.document.recording import Recording
from workbench.core.document.session import JobState, ModelCatalogue, Provenance, Session, VersionKind


class Gain(Enhancer):
    """Offline, halves the input."""

    def __init__(self, outputs=("enhanced",)):
        self.info = EnhancerInfo("gain", "Gain", "x/2", 16000, True, 0, outputs=outputs)

    def process_offline(self, audio):
        if self.info.n_outputs == 1:
            return audio / 2
        return np.stack([audio * (i + 1) / 4 for i in range(self.info.n_outputs)])


class TwoStream(EnhancerStream):
    def __init__(self, latency):
        self.buf = np.zeros(latency, np.float32)

    def process(self, block):
        x = np.concatenate([self.buf, block])
        y, self.buf = x[:len(block)], x[len(block):]
        return np.stack([y, -y])


class TwoOutputStreaming(Enhancer):
    """Streaming with 7 samples of latency; outputs (speech = x, noise = -x)."""

    def __init__(self, rate=16000):
        self.info = EnhancerInfo("split", "Split", "x and -x", rate, True, 7, processing="streaming",
                                 block_samples=4, outputs=("speech", "noise"))

    def new_stream(self):
        return TwoStream(self.info.latency_samples)


class Slow(Enhancer):
    """Streaming, one block per step, waits on a gate so a test can act mid-run."""

    def __init__(self, gate: threading.Event, started: threading.Event):
        self.info = EnhancerInfo("slow", "Slow", "waits", 16000, True, 0, processing="streaming", block_samples=160)
        self.gate, self.started = gate, started

    def new_stream(self):
        outer = self

        class S(EnhancerStream):
            def process(self, block):
                outer.started.set()
                outer.gate.wait(5)
                return block
        return S()


def tone(n=16000, ch=1, rate=16000):
    t = np.arange(n) / rate
    x = np.stack([np.sin(2 * np.pi * (300 + 100 * c) * t) for c in range(ch)], axis=1)
    return (0.5 * x).astype(np.float32)


def test_add_version_is_the_generic_path():
    rec = Recording.from_array(tone(), 16000, "a.wav")
    prov = Provenance(VersionKind.ENHANCED, parent="original", model_id="m", output="enhanced")
    v = rec.add_version(tone() * 0.1, 16000, prov)
    assert v.name == "m" and v.kind is VersionKind.ENHANCED and v.kind == "enhanced"
    assert v.provenance is prov and not v.saved
    v2 = rec.add_version(tone() * 0.2, 16000, prov)
    assert v2.name == "m #2"
    with pytest.raises(ValueError, match="16000 frames"):
        rec.add_version(tone(100), 16000, prov)
    with pytest.raises(ValueError, match="exactly one original"):
        rec.add_version(tone(), 16000, Provenance(VersionKind.ORIGINAL))
    r = rec.residual_of(v)
    assert r.provenance.kind is VersionKind.RESIDUAL and r.provenance.parent == "m"
    np.testing.assert_allclose(r.source.read_all(), tone() - tone() * 0.1, atol=1e-7)


def test_provenance_round_trips_through_a_dict():
    p = Provenance(VersionKind.RESIDUAL, "dfn", "deepfilternet3", "deepfilternet3", "DeepFilterNet3", "built-in",
                   {"model_rate": 48000}, (0, 1), "enhanced", 1.5, {"region": [0.1, 0.2]})
    assert Provenance.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown version kind 'bogus'"):
        Provenance.from_dict({"kind": "bogus"})


def test_enhance_adds_one_version_with_full_provenance():
    rec = Recording.from_array(tone(ch=2), 16000, "b.wav")
    versions = run_to_end(rec.enhance(Gain(), channels=[1], spec="gain"))
    assert [v.name for v in versions] == ["gain"]
    v = versions[0]
    p = v.provenance
    assert (p.kind, p.parent, p.model_id, p.model_spec, p.channels, p.output) == \
        (VersionKind.ENHANCED, "original", "gain", "gain", (1,), "enhanced")
    assert p.model_settings["input_rate"] == 16000 and p.elapsed_s is not None
    np.testing.assert_allclose(v.source.read_all()[:, 0], tone(ch=2)[:, 1] / 2, atol=1e-6)


def test_two_output_model_gives_two_versions_offline_and_streaming():
    rec = Recording.from_array(tone(), 16000, "c.wav")
    versions = run_to_end(rec.enhance(Gain(outputs=("speech", "noise"))))
    assert [v.name for v in versions] == ["gain.speech", "gain.noise"]
    assert [v.provenance.output for v in versions] == ["speech", "noise"]
    np.testing.assert_allclose(versions[0].source.read_all(), tone() / 4, atol=1e-6)
    np.testing.assert_allclose(versions[1].source.read_all(), tone() / 2, atol=1e-6)
    # streaming at another rate: latency removed on both outputs, resampled together
    x = tone(24000, rate=24000)
    out = run_to_end(enhance(TwoOutputStreaming(16000), x, 24000))
    assert out.shape == (2, 24000, 1)
    mid = slice(2000, 22000)
    assert np.corrcoef(out[0, mid, 0], x[mid, 0])[0, 1] > 0.999
    np.testing.assert_allclose(out[1], -out[0], atol=1e-6)


def test_wrong_output_count_is_a_clear_model_error():
    enh = Gain(outputs=("speech", "noise"))
    enh.process_offline = lambda audio: audio  # claims two outputs, returns one
    with pytest.raises(ModelError, match=r"returned shape \(16000,\), expected \(2, 16000\)"):
        run_to_end(enhance(enh, tone(), 16000))


def test_closing_a_recording_mid_run_cancels_its_job_and_adds_nothing():
    session = Session()
    rec = session.add(Recording.from_array(tone(), 16000, "d.wav"))
    seen = []
    session.subscribe(lambda ev, obj: seen.append(ev))
    gate, started = threading.Event(), threading.Event()
    job = session.enhance_job(rec, Slow(gate, started))
    result = {}

    def drive():
        try:
            result["value"] = run_to_end(job.steps())
        except Cancelled as exc:
            result["cancelled"] = exc
    t = threading.Thread(target=drive)
    t.start()
    assert started.wait(5)
    session.close(rec)             # mid-run, while the model is inside a block
    gate.set()                      # the model finishes its block; the next step must stop
    t.join(5)
    assert "cancelled" in result and job.state is JobState.CANCELLED
    assert [v.name for v in rec.versions] == ["original"]
    assert "versions" not in seen and session.jobs == []


def test_catalogue_lists_builtins_then_loaded_files():
    cat = ModelCatalogue()
    specs = cat.specs()
    assert specs[:3] == ["spectral-subtraction", "wiener", "logmmse"]
    changed = []
    cat.subscribe(lambda c: changed.append(len(c.entries())))
    enh = Gain()
    cat.add_loaded("/models/gain.onnx", enh)
    assert cat.specs()[-1] == "/models/gain.onnx" and cat.entry("/models/gain.onnx").origin == "file"
    assert cat.load("/models/gain.onnx") is enh and changed
    assert cat.entry("wiener").origin == "built-in"


def test_references_and_view_state_live_in_the_session(tmp_path):
    session = Session()
    rec = session.add(Recording.from_array(tone(), 16000, "e.wav"))
    session.set_reference(rec, tmp_path / "clean.wav")
    assert session.reference(rec) == tmp_path / "clean.wav"
    loop = {"start_s": 0.1, "end_s": 0.4}
    session.add_state_provider("loop", lambda: loop, lambda value: None)
    session.set_view_state("display", {"db_min": -100})
    assert session.collect_view_state() == {"display": {"db_min": -100}, "loop": loop}
    session.close(rec)
    assert session.reference(rec) is None and session.current is None
