"""Load an enhancement model from a path a person picked: ONNX, TorchScript, PyTorch checkpoint or folder.

:func:`load_model_path` decides by suffix and content:

* ``.onnx``: recognised by graph signature (GTCRN streaming export, waveform graphs, streaming graphs
  with state pairs), or described by a model card next to the file. A lone DTLN stage is refused with
  a hint to load the folder.
* a folder: the DTLN pair (``model_1.onnx`` + ``model_2.onnx``, recognised by signature), a
  DeepFilterNet-family export (``enc.onnx``, ``erb_dec.onnx``, ``df_dec.onnx``, ``config.ini``: run with the
  parameters of its config), or exactly one model file (with its card).
* files are recognised by content first (:func:`sniff_model_kind`), so TorchScript saved as ``.ts`` or a
  checkpoint with an unusual suffix loads; zips are checked for bombs before anything is inflated.
* ``.pt``/``.pth``/``.tar``/``.ckpt``/``.bin``/``.zip``/``.jit``: a TorchScript archive (a zip holding
  ``constants.pkl`` and ``code/``) is opened with ``torch.jit.load``; anything else goes through
  ``torch.load(weights_only=True)``, which never executes code from the file. Plain state dicts (also
  wrapped in ``{'model': ...}`` or ``{'state_dict': ...}``) are matched to the architectures in this
  package by their parameter names (GTCRN so far); models trained in the workbench carry their
  architecture and arguments (``workbench_training``) and are rebuilt from them.

Everything that cannot be used raises :class:`ModelError` naming what was found and what is expected.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path

import torch

from workbench.core.enhance.enhancer import Enhancer
from workbench.core.errors import ModelError
from .onnx_models import load_onnx
from .dtln import find_dtln_pair, DtlnEnhancer
from .deepfilternet import GRAPH_NAMES, DeepFilterNetExport, is_deepfilternet_folder
from .gtcrn import GtcrnEnhancer, is_gtcrn_state_dict, unwrap_state_dict, SIGNATURE_KEYS
from .torchscript import load_torchscript
from .trained import is_trained_checkpoint, load_trained

ONNX_SUFFIXES = {".onnx"}
TORCH_SUFFIXES = {".pt", ".pth", ".tar", ".ckpt", ".bin", ".zip", ".jit", ".torchscript"}
#: Every model file suffix this loader opens: the one list the window's drop handling and model dialog use
#: (through ``load_model_path.suffixes`` and :func:`workbench.core.enhance.registry.model_suffixes`). A new
#: model format is a suffix here and its branch in :func:`load_model_path`.
MODEL_SUFFIXES = tuple(sorted(ONNX_SUFFIXES | TORCH_SUFFIXES))
REFUSED = ("refused: this checkpoint needs to execute code to load (pickled Python objects); "
           "only plain state dicts are loaded")


#: Zip archives may inflate to at most this many bytes in total, and no entry beyond
#: ``_ZIP_ENTRY_FREE_BYTES`` may inflate more than ``_ZIP_MAX_RATIO`` times (torch.save stores entries
#: uncompressed, so a real checkpoint has a ratio near 1; a zip bomb has thousands).
_ZIP_MAX_TOTAL_BYTES = 16 << 30
_ZIP_ENTRY_FREE_BYTES = 64 << 20
_ZIP_MAX_RATIO = 20
#: The pickle scan reads at most this many bytes and opcodes (a plain state dict needs a few per tensor).
_PICKLE_SCAN_MAX_BYTES = 32 << 20
_PICKLE_SCAN_MAX_OPS = 2_000_000


def _is_zip(path: Path) -> bool:
    """``zipfile.is_zipfile`` that never raises (it does raise BadZipFile on some damaged end records)."""
    try:
        return zipfile.is_zipfile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


def check_zip_sizes(path: Path) -> None:
    """Refuse a zip whose entries would inflate far beyond the file (checked from the central directory,
    before anything is inflated). No-op for files that are not zips."""
    if not _is_zip(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not readable as a zip: the loaders say so in their own words
    total = sum(i.file_size for i in infos)
    if total > _ZIP_MAX_TOTAL_BYTES:
        raise ModelError(f"{path}: the archive would inflate to {total / 2**30:.1f} GiB; refused (limit "
                         f"{_ZIP_MAX_TOTAL_BYTES >> 30} GiB)")
    for info in infos:
        if info.file_size > _ZIP_ENTRY_FREE_BYTES and info.file_size > _ZIP_MAX_RATIO * max(info.compress_size, 1):
            raise ModelError(f"{path}: archive entry {info.filename!r} would inflate from {info.compress_size} to "
                             f"{info.file_size} bytes; refused as a zip bomb (checkpoints are stored, not packed)")


def is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives are zips with ``<root>/constants.pkl`` and ``<root>/code/`` entries
    (a plain ``torch.save`` zip has ``data.pkl`` but no compiled code)."""
    if not _is_zip(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):  # names that are not UTF-8, cut-off archives
        return False
    has_constants = any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in names)
    has_code = any("/code/" in n or n.startswith("code/") for n in names)
    return has_constants and has_code


