"""DNSMOS: our onnxruntime implementation against the `speechmos` reference.

speechmos's own code imports librosa (not a project dependency), so it cannot run in the project
environment. The reference numbers below were produced by ``speechmos.dnsmos.run(path, 16000, model_type)``
(speechmos 0.0.1.1, librosa 0.11.0, onnxruntime, run in a separate scratch environment on 2026-11-21) for
the files in ../shared/data. When speechmos *is* importable (librosa installed), the test also compares
against it live.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench.core.measure import dnsmos as dm

# (file under shared/data, personalized, (SIG, BAK, OVRL, P.808)) from speechmos.dnsmos.run
SPEECHMOS_REFERENCE = [
    ("dns3/0015_noisy.wav", False, (1.224214, 1.099535, 1.138335, 2.333189)),
    ("dns3/0015_GTCRN.wav", False, (3.001001, 3.857124, 2.668780, 3.441392)),
    ("dns3/0016_noisy.wav", False, (1.181832, 1.155621, 1.098094, 2.390619)),
    ("dns3/0016_GTCRN.wav", False, (2.462584, 3.804457, 2.252115, 3.180916)),
    ("dns3/0072_noisy.wav", False, (1.162289, 1.180520, 1.091348, 2.269469)),
    ("dns3/0072_GTCRN.wav", False, (2.928468, 3.945330, 2.638881, 3.084270)),
    ("real/stationary_english_tug_2489_voss_18_snr3_tl-24_fileid_45.wav", False,
     (3.313940, 1.922389, 1.981099, 2.567427)),
    ("dns3/0072_noisy.wav", True, (3.627290, 1.380300, 1.721950, 2.269469)),
]


@pytest.fixture(scope="module")
def scorers():
    """The process-wide scorers (what scoring and evaluation use): their sessions load once per test process."""
    return {False: dm.shared_dnsmos(False), True: dm.shared_dnsmos(True)}


@pytest.mark.parametrize("rel,personalized,expected", SPEECHMOS_REFERENCE,
                         ids=[f"{r[0].split('/')[-1]}{'-p' if r[1] else ''}" for r in SPEECHMOS_REFERENCE])
def test_matches_speechmos_reference(shared_data, scorers, rel, personalized, expected):
    audio, sr = sf.read(shared_data / rel, dtype="float32")
    s = scorers[personalized].score(audio, sr)
    got = (s.sig, s.bak, s.ovrl, s.p808)
    assert np.allclose(got, expected, atol=1e-3), (got, expected)


@pytest.mark.parametrize("name", ["0015_noisy", "0016_GTCRN"])
def test_matches_speechmos_live(shared_data, scorers, name):
    # speechmos's own code (it needs librosa, a test-only dependency) is the reference implementation: run
    # live on a noisy and an enhanced clip (SPEECHMOS_REFERENCE holds its numbers for the other clips).
    from speechmos import dnsmos as reference

    path = shared_data / f"dns3/{name}.wav"
    ref = reference.run(str(path), 16000)
    audio, sr = sf.read(path, dtype="float32")
    s = scorers[False].score(audio, sr)
    for ours, key in ((s.sig, "sig_mos"), (s.bak, "bak_mos"), (s.ovrl, "ovrl_mos"), (s.p808, "p808_mos")):
        assert abs(ours - ref[key]) < 0.01, (key, ours, ref[key])


def test_mel_filterbank_matches_librosa_slaney():
    fb = dm.mel_filterbank()
    assert fb.shape == (120, 161)
    # librosa.filters.mel(sr=16000, n_fft=321, n_mels=120) (librosa 0.11.0): total weight, peak bins, a peak value
    assert fb.sum() == pytest.approx(2.397503376, rel=1e-6)
    assert [int(fb[i].argmax()) for i in (0, 30, 60, 119)] == [1, 16, 34, 156]
    assert fb[60].max() == pytest.approx(0.0143288029, rel=1e-6)


def test_p808_features_shape_and_scale():
    x = np.random.default_rng(0).standard_normal(dm.WINDOW_SAMPLES - dm.MEL_HOP).astype(np.float32) * 0.1
    f = dm.p808_features(x)
    assert f.shape == (900, 120) and f.dtype == np.float32
    # (log-power relative to the maximum + 40) / 40, floored 80 dB below the maximum
    assert f.max() == pytest.approx(1.0, abs=1e-6) and f.min() >= -1.0 - 1e-6


def test_windows_repeat_short_clips_and_hop_one_second(scorers):
    d = scorers[False]
    short = np.arange(5 * 16000, dtype=np.float32)
    w = d.windows(short)
    assert len(w) == 1 and len(w[0]) == dm.WINDOW_SAMPLES
    # a 5 s clip is doubled to 10 s: the window continues with the clip's start
    assert w[0][80000] == short[0] and w[0][-1] == short[dm.WINDOW_SAMPLES - 80000 - 1]
    # 20 s: floor(20 - 9.01) + 1 = 11 window starts, one per second. The reference computes the end as
    # int((i + 9.01) * 16000), one sample short for i = 7..10 in floating point, and skips those windows.
    long = np.arange(20 * 16000, dtype=np.float32)
    starts = [int(w[0]) for w in d.windows(long)]
    assert starts == [i * 16000 for i in range(7)]
    every = dm.Dnsmos(exact_reference=False).windows(long)
    assert [int(w[0]) for w in every] == [i * 16000 for i in range(11)]


def test_other_rates_are_resampled(shared_data, scorers):
    import soxr

    audio, sr = sf.read(shared_data / "dns3/0015_GTCRN.wav", dtype="float32")
    at48 = soxr.resample(audio, sr, 48000)
    a, b = scorers[False].score(audio, sr), scorers[False].score(at48, 48000)
    assert abs(a.ovrl - b.ovrl) < 0.05 and abs(a.sig - b.sig) < 0.05


def test_bad_signals_give_reasons_not_crashes(scorers):
    from workbench.core.measure.metrics import dnsmos_metrics

    silent = dnsmos_metrics(np.zeros(16000, np.float32), 16000, scorer=scorers[False])
    assert set(silent) == set(dm.DNSMOS_METRICS)
    assert all(m.value is None and "silence" in m.reason for m in silent.values())
    nan = dnsmos_metrics(np.full(16000, np.nan, np.float32), 16000, scorer=scorers[False])
    assert all(m.value is None and "NaN" in m.reason for m in nan.values())
    empty = dnsmos_metrics(np.zeros(0, np.float32), 16000, scorer=scorers[False])
    assert all(m.value is None and "empty" in m.reason for m in empty.values())


def test_metrics_carry_direction_and_range(shared_data):
    audio, sr = sf.read(shared_data / "dns3/0015_noisy.wav", dtype="float32")
    from workbench.core.measure.metrics import dnsmos_metrics

    ms = dnsmos_metrics(audio, sr)
    ovrl = ms["dnsmos_ovrl"]
    assert ovrl.higher_is_better and ovrl.range == (1.0, 5.0) and ovrl.unit == "MOS"
    assert ovrl.value == pytest.approx(1.138335, abs=1e-3)


def test_model_files_are_found_without_importing_speechmos():
    """Finding the ONNX files must not import speechmos (its own code needs librosa). Checked in a fresh
    interpreter: in this one other tests may have imported it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from workbench.core.measure import dnsmos as dm\n"
            "p835, p808 = dm.model_paths()\n"
            "print(p835.name, p808.name, 'speechmos' in sys.modules, 'librosa' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["sig_bak_ovr.onnx", "model_v8.onnx", "False", "False"]


