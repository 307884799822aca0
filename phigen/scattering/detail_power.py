"""Detail power statistics: the power of each periodic-DWT detail channel, one log-ratio per channel.

    φ_{j,c}(x) = log( ⟨d_{j,c}(x)²⟩_p / D̄_{j,c} ),    j = 1…J,  c ∈ (horizontal, vertical, diagonal),

with d_{j,c} the level-j detail coefficients of the orthogonal periodic DWT (:func:`phigen.wavelets.dwt`,
db4 by default) and D̄_{j,c} the training fields' mean of ⟨d²⟩_p, so φ̄ ≈ 0 and every entry is
dimensionless. ``(N, H, W) → (N, 3J)``, level 1 first. A detail channel's mean over one field is
not zero (it holds the field's Nyquist-frequency part), but its mean over a stationary ensemble is,
so ⟨d²⟩ averaged over fields is the square of the std per wavelet scale of
:func:`phigen.rg.per_scale_std` (which pools fields and pixels).

Why: the separable DWT splits each octave into axis-aligned channels (high kx & low ky, low kx &
high ky, both high), a partition of Fourier space that neither the Morlet moduli (L orientations of
one octave-wide wavelet) nor the isotropic shell powers fix. An anisotropic field (the Kolmogorov
flow's forcing picks an axis) can move power between the channels with every other statistic on
target: the canonical chains on 64² turbulence held 9.6 % less std than their own training maps in
level 1 horizontal (docs/scattering.md).

One map: ⟨d²⟩_p over the n coefficients of a channel of a Gaussian-like field is a mean of n
squared normals (the orthogonal transform keeps white noise white; correlated fields have fewer
effective terms), so var(log) ≈ 2/n: :meth:`single_map_scale` is √(2/n_{j}).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError
from ..wavelets.dwt import _check_levels, dwt, wavelet_filters

__all__ = ["DetailPowerStatistics"]

_FLOOR = 1e-30  # keeps log finite for an empty channel (the gradient then pushes power into it)
_EMPTY = 1e-10  # a channel with less than this fraction of the fields' variance has no power


class DetailPowerStatistics(eqx.Module):
    """``φ_{j,c}(x) = log(⟨d_{j,c}²⟩_p / D̄_{j,c})`` (module doc). Build with :meth:`from_fields`."""

    reference: jax.Array                      # (3J,) D̄_{j,c}, level 1 first, channels h, v, d
    levels: int = eqx.field(static=True)      # J
    wavelet: str = eqx.field(static=True)

    @classmethod
    def from_fields(cls, fields, levels: int, wavelet: str = "db4") -> "DetailPowerStatistics":
        """D̄ from the training ``fields`` (N, H, W) over ``levels`` DWT levels (H, W multiples of 2^J)."""
        x = np.asarray(as_fields(fields, name="fields"), np.float32)
        levels = check_int_at_least(levels, "detail power levels", 1)
        wavelet_filters(wavelet)  # an unknown wavelet is a one-line error here, not inside a trace
        _check_levels(x.shape, levels)
        ref = np.mean(np.asarray(_detail_power(jnp.asarray(x), wavelet, levels), np.float64), axis=0)
        # float32 round-off leaves ~1e-14·x² in a channel the fields do not fill: that is no power
        empty = ~(ref > _EMPTY * float(np.mean(np.square(x - x.mean()))))
        if not np.all(np.isfinite(ref)) or np.any(empty):
            bad = [f"level {i // 3 + 1} {'hvd'[i % 3]}" for i in np.flatnonzero(empty)]
            raise InputError(f"the training fields have no power in DWT detail channel(s) {', '.join(bad)}: "
                             f"there is nothing to match there (use fewer levels or leave detail_power off)")
        return cls(jnp.asarray(ref, jnp.float32), levels, wavelet)

    @property
    def n_stats(self) -> int:
        return 3 * self.levels

    def single_map_scale(self, shape) -> np.ndarray:
        """√(2/n_j) per channel, n_j = H·W/4^j coefficients at level j (module doc)."""
        h, w = (int(s) for s in shape)
        n = np.repeat([h * w / 4.0 ** j for j in range(1, self.levels + 1)], 3)
        return np.sqrt(2.0 / n).astype(np.float32)

    def __call__(self, x, *, batch_size: int | None = None):
        x = jnp.asarray(x)
        if x.ndim != 3:
            raise InputError(f"fields must have shape (N, H, W); got {tuple(x.shape)}")
        _check_levels(x.shape, self.levels)
        return jnp.log(jnp.maximum(_detail_power(x, self.wavelet, self.levels), _FLOOR) / self.reference)


def _detail_power(x, wavelet, levels):
    """⟨d_{j,c}²⟩_p per field, ``(N, 3J)`` (level 1 first)."""
    details = dwt(x, wavelet, levels).details  # level j: (N, 3, H/2^j, W/2^j)
    return jnp.concatenate([jnp.mean(d * d, axis=(-2, -1)) for d in details], axis=-1)
