"""The built-in enhancers, declared to the workbench as ``workbench.enhancers`` entry points.

Each function here is an entry-point target in the form plugins use: called with no arguments it
returns ``(EnhancerInfo, factory)``, where the info is cheap to get (no weights, no model runtime) and
``factory()`` builds the Enhancer. Adding a built-in is one line in ``pyproject.toml``::

    [project.entry-points."workbench.enhancers"]
    my-model = "workbench_models.builtins:my_model"

plus one function below, marked with :func:`listed` (its place in ``workbench models``), returning
``(info, build)``. Built-ins are listed by rank, then plugins by id.
"""

from __future__ import annotations

from typing import Callable

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo

Described = tuple[EnhancerInfo, Callable[[], Enhancer]]


def listed(rank: int) -> Callable[[Callable[[], Described]], Callable[[], Described]]:
    """Mark an entry-point target with its place in the built-in list (``fn.workbench_rank``; the
    registry sorts built-ins by it — entry-point discovery order is not defined)."""
    def mark(fn: Callable[[], Described]) -> Callable[[], Described]:
        fn.workbench_rank = rank
        return fn
    return mark


def _classical(method: str) -> Described:
    from .classical import ClassicalEnhancer
    return ClassicalEnhancer(method).info, (lambda: ClassicalEnhancer(method))  # info: cheap, no weights


@listed(10)
def spectral_subtraction() -> Described:
    return _classical("spectral-subtraction")


@listed(20)
def wiener() -> Described:
    return _classical("wiener")


@listed(30)
def logmmse() -> Described:
    return _classical("logmmse")


@listed(40)
def deepfilternet3() -> Described:
    from .deepfilternet import info

    def build() -> Enhancer:
        from .deepfilternet import DeepFilterNet3
        return DeepFilterNet3()
    return info(), build


def _nsnet2(rate: int) -> Described:
    from .nsnet2 import info

    def build() -> Enhancer:
        from .nsnet2 import NSNet2
        return NSNet2(rate)
    return info(rate), build


@listed(50)
def nsnet2_16k() -> Described:
    return _nsnet2(16000)


@listed(60)
def nsnet2_48k() -> Described:
    return _nsnet2(48000)


@listed(70)
def rnnoise() -> Described:
    from .rnnoise import info

    def build() -> Enhancer:
        from .rnnoise import RNNoise
        return RNNoise()
    return info(), build


def _gtcrn(model_id: str) -> Described:
    from .gtcrn_builtin import build, info
    return info(model_id), (lambda: build(model_id))


@listed(80)
def gtcrn_dns3() -> Described:
    return _gtcrn("gtcrn-dns3")


@listed(90)
def gtcrn_vctk() -> Described:
    return _gtcrn("gtcrn-vctk")


@listed(100)
def wpe_dereverb() -> Described:
    from .wpe import WpeDereverb, info
    return info(), WpeDereverb
