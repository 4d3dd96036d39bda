"""Model calls in a worker process that can be stopped: Ctrl-C, Cancel and time budgets always work.

A model file from disk (ONNX, TorchScript, a checkpoint) is code the workbench did not write: a graph
with an endless ``Loop``, a TorchScript module that computes for minutes, a native crash. Inside the
program's own process such a call cannot be interrupted — Python handles Ctrl-C only between bytecodes,
and a GUI Cancel only between the engine's yields. :class:`IsolatedEnhancer` is an :class:`Enhancer`
proxy whose model lives in a child process (``multiprocessing`` *spawn*): the child loads the model
from its spec (the path) and answers one request at a time; the parent sends audio blocks and waits in
short polls, so

* **Ctrl-C** in the CLI raises ``KeyboardInterrupt`` in the parent within one poll (50 ms) and the child
  is terminated (the child itself ignores SIGINT, so it prints nothing);
* **Cancel** in the GUI calls :meth:`IsolatedEnhancer.interrupt` from the GUI thread: the child is
  terminated and the waiting call raises :class:`~workbench.core.errors.Cancelled`;
* a **time budget** per call (and for loading) ends a call that does not return, with a message that
  says which budget was exceeded; a crash of the child is a :class:`ModelError`, not a crash of ours.

The proxy passes through whatever the model returns (``(n,)`` or ``(outputs, n)`` arrays, pickled over
a pipe). After an interruption the next call starts a fresh child (the model is loaded again).

The child forbids itself every file write before it loads the model (Landlock, where the kernel offers it;
:mod:`workbench.core.enhance.sandbox`): loading or running a model file cannot create, change or remove a
file. ``sandbox_problem`` says why not when the kernel has no Landlock.

Budgets: loading ``WORKBENCH_LOAD_BUDGET_S`` (default 120 s); each call
``WORKBENCH_CALL_BUDGET_S`` when set, else ``60 s + 20 x`` the duration of the audio in the call.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Callable

import numpy as np

from .enhancer import Enhancer, EnhancerStream
from .sandbox import forbid_file_writes
from ..errors import Cancelled, ModelError, WorkbenchError, one_line
from ..processes import die_with_parent

#: Seconds between checks for Ctrl-C, Cancel, budget and a dead child while a call is waiting.
POLL_S = 0.05
DEFAULT_LOAD_BUDGET_S = 120.0
CALL_BUDGET_BASE_S = 60.0
#: Allowed seconds of computation per second of audio in one call (a real-time factor of 20).
CALL_BUDGET_PER_AUDIO_S = 20.0


def _env_seconds(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


#: Set in every worker before the sandbox closes: runtimes' usage telemetry would try to keep a device id
#: under the person's home folder, which the worker may not read (onnxruntime would warn on every load).
WORKER_ENVIRONMENT = {"ORT_DISABLE_TELEMETRY": "1"}

#: True in a model worker process (the sandboxed child): code there loads models in process.
_IN_WORKER = False


def in_model_worker() -> bool:
    """Whether this process is a sandboxed model worker (models load in process here, never in a further child)."""
    return _IN_WORKER


# ------------------------------------------------------------------------------------------- child side
def _sandboxed_call_main(conn, function: Callable, args: tuple, readable: tuple = ()) -> None:  # pragma: no cover - child process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(mp.parent_process().pid)
    global _IN_WORKER
    _IN_WORKER = True
    os.environ.update(WORKER_ENVIRONMENT)
    problem = forbid_file_writes(readable=list(readable))
    try:
        result = function(*args)
    except BaseException as exc:  # noqa: BLE001 - one line for the parent
        conn.send(("error", str(exc) if isinstance(exc, WorkbenchError) else one_line(exc)))
        return
    conn.send(("ok", (result, problem)))


def run_sandboxed(function: Callable, *args, budget_s: float | None = None, what: str = "sandboxed call",
                  readable=()):
    """``function(*args)`` in a fresh worker process under the same sandbox as a model (no file writes;
    reads limited where the kernel allows): for code the workbench did not write that must run before a
    model exists, e.g. importing plugins to list them. ``function`` and its arguments and result pickle.
    ``readable``: further paths the worker may read (see :func:`~workbench.core.enhance.sandbox.readable_paths`).

    Returns:
        ``(result, sandbox_problem)``: why the process was not sandboxed, or ``None``.

    Raises:
        ModelError: the call raised (its one line), ended the process, or exceeded ``budget_s``
            (default ``WORKBENCH_LOAD_BUDGET_S`` or 120 s).
    """
    budget_s = budget_s or _env_seconds("WORKBENCH_LOAD_BUDGET_S") or DEFAULT_LOAD_BUDGET_S
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_sandboxed_call_main, args=(child, function, args, tuple(readable)), daemon=True,
                       name="workbench-sandboxed")
    proc.start()
    child.close()
    start = time.monotonic()
    try:
        while True:
            if parent.poll(POLL_S):
                try:
                    status, value = parent.recv()
                except (EOFError, OSError):
                    status, value = None, None
                if status == "ok":
                    return value
                if status == "error":
                    raise ModelError(f"{what}: {value}")
            if not proc.is_alive() and not parent.poll(0):
                raise ModelError(f"{what}: the worker process ended unexpectedly (exit status {proc.exitcode})")
            if time.monotonic() - start > budget_s:
                raise ModelError(f"{what}: no answer within {budget_s:.0f} s (time budget exceeded); stopped")
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(0.5)
            if proc.is_alive():
                proc.kill()
        proc.join(1.0)
        parent.close()


def _child_main(conn, spec: str, loader: Callable[[str], Enhancer], readable: tuple = ()) -> None:  # pragma: no cover - runs in the child process
    """Load ``spec`` and serve requests: ``("offline", audio)``, ``("stream", sid)``, ``("offline_stream",
    sid)``, ``("begin_pass", sid, index, frames)``, ``("process", sid, block)``, ``("close_stream", sid)``,
    ``("close",)``. Replies ``("ok", value)`` or ``("error", text)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends this process
    die_with_parent(mp.parent_process().pid)  # ... and if the parent is killed, this process ends with it
    global _IN_WORKER
    _IN_WORKER = True
    os.environ.update(WORKER_ENVIRONMENT)
    # Before the model is loaded (TorchScript and plugins run code while loading): from here on this process
    # cannot create, change or remove any file, where the kernel offers that (see workbench.core.enhance.sandbox).
    sandbox_problem = forbid_file_writes(readable=([spec] if os.path.exists(spec) else []) + list(readable))
    try:
        enh = loader(spec)
    except BaseException as exc:  # noqa: BLE001 - everything becomes one line for the parent
        conn.send(("error", str(exc) if isinstance(exc, WorkbenchError) else f"{spec}: could not be loaded: "
                   f"{one_line(exc)}"))
        return
    conn.send(("ok", (enh.info, float(enh.chunk_s), float(enh.overlap_s), sandbox_problem)))
    streams: dict[int, EnhancerStream] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        op = msg[0]
        try:
            if op == "offline":
                result = enh.process_offline(msg[1])
            elif op == "stream":
                streams[msg[1]] = enh.new_stream()
                result = None
            elif op == "offline_stream":  # the offline path as a stream that carries the model's state
                stream = enh.new_offline_stream()
                result = None
                if stream is not None:
                    streams[msg[1]] = stream
                    result = (int(getattr(stream, "passes", 1)), getattr(stream, "latency_samples", None))
            elif op == "begin_pass":
                streams[msg[1]].begin_pass(msg[2], msg[3])
                result = None
            elif op == "process":
                result = streams[msg[1]].process(msg[2])
            elif op == "close_stream":
                stream = streams.pop(msg[1], None)
                if stream is not None:
                    stream.close()
                result = None
            elif op == "call":  # a named function of the workbench applied to the model, e.g. MAC counting
                module, _, name = msg[1].partition(":")
                if not module.startswith("workbench."):
                    raise ValueError(f"refusing to call {msg[1]!r} in the model process")
                import importlib

                result = getattr(importlib.import_module(module), name)(enh, *msg[2])
            elif op == "close":
                for stream in streams.values():
                    stream.close()
                enh.close()
                conn.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown request {op!r}")
        except WorkbenchError as exc:
            conn.send(("error", str(exc)))
            continue
        except BaseException as exc:  # noqa: BLE001 - a model may raise anything; report it in one line
            conn.send(("error", f"model {enh.info.id!r} failed: {one_line(exc)}"))
            continue
        conn.send(("ok", result))


