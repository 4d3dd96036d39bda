"""``workbench phase-lab NOISY --clean CLEAN [-m MODEL ...] -o OUT_DIR``: oracle masks, magnitude/phase
swaps and phase reconstructions of one recording, written as ``OUT_DIR/<stem>.<tag>.wav``, measured
(PESQ-WB, ESTOI, SI-SDR by default) next to the noisy signal and the models.

Tags: ``ibm``, ``irm``, ``iam``, ``psm``, ``cirm``, ``cleanmag_noisyphase``, ``noisymag_cleanphase``,
``<model>_noisyphase``, ``<model>_cleanphase``, ``gla_<source>``, ``fgla_<source>``; each model's own output
is written as ``<stem>.<model>.wav``. Every target is checked before anything is written: an input is
never written over, an existing file only with ``--overwrite`` and only when it is a regular file
(:func:`workbench.core.audio.outputs.check_output_target`, the check every writer shares).
"""

from __future__ import annotations

from .numbers import number

import sys
from pathlib import Path

from ..core.audio.audio_io import WRITE_SUBTYPES, atomic_output, write_audio_atomic
from ..core.errors import WorkbenchError
from ..core.audio.outputs import check_output_target


def add_parser(sub) -> None:
    p = sub.add_parser("phase-lab", help="oracle masks, phase swaps and Griffin-Lim of one recording, measured",
                       description="Oracle masks and swaps need --clean; without it only the models' "
                                   "|E| ∠noisy swaps and the reconstructions are made. Multichannel input is "
                                   "averaged to mono, as the metrics do.")
    p.add_argument("noisy", metavar="NOISY")
    p.add_argument("--clean", metavar="CLEAN", help="clean reference (any rate and length: resampled with soxr "
                                                    "and aligned by cross-correlation)")
    p.add_argument("-m", "--model", action="append", default=[], metavar="MODEL",
                   help="model id or path, run on NOISY (repeatable)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the versions")
    p.add_argument("--csv", metavar="OUT.csv", help="long-form table: file, version, metric, value, unit, reason")
    p.add_argument("--plot", metavar="OUT.png", help="bar chart per metric and GLA convergence (PNG/SVG/PDF)")
    p.add_argument("--n-fft", type=number("--n-fft", 16, 1 << 16, "samples", integer=True), default=1024, help="STFT window length (samples)")
    p.add_argument("--hop", type=number("--hop", 1, 1 << 16, "samples", integer=True), default=256, help="STFT hop (samples)")
    p.add_argument("--window", default="hann", help="hann, sqrt-hann, hamming or blackman")
    p.add_argument("--gla-iters", type=number("--gla-iters", 0, 100_000, integer=True), default=100, metavar="N", help="Griffin-Lim iterations")
    p.add_argument("--gla-init", default="random", choices=("zero", "random", "noisy"), help="initial phase")
    p.add_argument("--gla-seed", type=number("--gla-seed", 0, (1 << 32) - 1, integer=True), default=0, help="seed of the random initial phase")
    p.add_argument("--gla-source", action="append", metavar="SOURCE",
                   help="magnitude to reconstruct: clean, noisy, a mask (ibm, irm, iam, psm, cirm) or a model "
                        "id (repeatable; default: clean and every model)")
    p.add_argument("--lc-db", type=number("--lc-db", -200.0, 200.0, "dB"), default=0.0, help="IBM local criterion (dB)")
    p.add_argument("--irm-beta", type=number("--irm-beta", 0.01, 10.0), default=0.5, help="IRM exponent β")
    p.add_argument("--psm-raw", action="store_true", help="do not truncate the PSM to [0, 1]")
    p.add_argument("--cirm-compress", action="store_true",
                   help="apply the cIRM through Williamson's compression K(1-e^(-CM))/(1+e^(-CM)), K=10, C=0.1")
    p.add_argument("--metrics", metavar="LIST",
                   help="comma-separated intrusive metrics (default pesq_wb,estoi,si_sdr; 'all' for every one)")
    p.add_argument("--subtype", default="FLOAT", choices=WRITE_SUBTYPES["WAV"], help="output sample format")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _metrics(text: str | None) -> tuple[str, ...]:
    from ..core.measure.metrics import intrusive_keys
    from ..core.workflows.phaselab import DEFAULT_METRICS

    if not text:
        return DEFAULT_METRICS
    if text.strip() == "all":
        return intrusive_keys()
    wanted = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in wanted if m not in intrusive_keys()]
    if unknown or not wanted:
        raise WorkbenchError(f"--metrics: unknown metric(s) {', '.join(unknown) or text!r}; "
                             f"choose from {', '.join(intrusive_keys())}")
    return wanted


def mask_lines(y, lab, enhanced, cfg) -> list[str]:
    """One line per model: its effective mask M = E / Y summarised (phase deviation, distance to the cIRM)."""
    from ..core.workflows.phaselab import distance_to_cirm, effective_mask
    from ..core.views.stft import stft

    Y = stft(y, cfg)
    S = stft(lab.reference.clean, cfg) if lab.reference is not None else None
    out = []
    for name, _tag, e in enhanced:
        m = effective_mask(stft(e, cfg), Y)
        text = (f"effective mask of {name}: |E|²-weighted mean |∠M| {m.phase_deviation_rad():.3f} rad "
                f"(0 for a real gain)")
        if S is not None:
            text += f", distance to the cIRM {distance_to_cirm(m, S, Y).weighted_db:.1f} dB"
        out.append(text)
    return out


