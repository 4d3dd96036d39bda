"""Small DeepFilterNet-structured ONNX exports with random weights, for any ``config.ini``.

Three graphs named and shaped as DeepFilterNet's export tooling writes them:

* ``enc.onnx``: ``feat_erb (1, 1, T, nb_erb)``, ``feat_spec (1, 2, T, nb_df)`` -> ``e0..e3 (1, C, T, *)``,
  ``emb (1, T, H)``, ``c0 (1, C, T, nb_df)``, ``lsnr (1, T, 1)`` (spread over -20..40 dB, so frames fall
  below, inside and above the usual LSNR range);
* ``erb_dec.onnx``: ``emb, e3, e2, e1, e0`` -> ``m (1, 1, T, nb_erb)`` (sigmoid gains);
* ``df_dec.onnx``: ``emb, c0`` -> ``coefs (1, T, nb_df, 2 * df_order)``.

Each network is frame-wise (dense layers) plus, with ``states=True``, a GRU whose initial state is a graph
input (``h_enc``, ``h_erb``, ``h_df``) and whose last state is returned (``h_enc_out`` ...). Without
state inputs the same GRU starts from zeros inside the graph, so both variants compute the same thing
from rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CONFIG = """[df]
sr = {sr}
fft_size = {fft}
hop_size = {hop}
nb_erb = {nb_erb}
nb_df = {nb_df}
norm_tau = 1
lsnr_max = 35
lsnr_min = -15
min_nb_erb_freqs = {min_erb}
df_order = {order}
df_lookahead = {df_la}

