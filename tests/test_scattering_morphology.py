"""Smooth Minkowski statistics (``minkowski_thresholds=B`` of the micro and canonical scattering
models): the Gaussian-field closed forms of the smoothed functionals, gradients against finite
differences, the thresholds, the single-map scale, and the model option (save/load, synthesis, errors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import expit
from scipy.stats import norm

from phigen import errors as E
from phigen.fields.gaussian import gaussian_field
from phigen.models import load_model
from phigen.scattering import ScatteringModel
from phigen.scattering.morphology import GRADIENT_SOFTENING, MinkowskiStatistics
from phigen.stats.minkowski import minkowski_functionals, minkowski_sigmas


@pytest.fixture(scope="module")
def smooth_gaussian():
    """96 isotropic Gaussian fields 48², correlation length ≈ 2 pixels (band-limited well inside the grid)."""
    return np.asarray(gaussian_field(jax.random.PRNGKey(0), 96, 48, lambda k: jnp.exp(-(k / 0.6) ** 2)))


def _closed_forms(levels, widths, sigma1):
    """E φ⁰, φ¹, φ² for a standardised isotropic Gaussian field (module doc of morphology):
    u ⟂ ∇u at a point, |∇u|² ~ Exp(mean σ1²), E[u_xx | u] = −σ1² u / 2, so
    E φ¹ = ¼ N(ν; 0, 1 + w²) E√(X + ε²) and E φ² = (σ1²/4π) N(ν; 0, 1 + w²) ν/(1 + w²) E[X/(X + ε²)]."""
    mu = sigma1**2
    eps2 = GRADIENT_SOFTENING * mu
    e_sqrt = quad(lambda s: np.sqrt(s + eps2) * np.exp(-s / mu) / mu, 0, np.inf)[0]
    e_frac = quad(lambda s: s / (s + eps2) * np.exp(-s / mu) / mu, 0, np.inf)[0]
    v0, v1, v2 = [], [], []
    for nu, w in zip(levels, widths):
        v0.append(quad(lambda t: expit((t - nu) / w) * norm.pdf(t), -12, 12)[0])
        dens = norm.pdf(nu, scale=np.sqrt(1 + w * w))
        v1.append(0.25 * dens * e_sqrt)
        v2.append(mu / (4 * np.pi) * dens * nu / (1 + w * w) * e_frac)
    return np.array([v0, v1, v2])


def test_gaussian_fields_match_the_closed_forms(smooth_gaussian):
    x = smooth_gaussian
    m = MinkowskiStatistics.from_fields(x, 7)
    levels, widths = np.asarray(m.levels, np.float64), np.asarray(m.widths, np.float64)
    # Gaussian pixels: the quantile levels are the Gaussian-equivalent ones, t_b = linspace(−2.5, 2.5)
    np.testing.assert_allclose(levels, np.linspace(-2.5, 2.5, 7), atol=0.05)
    phi = np.asarray(m(jnp.asarray(x)), np.float64).reshape(len(x), 3, 7)
    expected = _closed_forms(levels, widths, minkowski_sigmas(x)[1])
    se = phi.std(axis=0, ddof=1) / np.sqrt(len(x))
    z = (phi.mean(axis=0) - expected) / se
    # the per-field standardisation (sample mean and std) biases at O(1/pixels); allow 1 % of the value
    slack = 0.01 * np.abs(expected) / se
    assert np.all(np.abs(z) < 4 + slack), np.round(z, 2)
    # and the smoothed functionals follow the reference estimator's (box δ, no softening) shape
    ref = minkowski_functionals(x, levels)
    for i, v in enumerate((ref.v0, ref.v1, ref.v2)):
        assert np.corrcoef(np.asarray(v).mean(0), phi.mean(0)[i])[0, 1] > 0.97


def test_gradient_matches_finite_differences(smooth_gaussian):
    x = jnp.asarray(smooth_gaussian[:3], jnp.float32)
    m = MinkowskiStatistics.from_fields(smooth_gaussian, 5)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(3, m.n_stats)), jnp.float32)
    f = lambda y: jnp.sum(m(y) * weights)
    g = jax.grad(f)(x)
    assert bool(jnp.all(jnp.isfinite(g)))
    d = jnp.asarray(np.random.default_rng(2).normal(size=x.shape), jnp.float32)
    d = d / jnp.linalg.norm(d)
    h = 3e-2
    fd = (float(f(x + h * d)) - float(f(x - h * d))) / (2 * h)
    assert abs(float(jnp.sum(g * d)) - fd) < 0.02 * abs(fd) + 1e-4, (float(jnp.sum(g * d)), fd)


def test_thresholds_follow_a_skewed_field_and_errors(smooth_gaussian):
    sk = np.exp(smooth_gaussian / smooth_gaussian.std())  # lognormal pixels (σ = 1): the quantiles lean right
    m = MinkowskiStatistics.from_fields(sk, 9)
    lv = np.asarray(m.levels)
    # closed form: (e^{t} − e^{1/2}) / √((e − 1) e) at t = ∓2.5 is −0.73 and +4.87
    assert np.all(np.diff(lv) > 0) and -1.0 < lv[0] < -0.5 and lv[-1] > 3.5
    assert np.all(np.asarray(m.widths) >= 0.05)
    with pytest.raises(E.InputError, match="constant"):
        MinkowskiStatistics.from_fields(np.ones((2, 8, 8)), 5)
    with pytest.raises(E.ParameterError, match="thresholds"):
        MinkowskiStatistics.from_fields(sk, 1)
    with pytest.raises(E.InputError, match=r"\(N, H, W\)"):
        m(jnp.ones((8, 8)))


def test_single_map_scale_is_a_within_field_standard_error(smooth_gaussian):
    """One map: the block-mean scale is of the order of the spread across independent fields (for
    V1 and V2; V0's is larger, since the per-field standardisation removes part of its spread)."""
    x = smooth_gaussian
    m = MinkowskiStatistics.from_fields(x, 7)
    single = m.single_map_scale(x[:1]).reshape(3, 7)
    spread = np.asarray(m(jnp.asarray(x)), np.float64).reshape(len(x), 3, 7).std(axis=0, ddof=1)
    assert np.all(np.isfinite(single) & (single > 0))
    ratio = single[1:, 1:-1] / spread[1:, 1:-1]
    assert np.all((ratio > 0.3) & (ratio < 3.0)), np.round(ratio, 2)
    assert np.all(single[0] > 0.5 * spread[0])
    odd = m.single_map_scale(x[:1, :46, :46])  # 46 = 4·11 + 2: the remainder strip is left out
    assert np.all(np.isfinite(odd) & (odd > 0))
    with pytest.raises(E.InputError, match="too small"):
        m.single_map_scale(x[:1, :6, :6])


def test_model_option_round_trip_synthesis_and_errors(gaussian_fields, tmp_path):
    x = np.exp(gaussian_fields(24, 16, slope=3.0, seed=5))  # skewed pixels, a topology unlike a Gaussian's
    plain = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=80, shell_power=True)
    m = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=80, shell_power=True, minkowski_thresholds=5)
    assert [type(p).__name__ for p in m.statistics.parts] == ["ScatteringSpectra", "ShellPowerStatistics",
                                                               "MinkowskiStatistics"]
    assert m.n_stats == plain.n_stats + 15 and m.n_params == plain.n_params + 2 * 15 + 2 * 5
    back = load_model(m.save(tmp_path / "mink.h5"))
    assert back.minkowski is not None and back.n_stats == m.n_stats and back.n_params == m.n_params
    np.testing.assert_allclose(np.asarray(back.statistics(x[:2])), np.asarray(m.statistics(x[:2])), rtol=1e-5,
                               atol=1e-6)
    res = m.synthesize(4, key=jax.random.PRNGKey(1))
    r = (np.asarray(m.statistics(res.fields)) - m.target) / m.scale
    start = (np.asarray(m.statistics(jnp.asarray(np.log(x[:4])))) - m.target) / m.scale  # Gaussian topology
    assert np.sqrt(np.mean(r[:, -15:] ** 2)) < 0.5 < np.sqrt(np.mean(start[:, -15:] ** 2))
    with pytest.raises(E.ParameterError, match="minkowski_thresholds"):
        ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, mode="maxent", minkowski_thresholds=5)
    with pytest.raises(E.ParameterError, match="minkowski thresholds"):
        ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, minkowski_thresholds=1)