def run(args) -> int:
    import numpy as np

    from ..core.audio.audio_io import downmix, load_audio
    from ..core.enhance.enhancer import enhance
    from ..core.progress import run_to_end
    from ..core.workflows.export import file_tag
    from ..core.workflows.phaselab import (MaskParams, PhaseLabError, convergence_lines, format_rows, render_figure,
                                 load_reference, rows_csv, run_lab, score_rows, LabRow)
    from ..core.enhance.registry import load_enhancer
    from ..core.views.stft import StftConfig

    metrics = _metrics(args.metrics)
    try:
        cfg = StftConfig(n_fft=args.n_fft, hop=args.hop, window=args.window)
    except ValueError as exc:
        raise WorkbenchError(f"STFT settings: {exc}") from None
    if args.gla_iters < 0:
        raise WorkbenchError(f"--gla-iters must be 0 or more, got {args.gla_iters}")
    noisy_path = Path(args.noisy)
    audio, info = load_audio(noisy_path)
    rate = info.sample_rate
    y = downmix(audio)
    if not np.any(y):
        raise WorkbenchError(f"{noisy_path}: the recording is silent; there is nothing to analyse")
    inputs = [noisy_path]
    clean = clean_rate = None
    if args.clean:
        clean_path = Path(args.clean)
        clean, clean_rate = load_reference(clean_path, info.duration_s)
        inputs.append(clean_path)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise WorkbenchError(f"{out_dir}: is a file, not a folder; -o needs an output folder")
    tty = sys.stderr.isatty()

    def show(p):
        if tty:
            print(f"\r{p.message[:70]:70s}", end="", file=sys.stderr)

    enhanced = []
    model_tags = []
    for spec in args.model:
        enh = load_enhancer(spec)
        try:
            tag = file_tag(enh.info.id)
            if tag in model_tags:
                raise WorkbenchError(f"model {enh.info.id!r} given twice")
            # (n_outputs, frames, 1): each output of the model is a version of its own in the lab
            result = run_to_end(enhance(enh, y.astype(np.float32), rate), show)
        finally:
            enh.close()
        model_tags.append(tag)
        outputs = enh.info.outputs
        for output, audio in zip(outputs, result[:, :, 0]):
            if len(outputs) == 1:
                enhanced.append((enh.info.id, tag, audio))
            else:
                enhanced.append((f"{enh.info.id}.{output}", f"{tag}.{file_tag(output)}", audio))
    params = MaskParams(lc_db=args.lc_db, beta=args.irm_beta, psm_truncate=not args.psm_raw,
                        cirm_compress=args.cirm_compress)
    sources = None
    if args.gla_source:
        sources = [s.strip() for item in args.gla_source for s in item.split(",") if s.strip()]
    try:
        lab = run_to_end(run_lab(y, rate, cfg, reference=clean, reference_rate=clean_rate,
                                 reference_name=str(args.clean), enhanced=enhanced, params=params,
                                 gla_iterations=args.gla_iters, gla_init=args.gla_init, gla_seed=args.gla_seed,
                                 gla_sources=sources), show)
    except PhaseLabError as exc:
        raise WorkbenchError(str(exc)) from None
    # Every target is checked before the first write, so a refused one leaves no half-written set.
    stem = noisy_path.stem
    writes = [(out_dir / f"{stem}.{tag}.wav", audio_) for _, tag, audio_ in enhanced]
    writes += [(out_dir / f"{stem}.{v.tag}.wav", v.audio) for v in lab.versions]
    extra = [Path(p) for p in (args.csv, args.plot) if p]
    protect = tuple(inputs)
    for target in [t for t, _ in writes] + extra:
        check_output_target(target, inputs=protect, overwrite=args.overwrite)
    names = [t for t, _ in writes] + extra
    if len({str(p.resolve()) for p in names}) != len(names):
        raise WorkbenchError("two outputs would share one file name; give the CSV and plot their own names")
    signals = [("noisy", y)] + [(tag, e) for _, tag, e in enhanced] + [(v.tag, v.audio) for v in lab.versions]
    labels = {"noisy": "noisy", **{tag: name for name, tag, _ in enhanced}, **{v.tag: v.label for v in lab.versions}}
    if clean is not None:
        rows = run_to_end(score_rows(noisy_path.name, signals, rate, clean, clean_rate, metrics), show)
    else:
        rows = [LabRow(noisy_path.name, tag, k, None, "", "needs a clean reference") for tag, _ in signals
                for k in metrics]
    if tty:
        print(file=sys.stderr)
    for target, audio_ in writes:
        write_audio_atomic(target, audio_, rate, subtype=args.subtype, overwrite=args.overwrite, protect=protect)
    print(f"wrote {len(writes)} versions to {out_dir}")
    if lab.reference is not None:
        ref = lab.reference
        how = f", resampled from {ref.resampled_from} Hz" if ref.resampled_from else ""
        print(f"reference {args.clean}: lag {ref.lag_samples} samples, correlation {ref.correlation:.3f}, "
              f"covers {100 * ref.coverage:.0f}% of the recording{how}")
    for note in lab.notes:
        print(f"note: {note}")
    if clean is not None:
        print(format_rows(rows, labels))
    for line in convergence_lines(lab.versions):
        print(line)
    for line in mask_lines(y, lab, enhanced, cfg):
        print(line)
    if args.csv:
        with atomic_output(args.csv, overwrite=args.overwrite, protect=protect) as tmp:
            Path(tmp).write_text(rows_csv(rows), encoding="utf-8")
        print(f"wrote {args.csv}")
    if args.plot:
        fig = render_figure(rows if clean is not None else [], lab.versions, labels)
        fmt = Path(args.plot).suffix.lower().lstrip(".") or "png"
        with atomic_output(args.plot, overwrite=args.overwrite, protect=protect) as tmp:
            fig.savefig(tmp, format=fmt)
        print(f"wrote {args.plot}")
    return 0
