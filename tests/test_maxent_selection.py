"""Which θ the max-ent fit returns: the best chunk with early stopping, or the last updates' average."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen import errors as E
from phigen.scattering.maxent import MaxEntConfig, fit_maxent

CHUNK = 5


def _stats(x):
    """Three amplitude-safe statistics per field (C, H, W) → (C, 3): mean, log power, skewness."""
    m = jnp.mean(x, axis=(-2, -1))
    d = x - m[:, None, None]
    p = jnp.mean(d * d, axis=(-2, -1))
    return jnp.stack([m, jnp.log(p), jnp.mean(d ** 3, axis=(-2, -1)) / p ** 1.5], axis=-1)


@pytest.fixture(scope="module")
def data():
    g = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (24, 16, 16)))
    return np.exp(0.5 * g).astype(np.float32)  # skewed: θ = 0 (its Gaussian reference) misses the skewness


def _fit(data, **kw):
    cfg = MaxEntConfig(n_chains=8, steps_per_iteration=3, learning_rate=0.5, chunk_size=CHUNK, progress=False, **kw)
    return fit_maxent(jax.random.PRNGKey(1), _stats, data, cfg)


def test_best_chunk_is_the_lowest_mean_residual_and_patience_stops_the_fit(data):
    params, hist = _fit(data, iterations=200, patience=2)
    n = len(hist.residual)
    assert n % CHUNK == 0 and n < 200  # stopped early
    chunks = hist.residual.reshape(-1, CHUNK).mean(axis=1)
    best = int(np.argmin(chunks))
    assert hist.selected == (best * CHUNK, (best + 1) * CHUNK)
    assert hist.selected_residual == pytest.approx(chunks[best], rel=1e-6)
    assert n == hist.selected[1] + 2 * CHUNK  # exactly `patience` chunks after the best one
    assert hist.selected_residual < 0.5 * hist.initial_residual
    assert params.theta.shape == (3,) and np.all(np.isfinite(params.theta)) and np.any(params.theta != 0)


def test_no_patience_runs_every_update_and_last_selection_averages_the_tail(data):
    _, best = _fit(data, iterations=20, patience=None)
    assert len(best.residual) == 20 and best.selected[1] - best.selected[0] == CHUNK
    p_last, last = _fit(data, iterations=20, selection="last", average_fraction=0.25)
    assert len(last.residual) == 20 and last.selected == (16, 20)
    assert last.selected_residual == pytest.approx(float(np.mean(last.residual[16:])), rel=1e-6)
    assert np.all(np.isfinite(p_last.theta))


def test_bad_selection_options_are_refused():
    with pytest.raises(E.ParameterError, match="selection"):
        MaxEntConfig(selection="first")
    with pytest.raises(E.ParameterError, match="patience"):
        MaxEntConfig(patience=0)


def test_marginal_statistics_are_a_smoothed_cdf_at_the_data_quantiles(data):
    from phigen.scattering.marginal import ConcatenatedStatistics, MarginalStatistics

    m = MarginalStatistics.from_fields(data, bins=8)
    assert m.n_stats == 8 and np.all(np.diff(np.asarray(m.centres)) > 0) and np.all(np.asarray(m.widths) > 0)
    phi = np.asarray(m(data))
    assert phi.shape == (24, 8) and np.all(np.abs(phi) <= 1)
    # E tanh((x − c_b)/w_b) decreases with the level and is ≈ 0 near the median (c at quantile ½ ± 1/16)
    mean = phi.mean(axis=0)
    assert np.all(np.diff(mean) < 0) and abs(mean[3] + mean[4]) < 0.2
    both = ConcatenatedStatistics((m, m))
    assert both.n_stats == 16 and np.asarray(both(data[:2])).shape == (2, 16)
    with pytest.raises(E.InputError, match="constant"):
        MarginalStatistics.from_fields(np.ones((2, 8, 8), np.float32))


def test_maxent_model_with_marginal_statistics_saves_and_loads(data, tmp_path):
    from phigen.models import load_model
    from phigen.scattering import ScatteringModel

    m = ScatteringModel.fit(data[:8], key=jax.random.PRNGKey(0), mode="maxent", J=2, steps=3, n_chains=4,
                            steps_per_iteration=2, marginal_bins=6, sample_steps=40, progress=False)
    assert m.n_stats == m.statistics.n_stats == ScatteringModel.fit(data[:8], J=2, steps=0, key=jax.random.PRNGKey(0)).statistics.n_stats + 6
    m2 = load_model(m.save(tmp_path / "me.h5"))
    np.testing.assert_array_equal(np.asarray(m2.marginal.centres), np.asarray(m.marginal.centres))
    assert m2.n_params == m.n_params
    np.testing.assert_allclose(np.asarray(m2.statistics(data[:2])), np.asarray(m.statistics(data[:2])), rtol=1e-6)
    x = m2.sample(2, key=jax.random.PRNGKey(1), steps=40)
    assert x.shape == (2, 16, 16) and np.all(np.isfinite(x))
    # the pixel-PDF statistics are an option of the microcanonical model too (appended after the spectra)
    micro = ScatteringModel.fit(data[:8], J=2, steps=0, marginal_bins=4, key=jax.random.PRNGKey(0))
    assert micro.n_stats == m.n_stats - 2 and micro.marginal.n_stats == 4


def test_theta_prior_shrinks_the_multipliers_to_its_fixed_point(data):
    """With a prior λ|θ|²/2 the fit solves ⟨Φ̃⟩_θ = λθ: a large λ keeps θ near 0 (the Gaussian
    reference), a moderate one shrinks it against the unpenalised fit."""
    p0, _ = _fit(data, iterations=30, patience=None, selection="last", average_fraction=0.5)
    p1, _ = _fit(data, iterations=30, patience=None, selection="last", average_fraction=0.5, theta_prior=1.0)
    p_big, _ = _fit(data, iterations=30, patience=None, selection="last", average_fraction=0.5, theta_prior=1e4)
    n0, n1, nb = (float(np.linalg.norm(p.theta)) for p in (p0, p1, p_big))
    assert n0 > 0.05 and n1 < 0.8 * n0 and nb < 0.01 * n0
    with pytest.raises(E.ParameterError, match="theta_prior"):
        MaxEntConfig(theta_prior=-1.0)
