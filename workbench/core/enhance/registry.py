"""Where enhancers come from: built-ins and third-party plugins (entry points), and model files on disk.

``load_enhancer(spec)`` accepts

* a **built-in id** (``workbench models`` lists them; :func:`builtin_ids`) — declared by this project's own
  distribution as ``workbench.enhancers`` entry points (``pyproject.toml``, implemented in
  ``workbench_models.builtins``), exactly like plugins, so this docstring never needs the list;
* a **chain** ``A+B+...`` of any of these, applied in order (:mod:`workbench.core.enhance.chain`);
* a **plugin id** registered by another installed distribution (below);
* a **path** to a model file or folder (``.onnx``, TorchScript, PyTorch checkpoint, a folder holding
  DTLN's two ONNX files ...), handed to the loaders of the entry-point group ``workbench.model_loaders``
  (ours: ``workbench_models.loaders:load_model_path``) or to one added with :func:`register_model_loader`.

The core never imports ``workbench_models`` (an import-linter contract forbids it): everything model-
specific arrives through entry points.

Plugins
-------
A third-party package registers enhancers in the entry-point group ``workbench.enhancers``::

    # pyproject.toml of the plugin
    [project.entry-points."workbench.enhancers"]
    my-denoiser = "my_package.workbench_plugin:make_enhancer"

The entry-point name is the model id. The object it points to is either

* a callable taking no arguments and returning an :class:`~workbench.core.enhance.enhancer.Enhancer`, or
* a callable returning a pair ``(EnhancerInfo, factory)`` where ``factory()`` builds the Enhancer —
  this lets ``workbench models`` list the plugin without loading its weights.

Built-ins are the entry points of this project's distribution (:data:`DISTRIBUTION`), listed by the
``workbench_rank`` attribute of their target; plugins follow, sorted by id. A plugin that fails to import
or build is listed nowhere and reported by :func:`plugin_errors`; loading it raises :class:`ModelError`.
See ``tests/plugins/example_plugin`` for a complete example.

A plugin is code the workbench did not write, so it never runs in the program's own process: listing
imports the plugins in a sandboxed worker (:func:`~workbench.core.enhance.isolated.run_sandboxed`) and keeps
only their descriptions, and loading one starts a model worker
(:class:`~workbench.core.enhance.isolated.IsolatedEnhancer`) that imports and builds it there, under the
same Landlock rules as a model file: it gets its audio as data over a pipe and cannot write any file.
The worker offers the plugin's ``process_offline`` and ``new_stream`` (the engine's chunked and streaming
paths); other optional methods of a plugin's Enhancer are not reached through it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from functools import partial
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Callable

from .chain import is_chain_spec, parse_chain
from .enhancer import Enhancer, EnhancerInfo
from .isolated import IsolatedEnhancer, in_model_worker, run_sandboxed
from ..errors import ModelError, one_line

ENTRY_POINT_GROUP = "workbench.enhancers"


#: The distribution whose ``workbench.enhancers`` entry points are the built-ins.
DISTRIBUTION = "speech-enhancement-workbench"
LOADER_GROUP = "workbench.model_loaders"

_builtin_cache: dict[str, tuple[EnhancerInfo, Callable[[], Enhancer]]] = {}
_builtin_ranks: dict[str, float] = {}
#: Plugin id -> (info, factory); the factory is ``None`` when the plugin was described in the sandbox (its
#: code never ran in this process) and is then built only in a model worker.
_plugin_cache: dict[str, tuple[EnhancerInfo, Callable[[], Enhancer] | None]] = {}
_plugin_errors: dict[str, str] = {}
_builtin_errors: dict[str, str] = {}
_extra_loaders: list[Callable[[Path], Enhancer]] = []


def _dist_name(ep: EntryPoint) -> str:
    """The name of the distribution declaring ``ep``: the ``Name:`` header of its metadata.
    (``Distribution.name`` parses the whole metadata file, long description included, on every call: tens
    of milliseconds of every command's start-up for a dozen entry points.)"""
    dist = ep.dist
    if dist is not None:
        try:
            text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        except OSError:
            text = ""
        for line in text.splitlines():
            if not line.strip():
                break  # the headers end at the first empty line
            if line.lower().startswith("name:"):
                return line.split(":", 1)[1].strip()
        name = getattr(dist, "name", None)
        if name:
            return name
    return ep.value.split(":")[0].split(".")[0]


def _is_builtin(ep: EntryPoint) -> bool:
    return (_dist_name(ep) or "").replace("_", "-").lower() == DISTRIBUTION


def _entry_points() -> list[EntryPoint]:
    # One entry per name: an editable install can expose the same distribution twice.
    seen: dict[tuple[str, str], EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault((ep.name, ep.value), ep)
    return list(seen.values())


def _builtin_entry_points() -> list[EntryPoint]:
    """The ``workbench.enhancers`` entry points of :data:`DISTRIBUTION`, read from its own metadata: the
    ones :func:`_is_builtin` picks out of every installed distribution's, without reading the entry points
    of all of them and the metadata of each (8 ms of every run of a built-in, against 1 ms)."""
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that is not installed: no built-ins
        return []
    seen: dict[tuple[str, str], EntryPoint] = {}
    for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
        seen.setdefault((ep.name, ep.value), ep)
    return list(seen.values())


def _plugin_entry_points() -> list[EntryPoint]:
    return [ep for ep in _entry_points() if not _is_builtin(ep)]


def _builtin(name: str) -> tuple[EnhancerInfo, Callable[[], Enhancer]] | None:
    """One built-in's ``(info, factory)``, resolving only its own entry point: running one model imports
    that model's module alone, never the others' (nor their runtimes). ``None``: no built-in is called
    ``name``. A built-in that cannot be loaded raises its ModelError."""
    if name in _builtin_cache:
        return _builtin_cache[name]
    if name in _builtin_errors:
        raise ModelError(_builtin_errors[name])
    for ep in _builtin_entry_points():
        if ep.name != name:
            continue
        try:
            return _normalise(ep, ep.load(), "built-in")
        except Exception as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"built-in {ep.name!r} ({ep.value}): cannot be loaded: "
                             f"{type(exc).__name__}: {exc}") from None
    return None


def _builtins() -> dict[str, tuple[EnhancerInfo, Callable[[], Enhancer]]]:
    """Built-in id -> (info, factory), resolved once, in rank order. A built-in that cannot be loaded is
    listed nowhere and reported by :func:`plugin_errors` (loading it raises its ModelError)."""
    if not _builtin_cache:
        found = []
        for ep in _builtin_entry_points():
            try:
                obj = ep.load()
                info, factory = _normalise(ep, obj, "built-in")
            except Exception as exc:  # one broken built-in (a missing native library) must not hide the rest
                _builtin_errors[ep.name] = (str(exc) if isinstance(exc, ModelError) else
                                           f"built-in {ep.name!r} ({ep.value}): cannot be loaded: "
                                           f"{type(exc).__name__}: {exc}")
                continue
            found.append((getattr(obj, "workbench_rank", float("inf")), ep.name, info, factory))
        for rank, name, info, factory in sorted(found, key=lambda t: (t[0], t[1])):
            _builtin_cache[name] = (info, factory)
            _builtin_ranks[name] = rank
    return _builtin_cache


def _normalise(ep: EntryPoint, obj, source: str) -> tuple[EnhancerInfo, Callable[[], Enhancer]]:
    def where() -> str:  # only for an error: the distribution's name is read from its metadata file
        return f"{'built-in' if source == 'built-in' else 'plugin'} {ep.name!r} ({ep.value}, distribution {_dist_name(ep)})"

    if not callable(obj):
        raise ModelError(f"{where()}: entry point is a {type(obj).__name__}, expected a callable returning an "
                         "Enhancer or (EnhancerInfo, factory)")
    try:
        made = obj()
    except Exception as exc:
        raise ModelError(f"{where()}: failed while building: {type(exc).__name__}: {exc}") from None
    if isinstance(made, Enhancer):
        info, factory = made.info, (lambda made=made: made)
    elif (isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], EnhancerInfo)
          and callable(made[1])):
        info, factory = made
    else:
        raise ModelError(f"{where()}: returned {type(made).__name__}, expected an Enhancer or (EnhancerInfo, factory)")
    if info.id != ep.name:
        info = replace(info, id=ep.name)
    return replace(info, source=source), factory


