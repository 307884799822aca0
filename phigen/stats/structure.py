"""Increment statistics and the two-point function of periodic 2D fields.

Structure functions along the two lattice axes, averaged over both axes and all sites (periodic):

    S_p(r) = ½ [ <|x(s + r e_x) − x(s)|^p> + <|x(s + r e_y) − x(s)|^p> ],   flatness F(r) = S_4 / S_2².

For a Gaussian field F = 3 and S_2(r) = 2 (C(0) − C(r)).

Two-point function by FFT: C(d) = (1/V) Σ_s y(s) y(s + d) with y = x − mean(x) (connected, the
default) or y = x, i.e. C = IFFT(|ŷ|²)/V; C(0) is the pixel variance. Isotropic average over
periodic minimum-image distances |d| (d_y = min(i, H − i), d_x = min(j, W − j)).
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import ParameterError
from ._binning import ShellBinning


class StructureFunctions(NamedTuple):
    """``r`` (nr,) separations in pixels; ``orders`` (n_orders,); ``values`` (N, n_orders, nr)."""

    r: np.ndarray
    orders: np.ndarray
    values: jax.Array


class TwoPointFunction(NamedTuple):
    """``r`` (nr,) mean distance in each bin (pixels); ``c`` (N, nr); ``counts`` (nr,) pairs per bin
    (lattice displacements d)."""

    r: np.ndarray
    c: jax.Array
    counts: np.ndarray


def _separations(shape, separations):
    l_min = min(shape)
    if separations is None:
        return np.arange(1, l_min // 2 + 1)
    sep = np.atleast_1d(np.asarray(separations))
    if sep.ndim != 1 or sep.size == 0 or not np.all(np.round(sep) == sep) or np.any(sep < 1) \
            or np.any(sep >= l_min):
        raise ParameterError(f"separations must be integers in [1, {l_min - 1}]; got {separations!r}")
    return sep.astype(np.int64)


def _abs_power(d, p: float):
    if float(p).is_integer():
        # integer_pow: a few multiplies instead of exp(p·log|d|)
        return jnp.abs(d) ** int(p) if int(p) % 2 else d ** int(p)
    return jnp.abs(d) ** p


@partial(jax.jit, static_argnames=("orders",))
def _increment_moments(x, seps, orders: tuple):
    def at(r):
        dx = jnp.roll(x, -r, axis=-1) - x
        dy = jnp.roll(x, -r, axis=-2) - x
        # (n_orders, N): average of the two axes
        return jnp.stack([0.5 * (jnp.mean(_abs_power(dx, p), axis=(-2, -1))
                                 + jnp.mean(_abs_power(dy, p), axis=(-2, -1))) for p in orders])

    return jnp.moveaxis(jax.lax.map(at, seps), 0, -1)  # (n_orders, N, nr)


def structure_functions(fields, separations=None, orders=(2, 4)) -> StructureFunctions:
    """``S_p(r)`` of each field (module docstring), ``values`` shaped ``(N, n_orders, nr)``.

    separations: integers in [1, min(H, W) − 1] (default 1 … min(H, W)//2); orders: positive powers.
    """
    x = jnp.asarray(as_fields(fields))
    seps = _separations(tuple(x.shape[-2:]), separations)
    ords = np.atleast_1d(np.asarray(orders, dtype=np.float64))
    if ords.ndim != 1 or ords.size == 0 or not np.all(np.isfinite(ords)) or np.any(ords <= 0):
        raise ParameterError(f"orders must be positive numbers; got {orders!r}")
    vals = _increment_moments(x, jnp.asarray(seps, dtype=jnp.int32), tuple(float(p) for p in ords))
    return StructureFunctions(seps, ords, jnp.moveaxis(vals, 0, 1))


def flatness(fields, separations=None):
    """Flatness ``F(r) = S_4(r) / S_2(r)²`` of each field: returns ``(r (nr,), F (N, nr))``.
    3 for Gaussian increments; larger for intermittent fields."""
    sf = structure_functions(fields, separations, orders=(2.0, 4.0))
    s2, s4 = sf.values[:, 0], sf.values[:, 1]
    return sf.r, s4 / jnp.where(s2 > 0, s2 * s2, jnp.nan)


@lru_cache(maxsize=32)
def _distance_binning(shape, n_bins):
    h, w = shape
    iy = np.arange(h)
    ix = np.arange(w)
    dy = np.minimum(iy, h - iy)[:, None]
    dx = np.minimum(ix, w - ix)[None, :]
    dist = np.sqrt(dy**2 + dx**2).astype(np.float64)
    r_max = min(shape) // 2
    if n_bins is None:
        edges = np.arange(r_max + 2) - 0.5  # unit shells centred on 0, 1, …, r_max
    else:
        n_bins = int(n_bins)
        if n_bins < 2:
            raise ParameterError(f"n_bins must be >= 2 (r = 0 has its own bin); got {n_bins}")
        edges = np.concatenate([[-0.5], np.linspace(0.5, r_max + 0.5, n_bins)])
    return ShellBinning(dist, edges)


@partial(jax.jit, static_argnames=("connected",))
def _correlation_2d(x, connected: bool):
    y = x - x.mean(axis=(-2, -1), keepdims=True) if connected else x
    yh = jnp.fft.rfft2(y)
    v = x.shape[-1] * x.shape[-2]
    return jnp.fft.irfft2(yh.real**2 + yh.imag**2, s=x.shape[-2:]) / v


def two_point_function(fields, *, n_bins=None, connected: bool = True) -> TwoPointFunction:
    """Isotropic two-point function ``C(r)`` of each field (module docstring), up to r = min(H, W)/2.

    Default bins: unit shells centred on r = 0, 1, …, min(H, W)//2; with ``n_bins``: r = 0 alone
    plus ``n_bins − 1`` equal bins over (0.5, r_max + 0.5). Returns :class:`TwoPointFunction`.
    """
    x = jnp.asarray(as_fields(fields))
    binning = _distance_binning(tuple(x.shape[-2:]), n_bins)
    c = binning.average(_correlation_2d(x, bool(connected)))
    return TwoPointFunction(binning.centers.copy(), c, binning.counts.copy())
