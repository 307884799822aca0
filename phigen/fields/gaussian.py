"""Periodic 2D Gaussian random fields with a prescribed isotropic power spectrum.

A field is white noise w (unit variance per pixel) filtered in Fourier space:

    x = IFFT( FFT(w) · sqrt(P(|k|)) ),   so that   <|x̂(k)|²> / V = P(|k|)

exactly, with V = H·W and k in radians per pixel (k = 2π m / L) — the normalisation of
:func:`phigen.stats.power_spectrum`. Filtering real noise keeps exact Hermitian symmetry
(including the self-conjugate Nyquist modes), so the field is real without any projection.
The pixel variance is σ² = (1/V) Σ_k P(|k|).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ParameterError
from .._validation import check_int_at_least
from ..stats._binning import parse_size, wavenumber_grid


@dataclass(frozen=True)
class PowerLawSpectrum:
    """``P(k) = amplitude · k^(-slope) · exp(-(k/k_cut)²)`` for k > 0 and ``P(0) = 0``.

    ``k_cut = None`` means no cut-off. Callable on numpy or JAX arrays of |k| (rad/pixel).
    """

    slope: float
    amplitude: float = 1.0
    k_cut: float | None = None

    def __call__(self, k):
        xp = jnp if isinstance(k, jax.Array) else np
        k = xp.asarray(k)
        positive = k > 0
        safe_k = xp.where(positive, k, 1.0)  # avoids 0**(-slope) in the branch that is discarded
        p = self.amplitude * safe_k ** (-self.slope)
        if self.k_cut is not None:
            p = p * xp.exp(-((safe_k / self.k_cut) ** 2))
        return xp.where(positive, p, 0.0)


def power_law_spectrum(slope, amplitude=1.0, *, k_cut=None) -> PowerLawSpectrum:
    """Power-law spectrum ``P(k) = amplitude · k^(-slope)`` (P(0) = 0), optionally times
    ``exp(-(k/k_cut)²)`` to make smooth fields. Returns a frozen, callable :class:`PowerLawSpectrum`.
    """
    slope = float(slope)
    amplitude = float(amplitude)
    if not np.isfinite(slope):
        raise ParameterError(f"slope must be finite; got {slope!r}")
    if not (np.isfinite(amplitude) and amplitude > 0):
        raise ParameterError(f"amplitude must be > 0; got {amplitude!r}")
    if k_cut is not None:
        k_cut = float(k_cut)
        if not (np.isfinite(k_cut) and k_cut > 0):
            raise ParameterError(f"k_cut must be > 0; got {k_cut!r}")
    return PowerLawSpectrum(slope, amplitude, k_cut)


def spectrum_amplitude(spectrum, size) -> np.ndarray:
    """``sqrt(P(|k|))`` on the rfft half-grid ``(H, W//2 + 1)`` (float64), with input checks."""
    if not callable(spectrum):
        raise ParameterError(f"spectrum must be a callable P(k); got {type(spectrum).__name__}")
    h, w = parse_size(size)
    kmag = wavenumber_grid((h, w))[:, : w // 2 + 1]
    with np.errstate(all="ignore"):
        try:
            p = np.asarray(spectrum(kmag), dtype=np.float64)
        except Exception as err:  # a user callable: report what broke, as a parameter problem
            raise ParameterError(f"spectrum(k) failed on a ({h}, {w}) grid of |k|: {err}") from err
    if p.shape != kmag.shape:
        try:
            p = np.broadcast_to(p, kmag.shape)
        except ValueError:
            raise ParameterError(f"spectrum(k) must return an array shaped like k; got {p.shape}") from None
    if not np.all(np.isfinite(p)):
        bad = kmag[~np.isfinite(p)]
        raise ParameterError(f"spectrum(k) is not finite at k = {bad[:3]} (define P(0), e.g. 0)")
    if np.any(p < 0):
        raise ParameterError(f"spectrum(k) must be >= 0; minimum {p.min()}")
    return np.sqrt(p)


@partial(jax.jit, static_argnames=("n", "shape", "dtype"))
def _filtered_noise(key, amplitude, n: int, shape, dtype):
    noise = jax.random.normal(key, (n, *shape), dtype=dtype)
    spec = jnp.fft.rfft2(noise) * amplitude
    return jnp.fft.irfft2(spec, s=shape).astype(dtype)


def gaussian_field(key, n, size, spectrum, *, dtype=jnp.float32):
    """Draw ``n`` periodic Gaussian fields with isotropic power spectrum ``spectrum(|k|)``.

    key: a JAX PRNG key; n: number of fields (>= 1); size: int L or (H, W), each >= 2;
    spectrum: callable of |k| in rad/pixel (k = 2π m / L) returning P >= 0 (finite, also at k = 0).
    Returns an ``(n, H, W)`` array with ``<|x̂(k)|²>/V = spectrum(|k|)`` (see module docstring).
    """
    n = check_int_at_least(n, "n", 1)
    shape = parse_size(size)
    amp = spectrum_amplitude(spectrum, shape)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ParameterError(f"dtype must be a floating type; got {dtype}")
    return _filtered_noise(key, jnp.asarray(amp, dtype=dtype), n, shape, dtype)


# ---- the "gaussian" field kind (phigen.generate, docs/architecture.md) -------------------------------
def _build_gaussian(size: int, seed: int, *, n: int, path, progress, batch_size: int, slope: float = 2.0,
                    amplitude: float = 1.0):
    spectrum = power_law_spectrum(slope, amplitude)
    key = jax.random.PRNGKey(seed)
    fn = jax.jit(lambda k, n: gaussian_field(k, n, size, spectrum), static_argnums=1)

    def make_batch(b, count):  # independent fields: each its own group, labelled by its index
        start = b * batch_size
        return jax.device_get(fn(jax.random.fold_in(key, b), count)), None, np.arange(start, start + count)

    params = {"slope": float(slope), "amplitude": float(amplitude)}
    config = {"kind": "gaussian", "size": size, "spectrum": "amplitude * k**-slope, P(0)=0", **params,
              "group_kind": "field"}
    return make_batch, params, config, None


def field_groups(n: int, batch_size: int, config) -> tuple[np.ndarray, str, str]:
    """Independent fields: each its own group, labelled by its index."""
    return np.arange(n, dtype=np.int64), "field", "independent fields: each its own group"


def _register():
    from .kind import FieldKind, FieldOption, register_field_kind

    register_field_kind(FieldKind(
        "gaussian", _build_gaussian, 256, "Gaussian random field with P(k) ∝ k^-slope",
        options=(FieldOption("slope", float, "P(k) ∝ k^-slope"), FieldOption("amplitude", float, "spectrum amplitude")),
        groups=field_groups,
        # The zero-mean Gaussian law is sign-symmetric, but compare's sign augmentation adds nothing to a
        # model of its spectrum: left off, so that compare fits exactly what was asked.
        symmetries=("shifts", "dihedral", "sign"), sign_symmetric=False))


_register()
