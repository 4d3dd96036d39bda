"""Speech activity: where a recording holds speech, from Silero VAD (the ``silero-vad`` package, MIT).

The package ships its network as ONNX (``silero_vad/data/silero_vad.onnx``); we run that file with
onnxruntime directly and locate it with :func:`importlib.util.find_spec`, because importing the package
imports torch (seconds of start-up for a network that needs none of it).

The network takes 512-sample windows at 16 kHz, each preceded by the last 64 samples of the window
before (its context), carries a recurrent state ``(2, 1, 128)`` from window to window, and returns the
probability that the window holds speech. Input at other rates is resampled to 16 kHz with soxr
(several channels are averaged first).

Spans from probabilities (:func:`speech_spans`), with the package's recommended settings as defaults:

* speech starts at the first window with ``p >= threshold`` (0.5) and ends when ``p`` stays under
  ``threshold - 0.15`` for at least ``min_pause_ms`` (100 ms); the pause is not part of the span;
* spans shorter than ``min_speech_ms`` (250 ms) are dropped;
* each span is widened by ``pad_ms`` (30 ms) on both sides, clipped to the recording; spans that then
  touch are merged.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Generator

import numpy as np

from ..audio.audio_io import downmix, resample
from ..progress import Progress
from ..errors import Cancelled, ModelError

VAD_RATE = 16000
WINDOW = 512
CONTEXT = 64
#: Seconds per probability (one window).
HOP_S = WINDOW / VAD_RATE
#: The hysteresis below the threshold that ends speech (the package's ``neg_threshold`` default).
RELEASE = 0.15


@dataclass(frozen=True)
class VadSettings:
    """Threshold and durations turning probabilities into spans (defaults: the package's recommendation)."""

    threshold: float = 0.5
    min_pause_ms: float = 100.0
    min_speech_ms: float = 250.0
    pad_ms: float = 30.0

    def check(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"VAD threshold must be between 0 and 1, not {self.threshold}")
        for name in ("min_pause_ms", "min_speech_ms", "pad_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"VAD {name} must not be negative, not {getattr(self, name)}")


@dataclass
class VadResult:
    """Speech activity of one recording.

    Attributes:
        probabilities: ``(n_windows,)`` speech probability per 32 ms window (window ``i`` covers
            ``[i * HOP_S, (i + 1) * HOP_S)`` seconds).
        spans: speech spans ``[(start_s, end_s)]`` in seconds, sorted, not overlapping.
        duration_s: length of the recording.
        settings: what turned the probabilities into spans.
    """

    probabilities: np.ndarray
    spans: list[tuple[float, float]]
    duration_s: float
    settings: VadSettings = field(default_factory=VadSettings)

    @property
    def pauses(self) -> list[tuple[float, float]]:
        """The spans without speech (complement of :attr:`spans` within the recording)."""
        return non_speech_spans(self.spans, self.duration_s)

    @property
    def speech_s(self) -> float:
        return float(sum(b - a for a, b in self.spans))

    def to_dict(self) -> dict:
        return {"duration_s": self.duration_s, "speech_s": round(self.speech_s, 6), "settings": asdict(self.settings),
                "model": "silero-vad", "spans": [{"start_s": a, "end_s": b} for a, b in self.spans],
                "hop_s": HOP_S, "probabilities": [round(float(p), 4) for p in self.probabilities]}


def model_file() -> Path:
    """The ONNX network inside the installed ``silero-vad`` wheel (nothing of the package is imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("speech activity needs the 'silero-vad' package (pip install silero-vad)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelError(f"silero-vad: {path} not found; expected the ONNX network in the silero-vad wheel")
    return path


_SESSION = None


def _session():
    global _SESSION
    if _SESSION is None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            _SESSION = ort.InferenceSession(str(model_file()), opts, providers=["CPUExecutionProvider"])
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelError(f"silero-vad: cannot load its ONNX network: {exc}") from None
    return _SESSION


def speech_probabilities(audio: np.ndarray, sample_rate: int, *,
                         should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, np.ndarray]:
    """Speech probability per 32 ms window of ``audio`` (``(n,)`` or ``(n, channels)``, averaged); a
    generator yielding :class:`Progress` and returning ``(ceil(n16 / 512),)`` float32."""
    x = downmix(np.asarray(audio, np.float32))
    if sample_rate != VAD_RATE:
        x = resample(x, sample_rate, VAD_RATE)
    n_windows = -(-len(x) // WINDOW)
    padded = np.zeros(CONTEXT + n_windows * WINDOW, np.float32)
    padded[CONTEXT:CONTEXT + len(x)] = x
    session = _session()
    state = np.zeros((2, 1, 128), np.float32)
    rate = np.array(VAD_RATE, np.int64)
    probs = np.zeros(n_windows, np.float32)
    for i in range(n_windows):
        frame = padded[i * WINDOW:(i + 1) * WINDOW + CONTEXT][None]
        out, state = session.run(None, {"input": frame, "state": state, "sr": rate})
        probs[i] = float(out[0, 0])
        if i % 200 == 199:
            if should_stop is not None and should_stop():
                raise Cancelled("speech activity cancelled")
            yield Progress((i + 1) / n_windows, f"speech activity {100 * (i + 1) / n_windows:.0f}%")
    yield Progress(1.0, "speech activity done")
    return probs


def speech_spans(probabilities: np.ndarray, duration_s: float, settings: VadSettings = VadSettings()
                 ) -> list[tuple[float, float]]:
    """Speech spans in seconds from per-window probabilities (rules in the module docstring)."""
    settings.check()
    release = max(settings.threshold - RELEASE, 0.01)
    min_pause = settings.min_pause_ms / 1000.0
    raw: list[list[float]] = []
    start = None
    below_since = None
    for i, p in enumerate(np.asarray(probabilities, np.float64)):
        t = i * HOP_S
        if start is None:
            if p >= settings.threshold:
                start, below_since = t, None
            continue
        if p >= release:
            below_since = None
            continue
        if below_since is None:
            below_since = t
        if t + HOP_S - below_since >= min_pause:
            raw.append([start, below_since])
            start, below_since = None, None
    if start is not None:
        raw.append([start, below_since if below_since is not None else len(probabilities) * HOP_S])
    pad = settings.pad_ms / 1000.0
    spans: list[list[float]] = []
    for a, b in raw:
        if b - a < settings.min_speech_ms / 1000.0:
            continue
        a, b = max(a - pad, 0.0), min(b + pad, duration_s)
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(round(a, 6), round(b, 6)) for a, b in spans if b > a]


def non_speech_spans(spans: list[tuple[float, float]], duration_s: float) -> list[tuple[float, float]]:
    """The complement of ``spans`` within ``[0, duration_s]`` (empty gaps left out)."""
    out, t = [], 0.0
    for a, b in spans:
        if a > t:
            out.append((t, a))
        t = max(t, b)
    if duration_s > t:
        out.append((t, duration_s))
    return [(round(a, 6), round(b, 6)) for a, b in out]


def detect_speech(audio: np.ndarray, sample_rate: int, settings: VadSettings = VadSettings(), *,
                  should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, VadResult]:
    """Probabilities and spans of ``audio``; a generator yielding :class:`Progress`, returning a :class:`VadResult`."""
    settings.check()
    probs = yield from speech_probabilities(audio, sample_rate, should_stop=should_stop)
    duration = len(audio) / sample_rate
    return VadResult(probs, speech_spans(probs, duration, settings), duration, settings)


def labels_text(spans: list[tuple[float, float]], label: str = "speech") -> str:
    """Audacity's label-track text: one ``start<TAB>end<TAB>label`` line per span, seconds."""
    return "".join(f"{a:.6f}\t{b:.6f}\t{label}\n" for a, b in spans)


def csv_text(spans: list[tuple[float, float]]) -> str:
    return "start_s,end_s,duration_s\n" + "".join(f"{a:.6f},{b:.6f},{b - a:.6f}\n" for a, b in spans)


def speech_mask(spans: list[tuple[float, float]], n_samples: int, sample_rate: int) -> np.ndarray:
    """``(n_samples,)`` bool, True inside the speech spans."""
    mask = np.zeros(n_samples, bool)
    for a, b in spans:
        mask[int(round(a * sample_rate)):int(round(b * sample_rate))] = True
    return mask
