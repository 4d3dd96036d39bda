"""Loudness measurement and matching (BS.1770 via pyloudnorm) on real speech."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.audio.loudness import match_gains, measure, peak_safe_gain


@pytest.fixture(scope="module")
def speech(shared_data):
    x, sr = sf.read(shared_data / "pesq" / "speech.wav", dtype="float32")
    return x, sr


def test_gain_changes_loudness_by_the_same_amount(speech):
    x, sr = speech
    ref = measure(x, sr)
    assert ref.lufs is not None and -45 < ref.lufs < -10
    quieter = measure(x * 10 ** (-12 / 20), sr)
    assert quieter.lufs == pytest.approx(ref.lufs - 12, abs=0.01)


def test_versions_at_different_gains_are_matched_within_half_a_lu(speech, shared_data):
    x, sr = speech
    noisy, _ = sf.read(shared_data / "pesq" / "speech_bab_0dB.wav", dtype="float32")
    versions = [x * 0.9, x * 0.05, noisy * 0.3, noisy[::-1] * 0.7]
    measures = [measure(v, sr) for v in versions]
    gains = match_gains(measures)
    target = min(m.lufs for m in measures)
    played = [measure(v * g.gain, sr).lufs for v, g in zip(versions, gains)]
    for lufs, g in zip(played, gains):
        assert not g.limited
        assert g.target_lufs == pytest.approx(target)
        assert abs(lufs - target) < 0.5
    # the quietest one is the target: nothing is amplified
    assert max(g.gain_db for g in gains) == pytest.approx(0.0, abs=1e-9)


def test_residual_is_raised_but_never_above_full_scale(speech):
    x, sr = speech
    loud = x / np.abs(x).max() * 0.99  # peak at -0.09 dBFS
    residual = loud * 0.01
    residual[1000] = 0.5  # a click the model removed: loud peak, little loudness
    measures = [measure(loud * 0.5, sr), measure(loud, sr), measure(residual, sr)]
    gains = match_gains(measures, reference=[True, True, False])
    # the residual may not set the target; it is raised towards it until its peak reaches 0 dBFS
    assert gains[2].target_lufs == pytest.approx(measures[0].lufs)
    assert gains[2].limited and gains[2].match_gain_db > 0
    assert np.abs(residual * gains[2].gain).max() == pytest.approx(1.0, abs=1e-4)
    assert gains[2].gain_db == pytest.approx(gains[2].match_gain_db + gains[2].limit_db)


def test_explicit_target_and_peak_rule(speech):
    x, sr = speech
    m = measure(x, sr)
    g = match_gains([m], target_lufs=-23.0)[0]
    if g.limited:  # pesq speech is quiet: reaching -23 LUFS may need more headroom than it has
        assert np.abs(x * g.gain).max() == pytest.approx(1.0, abs=1e-4)
    else:
        assert measure(x * g.gain, sr).lufs == pytest.approx(-23.0, abs=0.05)
    hot = x / np.abs(x).max() * 4.0
    p = peak_safe_gain(measure(hot, sr))
    assert p.limited and p.gain_db == pytest.approx(-20 * np.log10(4.0), abs=1e-4)


def test_silence_and_too_short_give_a_reason_and_no_match_gain():
    sr = 16000
    silent = measure(np.zeros(sr), sr)
    assert silent.lufs is None and "silent" in silent.reason
    short = measure(np.full(int(0.3 * sr), 0.1, np.float32), sr)
    assert short.lufs is None and "too short" in short.reason
    tone = measure(0.1 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr), sr)
    gains = match_gains([silent, short, tone])
    assert gains[0].gain_db == 0.0 and gains[0].reason
    assert gains[1].gain_db == 0.0 and gains[1].reason
    assert gains[2].gain_db == 0.0 and gains[2].target_lufs == pytest.approx(tone.lufs)


def test_nan_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        measure(np.array([0.0, np.nan] * 10000), 16000)


@pytest.mark.parametrize("block_frames", [1 << 20, 10007, 4000])
def test_piecewise_measure_equals_pyloudnorm_on_the_whole_signal(speech, block_frames):
    """measure() processes the signal in pieces (bounded memory, short calls); its integrated loudness
    must equal pyloudnorm's whole-signal result, whatever the piece size (seams inside gating blocks)."""
    import pyloudnorm

    x, sr = speech
    rng = np.random.default_rng(7)
    quiet_gap = x.copy()
    quiet_gap[len(x) // 3: 2 * len(x) // 3] *= 1e-3  # long quiet stretch: both gates matter
    stereo = np.stack([x, 0.3 * np.roll(x, 999) + 0.01 * rng.standard_normal(len(x))], axis=1)
    five = 0.05 * rng.standard_normal((16000 * 5, 5))  # 4th/5th channels weighted 1.41 as in pyloudnorm
    for signal, rate in ((x, sr), (quiet_gap, sr), (stereo, sr), (five, 16000)):
        ours = measure(signal, rate, block_frames=block_frames).lufs
        ref = pyloudnorm.Meter(rate).integrated_loudness(np.asarray(signal, np.float64))
        assert ours == pytest.approx(ref, abs=0.05)
        assert ours == pytest.approx(ref, abs=1e-6)  # in fact equal to rounding


def test_piecewise_measure_finds_peak_and_nan_in_any_piece():
    x = np.full(48000, 0.01, np.float32)
    x[40000] = -0.75
    assert measure(x, 48000, block_frames=4096).peak == pytest.approx(0.75)
    x[45000] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        measure(x, 48000, block_frames=4096)


def test_loudness_stream_fed_uneven_pieces_equals_measure(speech):
    """Playback measures each version while it writes its cache, in whatever pieces the resampler
    gives: the result must be the whole-signal measure, and a stream not fed to the end refuses."""
    from workbench.core.audio.loudness import LoudnessStream

    x, sr = speech
    ref = measure(x, sr)
    stream = LoudnessStream(len(x), sr)
    a, step = 0, 1
    while a < len(x):
        stream.add(x[a:a + step])
        a += step
        step = step * 3 + 17  # 1, 20, 77, ... piece sizes, seams everywhere in the gating grid
    got = stream.result()
    assert got.lufs == pytest.approx(ref.lufs, abs=1e-9) and got.peak == ref.peak
    short = LoudnessStream(len(x), sr)
    short.add(x[:1000])
    with pytest.raises(ValueError, match="fed 1000"):
        short.result()
    with pytest.raises(ValueError, match="NaN"):
        LoudnessStream(10, sr).add(np.array([0.0, np.nan]))
