"""Lattice φ⁴ observables with autocorrelation-aware error bars.

Conventions (hopping form, periodic L×L lattice, V = L²):

- magnetisation ``m = V⁻¹ Σ_x φ_x`` per configuration;
- ``χ = V(⟨m²⟩ − ⟨|m|⟩²)`` (the finite-volume susceptibility used on both sides of κ_c) and the
  full susceptibility ``χ_full = V⟨m²⟩ = ⟨|φ̂(0)|²⟩/V``;
- Binder cumulant ``U₄ = 1 − ⟨m⁴⟩/(3⟨m²⟩²)``: 0 for a Gaussian m (disordered phase), 2/3 for
  m = ±m₀ (ordered phase), U* ≈ 0.611 at the 2D Ising fixed point;
- action density ``S/V`` with ``S = Σ_x [−2κ Σ_μ φ_x φ_{x+μ} + φ_x² + λ(φ_x² − 1)²]`` and the link
  energy ``E = (2V)⁻¹ Σ_x Σ_μ φ_x φ_{x+μ}`` (mean over the 2V links);
- ``φ̂(k) = Σ_x φ_x e^{−ik·x}`` (numpy's unnormalised fft2).

Input layouts: a time series ``(n_steps, C, L, L)`` (the natural output of a scan over C chains)
or a batch ``(N, L, L)``, read as ONE chain of N consecutive configurations (independent samples
simply come out with τ_int ≈ ½). Errors use the Γ-method for plain means and a binned jackknife,
with blocks ≥ 8 τ_int long in every chain, for ratios and differences of means.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError
from ..samplers.diagnostics import binned_jackknife, integrated_autocorrelation_time, mean_with_error

__all__ = ["Estimate", "magnetisation", "phi4_observables", "binder_cumulant",
           "two_point_function_phi4", "second_moment_correlation_length"]


class Estimate(NamedTuple):
    """A value with its one-standard-error bar."""

    value: float
    error: float


def _as_series(phi, name="phi"):
    """(n_steps, C, L, L) float32 numpy/JAX array from a series or a batch (N, L, L) = one chain."""
    if np.ndim(phi) == 4:
        arr = phi if hasattr(phi, "dtype") else np.asarray(phi)
        n, c = arr.shape[:2]
        flat = as_fields(arr.reshape((n * c,) + tuple(arr.shape[2:])), name=name)
        arr = flat.reshape((n, c) + tuple(flat.shape[1:]))
    elif np.ndim(phi) in (2, 3):
        arr = as_fields(phi, name=name)[:, None]
    else:
        raise InputError(f"{name} must have shape (n_steps, C, L, L), (N, L, L) or (L, L); got {np.shape(phi)}")
    if arr.shape[-1] != arr.shape[-2]:
        raise InputError(f"{name} must live on a square L×L lattice; got {arr.shape[-2]}×{arr.shape[-1]}")
    if arr.shape[-1] < 2:
        raise ParameterError(f"the lattice must be at least 2×2; got {arr.shape[-2:]}")
    if arr.shape[0] < 2:
        raise InputError(f"{name} needs at least 2 configurations per chain for an error bar; "
                         f"got shape {tuple(arr.shape)} (n_steps, C, L, L)")
    return arr


def magnetisation(phi):
    """``m = V⁻¹ Σ_x φ_x`` over the last two axes: ``(..., L1, L2) -> (...)``, float32 JAX array."""
    arr = as_fields(phi, name="phi", allow_batchless=False, dtype=None)
    return jnp.mean(jnp.asarray(arr, jnp.float32), axis=(-2, -1))


def _block_bins(n_steps, tau, n_bins):
    if n_bins is not None:
        if int(n_bins) != n_bins or not 1 <= n_bins <= n_steps:
            raise ParameterError(f"n_bins must be an integer in [1, n_steps={n_steps}]; got {n_bins!r}")
        return int(n_bins)
    # Blocks of ≥ 8 τ_int steps (≈ 4 decorrelation times 2τ) make neighbouring blocks nearly
    # independent; at most 32 per chain is plenty with several chains.
    return int(max(1, min(32, n_steps // max(1, math.ceil(8.0 * tau)))))


def _jackknife_units(n_chains, n_bins):
    if n_chains * n_bins < 2:
        raise ParameterError("need at least 2 jackknife blocks: give several chains or a longer series")


def binder_cumulant(m_samples, *, n_bins: int | None = None) -> Estimate:
    """Binder cumulant ``U₄ = 1 − ⟨m⁴⟩/(3⟨m²⟩²)`` with a binned-jackknife error.

    m_samples: ``(n_steps,)`` (one chain) or ``(n_steps, C)``. Default blocks: ≥ 8 τ_int(m²) long.
    """
    m = np.asarray(m_samples, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise InputError(f"m_samples must have shape (n_steps,) or (n_steps, C); got {np.shape(m_samples)}")
    m2 = (m * m).T
    bins = _block_bins(m2.shape[1], integrated_autocorrelation_time(m2).tau, n_bins)
    _jackknife_units(m2.shape[0], bins)
    est = binned_jackknife(lambda a2, a4: 1.0 - a4 / (3.0 * a2 * a2), m2, m2 * m2, n_bins=bins)
    return Estimate(est.value, est.error)


def _per_config(phi, kappa, lam):
    """m, S/V, link energy, ⟨φ²⟩ per configuration: each (n_steps, C) float64 numpy."""
    p = jnp.asarray(phi, jnp.float32)
    links = p * (jnp.roll(p, -1, axis=-1) + jnp.roll(p, -1, axis=-2))
    p2 = p * p
    density = -2.0 * kappa * links + p2 + lam * (p2 - 1.0) ** 2
    axes = (-2, -1)
    out = (jnp.mean(p, axes), jnp.mean(density, axes), 0.5 * jnp.mean(links, axes), jnp.mean(p2, axes))
    return [np.asarray(o, dtype=np.float64) for o in out]


def phi4_observables(phi_series, kappa, lam, *, n_bins: int | None = None) -> dict:
    """The standard φ⁴ observables of a series ``(n_steps, C, L, L)`` (or batch ``(N, L, L)``).

    Returns a dict of :class:`Estimate` (value, error):
    ``m`` ⟨m⟩, ``abs_m`` ⟨|m|⟩, ``m2`` ⟨m²⟩, ``chi`` V(⟨m²⟩ − ⟨|m|⟩²), ``chi_full`` V⟨m²⟩,
    ``binder`` 1 − ⟨m⁴⟩/(3⟨m²⟩²), ``action_density`` ⟨S⟩/V, ``link_energy`` ⟨E⟩, ``phi2`` ⟨φ²⟩,
    ``tau_int_abs_m`` and ``tau_int_m`` (Γ-method τ_int in steps; a huge ``tau_int_m`` with a
    small ``tau_int_abs_m`` means the chains do not tunnel between the two signs);
    plus ``n_configurations`` (int) and ``n_bins`` (jackknife blocks per chain).
    Plain means use the Γ-method; χ and U₄ a binned jackknife over blocks ≥ 8 τ_int long.
    """
    for name, v in (("kappa", kappa), ("lam", lam)):
        if not np.isfinite(v):
            raise ParameterError(f"{name} must be finite; got {v!r}")
    phi = _as_series(phi_series, "phi_series")
    n_steps, n_chains, size = phi.shape[0], phi.shape[1], phi.shape[-1]
    volume = size * size
    m, action, link, phi2 = _per_config(phi, float(kappa), float(lam))
    # diagnostics want (n_chains, n_steps)
    m, action, link, phi2 = m.T, action.T, link.T, phi2.T
    abs_m, m2 = np.abs(m), m * m

    def gamma(x):
        r = mean_with_error(x)
        return Estimate(r.mean, r.error)

    tau_abs = integrated_autocorrelation_time(abs_m)
    tau_m = integrated_autocorrelation_time(m)
    tau_m2 = integrated_autocorrelation_time(m2)
    bins = _block_bins(n_steps, max(tau_abs.tau, tau_m2.tau), n_bins)
    _jackknife_units(n_chains, bins)
    chi = binned_jackknife(lambda a2, a1: volume * (a2 - a1 * a1), m2, abs_m, n_bins=bins)
    binder = binned_jackknife(lambda a2, a4: 1.0 - a4 / (3.0 * a2 * a2), m2, m2 * m2, n_bins=bins)
    m2_est = gamma(m2)
    return {
        "m": gamma(m),
        "abs_m": gamma(abs_m),
        "m2": m2_est,
        "chi": Estimate(chi.value, chi.error),
        "chi_full": Estimate(volume * m2_est.value, volume * m2_est.error),
        "binder": Estimate(binder.value, binder.error),
        "action_density": gamma(action),
        "link_energy": gamma(link),
        "phi2": gamma(phi2),
        "tau_int_abs_m": Estimate(tau_abs.tau, tau_abs.error),
        "tau_int_m": Estimate(tau_m.tau, tau_m.error),
        "n_configurations": int(n_steps * n_chains),
        "n_bins": bins,
    }


def two_point_function_phi4(phi, *, zero_momentum: bool = False, connected: bool = False):
    """Two-point function along the lattice axes, averaged over both axes, sites and samples.

    phi: ``(..., L, L)`` (any leading axes: a batch or a series). Returns float64 ``(L,)``:
    plain ``G(r) = ⟨φ_x φ_{x+r ê}⟩``, or with ``zero_momentum=True`` the time-slice correlator
    ``G₀(t) = V⁻¹ ⟨Σ_{t₀} S_{t₀} S_{t₀+t}⟩`` of the line sums ``S_t = Σ_y φ_{t,y}``, normalised so that
    ``Σ_t G₀(t) = χ_full = V⟨m²⟩``. ``connected=True`` replaces φ by φ − ⟨φ⟩, ⟨φ⟩ the mean over
    all sites and samples given. Periodic, so G(r) = G(L − r).
    """
    arr = as_fields(np.reshape(phi, (-1,) + tuple(np.shape(phi)[-2:])) if np.ndim(phi) > 3 else phi,
                    name="phi")
    if arr.shape[-1] != arr.shape[-2]:
        raise InputError(f"phi must live on a square L×L lattice; got {arr.shape[-2]}×{arr.shape[-1]}")
    p = jnp.asarray(arr, jnp.float32)
    if connected:
        p = p - jnp.mean(p)
    size = p.shape[-1]
    volume = size * size
    if zero_momentum:
        rows, cols = jnp.sum(p, axis=-1), jnp.sum(p, axis=-2)   # (N, L): slices along both axes
        lines = jnp.concatenate([rows, cols], axis=0)
        f = jnp.fft.rfft(lines, axis=-1)
        corr = jnp.fft.irfft(f * jnp.conj(f), n=size, axis=-1)  # Σ_{t0} S_t0 S_{t0+t}
        return np.asarray(jnp.mean(corr, axis=0), dtype=np.float64) / volume
    f = jnp.fft.rfft2(p)
    corr = jnp.fft.irfft2(f * jnp.conj(f), s=(size, size)) / volume  # G(r_y, r_x) per sample
    g = 0.5 * (jnp.mean(corr[:, :, 0], axis=0) + jnp.mean(corr[:, 0, :], axis=0))
    return np.asarray(g, dtype=np.float64)


def second_moment_correlation_length(phi, *, n_bins: int | None = None) -> Estimate:
    """Second-moment correlation length ``ξ₂ = sqrt(χ/F − 1) / (2 sin(π/L))`` with a jackknife error.

    ``χ = ⟨|φ̂(0)|²⟩/V = V⟨m²⟩`` (full susceptibility, no ⟨|m|⟩ subtracted) and
    ``F = ⟨|φ̂(k₁)|²⟩/V`` averaged over the two smallest non-zero momenta k₁ = (2π/L, 0), (0, 2π/L).
    phi: series ``(n_steps, C, L, L)`` or batch ``(N, L, L)`` (one chain). For the Gaussian free
    field this is exactly ``sqrt(κ/(1 − 4κ))`` at every L. Returns NaN when χ/F < 1 (noise in a
    very short-ranged system).
    """
    arr = _as_series(phi)
    n_steps, n_chains, size = arr.shape[0], arr.shape[1], arr.shape[-1]
    volume = size * size
    p = jnp.asarray(arr, jnp.float32)
    phase = jnp.exp(-2j * jnp.pi * jnp.arange(size) / size)
    # Only 3 Fourier modes are needed: project instead of a full FFT.
    row_sums, col_sums = jnp.sum(p, axis=-1), jnp.sum(p, axis=-2)      # (n, C, L)
    zero = jnp.sum(row_sums, axis=-1)
    k_y = jnp.abs(row_sums @ phase) ** 2
    k_x = jnp.abs(col_sums @ phase) ** 2
    chi_s = np.asarray(zero, np.float64).T ** 2 / volume
    f_s = 0.5 * (np.asarray(k_y, np.float64) + np.asarray(k_x, np.float64)).T / volume
    bins = _block_bins(n_steps, max(integrated_autocorrelation_time(chi_s).tau,
                                    integrated_autocorrelation_time(f_s).tau), n_bins)
    _jackknife_units(n_chains, bins)
    scale = 2.0 * math.sin(math.pi / size)

    def xi(chi, f):
        ratio = chi / f - 1.0
        return math.sqrt(ratio) / scale if ratio >= 0 else float("nan")

    est = binned_jackknife(xi, chi_s, f_s, n_bins=bins)
    return Estimate(est.value, est.error)
