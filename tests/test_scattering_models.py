"""Scattering-spectra models: microcanonical L-BFGS synthesis, maximum-entropy Gibbs model, protocol + CLI.

Reference data: a standardised lognormal field exp(g) (g Gaussian, P ∝ k^-3), strongly non-Gaussian
(skewed PDF, non-Gaussian Minkowski functionals) — small (32², J = 3) so the file runs in about a minute.
The slow tests repeat the synthesis check on the shipped turbulence and cosmic-web datasets (64², J = 5,
held-out truth), through the quality comparison of benchmarks/scattering_synthesis.py.
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
    gauss = _distances(np.asarray(GaussianSpectrumModel.fit(fields[:32], key=jax.random.PRNGKey(0)).sample(8, key=jax.random.PRNGKey(6))), fields)
    # pooled chi2 per k-bin of the log spectrum: ≈ 1 + m·bias²/var (m = 8), null ≈ 1.3 — measured 10.4 with
    # this key (6–14 over five keys: 8 syntheses that all sit on Φ̄ have a small spread, which the pooled
    # scale sees); a model of the wrong spectrum is in the hundreds
    assert synth["power_spectrum"]["model"] < 20.0, synth
    # pixel PDF: W1 / pixel std — measured ≈ 0.12 (floor ≈ 0.07, Gaussian model ≈ 0.46)
    assert synth["pdf"]["model"] < 0.25 and synth["pdf"]["model"] < 0.5 * gauss["pdf"]["model"], (synth, gauss)
    # Minkowski functionals are NOT in Φ — measured ≈ 3 vs the Gaussian's ≈ 40 (floor ≈ 1.4)
    assert synth["minkowski"]["model"] < 0.3 * gauss["minkowski"]["model"], (synth, gauss)


def test_spectral_preconditioner_lowers_the_loss_at_fixed_iterations(micro):
    """Same starts, same 40 iterations: the band-power preconditioned L-BFGS ends lower (measured median
    ratio ≈ 0.6 at 32², J = 3; the gain grows with the number of scales: ≈ 0.5 at 128², J = 6, 300 iterations)."""
    pre = micro.synthesize(8, key=jax.random.PRNGKey(5), steps=40)
    plain = micro.synthesize(8, key=jax.random.PRNGKey(5), steps=40, precondition=False)
    np.testing.assert_array_equal(pre.initial_loss, plain.initial_loss)
    assert np.median(pre.loss) < 0.8 * np.median(plain.loss), (pre.loss, plain.loss)


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
    gauss = np.asarray(GaussianSpectrumModel.fit(fields[:32], key=jax.random.PRNGKey(0)).sample(16, key=jax.random.PRNGKey(3)))
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


def test_orientation_power_model_round_trip_and_synthesis(fields, tmp_path):
    """``orientation_power``: J·(L − 1) more statistics, kept through save/load, and a synthesis that
    still lowers its loss by orders of magnitude."""
    m = ScatteringModel.fit(fields[:32], key=jax.random.PRNGKey(0), J=J, mode="micro", steps=100,
                            orientation_power=True)
    plain = ScatteringModel.fit(fields[:32], key=jax.random.PRNGKey(0), J=J, mode="micro", steps=100)
    assert m.orientation_power and m.n_stats == plain.n_stats + J * 3
    back = load_model(m.save(tmp_path / "op.h5"))
    assert back.orientation_power and back.n_stats == m.n_stats
    np.testing.assert_allclose(np.asarray(back.statistics(fields[:2])), np.asarray(m.statistics(fields[:2])),
                               rtol=1e-5, atol=1e-6)
    res = m.synthesize(4, key=jax.random.PRNGKey(5))
    assert np.all(res.loss < 1e-2 * res.initial_loss)


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
        ScatteringModel.fit(bad, J=2, key=jax.random.PRNGKey(0))
    with pytest.raises(E.InputError, match="2\\^J"):
        ScatteringModel.fit(fields[:4, :8, :8], J=4, key=jax.random.PRNGKey(0))
    with pytest.raises(E.ParameterError, match="mode"):
        ScatteringModel.fit(fields[:4], J=2, mode="grand", key=jax.random.PRNGKey(0))
    with pytest.raises(E.InputError, match="at least 2"):
        ScatteringModel.fit(fields[:1], J=2, mode="maxent", steps=2, key=jax.random.PRNGKey(0))
    with pytest.raises(E.ParameterError, match="unknown option"):
        fit("scattering", fields[:4], J=2, temperature=1.0)
    m = ScatteringModel.fit(fields[:4], J=2, steps=3, key=jax.random.PRNGKey(0))
    with pytest.raises(E.ParameterError, match="maxent"):
        m.sample(2, key=jax.random.PRNGKey(0), kernel="hmc")
    with pytest.raises(E.ParameterError, match="unknown option"):
        sample(m, 2, nfe=3)


@pytest.fixture(scope="module")
def shipped_quality(load_script):
    """benchmarks/scattering_synthesis.quality: J = 5 (1011 statistics), 64 training fields, 16 samples
    (300 preconditioned L-BFGS iterations) and a Gaussian field with the training spectrum, both
    against the held-out truth, next to the truth-vs-truth floor. Cached per dataset."""
    cache = {}

    def get(name):
        if name not in cache:
            if not (DATA / f"{name}.h5").exists():
                pytest.skip(f"{name}.h5 not there")
            cache[name] = load_script("benchmarks/scattering_synthesis.py").quality((name,), plain=False)[name]
        return cache[name]

    return get


def _within_floor(d, k=3.0):
    return d["model"] < d["floor"] + k * max(d["floor_std"], 0.1 * d["floor"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["turbulence_64", "cosmic_web_64"])
def test_micro_synthesis_on_shipped_data(name, shipped_quality):
    """What holds for both datasets (measured, load ~7 on 2 cores, ~80 s per dataset): Φ matched better
    than a typical training field matches Φ̄; the equilateral reduced bispectrum (NOT in Φ) within the
    truth floor (2026-12-05, spectrum start: turbulence 1.32, cosmic web 0.87, null means 1.19 / 1.12 ±
    0.66). The Gaussian reference is within it too here (1.13 / 0.28), so the two are not ranked: the
    difference is inside the null's spread."""
    q = shipped_quality(name)
    s, g = q["scattering"], q["gaussian"]
    assert q["n_stats"] == 1011
    assert s["loss_median"] < 0.7 * q["data_loss_median"], (s["loss_median"], q["data_loss_median"])
    bq = s["distances"]["bispectrum_chi2_Q"]
    assert _within_floor(bq), (bq, g["distances"])


