"""Pixel-marginal statistics: a smoothed CDF of the field's values at B levels.

    φ_b(x) = ⟨tanh((x(p) − c_b) / w_b)⟩_p ,   b = 1…B,   (N, H, W) → (N, B)

with the levels c_b at the training pixels' quantiles (b − ½)/B and widths w_b the mean distance
to the neighbouring levels (floored at 1 % of the pixel std), so neighbouring steps overlap. E φ_b = 1 − 2·P̃(x < c_b), a
smoothed CDF, so matching ⟨φ_b⟩ constrains the one-point PDF at B levels and, with it, the area
Minkowski functional V₀ of the excursion sets at those thresholds. In a maximum-entropy energy
θ·φ(x) this is a scalar potential Σ_p V(x(p)) with V a sum of B bounded tanh steps: it cannot make
the density unnormalisable (|φ_b| ≤ 1), whatever θ is.

Scattering spectra see the field only through wavelet moduli and their correlations; the pixel PDF
of a cosmic-web density (long positive tail, a floor in the voids) is what they leave loose.
:class:`ConcatenatedStatistics` puts the two side by side as one statistics function.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError

__all__ = ["MarginalStatistics", "ConcatenatedStatistics"]


class MarginalStatistics(eqx.Module):
    """``φ_b(x) = mean_p tanh((x_p − c_b)/w_b)`` (module doc). Build with :meth:`from_fields`."""

    centres: jax.Array  # (B,) c_b
    widths: jax.Array   # (B,) w_b

    @classmethod
    def from_fields(cls, fields, bins: int = 8) -> "MarginalStatistics":
        """Levels at the quantiles (b − ½)/B of all the pixels of ``fields`` (N, H, W)."""
        bins = check_int_at_least(bins, "marginal bins", 2)
        x = np.asarray(as_fields(fields, name="fields"), np.float64).ravel()
        std = float(x.std())
        if not std > 0:
            raise InputError("the fields are constant: their pixel PDF has no levels to constrain")
        c = np.quantile(x, (np.arange(bins) + 0.5) / bins)
        gaps = np.diff(c)
        left = np.concatenate([gaps[:1], gaps])
        right = np.concatenate([gaps, gaps[-1:]])
        w = np.maximum(0.5 * (left + right), 0.01 * std)
        return cls(jnp.asarray(c, jnp.float32), jnp.asarray(w, jnp.float32))

    @property
    def n_stats(self) -> int:
        return int(self.centres.shape[0])

    def __call__(self, x, *, batch_size: int | None = None):
        x = jnp.asarray(x)
        if x.ndim != 3:
            raise InputError(f"fields must have shape (N, H, W); got {tuple(x.shape)}")
        return _marginal(x, self.centres, self.widths)


@jax.jit
def _marginal(x, centres, widths):
    return jnp.mean(jnp.tanh((x[..., None] - centres) / widths), axis=(1, 2))


class ConcatenatedStatistics(eqx.Module):
    """Several statistics functions side by side: ``x → concat_i Φ_i(x)``, ``(N, H, W) → (N, Σ n_i)``."""

    parts: tuple

    @property
    def n_stats(self) -> int:
        return int(sum(p.n_stats for p in self.parts))

    def __call__(self, x, *, batch_size: int | None = None):
        return jnp.concatenate([p(x) for p in self.parts], axis=-1)
