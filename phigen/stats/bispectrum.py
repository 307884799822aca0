"""Bispectrum of periodic 2D fields by the FFT shell estimator.

For shells S_i = {k : |k| ∈ [k_i − w/2, k_i + w/2)} (rad/pixel), with
I_i(s) = IFFT(x̂ · S_i)(s) and N_i(s) = IFFT(S_i)(s),

    B(k1, k2, k3) = Σ_s I1 I2 I3 / (V · Σ_s N1 N2 N3).

Σ_s N1 N2 N3 = n_tri / V² counts the closed triangles q1 + q2 + q3 = 0 with q_i ∈ S_i and
Σ_s I1 I2 I3 = (1/V²) Σ_triangles x̂(q1) x̂(q2) x̂(q3), so B is the triangle average of
x̂1 x̂2 x̂3 / V — the normalisation of :func:`phigen.stats.power_spectrum` (P = <|x̂|²>/V).
For the local model x = g + f (g² − <g²>), B = 2f (P1P2 + P2P3 + P3P1) to leading order.
Shell powers come from the same filtered fields, P_i = Σ_s I_i² / n_i (n_i modes in S_i), and
the reduced bispectrum is Q = B / (P1P2 + P2P3 + P3P1).
Closure is modulo the FFT grid (q1 + q2 + q3 ≡ 0): keep the sides below ~2π/3 rad/pixel so
that no aliased triangle enters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import ParameterError
from ._binning import fundamental, wavenumber_grid


class BispectrumEstimate(NamedTuple):
    """Triangles ``k1, k2, k3`` (T,) rad/pixel; ``bispectrum`` (N, T); ``reduced`` Q (N, T);
    ``shell_power`` (N, T, 3) the power P_i of each side's shell; ``n_triangles`` (T,)."""

    k1: np.ndarray
    k2: np.ndarray
    k3: np.ndarray
    bispectrum: jax.Array
    reduced: jax.Array
    shell_power: jax.Array
    n_triangles: np.ndarray


@lru_cache(maxsize=32)
def _shells(shape, triangles, width):
    """Half-plane shell masks (T, 3, H, W//2+1), modes per shell (T, 3), Σ N1N2N3 (T,)."""
    h, w = shape
    kmag = wavenumber_grid(shape)
    # shell [k - w/2, k + w/2): the lower edge included
    masks = np.stack([[((kmag >= k - width / 2.0) & (kmag < k + width / 2.0)) for k in tri]
                      for tri in triangles]).astype(np.float64)
    modes = masks.sum(axis=(-2, -1))
    if np.any(modes == 0):
        t, i = np.argwhere(modes == 0)[0]
        raise ParameterError(f"no Fourier mode with |k| in [{triangles[t][i] - width / 2:.4g}, "
                             f"{triangles[t][i] + width / 2:.4g}) on a {shape} grid; widen the shells")
    n_fields = np.fft.ifft2(masks).real
    closure = np.sum(n_fields[:, 0] * n_fields[:, 1] * n_fields[:, 2], axis=(-2, -1))
    n_tri = np.rint(closure * float(h * w) ** 2)
    if np.any(n_tri < 1):
        t = int(np.argmin(n_tri))
        raise ParameterError(f"no closed triangle with sides {triangles[t]} (shell width {width:.4g})")
    return masks[..., : w // 2 + 1].astype(np.float32), modes, closure, n_tri


@jax.jit
def _shell_products(x, masks):
    """Σ_s I1 I2 I3 (T, N) and Σ_s I_i² (T, 3, N) for half-plane masks (T, 3, H, Wr)."""
    shape = x.shape[-2:]
    xh = jnp.fft.rfft2(x)

    def one(m):
        filtered = jnp.fft.irfft2(xh[None] * m[:, None], s=shape)  # (3, N, H, W)
        triple = jnp.sum(filtered[0] * filtered[1] * filtered[2], axis=(-2, -1))
        square = jnp.sum(filtered * filtered, axis=(-2, -1))
        return triple, square

    return jax.lax.map(one, masks)


def _triangles(k1, k2, k3):
    ks = np.broadcast_arrays(*(np.atleast_1d(np.asarray(k, dtype=np.float64)) for k in (k1, k2, k3)))
    if ks[0].ndim != 1:
        raise ParameterError("k1, k2, k3 must be scalars or 1-D arrays")
    for k in ks:
        if not np.all(np.isfinite(k)) or np.any(k <= 0):
            raise ParameterError(f"triangle sides must be positive and finite; got {k}")
    return ks


def bispectrum_estimate(fields, k1, k2, k3, *, width=None) -> BispectrumEstimate:
    """Bispectrum, reduced bispectrum and shell powers of each field for triangles (k1, k2, k3).

    fields ``(N, H, W)``; k1, k2, k3 scalars or ``(T,)`` arrays in rad/pixel; ``width`` the shell
    width (default Δk = 2π/min(H, W)). See the module docstring for the estimator.
    """
    x = as_fields(fields)
    shape = tuple(x.shape[-2:])
    width = fundamental(shape) if width is None else float(width)
    if not (np.isfinite(width) and width > 0):
        raise ParameterError(f"width must be > 0; got {width!r}")
    a, b, c = _triangles(k1, k2, k3)
    triangles = tuple(zip(a.tolist(), b.tolist(), c.tolist()))
    masks, modes, closure, n_tri = _shells(shape, triangles, width)
    triple, square = _shell_products(jnp.asarray(x), jnp.asarray(masks))
    v = float(shape[0] * shape[1])
    bis = (triple / jnp.asarray(v * closure, dtype=triple.dtype)[:, None]).T  # (N, T)
    power = jnp.moveaxis(square / jnp.asarray(modes, dtype=square.dtype)[:, :, None], -1, 0)  # (N, T, 3)
    p1, p2, p3 = power[..., 0], power[..., 1], power[..., 2]
    denom = p1 * p2 + p2 * p3 + p3 * p1
    reduced = bis / jnp.where(denom > 0, denom, jnp.nan)
    return BispectrumEstimate(a, b, c, bis, reduced, power, n_tri.astype(np.int64))


def bispectrum(fields, k1, k2, k3, *, width=None):
    """``B(k1, k2, k3)`` of each field, ``(N, T)`` (FFT shell estimator, B = <x̂1 x̂2 x̂3>/V)."""
    return bispectrum_estimate(fields, k1, k2, k3, width=width).bispectrum


def reduced_bispectrum(fields, k1, k2, k3, *, width=None):
    """``Q = B / (P1P2 + P2P3 + P3P1)`` of each field with P from the same shells, ``(N, T)``."""
    return bispectrum_estimate(fields, k1, k2, k3, width=width).reduced


def bispectrum_equilateral(fields, ks, *, width=None):
    """Equilateral ``B(k, k, k)`` for each k in ``ks``, ``(N, len(ks))``."""
    return bispectrum(fields, ks, ks, ks, width=width)


def bispectrum_squeezed(fields, k_long, ks_short, *, width=None):
    """Squeezed/isosceles ``B(k_long, k_s, k_s)`` for each k_s in ``ks_short``, ``(N, len(ks_short))``;
    needs ``k_long <= 2 k_s`` (up to the shell width) for the triangles to close."""
    ks_short = np.atleast_1d(np.asarray(ks_short, dtype=np.float64))
    return bispectrum(fields, np.full_like(ks_short, float(k_long)), ks_short, ks_short, width=width)
