"""Models trained or fine-tuned in the workbench (``model.pt`` files the trainer writes).

A file is ``{"model": state_dict, "workbench_training": facts}`` (see
:mod:`workbench_models.training.trainer`): the facts name the architecture and its arguments, so the file
alone rebuilds the network, read with ``torch.load(weights_only=True)`` (no code from the file runs).

GTCRN results run in :class:`~workbench_models.gtcrn.GtcrnEnhancer` (offline and streaming paths); GCRN and
the complex net run whole utterances through the training STFT (:class:`SpectralNetEnhancer`), or stream
blocks of frames with their state carried (the same framing as GTCRN's stream: live use). Every
architecture here is causal: output sample ``n`` depends on input up to ``n + 511`` at most (the centred
512-point frame), which the probe's allowance (``latency + block - 1``) covers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo
from workbench.core.errors import ModelError

TRAINING_KEY = "workbench_training"
FAMILIES = {"gtcrn": "complex-mask", "gcrn": "complex-mapping", "complex_net": "complex-valued"}
DESCRIPTIONS = {
    "gtcrn": "GTCRN (Rong et al., ICASSP 2024) trained in the workbench",
    "gcrn": "GCRN-style complex spectral mapping (one encoder, real and imaginary decoders) trained in the workbench",
    "complex_net": "complex-valued causal mask network (native complex tensors) trained in the workbench",
}


def is_trained_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get(TRAINING_KEY), dict) and isinstance(obj.get("model"), dict)


def _extra(meta: dict) -> dict:
    extra = {"stft": "512-point, hop 256, sqrt-Hann", "loss": meta.get("loss", ""),
             "trained": f"{meta.get('epochs', '?')} epochs, {meta.get('steps', '?')} steps, seed {meta.get('seed', '?')}",
             "started from": meta.get("init") or "scratch", "workbench version": meta.get("workbench_version", "")}
    for key, value in (meta.get("metrics") or {}).items():
        extra[f"validation {key}"] = round(float(value), 3)
    return extra


class SpectralNetEnhancer(Enhancer):
    """A spectrum-to-spectrum network (``(1, 257, T, 2)`` in and out) with a ``forward(spec, state)``.

    * offline (default; long files too, in 60 s chunks): the training STFT of the whole buffer, one call;
    * streaming (live use): blocks of any multiple of 256 samples, each running the frames it completes
      with the network's state carried (:class:`~workbench_models.gtcrn._GtcrnStream`'s framing: the
      first frame mirrors the signal start as the offline path does, latency 256 samples). Equal to the
      offline output except the last frame, which the stream cannot mirror.
    """

    chunk_s = 60.0
    overlap_s = 4.0

    def __init__(self, net: torch.nn.Module, info: EnhancerInfo):
        self.net, self.info = net, info
        self.window = torch.hann_window(512).sqrt()

    def new_stream(self):
        from .gtcrn import _GtcrnStream
        return _GtcrnStream(self)

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        from .training.trainer import enhance_waveform
        if len(audio) == 0:
            return np.zeros(0, np.float32)
        return enhance_waveform(self.net, audio)


def load_trained(path: str | Path, obj: dict | None = None) -> Enhancer:
    """The Enhancer of a workbench-trained ``model.pt``.

    Raises:
        ModelError: unknown architecture, arguments or weights that do not fit it.
    """
    path = Path(path)
    if obj is None:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if not is_trained_checkpoint(obj):
        raise ModelError(f"{path}: not a model trained in the workbench (no {TRAINING_KEY!r} entry)")
    meta = obj[TRAINING_KEY]
    arch = meta.get("architecture")
    from .training.architectures import build_network
    net = build_network(str(arch), meta.get("args") or {})
    try:
        net.load_state_dict(obj["model"], strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit a {arch} network with {meta.get('args')}: "
                         f"{str(exc).splitlines()[0]}") from None
    net.eval()
    name = str(meta.get("name") or path.parent.name or path.stem)
    model_id = f"trained:{name}"
    if arch == "gtcrn":
        from .gtcrn import GtcrnEnhancer
        enh = GtcrnEnhancer(net, id=model_id, source=str(path), name=f"{name} (GTCRN, trained)")
        enh.info.description = DESCRIPTIONS["gtcrn"] + f"; loss {meta.get('loss', '?')}."
        enh.info.extra.update(_extra(meta))
        return enh
    info = EnhancerInfo(
        id=model_id, name=f"{name} ({arch}, trained)",
        description=DESCRIPTIONS.get(arch, arch) + f"; loss {meta.get('loss', '?')}.",
        sample_rate=int(meta.get("sample_rate", 16000)), causal=True, latency_samples=256,
        family=FAMILIES.get(arch, "unknown"), processing="offline", processing_paths=("offline", "streaming"),
        block_samples=256, source=str(path), parameters=sum(p.numel() for p in net.parameters()),
        extra=_extra(meta))
    return SpectralNetEnhancer(net, info)
