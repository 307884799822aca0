"""Periodic orthogonal 2D discrete wavelet transform (DWT) and its inverse, in JAX.

One level splits a field ``x`` of shape ``(..., H, W)`` into a coarse field and three detail channels

    a  = Lr Lc x,   d_0 = Hr Lc x,   d_1 = Lr Hc x,   d_2 = Hr Hc x      (each (..., H/2, W/2))

where ``Lr``/``Hr`` filter and decimate along rows (axis -2) and ``Lc``/``Hc`` along columns
(axis -1) with the periodic ("periodization") convolution of pywavelets,

    (L y)[i] = Σ_k h[k] · y[(2i + F/2 − k) mod n],   F = filter length, h = ``dec_lo`` (``dec_hi`` for H).

The channel order is pywavelets' ``(cH, cV, cD)``. For an orthogonal wavelet the transform is an
orthogonal matrix, so ``Σ x² = Σ a² + Σ d²`` and the inverse is its transpose. Filters come from
pywavelets (any orthogonal family: ``haar``, ``dbN``, ``symN``, ``coifN``...); the transform is JAX
(jit-able, differentiable, batched over any leading axes).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError


class WaveletCoeffs(NamedTuple):
    """Multi-level DWT of fields ``(..., H, W)``.

    ``approx`` (..., H/2^J, W/2^J): the coarse field x_J.
    ``details``: tuple of J arrays, ``details[j-1]`` is level j (j = 1 finest), shape
    (..., 3, H/2^j, W/2^j), channels (cH, cV, cD) as in pywavelets.
    """

    approx: jax.Array
    details: tuple

    @property
    def levels(self) -> int:
        return len(self.details)


@functools.lru_cache(maxsize=64)
def wavelet_filters(wavelet: str = "db4") -> tuple[np.ndarray, np.ndarray]:
    """Analysis filters ``(dec_lo, dec_hi)`` (float64, length F) of an orthogonal pywavelets wavelet."""
    import pywt

    if not isinstance(wavelet, str):
        raise ParameterError(f"wavelet must be a pywavelets name such as 'db4'; got {wavelet!r}")
    try:
        w = pywt.Wavelet(wavelet)
    except ValueError as exc:
        raise ParameterError(f"unknown wavelet {wavelet!r} (see pywt.wavelist(kind='discrete'))") from exc
    if not w.orthogonal:
        raise ParameterError(f"wavelet {wavelet!r} is not orthogonal; use haar, dbN, symN or coifN")
    lo, hi = np.asarray(w.dec_lo, np.float64), np.asarray(w.dec_hi, np.float64)
    return lo, hi


def _check_even(shape, name):
    if len(shape) < 2 or shape[-1] % 2 or shape[-2] % 2 or shape[-1] < 2 or shape[-2] < 2:
        raise InputError(f"{name} must have even height and width for a periodic DWT level; got shape {tuple(shape)}")


def analysis_1d(x, lo, hi, axis):
    """Filter + decimate along ``axis`` (periodic): returns (low, high), each half the length."""
    n = x.shape[axis]
    f = lo.shape[0]
    shift = f // 2
    # Extend periodically once so that every tap is a static strided slice (no gather per tap).
    lo_idx = shift - (f - 1)
    ext = np.arange(lo_idx, n - 2 + shift + 1) % n
    xe = jnp.take(x, jnp.asarray(ext), axis=axis)
    low = high = 0.0
    for k in range(f):
        start = shift - k - lo_idx
        sl = jax.lax.slice_in_dim(xe, start, start + n - 1, stride=2, axis=axis)
        low = low + lo[k] * sl
        high = high + hi[k] * sl
    return low, high


def _synthesis_1d(low, high, lo, hi, axis):
    """Adjoint of :func:`analysis_1d` (its inverse for orthogonal filters)."""
    n = 2 * low.shape[axis]
    f = lo.shape[0]
    shift = f // 2
    # x[p] = Σ_i Σ_k h[k] a[i] δ(p ≡ 2i + shift − k): upsample onto the even sites, then correlate.
    ul, uh = _interleave(low, axis, n), _interleave(high, axis, n)
    out = 0.0
    for k in range(f):
        # u[(p + k - shift) mod n] holds the coefficient sitting at site 2i = p + k - shift.
        out = out + lo[k] * jnp.roll(ul, -(k - shift), axis=axis) + hi[k] * jnp.roll(uh, -(k - shift), axis=axis)
    return out


def _interleave(c, axis, n):
    c = jnp.moveaxis(c, axis, -1)
    z = jnp.stack([c, jnp.zeros_like(c)], axis=-1).reshape(c.shape[:-1] + (n,))
    return jnp.moveaxis(z, -1, axis)


def wavelet_level(x, lo, hi):
    lr, hr = analysis_1d(x, lo, hi, axis=x.ndim - 2)
    a, d1 = analysis_1d(lr, lo, hi, axis=x.ndim - 1)
    d0, d2 = analysis_1d(hr, lo, hi, axis=x.ndim - 1)
    return a, jnp.stack([d0, d1, d2], axis=-3)


def inverse_level(a, d, lo, hi):
    nd = a.ndim
    lr = _synthesis_1d(a, d[..., 1, :, :], lo, hi, axis=nd - 1)
    hr = _synthesis_1d(d[..., 0, :, :], d[..., 2, :, :], lo, hi, axis=nd - 1)
    return _synthesis_1d(lr, hr, lo, hi, axis=nd - 2)


@functools.partial(jax.jit, static_argnames=("wavelet",))
def _dwt_level_jit(x, wavelet):
    lo, hi = wavelet_filters(wavelet)
    return wavelet_level(x, lo.astype(np.float32), hi.astype(np.float32))


@functools.partial(jax.jit, static_argnames=("wavelet",))
def _idwt_level_jit(a, d, wavelet):
    lo, hi = wavelet_filters(wavelet)
    return inverse_level(a, d, lo.astype(np.float32), hi.astype(np.float32))


def dwt_level(x, wavelet: str = "db4"):
    """One periodic DWT level: ``x (..., H, W) -> (approx (..., H/2, W/2), details (..., 3, H/2, W/2))``.

    Equals ``pywt.dwt2(x, wavelet, mode="periodization")`` with details stacked as (cH, cV, cD).
    A single (H, W) field is treated as a batch of one.
    """
    wavelet_filters(wavelet)
    x = jnp.asarray(as_fields(x, name="x"))
    _check_even(x.shape, "x")
    return _dwt_level_jit(x, wavelet)


def idwt_level(approx, details, wavelet: str = "db4"):
    """Inverse of :func:`dwt_level`: ``(approx (..., h, w), details (..., 3, h, w)) -> x (..., 2h, 2w)``."""
    wavelet_filters(wavelet)
    a = jnp.asarray(as_fields(approx, name="approx"))
    d = jnp.asarray(as_fields(details, name="details", min_ndim=3, allow_batchless=False))
    if d.ndim == a.ndim:  # a single (3, h, w) detail block for a single (h, w) coarse field
        d = d[None]
    if d.shape[-3] != 3 or d.shape[-2:] != a.shape[-2:] or d.shape[:-3] != a.shape[:-2]:
        raise InputError(f"details must have shape (..., 3, h, w) matching approx {tuple(a.shape)}; got {tuple(d.shape)}")
    return _idwt_level_jit(a, d, wavelet)


def _check_levels(shape, J):
    J = int(J)
    if J < 1:
        raise ParameterError(f"J (number of DWT levels) must be >= 1; got {J}")
    h, w = shape[-2:]
    if h % 2**J or w % 2**J:
        raise InputError(f"fields of shape {(h, w)} cannot be split into J={J} periodic DWT levels: "
                         f"height and width must be multiples of 2^J = {2**J}")
    return J


@functools.partial(jax.jit, static_argnames=("wavelet", "J"))
def _dwt_jit(x, wavelet, J):
    lo, hi = (f.astype(np.float32) for f in wavelet_filters(wavelet))
    details = []
    for _ in range(J):
        x, d = wavelet_level(x, lo, hi)
        details.append(d)
    return WaveletCoeffs(x, tuple(details))


@functools.partial(jax.jit, static_argnames=("wavelet",))
def _idwt_jit(coeffs, wavelet):
    lo, hi = (f.astype(np.float32) for f in wavelet_filters(wavelet))
    x = coeffs.approx
    for d in reversed(coeffs.details):
        x = inverse_level(x, d, lo, hi)
    return x


def dwt(x, wavelet: str = "db4", J: int = 3) -> WaveletCoeffs:
    """J-level periodic orthogonal DWT of fields ``(..., H, W)`` (H, W multiples of 2^J).

    Returns :class:`WaveletCoeffs` ``(approx, details)`` with ``details[j-1]`` the level-j details
    ``(..., 3, H/2^j, W/2^j)``; ``pywt.wavedec2(x, wavelet, mode="periodization", level=J)`` lists
    the same arrays coarse-to-fine (see :func:`to_pywt`).
    """
    wavelet_filters(wavelet)
    x = jnp.asarray(as_fields(x, name="x"))
    J = _check_levels(x.shape, J)
    return _dwt_jit(x, wavelet, J)


def idwt(coeffs: WaveletCoeffs, wavelet: str = "db4"):
    """Inverse of :func:`dwt`: :class:`WaveletCoeffs` -> fields ``(..., H, W)``."""
    wavelet_filters(wavelet)
    if not isinstance(coeffs, WaveletCoeffs):
        if isinstance(coeffs, (tuple, list)) and len(coeffs) == 2:
            coeffs = WaveletCoeffs(coeffs[0], tuple(coeffs[1]))
        else:
            raise InputError("coeffs must be a WaveletCoeffs (approx, details) as returned by dwt()")
    a = jnp.asarray(as_fields(coeffs.approx, name="approx"))
    details = []
    h, w = a.shape[-2:]
    for j, d in enumerate(reversed(tuple(coeffs.details))):
        d = jnp.asarray(as_fields(d, name="details", min_ndim=3, allow_batchless=False))
        if d.ndim == a.ndim:
            d = d[None]
        expect = a.shape[:-2] + (3, h * 2**j, w * 2**j)
        if tuple(d.shape) != expect:
            raise InputError(f"details of level {len(coeffs.details) - j} must have shape {expect}; got {tuple(d.shape)}")
        details.append(d)
    return _idwt_jit(WaveletCoeffs(a, tuple(reversed(details))), wavelet)


def to_pywt(coeffs: WaveletCoeffs) -> list:
    """Coefficients in pywavelets' ``wavedec2`` layout ``[cA_J, (cH_J, cV_J, cD_J), …, (cH_1, cV_1, cD_1)]`` (numpy)."""
    out = [np.asarray(coeffs.approx)]
    for d in reversed(coeffs.details):
        d = np.asarray(d)
        out.append((d[..., 0, :, :], d[..., 1, :, :], d[..., 2, :, :]))
    return out


