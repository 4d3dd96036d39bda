"""A new metric is one entry in the metric table (``workbench/core/measure/metrics.py``, ``METRIC_SPECS``):
registered there and nowhere else, it is computed and reported by ``workbench evaluate``, ``workbench batch
evaluate`` and the Metrics panel."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from workbench.cli import main
from workbench.core.document.recording import Recording
from workbench.core.measure import metrics as M
from workbench.core.measure.scoring import load_mono, score_signal
from workbench.gui.metrics_panel import MetricsPanel, format_value


def crest_db(x: np.ndarray) -> float:
    """Peak-to-RMS ratio of ``x`` in dB."""
    x = np.asarray(x, np.float64)
    return 20 * math.log10(float(np.max(np.abs(x))) / math.sqrt(float(np.mean(x * x))))


@pytest.fixture()
def toy_table():
    """The table with two toy entries (one needing a reference, one not) and without DNSMOS (so the test is
    quick, and so nothing can lean on DNSMOS being there); restored afterwards, order included."""
    saved = dict(M.METRIC_SPECS)
    for key in M.reference_free_keys():
        del M.METRIC_SPECS[key]
    M.METRIC_SPECS["peak_error"] = M.MetricSpec(
        "peak_error", "Peak error", "", False, (0.0, None), True, "max|s-ŝ|",
        lambda s, e, sr: M.make_metric("peak_error", float(np.max(np.abs(s - e)))))
    M.METRIC_SPECS["crest_db"] = M.MetricSpec(
        "crest_db", "Crest", "dB", False, (0.0, None), False, "peak-to-RMS ratio 20·log10(max|x|/rms(x))",
        lambda x, sr, fast: {"crest_db": M.make_metric("crest_db", crest_db(x))})
    try:
        yield
    finally:
        M.METRIC_SPECS.clear()
        M.METRIC_SPECS.update(saved)


def _rows(path):
    from workbench.core.workflows.evaluation import read_csv

    return [r for r in read_csv(path) if r["metric"] != "warning"]


def test_a_new_metric_is_one_table_entry(toy_table, qtbot, shared_data, tmp_path):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for name in ("0015_noisy.wav", "0015_clean.wav"):
        shutil.copy(shared_data / "dns3" / name, pairs / name)
    clean, sr = load_mono(pairs / "0015_clean.wav")
    noisy, _ = load_mono(pairs / "0015_noisy.wav")
    expected = score_signal(noisy, sr, clean, sr, metrics=["si_sdr", "peak_error"])
    assert set(expected.metrics) == {"si_sdr", "peak_error", "crest_db"}

    # workbench evaluate: both toys are CSV rows, in table order (intrusive ones, then the reference-free)
    assert main(["evaluate", str(pairs), "--metrics", "si_sdr,peak_error", "--csv", str(tmp_path / "e.csv")]) == 0
    rows = _rows(tmp_path / "e.csv")
    assert [r["metric"] for r in rows] == ["si_sdr", "peak_error", "crest_db"]
    values = {r["metric"]: r["value"] for r in rows}
    assert values["peak_error"] == pytest.approx(expected.metrics["peak_error"].value, rel=1e-12)
    assert values["crest_db"] == pytest.approx(crest_db(noisy), rel=1e-9)
    assert rows[2]["unit"] == "dB"

    # workbench batch evaluate: the same rows
    assert main(["batch", "evaluate", str(pairs), "--metrics", "si_sdr,peak_error", "--csv",
                 str(tmp_path / "b.csv"), "--workers", "0", "--quiet"]) == 0
    batch = {r["metric"]: r["value"] for r in _rows(tmp_path / "b.csv")}
    assert batch.keys() == values.keys() and all(batch[k] == pytest.approx(values[k], rel=1e-12) for k in values)

    # the Metrics panel: a row for each, filled with the same numbers, the box named after the reference-free one
    panel = MetricsPanel(auto_compute=False)
    qtbot.addWidget(panel)
    panel.set_recording(Recording(pairs / "0015_noisy.wav"))
    assert panel.reference_free_box.text() == "Crest" and panel.compute_button.text() == "Measure"
    assert panel.metric_rows() == [*M.intrusive_keys(), "crest_db"] and "peak_error" in panel.metric_rows()
    with qtbot.waitSignal(panel.resultsReady, timeout=120000):
        panel.compute()
    labels = [panel.table.verticalHeaderItem(i).text() for i in range(panel.table.rowCount())]
    assert "Peak error ↓" in labels and "Crest [dB] ↓" in labels
    assert panel.cell_text("peak_error", "original") == format_value(expected.metrics["peak_error"].value)
    assert panel.cell_text("crest_db", "original") == format_value(crest_db(noisy))
