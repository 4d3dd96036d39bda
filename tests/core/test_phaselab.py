"""Phase lab core: oracle masks, swaps, Griffin-Lim, effective mask, reference alignment, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.workflows import phaselab as pl
from workbench.core.progress import run_to_end
from workbench.core.measure.scoring import score_signal
from workbench.core.views.stft import StftConfig, stft

CLIPS = ("0015", "0016", "0072")
CFG = StftConfig()  # the project's default analysis settings (1024 / 256, Hann)


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain float64 SI-SDR (no clamp for exact copies, unlike the metric)."""
    s = np.asarray(reference, np.float64) - np.mean(reference)
    e = np.asarray(estimate, np.float64) - np.mean(estimate)
    a = np.dot(e, s) / np.dot(s, s)
    return float(10 * np.log10(np.sum((a * s) ** 2) / np.sum((a * s - e) ** 2)))


@pytest.fixture(scope="module")
def dns3(shared_data):
    pairs = {}
    for clip in CLIPS:
        noisy, sr = sf.read(shared_data / "dns3" / f"{clip}_noisy.wav")
        clean, _ = sf.read(shared_data / "dns3" / f"{clip}_clean.wav")
        pairs[clip] = (noisy, clean, sr)
    return pairs


@pytest.fixture(scope="module")
def oracles(dns3):
    out = {}
    for clip, (noisy, clean, sr) in dns3.items():
        ref = pl.align_reference(noisy, sr, clean, sr)
        out[clip] = {v.tag: v for v in pl.oracle_versions(noisy, ref.clean, CFG)}
    return out


def scores(x, clean, sr):
    sc = score_signal(x, sr, clean, sr, reference_free=False, metrics=["pesq_wb", "si_sdr"])
    return {k: m.value for k, m in sc.metrics.items()}


def test_cirm_reconstructs_clean_to_round_off(dns3, oracles):
    for clip, (noisy, clean, sr) in dns3.items():
        est = oracles[clip]["cirm"].audio
        assert si_sdr_db(clean, est) > 40, clip


def test_compressed_cirm_round_trip_and_bound(rng):
    m = (rng.standard_normal((50, 20)) * 30 + 1j * rng.standard_normal((50, 20)) * 30)
    c = pl.compress_cirm(m, 10, 0.1)
    assert np.all(np.abs(c.real) < 10) and np.all(np.abs(c.imag) < 10)
    # K (1 - e^{-Cx}) / (1 + e^{-Cx}) written out for one value
    x = 7.0
    assert pl.compress_cirm(np.array([x]), 10, 0.1)[0].real == pytest.approx(10 * (1 - np.exp(-0.7)) / (1 + np.exp(-0.7)))
    np.testing.assert_allclose(pl.uncompress_cirm(c, 10, 0.1), m, rtol=1e-6, atol=1e-6)


def test_clean_magnitude_noisy_phase_is_clearly_worse_than_clean_and_cirm(dns3, oracles):
    for clip, (noisy, clean, sr) in dns3.items():
        swap = scores(oracles[clip]["cleanmag_noisyphase"].audio, clean, sr)
        cirm = oracles[clip]["cirm"].audio
        assert swap["pesq_wb"] < 4.64 - 0.3, clip            # clean scores 4.64
        assert swap["si_sdr"] < si_sdr_db(clean, cirm) - 15, clip
        assert swap["si_sdr"] < 30, clip
        assert scores(cirm, clean, sr)["pesq_wb"] > swap["pesq_wb"] + 0.3, clip


def test_psm_beats_iam_in_si_sdr_on_average(dns3, oracles):
    psm = [scores(oracles[c]["psm"].audio, dns3[c][1], dns3[c][2])["si_sdr"] for c in CLIPS]
    iam = [scores(oracles[c]["iam"].audio, dns3[c][1], dns3[c][2])["si_sdr"] for c in CLIPS]
    assert np.mean(psm) >= np.mean(iam)


def test_iam_keeps_the_noisy_phase_and_equals_the_swap(oracles):
    o = oracles["0015"]
    np.testing.assert_allclose(o["iam"].audio, o["cleanmag_noisyphase"].audio, atol=1e-5)


