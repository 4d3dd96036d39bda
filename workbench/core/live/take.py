"""What a take becomes: a recording in the session with two sample-aligned versions, or files on disk.

A take's ``microphone`` is the recording's original (written as a float WAV, atomically, into the folder
chosen for takes) and ``heard`` (what the output played, shifted back by the pipeline delay) is added as an
enhanced version whose provenance says it was made live, with the pipeline delay, device rate, block,
strength and the blocks that fell back to the dry signal. Metrics, A/B, export and sessions then treat it
like any other result.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio.audio_io import resample, write_audio_atomic
from ..audio.outputs import check_output_target
from ..document.recording import Recording, Version
from ..enhance.enhancer import EnhancerInfo
from ..provenance import Provenance, VersionKind
from .engine import LiveTake


def take_name(when: float | None = None) -> str:
    return time.strftime("live-take-%Y%m%d-%H%M%S", time.localtime(when))


def live_provenance(model_id: str, settings: dict, model: EnhancerInfo | None, kind: str) -> Provenance:
    """Provenance of a live result: ``kind`` is ``microphone take`` or ``file played as if live``."""
    return Provenance(VersionKind.ENHANCED, parent="original", model_id=model_id,
                      model_spec=model_id if model is not None else None,
                      model_name=model.name if model is not None else "bypass",
                      model_source=model.source if model is not None else None,
                      model_settings={**settings, "processing": "live"}, output="enhanced",
                      extra={"live": kind})


def take_to_recording(take: LiveTake, open_recording: Callable[[Path], Recording], folder: str | Path,
                      model: EnhancerInfo | None = None, name: str | None = None) -> Recording:
    """Write the microphone as ``folder/NAME.wav`` (atomic, never over an existing file), open it with
    ``open_recording`` (``Session.open``, or the GUI document's ``open``) and add what was heard as a
    version named ``heard live (MODEL)``."""
    path = Path(folder) / f"{name or take_name()}.wav"
    write_audio_atomic(path, take.microphone, take.rate, subtype="FLOAT")
    rec = open_recording(path)
    rec.add_version(take.heard, take.rate, live_provenance(take.model, take.settings, model, "microphone take"),
                    name=f"heard live ({take.model})", model=model)
    return rec


def write_take_files(take: LiveTake, out: str | Path, *, overwrite: bool = False,
                     protect: tuple = ()) -> list[Path]:
    """Headless take: ``OUT`` = the live result aligned with the input, ``OUT-input`` = the microphone,
    ``OUT-output`` = exactly what the output device was sent (unshifted, ``pipeline`` samples longer).
    Each file is written atomically; all targets are checked before the first is written."""
    out = Path(out)
    paths = [out, out.with_name(f"{out.stem}-input{out.suffix}"), out.with_name(f"{out.stem}-output{out.suffix}")]
    for p in paths:
        check_output_target(p, inputs=protect, overwrite=overwrite)
    for p, audio in zip(paths, (take.heard, take.microphone, take.sent)):
        write_audio_atomic(p, audio, take.rate, subtype="FLOAT", overwrite=overwrite, protect=protect)
    return paths


def file_input(rec: Recording, rate: int, channel: int = 0) -> np.ndarray:
    """The recording's ``channel`` at the device ``rate`` (soxr), as the live path's input ``(n,)``."""
    src = rec.source
    x = np.asarray(src.read(0, src.frames)[:, channel], np.float32)
    return resample(x, src.sample_rate, rate)


def add_live_file_result(rec: Recording, take: LiveTake, model: EnhancerInfo | None,
                         channel: int = 0) -> Version:
    """Add the result of a file played as if live (``take.heard`` at the device rate, aligned) as a version
    of ``rec``, at the recording's rate and length, beside whatever offline result it has."""
    src = rec.source
    y = take.heard
    y = resample(y, take.rate, src.sample_rate)
    audio = np.zeros(src.frames, np.float32)
    audio[:min(len(y), src.frames)] = y[:src.frames]
    prov = live_provenance(take.model, {**take.settings, "channels": [channel]}, model, "file played as if live")
    prov = Provenance(**{**prov.__dict__, "channels": (channel,)})
    return rec.add_version(audio, src.sample_rate, prov, name=f"{take.model} (live)", model=model)
