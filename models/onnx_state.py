"""ONNX networks whose time-carried state is made explicit, so a recording can run through them in
chunks that join exactly as one whole-file call would (GRU hidden states, causal convolutions' past frames).

Rewriting needs the ``onnx`` package; the rewritten graphs are kept in the user's cache by content, so
only a model's first run pays for importing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def stateful_graph(blob: bytes) -> tuple[bytes, dict[str, tuple[int, ...]], dict[str, str]]:
    """The ONNX graph ``blob`` with its time-carried state made explicit, so consecutive chunks of one
    recording run exactly as one whole-file call would.

    * Every ``GRU`` node's initial hidden state (zeros in the export) becomes a graph input
      ``h0:<node>`` ``(1, 1, hidden)``, and its final state ``Y_h`` a graph output.
    * Every time-axis ``Pad`` in front of a causal convolution with a time kernel ``k > 1`` (zeros before
      the first frame in the export) becomes ``Concat(ctx:<tensor>, tensor)`` along time, with
      ``ctx:<tensor>`` ``(1, channels, k - 1, bins)`` a graph input: the last ``k - 1`` frames the
      convolution read in the previous chunk.

    Returns:
        ``(blob, {state input: shape}, {state output: state input it feeds next time})``; context
        inputs are filled by the caller from the tensors it fed (see :class:`DeepFilterNet3ChunkStream`).
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(blob)
    graph = model.graph
    conv_kernel_t = {}
    for node in graph.node:
        if node.op_type == "Conv":
            kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), [1])
            conv_kernel_t[node.input[0]] = kernel[0]
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in graph.input}
    inputs: dict[str, tuple[int, ...]] = {}
    carried: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "GRU":
            hidden = next(a.i for a in node.attribute if a.name == "hidden_size")
            h0 = f"h0:{node.name}"
            while len(node.input) < 6:
                node.input.append("")
            node.input[5] = h0
            while len(node.output) < 2:
                node.output.append("")
            if not node.output[1]:
                node.output[1] = f"h1:{node.name}"
            inputs[h0] = (1, 1, hidden)
            carried[node.output[1]] = h0
            graph.output.append(helper.make_tensor_value_info(node.output[1], TensorProto.FLOAT, [1, 1, hidden]))
        elif node.op_type == "Pad" and conv_kernel_t.get(node.output[0], 1) > 1:
            k = conv_kernel_t[node.output[0]]
            src = node.input[0]
            dims = shapes.get(src)
            ctx = f"ctx:{src}"
            inputs[ctx] = (1, (dims[1] if dims else 0) or 0, k - 1, (dims[3] if dims else 0) or 0)
            node = helper.make_node("Concat", [ctx, src], [node.output[0]], axis=2, name=node.name + "/carried")
        nodes.append(node)
    for name, shape in inputs.items():
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString(), inputs, carried


#: Changes whenever :func:`stateful_graph` would write other graphs (cached rewrites are keyed by it).
REWRITE_VERSION = 1


def graph_cache_dir() -> Path:
    """Where rewritten graphs are kept: ``$XDG_CACHE_HOME`` (else ``~/.cache``) ``/speech-enhancement-workbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "speech-enhancement-workbench" / "onnx-state"


def source_key(path: Path) -> str:
    """A cheap identity of a model file: its resolved path, size and modification time."""
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _source_entry_path(source: str) -> Path:
    return graph_cache_dir() / "sources" / f"{hashlib.sha256(source.encode()).hexdigest()[:32]}.json"


def read_source_entry(source: str) -> dict:
    """What the cache remembers about the model file ``source`` (:func:`source_key`); empty when nothing."""
    try:
        entry = json.loads(_source_entry_path(source).read_text())
    except (OSError, ValueError):
        return {}
    return entry if isinstance(entry, dict) and entry.get("source") == source else {}


def remember_source(source: str, **values) -> None:
    """Add ``values`` (JSON-able) to what the cache remembers about ``source``; a failed write is ignored
    (the next run reads the model file again)."""
    entry = {**read_source_entry(source), **values, "source": source}
    path = _source_entry_path(source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps(entry).encode())
    except OSError:
        pass


def _stateful_entry(source: str) -> dict:
    known = read_source_entry(source).get("stateful")
    return known if isinstance(known, dict) else {}


def _read_folder(folder: Path, names=None) -> dict[str, tuple[bytes, dict, dict]]:
    """The rewritten set kept in ``folder``: ``names`` (default: every network ``states.json`` lists)."""
    meta = json.loads((folder / "states.json").read_text())
    return {name: ((folder / f"{name}.onnx").read_bytes(),
                   {k: tuple(v) for k, v in meta[name]["inputs"].items()}, dict(meta[name]["carried"]))
            for name in (sorted(meta) if names is None else names)}


def stateful_graphs(graphs: dict[str, bytes] | Callable[[], dict[str, bytes]],
                    prepare: Callable[[bytes], bytes] | None = None, prepare_tag: str = "", *,
                    source: str | None = None,
                    finish: Callable[[dict[str, tuple[bytes, dict, dict]]], dict[str, tuple[bytes, dict, dict]]]
                    | None = None) -> dict[str, tuple[bytes, dict, dict]]:
    """:func:`stateful_graph` of each network (after ``prepare``, a rewrite of each graph, and before
    ``finish``, a rewrite of the whole set, which may join networks; ``prepare_tag`` names the two
    together), kept on disk by content.

    ``graphs`` may be a function returning them; with ``source`` (the :func:`source_key` of the file they
    come from) a run whose rewritten graphs are cached calls it not at all: the cache remembers which
    rewritten set belongs to that file, so nothing is unpacked or hashed (DeepFilterNet3's tarball takes
    a tenth of a second to unpack).

    Rewriting needs the ``onnx`` package, whose import alone costs about a second: the first run writes
    the rewritten graphs to :func:`graph_cache_dir` (atomically; an unwritable cache only costs that
    second again), later runs read them back without importing ``onnx``.
    """
    variant = f"v{REWRITE_VERSION}/{prepare_tag if prepare or finish else ''}"
    if source is not None:
        known = _stateful_entry(source).get(variant)
        if isinstance(known, dict) and isinstance(known.get("folder"), str) and isinstance(known.get("names"), list):
            try:
                return _read_folder(graph_cache_dir() / known["folder"], known["names"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
    if callable(graphs):
        graphs = graphs()
    digest = hashlib.sha256(variant.encode())
    for name in sorted(graphs):
        digest.update(name.encode() + hashlib.sha256(graphs[name]).digest())
    folder = graph_cache_dir() / digest.hexdigest()[:32]

    def remember(names) -> None:
        if source is not None:
            stateful = {**_stateful_entry(source), variant: {"folder": folder.name, "names": sorted(names)}}
            remember_source(source, stateful=stateful)

    try:
        made = _read_folder(folder)
        remember(made)
        return made
    except (OSError, ValueError, KeyError):
        pass
    made = {name: stateful_graph(prepare(blob) if prepare else blob) for name, blob in graphs.items()}
    if finish is not None:
        made = finish(made)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, (blob, _, _) in made.items():
            _write_atomic(folder / f"{name}.onnx", blob)
        meta = {name: {"inputs": {k: list(v) for k, v in inputs.items()}, "carried": carried}
                for name, (_, inputs, carried) in made.items()}
        _write_atomic(folder / "states.json", json.dumps(meta).encode())  # written last: marks the set complete
        remember(made)
    except OSError:
        pass  # read-only home or full disk: run without the cache
    return made


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
