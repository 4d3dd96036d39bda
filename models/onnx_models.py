"""Generic ONNX enhancers (onnxruntime), described by their graph signature or by a model card.

Three kinds of graphs are handled:

* **waveform** graphs: one float input with a dynamic time axis (``(T,)``, ``(1, T)`` or ``(1, 1, T)``)
  and one output of the same shape. Run on whole chunks (offline path, output assumed aligned).
* **streaming** graphs: besides the main input and output they carry *state* tensors: every state
  input has a matching state output (``conv_cache`` -> ``conv_cache_out``, ``h_in`` -> ``h_out``,
  ``state`` -> ``state_out``/``new_state``, or else the only remaining output with the same shape),
  which is fed back on the next call. States start at zero.
* **spectral** graphs, described by a card (:class:`ModelCard`): the engine computes the STFT, hands the
  model a complex spectrum (real/imag on an axis of size 2) or a magnitude, and applies what comes
  back (a mask or a spectrum, complex or magnitude) before the inverse STFT. Whole-utterance or
  frame by frame (with states).

A card is a small TOML or JSON file next to the model (``model.onnx.toml``, ``model.toml``,
``model.card.toml`` or the ``.json`` equivalents). Cards shipped in ``workbench_models/cards`` carry a
``[signature]`` table (input and output names with shapes) so public models are recognised without
a card of their own (GTCRN ``gtcrn_simple.onnx``, DTLN ``model_1.onnx``/``model_2.onnx``).

Layouts are written with one letter per axis: ``B`` batch (size 1), ``T`` frames, ``F`` frequency bins,
``C`` real/imag (size 2). ``BFTC`` is GTCRN's ``(1, 257, T, 2)``; ``BTF`` is a magnitude ``(1, T, 257)``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream
from workbench.core.jsonfile import JsonFileError, read_text
from workbench.core.errors import ModelError
from workbench.core.threads import threads_from_env
from workbench.core.enhance.onnx_weights import onnx_parameter_count
from workbench.core.views.stft import StftConfig, istft, squared_window_sum, stft, stft_frames, window_array

DEFAULT_RATE = 16000


def card_identity(card: "ModelCard | None", path: Path, prefix: str, description: str) -> dict:
    """``id``, ``name`` and ``description`` for EnhancerInfo: the card's where it gives them, else from the
    file (``<prefix>:<stem>``, the stem, and ``description``)."""
    return {"id": (card.id if card else None) or f"{prefix}:{path.stem}",
            "name": (card.name if card else None) or path.stem,
            "description": (card.description if card else None) or description}


def stored_weights(path: str | Path) -> int | None:
    """Weights stored in an ONNX file (see :func:`workbench.core.enhance.onnx_weights.onnx_parameter_count`);
    ``None`` when the file cannot be parsed that way (the session may still run it)."""
    try:
        return onnx_parameter_count(Path(path).read_bytes())
    except Exception:  # noqa: BLE001 - a count is informative only; onnxruntime decides loadability
        return None

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


# --------------------------------------------------------------------------------------------------------
# Graph signatures
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape (``None`` for a dynamic axis) and ONNX element type."""

    name: str
    shape: tuple
    type: str

    @property
    def dynamic_axes(self) -> list[int]:
        return [i for i, d in enumerate(self.shape) if d is None]

    @property
    def dtype(self):
        return _ORT_TYPES.get(self.type, np.float32)

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}]"


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or []))
    return TensorSpec(arg.name, shape, arg.type)


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def describe(self) -> str:
        return (f"inputs {', '.join(t.describe() for t in self.inputs) or 'none'}; "
                f"outputs {', '.join(t.describe() for t in self.outputs) or 'none'}")

    def matches(self, table: dict) -> bool:
        """True when ``table`` (``{"inputs": {name: shape}, "outputs": {...}}``) equals this signature
        (names and fixed dimensions; ``-1``/``"?"`` in the table accepts any size)."""
        for mine, theirs in ((self.inputs, table.get("inputs", {})), (self.outputs, table.get("outputs", {}))):
            if {t.name for t in mine} != set(theirs):
                return False
            for t in mine:
                want = list(theirs[t.name])
                if len(want) != len(t.shape):
                    return False
                for a, b in zip(t.shape, want):
                    if isinstance(b, int) and b >= 0 and a != b:
                        return False
        return True


