"""The chunked enhancement engine: length, delay compensation, seams, resampling, channels, failures, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from workbench.core.audio.audio_io import ArraySource
from workbench.core.enhance.enhancer import Enhancer, EnhancerInfo, EnhancerStream, enhance, enhance_array
from workbench.core.progress import Progress, run_to_end
from workbench.core.errors import ModelError


def xcorr_lag(a: np.ndarray, b: np.ndarray) -> int:
    """Lag (samples) by which ``a`` trails ``b``, from the peak of their FFT cross-correlation."""
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    r = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    k = int(np.argmax(r))
    return k if k < n // 2 else k - n


class DelayStream(EnhancerStream):
    """Pure delay by ``latency`` samples: the output after compensation must equal the input exactly."""

    def __init__(self, latency: int, gain: float = 1.0):
        self.buf = np.zeros(latency, np.float32)
        self.gain = gain
        self.closed = False

    def process(self, block):
        x = np.concatenate([self.buf, block.astype(np.float32)])
        self.buf = x[len(block):]
        return self.gain * x[:len(block)]

    def close(self):
        self.closed = True


class DelayModel(Enhancer):
    def __init__(self, rate=16000, latency=437, block=160):
        self.info = EnhancerInfo("delay", "toy delay", "delays by a known amount", rate, True, latency,
                                 processing="streaming", block_samples=block)
        self.streams: list[DelayStream] = []

    def new_stream(self):
        s = DelayStream(self.info.latency_samples)
        self.streams.append(s)
        return s


class SmoothingModel(Enhancer):
    """Offline toy: a 63-tap moving average ('same' alignment). Chunk seams must vanish given overlap."""

    def __init__(self, rate=16000, chunk_s=0.05, overlap_s=0.01, taps=63):
        self.info = EnhancerInfo("smooth", "toy smoothing", "offline FIR", rate, False, 0, processing="offline")
        self.chunk_s, self.overlap_s, self.taps = chunk_s, overlap_s, taps

    def process_offline(self, audio):
        return np.convolve(audio, np.ones(self.taps, np.float32) / self.taps, mode="same").astype(np.float32)


@pytest.fixture(scope="module")
def speech(shared_data) -> np.ndarray:
    x, sr = sf.read(shared_data / "dns3" / "0015_clean.wav", dtype="float32")
    assert sr == 16000
    return x


def test_length_and_sample_exact_delay_compensation(speech):
    model = DelayModel(latency=437, block=160)
    for n in (len(speech), 12345, 159, 1):
        y = enhance_array(model, speech[:n], 16000)
        assert y.shape == (n,)
        np.testing.assert_array_equal(y, speech[:n])
    assert xcorr_lag(enhance_array(model, speech, 16000), speech) == 0


@pytest.mark.parametrize("latency", [0, 1, 160, 5000])
def test_latency_larger_or_smaller_than_block(speech, latency):
    y = enhance_array(DelayModel(latency=latency, block=160), speech[:20000], 16000, block_s=0.013)
    np.testing.assert_array_equal(y, speech[:20000])


def test_streaming_chunked_equals_single_block(speech):
    from workbench_models.classical import ClassicalEnhancer

    model = ClassicalEnhancer("wiener")
    small = enhance_array(model, speech, 16000, block_s=0.016)   # one hop per call
    whole = enhance_array(model, speech, 16000, block_s=60.0)    # one call for the whole clip
    assert np.max(np.abs(small - whole)) < 1e-6


def test_offline_chunk_seams_exact_for_local_model(rng):
    x = rng.standard_normal(16000).astype(np.float32)
    whole = np.convolve(x, np.ones(63, np.float32) / 63, mode="same")
    y = enhance_array(SmoothingModel(chunk_s=0.05, overlap_s=0.01), x, 16000)  # 20 chunks, 19 seams
    assert y.shape == x.shape
    assert np.max(np.abs(y - whole)) < 1e-6


def test_offline_chunk_seams_nsnet2(shared_data):
    """NSNet2's GRU states are carried across chunks (rewritten network): 0.5 s chunks equal the
    whole-file computation to float rounding, in every 0.5 s block, at both rates."""
    from workbench_models.nsnet2 import NSNet2

    x16, _ = sf.read(shared_data / "dns3" / "0072_noisy.wav", dtype="float32")
    for rate in (16000, 48000):
        x = x16 if rate == 16000 else soxr.resample(x16, 16000, rate).astype(np.float32)
        model = NSNet2(rate)
        whole = model.process_offline(x)
        model.chunk_s = 0.5
        chunked = enhance_array(model, x, rate)
        assert chunked.shape == x.shape
        block = rate // 2
        for i in range(0, len(x) - block, block):
            d = chunked[i:i + block] - whole[i:i + block]
            assert np.sum(d * d) <= 1e-8 * max(np.sum(whole[i:i + block] ** 2), 1e-2), (rate, i / rate)


@pytest.mark.parametrize("rate_in", [8000, 44100, 48000])
def test_resampling_path_is_aligned(speech, rate_in):
    x = soxr.resample(speech, 16000, rate_in).astype(np.float32)
    y = enhance_array(DelayModel(rate=16000, latency=437), x, rate_in)
    assert y.shape == x.shape
    assert xcorr_lag(y, x) == 0
    if rate_in <= 16000:  # nothing above the model's Nyquist: the round trip is near-transparent
        assert np.corrcoef(x[1000:-1000], y[1000:-1000])[0, 1] > 0.999


def test_offline_resampling_is_aligned(speech):
    x = soxr.resample(speech, 16000, 44100).astype(np.float32)
    # 3 taps: mild and zero-phase, so the cross-correlation peak is sharp; 5 chunks, 4 resampled seams.
    y = enhance_array(SmoothingModel(chunk_s=1.0, overlap_s=0.2, taps=3), x, 44100)
    assert y.shape == x.shape and xcorr_lag(y, x) == 0


def test_multichannel_and_channel_selection(speech, rng):
    noise = 0.1 * rng.standard_normal(len(speech)).astype(np.float32)
    stereo = np.stack([speech, noise, -speech], axis=1)
    model = DelayModel(latency=100)
    out = run_to_end(enhance(model, stereo, 16000))
    assert out.shape == (1, *stereo.shape)  # (n_outputs, frames, channels) for every model
    np.testing.assert_array_equal(out[0], stereo)
    picked = run_to_end(enhance(model, ArraySource(stereo, 16000), channels=[2, 1]))
    assert picked.shape == (1, len(speech), 2)
    np.testing.assert_array_equal(picked[0, :, 0], -speech)
    np.testing.assert_array_equal(picked[0, :, 1], noise)
    with pytest.raises(ValueError, match="channel 3"):
        run_to_end(enhance(model, stereo, 16000, channels=[3]))


def test_progress_is_monotonic_and_reaches_one(speech):
    seen: list[Progress] = []
    run_to_end(enhance(DelayModel(), np.stack([speech, speech], 1), 16000), seen.append)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert "channel 2/2" in seen[-1].message


class BadStream(EnhancerStream):
    def __init__(self, kind):
        self.kind = kind

    def process(self, block):
        if self.kind == "nan":
            y = block.copy()
            y[3] = np.nan
            return y
        if self.kind == "shape":
            return block[:-1]
        if self.kind == "complex":
            return block.astype(np.complex64)
        raise RuntimeError("boom inside the model")


class BadModel(Enhancer):
    def __init__(self, kind, processing="streaming"):
        self.kind = kind
        self.info = EnhancerInfo(f"bad-{kind}", "bad", "misbehaves", 16000, True, 0, processing=processing,
                                 block_samples=160)

    def new_stream(self):
        return BadStream(self.kind)

    def process_offline(self, audio):
        return BadStream(self.kind).process(audio)


@pytest.mark.parametrize("processing", ["streaming", "offline"])
@pytest.mark.parametrize("kind,message", [("nan", "NaN or Inf"), ("shape", "returned shape"),
                                          ("complex", "complex64"), ("raise", "RuntimeError: boom")])
def test_misbehaving_model_raises_model_error(speech, kind, message, processing):
    with pytest.raises(ModelError, match=message) as err:
        enhance_array(BadModel(kind, processing), speech[:8000], 16000)
    assert f"bad-{kind}" in str(err.value)
    # the engine stays usable afterwards
    np.testing.assert_array_equal(enhance_array(DelayModel(), speech[:8000], 16000), speech[:8000])


def test_cancel_closes_generator_and_stream(speech):
    model = DelayModel()
    long = np.tile(speech, 4)
    gen = enhance(model, long, 16000, block_s=0.1)
    first = next(gen)
    assert 0 < first.fraction < 0.1
    gen.close()  # what the GUI's Cancel does
    assert model.streams[0].closed
    with pytest.raises(StopIteration):
        next(gen)


def test_unknown_processing_is_refused(speech):
    model = DelayModel()
    model.info.processing = "magic"
    with pytest.raises(ModelError, match="magic"):
        enhance_array(model, speech[:100], 16000)


class TwoPathModel(Enhancer):
    """Both paths: streaming is a pure delay (by 160), offline a gain of 0.5, so the output tells which ran."""

    chunk_s, overlap_s = 1.0, 0.2

    def __init__(self, long_file_processing=None):
        self.info = EnhancerInfo("two", "two paths", "toy", 16000, True, 160, processing="offline",
                                 processing_paths=("offline", "streaming"), block_samples=160)
        self.long_file_processing = long_file_processing

    def new_stream(self):
        return DelayStream(160)

    def process_offline(self, audio):
        return 0.5 * audio


def test_processing_selects_either_path_of_a_two_path_model(speech):
    model = TwoPathModel()
    x = speech[:8000]
    assert model.info.paths == ("offline", "streaming")
    np.testing.assert_array_equal(enhance_array(model, x, 16000), 0.5 * x)
    np.testing.assert_array_equal(enhance_array(model, x, 16000, processing="streaming"), x)
    np.testing.assert_array_equal(enhance_array(model, x, 16000, processing="offline"), 0.5 * x)
    assert model.info.processing == "offline"  # choosing a path leaves the model itself unchanged
    with pytest.raises(ModelError, match="has only the streaming path"):
        enhance_array(DelayModel(), x, 16000, processing="offline")
    with pytest.raises(ModelError, match="processing must be one of"):
        enhance_array(model, x, 16000, processing="batch")


def test_long_file_processing_switches_only_long_inputs(speech):
    model = TwoPathModel(long_file_processing="streaming")
    short, long = speech[:16000], np.tile(speech, 2)[:int(1.5 * 16000)]   # chunk + overlap = 1.2 s
    np.testing.assert_array_equal(enhance_array(model, short, 16000), 0.5 * short)
    np.testing.assert_array_equal(enhance_array(model, long, 16000), long)  # exact seams: the stream
    np.testing.assert_allclose(enhance_array(model, long, 16000, processing="offline"), 0.5 * long, atol=1e-7)


@pytest.mark.parametrize("tail_s", [0.001, 0.004, 0.009])
def test_offline_last_chunk_shorter_than_the_crossfade(rng, tail_s):
    """A file one sample to a few ms longer than whole chunks used to fail (crossfade longer than the tail)."""
    model = SmoothingModel(chunk_s=0.05, overlap_s=0.02)
    x = rng.standard_normal(int((0.15 + tail_s) * 16000)).astype(np.float32)
    y = enhance_array(model, x, 16000)
    np.testing.assert_allclose(y, model.process_offline(x), atol=1e-6)


class CarriedStateModel(SmoothingModel):
    """Offline toy whose state crosses chunks: a causal running sum (infinite memory). Chunked offline
    processing with overlaps can never join it exactly; its offline stream must."""

    def __init__(self, rate=16000, chunk_s=0.05):
        super().__init__(rate, chunk_s, 0.0)
        self.info.block_samples = 16

    def process_offline(self, audio):
        return np.cumsum(audio, dtype=np.float64).astype(np.float32)

    def new_offline_stream(self):
        class Running(EnhancerStream):
            total = 0.0

            def process(inner, block):
                y = inner.total + np.cumsum(block, dtype=np.float64)
                inner.total = float(y[-1]) if len(y) else inner.total
                return y.astype(np.float32)
        return Running()


def test_offline_stream_carries_state_across_chunks(rng):
    x = rng.standard_normal(16000).astype(np.float32)
    y = enhance_array(CarriedStateModel(chunk_s=0.05), x, 16000)   # 20 chunks
    np.testing.assert_allclose(y, np.cumsum(x, dtype=np.float64), atol=1e-3)


class WholeFileMeanModel(SmoothingModel):
    """Offline toy whose output depends on the whole recording (each channel minus the mean of all
    channels over the file), as a multi-pass offline stream: the first pass only gathers the mean."""

    joint_channels = True

    def __init__(self, rate=16000, chunk_s=0.05, delay=37):
        super().__init__(rate, chunk_s, 0.0)
        self.delay = delay
        self.calls: list[tuple[int, int, tuple]] = []  # (pass, announced frames, block shape)

    def process_offline_channels(self, audio):
        return (audio - np.mean(audio, dtype=np.float64)).astype(np.float32)

    def process_offline(self, audio):
        return self.process_offline_channels(np.asarray(audio)[:, None])[:, 0]

    def new_offline_stream(self):
        model = self

        class TwoPasses(EnhancerStream):
            passes = 2
            latency_samples = model.delay      # its own delay, unlike the model's declared 0

            def begin_pass(inner, index, frames):
                inner.index, inner.frames, inner.fed = index, frames, 0
                if index == 0:
                    inner.total, inner.count = 0.0, 0
                inner.held = np.zeros((model.delay, 2), np.float32)

            def process(inner, block):
                model.calls.append((inner.index, inner.frames, block.shape))
                real = block[:max(min(len(block), inner.frames - inner.fed), 0)]
                inner.fed += len(block)
                if inner.index == 0:
                    inner.total += float(np.sum(real, dtype=np.float64))
                    inner.count += real.size
                    return np.zeros(block.shape[::-1] if block.ndim == 2 else block.shape, np.float32)
                y = np.concatenate([inner.held, block - inner.total / inner.count])
                inner.held = y[len(block):]
                return (y[:len(block)].T if block.ndim == 2 else y[:len(block)]).astype(np.float32)

        return TwoPasses()


def test_offline_stream_passes_joint_blocks_and_own_delay(speech):
    """A stream that needs the whole recording before its output is fed it again (``passes``), told how
    many samples are real before each pass, given (m, channels) blocks for a joint model, and its own
    delay is removed: the result equals the one-piece computation."""
    stereo = np.stack([speech[:20000], speech[:20000] * 0.3 + 0.01], axis=1)
    model = WholeFileMeanModel(chunk_s=0.05)
    got, shapes = _sunk(model, stereo, 16000)
    np.testing.assert_allclose(got[0], model.process_offline_channels(stereo), atol=1e-6)
    assert {i for i, _, _ in model.calls} == {0, 1}
    assert {n for _, n, _ in model.calls} == {20000}
    assert all(len(shape) == 2 and shape[1] == 2 and shape[0] <= 800 for _, _, shape in model.calls)
    assert max(s[1] for _, s in shapes) <= 800


def _sunk(model, audio, rate, **kwargs) -> tuple[np.ndarray, list[tuple[int, tuple]]]:
    blocks: list[tuple[int, np.ndarray]] = []
    result = run_to_end(enhance(model, audio, rate, sink=lambda a, b: blocks.append((a, b.copy())), **kwargs))
    assert result is None
    starts = [a for a, _ in blocks]
    lengths = [b.shape[-2] for _, b in blocks]
    assert starts == list(np.cumsum([0] + lengths[:-1]))  # consecutive, in order, each frame once
    return np.concatenate([b for _, b in blocks], axis=-2), [(a, b.shape) for a, b in blocks]


@pytest.mark.parametrize("make", [lambda: DelayModel(), lambda: SmoothingModel(chunk_s=0.05, overlap_s=0.02),
                                  lambda: CarriedStateModel(chunk_s=0.05)])
def test_sink_receives_the_array_result_in_bounded_blocks(speech, rng, make):
    """Channels run side by side and the sink gets each stretch once it is final, so a long file never
    needs a whole-file output buffer: no block is longer than about one chunk (or read block)."""
    stereo = np.stack([speech[:32000], rng.standard_normal(32000).astype(np.float32) * 0.1], axis=1)
    model = make()
    whole = enhance_array(model, stereo, 16000, block_s=0.1)
    got, shapes = _sunk(model, stereo, 16000, block_s=0.1)
    np.testing.assert_array_equal(got[0], whole)
    longest = max(s[-2] for _, s in shapes)
    assert len(shapes) > 10 and longest <= 0.12 * 16000, longest
    assert all(s[-1] == 2 for _, s in shapes)


def test_sink_for_joint_channels_and_several_outputs(speech):
    class Joint(SmoothingModel):
        joint_channels = True

        def process_offline_channels(self, audio):
            return audio[:, ::-1] * 0.5   # channels swapped: joint processing is visible

    stereo = np.stack([speech[:20000], speech[:20000] * 0.3], axis=1)
    got, shapes = _sunk(Joint(chunk_s=0.05, overlap_s=0.02), stereo, 16000)
    np.testing.assert_allclose(got[0], stereo[:, ::-1] * 0.5, atol=1e-6)
    assert max(s[1] for _, s in shapes) <= 0.08 * 16000

    class TwoOutputs(DelayModel):
        def __init__(self):
            super().__init__()
            self.info.outputs = ("speech", "noise")

        def new_stream(self):
            base = super().new_stream()

            class Both(EnhancerStream):
                def process(inner, block):
                    y = base.process(block)
                    return np.stack([y, -y])
            return Both()
    got, shapes = _sunk(TwoOutputs(), stereo, 16000, block_s=0.1)
    np.testing.assert_allclose(got[0], stereo, atol=1e-7)
    np.testing.assert_allclose(got[1], -stereo, atol=1e-7)
    assert shapes[0][1][0] == 2 and shapes[0][1][-1] == 2


def test_a_long_multichannel_file_leaves_few_decoded_blocks_in_memory(tmp_path, rng):
    """The channels read each block in turn, so the source keeps only the last few decoded blocks, not
    up to its byte cap: a long file's memory stays that of a few blocks."""
    from workbench.core.audio.audio_io import open_source

    path = tmp_path / "long.wav"
    sf.write(path, (0.1 * rng.standard_normal((16000 * 8, 3))).astype(np.float32), 16000)
    source = open_source(path)
    got, shapes = _sunk(DelayModel(), source, 16000, block_s=0.1)   # 80 blocks per channel
    assert got.shape == (1, 16000 * 8, 3) and len(shapes) >= 70
    assert len(source._cache) <= source.cache_blocks
    source.close()
