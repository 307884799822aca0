"""Fourier mass matrix for the per-level MALA chains of WC-RG (private helper of :mod:`phigen.rg.gibbs`).

A level's energy ``U(y) = ½⟨y, Q⋆y⟩ + ⟨y, F⟩ + Σ_s V(r(s))`` has the Hessian ``Q⋆ + H_V``. ``Q⋆`` is a
periodic convolution over sites mixing the ``Cy`` channels, so it is diagonal in Fourier space up to
a ``Cy × Cy`` Hermitian block per frequency,

    Q̂_{cc'}(k) = Σ_δ Q[c, c', δ] e^{+i k·δ}        ((Q⋆y)_c(s) = Σ_{c',δ} Q[c, c', δ] y_c'(s + δ)),

and the potential adds ``(σ_c/s)² V''(r)`` on the diagonal (the wavelet synthesis has orthonormal
columns), which we replace by its mean ``c̄_c`` over the chains. With ``M̂(k) = Q̂(k) + diag(c̄)``,
eigenvalues clipped from below, MALA runs in the whitened variable ``u = M^{1/2} y``: the step no
longer has to resolve the stiffest direction of a strongly correlated level (turbulence details: the
Gram matrices' condition numbers are 10⁸–10¹⁰ and the plain chains' steps collapse to 10⁻⁴–10⁻²).
``M`` is a fixed linear change of variables, so MALA in ``u`` is exact for ``p(y)``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def quadratic_symbol(q, offsets, shape) -> np.ndarray:
    """``Q̂(k)`` ``(h, w//2 + 1, Cy, Cy)`` complex128 of the kernel ``q`` ``(Cy, Cy, nδ)`` on ``shape = (h, w)``.

    ``Q[δ]`` is placed at ``−δ`` (mod the lattice) so that the FFT's ``e^{−ik·s}`` gives ``e^{+ik·δ}``.
    """
    q = np.asarray(q, np.float64)
    h, w = shape
    a = np.zeros(q.shape[:2] + (h, w))
    for i, (dy, dx) in enumerate(offsets):
        a[:, :, (-dy) % h, (-dx) % w] += q[:, :, i]
    sym = np.fft.rfft2(a)  # (Cy, Cy, h, w//2+1)
    sym = np.moveaxis(sym, (0, 1), (2, 3))
    return 0.5 * (sym + np.conj(np.swapaxes(sym, -1, -2)))  # Hermitian up to rounding


def mass_matrix_roots(symbol, floor_ratio: float = 1e-3):
    """``(M^{1/2}, M^{−1/2}, condition)``: two ``(h, w//2 + 1, Cy, Cy)`` complex64 roots of the Hermitian
    blocks ``symbol`` (``(None, None, nan)`` if none of its eigenvalues is positive).

    Eigenvalues are clipped at ``floor_ratio`` times the largest one (negative or tiny ones belong to
    directions the quadratic part does not confine; the potential does), so the preconditioner never
    amplifies a direction by more than ``floor_ratio^{−1/2}`` relative to the stiffest; ``condition`` is
    the clipped eigenvalues' ratio max/min (the conditioning the mass matrix takes off the chain).
    """
    lam, vec = np.linalg.eigh(symbol)
    top = float(np.max(lam))
    if not np.isfinite(top) or top <= 0:
        return None, None, float("nan")
    lam = np.maximum(lam, floor_ratio * top)
    half = np.einsum("...ab,...b,...cb->...ac", vec, np.sqrt(lam), np.conj(vec))
    ihalf = np.einsum("...ab,...b,...cb->...ac", vec, 1.0 / np.sqrt(lam), np.conj(vec))
    return (jnp.asarray(half, jnp.complex64), jnp.asarray(ihalf, jnp.complex64), float(top / np.min(lam)))


def apply_symbol(s, y):
    """``irfft2(s(k) · rfft2(y)(k))`` for ``s`` ``(h, w//2 + 1, Cy, Cy)`` and ``y`` ``(C, Cy, h, w)`` real."""
    h, w = y.shape[-2:]
    yk = jnp.fft.rfft2(y)
    return jnp.fft.irfft2(jnp.einsum("hwab,nbhw->nahw", s, yk), s=(h, w)).astype(y.dtype)
