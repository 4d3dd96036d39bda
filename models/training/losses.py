"""Training losses for speech enhancement, each a named function with its formula.

Every loss takes one :class:`LossBatch` and returns a scalar tensor to *minimise*. Notation (per clip,
means over every element of the batch unless stated):

* ``s``, ``ŝ``, ``y``: clean, estimated and noisy waveforms ``(B, N)``;
* ``S``, ``Ŝ``, ``Y``: their complex STFTs ``(B, F, T)`` (the training STFT: 512-point, hop 256,
  periodic sqrt-Hann, centred with reflect padding, unless the config says otherwise); ``Ŝ`` is the
  network's output spectrum itself (not the STFT of ``ŝ``), ``ŝ = iSTFT(Ŝ)``;
* ``N = Y - S``: the noise spectrum; ``|X|`` magnitude; ``X_c = |X|^c e^{j∠X} = X / |X|^{1-c}``: the
  power-law compressed spectrum (``c = 0.3``);
* ``ε``: small constants named in each docstring.

The texts these losses come from compare: time-domain MAE (attends more to small signals, suppresses
noise harder) against MSE; signal approximation (a distance between the masked spectrum and the clean
one) against distances between masks (IRM, cIRM); L1 against L2 on spectra; SDR and SI-SDR (speech-only
objectives, usually paired with a spectral distance); multi-resolution STFT distances; and weighted sums,
among them GTCRN's published hybrid loss (:func:`gtcrn_hybrid`).

:func:`parse_loss` turns a config string such as ``"gtcrn_hybrid"`` or ``"0.5*mae + 0.5*mrstft"`` into a
:class:`WeightedLoss` that also reports each term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

#: Compression exponent of the power-law compressed losses.
COMPRESS = 0.3


@dataclass
class LossBatch:
    """What a loss sees for one batch.

    Attributes:
        est_wave, ref_wave, noisy_wave: ``(B, N)`` float waveforms ``ŝ``, ``s``, ``y``.
        est_spec, ref_spec, noisy_spec: ``(B, F, T)`` complex spectra ``Ŝ``, ``S``, ``Y`` of the training STFT.
        n_fft, hop: the training STFT (window: periodic sqrt-Hann).
    """

    est_wave: torch.Tensor
    ref_wave: torch.Tensor
    noisy_wave: torch.Tensor
    est_spec: torch.Tensor
    ref_spec: torch.Tensor
    noisy_spec: torch.Tensor
    n_fft: int = 512
    hop: int = 256


def sqrt_hann(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    """Periodic sqrt-Hann window in the real dtype and device of ``like`` (its square overlap-adds to 1 at
    hop ``n_fft / 2``)."""
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(n_fft, dtype=dtype, device=like.device).sqrt()


def stft(x: torch.Tensor, n_fft: int = 512, hop: int = 256) -> torch.Tensor:
    """``(B, N)`` -> complex ``(B, n_fft // 2 + 1, T)``: centred (reflect padding), sqrt-Hann,
    ``T = N // hop + 1``."""
    return torch.stft(x, n_fft, hop, n_fft, sqrt_hann(n_fft, x), center=True, return_complex=True)


def istft(spec: torch.Tensor, n_fft: int = 512, hop: int = 256, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft` (weighted overlap-add); ``length`` trims or pads the result."""
    return torch.istft(spec, n_fft, hop, n_fft, sqrt_hann(n_fft, spec), center=True, length=length)


# ---------------------------------------------------------------------------------------- waveform losses

def mae(b: LossBatch) -> torch.Tensor:
    """Waveform mean absolute error: ``mean |ŝ - s|``."""
    return (b.est_wave - b.ref_wave).abs().mean()


def mse(b: LossBatch) -> torch.Tensor:
    """Waveform mean squared error: ``mean (ŝ - s)²``."""
    return (b.est_wave - b.ref_wave).pow(2).mean()


def neg_si_sdr(b: LossBatch, eps: float = 1e-8) -> torch.Tensor:
    """Negative scale-invariant SDR in dB, mean over clips.

    With zero-mean ``s`` and ``ŝ``: ``α = <ŝ, s> / (|s|² + ε)``, ``e = αs``,
    ``SI-SDR = 10 log10(|e|² / (|ŝ - e|² + ε) + ε)``; the loss is ``-mean SI-SDR`` (``ε = 1e-8``).
    """
    s = b.ref_wave - b.ref_wave.mean(dim=-1, keepdim=True)
    e = b.est_wave - b.est_wave.mean(dim=-1, keepdim=True)
    alpha = (e * s).sum(-1, keepdim=True) / (s.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * s
    ratio = target.pow(2).sum(-1) / ((e - target).pow(2).sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()


def neg_sdr(b: LossBatch, eps: float = 1e-8) -> torch.Tensor:
    """Negative plain SDR (signal-to-distortion ratio, no scale invariance) in dB, mean over clips:
    ``SDR = 10 log10(|s|² / (|s - ŝ|² + ε) + ε)`` (``ε = 1e-8``)."""
    ratio = b.ref_wave.pow(2).sum(-1) / ((b.ref_wave - b.est_wave).pow(2).sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()


# ---------------------------------------------------------------------------------------- spectral losses

def _mag(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``sqrt(re² + im² + ε)``: a magnitude whose gradient stays finite at zero."""
    return torch.sqrt(x.real.pow(2) + x.imag.pow(2) + eps)


def mag_l1(b: LossBatch) -> torch.Tensor:
    """Magnitude L1: ``mean | |Ŝ| - |S| |`` with ``|X| = sqrt(re² + im² + 1e-12)``."""
    return (_mag(b.est_spec) - _mag(b.ref_spec)).abs().mean()


def mag_mse(b: LossBatch) -> torch.Tensor:
    """Magnitude MSE: ``mean (|Ŝ| - |S|)²``. For a magnitude-mask network (``Ŝ = M·Y``) this is the
    *magnitude signal approximation* loss: ``mean (M|Y| - |S|)²``."""
    return (_mag(b.est_spec) - _mag(b.ref_spec)).pow(2).mean()


def mag_mse_compressed(b: LossBatch, c: float = COMPRESS) -> torch.Tensor:
    """Power-law compressed magnitude MSE: ``mean (|Ŝ|^c - |S|^c)²`` with ``c = 0.3``."""
    return (_mag(b.est_spec).pow(c) - _mag(b.ref_spec).pow(c)).pow(2).mean()


def _compressed(x: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    m = _mag(x)
    scale = m.pow(1.0 - c)
    return x.real / scale, x.imag / scale


def complex_mse_compressed(b: LossBatch, c: float = COMPRESS) -> torch.Tensor:
    """Compressed complex spectral loss: ``mean(Re(Ŝ_c - S_c)²) + mean(Im(Ŝ_c - S_c)²)`` with
    ``X_c = X / |X|^{1-c}`` (``c = 0.3``, ``|X| = sqrt(re² + im² + 1e-12)``): phase-aware, and the
    compression gives quiet time-frequency bins more weight."""
    er, ei = _compressed(b.est_spec, c)
    rr, ri = _compressed(b.ref_spec, c)
    return (er - rr).pow(2).mean() + (ei - ri).pow(2).mean()


def complex_mse(b: LossBatch) -> torch.Tensor:
    """Complex signal approximation, uncompressed: ``mean(Re(Ŝ - S)²) + mean(Im(Ŝ - S)²)``. For a
    complex-mask network (``Ŝ = M·Y``) this is the distance between the *masked spectrum* and the clean one."""
    d = b.est_spec - b.ref_spec
    return d.real.pow(2).mean() + d.imag.pow(2).mean()


def mrstft(b: LossBatch, resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512)),
           eps: float = 1e-7) -> torch.Tensor:
    """Multi-resolution STFT loss on the waveforms, mean over resolutions ``(n_fft, hop)`` (Hann window,
    centred, reflect padding; 512/128, 1024/256, 2048/512 by default):

    ``SC = ||S| - |Ŝ||_F / ||S||_F`` (spectral convergence, per clip, then mean over clips) and
    ``LM = mean |log(|S| + ε) - log(|Ŝ| + ε)|`` (log-magnitude L1, ``ε = 1e-7``); loss ``= mean_r (SC + LM)``.
    Magnitudes are ``sqrt(re² + im² + 1e-12)``.
    """
    total = b.est_wave.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, dtype=b.est_wave.dtype, device=b.est_wave.device)
        n = b.est_wave.shape[-1]
        pad_mode = "reflect" if n > n_fft // 2 else "constant"
        es = _mag(torch.stft(b.est_wave, n_fft, hop, n_fft, window, center=True, pad_mode=pad_mode,
                             return_complex=True))
        rs = _mag(torch.stft(b.ref_wave, n_fft, hop, n_fft, window, center=True, pad_mode=pad_mode,
                             return_complex=True))
        sc = (torch.linalg.vector_norm(rs - es, dim=(-2, -1)) / torch.linalg.vector_norm(rs, dim=(-2, -1))).mean()
        lm = (torch.log(rs + eps) - torch.log(es + eps)).abs().mean()
        total = total + sc + lm
    return total / len(resolutions)


# ---------------------------------------------------------------------------------------- mask losses

def irm_mse(b: LossBatch, eps: float = 1e-8) -> torch.Tensor:
    """Mask approximation against the ideal ratio mask: ``mean (M̂ - IRM)²`` with the implied magnitude mask
    ``M̂ = |Ŝ| / (|Y| + ε)`` and ``IRM = sqrt(|S|² / (|S|² + |N|² + ε))``, ``N = Y - S`` (``ε = 1e-8``;
    magnitudes ``sqrt(re² + im² + 1e-12)``). Unlike signal approximation (:func:`mag_mse`) every bin weighs
    the same, however quiet."""
    m_hat = _mag(b.est_spec) / (_mag(b.noisy_spec) + eps)
    s2 = b.ref_spec.real.pow(2) + b.ref_spec.imag.pow(2)
    noise = b.noisy_spec - b.ref_spec
    n2 = noise.real.pow(2) + noise.imag.pow(2)
    irm = torch.sqrt(s2 / (s2 + n2 + eps))
    return (m_hat - irm).pow(2).mean()


#: cIRM compression (Williamson et al.): ``K (1 - e^{-Cx}) / (1 + e^{-Cx}) = K tanh(Cx / 2)``.
CIRM_K, CIRM_C = 10.0, 0.1


def _cirm_compress(x: torch.Tensor) -> torch.Tensor:
    return CIRM_K * torch.tanh(CIRM_C * x / 2)


def cirm_mse(b: LossBatch, eps: float = 1e-8) -> torch.Tensor:
    """Mask approximation against the compressed complex ideal ratio mask.

    ``M = X·conj(Y) / (|Y|² + ε)`` is the complex ratio mask of spectrum ``X`` (``X = Ŝ`` for the implied
    estimate, ``X = S`` for the cIRM); real and imaginary parts are compressed by
    ``K tanh(C x / 2)`` (``K = 10``, ``C = 0.1``); loss ``= mean(Re(ΔM)²) + mean(Im(ΔM)²)`` (``ε = 1e-8``).
    """
    den = b.noisy_spec.real.pow(2) + b.noisy_spec.imag.pow(2) + eps
    m_hat = b.est_spec * b.noisy_spec.conj() / den
    m_ideal = b.ref_spec * b.noisy_spec.conj() / den
    dr = _cirm_compress(m_hat.real) - _cirm_compress(m_ideal.real)
    di = _cirm_compress(m_hat.imag) - _cirm_compress(m_ideal.imag)
    return dr.pow(2).mean() + di.pow(2).mean()


# ---------------------------------------------------------------------------------------- GTCRN's hybrid

def gtcrn_hybrid(b: LossBatch) -> torch.Tensor:
    """GTCRN's published training loss (Rong et al., ICASSP 2024; the authors' ``HybridLoss``).

    On the network's output spectrum ``Ŝ`` and the clean STFT ``S`` (512/256, sqrt-Hann), with
    ``|X| = sqrt(re² + im² + 1e-12)`` and ``X_c = X / |X|^0.7``::

        L = 30 · (MSE(Re Ŝ_c, Re S_c) + MSE(Im Ŝ_c, Im S_c)) + 70 · MSE(|Ŝ|^0.3, |S|^0.3)
            - mean_clips log10( |e|² / (|ŝ - e|² + 1e-8) + 1e-8 )

    where ``ŝ = iSTFT(Ŝ)``, ``s = iSTFT(S)`` (no length argument: ``hop · (T - 1)`` samples),
    ``e = <s, ŝ> s / (|s|² + 1e-8)`` (no mean removal). Note the SI-SNR term is ``-log10`` of the power
    ratio, i.e. a tenth of SI-SNR in dB, as published.
    """
    real_imag = complex_mse_compressed(b, 0.3)
    mag = mag_mse_compressed(b, 0.3)
    y_pred = istft(b.est_spec, b.n_fft, b.hop)
    y_true = istft(b.ref_spec, b.n_fft, b.hop)
    target = (y_true * y_pred).sum(-1, keepdim=True) * y_true / (y_true.pow(2).sum(-1, keepdim=True) + 1e-8)
    ratio = torch.linalg.vector_norm(target, dim=-1).pow(2) / (
        torch.linalg.vector_norm(y_pred - target, dim=-1).pow(2) + 1e-8)
    sisnr = -torch.log10(ratio + 1e-8).mean()
    return 30 * real_imag + 70 * mag + sisnr


#: Every named loss: name -> function. Config strings and the loss lab use these names (the SDR losses are
#: named ``neg_*``: they are minus the metric, and the metric of the same name is reported beside them).
LOSSES: dict[str, Callable[[LossBatch], torch.Tensor]] = {
    "mae": mae,
    "mse": mse,
    "neg_si_sdr": neg_si_sdr,
    "neg_sdr": neg_sdr,
    "mag_l1": mag_l1,
    "mag_mse": mag_mse,
    "mag_mse_c": mag_mse_compressed,
    "complex_mse": complex_mse,
    "complex_mse_c": complex_mse_compressed,
    "mrstft": mrstft,
    "irm": irm_mse,
    "cirm": cirm_mse,
    "gtcrn_hybrid": gtcrn_hybrid,
}


def describe_losses() -> list[tuple[str, str]]:
    """``(name, first docstring line)`` for every loss (CLI help, the Train panel's choices)."""
    return [(name, (fn.__doc__ or "").strip().splitlines()[0]) for name, fn in LOSSES.items()]


@dataclass(frozen=True)
class WeightedLoss:
    """``L = Σ_k w_k · L_k``; :meth:`terms` also returns each term (unweighted) for the loss curves."""

    terms_spec: tuple[tuple[float, str], ...]

    @property
    def text(self) -> str:
        return " + ".join(name if w == 1.0 else f"{w:g}*{name}" for w, name in self.terms_spec)

    def terms(self, b: LossBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, {name: unweighted term})``."""
        parts = {name: LOSSES[name](b) for _w, name in self.terms_spec}
        total = sum(w * parts[name] for w, name in self.terms_spec)
        return total, parts

    def __call__(self, b: LossBatch) -> torch.Tensor:
        return self.terms(b)[0]


_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?([a-z_0-9]+)\s*$")


def parse_loss(text: str) -> WeightedLoss:
    """``"gtcrn_hybrid"``, ``"mae"``, ``"0.5*mae + 0.5*mrstft"`` -> :class:`WeightedLoss`.

    Raises:
        ValueError: a term that is not ``[WEIGHT*]NAME`` with a known NAME (the message lists the names).
    """
    terms = []
    for part in str(text).split("+"):
        m = _TERM.match(part)
        if not m or m.group(2) not in LOSSES:
            raise ValueError(f"loss {text!r}: cannot read term {part.strip()!r}; write [WEIGHT*]NAME joined by '+', "
                             f"NAME one of {', '.join(LOSSES)}")
        terms.append((float(m.group(1)) if m.group(1) else 1.0, m.group(2)))
    if len({n for _w, n in terms}) != len(terms):
        raise ValueError(f"loss {text!r}: a loss is named twice")
    return WeightedLoss(tuple(terms))
