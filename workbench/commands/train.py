"""``workbench train CONFIG.toml``: train or fine-tune a model (see :mod:`workbench.core.workflows.train_config`).

Continues the run in ``[run] out_dir`` when its ``last.ckpt`` exists (after Ctrl-C, a crash or a kill), unless
``--restart``. The first Ctrl-C (or SIGTERM, which the Train panel's Stop sends) finishes the current step,
writes the checkpoint and exits; a second one exits at once (the last checkpoint stays valid). ``--progress
json`` prints one JSON object per event on stdout (the Train panel reads these); ``--ray N`` trains on N Ray
workers (the ``[cluster]`` extra).
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from ..core.errors import WorkbenchError


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a model from a TOML config (resumable)",
                       description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[1])
    p.add_argument("config", metavar="CONFIG.toml")
    p.add_argument("--restart", action="store_true", help="start over instead of continuing out_dir/last.ckpt")
    p.add_argument("--progress", choices=("text", "json"), default="text",
                   help="text: a line per step and a table per epoch; json: one JSON event per line")
    p.add_argument("--ray", type=int, default=0, metavar="N",
                   help="data-parallel training on N Ray Train CPU workers (TorchTrainer); 0: this process")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to join with --ray (default: a local instance)")


class StopFlag:
    """Set by the first SIGINT/SIGTERM; the second one gets the default behaviour (exit now)."""

    def __init__(self):
        self.event = threading.Event()
        self._old = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.event.set()
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)
        print("stopping after this step (again to quit at once)…", file=sys.stderr, flush=True)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def __call__(self) -> bool:
        return self.event.is_set()


def format_event(ev: dict) -> str | None:
    """One human line for a training event (``None``: nothing worth printing)."""
    kind = ev["event"]
    if kind == "start":
        resumed = f", continuing at step {ev['resumed_at']}" if ev["resumed_at"] else ""
        return (f"training {ev['parameters']} parameters, {ev['total_steps']} steps ({ev['steps_per_epoch']} per epoch), "
                f"{ev['validation_clips']} validation clips → {ev['out_dir']}{resumed}")
    if kind == "step":
        terms = " ".join(f"{k} {v:.4g}" for k, v in ev["terms"].items()) if len(ev["terms"]) > 1 else ""
        return (f"epoch {ev['epoch'] + 1} step {ev['step']}/{ev['total_steps']}: loss {ev['loss']:.4g} {terms}"
                f" ({ev['audio_s_per_s']:.1f} audio-s/s)").rstrip()
    if kind == "epoch":
        val = ", ".join(f"{k} {v:.3f}" for k, v in ev["val"].items())
        return f"epoch {ev['epoch']} done (step {ev['step']}): train loss {ev['train'].get('loss', float('nan')):.4g}; validation: {val}"
    if kind == "stopped":
        return f"stopped at step {ev['step']}; the checkpoint is written: run the same command to continue"
    if kind == "done":
        exports = "".join(f"\n  export: {p}" for p in ev["exports"])
        return f"model: {ev['model']}{exports}"
    return None


def run(args) -> int:
    from ..core.workflows.train_config import read_config
    cfg = read_config(args.config)
    stop = StopFlag()
    stop.install()
    try:
        if args.ray:
            from workbench_models.training.ray_train import train_with_ray
            events = train_with_ray(cfg, workers=args.ray, address=args.address, resume=not args.restart,
                                    should_stop=stop)
        else:
            from workbench_models.training.trainer import train
            events = train(cfg, resume=not args.restart, should_stop=stop)
        stopped = False
        for ev in events:
            stopped |= ev["event"] == "stopped"
            if args.progress == "json":
                print(json.dumps(ev), flush=True)
            else:
                line = format_event(ev)
                if line:
                    print(line, flush=True)
    except ValueError as exc:
        raise WorkbenchError(f"{args.config}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    finally:
        stop.restore()
    return 130 if stopped else 0
