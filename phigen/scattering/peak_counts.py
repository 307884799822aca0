"""Smooth peak counts: the density of local maxima per height bin, differentiable in the field,
for Φ of the scattering models (the soft twin of :func:`phigen.stats.peak_counts`).

A pixel s is a peak when it is higher than its 8 periodic neighbours; here the indicator is soft,

    p(s) = Π_e σ((x(s) − x(s + e)) / τ),        e ∈ {−1, 0, 1}² \\ {0},

and its height ν(s) = (x(s) − μ)/σ with μ, σ the training pixels' pooled mean and std (fixed
numbers, as the registered statistic bins by the truth's, so that a field with the wrong amplitude
puts its peaks in the wrong bins). Per bin b with edges e_b < e_{b+1} (open at both ends),

    φ_b = (1/(H·W)) Σ_s p(s) [σ((ν(s) − e_b)/w) − σ((ν(s) − e_{b+1})/w)]      (peaks per pixel)

``(N, H, W) → (N, B)``. σ is the logistic function; τ = 0.25 × the median |x(s) − x(s + e)| of the
training fields (the soft step spans a quarter of a typical neighbour difference, so the landscape
has slopes where counts change without blurring the count much) and w = 0.1. The interior edges
are the training peaks' height quantiles b/B, so every bin holds about the same number of peaks.
As τ, w → 0, φ_b·H·W is the hard count of :func:`phigen.stats.peak_counts` in the same bins.

Why: with the scattering spectra, the pixel PDF and the Minkowski functionals in Φ, the canonical
twin still had the cosmic web's peak counts 2.6× beyond their null's p95 (docs/scattering.md).

One map: a bin's count is close to Poisson, so :meth:`PeakStatistics.single_map_scale` is
√(max(n̄_b, 1))/(H·W), n̄_b the mean count of the bin.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError
from ..stats.peaks import NEIGHBOURS, peak_counts, peak_mask

__all__ = ["PeakStatistics"]

SOFTNESS = 0.25      # τ / median neighbour difference
HEIGHT_WIDTH = 0.1   # w, in units of the training std


def _soft_peaks(x, tau):
    """Soft peak indicator p(s) ``(N, H, W)``: the product over the 8 neighbours of σ((x − x_e)/τ)."""
    log_p = jnp.zeros_like(x)
    for dy, dx in NEIGHBOURS:
        log_p = log_p + jax.nn.log_sigmoid((x - jnp.roll(x, (dy, dx), axis=(-2, -1))) / tau)
    return jnp.exp(log_p)


@jax.jit
def _peak_stats(x, edges, mean, std, tau):
    p = _soft_peaks(x, tau)
    nu = (x - mean) / std
    over = jax.nn.sigmoid((nu[..., None] - edges) / HEIGHT_WIDTH)  # (N, H, W, B−1): ν above edge b, softly
    ones = jnp.ones(nu.shape + (1,), x.dtype)
    member = jnp.concatenate([ones, over], axis=-1) - jnp.concatenate([over, 0.0 * ones], axis=-1)  # in bin b
    return jnp.mean(p[..., None] * member, axis=(1, 2))


class PeakStatistics(eqx.Module):
    """Soft peak counts per pixel in B height bins (module doc). Build with :meth:`from_fields`."""

    edges: jax.Array  # (B − 1,) interior edges in ν
    mean: float = eqx.field(static=True)
    std: float = eqx.field(static=True)
    tau: float = eqx.field(static=True)

    @classmethod
    def from_fields(cls, fields, bins: int = 8) -> "PeakStatistics":
        """Edges at the training peaks' height quantiles b/B; μ, σ, τ from the training pixels."""
        b = check_int_at_least(bins, "peak bins", 2)
        x = np.asarray(as_fields(fields, name="fields"), np.float32)
        if min(x.shape[1:]) < 3:
            raise InputError(f"fields must be at least 3×3 pixels for 8 distinct neighbours; got {x.shape[1:]}")
        mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
        if not std > 0:
            raise InputError("the training fields are constant: they have no peaks to count")
        diffs = np.concatenate([np.abs(x - np.roll(x, (dy, dx), axis=(1, 2))).ravel() for dy, dx in NEIGHBOURS[4:]])
        tau = SOFTNESS * float(np.median(diffs))
        if not tau > 0:
            raise InputError("the training fields are flat between neighbours: peaks are not defined")
        # hard peaks' heights: one bin open at both ends counts every peak; its mask gives the heights
        hard = np.asarray(peak_mask(x))
        heights = (x[hard] - mean) / std
        if heights.size < b:
            raise InputError(f"the training fields have {heights.size} peaks, fewer than {b} bins")
        edges = np.quantile(heights, np.arange(1, b) / b)
        if not np.all(np.diff(edges) > 0):
            raise InputError("the training peaks' heights do not separate into distinct bins; use fewer bins")
        return cls(jnp.asarray(edges, jnp.float32), mean, std, tau)

    @property
    def n_stats(self) -> int:
        return int(self.edges.shape[0]) + 1

    def __call__(self, x, *, batch_size: int | None = None):
        x = jnp.asarray(x)
        if x.ndim != 3 or min(x.shape[1:]) < 3:
            raise InputError(f"fields must have shape (N, H, W) with H, W >= 3; got {tuple(x.shape)}")
        return _peak_stats(x, self.edges, jnp.float32(self.mean), jnp.float32(self.std), jnp.float32(self.tau))

    def hard_counts(self, fields) -> np.ndarray:
        """The hard counts per pixel in the same bins (:func:`phigen.stats.peak_counts`), ``(N, B)``."""
        edges = np.concatenate([[-np.inf], np.asarray(self.edges, np.float64), [np.inf]])
        pc = peak_counts(fields, edges, mean=self.mean, std=self.std)
        return np.asarray(pc.counts, np.float64) / pc.area

    def single_map_scale(self, fields) -> np.ndarray:
        """√(max(n̄_b, 1)) / (H·W) per bin, n̄_b the bin's mean count over ``fields`` (Poisson counts)."""
        x = as_fields(fields, name="fields")
        area = x.shape[1] * x.shape[2]
        counts = self.hard_counts(x).mean(axis=0) * area
        return (np.sqrt(np.maximum(counts, 1.0)) / area).astype(np.float32)
