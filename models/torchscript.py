"""TorchScript enhancers: scripted or traced modules loaded with ``torch.jit.load`` (no Python code runs).

Two forms are understood:

* **waveform** modules (default): ``forward(x)`` with ``x`` float32 ``(1, T)``, ``(T,)`` or ``(1, 1, T)``
  returns enhanced audio of the same number of samples — or ``k`` signals (``(k, T)``, ``(1, k, T)``) for
  a model with several outputs, named by the card's ``outputs = ["speech", "noise"]`` (else
  ``output1`` ...). The accepted rank is found at load time by
  running a short probe signal. Sample rate and delay come from a card next to the file
  (``model.pt.toml`` etc., fields ``sample_rate``, ``latency_samples``, ``kind = "waveform"``), else
  16 kHz and no delay are assumed and the model panel says so.
* **spectral** modules with a card (``kind = "spectral"``, see :class:`ModelCard`): whole-utterance STFT
  in the card's layout, mask or spectrum out.
"""

from __future__ import annotations

import re
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.errors import ModelError
from workbench.core.views.stft import StftConfig
from .onnx_models import (DEFAULT_RATE, ModelCard, _apply_output, apply_card_chunking, card_identity, card_inverse,
                          card_spectrum, find_card, from_layout, to_layout)
from .gtcrn import _apply_torch_threads


#: Operators of serialized TorchScript code that reach the file system: ``torch.from_file`` maps (and with
#: ``shared=True`` creates or writes) a file; operators of namespaces other than torch's own come from
#: extension libraries (torchaudio's ``sox_io_save_audio_file`` writes files) and are not needed by a model.
_FILE_OPS = re.compile(r"\bfrom_file\b|\b_(?:save|load)_for_mobile\b|\btorch\.(?:save|load)\b")
_FOREIGN_OPS = re.compile(r"\bops\.(?!(?:aten|prim|quantized|_quantized)\.)(\w+)\.(\w+)")
#: Largest code entry scanned (a model's code is kilobytes; more is refused rather than skipped).
_MAX_CODE_BYTES = 64 << 20


