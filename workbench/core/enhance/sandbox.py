"""No file writes, and reads only where a model needs them, in the model worker: a Landlock ruleset.

A model file or a plugin is code the workbench did not write. The worker process that loads and runs it
(:mod:`workbench.core.enhance.isolated`) calls :func:`forbid_file_writes` before the model is loaded, so
nothing the model does — a TorchScript ``__setstate__`` that runs at load, a plugin's import, a ``forward``
that maps a file — can create, write, truncate, rename or remove a file anywhere: the kernel refuses
(``EACCES``). The pipe the audio travels through is not a file path and stays open.

Reading is limited as well (:func:`readable_paths`): Python's installation and every ``sys.path`` entry
(site-packages, the workbench's own source, a plugin's folder), the system folders shared libraries and
their configuration come from (``/usr``, ``/lib*``, ``/etc``, ``/opt``), ``/proc``, ``/sys`` and ``/dev``,
the workbench's own cache of rewritten graphs, and the model's own file or folder (with the folder around a model file, for its external weights and
cards). Anything else — the person's home, other recordings, the temporary folder — cannot be opened.

Landlock is Linux's unprivileged sandbox (kernel 5.13 and later, when the ``landlock`` LSM is enabled); the
three system calls are made through ``ctypes`` (their numbers are the same on every architecture, being
newer than the unified table). Where it is missing :func:`forbid_file_writes` returns why, and the
caller says so; nothing else changes.
"""

from __future__ import annotations

import ctypes
import os
import sys

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
#: Reading rights (ABI 1): handled, so that only the folders of :func:`readable_paths` can be read.
_READ_RIGHTS = _EXECUTE | _READ_FILE | _READ_DIR
#: Every right that changes the file system, by the ABI version that introduced it.
_WRITE_RIGHTS = {
    1: (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11)
    | (1 << 12),                                # write, remove dir/file, make char/dir/reg/sock/fifo/block/sym
    2: 1 << 13,                                 # REFER: link or rename across folders
    3: 1 << 14,                                 # TRUNCATE
}
_TRUNCATE = 1 << 14

#: Devices a library may open for writing without touching a person's files.
_WRITABLE_DEVICES = ("/dev/null",)
#: System folders shared libraries, their data and the kernel's views come from (read only).
_SYSTEM_FOLDERS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/opt", "/proc",
                   "/sys", "/dev")


def readable_paths(extra=()) -> list[str]:
    """What the worker may read: Python's installation, every ``sys.path`` entry (the current folder
    excepted), the folders of the workbench's own packages, the workbench's own cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``, ``/speech-enhancement-workbench``), the system folders, and
    ``extra`` (a model file brings its folder along, for external weights and cards)."""
    import importlib.util

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *_SYSTEM_FOLDERS}
    # The workbench's own cache (rewritten and exported graphs, keyed by content): read, never written, here.
    paths.add(os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                           "speech-enhancement-workbench"))
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    for package in ("workbench", "workbench_models"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec is not None else []:
            paths.add(os.path.dirname(os.path.abspath(location)) if package == "workbench" else location)
    for given in extra:
        for item in {os.path.abspath(os.fspath(given)), os.path.realpath(os.fspath(given))}:  # a link and its target
            paths.add(item)
            if os.path.isfile(item):
                paths.add(os.path.dirname(item))
    return sorted(p for p in paths if p)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when it has none (not Linux, too old, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        version = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def _add_rule(libc, ruleset_fd: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            rights &= ~_READ_DIR  # a file rule takes file rights only
        rule = _PathBeneath(rights, fd)
        libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                     ctypes.c_uint32(0))
    finally:
        os.close(fd)


def forbid_file_writes(readable=None) -> str | None:
    """Forbid this process (and every process it starts) to change any file and to read outside
    :func:`readable_paths` (``readable``: further paths, e.g. the model file); ``None`` on success, else
    the reason it is not possible here (returned, not raised: the caller decides what to say).

    ``WORKBENCH_SANDBOX_READS=0`` leaves reading open (writes stay forbidden)."""
    abi = landlock_abi()
    if abi <= 0:
        return "the kernel offers no Landlock sandbox (Linux 5.13 or later with the landlock LSM enabled)"
    rights = 0
    for version, bits in _WRITE_RIGHTS.items():
        if abi >= version:
            rights |= bits
    limit_reads = os.environ.get("WORKBENCH_SANDBOX_READS", "1").strip() != "0"
    if limit_reads:
        rights |= _READ_RIGHTS
    libc = ctypes.CDLL(None, use_errno=True)
    handled = ctypes.c_uint64(rights)
    fd = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(handled), ctypes.c_size_t(8), ctypes.c_uint32(0))
    if fd < 0:
        return f"Landlock refused the ruleset ({os.strerror(ctypes.get_errno())})"
    try:
        if limit_reads:
            for path in readable_paths(readable or ()):
                _add_rule(libc, fd, path, _READ_RIGHTS)
        for device in _WRITABLE_DEVICES:
            _add_rule(libc, fd, device, _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0)
                      | (_READ_FILE if limit_reads else 0))
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"no_new_privs could not be set ({os.strerror(ctypes.get_errno())})"
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return f"Landlock could not restrict the process ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(fd)
    return None
