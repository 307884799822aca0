"""One-point statistics: pixel PDF, moments, and distances between pixel distributions.

``wasserstein1`` and ``ks_distance`` are exact for the empirical distributions of the pixel values
(all pixels of all fields pooled), computed in float64 from the sorted samples; the two samples
may have different sizes.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError, ParameterError


class Moments(NamedTuple):
    """Per-field moments, each ``(N,)``: mean, std (ddof 0), skewness, excess kurtosis (0 for a Gaussian)."""

    mean: jax.Array
    std: jax.Array
    skewness: jax.Array
    kurtosis: jax.Array


@jax.jit
def _moments(x):
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(axis=1)
    d = flat - mean[:, None]
    var = jnp.mean(d * d, axis=1)
    std = jnp.sqrt(var)
    safe = jnp.where(var > 0, var, 1.0)
    skew = jnp.mean(d**3, axis=1) / safe**1.5
    kurt = jnp.mean(d**4, axis=1) / safe**2 - 3.0
    return Moments(mean, std, jnp.where(var > 0, skew, 0.0), jnp.where(var > 0, kurt, 0.0))


def moments(fields) -> Moments:
    """Moments of the pixel values of each field: ``mean``, ``std = sqrt(<(x-m)²>)``,
    ``skewness = <(x-m)³>/std³``, ``kurtosis = <(x-m)⁴>/std⁴ - 3``; each ``(N,)``."""
    return _moments(jnp.asarray(as_fields(fields)))


@partial(jax.jit, static_argnames=("bins", "per_field"))
def _histogram(x, lo, hi, bins: int, per_field: bool):
    flat = x.reshape(x.shape[0], -1)
    width = (hi - lo) / bins
    idx = jnp.floor((flat - lo) / width).astype(jnp.int32)
    idx = jnp.where(flat == hi, bins - 1, idx)  # numpy's convention: the last bin is closed
    inside = (flat >= lo) & (flat <= hi)
    idx = jnp.where(inside, jnp.clip(idx, 0, bins - 1), bins)
    counts = jax.vmap(lambda i: jnp.bincount(i, length=bins + 1)[:bins])(idx).astype(jnp.float32)
    if not per_field:
        counts = counts.sum(axis=0, keepdims=True)
    total = jnp.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return counts / (total * width)


def pixel_pdf(fields, *, bins: int = 100, range=None, per_field: bool = False):
    """Histogram estimate of the pixel PDF.

    Returns ``(centers (bins,), density)`` with ``density`` ``(bins,)`` pooled over all fields
    (``(N, bins)`` with ``per_field=True``), normalised like ``numpy.histogram(density=True)``:
    Σ density·width = 1 over the values inside ``range`` (default: min to max of all pixels).
    """
    x = as_fields(fields)
    bins = check_int_at_least(bins, "bins", 1)
    if range is None:
        lo, hi = float(np.min(x)), float(np.max(x))
    else:
        lo, hi = (float(r) for r in range)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ParameterError(f"range must be finite; got {(lo, hi)}")
    if hi <= lo:  # a constant field: centre a unit-width window on it
        if range is not None:
            raise ParameterError(f"range must have max > min; got {(lo, hi)}")
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    dens = _histogram(jnp.asarray(x), jnp.float32(lo), jnp.float32(hi), bins, bool(per_field))
    return 0.5 * (edges[1:] + edges[:-1]), (dens if per_field else dens[0])


def _as_sample(a, name):
    arr = np.asarray(a, dtype=np.float64).ravel()
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or inf values")
    return np.sort(arr)


def _cdfs_on_merged(a, b):
    """Sorted merged support and both empirical CDFs on it, from sorted samples ``a``, ``b``.

    At a run of tied values only the last position holds the right-continuous CDF value (the
    others carry zero width), so ``last`` marks the positions where the CDFs are exact."""
    merged = np.concatenate([a, b])
    order = np.argsort(merged, kind="stable")  # two sorted runs: the merge is ~linear
    support = merged[order]
    from_a = order < a.size
    fa = np.cumsum(from_a) / a.size
    fb = np.cumsum(~from_a) / b.size
    last = np.empty(support.size, dtype=bool)
    last[:-1] = support[1:] != support[:-1]
    last[-1] = True
    return support, fa, fb, last


def w1_and_ks(a, b) -> tuple[float, float]:
    """``(wasserstein1(a, b), ks_distance(a, b))`` sharing one sort and merge."""
    support, fa, fb, last = _cdfs_on_merged(_as_sample(a, "a"), _as_sample(b, "b"))
    # between consecutive support points both CDFs are constant
    w1 = float(np.sum(np.abs(fa[:-1] - fb[:-1]) * np.diff(support)))
    return w1, float(np.max(np.abs(fa - fb)[last]))


def wasserstein1(a, b) -> float:
    """Exact 1-Wasserstein distance ``W1 = ∫ |F_a(t) − F_b(t)| dt`` between the empirical
    distributions of the values of ``a`` and ``b`` (any shapes, flattened; sizes may differ)."""
    return w1_and_ks(a, b)[0]


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov–Smirnov statistic ``D = sup_t |F_a(t) − F_b(t)|`` of the values of
    ``a`` and ``b`` (flattened; sizes may differ); equals ``scipy.stats.ks_2samp(a, b).statistic``."""
    return w1_and_ks(a, b)[1]