[deepfilternet]
conv_lookahead = {conv_la}
"""


class _Graph:
    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self.n = rng, [], [], 0

    def const(self, value, dtype=np.float32) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, kind: str, inputs: list[str], out: str | None = None, n_out: int = 1, **attrs):
        self.n += 1
        outs = [out] if out else [f"t{self.n}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(kind, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def dense(self, x: str, n_in: int, n_out: int, scale: float = 0.5) -> str:
        w = self.const(self.rng.normal(0, scale / np.sqrt(n_in), (n_in, n_out)))
        b = self.const(self.rng.normal(0, 0.1, n_out))
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def gru(self, x: str, hidden: int, state: str | None, state_out: str | None) -> str:
        """``x (T, hidden)`` through a one-layer GRU (seq, batch 1); ``(T, hidden)``."""
        seq = self.op("Reshape", [x, self.const([-1, 1, hidden], np.int64)])
        w = self.const(self.rng.normal(0, 0.3, (1, 3 * hidden, hidden)))
        r = self.const(self.rng.normal(0, 0.3, (1, 3 * hidden, hidden)))
        b = self.const(self.rng.normal(0, 0.1, (1, 6 * hidden)))
        if state is None:
            y = self.op("GRU", [seq, w, r, b], hidden_size=hidden)
        else:
            y, _ = self.op("GRU", [seq, w, r, b, "", state], n_out=2, hidden_size=hidden)
            self.nodes[-1].output[1] = state_out
        return self.op("Reshape", [y, self.const([-1, hidden], np.int64)])

    def to_nct(self, x: str, c: int, f: int) -> str:
        """``(T, c * f)`` -> ``(1, c, T, f)``."""
        y = self.op("Reshape", [x, self.const([-1, c, f], np.int64)])
        y = self.op("Transpose", [y], perm=[1, 0, 2])
        return self.op("Reshape", [y, self.const([1, c, -1, f], np.int64)])

    def save(self, path: Path, name: str, inputs, outputs) -> None:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


def _vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def write_export(folder: Path, *, sr: int = 16000, fft: int = 320, hop: int = 160, nb_erb: int = 20,
                 nb_df: int = 48, order: int = 3, df_la: int = 1, conv_la: int = 1, min_erb: int = 2,
                 states: bool = False, seed: int = 0, hidden: int = 16, channels: int = 4) -> Path:
    """Write ``enc.onnx``, ``erb_dec.onnx``, ``df_dec.onnx`` and ``config.ini`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.ini").write_text(CONFIG.format(sr=sr, fft=fft, hop=hop, nb_erb=nb_erb, nb_df=nb_df,
                                                     order=order, df_la=df_la, conv_la=conv_la, min_erb=min_erb))
    h, c = hidden, channels
    sizes = {"e0": nb_erb, "e1": max(nb_erb // 2, 1), "e2": max(nb_erb // 4, 1), "e3": max(nb_erb // 4, 1)}
    state_vi = lambda name: _vi(name, [1, 1, h])  # noqa: E731

    # Encoder
    rng = np.random.default_rng(seed)
    g = _Graph(rng)
    erb = g.op("Reshape", ["feat_erb", g.const([-1, nb_erb], np.int64)])
    spec = g.op("Transpose", ["feat_spec"], perm=[0, 2, 1, 3])
    spec = g.op("Reshape", [spec, g.const([-1, 2 * nb_df], np.int64)])
    x = g.op("Concat", [erb, spec], axis=1)
    x = g.op("Tanh", [g.dense(x, nb_erb + 2 * nb_df, h)])
    x = g.gru(x, h, "h_enc" if states else None, "h_enc_out" if states else None)
    g.op("Reshape", [x, g.const([1, -1, h], np.int64)], out="emb")
    for name, f in sizes.items():
        g.op("Identity", [g.to_nct(g.dense(x, h, c * f), c, f)], out=name)
    g.op("Identity", [g.to_nct(g.dense(x, h, c * nb_df), c, nb_df)], out="c0")
    lsnr = g.op("Add", [g.op("Mul", [g.op("Tanh", [g.dense(x, h, 1, 4.0)]), g.const(30.0)]), g.const(10.0)])
    g.op("Reshape", [lsnr, g.const([1, -1, 1], np.int64)], out="lsnr")
    ins = [_vi("feat_erb", [1, 1, "T", nb_erb]), _vi("feat_spec", [1, 2, "T", nb_df])]
    outs = [_vi(n, [1, c, "T", f]) for n, f in sizes.items()] + [
        _vi("emb", [1, "T", h]), _vi("c0", [1, c, "T", nb_df]), _vi("lsnr", [1, "T", 1])]
    g.save(folder / "enc.onnx", "enc", ins + ([state_vi("h_enc")] if states else []),
           outs + ([state_vi("h_enc_out")] if states else []))

    # ERB decoder: gains from the embedding and the finest encoder map
    g = _Graph(rng)
    x = g.op("Reshape", ["emb", g.const([-1, h], np.int64)])
    x = g.gru(x, h, "h_erb" if states else None, "h_erb_out" if states else None)
    skip = g.op("ReduceMean", ["e0"], axes=[1], keepdims=0)
    skip = g.op("Reshape", [skip, g.const([-1, nb_erb], np.int64)])
    coarse = [g.op("ReduceMean", [e], axes=[1, 3], keepdims=0) for e in ("e1", "e2", "e3")]
    skip = g.op("Add", [skip, g.op("Reshape", [g.op("Sum", coarse), g.const([-1, 1], np.int64)])])
    m = g.op("Sigmoid", [g.op("Add", [g.dense(x, h, nb_erb), skip])])
    g.op("Reshape", [m, g.const([1, 1, -1, nb_erb], np.int64)], out="m")
    ins = [_vi("emb", [1, "T", h])] + [_vi(n, [1, c, "T", sizes[n]]) for n in ("e3", "e2", "e1", "e0")]
    g.save(folder / "erb_dec.onnx", "erb_dec", ins + ([state_vi("h_erb")] if states else []),
           [_vi("m", [1, 1, "T", nb_erb])] + ([state_vi("h_erb_out")] if states else []))

    # Deep-filter decoder: complex coefficients per low bin and tap
    g = _Graph(rng)
    x = g.op("Reshape", ["emb", g.const([-1, h], np.int64)])
    x = g.gru(x, h, "h_df" if states else None, "h_df_out" if states else None)
    cmap = g.op("ReduceMean", ["c0"], axes=[1], keepdims=0)                    # (1, T, nb_df)
    cmap = g.op("Reshape", [cmap, g.const([-1, nb_df, 1], np.int64)])
    coefs = g.op("Reshape", [g.dense(x, h, nb_df * order * 2, 1.0), g.const([-1, nb_df, order * 2], np.int64)])
    coefs = g.op("Add", [coefs, g.op("Mul", [cmap, g.const(0.1)])])
    g.op("Reshape", [coefs, g.const([1, -1, nb_df, order * 2], np.int64)], out="coefs")
    ins = [_vi("emb", [1, "T", h]), _vi("c0", [1, c, "T", nb_df])]
    g.save(folder / "df_dec.onnx", "df_dec", ins + ([state_vi("h_df")] if states else []),
           [_vi("coefs", [1, "T", nb_df, order * 2])] + ([state_vi("h_df_out")] if states else []))
    return folder