def make_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session; ModelError naming the file when onnxruntime cannot load it.

    ``threads``: intra-op threads; default from ``WORKBENCH_THREADS``/``OMP_NUM_THREADS``, else 1
    (frame-by-frame graphs are tiny, more threads only add synchronisation cost).
    """
    if threads is None:
        threads = threads_from_env(1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # fatal only: errors reach the user once, as our one-line message
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: onnxruntime cannot load this file as an ONNX model ({first[:300]})") from None


def signature_of(session: ort.InferenceSession) -> Signature:
    return Signature(tuple(_spec(a) for a in session.get_inputs()),
                     tuple(_spec(a) for a in session.get_outputs()))


def pair_states(sig: Signature, main_input: str, main_output: str) -> list[tuple[TensorSpec, TensorSpec]]:
    """Match every state input with the output that carries its next value.

    Rules, in order: ``X`` -> ``X_out``/``Xout``/``X_new``/``new_X``/``next_X``; ``X_in``/``Xin`` ->
    ``X_out``/``Xout``; ``in``/``input`` replaced by ``out``/``output`` anywhere in the name; finally the
    remaining outputs in order, by equal shape.

    Raises:
        ModelError: some state input has no output partner.
    """
    state_inputs = [t for t in sig.inputs if t.name != main_input]
    free = {t.name: t for t in sig.outputs if t.name != main_output}
    pairs = []
    unmatched = []
    for t in state_inputs:
        n = t.name
        candidates = [n + "_out", n + "out", n + "_new", "new_" + n, "next_" + n, n + "_next"]
        for suffix_in, suffix_out in (("_in", "_out"), ("in", "out"), ("_i", "_o")):
            if n.endswith(suffix_in):
                candidates.append(n[: -len(suffix_in)] + suffix_out)
        candidates += [n.replace("input", "output"), n.replace("in", "out")]
        hit = next((c for c in candidates if c in free and c != n), None)
        if hit is None:
            unmatched.append(t)
        else:
            pairs.append((t, free.pop(hit)))
    for t in unmatched:
        hit = next((o for o in free.values() if o.shape == t.shape), None)
        if hit is None:
            raise ModelError(f"state input {t.describe()} has no matching output (remaining outputs: "
                             f"{', '.join(o.describe() for o in free.values()) or 'none'})")
        pairs.append((t, free.pop(hit.name)))
    return pairs


def zero_state(t: TensorSpec) -> np.ndarray:
    """Zero initial state; dynamic axes are taken as 1 (a batch of one)."""
    return np.zeros([1 if d is None else d for d in t.shape], dtype=t.dtype)


# --------------------------------------------------------------------------------------------------------
# Model cards
# --------------------------------------------------------------------------------------------------------

#: Sane ranges for card values (a card is read before anything runs; outside these a model would give
#: near-silence, or loading would hang computing a window of millions of samples).
CARD_RATE_RANGE = (4000, 384000)
CARD_NFFT_RANGE = (16, 65536)
CARD_MAX_OVERLAP = 64

#: Card schema: field -> (accepted Python types, how to say it). ``None`` means the field may be absent.
_CARD_SCHEMA = {
    **{k: ((str,), "a string") for k in ("id", "name", "description", "kind", "window", "input", "input_layout",
                                         "output", "output_type", "start_padding", "license", "url")},
    **{k: ((str, type(None)), "a string") for k in ("output_layout", "input_name", "output_name")},
    **{k: ((int,), "a whole number") for k in ("sample_rate", "n_fft", "hop", "latency_samples")},
    "fft_size": ((int, type(None)), "a whole number"),
    **{k: ((int, float, type(None)), "a number of seconds") for k in ("chunk_s", "overlap_s")},
    "streaming": ((bool,), "true or false"),
    "causal": ((bool, type(None)), "true or false"),
    "signature": ((dict,), "a table"),
    "stages": ((dict,), "a table"),
}
_TYPE_WORDS = {str: "string", int: "number", float: "number", bool: "true/false value", list: "list",
               dict: "table", type(None): "null"}


def _type_problem(key: str, value) -> str | None:
    """One sentence when ``value`` has the wrong type for card field ``key`` (``None`` when it fits)."""
    if key not in _CARD_SCHEMA:
        return None
    types, words = _CARD_SCHEMA[key]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if ok:
        return None
    return f"{key} must be {words}, not the {_TYPE_WORDS.get(type(value), type(value).__name__)} {value!r}"[:200]


#: A model card is a few hundred bytes; anything over this is not one.
CARD_MAX_BYTES = 1 << 20


@dataclass
class ModelCard:
    """What a spectral or streaming graph expects, when its signature alone does not say.

    Attributes:
        kind: ``"spectral"``, ``"waveform"`` or ``"dtln"`` (the two-stage DTLN pair).
        sample_rate: Hz.
        streaming: spectral: one STFT frame per call with states fed back; waveform: one fixed block.
        n_fft, hop, window: STFT framing (window one of ``hann``, ``sqrt-hann``, ``hamming``,
            ``blackman``); ``fft_size`` when the DFT is longer than the frame.
        input: ``"complex"`` or ``"magnitude"``; ``input_layout``: axes of the model input (see module doc).
        output: ``"mask"`` or ``"spectrum"``; ``output_type``: ``"complex"`` or ``"magnitude"``;
            ``output_layout`` defaults to the input layout (with ``C`` dropped for magnitudes).
        input_name, output_name: main tensors (default: the first input and output).
        latency_samples: extra look-ahead of the graph itself in samples (added to the framing delay).
        start_padding: what a streaming model sees before the first sample: ``"zeros"`` (silence), or
            ``"reflect"`` to mirror the start of the signal, as ``torch.stft(center=True)`` does in the
            pipelines many spectral models were exported from (the model's recurrent state then starts
            exactly as in the authors' reference runs). A whole-utterance model (``streaming = false``)
            with ``"reflect"`` gets exactly ``torch.stft(center=True)``'s frames: both ends mirrored by
            ``n_fft // 2`` samples, ``1 + n // hop`` frames, and the matching inverse (what a model trained
            on that STFT saw; the workbench's own STFT pads with zeros and covers every sample).
        chunk_s, overlap_s: how the engine cuts long inputs for a whole-utterance model (default 30 s and 1 s);
            a recurrent model wants long chunks, and equal chunking keeps its runs equal to another runner's.
        causal: declared causality.
        signature: ``{"inputs": {name: shape}, "outputs": {...}}`` to recognise the graph without a card.
        outputs: names of a waveform model's several outputs (``["speech", "noise"]``), in order; see
            :func:`waveform_output_count`. Empty: one output, or ``output1``, ``output2`` ...
        path: where the card was read from.
    """

    id: str = ""
    name: str = ""
    description: str = ""
    kind: str = "spectral"
    sample_rate: int = DEFAULT_RATE
    streaming: bool = False
    n_fft: int = 512
    hop: int = 256
    window: str = "hann"
    fft_size: int | None = None
    input: str = "complex"
    input_layout: str = "BFTC"
    output: str = "mask"
    output_type: str = "complex"
    output_layout: str | None = None
    input_name: str | None = None
    output_name: str | None = None
    latency_samples: int = 0
    causal: bool | None = None
    start_padding: str = "zeros"
    chunk_s: float | None = None
    overlap_s: float | None = None
    license: str = ""
    url: str = ""
    signature: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    path: Path | None = None
    #: the card gives ``latency_samples`` (otherwise the engine measures the delay on the first run)
    latency_declared: bool = False

    @property
    def family(self) -> str:
        """The model family a spectral card describes (see ``workbench.core.enhance.enhancer.FAMILIES``)."""
        if self.output == "mask":
            return "complex-mask" if self.output_type == "complex" else "magnitude-mask"
        return "complex-mapping"

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> "ModelCard":
        where = path or "model card"
        if not isinstance(data, dict):
            raise ModelError(f"{where}: a model card is a table of fields (TOML, or a JSON object), "
                             f"not a {_TYPE_WORDS.get(type(data), type(data).__name__)}")
        known = set(cls.__dataclass_fields__) - {"path", "latency_declared"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{path or 'model card'}: unknown field(s) {', '.join(unknown)}; "
                             f"known fields are {', '.join(sorted(known))}")
        wrong = [_type_problem(k, v) for k, v in data.items()]
        wrong = [w for w in wrong if w]
        if wrong:
            raise ModelError(f"{where}: " + "; ".join(wrong))
        card = cls(**data, path=path, latency_declared="latency_samples" in data)
        card.validate()
        return card

    @classmethod
    def read(cls, path: str | Path) -> "ModelCard":
        path = Path(path)
        try:
            # A card is read like every non-audio file: regular files only (a FIFO never blocks), size capped.
            text = read_text(path, max_bytes=CARD_MAX_BYTES, what="model card")
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except JsonFileError as exc:
            raise ModelError(str(exc)) from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{path}: cannot read this model card: {first[:200]}") from None
        return cls.from_dict(data, path)

    def validate(self) -> None:
        where = self.path or "model card"
        problems = []
        if self.kind not in ("spectral", "waveform", "dtln"):
            problems.append(f"kind must be 'spectral', 'waveform' or 'dtln', not {self.kind!r}")
        lo, hi = CARD_RATE_RANGE
        if not isinstance(self.sample_rate, int) or not lo <= self.sample_rate <= hi:
            problems.append(f"sample_rate must be an integer from {lo} to {hi} Hz, not {self.sample_rate!r}")
        lo, hi = CARD_NFFT_RANGE
        if not lo <= self.n_fft <= hi:
            problems.append(f"n_fft must be from {lo} to {hi} samples, not {self.n_fft}")
        elif not 1 <= self.hop <= self.n_fft:
            problems.append(f"hop must be from 1 to n_fft ({self.n_fft}) samples, not {self.hop}")
        elif self.n_fft // self.hop > CARD_MAX_OVERLAP:
            problems.append(f"hop {self.hop} is too small for n_fft {self.n_fft} (at most {CARD_MAX_OVERLAP} "
                            "overlapping frames)")
        if self.fft_size is not None and not self.n_fft <= self.fft_size <= 4 * CARD_NFFT_RANGE[1]:
            problems.append(f"fft_size must be from n_fft ({self.n_fft}) to {4 * CARD_NFFT_RANGE[1]}, "
                            f"not {self.fft_size}")
        if not 0 <= self.latency_samples <= 10 * max(self.sample_rate, 1):
            problems.append(f"latency_samples must be from 0 to 10 s of samples, not {self.latency_samples}")
        if self.input not in ("complex", "magnitude"):
            problems.append(f"input must be 'complex' or 'magnitude', not {self.input!r}")
        if self.output not in ("mask", "spectrum"):
            problems.append(f"output must be 'mask' or 'spectrum', not {self.output!r}")
        if self.output_type not in ("complex", "magnitude"):
            problems.append(f"output_type must be 'complex' or 'magnitude', not {self.output_type!r}")
        for name, layout, want_c in (("input_layout", self.input_layout, self.input == "complex"),
                                     ("output_layout", self.out_layout, self.output_type == "complex")):
            if sorted(layout.replace("B", "")) != sorted("FT" + ("C" if want_c else "")):
                problems.append(f"{name} {layout!r} must use the letters F, T{', C' if want_c else ''} "
                                "(and optionally B) once each")
        if self.start_padding not in ("zeros", "reflect"):
            problems.append(f"start_padding must be 'zeros' or 'reflect', not {self.start_padding!r}")
        if self.chunk_s is not None and not 1.0 <= self.chunk_s <= 3600.0:
            problems.append(f"chunk_s must be from 1 to 3600 seconds, not {self.chunk_s}")
        elif self.overlap_s is not None and not 0.0 <= self.overlap_s <= (self.chunk_s or 30.0) / 2:
            problems.append(f"overlap_s must be from 0 to half of chunk_s, not {self.overlap_s}")
        if self.kind == "spectral" and not problems:
            try:
                StftConfig(self.n_fft, self.hop, self.window, self.fft_size, True)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ModelError(f"{where}: " + "; ".join(problems))

    @property
    def out_layout(self) -> str:
        if self.output_layout:
            return self.output_layout
        return self.input_layout if self.output_type == "complex" or "C" not in self.input_layout \
            else self.input_layout.replace("C", "")


def card_candidates(model_path: Path) -> list[Path]:
    """Card files that may describe ``model_path``, most specific first."""
    stem, folder = model_path.stem, model_path.parent
    names = [model_path.name + ".toml", model_path.name + ".json", stem + ".card.toml", stem + ".card.json",
             stem + ".toml", stem + ".json"]
    return [folder / n for n in names]


def find_card(model_path: Path) -> ModelCard | None:
    for cand in card_candidates(model_path):
        if cand.is_file():
            return ModelCard.read(cand)
    return None


def shipped_cards() -> list[ModelCard]:
    """The cards bundled in ``workbench_models/cards``."""
    cards = []
    folder = resources.files(__package__).joinpath("cards")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".toml", ".json")):
            data = entry.read_text(encoding="utf-8")
            parsed = json.loads(data) if entry.name.endswith(".json") else tomllib.loads(data)
            cards.append(ModelCard.from_dict(parsed, Path(str(entry))))
    return cards


def card_for_signature(sig: Signature) -> ModelCard | None:
    """The shipped card whose ``signature`` (or one of whose ``stages``) equals ``sig``."""
    for card in shipped_cards():
        if card.signature and sig.matches(card.signature):
            return card
        if any(sig.matches(table) for table in card.stages.values()):
            return card
    return None


# --------------------------------------------------------------------------------------------------------
# Layout helpers
# --------------------------------------------------------------------------------------------------------

def to_layout(spec_tf: np.ndarray, layout: str, complex_: bool) -> np.ndarray:
    """Canonical ``(T, F)`` complex (or real) array -> model tensor in ``layout`` (float32)."""
    if complex_:
        arr = np.stack([spec_tf.real, spec_tf.imag], axis=-1)[None]   # (B, T, F, C)
        canon = "BTFC"
    else:
        arr = np.asarray(spec_tf)[None]
        canon = "BTF"
    full = layout if "B" in layout else "B" + layout
    arr = np.transpose(arr, [canon.index(a) for a in full])
    if "B" not in layout:
        arr = arr[0]
    return np.ascontiguousarray(arr, dtype=np.float32)


def from_layout(arr: np.ndarray, layout: str, complex_: bool) -> np.ndarray:
    """Model tensor in ``layout`` -> canonical ``(T, F)`` (complex128 when ``complex_``)."""
    full = layout if "B" in layout else "B" + layout
    arr = np.asarray(arr)
    if "B" not in layout:
        arr = arr[None]
    if arr.ndim != len(full):
        raise ModelError(f"model output has shape {arr.shape}, expected layout {layout}")
    canon = "BTFC" if complex_ else "BTF"
    arr = np.transpose(arr, [full.index(a) for a in canon])[0]
    if complex_:
        return arr[..., 0].astype(np.float64) + 1j * arr[..., 1].astype(np.float64)
    return arr.astype(np.float64)


def card_spectrum(audio: np.ndarray, cfg: StftConfig, card: ModelCard) -> np.ndarray:
    """The STFT a whole-utterance spectral model is fed: complex ``(T, F)``.

    ``start_padding = "zeros"``: the workbench's centred STFT (:func:`~workbench.core.views.stft.stft`).
    ``"reflect"``: ``torch.stft(center=True)``'s framing: the signal mirrored by ``p = n_fft // 2`` samples
    at both ends (``x[-i] = x[i]``, ``x[n-1+i] = x[n-1-i]``), frames ``t = 0 .. n // hop`` at
    ``[t * hop, t * hop + n_fft)`` of the padded signal; inputs of ``p`` samples or fewer are first
    zero-padded to ``p + 1`` (mirroring needs more samples than it mirrors)."""
    if card.start_padding != "reflect":
        return stft(audio, cfg)
    x = np.asarray(audio, np.float32).reshape(-1)
    pad = cfg.n_fft // 2
    if len(x) <= pad:
        x = np.concatenate([x, np.zeros(pad + 1 - len(x), np.float32)])
    padded = np.pad(x, pad, mode="reflect")
    frames_cfg = StftConfig(cfg.n_fft, cfg.hop, cfg.window, cfg.fft_size, center=False)
    return stft_frames(lambda a, b: padded[a:b], len(padded), 0, 1 + len(x) // cfg.hop, frames_cfg)


def card_inverse(spec: np.ndarray, cfg: StftConfig, card: ModelCard, length: int) -> np.ndarray:
    """Inverse of :func:`card_spectrum` (weighted overlap-add), ``(length,)`` float32."""
    if card.start_padding != "reflect":
        return istft(spec, cfg, length=length)
    pad = cfg.n_fft // 2
    frames_cfg = StftConfig(cfg.n_fft, cfg.hop, cfg.window, cfg.fft_size, center=False)
    return istft(spec, frames_cfg, length=pad + length)[pad:]


def apply_card_chunking(enhancer: Enhancer, card: ModelCard) -> None:
    """The card's ``chunk_s`` / ``overlap_s``, where it gives them, on ``enhancer``."""
    if card.chunk_s is not None:
        enhancer.chunk_s = float(card.chunk_s)
    if card.overlap_s is not None:
        enhancer.overlap_s = float(card.overlap_s)


def _apply_output(noisy: np.ndarray, out: np.ndarray, card: ModelCard) -> np.ndarray:
    """Enhanced complex spectrum from the model output (``(T, F)`` each)."""
    if card.output == "spectrum":
        if card.output_type == "complex":
            return out
        return out * np.exp(1j * np.angle(noisy))   # magnitude estimate with the noisy phase
    return noisy * out                               # complex or real mask, element-wise


# --------------------------------------------------------------------------------------------------------
# Enhancers
# --------------------------------------------------------------------------------------------------------

class OnnxWaveformEnhancer(Enhancer):
    """A waveform-in/waveform-out graph run on whole chunks (offline path)."""

    chunk_s = 30.0
    overlap_s = 1.0

    def __init__(self, path: Path, session: ort.InferenceSession, sig: Signature, card: ModelCard | None):
        self.session, self.sig = session, sig
        self.input = sig.inputs[0]
        self.output = sig.outputs[0]
        self.n_out = waveform_output_count(sig)
        names = tuple(card.outputs) if card and card.outputs else (
            ("enhanced",) if self.n_out == 1 else
            tuple(o.name for o in sig.outputs) if len(sig.outputs) > 1 else
            tuple(f"output{k + 1}" for k in range(self.n_out)))
        if len(names) != self.n_out:
            raise ModelError(f"{card.path if card else path}: the card names {len(names)} outputs "
                             f"({', '.join(names)}) but the graph returns {self.n_out} ({sig.describe()})")
        rate = card.sample_rate if card else DEFAULT_RATE
        note = (f"rate {rate} Hz from the card {card.path}" if card else
                f"no model card: assuming {DEFAULT_RATE} Hz, delay measured on the first run; add "
                f"{path.name}.toml with sample_rate = ... and latency_samples = ... to change")
        self.info = EnhancerInfo(
            **card_identity(card, path, "onnx", "ONNX waveform-in/waveform-out model"), sample_rate=rate,
            causal=card.causal if card else None,
            latency_samples=0, family="time-domain", processing="offline", source=str(path),
            parameters=stored_weights(path), outputs=names,
            latency_source="declared" if card and card.latency_declared else "unknown",
            licence=card.license if card else "",
            extra={"format": "ONNX waveform graph", "signature": sig.describe(), "note": note})
        self._latency = card.latency_samples if card else 0

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        n = len(audio)
        rank = len(self.input.shape)
        # A model with a known delay gets that many zeros appended, so its delayed tail is not lost.
        padded = np.concatenate([np.asarray(audio, np.float32), np.zeros(self._latency, np.float32)])
        x = padded.reshape((1,) * (rank - 1) + (len(padded),))
        res = self.session.run([o.name for o in self.sig.outputs], {self.input.name: x})
        y = np.concatenate([np.asarray(r).reshape(-1) for r in res])
        if len(y) != self.n_out * len(padded):
            raise ModelError(f"model {self.info.id!r} returned {len(y)} samples for {len(padded)}"
                             + (f" x {self.n_out} outputs" if self.n_out > 1 else ""))
        y = y.reshape(self.n_out, len(padded))[:, self._latency:self._latency + n].astype(np.float32, copy=False)
        return y[0] if self.n_out == 1 else y

    def close(self) -> None:
        self.session = None


class _FrameStream(EnhancerStream):
    """Block streaming for a graph that maps one fixed block (plus states) to one block."""

    def __init__(self, enh: "OnnxBlockStreamEnhancer"):
        self.enh = enh
        self.states = {i.name: zero_state(i) for i, _ in enh.pairs}

    def process(self, block: np.ndarray) -> np.ndarray:
        e = self.enh
        size = e.info.block_samples
        out = np.empty(len(block), np.float32)
        names = [e.output.name] + [o.name for _, o in e.pairs]
        for s in range(0, len(block), size):
            feed = {e.input.name: block[s:s + size].astype(np.float32).reshape(e.input.shape), **self.states}
            res = e.session.run(names, feed)
            out[s:s + size] = np.asarray(res[0]).reshape(-1)
            for (i, _), value in zip(e.pairs, res[1:]):
                self.states[i.name] = value
        return out


class OnnxBlockStreamEnhancer(Enhancer):
    """A graph whose main input is one fixed-size waveform block, with state inputs fed back."""

    def __init__(self, path: Path, session, sig: Signature, main_in: TensorSpec, main_out: TensorSpec,
                 pairs, card: ModelCard | None):
        self.session, self.sig, self.input, self.output, self.pairs = session, sig, main_in, main_out, pairs
        size = int(np.prod([d for d in main_in.shape]))
        rate = card.sample_rate if card else DEFAULT_RATE
        self.info = EnhancerInfo(
            **card_identity(card, path, "onnx", "ONNX streaming waveform model (fixed blocks, states fed back)"),
            sample_rate=rate, causal=card.causal if card else True,
            latency_samples=card.latency_samples if card else 0, family="time-domain",
            processing="streaming", block_samples=size, source=str(path),
            parameters=stored_weights(path),
            latency_source="declared" if card and card.latency_declared else "unknown",
            licence=card.license if card else "",
            extra={"format": "ONNX streaming waveform graph", "signature": sig.describe(),
                   "states": ", ".join(f"{i.name}->{o.name}" for i, o in pairs),
                   "note": "" if card else f"no model card: assuming {DEFAULT_RATE} Hz, delay measured on the "
                                           "first run"})

    def new_stream(self) -> EnhancerStream:
        return _FrameStream(self)


class _SpectralStream(EnhancerStream):
    """Frame-by-frame STFT -> model (states fed back) -> weighted overlap-add.

    After each hop of input the frame of the last ``n_fft`` samples is analysed; the first ``hop``
    samples of the overlap-add buffer are then complete and are emitted, so the output lags the input
    by ``n_fft - hop`` samples. Synthesis uses the analysis window and divides by the hop-periodic sum
    of squared windows (exact for any window whose squares overlap to a non-zero sum).
    """

    def __init__(self, enh: "OnnxSpectralEnhancer"):
        self.enh = enh
        cfg = enh.cfg
        self.win = window_array(cfg)
        self.frame = np.zeros(cfg.n_fft)
        self.ola = np.zeros(cfg.n_fft)
        self.states = {i.name: zero_state(i) for i, _ in enh.pairs}
        self.names = [enh.output_name] + [o.name for _, o in enh.pairs]
        self.started = False

    def _mirror_start(self, first: np.ndarray) -> None:
        """Fill the past half of the first frame with the mirrored signal start, ``x[-i] = x[i]``.

        Mirroring ``n_fft - hop`` samples needs ``x[n_fft - hop]``, which may lie just beyond the
        first hop; the nearest available sample stands in for the few that have not arrived yet.
        """
        past = self.enh.cfg.n_fft - self.enh.cfg.hop
        idx = np.minimum(np.arange(past, 0, -1), len(first) - 1)
        self.frame[:past] = first[idx]

    def process(self, block: np.ndarray) -> np.ndarray:
        e, cfg = self.enh, self.enh.cfg
        hop, n = cfg.hop, cfg.n_fft
        out = np.empty(len(block), np.float32)
        for s in range(0, len(block), hop):
            self.frame[:-hop] = self.frame[hop:]
            self.frame[-hop:] = block[s:s + hop]
            if not self.started:
                self.started = True
                if e.card.start_padding == "reflect":
                    self._mirror_start(block[s:])
            spec = np.fft.rfft(self.frame * self.win, n=cfg.nfft)[None]       # (1, F)
            enhanced = e.run_frames(spec, self.states, self.names)
            y = np.fft.irfft(enhanced[0], n=cfg.nfft)[:n] * self.win
            self.ola += y
            out[s:s + hop] = self.ola[:hop] * e.inv_norm
            self.ola[:-hop] = self.ola[hop:]
            self.ola[-hop:] = 0.0
        return out


class OnnxSpectralEnhancer(Enhancer):
    """A spectral graph described by a :class:`ModelCard` (whole-utterance or frame by frame)."""

    chunk_s = 30.0
    overlap_s = 1.0

    def __init__(self, path: Path, session, sig: Signature, card: ModelCard):
        self.session, self.sig, self.card = session, sig, card
        self.cfg = StftConfig(card.n_fft, card.hop, card.window, card.fft_size, center=True)
        apply_card_chunking(self, card)
        self.input_name = card.input_name or sig.inputs[0].name
        self.output_name = card.output_name or sig.outputs[0].name
        names_in = {t.name for t in sig.inputs}
        names_out = {t.name for t in sig.outputs}
        if self.input_name not in names_in or self.output_name not in names_out:
            raise ModelError(f"{path}: the card {card.path} names input {self.input_name!r} and output "
                             f"{self.output_name!r}, but the graph has {sig.describe()}")
        self.pairs = pair_states(sig, self.input_name, self.output_name)
        if self.pairs and not card.streaming:
            raise ModelError(f"{path}: the graph has state inputs "
                             f"({', '.join(i.name for i, _ in self.pairs)}) but its card says streaming = false")
        # Hop-periodic normalisation of the weighted overlap-add (constant for COLA windows).
        norm = squared_window_sum(self.cfg)
        if np.any(norm < 1e-8):
            raise ModelError(f"{card.path}: window {card.window!r} with n_fft {card.n_fft} and hop {card.hop} "
                             "cannot be inverted (squared windows overlap to zero)")
        self.inv_norm = 1.0 / norm
        latency = (self.cfg.n_fft - self.cfg.hop if card.streaming else 0) + card.latency_samples
        self.info = EnhancerInfo(
            **card_identity(card, path, "onnx", "ONNX spectral model described by a model card"),
            sample_rate=card.sample_rate, causal=card.causal, latency_samples=latency,
            family=card.family,
            processing="streaming" if card.streaming else "offline",
            block_samples=self.cfg.hop, source=str(path), parameters=stored_weights(path),
            extra={"format": "ONNX spectral graph", "card": str(card.path),
                   "stft": f"{card.n_fft}-point, hop {card.hop}, {card.window}",
                   "input": f"{card.input} {card.input_layout}",
                   "output": f"{card.output_type} {card.output} {card.out_layout}",
                   "path": ("frame by frame, states fed back: " +
                            ", ".join(f"{i.name}->{o.name}" for i, o in self.pairs)) if card.streaming
                   else "whole chunk",
                   "signature": sig.describe()})

    def run_frames(self, spec_tf: np.ndarray, states: dict | None = None,
                   names: list[str] | None = None) -> np.ndarray:
        """Run the graph on ``(T, F)`` complex frames; update ``states`` in place; return enhanced ``(T, F)``."""
        card = self.card
        x = spec_tf if card.input == "complex" else np.abs(spec_tf)
        feed = {self.input_name: to_layout(x, card.input_layout, card.input == "complex")}
        if states:
            feed.update(states)
        res = self.session.run(names or [self.output_name], feed)
        if states is not None:
            for (i, _), value in zip(self.pairs, res[1:]):
                states[i.name] = value
        out = from_layout(res[0], card.out_layout, card.output_type == "complex")
        if out.shape != spec_tf.shape:
            raise ModelError(f"model {self.info.id!r} returned a spectrum of {out.shape}, expected {spec_tf.shape}")
        return _apply_output(spec_tf, out, card)

    def new_stream(self) -> EnhancerStream:
        if not self.card.streaming:
            raise NotImplementedError("whole-utterance spectral model has no streaming path")
        return _SpectralStream(self)

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        spec = card_spectrum(audio, self.cfg, self.card)
        enhanced = self.run_frames(spec.astype(np.complex128))
        return card_inverse(enhanced, self.cfg, self.card, len(audio))

    def close(self) -> None:
        self.session = None


# --------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------

def _is_waveform(sig: Signature) -> bool:
    return waveform_output_count(sig) > 0


def waveform_output_count(sig: Signature) -> int:
    """How many signals a waveform graph returns (0: not a waveform graph).

    One float input ``(T,)``, ``(1, T)`` or ``(1, 1, T)`` with a dynamic time axis, and either
    ``k`` float outputs of the input's shape (one signal each), or one float output whose last axis is
    dynamic time and whose other axes are fixed with product ``k`` (``(2, T)``, ``(1, 2, T)``: k = 2)."""
    if len(sig.inputs) != 1 or not sig.outputs:
        return 0
    i = sig.inputs[0]
    if not (i.type == "tensor(float)" and 1 <= len(i.shape) <= 3 and i.shape[-1] is None
            and all(d in (1, None) for d in i.shape[:-1])):
        return 0
    if all(o.type == "tensor(float)" and len(o.shape) == len(i.shape) and o.shape[-1] is None
           and all(d in (1, None) for d in o.shape[:-1]) for o in sig.outputs):
        return len(sig.outputs)
    (o,) = sig.outputs if len(sig.outputs) == 1 else (None,)
    if o is None or o.type != "tensor(float)" or len(o.shape) < 2 or o.shape[-1] is not None:
        return 0
    lead = o.shape[:-1]
    if any(d is None for d in lead):
        return 0
    k = int(np.prod(lead))
    return k if k > 1 else 0


def expected_formats() -> str:
    return ("expected one of: a waveform graph (one float input (T,), (1,T) or (1,1,T) with a dynamic time "
            "axis and one output of the same shape); a streaming graph whose state inputs have matching "
            "outputs (e.g. conv_cache -> conv_cache_out); or a spectral graph with a model card next to "
            "the file (<file>.toml: sample_rate, n_fft, hop, window, input, input_layout, output, "
            "output_type, streaming)")


_REAL_FLOAT_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")


def _require_real_float(path: Path, spec: TensorSpec) -> None:
    """Refuse a main output that is not real floating point (it would be cast into a wrong file)."""
    if spec.type not in _REAL_FLOAT_TYPES:
        raise ModelError(f"{path}: the graph's output {spec.name!r} is {spec.type.replace('tensor(', '').rstrip(')')}, "
                         "expected real floating point (float32, float64 or float16)")


def load_onnx(path: str | Path, card: ModelCard | None = None) -> Enhancer:
    """An Enhancer for one ONNX file (see the module docstring for what is recognised).

    Raises:
        ModelError: unreadable file, or a graph that is neither recognised nor described by a card; the
            message lists the graph's inputs and outputs and what is expected.
    """
    path = Path(path)
    session = make_session(path)
    sig = signature_of(session)
    if card is None:
        card = find_card(path)
    if card is None:
        card = card_for_signature(sig)
    if card is not None and card.kind == "dtln":
        stage = next((name for name, table in card.stages.items() if sig.matches(table)), None)
        raise ModelError(f"{path}: this is {'stage ' + stage if stage else 'one stage'} of the two-stage DTLN "
                         f"model ({sig.describe()}); load the folder holding both model_1.onnx and "
                         "model_2.onnx instead")
    if card is not None and card.kind == "spectral":
        out_name = card.output_name or (sig.outputs[0].name if sig.outputs else None)
        out_spec = next((o for o in sig.outputs if o.name == out_name), None)
        if out_spec is not None:
            _require_real_float(path, out_spec)
        return OnnxSpectralEnhancer(path, session, sig, card)
    if _is_waveform(sig):
        return OnnxWaveformEnhancer(path, session, sig, card)
    # Streaming waveform graph: one fixed-size float block input among state inputs.
    if len(sig.inputs) >= 2 and len(sig.outputs) == len(sig.inputs):
        main_in = sig.inputs[0]
        main_out = next((o for o in sig.outputs if o.shape == main_in.shape), None)
        looks_spectral = any(d == 2 for d in main_in.shape[-1:]) or any(
            d is not None and d > 2 and (d - 1) & (d - 2) == 0 for d in main_in.shape)
        if main_out is not None and all(d is not None for d in main_in.shape) and not looks_spectral:
            _require_real_float(path, main_out)
            pairs = pair_states(sig, main_in.name, main_out.name)
            return OnnxBlockStreamEnhancer(path, session, sig, main_in, main_out, pairs, card)
    raise ModelError(f"{path}: ONNX graph not recognised ({sig.describe()}); {expected_formats()}")
