"""Hamiltonian Monte Carlo with a leapfrog integrator, unit mass, batched over chains.

``H(x, p) = U(x) + ½|p|²``, ``p ~ N(0, I)``. Leapfrog with step ε, n steps:
``p ← p − ε/2 ∇U; n × { x ← x + ε p; p ← p − ε ∇U }`` (last kick halved); accept per chain with
``min(1, exp(−ΔH))``.

Speed notes (measured with ``benchmarks/mcmc_throughput.py``):

* the whole trajectory is one ``lax.fori_loop`` inside one jit; the loop body needs the force
  alone; the energy is evaluated once, at the end, with the final force;
* momenta come from :mod:`phigen.samplers._rng` (unrolled Threefry + inverse CDF in one fused loop,
  both hash words used; exact N(0, 1)), 2–3× cheaper than ``jax.random.normal`` on CPU;
* an energy may own its fast paths (:meth:`~phigen.energies.Energy.kick`,
  :meth:`~phigen.energies.Energy.fused_leapfrog`): :class:`~phigen.energies.Phi4` runs the whole
  trajectory in a flat haloed layout, one fused pass over the lattice per kick-drift pair
  (:mod:`phigen.energies._lattice`); the sampler knows only the :class:`Energy` interface;
* the energy is an ordinary (pytree) argument of the jitted step: its parameters (κ, λ) are traced,
  so one compilation serves every parameter point;
* the momenta depend only on (key, chain, site), so the samples do not depend on how the chains
  are split over devices.

Trajectory-length jitter: every step draws ``n = round(n_leapfrog · (1 + jitter · u))``,
``u ~ U(−1, 1)``, at least 1, the SAME n for all chains. Randomising n breaks the resonances of
fixed-length HMC on nearly harmonic modes (the GFF modes are exactly harmonic); sharing it keeps
the batch in one loop with no masking.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

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


# --- leapfrog and the HMC step --------------------------------------------------------------------
def leapfrog(energy, x, p, grad, step_size, n_steps):
    """``n_steps`` (≥ 1) leapfrog steps of size ε (scalar or per-chain ``(C,)``) from ``(x, p)``.

    ``grad`` is ``∇U(x)`` at the start. Returns ``(x, p, U(x), ∇U(x))`` at the end; the energy is
    computed only there, the loop body needs the force alone.
    """
    step_size = _per_chain(step_size, x)
    half = 0.5 * step_size
    p = p - half * grad

    def body(_, carry):
        x, p = carry
        x = x + step_size * p
        return x, energy.kick(x, p, step_size)

    x, p = jax.lax.fori_loop(0, n_steps - 1, body, (x, p))
    x = x + step_size * p
    u, g = energy.value_and_grad(x)
    p = p - half * g
    return x, p, u, g


def _trajectory(energy, key_p, n, x, u, g, eps, log_u, chains):
    """One trajectory + accept test for the chains ``chains`` (their rows of every array)."""
    p0 = chain_block_normal(key_p, x.shape, chains, x.dtype)
    fused = energy.fused_leapfrog(x)
    if fused is not None:  # the energy's own whole-trajectory fast path (e.g. the φ⁴ lattice)
        x1, p1, u1, g1, p0 = fused(x, p0, eps, n)
    else:
        x1, p1, u1, g1 = leapfrog(energy, x, p0, g, eps, n)
    delta_h = (u1 - u) + 0.5 * (_sum_event(p1 * p1) - _sum_event(p0 * p0))
    divergent = _is_divergent(delta_h, x)
    accepted = (log_u < -delta_h) & ~divergent
    acceptance = jnp.where(divergent, 0.0, jnp.exp(jnp.minimum(-delta_h, 0.0)))
    return (_select(accepted, x1, x), jnp.where(accepted, u1, u), _select(accepted, g1, g),
            acceptance, accepted, divergent)


@jax.jit
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
