"""Peak counts of periodic 2D fields: local maxima binned by height (weak-lensing / cosmic-web peaks).

A pixel s of a field u is a **peak** when it is higher than each of its 8 periodic neighbours,

    u(s) > u(s + e)  for every e ∈ {−1, 0, 1}² \\ {0}     (strict: a plateau of equal values has none),

and its height in units of a fixed reference is ν(s) = (u(s) − μ) / σ. The counts per field are

    n_b = #{peaks s : e_b ≤ ν(s) < e_{b+1}},   b = 0 … n_bins − 1,   edges e strictly increasing (±∞ allowed).

μ and σ are **fixed numbers**, not each field's own: by default the mean and pixel std pooled over
all the fields passed; the registered statistic uses the truth's, so that model and truth are binned
identically and a model with the wrong amplitude puts its peaks in the wrong bins (weak-lensing peak
counts bin by one fixed noise σ for the same reason). ``smoothing`` s > 0 (pixels) first applies the
periodic Gaussian filter û(k) ← û(k) e^{−k²s²/2} (then μ, σ are those of the smoothed fields).

Closed forms for a stationary isotropic Gaussian field (the check of the estimator):

- continuum (Longuet-Higgins 1957; Bardeen, Bond, Kaiser & Szalay 1986 in 2D): maxima per unit area,
  all heights, ``n_max = σ₂² / (8√3 π σ₁²)`` with σ₁² = ⟨|∇u|²⟩, σ₂² = ⟨(∇²u)²⟩
  (:func:`gaussian_peak_density`);
- on the lattice, exactly: the probability that the 8 differences D_e = u(0) − u(e) are all positive,
  an 8-dimensional Gaussian orthant probability with Cov(D_e, D_f) = C(0) − C(e) − C(f) + C(e − f),
  C the lattice correlation function (:func:`lattice_peak_density`). The two agree when the field
  is smooth on the pixel scale; the lattice finds fewer peaks as the correlation length shrinks.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError
from ._binning import wavenumber_grid

__all__ = ["PeakCounts", "peak_mask", "peak_counts", "gaussian_peak_density", "lattice_peak_density"]

# the 8 neighbours of a pixel, (dy, dx)
NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


class PeakCounts(NamedTuple):
    """``edges (n_bins+1,)`` in ν; ``counts (N, n_bins)`` int32; ``mean``, ``std`` the μ, σ of
    ν = (u − μ)/σ; ``area`` = H·W pixels (``counts / area``: peaks per pixel²)."""

    edges: np.ndarray
    counts: jax.Array
    mean: float
    std: float
    area: int


def _check_edges(thresholds) -> np.ndarray:
    edges = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if edges.ndim != 1 or edges.size < 2:
        raise ParameterError(f"thresholds must be a 1-D sequence of at least 2 bin edges; got shape {edges.shape}")
    if np.isnan(edges).any():
        raise ParameterError("thresholds contain NaN")
    if not np.all(np.diff(edges) > 0):
        raise ParameterError(f"thresholds must be strictly increasing; got {edges.tolist()}")
    return edges


@partial(jax.jit, static_argnames=("smoothing",))
def _smooth(x, smoothing: float):
    if smoothing == 0.0:
        return x
    h, w = x.shape[-2:]
    k2 = wavenumber_grid((h, w))[:, : w // 2 + 1] ** 2
    kernel = jnp.asarray(np.exp(-0.5 * k2 * smoothing**2), dtype=x.dtype)
    return jnp.fft.irfft2(jnp.fft.rfft2(x) * kernel, s=(h, w)).astype(x.dtype)


@jax.jit
def _moments(x):
    return jnp.mean(x), jnp.std(x)


@jax.jit
def _peak_mask(x):
    peak = jnp.ones(x.shape, dtype=bool)
    for dy, dx in NEIGHBOURS:
        peak = peak & (x > jnp.roll(x, (dy, dx), axis=(-2, -1)))
    return peak


def peak_mask(fields) -> jax.Array:
    """Where each field has a peak: ``u(s) > u(s + e)`` for the 8 periodic neighbours e (strict, so a
    plateau has none). fields ``(..., H, W)`` with H, W ≥ 3 → bool array of the same shape."""
    x = jnp.asarray(fields)
    if x.ndim < 2 or min(x.shape[-2:]) < 3:
        raise InputError(f"fields must be (..., H, W) with H, W >= 3 for 8 distinct neighbours; got {tuple(x.shape)}")
    if not bool(jnp.isfinite(x).all()):  # a NaN compares false with everything: it would hide its neighbours' peaks
        raise InputError("fields contain NaN or inf")
    return _peak_mask(x)


@jax.jit
def _peak_counts(x, edges, mean, std):
    peak = _peak_mask(x)
    nu = (x - mean) / std
    n_bins = edges.shape[0] - 1
    # bin b holds e_b ≤ ν < e_{b+1}; index −1 (below e_0) and n_bins (at or above the last edge)
    # go to the two discard slots 0 and n_bins + 1 of the bincount
    idx = jnp.searchsorted(edges, nu.reshape(x.shape[0], -1), side="right")
    w = peak.reshape(x.shape[0], -1).astype(jnp.int32)
    counts = jax.vmap(lambda i, wi: jnp.bincount(i, weights=wi, length=n_bins + 2))(idx, w)
    return counts[:, 1:n_bins + 1].astype(jnp.int32)


def peak_counts(fields, thresholds, *, mean=None, std=None, smoothing: float = 0.0) -> PeakCounts:
    """Peaks (strict periodic 8-neighbour maxima) of each field per height bin (module docstring).

    fields ``(N, H, W)`` (or one ``(H, W)``), finite; ``thresholds`` the bin edges in ν,
    ``(n_bins+1,)`` strictly increasing (±∞ allowed: open end bins); ``mean``, ``std``: μ, σ of
    ν = (u − μ)/σ (default: pooled over all pixels of all fields, after smoothing); ``smoothing``:
    Gaussian filter width in pixels (0: none). Returns :class:`PeakCounts` with ``counts (N, n_bins)``.
    """
    if np.ndim(fields) not in (2, 3):
        raise InputError(f"fields must be (N, H, W) or (H, W); got shape {tuple(np.shape(fields))}")
    x = jnp.asarray(as_fields(fields, dtype=np.float32))
    if min(x.shape[-2:]) < 3:
        raise InputError(f"fields must be at least 3×3 pixels for 8 distinct neighbours; got {tuple(x.shape[-2:])}")
    edges = _check_edges(thresholds)
    smoothing = float(smoothing)
    if not (np.isfinite(smoothing) and smoothing >= 0):
        raise ParameterError(f"smoothing must be >= 0 pixels; got {smoothing!r}")
    x = _smooth(x, smoothing)
    if mean is None or std is None:
        m, s = (float(v) for v in _moments(x))
        mean = m if mean is None else mean
        std = s if std is None else std
    mean, std = float(mean), float(std)
    if not np.isfinite(mean):
        raise ParameterError(f"mean must be finite; got {mean!r}")
    if not (np.isfinite(std) and std > 0):
        raise ParameterError(f"std must be > 0; got {std!r} (constant fields?)")
    counts = _peak_counts(x, jnp.asarray(edges, dtype=jnp.float32), jnp.float32(mean), jnp.float32(std))
    return PeakCounts(edges, counts, mean, std, int(x.shape[-2] * x.shape[-1]))


def gaussian_peak_density(sigma1, sigma2) -> float:
    """Continuum density of maxima (all heights, per unit area) of an isotropic Gaussian field,
    ``n_max = σ₂² / (8√3 π σ₁²)``, σ₁² = ⟨|∇u|²⟩, σ₂² = ⟨(∇²u)²⟩ (BBKS 1986; per pixel² in pixel units)."""
    sigma1, sigma2 = float(sigma1), float(sigma2)
    if not (np.isfinite(sigma1) and sigma1 > 0 and np.isfinite(sigma2) and sigma2 >= 0):
        raise ParameterError(f"need sigma1 > 0 and sigma2 >= 0; got {sigma1}, {sigma2}")
    return sigma2**2 / (8.0 * np.sqrt(3.0) * np.pi * sigma1**2)


def lattice_peak_density(correlation) -> float:
    """Exact expected density (per pixel) of strict 8-neighbour maxima of a stationary Gaussian
    lattice field with periodic correlation function ``correlation (H, W)``, C[dy, dx] = ⟨u(s) u(s + (dy, dx))⟩
    (FFT layout: lag 0 at [0, 0]): P(D_e > 0 for all 8 e), D_e = u(0) − u(e), computed with
    scipy's multivariate normal CDF (Genz's quasi-Monte Carlo, fixed seed; relative error ≲ 1e-3)."""
    from scipy.stats import multivariate_normal

    c = np.asarray(correlation, dtype=np.float64)
    if c.ndim != 2 or min(c.shape) < 3 or not np.all(np.isfinite(c)):
        raise InputError(f"correlation must be a finite (H, W) array with H, W >= 3; got shape {c.shape}")
    lag = lambda d: c[d[0] % c.shape[0], d[1] % c.shape[1]]  # noqa: E731
    e = NEIGHBOURS
    cov = np.array([[c[0, 0] - lag(a) - lag(b) + lag((a[0] - b[0], a[1] - b[1])) for b in e] for a in e])
    if np.linalg.eigvalsh(cov).min() <= 0:
        raise ParameterError("the neighbour differences are degenerate (a field without pixel-scale variance?)")
    # P(D > 0) = P(−D < 0): the CDF at 0 of the centred normal with the same covariance
    zero = np.zeros(len(e))
    return float(multivariate_normal.cdf(zero, mean=zero, cov=cov, maxpts=1_000_000, abseps=1e-7, releps=1e-4,
                                         rng=np.random.default_rng(0)))
