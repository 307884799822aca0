"""Invertible layers of a normalizing flow on periodic 2D fields, each with its exact log-determinant.

Every layer maps one field ``(H, W)`` and returns ``(y, log|det ∂y/∂x|)``; ``inverse`` undoes it and
returns the log-determinant of the inverse map. Layers:

- :class:`SpectralScale`: ``y = F⁻¹[c_k · F x]`` with ``c_k = exp(θ_k)``, θ symmetrised so that
  ``θ_k = θ_{−k}`` (the map is real, linear and translation-invariant); ``log|det| = Σ_k θ_k`` over
  the full FFT grid. A Gaussian field of spectrum P is the image of white noise with ``c_k = √P_k``:
  this one layer is the exact flow of a Gaussian free field.
- :class:`AffineCoupling` (RealNVP, Dinh et al. 2017, on a checkerboard as in Albergo, Kanwar and
  Shanahan 2019): the sites of one colour are frozen, the others move by
  ``y = x·exp(s) + t`` with ``(s, t)`` = a periodic CNN of the frozen sites; ``log|det| = Σ s``
  over the moving sites. ``s = tanh(·)`` keeps each layer's scale within ``e^{±1}``. With
  ``symmetric=True`` s is made even and t odd in the frozen field (``s(f) = ½[g(f) + g(−f)]``…), so
  the layer commutes with ``φ → −φ``: a flow of such layers on a symmetric base is exactly Z₂
  symmetric (lattice φ⁴).
- :class:`GlobalAffine`: ``y = μ + e^{σ} x`` (one learnable shift and scale for the whole field):
  data units.

The conditioner's output convolution starts at zero, so an untrained coupling is the identity.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..nn.conv import apply_conv, periodic_conv, zero_conv

__all__ = ["SpectralScale", "AffineCoupling", "GlobalAffine", "checkerboard", "symmetrise_spectrum"]


def checkerboard(shape, parity: int):
    """``(H, W)`` float mask, 1 on the sites with ``(i + j) % 2 == parity``."""
    i, j = jnp.meshgrid(jnp.arange(shape[0]), jnp.arange(shape[1]), indexing="ij")
    return ((i + j) % 2 == parity).astype(jnp.float32)


def symmetrise_spectrum(theta):
    """``½(θ_k + θ_{−k})`` on the full FFT grid ``(H, W)``: what makes a spectral multiplier real."""
    return 0.5 * (theta + jnp.roll(jnp.flip(theta, (0, 1)), 1, (0, 1)))


class SpectralScale(eqx.Module):
    """``y = F⁻¹[exp(θ_k) F x]`` (θ symmetrised); ``log|det| = Σ_k θ_k``. ``theta`` ``(H, W)``."""

    theta: jax.Array

    def _multiplier(self):
        th = symmetrise_spectrum(self.theta)
        return th, jnp.exp(th[:, : th.shape[1] // 2 + 1])

    def _apply(self, x, mult):
        return jnp.fft.irfft2(jnp.fft.rfft2(x) * mult, s=x.shape)

    def __call__(self, x):
        th, mult = self._multiplier()
        return self._apply(x, mult), jnp.sum(th)

    def inverse(self, y):
        th, mult = self._multiplier()
        return self._apply(y, 1.0 / mult), -jnp.sum(th)


class GlobalAffine(eqx.Module):
    """``y = loc + exp(log_scale)·x``; ``log|det| = H·W·log_scale``."""

    loc: jax.Array
    log_scale: jax.Array

    def __call__(self, x):
        return self.loc + jnp.exp(self.log_scale) * x, x.size * self.log_scale

    def inverse(self, y):
        return (y - self.loc) * jnp.exp(-self.log_scale), -y.size * self.log_scale


class AffineCoupling(eqx.Module):
    """Checkerboard affine coupling with a periodic CNN conditioner (module docstring)."""

    convs: list
    conv_out: eqx.nn.Conv2d
    parity: int = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)

    def __init__(self, parity: int, width: int, hidden: int, kernel: int, symmetric: bool, *, key):
        keys = jax.random.split(key, hidden + 1)
        chans = [1] + [width] * hidden
        self.convs = [periodic_conv(chans[i], chans[i + 1], keys[i], kernel) for i in range(hidden)]
        self.conv_out = zero_conv(chans[-1], 2, keys[-1], kernel)
        self.parity, self.symmetric = int(parity), bool(symmetric)

    def _net(self, frozen):
        h = frozen[None]
        for conv in self.convs:
            h = jax.nn.silu(apply_conv(conv, h))
        out = apply_conv(self.conv_out, h)
        return out[0], out[1]

    def _shift_scale(self, frozen):
        g, h = self._net(frozen)
        if self.symmetric:
            g2, h2 = self._net(-frozen)
            g, h = 0.5 * (g + g2), 0.5 * (h - h2)
        return jnp.tanh(g), h

    def __call__(self, x):
        m = checkerboard(x.shape, self.parity)
        s, t = self._shift_scale(m * x)
        s, t = (1.0 - m) * s, (1.0 - m) * t
        return m * x + (1.0 - m) * (x * jnp.exp(s) + t), jnp.sum(s)

    def inverse(self, y):
        m = checkerboard(y.shape, self.parity)
        s, t = self._shift_scale(m * y)  # the frozen sites are unchanged
        s, t = (1.0 - m) * s, (1.0 - m) * t
        return m * y + (1.0 - m) * ((y - t) * jnp.exp(-s)), -jnp.sum(s)