def test_masks_follow_their_formulas(rng):
    S = rng.standard_normal((30, 9)) + 1j * rng.standard_normal((30, 9))
    N = 0.7 * (rng.standard_normal((30, 9)) + 1j * rng.standard_normal((30, 9)))
    Y = S + N
    snr_db = 20 * np.log10(np.abs(S) / np.abs(N))
    np.testing.assert_array_equal(pl.oracle_mask("ibm", S, Y, pl.MaskParams(lc_db=3)), (snr_db > 3).astype(float))
    irm = pl.oracle_mask("irm", S, Y, pl.MaskParams(beta=1.0))
    np.testing.assert_allclose(irm, np.abs(S) ** 2 / (np.abs(S) ** 2 + np.abs(N) ** 2))
    psm_raw = pl.oracle_mask("psm", S, Y, pl.MaskParams(psm_truncate=False))
    np.testing.assert_allclose(psm_raw, np.abs(S) / np.abs(Y) * np.cos(np.angle(S) - np.angle(Y)))
    psm = pl.oracle_mask("psm", S, Y)
    assert psm.min() >= 0 and psm.max() <= 1 and psm_raw.min() < 0
    np.testing.assert_allclose(pl.oracle_mask("cirm", S, Y) * Y, S)
    # silent bins: masks are 0, not NaN
    Y0 = Y.copy()
    Y0[0] = 0
    for kind in pl.MASK_KINDS:
        m = pl.oracle_mask(kind, S, Y0)
        assert np.all(np.isfinite(m))


def test_griffin_lim_matches_librosa():
    librosa = pytest.importorskip("librosa")
    sr, hop, n_fft = 16000, 128, 512
    n = hop * 40
    t = np.arange(n) / sr
    rng = np.random.default_rng(1)
    x = (np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t) + 0.3 * np.sin(2 * np.pi * 1234 * t)
         + 0.05 * rng.standard_normal(n)).astype(np.float32)
    cfg = StftConfig(n_fft, hop, "hann")
    A = np.abs(stft(x, cfg))
    for momentum in (0.0, 0.99):
        ours = run_to_end(pl.griffin_lim(A, cfg, n, iterations=10, momentum=momentum, init="zero"))
        ref = librosa.griffinlim(A.T, n_iter=10, hop_length=hop, win_length=n_fft, n_fft=n_fft, window="hann",
                                 center=True, length=n, pad_mode="constant", momentum=momentum, init=None)
        assert np.max(np.abs(ours.signal - ref)) < 1e-3 * np.max(np.abs(ref)), momentum


def test_fast_griffin_lim_converges_faster(dns3):
    noisy, clean, sr = dns3["0015"]
    A = np.abs(stft(clean, CFG))
    gla = run_to_end(pl.griffin_lim(A, CFG, len(clean), iterations=30, momentum=0.0, seed=3))
    fgla = run_to_end(pl.griffin_lim(A, CFG, len(clean), iterations=30, momentum=pl.FGLA_MOMENTUM, seed=3))
    assert len(gla.spectral_convergence) == 31
    assert gla.spectral_convergence[0] == fgla.spectral_convergence[0]     # same seeded start
    assert np.all(np.diff(gla.spectral_convergence) <= 1e-9)               # GLA never increases SC
    assert fgla.spectral_convergence[-1] < 0.8 * gla.spectral_convergence[-1]
    assert np.all(fgla.spectral_convergence[10:] < gla.spectral_convergence[10:])
    # the final inconsistency bounds the final spectral convergence from above
    assert fgla.spectral_convergence[-1] <= fgla.inconsistency + 1e-9


def test_griffin_lim_inits_and_cancel(dns3):
    noisy, clean, sr = dns3["0015"]
    Y = stft(noisy, CFG)
    A = np.abs(stft(clean, CFG))
    a = run_to_end(pl.griffin_lim(A, CFG, len(clean), iterations=2, init="random", seed=5))
    b = run_to_end(pl.griffin_lim(A, CFG, len(clean), iterations=2, init="random", seed=5))
    np.testing.assert_array_equal(a.signal, b.signal)
    noisy_init = run_to_end(pl.griffin_lim(A, CFG, len(clean), iterations=0, init="noisy", noisy_spec=Y))
    np.testing.assert_allclose(noisy_init.signal, pl.combine(A, Y, CFG, len(clean)), atol=1e-6)
    gen = pl.griffin_lim(A, CFG, len(clean), iterations=500)
    steps = [next(gen) for _ in range(3)]
    gen.close()   # cancel between iterations: nothing more runs
    assert steps[-1].fraction < 0.01
    with pytest.raises(ValueError, match="noisy"):
        run_to_end(pl.griffin_lim(A, CFG, len(clean), iterations=1, init="noisy"))


