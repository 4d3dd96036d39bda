"""DeepFilterNet3 through the engine equals libDF's own frame loop, and improves PESQ-WB on dns3."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array
from workbench_models import deepfilternet as dfn


def native_frame_loop(x48: np.ndarray) -> np.ndarray:
    """Reference: drive libDF directly, one 480-sample hop per df_process_frame call, zero-padded tail."""
    lib_path, model = dfn.runtime_files()
    lib = ctypes.CDLL(str(lib_path))
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_free.argtypes = [ctypes.c_void_p]
    state = lib.df_create(str(model).encode(), 100.0, None)
    n_frames = -(-(len(x48) + dfn.LATENCY_SAMPLES) // 480)
    padded = np.zeros(n_frames * 480, np.float32)
    padded[:len(x48)] = x48
    out = np.zeros_like(padded)
    fp = ctypes.POINTER(ctypes.c_float)
    try:
        for i in range(n_frames):
            frame_in = np.ascontiguousarray(padded[i * 480:(i + 1) * 480])
            frame_out = np.zeros(480, np.float32)
            lib.df_process_frame(state, frame_in.ctypes.data_as(fp), frame_out.ctypes.data_as(fp))
            out[i * 480:(i + 1) * 480] = frame_out
    finally:
        lib.df_free(state)
    return out


@pytest.fixture(scope="module")
def model():
    return dfn.DeepFilterNet3()


def test_engine_equals_native_frame_loop_after_known_delay(shared_data, model):
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 3 * sr]
    assert sr == 48000
    ref = native_frame_loop(x)
    y = enhance_array(model, x, 48000, block_s=0.37, processing="streaming")  # blocks: not a divisor
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, ref[dfn.LATENCY_SAMPLES:dfn.LATENCY_SAMPLES + len(x)])


def test_latency_is_1440_samples(shared_data, model):
    """Cross-correlation of the raw native output with its input peaks at the declared delay."""
    x, _ = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 4 * 48000]
    raw = native_frame_loop(x)[: len(x)]
    n = 1 << 20
    r = np.fft.irfft(np.fft.rfft(raw, n) * np.conj(np.fft.rfft(x, n)), n)
    assert int(np.argmax(r)) == dfn.LATENCY_SAMPLES == 1440
    assert model.info.latency_samples == 1440 and model.info.block_samples == 480


def test_pesq_improves_on_every_dns3_clip(run_on_dns3, model):
    """16 kHz input -> the engine resamples to 48 kHz and back; aligned output beats the noisy input."""
    for r in run_on_dns3(model):
        assert r.enhanced.shape == r.noisy.shape and np.all(np.isfinite(r.enhanced))
        print(f"DFN3 {r.clip}: PESQ-WB {r.pesq_noisy:.2f} -> {r.pesq_enhanced:.2f}")
        assert r.pesq_enhanced > r.pesq_noisy + 0.1, r.clip
        assert r.lag == 0, r.clip


def test_stream_frees_native_state():
    stream = dfn.DeepFilterNet3().new_stream()
    stream.close()
    stream.close()  # idempotent
    assert stream._state is None


def test_parameter_count_matches_the_paper():
    """Counted from the bundled ONNX graphs; the DeepFilterNet3 paper reports 2.13 M parameters."""
    assert 2.10e6 < dfn.info().parameters < 2.16e6


def _fidelity_clips(shared_data):
    """Every noisy clip in ../shared/data: dns3, real and pesq at 16 kHz, dfn at 48 kHz, plus a 48 kHz copy
    of one dns3 clip so both rates are covered by speech with a clean reference."""
    import soxr
    paths = [p for folder in ("dns3", "real", "pesq", "dfn") for p in sorted((shared_data / folder).glob("*.wav"))
             if not p.stem.endswith(("_GTCRN", "_RNNoise", "_clean")) and not p.name.startswith(("rir_", "clean_", "noise_"))]
    for p in paths:
        x, sr = sf.read(p, dtype="float32")
        yield p.name, (x if x.ndim == 1 else x[:, 0]), sr
    x, sr = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")
    yield "0015_noisy@48k", soxr.resample(x, sr, 48000).astype(np.float32), 48000


@pytest.mark.slow
def test_offline_path_equals_native_frame_loop_on_every_clip(shared_data, model):
    """The ONNX offline path (the default) against libDF's frame loop (streaming path), both through the
    engine: lag 0, correlation >= 0.999, PESQ-WB within 0.02, at 16 and 48 kHz."""
    from pesq import pesq
    import soxr
    assert model.info.processing == "offline" and model.info.paths == ("offline", "streaming")
    rates = set()
    for name, x, sr in _fidelity_clips(shared_data):
        y_off = enhance_array(model, x, sr)
        y_str = enhance_array(model, x, sr, processing="streaming")
        assert y_off.shape == y_str.shape == x.shape, name
        n = 1 << int(np.ceil(np.log2(2 * len(x))))
        r = np.fft.irfft(np.fft.rfft(y_off, n) * np.conj(np.fft.rfft(y_str, n)), n)
        assert int(np.argmax(r)) == 0, name
        corr = float(np.corrcoef(y_off, y_str)[0, 1])
        assert corr >= 0.999, (name, corr)
        ref = x if sr == 16000 else soxr.resample(x, sr, 16000)
        a, b = (v if sr == 16000 else soxr.resample(v, sr, 16000) for v in (y_off, y_str))
        assert abs(pesq(16000, ref, a, "wb") - pesq(16000, ref, b, "wb")) <= 0.02, name
        if sr == 48000:  # no resampling in either path: the two agree to float rounding
            assert np.max(np.abs(y_off - y_str)) < 1e-5, name
        rates.add(sr)
    assert rates == {16000, 48000}


def test_offline_path_equals_raw_native_output_sample_for_sample(shared_data, model):
    """At 48 kHz the offline path is the native loop's output with its 1440-sample delay removed."""
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 3 * sr]
    ref = native_frame_loop(x)[dfn.LATENCY_SAMPLES:dfn.LATENCY_SAMPLES + len(x)]
    y = enhance_array(model, x, 48000)
    np.testing.assert_allclose(y, ref, atol=1e-5)


