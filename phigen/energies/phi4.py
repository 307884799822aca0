"""Lattice φ⁴ in the hopping form, periodic in 2D, and its λ = 0 limit the Gaussian free field.

``S(φ) = Σ_x [ −2κ Σ_μ φ_x φ_{x+μ} + φ_x² + λ (φ_x² − 1)² ]``  (μ = the two forward directions).

With ``n_x = Σ_{±μ} φ_{x±μ}`` (the four neighbours), ``Σ_x Σ_μ φ_x φ_{x+μ} = ½ Σ_x φ_x n_x``, so the
energy and the force share one neighbour sum: ``S = Σ_x [−κ φ n + φ² + λ(φ²−1)²]`` and
``∂S/∂φ_x = −2κ n_x + 2φ_x + 4λ(φ_x² − 1)φ_x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError
from . import _lattice
from .base import Energy

__all__ = ["phi4_energy", "phi4_grad", "phi4_value_and_grad", "Phi4", "gaussian_free_field",
           "gff_exact_spectrum"]

_MIN_L = 4


def _check_params(kappa, lam):
    try:
        kappa = float(kappa)
        lam = float(lam)
    except (TypeError, ValueError):
        raise ParameterError(f"kappa and lam must be real numbers; got kappa={kappa!r}, lam={lam!r}") from None
    if not (math.isfinite(kappa) and math.isfinite(lam)):
        raise ParameterError(f"kappa and lam must be finite; got kappa={kappa!r}, lam={lam!r}")
    if kappa < 0:
        raise ParameterError(f"kappa must be >= 0; got {kappa!r}")
    if lam < 0:
        raise ParameterError(f"lam must be >= 0 (lam < 0 makes the energy unbounded below); got {lam!r}")
    if lam == 0 and kappa >= 0.25:
        raise ParameterError(
            f"lam = 0 (Gaussian free field) is unstable for kappa >= 1/4: the k = 0 mode has "
            f"negative stiffness 2(1 - 8 kappa); got kappa={kappa!r}")
    return kappa, lam


def _check_lattice(shape):
    if len(shape) < 2:
        raise InputError(f"phi4 fields must have shape (..., L1, L2); got shape {tuple(shape)}")
    if shape[-1] < _MIN_L or shape[-2] < _MIN_L:
        raise ParameterError(f"phi4 lattice must be at least {_MIN_L}x{_MIN_L}; got {shape[-2]}x{shape[-1]}")


def _neighbour_sum(phi):
    # Periodic 4-neighbour sum; the rolls fuse with the elementwise force in XLA.
    return (jnp.roll(phi, 1, -1) + jnp.roll(phi, -1, -1)
            + jnp.roll(phi, 1, -2) + jnp.roll(phi, -1, -2))


def _value(phi, kappa, lam):
    n = _neighbour_sum(phi)
    phi2 = phi * phi
    density = -kappa * phi * n + phi2 + lam * (phi2 - 1.0) ** 2
    return jnp.sum(density, axis=(-2, -1))


def _grad(phi, kappa, lam):
    n = _neighbour_sum(phi)
    return -2.0 * kappa * n + 2.0 * phi + 4.0 * lam * (phi * phi - 1.0) * phi


def _value_and_grad(phi, kappa, lam):
    n = _neighbour_sum(phi)
    phi2 = phi * phi
    density = -kappa * phi * n + phi2 + lam * (phi2 - 1.0) ** 2
    g = -2.0 * kappa * n + 2.0 * phi + 4.0 * lam * (phi2 - 1.0) * phi
    return jnp.sum(density, axis=(-2, -1)), g


def _as_phi(phi):
    arr = as_fields(phi, name="phi", allow_batchless=False)
    _check_lattice(arr.shape)
    return arr


def phi4_energy(phi, kappa, lam):
    """Hopping-form φ⁴ action per field, periodic.

    ``S = Σ_x [−2κ Σ_μ φ_x φ_{x+μ} + φ_x² + λ(φ_x² − 1)²]``; ``phi`` of shape ``(..., L1, L2)``
    (typically ``(C, L, L)``) → ``(...)`` (typically ``(C,)``), float32.
    """
    kappa, lam = _check_params(kappa, lam)
    return _value(_as_phi(phi), kappa, lam)


def phi4_grad(phi, kappa, lam):
    """Analytic force ``∂S/∂φ_x = −2κ Σ_{±μ} φ_{x±μ} + 2φ_x + 4λ(φ_x² − 1)φ_x``; same shape as ``phi``."""
    kappa, lam = _check_params(kappa, lam)
    return _grad(_as_phi(phi), kappa, lam)


def phi4_value_and_grad(phi, kappa, lam):
    """``(phi4_energy, phi4_grad)`` computed from one shared neighbour sum."""
    kappa, lam = _check_params(kappa, lam)
    return _value_and_grad(_as_phi(phi), kappa, lam)


@dataclass(frozen=True)
class Phi4(Energy):
    """The φ⁴ Gibbs energy ``U = S(φ)`` (hopping form) with its analytic gradient.

    ``Phi4(kappa, lam)`` is an :class:`Energy` acting on batches ``(C, L1, L2)``. Equality and
    hashing go by ``(kappa, lam)``. κ and λ are pytree leaves: under ``jit`` they are traced, so a
    sampler compiles once per lattice shape and runs every (κ, λ) with that compilation (λ = 0,
    the Gaussian free field, is its own compilation: its name differs).
    The hot-path functions skip input checks (they run inside jitted samplers). On ``(C, H, W)``
    batches the fused value-and-force, the momentum kick and the whole leapfrog trajectory run in
    the flat haloed layout of :mod:`phigen.energies._lattice` (one stencil pass per kick-drift).
    """

    _parameters = ("kappa", "lam")
    _derived = ("value", "grad", "value_and_grad_fn")

    value: Callable = field(init=False, repr=False, compare=False)
    grad: Callable = field(init=False, repr=False, compare=False)
    name: str = field(init=False, default="phi4")
    value_and_grad_fn: Callable | None = field(init=False, default=None, repr=False, compare=False)
    kappa: float = 0.0
    lam: float = 0.0

    def __post_init__(self):
        kappa, lam = _check_params(self.kappa, self.lam)
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "lam", lam)
        object.__setattr__(self, "name", "gaussian_free_field" if lam == 0 else "phi4")
        self._bind()

    def _bind(self):
        kappa, lam = self.kappa, self.lam
        object.__setattr__(self, "value", lambda phi: _value(phi, kappa, lam))
        object.__setattr__(self, "grad", lambda phi: _grad(phi, kappa, lam))
        object.__setattr__(self, "value_and_grad_fn", self._fast_value_and_grad)

    # --- fast paths (flat haloed layout on (C, H, W)) ---------------------------------------------
    def _force(self, phi, n):
        return -2.0 * self.kappa * n + 2.0 * phi + 4.0 * self.lam * (phi * phi - 1.0) * phi

    def _energy_from_force(self, phi, g):
        # the quadratic terms of S are homogeneous of degree 2 and the quartic one differs by λ, so
        # Σ φ ∂S/∂φ = −2κΣφn + 2Σφ² + 4λΣ(φ²−1)φ² gives S = Σ [½ φ g − λ(φ⁴ − 1)] exactly: no second stencil
        phi2 = phi * phi
        return jnp.sum(0.5 * phi * g - self.lam * (phi2 * phi2 - 1.0), axis=tuple(range(1, phi.ndim)))

    @staticmethod
    def _flat_ok(x) -> bool:
        return x.ndim == 3 and x.shape[-1] >= 3 and x.shape[-2] >= 3

    def _fast_value_and_grad(self, phi):
        if not self._flat_ok(phi):
            return _value_and_grad(phi, self.kappa, self.lam)
        g = _lattice.lattice_force(self._force, phi)
        return self._energy_from_force(phi, g), g

    def kick(self, x, p, step_size):
        if not self._flat_ok(x):
            return super().kick(x, p, step_size)
        return _lattice.lattice_kick(self._force, x, p, step_size)

    def fused_leapfrog(self, x):
        if not self._flat_ok(x):
            return None
        return lambda x, p, eps, n: _lattice.lattice_leapfrog_kick_drift(self._force, self._energy_from_force,
                                                                          x, p, eps, n)


def gaussian_free_field(kappa) -> Phi4:
    """The Gaussian free field ``U = Σ_x [−2κ Σ_μ φ_x φ_{x+μ} + φ_x²]`` = ``Phi4(kappa, 0)``; needs κ < 1/4."""
    return Phi4(kappa, 0.0)


def gff_exact_spectrum(shape, kappa):
    """Exact GFF power spectrum ``⟨|φ̂(k)|²⟩/V = 1 / (2(1 − 2κ(cos k_x + cos k_y)))`` on the FFT grid.

    ``shape = (H, W)`` (or an int L for L×L); ``k = 2π·fftfreq`` along each axis, ``V = H·W``,
    ``φ̂ = numpy.fft.fft2(φ)``. Returns a float64 numpy array of shape ``(H, W)``.
    """
    kappa, _ = _check_params(kappa, 0.0)
    if np.ndim(shape) == 0:
        shape = (int(shape), int(shape))
    if len(shape) != 2:
        raise ParameterError(f"shape must be (H, W); got {shape!r}")
    _check_lattice(tuple(int(s) for s in shape))
    ky = 2 * np.pi * np.fft.fftfreq(int(shape[0]))
    kx = 2 * np.pi * np.fft.fftfreq(int(shape[1]))
    return 1.0 / (2.0 * (1.0 - 2.0 * kappa * (np.cos(ky)[:, None] + np.cos(kx)[None, :])))
