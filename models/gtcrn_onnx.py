"""GTCRN's carried-state step as one ONNX graph, run by onnxruntime: the live and streaming path.

PyTorch runs GTCRN's streaming step op by op. One 16 ms frame makes 14 GRU calls (the dual-path RNNs'
intra-frame GRUs walk 33 bands step by step, the inter-frame and attention GRUs one step each) and
hundreds of small tensor operations, and each costs PyTorch's dispatch overhead: about 11 ms of CPU per
frame on this project's 2-core machine, two thirds of the frame's own 16 ms, which leaves a live run no
margin. The same step exported once to ONNX and run by onnxruntime does the same arithmetic without that
overhead (see README, Benchmarks).

The export is of *this* network with *its* weights: :func:`state_layout` runs one silent frame through
:meth:`GTCRN.forward` with an empty state dict to learn which caches the network carries (the causal
convolutions' past frames, the GRU states) and their shapes; :class:`_Step` takes them as explicit inputs
in that order and returns their next values. A zero cache is exactly the network's own start (zero
padding, zero GRU state), so a stream starts from zeros. The graph is kept in the user's cache, keyed by
the weights' hash, so only the first stream of a checkpoint pays for the export; where the cache cannot
be written (a read-only home, the sandboxed model worker) the graph is exported in memory each time.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.core.enhance.enhancer import EnhancerStream
from workbench.core.errors import ModelError

#: Changes whenever the exported graph would differ (cached graphs are keyed by it).
EXPORT_VERSION = 1


def state_layout(net: nn.Module, bins: int) -> list[tuple[object, tuple[int, ...]]]:
    """``[(key, shape)]`` of the caches ``net`` carries between calls, in the order it makes them."""
    state: dict = {}
    with torch.inference_mode():
        net(torch.zeros(1, bins, 1, 2), state)
    return [(k, tuple(v.shape)) for k, v in state.items()]


class _Step(nn.Module):
    """``(spec, *caches) -> (enhanced spec, *next caches)`` for the export."""

    def __init__(self, net: nn.Module, keys: list):
        super().__init__()
        self.net = net
        self.keys = keys

    def forward(self, spec: torch.Tensor, *caches: torch.Tensor):
        state = dict(zip(self.keys, caches))
        out = self.net(spec, state)
        return (out, *[state[k] for k in self.keys])


def _weights_digest(net: nn.Module) -> str:
    h = hashlib.sha256(f"gtcrn-step/v{EXPORT_VERSION}/torch{torch.__version__}".encode())
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _cache_folder() -> Path:
    from .onnx_state import graph_cache_dir
    return graph_cache_dir().parent / "gtcrn-step"


def step_graph(net: nn.Module, bins: int) -> tuple[bytes, list[tuple[int, ...]]]:
    """The ONNX graph of ``net``'s streaming step and its cache shapes, from the cache or exported now."""
    digest = _weights_digest(net)
    folder = _cache_folder()
    try:
        shapes = [tuple(s) for s in json.loads((folder / f"{digest}.json").read_text())]
        return (folder / f"{digest}.onnx").read_bytes(), shapes
    except (OSError, ValueError, TypeError):
        pass
    layout = state_layout(net, bins)
    keys, shapes = [k for k, _ in layout], [s for _, s in layout]
    step = _Step(net, keys).eval()
    example = (torch.zeros(1, bins, 2, 2), *[torch.zeros(s) for s in shapes])
    buf = io.BytesIO()
    names = [f"cache{i}" for i in range(len(shapes))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, example, buf, input_names=["spec", *names],
                          output_names=["out", *[f"next_{n}" for n in names]],
                          dynamic_axes={"spec": {2: "frames"}, "out": {2: "frames"}}, opset_version=17,
                          dynamo=False)
    blob = buf.getvalue()
    try:
        from .onnx_state import _write_atomic
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / f"{digest}.onnx", blob)
        _write_atomic(folder / f"{digest}.json", json.dumps([list(s) for s in shapes]).encode())  # last
    except OSError:
        pass  # no cache: export again next time
    return blob, shapes


class GtcrnOnnxStream(EnhancerStream):
    """GTCRN's carried-state stream with the network step in onnxruntime; the framing, window, mirrored
    start and overlap-add are :class:`~workbench_models.gtcrn._GtcrnStream`'s, in numpy."""

    def __init__(self, session, shapes: list[tuple[int, ...]], window: np.ndarray, n_fft: int, hop: int):
        self.session = session
        self.names = [i.name for i in session.get_inputs()]
        self.caches = [np.zeros(s, np.float32) for s in shapes]
        self.window = window.astype(np.float32)
        self.n_fft, self.hop = n_fft, hop
        self.prev: np.ndarray | None = None
        self.carry = np.zeros(hop, np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        n_fft, hop = self.n_fft, self.hop
        x = np.ascontiguousarray(block, dtype=np.float32)
        if self.prev is None:
            idx = np.minimum(np.arange(n_fft - hop, 0, -1), len(x) - 1)
            self.prev = x[idx]
        buf = np.concatenate([self.prev, x])
        self.prev = buf[len(buf) - (n_fft - hop):].copy()
        t = (len(buf) - n_fft) // hop + 1
        frames = np.lib.stride_tricks.sliding_window_view(buf, n_fft)[::hop][:t]        # (T, N_FFT)
        spec = np.fft.rfft(frames * self.window, axis=-1)                                 # (T, F)
        feed = np.stack([spec.real, spec.imag], axis=-1).astype(np.float32).transpose(1, 0, 2)[None]
        try:
            out, *caches = self.session.run(None, dict(zip(self.names, [np.ascontiguousarray(feed), *self.caches])))
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelError(f"gtcrn: the ONNX step failed: {exc}") from None
        self.caches = caches
        o = out[0].transpose(1, 0, 2)                                                     # (T, F, 2)
        y = np.fft.irfft(o[..., 0] + 1j * o[..., 1], n=n_fft, axis=-1).astype(np.float32) * self.window
        ola = np.zeros((t + 1, hop), np.float32)
        ola[:t] += y[:, :hop]
        ola[1:] += y[:, hop:]
        ola[0] += self.carry
        self.carry = ola[t].copy()
        return ola[:t].reshape(-1)


def onnx_session(net: nn.Module, bins: int):
    """``(session, cache shapes)`` for ``net``'s step, one intra-op thread (a stream runs block by block
    on its caller's thread). Raises ModelError when onnxruntime or the export is unavailable."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(f"gtcrn: the fast streaming step needs onnxruntime ({exc})") from None
    try:
        blob, shapes = step_graph(net, bins)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"]), shapes
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"gtcrn: cannot export its streaming step to ONNX: {type(exc).__name__}: {exc}") from None