def from_pywt(coeff_list) -> WaveletCoeffs:
    """Inverse of :func:`to_pywt`: a ``pywt.wavedec2`` list -> :class:`WaveletCoeffs` (float32 JAX arrays)."""
    approx = jnp.asarray(np.asarray(coeff_list[0], np.float32))
    details = [jnp.asarray(np.stack([np.asarray(c, np.float32) for c in lvl], axis=-3)) for lvl in coeff_list[1:]]
    return WaveletCoeffs(approx, tuple(reversed(details)))


# --- standardised detail channels ---------------------------------------------------------------
class DetailStandardizer(NamedTuple):
    """Per-level, per-channel affine standardisation of DWT coefficients (a pytree; store it in model files).

    ``detail_mean``/``detail_std`` (J, 3): mean and std of each detail channel at each level over a
    dataset (batch and pixels); ``approx_mean``/``approx_std`` scalars for the coarse field.
    ``apply`` maps coefficients to zero-mean unit-variance channels, ``invert`` undoes it exactly.
    """

    detail_mean: jax.Array
    detail_std: jax.Array
    approx_mean: jax.Array
    approx_std: jax.Array

    @classmethod
    def fit(cls, coeffs: WaveletCoeffs, *, eps: float = 1e-12) -> "DetailStandardizer":
        """Statistics over all leading axes and pixels of ``coeffs`` (e.g. the DWT of a training set)."""
        means, stds = [], []
        for d in coeffs.details:
            axes = tuple(i for i in range(d.ndim) if i != d.ndim - 3)
            means.append(jnp.mean(d, axis=axes))
            stds.append(jnp.std(d, axis=axes))
        std = jnp.maximum(jnp.stack(stds), eps)
        a = coeffs.approx
        return cls(jnp.stack(means), std, jnp.mean(a), jnp.maximum(jnp.std(a), eps))

    def apply(self, coeffs: WaveletCoeffs) -> WaveletCoeffs:
        """``(d − mean_j,c) / std_j,c`` per level j and channel c; the coarse field likewise."""
        if len(coeffs.details) != self.detail_mean.shape[0]:
            raise InputError(f"standardizer has {self.detail_mean.shape[0]} levels, coefficients have {len(coeffs.details)}")
        details = tuple((d - self.detail_mean[j][:, None, None]) / self.detail_std[j][:, None, None]
                        for j, d in enumerate(coeffs.details))
        return WaveletCoeffs((coeffs.approx - self.approx_mean) / self.approx_std, details)

    def invert(self, coeffs: WaveletCoeffs) -> WaveletCoeffs:
        """Inverse of :meth:`apply`."""
        if len(coeffs.details) != self.detail_mean.shape[0]:
            raise InputError(f"standardizer has {self.detail_mean.shape[0]} levels, coefficients have {len(coeffs.details)}")
        details = tuple(d * self.detail_std[j][:, None, None] + self.detail_mean[j][:, None, None]
                        for j, d in enumerate(coeffs.details))
        return WaveletCoeffs(coeffs.approx * self.approx_std + self.approx_mean, details)

    def apply_level(self, details, level: int):
        """Standardise one level's details ``(..., 3, h, w)`` (level j = 1 finest)."""
        j = int(level) - 1
        return (details - self.detail_mean[j][:, None, None]) / self.detail_std[j][:, None, None]

    def invert_level(self, details, level: int):
        """Inverse of :meth:`apply_level`."""
        j = int(level) - 1
        return details * self.detail_std[j][:, None, None] + self.detail_mean[j][:, None, None]


def detail_statistics(coeffs: WaveletCoeffs):
    """Per-level, per-channel ``(mean (J, 3), std (J, 3))`` of DWT details over batch and pixels."""
    s = DetailStandardizer.fit(coeffs)
    return s.detail_mean, s.detail_std
