"""Speech activity with Silero VAD: probabilities equal the package's own wrapper, spans follow the
settings, the CLI writes Audacity labels, CSV and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from workbench.cli import main
from workbench.core.progress import run_to_end
from workbench.core.measure.vad import (HOP_S, VadSettings, detect_speech, model_file, non_speech_spans,
                                        speech_probabilities, speech_spans)


@pytest.fixture(scope="module")
def pauses_and_speech(shared_data):
    """1 s of quiet noise, 1.7 s of speech, 1.5 s of quiet noise, 1.4 s of speech, 1 s of quiet noise
    (speech 1.0-2.7 s and 4.2-5.6 s)."""
    speech, sr = sf.read(shared_data / "dns3" / "0016_clean.wav", dtype="float32")
    rng = np.random.default_rng(0)
    quiet = lambda s: rng.normal(0, 1e-3, int(s * sr)).astype(np.float32)  # noqa: E731
    first, second = speech[int(0.2 * sr): int(1.9 * sr)], speech[int(2.9 * sr): int(4.3 * sr)]
    return np.concatenate([quiet(1.0), first, quiet(1.5), second, quiet(1.0)]), sr


def test_probabilities_match_the_package(pauses_and_speech):
    torch = pytest.importorskip("torch")
    from silero_vad.utils_vad import OnnxWrapper

    audio, sr = pauses_and_speech
    ours = run_to_end(speech_probabilities(audio[: 2 * sr], sr))
    wrapper = OnnxWrapper(str(model_file()), force_onnx_cpu=True)
    x = torch.from_numpy(np.concatenate([audio[: 2 * sr], np.zeros(-len(audio[: 2 * sr]) % 512, np.float32)]))
    theirs = np.array([wrapper(x[i:i + 512][None], sr).item() for i in range(0, len(x), 512)])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_spans_cover_the_speech(pauses_and_speech):
    audio, sr = pauses_and_speech
    result = run_to_end(detect_speech(audio, sr))
    assert len(result.spans) >= 2
    assert all(0.8 <= a and b <= 2.9 or 4.0 <= a and b <= 5.8 for a, b in result.spans), result.spans
    covered = sum(min(b, 2.7) - max(a, 1.0) for a, b in result.spans if b > 1.0 and a < 2.7)
    assert covered > 1.4  # most of the first speech part
    assert any(a <= 2.9 and b >= 4.0 for a, b in result.pauses)  # the 1.5 s pause is non-speech
    stricter = run_to_end(detect_speech(audio, sr, VadSettings(threshold=0.95)))
    assert stricter.speech_s < result.speech_s


def test_span_rules():
    p = np.zeros(100, np.float32)
    p[10:60] = 0.9           # 1.6 s of speech ...
    p[42:44] = 0.0           # ... with a 64 ms dip: shorter than the 100 ms minimum pause
    p[80:82] = 0.9           # 64 ms: shorter than 250 ms minimum speech
    spans = speech_spans(p, 100 * HOP_S, VadSettings(pad_ms=0))
    assert spans == [(round(10 * HOP_S, 6), round(60 * HOP_S, 6))]
    assert len(speech_spans(p, 100 * HOP_S, VadSettings(min_pause_ms=50, pad_ms=0))) == 2
    assert non_speech_spans([(1.0, 2.0)], 3.0) == [(0.0, 1.0), (2.0, 3.0)]
    with pytest.raises(ValueError, match="threshold"):
        speech_spans(p, 1.0, VadSettings(threshold=1.5))


def test_cli_writes_labels_csv_json(tmp_path, pauses_and_speech, capsys):
    audio, sr = pauses_and_speech
    src = tmp_path / "x.wav"
    sf.write(src, audio, sr)
    labels = tmp_path / "x.txt"
    assert main(["vad", str(src), "--labels", str(labels)]) == 0
    lines = labels.read_text().splitlines()
    assert lines and all(len(line.split("\t")) == 3 and line.endswith("\tspeech") for line in lines)
    start, end, _ = lines[0].split("\t")
    assert 0.8 < float(start) < float(end)
    assert main(["vad", str(src), "--csv", str(tmp_path / "x.csv")]) == 0
    assert (tmp_path / "x.csv").read_text().startswith("start_s,end_s,duration_s\n")
    assert main(["vad", str(src), "--json", str(tmp_path / "x.json"), "--threshold", "0.6"]) == 0
    data = json.loads((tmp_path / "x.json").read_text())
    assert data["settings"]["threshold"] == 0.6 and data["spans"] and len(data["probabilities"]) > 100
    assert main(["vad", str(src), "--labels", str(labels)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_scores_over_speech_spans_only(pauses_and_speech):
    from workbench.core.measure.scoring import speech_only

    audio, sr = pauses_and_speech
    spans = [(1.0, 2.0), (4.5, 5.0)]
    kept = speech_only(audio, sr, spans)
    assert len(kept) == int(1.5 * sr)
    np.testing.assert_array_equal(kept[:sr], audio[sr:2 * sr])