@pytest.fixture(scope="module")
def long_clip(shared_data) -> np.ndarray:
    """About 40 s of real and synthetic speech at 16 kHz: long enough for windows past the reference's
    skipped run (its windows 7-23, see ``window_starts``) and for more than one batch."""
    import soxr

    parts = [sf.read(p, dtype="float32")[0] for p in sorted((shared_data / "real").glob("*.wav"))]
    parts += [sf.read(shared_data / "dns3" / f"{c}_noisy.wav", dtype="float32")[0] for c in ("0015", "0016", "0072")]
    noisy48, rate = sf.read(shared_data / "dfn" / "noisy_snr0.wav", dtype="float32")
    parts.append(soxr.resample(noisy48, rate, 16000).astype(np.float32))
    return np.concatenate(parts)


def _close(a: dm.DnsmosScores, b: dm.DnsmosScores, atol: float = 1e-5) -> None:
    assert a.windows == b.windows and a.mode == b.mode
    np.testing.assert_allclose((a.sig, a.bak, a.ovrl, a.p808), (b.sig, b.bak, b.ovrl, b.p808), rtol=0, atol=atol)


def test_p835_network_is_split_by_default(scorers):
    for scorer in scorers.values():
        assert scorer.split is not None and scorer.split_reason == ""
        assert scorer.split.halo == 4  # four 3x3 convolutions before the first pooling


