"""Representations that compare two spectrograms: enhanced-minus-original differences and the effective mask.

They are views (the panes show them beside magnitude and phase) and inputs of measurements, so they live
below both.
"""

from __future__ import annotations

import numpy as np

from .stft import StftConfig, stft


def magnitude_difference_db(original_spec: np.ndarray, enhanced_spec: np.ndarray,
                            floor_db: float = -120.0) -> np.ndarray:
    """Enhanced-minus-original magnitude in dB per time-frequency bin.

    ``D = max(20·log10|E|, floor) - max(20·log10|O|, floor)``; negative where the model removed energy.

    Args:
        original_spec, enhanced_spec: complex STFTs ``(frames, bins)`` with the same :class:`StftConfig`.
        floor_db: level below which both are treated as equal silence (avoids ±inf).

    Returns:
        float32 ``(frames, bins)`` in dB.
    """
    o, e = np.asarray(original_spec), np.asarray(enhanced_spec)
    if o.shape != e.shape:
        raise ValueError(f"spectrogram shapes differ: {o.shape} vs {e.shape}")
    tiny = 10.0 ** (floor_db / 20)
    lo = 20 * np.log10(np.maximum(np.abs(o), tiny))
    le = 20 * np.log10(np.maximum(np.abs(e), tiny))
    return (le - lo).astype(np.float32)


def phase_difference(original_spec: np.ndarray, enhanced_spec: np.ndarray) -> np.ndarray:
    """Enhanced-minus-original phase, wrapped to (-π, π]: ``∠(E · conj(O))``, float32 ``(frames, bins)`` rad.

    Bins where either spectrum is exactly zero give 0.
    """
    o, e = np.asarray(original_spec), np.asarray(enhanced_spec)
    if o.shape != e.shape:
        raise ValueError(f"spectrogram shapes differ: {o.shape} vs {e.shape}")
    return np.angle(e * np.conj(o)).astype(np.float32)


#: Names accepted by :func:`difference_representation`.
DIFFERENCE_VIEWS = ("magnitude_difference_db", "phase_difference")


def difference_representation(name: str, original_spec: np.ndarray, enhanced_spec: np.ndarray,
                              floor_db: float = -120.0) -> np.ndarray:
    """Dispatch to :func:`magnitude_difference_db` or :func:`phase_difference` by ``name``."""
    if name == "magnitude_difference_db":
        return magnitude_difference_db(original_spec, enhanced_spec, floor_db)
    if name == "phase_difference":
        return phase_difference(original_spec, enhanced_spec)
    raise ValueError(f"unknown difference view {name!r}; choose one of {', '.join(DIFFERENCE_VIEWS)}")


def difference_views(original: np.ndarray, enhanced: np.ndarray, cfg: StftConfig,
                     floor_db: float = -120.0) -> dict[str, np.ndarray]:
    """Both difference views of two aligned mono signals ``(n,)`` (same rate) with STFT settings ``cfg``.

    Returns ``{"magnitude_difference_db": (frames, bins) dB, "phase_difference": (frames, bins) rad}``.
    """
    n = min(len(original), len(enhanced))
    O = stft(np.asarray(original, np.float32)[:n], cfg)
    E = stft(np.asarray(enhanced, np.float32)[:n], cfg)
    return {"magnitude_difference_db": magnitude_difference_db(O, E, floor_db),
            "phase_difference": phase_difference(O, E)}


def mask_magnitude_db(mask: np.ndarray, floor_db: float = -80.0) -> np.ndarray:
    """``20 log10 max(|M|, 10^{floor/20})`` in dB, float32; NaN stays NaN."""
    mag = np.abs(np.asarray(mask))
    with np.errstate(invalid="ignore"):
        out = 20.0 * np.log10(np.maximum(mag, 10.0 ** (floor_db / 20.0)))
    out[np.isnan(mag)] = np.nan
    return out.astype(np.float32)


def mask_phase(mask: np.ndarray) -> np.ndarray:
    """``∠M`` in radians ``[−π, π]``, float32; NaN stays NaN (0 for real, non-negative masks)."""
    m = np.asarray(mask)
    out = np.angle(m).astype(np.float32)
    out[np.isnan(m.real) if np.iscomplexobj(m) else np.isnan(m)] = np.nan
    return out
