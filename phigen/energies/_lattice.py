"""The φ⁴ lattice fast path on ``(C, H, W)``: a flat layout with a one-row periodic halo.

In the layout ``(C, (H+2)·W)`` every neighbour of every site is a contiguous slice (the column wrap
is two selects), so XLA:CPU vectorises full rows, where a roll along the contiguous axis becomes
per-lane gathers. :class:`~phigen.energies.Phi4` uses these for its fused value-and-force, its
momentum kick and its whole leapfrog trajectory (measured with ``benchmarks/mcmc_throughput.py``;
see docs/mcmc.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def flat_eps(eps, n_chains):
    """A step factor (scalar or ``(C, 1, 1)``) in the flat ``(C, H·W)`` layout."""
    eps = jnp.asarray(eps)
    return eps.reshape(n_chains, 1) if eps.ndim == 3 else eps


def haloed(x_flat, w):
    """``(C, H·W)`` → ``(C, (H+2)·W)``: the last row prepended and the first row appended (periodic
    halo), so every neighbour of every site is a contiguous slice of one array."""
    return jnp.concatenate([x_flat[:, -w:], x_flat, x_flat[:, :w]], axis=1)


def flat_neighbour_sum(xe, w):
    """Periodic 4-neighbour sum of the haloed flat field ``xe`` ``(C, (H+2)·W)`` → ``(C, H·W)``.

    Up/down neighbours are the slices one row before/after; left/right are the slices one site
    before/after, except on the first/last column, where the wrap-around neighbour (W−1 sites
    away) is selected. Full contiguous rows and two selects vectorise cleanly on XLA:CPU, where
    62-wide interior slices would leave scalar remainders on every row.
    """
    hw = xe.shape[1] - 2 * w
    col = lax.broadcasted_iota(jnp.int32, (1, hw), 1) % w
    left = jnp.where(col == 0, xe[:, 2 * w - 1: hw + 2 * w - 1], xe[:, w - 1: hw + w - 1])
    right = jnp.where(col == w - 1, xe[:, 1: hw + 1], xe[:, w + 1: hw + w + 1])
    return xe[:, :hw] + xe[:, 2 * w:] + left + right


def flat_force(force, xe, w):
    """``force(φ, n)`` at the sites of the haloed flat field ``xe`` (``n`` its neighbour sum)."""
    hw = xe.shape[1] - 2 * w
    return force(xe[:, w: w + hw], flat_neighbour_sum(xe, w))


def lattice_kick(force, x, p, eps):
    """``p − ε ∇U(x)`` for ``x`` ``(C, H, W)``; ``eps`` scalar or ``(C, 1, 1)``."""
    c, h, w = x.shape
    g = flat_force(force, haloed(x.reshape(c, h * w), w), w)
    return (p.reshape(c, h * w) - flat_eps(eps, c) * g).reshape(x.shape)


def lattice_force(force, x):
    """``∇U(x)`` ``(C, H, W)`` by one flat stencil pass."""
    c, h, w = x.shape
    return flat_force(force, haloed(x.reshape(c, h * w), w), w).reshape(x.shape)


def lattice_leapfrog_kick_drift(force, energy_from_force, x, p, eps, n_steps):
    """Leapfrog written "kick, drift" × n then a final half kick: ``p ← p − c_i ε∇U(x); x ← x + εp``
    with c₀ = ½, c_i = 1, then ``p ← p − ε/2 ∇U(x)``; the same map as the samplers' ``leapfrog``.

    Each kick-drift pair is ONE pass over the lattice: the loop carries the field in the haloed
    flat layout and a step reads (φ with its halo, p) and writes (p, the new haloed φ) — measured
    4.5× the rate of separate kick and drift passes at L = 64. The force at the start is recomputed
    from ``x`` so that freshly drawn momenta enter the loop untouched: their only consumer is the
    loop, and XLA materialises them once instead of re-running the random-number generator in every
    fusion that reads them. ``energy_from_force(x_flat, g_flat) -> U (C,)`` gives the energy at the
    end without a second stencil. Returns ``(x, p, U(x), ∇U(x), p_initial)``.
    """
    c, h, w = x.shape
    hw = h * w
    eps = flat_eps(eps, c)

    def kick_drift(xe, p, step):
        p = p - step * flat_force(force, xe, w)
        return haloed(xe[:, w: w + hw] + eps * p, w), p

    # The half kick is peeled off the loop: a step factor that depends on the loop index stops XLA
    # from updating p in place.
    p_init = p.reshape(c, hw)
    xe, p = kick_drift(haloed(x.reshape(c, hw), w), p_init, 0.5 * eps)
    xe, p = jax.lax.fori_loop(1, n_steps, lambda _, carry: kick_drift(*carry, eps), (xe, p))
    g = flat_force(force, xe, w)
    x = xe[:, w: w + hw]
    u = energy_from_force(x, g)
    p = p - 0.5 * eps * g
    shape = (c, h, w)
    return x.reshape(shape), p.reshape(shape), u, g.reshape(shape), p_init.reshape(shape)
