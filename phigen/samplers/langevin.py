"""Unadjusted Langevin algorithm (ULA): ``x' = x − ε∇U(x) + √(2ε) ξ``, ξ ~ N(0, 1).

ULA has no Metropolis test, so its stationary law is biased at O(ε): for a quadratic
``U = ½ xᵀAx`` it is Gaussian with covariance ``(A(I − εA/2))⁻¹``. Use a small ε or MALA.

This module also holds the small batch helpers shared by the MALA and HMC modules.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..errors import InputError

__all__ = ["ULAState", "ULAInfo", "ula_init", "ula_step", "DIVERGENCE_THRESHOLD"]

#: A proposal whose energy error (ΔH for HMC, −log acceptance ratio for MALA, energy increase
#: for ULA) exceeds ``max(DIVERGENCE_THRESHOLD, number of degrees of freedom)``, or is not finite,
#: is flagged ``divergent`` and rejected. Scaling with the field size matters: from a random start
#: on a 256² lattice a healthy first proposal can move the energy by thousands, which is a rejected
#: proposal, not a runaway integrator.
DIVERGENCE_THRESHOLD = 1000.0


class ULAState(NamedTuple):
    position: jax.Array  # (C, *event)
    energy: jax.Array    # (C,)
    grad: jax.Array      # (C, *event)


class ULAInfo(NamedTuple):
    energy: jax.Array     # (C,) energy after the step
    divergent: jax.Array  # (C,) bool: the step blew up and was rejected


# --- shared helpers ------------------------------------------------------------------------------
def _as_position(position):
    x = jnp.asarray(position)
    if x.ndim < 1:
        raise InputError(f"position must have a leading chain axis (C, *event); got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _per_chain(value, x):
    """Broadcast a scalar or per-chain ``(C,)`` parameter against a batch ``x`` of shape ``(C, *event)``."""
    v = jnp.asarray(value, dtype=x.dtype)
    if v.ndim != 1:  # a scalar, or already broadcastable
        return v
    return v.reshape(v.shape + (1,) * (x.ndim - 1))


def _sum_event(a):
    """Sum over every axis but the leading chain axis: ``(C, *event) -> (C,)``."""
    return jnp.sum(a, axis=tuple(range(1, a.ndim)))


def _select(mask, new, old):
    """Per-chain ``where`` for batched arrays (mask of shape ``(C,)``)."""
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


def _init(position, energy):
    x = _as_position(position)
    u, g = energy.value_and_grad(x)
    return x, u, g


def _is_divergent(energy_error, x):
    """Non-finite, or larger than max(DIVERGENCE_THRESHOLD, dof per chain) (``x`` is (C, *event))."""
    n_dof = 1
    for d in x.shape[1:]:
        n_dof *= int(d)
    return ~jnp.isfinite(energy_error) | (energy_error > max(DIVERGENCE_THRESHOLD, float(n_dof)))


# --- ULA -----------------------------------------------------------------------------------------
def ula_init(position, energy) -> ULAState:
    """Start ULA at ``position`` ``(C, *event)``: evaluates ``U`` ``(C,)`` and ``∇U``."""
    return ULAState(*_init(position, energy))


@jax.jit
def ula_step(key, state: ULAState, energy, *, step_size) -> tuple[ULAState, ULAInfo]:
    """One ULA step for every chain: ``x' = x − ε∇U(x) + √(2ε) ξ``.

    ``step_size`` ε is a scalar or a per-chain ``(C,)`` array. A chain whose new energy is not
    finite, or rose by more than ``max(DIVERGENCE_THRESHOLD, dof)``, keeps its old state and is flagged
    ``divergent`` (NaN never enters the state).
    """
    x = state.position
    eps = _per_chain(step_size, x)
    noise = jax.random.normal(key, x.shape, x.dtype)
    x_new = x - eps * state.grad + jnp.sqrt(2.0 * eps) * noise
    u_new, g_new = energy.value_and_grad(x_new)
    divergent = _is_divergent(u_new - state.energy, x)
    keep = ~divergent
    new_state = ULAState(_select(keep, x_new, x), jnp.where(keep, u_new, state.energy),
                         _select(keep, g_new, state.grad))
    return new_state, ULAInfo(new_state.energy, divergent)
