"""The training config's recording-noise fields: written and read back, and one-line errors (no torch needed)."""

from __future__ import annotations

import pytest

from workbench.core.errors import WorkbenchError
from workbench.core.workflows.train_config import TrainConfig, read_config, write_config


def test_recording_spans_round_trip_through_toml(tmp_path):
    cfg = TrainConfig.from_dict({"run": {"out_dir": "run"},
                                 "data": {"clean": ["speech"], "noise_recording": "talk.wav",
                                          "noise_spans_s": [[0.5, 1.25], [3, 4.5]]}}, base_dir=tmp_path)
    back = read_config(write_config(cfg, tmp_path / "c.toml"))
    assert back.data.noise_recording == "talk.wav" and back.data.noise_spans_s == [[0.5, 1.25], [3, 4.5]]
    assert back.data.noise == [] and not back.data.noise_from_pauses
    pauses = TrainConfig.from_dict({"data": {"clean": ["s"], "noise_recording": "t.wav", "noise_from_pauses": True}})
    assert pauses.data.noise_from_pauses and pauses.data.noise_spans_s == []


@pytest.mark.parametrize("data,text", [
    ({"clean": ["s"]}, "needs a pairs folder, or clean and noise folders"),
    ({"clean": ["s"], "noise_recording": "t.wav"}, "needs either noise_spans_s or noise_from_pauses"),
    ({"clean": ["s"], "noise_recording": "t.wav", "noise_spans_s": [[2.0, 1.0]]}, "is not a span"),
    ({"clean": ["s"], "noise_recording": "t.wav", "noise_spans_s": [[-1.0, 1.0]]}, "is not a span"),
    ({"clean": ["s"], "noise_recording": "t.wav", "noise_spans_s": [[0.0]]}, "is not a span"),
    ({"clean": ["s"], "noise_recording": "t.wav", "noise_spans_s": ["0-1"]}, "is not a span"),
    ({"clean": ["s"], "noise_recording": "t.wav", "noise_spans_s": [[0, 1]], "noise_from_pauses": True}, "not both"),
    ({"clean": ["s"], "noise": ["n"], "noise_from_pauses": True}, "need a noise_recording"),
])
def test_recording_span_errors_are_one_line(data, text):
    with pytest.raises(WorkbenchError, match=text) as err:
        TrainConfig.from_dict({"data": data})
    assert "\n" not in str(err.value)
