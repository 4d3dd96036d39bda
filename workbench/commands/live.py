"""``workbench live -m MODEL``: enhance the microphone in real time, headless.

* Opens the input and output devices (``--input-device``/``--output-device``, index or name; ``--list-devices``
  lists them) at ``--rate`` with ``--block`` samples per callback, after admitting the model: it must have a
  streaming path, be causal by the probe, and cost less than a block period per block (measured; refused
  with the figure otherwise).
* Prints the latency budget (algorithmic, resampling, block, device buffers), then one status line a
  second: load (processing time per block / block period), blocks played dry because they were late,
  and the delay measured on the signals.
* ``--record OUT.wav --duration S``: records a take and writes, atomically, ``OUT.wav`` (the live result
  aligned with the input), ``OUT-input.wav`` (the microphone) and ``OUT-output.wav`` (what the output
  device was sent, unshifted). No existing file is replaced without ``--overwrite``.
* ``--play FILE``: plays FILE through the live path as if it came from the microphone (real time, output
  device only); with ``--record OUT.wav`` its live result is written there.
"""

from __future__ import annotations

import sys
import time


def add_parser(sub) -> None:
    p = sub.add_parser("live", help="enhance the microphone in real time (or play a file as if live)")
    p.add_argument("-m", "--model", metavar="MODEL", help="built-in/plugin id or model file with a streaming path "
                   "(default: none, a pass-through that measures the devices)")
    p.add_argument("--rate", type=int, default=48000, help="device sample rate in Hz (default 48000)")
    p.add_argument("--block", type=int, default=None, help="samples per callback (default: 10 ms at --rate)")
    p.add_argument("--headroom-blocks", type=float, default=0.0,
                   help="extra delay in blocks that lets a late block still arrive in time (default 0)")
    p.add_argument("--resample-quality", default="HQ", choices=("QQ", "LQ", "MQ", "HQ", "VHQ"),
                   help="soxr quality for a model at another rate than the device (default HQ; its filters "
                        "cost about 36 ms each way at 48 <-> 16 kHz, QQ none but it aliases)")
    p.add_argument("--input-device", metavar="DEV", help="input device index or name (default: the system's)")
    p.add_argument("--output-device", metavar="DEV", help="output device index or name (default: the system's)")
    p.add_argument("--channels", type=int, default=1, help="output channels (the result on each; default 1)")
    p.add_argument("--strength", type=float, default=1.0, help="dry/wet mix, 0 = raw, 1 = model only (default 1)")
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--record", metavar="OUT.wav", help="write the take: OUT, OUT-input, OUT-output")
    p.add_argument("--play", metavar="FILE", help="play FILE through the live path instead of the microphone")
    p.add_argument("--no-probe", action="store_true", help="skip the causality probe (trust the model's declaration)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-realtime", action="store_true",
                   help="keep the audio threads at ordinary priority (by default they ask for real-time "
                        "scheduling, as audio servers do, where the system allows it)")
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and exit")


def _device(value):
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def run(args) -> int:
    from ..core.errors import WorkbenchError
    from ..core.live.chain import admit
    from ..core.live.engine import LiveConfig, LiveEngine, list_devices
    from ..core.live.take import write_take_files

    if args.list_devices:
        devices, (di, do), reason = list_devices()
        if not devices:
            print(reason)
            return 0
        for d in devices:
            marks = (" [default in]" if d.index == di else "") + (" [default out]" if d.index == do else "")
            print(f"{d.label}: {d.inputs} in, {d.outputs} out, {d.default_rate:g} Hz{marks}")
        return 0
    if args.record and args.duration is None and not args.play:
        raise WorkbenchError("--record needs --duration S (or --play FILE)")
    block = args.block or args.rate // 100
    protect = ()
    if args.record:
        from ..core.audio.outputs import check_output_target
        from pathlib import Path
        out = Path(args.record)
        protect = tuple(p for p in (args.play,) if p)
        for p in (out, out.with_name(f"{out.stem}-input{out.suffix}"), out.with_name(f"{out.stem}-output{out.suffix}")):
            check_output_target(p, inputs=protect, overwrite=args.overwrite)
    admission = None
    if args.model:
        from ..core.enhance.registry import load_enhancer
        enhancer = load_enhancer(args.model)
        print(f"checking {enhancer.info.id} for live use ...", file=sys.stderr)
        admission = admit(enhancer, args.rate, block, check_causality=not args.no_probe,
                          quality=args.resample_quality)
        print(f"{admission.enhancer.info.id}: {admission.causality}; {admission.cost.text()}", file=sys.stderr)
    config = LiveConfig(rate=args.rate, block=block, input_device=_device(args.input_device),
                        output_device=_device(args.output_device), output_channels=args.channels,
                        headroom_blocks=args.headroom_blocks, realtime=not args.no_realtime)
    engine = LiveEngine(config, admission)
    engine.set_strength(args.strength)
    take = None
    try:
        if args.play:
            from ..core.audio.audio_io import load_audio, resample
            data, info = load_audio(args.play)
            x = data[:, 0]
            if info.sample_rate != args.rate:
                x = resample(x, info.sample_rate, args.rate)
            engine.start_file(x)
        else:
            engine.start()
            if args.record:
                engine.start_take()
        for line in engine.latency_report().lines():
            print(line)
        t0 = time.monotonic()
        last = t0
        while True:
            if args.play and engine.finished.is_set():
                break
            if args.duration is not None and time.monotonic() - t0 >= args.duration and not args.play:
                break
            time.sleep(0.05)
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                _status(engine)
        if args.record or args.play:
            take = engine.stop_take()
    except KeyboardInterrupt:
        if args.record:
            take = engine.stop_take()
    finally:
        stats = engine.stats(measure=True)
        engine.stop()
    _status(engine, stats, final=True)
    print(stats.scheduling)
    for note in stats.notes:
        print(f"note: {note}")
    if stats.error:
        print(f"error: {stats.error} (the rest was played dry)", file=sys.stderr)
    if args.record and take is not None:
        paths = write_take_files(take, args.record, overwrite=args.overwrite, protect=protect)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _status(engine, stats=None, final: bool = False) -> None:
    s = stats or engine.stats(measure=True)
    lat = s.latency
    measured = f"{lat.ms(s.measured_lag):.1f} ms" if s.measured_lag is not None else "n/a"
    print(f"{'final: ' if final else ''}{s.model}: load {100 * s.load_median:.0f}% (max {100 * s.load_max:.0f}%), "
          f"{s.blocks} blocks, {s.dropped} played dry (late), {s.resyncs} resyncs, {s.xruns} device xruns; "
          f"pipeline {lat.ms(lat.pipeline):.1f} ms reported, {measured} measured"
          + ("  [overload: falling back to bypass]" if s.fallback_recent else ""), flush=True)
