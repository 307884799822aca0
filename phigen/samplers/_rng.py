"""Fast exact standard normals for the samplers: unrolled Threefry-2x32 + inverse CDF, one fusion.

Why not ``jax.random.normal``: on CPU, jax lowers its Threefry hash as a *rolled* loop (five
iterations, each a separate pass over the whole array), and the partitionable bit generator XORs
the two output words of every hash into ONE 32-bit draw. Drawing the HMC momenta that way cost as
much as 6–7 leapfrog steps at L = 64 × 64 chains.

Here the same Threefry-2x32 block cipher (20 rounds, Salmon et al., SC'11 — bit for bit the hash
``jax.extend.random.threefry2x32_p`` computes, checked in ``tests/test_rng.py``) is written out
unrolled, so XLA fuses it with the transform into one vectorised loop, and BOTH output words are
used, one normal each. Each word → z by the inverse normal CDF of a tail probability (sign bit +
31-bit magnitude), exact up to float32 rounding with both tails out to 6.6σ (``jax.random.normal``
stops near 5.3σ), through Giles' erfinv polynomial (one log, one square root, one Horner chain).
Box–Muller measured slower here (a log, a square root and two polynomials for cos/sin per pair).

The counter of a draw is (chain index, position inside the chain), keyed by the caller's key, so
the numbers do not depend on how chains are split into blocks or over devices. Keys of other PRNG
implementations fall back to ``jax.random.normal``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["threefry2x32", "standard_normal", "chain_block_normal"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x, r):
    return lax.shift_left(x, np.uint32(r)) | lax.shift_right_logical(x, np.uint32(32 - r))


def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32, 20 rounds: ``(k0, k1)`` uint32 key words, ``(x0, x1)`` uint32 counter words
    (any broadcastable shapes) → the two uint32 output words. Unrolled, so it fuses."""
    k0 = jnp.asarray(k0, jnp.uint32)
    k1 = jnp.asarray(k1, jnp.uint32)
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = jnp.asarray(x0, jnp.uint32) + k0
    x1 = jnp.asarray(x1, jnp.uint32) + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _threefry_key_words(key):
    """The two uint32 words of a threefry key (typed or raw ``uint32[2]``), or None for other PRNGs."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if "threefry" not in str(jax.random.key_impl(key)):
            return None
        data = jax.random.key_data(key)
    else:
        data = jnp.asarray(key)
        if data.shape != (2,) or data.dtype != jnp.uint32:
            return None
    return data[0], data[1]


# erfinv(x) = x·P(w), w = −ln((1 − x)(1 + x)), P a degree-8 polynomial in w − 2.5 for w < 5 (Giles
# 2010, "Approximating the erfinv function", GPU Computing Gems, single precision) or in √w − 3 for
# w ≥ 5. The tail polynomial is our own weighted least-squares fit to scipy's float64 ndtri over
# w ∈ [5, 21.6], i.e. down to q = 2⁻³⁴: Giles' tail was fitted only as far as float32 x can approach 1
# (w ≤ 16.6) and is 4e-4 off at the 2⁻³³ tail probability reached here. Relative error < 5e-7 on
# the whole range (tests/test_rng.py checks it against scipy). Coefficients highest degree first.
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 2.1858087e-04,
                   -1.25372503e-03, -4.17768164e-03, 2.46640727e-01, 1.50140941e00)
_ERFINV_TAIL = (-1.3169688827474602e-05, -1.3077413314022124e-04, 1.1463904520496726e-03,
                -3.4030319657176733e-03, 5.8149010874331e-03, -7.715282496064901e-03,
                9.426675736904144e-03, 1.0016820430755615e00, 2.832977294921875e00)


def _normal_from_bits(b):
    """Exact N(0, 1) from one uint32 word: the top bit is the sign, the other 31 bits give a tail
    probability ``q = (m + ½)·2⁻³² ∈ (0, ½)`` and ``|z| = −Φ⁻¹(q) = √2 erfinv(1 − 2q)``.

    Inverting the tail probability (not 2u − 1) keeps full resolution where it matters: both tails
    reach 6.6σ. erfinv is the two-branch polynomial above with its ``w`` computed from q itself,
    ``w = −ln(4q(1 − q))`` (exact in the tails, where 1 − x² would cancel), and ONE Horner chain
    whose coefficients are selected per lane: 1.5–2× cheaper per draw than
    ``jax.scipy.special.ndtri`` (three rational functions, all evaluated), within 5e-7 of it.
    """
    m = lax.shift_right_logical(b << np.uint32(1), np.uint32(1))  # low 31 bits
    q = (m.astype(jnp.float32) + np.float32(0.5)) * np.float32(2.0 ** -32)
    w = -jnp.log(np.float32(4.0) * q * (np.float32(1.0) - q))
    central = w < np.float32(5.0)
    t = jnp.where(central, w - np.float32(2.5), jnp.sqrt(w) - np.float32(3.0))
    p = jnp.where(central, np.float32(_ERFINV_CENTRAL[0]), np.float32(_ERFINV_TAIL[0]))
    for a, c in zip(_ERFINV_CENTRAL[1:], _ERFINV_TAIL[1:]):
        p = p * t + jnp.where(central, np.float32(a), np.float32(c))
    magnitude = np.float32(math.sqrt(2.0)) * p * (np.float32(1.0) - np.float32(2.0) * q)
    return jnp.where(b >= np.uint32(2 ** 31), -magnitude, magnitude)


def chain_block_normal(key, shape, chain_index, dtype=jnp.float32):
    """Standard normals of shape ``(B, *event)`` for the chains ``chain_index`` ``(B,)`` (int32).

    Draw ``(c, j)`` — chain ``c``, flat position ``j`` in the event — depends only on ``(key, c, j)``,
    so any block of chains reproduces the same numbers as the full batch. Falls back to
    ``jax.random.normal`` on ``fold_in(key, c)`` for non-threefry keys.
    """
    shape = tuple(int(s) for s in shape)
    event = shape[1:]
    words = _threefry_key_words(key)
    chain_index = jnp.asarray(chain_index, jnp.int32)
    if words is None:
        return jax.vmap(lambda c: jax.random.normal(jax.random.fold_in(key, c), event, dtype))(chain_index)
    n_event = math.prod(event)
    half = (n_event + 1) // 2
    # Element (b, s, j) of a (B, 2, half) array is output word s of hash (c_b, j): the two words of
    # a hash land in the two halves of the event (joined along an outer axis, no per-element
    # select in the fused loop). One elementwise expression → one fused, vectorised loop.
    c = chain_index.astype(jnp.uint32).reshape(-1, 1, 1)
    second = lax.broadcasted_iota(jnp.int32, (1, 2, 1), 1) == 1
    j = lax.broadcasted_iota(jnp.uint32, (1, 1, half), 2)
    b0, b1 = threefry2x32(words[0], words[1], c, j)
    z = _normal_from_bits(jnp.where(second, b1, b0)).astype(dtype).reshape(shape[0], 2 * half)
    if 2 * half != n_event:
        z = z[:, :n_event]
    return z.reshape(shape)


def standard_normal(key, shape, dtype=jnp.float32):
    """Exact N(0, 1) draws of ``shape`` ``(C, *event)`` (a shape of rank < 2 is one chain).

    Same law as ``jax.random.normal`` (different numbers); draw ``(c, j)`` depends only on the key,
    the chain ``c`` and the position ``j``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:  # no chain axis: one "chain" holding everything
        return chain_block_normal(key, (1, math.prod(shape)), jnp.zeros((1,), jnp.int32), dtype).reshape(shape)
    return chain_block_normal(key, shape, jnp.arange(shape[0], dtype=jnp.int32), dtype)