def _resolve_plugin(ep: EntryPoint) -> tuple[EnhancerInfo, Callable[[], Enhancer]]:
    """Import an entry point and normalise it to ``(info, factory)``; raises ModelError."""
    dist = _dist_name(ep)
    where = f"plugin {ep.name!r} ({ep.value}, distribution {dist})"
    try:
        obj = ep.load()
    except Exception as exc:
        raise ModelError(f"{where}: cannot be imported: {type(exc).__name__}: {exc}") from None
    return _normalise(ep, obj, f"plugin:{dist}")


def isolation_on() -> bool:
    """Whether plugins and model files (and, in the window, models whose runtime is not loaded yet) run in
    sandboxed worker processes (``WORKBENCH_ISOLATE_MODELS=0`` turns it off; inside a worker everything
    loads in process)."""
    return not in_model_worker() and os.environ.get("WORKBENCH_ISOLATE_MODELS", "1").strip() != "0"


def plugin_folders() -> list[str]:
    """Where the plugins' top-level packages lie (found by the import system's finders, so an editable
    install's source folder outside ``sys.path`` is found too; no plugin code runs): the sandboxed worker may
    read them."""
    import importlib.util

    folders: list[str] = []
    for ep in _plugin_entry_points():
        top = ep.value.split(":")[0].split(".")[0].strip()
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError, AttributeError):
            continue
        if spec is None:
            continue
        folders += [str(p) for p in (spec.submodule_search_locations or [])]
        if spec.origin and os.path.isabs(spec.origin):
            folders.append(os.path.dirname(spec.origin))
    return folders


