"""Memorisation check: nearest-neighbour distances to the training set modulo the field's symmetries.

For a sample ``a`` and a training field ``b`` the distance is taken over the symmetry group G
(periodic shifts, the 8 rotations/reflections of the square — 4 on a rectangle — and φ → −φ):

    d²(a, b) = min_{T ∈ G} ‖a − T b‖² / (‖a‖² + ‖b‖²)
             = 1 − 2 max_{g, s} σ·C_g(a, b)[s] / (‖a‖² + ‖b‖²),

where ``C_g(a, b)[s] = Σ_x a(x) (g b)(x − s) = IFFT(FFT(a) · conj(FFT(g b)))[s]`` covers all
shifts at once and σ ∈ {+1} or {±1} (sign symmetry). ‖T b‖ = ‖b‖ for every T, so the minimum over
T is the maximum correlation. d ≈ 1 for unrelated zero-mean fields and d = 0 for an exact
(transformed) copy. A model that copies its training fields has sample→train distances far below
the held-out→train distances of fresh truth fields, which is what :func:`memorisation_check` tests.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError

__all__ = ["NearestNeighbours", "nearest_neighbour_distances", "memorisation_check", "SYMMETRIES", "dihedral_images", "check_symmetries"]

SYMMETRIES = ("shifts", "dihedral", "sign")

# Elements of the correlation block (n_a · n_b · |dihedral| · H · W) per jitted call: ~256 MB of
# float32 + complex64 intermediates, whatever the field size.
_BLOCK_ELEMENTS = 2 ** 25


class NearestNeighbours(NamedTuple):
    """``distance (N,)``: normalised L2 distance of each sample to its nearest reference field
    (modulo the symmetries); ``index (N,)``: which reference field that is."""

    distance: np.ndarray
    index: np.ndarray


def check_symmetries(symmetries) -> tuple[str, ...]:
    sym = tuple(symmetries)
    unknown = [s for s in sym if s not in SYMMETRIES]
    if unknown:
        raise ParameterError(f"unknown symmetries {unknown}; choose from {list(SYMMETRIES)}")
    return sym


def dihedral_images(x, square: bool):
    """The images of ``x (M, H, W)`` under the rotations/reflections: (M, G, H, W), G = 8 or 4."""
    imgs = [x, x[:, ::-1, :], x[:, :, ::-1], x[:, ::-1, ::-1]]
    if square:
        t = np.swapaxes(x, -1, -2)
        imgs += [t, t[:, ::-1, :], t[:, :, ::-1], t[:, ::-1, ::-1]]
    return np.stack(imgs, axis=1)


@partial(jax.jit, static_argnames=("shifts", "sign", "shape"))
def _block_min(a, a2, b_hat, b2, b_valid, *, shifts: bool, sign: bool, shape):
    """min over the block's reference fields and group images of d² for each of the samples ``a``.

    a (n, H, W), a2 (n,), b_hat (m, G, H, W//2+1) rfft2 of the images, b2 (m,), b_valid (m,)."""
    a_hat = jnp.fft.rfft2(a)
    if shifts:
        corr = jnp.fft.irfft2(a_hat[:, None, None] * jnp.conj(b_hat)[None], s=shape)  # (n, m, G, H, W)
        hi, lo = corr.max(axis=(-2, -1)), corr.min(axis=(-2, -1))
    else:
        # the zero shift only: ⟨a, g b⟩ = Σ_k â conj(b̂) / (HW) with rfft2's half-plane counted twice
        w = jnp.ones(b_hat.shape[-1]).at[1:(shape[-1] + 1) // 2].set(2.0)
        prod = jnp.real(a_hat[:, None, None] * jnp.conj(b_hat)[None]) * w
        hi = prod.sum(axis=(-2, -1)) / (shape[0] * shape[1])
        lo = hi
    best = jnp.maximum(hi, -lo) if sign else hi  # (n, m, G)
    best = best.max(axis=-1)
    denom = a2[:, None] + b2[None, :]
    d2 = jnp.where(denom > 0, 1.0 - 2.0 * best / jnp.where(denom > 0, denom, 1.0), 0.0)
    d2 = jnp.where(b_valid[None, :], jnp.clip(d2, 0.0, None), jnp.inf)
    return d2.min(axis=1), d2.argmin(axis=1)


def nearest_neighbour_distances(samples, reference, *, symmetries=SYMMETRIES) -> NearestNeighbours:
    """For each sample ``(N, H, W)`` its nearest field of ``reference (M, H, W)`` modulo ``symmetries``
    (any of "shifts", "dihedral", "sign"): distance ``d = sqrt(min_T ‖a − T b‖² / (‖a‖² + ‖b‖²))``
    (module docstring) and the reference index. All shifts come from one FFT cross-correlation per
    pair; pairs are processed in jitted blocks of bounded memory. Returns :class:`NearestNeighbours`.
    """
    sym = check_symmetries(symmetries)
    a = np.asarray(as_fields(samples, name="samples"))
    b = np.asarray(as_fields(reference, name="reference"))
    if a.shape[-2:] != b.shape[-2:]:
        raise InputError(f"samples and reference must have the same field shape; got {a.shape[-2:]} "
                         f"and {b.shape[-2:]}")
    h, w = a.shape[-2:]
    images = dihedral_images(b, h == w) if "dihedral" in sym else b[:, None]
    g = images.shape[1]
    n, m = a.shape[0], b.shape[0]
    per_pair = g * h * w
    n_block = int(min(n, max(1, math.isqrt(_BLOCK_ELEMENTS // per_pair))))
    m_block = int(min(m, max(1, _BLOCK_ELEMENTS // (per_pair * n_block))))

    # Fixed block shapes (zero-padded) so every call reuses one compilation.
    m_pad = -(-m // m_block) * m_block
    b_hat = jnp.fft.rfft2(jnp.asarray(np.concatenate([images, np.zeros((m_pad - m, *images.shape[1:]),
                                                                         np.float32)])))
    b2 = jnp.asarray(np.concatenate([np.sum(b.astype(np.float64) ** 2, axis=(-2, -1)), np.zeros(m_pad - m)]),
                     jnp.float32)
    b_valid = jnp.arange(m_pad) < m
    kw = dict(shifts="shifts" in sym, sign="sign" in sym, shape=(h, w))

    dist = np.empty(n, np.float64)
    index = np.empty(n, np.int64)
    for start in range(0, n, n_block):
        block = a[start:start + n_block]
        used = block.shape[0]
        if used < n_block:
            block = np.concatenate([block, np.zeros((n_block - used, h, w), np.float32)])
        a2 = jnp.asarray(np.sum(block.astype(np.float64) ** 2, axis=(-2, -1)), jnp.float32)
        best = np.full(n_block, np.inf)
        arg = np.zeros(n_block, np.int64)
        block = jnp.asarray(block)
        for j in range(0, m_pad, m_block):
            d2, k = _block_min(block, a2, b_hat[j:j + m_block], b2[j:j + m_block], b_valid[j:j + m_block], **kw)
            d2, k = np.asarray(d2, np.float64), np.asarray(k) + j
            better = d2 < best
            best = np.where(better, d2, best)
            arg = np.where(better, k, arg)
        dist[start:start + used] = np.sqrt(best[:used])
        index[start:start + used] = arg[:used]
    return NearestNeighbours(dist, index)


def _quantiles(d) -> dict:
    q = np.quantile(d, [0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 1.0])
    return {"min": float(q[0]), "p01": float(q[1]), "p05": float(q[2]), "p25": float(q[3]),
            "median": float(q[4]), "p75": float(q[5]), "max": float(q[6]), "mean": float(np.mean(d))}


def memorisation_check(samples, train, held_out, *, symmetries=SYMMETRIES, quantile: float = 0.01,
                       z: float = 4.0, held_out_to_train: NearestNeighbours | None = None,
                       samples_to_train: NearestNeighbours | None = None) -> dict:
    """Do the samples sit closer to the training set than fresh truth does?

    Computes the nearest-neighbour distances (modulo ``symmetries``) sample→train and
    held_out→train. The threshold t is the k-th smallest held-out distance, k = max(1, ⌈q·n_h⌉)
    (q = ``quantile``). For samples exchangeable with the held-out fields (no memorisation) the
    fraction f of samples with d < t has mean p₀ = k/(n_h + 1) and variance
    p₀(1 − p₀)(1/n_s + 1/(n_h + 2)) (binomial given t, plus the Beta spread of t itself).
    ``memorised`` is True when f > p₀ + z·std. Returns a JSON-serialisable dict of floats and bools:
    ``fraction_below``, ``expected_fraction``, ``fraction_std``, ``threshold``, ``memorised``,
    quantiles of both distance sets (``samples_to_train``, ``held_out_to_train``), the median ratio
    and the per-sample distances.

    ``held_out_to_train`` / ``samples_to_train``: those distances when already computed (the held-out
    ones do not depend on the samples: a comparison of several models computes them once); they must
    be :func:`nearest_neighbour_distances` of the same sets and ``symmetries``.
    """
    if not 0.0 < quantile < 1.0:
        raise ParameterError(f"quantile must be in (0, 1); got {quantile}")
    sym = check_symmetries(symmetries)
    given = {"samples_to_train": (samples_to_train, samples), "held_out_to_train": (held_out_to_train, held_out)}
    for name, (nn, x) in given.items():
        if nn is not None and len(nn.distance) != len(x):
            raise InputError(f"{name} has {len(nn.distance)} distances for {len(x)} fields")
    s = nearest_neighbour_distances(samples, train, symmetries=sym) if samples_to_train is None else samples_to_train
    h = nearest_neighbour_distances(held_out, train, symmetries=sym) if held_out_to_train is None else held_out_to_train
    n_s, n_h = len(s.distance), len(h.distance)
    k = max(1, math.ceil(quantile * n_h))
    threshold = float(np.sort(h.distance)[k - 1])
    frac = float(np.mean(s.distance < threshold))
    p0 = k / (n_h + 1)
    std = math.sqrt(p0 * (1 - p0) * (1.0 / n_s + 1.0 / (n_h + 2)))
    med_h = float(np.median(h.distance))
    return {
        "symmetries": list(sym), "n_samples": n_s, "n_held_out": n_h, "quantile": quantile,
        "threshold": threshold, "fraction_below": frac, "expected_fraction": p0, "fraction_std": std,
        "z": z, "memorised": bool(frac > p0 + z * std),
        "median_ratio": float(np.median(s.distance) / med_h) if med_h > 0 else 0.0,
        "samples_to_train": _quantiles(s.distance), "held_out_to_train": _quantiles(h.distance),
        "sample_distances": s.distance.tolist(), "held_out_distances": h.distance.tolist(),
    }
