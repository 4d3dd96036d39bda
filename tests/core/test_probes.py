"""Model probes: causality, latency, RTF, parameters and MACs, on toy models with known answers and on
the real models (DeepFilterNet3, NSNet2, GTCRN)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from workbench.core.workflows import probes as P
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench_assets import gtcrn_checkpoint_path

SR = 8000


def _info(id, processing, latency=0, block=1, causal=None):
    return EnhancerInfo(id=id, name=id, description="toy", sample_rate=SR, causal=causal, latency_samples=latency,
                        processing=processing, block_samples=block)


class _MovingAverageStream(EnhancerStream):
    def __init__(self, k):
        self.hist = np.zeros(k - 1, np.float32)
        self.k = k

    def process(self, block):
        x = np.concatenate([self.hist, block])
        y = np.convolve(x, np.ones(self.k) / self.k, mode="valid").astype(np.float32)
        self.hist = x[-(self.k - 1):]
        return y


class CausalMovingAverage(Enhancer):
    """y[n] = mean(x[n-15..n]): causal, no delay."""

    def __init__(self):
        self.info = _info("causal-ma", "streaming", 0, 64)

    def new_stream(self):
        return _MovingAverageStream(16)


class CentredConvolution(Enhancer):
    """y = h * x with a centred 65-tap boxcar: looks 32 samples ahead and declares no latency."""

    def __init__(self):
        self.info = _info("centred-conv", "offline", 0, 1)

    def process_offline(self, audio):
        return np.convolve(audio, np.ones(65) / 65, mode="same").astype(np.float32)


class _DelayStream(EnhancerStream):
    def __init__(self, d):
        self.buf = np.zeros(d, np.float32)

    def process(self, block):
        x = np.concatenate([self.buf, block])
        self.buf = x[len(block):]
        return x[:len(block)]


class DelayLine(Enhancer):
    """Streams its input delayed by ``delay`` samples and declares ``declared``."""

    def __init__(self, delay, declared):
        self.delay = delay
        self.info = _info(f"delay-{delay}", "streaming", declared, 32)

    def new_stream(self):
        return _DelayStream(self.delay)


class FrameRNN(nn.Module):
    def __init__(self, frame, bidirectional):
        super().__init__()
        self.frame = frame
        self.rnn = nn.LSTM(frame, 16, batch_first=True, bidirectional=bidirectional)
        self.out = nn.Linear(32 if bidirectional else 16, frame)

    def forward(self, x):  # (n,) with n a multiple of frame
        h, _ = self.rnn(x.reshape(1, -1, self.frame))
        return x + 0.1 * self.out(h).reshape(-1)


class TorchRNNEnhancer(Enhancer):
    """An LSTM over 16-sample frames (block 16): unidirectional = causal within one block;
    bidirectional = every output depends on the whole signal."""

    def __init__(self, bidirectional):
        torch.manual_seed(0)
        self.net = FrameRNN(16, bidirectional).eval()
        self.info = _info("bilstm" if bidirectional else "lstm", "offline", 0, 16)

    def process_offline(self, audio):
        n = len(audio)
        m = -(-n // 16) * 16
        x = torch.zeros(m)
        x[:n] = torch.from_numpy(np.asarray(audio, np.float32))
        with torch.inference_mode():
            return self.net(x)[:n].numpy()


def short_signal(sr, seconds=1.6):
    return P.probe_signal(sr, seconds)


def test_causal_moving_average_has_no_lookahead():
    r = P.probe_causality(CausalMovingAverage(), short_signal(SR), perturb_at_s=1.0)
    assert r.causal and r.lookahead_samples == 0 and not r.reaches_start


def test_centred_convolution_is_flagged():
    r = P.probe_causality(CentredConvolution(), short_signal(SR), perturb_at_s=1.0)
    assert not r.causal
    assert r.lookahead_samples == 32


def test_bidirectional_lstm_is_flagged_and_unidirectional_passes():
    bi = P.probe_causality(TorchRNNEnhancer(True), short_signal(SR), perturb_at_s=1.0)
    # the backward LSTM carries the change back many frames (its memory fades, so not necessarily to the start)
    assert not bi.causal and bi.lookahead_samples > 10 * 16
    uni = P.probe_causality(TorchRNNEnhancer(False), short_signal(SR), perturb_at_s=1.0)
    assert uni.causal and uni.lookahead_samples <= 15


def test_latency_of_a_delay_line():
    raw, residual = P.probe_latency(DelayLine(100, 100))
    assert raw == 100 and residual == 0
    r = P.probe_causality(DelayLine(100, 100), short_signal(SR), perturb_at_s=1.0)
    assert r.causal and r.lookahead_samples == 0    # compensated, a pure delay is the identity
    # a model that under-declares its delay leaves a residual lag in the "aligned" output
    raw, residual = P.probe_latency(DelayLine(100, 60))
    assert raw == 100 and residual == 40


def test_parameters_and_macs_of_a_torch_model():
    enh = TorchRNNEnhancer(True)
    params, how = P.count_parameters(enh)
    lstm = 2 * (4 * 16 * 16 + 4 * 16 * 16 + 2 * 4 * 16)   # two directions: W_ih, W_hh, two biases
    linear = 32 * 16 + 16
    assert params == lstm + linear and "torch" in how
    frames_per_s = SR / 16
    expected = frames_per_s * (2 * 4 * (16 * 16 + 16 * 16) + 32 * 16)
    assert P.count_macs_per_second(enh) == pytest.approx(expected, rel=0.01)
    assert P.count_macs_per_second(CentredConvolution()) is None


def test_parameters_of_modules_held_in_dicts_and_lists_are_counted_once():
    """The probes walk attributes, list items and dict values alike: modules kept by name (a dict of
    stages, a list of dicts) count, a module reachable twice counts once."""
    enh = CentredConvolution()
    shared = nn.Linear(4, 2)                                     # 4 * 2 + 2 = 10
    enh.stages = {"encoder": nn.Linear(3, 4), "again": shared}   # 3 * 4 + 4 = 16
    enh.heads = [{"out": shared}, (nn.Conv1d(1, 1, 5),)]         # 5 + 1 = 6
    assert P.count_parameters(enh) == (16 + 10 + 6, "torch parameters")


def test_onnx_parameter_count_on_dtln(dtln_folder):
    total = sum(P.onnx_parameter_count(p.read_bytes()) for p in sorted(dtln_folder.glob("*.onnx")))
    assert total == pytest.approx(988e3, rel=0.01)   # DTLN paper: 988 k parameters


def test_full_probe_report_on_toy(tmp_path):
    rep = P.probe_enhancer(CentredConvolution(), rtf_runs=1)
    d = rep.to_dict()
    assert d["causal"] is False and d["lookahead_samples"] == 32 and d["latency_samples"] == 32
    assert d["rtf"] > 0 and d["sample_rate"] == SR and d["parameters"] is None
    assert any("declares latency 0" in n for n in rep.notes)
    json.dumps(d)


# ------------------------------------------------------------------------------------------ real models


@pytest.mark.slow
def test_deepfilternet3_is_causal():
    from workbench.core.enhance.registry import load_enhancer

    enh = load_enhancer("deepfilternet3")
    r = P.probe_causality(enh, short_signal(48000, 1.0), perturb_at_s=0.6, phases=2)
    assert r.causal and not r.reaches_start
    assert r.lookahead_samples >= 1440 - 480          # two frames of look-ahead plus framing are really used
    raw, residual = P.probe_latency(enh)
    assert raw == enh.info.latency_samples == 1440 and residual == 0
    params, _ = P.count_parameters(enh)
    assert params == pytest.approx(2.13e6, rel=0.01)  # DeepFilterNet3 paper: 2.13 M


def test_nsnet2_is_causal():
    from workbench.core.enhance.registry import load_enhancer

    enh = load_enhancer("nsnet2-16k")
    r = P.probe_causality(enh, short_signal(16000, 1.0), perturb_at_s=0.6)
    assert r.causal and 0 < r.lookahead_samples <= 319


def _gtcrn(shared_data):
    from workbench.core.enhance.registry import load_enhancer

    path = gtcrn_checkpoint_path("dns3")
    try:
        return load_enhancer(path)
    except Exception:  # the path loader (workbench_models.loaders) may not be in this build yet
        from workbench_models.gtcrn import load_gtcrn_checkpoint
        return load_gtcrn_checkpoint(path)


@pytest.mark.slow
def test_gtcrn_is_causal(shared_data):
    enh = _gtcrn(shared_data)
    # The framing delay of its 512/256 STFT (n_fft - hop), declared for both processing paths.
    assert enh.info.latency_samples == 256
    r = P.probe_causality(enh, short_signal(16000, 1.0), perturb_at_s=0.6, phases=2)
    # 512-point STFT, hop 256: a late change reaches back at most one window, never to the start
    assert r.causal and not r.reaches_start and r.lookahead_samples < 512
    assert P.count_parameters(enh)[0] == pytest.approx(48.2e3, rel=0.01)   # GTCRN paper: 48.2 k
    macs = P.count_macs_per_second(enh, seconds=0.5)
    assert 20e6 < macs < 40e6                        # paper: 33 MMAC/s (counting element-wise ops too)


def test_cli_probe_json(capsys):
    from workbench.cli import main

    assert main(["probe", "-m", "nsnet2-16k", "--json", "--runs", "1"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("causal", "latency_samples", "sample_rate", "rtf", "parameters", "macs_per_second",
                "lookahead_samples", "model"):
        assert key in d
    assert d["causal"] is True and d["sample_rate"] == 16000 and d["model"] == "nsnet2-16k"
    assert d["parameters"] > 1e6 and 0 < d["rtf"] < 1


def test_cli_probe_picks_a_processing_path(capsys):
    """``--processing streaming`` probes DeepFilterNet3's native frame loop: its MACs come from the same
    networks' graphs (about 380 MMAC/s, as on the offline path) and a model with one path is refused in
    one line."""
    from workbench.cli import main

    assert main(["probe", "-m", "deepfilternet3", "--processing", "streaming", "--json", "--runs", "1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["processing"] == "streaming" and d["block_samples"] == 480
    assert 300e6 < d["macs_per_second"] < 460e6
    assert any("offline path" in n for n in d["notes"])
    assert main(["probe", "-m", "wpe-dereverb", "--processing", "streaming"]) == 2
    err = capsys.readouterr().err
    assert "wpe-dereverb" in err and len(err.strip().splitlines()) == 1


def test_cli_probe_unknown_model(capsys):
    from workbench.cli import main

    assert main(["probe", "-m", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err


class _MatmulFrames(nn.Module):
    """Frames of 16 samples times a 16x16 matrix with ``torch.matmul`` (no nn.Linear), then a GRU."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(16) * 0.5)
        self.gru = nn.GRU(16, 8, batch_first=True)

    def forward(self, x):
        frames = x.reshape(1, -1, 16) @ self.weight
        h, _ = self.gru(frames)
        return (frames.sum(-1, keepdim=True) * 0 + x.reshape(1, -1, 16) + 0.0 * h.sum()).reshape(-1)