def sniff_model_kind(path: Path) -> str | None:
    """What the file's bytes say it is: ``"torchscript"`` (zip with ``constants.pkl`` and ``code/``),
    ``"checkpoint"`` (another zip, as torch.save writes, or a pickle), ``"onnx"`` (a protobuf
    ModelProto starting with its ``ir_version`` field), or ``None``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return None
    if head[:4] == b"PK\x03\x04":
        return "torchscript" if is_torchscript_archive(path) else "checkpoint"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "checkpoint"  # pickle protocol 2-5 (legacy torch.save files start with one too)
    # ModelProto: field 1 (ir_version, varint, tag 0x08) first, then e.g. producer_name (0x12) or
    # opset_import (0x42); ONNX files from every exporter start this way.
    if len(head) >= 4 and head[0] == 0x08 and 1 <= head[1] <= 0x20 and head[2] in (0x12, 0x1A, 0x22, 0x28, 0x3A, 0x42):
        return "onnx"
    return None


#: Pickle opcodes that import a name or call something while unpickling.
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD"}


def pickle_wants_code(path: Path) -> bool:
    """True when the file (or the ``data.pkl`` of a torch.save zip) is a well-formed pickle whose opcodes
    import names or call objects. Only *reads* the opcode stream with :mod:`pickletools`; nothing runs."""
    try:
        if _is_zip(path):
            with zipfile.ZipFile(path) as zf:
                info = next((i for i in zf.infolist() if i.filename.endswith("data.pkl")), None)
                if info is None or info.file_size > _PICKLE_SCAN_MAX_BYTES:
                    return False
                data = zf.read(info)
        else:
            with open(path, "rb") as fh:
                data = fh.read(_PICKLE_SCAN_MAX_BYTES)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False
    stream = io.BytesIO(data)
    ops = 0
    try:
        # Legacy torch.save files are several pickles in a row; scan each one (bounded: an opcode flood
        # must not cost minutes and gigabytes).
        while stream.tell() < len(data):
            before = stream.tell()
            for opcode, _arg, _pos in pickletools.genops(stream):
                if opcode.name in _CODE_OPCODES:
                    return True
                ops += 1
                if ops > _PICKLE_SCAN_MAX_OPS:
                    return False
            if stream.tell() == before:
                break
    except Exception:  # not a well-formed pickle: garbage, truncated or another format
        return False
    return False


def _check_pickle_size(path: Path) -> None:
    """Refuse a checkpoint whose pickle part is far larger than any state dict's (an opcode flood)."""
    try:
        if _is_zip(path):
            with zipfile.ZipFile(path) as zf:
                info = next((i for i in zf.infolist() if i.filename.endswith("data.pkl")), None)
            size = info.file_size if info is not None else 0
        else:
            size = 0  # legacy files hold pickle and tensor data interleaved; torch reads them in one pass
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    if size > _PICKLE_SCAN_MAX_BYTES:
        raise ModelError(f"{path}: its pickle (data.pkl) is {size} bytes, more than a state dict needs "
                         f"(limit {_PICKLE_SCAN_MAX_BYTES >> 20} MiB); refused")


NOT_TORCH = "not a PyTorch checkpoint or TorchScript archive"


def not_a_checkpoint(path: Path) -> str | None:
    """Why ``path`` cannot be a ``torch.save`` file, judged from its container (a zip holding ``data.pkl``)
    or its first byte (a pickle starts with the PROTO opcode 0x80); ``None`` when it may be one.

    Without this check torch's unpickler reports what it tripped over inside (``pop from empty list``,
    ``101``), which tells a person nothing about the file.
    """
    try:
        if _is_zip(path):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
            if any(n.endswith("data.pkl") for n in names):
                return None
            return f"{NOT_TORCH} (a zip archive without data.pkl or TorchScript code)"
        with open(path, "rb") as fh:
            head = fh.read(64)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        return f"cannot be read ({exc})"
    if head[:1] == b"\x80":
        return None
    text = head.decode("utf-8", "replace")
    if head and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        first = text.splitlines()[0][:40] if text.strip() else ""
        return f"{NOT_TORCH} (a text file starting {first!r})"
    return f"{NOT_TORCH} (unrecognised binary data)"


