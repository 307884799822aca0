"""Scattering-spectra models: microcanonical L-BFGS synthesis, maximum-entropy Gibbs model, protocol + CLI.

Reference data: a standardised lognormal field exp(g) (g Gaussian, P ∝ k^-3), strongly non-Gaussian
(skewed PDF, non-Gaussian Minkowski functionals) — small (32², J = 3) so the file runs in about a minute.
The slow test repeats the synthesis check on the shipped turbulence and cosmic-web datasets (64², J = 4).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phigen.io as pio
from phigen import errors as E
from phigen.cli import main
from phigen.fields.gaussian import gaussian_field, power_law_spectrum
from phigen.models import GaussianSpectrumModel, fit, load_model, sample
from phigen.scattering import ScatteringModel
from phigen.scattering.synthesis import SynthesisConfig, minimize_fields
from phigen.stats import compare

SIZE, J = 32, 3
DATA = Path(__file__).resolve().parent.parent / "data"


def lognormal(key, n, size=SIZE):
    g = np.asarray(gaussian_field(key, n, size, power_law_spectrum(3.0)), np.float64)
    x = np.exp((g - g.mean()) / g.std())
    return ((x - x.mean()) / x.std()).astype(np.float32)


@pytest.fixture(scope="module")
def fields():
    return lognormal(jax.random.PRNGKey(0), 64)


@pytest.fixture(scope="module")
def micro(fields):
    return ScatteringModel.fit(fields[:32], key=jax.random.PRNGKey(0), J=J, mode="micro", steps=150)


@pytest.fixture(scope="module")
def maxent(fields):
    return ScatteringModel.fit(fields[:32], key=jax.random.PRNGKey(1), J=J, mode="maxent", steps=40, n_chains=16,
                               steps_per_iteration=8, progress=False)


def _distances(samples, truth):
    cmp = compare(samples, truth, seed=0, statistics=("power_spectrum", "pdf", "minkowski"))
    return {name: cmp[name]["distances"][d] for name, d in
            (("power_spectrum", "chi2"), ("pdf", "w1"), ("minkowski", "chi2"))}


def test_lbfgs_runs_are_independent_per_field():
    # A non-convex per-pixel loss (Rosenbrock in pairs of pixels): each field needs its own line
    # searches; a field's trajectory must not depend on which other fields share the batch.
    def loss(x):
        a, b = x[:, ::2], x[:, 1::2]
        return jnp.mean((1 - a) ** 2 + 10.0 * (b - a * a) ** 2)

    x0 = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4)) * jnp.array([0.5, 1.5, 3.0])[:, None, None]
    cfg = SynthesisConfig(steps=60, chunk_size=16, progress=False)
    together = minimize_fields(loss, x0, cfg)
    alone = minimize_fields(loss, x0[1:2], cfg)
    np.testing.assert_allclose(together.fields[1], alone.fields[0], rtol=1e-5, atol=1e-5)
    # and it converges to the minimum x = 1 (the chunk remainder is masked, not skipped)
    assert together.loss_history.shape == (5, 3)
    assert np.all(together.loss < 1e-6), together.loss
    np.testing.assert_allclose(together.fields, 1.0, atol=2e-3)


def test_micro_synthesis_reproduces_spectrum_pdf_and_beats_gaussian_on_minkowski(micro, fields):
    assert micro.n_stats == micro.statistics.n_stats == 279  # J = 3, L = 4, isotropic
    res = micro.synthesize(8, key=jax.random.PRNGKey(5))
    # the target is matched far better than a typical training field matches the mean (ℓ ≈ 0.3–1)
    assert np.all(res.loss < 0.05 * micro.training["data_loss_median"]), (res.loss, micro.training)
    assert np.all(res.loss < 0.01 * res.initial_loss)
    synth = _distances(res.fields, fields)
    gauss = _distances(np.asarray(GaussianSpectrumModel.fit(fields[:32]).sample(8, key=jax.random.PRNGKey(6))), fields)
    # chi2 per k-bin of the log spectrum: ≈ 1 + m·bias²/var (m = 8); floor ≈ 1 — measured ≈ 3
    assert synth["power_spectrum"]["model"] < 8.0, synth
    # pixel PDF: W1 / pixel std — measured ≈ 0.12 (floor ≈ 0.07, Gaussian model ≈ 0.46)
    assert synth["pdf"]["model"] < 0.25 and synth["pdf"]["model"] < 0.5 * gauss["pdf"]["model"], (synth, gauss)
    # Minkowski functionals are NOT in Φ — measured ≈ 3 vs the Gaussian's ≈ 40 (floor ≈ 1.4)
    assert synth["minkowski"]["model"] < 0.3 * gauss["minkowski"]["model"], (synth, gauss)


def test_maxent_moves_statistics_towards_the_data(maxent, fields):
    t = maxent.training
    assert t["n_stats"] == 279 and maxent.n_params == 279 + SIZE * (SIZE // 2 + 1) + 1
    hist = np.asarray(t["moment_residual_history"])
    # the Gaussian reference (θ = 0) is several units away; moment matching brings the chains close
    assert t["moment_residual_initial"] > 2.0, t
    assert t["moment_residual_final"] < 0.25 * t["moment_residual_initial"], hist
    assert 0.3 < t["acceptance_final"] < 0.85
    x = maxent.sample(16, key=jax.random.PRNGKey(2), steps=160)
    assert x.shape == (16, SIZE, SIZE) and np.all(np.isfinite(x))
    gauss = np.asarray(GaussianSpectrumModel.fit(fields[:32]).sample(16, key=jax.random.PRNGKey(3)))
    r_model, r_gauss = maxent.moment_residual(x), maxent.moment_residual(gauss)
    assert r_model < 0.3 * r_gauss, (r_model, r_gauss)


def test_save_load_round_trip(micro, maxent, fields, tmp_path):
    for m in (micro, maxent):
        path = m.save(tmp_path / f"{m.mode}.h5")
        m2 = load_model(path)
        assert isinstance(m2, ScatteringModel) and m2.mode == m.mode and m2.n_params == m.n_params
        np.testing.assert_array_equal(m2.target, m.target)
        np.testing.assert_array_equal(m2.scale, m.scale)
        assert m2.training["n_stats"] == m.n_stats
        # the rebuilt statistics are the same function (same normalisation, same entries)
        np.testing.assert_allclose(np.asarray(m2.statistics(fields[:2])), np.asarray(m.statistics(fields[:2])),
                                   rtol=1e-5, atol=1e-6)
    me = load_model(tmp_path / "maxent.h5")
    np.testing.assert_array_equal(me.maxent.theta, maxent.maxent.theta)
    np.testing.assert_array_equal(me.maxent.amplitude, maxent.maxent.amplitude)
    assert me.maxent.step_size == pytest.approx(maxent.maxent.step_size)


def test_cli_fit_and_sample(fields, tmp_path, capsys):
    data = tmp_path / "d.h5"
    pio.write_fields(data, fields[:16, :16, :16], field="lognormal")  # small: the CLI compiles afresh
    model = tmp_path / "m.h5"
    assert main(["fit", "scattering", str(data), "--J", "2", "--L", "4", "--mode", "micro", "--steps", "10",
                 "-o", str(model), "--quiet"]) == 0
    assert "parameters" in capsys.readouterr().out
    out = tmp_path / "s.h5"
    # steps=0 (via --set): the sampling plumbing without compiling another L-BFGS loop (tested above)
    assert main(["sample", str(model), "-n", "3", "-o", str(out), "--batch-size", "2", "--set", "steps=0",
                 "--quiet"]) == 0
    with pio.open_fields(out) as ds:
        assert len(ds) == 3 and ds.generator == "phigen.models:scattering" and ds.field == "lognormal"
        assert np.all(np.isfinite(ds[:]))
    m = load_model(model)
    assert m.steps == 10 and m.J == 2 and m.training["n_train"] == 16


def test_bad_input(fields, tmp_path):
    bad = fields[:4].copy()
    bad[1, 3, 3] = np.nan
    with pytest.raises(E.InputError, match="NaN"):
        ScatteringModel.fit(bad, J=2)
    with pytest.raises(E.InputError, match="2\\^J"):
        ScatteringModel.fit(fields[:4, :8, :8], J=4)
    with pytest.raises(E.ParameterError, match="mode"):
        ScatteringModel.fit(fields[:4], J=2, mode="grand")
    with pytest.raises(E.InputError, match="at least 2"):
        ScatteringModel.fit(fields[:1], J=2, mode="maxent", steps=2)
    with pytest.raises(E.ParameterError, match="unknown option"):
        fit("scattering", fields[:4], J=2, temperature=1.0)
    m = ScatteringModel.fit(fields[:4], J=2, steps=3)
    with pytest.raises(E.ParameterError, match="maxent"):
        m.sample(2, key=jax.random.PRNGKey(0), kernel="hmc")
    with pytest.raises(E.ParameterError, match="unknown option"):
        sample(m, 2, nfe=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["turbulence_64", "cosmic_web_64"])
def test_micro_synthesis_on_shipped_data(name):
    path = DATA / f"{name}.h5"
    if not path.exists():
        pytest.skip(f"{path} not there")
    with pio.open_fields(path) as ds:
        x = ds[:]
    x = (x - x.mean()) / x.std()
    m = ScatteringModel.fit(x[:64], J=4, mode="micro", steps=300)
    res = m.synthesize(16, key=jax.random.PRNGKey(1))
    synth = _distances(res.fields, x)
    gauss = _distances(np.asarray(GaussianSpectrumModel.fit(x[:64]).sample(16, key=jax.random.PRNGKey(2))), x)
    assert synth["power_spectrum"]["model"] < 10.0 * max(1.0, synth["power_spectrum"]["floor"]), synth
    assert synth["pdf"]["model"] < gauss["pdf"]["model"] or synth["pdf"]["model"] < 3 * synth["pdf"]["floor"]
    assert synth["minkowski"]["model"] < gauss["minkowski"]["model"], (synth, gauss)