def _describe_plugins() -> tuple[dict[str, EnhancerInfo], dict[str, str]]:
    """Import and describe every plugin here (run in a sandboxed worker): ``(infos, errors)``."""
    found = _plugins(refresh=True)
    return {name: info for name, (info, _factory) in found.items()}, dict(_plugin_errors)


def _plugins(refresh: bool = False) -> dict[str, tuple[EnhancerInfo, Callable[[], Enhancer] | None]]:
    if refresh:
        _plugin_cache.clear()
        _plugin_errors.clear()
    plugin_eps = _plugin_entry_points()
    if plugin_eps and isolation_on():
        # A plugin's module is code the workbench did not write: it is imported (and described) only in a
        # sandboxed worker, never in this process; loading it later starts a model worker.
        if not any(ep.name in _plugin_cache or ep.name in _plugin_errors for ep in plugin_eps):
            try:
                (infos, errors), _problem = run_sandboxed(_describe_plugins, what="listing plugins",
                                                          readable=plugin_folders())
            except ModelError as exc:
                for ep in plugin_eps:
                    _plugin_errors[ep.name] = f"plugin {ep.name!r} ({ep.value}): {exc}"
                return _plugin_cache
            _plugin_cache.update({name: (info, None) for name, info in infos.items()})
            _plugin_errors.update(errors)
        return _plugin_cache
    for ep in plugin_eps:
        if ep.name in _plugin_cache or ep.name in _plugin_errors:
            continue
        if ep.name in _builtins():
            _plugin_errors[ep.name] = f"plugin {ep.name!r} ({ep.value}) clashes with a built-in id; ignored"
            continue
        try:
            _plugin_cache[ep.name] = _resolve_plugin(ep)
        except ModelError as exc:
            _plugin_errors[ep.name] = str(exc)
    return _plugin_cache


def plugin_errors(refresh: bool = False) -> dict[str, str]:
    """Built-ins and plugins that could not be loaded: id -> message."""
    _builtins()
    _plugins(refresh)
    return {**_builtin_errors, **_plugin_errors}


def list_enhancers(refresh: bool = False) -> list[EnhancerInfo]:
    """Every available enhancer: the built-ins (in a fixed order), then plugins sorted by id.

    Args:
        refresh: re-scan installed distributions for plugins (e.g. after ``sys.path`` changed).
    """
    return [info for info, _origin in list_enhancer_entries(refresh)]


def list_enhancer_entries(refresh: bool = False) -> list[tuple[EnhancerInfo, str]]:
    """As :func:`list_enhancers`, with each model's origin: ``"built-in"`` or ``"plugin"``."""
    out = [(info, "built-in") for info, _ in _builtins().values()]
    out += [(info, "plugin") for _, (info, _) in sorted(_plugins(refresh).items())]
    return out


def builtin_ids() -> list[str]:
    return list(_builtins())


def is_registered_id(spec: str | Path) -> bool:
    """Whether ``spec`` names a built-in or a (working) plugin rather than a path."""
    return isinstance(spec, str) and (spec in _builtins() or spec in _plugins())


def register_model_loader(loader: Callable[[Path], Enhancer]) -> None:
    """Add a loader for model paths besides the ``workbench.model_loaders`` entry points (tried first).
    A loader takes a path and returns an Enhancer, or raises ModelError when it cannot load it."""
    if loader not in _extra_loaders:
        _extra_loaders.insert(0, loader)


def unregister_model_loader(loader: Callable[[Path], Enhancer]) -> None:
    if loader in _extra_loaders:
        _extra_loaders.remove(loader)


def model_loaders() -> list[tuple[str, Callable[[Path], Enhancer]]]:
    """``(name, loader)`` for every path loader: registered ones, then entry points (ours first)."""
    out = [(getattr(fn, "__name__", "loader"), fn) for fn in _extra_loaders]
    eps = sorted({(ep.name, ep.value): ep for ep in entry_points(group=LOADER_GROUP)}.values(),
                 key=lambda ep: (not _is_builtin(ep), ep.name))
    for ep in eps:
        try:
            out.append((f"{ep.name} ({ep.value})", ep.load()))
        except Exception as exc:  # a broken third-party loader must not hide ours
            _plugin_errors[f"loader:{ep.name}"] = f"model loader {ep.value}: cannot be imported: {exc}"
    return out


