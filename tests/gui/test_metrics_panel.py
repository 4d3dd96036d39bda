"""Metrics panel: versions side by side, computed on a worker, same numbers as the CLI core path."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import EnhancerInfo
from workbench.core.measure.scoring import score_signal
from workbench.core.document.recording import Recording
from workbench.gui.metrics_panel import MetricsPanel, format_value


def _info(name):
    return EnhancerInfo(id=name, name=name, description="precomputed output", sample_rate=16000, causal=None,
                        latency_samples=0)


def _fit(x, n):
    return np.pad(x, (0, max(n - len(x), 0)))[:n]


@pytest.fixture()
def recording(shared_data):
    rec = Recording(shared_data / "dns3/0015_noisy.wav")
    n = rec.source.frames
    for tag in ("GTCRN", "RNNoise"):
        audio, sr = sf.read(shared_data / f"dns3/0015_{tag}.wav", dtype="float32")
        rec.add_enhanced(_fit(audio, n), sr, _info(tag))
    return rec


def test_panel_measures_versions_like_the_cli(qtbot, recording, shared_data):
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(recording)
    # auto-paired reference: 0015_noisy.wav -> 0015_clean.wav
    assert panel.reference_path == shared_data / "dns3/0015_clean.wav" and panel.reference_auto
    assert "auto-paired" in panel.reference_label.text()
    with qtbot.waitSignal(panel.resultsReady, timeout=120000) as blocker:
        panel.compute()
    results = blocker.args[0]
    assert set(results) == {"original", "GTCRN", "RNNoise"}
    clean, sr = sf.read(shared_data / "dns3/0015_clean.wav", dtype="float32")
    for v in recording.versions:
        cli = score_signal(v.source.read_all(), v.sample_rate, clean, sr)
        for key in ("pesq_wb", "estoi", "si_sdr", "lsd", "dnsmos_ovrl"):
            assert results[v.name].metrics[key].value == pytest.approx(cli.metrics[key].value, abs=1e-9)
            assert panel.cell_text(key, v.name) == format_value(cli.metrics[key].value)
    # best per row follows the metric's direction
    for key in ("pesq_wb", "lsd", "dnsmos_ovrl"):
        best = panel.best_version(key)
        hib = results[best].metrics[key].higher_is_better
        vals = {n: r.metrics[key].value for n, r in results.items()}
        assert vals[best] == (max(vals.values()) if hib else min(vals.values()))
        assert panel.is_highlighted(key, best)
        assert not any(panel.is_highlighted(key, n) for n in vals if n != best)
    assert panel.best_version("pesq_wb") == "GTCRN" and panel.best_version("lsd") == "GTCRN"
    # copy as TSV: full precision, one line per metric
    panel.copy_button.click()
    from PySide6.QtWidgets import QApplication
    lines = QApplication.clipboard().text().splitlines()
    assert lines[0].split("\t") == ["metric", "unit", "better", "original", "GTCRN", "RNNoise"]
    pesq = next(line.split("\t") for line in lines if line.startswith("pesq_wb\t"))
    assert float(pesq[4]) == results["GTCRN"].metrics["pesq_wb"].value and pesq[2] == "higher"


def test_without_reference_only_dnsmos(qtbot, shared_data):
    rec = Recording(shared_data / "real/stationary_english_tug_2489_voss_18_snr3_tl-24_fileid_45.wav")
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(rec)
    assert panel.reference_path is None
    with qtbot.waitSignal(panel.resultsReady, timeout=60000):
        panel.compute()
    assert panel.metric_rows() == ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"]
    assert panel.table.rowCount() == 4 and panel.table.columnCount() == 1
    assert float(panel.cell_text("dnsmos_ovrl", "original")) == pytest.approx(1.98, abs=0.01)


def test_new_versions_are_measured_incrementally(qtbot, recording):
    panel = MetricsPanel()  # auto_compute: measures on recording and version changes
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.set_recording(recording)
    audio = recording.original.source.read_all()[:, 0] * 0.5
    started = []
    panel.started.connect(lambda: started.append(1))
    with qtbot.waitSignal(panel.resultsReady, timeout=60000) as blocker:
        recording.add_enhanced(audio, 16000, _info("half"))
        panel._on_versions_changed(recording)  # what DocumentModel.versionsChanged delivers
    assert "half" in blocker.args[0] and len(started) == 1
    # half the original: the same SI-SDR (scale-invariant), a lower plain SNR
    r = blocker.args[0]
    assert r["half"].metrics["si_sdr"].value == pytest.approx(r["original"].metrics["si_sdr"].value, abs=1e-6)
    assert r["half"].metrics["snr"].value < r["original"].metrics["snr"].value


def test_cancel_stops_the_worker(qtbot, recording):
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(recording)
    with qtbot.waitSignal(panel.cancelled, timeout=60000):
        panel.compute()
        assert panel.running
        panel.cancel()
    assert not panel.running and panel.compute_button.isEnabled()
    assert len(panel.results()) < 3


def test_bad_reference_is_reported(qtbot, recording, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(recording)
    before = panel.reference_path
    with qtbot.waitSignal(panel.failed, timeout=5000) as blocker:
        panel.set_reference(bad)
    assert "broken.wav" in blocker.args[0]
    assert panel.reference_path == before  # the previous reference is kept
    panel.set_reference(None)
    assert panel.reference_path is None and "none" in panel.reference_label.text()


def test_follows_the_document_model(qtbot, shared_data):
    from workbench.gui.document import DocumentModel

    doc = DocumentModel()
    panel = MetricsPanel(doc, auto_compute=False)
    qtbot.addWidget(panel)
    rec = Recording(shared_data / "dns3/0072_noisy.wav")
    doc.add_recording(rec)
    assert panel.recording is rec and panel.reference_path == shared_data / "dns3/0072_clean.wav"
    doc.add_recording(Recording(shared_data / "pesq/speech.wav"))
    assert panel.recording.name == "speech.wav" and panel.reference_path is None


# ------------------------------------------------------------------------------ measure what changed


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_choosing_a_reference_keeps_dnsmos_and_measures_only_the_intrusive_rows(qtbot, shared_data, monkeypatch):
    """'Choose reference…' used to clear the whole table (DNSMOS too) and leave 'done' on the progress bar
    without measuring anything."""
    from PySide6.QtWidgets import QFileDialog

    rec = Recording(shared_data / "pesq/speech_bab_0dB.wav")   # no automatic pair
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(rec)
    assert panel.reference_path is None
    with qtbot.waitSignal(panel.resultsReady, timeout=60000):
        panel.compute()
    dnsmos_before = panel.cell_text("dnsmos_ovrl", "original")
    assert _numeric(dnsmos_before) and panel.progress_bar.format() == "done"

    clean = shared_data / "pesq/speech.wav"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(clean), "")))
    jobs = []
    panel.started.connect(lambda: jobs.append(panel.current_job()))
    with qtbot.waitSignal(panel.resultsReady, timeout=60000):
        panel.choose_button.click()
        # At once: DNSMOS is still shown, the new intrusive rows are pending, nothing claims "done".
        assert panel.cell_text("dnsmos_ovrl", "original") == dnsmos_before
        assert panel.cell_text("pesq_wb", "original") == "…"
        assert panel.progress_bar.format() != "done"
    # Only the intrusive metrics were measured; DNSMOS came from the cache.
    assert jobs == [{"intrusive": ["original"], "dnsmos": []}]
    assert _numeric(panel.cell_text("pesq_wb", "original"))
    assert panel.cell_text("dnsmos_ovrl", "original") == dnsmos_before
    assert panel.session.reference(rec) == clean   # stored with the recording in the session, not the widget


def test_reference_is_stored_per_recording_in_the_session(qtbot, shared_data):
    from workbench.core.document.session import Session

    session = Session()
    a = session.add(Recording(shared_data / "pesq/speech_bab_0dB.wav"))
    b = session.add(Recording(shared_data / "dns3/0015_noisy.wav"))
    panel = MetricsPanel(auto_compute=False, session=session)
    qtbot.addWidget(panel)
    panel.set_recording(a)
    panel.set_reference(shared_data / "pesq/speech.wav")
    panel.set_recording(b)       # auto-paired with its own clean file
    assert panel.reference_path == shared_data / "dns3/0015_clean.wav" and panel.reference_auto
    panel.set_recording(a)
    assert panel.reference_path == shared_data / "pesq/speech.wav" and "chosen" in panel.reference_label.text()
    # a reference set through the session (e.g. a restored session) shows in the panel
    with qtbot.waitSignal(panel.referenceChanged, timeout=5000):
        session.set_reference(a, shared_data / "pesq/speech_bab_0dB.wav")
    assert "speech_bab_0dB.wav" in panel.reference_label.text()


def test_cells_fill_as_each_version_finishes(qtbot, recording):
    """Cells used to appear only when every version was measured."""
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(recording)
    seen = []
    panel.partialResult.connect(lambda name, part: seen.append(
        (name, part, [panel.cell_text("pesq_wb", v) for v in ("original", "GTCRN", "RNNoise")],
         [panel.cell_text("dnsmos_ovrl", v) for v in ("original", "GTCRN", "RNNoise")])))
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    assert [(n, p) for n, p, _, _ in seen] == [("original", "intrusive"), ("GTCRN", "intrusive"),
                                               ("RNNoise", "intrusive"), ("original", "dnsmos"),
                                               ("GTCRN", "dnsmos"), ("RNNoise", "dnsmos")]
    _, _, pesq, dns = seen[0]
    assert _numeric(pesq[0]) and pesq[1:] == ["…", "…"] and dns == ["…", "…", "…"]
    _, _, pesq, dns = seen[3]
    assert all(_numeric(t) for t in pesq) and _numeric(dns[0]) and dns[1:] == ["…", "…"]


def test_an_unrelated_reference_is_warned_about(qtbot, recording, shared_data):
    """A reference of another sentence gave SI-SDR -33 dB without a word."""
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.show()
    panel.reference_free_box.setChecked(False)
    panel.set_recording(recording)
    assert panel.set_reference(shared_data / "dns3/0016_clean.wav")
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    assert panel.results()["original"].metrics["si_sdr"].value < -20
    assert panel.warning_label.isVisible()
    assert "0016_clean.wav" in panel.warning and "correlation" in panel.warning
    assert panel.set_reference(shared_data / "dns3/0015_clean.wav")
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    assert panel.warning == "" and not panel.warning_label.isVisible()


def test_measuring_waits_while_a_model_job_of_the_session_runs(qtbot, shared_data):
    """DNSMOS used to run beside a model and slow it 3x; it now yields to any running model job."""
    from workbench.core.progress import Progress
    from workbench.core.document.session import Session

    session = Session()
    rec = session.add(Recording(shared_data / "pesq/speech_bab_0dB.wav"))
    panel = MetricsPanel(auto_compute=False, session=session)
    qtbot.addWidget(panel)
    panel.set_recording(rec)

    def model_run():
        yield Progress(0.0, "model step 1")
        yield Progress(0.5, "model step 2")
        return "done"

    model = session.new_job(model_run(), rec, "a model on speech_bab_0dB.wav")
    steps = model.steps()
    next(steps)    # the model job is RUNNING now
    qtbot.waitUntil(lambda: panel.model_busy, timeout=5000)
    with qtbot.waitSignal(panel.pausedChanged, timeout=30000) as paused:
        assert panel.compute()
    assert paused.args == [True] and panel.paused and panel.results() == {}
    assert "paused" in panel.progress_bar.format()
    with qtbot.waitSignal(panel.resultsReady, timeout=60000):
        for _ in steps:   # the model finishes: measuring goes on
            pass
    assert _numeric(panel.cell_text("dnsmos_ovrl", "original")) and not panel.paused


def test_closing_the_recording_cancels_its_paused_measurement(qtbot, shared_data):
    from workbench.core.document.session import Session

    session = Session()
    rec = session.add(Recording(shared_data / "pesq/speech_bab_0dB.wav"))
    panel = MetricsPanel(auto_compute=False, session=session)
    qtbot.addWidget(panel)
    panel.set_recording(rec)
    panel.set_model_busy(True)      # e.g. a model being loaded in the Models panel
    with qtbot.waitSignal(panel.pausedChanged, timeout=30000):
        assert panel.compute()
    assert [j.label for j in session.jobs_of(rec)] == ["metrics of speech_bab_0dB.wav"]
    with qtbot.waitSignal(panel.cancelled, timeout=30000):
        session.close(rec)           # the recording's jobs are cancelled, the paused one included
    assert not panel.running and session.jobs_of(rec) == []
