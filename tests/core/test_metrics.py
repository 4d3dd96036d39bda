"""Intrusive metrics, alignment, pairing, and the difference views they are read beside."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from workbench.core.measure import metrics as M
from workbench.core.views import comparison as C
from workbench.core.errors import WorkbenchError
from workbench.core.views.stft import StftConfig, stft

SR = 16000


def speechlike(rng, seconds=3.0, sr=SR):
    """Amplitude-modulated harmonic tone plus a little noise: enough 'speech' for STOI's VAD and PESQ."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.5 * t)
    ph = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * ph) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    return (0.2 * env * voiced / 3 + 0.002 * rng.standard_normal(len(t))).astype(np.float64)


@pytest.fixture(scope="module")
def pesq_pair(shared_data):
    ref, sr = sf.read(shared_data / "pesq/speech.wav")
    deg, _ = sf.read(shared_data / "pesq/speech_bab_0dB.wav")
    return ref, deg, sr


def test_pesq_matches_published_example(pesq_pair):
    ref, deg, sr = pesq_pair
    # python-pesq's README: pesq(16000, speech, speech_bab_0dB, 'wb') = 1.0832337141036987
    m = M.pesq_score(ref, deg, sr, "wb")
    assert m.value == pytest.approx(1.0832, abs=0.01)
    assert m.name == "pesq_wb" and m.higher_is_better and m.range == (1.04, 4.64)
    nb = M.pesq_score(ref, deg, sr, "nb")  # resampled to 8 kHz first
    assert 1.2 < nb.value < 2.2


def test_identical_signals_score_best(pesq_pair):
    ref, _, sr = pesq_pair
    r = M.intrusive_metrics(ref, ref, sr)
    v = r.values()
    assert r.lag_samples == 0
    assert v["pesq_wb"] > 4.5 and v["stoi"] > 0.999 and v["estoi"] > 0.999
    assert v["lsd"] == 0 and v["cepstral_distance"] == 0 and v["mae"] == 0 and v["mse"] == 0
    assert v["ccmse"] == 0 and v["mrstft"] == pytest.approx(0, abs=1e-9)
    assert v["seg_snr"] == pytest.approx(35.0)
    # infinite ratios are reported as not computable, with a reason
    assert r.metrics["si_sdr"].value is None and "infinite" in r.metrics["si_sdr"].reason
    assert r.metrics["snr"].value is None and r.metrics["sdr"].value is None


def test_si_sdr_is_scale_invariant_and_matches_formula(rng):
    s = speechlike(rng)
    n = rng.standard_normal(len(s))
    n *= np.linalg.norm(s) / np.linalg.norm(n) * 10 ** (-10 / 20)   # 10 dB SNR
    e = s + n
    a = M.si_sdr(s, e).value
    assert a == pytest.approx(M.si_sdr(s, 0.3 * e).value, abs=1e-9)
    s0, e0 = s - s.mean(), e - e.mean()
    target = np.dot(e0, s0) / np.dot(s0, s0) * s0
    assert a == pytest.approx(10 * np.log10(np.sum(target ** 2) / np.sum((target - e0) ** 2)), abs=1e-9)
    assert a == pytest.approx(10.0, abs=0.3)
    # plain SNR counts the gain error, SI-SDR does not
    assert M.snr(s, 0.5 * s).value == pytest.approx(6.02, abs=0.01)


def test_sdr_forgives_short_filters_but_not_noise(rng):
    s = speechlike(rng)
    h = np.zeros(42)
    h[0], h[41] = 1.0, -0.8                       # a comb filter (echo 41 samples later)
    filtered = np.convolve(s, h)[:len(s)]
    assert M.sdr(s, filtered).value > 40          # inside the 512-tap distortion filter: not an error
    assert M.si_sdr(s, filtered).value < 10       # SI-SDR only forgives a gain
    n = rng.standard_normal(len(s))
    n *= np.linalg.norm(s) / np.linalg.norm(n) * 10 ** (-5 / 20)
    assert M.sdr(s, s + n).value == pytest.approx(5.0, abs=0.3)


def test_alignment_finds_and_removes_delay(rng):
    s = speechlike(rng)
    n = 0.001 * rng.standard_normal(len(s))
    est = np.concatenate([np.zeros(37), (s + n)[:-37]])   # late by 37 samples
    aligned = M.intrusive_metrics(s, est, SR, metrics=["si_sdr", "pesq_wb"])
    raw = M.intrusive_metrics(s, est, SR, metrics=["si_sdr"], align_signals=False)
    assert aligned.lag_samples == 37
    assert aligned.metrics["si_sdr"].value > 20 > raw.metrics["si_sdr"].value
    early = M.align(s, s[25:], SR)
    assert early.lag_samples == -25 and len(early.reference) == len(early.estimate)


