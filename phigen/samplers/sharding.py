"""Spread MCMC chains over devices: a 1-D mesh with axis ``"chains"`` and a sharded leading axis.

Chains are independent, so the only layout that matters is "split the leading (chain) axis of every
state leaf over the devices". Once the state is placed that way, ``jax.jit`` propagates the sharding
through the sampler: each device runs its own slice of chains with no communication. Random draws do
not depend on the layout because jax's threefry is partitionable by default (``jax ≥ 0.5``;
``jax.config.jax_threefry_partitionable``): ``normal(key, (C, …))`` gives the same numbers whether
``C`` lives on one device or on many, so the same seed gives the same samples on any device count.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import ParameterError

__all__ = ["CHAIN_AXIS", "chain_mesh", "chain_sharding", "shard_chains", "n_chain_devices"]

CHAIN_AXIS = "chains"


def chain_mesh(devices=None) -> Mesh:
    """A 1-D :class:`jax.sharding.Mesh` with axis name ``"chains"`` over ``devices``
    (default: this process's devices, ``jax.local_devices()``, which are all the devices unless the
    process joined a ``jax.distributed`` group; :func:`global_chain_mesh` spans every process)."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ParameterError("chain_mesh needs at least one device")
    return Mesh(np.asarray(devices, dtype=object), (CHAIN_AXIS,))


def n_chain_devices(mesh: Mesh) -> int:
    """Number of devices along the ``"chains"`` axis of ``mesh``."""
    return int(mesh.shape[CHAIN_AXIS])


def chain_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """``NamedSharding(mesh, PartitionSpec("chains"))``: leading axis split over the devices."""
    return NamedSharding(chain_mesh() if mesh is None else mesh, PartitionSpec(CHAIN_AXIS))


def _chain_counts_that_fit(n_chains: int, n_dev: int) -> str:
    lo = (n_chains // n_dev) * n_dev
    hi = lo + n_dev
    options = [c for c in (lo, hi) if c > 0]
    return " or ".join(str(c) for c in options)


def shard_chains(tree, mesh: Mesh | None = None):
    """Place every leaf of ``tree`` with its leading (chain) axis split over ``mesh``'s devices.

    Leaves of shape ``(C, ...)`` get ``NamedSharding(mesh, PartitionSpec("chains"))``; scalar leaves
    (ndim 0) are replicated. ``C`` must be divisible by the number of devices (raises
    :class:`~phigen.errors.ParameterError` naming chain counts that would work). Leaves already
    laid out this way are not copied.
    """
    mesh = chain_mesh() if mesh is None else mesh
    n_dev = n_chain_devices(mesh)
    split = NamedSharding(mesh, PartitionSpec(CHAIN_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(leaf):
        ndim = np.ndim(leaf)
        if ndim == 0:
            return jax.device_put(leaf, replicated)
        c = int(np.shape(leaf)[0])
        if c % n_dev:
            raise ParameterError(
                f"cannot split {c} chains over {n_dev} devices (leaf of shape {tuple(np.shape(leaf))}): "
                f"the number of chains must be a multiple of {n_dev}, e.g. "
                f"{_chain_counts_that_fit(c, n_dev)}; or run with shard=False")
        return jax.device_put(leaf, split)

    return jax.tree_util.tree_map(place, tree)

