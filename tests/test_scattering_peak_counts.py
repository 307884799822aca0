"""Smooth peak counts (``peak_bins=B`` of the micro and canonical scattering models): the hard limit
(τ, w → 0) equals phigen.stats.peak_counts, the Gaussian lattice closed form, gradients against
finite differences, the Poisson single-map scale, and the model option (save/load, synthesis, errors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen import errors as E
from phigen.models import load_model
from phigen.scattering import ScatteringModel
from phigen.scattering import peak_counts as P
from phigen.scattering.peak_counts import PeakStatistics
from phigen.stats.peaks import lattice_peak_density


@pytest.fixture(scope="module")
def fields(gaussian_fields):
    return gaussian_fields(64, 32, slope=3.0, seed=7)


def test_hard_limit_is_the_peak_count(fields, monkeypatch):
    m = PeakStatistics.from_fields(fields, 5)
    assert m.n_stats == 5 and np.all(np.diff(np.asarray(m.edges)) > 0)
    hard = m.hard_counts(fields)
    # equal-count bins: the training peaks' height quantiles split them evenly
    np.testing.assert_allclose(hard.mean(axis=0) / hard.mean(), 1.0, atol=0.05)
    monkeypatch.setattr(P, "HEIGHT_WIDTH", 1e-4)
    sharp = PeakStatistics(m.edges, m.mean, m.std, 1e-6 * m.tau)
    soft = np.asarray(P._peak_stats.__wrapped__(jnp.asarray(fields), sharp.edges, jnp.float32(m.mean),
                                                 jnp.float32(m.std), jnp.float32(sharp.tau)))
    np.testing.assert_allclose(soft, hard, atol=1.01 / fields[0].size)  # the same peaks (one may sit on an edge)


def test_gaussian_total_matches_the_lattice_closed_form(fields):
    """All bins together, at the default softness: the soft count is below the hard one (near-ties
    count less than 1) and the hard one matches the exact lattice density of a Gaussian field."""
    m = PeakStatistics.from_fields(fields, 4)
    hard = m.hard_counts(fields).sum(axis=1)
    soft = np.asarray(m(jnp.asarray(fields))).sum(axis=1)
    x = fields - fields.mean()
    corr = np.real(np.fft.ifft2(np.mean(np.abs(np.fft.fft2(x)) ** 2, axis=0))) / x[0].size
    exact = lattice_peak_density(corr)
    assert abs(hard.mean() - exact) < 4 * hard.std(ddof=1) / np.sqrt(len(hard)) + 0.02 * exact
    assert 0.6 * hard.mean() < soft.mean() < hard.mean()
    assert np.corrcoef(soft, hard)[0, 1] > 0.8


def test_gradient_matches_finite_differences(fields):
    m = PeakStatistics.from_fields(fields, 4)
    x = jnp.asarray(fields[:3])
    w = jnp.asarray(np.random.default_rng(3).normal(size=(3, 4)), jnp.float32)
    f = lambda y: 1e3 * jnp.sum(m(y) * w)
    g = jax.grad(f)(x)
    d = jnp.asarray(np.random.default_rng(4).normal(size=x.shape), jnp.float32)
    d = d / jnp.linalg.norm(d)
    h = 0.1 * m.tau
    fd = (float(f(x + h * d)) - float(f(x - h * d))) / (2 * h)
    assert abs(float(jnp.sum(g * d)) - fd) < 0.03 * abs(fd) + 1e-3, (float(jnp.sum(g * d)), fd)


def test_single_map_scale_and_errors(fields):
    m = PeakStatistics.from_fields(fields, 4)
    counts = m.hard_counts(fields[:1])[0] * fields[0].size
    np.testing.assert_allclose(m.single_map_scale(fields[:1]) * fields[0].size, np.sqrt(np.maximum(counts, 1)),
                               rtol=1e-5)
    with pytest.raises(E.InputError, match="constant"):
        PeakStatistics.from_fields(np.ones((2, 8, 8)), 4)
    with pytest.raises(E.InputError, match="peaks, fewer than"):
        PeakStatistics.from_fields(fields[:1, :4, :4], 8)
    with pytest.raises(E.ParameterError, match="peak bins"):
        PeakStatistics.from_fields(fields, 1)
    with pytest.raises(E.InputError, match="H, W >= 3"):
        m(jnp.ones((1, 2, 8)))


def test_model_option_round_trip_synthesis_and_errors(gaussian_fields, tmp_path):
    x = np.exp(gaussian_fields(24, 16, slope=3.0, seed=5))
    base = dict(key=jax.random.PRNGKey(0), J=2, steps=80, shell_power=True, minkowski_thresholds=4)
    plain = ScatteringModel.fit(x, **base)
    m = ScatteringModel.fit(x, peak_bins=4, **base)
    assert [type(p).__name__ for p in m.statistics.parts][-2:] == ["MinkowskiStatistics", "PeakStatistics"]
    assert m.n_stats == plain.n_stats + 4 and m.n_params == plain.n_params + 2 * 4 + 3 + 3
    back = load_model(m.save(tmp_path / "peaks.h5"))
    assert back.peaks is not None and back.n_params == m.n_params and back.peaks.tau == m.peaks.tau
    np.testing.assert_allclose(np.asarray(back.statistics(x[:2])), np.asarray(m.statistics(x[:2])), rtol=1e-5,
                               atol=1e-6)
    res = m.synthesize(4, key=jax.random.PRNGKey(1))
    r = (np.asarray(m.statistics(res.fields)) - m.target) / m.scale
    assert np.all(np.isfinite(r)) and np.sqrt(np.mean(r[:, -4:] ** 2)) < 1.0
    with pytest.raises(E.ParameterError, match="peak_bins"):
        ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, mode="maxent", peak_bins=4)