def test_segmental_snr_clamps(rng):
    s = speechlike(rng)
    assert M.segmental_snr(s, s + 100 * rng.standard_normal(len(s)), SR).value == pytest.approx(-10.0, abs=0.01)
    mid = M.segmental_snr(s, -s, SR).value            # error 2s: 10*log10(1/4) = -6.02 dB in every frame
    assert mid == pytest.approx(-6.02, abs=0.05)


def test_distances_grow_with_noise(rng):
    s = speechlike(rng)
    n = rng.standard_normal(len(s))
    vals = []
    for scale in (0.001, 0.01, 0.1):
        r = M.intrusive_metrics(s, s + scale * n, SR, metrics=["lsd", "cepstral_distance", "ccmse", "mrstft", "mae"])
        vals.append([r.metrics[k].value for k in ("lsd", "cepstral_distance", "ccmse", "mrstft", "mae")])
    vals = np.array(vals)
    assert np.all(np.diff(vals, axis=0) > 0), vals
    assert np.all(vals[:, 1] <= 10)  # cepstral distance clamp


def test_lsd_formula_for_a_gain(rng):
    s = speechlike(rng)
    # a pure gain g shifts every log power by 20*log10(g): LSD = |20 log10 g| where both are above the floor
    assert M.log_spectral_distance(s, 0.5 * s, SR).value == pytest.approx(6.02, abs=0.05)


def test_lpc_cepstrum_of_one_pole():
    # 1/(1 - a z^-1) has cepstrum c_n = a^n / n
    a = 0.7
    c = M._lpc_cepstrum(np.array([-a, 0.0, 0.0, 0.0]))
    assert np.allclose(c, [a ** n / n for n in range(1, 5)])


def test_compressed_complex_distance_sees_phase(rng):
    s = speechlike(rng)
    # same magnitude, inverted sign: only the complex term (weight 0.3) differs
    flipped = M.compressed_complex_distance(s, -s, SR).value
    cfg = M._analysis_cfg(SR)
    from scipy.signal import get_window
    S = stft(s.astype(np.float32), cfg).astype(np.complex128) / get_window("hann", cfg.n_fft).sum()
    expected = 0.3 * np.mean(np.abs(2 * np.abs(S) ** 0.3) ** 2)
    assert flipped == pytest.approx(expected, rel=1e-4)


def test_failures_give_reasons(rng):
    s = speechlike(rng)
    silent = M.intrusive_metrics(np.zeros_like(s), s, SR)
    assert all(m.value is None and "silent" in m.reason for m in silent.metrics.values())
    nan = s.copy()
    nan[100] = np.nan
    r = M.intrusive_metrics(s, nan, SR)
    assert all(m.value is None and "NaN" in m.reason for m in r.metrics.values())
    short = M.intrusive_metrics(s[:1600], s[:1600] * 0.9 + 0.001 * rng.standard_normal(1600), SR,
                                metrics=["pesq_wb", "stoi", "si_sdr"])
    assert short.metrics["pesq_wb"].value is None and "short" in short.metrics["pesq_wb"].reason
    assert short.metrics["stoi"].value is None and short.metrics["stoi"].reason
    assert short.metrics["si_sdr"].value is not None
    low = M.pesq_score(s, s, 8000, "wb")
    assert low.value is None and "16000" in low.reason
    quiet = M.intrusive_metrics(s, np.zeros_like(s), SR, metrics=["pesq_wb", "si_sdr", "sdr", "snr"])
    for k in ("pesq_wb", "si_sdr", "sdr"):
        assert quiet.metrics[k].value is None and quiet.metrics[k].reason == "estimate is silent"
    assert quiet.metrics["snr"].value == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown intrusive metric"):
        M.intrusive_metrics(s, s, SR, metrics=["pesq_xx"])


def test_real_noisy_clip_against_clean(shared_data):
    clean, sr = sf.read(shared_data / "dns3/0015_clean.wav")
    noisy, _ = sf.read(shared_data / "dns3/0015_noisy.wav")
    r = M.intrusive_metrics(clean, noisy, sr)
    v = r.values()
    assert r.lag_samples == 0
    assert 1.0 < v["pesq_wb"] < 1.4 and 0.6 < v["estoi"] < 0.8 and 6 < v["si_sdr"] < 10
    assert all(m.value is not None for m in r.metrics.values()), {k: m.reason for k, m in r.metrics.items()}


def test_find_pairs_suffix_convention(shared_data):
    pairs = M.find_pairs(shared_data / "dns3")
    assert [p.name for p in pairs] == ["0015", "0016", "0072"]
    for p in pairs:
        assert p.noisy.name == f"{p.name}_noisy.wav" and p.clean.name == f"{p.name}_clean.wav"
        assert set(p.outputs) == {"GTCRN", "RNNoise"}
    assert M.find_reference_for(shared_data / "dns3/0016_noisy.wav") == shared_data / "dns3/0016_clean.wav"
    assert M.find_reference_for(shared_data / "dns3/0016_GTCRN.wav") == shared_data / "dns3/0016_clean.wav"
    assert M.find_reference_for(shared_data / "pesq/speech.wav") is None


