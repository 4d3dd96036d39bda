"""Trainable architectures by name, and where their weights start.

Every network here maps a spectrum to a spectrum: ``(B, 257, T, 2)`` real/imaginary of the 512-point,
hop-256, sqrt-Hann STFT in, the enhanced spectrum out (GTCRN applies a complex mask, GCRN maps directly,
the complex net applies a complex mask computed in complex arithmetic). A checkpoint stores the name and
the arguments, so the file alone rebuilds the network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from workbench.core.errors import ModelError

N_FFT = 512
HOP = 256
SAMPLE_RATE = 16000


def build_network(architecture: str, args: dict | None = None) -> nn.Module:
    """A freshly initialised network (initialisation follows torch's RNG: seed it first)."""
    args = dict(args or {})
    if architecture == "gtcrn":
        from ..gtcrn import GTCRN
        if args:
            raise ModelError(f"GTCRN takes no arguments, got {sorted(args)}")
        return GTCRN()
    if architecture == "gcrn":
        from ..gcrn import GCRN
        return _call(GCRN, args, "gcrn")
    if architecture == "complex_net":
        from ..complex_net import ComplexNet
        return _call(ComplexNet, args, "complex_net")
    raise ModelError(f"unknown architecture {architecture!r}; known: gtcrn, gcrn, complex_net")


def _call(cls, args: dict, name: str) -> nn.Module:
    try:
        return cls(**args)
    except TypeError as exc:
        raise ModelError(f"{name}: bad arguments {args} ({exc})") from None


def init_state_dict(init: str, base_dir: Path | None = None) -> dict:
    """The state dict a run starts from: a bundled GTCRN (``gtcrn-dns3``/``gtcrn-vctk``), or any checkpoint
    file (the authors' ``{'model': state_dict}``, a plain state dict, or one of ours), read with
    ``weights_only=True``."""
    from ..gtcrn import unwrap_state_dict
    if init in ("gtcrn-dns3", "gtcrn-vctk"):
        from workbench_assets import gtcrn_checkpoint_path
        path = Path(gtcrn_checkpoint_path(init.split("-", 1)[1]))
    else:
        path = Path(init).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint to start from")
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot be read as a checkpoint ({str(exc).splitlines()[0][:200]})") from None
    sd = unwrap_state_dict(obj)
    if sd is None:
        raise ModelError(f"{path}: holds no state dict")
    return sd


def freeze_batch_norm(net: nn.Module) -> int:
    """Put every batch-norm layer in eval mode (running statistics fixed, used as in inference); returns how many.

    Called after every ``net.train()``: fine-tuning on a few minutes of audio must not re-estimate the
    statistics the pretrained weights depend on."""
    count = 0
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            count += 1
    return count
