"""Facts about the built-in models that cost a model load to measure, kept as data with the package.

Counting DeepFilterNet3's or NSNet2's weights means importing ``onnx`` and parsing the graphs (about a
second); RNNoise's means mapping its library; GTCRN's means importing torch. Listing the catalogue or
running another model must pay none of that, so the figures were measured once with :func:`measure` and
are stored in ``facts.json`` next to this module (``python -m workbench_models.facts`` rewrites it after
a model package changes; ``tests/models/test_facts.py`` checks the file against the live counts).

``facts.json`` maps a built-in id to ``{"parameters": int, "licence": str}`` plus, for models whose
network runs in a native library, ``"macs_per_second"``.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

FACTS_FILE = Path(__file__).with_name("facts.json")


@functools.lru_cache(maxsize=1)
def _facts() -> dict[str, dict]:
    try:
        return json.loads(FACTS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged install lists the models without their sizes rather than failing


def fact(model_id: str, key: str, default=None):
    """The stored ``key`` (``parameters``, ``licence``, ``macs_per_second``) of built-in ``model_id``."""
    return _facts().get(model_id, {}).get(key, default)


def measure() -> dict[str, dict]:
    """The live counts, ``{id: {"parameters": ..., ["macs_per_second": ...]}}`` (loads every model's runtime:
    seconds; for the test and for rewriting the file). Licences are not measured: they are stated here."""
    from . import deepfilternet, gtcrn_builtin, nsnet2, rnnoise

    out: dict[str, dict] = {"deepfilternet3": {"parameters": deepfilternet.parameter_count()}}
    for rate in nsnet2.VARIANTS:
        out[f"nsnet2-{rate // 1000}k"] = {"parameters": nsnet2.file_parameters(nsnet2.onnx_path(rate))}
    parameters, macs = rnnoise.network_size()
    out["rnnoise"] = {"parameters": parameters, "macs_per_second": macs}
    for model_id in gtcrn_builtin.VARIANTS:
        enh = gtcrn_builtin.build(model_id)
        out[model_id] = {"parameters": int(sum(p.numel() for p in enh.net.parameters()))}
    out["wpe-dereverb"] = {"parameters": 0}  # a statistical method: nothing is learned
    return out


def main(argv: list[str] | None = None) -> int:
    """Rewrite the counts in ``facts.json`` from the installed model packages (licences are kept)."""
    figures = {k: dict(v) for k, v in _facts().items()}
    for model_id, measured in measure().items():
        figures.setdefault(model_id, {}).update(measured)
    FACTS_FILE.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FACTS_FILE} ({len(figures)} models)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
