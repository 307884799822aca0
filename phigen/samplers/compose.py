"""Composition of kernels: one step of ``compose_kernels(k1, k2, …)`` is a step of k1, then of k2, …

Each kernel leaves the target invariant, so their composition does too (no extra accept step).
Kernels keep different states (HMC carries the force, flow-MH the flow density): after each move
the next kernel's state is rebuilt from the position by its ``init`` (one energy evaluation, or one
inverse flow pass, per kernel per step), and the composed state is the first kernel's. E.g.
``compose_kernels(make_flow_mh_kernel(flow, energy), make_hmc_cluster_kernel(energy, …))``: an
independence proposal of the flow, then an HMC trajectory and a Swendsen–Wang sweep.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from ..errors import ParameterError
from .kernels import Kernel

__all__ = ["ComposedInfo", "compose_kernels"]


class ComposedInfo(NamedTuple):
    acceptance_rate: jax.Array  # (C,) the first kernel's acceptance
    divergent: jax.Array        # (C,) bool: any kernel's divergence
    parts: tuple                # each kernel's own info, in order


def _field(info, name):
    if isinstance(info, dict):
        return info.get(name)
    return getattr(info, name, None)


def _composed_step(kernels, key, state):
    infos = []
    keys = jax.random.split(key, len(kernels))
    n = state.position.shape[0]
    divergent = jnp.zeros((n,), bool)
    for i, (k, kernel) in enumerate(zip(keys, kernels)):
        if i:
            state = kernel.init(state.position)
        state, info = kernel.step(k, state)
        infos.append(info)
        div = _field(info, "divergent")
        if div is not None:
            divergent = divergent | jnp.asarray(div, bool)
    state = kernels[0].init(state.position)
    acc = _field(infos[0], "acceptance_rate")
    acc = jnp.ones((n,), jnp.float32) if acc is None else jnp.asarray(acc, jnp.float32)
    return state, ComposedInfo(acc, divergent, tuple(infos))


def compose_kernels(*kernels: Kernel) -> Kernel:
    """The :class:`Kernel` that runs ``kernels`` in turn each step (module docstring); its state is
    the first kernel's, its ``acceptance_rate`` the first kernel's."""
    if len(kernels) < 2 or not all(hasattr(k, "init") and hasattr(k, "step") for k in kernels):
        raise ParameterError("compose_kernels needs two or more kernels, each with init and step")
    kernels = tuple(Kernel(k.init, k.step) for k in kernels)
    return Kernel(kernels[0].init, Partial(_composed_step, kernels))