def test_find_pairs_folder_convention(tmp_path, rng):
    for sub in ("noisy", "clean", "mymodel"):
        (tmp_path / sub).mkdir()
    for name in ("a", "b"):
        for sub in ("noisy", "clean", "mymodel"):
            sf.write(tmp_path / sub / f"{name}.wav", 0.1 * rng.standard_normal(800), SR)
    sf.write(tmp_path / "noisy" / "orphan.wav", np.zeros(800), SR)
    pairs = M.find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[0].outputs == {"mymodel": tmp_path / "mymodel" / "a.wav"}
    assert M.find_reference_for(tmp_path / "noisy" / "a.wav") == tmp_path / "clean" / "a.wav"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WorkbenchError, match="no noisy/clean pairs"):
        M.find_pairs(empty)
    with pytest.raises(WorkbenchError, match="not a folder"):
        M.find_pairs(tmp_path / "missing")


def test_difference_views(rng):
    x = speechlike(rng, 1.0).astype(np.float32)
    cfg = StftConfig(n_fft=512, hop=128)
    half = C.difference_views(x, 0.5 * x, cfg)
    d = half["magnitude_difference_db"]
    O = stft(x, cfg)
    loud = np.abs(O) > 1e-3
    assert d.shape == O.shape and d.dtype == np.float32
    assert np.allclose(d[loud], -6.0206, atol=1e-3)
    assert np.allclose(half["phase_difference"][loud], 0, atol=1e-4)
    inv = C.difference_representation("phase_difference", O, -O)
    assert np.allclose(np.abs(inv[loud]), math.pi, atol=1e-4)
    # a pure delay of one sample rotates bin k by -2*pi*k/n_fft
    shifted = C.phase_difference(O, O * np.exp(-2j * np.pi * np.arange(cfg.bins) / cfg.nfft))
    k = 10
    assert np.allclose(shifted[:, k], -2 * np.pi * k / cfg.nfft, atol=1e-4)
    with pytest.raises(ValueError, match="shapes differ"):
        C.magnitude_difference_db(O, O[:-1])
    with pytest.raises(ValueError, match="unknown difference view"):
        C.difference_representation("nope", O, O)


def test_every_metric_has_a_complete_spec():
    for key, spec in M.METRIC_SPECS.items():
        assert spec.name == key and spec.label and spec.description
        m = M.make_metric(key, 1.0)
        assert m.unit == spec.unit and m.higher_is_better == spec.higher_is_better and m.range == spec.range
        assert M.make_metric(key, float("nan")).value is None


def test_an_intrusive_metric_is_one_spec_entry_with_its_compute_function(monkeypatch, rng):
    """intrusive_metrics runs each spec's own compute function: a new metric needs no other code."""
    assert all(s.compute is not None for s in M.METRIC_SPECS.values())
    # DNSMOS's four columns are one run of one function
    assert len({id(M.METRIC_SPECS[k].compute) for k in M.reference_free_groups()["dnsmos"]}) == 1
    spec = M.MetricSpec("peak_error", "Peak error", "", False, (0.0, None), True, "max|s-ŝ|",
                        lambda s, e, sr: M.make_metric("peak_error", float(np.max(np.abs(s - e)))))
    monkeypatch.setitem(M.METRIC_SPECS, "peak_error", spec)
    assert M.intrusive_keys()[-1] == "peak_error"
    x = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    e = (0.5 * x + 0.01 * rng.standard_normal(8000)).astype(np.float32)
    res = M.intrusive_metrics(x, e, 8000, metrics=["peak_error", "si_sdr"])
    assert res.lag_samples == 0
    assert res.metrics["peak_error"].value == pytest.approx(float(np.max(np.abs(x - e.astype(np.float64)))), rel=1e-5)
    assert res.metrics["peak_error"].label == "Peak error" and res.metrics["si_sdr"].value > 10


def test_pesq_runs_in_a_helper_process_when_asked_with_the_same_score():
    """In the window PESQ's lock-holding C call runs in a helper process; the score is the same."""
    import os

    from workbench.core.measure import native_calls
    from workbench.core.measure.metrics import pesq_score

    rng = np.random.default_rng(7)
    t = np.arange(3 * 16000) / 16000
    clean = (0.3 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    noisy = clean + 0.05 * rng.standard_normal(clean.size).astype(np.float32)
    here = pesq_score(clean, noisy, 16000)
    try:
        native_calls.run_in_helper_process(True)
        assert native_calls.call(os.getpid) != os.getpid()
        there = pesq_score(clean, noisy, 16000)
    finally:
        native_calls.run_in_helper_process(False)
        native_calls.shutdown()
    assert there.value == here.value and np.isfinite(here.value)
    assert native_calls.call(os.getpid) == os.getpid()
