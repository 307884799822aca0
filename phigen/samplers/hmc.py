"""Hamiltonian Monte Carlo with a leapfrog integrator, unit mass, batched over chains.

``H(x, p) = U(x) + ½|p|²``, ``p ~ N(0, I)``. Leapfrog with step ε, n steps:
``p ← p − ε/2 ∇U; n × { x ← x + ε p; p ← p − ε ∇U }`` (last kick halved); accept per chain with
``min(1, exp(−ΔH))``.

Speed notes (measured with ``benchmarks/mcmc_throughput.py``):

* the whole trajectory is one ``lax.fori_loop`` inside one jit; the loop body needs the force
  alone; the energy is evaluated once, at the end, with the final force;
* momenta come from :mod:`phigen.samplers._rng` (unrolled Threefry + inverse CDF in one fused loop,
  both hash words used; exact N(0, 1)), 2–3× cheaper than ``jax.random.normal`` on CPU;
* for :class:`~phigen.energies.Phi4` on ``(C, H, W)`` the trajectory runs in a flat layout with a
  one-row periodic halo, ``(C, (H+2)·W)``: every neighbour is a contiguous slice (the column wrap is
  two selects), so XLA:CPU vectorises full rows; a roll along the contiguous axis would become
  per-lane gathers. The trajectory is run "kick, drift" (:func:`_phi4_leapfrog_dk`, the same map)
  and each kick-drift pair is one fused pass over the lattice (4.5× the rate of separate passes);
  the fresh momenta have one consumer, the loop, so XLA materialises them once instead of
  re-running the generator inside every fusion that reads them; the energy at the end comes from
  the force, ``S = Σ[½φ ∂S/∂φ − λ(φ⁴ − 1)]``, with no second stencil;
* the momenta depend only on (key, chain, site), so the samples do not depend on how the chains
  are split over devices.

Trajectory-length jitter: every step draws ``n = round(n_leapfrog · (1 + jitter · u))``,
``u ~ U(−1, 1)``, at least 1, the SAME n for all chains. Randomising n breaks the resonances of
fixed-length HMC on nearly harmonic modes (the GFF modes are exactly harmonic); sharing it keeps
the batch in one loop with no masking.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..energies.phi4 import Phi4
from ._rng import chain_block_normal
from .langevin import _init, _is_divergent, _per_chain, _select, _sum_event

__all__ = ["HMCState", "HMCInfo", "hmc_init", "hmc_step", "jittered_n_leapfrog", "leapfrog"]

class HMCState(NamedTuple):
    position: jax.Array  # (C, *event)
    energy: jax.Array    # (C,)
    grad: jax.Array      # (C, *event)


class HMCInfo(NamedTuple):
    acceptance_rate: jax.Array  # (C,) min(1, exp(−ΔH)) (0 if divergent)
    is_accepted: jax.Array      # (C,) bool
    energy: jax.Array           # (C,) energy after the step
    divergent: jax.Array        # (C,) bool: ΔH not finite or > max(DIVERGENCE_THRESHOLD, dof)
    n_leapfrog: jax.Array       # () int32: leapfrog steps of this trajectory (shared by all chains)


def hmc_init(position, energy) -> HMCState:
    """Start HMC at ``position`` ``(C, *event)``."""
    return HMCState(*_init(position, energy))


def jittered_n_leapfrog(key, n_leapfrog, jitter):
    """``max(1, round(n_leapfrog · (1 + jitter · u)))`` with ``u ~ U(−1, 1)``; one draw for all chains."""
    u = jax.random.uniform(key, (), jnp.float32, -1.0, 1.0)
    n = jnp.round(jnp.asarray(n_leapfrog, jnp.float32) * (1.0 + jnp.asarray(jitter, jnp.float32) * u))
    return jnp.maximum(n, 1.0).astype(jnp.int32)


# --- φ⁴ fast path: the periodic stencil without rolls along the contiguous axis -------------------
def _is_phi4_lattice(energy, x) -> bool:
    return isinstance(energy, Phi4) and x.ndim == 3 and x.shape[-1] >= 3 and x.shape[-2] >= 3


def _flat_eps(eps, n_chains):
    """A step factor (scalar or ``(C, 1, 1)``) in the flat ``(C, H·W)`` layout."""
    eps = jnp.asarray(eps)
    return eps.reshape(n_chains, 1) if eps.ndim == 3 else eps


def _haloed(x_flat, w):
    """``(C, H·W)`` → ``(C, (H+2)·W)``: the last row prepended and the first row appended (periodic
    halo), so every neighbour of every site is a contiguous slice of one array."""
    return jnp.concatenate([x_flat[:, -w:], x_flat, x_flat[:, :w]], axis=1)


def _flat_neighbour_sum(xe, w):
    """Periodic 4-neighbour sum of the haloed flat field ``xe`` ``(C, (H+2)·W)`` → ``(C, H·W)``.

    Up/down neighbours are the slices one row before/after; left/right are the slices one site
    before/after, except on the first/last column, where the wrap-around neighbour (W−1 sites
    away) is selected. Full contiguous rows and two selects vectorise cleanly on XLA:CPU, where a
    roll along the contiguous axis becomes per-lane gathers and 62-wide interior slices leave
    scalar remainders on every row.
    """
    hw = xe.shape[1] - 2 * w
    col = lax.broadcasted_iota(jnp.int32, (1, hw), 1) % w
    left = jnp.where(col == 0, xe[:, 2 * w - 1: hw + 2 * w - 1], xe[:, w - 1: hw + w - 1])
    right = jnp.where(col == w - 1, xe[:, 1: hw + 1], xe[:, w + 1: hw + w + 1])
    return xe[:, :hw] + xe[:, 2 * w:] + left + right


def _phi4_force(phi, n, kappa, lam):
    # the same expression as phigen.energies.phi4._grad
    return -2.0 * kappa * n + 2.0 * phi + 4.0 * lam * (phi * phi - 1.0) * phi


def _flat_force(energy, xe, w):
    hw = xe.shape[1] - 2 * w
    return _phi4_force(xe[:, w: w + hw], _flat_neighbour_sum(xe, w), energy.kappa, energy.lam)


def _phi4_kick(energy, x, p, eps):
    """``p − ε ∇U(x)`` for φ⁴ ``(C, H, W)``; ``eps`` scalar or ``(C, 1, 1)``."""
    c, h, w = x.shape
    g = _flat_force(energy, _haloed(x.reshape(c, h * w), w), w)
    return (p.reshape(c, h * w) - _flat_eps(eps, c) * g).reshape(x.shape)


def _phi4_value_and_grad(energy, x):
    """``(U(x), ∇U(x))`` for φ⁴ with one stencil pass and one reduction.

    The quadratic terms of S are homogeneous of degree 2 and the quartic one differs by λ, so
    ``Σ φ ∂S/∂φ = −2κΣφn + 2Σφ² + 4λΣ(φ²−1)φ²`` gives ``S = Σ [½ φ g − λ(φ⁴ − 1)]`` exactly.
    """
    c, h, w = x.shape
    g = _flat_force(energy, _haloed(x.reshape(c, h * w), w), w).reshape(x.shape)
    x2 = x * x
    return jnp.sum(0.5 * x * g - energy.lam * (x2 * x2 - 1.0), axis=(1, 2)), g


def _kick_fn(energy, x):
    if _is_phi4_lattice(energy, x):
        return partial(_phi4_kick, energy)
    return lambda x, p, eps: p - eps * energy.grad(x)


def _value_and_grad_fn(energy, x):
    if _is_phi4_lattice(energy, x):
        return partial(_phi4_value_and_grad, energy)
    return energy.value_and_grad


# --- leapfrog and the HMC step --------------------------------------------------------------------
def leapfrog(energy, x, p, grad, step_size, n_steps):
    """``n_steps`` (≥ 1) leapfrog steps of size ε (scalar or per-chain ``(C,)``) from ``(x, p)``.

    ``grad`` is ``∇U(x)`` at the start. Returns ``(x, p, U(x), ∇U(x))`` at the end; the energy is
    computed only there, the loop body needs the force alone.
    """
    step_size = _per_chain(step_size, x)
    half = 0.5 * step_size
    kick = _kick_fn(energy, x)
    p = p - half * grad

    def body(_, carry):
        x, p = carry
        x = x + step_size * p
        return x, kick(x, p, step_size)

    x, p = jax.lax.fori_loop(0, n_steps - 1, body, (x, p))
    x = x + step_size * p
    u, g = _value_and_grad_fn(energy, x)(x)
    p = p - half * g
    return x, p, u, g


def _phi4_leapfrog_dk(energy, x, p, eps, n_steps):
    """Leapfrog written "kick, drift" × n then a final half kick: ``p ← p − c_i ε∇U(x); x ← x + εp``
    with c₀ = ½, c_i = 1, then ``p ← p − ε/2 ∇U(x)``; the same map as :func:`leapfrog`.

    Each kick-drift pair is ONE pass over the lattice: the loop carries the field in the haloed
    flat layout of :func:`_flat_neighbour_sum` and a step reads (φ with its halo, p) and writes
    (p, the new haloed φ) — measured 4.5× the rate of separate kick and drift passes at L = 64.
    The force at the start is recomputed from ``x`` so that the freshly drawn momenta enter the loop
    untouched: their only consumer is the loop, and XLA materialises them once instead of re-running
    the random-number generator in every fusion that reads them.
    Returns ``(x, p, U(x), ∇U(x), p_initial)``.
    """
    c, h, w = x.shape
    hw = h * w
    eps = _flat_eps(eps, c)

    def kick_drift(xe, p, step):
        p = p - step * _flat_force(energy, xe, w)
        return _haloed(xe[:, w: w + hw] + eps * p, w), p

    # The half kick is peeled off the loop: a step factor that depends on the loop index stops XLA
    # from updating p in place.
    p_init = p.reshape(c, hw)
    xe, p = kick_drift(_haloed(x.reshape(c, hw), w), p_init, 0.5 * eps)
    xe, p = jax.lax.fori_loop(1, n_steps, lambda _, carry: kick_drift(*carry, eps), (xe, p))
    g = _flat_force(energy, xe, w)
    x = xe[:, w: w + hw]
    x2 = x * x
    u = jnp.sum(0.5 * x * g - energy.lam * (x2 * x2 - 1.0), axis=1)
    p = p - 0.5 * eps * g
    shape = (c, h, w)
    return x.reshape(shape), p.reshape(shape), u, g.reshape(shape), p_init.reshape(shape)


def _trajectory(energy, key_p, n, x, u, g, eps, log_u, chains):
    """One trajectory + accept test for the chains ``chains`` (their rows of every array)."""
    p0 = chain_block_normal(key_p, x.shape, chains, x.dtype)
    if _is_phi4_lattice(energy, x):
        x1, p1, u1, g1, p0 = _phi4_leapfrog_dk(energy, x, p0, eps, n)
    else:
        x1, p1, u1, g1 = leapfrog(energy, x, p0, g, eps, n)
    delta_h = (u1 - u) + 0.5 * (_sum_event(p1 * p1) - _sum_event(p0 * p0))
    divergent = _is_divergent(delta_h, x)
    accepted = (log_u < -delta_h) & ~divergent
    acceptance = jnp.where(divergent, 0.0, jnp.exp(jnp.minimum(-delta_h, 0.0)))
    return (_select(accepted, x1, x), jnp.where(accepted, u1, u), _select(accepted, g1, g),
            acceptance, accepted, divergent)


@partial(jax.jit, static_argnames=("energy",))
def hmc_step(key, state: HMCState, energy, *, step_size, n_leapfrog, jitter=0.2) -> tuple[HMCState, HMCInfo]:
    """One HMC trajectory per chain.

    ``step_size`` ε: scalar or ``(C,)``; ``n_leapfrog``: the mean number of leapfrog steps (int,
    may be traced); ``jitter``: relative half-width of the uniform jitter of n (0 = fixed length).
    Divergent trajectories (ΔH not finite or > ``max(DIVERGENCE_THRESHOLD, dof)``) are rejected.
    """
    key_p, key_n, key_accept = jax.random.split(key, 3)
    x, u, g = state
    n_chains = x.shape[0]
    n = jittered_n_leapfrog(key_n, n_leapfrog, jitter)
    log_u = jnp.log(jax.random.uniform(key_accept, u.shape, u.dtype))
    eps = jnp.broadcast_to(_per_chain(step_size, x), (n_chains,) + (1,) * (x.ndim - 1))
    chains = jnp.arange(n_chains, dtype=jnp.int32)
    out = _trajectory(energy, key_p, n, x, u, g, eps, log_u, chains)
    x_new, u_new, g_new, acceptance, accepted, divergent = out
    new_state = HMCState(x_new, u_new, g_new)
    return new_state, HMCInfo(acceptance, accepted, u_new, divergent, n)
