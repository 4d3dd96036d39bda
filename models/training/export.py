"""Export a trained ``model.pt`` to TorchScript (``.ts``) and ONNX (``.onnx``), each with a model card.

Both exports are *spectral* whole-utterance modules: input ``(1, 257, T, 2)`` (real/imaginary of the
512-point, hop-256, sqrt-Hann STFT, layout ``BFTC``), output the enhanced spectrum in the same layout; the
card beside the file (``model.onnx.toml``, ``model.ts.toml``) says so, with the sample rate, name and
description, so :func:`workbench_models.loaders.load_model_path` loads the export and other tools know how to
call it. ONNX has no complex tensors: the complex-valued network is exported as its real-valued equivalent
(:class:`~workbench_models.complex_net.RealValuedComplexNet`, the same computation on real/imaginary pairs).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from workbench.core.audio.audio_io import atomic_output

from ..trained import SpectralNetEnhancer

CHUNK_S, OVERLAP_S = SpectralNetEnhancer.chunk_s, SpectralNetEnhancer.overlap_s


def _load(model_path: Path):
    from ..trained import TRAINING_KEY
    from .architectures import build_network
    obj = torch.load(model_path, map_location="cpu", weights_only=True)
    meta = obj[TRAINING_KEY]
    net = build_network(meta["architecture"], meta.get("args") or {})
    net.load_state_dict(obj["model"], strict=True)
    net.eval()
    return net, meta


def model_card(meta: dict) -> str:
    """The TOML card of an exported spectral module."""
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in (meta.get("metrics") or {}).items())
    description = (f"{meta['architecture']} trained in the workbench ({meta.get('epochs')} epochs, loss "
                   f"{meta.get('loss')}, started from {meta.get('init') or 'scratch'}); validation: {metrics}")
    family_output = "spectrum"
    lines = [
        f'id = "trained-export:{meta.get("name", "model")}"',
        f'name = "{meta.get("name", "model")} ({meta["architecture"]}, exported)"',
        'description = "' + description.replace('"', "'") + '"',
        'kind = "spectral"', f"sample_rate = {int(meta.get('sample_rate', 16000))}", "streaming = false",
        f"n_fft = {meta['stft']['n_fft']}", f"hop = {meta['stft']['hop']}", 'window = "sqrt-hann"',
        'input = "complex"', 'input_layout = "BFTC"', f'output = "{family_output}"', 'output_type = "complex"',
        "causal = true",
        # the framing and chunking model.pt runs with (torch.stft(center=True), chunks of the trained
        # model's enhancer), so an export's run equals the checkpoint's to float rounding
        'start_padding = "reflect"', f"chunk_s = {CHUNK_S}", f"overlap_s = {OVERLAP_S}",
    ]
    return "\n".join(lines) + "\n"


def _write_card(meta: dict, target: Path) -> Path:
    card = target.with_name(target.name + ".toml")
    with atomic_output(card, overwrite=True) as tmp:
        tmp.write_text(model_card(meta), encoding="utf-8")
    return card


def export_torchscript(model_path: Path, target: Path) -> Path:
    """Traced TorchScript module + card; returns ``target``."""
    net, meta = _load(Path(model_path))
    example = torch.randn(1, 257, 20, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow fixed at trace time
        traced = torch.jit.trace(net, example, check_trace=False)
    with atomic_output(Path(target), overwrite=True) as tmp, warnings.catch_warnings():
        # torch marks TorchScript as deprecated; the workbench and many tools still load it
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.jit.save(traced, str(tmp))
    _write_card(meta, Path(target))
    return Path(target)


def export_onnx(model_path: Path, target: Path) -> Path:
    """ONNX graph (dynamic frame axis) + card; returns ``target``. The complex-valued network is written as
    its real-valued equivalent (ONNX has no complex type)."""
    net, meta = _load(Path(model_path))
    if meta["architecture"] == "complex_net":
        from ..complex_net import RealValuedComplexNet
        net = RealValuedComplexNet(net).eval()
    example = torch.randn(1, 257, 20, 2)
    with atomic_output(Path(target), overwrite=True) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(tmp), input_names=["spec"], output_names=["enh"],
                          dynamic_axes={"spec": {2: "frames"}, "enh": {2: "frames"}}, opset_version=17,
                          dynamo=False)
    _write_card(meta, Path(target))
    return Path(target)
