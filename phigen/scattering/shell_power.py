"""Shell power statistics: the field's isotropic power spectrum, one log-ratio per shell of the band.

    φ_b(x) = log( P_b(x) / P̄_b ),    P_b(x) = mean_{k ∈ b, k in the band} |x̂(k)|² / V,

over the integer shells b of :func:`phigen.stats.power_spectrum` (width 2π/L) that hold modes of the
data's band (``P̄(k) > 0``, :func:`~phigen.scattering.synthesis.band_power`) inside the Nyquist
circle |k| ≤ π, with P̄_b the data's own shell power (so φ̄ ≈ 0 and every entry is dimensionless).
``(N, H, W) → (N, B)``. The grid corners |k| > π are left out: the microcanonical synthesis keeps
them at their start (the data's power per mode, random phases), so a statistic there could not move.

Why: the scattering spectra fix the power only through each wavelet's ψ̂²-weighted band (an octave
wide), not how it is shared inside the octave. The canonical twin's HMC chains move it: on 64²
turbulence validation maps they took 20–25 % of the power out of 1.8 < |k| < 2.8 and put it at the
band's edge, with log S2 on target (docs/scattering.md). These statistics pin the spectrum at the
resolution of the power-spectrum distance itself.

One map: P_b of a Gaussian-like field is the mean of m = n_b/2 independent exponential variables
(n_b modes in the shell, paired by Hermitian symmetry), so var(log P_b) ≈ 1/m:
:meth:`single_map_scale` is √(2/n_b), a scale that exists with one field.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ..stats._binning import fourier_binning

__all__ = ["ShellPowerStatistics", "full_plane"]


def full_plane(half, shape) -> np.ndarray:
    """A Hermitian-symmetric quantity on the rfft half plane ``(H, W//2 + 1)`` → the full FFT grid (H, W)."""
    h, w = shape
    half = np.asarray(half, np.float64)
    if half.shape != (h, w // 2 + 1):
        raise InputError(f"half-plane array must have shape {(h, w // 2 + 1)}; got {half.shape}")
    full = np.zeros((h, w))
    full[:, : w // 2 + 1] = half
    cols = np.arange(w // 2 + 1, w)
    full[:, cols] = half[(-np.arange(h)) % h][:, w - cols]  # P(k) = P(−k)
    return full


class ShellPowerStatistics(eqx.Module):
    """``φ_b(x) = log(P_b(x)/P̄_b)`` over the band's shells (module doc). Build with :meth:`from_power`."""

    weights: jax.Array    # (H·W, B): 1/n_b on the in-band modes of shell b, else 0
    reference: jax.Array  # (B,) P̄_b
    counts: tuple = eqx.field(static=True)  # (B,) in-band modes per shell

    @classmethod
    def from_power(cls, power, shape) -> "ShellPowerStatistics":
        """From the data's band power per mode on the half plane ``(H, W//2 + 1)``
        (:func:`~phigen.scattering.synthesis.band_power`; 0 outside the band)."""
        h, w = (int(s) for s in shape)
        p = full_plane(power, (h, w))
        if not np.all(np.isfinite(p)) or p.min() < 0 or not p.max() > 0:
            raise InputError("the band power must be finite, >= 0 and positive somewhere")
        ky = 2 * np.pi * np.fft.fftfreq(h)[:, None]
        kx = 2 * np.pi * np.fft.fftfreq(w)[None, :]
        band = ((p > 0) & (np.hypot(ky, kx) <= np.pi * (1 + 1e-9))).ravel()
        band[0] = False  # k = 0 is the mean, a statistic of its own
        binning = fourier_binning((h, w))
        idx = np.asarray(binning.index)
        shells = [b for b in range(binning.n_bins) if np.any(band & (idx == b))]
        weights = np.zeros((h * w, len(shells)))
        ref = np.zeros(len(shells))
        counts = []
        for c, b in enumerate(shells):
            m = band & (idx == b)
            weights[m, c] = 1.0 / m.sum()
            ref[c] = p.ravel()[m].mean()
            counts.append(int(m.sum()))
        return cls(jnp.asarray(weights, jnp.float32), jnp.asarray(ref, jnp.float32), tuple(counts))

    @property
    def n_stats(self) -> int:
        return int(self.reference.shape[0])

    def single_map_scale(self) -> np.ndarray:
        """√(2/n_b) per shell: the spread of log P_b for one Gaussian-like map (module doc)."""
        return np.sqrt(2.0 / np.asarray(self.counts, np.float64)).astype(np.float32)

    def __call__(self, x, *, batch_size: int | None = None):
        x = jnp.asarray(x)
        if x.ndim != 3 or x.shape[1] * x.shape[2] != self.weights.shape[0]:
            raise InputError(f"fields must have shape (N, H, W) with H·W = {self.weights.shape[0]}; got {tuple(x.shape)}")
        return _shell_log_power(x, self.weights, self.reference)


@jax.jit
def _shell_log_power(x, weights, reference):
    v = x.shape[-1] * x.shape[-2]
    xh = jnp.fft.fft2(x)
    p = (xh.real ** 2 + xh.imag ** 2).reshape(x.shape[0], -1) / v
    # the floor keeps log finite for a field with an empty shell (its gradient then pushes power in)
    return jnp.log(jnp.maximum(p @ weights, 1e-30) / reference)
