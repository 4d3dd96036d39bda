"""Every audio file format the workbench knows, in one table.

File-dialog filters, CLI choices, output planners, noisy/clean pairing, readers and writers all derive from
:data:`FORMATS`: adding a format is one :class:`AudioFormat` entry here (libsndfile must read or write it).
An output's suffix chooses its format (``-o out.mp3`` writes MP3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WorkbenchError


@dataclass(frozen=True)
class AudioFormat:
    """One file format.

    Attributes:
        name: the workbench's name (``--format`` choices, export dialog), e.g. ``"OPUS"``.
        label: what a person reads in a file dialog.
        suffixes: file suffixes, lower case with the dot; the first is the one outputs are named with.
        container: libsndfile's major format (``soundfile`` ``format=``), e.g. ``"OGG"`` for Opus.
        readable: inputs in this format are opened.
        writable: outputs in this format are written.
        lossy: a lossy codec: written through the encoder path (block writes, encoder rates, quality).
        subtypes: sample formats a person may choose when writing, in menu order.
        holds: sample formats the container can hold, best first (an output keeps its source's when it is
            here, else takes the first).
        encoder_rates: sample rates the encoder accepts (``None``: any); others are written at the next
            higher accepted rate.
        comments: the container holds a comment tag (where outputs carry their provenance); libsndfile
            writes none into Wave64.
    """

    name: str
    label: str
    suffixes: tuple[str, ...]
    container: str
    readable: bool = True
    writable: bool = True
    lossy: bool = False
    subtypes: tuple[str, ...] = ()
    holds: tuple[str, ...] = ()
    encoder_rates: tuple[int, ...] | None = None
    comments: bool = True

    @property
    def suffix(self) -> str:
        """The suffix outputs in this format are named with."""
        return self.suffixes[0]


_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

#: The formats, in the order menus list them.
FORMATS: tuple[AudioFormat, ...] = (
    AudioFormat("WAV", "WAV", (".wav",), "WAV", subtypes=("PCM_16", "PCM_24", "PCM_32", "FLOAT"),
                holds=("FLOAT", "PCM_24", "PCM_16", "PCM_32", "DOUBLE", "PCM_U8")),
    AudioFormat("FLAC", "FLAC", (".flac",), "FLAC", subtypes=("PCM_16", "PCM_24"),
                holds=("PCM_24", "PCM_16", "PCM_S8")),
    AudioFormat("MP3", "MP3", (".mp3",), "MP3", lossy=True, subtypes=("MPEG_LAYER_III",),
                holds=("MPEG_LAYER_III",), encoder_rates=_MP3_RATES),
    AudioFormat("OGG", "Ogg Vorbis", (".ogg",), "OGG", lossy=True, subtypes=("VORBIS",), holds=("VORBIS",)),
    AudioFormat("OPUS", "Opus", (".opus",), "OGG", lossy=True, subtypes=("OPUS",), holds=("OPUS",),
                encoder_rates=(8000, 12000, 16000, 24000, 48000)),
    AudioFormat("AIFF", "AIFF", (".aiff", ".aif"), "AIFF", holds=("FLOAT", "PCM_24", "PCM_16", "PCM_32", "DOUBLE",
                                                                   "PCM_S8")),
    # libsndfile writes both; ALAC in CAF is left out: libsndfile 1.2.2 reads its 24-bit ALAC back wrong.
    AudioFormat("W64", "Sony Wave64", (".w64",), "W64", holds=("FLOAT", "PCM_24", "PCM_16", "PCM_32", "DOUBLE",
                                                             "PCM_U8"), comments=False),
    AudioFormat("CAF", "Core Audio", (".caf",), "CAF", holds=("FLOAT", "PCM_24", "PCM_16", "PCM_32", "DOUBLE",
                                                            "PCM_S8")),
)

BY_NAME: dict[str, AudioFormat] = {f.name: f for f in FORMATS}
BY_SUFFIX: dict[str, AudioFormat] = {s: f for f in FORMATS for s in f.suffixes}

#: Suffixes of files opened as audio (folders, pairing, drops, dialogs).
READ_SUFFIXES: tuple[str, ...] = tuple(s for f in FORMATS if f.readable for s in f.suffixes)
#: Suffixes an output may be named with (its format follows the suffix).
OUTPUT_SUFFIXES: tuple[str, ...] = tuple(s for f in FORMATS if f.writable for s in f.suffixes)
#: Formats an export may choose (those with sample formats a person picks), by name.
EXPORT_FORMATS: tuple[str, ...] = tuple(f.name for f in FORMATS if f.writable and f.subtypes)
#: Lossy formats by name.
LOSSY_FORMATS: tuple[str, ...] = tuple(f.name for f in FORMATS if f.writable and f.lossy)


def format_named(name: str) -> AudioFormat:
    """The format called ``name`` (any case); WorkbenchError naming the choices otherwise."""
    fmt = BY_NAME.get(str(name).upper())
    if fmt is None:
        raise WorkbenchError(f"unknown audio format {name!r}; choose one of {', '.join(BY_NAME)}")
    return fmt


def is_audio_path(path: str | os.PathLike) -> bool:
    """``path``'s suffix is one of a readable format (the file itself is not opened)."""
    return Path(path).suffix.lower() in READ_SUFFIXES


def output_format_for(path: str | os.PathLike) -> AudioFormat:
    """The format written for ``path``, chosen by its suffix; WorkbenchError for a suffix nothing writes."""
    path = Path(path)
    fmt = BY_SUFFIX.get(path.suffix.lower())
    if fmt is None or not fmt.writable:
        raise WorkbenchError(f"{path}: cannot write {path.suffix or 'files without a suffix'}; "
                             f"name the output {', '.join(sorted(OUTPUT_SUFFIXES))}")
    return fmt


def dialog_filter(*, writable: bool = False, everything: bool = True) -> str:
    """A Qt file-dialog filter of the readable (or writable) suffixes, e.g.
    ``"Audio files (*.wav *.flac ...);;All files (*)"`` (Qt-free text: the GUI passes it on)."""
    patterns = " ".join(f"*{s}" for f in FORMATS if (f.writable if writable else f.readable) for s in f.suffixes)
    return f"Audio files ({patterns})" + (";;All files (*)" if everything else "")
