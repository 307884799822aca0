"""Swendsen–Wang cluster update on the embedded Ising signs of lattice φ⁴ (Brower–Tamayo).

Write φ_x = s_x |φ_x|. At fixed |φ| the hopping term of the φ⁴ action
``S = Σ_x [−2κ Σ_μ φ_x φ_{x+μ} + φ_x² + λ(φ_x² − 1)²]`` is an Ising model in the signs with
bond couplings ``J_xy = 2κ|φ_x φ_y|``; every other term of S is sign-blind. Swendsen–Wang for that
Ising model puts a bond between same-sign neighbours with probability

    p_xy = 1 − exp(−2 J_xy) = 1 − exp(−4κ φ_x φ_y)      (φ_x φ_y > 0),

labels the connected clusters and flips each with probability ½. The move satisfies detailed
balance with respect to exp(−S) exactly, so it needs no accept/reject step; combined with a move
of |φ| (HMC, see :mod:`phigen.samplers.mixed`) it is ergodic and beats critical slowing down.

Everything is batched over chains: fields are ``(C, H, W)`` on a periodic lattice. The labelling
is a jitted ``lax.while_loop`` (no host round trips), so the whole update fuses into a scan.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError

__all__ = ["ClusterInfo", "cluster_labels", "swendsen_wang_bonds", "swendsen_wang_step"]


class ClusterInfo(NamedTuple):
    """Per-update diagnostics of :func:`swendsen_wang_step`.

    n_clusters: (C,) int32, clusters in each chain (isolated sites count as clusters);
    mean_cluster_size: (C,) float32, V / n_clusters;
    n_rounds: () int32, labelling rounds the ``while_loop`` needed (grows ~ log L).
    """

    n_clusters: jax.Array
    mean_cluster_size: jax.Array
    n_rounds: jax.Array


# --- connected-component labelling ---------------------------------------------------------------
def _neighbour_min(labels, bonds_right, bonds_down):
    """Smallest label among a site and its bonded periodic neighbours; all arrays (C, H, W)."""
    big = jnp.iinfo(labels.dtype).max
    # bonds_right[i, j] joins (i, j)–(i, j+1); rolled by one it joins (i, j−1)–(i, j).
    bonds_left = jnp.roll(bonds_right, 1, axis=2)
    bonds_up = jnp.roll(bonds_down, 1, axis=1)
    m = labels
    m = jnp.minimum(m, jnp.where(bonds_right, jnp.roll(labels, -1, axis=2), big))
    m = jnp.minimum(m, jnp.where(bonds_left, jnp.roll(labels, 1, axis=2), big))
    m = jnp.minimum(m, jnp.where(bonds_down, jnp.roll(labels, -1, axis=1), big))
    m = jnp.minimum(m, jnp.where(bonds_up, jnp.roll(labels, 1, axis=1), big))
    return m


def _cluster_labels(bonds_right, bonds_down):
    """(labels (C, H, W) int32, n_rounds ()) for boolean bond arrays of shape (C, H, W).

    Each round: m = smallest label among a site and its bonded neighbours; hook the site's root
    onto m (``label[label[x]] ← min(label[label[x]], m[x])``); pointer-jump (``label ← label[label]``).
    Invariant: label[x] is a site of x's cluster with label[x] <= x, so labels only decrease and the
    fixed point is "every site points at the smallest index of its cluster".
    """
    n_chains, height, width = bonds_right.shape
    n_sites = height * width
    # One flat index space over all chains (chain c owns [c·V, (c+1)·V)): bonds never cross chains,
    # and 1-D gathers/scatters are cheaper on CPU than their batched (vmapped) forms.
    init = jnp.arange(n_chains * n_sites, dtype=jnp.int32)

    def one_round(labels):
        m = _neighbour_min(labels.reshape(n_chains, height, width), bonds_right, bonds_down).ravel()
        # Hooking the *root* (not only the site) lets an improvement found at a cluster's edge
        # reach every site pointing at that root at the next jump (Shiloach–Vishkin style); with
        # it the rounds grow like log L even for a cluster that snakes through the whole lattice.
        hooked = jnp.minimum(labels.at[labels].min(m), m)
        return hooked[hooked]

    def cond(carry):
        return carry[1]

    def body(carry):
        labels, _, n_rounds = carry
        new = one_round(labels)
        return new, jnp.any(new != labels), n_rounds + 1

    labels, _, n_rounds = jax.lax.while_loop(cond, body, (init, jnp.array(True), jnp.array(0, jnp.int32)))
    offsets = (jnp.arange(n_chains, dtype=jnp.int32) * n_sites)[:, None]
    return (labels.reshape(n_chains, n_sites) - offsets).reshape(n_chains, height, width), n_rounds


_cluster_labels_jit = jax.jit(_cluster_labels)


def _chain_local_labels(bonds_right, bonds_down):
    """:func:`_cluster_labels`, each device labelling its own chains when traced under a chain mesh
    (``jax.set_mesh``, as the runner does for chains split over devices or processes). Clusters never
    cross chains, but the flat gathers hide that from XLA's partitioner, which would otherwise gather
    every chain's labels onto every device at each round (measured: 2 processes ×7 slower than one).
    The labels are the same fixed point either way; ``n_rounds`` is the largest over devices."""
    from jax.sharding import PartitionSpec

    from .sharding import CHAIN_AXIS

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or CHAIN_AXIS not in mesh.axis_names or mesh.shape[CHAIN_AXIS] == 1:
        return _cluster_labels(bonds_right, bonds_down)

    def local(br, bd):
        labels, n_rounds = _cluster_labels(br, bd)
        return labels, jax.lax.pmax(n_rounds, CHAIN_AXIS)

    split = PartitionSpec(CHAIN_AXIS)
    return jax.shard_map(local, in_specs=(split, split), out_specs=(split, PartitionSpec()),
                         check_vma=False)(bonds_right, bonds_down)


def _check_index_range(shape):
    if int(np.prod(shape)) >= 2 ** 31:
        raise ParameterError(f"{shape} has too many sites for int32 cluster labels; split the chains "
                             "into several calls")


def _as_bonds(b, name):
    arr = b if isinstance(b, jax.Array) else np.asarray(b)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{name} must have shape (C, H, W) or (H, W); got {tuple(arr.shape)}")
    return jnp.asarray(arr).astype(bool)


def cluster_labels(bonds_right, bonds_down):
    """Connected clusters of a periodic bond configuration.

    ``bonds_right[c, i, j]`` joins site (i, j) to (i, (j+1) mod W); ``bonds_down[c, i, j]`` joins
    (i, j) to ((i+1) mod H, j). Shapes (C, H, W) or (H, W). Returns int32 labels of the same shape
    where each site holds the flat index ``i*W + j`` of the smallest site of its cluster (so the
    root of a cluster is the site whose label equals its own index).
    """
    br = _as_bonds(bonds_right, "bonds_right")
    bd = _as_bonds(bonds_down, "bonds_down")
    if br.shape != bd.shape:
        raise InputError(f"bonds_right and bonds_down shapes differ: {br.shape} vs {bd.shape}")
    _check_index_range(br.shape)
    labels, _ = _cluster_labels_jit(br, bd)
    return labels if np.ndim(bonds_right) == 3 else labels[0]


# --- the update ----------------------------------------------------------------------------------
def swendsen_wang_bonds(key, phi, kappa):
    """Brower–Tamayo bonds: (bonds_right, bonds_down), each (C, H, W) bool.

    A bond joins neighbours x, y with probability ``1 − exp(−4κ φ_x φ_y)`` when φ_x φ_y > 0, else 0.
    """
    k_right, k_down = jax.random.split(key)
    kappa = jnp.asarray(kappa, phi.dtype)

    def draw(k, neighbour):
        prod = phi * neighbour
        # −expm1 keeps p accurate for tiny κφφ, where 1 − exp underflows to 0 in float32.
        p = jnp.where(prod > 0, -jnp.expm1(-4.0 * kappa * prod), 0.0)
        return jax.random.uniform(k, phi.shape, phi.dtype) < p

    return draw(k_right, jnp.roll(phi, -1, axis=2)), draw(k_down, jnp.roll(phi, -1, axis=1))


def _swendsen_wang_step(key, phi, kappa):
    k_bonds, k_flip = jax.random.split(key)
    n_chains, height, width = phi.shape
    n_sites = height * width
    bonds_right, bonds_down = swendsen_wang_bonds(k_bonds, phi, kappa)
    labels, n_rounds = _chain_local_labels(bonds_right, bonds_down)
    flat = labels.reshape(n_chains, n_sites)
    # One fair coin per site; a cluster uses the coin of its root, so all its sites agree.
    coins = jax.random.bernoulli(k_flip, 0.5, (n_chains, n_sites))
    flip = jnp.take_along_axis(coins, flat, axis=1).reshape(phi.shape)
    phi_new = jnp.where(flip, -phi, phi)
    n_clusters = jnp.sum(flat == jnp.arange(n_sites, dtype=flat.dtype), axis=1).astype(jnp.int32)
    info = ClusterInfo(n_clusters, (n_sites / n_clusters).astype(jnp.float32), n_rounds)
    return phi_new, info


_swendsen_wang_step_jit = jax.jit(_swendsen_wang_step)


def swendsen_wang_step(key, phi, kappa):
    """One Swendsen–Wang sweep of the embedded Ising signs, for all chains at once.

    phi: (C, H, W) (or (H, W)) periodic φ⁴ fields in the hopping form with κ >= 0;
    returns ``(phi_new, ClusterInfo)`` with ``phi_new = s' |φ|``, where each cluster of bonded
    same-sign sites (bond probability ``1 − exp(−4κ φ_x φ_y)``) got its sign flipped with
    probability ½. Leaves exp(−S_φ⁴) invariant for any λ. Usable inside ``jit``/``scan``.
    """
    batchless = np.ndim(phi) == 2
    phi = as_fields(phi, name="phi", dtype=None)
    if not jnp.issubdtype(phi.dtype, jnp.floating):
        phi = phi.astype(jnp.float32)
    if phi.ndim != 3:
        raise InputError(f"phi must have shape (C, H, W) or (H, W); got {tuple(phi.shape)}")
    if min(phi.shape[1:]) < 2:
        raise ParameterError(f"the lattice must be at least 2x2; got {phi.shape[1:]}")
    _check_index_range(phi.shape)
    if not isinstance(kappa, jax.core.Tracer):
        k = np.asarray(kappa)
        if k.ndim != 0 or not np.isfinite(k) or k < 0:
            raise ParameterError(f"kappa must be a finite scalar >= 0 (ferromagnetic hopping); got {kappa!r}")
    phi_new, info = _swendsen_wang_step_jit(key, jnp.asarray(phi), kappa)
    return (phi_new[0] if batchless else phi_new), info