def worst_block_db(a: np.ndarray, b: np.ndarray, block: int) -> float:
    """Largest per-block energy of ``a - b`` relative to the block's energy of ``b`` (dB), over blocks
    where ``b`` is not silent: a seam shows up here even when the whole-file figure hides it."""
    worst = -np.inf
    for i in range(0, len(b) - block + 1, block):
        ref = float(np.sum(b[i:i + block].astype(np.float64) ** 2))
        if ref > 1e-6 * block:
            diff = float(np.sum((a[i:i + block] - b[i:i + block]).astype(np.float64) ** 2))
            worst = max(worst, 10 * np.log10(max(diff, 1e-30) / ref))
    return worst


@pytest.mark.parametrize("rate", [48000, 16000])
def test_offline_chunk_seams_equal_one_piece(shared_data, rate):
    """The offline path carries every state across chunks: 0.25 s chunks (about 40 seams on 10.6 s) give
    the whole-file run to float rounding, and the native frame loop stays 40 dB below in every 1 s block."""
    import soxr
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    if rate != sr:
        x = soxr.resample(x, sr, rate).astype(np.float32)
    whole = dfn.DeepFilterNet3()
    whole.chunk_s = 100.0
    chunked = dfn.DeepFilterNet3()
    chunked.chunk_s = 0.25
    a, b = enhance_array(whole, x, rate), enhance_array(chunked, x, rate)
    assert a.shape == b.shape == x.shape
    assert np.max(np.abs(a - b)) < 1e-4
    assert worst_block_db(b, a, rate) < -60
    if rate == sr:  # the frame loop costs real time; once is enough
        native = enhance_array(chunked, x, rate, processing="streaming")
        assert worst_block_db(b, native, rate) < -40


def test_streaming_runs_start_from_a_fresh_native_state_each_time(shared_data, model):
    """States come from a process-wide pool (created ahead, freed after use): every run equals a fresh
    frame loop, however many runs came before."""
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    x = x[: 2 * sr]
    ref = native_frame_loop(x)[dfn.LATENCY_SAMPLES:dfn.LATENCY_SAMPLES + len(x)]
    for _ in range(3):
        np.testing.assert_array_equal(enhance_array(model, x, sr, processing="streaming"), ref)
    stereo = np.stack([x, x[::-1]], axis=1)
    y = enhance_array(model, stereo, sr, processing="streaming")
    np.testing.assert_array_equal(y[:, 0], ref)


