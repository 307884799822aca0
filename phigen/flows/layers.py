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
- :class:`SplineCoupling` (neural spline flows, Durkan et al. 2019): the same checkerboard and
  conditioner, but each moving site goes through a monotone rational-quadratic spline of ``bins``
  bins on ``[−bound, bound]`` (identity outside), whose bin widths, heights and knot derivatives
  the CNN gives; ``log|det| = Σ log y'(x)``. More flexible per site than ``x e^s + t`` (it can
  bend a one-site law into two peaks). Z₂ symmetry: the parameters are averaged with the
  *mirrored* parameters of ``−frozen`` (bins in reverse order), and a mirrored spline is the odd
  reflection of the original, so ``y(−x; −f) = −y(x; f)``.
- :class:`GlobalAffine`: ``y = μ + e^{σ} x`` (one learnable shift and scale for the whole field):
  data units.

The conditioner's output convolution starts at zero, so an untrained coupling is the identity.

**Conditional layers** (``cond`` > 0: a flow of p(x | c) for D standardised conditions c ``(D,)``):
the spectral multiplier becomes ``θ_k(c) = θ_k + Σ_d c_d θ_{d,k}``, the global affine's shift and
log-scale gain the same linear terms, and each coupling's CNN reads the D conditions as constant
input channels beside the frozen sites. Every layer takes ``c`` (None for an unconditional flow).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..nn.conv import apply_conv, periodic_conv, zero_conv

__all__ = ["SpectralScale", "AffineCoupling", "SplineCoupling", "rational_quadratic_spline", "GlobalAffine", "checkerboard", "symmetrise_spectrum"]


def checkerboard(shape, parity: int):
    """``(H, W)`` float mask, 1 on the sites with ``(i + j) % 2 == parity``."""
    i, j = jnp.meshgrid(jnp.arange(shape[0]), jnp.arange(shape[1]), indexing="ij")
    return ((i + j) % 2 == parity).astype(jnp.float32)


def symmetrise_spectrum(theta):
    """``½(θ_k + θ_{−k})`` on the full FFT grid ``(H, W)``: what makes a spectral multiplier real."""
    return 0.5 * (theta + jnp.roll(jnp.flip(theta, (0, 1)), 1, (0, 1)))