def test_effective_mask_of_a_gain_and_a_delay(rng):
    x = rng.standard_normal(16000)
    Y = stft(x, CFG)
    m = pl.effective_mask(stft(0.5 * x, CFG), Y)
    assert np.nanmax(np.abs(m.phase_rad)) < 1e-5
    np.testing.assert_allclose(m.magnitude_db[m.defined], 20 * np.log10(0.5), atol=1e-3)
    # a 3-sample delay turns the phase by -2π k d / N: the view shows it
    d = 3
    delayed = np.concatenate([np.zeros(d), x[:-d]])
    md = pl.effective_mask(stft(delayed, CFG), Y)
    k = np.arange(CFG.bins)
    expected = np.angle(np.exp(-2j * np.pi * k * d / CFG.nfft))
    mid = md.phase_rad[10:-10]
    err = np.abs(np.angle(np.exp(1j * (mid - expected[None, :]))))
    assert np.nanmedian(err) < 0.05
    # distance to the cIRM of itself is -inf dB (exact), of a wrong mask finite
    dist = pl.distance_to_cirm(m, stft(0.5 * x, CFG), Y)
    assert dist.weighted_db < -100


def test_effective_mask_is_nan_where_the_recording_is_silent(rng):
    x = rng.standard_normal(16000)
    x[4000:8000] = 0
    Y = stft(x, CFG)
    m = pl.effective_mask(stft(0.3 * x, CFG), Y)
    frames = slice(4000 // CFG.hop + 4, 8000 // CFG.hop - 4)
    assert not m.defined[frames].any() and np.all(np.isnan(m.magnitude_db[frames]))
    assert np.all(np.isfinite(m.magnitude_db[m.defined]))


# ------------------------------------------------------------------------------------------- reference


def test_reference_at_other_rate_and_offset_is_aligned_and_resampled(dns3):
    import soxr

    noisy, clean, sr = dns3["0015"]
    lag = 160
    delayed_noisy = np.concatenate([np.zeros(lag), noisy])[:len(noisy)]
    clean_48k = soxr.resample(clean[:len(clean) - 8000], sr, 48000)     # shorter and at another rate
    ref = pl.align_reference(delayed_noisy, sr, clean_48k, 48000)
    assert ref.lag_samples == lag and ref.resampled_from == 48000
    assert len(ref.clean) == len(noisy) and 0.8 < ref.coverage < 0.95
    cirm = {v.tag: v for v in pl.oracle_versions(delayed_noisy, ref.clean, CFG, kinds=("cirm",))}["cirm"]
    # the cIRM rebuilds the aligned (resampled) reference exactly
    assert si_sdr_db(ref.clean, cirm.audio) > 40


def test_mismatched_reference_is_a_clear_error(dns3, rng):
    noisy, clean, sr = dns3["0015"]
    with pytest.raises(pl.PhaseLabError, match="clean.wav: the reference does not match"):
        pl.align_reference(noisy, sr, rng.standard_normal(len(noisy)) * 0.1, sr, name="clean.wav")
    with pytest.raises(pl.PhaseLabError, match="covers only"):
        pl.align_reference(noisy, sr, clean[:8000], sr, name="short.wav")
    with pytest.raises(pl.PhaseLabError, match="silent"):
        pl.align_reference(noisy, sr, np.zeros(len(noisy)), sr, name="quiet.wav")
    with pytest.raises(pl.PhaseLabError, match="recording is silent"):
        pl.align_reference(np.zeros(len(noisy)), sr, clean, sr)
    with pytest.raises(pl.PhaseLabError, match="NaN"):
        pl.align_reference(noisy, sr, np.full(10, np.nan), sr)


def test_silent_magnitude_reconstructs_to_silence():
    n = 8000
    A = np.zeros((CFG.frame_count(n), CFG.bins))
    rec = run_to_end(pl.griffin_lim(A, CFG, n, iterations=3))
    assert not np.any(rec.signal) and np.all(np.isfinite(rec.spectral_convergence)) and rec.inconsistency == 0


def test_enhanced_swaps_without_reference(dns3):
    noisy, clean, sr = dns3["0015"]
    e = 0.5 * noisy
    vs = pl.enhanced_swaps("half", "half", e, noisy, CFG)
    assert [v.tag for v in vs] == ["half_noisyphase"]
    np.testing.assert_allclose(vs[0].audio, e, atol=1e-5)
    ref = pl.align_reference(noisy, sr, clean, sr)
    vs = pl.enhanced_swaps("half", "half", e, noisy, CFG, ref.clean)
    assert [v.label for v in vs] == ["|half| ∠noisy", "|half| ∠clean"]


def test_reconstruct_versions_tags_and_params(dns3):
    noisy, clean, sr = dns3["0015"]
    vs = run_to_end(pl.reconstruct_versions("clean", "clean", clean, noisy, CFG, iterations=3))
    assert [v.tag for v in vs] == ["gla_clean", "fgla_clean"]
    assert vs[1].params["momentum"] == pl.FGLA_MOMENTUM and vs[0].params["momentum"] == 0
    assert all(len(v.audio) == len(noisy) for v in vs)
    assert all(len(v.reconstruction.spectral_convergence) == 4 for v in vs)


# ------------------------------------------------------------------------------------ recording versions


def test_lab_for_recording_adds_typed_versions_and_measures_them(dns3, tmp_path):
    from workbench.core.workflows.export import export_name
    from workbench.core.provenance import VersionKind
    from workbench.core.document.recording import Recording

    noisy, clean, sr = dns3["0015"]
    rec = Recording.from_array(noisy.astype(np.float32), sr, "0015_noisy.wav")
    # a stand-in "model": half the noisy signal (a real gain, so its ∠M is 0)
    rec.add_enhanced((0.5 * noisy).astype(np.float32)[:, None], sr, _info("half"))
    out = run_to_end(pl.lab_for_recording(rec, CFG, reference=(clean, sr), reference_name="0015_clean.wav",
                                          gla_iterations=2))
    kinds = {v.name: v.kind for v in rec.versions}
    assert kinds["cIRM"] == VersionKind.ORACLE and kinds["|clean| ∠noisy"] == VersionKind.SWAP
    assert kinds["|half| ∠clean"] == VersionKind.SWAP and kinds["FGLA |clean|"] == VersionKind.RECONSTRUCTION
    cirm = rec.version("cIRM")
    assert cirm.provenance.extra["phase_lab_tag"] == "cirm" and cirm.provenance.parent == "original"
    assert export_name("/x/0015_noisy.wav", rec.version("|clean| ∠noisy")) == "0015_noisy.cleanmag_noisyphase.wav"
    assert len(rec.version("GLA |clean|").provenance.extra["spectral_convergence"]) == 3
    table = {(r.version, r.metric): r.value for r in out.rows}
    assert table[("cIRM", "si_sdr")] > 40 and table[("original", "pesq_wb")] < table[("IRM (β 0.5)", "pesq_wb")]
    stats = {s.version: s for s in out.mask_stats}
    assert stats["half"].phase_deviation_rad < 1e-5
    assert stats["cIRM"].cirm_distance_db < -60
    assert stats["half"].cirm_distance_db > stats["IRM (β 0.5)"].cirm_distance_db


def test_lab_for_recording_without_reference(dns3):
    from workbench.core.document.recording import Recording

    noisy, clean, sr = dns3["0015"]
    rec = Recording.from_array(noisy.astype(np.float32), sr, "n.wav")
    out = run_to_end(pl.lab_for_recording(rec, CFG, gla_iterations=1))
    assert [v.name for v in out.versions] == ["GLA |noisy|", "FGLA |noisy|"]
    assert out.rows == [] and pl.NEEDS_REFERENCE in out.lab.notes


def _info(name):
    from workbench.core.enhance.enhancer import EnhancerInfo

    return EnhancerInfo(id=name, name=name, description="", sample_rate=16000, causal=True, latency_samples=0)


def test_mask_views_are_registry_entries(rng):
    from workbench.core.views.registry import VIEWS, DisplaySettings, pane_arrays, second_pane_views

    assert {"mask_db", "mask_phase"} <= set(second_pane_views())
    assert VIEWS["mask_db"].needs_partner and VIEWS["mask_phase"].colormap_kind == "cyclic"
    x = rng.standard_normal(8000)
    x[3000:5000] = 0
    Y = stft(x, CFG)
    E = stft(0.5 * x, CFG) * np.exp(0.3j)     # a gain and a constant phase turn
    for name, expected in (("mask_db", 20 * np.log10(0.5)), ("mask_phase", 0.3)):
        img = pane_arrays(E, None, CFG, 16000, DisplaySettings(phase_view=name), partner=Y)["phase"]
        quiet = np.isnan(img)
        assert quiet.any() and not quiet.all()            # the silent stretch is undefined
        np.testing.assert_allclose(img[~quiet], expected, atol=1e-3)
        none = pane_arrays(E, None, CFG, 16000, DisplaySettings(phase_view=name), partner=None)["phase"]
        assert np.all(np.isnan(none))