def test_batched_scores_equal_window_by_window(scorers, long_clip, monkeypatch):
    clip = long_clip[: 35 * 16000]  # windows 0-6 and, past the reference's skipped run, 24-25
    expected = dm.window_by_window_scores(clip, 16000)
    assert expected.windows == 9 > dm.BATCH_WINDOWS
    for batch in (1, 3, 64):   # the default batch size runs below, with a chunked front end
        _close(dm.Dnsmos(False, batch_windows=batch).score(clip, 16000), expected)
    _close(dm.Dnsmos(False, split=False).score(clip, 16000), expected)
    monkeypatch.setattr(dm, "FRONT_CHUNK_FRAMES", 250)  # front end in many chunks, each with its halo
    _close(scorers[False].score(clip, 16000), expected)


def _generated(kind: str) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(7)
    if kind == "noise_3s":  # shorter than a window: repeat-padded
        return (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32), 16000
    if kind == "noise_one_window":
        return (0.1 * rng.standard_normal(dm.WINDOW_SAMPLES)).astype(np.float32), 16000
    if kind == "chirp_9.5s":
        t = np.arange(int(9.5 * 16000)) / 16000
        return (0.3 * np.sin(2 * np.pi * (100 + 400 * t) * t)).astype(np.float32), 16000
    if kind == "tones_gap_17s":  # tone bursts in noise with a stretch of digital silence in the first windows
        t = np.arange(17 * 16000) / 16000
        x = 0.2 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0) + 0.01 * rng.standard_normal(len(t))
        x[24000:56000] = 0.0  # 1.5-3.5 s: inside windows 0-3 (of 0-6), not in 4-6
        return x.astype(np.float32), 16000
    if kind == "noise_48k_11s":  # resampled to 16 kHz first; two windows
        return (0.05 * rng.standard_normal(11 * 48000)).astype(np.float32), 48000
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["noise_3s", "noise_one_window", "chirp_9.5s", "tones_gap_17s", "noise_48k_11s"])
def test_split_equals_window_by_window_on_generated_signals(scorers, kind):
    x, rate = _generated(kind)
    _close(scorers[False].score(x, rate), dm.window_by_window_scores(x, rate))


@pytest.mark.parametrize("rel", ["dns3/0016_noisy.wav", "dns3/0072_GTCRN.wav", "dfn/noisy_snr0.wav",
                                 "real/stationary_english_tug_2489_voss_18_snr3_tl-24_fileid_45.wav",
                                 "dns3/0015_RNNoise.wav"])
def test_split_equals_window_by_window_on_real_speech(shared_data, scorers, rel):
    audio, rate = sf.read(shared_data / rel, dtype="float32")
    _close(scorers[False].score(audio, rate), dm.window_by_window_scores(audio, rate))


def test_personalized_split_equals_window_by_window(scorers, long_clip):
    clip = long_clip[: 22 * 16000]
    _close(scorers[True].score(clip, 16000), dm.window_by_window_scores(clip, 16000, personalized=True))


