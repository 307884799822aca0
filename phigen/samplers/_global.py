"""Chains split over the processes of a ``jax.distributed`` group: this process's block ↔ global arrays.

In a multi-controller run every process holds only its own chains (a contiguous block ``[lo, hi)``
of the chain axis, :func:`phigen.samplers.sharding.process_chains`). The runner computes on global
``jax.Array`` s; checkpoints hold each process's block (numpy); per-chain summaries and the recorded
trace are gathered into whole numpy arrays on every process.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from .sharding import CHAIN_AXIS

__all__ = ["local_block", "local_tree", "global_tree", "global_leaves", "gather_local", "allgather_rows"]


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def local_block(x):
    """This process's part of a global array as numpy: the concatenated blocks its devices hold
    along axis 0 (the chain axis), or the whole value of a replicated (e.g. scalar) array."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    if _is_key(x):  # typed keys: their data, wrapped again by the caller's template on the way back
        return local_block(jax.random.key_data(x))
    blocks = {}
    for s in x.addressable_shards:
        start = (s.index[0].start or 0) if x.ndim else 0
        blocks.setdefault(start, s.data)
    return np.concatenate([np.asarray(blocks[k]) for k in sorted(blocks)]) if x.ndim else np.asarray(blocks[0])


def local_tree(tree):
    """:func:`local_block` of every leaf of a pytree."""
    return jax.tree_util.tree_map(local_block, tree)


def _global_leaf(local, like, mesh):
    if _is_key(like):
        data = _global_leaf(np.asarray(local), jax.random.key_data(like), mesh)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(like))
    local = np.asarray(local, dtype=like.dtype)
    if like.ndim == 0 or like.sharding.is_fully_replicated:
        sharding = NamedSharding(mesh, PartitionSpec())
    else:
        sharding = NamedSharding(mesh, PartitionSpec(CHAIN_AXIS))
    return jax.make_array_from_process_local_data(sharding, local, tuple(like.shape))


def global_tree(local, like, mesh):
    """Global arrays on ``mesh`` from this process's blocks ``local`` (a pytree shaped like
    ``like``, whose leaves give the global shapes, dtypes and which leaves are replicated)."""
    return jax.tree_util.tree_map(lambda a, b: _global_leaf(a, b, mesh), local, like)


def gather_local(local, mesh, axis: int = 0):
    """Whole numpy array on every process from each process's block ``local`` along ``axis``
    (every process passes a block of the same shape)."""
    from jax.experimental import multihost_utils

    local = np.asarray(local)
    moved = np.ascontiguousarray(np.moveaxis(local, axis, 0))
    if moved.size == 0:
        n = jax.process_count()
        return np.moveaxis(np.zeros((moved.shape[0] * n,) + moved.shape[1:], local.dtype), 0, axis)
    # as raw bytes: exact for every dtype (float64 sums would pass through float32 without jax_enable_x64)
    raw = moved.reshape(moved.shape[0], -1).view(np.uint8)
    whole = np.asarray(multihost_utils.process_allgather(raw, tiled=True))
    whole = np.array(whole).view(local.dtype).reshape((-1,) + moved.shape[1:])  # a writable copy
    return np.ascontiguousarray(np.moveaxis(whole, 0, axis))


def allgather_rows(row) -> np.ndarray:
    """``(process_count, len(row))``: every process's ``row`` (small int64 vectors: status codes)."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(row, dtype=np.int32)))


def global_leaves(leaves, mesh, n_chains: int) -> list:
    """Global arrays from this process's blocks of state leaves (no template at hand): a leaf of
    ndim ≥ 1 is a block of the chain axis (global shape ``(n_chains, …)``), a scalar is replicated."""
    out = []
    for leaf in leaves:
        leaf = np.asarray(leaf)
        if leaf.ndim == 0:
            out.append(jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec()), leaf, ()))
        else:
            out.append(jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec(CHAIN_AXIS)), leaf,
                                                              (int(n_chains),) + leaf.shape[1:]))
    return out