def scan_torchscript(path: Path) -> None:
    """Refuse a TorchScript archive whose code (``forward``, ``__setstate__`` — which runs while loading —
    and every other method, in the archive's ``code/`` entries) calls an operator that touches files.

    Read as a zip archive without loading anything, so nothing in the file runs before it is judged.

    Raises:
        ModelError: naming the file, the code entry and the operator."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ModelError(f"{path}: cannot be loaded as a TorchScript module (not a zip archive: {exc})") from None
    with archive:
        code = [i for i in archive.infolist() if "/code/" in f"/{i.filename}" and i.filename.endswith(".py")]
        if not code:
            raise ModelError(f"{path}: cannot be loaded as a TorchScript module (the archive holds no code/ entries)")
        for info in code:
            if info.file_size > _MAX_CODE_BYTES:
                raise ModelError(f"{path}: code entry {info.filename} is {info.file_size} bytes; refused")
            try:
                text = archive.read(info).decode("utf-8", errors="replace")
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError, ValueError) as exc:
                # A damaged archive is a broken model file, said in one line, not a zip library traceback.
                raise ModelError(f"{path}: cannot be loaded as a TorchScript module (damaged archive entry "
                                 f"{info.filename}: {exc})") from None
            hit = _FILE_OPS.search(text) or _FOREIGN_OPS.search(text)
            if hit:
                line = text.count("\n", 0, hit.start()) + 1
                raise ModelError(f"{path}: refused: its TorchScript code calls {hit.group(0)!r} "
                                 f"({info.filename}, line {line}), an operator that reads or writes files "
                                 "outside the model; a model may only compute on the audio it is given")


def load_script_module(path: Path) -> torch.jit.ScriptModule:
    scan_torchscript(path)
    try:
        with warnings.catch_warnings():
            # torch marks TorchScript as deprecated, but people still ship models in this format.
            warnings.filterwarnings("ignore", message=".*is deprecated", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: cannot be loaded as a TorchScript module ({first[:300]})") from None
    module.eval()
    return module


def _as_tensor(result) -> torch.Tensor:
    """The first tensor of whatever ``forward`` returned (tensor, tuple or list); real floating point
    only (casting a complex or integer output to float would write a silent, wrong file)."""
    if isinstance(result, (tuple, list)) and result:
        result = result[0]
    if not isinstance(result, torch.Tensor):
        raise ModelError(f"forward returned {type(result).__name__}, expected a tensor")
    if result.is_complex() or not result.is_floating_point():
        raise ModelError(f"forward returned a {str(result.dtype).replace('torch.', '')} tensor, expected real "
                         "floating point samples")
    return result


#: Seconds the load-time probe (0.1 s of audio) may take; a module slower than that is refused at load
#: instead of being run for minutes twice.
PROBE_BUDGET_S = 10.0


def _call_with_budget(fn, budget_s: float, what: str):
    """Run ``fn()`` on a helper thread and wait at most ``budget_s``; ModelError when it takes longer.

    The call cannot be interrupted inside torch; when the model runs in its worker process (the CLI and
    GUI load model files that way) the process ends right after, so the computation stops with it."""
    import threading

    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="torchscript-probe", daemon=True)
    worker.start()
    worker.join(budget_s)
    if worker.is_alive():
        raise ModelError(f"{what}: no answer within {budget_s:.0f} s on 0.1 s of audio (time budget exceeded); "
                         "the module is too slow to use or never returns")
    if "error" in box:
        raise box["error"]
    return box["value"]


class TorchScriptWaveformEnhancer(Enhancer):
    """A waveform-in/waveform-out TorchScript module, run on whole chunks (offline path)."""

    chunk_s = 30.0
    overlap_s = 1.0

    def __init__(self, path: Path, module, card: ModelCard | None = None):
        _apply_torch_threads()
        self.module = module
        self.latency = card.latency_samples if card else 0
        rate = card.sample_rate if card else DEFAULT_RATE
        self.rank, self.n_out = self._probe_rank(path, rate)
        names = tuple(card.outputs) if card and card.outputs else (
            ("enhanced",) if self.n_out == 1 else tuple(f"output{k + 1}" for k in range(self.n_out)))
        if len(names) != self.n_out:
            raise ModelError(f"{card.path}: the card names {len(names)} outputs ({', '.join(names)}) but the "
                             f"module returns {self.n_out}")
        params = sum(p.numel() for p in module.parameters())
        note = (f"rate and delay from the card {card.path}" if card else
                f"no model card: assuming {DEFAULT_RATE} Hz, delay measured on the first run; add "
                f"{path.name}.toml with sample_rate = ... and latency_samples = ... to change")
        self.info = EnhancerInfo(
            **card_identity(card, path, "torchscript", "TorchScript waveform-in/waveform-out model"),
            sample_rate=rate, causal=card.causal if card else None, latency_samples=0,
            family="time-domain", processing="offline", source=str(path), parameters=params or None,
            outputs=names, latency_source="declared" if card and card.latency_declared else "unknown",
            licence=card.license if card else "",
            extra={"format": f"TorchScript, input rank {self.rank}", "note": note})

    def _probe_rank(self, path: Path, rate: int) -> tuple[int, int]:
        """Input rank (1, 2 or 3) the module accepts, tried on 0.1 s of quiet noise, and how many signals
        it returns (``(…, T)`` one; ``(k, T)`` or ``(1, k, T)`` with k > 1: k outputs)."""
        n = max(rate // 10, 16)
        probe = torch.from_numpy(np.random.default_rng(0).normal(0, 0.01, n).astype(np.float32))
        errors = []
        for rank in (2, 1, 3):
            x = probe.reshape((1,) * (rank - 1) + (n,))
            try:
                def run(x=x):
                    with torch.inference_mode():
                        return _as_tensor(self.module(x))
                y = _call_with_budget(run, PROBE_BUDGET_S, str(path))
            except ModelError as exc:
                if "time budget" in str(exc) or "expected real floating point" in str(exc):
                    raise ModelError(f"{path}: {exc}" if not str(exc).startswith(str(path)) else str(exc)) from None
                errors.append(f"({', '.join(['1'] * (rank - 1) + ['T'])}): {exc}")
                continue
            except Exception as exc:
                errors.append(f"({', '.join(['1'] * (rank - 1) + ['T'])}): {type(exc).__name__}")
                continue
            if y.numel() == n:
                return rank, 1
            if y.ndim >= 2 and y.shape[-1] == n and y.numel() % n == 0 and y.numel() // n > 1:
                return rank, y.numel() // n
            errors.append(f"({', '.join(['1'] * (rank - 1) + ['T'])}): returned shape {tuple(y.shape)}")
        raise ModelError(f"{path}: TorchScript module is not a waveform-in/waveform-out model (tried "
                         + "; ".join(errors) + "); a spectral module needs a model card next to the file")

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        n = len(audio)
        # A model with a known delay gets that many zeros appended, so its delayed tail is not lost.
        padded = np.concatenate([np.asarray(audio, np.float32), np.zeros(self.latency, np.float32)])
        x = torch.from_numpy(padded).reshape((1,) * (self.rank - 1) + (len(padded),))
        with torch.inference_mode():
            y = _as_tensor(self.module(x)).float().numpy().reshape(self.n_out, -1)
        y = y[:, self.latency:self.latency + n].astype(np.float32, copy=False)
        return y[0] if self.n_out == 1 else y


class TorchScriptSpectralEnhancer(Enhancer):
    """A spectral TorchScript module described by a card (whole-utterance STFT in, mask/spectrum out)."""

    chunk_s = 30.0
    overlap_s = 1.0

    def __init__(self, path: Path, module, card: ModelCard):
        if card.streaming:
            raise ModelError(f"{card.path}: streaming TorchScript spectral models are not supported; "
                             "set streaming = false (the module is then run on whole chunks)")
        _apply_torch_threads()
        self.module, self.card = module, card
        self.cfg = StftConfig(card.n_fft, card.hop, card.window, card.fft_size, center=True)
        apply_card_chunking(self, card)
        self.info = EnhancerInfo(
            **card_identity(card, path, "torchscript", "TorchScript spectral model described by a model card"),
            sample_rate=card.sample_rate, causal=card.causal, latency_samples=0, family=card.family,
            processing="offline", block_samples=card.hop, source=str(path),
            parameters=sum(p.numel() for p in module.parameters()) or None,
            extra={"format": "TorchScript spectral", "card": str(card.path),
                   "stft": f"{card.n_fft}-point, hop {card.hop}, {card.window}"})

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        card = self.card
        spec = card_spectrum(audio, self.cfg, card).astype(np.complex128)
        x = spec if card.input == "complex" else np.abs(spec)
        inp = torch.from_numpy(to_layout(x, card.input_layout, card.input == "complex"))
        with torch.inference_mode():
            out = _as_tensor(self.module(inp)).float().numpy()
        est = from_layout(out, card.out_layout, card.output_type == "complex")
        if est.shape != spec.shape:
            raise ModelError(f"model {self.info.id!r} returned a spectrum of {est.shape}, expected {spec.shape}")
        return card_inverse(_apply_output(spec, est, card), self.cfg, card, len(audio))


def load_torchscript(path: str | Path, card: ModelCard | None = None) -> Enhancer:
    path = Path(path)
    module = load_script_module(path)
    if card is None:
        card = find_card(path)
    if card is not None and card.kind == "spectral":
        return TorchScriptSpectralEnhancer(path, module, card)
    return TorchScriptWaveformEnhancer(path, module, card)
