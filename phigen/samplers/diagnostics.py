"""MCMC diagnostics for scalar time series: autocorrelation, τ_int (Γ-method), ESS, split-R̂,
autocorrelation-aware error bars and the binned jackknife for derived quantities.

Layout convention (numpyro / ArviZ): a series is ``(n_steps,)`` for one chain or
``(n_chains, n_steps)`` for several, time along the LAST axis. (Sampler scans produce
``(n_steps, C)``: transpose before calling.) Everything here is post-processing on the host in
float64 numpy; inputs may be numpy or JAX arrays.

The Γ-method (Wolff, Comput. Phys. Commun. 156 (2004) 143; Madras & Sokal 1988):
``Γ(t) = ⟨(x_i − x̄)(x_{i+t} − x̄)⟩`` averaged over all chains with one global mean x̄,
``ρ(t) = Γ(t)/Γ(0)``, ``τ_int(W) = ½ + Σ_{t=1}^{W} ρ(t)``; the window W is the smallest with
``W ≥ c·τ_int(W)`` (Sokal's automatic windowing, c = 6 by default). The variance of the mean of
N = n_chains·n_steps correlated samples is ``σ² · 2τ_int / N``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .._validation import check_int_at_least, check_positive
from ..errors import InputError, ParameterError

__all__ = ["TauInt", "MeanWithError", "JackknifeEstimate", "autocorrelation",
           "integrated_autocorrelation_time", "effective_sample_size", "rhat", "mean_with_error",
           "binned_jackknife"]


class TauInt(NamedTuple):
    """Integrated autocorrelation time in steps, its statistical error, the summation window W,
    and whether a window with W ≥ c·τ_int(W) was found (False: the series is too short for its
    correlations, τ is then a lower bound)."""

    tau: float
    error: float
    window: int
    converged: bool


class MeanWithError(NamedTuple):
    """Sample mean, its standard error ``σ·sqrt(2τ_int/N)``, and the τ_int used."""

    mean: float
    error: float
    tau_int: float


class JackknifeEstimate(NamedTuple):
    """``fn`` of the full-sample means and its jackknife standard error."""

    value: float | np.ndarray
    error: float | np.ndarray


def _as_series(x, name="x", *, min_steps=2):
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise InputError(f"{name} must have shape (n_steps,) or (n_chains, n_steps); got {tuple(np.shape(x))}")
    if arr.shape[1] < min_steps:
        raise InputError(f"{name} needs at least {min_steps} steps per chain; got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or inf values")
    return arr


def _lag_sums(d, max_lag):
    """``S(t) = Σ_chains Σ_i d_i d_{i+t}`` for t = 0..max_lag by zero-padded FFT; d (R, n)."""
    n = d.shape[1]
    size = 1 << int(np.ceil(np.log2(2 * n)))  # zero padding ≥ 2n makes the circular sum linear
    f = np.fft.rfft(d, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, : max_lag + 1]
    return acov.sum(axis=0)


def autocorrelation(x, axis: int = -1):
    """Normalised autocorrelation ``ρ(t) = Γ(t)/Γ(0)`` of each series along ``axis``.

    Each series has its own mean subtracted; ``Γ(t) = n⁻¹ Σ_{i<n−t} (x_i − x̄)(x_{i+t} − x̄)``
    (the biased, positive-semidefinite estimator, as numpyro). Same shape as ``x``, float64;
    a constant series gives ρ = 1 at t = 0 and 0 elsewhere.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise InputError("autocorrelation needs an array with a time axis")
    moved = np.moveaxis(arr, axis, -1)
    shape = moved.shape
    d = moved.reshape(-1, shape[-1])
    d = d - d.mean(axis=1, keepdims=True)
    n = shape[-1]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(d, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n]
    var = acov[:, :1]
    rho = np.where(var > 0, acov / np.where(var > 0, var, 1.0), (np.arange(n) == 0).astype(float))
    return np.moveaxis(rho.reshape(shape), -1, axis)


def _gamma(x):
    """Γ(t) for t = 0..n−1 with the global mean and 1/(R(n−t)) normalisation (Wolff's estimator)."""
    n_chains, n = x.shape
    d = x - x.mean()
    sums = _lag_sums(d, n - 1)
    return sums / (n_chains * (n - np.arange(n)))