@pytest.mark.slow
def test_micro_synthesis_cosmic_web_matches_pdf_and_beats_gaussian_on_minkowski(shipped_quality):
    """Cosmic web (log 1+δ, skewed): pixel PDF and flatness within the floor (W1/σ 0.023 vs floor
    0.020 ± 0.007; Gaussian 0.10), Minkowski functionals (not in Φ) χ² ≈ 8 vs the Gaussian's ≈ 60
    (floor 1.0); power spectrum inside the Nyquist circle χ² ≈ 3.7 (floor 1.0; the grid corners,
    which Φ does not see, keep the starting noise and are excluded)."""
    q = shipped_quality("cosmic_web_64")
    s, g = q["scattering"]["distances"], q["gaussian"]["distances"]
    assert _within_floor(s["pdf_w1"]) and s["pdf_w1"]["model"] < 0.5 * g["pdf_w1"]["model"], (s, g)
    assert _within_floor(s["flatness_chi2"]), s
    assert s["minkowski_chi2"]["model"] < 0.3 * g["minkowski_chi2"]["model"], (s, g)
    assert s["power_spectrum_chi2_in_band"]["model"] < 10, s


@pytest.mark.slow
def test_micro_synthesis_turbulence_beats_gaussian_on_minkowski(shipped_quality):
    """Was a strict xfail while samples kept white starting noise in the dealiased band and the grid
    corners; with the band-restricted synthesis from the data's spectrum (docs/scattering.md) the
    microcanonical samples beat the exact-spectrum Gaussian on the Minkowski functionals."""
    q = shipped_quality("turbulence_64")
    s, g = q["scattering"]["distances"], q["gaussian"]["distances"]
    assert s["minkowski_chi2"]["model"] < g["minkowski_chi2"]["model"], (s, g)
