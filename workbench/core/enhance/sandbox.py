"""No file writes from the model worker process: a Landlock ruleset where the kernel offers one.

A model file is code the workbench did not write. The worker process that loads and runs it
(:mod:`workbench.core.enhance.isolated`) calls :func:`forbid_file_writes` before the model is loaded, so
nothing the model does — a TorchScript ``__setstate__`` that runs at load, a ``forward`` that maps a file —
can create, write, truncate, rename or remove a file anywhere: the kernel refuses (``EACCES``). Reading
stays allowed (the model's own weights, shared libraries), and so does the pipe the audio travels through.

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

_WRITE_FILE = 1 << 1
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


def forbid_file_writes() -> str | None:
    """Forbid this process (and every process it starts) to change any file; ``None`` on success, else the
    reason it is not possible here (returned, not raised: the caller decides what to say)."""
    abi = landlock_abi()
    if abi <= 0:
        return "the kernel offers no Landlock sandbox (Linux 5.13 or later with the landlock LSM enabled)"
    rights = 0
    for version, bits in _WRITE_RIGHTS.items():
        if abi >= version:
            rights |= bits
    libc = ctypes.CDLL(None, use_errno=True)
    handled = ctypes.c_uint64(rights)
    fd = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(handled), ctypes.c_size_t(8), ctypes.c_uint32(0))
    if fd < 0:
        return f"Landlock refused the ruleset ({os.strerror(ctypes.get_errno())})"
    try:
        for device in _WRITABLE_DEVICES:
            try:
                dev_fd = os.open(device, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                rule = _PathBeneath(_WRITE_FILE | (_TRUNCATE if abi >= 3 else 0), dev_fd)
                libc.syscall(_SYS_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                             ctypes.c_uint32(0))
            finally:
                os.close(dev_fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"no_new_privs could not be set ({os.strerror(ctypes.get_errno())})"
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return f"Landlock could not restrict the process ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(fd)
    return None
