"""Metropolis-adjusted Langevin (MALA): a ULA proposal corrected by a Metropolis–Hastings test.

Proposal ``y = x − ε∇U(x) + √(2ε) ξ``, i.e. ``q(y|x) = N(x − ε∇U(x), 2ε I)``; accept with
``α = min(1, exp(−U(y) + U(x) − |x − y + ε∇U(y)|²/(4ε) + |y − x + ε∇U(x)|²/(4ε)))``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._rng import standard_normal
from .langevin import _init, _is_divergent, _per_chain, _select, _sum_event

__all__ = ["MALAState", "MALAInfo", "mala_init", "mala_step", "mala_transition"]


class MALAState(NamedTuple):
    position: jax.Array  # (C, *event)
    energy: jax.Array    # (C,)
    grad: jax.Array      # (C, *event)


class MALAInfo(NamedTuple):
    acceptance_rate: jax.Array  # (C,) min(1, α) of the proposal (0 if divergent)
    is_accepted: jax.Array      # (C,) bool
    energy: jax.Array           # (C,) energy after the step
    divergent: jax.Array        # (C,) bool: −log α not finite or > max(DIVERGENCE_THRESHOLD, dof)


def mala_init(position, energy) -> MALAState:
    """Start MALA at ``position`` ``(C, *event)``."""
    return MALAState(*_init(position, energy))


@jax.jit
def mala_step(key, state: MALAState, energy, *, step_size) -> tuple[MALAState, MALAInfo]:
    """One MALA step per chain (independent proposals and accept tests; ε scalar or ``(C,)``)."""
    return mala_transition(key, state, energy.value_and_grad, step_size)


def mala_transition(key, state: MALAState, value_and_grad, step_size) -> tuple[MALAState, MALAInfo]:
    """The MALA step for any batched ``value_and_grad(x) -> (U (C,), ∇U (C, *event))`` (not jitted).

    The traceable core of :func:`mala_step`, for callers whose energy closes over arrays (e.g. the
    conditioning field of a conditional energy) and so cannot be a static ``Energy``: call it inside
    your own ``jit`` / ``lax.scan``.
    """
    key_noise, key_accept = jax.random.split(key)
    x, u, g = state
    eps = _per_chain(step_size, x)
    # the samplers' exact fast N(0, 1) and, for φ⁴, the roll-free stencil (see hmc.py)
    noise = standard_normal(key_noise, x.shape, x.dtype)
    y = x - eps * g + jnp.sqrt(2.0 * eps) * noise
    u_y, g_y = value_and_grad(y)
    # log q(x|y) − log q(y|x); the forward residual y − x + ε∇U(x) is exactly √(2ε)ξ.
    forward = _sum_event(noise * noise) * 0.5
    backward_res = x - y + eps * g_y
    backward = _sum_event(backward_res * backward_res / (4.0 * eps))
    log_alpha = u - u_y - backward + forward
    divergent = _is_divergent(-log_alpha, x)
    log_u = jnp.log(jax.random.uniform(key_accept, u.shape, u.dtype))
    accepted = (log_u < log_alpha) & ~divergent
    acceptance = jnp.where(divergent, 0.0, jnp.exp(jnp.minimum(log_alpha, 0.0)))
    new_state = MALAState(_select(accepted, y, x), jnp.where(accepted, u_y, u),
                          _select(accepted, g_y, g))
    return new_state, MALAInfo(acceptance, accepted, new_state.energy, divergent)
