"""The training loop: a generator of progress events, atomic checkpoints, exact resume.

:func:`train` yields plain dicts (JSON-ready) and stops between two optimiser steps when ``should_stop()``
turns true, after writing the checkpoint. Events (``event`` key):

* ``start``: ``steps_per_epoch``, ``total_steps``, ``resumed_at`` (step), ``parameters``, ``out_dir``;
* ``step``: ``epoch``, ``step``, ``total_steps``, ``loss`` (weighted total), ``terms`` (each loss term),
  ``audio_s_per_s`` (training throughput);
* ``checkpoint``: ``step``, ``path``;
* ``epoch``: ``epoch``, ``step``, ``train`` (mean terms), ``val`` (validation terms and metrics);
* ``stopped``: asked to stop; the checkpoint is written; ``step``;
* ``done``: ``model`` (path of ``model.pt``), ``metrics`` (last validation), ``exports``.

Files in the run folder (every write atomic: a temporary file renamed over the old one):

* ``last.ckpt``: everything to continue (weights, AdamW state, torch RNG state, position, history);
* ``model.pt``: the trained model, self-describing (``{"model": state_dict, "workbench_training": facts}``:
  architecture and arguments, STFT, sample rate, loss, data, seed, validation metrics and curves, workbench
  version); written after every epoch so an interrupted run already has a usable model;
* ``history.json``, ``validation.csv``, ``config.toml``; with ``[export]`` also ``model.ts`` / ``model.onnx``.

Resume: the data of step ``k`` is a pure function of ``(seed, epoch, index)`` (see :mod:`.data`), and the
checkpoint holds the exact weights and optimiser moments, so a run interrupted at any step (Ctrl-C, a crash,
SIGKILL: whatever the last ``last.ckpt`` holds) and resumed reproduces the uninterrupted run bit for bit
(same threads, same machine).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

import workbench
from workbench.core.audio.audio_io import atomic_output
from workbench.core.errors import WorkbenchError
from workbench.core.workflows.train_config import TrainConfig

from .architectures import HOP, N_FFT, SAMPLE_RATE, build_network, freeze_batch_norm, init_state_dict
from .data import TrainingData
from .losses import LossBatch, istft, parse_loss, stft

STATE_FORMAT = "workbench-train-state/1"
MODEL_FORMAT = "workbench-model/1"
STATE_FILE = "last.ckpt"
MODEL_FILE = "model.pt"


def run_network(net: torch.nn.Module, noisy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, L)`` noisy waveforms -> ``(Y, Ŝ, ŝ)``: noisy spectrum, output spectrum (complex ``(B, F, T)``)
    and the enhanced waveform ``(B, L)`` (training STFT, inverse trimmed to ``L``)."""
    spec = stft(noisy, N_FFT, HOP)
    out = torch.view_as_complex(net(torch.view_as_real(spec)).contiguous())
    return spec, out, istft(out, N_FFT, HOP, length=noisy.shape[-1])