def test_whole_file_front_end_sliced_equals_per_window_front_end(scorers, long_clip):
    """The split's premise, numerically: the front end run once over the file, sliced at a window and with the
    window's edge frames recomputed, is the front end of that window alone (what the whole network computes)."""
    split = scorers[False].split
    x = long_clip[: 30 * 16000]
    frames = (len(x) - dm.P835_FRAME_SAMPLES) // dm.P835_FRAME_HOP + 1
    whole = split.front_features(x, 0, frames - frames % 2)                  # (C, frames/2, F)
    starts = [3 * 16000, 10 * 16000]
    alone = split.window_features(x, starts)                                 # (2, C, 450, F)
    head, tail = split.edge_features(x, starts)
    hp, n = split.halo // 2, dm.P835_WINDOW_FRAMES // 2
    for i, a in enumerate(starts):
        sliced = whole[:, a // dm.P835_FRAME_HOP // 2:][:, :n].copy()
        # inside the window the shared frames are the window's own ...
        np.testing.assert_allclose(sliced[:, hp:n - hp], alone[i, :, hp:n - hp], rtol=0, atol=1e-4)
        # ... at its edges they are not (zero padding there), which the recomputed edges restore
        assert np.abs(sliced[:, :hp] - alone[i, :, :hp]).max() > 1e-3
        sliced[:, :hp], sliced[:, n - hp:] = head[i], tail[i]
        np.testing.assert_allclose(sliced, alone[i], rtol=0, atol=1e-4)


def test_front_end_computes_each_frame_about_once_in_bounded_chunks(scorers, long_clip):
    scorer = dm.Dnsmos(False)
    fed: list[tuple[int, int]] = []
    front = scorer.split.front

    class Spy:
        def run(self, names, feed):
            fed.append(next(iter(feed.values())).shape[:2])
            return front.run(names, feed)

    scorer.split.front = Spy()
    scores = scorer.score(long_clip, 16000)
    frames = len(long_clip) // dm.P835_FRAME_HOP
    chunk_frames = [t for n, t in fed if n == 1]
    edge_frames = sum(n * t for n, t in fed if n > 1)
    # each frame of the file once (plus a halo per chunk), and 2 x 8 edge frames per window
    assert sum(chunk_frames) <= frames + 2 * scorer.split.halo * len(chunk_frames)
    assert edge_frames == scores.windows * 4 * scorer.split.halo
    assert max(chunk_frames) <= dm.FRONT_CHUNK_FRAMES + 2 * scorer.split.halo


def test_split_refuses_a_graph_it_cannot_split_exactly():
    import onnx

    model = onnx.load(str(dm.model_paths()[0]))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and any(
        a.name == "kernel_shape" and list(a.ints) == [3, 3] for a in n.attribute))
    for a in conv.attribute:
        if a.name == "strides":
            a.ints[:] = [2, 1]  # a strided convolution: frames no longer map one to one
    with pytest.raises(ValueError, match="strided"):
        dm.P835Split._split_points(model.graph)


def test_shared_span_features_equal_per_window_features(rng):
    x = (0.1 * rng.standard_normal(40 * 16000)).astype(np.float32)
    x[3 * 16000:5 * 16000] *= 1e-3  # the normalisation is per window
    for starts in ([0, 16000, 32000, 48000], [5 * 16000], [0, dm.WINDOW_SAMPLES],  # overlapping, one, fast mode
                   [len(x) - dm.WINDOW_SAMPLES - 160 * 3]):                       # up to the signal's end
        batch = dm.p808_features_windows(x, starts)
        assert batch.shape == (len(starts), 900, 120) and batch.dtype == np.float32
        for k, a in enumerate(starts):
            np.testing.assert_allclose(batch[k], dm.p808_features(x[a:a + dm.WINDOW_SAMPLES - dm.MEL_HOP]),
                                       rtol=0, atol=1e-5)