def load_checkpoint(path: Path) -> Enhancer:
    """A PyTorch checkpoint of an architecture defined in this package (weights only, never code)."""
    check_zip_sizes(path)
    _check_pickle_size(path)
    why = not_a_checkpoint(path)
    if why is not None:
        raise ModelError(f"{path}: {why}")
    try:
        with warnings.catch_warnings():
            # Old checkpoints (e.g. GTCRN's) use pickle protocol 4; torch warns but loads them fine.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global that is not a tensor/container type: report, never retry.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found or pickle_wants_code(path):
            hint = f" (it asks for {found.group(1)})" if found else ""
            raise ModelError(f"{path}: {REFUSED}{hint}") from None
        raise ModelError(f"{path}: cannot be read as a PyTorch checkpoint (not a valid pickle or torch.save "
                         "archive)") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: a damaged or truncated PyTorch checkpoint (torch.load: {first[:200]})") from None
    if is_trained_checkpoint(obj):
        return load_trained(path, obj)
    sd = unwrap_state_dict(obj)
    if sd is None:
        kind = type(obj).__name__
        keys = list(obj)[:8] if isinstance(obj, dict) else []
        raise ModelError(f"{path}: a PyTorch file holding a {kind}" + (f" with keys {keys}" if keys else "")
                         + ", not a state dict; expected a dict of tensors, or a dict with a 'model' or "
                         "'state_dict' entry holding one")
    if is_gtcrn_state_dict(sd):
        return GtcrnEnhancer.from_checkpoint(path, state_dict=sd)
    names = list(sd)[:6]
    raise ModelError(f"{path}: a state dict with {len(sd)} tensors (first names {names}) that matches no "
                     f"architecture in workbench_models; known: GTCRN (names such as {SIGNATURE_KEYS[0]!r}). "
                     "Export the model to ONNX or TorchScript to load it here")


def load_folder(folder: Path) -> Enhancer:
    pair = find_dtln_pair(folder)
    if pair is not None:
        return DtlnEnhancer(*pair, source=str(folder))
    if is_deepfilternet_folder(folder):
        return DeepFilterNetExport(folder)
    dfn_parts = [f"{n}.onnx" for n in GRAPH_NAMES] + ["config.ini"]
    present = [n for n in dfn_parts if (folder / n).is_file()]
    if len(present) >= 2 and "config.ini" in present or len(present) >= 3:
        missing = [n for n in dfn_parts if n not in present]
        raise ModelError(f"{folder}: looks like a DeepFilterNet export but lacks {', '.join(missing)}; "
                         f"expected {', '.join(dfn_parts)}")
    models = sorted(p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in ONNX_SUFFIXES | TORCH_SUFFIXES)
    if len(models) == 1:
        return load_model_path(models[0])
    found = ", ".join(p.name for p in models) or "no model files"
    raise ModelError(f"{folder}: a folder holding {found}; expected the two DTLN ONNX stages "
                     "(model_1.onnx and model_2.onnx), a DeepFilterNet export (enc.onnx, erb_dec.onnx, "
                     "df_dec.onnx and config.ini) or exactly one model file (with its card)")


def load_model_path(path: str | Path) -> Enhancer:
    """An :class:`Enhancer` for a model file or folder.

    Raises:
        ModelError: missing path, unsupported type, refused pickle, or unrecognised/broken model; the
            message names the file, what was found and what is expected.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    if path.is_dir():
        return load_folder(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file (a device, pipe or socket)")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: the file is empty")
    # Content first, suffix second: TorchScript saved as ``.ts``, a checkpoint named ``.model`` ...
    check_zip_sizes(path)
    kind = sniff_model_kind(path)
    if kind == "torchscript":
        return load_torchscript(path)
    if suffix in ONNX_SUFFIXES or (kind == "onnx" and suffix not in TORCH_SUFFIXES):
        return load_onnx(path)
    if suffix in TORCH_SUFFIXES or kind == "checkpoint":
        return load_checkpoint(path)
    raise ModelError(f"{path}: unsupported model file type {suffix or '(no suffix)'!r}; expected an ONNX file "
                     "(.onnx), a TorchScript module or PyTorch checkpoint (.pt, .pth, .tar, .ckpt), or a "
                     "folder (e.g. the two DTLN ONNX files)")


# The model files this loader opens, declared on the entry point itself (see registry.model_suffixes).
load_model_path.suffixes = MODEL_SUFFIXES