def test_grouped_linear_rewrite_keeps_every_network_output():
    """The offline path runs the wheel's graphs with their grouped-linear Einsums rewritten as MatMuls:
    no such Einsum is left, and every output of all three networks equals the untouched graph's on
    speech-like features of 3 s (300 frames)."""
    import onnx
    import onnxruntime as ort

    config, graphs = dfn.model_archive()
    rng = np.random.default_rng(3)
    t = 300
    feeds = {"enc": {"feat_erb": (rng.standard_normal((1, 1, t, config.nb_erb)) * 0.3).astype(np.float32),
                     "feat_spec": (rng.standard_normal((1, 2, t, config.nb_df)) * 0.3).astype(np.float32)}}
    rewritten = {name: dfn.grouped_linear_as_matmul(blob) for name, blob in graphs.items()}
    total = 0
    for name, blob in graphs.items():
        before = [n for n in onnx.load_from_string(blob).graph.node if n.op_type == "Einsum"]
        after = [n for n in onnx.load_from_string(rewritten[name]).graph.node if n.op_type == "Einsum"]
        assert before and not after, name
        total += len(before)
    assert total == 8

    def run(blobs):
        s = {n: ort.InferenceSession(b, providers=["CPUExecutionProvider"]) for n, b in blobs.items()}
        enc = dict(zip([o.name for o in s["enc"].get_outputs()], s["enc"].run(None, feeds["enc"])))
        erb = s["erb_dec"].run(None, {k: enc[k] for k in ("emb", "e3", "e2", "e1", "e0")})
        df = s["df_dec"].run(None, {k: enc[k] for k in ("emb", "c0")})
        return list(enc.values()) + erb + df

    for a, b in zip(run(graphs), run(rewritten)):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_time_convolution_as_taps_keeps_the_deep_filter_decoder_output():
    """The deep-filter decoder's convolution over time (kernel 5 x 1, two groups) runs as one pointwise
    convolution and five shifted slices added: no time-kernel convolution is left, and the coefficients
    equal the untouched graph's on encoder outputs of speech-like features of 3 s, from rest and with a
    carried context (the chunked path's graph)."""
    import onnx
    import onnxruntime as ort

    from workbench_models.onnx_state import stateful_graph

    config, graphs = dfn.model_archive()
    rng = np.random.default_rng(5)
    t = 300
    feats = {"feat_erb": (rng.standard_normal((1, 1, t, config.nb_erb)) * 0.3).astype(np.float32),
             "feat_spec": (rng.standard_normal((1, 2, t, config.nb_df)) * 0.3).astype(np.float32)}
    enc_s = ort.InferenceSession(graphs["enc"], providers=["CPUExecutionProvider"])
    enc = dict(zip([o.name for o in enc_s.get_outputs()], enc_s.run(None, feats)))

    def time_kernels(blob):
        return [n.name for n in onnx.load_from_string(blob).graph.node if n.op_type == "Conv"
                and [a.ints for a in n.attribute if a.name == "kernel_shape"][0][0] > 1]

    plain = dfn.grouped_linear_as_matmul(graphs["df_dec"])
    carried, _, _ = stateful_graph(plain)
    context = (rng.standard_normal((1, 64, 4, config.nb_df)) * 0.3).astype(np.float32)
    for blob, extra in ((plain, {}), (carried, {"ctx:c0": context})):
        taps = dfn.time_conv_as_taps(blob)
        assert time_kernels(blob) and not time_kernels(taps)
        feeds = {"emb": enc["emb"], "c0": enc["c0"], **extra}
        for name in ("h0:/df_gru/gru/GRU", "h0:/df_gru/gru/GRU_1"):
            if extra:
                feeds[name] = np.zeros((1, 1, 256), np.float32)
        before, after = (ort.InferenceSession(b, providers=["CPUExecutionProvider"]).run(["coefs"], feeds)[0]
                         for b in (blob, taps))
        assert before.shape == after.shape == (1, t, config.nb_df, config.df_order * 2)
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)


