"""The built-in GTCRN models ``gtcrn-dns3`` and ``gtcrn-vctk``: the authors' MIT-licensed checkpoints
bundled in ``workbench_assets/models/gtcrn/`` (source and SHA-256 in its ``LICENSE.md``), run by this
project's implementation of the architecture (:mod:`workbench_models.gtcrn`).

Offline path for files (the authors' whole-utterance inference, run in blocks with the state carried, so
any length in bounded memory with exact seams), the live streaming path on request (``--processing
streaming``).
Describing a model here imports neither torch nor the checkpoint; building it does.
"""

from __future__ import annotations

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo

# Facts of the architecture, repeated here so that listing needs no torch (tests check them against
# models/gtcrn.py and the loaded checkpoints).
SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
PARAMETERS = 48245  # also in facts.json, which the catalogue test checks against the loaded network

#: id -> (training set, human name, description of the data).
VARIANTS = {
    "gtcrn-dns3": ("dns3", "GTCRN (DNS3)", "trained on the DNS Challenge 3 data"),
    "gtcrn-vctk": ("vctk", "GTCRN (VCTK)", "trained on VCTK-DEMAND"),
}
LICENCE = "MIT (checkpoint by Rong Xiaobin)"
SOURCE = "built-in"
PACKAGE = "bundled checkpoint, Xiaobin-Rong/gtcrn"


def info(model_id: str) -> EnhancerInfo:
    """Static description of ``gtcrn-dns3`` or ``gtcrn-vctk`` (no torch import, no weights read)."""
    _, name, data = VARIANTS[model_id]
    return EnhancerInfo(
        id=model_id, name=name,
        description=f"GTCRN (Rong et al., ICASSP 2024), {data}: ultra-light causal complex-ratio-mask model, "
                    "ERB bands, grouped temporal convolutions and dual-path grouped RNNs.",
        sample_rate=SAMPLE_RATE, causal=True, latency_samples=N_FFT - HOP, family="complex-mask",
        processing="offline", processing_paths=("offline", "streaming"), block_samples=HOP,
        source=SOURCE, package=PACKAGE, parameters=PARAMETERS, licence=LICENCE,
        extra={"stft": f"{N_FFT}-point, hop {HOP}, sqrt-Hann", "runtime": "torch"})


def build(model_id: str) -> Enhancer:
    """Load the bundled checkpoint of ``model_id`` into :class:`~workbench_models.gtcrn.GtcrnEnhancer`."""
    from workbench_assets import gtcrn_checkpoint_path

    from .gtcrn import GtcrnEnhancer

    training_set, name, _ = VARIANTS[model_id]
    enh = GtcrnEnhancer.from_checkpoint(gtcrn_checkpoint_path(training_set))
    described = info(model_id)
    enh.info.id, enh.info.name, enh.info.source = model_id, name, SOURCE
    enh.info.licence, enh.info.description, enh.info.package = LICENCE, described.description, PACKAGE
    return enh
