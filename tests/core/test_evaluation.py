"""Evaluation over noisy/clean pairs: reproduces the PROVENANCE.md reference figures on ../shared/data/dns3."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.audio.audio_io import resample
from workbench.core.measure import scoring as S
from workbench.core.workflows import evaluation as E
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.progress import run_to_end
from workbench.core.errors import WorkbenchError
from workbench.core.document.recording import Recording

KEY = ["pesq_wb", "estoi", "si_sdr"]

# PROVENANCE.md (means over five clips; three are in dns3/): PESQ-WB, ESTOI, SI-SDR dB, DNSMOS OVRL
REFERENCE = {
    "noisy": (1.10, 0.56, 3.1, 1.1),
    "file:GTCRN": (1.67, 0.71, 9.9, 2.6),
    "file:RNNoise": (1.21, 0.57, 5.1, 2.0),
    "nsnet2-16k": (1.42, 0.70, 7.5, 2.3),
}
# "within noise": three of the five clips, so the bounds are loose
TOLERANCE = (0.15, 0.06, 1.7, 0.3)


@pytest.fixture(scope="module")
def dns3_result(shared_data):
    return run_to_end(E.evaluate(shared_data / "dns3", ["file:GTCRN", "file:RNNoise", "nsnet2-16k"], metrics=KEY))


def test_reproduces_reference_figures(dns3_result):
    summ = dns3_result.summaries()
    assert dns3_result.systems == ["noisy", "file:GTCRN", "file:RNNoise", "nsnet2-16k"]
    for system, ref in REFERENCE.items():
        got = [summ[(system, k)].mean for k in KEY + ["dnsmos_ovrl"]]
        for g, r, tol, name in zip(got, ref, TOLERANCE, KEY + ["dnsmos_ovrl"]):
            assert abs(g - r) <= tol, f"{system} {name}: measured {g:.3f}, reference {r}"
    # the ranking the reference figures imply
    pesq = {s: summ[(s, "pesq_wb")].mean for s in REFERENCE}
    assert pesq["noisy"] < pesq["file:RNNoise"] < pesq["nsnet2-16k"] < pesq["file:GTCRN"]


def test_long_form_csv_and_plot(dns3_result, tmp_path):
    csv_path = E.write_csv(dns3_result, tmp_path / "out" / "results.csv")
    rows = E.read_csv(csv_path)
    assert list(rows[0])[:4] == ["file", "model", "metric", "value"]
    # 3 files x 4 systems x (3 intrusive + 4 DNSMOS) metrics, one row each
    assert len(rows) == 3 * 4 * 7
    assert {r["model"] for r in rows} == {"noisy", "file:GTCRN", "file:RNNoise", "nsnet2-16k"}
    assert {r["metric"] for r in rows} == set(KEY) | {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    one = [r for r in rows if r["file"] == "0015" and r["model"] == "noisy" and r["metric"] == "pesq_wb"]
    assert one[0]["value"] == pytest.approx(dns3_result.value("0015", "noisy", "pesq_wb"))
    png = E.plot_bars(dns3_result, tmp_path / "bars.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000


def test_table_has_noisy_row_ci_and_best_marks(dns3_result):
    table = E.format_table(dns3_result)
    lines = table.splitlines()
    assert lines[0].startswith("system") and "PESQ-WB ↑" in lines[0] and "DNSMOS OVRL ↑" in lines[0]
    assert lines[2].startswith("noisy")
    assert "±" in lines[2]
    gtcrn = next(line for line in lines if line.startswith("file:GTCRN"))
    assert "*" in gtcrn  # best PESQ-WB
    summ = dns3_result.summaries()[("noisy", "pesq_wb")]
    vals = np.array([dns3_result.value(f, "noisy", "pesq_wb") for f in dns3_result.files])
    from scipy.stats import t
    assert summ.ci95 == pytest.approx(t.ppf(0.975, 2) * vals.std(ddof=1) / np.sqrt(3))
    assert f"{summ.mean:.2f} ± {summ.ci95:.2f}" in lines[2]


def test_versions_score_like_the_cli(shared_data, dns3_result):
    """The metrics panel's core path (score_versions on a Recording) gives the CLI's numbers."""
    rec = Recording(shared_data / "dns3/0016_noisy.wav")
    clean, sr = sf.read(shared_data / "dns3/0016_clean.wav", dtype="float32")
    scores = run_to_end(S.score_versions(rec.versions, clean, sr, metrics=KEY))
    got = scores["original"].metrics
    for k in KEY + ["dnsmos_ovrl"]:
        assert got[k].value == pytest.approx(dns3_result.value("0016", "noisy", k), abs=1e-9)


def test_cli_evaluate(shared_data, tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "r.csv"
    code = main(["evaluate", str(shared_data / "dns3"), "-m", "file:GTCRN", "--csv", str(out),
                 "--plot", str(tmp_path / "r.svg"), "--no-reference-free", "--metrics", "pesq_wb,si_sdr"])
    assert code == 0
    text = capsys.readouterr().out
    assert "noisy" in text and "file:GTCRN" in text and "SI-SDR" in text
    rows = E.read_csv(out)
    assert len(rows) == 3 * 2 * 2 and not any(r["metric"].startswith("dnsmos") for r in rows)
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")


def test_cli_errors_name_the_problem(shared_data, tmp_path, capsys):
    from workbench.cli import main

    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no noisy/clean pairs" in capsys.readouterr().err
    assert main(["evaluate", str(shared_data / "dns3"), "-m", "file:NOPE", "--no-reference-free"]) == 2
    assert "NOPE" in capsys.readouterr().err
    assert main(["evaluate", str(shared_data / "dns3"), "--metrics", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_failed_metrics_are_rows_with_reasons(tmp_path, rng):
    """A pair too short for PESQ still evaluates; the CSV row says why the value is missing."""
    sr = 16000
    clean = (0.1 * rng.standard_normal(sr // 10)).astype(np.float32)
    sf.write(tmp_path / "x_clean.wav", clean, sr)
    sf.write(tmp_path / "x_noisy.wav", clean + 0.01 * rng.standard_normal(len(clean)).astype(np.float32), sr)
    res = run_to_end(E.evaluate(tmp_path, [], metrics=["pesq_wb", "si_sdr"], reference_free=False))
    m = {r.metric: r for r in res.measurements}
    assert m["pesq_wb"].value is None and "short" in m["pesq_wb"].reason
    assert m["si_sdr"].value is not None
    E.write_csv(res, tmp_path / "x.csv")
    row = [r for r in E.read_csv(tmp_path / "x.csv") if r["metric"] == "pesq_wb"][0]
    assert row["value"] is None and "short" in row["reason"]
    assert "n/a" in E.format_table(res)


def test_duplicate_systems_rejected(shared_data):
    with pytest.raises(WorkbenchError, match="once"):
        run_to_end(E.evaluate(shared_data / "dns3", ["file:GTCRN", "file:GTCRN"], reference_free=False))


# ---------------------------------------------------------------- the reference must fit the recording


def test_alignment_check_tells_a_matching_reference_from_an_unrelated_one(shared_data):
    noisy, sr = sf.read(shared_data / "dns3/0015_noisy.wav", dtype="float32")
    own, _ = sf.read(shared_data / "dns3/0015_clean.wav", dtype="float32")
    other, _ = sf.read(shared_data / "dns3/0016_clean.wav", dtype="float32")
    good = S.score_signal(noisy, sr, own, sr, reference_free=False, metrics=["si_sdr"]).alignment
    assert good is not None and not good.suspicious and good.problems() == []
    assert good.lag_samples == 0 and abs(good.correlation) > 0.8 and good.max_lag_samples == int(0.25 * sr)
    bad = S.score_signal(noisy, sr, other, sr, reference_free=False, metrics=["si_sdr"])
    assert bad.alignment.suspicious and bad.alignment.low_correlation
    assert "aligned correlation" in bad.alignment.problems()[0]
    # A reference at another rate (the same sentence played at half speed) does not line up either.
    slow = resample(own, sr, sr // 2)
    assert S.score_signal(noisy, sr, slow, sr, reference_free=False, metrics=["si_sdr"]).alignment.suspicious
    # No reference, no check.
    assert S.score_signal(noisy, sr, reference_free=False).alignment is None


def test_alignment_check_flags_the_lag_at_the_search_limit_and_length_differences():
    check = S.AlignmentCheck(correlation=0.9, lag_samples=-4000, max_lag_samples=4000, sample_rate=16000,
                             reference_duration_s=5.0, estimate_duration_s=10.0)
    assert check.lag_at_limit and check.suspicious and check.length_mismatch
    text = "; ".join(check.problems())
    assert "at the search limit (±250 ms)" in text and "lengths differ (5.00 s reference, 10.00 s recording)" in text
    inside = S.AlignmentCheck(0.9, 3990, 4000, 16000, 5.0, 5.2)
    assert not inside.suspicious and not inside.length_mismatch


def test_score_versions_reports_each_part_as_it_finishes(shared_data):
    rec = Recording(shared_data / "dns3/0015_noisy.wav")
    rec.add_enhanced(rec.source.read_all() * 0.5, rec.source.sample_rate,
                     EnhancerInfo("half", "half", "x", 16000, True, 0))
    clean, sr = sf.read(shared_data / "dns3/0015_clean.wav", dtype="float32")
    events = []
    gen = S.score_versions(rec.versions, clean, sr, metrics=["si_sdr"],
                           on_result=lambda v, part, sc: events.append(("result", v.name, part, sorted(sc.metrics))))
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        events.append(("progress", p.fraction))
    results = [e[1:3] for e in events if e[0] == "result"]
    assert results == [("original", "intrusive"), ("half", "intrusive"), ("original", "dnsmos"), ("half", "dnsmos")]
    first = events.index(next(e for e in events if e[0] == "result"))
    assert any(e[0] == "progress" for e in events[first + 1:])   # delivered before the generator ends
    assert sorted(result["half"].metrics) == ["dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "dnsmos_sig", "si_sdr"]
    # Only one part when asked: DNSMOS without the intrusive metrics
    only = run_to_end(S.score_versions(rec.versions[:1], clean, sr, intrusive=False))
    assert sorted(only["original"].metrics) == ["dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "dnsmos_sig"]


def test_dnsmos_cost_estimate_follows_duration_and_measurements():
    from workbench.core.measure.dnsmos import SECONDS_PER_CLIP, SECONDS_PER_WINDOW, DnsmosCost, window_count

    cost = DnsmosCost()
    assert window_count(600.0) == 591 and window_count(3.0) == 1
    assert cost.estimate_s(600.0) == pytest.approx(SECONDS_PER_CLIP + 591 * SECONDS_PER_WINDOW)
    assert cost.seconds_per_audio_minute == pytest.approx(60 * SECONDS_PER_WINDOW)
    cost.observe(60.0, cost.estimate_s(60.0) * 3)   # this machine turned out 3x slower
    assert cost.seconds_per_window == pytest.approx(2 * SECONDS_PER_WINDOW)
    assert cost.seconds_per_clip == pytest.approx(2 * SECONDS_PER_CLIP)
    # Many short clips cost their number of fixed parts: 20 clips of 5 s are not one clip of 100 s.
    assert cost.estimate_clips_s([5.0] * 20) == pytest.approx(20 * cost.estimate_s(5.0))
    assert cost.estimate_clips_s([5.0] * 20) > 2 * cost.estimate_s(100.0)


def test_evaluate_warns_about_a_pair_that_does_not_match(shared_data, tmp_path, capsys):
    import shutil

    from workbench.cli import main

    dns = shared_data / "dns3"
    shutil.copy(dns / "0015_noisy.wav", tmp_path / "a_noisy.wav")
    shutil.copy(dns / "0016_clean.wav", tmp_path / "a_clean.wav")   # the wrong sentence
    shutil.copy(dns / "0016_noisy.wav", tmp_path / "b_noisy.wav")
    shutil.copy(dns / "0016_clean.wav", tmp_path / "b_clean.wav")
    result = run_to_end(E.evaluate(tmp_path, metrics=["si_sdr"], reference_free=False))
    assert len(result.warnings) == 1 and "a_clean.wav: may not be the clean version of a_noisy.wav" in result.warnings[0]
    assert main(["evaluate", str(tmp_path), "--no-reference-free", "--metrics", "si_sdr"]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "a_clean.wav" in err and "b_clean.wav" not in err


def test_evaluate_scores_each_pair_and_system_with_the_batch_item_function(tmp_path, rng, monkeypatch):
    """`workbench evaluate` runs every pair x system through workbench.core.workflows.batch.item.evaluate_item (the
    function `workbench batch evaluate` runs in its workers); a model that fails still stops the run
    with one line naming it."""
    import workbench.core.workflows.batch.item as item

    seen = []
    real = item.evaluate_item

    def spy(task, *a, **kw):
        seen.append((task["pair"], task["model"]))
        return (yield from real(task, *a, **kw))

    monkeypatch.setattr(item, "evaluate_item", spy)
    sr = 16000
    for name in ("a", "b"):
        clean = (0.1 * rng.standard_normal(sr)).astype(np.float32)
        sf.write(tmp_path / f"{name}_clean.wav", clean, sr)
        sf.write(tmp_path / f"{name}_noisy.wav", clean + 0.01 * rng.standard_normal(sr).astype(np.float32), sr)
    res = run_to_end(E.evaluate(tmp_path, ["wiener"], metrics=["si_sdr"], reference_free=False))
    assert sorted(seen) == [("a", "noisy"), ("a", "wiener"), ("b", "noisy"), ("b", "wiener")]
    assert all(m.value is not None for m in res.measurements) and res.elapsed_s["wiener"] > 0

    class Broken(Enhancer):
        def __init__(self):
            self.info = EnhancerInfo("broken", "Broken", "raises", 16000, True, 0)

        def process_offline(self, audio):
            raise RuntimeError("model blew up")

    with pytest.raises(WorkbenchError, match="model blew up"):
        run_to_end(E.evaluate(tmp_path, [Broken()], metrics=["si_sdr"], reference_free=False))


def test_reference_free_flags_keep_the_earlier_dnsmos_names_as_hidden_aliases(capsys):
    from workbench.cli import build_parser

    for command, argv in (("evaluate", ["evaluate", "pairs"]), ("batch", ["batch", "evaluate", "pairs", "--csv", "x"])):
        parser, _ = build_parser(command)
        new = parser.parse_args([*argv, "--no-reference-free", "--reference-free-fast"])
        old = parser.parse_args([*argv, "--no-dnsmos", "--dnsmos-fast"])
        assert new.no_reference_free and new.reference_free_fast
        assert old.no_reference_free and old.reference_free_fast
        assert not parser.parse_args(argv).no_reference_free
        with pytest.raises(SystemExit):
            parser.parse_args([*argv[:-2 if command == "batch" else -1], "--help"])
        shown = capsys.readouterr().out
        assert "--no-reference-free" in shown and "--dnsmos" not in shown and "--no-dnsmos" not in shown
    parser, _ = build_parser("batch")
    common = ["batch", "enhance", "in", "-m", "wiener", "-o", "out"]
    assert parser.parse_args([*common, "--dnsmos"]).reference_free
    assert parser.parse_args([*common, "--reference-free"]).reference_free
    assert not parser.parse_args(common).reference_free
