"""Exact scores and velocities for stationary Gaussian data with a known 2D power spectrum.

If x₀ is a periodic stationary Gaussian field with constant mean μ and spectrum P(k) (phigen's
convention ``⟨|x̂(k) − μ̂(k)|²⟩/V = P(k)``, unnormalised DFT, V = H·W), its covariance is circulant
with eigenvalues P(k). Under the OU forward process ``x_t = a x₀ + s z`` the marginal is Gaussian with
mean aμ and eigenvalues ``a²P + s²``, so, mode by mode,

    ∇log p_t(x) = −IFFT[ FFT(x − aμ) / (a²(t) P(k) + s²(t)) ],

exact at every t. Tweedie's denoiser then has spectrum ``a²P²/(a²P + s²)`` around μ.
For the flow-matching path ``x_t = (1 − t) z + t x₁`` (t from 0 = noise to 1 = data),
``σ_t²(k) = (1 − t)² + t² P(k)`` and the exact velocity ``E[x₁ − z | x_t]`` is

    v(x, t) = μ + IFFT[ FFT(x − tμ) · (t P − (1 − t)) / σ_t² ].

These let the samplers be tested apart from any network: their output spectrum must match
:func:`marginal_spectrum` (or :func:`denoised_spectrum`) up to discretisation error only.
All functions take the 2D spectrum in FFT layout, ``(H, W)``, k = 0 at ``[0, 0]``.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ..stats.spectrum import wavenumbers
from .sde import ou_mean_std

__all__ = ["spectrum_grid", "gaussian_score", "gaussian_velocity", "marginal_spectrum", "denoised_spectrum",
           "flow_marginal_spectrum"]


def spectrum_grid(spectrum: Callable, size) -> np.ndarray:
    """``P(|k|)`` of an isotropic spectrum callable on the full FFT grid of ``size`` -> ``(H, W)``."""
    p = np.asarray(spectrum(wavenumbers(size)), dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise InputError("spectrum(k) must be finite and >= 0 on the grid (define P(0))")
    return p


def _half(spectrum2d):
    p = np.asarray(spectrum2d, dtype=np.float64)
    if p.ndim != 2:
        raise InputError(f"spectrum2d must be a 2D (H, W) grid in FFT layout; got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise InputError("spectrum2d must be finite and >= 0")
    # the rfft half-plane: a real field's spectrum is symmetric under k -> -k
    return p.shape, jnp.asarray(p[:, : p.shape[1] // 2 + 1], jnp.float32)


def _filter(x, gain, shape):
    return jnp.fft.irfft2(jnp.fft.rfft2(x) * gain, s=shape)


def gaussian_score(spectrum2d, mean: float = 0.0) -> Callable:
    """Exact OU score ``score(x, t)`` (``x`` ``(N, H, W)``, scalar t) of Gaussian data (module doc)."""
    shape, p = _half(spectrum2d)
    mu = jnp.float32(mean)

    def score(x, t):
        a, s = ou_mean_std(t)
        return -_filter(x - a * mu, 1.0 / (a**2 * p + s**2), shape)

    return score


def gaussian_velocity(spectrum2d, mean: float = 0.0) -> Callable:
    """Exact flow-matching velocity ``v(x, t)`` for the linear noise→data path (module doc)."""
    shape, p = _half(spectrum2d)
    mu = jnp.float32(mean)

    def velocity(x, t):
        t = jnp.asarray(t, jnp.float32)
        var = (1.0 - t) ** 2 + t**2 * p
        # var = 0 only at t = 1 for modes with P = 0, where the numerator also vanishes
        gain = (t * p - (1.0 - t)) / jnp.maximum(var, 1e-12)
        return mu + _filter(x - t * mu, gain, shape)

    return velocity


def marginal_spectrum(spectrum2d, t) -> np.ndarray:
    """Spectrum of the OU marginal at time t: ``a²P + s²`` (around the mean aμ), ``(H, W)``."""
    a, s = (float(v) for v in ou_mean_std(t))
    return a**2 * np.asarray(spectrum2d, np.float64) + s**2


def denoised_spectrum(spectrum2d, t) -> np.ndarray:
    """Spectrum of Tweedie's ``E[x₀ | x_t]`` around μ: ``a²P²/(a²P + s²)``, ``(H, W)``."""
    a, s = (float(v) for v in ou_mean_std(t))
    p = np.asarray(spectrum2d, np.float64)
    return a**2 * p**2 / (a**2 * p + s**2)


def flow_marginal_spectrum(spectrum2d, t) -> np.ndarray:
    """Spectrum of the flow-matching path at time t: ``(1 − t)² + t² P``, ``(H, W)``."""
    return (1.0 - t) ** 2 + t**2 * np.asarray(spectrum2d, np.float64)
