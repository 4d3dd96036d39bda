"""DeepFilterNet-family export folders (``enc.onnx``, ``erb_dec.onnx``, ``df_dec.onnx``, ``config.ini``):
the wheel's own DeepFilterNet3 as a folder, and small random exports with other configs, with and
without recurrent-state inputs, checked against a frame-by-frame reference written from the formulas."""

from __future__ import annotations

import configparser
import tarfile

import libdf
import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf

from workbench.core.enhance.enhancer import enhance_array
from workbench.core.errors import ModelError
from workbench_models.deepfilternet import DfnConfig, OfflineDeepFilterNet3, runtime_files
from workbench_models.loaders import load_model_path

from dfn_exports import write_export  # tests/models/dfn_exports.py (pytest puts this folder on sys.path)


@pytest.fixture(scope="module")
def speech(shared_data) -> np.ndarray:
    audio, sr = sf.read(shared_data / "dns3" / "0016_noisy.wav", dtype="float32")
    return audio[: int(1.5 * sr)]


def reference(folder, x: np.ndarray) -> np.ndarray:
    """The DeepFilterNet processing, one frame at a time, from ``config.ini`` and the three graphs:

    network step ``t`` serves frame ``k = t - conv_lookahead``; ERB gains (or 0 / 1 outside the LSNR
    range); the lowest ``nb_df`` bins replaced by ``sum_i C[t, f, i] Y[k - (order - 1 - df_lookahead) + i, f]``.
    """
    ini = configparser.ConfigParser()
    ini.read(folder / "config.ini")
    d, net = ini["df"], ini["deepfilternet"]
    sr, fft, hop = d.getint("sr"), d.getint("fft_size"), d.getint("hop_size")
    nb_erb, nb_df, order, l = d.getint("nb_erb"), d.getint("nb_df"), d.getint("df_order"), d.getint("df_lookahead")
    la = net.getint("conv_lookahead")
    lo, hi = d.getfloat("lsnr_min"), d.getfloat("lsnr_max")
    alpha = DfnConfig.from_ini((folder / "config.ini").read_text()).norm_alpha
    state = libdf.DF(sr, fft, hop, nb_erb, d.getint("min_nb_erb_freqs"))
    n = len(x)
    padded = np.zeros((1, (n // hop + 12) * hop), np.float32)
    padded[0, :n] = x
    spec = state.analysis(padded)
    widths = state.erb_widths()
    feat_erb = libdf.erb_norm(libdf.erb(spec, widths), alpha)[:, None].astype(np.float32)
    cplx = libdf.unit_norm(np.ascontiguousarray(spec[..., :nb_df]), alpha)
    feat_spec = np.stack([cplx.real, cplx.imag], axis=1).astype(np.float32)
    sess = {g: ort.InferenceSession(str(folder / f"{g}.onnx")) for g in ("enc", "erb_dec", "df_dec")}

    def run(g, avail):
        feed = {i.name: avail[i.name] if i.name in avail else np.zeros([1, 1, i.shape[-1]], np.float32)
                for i in sess[g].get_inputs()}
        return dict(zip([o.name for o in sess[g].get_outputs()], sess[g].run(None, feed)))

    enc = run("enc", {"feat_erb": feat_erb, "feat_spec": feat_spec})
    m = run("erb_dec", enc)["m"][0, 0]
    coefs = run("df_dec", enc)["coefs"][0]
    lsnr = enc["lsnr"][0, :, 0]
    y_spec = spec[0]
    out = y_spec.copy()
    band_of_bin = np.repeat(np.arange(nb_erb), widths.astype(int))
    for k in range(y_spec.shape[0] - la):
        t = k + la
        if lsnr[t] < lo:
            out[k] = 0
            continue
        if lsnr[t] > hi:
            continue
        out[k] = y_spec[k] * m[t][band_of_bin]
        for f in range(nb_df):
            acc = 0j
            for i in range(order):
                j = k - (order - 1 - l) + i
                if 0 <= j < y_spec.shape[0]:
                    acc += complex(coefs[t, f, 2 * i], coefs[t, f, 2 * i + 1]) * y_spec[j, f]
            out[k, f] = acc
    y = state.synthesis(np.ascontiguousarray(out[None].astype(np.complex64)))[0]
    return y[fft - hop: fft - hop + n]


CONFIGS = {
    "16k-320": dict(sr=16000, fft=320, hop=160, nb_erb=20, nb_df=48, order=3, df_la=1, conv_la=1),
    "8k-no-lookahead": dict(sr=8000, fft=128, hop=64, nb_erb=12, nb_df=24, order=2, df_la=0, conv_la=0),
    "24k-512-asymmetric": dict(sr=24000, fft=512, hop=256, nb_erb=24, nb_df=64, order=5, df_la=3, conv_la=2),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_export_runs_with_its_own_config(tmp_path, speech, name):
    folder = write_export(tmp_path / name, **CONFIGS[name], seed=3)
    model = load_model_path(folder)
    cfg = CONFIGS[name]
    assert model.info.sample_rate == cfg["sr"] and model.info.block_samples == cfg["hop"]
    assert model.info.latency_samples == cfg["fft"] - cfg["hop"] + max(cfg["conv_la"], cfg["df_la"]) * cfg["hop"]
    assert f"order {cfg['order']}" in model.info.extra["bands"]
    y = model.process_offline(speech)
    ref = reference(folder, speech)
    assert y.shape == speech.shape
    np.testing.assert_allclose(y, ref, atol=2e-5, rtol=1e-4)
    assert not np.allclose(y, speech, atol=1e-3)  # the random network does change the signal


def test_state_inputs_start_from_zero(tmp_path, speech):
    plain = load_model_path(write_export(tmp_path / "plain", seed=5))
    stateful = load_model_path(write_export(tmp_path / "stateful", seed=5, states=True))
    assert "h_enc->h_enc_out" in stateful.info.extra["states"] and "states" not in plain.info.extra
    np.testing.assert_array_equal(stateful.process_offline(speech), plain.process_offline(speech))
    # Through the engine at another input rate: resampled there and back, same length.
    y = enhance_array(stateful, speech[:8000], 22050)
    assert y.shape == (8000,) and np.all(np.isfinite(y))


def test_wheel_tarball_as_a_folder_is_the_builtin(tmp_path, shared_data):
    _, tarball = runtime_files()
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if member.isfile():
                (tmp_path / member.name.rsplit("/", 1)[-1]).write_bytes(tar.extractfile(member).read())
    audio, sr = sf.read(shared_data / "dns3" / "0016_noisy.wav", dtype="float32")
    x48 = enhance_array(load_model_path(tmp_path), audio[:sr], sr)
    builtin = enhance_array(load_model_path_builtin(), audio[:sr], sr)
    np.testing.assert_array_equal(x48, builtin)
    direct = OfflineDeepFilterNet3()(np.zeros(4800, np.float32))
    assert direct.shape == (4800,)


def load_model_path_builtin():
    from workbench_models.deepfilternet import DeepFilterNet3

    return DeepFilterNet3()


def test_broken_exports_say_what_is_wrong(tmp_path):
    folder = write_export(tmp_path / "x")
    (folder / "df_dec.onnx").unlink()
    with pytest.raises(ModelError, match="looks like a DeepFilterNet export but lacks df_dec.onnx"):
        load_model_path(folder)
    folder = write_export(tmp_path / "y", order=2, df_la=2)
    with pytest.raises(ModelError, match="df_lookahead from 0 to df_order - 1"):
        load_model_path(folder)
    folder = write_export(tmp_path / "z", nb_df=48)
    text = (folder / "config.ini").read_text().replace("nb_df = 48", "nb_df = 40")
    (folder / "config.ini").write_text(text)
    with pytest.raises(ModelError, match="enc.onnx takes feat_spec with 48 bins but config.ini says nb_df = 40"):
        load_model_path(folder)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_exports_with_states_stream_as_they_run_offline(tmp_path, speech, name):
    """Carrying the states hop by hop (features, networks, deep filter, overlap-add) gives the offline
    result once the engine removes the declared latency."""
    cfg = CONFIGS[name]
    model = load_model_path(write_export(tmp_path / name, **cfg, states=True, seed=3))
    assert model.info.paths == ("offline", "streaming")
    offline = model.process_offline(speech)
    streamed = enhance_array(model, speech, cfg["sr"], processing="streaming")
    np.testing.assert_allclose(streamed, offline, atol=2e-6)


def test_exports_without_states_do_not_stream(tmp_path):
    from workbench.core.enhance.enhancer import with_processing

    model = load_model_path(write_export(tmp_path / "plain"))
    with pytest.raises(ModelError, match="only the offline path"):
        with_processing(model, "streaming")
