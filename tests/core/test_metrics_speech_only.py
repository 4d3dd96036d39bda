"""Metrics over speech only: the measurement key names the mode, the VAD settings and what the spans were
found on; on a recording with long pauses the speech-only figures differ from the whole-file ones and equal
the figures of the speech cut out by hand; ``workbench evaluate --speech-only`` (and ``batch evaluate``)
label and compute them the same way."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.document.recording import Recording
from workbench.core.measure.scoring import (INTRUSIVE, NON_INTRUSIVE, measurement_settings, score_signal,
                                            score_versions, speech_only, speech_settings)
from workbench.core.measure.vad import VadSettings, detect_speech
from workbench.core.progress import run_to_end

SR = 16000
LEAD_S, TAIL_S = 3.0, 4.0


def pair_with_long_pauses(shared_data):
    """``(noisy, clean)`` at 16 kHz: 3 s of silence, the 5 s DNS sentence 0015, 4 s of silence; the noisy
    one carries that clip's own recorded noise (its noisy minus its clean file) throughout, pauses included."""
    clean, sr = sf.read(shared_data / "dns3/0015_clean.wav", dtype="float32")
    noisy, _ = sf.read(shared_data / "dns3/0015_noisy.wav", dtype="float32")
    assert sr == SR
    noise = noisy - clean
    long_clean = np.concatenate([np.zeros(int(LEAD_S * SR), np.float32), clean,
                                 np.zeros(int(TAIL_S * SR), np.float32)])
    long_noise = np.resize(noise, len(long_clean))   # the noise repeated over the whole length
    return (long_clean + long_noise).astype(np.float32), long_clean


@pytest.fixture(scope="module")
def long_pair(shared_data, tmp_path_factory):
    noisy, clean = pair_with_long_pauses(shared_data)
    folder = tmp_path_factory.mktemp("pauses")
    sf.write(folder / "pauses_noisy.wav", noisy, SR, subtype="FLOAT")
    sf.write(folder / "pauses_clean.wav", clean, SR, subtype="FLOAT")
    return folder, noisy, clean


def test_the_key_names_the_mode_the_vad_settings_and_what_the_spans_were_found_on():
    whole = measurement_settings(INTRUSIVE)
    # the whole-file key is the one sessions saved before the speech-only mode existed
    assert whole == "intrusive:pesq_wb,pesq_nb,stoi,estoi,si_sdr,sdr,snr,seg_snr,lsd,cepstral_distance,mae,mse," \
                    "ccmse,mrstft"
    assert measurement_settings(NON_INTRUSIVE) == "dnsmos:dnsmos_sig,dnsmos_bak,dnsmos_ovrl,dnsmos_p808"
    speech = measurement_settings(INTRUSIVE, speech_settings(VadSettings(), "reference:abc"))
    keys = {whole, speech,
            measurement_settings(INTRUSIVE, speech_settings(VadSettings(threshold=0.6), "reference:abc")),
            measurement_settings(INTRUSIVE, speech_settings(VadSettings(min_pause_ms=300), "reference:abc")),
            measurement_settings(INTRUSIVE, speech_settings(VadSettings(), "reference:abd")),
            measurement_settings(INTRUSIVE, speech_settings(VadSettings(), "original:abc"))}
    assert len(keys) == 6 and speech.startswith(whole + "|speech-only:")


def test_speech_only_figures_differ_from_the_whole_file_and_equal_the_speech_cut_by_hand(long_pair):
    folder, noisy, clean = long_pair
    vad = run_to_end(detect_speech(clean, SR))
    # the sentence (with its own short pauses) lies between the two long silences
    assert vad.spans[0][0] >= LEAD_S - 0.1 and vad.spans[-1][1] <= LEAD_S + 5.0 + 0.1
    assert 3.0 < vad.speech_s < 5.1
    original = Recording(folder / "pauses_noisy.wav").original
    keys = ["si_sdr", "seg_snr", "stoi"]
    whole = run_to_end(score_versions([original], clean, SR, metrics=keys, reference_free=True))["original"]
    only = run_to_end(score_versions([original], clean, SR, metrics=keys, reference_free=True,
                                     speech_spans=vad.spans))["original"]
    # noise alone in 7 s of pauses drags the whole-file figures down; over the speech they are higher
    assert only.metrics["si_sdr"].value > whole.metrics["si_sdr"].value + 3
    assert only.metrics["seg_snr"].value > whole.metrics["seg_snr"].value + 3
    # the reference-free metrics are cut too: DNSMOS hears less noise-only audio
    assert only.metrics["dnsmos_bak"].value != pytest.approx(whole.metrics["dnsmos_bak"].value, abs=0.05)
    by_hand = score_signal(speech_only(noisy, SR, vad.spans), SR, speech_only(clean, SR, vad.spans), SR,
                           metrics=keys)
    for k in keys + ["dnsmos_ovrl", "dnsmos_bak"]:
        assert only.metrics[k].value == pytest.approx(by_hand.metrics[k].value, abs=1e-9), k


def _values(path):
    from workbench.core.workflows.evaluation import read_csv

    return {(r["model"], r["metric"]): r["value"] for r in read_csv(path) if r["metric"] != "warning"}


def test_evaluate_speech_only_is_labelled_and_scores_the_speech(long_pair, tmp_path, capsys):
    folder, noisy, clean = long_pair
    common = [str(folder), "--no-reference-free", "--metrics", "si_sdr,seg_snr"]
    assert main(["evaluate", *common, "--csv", str(tmp_path / "whole.csv")]) == 0
    assert main(["evaluate", *common, "--speech-only", "--csv", str(tmp_path / "speech.csv")]) == 0
    err = capsys.readouterr().err
    assert "speech only" in err and "threshold 0.5" in err
    whole, speech = _values(tmp_path / "whole.csv"), _values(tmp_path / "speech.csv")
    assert speech[("noisy", "si_sdr")] > whole[("noisy", "si_sdr")] + 3
    from workbench.core.workflows.evaluation import read_csv

    warnings = [r["reason"] for r in read_csv(tmp_path / "speech.csv") if r["metric"] == "warning"]
    assert any("metrics over speech only" in w for w in warnings)
    assert not any("speech only" in r["reason"] for r in read_csv(tmp_path / "whole.csv"))
    # the same numbers from the batch driver, which records the mode in its manifest
    assert main(["batch", "evaluate", *common, "--speech-only", "--csv", str(tmp_path / "batch.csv"),
                 "--workers", "0", "--quiet"]) == 0
    batch = _values(tmp_path / "batch.csv")
    assert batch.keys() == speech.keys()
    assert all(batch[k] == pytest.approx(speech[k], rel=1e-9) for k in speech)
    import json

    header = json.loads((tmp_path / "batch.csv.manifest.jsonl").read_text().splitlines()[0])
    assert header["settings"]["speech_only"]["threshold"] == 0.5
    # an impossible threshold is refused in one line
    assert main(["evaluate", *common, "--speech-only", "--vad-threshold", "1.5",
                 "--csv", str(tmp_path / "bad.csv")]) == 2
    assert "--speech-only: VAD threshold must be between 0 and 1" in capsys.readouterr().err
