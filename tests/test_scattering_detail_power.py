"""Detail power statistics (``detail_power=True`` of the micro and canonical scattering models): the
log power of each periodic-DWT detail channel, its closed-form spread on white noise, its gradient,
and the model option (save/load, synthesis on target, errors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen import errors as E
from phigen.models import load_model
from phigen.rg import per_scale_std
from phigen.scattering import ScatteringModel
from phigen.scattering.detail_power import DetailPowerStatistics
from phigen.wavelets import dwt


def test_statistics_are_the_log_power_of_each_detail_channel():
    x = np.random.default_rng(0).normal(size=(6, 32, 16)).astype(np.float32)
    d = DetailPowerStatistics.from_fields(x, 3)
    phi = np.asarray(d(jnp.asarray(x)), np.float64)
    assert phi.shape == (6, 9) and d.n_stats == 9
    coeffs = dwt(jnp.asarray(x), "db4", 3)
    own = np.concatenate([np.mean(np.asarray(c, np.float64) ** 2, axis=(2, 3)) for c in coeffs.details], axis=1)
    np.testing.assert_allclose(np.asarray(d.reference), own.mean(0), rtol=1e-5)
    np.testing.assert_allclose(phi, np.log(own / own.mean(0)), atol=2e-5)
    # pooled over fields, ⟨d²⟩ is the square of phigen.rg.per_scale_std up to the pooled mean², which is small
    pooled = per_scale_std(x, "db4", 3)["detail"].ravel() ** 2
    np.testing.assert_allclose(np.exp(phi).mean(0) * np.asarray(d.reference), pooled, rtol=0.05)


def test_white_noise_spread_matches_the_closed_form():
    """White noise stays white under an orthogonal DWT: ⟨d²⟩ over n coefficients is a mean of n squared
    unit normals, so E⟨d²⟩ = 1 and std(log⟨d²⟩) = √(2/n) to O(1/n) — the single-map scale."""
    n_fields, shape = 400, (32, 32)
    x = np.random.default_rng(1).normal(size=(n_fields,) + shape).astype(np.float32)
    d = DetailPowerStatistics.from_fields(x, 3)
    n = np.repeat([32 * 32 / 4 ** j for j in (1, 2, 3)], 3)
    se_ref = np.sqrt(2 / n / n_fields)  # standard error of the mean of ⟨d²⟩ ≈ 1
    assert np.all(np.abs(np.asarray(d.reference) - 1) < 4 * se_ref), np.asarray(d.reference)
    phi = np.asarray(d(jnp.asarray(x)), np.float64)
    expected = np.sqrt(2 / n)
    se = expected / np.sqrt(2 * (n_fields - 1))
    assert np.all(np.abs(phi.std(0, ddof=1) - expected) < 4 * se + 0.1 * expected), (phi.std(0, ddof=1), expected)
    np.testing.assert_allclose(d.single_map_scale(shape), expected, rtol=1e-6)


def test_gradient_matches_finite_differences():
    x = np.random.default_rng(2).normal(size=(1, 16, 16)).astype(np.float64)
    d = DetailPowerStatistics.from_fields(x.astype(np.float32), 2)
    w = np.random.default_rng(3).normal(size=6)
    f = lambda z: jnp.sum(d(z) * w)  # noqa: E731
    g = np.asarray(jax.grad(f)(jnp.asarray(x, jnp.float32)), np.float64)
    v = np.random.default_rng(4).normal(size=x.shape)
    h = 1e-2
    fd = (float(f(jnp.asarray(x + h * v, jnp.float32))) - float(f(jnp.asarray(x - h * v, jnp.float32)))) / (2 * h)
    assert abs(fd - np.sum(g * v)) < 0.02 * abs(fd) + 1e-3, (fd, np.sum(g * v))


def test_model_option_round_trip_and_synthesis(gaussian_fields, tmp_path):
    x = gaussian_fields(24, 16, slope=2.0, seed=5)
    plain = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=60)
    m = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=60, detail_power=True)
    assert m.details is not None and m.n_stats == plain.n_stats + 6 and m.n_params == plain.n_params + 3 * 6
    assert type(m.statistics.parts[-1]).__name__ == "DetailPowerStatistics"
    back = load_model(m.save(tmp_path / "detail.h5"))
    assert back.details is not None and back.n_stats == m.n_stats and back.n_params == m.n_params
    np.testing.assert_allclose(np.asarray(back.statistics(x[:2])), np.asarray(m.statistics(x[:2])), rtol=1e-5,
                               atol=1e-6)
    res = m.synthesize(4, key=jax.random.PRNGKey(1))
    r = (np.asarray(m.statistics(res.fields)) - m.target) / m.scale
    assert np.sqrt(np.mean(r[:, -6:] ** 2)) < 0.3  # the detail channels are on target
    # the same fields with the finest vertical detail doubled: the statistics see it, far off target
    coeffs = dwt(jnp.asarray(x[:4]), "db4", 2)
    from phigen.wavelets import idwt
    boosted = idwt(coeffs._replace(details=(coeffs.details[0].at[:, 1].multiply(2.0),) + coeffs.details[1:]), "db4")
    r_b = (np.asarray(m.statistics(boosted)) - m.target) / m.scale
    assert np.abs(r_b[:, -5]).min() > 3  # level 1, vertical: log 4 / its spread


def test_errors():
    flat = np.tile(np.random.default_rng(5).normal(size=(4, 16, 1)), (1, 1, 16)).astype(np.float32)  # x(i, j) = f(i)
    with pytest.raises(E.InputError, match="no power in DWT detail channel"):
        DetailPowerStatistics.from_fields(flat, 2)
    x = np.random.default_rng(6).normal(size=(4, 12, 12)).astype(np.float32)
    with pytest.raises(E.InputError, match="multiples of 2"):
        DetailPowerStatistics.from_fields(x, 3)
    with pytest.raises(E.ParameterError, match="detail_power"):
        ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, mode="maxent", detail_power=True)
    d = DetailPowerStatistics.from_fields(x, 2)
    with pytest.raises(E.InputError, match=r"\(N, H, W\)"):
        d(jnp.asarray(x[0]))


def test_pooled_power_targets_make_the_samples_mean_power_the_datas(gaussian_fields, tmp_path):
    """Fields whose amplitude varies from field to field (log-power spread s): the microcanonical samples
    all sit at the target, so with the mean-log target their mean power is the data's geometric mean,
    short of the arithmetic mean by about exp(−s²/2); ``pooled_power`` targets the log of the mean."""
    from phigen.scattering.models import log_power_mask

    g = np.random.default_rng(7).normal(0.0, 0.6, size=(32, 1, 1))
    x = (gaussian_fields(32, 16, slope=2.0, seed=6) * np.exp(g)).astype(np.float32)
    d = DetailPowerStatistics.from_fields(x, 2)  # φ = log(⟨d²⟩ / the training fields' mean ⟨d²⟩)
    geo = np.exp(np.mean(np.asarray(d(jnp.asarray(x)), np.float64), axis=0))  # geometric / arithmetic
    assert np.all(geo < 0.75)  # the gap the option closes (s ≈ 1.2 in log power)
    out = {}
    for pooled in (False, True):
        m = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=120, shell_power=True, detail_power=True,
                                pooled_power=pooled)
        mask = log_power_mask(m.statistics)
        assert mask.sum() == 2 + m.statistics.parts[1].n_stats + 6  # log S2 per scale, the shells, the details
        s = m.synthesize(8, key=jax.random.PRNGKey(1)).fields
        out[pooled] = np.mean(np.exp(np.asarray(d(jnp.asarray(s)), np.float64)), axis=0)  # samples' mean ⟨d²⟩ / data's
    np.testing.assert_allclose(out[False], geo, rtol=0.1)  # the default: the geometric mean
    np.testing.assert_allclose(out[True], 1.0, rtol=0.1)   # pooled: the data's mean power
    back = load_model(m.save(tmp_path / "pooled.h5"))
    assert back.pooled_power and np.array_equal(back.target, m.target)
    with pytest.raises(E.ParameterError, match="pooled_power"):
        ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, mode="maxent", pooled_power=True)
