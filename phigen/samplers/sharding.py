"""Spread MCMC chains over devices: a 1-D mesh with axis ``"chains"`` and a sharded leading axis.

Chains are independent, so the only layout that matters is "split the leading (chain) axis of every
state leaf over the devices". Once the state is placed that way, ``jax.jit`` propagates the sharding
through the sampler: each device runs its own slice of chains with no communication. Random draws do
not depend on the layout because jax's threefry is partitionable by default (``jax ≥ 0.5``;
``jax.config.jax_threefry_partitionable``): ``normal(key, (C, …))`` gives the same numbers whether
``C`` lives on one device or on many, so the same seed gives the same samples on any device count.

:func:`global_chain_mesh` spans the devices of every process of a ``jax.distributed`` group: the
chains then split over processes (each holds a contiguous block, :func:`process_chains`) and
:func:`gather_chains` brings a per-chain array back whole onto every process (docs/scale_out.md).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import ParameterError

__all__ = ["CHAIN_AXIS", "chain_mesh", "global_chain_mesh", "chain_sharding", "shard_chains", "n_chain_devices",
           "spans_processes", "process_chains", "gather_chains"]

CHAIN_AXIS = "chains"


def chain_mesh(devices=None) -> Mesh:
    """A 1-D :class:`jax.sharding.Mesh` with axis name ``"chains"`` over ``devices``
    (default: this process's devices, ``jax.local_devices()``, which are all the devices unless the
    process joined a ``jax.distributed`` group; :func:`global_chain_mesh` spans every process)."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ParameterError("chain_mesh needs at least one device")
    return Mesh(np.asarray(devices, dtype=object), (CHAIN_AXIS,))


def global_chain_mesh() -> Mesh:
    """The ``"chains"`` mesh over every device of every process of a ``jax.distributed`` group,
    ordered by process (process k's devices hold one contiguous block of chains); in a process
    that joined no group, the same as :func:`chain_mesh`. Every process must build it and run the
    same calls on it (multi-controller: each process drives its own devices)."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return chain_mesh(devices)


def spans_processes(mesh: Mesh | None) -> bool:
    """True when ``mesh`` holds devices of more than one process (arrays on it are global)."""
    return mesh is not None and len({d.process_index for d in mesh.devices.flat}) > 1


def process_chains(n_chains: int, mesh: Mesh) -> tuple[int, int]:
    """``(start, stop)``: the chains this process's devices hold when ``n_chains`` chains are split
    over ``mesh`` (a contiguous block, as :func:`global_chain_mesh` orders the devices)."""
    n_dev = n_chain_devices(mesh)
    per = n_chains // n_dev
    mine = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    if not mine:
        return 0, 0
    if mine != list(range(mine[0], mine[-1] + 1)):
        raise ParameterError("this process's devices are not contiguous in the chain mesh; build it with "
                             "global_chain_mesh()")
    return mine[0] * per, (mine[-1] + 1) * per


def gather_chains(x):
    """A global array (chains split over processes) as one whole numpy array on every process
    (:func:`jax.experimental.multihost_utils.process_allgather`); any other array as numpy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


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
    laid out this way are not copied. On a mesh over several processes a host value (numpy, or an
    array of this process) must be the same in every process: each takes its own block of chains.
    """
    mesh = chain_mesh() if mesh is None else mesh
    n_dev = n_chain_devices(mesh)
    split = NamedSharding(mesh, PartitionSpec(CHAIN_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    multi = spans_processes(mesh)

    def put(leaf, sharding):
        if not multi or (isinstance(leaf, jax.Array) and leaf.sharding == sharding):
            return jax.device_put(leaf, sharding)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:  # global, laid out otherwise
            return jax.jit(lambda x: x, out_shardings=sharding)(leaf)
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key):
            data = put(jax.random.key_data(leaf), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    def place(leaf):
        ndim = np.ndim(leaf)
        if ndim == 0:
            return put(leaf, replicated)
        c = int(np.shape(leaf)[0])
        if c % n_dev:
            raise ParameterError(
                f"cannot split {c} chains over {n_dev} devices (leaf of shape {tuple(np.shape(leaf))}): "
                f"the number of chains must be a multiple of {n_dev}, e.g. "
                f"{_chain_counts_that_fit(c, n_dev)}; or run with shard=False")
        return put(leaf, split)

    return jax.tree_util.tree_map(place, tree)