def enhance_waveform(net: torch.nn.Module, audio: np.ndarray) -> np.ndarray:
    """Whole-utterance inference: ``(n,)`` float32 -> aligned ``(n,)`` (very short inputs are zero-padded)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    n = x.shape[0]
    if n <= N_FFT // 2:
        x = torch.nn.functional.pad(x, (0, N_FFT // 2 + 1 - n))
    with torch.inference_mode():
        _, _, y = run_network(net, x[None])
    return y[0, :n].numpy().astype(np.float32, copy=False)


def _fingerprint(cfg: TrainConfig) -> str:
    """What must match for a checkpoint to be continued: everything but how long and how often."""
    d = cfg.to_dict()
    for key in ("epochs", "max_steps", "checkpoint_every_steps", "out_dir"):
        d["run"].pop(key, None)
    d.pop("export", None)
    return json.dumps(d, sort_keys=True)


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(obj, tmp)


def _atomic_text(text: str, path: Path) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _validation_metrics(cfg: TrainConfig, clips, outputs: list[np.ndarray]) -> dict[str, float]:
    """Mean PESQ-WB / ESTOI / SI-SDR (and DNSMOS OVRL on the first clips) over the validation clips."""
    from workbench.core.measure.metrics import pesq_score, si_sdr, stoi_score
    rate = SAMPLE_RATE
    compute = {"pesq_wb": lambda r, e: pesq_score(r, e, rate, "wb"),
               "estoi": lambda r, e: stoi_score(r, e, rate, extended=True),
               "si_sdr": lambda r, e: si_sdr(r, e)}
    result: dict[str, float] = {}
    for name in cfg.validation.metrics:
        values = [compute[name](c.clean, y).value for c, y in zip(clips, outputs)]
        values = [v for v in values if v is not None and math.isfinite(v)]
        if values:
            result[name] = float(np.mean(values))
    if cfg.validation.dnsmos_clips > 0:
        from workbench.core.measure.metrics import dnsmos_metrics
        ovrl = []
        for y in outputs[:cfg.validation.dnsmos_clips]:
            m = dnsmos_metrics(y, rate)
            key = next((k for k in m if "ovrl" in k.lower()), None)
            if key is not None and m[key].value is not None:
                ovrl.append(m[key].value)
        if ovrl:
            result["dnsmos_ovrl"] = float(np.mean(ovrl))
    return result


def describe_run(cfg: TrainConfig, data: TrainingData, *, name: str, step: int, epoch: int,
                 metrics: dict, history: list, parameters: int) -> dict:
    """The facts a trained model carries (plain types only, so ``torch.load(weights_only=True)`` reads them)."""
    return {
        "format": MODEL_FORMAT, "name": name, "architecture": cfg.model.architecture,
        "args": dict(cfg.model.args), "init": cfg.model.init, "freeze_norm": cfg.model.freeze_norm,
        "sample_rate": SAMPLE_RATE,
        "stft": {"n_fft": N_FFT, "hop": HOP, "window": "sqrt-hann", "center": True},
        "loss": parse_loss(cfg.loss.loss).text, "data": data.description, "seed": cfg.run.seed,
        "optimizer": {"name": "AdamW", "lr": cfg.run.lr, "weight_decay": cfg.run.weight_decay,
                      "batch_size": cfg.run.batch_size, "grad_clip": cfg.run.grad_clip},
        "epochs": epoch, "steps": step, "metrics": dict(metrics), "history": history,
        "parameters": parameters, "workbench_version": workbench.__version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def model_name(cfg: TrainConfig) -> str:
    return cfg.model.name or cfg.out_dir.name


def prepare(cfg: TrainConfig) -> tuple[torch.nn.Module, TrainingData]:
    """Seeded network (with its starting weights) and data."""
    torch.manual_seed(cfg.run.seed)
    net = build_network(cfg.model.architecture, cfg.model.args)
    if cfg.model.init:
        sd = init_state_dict(cfg.model.init, cfg.base_dir)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise WorkbenchError(f"{cfg.model.init}: its weights do not fit a {cfg.model.architecture} network "
                                 f"({str(exc).splitlines()[0]})") from None
    return net, TrainingData(cfg.data, cfg.run.seed, cfg.base_dir)


def train(cfg: TrainConfig, *, resume: bool = True, should_stop: Callable[[], bool] = lambda: False,
          stop_after_steps: int | None = None, rank: int = 0, world_size: int = 1) -> Iterator[dict]:
    """Train (or continue) the run ``cfg`` describes; see the module docstring for events and files.

    Args:
        resume: continue from ``out_dir/last.ckpt`` when it exists (it must belong to the same run);
            ``False`` starts over (the folder's old files are replaced).
        should_stop: polled after every step; true -> write the checkpoint, yield ``stopped``, return (with
            several processes, all stop after the step where any one is asked to).
        stop_after_steps: stop (as if asked) once this many steps were taken *in this call* (tests).
        rank, world_size: data-parallel training (:mod:`.ray_train`): each of ``world_size`` processes takes
            examples ``rank, rank + world_size, ...`` of every batch, gradients are averaged with
            ``torch.distributed.all_reduce`` (an initialised process group is needed when ``world_size > 1``);
            only rank 0 writes files. With one process this is exactly the single-process run.
    """
    if world_size > 1 and cfg.run.batch_size < world_size:
        raise WorkbenchError(f"[run] batch_size {cfg.run.batch_size} is smaller than the {world_size} workers")
    writer = rank == 0
    torch.set_num_threads(cfg.run.threads)
    loss_fn = parse_loss(cfg.loss.loss)
    net, data = prepare(cfg)
    out = cfg.out_dir
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay)
    steps_per_epoch = data.steps_per_epoch(cfg.run.batch_size)
    total_steps = steps_per_epoch * cfg.run.epochs
    if cfg.run.max_steps:
        total_steps = min(total_steps, cfg.run.max_steps)
    fingerprint = _fingerprint(cfg)
    step, epoch, batch_index = 0, 0, 0
    history: list[dict] = []
    sums: dict[str, float] = {}
    state_path = out / STATE_FILE
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT or state.get("fingerprint") != fingerprint:
            raise WorkbenchError(f"{state_path}: belongs to a different run (architecture, loss, data or seed "
                                 "differ); choose another out_dir, or start over (--restart)")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, epoch, batch_index = int(state["step"]), int(state["epoch"]), int(state["batch"])
        history, sums = list(state["history"]), dict(state["sums"])
    if writer:
        _atomic_text(cfg.to_toml(), out / "config.toml")
    parameters = sum(p.numel() for p in net.parameters() if p.requires_grad)
    yield {"event": "start", "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "resumed_at": step,
           "parameters": parameters, "out_dir": str(out), "train_s_per_epoch": data.train_seconds_per_epoch,
           "validation_clips": len(data.validation)}

    def save_state() -> Path:
        if not writer:
            return state_path
        _atomic_torch_save({"format": STATE_FORMAT, "fingerprint": fingerprint, "model": net.state_dict(),
                            "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                            "step": step, "epoch": epoch, "batch": batch_index, "history": history,
                            "sums": sums}, state_path)
        return state_path

    taken = 0
    crop_s = data.crop_samples / data.sample_rate
    while epoch < cfg.run.epochs and (not cfg.run.max_steps or step < cfg.run.max_steps):
        net.train()
        if cfg.model.freeze_norm:
            freeze_batch_norm(net)
        while batch_index < steps_per_epoch and (not cfg.run.max_steps or step < cfg.run.max_steps):
            t0 = time.perf_counter()
            noisy_np, clean_np = data.batch(epoch, batch_index * cfg.run.batch_size, cfg.run.batch_size)
            if world_size > 1:
                noisy_np, clean_np = noisy_np[rank::world_size], clean_np[rank::world_size]
            noisy, clean = torch.from_numpy(noisy_np), torch.from_numpy(clean_np)
            spec, est_spec, est = run_network(net, noisy)
            batch = LossBatch(est, clean, noisy, est_spec, stft(clean, N_FFT, HOP), spec, N_FFT, HOP)
            total, parts = loss_fn.terms(batch)
            if not torch.isfinite(total.detach()):
                save_state()
                raise WorkbenchError(f"training diverged at step {step + 1} (loss {total.item()}); the checkpoint "
                                     "holds the last finite state: lower [run] lr or choose another loss")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if world_size > 1:
                _average_gradients(net, world_size)
            if cfg.run.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.run.grad_clip)
            optimizer.step()
            step += 1
            batch_index += 1
            taken += 1
            values = {"loss": total.item(), **{k: v.detach().item() for k, v in parts.items()}}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            sums["_n"] = sums.get("_n", 0.0) + 1
            elapsed = time.perf_counter() - t0
            yield {"event": "step", "epoch": epoch, "step": step, "total_steps": total_steps, "loss": values["loss"],
                   "terms": {k: v for k, v in values.items() if k != "loss"},
                   "audio_s_per_s": len(noisy_np) * crop_s / max(elapsed, 1e-9)}
            stop = should_stop() or (stop_after_steps is not None and taken >= stop_after_steps)
            if world_size > 1:
                stop = _any_process(stop)
            if step % cfg.run.checkpoint_every_steps == 0 or stop:
                yield {"event": "checkpoint", "step": step, "path": str(save_state())}
            if stop:
                yield {"event": "stopped", "step": step}
                return
        # -- end of epoch: validation, history, model file, checkpoint
        val = validate(net, data, cfg, loss_fn)
        n = sums.pop("_n", 1.0)
        train_means = {k: v / n for k, v in sums.items()}
        epoch += 1
        batch_index = 0
        sums = {}
        history.append({"epoch": epoch, "step": step, "train": train_means, "val": val})
        if writer:
            _write_model(cfg, net, data, step, epoch, history, parameters)
            _write_history(history, out)
        save_state()
        yield {"event": "epoch", "epoch": epoch, "step": step, "train": train_means, "val": val}
    if not history:  # max_steps ended the run inside its first epoch
        history.append({"epoch": epoch, "step": step, "train": {}, "val": validate(net, data, cfg, loss_fn)})
        if writer:
            _write_model(cfg, net, data, step, epoch, history, parameters)
            _write_history(history, out)
    exports = export_run(cfg, out / MODEL_FILE) if writer else []
    yield {"event": "done", "model": str(out / MODEL_FILE), "metrics": history[-1]["val"], "step": step,
           "exports": [str(p) for p in exports]}


def _any_process(flag: bool) -> bool:
    """True when ``flag`` is true in any process: every worker stops after the same step (a worker that went
    on alone would wait forever in the next gradient all-reduce)."""
    import torch.distributed as dist
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _average_gradients(net: torch.nn.Module, world_size: int) -> None:
    """Mean of every gradient over the processes (each computed the mean loss of its share of the batch)."""
    import torch.distributed as dist
    for p in net.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world_size


def validate(net: torch.nn.Module, data: TrainingData, cfg: TrainConfig, loss_fn) -> dict[str, float]:
    """Validation loss terms (whole clips, one at a time) and metrics; leaves ``net`` in eval mode."""
    net.eval()
    outputs, sums = [], {}
    with torch.inference_mode():
        for clip in data.validation:
            noisy = torch.from_numpy(clip.noisy)[None]
            clean = torch.from_numpy(clip.clean)[None]
            spec, est_spec, est = run_network(net, noisy)
            total, parts = loss_fn.terms(LossBatch(est, clean, noisy, est_spec, stft(clean, N_FFT, HOP), spec,
                                                   N_FFT, HOP))
            for k, v in {"loss": float(total), **{k: float(v) for k, v in parts.items()}}.items():
                sums[k] = sums.get(k, 0.0) + v
            outputs.append(est[0].numpy().astype(np.float32))
    result = {k: v / max(len(data.validation), 1) for k, v in sums.items()}
    result.update(_validation_metrics(cfg, data.validation, outputs))
    return result


def _write_model(cfg, net, data, step, epoch, history, parameters) -> Path:
    meta = describe_run(cfg, data, name=model_name(cfg), step=step, epoch=epoch,
                        metrics=history[-1]["val"] if history else {}, history=history, parameters=parameters)
    path = cfg.out_dir / MODEL_FILE
    _atomic_torch_save({"model": net.state_dict(), "workbench_training": meta}, path)
    return path


def _write_history(history: list, out: Path) -> None:
    _atomic_text(json.dumps(history, indent=1), out / "history.json")
    keys = sorted({k for h in history for k in h["val"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["epoch", "step"] + [f"train_{k}" for k in sorted({k for h in history for k in h["train"]})]
               + [f"val_{k}" for k in keys])
    train_keys = sorted({k for h in history for k in h["train"]})
    for h in history:
        w.writerow([h["epoch"], h["step"]] + [_fmt(h["train"].get(k)) for k in train_keys]
                   + [_fmt(h["val"].get(k)) for k in keys])
    _atomic_text(buf.getvalue(), out / "validation.csv")


def _fmt(v) -> str:
    return "" if v is None else f"{v:.6g}"


def export_run(cfg: TrainConfig, model_path: Path) -> list[Path]:
    """The exports ``[export]`` asks for, beside ``model.pt``."""
    paths = []
    if cfg.export.torchscript or cfg.export.onnx:
        from .export import export_onnx, export_torchscript
        if cfg.export.torchscript:
            paths.append(export_torchscript(model_path, model_path.with_suffix(".ts")))
        if cfg.export.onnx:
            paths.append(export_onnx(model_path, model_path.with_suffix(".onnx")))
    return paths


def run_to_end(cfg: TrainConfig, **kwargs) -> list[dict]:
    """Every event of :func:`train` (tests, scripts)."""
    return list(train(cfg, **kwargs))
