"""Embeddings of a scalar condition (a diffusion time, a noise level, a coupling) for networks.

``sinusoidal_features(c, n)``: ``[sin(ω_i c), cos(ω_i c)]``, ``ω_i`` geometric from 1 to 1000
(``n`` frequencies, ``2n`` features), a compile-time constant, not a parameter. Callers map their
variable to ``c`` of order one (diffusion: ``log(t)/4``, flow matching: ``t``) and follow it with a
small MLP of their own (``emb2(silu(emb1(features)))`` in the UNet and the WSGM network).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["sinusoidal_features"]


def sinusoidal_features(c, n_freq: int, dtype=jnp.float32):
    """``(2·n_freq,)`` features of the scalar ``c``: sines then cosines of ``ω_i c``, ω geometric 1…1000."""
    freqs = jnp.asarray(np.geomspace(1.0, 1000.0, n_freq), dtype)
    phase = freqs * jnp.asarray(c, dtype)
    return jnp.concatenate([jnp.sin(phase), jnp.cos(phase)])
