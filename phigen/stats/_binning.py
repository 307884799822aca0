"""Private helpers: Fourier grids and isotropic (shell) binning shared by the statistics.

Conventions used everywhere in phigen.stats:
- wavenumbers are in radians per pixel, ``k = 2π m / L`` with ``m`` from ``numpy.fft.fftfreq``
  (FFT layout: the zero mode at index 0, negative frequencies in the second half);
- the default shell width is the coarser fundamental ``Δk = 2π / min(H, W)``.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ParameterError


def parse_size(size) -> tuple[int, int]:
    """``size`` as an int ``L`` (square) or a pair ``(H, W)`` -> ``(H, W)``; both at least 2."""
    if np.ndim(size) == 0:
        h = w = size
    else:
        if len(size) != 2:
            raise ParameterError(f"size must be an int or a pair (H, W); got {size!r}")
        h, w = size
    try:
        h_i, w_i = int(h), int(w)
    except (TypeError, ValueError):
        raise ParameterError(f"size must be integers; got {size!r}") from None
    if h_i != h or w_i != w or h_i < 2 or w_i < 2:
        raise ParameterError(f"size must be integers >= 2; got {size!r}")
    return h_i, w_i


def fourier_axes(shape) -> tuple[np.ndarray, np.ndarray]:
    """Wavenumbers ``(ky (H,1), kx (1,W))`` in rad/pixel, FFT layout, float64."""
    h, w = shape
    ky = 2.0 * np.pi * np.fft.fftfreq(h)[:, None]
    kx = 2.0 * np.pi * np.fft.fftfreq(w)[None, :]
    return ky, kx


def wavenumber_grid(shape) -> np.ndarray:
    """``|k| = sqrt(kx² + ky²)`` on the full FFT grid, shape ``(H, W)``, rad/pixel, float64."""
    ky, kx = fourier_axes(shape)
    return np.sqrt(ky**2 + kx**2)


def fundamental(shape) -> float:
    """Default shell width ``Δk = 2π / min(H, W)``."""
    return 2.0 * np.pi / min(shape)


def shell_edges(k_max: float, dk: float, n_bins, log_bins: bool) -> np.ndarray:
    """Bin edges covering ``[Δk/2, k_max]`` (every non-zero mode falls in a bin).

    Linear, ``n_bins=None``: unit shells ``[(i-½)Δk, (i+½)Δk)``, i = 1, 2, ... (integer shells).
    Linear with ``n_bins``: ``n_bins`` equal bins over the same range.
    Log: ``n_bins`` (default 4 per octave) geometric bins over the same range.
    """
    n_shells = int(np.floor(k_max / dk + 0.5))
    hi = (n_shells + 0.5) * dk
    lo = 0.5 * dk
    if n_bins is None:
        if not log_bins:
            return (np.arange(n_shells + 1) + 0.5) * dk
        n_bins = max(1, int(np.ceil(4.0 * np.log2(hi / lo))))
    n_bins = int(n_bins)
    if n_bins < 1:
        raise ParameterError(f"n_bins must be >= 1; got {n_bins}")
    if log_bins:
        return np.geomspace(lo, hi, n_bins + 1)
    return np.linspace(lo, hi, n_bins + 1)


def assign_bins(values: np.ndarray, edges: np.ndarray):
    """Bin index of each value (``edges[j] <= v < edges[j+1]``); values outside get ``len(edges)-1``.

    Returns ``(index (size,) int32, n_bins)``; index ``n_bins`` is the discard bin.
    """
    n_bins = len(edges) - 1
    idx = np.searchsorted(edges, values.ravel(), side="right") - 1
    idx = np.where((idx < 0) | (idx >= n_bins), n_bins, idx)
    return idx.astype(np.int32), n_bins


@partial(jax.jit, static_argnames=("n_bins",))
def bin_sums(grid, index, n_bins: int):
    """Sum ``grid (N, H, W)`` over the modes of each bin -> ``(N, n_bins)`` (discard bin dropped)."""
    flat = grid.reshape(grid.shape[0], -1)
    out = jnp.zeros((grid.shape[0], n_bins + 1), dtype=flat.dtype)
    out = out.at[:, index].add(flat)
    return out[:, :n_bins]


class ShellBinning:
    """Precomputed isotropic binning of an ``(H, W)`` grid of distances (or wavenumbers).

    Attributes: ``centers`` (nb,) mean distance of the members of each non-empty bin,
    ``counts`` (nb,), ``index`` (H*W,) int32 into the non-empty bins (``nb`` = discarded).
    """

    def __init__(self, radius: np.ndarray, edges: np.ndarray):
        idx, n_all = assign_bins(radius, edges)
        counts_all = np.bincount(idx, minlength=n_all + 1)[:n_all]
        keep = counts_all > 0
        # renumber so that empty bins disappear (their average would be undefined)
        remap = np.full(n_all + 1, int(keep.sum()), dtype=np.int32)
        remap[np.flatnonzero(keep)] = np.arange(int(keep.sum()), dtype=np.int32)
        self.index = remap[idx]
        self.n_bins = int(keep.sum())
        self.counts = counts_all[keep].astype(np.int64)
        sums = np.bincount(self.index, weights=radius.ravel(), minlength=self.n_bins + 1)[: self.n_bins]
        self.centers = sums / self.counts
        self.edges = edges

    def average(self, grid):
        """Bin average of ``grid (N, H, W)`` -> ``(N, nb)`` JAX array."""
        sums = bin_sums(grid, jnp.asarray(self.index), self.n_bins)
        return sums / jnp.asarray(self.counts, dtype=sums.dtype)


@lru_cache(maxsize=64)
def fourier_binning(shape: tuple[int, int], n_bins=None, log_bins: bool = False) -> ShellBinning:
    """Isotropic binning of the FFT grid of ``shape``; k = 0 is excluded from every bin."""
    kmag = wavenumber_grid(shape)
    dk = fundamental(shape)
    edges = shell_edges(float(kmag.max()), dk, n_bins, log_bins)
    edges[-1] *= 1.0 + 1e-9  # the corner mode sits on the top edge for some n_bins
    return ShellBinning(kmag, edges)
