"""A model's output does not depend on how many threads run it (the default follows the machine's load)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array
from workbench_models import deepfilternet as dfn
from workbench_models import nsnet2


def test_deepfilternet3_offline_output_is_the_same_on_one_or_two_threads(shared_data, monkeypatch):
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 3 * sr]
    outs = []
    for threads in ("1", "2"):
        monkeypatch.setenv("WORKBENCH_THREADS", threads)
        model = dfn.DeepFilterNet3()
        outs.append(enhance_array(model, x, sr))
        assert model._networks()._sessions[dfn.JOINED].get_session_options().intra_op_num_threads == int(threads)
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)
    assert np.max(np.abs(outs[0])) > 0.01


def test_nsnet2_output_is_the_same_on_one_or_two_threads(shared_data):
    x, sr = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")
    outs = []
    for threads in (1, 2):
        model = nsnet2.NSNet2(16000, threads=threads)
        assert model.session.get_session_options().intra_op_num_threads == threads
        outs.append(enhance_array(model, x, sr))
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)


def test_the_default_takes_the_policys_count(monkeypatch):
    for var in ("WORKBENCH_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(nsnet2, "auto_threads", lambda limit=None: min(2, limit or 2))
    assert nsnet2.NSNet2(16000).session.get_session_options().intra_op_num_threads == 2
    monkeypatch.setattr(nsnet2, "auto_threads", lambda limit=None: 1)
    assert nsnet2.NSNet2(16000).session.get_session_options().intra_op_num_threads == 1