class SpectralScale(eqx.Module):
    """``y = F⁻¹[exp(θ_k) F x]`` (θ symmetrised); ``log|det| = Σ_k θ_k``. ``theta`` ``(H, W)``;
    conditional: ``theta_cond`` ``(D, H, W)``, ``θ(c) = θ + Σ_d c_d θ_d`` (None: unconditional)."""

    theta: jax.Array
    theta_cond: jax.Array | None = None

    def _multiplier(self, c):
        th = self.theta if self.theta_cond is None else self.theta + jnp.tensordot(c, self.theta_cond, 1)
        th = symmetrise_spectrum(th)
        return th, jnp.exp(th[:, : th.shape[1] // 2 + 1])

    def _apply(self, x, mult):
        return jnp.fft.irfft2(jnp.fft.rfft2(x) * mult, s=x.shape)

    def __call__(self, x, c=None):
        th, mult = self._multiplier(c)
        return self._apply(x, mult), jnp.sum(th)

    def inverse(self, y, c=None):
        th, mult = self._multiplier(c)
        return self._apply(y, 1.0 / mult), -jnp.sum(th)


class GlobalAffine(eqx.Module):
    """``y = loc + exp(log_scale)·x``; ``log|det| = H·W·log_scale``; conditional: ``cond_weights``
    ``(2, D)``, ``loc(c) = loc + w₀·c``, ``log_scale(c) = log_scale + w₁·c``."""

    loc: jax.Array
    log_scale: jax.Array
    cond_weights: jax.Array | None = None

    def _loc_scale(self, c):
        if self.cond_weights is None:
            return self.loc, self.log_scale
        return self.loc + self.cond_weights[0] @ c, self.log_scale + self.cond_weights[1] @ c

    def __call__(self, x, c=None):
        loc, log_scale = self._loc_scale(c)
        return loc + jnp.exp(log_scale) * x, x.size * log_scale

    def inverse(self, y, c=None):
        loc, log_scale = self._loc_scale(c)
        return (y - loc) * jnp.exp(-log_scale), -y.size * log_scale


def _conditioner(width: int, hidden: int, kernel: int, cond: int, n_out: int, key):
    """A coupling's periodic CNN: ``hidden`` convolutions of ``width`` channels from the frozen field
    (and ``cond`` condition channels), then a zero-initialised output convolution of ``n_out``."""
    keys = jax.random.split(key, hidden + 1)
    chans = [1 + int(cond)] + [width] * hidden
    convs = [periodic_conv(chans[i], chans[i + 1], keys[i], kernel) for i in range(hidden)]
    return convs, zero_conv(chans[-1], n_out, keys[-1], kernel)


def _apply_conditioner(convs, conv_out, frozen, c):
    """``(n_out, H, W)`` from the frozen field ``(H, W)`` and the conditions ``c`` ``(D,)`` (or None),
    which enter as constant channels."""
    h = frozen[None]
    if c is not None:
        h = jnp.concatenate([h, jnp.broadcast_to(c[:, None, None], (c.shape[0], *frozen.shape))])
    for conv in convs:
        h = jax.nn.silu(apply_conv(conv, h))
    return apply_conv(conv_out, h)


class AffineCoupling(eqx.Module):
    """Checkerboard affine coupling with a periodic CNN conditioner (module docstring)."""

    convs: list
    conv_out: eqx.nn.Conv2d
    parity: int = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)

    def __init__(self, parity: int, width: int, hidden: int, kernel: int, symmetric: bool, *, key, cond: int = 0):
        self.convs, self.conv_out = _conditioner(width, hidden, kernel, cond, 2, key)
        self.parity, self.symmetric = int(parity), bool(symmetric)

    def _net(self, frozen, c):
        out = _apply_conditioner(self.convs, self.conv_out, frozen, c)
        return out[0], out[1]

    def _shift_scale(self, frozen, c):
        g, h = self._net(frozen, c)
        if self.symmetric:  # even / odd in the field at fixed conditions
            g2, h2 = self._net(-frozen, c)
            g, h = 0.5 * (g + g2), 0.5 * (h - h2)
        return jnp.tanh(g), h

    def __call__(self, x, c=None):
        m = checkerboard(x.shape, self.parity)
        s, t = self._shift_scale(m * x, c)
        s, t = (1.0 - m) * s, (1.0 - m) * t
        return m * x + (1.0 - m) * (x * jnp.exp(s) + t), jnp.sum(s)

    def inverse(self, y, c=None):
        m = checkerboard(y.shape, self.parity)
        s, t = self._shift_scale(m * y, c)  # the frozen sites are unchanged
        s, t = (1.0 - m) * s, (1.0 - m) * t
        return m * y + (1.0 - m) * ((y - t) * jnp.exp(-s)), -jnp.sum(s)


def rational_quadratic_spline(x, widths, heights, derivs, bound: float, inverse: bool = False):
    """Monotone rational-quadratic spline (Durkan et al. 2019) applied elementwise, identity outside
    ``[−bound, bound]``. ``x`` ``(...)``; unnormalised ``widths``, ``heights`` ``(K, ...)`` (softmax over
    the bins), ``derivs`` ``(K−1, ...)`` interior knot slopes (softplus, 1 at 0; the end slopes are 1,
    matching the identity tails). Returns ``(y, log y'(x))`` — for ``inverse=True``, ``(x(y), −log y'(x))``
    evaluated at the input ``y``."""
    k = widths.shape[0]
    min_bin, min_d = 1e-3, 1e-3
    w = min_bin + (1 - min_bin * k) * jax.nn.softmax(widths, axis=0)
    h = min_bin + (1 - min_bin * k) * jax.nn.softmax(heights, axis=0)
    ones = jnp.ones_like(derivs[:1])
    d = jnp.concatenate([ones, min_d + jax.nn.softplus(derivs) / jnp.log(2.0) * (1 - min_d), ones], axis=0)
    xk = jnp.concatenate([jnp.zeros_like(w[:1]), jnp.cumsum(w, axis=0)], axis=0) * 2 * bound - bound
    yk = jnp.concatenate([jnp.zeros_like(h[:1]), jnp.cumsum(h, axis=0)], axis=0) * 2 * bound - bound
    w, h = 2 * bound * w, 2 * bound * h
    inside = (x > -bound) & (x < bound)
    knots = yk if inverse else xk
    idx = jnp.clip(jnp.sum(x[None] >= knots[1:-1], axis=0), 0, k - 1)[None]
    pick = lambda a: jnp.take_along_axis(a, idx, axis=0)[0]  # noqa: E731
    x0, y0, wb, hb, d0, d1 = pick(xk[:-1]), pick(yk[:-1]), pick(w), pick(h), pick(d[:-1]), pick(d[1:])
    sb = hb / wb
    if inverse:
        dy = x - y0
        a = hb * (sb - d0) + dy * (d1 + d0 - 2 * sb)
        b = hb * d0 - dy * (d1 + d0 - 2 * sb)
        c = -sb * dy
        xi = (2 * c) / (-b - jnp.sqrt(jnp.maximum(b * b - 4 * a * c, 0.0)))
        out = x0 + xi * wb
    else:
        xi = (x - x0) / wb
        out = y0 + hb * (sb * xi**2 + d0 * xi * (1 - xi)) / (sb + (d1 + d0 - 2 * sb) * xi * (1 - xi))
    xi = jnp.clip(xi, 0.0, 1.0)
    denom = sb + (d1 + d0 - 2 * sb) * xi * (1 - xi)
    logd = 2 * jnp.log(sb) + jnp.log(d1 * xi**2 + 2 * sb * xi * (1 - xi) + d0 * (1 - xi) ** 2) - 2 * jnp.log(denom)
    y = jnp.where(inside, out, x)
    logd = jnp.where(inside, logd, 0.0)
    return y, (-logd if inverse else logd)


class SplineCoupling(eqx.Module):
    """Checkerboard rational-quadratic spline coupling with a periodic CNN conditioner (module
    docstring): ``3·bins − 1`` output channels (widths, heights, interior slopes) per site."""

    convs: list
    conv_out: eqx.nn.Conv2d
    parity: int = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)
    bins: int = eqx.field(static=True)
    bound: float = eqx.field(static=True)

    def __init__(self, parity: int, width: int, hidden: int, kernel: int, symmetric: bool, *, key, cond: int = 0,
                 bins: int = 8, bound: float = 5.0):
        # a zero output convolution: the identity spline
        self.convs, self.conv_out = _conditioner(width, hidden, kernel, cond, 3 * int(bins) - 1, key)
        self.parity, self.symmetric, self.bins, self.bound = int(parity), bool(symmetric), int(bins), float(bound)

    def _net(self, frozen, c):
        return _apply_conditioner(self.convs, self.conv_out, frozen, c)

    def _params(self, frozen, c):
        k = self.bins
        out = self._net(frozen, c)
        if self.symmetric:  # average with the mirrored parameters of −frozen: the spline is then odd in (x, f)
            m = self._net(-frozen, c)
            mirrored = jnp.concatenate([m[k - 1::-1], m[2 * k - 1:k - 1:-1], m[:2 * k - 1:-1]], axis=0)
            out = 0.5 * (out + mirrored)
        return out[:k], out[k:2 * k], out[2 * k:]

    def __call__(self, x, c=None):
        m = checkerboard(x.shape, self.parity)
        y, logd = rational_quadratic_spline(x, *self._params(m * x, c), self.bound)
        return m * x + (1.0 - m) * y, jnp.sum((1.0 - m) * logd)

    def inverse(self, y, c=None):
        m = checkerboard(y.shape, self.parity)
        x, logd = rational_quadratic_spline(y, *self._params(m * y, c), self.bound, inverse=True)
        return m * y + (1.0 - m) * x, jnp.sum((1.0 - m) * logd)
