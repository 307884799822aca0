"""MCMC diagnostics against closed forms: the AR(1) process x_t = ρ x_{t−1} + ξ_t has
ρ(t) = ρ^t, τ_int = (1+ρ)/(2(1−ρ)) and Var(x) = 1/(1−ρ²) exactly."""

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from phigen.errors import InputError, ParameterError
from phigen.samplers.diagnostics import (autocorrelation, binned_jackknife, effective_sample_size,
                                         integrated_autocorrelation_time, mean_with_error, rhat)


def ar1(seed, rho, shape):
    """Stationary AR(1) series with unit innovations, time along the last axis."""
    xi = np.random.default_rng(seed).standard_normal(shape)
    xi[..., 0] /= math.sqrt(1 - rho ** 2)  # start in the stationary law
    return lfilter([1.0], [1.0, -rho], xi, axis=-1)


def exact_tau(rho):
    return (1 + rho) / (2 * (1 - rho))


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_tau_int_of_ar1_matches_closed_form_within_its_error(rho):
    x = ar1(1, rho, (4, 25000))
    res = integrated_autocorrelation_time(x)
    assert res.converged
    assert res.window >= 6 * 0.9 * exact_tau(rho)  # the automatic window obeys W >= c·τ
    assert abs(res.tau - exact_tau(rho)) < 3 * res.error, (res, exact_tau(rho))
    # the error bar is informative (Madras–Sokal: ~5 % here), not a blanket
    assert res.error < 0.06 * exact_tau(rho)
    # a single chain of the same total length gives the same τ within errors
    single = integrated_autocorrelation_time(x.ravel()[:50000])
    assert abs(single.tau - exact_tau(rho)) < 3 * single.error


def test_tau_int_error_bar_is_calibrated_over_repeats():
    rho, tau = 0.9, exact_tau(0.9)
    z = []
    for seed in range(40):
        r = integrated_autocorrelation_time(ar1(100 + seed, rho, (2, 20000)))
        z.append((r.tau - tau) / r.error)
    z = np.array(z)
    assert abs(z.mean()) < 4 / math.sqrt(len(z)) + 0.2  # bias small against the error bar
    assert 0.5 < z.std() < 1.3


def test_autocorrelation_of_ar1_and_against_direct_sum():
    rho = 0.7
    x = ar1(2, rho, (8, 20000))
    r = autocorrelation(x, axis=-1)
    assert r.shape == x.shape
    mean_r = r.mean(axis=0)
    # Bartlett: sd of ρ̂(t) ≈ sqrt((1+ρ²)/(1−ρ²)/n) per chain for an AR(1)
    sd = math.sqrt((1 + rho ** 2) / (1 - rho ** 2) / x.size)
    for t in range(6):
        assert abs(mean_r[t] - rho ** t) < 5 * sd + 1e-12
    # exact agreement with the definition on a short series, any axis
    y = np.random.default_rng(3).standard_normal((37, 3))
    d = y - y.mean(axis=0)
    direct = np.array([[np.sum(d[: 37 - t, c] * d[t:, c]) for c in range(3)] for t in range(37)])
    np.testing.assert_allclose(autocorrelation(y, axis=0), direct / direct[0], atol=1e-12)
    # a constant series is uncorrelated by convention
    np.testing.assert_array_equal(autocorrelation(np.ones(5)), [1, 0, 0, 0, 0])


def test_iid_series_tau_half_ess_n_and_rhat_one():
    x = np.random.default_rng(4).standard_normal((4, 5000))
    res = integrated_autocorrelation_time(x)
    assert abs(res.tau - 0.5) < 3 * res.error
    ess = effective_sample_size(x)
    assert abs(ess / x.size - 1) < 0.15
    assert abs(rhat(x) - 1) < 0.01
    # correlated chains: ESS ≈ N/(2τ)
    y = ar1(5, 0.8, (4, 20000))
    ess_y = effective_sample_size(y)
    assert abs(ess_y / (y.size / (2 * exact_tau(0.8))) - 1) < 0.2


