"""Periodic shifts as data augmentation for the per-level fits of the RG models.

The law of a stationary periodic field is invariant under translations, but the decimated DWT is
not: the level-``l`` coefficients of a field shifted by s pixels (s not a multiple of 2^l) are new
samples of the same joint law of (coarse field, details). Both WC-RG (score matching) and WSGM (a
score network per level) fit level l on the training fields under several such shifts, so every
level sees about as many coefficients as the finest one.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def level_shifts(level: int, max_shifts: int) -> list:
    """Up to ``min(4^(level−1), max_shifts)`` distinct pixel shifts (dy, dx) for fitting ``level``.

    Shifts by multiples of 2^level only translate the level's coefficients, so the distinct ones are
    {0 … 2^level − 1}²; they are taken in bit-reversed order (0, 2^level/2, 2^level/4, …) so that
    any prefix spreads evenly over the offsets.
    """
    side = 2 ** level
    n = int(min(4 ** (level - 1), max_shifts, side * side))
    order = sorted(range(side), key=lambda v: int(format(v, f"0{level}b")[::-1], 2))
    pairs = [(a, b) for a in order for b in order]
    pairs.sort(key=lambda ab: max(order.index(ab[0]), order.index(ab[1])))
    return pairs[:n]


def shifted_fields(fields, shift_list):
    """``fields`` ``(N, H, W)`` under every periodic shift of ``shift_list`` → ``(N·len(shift_list), H, W)``
    (shift-major: the first N are the first shift)."""
    # on the host: pure data movement, and no kernel to compile per (shape, shifts) as with jnp.roll
    x = np.asarray(fields)
    return jnp.asarray(np.concatenate([np.roll(x, (dy, dx), axis=(-2, -1)) for dy, dx in shift_list]))
