"""Classic (Mallat) 2D scattering coefficients through kymatio's JAX frontend, for comparison.

S0 = x∗φ_J,  S1 = |x∗ψ_λ1|∗φ_J,  S2 = ||x∗ψ_λ1|∗ψ_λ2|∗φ_J  (j2 > j1), with kymatio's Morlet bank
(J scales, L orientations, default L = 8 as in kymatio). The coefficients are averaged over space,
giving ``1 + J L + L² J (J − 1)/2`` numbers per field.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError


@functools.lru_cache(maxsize=8)
def _kymatio(shape, J, L, max_order):
    from kymatio.jax import Scattering2D

    return Scattering2D(J=J, shape=shape, L=L, max_order=max_order)


class ClassicScattering:
    """kymatio ``Scattering2D`` for fields of one shape; ``__call__(x) -> (N, n_coefficients)`` spatial means.

    ``ClassicScattering(shape, J, L=8, *, max_order=2, average=True)``; with ``average=False`` the
    low-passed maps ``(N, n_coefficients, H/2^J, W/2^J)`` are returned.
    """

    def __init__(self, shape, J: int, L: int = 8, *, max_order: int = 2, average: bool = True):
        shape = (int(shape), int(shape)) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        if len(shape) != 2:
            raise ParameterError(f"shape must be (H, W); got {shape!r}")
        if int(J) != J or J < 1 or int(L) != L or L < 1:
            raise ParameterError(f"J and L must be integers >= 1; got J={J!r}, L={L!r}")
        if min(shape) < 2 ** int(J) or any(s % 2 ** int(J) for s in shape):
            raise ParameterError(f"fields of shape {shape} need H, W multiples of 2^J = {2 ** int(J)} for J={J}")
        if max_order not in (1, 2):
            raise ParameterError(f"max_order must be 1 or 2; got {max_order!r}")
        self.shape, self.J, self.L, self.max_order, self.average = shape, int(J), int(L), int(max_order), bool(average)
        self._op = _kymatio(shape, self.J, self.L, self.max_order)

    @property
    def n_coefficients(self) -> int:
        J, L = self.J, self.L
        return 1 + J * L + (L * L * J * (J - 1) // 2 if self.max_order == 2 else 0)

    def __call__(self, x):
        x = as_fields(x, name="fields")
        if x.ndim != 3 or tuple(x.shape[-2:]) != self.shape:
            raise InputError(f"fields must have shape (N, {self.shape[0]}, {self.shape[1]}); got {tuple(x.shape)}")
        out = self._op(jnp.asarray(x))
        return jnp.mean(out, axis=(-2, -1)) if self.average else out


def classic_scattering(x, J: int, L: int = 8, *, max_order: int = 2):
    """Spatially averaged kymatio scattering coefficients ``(N, 1 + JL + L²J(J−1)/2)`` of fields ``(N, H, W)``."""
    xs = as_fields(x, name="fields")
    return ClassicScattering(tuple(xs.shape[-2:]), J, L, max_order=max_order)(xs)
