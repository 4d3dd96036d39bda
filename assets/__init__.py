"""Files the workbench ships with (installed as ``workbench_assets``): the demo clip, the app icon and the
GTCRN checkpoints of the built-in models ``gtcrn-dns3``/``gtcrn-vctk`` (``models/gtcrn/LICENSE.md``).

The demo clip is clip 0015 of the DNS Challenge 3 synthetic test set (16 kHz mono, 5 s), with its clean
reference; see ``demo/LICENSE.md`` for source and licence.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _existing(relative: str) -> Path:
    path = _HERE / relative
    if not path.is_file():
        # Raised as a plain error: a missing asset means a broken installation, not a user mistake.
        raise FileNotFoundError(f"bundled asset missing: {path} (reinstall the workbench)")
    return path


def demo_clip_path() -> Path:
    """The noisy demo recording (WAV, 16 kHz, mono, 5 s)."""
    return _existing("demo/demo_noisy.wav")


def demo_clean_path() -> Path:
    """The clean reference of :func:`demo_clip_path` (same length and rate), for metrics demos."""
    return _existing("demo/demo_clean.wav")


def icon_path() -> Path:
    """The application icon (SVG)."""
    return _existing("icons/workbench.svg")


#: Bundled GTCRN checkpoints by training set (MIT, from the authors' repository; see models/gtcrn/LICENSE.md).
GTCRN_CHECKPOINTS = {"dns3": "models/gtcrn/model_trained_on_dns3.tar", "vctk": "models/gtcrn/model_trained_on_vctk.tar"}


def gtcrn_checkpoint_path(training_set: str) -> Path:
    """The bundled GTCRN checkpoint trained on ``training_set`` (``"dns3"`` or ``"vctk"``)."""
    return _existing(GTCRN_CHECKPOINTS[training_set])