# ------------------------------------------------------------------------------------------ parent side
class _IsolatedStream(EnhancerStream):
    def __init__(self, owner: "IsolatedEnhancer", sid: int, generation: int):
        self.owner, self.sid, self.generation = owner, sid, generation
        self.closed = False

    def _check(self) -> None:
        if self.generation != self.owner._generation:
            raise ModelError(f"model {self.owner.info.id!r}: its process was restarted; start the run again")

    def begin_pass(self, index: int, frames: int) -> None:
        self._check()
        self.owner._call(("begin_pass", self.sid, int(index), int(frames)), 0)

    def process(self, block: np.ndarray) -> np.ndarray:
        self._check()
        return self.owner._call(("process", self.sid, np.asarray(block, np.float32)), len(block))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.generation == self.owner._generation and self.owner._alive():
            try:
                self.owner._call(("close_stream", self.sid), 0)
            except WorkbenchError:
                pass


class IsolatedEnhancer(Enhancer):
    """An :class:`Enhancer` whose model runs in a child process (see the module docstring).

    Args:
        spec: what ``loader`` loads in the child (a model path).
        loader: loads ``spec`` in the child, e.g. ``functools.partial(load_enhancer, isolate=False)`` of
            :mod:`workbench.core.enhance.registry`; it must pickle by name (the child is spawned). The
            registry passes it in, so this module stays below the registry that offers isolation.
        load_budget_s: seconds loading may take (default ``WORKBENCH_LOAD_BUDGET_S`` or 120).
        call_budget_s: fixed seconds per call (default: ``WORKBENCH_CALL_BUDGET_S``, else scaled with
            the audio length of the call).
        readable: further paths the sandboxed child may read besides ``spec`` itself (a plugin's source
            folder outside ``sys.path``, e.g. an editable install).

    Raises:
        ModelError: the model cannot be loaded, loading exceeded its budget, or the child died.
    """

    def __init__(self, spec: str, *, loader: Callable[[str], Enhancer], load_budget_s: float | None = None,
                 call_budget_s: float | None = None, readable=()):
        self.spec = str(spec)
        self._loader = loader
        self._readable = tuple(str(p) for p in readable)
        self.load_budget_s = load_budget_s or _env_seconds("WORKBENCH_LOAD_BUDGET_S") or DEFAULT_LOAD_BUDGET_S
        self.call_budget_s = call_budget_s or _env_seconds("WORKBENCH_CALL_BUDGET_S")
        self._lock = threading.RLock()
        self._proc = None
        self._conn = None
        self._generation = 0
        self._interrupted = False
        self._sids = itertools.count(1)
        self.info = None  # set by _start
        self._start()

    # -- process management
    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child_main, args=(child, self.spec, self._loader, self._readable), daemon=True,
                           name=f"workbench-model:{os.path.basename(self.spec)}")
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self._generation += 1
        self._interrupted = False
        label = self.info.id if self.info is not None else self.spec
        try:
            info, chunk_s, overlap_s, sandbox_problem = self._wait(self.load_budget_s,
                                                                   f"{label}: loading the model")
        except BaseException:
            self._stop()
            raise
        self.info, self.chunk_s, self.overlap_s = info, chunk_s, overlap_s
        #: why the model's process may still write files (no Landlock here), or ``None`` when it cannot
        self.sandbox_problem: str | None = sandbox_problem

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _stop(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(0.5)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        if conn is not None:
            conn.close()

    def interrupt(self) -> None:
        """Stop the running call now (thread-safe; the GUI's Cancel): the child is terminated and the
        waiting call (or, between calls, the next one) raises :class:`Cancelled`. The call after that
        starts a fresh child."""
        self._interrupted = True
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()

    def _wait(self, budget_s: float, what: str):
        start = time.monotonic()
        conn, proc = self._conn, self._proc
        try:
            while True:
                if self._interrupted:
                    self._interrupted = False
                    raise Cancelled("cancelled on request")
                try:
                    ready = conn.poll(POLL_S)
                except (EOFError, OSError):
                    ready = False
                if ready:
                    try:
                        status, value = conn.recv()
                    except (EOFError, OSError):
                        status, value = None, None
                    if status == "ok":
                        return value
                    if status == "error":
                        raise ModelError(value)
                if self._interrupted:
                    self._interrupted = False
                    raise Cancelled("cancelled on request")
                if not proc.is_alive() and not conn.poll(0):
                    code = proc.exitcode
                    how = (f"signal {signal.Signals(-code).name}" if code is not None and code < 0
                           and -code in signal.Signals._value2member_map_ else f"exit status {code}")
                    raise ModelError(f"{what}: the model's process ended unexpectedly ({how})")
                if time.monotonic() - start > budget_s:
                    raise ModelError(f"{what}: no answer within {budget_s:.0f} s (time budget exceeded); "
                                     "stopped")
        except BaseException:
            # KeyboardInterrupt, Cancel, budget, crash: the child may still be computing; end it now.
            self._stop()
            raise

    def _budget(self, samples: int) -> float:
        if self.call_budget_s is not None:
            return self.call_budget_s
        seconds = samples / max(int(self.info.sample_rate), 1)
        return CALL_BUDGET_BASE_S + CALL_BUDGET_PER_AUDIO_S * seconds

    def _call(self, msg: tuple, samples: int):
        with self._lock:
            if self._interrupted:  # a Cancel that arrived between calls stops this one
                self._interrupted = False
                self._stop()
                raise Cancelled("cancelled on request")
            if not self._alive():
                self._start()
            try:
                self._conn.send(msg)
            except (OSError, ValueError) as exc:
                self._stop()
                raise ModelError(f"model {self.info.id!r}: its process cannot be reached ({exc})") from None
            what = f"model {self.info.id!r} on {samples} samples" if samples else f"model {self.info.id!r}"
            return self._wait(self._budget(samples), what)

    # -- Enhancer interface
    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, np.float32)
        return self._call(("offline", audio), int(audio.shape[-1]) if audio.ndim else 0)

    def new_stream(self) -> EnhancerStream:
        with self._lock:
            sid = next(self._sids)
            self._call(("stream", sid), 0)
            return _IsolatedStream(self, sid, self._generation)

    def new_offline_stream(self) -> EnhancerStream | None:
        """The model's state-carrying offline stream, run in the worker (``None`` when it has none), so a
        model gives the same result isolated as in process."""
        with self._lock:
            sid = next(self._sids)
            got = self._call(("offline_stream", sid), 0)
            if got is None:
                return None
            stream = _IsolatedStream(self, sid, self._generation)
            stream.passes, stream.latency_samples = got
            return stream

    def call_in_worker(self, function: str, *args, budget_s: float = CALL_BUDGET_BASE_S):
        """Run ``function(model, *args)`` in the worker (``"workbench.core.workflows.probes:count_macs_per_second"``),
        for measurements that need the model object itself; arguments and result are pickled."""
        with self._lock:
            saved = self.call_budget_s
            self.call_budget_s = budget_s
            try:
                return self._call(("call", function, args), 0)
            finally:
                self.call_budget_s = saved

    def close(self) -> None:
        with self._lock:
            if self._alive():
                try:
                    self._conn.send(("close",))
                    if self._conn.poll(2.0):
                        self._conn.recv()
                except (OSError, EOFError, ValueError):
                    pass
            self._stop()

    def __del__(self):  # a proxy dropped without close() must not leave its child behind
        try:
            self._stop()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