def test_progress_per_batch_and_cancel(long_clip):
    batch = 3
    scorer = dm.Dnsmos(False, batch_windows=batch)
    clip = long_clip[: 16 * 16000]  # seven windows: three batches, the last one partial
    n_windows = len(scorer.window_starts(len(clip)))
    progress = []
    steps = scorer.score_steps(clip, 16000)
    try:
        while True:
            progress.append(next(steps))
    except StopIteration as stop:
        scores = stop.value
    assert n_windows == scores.windows == 7 and len(progress) == -(-n_windows // batch) == 3
    fractions = [p.fraction for p in progress]
    assert fractions[0] == 0.0 and all(0 < b - a < 1 for a, b in zip(fractions, fractions[1:])) and fractions[-1] < 1
    assert progress[1].message.startswith(f"DNSMOS windows {batch + 1}-")
    steps = scorer.score_steps(clip, 16000)
    next(steps), next(steps)
    steps.close()  # cancel between batches: nothing left running, and the next run starts afresh
    _close(scorer.score(clip, 16000), scores, atol=0)


def test_fast_mode_is_labelled_non_overlapping_and_not_the_default(long_clip):
    exact = dm.shared_dnsmos()
    fast = dm.shared_dnsmos(fast=True)
    assert not exact.fast
    n = len(long_clip)
    assert fast.window_starts(n) == list(range(0, n - dm.WINDOW_SAMPLES + 1, dm.WINDOW_SAMPLES))
    scores = fast.score(long_clip, 16000)
    assert scores.mode == "fast" and scores.windows == n // dm.WINDOW_SAMPLES
    short = long_clip[: 5 * 16000]  # repeat-padded to 10 s: one window in both modes
    a, b = exact.score(short, 16000), fast.score(short, 16000)
    assert (a.mode, b.mode) == ("exact", "fast") and a.windows == b.windows == 1 and abs(a.ovrl - b.ovrl) < 1e-6
    _close(scores, dm.window_by_window_scores(long_clip, 16000, fast=True))


@pytest.fixture(scope="module")
def long_pair(shared_data, tmp_path_factory):
    """A 15 s noisy/clean pair (dns3 0015 tiled): long enough for the fast mode's windows to differ (six
    overlapping windows against one)."""
    folder = tmp_path_factory.mktemp("long_pair")
    for kind in ("noisy", "clean"):
        audio, rate = sf.read(shared_data / f"dns3/0015_{kind}.wav", dtype="float32")
        sf.write(folder / f"long_{kind}.wav", np.tile(audio, 3), rate)
    return folder


# The batch runs its items in this process (--workers 0): the task dict that carries "reference_free_fast" is what
# a pool worker would get (tests/core/test_batch.py runs the pool).
@pytest.mark.parametrize("command", [["evaluate"], ["batch", "evaluate", "--workers", "0"]])
def test_cli_reference_free_fast_is_opt_in_and_labelled(long_pair, tmp_path, capsys, command):
    from workbench.cli import main
    from workbench.core.workflows.evaluation import read_csv

    noisy, rate = sf.read(long_pair / "long_noisy.wav", dtype="float32")
    exact, fast = dm.shared_dnsmos().score(noisy, rate), dm.shared_dnsmos(fast=True).score(noisy, rate)
    assert exact.windows > fast.windows and abs(exact.ovrl - fast.ovrl) > 1e-4
    for flags, expected in (([], exact), (["--reference-free-fast"], fast)):
        out = tmp_path / f"{command[0]}{len(flags)}.csv"
        assert main([*command, str(long_pair), "--metrics", "si_sdr", "--csv", str(out), *flags]) == 0
        err = capsys.readouterr().err
        rows = read_csv(out)
        ovrl = next(r["value"] for r in rows if r["metric"] == "dnsmos_ovrl" and r["model"] == "noisy")
        assert ovrl == pytest.approx(expected.ovrl, abs=1e-6)
        labelled = [r for r in rows if r["metric"] == "warning" and "fast mode" in r["reason"]]
        assert bool(labelled) == bool(flags) and (dm.FAST_MODE_NOTE in err) == bool(flags)