def test_rhat_flags_chains_with_shifted_means_and_tau_sees_them():
    shifts = np.array([0.0, 0.0, 1.0, 2.0])
    x = np.random.default_rng(6).standard_normal((4, 2000)) + shifts[:, None]
    # split R̂² ≈ 1 + (variance of the 8 half-chain means)/σ² for long chains
    expected = math.sqrt(1 + np.repeat(shifts, 2).var(ddof=1))
    assert rhat(x) > 1.1
    assert abs(rhat(x) - expected) < 0.03
    # one global mean across chains: chains stuck at different levels look like huge τ
    assert integrated_autocorrelation_time(x).tau > 20
    # a drifting single chain is caught by the split
    drift = np.random.default_rng(7).standard_normal(2000) + np.linspace(0, 3, 2000)
    assert rhat(drift) > 1.1


def test_mean_with_error_matches_exact_variance_of_ar1_mean():
    rho = 0.9
    x = ar1(8, rho, (4, 25000))
    res = mean_with_error(x)
    # Var(x̄) → Var(x)·2τ/N for N ≫ τ, with Var(x) = 1/(1−ρ²)
    exact_err = math.sqrt(1 / (1 - rho ** 2) * 2 * exact_tau(rho) / x.size)
    assert abs(res.error / exact_err - 1) < 0.15
    assert abs(res.mean) < 4 * exact_err
    assert abs(res.tau_int - exact_tau(rho)) < 0.1 * exact_tau(rho)
    # the naive error would be sqrt(2τ) ≈ 4.4 times too small
    naive = x.std() / math.sqrt(x.size)
    assert res.error / naive > 3.5


def test_binned_jackknife_linear_fn_equals_standard_error_of_block_means():
    x = ar1(9, 0.5, (3, 1000))
    res = binned_jackknife(lambda a: a, x, n_bins=10)
    blocks = x.reshape(3, 10, 100).mean(axis=2).ravel()
    assert res.value == pytest.approx(x.mean(), abs=1e-12)
    assert res.error == pytest.approx(blocks.std(ddof=1) / math.sqrt(blocks.size), rel=1e-10)
    # blocks ≫ τ: the jackknife error of the mean agrees with the Γ-method error
    y = ar1(10, 0.9, (4, 20000))
    jk = binned_jackknife(lambda a: a, y, n_bins=20)
    assert abs(jk.error / mean_with_error(y).error - 1) < 0.3


def test_binned_jackknife_nonlinear_error_is_calibrated():
    """Binder cumulant of Gaussian samples: exact value 0 and the jackknife error must match the
    scatter of the estimate over independent repeats."""
    estimates, errors = [], []
    for seed in range(200):
        m = np.random.default_rng(1000 + seed).standard_normal((2, 500))
        est = binned_jackknife(lambda m2, m4: 1 - m4 / (3 * m2 ** 2), m ** 2, m ** 4, n_bins=10)
        estimates.append(est.value)
        errors.append(est.error)
    estimates, errors = np.array(estimates), np.array(errors)
    scatter = estimates.std(ddof=1)
    assert 0.8 < scatter / np.sqrt(np.mean(errors ** 2)) < 1.25
    assert abs(estimates.mean()) < 4 * scatter / math.sqrt(len(estimates)) + 0.01  # O(1/N) bias
    # vector-valued fn
    m = np.random.default_rng(1).standard_normal((2, 500))
    vec = binned_jackknife(lambda a, b: np.array([a, b]), m, m ** 2, n_bins=5)
    assert vec.value.shape == (2,) and vec.error.shape == (2,)


def test_input_checks():
    with pytest.raises(InputError):
        integrated_autocorrelation_time(np.ones((2, 3, 4)))
    with pytest.raises(InputError):
        integrated_autocorrelation_time(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(InputError):
        rhat(np.ones((2, 3)))
    with pytest.raises(ParameterError):
        binned_jackknife(lambda a: a, np.ones(10), n_bins=11)
    with pytest.raises(ParameterError):
        binned_jackknife(lambda a: a, np.ones(10), n_bins=1)
    with pytest.raises(InputError):
        binned_jackknife(lambda a, b: a, np.ones(10), np.ones(11), n_bins=2)
    assert integrated_autocorrelation_time(np.ones(50)).tau == 0.5
