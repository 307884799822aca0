"""Flow-based MCMC (Albergo, Kanwar and Shanahan 2019): independence Metropolis–Hastings with
proposals drawn from a normalizing flow q, exact for the Gibbs target ``p ∝ exp(−U)``.

Each step draws ``x' ~ q`` for every chain and accepts with

    min(1, w(x')/w(x)),   log w(x) = −U(x) − log q(x),

so ``exp(−U)`` is invariant whatever q is; the closer q is to p the higher the acceptance (1 for
q = p). The same weights give reweighted estimates ``⟨O⟩ = Σ w_i O_i / Σ w_i`` from independent
flow draws, and their effective sample size ``ESS/N = (Σ w)² / (N Σ w²)``.

The kernel follows the sampler contract (``init(position) -> FlowMHState``, ``step(key, state) ->
(state, FlowMHInfo)``, all chains at once; ``step`` a :class:`jax.tree_util.Partial` over the flow
and the energy, so the runner compiles once per shape), runs in :func:`phigen.samplers.run_chain`
with its checkpoints, and composes with HMC or HMC + Swendsen–Wang by
:func:`phigen.samplers.compose_kernels`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from ..energies.base import Energy
from ..errors import InputError, ParameterError
from ..samplers.kernels import Kernel
from .flow import Flow, flow_log_prob, flow_sample

__all__ = ["FlowMHState", "FlowMHInfo", "flow_mh_init", "flow_mh_step", "make_flow_mh_kernel", "log_weights",
           "effective_sample_size_fraction", "reweighted_mean"]


class FlowMHState(NamedTuple):
    position: jax.Array  # (C, H, W)
    energy: jax.Array    # (C,) U(x)
    log_q: jax.Array     # (C,) log q(x)


class FlowMHInfo(NamedTuple):
    acceptance_rate: jax.Array  # (C,) min(1, w'/w)
    is_accepted: jax.Array      # (C,) bool
    energy: jax.Array           # (C,) U after the step
    divergent: jax.Array        # (C,) bool: a proposal with non-finite U or log q (rejected)
    log_weight: jax.Array       # (C,) log w of the proposal (−U − log q)


def _check(flow, energy):
    if not isinstance(flow, Flow):
        raise ParameterError(f"flow must be a phigen.flows.Flow; got {type(flow).__name__}")
    if not isinstance(energy, Energy):
        raise ParameterError(f"energy must be a phigen Energy; got {type(energy).__name__}")


def flow_mh_init(position, flow: Flow, energy: Energy) -> FlowMHState:
    """Start at ``position`` ``(C, H, W)`` (its energy and flow density computed once)."""
    x = jnp.asarray(position, jnp.float32)
    if x.ndim != 3 or tuple(x.shape[1:]) != tuple(flow.shape):
        raise InputError(f"flow-MH chains need positions (C, {flow.shape[0]}, {flow.shape[1]}); got {x.shape}")
    return FlowMHState(x, energy.value(x), flow_log_prob(flow, x))


@jax.jit
def _step(key, state: FlowMHState, flow: Flow, energy: Energy):
    n = state.position.shape[0]
    k_prop, k_acc = jax.random.split(key)
    x_new, logq_new = flow_sample(flow, k_prop, n)
    u_new = energy.value(x_new)
    logw_new = -u_new - logq_new
    logw_old = -state.energy - state.log_q
    ok = jnp.isfinite(logw_new)
    log_ratio = jnp.where(ok, logw_new - logw_old, -jnp.inf)
    acc = jnp.exp(jnp.minimum(log_ratio, 0.0))
    accept = jax.random.uniform(k_acc, (n,)) < acc
    pos = jnp.where(accept[:, None, None], x_new, state.position)
    u = jnp.where(accept, u_new, state.energy)
    logq = jnp.where(accept, logq_new, state.log_q)
    return FlowMHState(pos, u, logq), FlowMHInfo(acc, accept, u, ~ok, jnp.where(ok, logw_new, -jnp.inf))


def flow_mh_step(key, state: FlowMHState, flow: Flow, energy: Energy):
    """One independence-MH step for all chains: ``(FlowMHState, FlowMHInfo)``."""
    return _step(key, state, flow, energy)


def make_flow_mh_kernel(flow: Flow, energy: Energy) -> Kernel:
    """:class:`~phigen.samplers.Kernel` ``(init, step)`` of flow-MH on ``energy`` with proposals from ``flow``."""
    _check(flow, energy)
    return Kernel(Partial(_flow_init, flow, energy), Partial(_flow_kernel_step, flow, energy))


def _flow_init(flow, energy, position):
    return flow_mh_init(position, flow, energy)


def _flow_kernel_step(flow, energy, key, state):
    return _step(key, state, flow, energy)


@functools.partial(jax.jit, static_argnums=3)
def _draw_weights(flow, energy, key, n):
    x, logq = flow_sample(flow, key, n)
    return x, -energy.value(x) - logq


def log_weights(flow: Flow, energy: Energy, *, key, n: int, batch: int = 256):
    """``(x (n, H, W), log w (n,))``: independent flow draws and ``log w = −U − log q`` (in batches)."""
    _check(flow, energy)
    xs, ws = [], []
    for i, start in enumerate(range(0, int(n), batch)):
        x, lw = _draw_weights(flow, energy, jax.random.fold_in(key, i), min(batch, int(n) - start))
        xs.append(np.asarray(x))
        ws.append(np.asarray(lw, np.float64))
    return np.concatenate(xs), np.concatenate(ws)


def effective_sample_size_fraction(log_w) -> float:
    """``ESS/N = (Σ w)² / (N Σ w²)`` of importance weights given as ``log w`` (any common offset)."""
    lw = np.asarray(log_w, np.float64)
    lw = lw[np.isfinite(lw)] if np.isfinite(lw).any() else lw
    if lw.size == 0:
        raise InputError("no weights")
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / (lw.size * np.sum(w * w)))


def reweighted_mean(values, log_w) -> tuple[float, float]:
    """Self-normalised importance-sampling mean of ``values`` (n,) and its delta-method standard error."""
    v = np.asarray(values, np.float64)
    w = np.exp(np.asarray(log_w, np.float64) - np.max(log_w))
    w = w / w.sum()
    mean = float(np.sum(w * v))
    return mean, float(np.sqrt(np.sum(w * w * (v - mean) ** 2)))
