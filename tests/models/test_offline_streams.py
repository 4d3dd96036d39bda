"""The chunked offline paths of GTCRN, NSNet2 and WPE against their one-piece runs, and their memory.

Each model's offline path runs as a stream of blocks with its state carried (GTCRN, NSNet2) or its
whole-file statistics gathered over several passes (WPE). Small blocks here put many seams into short
clips; the difference from a one-piece run is measured block by block (a seam hides in the overall
figure, not in the worst block's).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr

from workbench.core.audio.audio_io import ArraySource
from workbench.core.enhance.enhancer import enhance, enhance_array
from workbench.core.enhance.registry import load_enhancer
from workbench.core.errors import ModelError
from workbench.core.measure.metrics import difference_levels
from workbench.core.progress import run_to_end

#: A seam must be inaudible: the worst one-second block of the difference this far below the signal.
SEAM_BOUND_DB = -40.0
#: What float rounding leaves between two orders of the same computation.
ROUNDING_DB = -90.0


@pytest.fixture(scope="module")
def speech16(shared_data) -> np.ndarray:
    x, sr = sf.read(shared_data / "dns3" / "0015_noisy.wav", dtype="float32")
    assert sr == 16000
    return np.concatenate([x, x[::-1]])[:6 * sr]  # 6 s


@pytest.fixture(scope="module")
def reverberant48(shared_data) -> np.ndarray:
    """4 s of 48 kHz stereo: noisy speech in a 0.8 s RT60 room (the second channel a later, quieter copy)."""
    x, sr = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    h, hr = sf.read(shared_data / "dfn" / "rir_sim_1001_w11.7_l2.6_h2.5_rt60_0.7919.wav", dtype="float32")
    assert sr == hr == 48000
    h = h if h.ndim == 1 else h[:, 0]
    y = np.convolve(x[:4 * sr], h)[:4 * sr]
    y = 0.5 * y / np.max(np.abs(y))
    return np.stack([y, 0.6 * np.roll(y, 97)], axis=1).astype(np.float32)


def _worst_db(y: np.ndarray, ref: np.ndarray, rate: int) -> float:
    return difference_levels(y, ref, rate)[1]


@pytest.mark.parametrize("cut", [0, 77])
def test_gtcrn_offline_blocks_equal_the_authors_whole_run(speech16, cut):
    """GTCRN's offline path in 0.7 s blocks (8 seams) equals one run of the network over the whole clip
    (its centred STFT, mirrored ends and inverse STFT), to float rounding, whatever the length."""
    x = speech16[:len(speech16) - cut]
    model = load_enhancer("gtcrn-dns3")
    model.chunk_s = 0.7
    y = enhance_array(model, x, 16000)
    worst = _worst_db(y, model.process_offline(x), 16000)
    assert worst <= ROUNDING_DB, worst


def test_gtcrn_resampled_stereo_blocks_equal_one_block(reverberant48):
    """At 48 kHz stereo (resampled to 16 kHz, channels side by side) small blocks equal one block."""
    model = load_enhancer("gtcrn-dns3")
    model.chunk_s = 100.0
    whole = enhance_array(model, reverberant48, 48000)
    model.chunk_s = 0.5
    worst = _worst_db(enhance_array(model, reverberant48, 48000), whole, 48000)
    assert worst <= ROUNDING_DB, worst


@pytest.mark.parametrize("model_id", ["nsnet2-16k", "nsnet2-48k"])
def test_nsnet2_offline_blocks_within_the_seam_bound(speech16, model_id):
    """NSNet2's offline path in 0.73 s blocks against its whole-buffer computation at the native rate
    (state carried: only float rounding and, at 48 kHz, the streamed resampler differ)."""
    model = load_enhancer(model_id)
    model.chunk_s = 0.73
    rate = model.info.sample_rate
    x = speech16 if rate == 16000 else soxr.resample(speech16, 16000, rate).astype(np.float32)
    y = enhance_array(model, x, rate)
    worst = _worst_db(y, model.process_offline(x), rate)
    assert worst <= (ROUNDING_DB if rate == 16000 else SEAM_BOUND_DB), worst


@pytest.mark.parametrize("channels", [1, 2])
def test_wpe_offline_blocks_equal_the_one_piece_run(reverberant48, channels):
    """WPE's filters come from statistics of the whole recording; gathered over passes of 0.37 s blocks
    (not a multiple of the hop) they give the one-piece result to float rounding, mono and jointly
    over two channels."""
    # 2 s: five seams between 0.37 s blocks and twice the room's 0.8 s tail; whether the passes add up to
    # the one-piece statistics does not depend on how many blocks there are, so more audio proves no more
    audio = reverberant48[:2 * 48000, :channels]
    model = load_enhancer("wpe-dereverb").for_rate(48000)
    model.chunk_s = 0.37
    y = enhance_array(model, audio, 48000)
    ref = model.process_offline_channels(audio)
    y = y.reshape(ref.shape)
    assert np.max(np.abs(ref - audio)) > 0.01  # WPE changed the signal: the comparison means something
    worst = _worst_db(y, ref, 48000)
    assert worst <= ROUNDING_DB, worst


def test_wpe_short_input_is_returned_unchanged():
    model = load_enhancer("wpe-dereverb")
    x = np.linspace(-0.5, 0.5, 300, dtype=np.float32)
    np.testing.assert_array_equal(enhance_array(model, x, 16000), x)


def test_wpe_stream_refuses_to_run_without_the_length():
    stream = load_enhancer("wpe-dereverb").new_offline_stream()
    with pytest.raises(ModelError, match="length"):
        stream.process(np.zeros(1024, np.float32))


class _CountingSource(ArraySource):
    """An array source that records the length of every read."""

    def __init__(self, audio, rate):
        super().__init__(audio, rate)
        self.reads: list[int] = []

    def read(self, start, stop):
        self.reads.append(max(min(stop, self.frames) - max(start, 0), 0))
        return super().read(start, stop)


@pytest.mark.parametrize("model_id", ["gtcrn-dns3", "nsnet2-48k", "wpe-dereverb"])
def test_chunked_paths_never_hold_the_whole_file(model_id):
    """With a file source and a sink, every read and every output block is about one block long, and
    what numpy allocates during a run does not grow with the recording (4 s and 8 s of 48 kHz stereo;
    the model is warmed up first, so what it builds once is not counted)."""
    rate = 48000
    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal((8 * rate, 2))).astype(np.float32)
    model = load_enhancer(model_id)
    model.chunk_s = 0.5
    enhance_array(model, audio[:rate], rate)
    peaks = []
    for seconds in (4, 8):
        source = _CountingSource(audio[:seconds * rate], rate)
        frames = longest = 0

        def sink(a: int, block: np.ndarray) -> None:
            nonlocal frames, longest
            assert a == frames
            frames += block.shape[1]
            longest = max(longest, block.shape[1])

        tracemalloc.start()
        try:
            run_to_end(enhance(model, source, sink=sink))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert frames == source.frames
        assert max(source.reads) <= 1.1 * rate and longest <= 1.1 * rate, (max(source.reads), longest)
    assert peaks[1] < 1.2 * peaks[0] + 1e6, peaks
    assert peaks[1] < 40e6, peaks
