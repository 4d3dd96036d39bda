"""Strength, regions, spectral repair (core functions and the editor's CLI flags)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.audio.audio_io import ArraySource
from workbench.core.enhance.editing import (Box, Strength, apply_strength, box_energy, enhance_regions, parse_span,
                                    repair_stft_config, spectral_repair, splice)
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.progress import run_to_end
from workbench.core.errors import WorkbenchError
from workbench.core.views.stft import stft

RATE = 16000


class Halve(Enhancer):
    """Offline test model: multiplies by 0.5 (everything it touches changes)."""

    def __init__(self):
        self.info = EnhancerInfo("halve", "Halve", "test", RATE, True, 0, processing="offline", any_rate=True)

    def process_offline(self, audio):
        return audio * 0.5


@pytest.fixture()
def speechlike(rng):
    t = np.arange(4 * RATE) / RATE
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 1) + 0.05 * rng.standard_normal(len(t))
    return x.astype(np.float32)


@pytest.fixture()
def wav(tmp_path, speechlike):
    path = tmp_path / "in.wav"
    sf.write(path, speechlike, RATE, subtype="FLOAT")
    return path


# ------------------------------------------------------------------------------------------------ strength
def test_strength_mix_and_limit_are_one_control():
    s = Strength.from_limit_db(12.0)
    assert s.dry_gain == pytest.approx(10 ** (-12 / 20))
    assert s.mix == pytest.approx(1 - 10 ** (-12 / 20))
    assert Strength(0.7).limit_db == pytest.approx(-20 * math.log10(0.3))
    assert math.isinf(Strength(1.0).limit_db)
    with pytest.raises(WorkbenchError, match="between 0 and 1"):
        Strength(1.5)
    with pytest.raises(WorkbenchError, match="0 dB or more"):
        Strength.from_limit_db(-3)


@pytest.mark.parametrize("a", [0.0, 0.3, 0.7, 1.0])
def test_cli_mix_is_linear_in_wet_and_dry(tmp_path, wav, speechlike, a):
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "wet.wav"), "--quiet"]) == 0
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "mix.wav"), "--mix", str(a),
                 "--quiet"]) == 0
    wet, _ = sf.read(tmp_path / "wet.wav", dtype="float32")
    mixed, _ = sf.read(tmp_path / "mix.wav", dtype="float32")
    np.testing.assert_allclose(mixed, a * wet + (1 - a) * speechlike, atol=1e-6, rtol=0)
    tag = json.loads(sf.SoundFile(tmp_path / "mix.wav").comment)
    assert tag["strength"]["mix"] == pytest.approx(a) and tag["strength"]["given_as"] == "mix"


def test_cli_limit_db_equals_the_same_mix(tmp_path, wav):
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "a.wav"), "--limit-db", "12",
                 "--quiet"]) == 0
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "b.wav"),
                 "--mix", repr(1 - 10 ** (-12 / 20)), "--quiet"]) == 0
    a, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    np.testing.assert_allclose(a, b, atol=1e-7)
    assert json.loads(sf.SoundFile(tmp_path / "a.wav").comment)["strength"]["limit_db"] == pytest.approx(12)


def test_mix_and_limit_are_mutually_exclusive(tmp_path, wav):
    with pytest.raises(SystemExit):
        main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "x.wav"), "--mix", "0.5", "--limit-db", "3"])


def test_apply_strength_rejects_unaligned():
    with pytest.raises(ValueError):
        apply_strength(np.zeros((10, 1)), np.zeros((11, 1)), 0.5)


# ------------------------------------------------------------------------------------------------ regions
def test_region_changes_only_span_plus_crossfade(speechlike):
    src = ArraySource(speechlike, RATE)
    out = run_to_end(enhance_regions(Halve(), src, [(1.5, 2.0), (3.0, 3.25)], crossfade_s=0.02))
    x = speechlike[:, None]
    xf = int(0.02 * RATE)
    changed = np.zeros(len(x), bool)
    for a, b in ((1.5, 2.0), (3.0, 3.25)):
        s, e = int(a * RATE), int(b * RATE)
        changed[s - xf:e + xf] = True
        np.testing.assert_array_equal(out[s:e], x[s:e] * 0.5)  # inside: the model's output
    np.testing.assert_array_equal(out[~changed], x[~changed])  # outside: bit-identical
    # the crossfade is a raised cosine from original to processed (halfway point at -xf/2)
    s = int(1.5 * RATE)
    mid = out[s - xf // 2, 0] / x[s - xf // 2, 0]
    assert 0.7 < mid < 0.8


class Smooth(Enhancer):
    """Offline test model with a finite receptive field: a 101-tap moving average (about 3 ms each side)."""

    def __init__(self):
        self.info = EnhancerInfo("smooth", "Smooth", "test", RATE, False, 0, processing="offline", any_rate=True)

    def process_offline(self, audio):
        return np.convolve(audio, np.ones(101) / 101, mode="same").astype(np.float32)


def test_region_runs_the_model_with_context(speechlike):
    """Inside the region the result equals a whole-file run: the model saw enough audio around it."""
    src = ArraySource(speechlike, RATE)
    full = Smooth().process_offline(speechlike)
    out = run_to_end(enhance_regions(Smooth(), src, [(2.0, 3.0)], context_s=0.01))
    np.testing.assert_allclose(out[2 * RATE:3 * RATE, 0], full[2 * RATE:3 * RATE], atol=1e-6)
    cut = run_to_end(enhance_regions(Smooth(), src, [(2.0, 3.0)], context_s=0.0, crossfade_s=0.0))
    assert np.abs(cut[2 * RATE, 0] - full[2 * RATE]) > 1e-4  # without context the edge is wrong


def test_cli_region_keeps_the_rest_bit_identical(wav, tmp_path, speechlike):
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "reg.wav"), "--region", "2:3",
                 "--quiet"]) == 0
    reg, _ = sf.read(tmp_path / "reg.wav", dtype="float32")
    xf = int(0.02 * RATE)
    np.testing.assert_array_equal(reg[:2 * RATE - xf], speechlike[:2 * RATE - xf])
    np.testing.assert_array_equal(reg[3 * RATE + xf:], speechlike[3 * RATE + xf:])
    assert np.abs(reg[2 * RATE:3 * RATE] - speechlike[2 * RATE:3 * RATE]).max() > 1e-3
    tag = json.loads(sf.SoundFile(tmp_path / "reg.wav").comment)
    assert tag["kind"] == "region" and tag["parent"] == "original"
    assert tag["extra"] == {"regions_s": [[2.0, 3.0]], "context_s": 1.0, "crossfade_ms": 20.0}


def test_region_outside_file_is_a_clear_error(wav, tmp_path, capsys):
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(tmp_path / "x.wav"), "--region", "3:5"]) == 2
    err = capsys.readouterr().err
    assert "in.wav" in err and "region 3:5 s lies outside the recording" in err
    with pytest.raises(WorkbenchError, match="END must be after START"):
        parse_span("4:2")
    with pytest.raises(WorkbenchError, match="START:END"):
        parse_span("abc")


def test_splice_needs_coverage():
    with pytest.raises(ValueError):
        splice(np.zeros((100, 1), np.float32), np.zeros((10, 1), np.float32), 50, 40, 60, 5)


# ------------------------------------------------------------------------------------------------ repair
BOX = Box(1.5, 2.5, 300.0, 600.0)


@pytest.mark.parametrize("gain_db", [-30.0, -12.0])
def test_repair_attenuates_the_box_by_the_requested_amount(speechlike, gain_db):
    y = spectral_repair(speechlike, RATE, BOX, gain_db=gain_db)
    # Measured on the box's cells; one frame and one bin at each edge are left out, because the STFT's
    # overlap lets the (unchanged) neighbours leak into the box's edge cells when it is analysed again.
    drop = 10 * np.log10(box_energy(y, RATE, BOX, shrink_frames=1, shrink_bins=1)
                         / box_energy(speechlike, RATE, BOX, shrink_frames=1, shrink_bins=1))
    assert drop <= gain_db + 1.0
    assert drop >= gain_db - 1.0


def test_repair_leaves_everything_outside_the_box_alone(speechlike):
    y = spectral_repair(speechlike, RATE, BOX, gain_db=-30.0)
    cfg = repair_stft_config(RATE)
    lo, hi = int(BOX.t0_s * RATE) - cfg.n_fft // 2, int(BOX.t1_s * RATE) + cfg.n_fft // 2 + cfg.hop
    np.testing.assert_array_equal(y[:lo], speechlike[:lo])
    np.testing.assert_array_equal(y[hi:], speechlike[hi:])
    # Inside the span, bins away from the box (beyond the window's main lobe) are unchanged.
    sx, sy = stft(speechlike, cfg), stft(y, cfg)
    k_far = np.fft.rfftfreq(cfg.n_fft, 1 / RATE) > 1000
    diff = np.abs(sy[:, k_far] - sx[:, k_far]) ** 2
    assert diff.sum() / (np.abs(sx[:, k_far]) ** 2).sum() < 1e-8


def test_repair_interpolation_fills_a_burst_from_its_surroundings(rng):
    x = 0.05 * rng.standard_normal(3 * RATE).astype(np.float32)
    t = np.arange(len(x)) / RATE
    burst = (np.abs(t - 1.5) < 0.1) * 0.5 * np.sin(2 * np.pi * 1000 * t)
    noisy = (x + burst).astype(np.float32)
    box = Box(1.38, 1.62, 800, 1200)
    y = spectral_repair(noisy, RATE, box, interpolate=True)
    e_after = box_energy(y, RATE, box, shrink_frames=1, shrink_bins=1)
    e_noise = box_energy(x, RATE, box, shrink_frames=1, shrink_bins=1)
    assert abs(10 * np.log10(e_after / e_noise)) < 2.0  # back to the noise floor around it
    assert box_energy(noisy, RATE, box) > 50 * e_noise
    # phase kept: the repaired cells have the original's phase
    cfg = repair_stft_config(RATE)
    sx, sy = stft(noisy, cfg), stft(y, cfg)
    t0, k0 = int(1.5 * RATE / cfg.hop), int(1000 / (RATE / cfg.n_fft))
    assert abs(np.angle(sy[t0, k0] / sx[t0, k0])) < 0.3


def test_repair_bad_boxes(tmp_path, wav, capsys):
    assert main(["repair", str(wav), "--box", "1.5:1.5:300:600", "--gain-db", "-30", "-o", str(tmp_path / "o.wav")]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["repair", str(wav), "--box", "5:6:300:600", "--gain-db", "-30", "-o", str(tmp_path / "o.wav")]) == 2
    assert "lies outside the recording" in capsys.readouterr().err
    assert main(["repair", str(wav), "--box", "1:2", "--interpolate", "-o", str(tmp_path / "o.wav")]) == 2
    assert "T0:T1:F0:F1" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_repair_cli_writes_provenance_and_refuses_input(tmp_path, wav):
    out = tmp_path / "rep.wav"
    assert main(["repair", str(wav), "--box", "1.5:2.5:300:600", "--gain-db", "-30", "-o", str(out)]) == 0
    tag = json.loads(sf.SoundFile(out).comment)
    assert tag["operation"] == "spectral repair" and tag["method"] == {"gain_db": -30.0}
    before = wav.read_bytes()
    assert main(["repair", str(wav), "--box", "1.5:2.5:300:600", "--gain-db", "-30", "-o", str(wav),
                 "--overwrite"]) == 2
    assert wav.read_bytes() == before


def test_cli_enhance_to_mp3_at_podcast_loudness(tmp_path, wav):
    from workbench.core.audio.loudness import measure
    out = tmp_path / "pod.mp3"
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(out), "--format", "MP3", "--loudness", "-16",
                 "--mix", "0.7", "--quiet"]) == 0
    assert sf.info(out).format == "MP3"
    y, rate = sf.read(out, dtype="float32")
    assert abs(measure(y, rate).lufs - (-16.0)) < 0.5


@pytest.mark.parametrize("suffix,extra", [(".flac", []), (".mp3", ["--format", "MP3"]), (".ogg", ["--format", "OGG"]),
                                          (".wav", ["--loudness", "-16"])])
def test_every_output_container_carries_the_provenance(tmp_path, wav, suffix, extra):
    """Defect: only plain WAV outputs were tagged; FLAC, MP3, Ogg and loudness-normalised outputs came
    without provenance."""
    out = tmp_path / f"p{suffix}"
    assert main(["enhance", str(wav), "-m", "wiener", "-o", str(out), "--mix", "0.6", "--quiet", *extra]) == 0
    tag = json.loads(sf.SoundFile(out).comment)
    assert tag["model_id"] == "wiener" and tag["strength"]["mix"] == pytest.approx(0.6)
    assert tag["input"] == wav.name


def test_the_export_dialog_path_tags_its_outputs(tmp_path, wav):
    from workbench.core.workflows.export import export_version
    from workbench.core.document.recording import Recording
    from workbench.core.enhance.registry import load_enhancer

    rec = Recording(wav)
    (v,) = run_to_end(rec.enhance(load_enhancer("wiener"), [0]))
    for fmt, sub in (("WAV", "PCM_24"), ("MP3", "MPEG_LAYER_III")):
        f = export_version(rec, v, tmp_path, format=fmt, subtype=sub)
        tag = json.loads(sf.SoundFile(f.path).comment)
        assert tag["version"] == v.name and tag["model_id"] == "wiener"
    original = export_version(rec, rec.original, tmp_path / "o", format="FLAC", subtype="PCM_24")
    assert json.loads(sf.SoundFile(original.path).comment)["kind"] == "original"