class MatmulEnhancer(TorchRNNEnhancer):
    def __init__(self):
        self.net = _MatmulFrames().eval()
        self.info = _info("matmul", "offline", 0, 16)


def test_macs_count_every_matrix_product_and_recurrent_layer():
    """PyTorch's FlopCounterMode sees products that are not nn.Linear/Conv modules (forward hooks did not),
    and the GRU's gates: per 16-sample frame 16·16 (matmul) + 3·8·(16 + 8) (GRU)."""
    frames_per_s = SR / 16
    expected = frames_per_s * (16 * 16 + 3 * 8 * (16 + 8))
    assert P.count_macs_per_second(MatmulEnhancer()) == pytest.approx(expected, rel=0.01)


class OnnxMatmulEnhancer(Enhancer):
    """An onnxruntime graph ``frames (N, 16) @ W (16, 16)`` over 16-sample frames: 256 MACs per frame."""

    def __init__(self):
        import onnx
        import onnxruntime as ort
        from onnx import helper
        w = helper.make_tensor("W", onnx.TensorProto.FLOAT, [16, 16], (0.5 * np.eye(16)).reshape(-1).tolist())
        graph = helper.make_graph([helper.make_node("MatMul", ["frames", "W"], ["out"])], "g",
                                  [helper.make_tensor_value_info("frames", onnx.TensorProto.FLOAT, ["N", 16])],
                                  [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["N", 16])],
                                  initializer=[w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self.info = _info("onnx-matmul", "offline", 0, 16)

    def process_offline(self, audio):
        n = len(audio)
        m = -(-n // 16) * 16
        x = np.zeros(m, np.float32)
        x[:n] = audio
        return 2 * self.session.run(None, {"frames": x.reshape(-1, 16)})[0].reshape(-1)[:n]


def test_onnx_macs_are_counted_from_the_calls_a_run_makes():
    enh = OnnxMatmulEnhancer()
    assert P.count_macs_per_second(enh) is None                       # no torch module
    assert P.count_onnx_macs_per_second(enh) == pytest.approx(SR / 16 * 256, rel=0.01)
    assert enh.session.run.__func__ is not None                        # the session's run is restored
    assert "run" not in vars(enh.session)


class _NativeFramesStream(EnhancerStream):
    """Stands for a C library's frame loop: the same product as the graph, done without any session
    (blocks are whole 16-sample frames, as ``block_samples`` promises)."""

    def __init__(self, weight):
        self.weight = weight

    def process(self, block):
        return 2 * (block.reshape(-1, 16) @ self.weight).reshape(-1)


class TwoPathMatmulEnhancer(OnnxMatmulEnhancer):
    """Offline on the ONNX graph (default streaming: a 'native' loop with no graph to count)."""

    def __init__(self):
        super().__init__()
        self.info = EnhancerInfo(id="two-path", name="two-path", description="toy", sample_rate=SR,
                                 causal=True, latency_samples=0, processing="streaming", block_samples=16,
                                 processing_paths=("streaming", "offline"))

    def new_stream(self):
        return _NativeFramesStream(0.5 * np.eye(16, dtype=np.float32))


def test_a_native_path_gets_the_macs_of_its_model_s_other_path():
    """The probe of a path run by a native library (nothing to count) reports the MACs counted on the
    same model's other path, and says so; before, it reported none."""
    enh = TwoPathMatmulEnhancer()
    assert P.count_onnx_macs_per_second(enh) is None            # the streaming path runs no session
    report = P.run_to_end(P.probe(enh, rtf_runs=1))
    assert report.macs_per_second == pytest.approx(SR / 16 * 256, rel=0.01)
    assert any("counted on the offline path" in n for n in report.notes)
