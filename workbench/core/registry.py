"""Where enhancers come from: built-in ids, third-party plugins, and model files on disk.

``load_enhancer(spec)`` accepts

* a **built-in id**: ``spectral-subtraction``, ``wiener``, ``logmmse`` (classical, :mod:`workbench_models.classical`),
  ``deepfilternet3`` (:mod:`workbench_models.deepfilternet`), ``nsnet2-16k``, ``nsnet2-48k``
  (:mod:`workbench_models.nsnet2`);
* a **plugin id** registered by another installed distribution (below);
* a **path** to a model file or folder (``.onnx``, TorchScript, PyTorch checkpoint, a folder holding
  DTLN's two ONNX files ...), handed to ``workbench_models.loaders.load_model_path``.

Plugins
-------
A third-party package registers enhancers in the entry-point group ``workbench.enhancers``::

    # pyproject.toml of the plugin
    [project.entry-points."workbench.enhancers"]
    my-denoiser = "my_package.workbench_plugin:make_enhancer"

The entry-point name is the model id. The object it points to is either

* a callable taking no arguments and returning an :class:`~workbench.core.enhancer.Enhancer`, or
* a callable returning a pair ``(EnhancerInfo, factory)`` where ``factory()`` builds the Enhancer —
  this lets ``workbench models`` list the plugin without loading its weights.

Listing (:func:`list_enhancers`) never loads heavy weights: built-ins describe themselves statically,
and for plugins of the first kind the enhancer is built once and cached. A plugin that fails to import
or build is listed nowhere and reported by :func:`plugin_errors`; loading it raises :class:`ModelError`.
See ``tests/plugins/example_plugin`` for a complete example.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Callable

from .enhancer import Enhancer, EnhancerInfo
from .errors import ModelError, one_line

ENTRY_POINT_GROUP = "workbench.enhancers"


def _classical(method: str) -> Callable[[], Enhancer]:
    def build() -> Enhancer:
        from workbench_models.classical import ClassicalEnhancer
        return ClassicalEnhancer(method)
    return build


def _classical_info(method: str) -> Callable[[], EnhancerInfo]:
    def describe() -> EnhancerInfo:
        from workbench_models.classical import ClassicalEnhancer
        return ClassicalEnhancer(method).info  # cheap: no weights
    return describe


def _dfn3() -> Enhancer:
    from workbench_models.deepfilternet import DeepFilterNet3
    return DeepFilterNet3()


def _dfn3_info() -> EnhancerInfo:
    from workbench_models.deepfilternet import info
    return info()


def _nsnet2(rate: int) -> tuple[Callable[[], EnhancerInfo], Callable[[], Enhancer]]:
    def describe() -> EnhancerInfo:
        from workbench_models.nsnet2 import info
        return info(rate)

    def build() -> Enhancer:
        from workbench_models.nsnet2 import NSNet2
        return NSNet2(rate)
    return describe, build


#: id -> (describe, build). ``describe`` is cheap; ``build`` may load weights.
BUILTINS: dict[str, tuple[Callable[[], EnhancerInfo], Callable[[], Enhancer]]] = {
    "spectral-subtraction": (_classical_info("spectral-subtraction"), _classical("spectral-subtraction")),
    "wiener": (_classical_info("wiener"), _classical("wiener")),
    "logmmse": (_classical_info("logmmse"), _classical("logmmse")),
    "deepfilternet3": (_dfn3_info, _dfn3),
    "nsnet2-16k": _nsnet2(16000),
    "nsnet2-48k": _nsnet2(48000),
}

_plugin_cache: dict[str, tuple[EnhancerInfo, Callable[[], Enhancer]]] = {}
_plugin_errors: dict[str, str] = {}


def _plugin_entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _resolve_plugin(ep: EntryPoint) -> tuple[EnhancerInfo, Callable[[], Enhancer]]:
    """Import an entry point and normalise it to ``(info, factory)``; raises ModelError."""
    dist = getattr(ep.dist, "name", None) or ep.value.split(":")[0].split(".")[0]
    where = f"plugin {ep.name!r} ({ep.value}, distribution {dist})"
    try:
        obj = ep.load()
    except Exception as exc:
        raise ModelError(f"{where}: cannot be imported: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise ModelError(f"{where}: entry point is a {type(obj).__name__}, expected a callable returning an "
                         "Enhancer or (EnhancerInfo, factory)")
    try:
        made = obj()
    except Exception as exc:
        raise ModelError(f"{where}: failed while building: {type(exc).__name__}: {exc}") from None
    if isinstance(made, Enhancer):
        info, factory = made.info, (lambda made=made: made)
    elif (isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], EnhancerInfo)
          and callable(made[1])):
        info, factory = made
    else:
        raise ModelError(f"{where}: returned {type(made).__name__}, expected an Enhancer or (EnhancerInfo, factory)")
    if info.id != ep.name:
        info = replace(info, id=ep.name)
    return replace(info, source=f"plugin:{dist}"), factory


def _plugins(refresh: bool = False) -> dict[str, tuple[EnhancerInfo, Callable[[], Enhancer]]]:
    if refresh:
        _plugin_cache.clear()
        _plugin_errors.clear()
    for ep in _plugin_entry_points():
        if ep.name in _plugin_cache or ep.name in _plugin_errors:
            continue
        if ep.name in BUILTINS:
            _plugin_errors[ep.name] = f"plugin {ep.name!r} ({ep.value}) clashes with a built-in id; ignored"
            continue
        try:
            _plugin_cache[ep.name] = _resolve_plugin(ep)
        except ModelError as exc:
            _plugin_errors[ep.name] = str(exc)
    return _plugin_cache


def plugin_errors(refresh: bool = False) -> dict[str, str]:
    """Plugins that could not be loaded: id -> message."""
    _plugins(refresh)
    return dict(_plugin_errors)


def list_enhancers(refresh: bool = False) -> list[EnhancerInfo]:
    """Every available enhancer: the built-ins (in a fixed order), then plugins sorted by id.

    Args:
        refresh: re-scan installed distributions for plugins (e.g. after ``sys.path`` changed).
    """
    out = [describe() for describe, _ in BUILTINS.values()]
    out += [info for _, (info, _) in sorted(_plugins(refresh).items())]
    return out


def builtin_ids() -> list[str]:
    return list(BUILTINS)


def load_enhancer(spec: str | Path, *, isolate: bool = False) -> Enhancer:
    """Build the enhancer named by ``spec`` (built-in id, plugin id, or model path).

    Args:
        isolate: load a model *file* in a child process (:class:`~workbench.core.isolated.IsolatedEnhancer`)
            so its calls can be stopped by Ctrl-C, Cancel or a time budget and a crash of the model's
            runtime cannot take the program down. The CLI and the GUI pass True; built-ins and plugins
            always run in process. ``WORKBENCH_ISOLATE_MODELS=0`` turns it off.

    Raises:
        ModelError: unknown id, missing file, or a model that cannot be loaded, with the reason.
    """
    if isinstance(spec, str) and spec in BUILTINS:
        return BUILTINS[spec][1]()
    if isinstance(spec, str):
        plugins = _plugins()
        if spec in plugins:
            info, factory = plugins[spec]
            try:
                enh = factory()
            except Exception as exc:
                raise ModelError(f"plugin {spec!r}: failed to build: {type(exc).__name__}: {exc}") from None
            if not isinstance(enh, Enhancer):
                raise ModelError(f"plugin {spec!r}: factory returned {type(enh).__name__}, expected an Enhancer")
            enh.info = replace(enh.info, id=info.id, source=info.source)
            return enh
        if spec in _plugin_errors:
            raise ModelError(_plugin_errors[spec])
    path = Path(spec)
    if not path.exists():
        known = ", ".join(builtin_ids() + sorted(_plugins()))
        raise ModelError(f"{spec}: not a model id or an existing file/folder; known ids: {known}")
    if isolate and os.environ.get("WORKBENCH_ISOLATE_MODELS", "1").strip() != "0":
        from .isolated import IsolatedEnhancer

        return IsolatedEnhancer(str(path))
    try:
        loaders = importlib.import_module("workbench_models.loaders")
    except ModuleNotFoundError as exc:
        if exc.name == "workbench_models.loaders":
            raise ModelError(f"{path}: loading model files is not available in this build "
                             "(workbench_models.loaders is missing)") from None
        raise
    try:
        enh = loaders.load_model_path(path)
    except ModelError:
        raise
    except Exception as exc:  # a loader bug or an unexpected file must not take the app down
        raise ModelError(f"{path}: could not be loaded: {one_line(exc)}") from exc
    if not isinstance(enh, Enhancer):
        raise ModelError(f"{path}: loader returned {type(enh).__name__}, expected an Enhancer")
    return enh
