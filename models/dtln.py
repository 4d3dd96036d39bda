"""DTLN: dual-signal transformation LSTM network (Westhausen & Meyer, Interspeech 2020), two ONNX stages.

Per hop of 128 new samples (16 kHz), on the last 512 input samples ``x`` (no analysis window):

1. ``X = rfft(x)`` (257 bins); stage 1 (``model_1.onnx``) maps ``|X|`` ``(1, 1, 257)`` and its LSTM states
   ``(1, 2, 128, 2)`` to a magnitude mask ``M`` ``(1, 1, 257)``.
2. ``e = irfft(|X| M exp(j angle X))`` (512 samples); stage 2 (``model_2.onnx``) maps ``e`` ``(1, 1, 512)``
   and its states to a 512-sample output block in the time domain (learned basis, learned synthesis).
3. The output block is overlap-added into a 512-sample buffer; its first 128 samples are complete and
   are emitted, then the buffer shifts by 128.

The emitted hop belongs to the oldest part of the current block, so the output lags the input by
``512 - 128 = 384`` samples; the engine removes exactly that delay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.errors import ModelError
from .onnx_models import ModelCard, Signature, make_session, shipped_cards, signature_of, stored_weights, zero_state

BLOCK = 512
HOP = 128
SAMPLE_RATE = 16000


def dtln_card() -> ModelCard:
    card = next((c for c in shipped_cards() if c.kind == "dtln"), None)
    if card is None:   # the card ships with the package; its absence means a broken installation
        raise ModelError("the DTLN model card (workbench_models/cards/dtln.toml) is missing")
    return card


def dtln_stage(sig: Signature) -> str | None:
    """``"1"`` or ``"2"`` when ``sig`` is that DTLN stage, else None."""
    for stage, table in dtln_card().stages.items():
        if sig.matches(table):
            return str(stage)
    return None


def _sum_weights(paths: list[Path]) -> int | None:
    counts = [stored_weights(p) for p in paths]
    return None if None in counts else sum(counts)


class _Stage:
    """One ONNX stage: main input/output and its single state pair."""

    def __init__(self, path: Path, sig: Signature, session):
        self.path, self.session = path, session
        main_in = next(t for t in sig.inputs if len(t.shape) == 3)
        state_in = next(t for t in sig.inputs if len(t.shape) == 4)
        self.main_in, self.state_in = main_in.name, state_in
        self.main_out = next(t.name for t in sig.outputs if len(t.shape) == 3)
        self.state_out = next(t.name for t in sig.outputs if len(t.shape) == 4)

    def run(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, s = self.session.run([self.main_out, self.state_out], {self.main_in: x, self.state_in.name: state})
        return y, s


class _DtlnStream(EnhancerStream):
    def __init__(self, enh: "DtlnEnhancer"):
        self.enh = enh
        self.in_buf = np.zeros(BLOCK, np.float32)
        self.out_buf = np.zeros(BLOCK, np.float32)
        self.state1 = zero_state(enh.stage1.state_in)
        self.state2 = zero_state(enh.stage2.state_in)

    def process(self, block: np.ndarray) -> np.ndarray:
        s1, s2 = self.enh.stage1, self.enh.stage2
        out = np.empty(len(block), np.float32)
        for s in range(0, len(block), HOP):
            self.in_buf[:-HOP] = self.in_buf[HOP:]
            self.in_buf[-HOP:] = block[s:s + HOP]
            spec = np.fft.rfft(self.in_buf)
            mag = np.abs(spec).astype(np.float32)
            mask, self.state1 = s1.run(mag.reshape(1, 1, -1), self.state1)
            masked = np.fft.irfft(spec * mask.reshape(-1), n=BLOCK).astype(np.float32)
            y, self.state2 = s2.run(masked.reshape(1, 1, -1), self.state2)
            self.out_buf[:-HOP] = self.out_buf[HOP:]
            self.out_buf[-HOP:] = 0.0
            self.out_buf += y.reshape(-1)
            out[s:s + HOP] = self.out_buf[:HOP]
        return out


class DtlnEnhancer(Enhancer):
    """DTLN from a folder (or two paths) holding ``model_1.onnx`` and ``model_2.onnx`` (streaming path)."""

    def __init__(self, stage1_path: str | Path, stage2_path: str | Path, source: str | None = None):
        paths = [Path(stage1_path), Path(stage2_path)]
        stages = []
        for want, p in zip(("1", "2"), paths):
            session = make_session(p)
            sig = signature_of(session)
            got = dtln_stage(sig)
            if got != want:
                raise ModelError(f"{p}: expected DTLN stage {want} ({_expected(want)}), found "
                                 f"{'stage ' + got if got else sig.describe()}")
            stages.append(_Stage(p, sig, session))
        self.stage1, self.stage2 = stages
        card = dtln_card()
        src = source or str(paths[0].parent)
        self.info = EnhancerInfo(
            id="dtln", name=card.name, description=card.description, sample_rate=SAMPLE_RATE, causal=True,
            latency_samples=BLOCK - HOP, family="magnitude-mask", processing="streaming", block_samples=HOP,
            source=src, parameters=_sum_weights(paths),
            extra={"format": "two ONNX stages", "framing": f"block {BLOCK}, hop {HOP}, rectangular analysis",
                   "stage 1": str(paths[0]), "stage 2": str(paths[1]), "card": str(card.path)})

    def new_stream(self) -> EnhancerStream:
        return _DtlnStream(self)

    def close(self) -> None:
        self.stage1 = self.stage2 = None


def _expected(stage: str) -> str:
    table = dtln_card().stages[stage]
    return "inputs " + ", ".join(f"{k}{v}" for k, v in table["inputs"].items())


def find_dtln_pair(folder: Path) -> tuple[Path, Path] | None:
    """The (stage 1, stage 2) ONNX files in ``folder``, recognised by signature, or None."""
    found: dict[str, Path] = {}
    for p in sorted(folder.glob("*.onnx")):
        try:
            stage = dtln_stage(signature_of(make_session(p)))
        except ModelError:
            continue
        if stage and stage not in found:
            found[stage] = p
    if "1" in found and "2" in found:
        return found["1"], found["2"]
    return None


def load_dtln_folder(folder: str | Path) -> DtlnEnhancer:
    folder = Path(folder)
    pair = find_dtln_pair(folder)
    if pair is None:
        raise ModelError(f"{folder}: no DTLN pair found (expected two ONNX files: stage 1 with "
                         f"{_expected('1')} and stage 2 with {_expected('2')})")
    return DtlnEnhancer(*pair, source=str(folder))