def integrated_autocorrelation_time(x, *, c: float = 6.0) -> TauInt:
    """τ_int of a scalar series by the Γ-method with automatic windowing.

    x: ``(n_steps,)`` or ``(n_chains, n_steps)`` (chains averaged into one Γ(t), one global mean,
    which also exposes chains stuck in different states as a huge τ). τ_int is in units of steps,
    with τ = ½ for independent samples. Returns :class:`TauInt`: ``tau`` (including Wolff's
    correction ``τ(1 + (2W+1)/N)`` for the bias of the subtracted mean), ``error =
    τ·sqrt(2(2W+1)/N)`` (Madras–Sokal), ``window`` W and ``converged``.
    """
    x = _as_series(x)
    check_positive(c, "c")
    n_chains, n = x.shape
    total = n_chains * n
    gamma = _gamma(x)
    if not gamma[0] > 0:  # constant series: no fluctuation, nothing is correlated
        return TauInt(0.5, 0.0, 0, True)
    rho = gamma / gamma[0]
    max_window = max(1, n // 2)  # beyond n/2 each Γ(t) averages too few pairs to be useful
    tau_w = 0.5 + np.cumsum(rho[1 : max_window + 1])
    windows = np.arange(1, max_window + 1)
    ok = windows >= c * tau_w
    converged = bool(ok.any())
    w = int(windows[np.argmax(ok)]) if converged else max_window
    tau = float(tau_w[w - 1]) * (1.0 + (2 * w + 1) / total)
    # A window where ρ sums below ½ (anticorrelated noise) would give τ < 0; clip at a tiny value.
    tau = max(tau, 1e-12)
    error = tau * np.sqrt(2.0 * (2 * w + 1) / total)
    return TauInt(tau, float(error), w, converged)


def _as_chains(x, name="x"):
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim < 2:
        raise InputError(f"{name} must have shape (n_steps,) or (n_chains, n_steps, ...); got {tuple(np.shape(x))}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or inf values")
    return arr


def effective_sample_size(x):
    """Effective sample size (Geyer's initial monotone sequence over chains, via numpyro).

    x: ``(n_steps,)`` or ``(n_chains, n_steps, ...)``; returns a float (or an array over the
    trailing dims). ≈ N = n_chains·n_steps for independent samples, ≈ N/(2τ_int) in general.
    """
    from numpyro.diagnostics import effective_sample_size as _ess

    arr = _as_chains(x)
    if arr.shape[1] < 4:
        raise InputError(f"effective_sample_size needs at least 4 steps per chain; got {arr.shape[1]}")
    out = np.asarray(_ess(arr))
    return float(out) if out.ndim == 0 else out


def rhat(x):
    """Split-R̂ (Gelman–Rubin on chains split in halves, via numpyro).

    x: ``(n_steps,)`` or ``(n_chains, n_steps, ...)`` with n_steps ≥ 4; ≈ 1 for chains that sample
    the same distribution, > 1.01–1.1 when they disagree or drift.
    """
    from numpyro.diagnostics import split_gelman_rubin

    arr = _as_chains(x)
    if arr.shape[1] < 4:
        raise InputError(f"rhat needs at least 4 steps per chain; got {arr.shape[1]}")
    out = np.asarray(split_gelman_rubin(arr))
    return float(out) if out.ndim == 0 else out


def mean_with_error(x, *, c: float = 6.0) -> MeanWithError:
    """Mean of a correlated series with its error ``sqrt(Γ(0)·2τ_int/N)`` (Γ-method).

    x: ``(n_steps,)`` or ``(n_chains, n_steps)``; N = total number of samples.
    """
    arr = _as_series(x)
    tau = integrated_autocorrelation_time(arr, c=c)
    var = float(np.mean((arr - arr.mean()) ** 2))
    return MeanWithError(float(arr.mean()), float(np.sqrt(var * 2.0 * tau.tau / arr.size)), tau.tau)


def binned_jackknife(fn: Callable, *series, n_bins: int = 20) -> JackknifeEstimate:
    """Jackknife error of a derived quantity ``fn(⟨a⟩, ⟨b⟩, …)`` from correlated series.

    Each series is ``(n_steps,)`` or ``(n_chains, n_steps)`` (all the same shape). Every chain is cut
    into ``n_bins`` consecutive equal blocks along time (the first ``n_steps mod n_bins`` steps
    are left out of the blocks); the jackknife units are the U = n_chains·n_bins blocks. With
    ``θ_b`` = fn of the means without block b: ``value = fn(means of all samples)``,
    ``error = sqrt((U−1)/U · Σ_b (θ_b − θ̄)²)``. Blocks must be several τ_int long for the
    error to be right. ``fn`` takes one float per series and returns a float or an array.
    Example: χ = V(⟨m²⟩ − ⟨|m|⟩²) is ``binned_jackknife(lambda m2, am: V*(m2 - am**2), m**2, abs(m))``.
    """
    if not callable(fn):
        raise ParameterError(f"fn must be callable; got {type(fn).__name__}")
    if not series:
        raise ParameterError("binned_jackknife needs at least one series")
    n_bins = check_int_at_least(n_bins, "n_bins", 1)
    arrs = [_as_series(s, f"series[{i}]", min_steps=1) for i, s in enumerate(series)]
    shape = arrs[0].shape
    if any(a.shape != shape for a in arrs):
        raise InputError(f"all series must have the same shape; got {[a.shape for a in arrs]}")
    n_chains, n = shape
    if n < n_bins:
        raise ParameterError(f"n_bins={n_bins} exceeds the {n} steps per chain")
    if n_chains * n_bins < 2:
        raise ParameterError("the jackknife needs at least 2 blocks (n_chains·n_bins >= 2)")
    size = n // n_bins
    # Equal-size blocks make the leave-one-out means exact weighted means.
    blocks = [a[:, n - n_bins * size :].reshape(n_chains, n_bins, size).mean(axis=2).ravel() for a in arrs]
    n_units = blocks[0].size
    totals = [b.sum() for b in blocks]
    # the estimate itself uses every sample, including the few the equal-size blocks leave out
    value = np.asarray(fn(*[a.mean() for a in arrs]), dtype=np.float64)
    thetas = np.stack([np.asarray(fn(*[(t - b[u]) / (n_units - 1) for t, b in zip(totals, blocks)]),
                                  dtype=np.float64) for u in range(n_units)])
    error = np.sqrt((n_units - 1) / n_units * np.sum((thetas - thetas.mean(axis=0)) ** 2, axis=0))
    if value.ndim == 0:
        return JackknifeEstimate(float(value), float(error))
    return JackknifeEstimate(value, error)