def test_joined_networks_equal_the_three_over_consecutive_chunks():
    """The chunked path runs encoder and both decoders as one graph whose decoder context of ``c0`` is a
    carried state: over three consecutive chunks (the second shorter than that context, so the third
    one's context reaches back into the first) it returns the gains, coefficients and LSNR of the three
    separate stateful networks fed the way the chunked path fed them before."""
    import onnxruntime as ort

    from workbench_models.onnx_state import stateful_graph

    config, graphs = dfn.model_archive()
    made = {n: stateful_graph(dfn.grouped_linear_as_matmul(b)) for n, b in graphs.items()}
    (joined_blob, joined_inputs, joined_carried), = dfn.joined_networks(dict(made)).values()
    assert "ctx:df_dec/c0" in joined_carried.values()
    sessions = {n: ort.InferenceSession(b, providers=["CPUExecutionProvider"]) for n, (b, _, _) in made.items()}
    joined = ort.InferenceSession(joined_blob, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    zeros = {n: {k: np.zeros(v, np.float32) for k, v in inputs.items()} for n, (_, inputs, _) in made.items()}
    separate = {n: {k: v for k, v in z.items() if k.startswith("h0:")} for n, z in zeros.items()}
    carried_j = {k: np.zeros(joined_inputs[k], np.float32) for k in joined_carried.values()}
    past = {"feat_erb": zeros["enc"]["ctx:feat_erb"], "feat_spec": zeros["enc"]["ctx:feat_spec"],
            "c0": zeros["df_dec"]["ctx:c0"]}
    for t in (50, 3, 20):
        feats = {"feat_erb": (rng.standard_normal((1, 1, t, config.nb_erb)) * 0.3).astype(np.float32),
                 "feat_spec": (rng.standard_normal((1, 2, t, config.nb_df)) * 0.3).astype(np.float32)}
        ctx = {f"ctx:{k}": past[k] for k in ("feat_erb", "feat_spec")}

        def run(name, feeds):
            s = sessions[name]
            out = dict(zip([o.name for o in s.get_outputs()], s.run(None, {**feeds, **separate[name]})))
            for state_out, state_in in made[name][2].items():
                separate[name][state_in] = out[state_out]
            return out

        enc = run("enc", {**feats, **ctx})
        m = run("erb_dec", {k: enc[k] for k in ("emb", "e3", "e2", "e1", "e0")})["m"]
        coefs = run("df_dec", {"emb": enc["emb"], "c0": enc["c0"], "ctx:c0": past["c0"]})["coefs"]
        got = dict(zip([o.name for o in joined.get_outputs()], joined.run(None, {**feats, **ctx, **carried_j})))
        for state_out, state_in in joined_carried.items():
            carried_j[state_in] = got[state_out]
        for a, b in ((got["erb_dec/m"], m), (got["df_dec/coefs"], coefs), (got["lsnr"], enc["lsnr"])):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        for k, frames in (("feat_erb", feats["feat_erb"]), ("feat_spec", feats["feat_spec"]), ("c0", enc["c0"])):
            past[k] = np.concatenate([past[k], frames], axis=2)[:, :, -past[k].shape[2]:]


def test_input_conv_as_dense_keeps_every_encoder_output():
    """The encoder's two-group convolution on the real and imaginary planes runs ungrouped with zero
    weights across the groups: it is the only convolution changed (the depthwise ones stay grouped), and
    every encoder output equals the untouched graph's on speech-like features of 3 s."""
    import onnx
    import onnxruntime as ort

    config, graphs = dfn.model_archive()
    rng = np.random.default_rng(11)
    t = 300
    feeds = {"feat_erb": (rng.standard_normal((1, 1, t, config.nb_erb)) * 0.3).astype(np.float32),
             "feat_spec": (rng.standard_normal((1, 2, t, config.nb_df)) * 0.3).astype(np.float32)}
    dense = dfn.input_conv_as_dense(graphs["enc"])

    def groups(blob):
        return {n.name: next((a.i for a in n.attribute if a.name == "group"), 1)
                for n in onnx.load_from_string(blob).graph.node if n.op_type == "Conv"}

    before, after = groups(graphs["enc"]), groups(dense)
    assert {k for k in before if before[k] != after[k]} == {"/df_conv0/1/Conv"} and after["/df_conv0/1/Conv"] == 1
    assert before["/df_conv1/Conv"] == after["/df_conv1/Conv"] == 64
    outs = [ort.InferenceSession(b, providers=["CPUExecutionProvider"]).run(None, feeds) for b in (graphs["enc"], dense)]
    for a, b in zip(*outs):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
