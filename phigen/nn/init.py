"""Fast initialisation and parameter counts of equinox networks.

:func:`init_layers` draws every Conv / Linear layer of a network in ONE random call (uniform in
±1/√fan_in, equinox's law) and sets GroupNorm to scale 1, offset 0, laid out with numpy: eager
per-layer initialisation compiles a kernel per parameter shape, which dominates start-up time on a
CPU. :func:`count_params` counts trainable scalars, also of an abstract network
(``eqx.filter_eval_shape``), so a model can report its size without allocating it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["init_layers", "count_params", "is_layer"]


def is_layer(m) -> bool:
    """A Conv, Linear or GroupNorm layer (what :func:`init_layers` fills)."""
    return isinstance(m, (eqx.nn.Conv, eqx.nn.Linear, eqx.nn.GroupNorm))


def init_layers(abstract, key):
    """``abstract`` (a network, or its ``filter_eval_shape``) with every layer freshly initialised from
    ``key``: Conv/Linear weights and biases uniform in ±1/√fan_in, GroupNorm weight 1 and bias 0."""
    layers = [m for m in jax.tree_util.tree_leaves(abstract, is_leaf=is_layer) if is_layer(m)]
    total = sum(int(np.prod(m.weight.shape) + np.prod(m.bias.shape)) for m in layers
                if not isinstance(m, eqx.nn.GroupNorm))
    u = np.asarray(jax.random.uniform(key, (max(total, 1),), jnp.float32, -1.0, 1.0))
    pos = 0

    def fill(layer):
        nonlocal pos
        w_shape, b_shape = layer.weight.shape, layer.bias.shape
        if isinstance(layer, eqx.nn.GroupNorm):
            w, b = np.ones(w_shape, np.float32), np.zeros(b_shape, np.float32)
        else:
            scale = 1.0 / np.sqrt(np.prod(w_shape[1:]))  # fan-in: (out, in[, kh, kw])
            nw, nb = int(np.prod(w_shape)), int(np.prod(b_shape))
            w = scale * u[pos:pos + nw].reshape(w_shape)
            b = scale * u[pos + nw:pos + nw + nb].reshape(b_shape)
            pos += nw + nb
        return eqx.tree_at(lambda m: (m.weight, m.bias), layer, (jnp.asarray(w), jnp.asarray(b)))

    return jax.tree_util.tree_map(lambda m: fill(m) if is_layer(m) else m, abstract, is_leaf=is_layer)


def count_params(net) -> int:
    """Number of trainable scalars (the inexact array leaves of ``net``). Also works on the
    abstract network of ``eqx.filter_eval_shape(Net, config, key=key)`` (nothing allocated)."""

    def trainable(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jnp.issubdtype(leaf.dtype, jnp.inexact)
        return eqx.is_inexact_array(leaf)

    leaves = jax.tree_util.tree_leaves(eqx.filter(net, trainable))
    return int(sum(int(np.prod(leaf.shape)) for leaf in leaves))
