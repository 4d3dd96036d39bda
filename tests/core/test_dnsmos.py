"""DNSMOS: our onnxruntime implementation against the `speechmos` reference.

speechmos's own code imports librosa (not a project dependency), so it cannot run in the project
environment. The reference numbers below were produced by ``speechmos.dnsmos.run(path, 16000, model_type)``
(speechmos 0.0.1.1, librosa 0.11.0, onnxruntime, run in a separate scratch environment on 2026-11-21) for
the files in ../shared/data. When speechmos *is* importable (librosa installed), the test also compares
against it live.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core import dnsmos as dm

# (file under shared/data, personalized, (SIG, BAK, OVRL, P.808)) from speechmos.dnsmos.run
SPEECHMOS_REFERENCE = [
    ("dns3/0015_noisy.wav", False, (1.224214, 1.099535, 1.138335, 2.333189)),
    ("dns3/0015_GTCRN.wav", False, (3.001001, 3.857124, 2.668780, 3.441392)),
    ("dns3/0016_noisy.wav", False, (1.181832, 1.155621, 1.098094, 2.390619)),
    ("dns3/0016_GTCRN.wav", False, (2.462584, 3.804457, 2.252115, 3.180916)),
    ("dns3/0072_noisy.wav", False, (1.162289, 1.180520, 1.091348, 2.269469)),
    ("dns3/0072_GTCRN.wav", False, (2.928468, 3.945330, 2.638881, 3.084270)),
    ("real/stationary_english_tug_2489_voss_18_snr3_tl-24_fileid_45.wav", False,
     (3.313940, 1.922389, 1.981099, 2.567427)),
    ("dns3/0072_noisy.wav", True, (3.627290, 1.380300, 1.721950, 2.269469)),
]


@pytest.fixture(scope="module")
def scorers():
    return {False: dm.Dnsmos(False), True: dm.Dnsmos(True)}


@pytest.mark.parametrize("rel,personalized,expected", SPEECHMOS_REFERENCE,
                         ids=[f"{r[0].split('/')[-1]}{'-p' if r[1] else ''}" for r in SPEECHMOS_REFERENCE])
def test_matches_speechmos_reference(shared_data, scorers, rel, personalized, expected):
    audio, sr = sf.read(shared_data / rel, dtype="float32")
    s = scorers[personalized].score(audio, sr)
    got = (s.sig, s.bak, s.ovrl, s.p808)
    assert np.allclose(got, expected, atol=1e-3), (got, expected)


@pytest.mark.parametrize("name", ["0015_noisy", "0016_noisy", "0072_noisy", "0016_GTCRN"])
def test_matches_speechmos_live(shared_data, scorers, name):
    # speechmos's own code (it needs librosa, a test-only dependency) is the reference implementation.
    from speechmos import dnsmos as reference

    path = shared_data / f"dns3/{name}.wav"
    ref = reference.run(str(path), 16000)
    audio, sr = sf.read(path, dtype="float32")
    s = scorers[False].score(audio, sr)
    for ours, key in ((s.sig, "sig_mos"), (s.bak, "bak_mos"), (s.ovrl, "ovrl_mos"), (s.p808, "p808_mos")):
        assert abs(ours - ref[key]) < 0.01, (key, ours, ref[key])


def test_mel_filterbank_matches_librosa_slaney():
    fb = dm.mel_filterbank()
    assert fb.shape == (120, 161)
    # librosa.filters.mel(sr=16000, n_fft=321, n_mels=120) (librosa 0.11.0): total weight, peak bins, a peak value
    assert fb.sum() == pytest.approx(2.397503376, rel=1e-6)
    assert [int(fb[i].argmax()) for i in (0, 30, 60, 119)] == [1, 16, 34, 156]
    assert fb[60].max() == pytest.approx(0.0143288029, rel=1e-6)


def test_p808_features_shape_and_scale():
    x = np.random.default_rng(0).standard_normal(dm.WINDOW_SAMPLES - dm.MEL_HOP).astype(np.float32) * 0.1
    f = dm.p808_features(x)
    assert f.shape == (900, 120) and f.dtype == np.float32
    # (log-power relative to the maximum + 40) / 40, floored 80 dB below the maximum
    assert f.max() == pytest.approx(1.0, abs=1e-6) and f.min() >= -1.0 - 1e-6


def test_windows_repeat_short_clips_and_hop_one_second(scorers):
    d = scorers[False]
    short = np.arange(5 * 16000, dtype=np.float32)
    w = d.windows(short)
    assert len(w) == 1 and len(w[0]) == dm.WINDOW_SAMPLES
    # a 5 s clip is doubled to 10 s: the window continues with the clip's start
    assert w[0][80000] == short[0] and w[0][-1] == short[dm.WINDOW_SAMPLES - 80000 - 1]
    # 20 s: floor(20 - 9.01) + 1 = 11 window starts, one per second. The reference computes the end as
    # int((i + 9.01) * 16000), one sample short for i = 7..10 in floating point, and skips those windows.
    long = np.arange(20 * 16000, dtype=np.float32)
    starts = [int(w[0]) for w in d.windows(long)]
    assert starts == [i * 16000 for i in range(7)]
    every = dm.Dnsmos(exact_reference=False).windows(long)
    assert [int(w[0]) for w in every] == [i * 16000 for i in range(11)]


def test_other_rates_are_resampled(shared_data, scorers):
    import soxr

    audio, sr = sf.read(shared_data / "dns3/0015_GTCRN.wav", dtype="float32")
    at48 = soxr.resample(audio, sr, 48000)
    a, b = scorers[False].score(audio, sr), scorers[False].score(at48, 48000)
    assert abs(a.ovrl - b.ovrl) < 0.05 and abs(a.sig - b.sig) < 0.05


def test_bad_signals_give_reasons_not_crashes(scorers):
    silent = scorers[False].metrics(np.zeros(16000, np.float32), 16000)
    assert set(silent) == set(dm.DNSMOS_METRICS)
    assert all(m.value is None and "silence" in m.reason for m in silent.values())
    nan = scorers[False].metrics(np.full(16000, np.nan, np.float32), 16000)
    assert all(m.value is None and "NaN" in m.reason for m in nan.values())
    empty = scorers[False].metrics(np.zeros(0, np.float32), 16000)
    assert all(m.value is None and "empty" in m.reason for m in empty.values())


def test_metrics_carry_direction_and_range(shared_data):
    audio, sr = sf.read(shared_data / "dns3/0015_noisy.wav", dtype="float32")
    ms = dm.dnsmos_metrics(audio, sr)
    ovrl = ms["dnsmos_ovrl"]
    assert ovrl.higher_is_better and ovrl.range == (1.0, 5.0) and ovrl.unit == "MOS"
    assert ovrl.value == pytest.approx(1.138335, abs=1e-3)


def test_model_files_are_found_without_importing_speechmos():
    import sys

    p835, p808 = dm.model_paths()
    assert p835.name == "sig_bak_ovr.onnx" and p808.name == "model_v8.onnx"
    assert "speechmos.dnsmos" not in sys.modules or "librosa" in sys.modules


def _window_by_window(scorer: dm.Dnsmos, x16: np.ndarray) -> tuple[float, float, float, float, int]:
    """The previous implementation: one window, one feature computation and two model calls at a time."""
    sig, bak, ovrl, p808 = [], [], [], []
    for seg in scorer.windows(x16):
        raw = scorer._p835.run(None, {scorer._p835_in: seg[None, :]})[0][0]
        feats = dm.p808_features(seg[:-dm.MEL_HOP])[None]
        p808.append(float(scorer._p808.run(None, {scorer._p808_in: feats})[0][0][0]))
        sig.append(float(scorer._poly["sig"](raw[0])))
        bak.append(float(scorer._poly["bak"](raw[1])))
        ovrl.append(float(scorer._poly["ovrl"](raw[2])))
    return float(np.mean(sig)), float(np.mean(bak)), float(np.mean(ovrl)), float(np.mean(p808)), len(sig)


@pytest.fixture(scope="module")
def long_clip(shared_data) -> np.ndarray:
    """About 40 s of real and synthetic speech at 16 kHz (several batches, skipped reference windows)."""
    parts = [sf.read(shared_data / "real" / p.name, dtype="float32")[0]
             for p in sorted((shared_data / "real").glob("*.wav")) if not p.stem.endswith(("_GTCRN", "_RNNoise"))]
    parts += [sf.read(shared_data / "dns3" / f"{c}_noisy.wav", dtype="float32")[0] for c in ("0015", "0016", "0072")]
    return np.concatenate(parts)


def test_batched_scores_equal_window_by_window(scorers, long_clip):
    scorer = scorers[False]
    expected = _window_by_window(scorer, long_clip)
    for batch in (1, 3, dm.BATCH_WINDOWS, 64):
        got = dm.Dnsmos(False, batch_windows=batch).score(long_clip, 16000)
        assert got.windows == expected[4] > dm.BATCH_WINDOWS and got.mode == "exact"
        np.testing.assert_allclose((got.sig, got.bak, got.ovrl, got.p808), expected[:4], atol=1e-5)


def test_batch_features_equal_per_window_features(rng):
    windows = rng.standard_normal((3, dm.WINDOW_SAMPLES - dm.MEL_HOP)).astype(np.float32)
    windows[1] *= 1e-3  # the normalisation is per window
    batch = dm.p808_features_batch(windows)
    assert batch.shape == (3, 900, 120)
    for k in range(3):
        np.testing.assert_allclose(batch[k], dm.p808_features(windows[k]), atol=1e-5)


def test_progress_per_batch_and_cancel(scorers, long_clip):
    steps = scorers[False].score_steps(long_clip, 16000)
    fractions = [next(steps).fraction, next(steps).fraction]
    assert fractions[0] == 0.0 and 0 < fractions[1] < 1
    steps.close()  # cancel between batches: nothing left running


def test_fast_mode_is_labelled_non_overlapping_and_not_the_default(long_clip):
    exact = dm.shared_dnsmos()
    fast = dm.Dnsmos(False, fast=True)
    assert not exact.fast and exact.score(long_clip, 16000).mode == "exact"
    n = len(long_clip)
    assert fast.window_starts(n) == list(range(0, n - dm.WINDOW_SAMPLES + 1, dm.WINDOW_SAMPLES))
    scores = fast.score(long_clip, 16000)
    assert scores.mode == "fast" and scores.windows == n // dm.WINDOW_SAMPLES
    short = long_clip[: 5 * 16000]  # repeat-padded to 10 s: one window in both modes
    a, b = exact.score(short, 16000), fast.score(short, 16000)
    assert a.windows == b.windows == 1 and abs(a.ovrl - b.ovrl) < 1e-6
