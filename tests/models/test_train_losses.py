"""Each training loss equals its formula, computed independently in numpy (float64) on random spectra and signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench_models.training import losses as L

RNG = np.random.default_rng(1234)
B, N, F, T = 2, 2048, 257, 9


def _complex(shape):
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


@pytest.fixture(scope="module")
def data():
    s = RNG.standard_normal((B, N))
    shat = s + 0.3 * RNG.standard_normal((B, N))
    y = s + 0.8 * RNG.standard_normal((B, N))
    S, Shat, Y = _complex((B, F, T)), _complex((B, F, T)), _complex((B, F, T))
    batch = L.LossBatch(*(torch.from_numpy(a) for a in (shat, s, y, Shat, S, Y)))
    return dict(s=s, shat=shat, y=y, S=S, Shat=Shat, Y=Y, batch=batch)


def mag(x):
    return np.sqrt(x.real ** 2 + x.imag ** 2 + 1e-12)


def np_stft(x, n_fft, hop, window):
    """Centred STFT with reflect padding, written from its definition."""
    pad = n_fft // 2
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    n_frames = 1 + (xp.shape[-1] - n_fft) // hop
    frames = np.stack([xp[..., t * hop:t * hop + n_fft] * window for t in range(n_frames)], axis=-1)
    return np.fft.rfft(frames, axis=-2)  # (..., F, T)


def np_istft(X, n_fft, hop, window):
    """Weighted overlap-add inverse of :func:`np_stft` (no length: ``hop * (T - 1)`` samples)."""
    T = X.shape[-1]
    frames = np.fft.irfft(X, n=n_fft, axis=-2) * window[:, None]
    total = n_fft + hop * (T - 1)
    out = np.zeros(X.shape[:-2] + (total,))
    wsum = np.zeros(total)
    for t in range(T):
        out[..., t * hop:t * hop + n_fft] += frames[..., t]
        wsum[t * hop:t * hop + n_fft] += window ** 2
    pad = n_fft // 2
    return out[..., pad:total - pad] / wsum[pad:total - pad]


def hann(n):
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def check(value, expected):
    assert float(value) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


def test_waveform_losses(data):
    s, shat, b = data["s"], data["shat"], data["batch"]
    check(L.mae(b), np.mean(np.abs(shat - s)))
    check(L.mse(b), np.mean((shat - s) ** 2))
    sdr = 10 * np.log10(np.sum(s ** 2, -1) / (np.sum((s - shat) ** 2, -1) + 1e-8) + 1e-8)
    check(L.neg_sdr(b), -np.mean(sdr))
    s0, e0 = s - s.mean(-1, keepdims=True), shat - shat.mean(-1, keepdims=True)
    alpha = np.sum(e0 * s0, -1, keepdims=True) / (np.sum(s0 ** 2, -1, keepdims=True) + 1e-8)
    tgt = alpha * s0
    si = 10 * np.log10(np.sum(tgt ** 2, -1) / (np.sum((e0 - tgt) ** 2, -1) + 1e-8) + 1e-8)
    check(L.neg_si_sdr(b), -np.mean(si))


def test_si_sdr_is_scale_invariant_and_sdr_is_not(data):
    b = data["batch"]
    scaled = L.LossBatch(b.est_wave * 3.0, b.ref_wave, b.noisy_wave, b.est_spec, b.ref_spec, b.noisy_spec)
    check(L.neg_si_sdr(scaled), float(L.neg_si_sdr(b)))
    assert float(L.neg_sdr(scaled)) > float(L.neg_sdr(b)) + 1.0


def test_spectral_losses(data):
    S, Shat, b = data["S"], data["Shat"], data["batch"]
    check(L.mag_l1(b), np.mean(np.abs(mag(Shat) - mag(S))))
    check(L.mag_mse(b), np.mean((mag(Shat) - mag(S)) ** 2))
    check(L.mag_mse_compressed(b), np.mean((mag(Shat) ** 0.3 - mag(S) ** 0.3) ** 2))
    d = Shat - S
    check(L.complex_mse(b), np.mean(d.real ** 2) + np.mean(d.imag ** 2))
    # X_c = |X|^0.3 e^{j angle X}, from the polar form (not the X / |X|^0.7 the code uses)
    Sc = mag(S) ** 0.3 * np.exp(1j * np.angle(S))
    Shc = mag(Shat) ** 0.3 * np.exp(1j * np.angle(Shat))
    dc = Shc - Sc
    check(L.complex_mse_compressed(b), np.mean(dc.real ** 2) + np.mean(dc.imag ** 2))


def test_mask_losses(data):
    S, Shat, Y, b = data["S"], data["Shat"], data["Y"], data["batch"]
    m_hat = mag(Shat) / (mag(Y) + 1e-8)
    Nz = Y - S
    irm = np.sqrt(np.abs(S) ** 2 / (np.abs(S) ** 2 + np.abs(Nz) ** 2 + 1e-8))
    check(L.irm_mse(b), np.mean((m_hat - irm) ** 2))
    den = np.abs(Y) ** 2 + 1e-8
    comp = lambda x: 10 * (1 - np.exp(-0.1 * x)) / (1 + np.exp(-0.1 * x))  # noqa: E731
    mh, mi = Shat * np.conj(Y) / den, S * np.conj(Y) / den
    expected = np.mean((comp(mh.real) - comp(mi.real)) ** 2) + np.mean((comp(mh.imag) - comp(mi.imag)) ** 2)
    check(L.cirm_mse(b), expected)


def test_multi_resolution_stft(data):
    s, shat, b = data["s"], data["shat"], data["batch"]
    total = 0.0
    for n_fft, hop in ((512, 128), (1024, 256), (2048, 512)):
        w = hann(n_fft)
        es, rs = mag(np_stft(shat, n_fft, hop, w)), mag(np_stft(s, n_fft, hop, w))
        sc = np.mean(np.sqrt(np.sum((rs - es) ** 2, axis=(-2, -1))) / np.sqrt(np.sum(rs ** 2, axis=(-2, -1))))
        lm = np.mean(np.abs(np.log(rs + 1e-7) - np.log(es + 1e-7)))
        total += sc + lm
    check(L.mrstft(b), total / 3)


def test_gtcrn_hybrid_equals_the_published_definition(data):
    """30 x (MSE of compressed real + imaginary) + 70 x MSE(|X|^0.3) - log10 SI-SNR ratio, 512/256 sqrt-Hann."""
    S, Shat, b = data["S"], data["Shat"], data["batch"]
    w = np.sqrt(hann(512))

    def comp(X):
        m = mag(X)
        return X.real / m ** 0.7, X.imag / m ** 0.7

    pr, pi = comp(Shat)
    tr, ti = comp(S)
    real_loss, imag_loss = np.mean((pr - tr) ** 2), np.mean((pi - ti) ** 2)
    mag_loss = np.mean((mag(Shat) ** 0.3 - mag(S) ** 0.3) ** 2)
    y_pred, y_true = np_istft(Shat, 512, 256, w), np_istft(S, 512, 256, w)
    assert y_pred.shape == (B, 256 * (T - 1))
    y_t = np.sum(y_true * y_pred, -1, keepdims=True) * y_true / (np.sum(y_true ** 2, -1, keepdims=True) + 1e-8)
    sisnr = -np.mean(np.log10(np.linalg.norm(y_t, axis=-1) ** 2
                              / (np.linalg.norm(y_pred - y_t, axis=-1) ** 2 + 1e-8) + 1e-8))
    expected = 30 * (real_loss + imag_loss) + 70 * mag_loss + sisnr
    check(L.gtcrn_hybrid(b), expected)


def test_stft_matches_its_definition(data):
    x = data["s"]
    check(np.max(np.abs(L.stft(torch.from_numpy(x)).numpy() - np_stft(x, 512, 256, np.sqrt(hann(512))))), 0.0)


def test_weighted_sum_and_parsing(data):
    b = data["batch"]
    loss = L.parse_loss("0.5*mae + 2e-1*mrstft+neg_si_sdr")
    total, parts = loss.terms(b)
    check(total, 0.5 * float(L.mae(b)) + 0.2 * float(L.mrstft(b)) + float(L.neg_si_sdr(b)))
    assert set(parts) == {"mae", "mrstft", "neg_si_sdr"}
    assert loss.text == "0.5*mae + 0.2*mrstft + neg_si_sdr"
    for bad in ("mae + nope", "2*", "mae + mae", ""):
        with pytest.raises(ValueError):
            L.parse_loss(bad)


def test_every_loss_has_a_gradient_and_a_formula(data):
    b = data["batch"]
    est = b.est_spec.clone().requires_grad_(True)
    wave = b.est_wave.clone().requires_grad_(True)
    bb = L.LossBatch(wave, b.ref_wave, b.noisy_wave, est, b.ref_spec, b.noisy_spec)
    for name, fn in L.LOSSES.items():
        assert "``" in (fn.__doc__ or ""), f"{name} documents no formula"
        value = fn(bb)
        assert value.ndim == 0 and torch.isfinite(value)
        grads = torch.autograd.grad(value, [est, wave], allow_unused=True)
        assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads), name


def test_loss_names_never_shadow_a_validation_metric():
    """Validation reports loss terms and metrics in one table: a loss named like a metric would hide one."""
    assert not set(L.LOSSES) & {"loss", "pesq_wb", "estoi", "si_sdr", "dnsmos_ovrl"}
