"""Minkowski functionals V0, V1, V2 of excursion sets {u > ν} of periodic 2D fields.

Estimator (integral geometry, Schmalzing & Buchert 1997; Lim & Simon 2012), per unit area in
pixel units, with the Dirac delta replaced by a box of width Δ centred on the threshold:

    V0(ν) = <Θ(u − ν)>                                   (area fraction)
    V1(ν) = (1/4)   <δ_Δ(u − ν) |∇u|>                    (boundary length / 4)
    V2(ν) = (1/2π)  <δ_Δ(u − ν) κ|∇u|>,  κ|∇u| = (2 u_x u_y u_xy − u_x² u_yy − u_y² u_xx) / |∇u|²
                                                          (Euler characteristic per area)

with <·> the average over pixels and δ_Δ(t) = 1/Δ for |t| < Δ/2. Derivatives are spectral by
default (multiplication by i k, with the Nyquist row/column removed): for a band-limited field the
pixel values and derivatives are those of the continuous field, so for a stationary Gaussian field
the expectation equals the continuum result averaged over the box — no lattice bias; see
:func:`gaussian_minkowski` with ``delta_width``. ``derivative="central"`` uses periodic central
differences (local, converges as O(k²) for smooth fields). σ1 for the closed forms must be measured
with the same derivative: :func:`minkowski_sigmas`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erfc

from .._validation import as_fields
from ..errors import ParameterError

DEFAULT_THRESHOLDS = np.linspace(-3.0, 3.0, 25)
DEFAULT_DELTA_WIDTH = 0.2  # in units of the field's std: bias ≈ Δ²(ν²−1)/24, below 1 % for |ν| ≤ 2.5


class MinkowskiFunctionals(NamedTuple):
    """``thresholds`` (n_thr,); ``v0, v1, v2`` (N, n_thr) (or (n_thr,) for closed forms)."""

    thresholds: np.ndarray
    v0: jax.Array
    v1: jax.Array
    v2: jax.Array


def _spectral_derivatives(u):
    h, w = u.shape[-2:]
    ky = 2.0 * np.pi * np.fft.fftfreq(h)
    kx = 2.0 * np.pi * np.fft.rfftfreq(w)
    # the Nyquist mode's derivative is ambiguous (sin vs cos): drop it so that all identities
    # between first and second derivatives (e.g. <u u_xx> = −<u_x²>) hold exactly
    if h % 2 == 0:
        ky[h // 2] = 0.0
    if w % 2 == 0:
        kx[-1] = 0.0
    ky = jnp.asarray(ky, dtype=jnp.float32)[:, None]
    kx = jnp.asarray(kx, dtype=jnp.float32)[None, :]
    uh = jnp.fft.rfft2(u)

    def back(factor):
        return jnp.fft.irfft2(uh * factor, s=(h, w))

    return (back(1j * kx), back(1j * ky), back(-kx * kx), back(-ky * ky), back(-kx * ky))


def _central_derivatives(u):
    def sh(dy, dx):  # u(s + (dy, dx)), periodic
        return jnp.roll(u, (-dy, -dx), axis=(-2, -1))

    ux = 0.5 * (sh(0, 1) - sh(0, -1))
    uy = 0.5 * (sh(1, 0) - sh(-1, 0))
    uxx = sh(0, 1) - 2.0 * u + sh(0, -1)
    uyy = sh(1, 0) - 2.0 * u + sh(-1, 0)
    uxy = 0.25 * (sh(1, 1) - sh(1, -1) - sh(-1, 1) + sh(-1, -1))
    return ux, uy, uxx, uyy, uxy


def _derivatives(u, derivative):
    if derivative == "spectral":
        return _spectral_derivatives(u)
    return _central_derivatives(u)


def _check_derivative(derivative):
    if derivative not in ("spectral", "central"):
        raise ParameterError(f"derivative must be 'spectral' or 'central'; got {derivative!r}")


def _standardized(x):
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True)
    return (x - mean) / jnp.where(std > 0, std, 1.0)


@partial(jax.jit, static_argnames=("standardize", "derivative"))
def _minkowski(x, thresholds, delta, standardize: bool, derivative: str):
    u = _standardized(x) if standardize else x
    ux, uy, uxx, uyy, uxy = _derivatives(u, derivative)
    grad2 = ux * ux + uy * uy
    grad = jnp.sqrt(grad2)
    tiny = jnp.finfo(u.dtype).tiny
    curv = (2.0 * ux * uy * uxy - ux * ux * uyy - uy * uy * uxx) / jnp.maximum(grad2, tiny)

    def at(nu):
        band = (jnp.abs(u - nu) < 0.5 * delta).astype(u.dtype) / delta
        v0 = jnp.mean((u > nu).astype(u.dtype), axis=(-2, -1))
        v1 = jnp.mean(band * grad, axis=(-2, -1)) / 4.0
        v2 = jnp.mean(band * curv, axis=(-2, -1)) / (2.0 * np.pi)
        return v0, v1, v2

    v0, v1, v2 = jax.lax.map(at, thresholds)  # each (n_thr, N)
    return v0.T, v1.T, v2.T


def minkowski_functionals(fields, thresholds=None, *, standardize: bool = True, delta_width=None,
                          derivative: str = "spectral") -> MinkowskiFunctionals:
    """Minkowski functionals of each field at each threshold (module docstring for the estimator).

    fields ``(N, H, W)``; thresholds ``(n_thr,)`` (default −3…3 in 25 steps), in units of each
    field's std after subtracting its mean when ``standardize`` (default), else in field units.
    ``delta_width``: box width Δ in threshold units (default 0.2, or 0.2 × the pooled std of the
    fields when not standardising). Returns :class:`MinkowskiFunctionals` with ``(N, n_thr)`` arrays,
    per unit area in pixel units (V1 in 1/pixel, V2 in 1/pixel²).
    """
    _check_derivative(derivative)
    x = jnp.asarray(as_fields(fields))
    thr = np.asarray(DEFAULT_THRESHOLDS if thresholds is None else thresholds, dtype=np.float64)
    thr = np.atleast_1d(thr)
    if thr.ndim != 1 or not np.all(np.isfinite(thr)):
        raise ParameterError("thresholds must be a finite 1-D sequence")
    if delta_width is None:
        delta_width = DEFAULT_DELTA_WIDTH * (1.0 if standardize else float(jnp.std(x)))
    delta_width = float(delta_width)
    if not (np.isfinite(delta_width) and delta_width > 0):
        raise ParameterError(f"delta_width must be > 0; got {delta_width!r} (constant fields?)")
    v0, v1, v2 = _minkowski(x, jnp.asarray(thr, dtype=x.dtype), jnp.asarray(delta_width, dtype=x.dtype),
                            bool(standardize), derivative)
    return MinkowskiFunctionals(thr, v0, v1, v2)


@partial(jax.jit, static_argnames=("standardize", "derivative"))
def _sigmas(x, standardize: bool, derivative: str):
    u = _standardized(x) if standardize else x - x.mean(axis=(-2, -1), keepdims=True)
    ux, uy = _derivatives(u, derivative)[:2]
    return jnp.sqrt(jnp.mean(u * u)), jnp.sqrt(jnp.mean(ux * ux + uy * uy))


def minkowski_sigmas(fields, *, standardize: bool = True, derivative: str = "spectral"):
    """``(σ0, σ1)`` pooled over all fields: σ0² = <(u − mean)²>, σ1² = <|∇u|²> with the same
    derivative as :func:`minkowski_functionals` (σ0 = 1 when ``standardize``). Python floats."""
    _check_derivative(derivative)
    s0, s1 = _sigmas(jnp.asarray(as_fields(fields)), bool(standardize), derivative)
    return float(s0), float(s1)


def gaussian_minkowski(thresholds, sigma0, sigma1, *, delta_width: float = 0.0) -> MinkowskiFunctionals:
    """Closed forms for a Gaussian field (docs/statistics.md), thresholds ν in units of σ0:

        V0 = ½ erfc(ν/√2),  V1 = (√τ/8) e^{−ν²/2},  V2 = (2π)^{−3/2} τ ν e^{−ν²/2},  τ = σ1²/(2σ0²).

    With ``delta_width`` Δ > 0 (in units of σ0), V1 and V2 are averaged over [ν − Δ/2, ν + Δ/2]:
    the exact expectation of :func:`minkowski_functionals` with the same box. Arrays ``(n_thr,)``.
    """
    nu = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    sigma0, sigma1, delta = float(sigma0), float(sigma1), float(delta_width)
    if not (np.isfinite(sigma0) and sigma0 > 0 and np.isfinite(sigma1) and sigma1 >= 0):
        raise ParameterError(f"need sigma0 > 0 and sigma1 >= 0; got {sigma0}, {sigma1}")
    if not (np.isfinite(delta) and delta >= 0):
        raise ParameterError(f"delta_width must be >= 0; got {delta_width!r}")
    tau = sigma1**2 / (2.0 * sigma0**2)
    v0 = 0.5 * erfc(nu / np.sqrt(2.0))
    if delta == 0.0:
        g = np.exp(-0.5 * nu**2)
        v1 = np.sqrt(tau) / 8.0 * g
        v2 = (2.0 * np.pi) ** -1.5 * tau * nu * g
    else:
        lo, hi = nu - 0.5 * delta, nu + 0.5 * delta
        # ∫ e^{−t²/2} dt = √(π/2) [erfc(lo/√2) − erfc(hi/√2)];  ∫ t e^{−t²/2} dt = e^{−lo²/2} − e^{−hi²/2}
        v1 = np.sqrt(tau) / 8.0 * np.sqrt(np.pi / 2.0) * (erfc(lo / np.sqrt(2.0)) - erfc(hi / np.sqrt(2.0))) / delta
        v2 = (2.0 * np.pi) ** -1.5 * tau * (np.exp(-0.5 * lo**2) - np.exp(-0.5 * hi**2)) / delta
    return MinkowskiFunctionals(nu, v0, v1, v2)
