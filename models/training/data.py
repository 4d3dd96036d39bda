"""Training data: noisy/clean pair folders, or clean speech mixed with noise on the fly; everything seeded.

Files are read once (mono: the mean of the channels; resampled to the model rate with soxr) and kept in
memory, so a data set must fit in RAM (a few hours of 16 kHz audio are about 1 GB as float32).

Validation is held out *by file*: a seeded permutation of the files puts ``val_fraction`` of them (at
least one) aside; no crop of a validation file is ever trained on. With mixing, the clean files are split,
and the noise files too when there are two or more (one noise file is shared, but validation mixtures take
their noise from the file's last fifth, training mixtures from the rest).

A recording's noise-only spans (``noise_recording`` with ``noise_spans_s``, or its pauses found by the
speech activity detector) are noise sources too: each span is cut out of the recording and counts as one
noise file, so no mixture ever takes a sample from outside the spans, and with two or more spans some are
held out for validation like files.

Every example is a pure function of ``(seed, epoch, index)``: a resumed run sees exactly the data an
uninterrupted run would, without storing any random state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.core.audio.audio_io import downmix, load_audio, resample
from workbench.core.errors import WorkbenchError
from workbench.core.workflows.train_config import DataConfig

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
#: Spans shorter than this are not used as noise (too short to carry a noise's character; VAD finds many).
MIN_NOISE_SPAN_S = 0.1
#: Tag mixed into validation seeds so they never coincide with an epoch's.
_VAL_STREAM = 7_919_113


@dataclass
class ValidationClip:
    name: str
    noisy: np.ndarray   # (n,) float32
    clean: np.ndarray   # (n,) float32


def list_audio(entries: list, base_dir: Path) -> list[Path]:
    """Audio files named by ``entries`` (files, or folders searched recursively), sorted, no duplicates."""
    found: list[Path] = []
    for entry in entries:
        p = Path(entry).expanduser()
        p = p if p.is_absolute() else base_dir / p
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise WorkbenchError(f"{p}: no such file or folder (named in [data])")
    seen, out = set(), []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


def read_mono(path: Path, rate: int) -> np.ndarray:
    audio, info = load_audio(path)
    return resample(downmix(audio), info.sample_rate, rate)


def recording_noise(path: Path, spans_s: list, from_pauses: bool,
                    rate: int) -> tuple[list[np.ndarray], list[list[float]]]:
    """The noise-only pieces of a recording: ``(pieces, spans)``, one ``(n,)`` float32 piece (mono, at
    ``rate``) per span of at least :data:`MIN_NOISE_SPAN_S` seconds, and the spans used.

    ``spans_s``: ``[[start, stop], ...]`` seconds; spans are clipped to the recording. ``from_pauses``:
    the spans are the recording's non-speech spans found by the speech activity detector instead.

    Raises:
        WorkbenchError: no such file, or no usable span (one line naming the file).
    """
    if not path.is_file():
        raise WorkbenchError(f"{path}: no such recording (named in [data] noise_recording)")
    audio, info = load_audio(path)
    audio, native = downmix(audio), info.sample_rate
    duration = len(audio) / native
    if from_pauses:
        from workbench.core.measure.vad import detect_speech
        from workbench.core.progress import run_to_end
        spans_s = run_to_end(detect_speech(audio, native)).pauses
    pieces, used = [], []
    for a, b in spans_s:
        a, b = max(0.0, float(a)), min(float(b), duration)
        if b - a < MIN_NOISE_SPAN_S:
            continue
        # cut at the file's own rate, then resample the piece: the resampler's filter never reaches
        # samples outside the span
        i0, i1 = int(round(a * native)), int(round(b * native))
        pieces.append(np.ascontiguousarray(resample(audio[i0:i1], native, rate), dtype=np.float32))
        used.append([a, b])
    if not pieces:
        where = "its pauses (speech activity)" if from_pauses else "noise_spans_s"
        raise WorkbenchError(f"{path}: no noise span of at least {MIN_NOISE_SPAN_S} s inside the recording "
                             f"({where}, {duration:.2f} s long)")
    return pieces, used


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train, validation)`` indices: a seeded permutation, ``round(fraction * n)`` (at least 1) held out."""
    order = np.random.default_rng([seed, _VAL_STREAM]).permutation(n)
    n_val = min(max(1, int(round(fraction * n))), n - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def _crop(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample crop; shorter signals are zero-padded at the end."""
    if len(x) <= length:
        out = np.zeros(length, np.float32)
        out[:len(x)] = x
        return out
    start = int(rng.integers(0, len(x) - length + 1))
    return x[start:start + length]


def _loop_crop(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A ``length``-sample span of ``x`` from a random start, repeating ``x`` when it is shorter."""
    start = int(rng.integers(0, len(x)))
    reps = -(-(start + length) // len(x))
    return np.tile(x, reps)[start:start + length]


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


class TrainingData:
    """Examples for training and the fixed validation clips.

    Attributes:
        sample_rate: Hz.
        crop_samples: length of each training example.
        n_examples: examples per epoch.
        validation: the validation clips (the same in every epoch).
        description: what the checkpoint records about the data (files, split, mixing ranges).
    """

    def __init__(self, cfg: DataConfig, seed: int, base_dir: Path):
        self.cfg, self.seed = cfg, int(seed)
        self.sample_rate = cfg.sample_rate
        self.crop_samples = int(round(cfg.crop_s * cfg.sample_rate))
        val_len = int(round(cfg.val_max_s * cfg.sample_rate))
        self.rirs: list[np.ndarray] = []
        if cfg.pairs:
            self._init_pairs(base_dir, val_len)
        else:
            self._init_mixing(base_dir, val_len)

    # -- pairs ------------------------------------------------------------------------------------------
    def _init_pairs(self, base_dir: Path, val_len: int) -> None:
        from workbench.core.measure.metrics import find_pairs
        folder = Path(self.cfg.pairs).expanduser()
        folder = folder if folder.is_absolute() else base_dir / folder
        pairs = find_pairs(folder)
        if len(pairs) < 2:
            raise WorkbenchError(f"{folder}: {len(pairs)} noisy/clean pair(s); training needs at least two "
                                 "(one is held out for validation)")
        clips = []
        for p in pairs:
            noisy, clean = read_mono(p.noisy, self.sample_rate), read_mono(p.clean, self.sample_rate)
            n = min(len(noisy), len(clean))
            if n == 0:
                raise WorkbenchError(f"{p.noisy}: empty audio")
            clips.append((p.name, noisy[:n], clean[:n]))
        train, val = _split(len(clips), self.cfg.val_fraction, self.seed)
        self.mode = "pairs"
        self.train_pairs = [clips[i] for i in train]
        self.validation = [ValidationClip(clips[i][0], clips[i][1][:val_len], clips[i][2][:val_len])
                           for i in val[:self.cfg.val_clips]]
        self.n_examples = len(self.train_pairs)
        self.description = {"mode": "pairs", "pairs": str(folder),
                            "train_files": [c[0] for c in self.train_pairs],
                            "validation_files": [c.name for c in self.validation],
                            "crop_s": self.cfg.crop_s}

    # -- mixing -----------------------------------------------------------------------------------------
    def _init_mixing(self, base_dir: Path, val_len: int) -> None:
        cfg = self.cfg
        clean_paths = list_audio(cfg.clean, base_dir)
        noise_paths = list_audio(cfg.noise, base_dir)
        if len(clean_paths) < 2:
            raise WorkbenchError(f"[data] clean: {len(clean_paths)} audio file(s) found; mixing needs at least two "
                                 "(one is held out for validation)")
        if not noise_paths and not cfg.noise_recording:
            raise WorkbenchError("[data] noise: no audio files found")
        rate = self.sample_rate
        clean = [read_mono(p, rate) for p in clean_paths]
        noise = [read_mono(p, rate) for p in noise_paths]
        for p, x in zip(clean_paths + noise_paths, clean + noise):
            if len(x) < rate // 10:
                raise WorkbenchError(f"{p}: shorter than 0.1 s; too short to train on")
        span_sources: list[str] = []
        used_spans: list[list[float]] = []
        if cfg.noise_recording:
            recording = Path(cfg.noise_recording).expanduser()
            recording = recording if recording.is_absolute() else base_dir / recording
            pieces, used_spans = recording_noise(recording, cfg.noise_spans_s, cfg.noise_from_pauses, rate)
            noise += pieces
            span_sources = [f"{recording}@{a:.3f}-{b:.3f}s" for a, b in used_spans]
        self.rirs = [self._prepare_rir(read_mono(p, rate)) for p in list_audio(cfg.rir, base_dir)]
        c_train, c_val = _split(len(clean), cfg.val_fraction, self.seed)
        if len(noise) >= 2:
            n_train, n_val = _split(len(noise), cfg.val_fraction, self.seed + 1)
            self.train_noise = [noise[i] for i in n_train]
            val_noise = [noise[i] for i in n_val]
        else:
            cut = int(len(noise[0]) * 0.8)
            self.train_noise, val_noise = [noise[0][:cut]], [noise[0][cut:]]
        self.mode = "mixing"
        self.train_clean = [clean[i] for i in c_train]
        self.n_examples = cfg.examples_per_epoch
        self.validation = []
        for j, i in enumerate(c_val[:cfg.val_clips]):
            rng = np.random.default_rng([self.seed, _VAL_STREAM, j])
            s = clean[i][:val_len]
            noisy, target = self._mix(s, val_noise[int(rng.integers(len(val_noise)))], rng, allow_rir=False)
            self.validation.append(ValidationClip(clean_paths[i].stem, noisy, target))
        self.description = {
            "mode": "mixing", "clean_files": [str(clean_paths[i]) for i in c_train],
            "validation_files": [str(clean_paths[i]) for i in c_val[:cfg.val_clips]],
            "noise_files": [str(p) for p in noise_paths] + span_sources, "rir_files": len(self.rirs),
            "snr_db": list(cfg.snr_db), "level_db": list(cfg.level_db), "crop_s": cfg.crop_s,
            "examples_per_epoch": cfg.examples_per_epoch}
        if cfg.noise_recording:
            self.description["noise_recording"] = {"path": cfg.noise_recording, "spans_s": used_spans,
                                                   "from_pauses": cfg.noise_from_pauses}

    def _prepare_rir(self, rir: np.ndarray) -> np.ndarray:
        """Start at the direct path (the peak), unit energy: reverberation adds no delay and no gain."""
        rir = rir[int(np.argmax(np.abs(rir))):]
        return (rir / (np.sqrt(np.sum(rir ** 2)) + 1e-12)).astype(np.float32)

    def _mix(self, speech: np.ndarray, noise: np.ndarray, rng: np.random.Generator,
             allow_rir: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(noisy, target)``: speech (reverberated with a random RIR with ``rir_probability``; the target is
        then the direct path plus the first 50 ms) plus noise at a random SNR, both scaled to a random level.

        SNR: ``10 log10(P_speech / P_noise)`` over the example, powers as mean squares."""
        cfg = self.cfg
        n = len(speech)
        target = speech.astype(np.float32)
        reverberant = target
        use_rir = allow_rir and self.rirs and rng.random() < cfg.rir_probability
        if use_rir:
            from scipy.signal import fftconvolve
            rir = self.rirs[int(rng.integers(len(self.rirs)))]
            early = rir[:int(0.05 * self.sample_rate)]
            reverberant = fftconvolve(speech, rir)[:n].astype(np.float32)
            target = fftconvolve(speech, early)[:n].astype(np.float32)
        nz = _loop_crop(noise, n, rng)
        snr = rng.uniform(*cfg.snr_db)
        p_s, p_n = _power(reverberant), _power(nz)
        gain = np.sqrt(p_s / (p_n * 10 ** (snr / 10))) if p_s > 0 and p_n > 0 else 0.0
        noisy = reverberant + gain * nz
        level = rng.uniform(*cfg.level_db)
        rms = np.sqrt(_power(noisy))
        scale = 10 ** (level / 20) / rms if rms > 0 else 1.0
        peak = float(np.max(np.abs(noisy))) * scale
        if peak > 0.99:                      # keep the mixture unclipped; the level range is a wish, not a law
            scale *= 0.99 / peak
        return (noisy * scale).astype(np.float32), (target * scale).astype(np.float32)

    # -- examples ---------------------------------------------------------------------------------------
    def example(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(noisy, clean)``, each ``(crop_samples,)`` float32: a pure function of ``(seed, epoch, index)``."""
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.mode == "pairs":
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train_pairs))
            _name, noisy, clean = self.train_pairs[int(order[index])]
            if len(noisy) <= self.crop_samples:
                return _crop(noisy, self.crop_samples, rng), _crop(clean, self.crop_samples, rng)
            start = int(rng.integers(0, len(noisy) - self.crop_samples + 1))
            return noisy[start:start + self.crop_samples], clean[start:start + self.crop_samples]
        speech = _crop(self.train_clean[int(rng.integers(len(self.train_clean)))], self.crop_samples, rng)
        noise = self.train_noise[int(rng.integers(len(self.train_noise)))]
        return self._mix(speech, noise, rng)

    def batch(self, epoch: int, first: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Examples ``first .. first + size - 1`` of ``epoch`` stacked: ``(noisy, clean)``, each ``(B, L)``."""
        pairs = [self.example(epoch, i) for i in range(first, min(first + size, self.n_examples))]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-self.n_examples // batch_size)

    @property
    def train_seconds_per_epoch(self) -> float:
        return self.n_examples * self.crop_samples / self.sample_rate
