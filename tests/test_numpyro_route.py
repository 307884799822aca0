"""numpyro NUTS/HMC route: exact Gaussian free field variance, standard normal, diagnostics, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.diagnostics import effective_sample_size

from phigen.energies import energy_from_fn, gaussian_free_field
from phigen.errors import InputError, ParameterError
from phigen.samplers.numpyro import numpyro_sample


def _gff_site_variance(L, kappa):
    """⟨φ_x²⟩ = (1/V) Σ_k 1 / (2(1 − 2κ(cos k_x + cos k_y))), k on the L×L Fourier grid."""
    k = 2 * np.pi * np.arange(L) / L
    return np.mean(1.0 / (2.0 * (1.0 - 2.0 * kappa * (np.cos(k)[:, None] + np.cos(k)[None, :]))))


def _mean_and_se(series):
    """Mean of a (chains, draws) series and its standard error from numpyro's multi-chain ESS."""
    series = np.asarray(series, np.float64)
    ess = float(effective_sample_size(series[..., None])[0])
    return series.mean(), series.std() / np.sqrt(ess), ess


def test_nuts_reproduces_the_exact_gff_variance():
    L, kappa, chains = 4, 0.2, 4
    x0 = np.random.default_rng(0).standard_normal((chains, L, L))
    samples, extra = numpyro_sample(jax.random.key(0), gaussian_free_field(kappa), x0,
                                    num_warmup=300, num_samples=800, num_chains=chains)
    assert samples.shape == (chains, 800, L, L) and samples.dtype == jnp.float32
    q = np.mean(np.asarray(samples) ** 2, axis=(-2, -1))  # site-averaged φ² per draw
    mean, se, ess = _mean_and_se(q)
    exact = _gff_site_variance(L, kappa)
    assert ess > 500
    assert abs(mean - exact) < 4 * se, (mean, exact, se)
    # the zero mode has the largest variance 1/(2(1−8κ)) = 2.5: ⟨(Σφ/V)²⟩ = 2.5/V
    m = np.mean(np.asarray(samples), axis=(-2, -1))
    m2_mean, m2_se, _ = _mean_and_se(m ** 2)
    assert abs(m2_mean - 2.5 / L ** 2) < 4 * m2_se
    # diagnostics
    assert extra["ess"].shape == (L, L) and extra["r_hat"].shape == (L, L)
    assert np.all(extra["r_hat"] < 1.05)
    assert extra["mean_accept_prob"].shape == (chains,)
    # dual averaging aims at 0.8 during warm-up; NUTS's tree-averaged acceptance runs a bit above it
    assert np.all((extra["mean_accept_prob"] > 0.65) & (extra["mean_accept_prob"] < 0.99))
    np.testing.assert_array_equal(extra["num_divergent"], 0)
    assert extra["step_size"].shape == (chains,) and np.all(extra["step_size"] > 0)
    assert set(extra["summary"]) >= {"mean", "std", "n_eff", "r_hat"}


def test_hmc_single_chain_standard_normal():
    energy = energy_from_fn(lambda x: 0.5 * jnp.sum(x ** 2))
    samples, extra = numpyro_sample(jax.random.key(1), energy, np.zeros((1, 1)), kernel="hmc",
                                    num_warmup=300, num_samples=2000, trajectory_length=2.0)
    assert samples.shape == (1, 2000, 1)
    x = np.asarray(samples)[..., 0]
    mean, se, _ = _mean_and_se(x)
    assert abs(mean) < 4 * se
    v_mean, v_se, _ = _mean_and_se(x ** 2)
    assert abs(v_mean - 1.0) < 4 * v_se
    assert extra["mean_accept_prob"].shape == (1,)


def test_nuts_standard_normal_with_a_plain_batched_function():
    # a batched function x (C, 2) -> (C,) is accepted in place of an Energy
    samples, _ = numpyro_sample(jax.random.key(2), lambda x: 0.5 * jnp.sum(x ** 2, axis=-1),
                                np.ones((2, 2)), num_warmup=200, num_samples=1000, num_chains=2)
    x = np.asarray(samples).reshape(2, -1)  # both coordinates are N(0, 1)
    mean, se, _ = _mean_and_se(x)
    assert abs(mean) < 4 * se
    v_mean, v_se, _ = _mean_and_se(x ** 2)
    assert abs(v_mean - 1.0) < 4 * v_se


def test_input_errors():
    energy = gaussian_free_field(0.1)
    with pytest.raises(InputError, match="num_chains=2"):
        numpyro_sample(jax.random.key(0), energy, np.zeros((4, 4)), num_warmup=1, num_samples=1, num_chains=2)
    with pytest.raises(InputError, match="NaN"):
        numpyro_sample(jax.random.key(0), energy, np.full((1, 4, 4), np.nan), num_warmup=1, num_samples=1)
    with pytest.raises(ParameterError, match="kernel"):
        numpyro_sample(jax.random.key(0), energy, np.zeros((1, 4, 4)), num_warmup=1, num_samples=1,
                       kernel="mala")
    with pytest.raises(ParameterError, match="target_accept"):
        numpyro_sample(jax.random.key(0), energy, np.zeros((1, 4, 4)), num_warmup=1, num_samples=1,
                       target_accept=1.5)
    with pytest.raises(ParameterError, match="one number per chain"):
        numpyro_sample(jax.random.key(0), lambda x: x, np.zeros((1, 3)), num_warmup=1, num_samples=1)
