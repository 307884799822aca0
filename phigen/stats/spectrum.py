"""Isotropic power spectrum of periodic 2D fields.

Normalisation (the one used throughout phigen, and by :func:`phigen.fields.gaussian.gaussian_field`):

    P(k) = <|x̂(k)|²> / V,   x̂(k) = Σ_s x(s) e^{-i k·s}  (unnormalised DFT),  V = H·W,

with k in radians per pixel (k = 2π m / L). Parseval then reads

    mean(x²) = (1/V) Σ_{all k} P(k)  =  (1/V) [ Σ_bins counts·P  +  P(k=0) ],

where P(k=0) = V·mean(x)² is *not* part of the returned bins. For the lattice Gaussian free
field of docs/mcmc.md, P(k) = 1 / (2 (1 − 2κ (cos k_x + cos k_y))).

Physical units (``box_size`` given, pixel size a = box/L): k_phys = k / a and
P_phys = a²·P, i.e. the continuum convention P(k) = <|δ̃(k)|²>/A with δ̃ = a² x̂ and A = V a²,
so that σ² = ∫ d²k/(2π)² P_phys(k).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import ParameterError
from ._binning import fourier_binning, parse_size, wavenumber_grid


class PowerSpectrum(NamedTuple):
    """Binned isotropic power spectrum.

    ``k`` (nk,): mean |k| of the modes in each bin (rad/pixel, or physical with ``box_size``);
    ``power`` (N, nk): bin-averaged |x̂|²/V of each field; ``counts`` (nk,): modes per bin
    (both members of each ±k pair are counted). Empty bins are dropped, so nk ≤ n_bins.
    """

    k: np.ndarray
    power: jax.Array
    counts: np.ndarray


@jax.jit
def _power_2d(x):
    v = x.shape[-1] * x.shape[-2]
    xh = jnp.fft.fft2(x)
    return (xh.real**2 + xh.imag**2) / v


def power_spectrum_2d(fields):
    """Unbinned power ``|x̂(k)|² / V`` of each field, ``(N, H, W)`` in FFT layout (k = 0 at [0, 0])."""
    x = as_fields(fields)
    return _power_2d(jnp.asarray(x))


def wavenumbers(size) -> np.ndarray:
    """``|k|`` (rad/pixel) on the FFT grid of a field of ``size`` (int or (H, W)) -> ``(H, W)``."""
    return wavenumber_grid(parse_size(size))


def isotropic_average(grid, *, n_bins=None, log_bins: bool = False) -> PowerSpectrum:
    """Shell-average a Fourier-space grid ``(N, H, W)`` or ``(H, W)`` in FFT layout.

    Uses exactly the bins of :func:`power_spectrum`, so ``isotropic_average(spectrum(wavenumbers(L)))``
    is the exact expectation of ``power_spectrum`` for Gaussian fields with that spectrum.
    """
    g = jnp.asarray(as_fields(grid, name="grid"))
    binning = fourier_binning(tuple(g.shape[-2:]), n_bins, bool(log_bins))
    return PowerSpectrum(binning.centers.copy(), binning.average(g), binning.counts.copy())


def _pixel_size(shape, box_size):
    h, w = shape
    if np.ndim(box_size) == 0:
        if h != w:
            raise ParameterError(f"box_size must be a pair (box_H, box_W) for non-square fields {shape}")
        box = (float(box_size), float(box_size))
    else:
        if len(box_size) != 2:
            raise ParameterError(f"box_size must be a number or a pair; got {box_size!r}")
        box = (float(box_size[0]), float(box_size[1]))
    if not all(np.isfinite(b) and b > 0 for b in box):
        raise ParameterError(f"box_size must be positive; got {box_size!r}")
    a_h, a_w = box[0] / h, box[1] / w
    if not np.isclose(a_h, a_w, rtol=1e-6):
        raise ParameterError(
            f"isotropic binning needs square pixels; box {box} over {shape} pixels gives {a_h} x {a_w}")
    return a_w


def power_spectrum(fields, *, n_bins=None, log_bins: bool = False, box_size=None) -> PowerSpectrum:
    """Isotropic power spectrum of each field: ``P(k_b) = mean_{k in bin b} |x̂(k)|² / V``.

    fields: ``(N, H, W)`` or ``(H, W)``, numpy or JAX. Non-square fields are supported (|k| uses
    both axes' own wavenumbers). Bins: by default integer shells of width Δk = 2π/min(H, W)
    centred on multiples of Δk, up to the grid corner so that every mode except k = 0 is in
    exactly one bin; ``n_bins`` equal bins over the same range; ``log_bins`` geometric bins
    (default 4 per octave). k = 0 is excluded (its power is V·mean(x)²).
    ``box_size`` (number, or (box_H, box_W)) returns k in rad per physical length and
    P multiplied by a² (a = pixel size): see the module docstring.
    Returns :class:`PowerSpectrum` ``(k (nk,), power (N, nk), counts (nk,))``.
    """
    x = as_fields(fields)
    shape = tuple(x.shape[-2:])
    binning = fourier_binning(shape, n_bins, bool(log_bins))
    power = binning.average(_power_2d(jnp.asarray(x)))
    k = binning.centers.copy()
    if box_size is not None:
        a = _pixel_size(shape, box_size)
        k = k / a
        power = power * (a * a)
    return PowerSpectrum(k, power, binning.counts.copy())