def model_suffixes() -> tuple[str, ...]:
    """Every model file suffix a loader declares (its ``suffixes`` attribute), lower case with the dot, sorted.

    A dropped or chosen file with one of these is a model, never audio; a folder holding one is a model folder.
    """
    return tuple(sorted({s.lower() for _name, fn in model_loaders() for s in getattr(fn, "suffixes", ())}))


def runtime_not_loaded(info: EnhancerInfo) -> bool:
    """Whether the model needs a heavy runtime (``info.extra["runtime"]``, a module name such as ``torch``)
    that this process has not imported yet.

    Importing torch takes seconds and holds the interpreter lock for long stretches (its native module's
    set-up), whichever thread imports it: a window that runs such a model in a child process instead
    (:func:`load_in_child`) keeps answering."""
    runtime = str((info.extra or {}).get("runtime") or "")
    return bool(runtime) and runtime not in sys.modules


def load_in_child(spec: str | Path) -> Enhancer:
    """The enhancer ``spec`` names (a built-in id, a plugin id or a path), loaded and run in a child process
    (:class:`~workbench.core.enhance.isolated.IsolatedEnhancer`): this process imports nothing of its runtime.
    ``close()`` it after use (that ends the child)."""
    return IsolatedEnhancer(str(spec), loader=partial(load_enhancer, isolate=False))


def load_enhancer(spec: str | Path, *, isolate: bool = False) -> Enhancer:
    """Build the enhancer named by ``spec`` (built-in id, plugin id, or model path).

    Args:
        isolate: load a model *file* in a child process (:class:`~workbench.core.enhance.isolated.IsolatedEnhancer`)
            so its calls can be stopped by Ctrl-C, Cancel or a time budget and a crash of the model's
            runtime cannot take the program down. The CLI and the GUI pass True; built-ins always run
            in process. Plugins always run in such a sandboxed worker, whatever ``isolate`` says (and
            are listed by importing them in one). ``WORKBENCH_ISOLATE_MODELS=0`` turns both off.

    Raises:
        ModelError: unknown id, missing file, or a model that cannot be loaded, with the reason.
    """
    if isinstance(spec, str):
        own = _builtin(spec)
        if own is not None:
            return own[1]()
    if is_chain_spec(spec) and not Path(spec).exists():
        return parse_chain(spec, partial(load_enhancer, isolate=isolate), lambda: builtin_ids() + sorted(_plugins()))
    if isinstance(spec, str):
        plugins = _plugins()
        if spec in plugins:
            info, factory = plugins[spec]
            if factory is None or isolation_on():
                # Plugins always run in a sandboxed worker: inputs go over as data, no file can be written.
                return IsolatedEnhancer(spec, loader=partial(load_enhancer, isolate=False),
                                        readable=plugin_folders())
            try:
                enh = factory()
            except Exception as exc:
                raise ModelError(f"plugin {spec!r}: failed to build: {type(exc).__name__}: {exc}") from None
            if not isinstance(enh, Enhancer):
                raise ModelError(f"plugin {spec!r}: factory returned {type(enh).__name__}, expected an Enhancer")
            enh.info = replace(enh.info, id=info.id, source=info.source)
            return enh
        if spec in _plugin_errors or spec in _builtin_errors:
            raise ModelError(_plugin_errors.get(spec) or _builtin_errors[spec])
    path = Path(spec)
    if not path.exists():
        known = ", ".join(builtin_ids() + sorted(_plugins()))
        raise ModelError(f"{spec}: not a model id or an existing file/folder; known ids: {known}")
    if isolate and isolation_on():
        return IsolatedEnhancer(str(path), loader=partial(load_enhancer, isolate=False))
    loaders = model_loaders()
    if not loaders:
        raise ModelError(f"{path}: loading model files is not available in this build "
                         f"(no '{LOADER_GROUP}' entry point is installed)")
    first_error: ModelError | None = None
    for _name, loader in loaders:
        try:
            enh = loader(path)
        except ModelError as exc:
            first_error = first_error or exc
            continue
        except Exception as exc:  # a loader bug or an unexpected file must not take the app down
            raise ModelError(f"{path}: could not be loaded: {one_line(exc)}") from exc
        if not isinstance(enh, Enhancer):
            raise ModelError(f"{path}: loader returned {type(enh).__name__}, expected an Enhancer")
        return enh
    raise first_error
