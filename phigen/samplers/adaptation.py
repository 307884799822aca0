"""Step-size adaptation by dual averaging on log ε (Nesterov 2009; Hoffman & Gelman 2014, §3.2).

With ``H_t = δ − α_t`` (target minus observed acceptance) and ``t = 1, 2, …``:
``H̄_t = (1 − 1/(t+t₀)) H̄_{t−1} + H_t/(t+t₀)``, ``log ε_t = μ − (√t/γ) H̄_t``,
``log ε̄_t = t^{−κ} log ε_t + (1 − t^{−κ}) log ε̄_{t−1}``, with ``μ = log(10 ε₀)``, γ = 0.05,
t₀ = 10, κ = 0.75. The sampler runs with ε_t; the adapted step size is ε̄ after the last step.

For HMC the number of leapfrog steps can follow the step size so that ``ε · n ≈ trajectory_length``
(default 1.0: for φ⁴ in hopping form the site "frequencies" √(∂²S/∂φ²) are O(1)–O(2.5), so unit
length spans about a quarter period of the stiff modes and ~1/6 of the soft ones; 1.0–1.5 is the
useful range; longer helps the k = 0 mode near criticality at proportional cost).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ..energies.base import Energy
from ..errors import DivergenceError, ParameterError
from .hmc import hmc_init, hmc_step
from .langevin import _as_position
from .mala import mala_init, mala_step
from .sharding import gather_chains

__all__ = ["AdaptationInfo", "adapt_step_size", "DEFAULT_TARGET_ACCEPTANCE", "dual_averaging_update", "DualAveragingState"]

DEFAULT_TARGET_ACCEPTANCE = {"mala": 0.574, "hmc": 0.8}

_GAMMA, _T0, _KAPPA = 0.05, 10.0, 0.75


class AdaptationInfo(NamedTuple):
    step_size: jax.Array        # (n_warmup,) or (n_warmup, C): ε_t used at each warm-up step
    acceptance_rate: jax.Array  # (n_warmup,) chain-mean acceptance at each step
    n_divergent: jax.Array      # (n_warmup,) divergent chains at each step
    n_leapfrog: jax.Array       # (n_warmup,) leapfrog steps used (1 for MALA)
    final_n_leapfrog: int       # the n_leapfrog to sample with afterwards (1 for MALA)
    target_acceptance: float


class DualAveragingState(NamedTuple):
    log_step: jax.Array
    log_step_bar: jax.Array
    h_bar: jax.Array
    mu: jax.Array


def dual_averaging_update(da: DualAveragingState, t, acceptance, target):
    """One dual-averaging update at iteration ``t`` (1-based) given the observed ``acceptance``."""
    eta = 1.0 / (t + _T0)
    h_bar = (1.0 - eta) * da.h_bar + eta * (target - acceptance)
    log_step = da.mu - jnp.sqrt(t) / _GAMMA * h_bar
    w = t ** (-_KAPPA)
    log_step_bar = w * log_step + (1.0 - w) * da.log_step_bar
    return DualAveragingState(log_step, log_step_bar, h_bar, da.mu)


def _n_for_length(step_size, trajectory_length, max_leapfrog):
    # Shared n for all chains: take the smallest step so every chain covers at least the length.
    n = jnp.round(trajectory_length / jnp.min(step_size))
    return jnp.clip(jnp.nan_to_num(n, nan=max_leapfrog, posinf=max_leapfrog), 1, max_leapfrog).astype(jnp.int32)


def _chain_mean_and_count(acceptance, divergent, whole):
    """``(mean acceptance, number of divergent chains)`` over all C chains, the mean summed strictly
    in chain order (a sequential scan), so it is the same float however the chains are laid out.
    ``whole`` (chains split over several devices or processes): first gather both (C,) vectors onto
    every device, packed into one array — ONE collective per warm-up step. A plain ``jnp.mean`` is
    not layout-proof: XLA sums it in partial sums per device, and even on one device its order
    depends on what the reduction is fused with (measured: ε of a 64² φ⁴ warm-up split over 2
    processes differed in the 7th digit from one process)."""
    both = jnp.stack([acceptance.astype(jnp.float32), divergent.astype(jnp.float32)])
    if whole is not None:
        both = jax.lax.with_sharding_constraint(both, whole)
    total, _ = jax.lax.scan(lambda acc, v: (acc + v, None), jnp.zeros((), jnp.float32), both[0])
    return total / both.shape[1], jnp.sum(both[1]).astype(jnp.int32)


@partial(jax.jit, static_argnames=("kind", "n_warmup", "per_chain", "follow_length", "whole"))
def _adapt_core(key, position, *, kind, energy, n_warmup, per_chain, follow_length, target,
                initial_step_size, n_leapfrog, trajectory_length, max_leapfrog, jitter, whole=None):
    n_chains = position.shape[0]
    shape = (n_chains,) if per_chain else ()
    log0 = jnp.full(shape, jnp.log(initial_step_size), jnp.float32)
    da = DualAveragingState(log0, log0, jnp.zeros(shape, jnp.float32), log0 + jnp.log(10.0))
    state = (hmc_init if kind == "hmc" else mala_init)(position, energy)

    def one(carry, inputs):
        state, da = carry
        key, t = inputs
        step_size = jnp.exp(da.log_step)
        if kind == "hmc":
            n = (_n_for_length(step_size, trajectory_length, max_leapfrog) if follow_length
                 else jnp.asarray(n_leapfrog, jnp.int32))
            state, info = hmc_step(key, state, energy, step_size=step_size, n_leapfrog=n, jitter=jitter)
        else:
            n = jnp.asarray(1, jnp.int32)
            state, info = mala_step(key, state, energy, step_size=step_size)
        acc_mean, n_div = _chain_mean_and_count(info.acceptance_rate, info.divergent, whole)
        acc = info.acceptance_rate if per_chain else acc_mean
        da = dual_averaging_update(da, t, acc, target)
        trace = (step_size, acc_mean, n_div, n)
        return (state, da), trace

    keys = jax.random.split(key, n_warmup)
    ts = jnp.arange(1, n_warmup + 1, dtype=jnp.float32)
    (state, da), trace = jax.lax.scan(one, (state, da), (keys, ts))
    return state, jnp.exp(da.log_step_bar), trace


def adapt_step_size(key, kernel_kind: str, energy: Energy, position, *, n_warmup: int,
                    target_acceptance: float | None = None, n_leapfrog: int | None = None,
                    trajectory_length: float = 1.0, max_leapfrog: int = 200, jitter: float = 0.2,
                    initial_step_size: float = 0.1, per_chain: bool = False,
                    min_step_size: float = 1e-6):
    """Warm up ``kernel_kind`` ∈ {"mala", "hmc"} from ``position`` ``(C, *event)`` and adapt ε.

    Runs ``n_warmup`` steps in one jitted ``lax.scan`` with dual averaging on log ε, driven by
    the chain-mean acceptance (one shared ε, the default) or by each chain's own acceptance
    (``per_chain=True``, ε of shape ``(C,)``). Targets: 0.574 for MALA, 0.8 for HMC.

    HMC: with ``n_leapfrog=None`` (default) the number of leapfrog steps follows the step size,
    ``n = round(trajectory_length / ε)`` clipped to ``[1, max_leapfrog]``; pass an int to fix it.

    Returns ``(state, step_size, AdaptationInfo)``: the warmed-up state, the adapted ε̄ (scalar
    or ``(C,)``) and the traces. ``info.final_n_leapfrog`` is the n to sample with afterwards.
    Raises DivergenceError (naming the step size) if the adaptation collapses: ε̄ not finite or
    below ``min_step_size``, or no proposal at all accepted in the last quarter of the warm-up.
    """
    if kernel_kind == "ula":
        raise ParameterError("ULA has no accept/reject step, so it has no acceptance rate to adapt; "
                             "choose its step size from its O(step) bias, or use 'mala'")
    if kernel_kind not in DEFAULT_TARGET_ACCEPTANCE:
        raise ParameterError(f"unknown kernel kind {kernel_kind!r}; adaptation supports 'mala' and 'hmc'")
    if not isinstance(energy, Energy):
        raise ParameterError(f"energy must be a phigen Energy; got {type(energy).__name__}")
    if int(n_warmup) != n_warmup or n_warmup < 20:
        raise ParameterError(f"n_warmup must be an integer >= 20; got {n_warmup!r}")
    target = DEFAULT_TARGET_ACCEPTANCE[kernel_kind] if target_acceptance is None else float(target_acceptance)
    if not 0.0 < target < 1.0:
        raise ParameterError(f"target_acceptance must be in (0, 1); got {target_acceptance!r}")
    if not (math.isfinite(initial_step_size) and initial_step_size > 0):
        raise ParameterError(f"initial_step_size must be > 0; got {initial_step_size!r}")
    if not (math.isfinite(trajectory_length) and trajectory_length > 0):
        raise ParameterError(f"trajectory_length must be > 0; got {trajectory_length!r}")
    if n_leapfrog is not None and (int(n_leapfrog) != n_leapfrog or n_leapfrog < 1):
        raise ParameterError(f"n_leapfrog must be an integer >= 1 or None; got {n_leapfrog!r}")
    if int(max_leapfrog) != max_leapfrog or max_leapfrog < 1:
        raise ParameterError(f"max_leapfrog must be an integer >= 1; got {max_leapfrog!r}")
    if not 0.0 <= jitter < 1.0:
        raise ParameterError(f"jitter must be in [0, 1); got {jitter!r}")

    x = _as_position(position)
    sharding = getattr(x, "sharding", None)
    whole = (NamedSharding(sharding.mesh, PartitionSpec())
             if isinstance(sharding, NamedSharding) and sharding.mesh.size > 1 else None)
    follow_length = kernel_kind == "hmc" and n_leapfrog is None
    state, step_size, (eps_trace, acc_trace, div_trace, n_trace) = _adapt_core(
        key, x, kind=kernel_kind, energy=energy, n_warmup=int(n_warmup), per_chain=bool(per_chain),
        follow_length=follow_length, target=target, initial_step_size=float(initial_step_size),
        n_leapfrog=1 if n_leapfrog is None else int(n_leapfrog),
        trajectory_length=float(trajectory_length), max_leapfrog=int(max_leapfrog), jitter=float(jitter),
        whole=whole)

    eps = gather_chains(step_size)  # per-chain ε split over processes: all of them
    tail = slice(3 * int(n_warmup) // 4, None)
    tail_acceptance = float(np.mean(np.asarray(acc_trace)[tail]))
    tail_divergent = float(np.mean(np.asarray(div_trace)[tail])) / x.shape[0]
    collapsed = (not np.all(np.isfinite(eps))) or bool(np.any(eps < min_step_size))
    if collapsed or tail_acceptance == 0.0:
        why = (f"step size reached {np.min(eps):.3g} (started at {initial_step_size:.3g}, floor {min_step_size:.3g})"
               if collapsed else
               f"no proposal accepted in the last quarter of the warm-up at step size {np.min(eps):.3g} "
               f"(started at {initial_step_size:.3g}; {100 * tail_divergent:.0f}% of proposals divergent)")
        raise DivergenceError(f"{kernel_kind} step-size adaptation collapsed: {why}; the energy is "
                              "non-finite or far too stiff around the starting position")

    if kernel_kind == "hmc":
        final_n = (int(_n_for_length(step_size, trajectory_length, int(max_leapfrog)))
                   if follow_length else int(n_leapfrog))
    else:
        final_n = 1
    info = AdaptationInfo(eps_trace, acc_trace, div_trace, n_trace, final_n, target)
    return state, step_size, info
