"""Scoring one signal or a recording's versions: intrusive metrics against a clean reference, and the
reference-free ones (DNSMOS), every metric of the table :data:`~workbench.core.measure.metrics.METRIC_SPECS`.

One function scores a signal, :func:`score_signal`; ``workbench evaluate``, ``workbench batch evaluate``, the
metrics panel and the tests all go through it, so they report the same numbers for the same audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Iterable, Sequence

import numpy as np

from ..audio.audio_io import downmix, load_audio, resample
from ..progress import Progress, rescaled
from .metrics import (Metric, intrusive_keys, intrusive_metrics, reference_free_keys, reference_free_label, reference_free_metrics,
                      reference_free_metrics_steps)
from .vad import VadSettings, speech_mask


#: Aligned correlation (absolute normalised cross-correlation peak) below which a reference is reported as
#: not matching the recording. Measured on the dns3 pairs: noisy vs its own clean 0.62-0.93 (0072 is at
#: about -5 dB SNR), noisy vs another sentence's clean 0.02-0.05, vs its clean resampled to another rate
#: 0.02, vs its clean shifted by 0.5 s (beyond the search) 0.07. 0.2 is reached by a matching pair only
#: below about -14 dB SNR (``ρ = 1/sqrt(1 + 10^(-SNR/10))``).
LOW_CORRELATION = 0.2
#: Relative difference of durations (reference vs estimate) reported as a length mismatch.
LENGTH_MISMATCH = 0.1


@dataclass(frozen=True)
class AlignmentCheck:
    """How well a clean reference lines up with the signal it is compared with.

    Attributes:
        correlation: normalised cross-correlation peak ``Σ s[n]·ŝ[n+lag] / sqrt(Σs²·Σŝ²)`` at the chosen lag
            (NaN when a signal is silent).
        lag_samples: chosen lag, samples at ``sample_rate`` (positive: estimate late).
        max_lag_samples: largest lag searched (either direction).
        sample_rate: rate of the comparison (the reference's), Hz.
        reference_duration_s, estimate_duration_s: lengths of the two signals, seconds.
    """

    correlation: float
    lag_samples: int
    max_lag_samples: int
    sample_rate: int
    reference_duration_s: float
    estimate_duration_s: float

    @property
    def low_correlation(self) -> bool:
        return not math.isfinite(self.correlation) or abs(self.correlation) < LOW_CORRELATION

    @property
    def lag_at_limit(self) -> bool:
        return self.max_lag_samples > 0 and abs(self.lag_samples) >= self.max_lag_samples - 1

    @property
    def length_mismatch(self) -> bool:
        longer = max(self.reference_duration_s, self.estimate_duration_s)
        return longer > 0 and abs(self.reference_duration_s - self.estimate_duration_s) > LENGTH_MISMATCH * longer

    @property
    def suspicious(self) -> bool:
        """The reference probably is not the clean version of this recording (low correlation or the lag at
        the search limit); a length difference alone is only a note."""
        return self.low_correlation or self.lag_at_limit

    def problems(self) -> list[str]:
        """Short phrases for each finding, e.g. ``aligned correlation 0.03 (below 0.2)``."""
        out = []
        if self.low_correlation:
            corr = "undefined (a signal is silent)" if not math.isfinite(self.correlation) \
                else f"{abs(self.correlation):.2f}"
            out.append(f"aligned correlation {corr} (below {LOW_CORRELATION:g})")
        if self.lag_at_limit:
            out.append(f"lag {self.lag_samples / self.sample_rate * 1000:+.0f} ms is at the search limit "
                       f"(±{self.max_lag_samples / self.sample_rate * 1000:.0f} ms)")
        if self.length_mismatch:
            out.append(f"lengths differ ({self.reference_duration_s:.2f} s reference, "
                       f"{self.estimate_duration_s:.2f} s recording)")
        return out


@dataclass
class Scores:
    """Metrics of one signal.

    Attributes:
        metrics: ``{key: Metric}`` (intrusive ones only when a reference was given; the reference-free ones
            when asked).
        lag_samples: alignment lag against the reference at the reference rate (None without reference).
        alignment: how the signal lined up with the reference (None without reference).
    """

    metrics: dict[str, Metric]
    lag_samples: int | None = None
    alignment: AlignmentCheck | None = None


def score_signal(estimate: np.ndarray, sample_rate: int, reference: np.ndarray | None = None,
                 reference_rate: int | None = None, *, reference_free: bool = True,
                 metrics: Iterable[str] | None = None, reference_free_fast: bool = False) -> Scores:
    """Score ``estimate`` (``(n,)`` or ``(n, ch)`` at ``sample_rate`` Hz; multichannel is averaged to mono).

    With a ``reference`` (clean speech at ``reference_rate``, default ``sample_rate``) the intrusive metrics
    are computed after resampling the estimate to the reference rate (soxr) and aligning it by
    cross-correlation (:attr:`Scores.alignment` says how well it lined up); the reference-free metrics
    (DNSMOS) are computed on the estimate itself.

    Args:
        reference_free: also compute the reference-free metrics of the table (DNSMOS's columns, and any other).
        metrics: intrusive keys to compute (default every intrusive metric of the table).
        reference_free_fast: the reference-free metrics in their fast, approximate mode where they have one (DNSMOS:
            non-overlapping windows; never the default).
    """
    est = downmix(estimate)
    out: dict[str, Metric] = {}
    lag = None
    check = None
    if reference is not None:
        rate = reference_rate or sample_rate
        ref = downmix(reference)
        est_r = resample(est, sample_rate, rate) if rate != sample_rate else est
        res = intrusive_metrics(ref, est_r, rate, metrics=metrics)
        out.update(res.metrics)
        lag = res.lag_samples
        check = AlignmentCheck(res.correlation, res.lag_samples, res.max_lag_samples, rate, len(ref) / rate,
                               len(est) / sample_rate)
    if reference_free:
        out.update(reference_free_metrics(est, sample_rate, fast=reference_free_fast))
    return Scores(out, lag, check)


def load_mono(path: Path) -> tuple[np.ndarray, int]:
    """The file at ``path`` as mono float32 ``(n,)`` and its sample rate (Hz)."""
    audio, info = load_audio(path)
    return downmix(audio), info.sample_rate


#: Parts of a version's scores that are measured (and cached) separately: the intrusive metrics depend on
#: the reference, the reference-free ones (DNSMOS) do not. The second part's name stays "dnsmos", the name
#: stored measurements carry in saved sessions.
INTRUSIVE, NON_INTRUSIVE = "intrusive", "dnsmos"


def measurement_settings(part: str, speech: str = "") -> str:
    """The settings part of a stored measurement's key (the workspace's ``MeasurementStore``): which metrics
    of ``part`` (:data:`INTRUSIVE` or :data:`NON_INTRUSIVE`) were computed, over what: ``speech``
    (:func:`speech_settings`) or ``""`` for the whole signals, e.g. ``intrusive:pesq_wb,...,mrstft``. A result
    is reused only under an equal key, so figures of the two modes, or of other VAD settings, never mix."""
    keys = intrusive_keys() if part == INTRUSIVE else reference_free_keys()
    return f"{part}:" + ",".join(keys) + speech


def speech_settings(vad: VadSettings, spans_of: str) -> str:
    """The part of a measurement's settings key that says it covers speech only: the VAD settings and
    ``spans_of``, the content key of what the spans were found on (``reference:<sha256>`` or
    ``original:<sha256>``)."""
    return (f"|speech-only:silero-vad threshold={vad.threshold:g} min_pause_ms={vad.min_pause_ms:g} "
            f"min_speech_ms={vad.min_speech_ms:g} pad_ms={vad.pad_ms:g} spans-of={spans_of}")


def speech_only(audio: np.ndarray, sample_rate: int, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """The samples of ``audio`` (``(n,)`` or ``(n, channels)``) inside ``spans`` (seconds), joined in order."""
    mask = speech_mask(list(spans), len(audio), sample_rate)
    return np.asarray(audio)[mask]


def score_versions(versions: Sequence, reference: np.ndarray | None = None, reference_rate: int | None = None,
                   *, reference_free: bool = True, intrusive: bool = True, metrics: Iterable[str] | None = None,
                   reference_free_versions: Sequence | None = None,
                   on_result: Callable[[object, str, Scores], None] | None = None,
                   speech_spans: Sequence[tuple[float, float]] | None = None
                   ) -> Generator[Progress, None, dict[str, Scores]]:
    """Score each :class:`~workbench.core.document.recording.Version` (its whole audio, channels averaged to mono).

    The same :func:`score_signal` as ``workbench evaluate`` is used, so a version scored here and the same
    audio scored by the CLI give identical numbers. The intrusive metrics of every version come first
    (seconds), then the reference-free ones (DNSMOS: slow, a 9 s window every second), so the quick cells
    fill first.

    Args:
        versions: versions to score.
        intrusive: compute the intrusive metrics (needs ``reference``) for ``versions``.
        reference_free: compute the reference-free metrics of the table for ``reference_free_versions``
            (default: ``versions``).
        on_result: called as ``on_result(version, part, Scores)`` as soon as one part of one version is
            measured (``part`` is :data:`INTRUSIVE` or :data:`NON_INTRUSIVE`), on the calling thread, so a
            table can fill cell by cell.
        speech_spans: ``[(start_s, end_s)]``: every metric scores only these spans (speech): the samples
            inside them of the version, and of the reference for the intrusive ones, joined
            (:func:`speech_only`). ``None``: the whole signals.

    A generator yielding :class:`Progress` (closing it between yields cancels the work); returns
    ``{version.name: Scores}`` with the parts measured here merged.
    """
    out: dict[str, Scores] = {}
    todo_i = list(versions) if intrusive and reference is not None else []
    todo_d = ((list(versions) if reference_free_versions is None else list(reference_free_versions))
              if reference_free else [])
    if speech_spans is not None and reference is not None:
        reference = speech_only(reference, reference_rate, speech_spans)

    def audio_of(v) -> np.ndarray:
        audio = v.source.read_all()
        return audio if speech_spans is None else speech_only(audio, v.source.sample_rate, speech_spans)
    # Weights: the reference-free part (DNSMOS) costs about ten times the intrusive set per second of audio.
    total = max(len(todo_i) + 10 * len(todo_d), 1)
    done = 0.0
    for v in todo_i:
        yield Progress(done / total, f"measuring {v.name} against the reference")
        sc = score_signal(audio_of(v), v.source.sample_rate, reference, reference_rate,
                          reference_free=False, metrics=metrics)
        out[v.name] = sc
        if on_result is not None:
            on_result(v, INTRUSIVE, sc)
        done += 1
    for v in todo_d:
        yield Progress(done / total, f"{reference_free_label()} of {v.name}")
        # The reference-free part of score_signal, stepped so that long recordings report progress (and can
        # be cancelled) between DNSMOS windows; the numbers are those of score_signal.
        scores = yield from rescaled(reference_free_metrics_steps(audio_of(v), v.source.sample_rate),
                                     done / total, 10 / total, f"{v.name}: ")
        part = Scores(dict(scores))
        prev = out.get(v.name)
        if prev is None:
            out[v.name] = Scores(dict(scores))
        else:
            prev.metrics.update(scores)
        if on_result is not None:
            on_result(v, NON_INTRUSIVE, part)
        done += 10
    yield Progress(1.0, "done")
    return out
