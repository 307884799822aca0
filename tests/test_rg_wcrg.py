"""WC-RG: exact feature gradients and Laplacians, closed-form score matching, coarse-to-fine MALA sampling,
the Gaussian-free-field closed form, φ⁴ at criticality, linear cost, files and sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.energies import gff_exact_spectrum
from phigen.errors import InputError, ModelFileError, ParameterError
from phigen.rg import WaveletFactorisation, detail_row_norms, per_scale_std
from phigen.rg.gibbs import (LevelConstants, LevelSpec, feature_gradients, feature_laplacians, hutchinson_laplacians,
                             level_energy, level_value_and_grad, score_matching_system, solve_score_matching)
from phigen.rg.wcrg import WCRGConfig, WCRGModel
from phigen.stats.spectrum import isotropic_average, power_spectrum


def _gff(n, L, kappa, seed):
    """Exact GFF samples: white noise filtered by the square root of the exact spectrum."""
    p = gff_exact_spectrum(L, kappa)
    w = np.random.default_rng(seed).standard_normal((n, L, L))
    return np.real(np.fft.ifft2(np.fft.fft2(w) * np.sqrt(p))).astype(np.float32), p


@pytest.fixture(scope="module")
def level_setup():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 16, 16)) ** 3).astype(np.float32)  # non-Gaussian, so g'' varies
    f = WaveletFactorisation.fit(x, J=1)
    consts = LevelConstants.conditional("db4", f.detail_mean[0], f.detail_std[0], f.coarse_mean[1], f.coarse_std[1],
                                        f.coarse_mean[0], f.coarse_std[0])
    xc, d = f.level_data(x, 1)
    return LevelSpec(3, True, k=1, centres=(-1.0, 0.0, 1.0), width=1.0), consts, xc, d


def test_detail_row_norms_sum_with_coarse_rows_to_one():
    haar = detail_row_norms("haar")
    np.testing.assert_allclose(haar, 0.25, atol=1e-6)  # 2D Haar: each channel ¼, coarse ¼
    db4 = detail_row_norms("db4").sum(axis=0)
    assert np.all((db4 > 0) & (db4 < 1))  # the coarse rows take the rest, parity-dependent for db4
    assert np.ptp(db4) > 1e-3


def test_feature_gradients_are_the_autodiff_gradients(level_setup):
    spec, consts, xc, d = level_setup
    from phigen.rg.gibbs import level_features

    g = feature_gradients(spec, consts, d[0], xc[0])
    g_ad = jax.jacrev(lambda y: level_features(spec, consts, y, xc[0]))(d[0])
    assert g.shape == (spec.n_features, 3, 8, 8)
    np.testing.assert_allclose(g, g_ad, atol=2e-5 * float(jnp.abs(g_ad).max()))


def test_exact_laplacians_match_hutchinson(level_setup):
    spec, consts, xc, d = level_setup
    exact = np.asarray(feature_laplacians(spec, consts, d[0], xc[0]))
    probes = 2000
    est = np.asarray(hutchinson_laplacians(spec, consts, d[0], xc[0], key=jax.random.PRNGKey(3), n_probes=probes))
    lo, hi = spec.blocks()["potential"]
    # Rademacher Hutchinson: var = 2 Σ_{i≠j} H_ij²; bound it by 2‖H‖_F², estimated from the Hessian columns
    H = jax.jacfwd(lambda y: feature_gradients(spec, consts, y, xc[0])[lo:hi])(d[0]).reshape(hi - lo, 192, 192)
    se = np.sqrt(2.0 * np.sum(np.asarray(H) ** 2, axis=(1, 2)) / probes)
    assert np.all(np.abs(est[lo:hi] - exact[lo:hi]) < 5 * se + 1e-4)
    np.testing.assert_allclose(est[:lo], exact[:lo], atol=5 * np.sqrt(2 * 2 * 192 / probes) + 1e-6)


def test_fast_energy_equals_the_feature_energy(level_setup):
    spec, consts, xc, d = level_setup
    theta = jnp.asarray(np.random.default_rng(1).standard_normal(spec.n_features) * 0.1, jnp.float32)
    u, g = level_value_and_grad(theta, spec, consts, xc)(d)
    u_ref = level_energy(theta, spec, consts, d, xc)
    g_ref = jax.grad(lambda y: jnp.sum(level_energy(theta, spec, consts, y, xc)))(d)
    np.testing.assert_allclose(u, u_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(g, g_ref, atol=1e-5 * float(jnp.abs(g_ref).max()))


def test_magnetisation_terms_add_the_global_energy_and_its_exact_gradient():
    from phigen.rg.gibbs import with_magnetisation_terms

    spec = LevelSpec(1, False, k=1, centres=(), width=1.0)
    theta = np.random.default_rng(1).normal(size=spec.n_features).astype(np.float32) * 0.1
    base = level_value_and_grad(theta, spec, LevelConstants.coarsest())
    y = jax.random.normal(jax.random.key(3), (5, 1, 8, 8)) + 0.7
    vg = with_magnetisation_terms(base, jnp.asarray([0.3, -0.05]))
    u, g = vg(y)
    m = np.asarray(y, np.float64)[:, 0].mean(axis=(-2, -1))
    np.testing.assert_allclose(u - base(y)[0], 64 * (0.3 * m**2 - 0.05 * m**4), rtol=1e-4, atol=1e-3)
    auto = jax.grad(lambda z: jnp.sum(vg(z)[0]))(y)
    np.testing.assert_allclose(g, auto, rtol=1e-4, atol=1e-4)
    assert with_magnetisation_terms(base, None) is base
    # (a, b, A, m₀, s): the bump n·A·exp(−(|M| − m₀)²/2s²) and its gradient
    vg5 = with_magnetisation_terms(base, jnp.asarray([0.3, -0.05, 0.8, 0.6, 0.2]))
    u5, g5 = vg5(y)
    np.testing.assert_allclose(u5 - u, 64 * 0.8 * np.exp(-0.5 * ((np.abs(m) - 0.6) / 0.2) ** 2), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(g5, jax.grad(lambda z: jnp.sum(vg5(z)[0]))(y), rtol=1e-4, atol=1e-4)


def test_score_matching_recovers_a_known_gaussian_energy():
    """Samples of U = Σ a y² + b Σ y(s) y(s+e_x): score matching returns (a, b) within its error."""
    L, n = 16, 200
    a, b = 0.5, 0.3  # precision Q(k) = 2a + 2b cos k_x > 0
    k = 2 * np.pi * np.fft.fftfreq(L)
    q = 2 * a + 2 * b * np.cos(k)[None, :] + 0 * k[:, None]
    w = np.random.default_rng(2).standard_normal((n, L, L))
    y = np.real(np.fft.ifft2(np.fft.fft2(w) / np.sqrt(q)))[:, None].astype(np.float32)
    spec = LevelSpec(1, False, k=1, centres=(), quartic=False)
    M, bb, nn = score_matching_system(spec, LevelConstants.coarsest(), y)
    theta = solve_score_matching(M, bb, nn, ridge=1e-9).theta
    terms = {t: i + spec.blocks()["yy"][0] for i, t in enumerate(spec.yy_terms)}
    assert theta[terms[(0, 0, (0, 0))]] == pytest.approx(a, rel=0.03)
    assert theta[terms[(0, 0, (0, 1))]] == pytest.approx(b, rel=0.05)
    others = [theta[i] for t, i in terms.items() if t[2] not in ((0, 0), (0, 1))]
    assert np.max(np.abs(others)) < 0.02


def test_wcrg_on_the_gaussian_free_field_reproduces_the_exact_spectrum():
    L, kappa = 32, 0.2
    x, p2d = _gff(256, L, kappa, seed=0)
    # calibrate=0: this checks score matching itself, whose quadratic family holds the exact law
    model = WCRGModel.fit(x, key=jax.random.PRNGKey(0), J=2, k=2, k_coarse=2, n_bumps=0, ridge=1e-5,
                          check_samples=0, calibrate=0)
    s = np.asarray(model.sample(256, key=jax.random.PRNGKey(1), steps=400))
    ps = power_spectrum(s)
    exact = np.asarray(isotropic_average(p2d).power)
    est = np.asarray(ps.power).mean(axis=0)
    # each shell averages counts/2 independent exponential |x̂|² (x real): relative se sqrt(2/(counts·n));
    # the fitted θ carries the same relative error from the n_train training fields, hence 1/n + 1/n_train
    se = exact * np.sqrt(2.0 / np.asarray(ps.counts) * (1.0 / len(s) + 1.0 / len(x)))
    z = (est - exact) / se
    print("GFF spectrum z-scores per shell:", np.round(z, 2))
    assert np.all(np.abs(z) < 5), z
    assert np.mean(z**2) < 2.5  # no systematic tilt either (E = 1 for an exact model)


@pytest.fixture(scope="module", params=[32, pytest.param(64, marks=pytest.mark.slow)], ids=["32", "64"])
def phi4_model(request):
    from phigen import read_fields
    from phigen._quickstart import _block_average

    x = np.asarray(read_fields("data/phi4_64.h5"))  # 256 fields, 64², κ = 0.34 ≈ κ_c, λ = 1
    if request.param == 32:
        # the default run's twin: the same fields block-averaged 2×2 to 32² (periodic, each field's mean,
        # hence the magnetisation law and U₄, unchanged; J = 2 instead of 3, the same 8×8 coarsest field)
        x = _block_average(x, 2)
    # the CI-size model: k = 1, short chains, a light variance calibration (2 passes, 64 chains)
    model = WCRGModel.fit(x, key=jax.random.PRNGKey(0), k=1, sign_symmetric=True, check_samples=0, sample_steps=300, sample_adapt=100,
                          coarse_sample_steps=8000, coarse_sample_adapt=1000, calibrate=2, calibrate_fields=64)
    return model, x


def _binder(f):
    m = np.asarray(f, np.float64).mean(axis=(1, 2))
    return 1 - np.mean(m**4) / (3 * np.mean(m**2) ** 2)


def test_wcrg_phi4_at_criticality_std_per_scale_and_binder(phi4_model):
    model, x = phi4_model
    s = np.asarray(model.sample(96, key=jax.random.PRNGKey(5), steps=300, coarse_steps=8000))
    rep = model.scale_report(s, x)
    # tolerance: 96 samples (truth-vs-truth splits of this size differ by ≈ 2 % at the coarsest level)
    # and a light calibration; the benchmark's defaults reach ≈ 2 %
    assert rep["max_abs_detail_rel_error"] < 0.05, rep["detail_std_rel_error"]
    np.testing.assert_allclose(rep["coarse_std_model"], rep["coarse_std_truth"], rtol=0.06)
    # low-pass std growth per octave: ≈ 2^{1-η/2} = 1.83 for the Ising class at criticality
    growth = np.asarray(rep["std_growth_truth"])
    print("std growth per octave (truth):", growth, "model:", rep["std_growth_model"])
    assert np.all(np.abs(np.asarray(rep["std_growth_model"]) / growth - 1) < 0.06)
    # Binder cumulant: bootstrap se of the model's estimate from 96 fields ≈ 0.03; the magnetisation
    # terms are moment-matched to these training fields (without them the coarsest energy's own law
    # gave U₄ 0.545 against 0.608 here)
    assert abs(_binder(s) - _binder(x)) < 0.07
    assert all(0.4 < i["acceptance"] < 0.75 for i in rep["sampling"])
    assert rep["sampling"][0]["flip_acceptance"] > 0.99  # sign-symmetric energy: every flip is accepted


def test_wcrg_calibration_moves_each_level_towards_the_data(phi4_model, tmp_path):
    model, _ = phi4_model
    levels = model.training["levels"]
    assert model.training["calibrate"] == 2 and len(levels) == model.J + 1
    # the coarsest energy keeps its score-matching θ; its magnetisation terms are moment-matched
    coarse = levels[-1]["calibration"]
    moments = np.abs(np.asarray(coarse["magnetisation_moment_rel_error_per_pass"]))
    # at least 3 Newton passes of the magnetisation terms whatever `calibrate` is (2 here), then the check pass
    assert moments.shape == (4, 2) and moments[-1].max() < 0.15, moments  # E[nM⁴] from 256 chains: ± 5–8 %
    assert np.any(model.magnetisation != 0) and model.training["magnetisation"] == model.magnetisation.tolist()
    for rec in levels[:-1]:
        cal = rec["calibration"]
        var = np.abs(np.asarray(cal["variance_rel_error_per_pass"]))
        spec = np.asarray(cal["spectrum_rms_log_ratio_per_pass"])
        assert var.shape == (3, 3) and np.all(np.isfinite(var)) and spec.shape == (3,)
        # after the corrections every channel's variance is within a few % (chain noise ≈ 1–2 %)
        assert var[-1].max() < 0.05, (rec["level"], var)
        assert spec[-1] <= spec[0] + 0.02, (rec["level"], spec)  # the spectrum does not drift away
    # more chains at the small coarse levels
    assert levels[-2]["calibration"]["fields"] >= levels[0]["calibration"]["fields"]
    back = WCRGModel.load(model.save(tmp_path / "calibrated.h5"))  # the calibrated θ and records are kept
    for a, b in zip(back.thetas, model.thetas):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.magnetisation, model.magnetisation)
    assert back.training["levels"][0]["calibration"] == levels[0]["calibration"]


def test_wcrg_sampling_cost_is_linear_in_pixels(phi4_model):
    model, _ = phi4_model
    costs = [model.sampling_cost((L, L))["site_evaluations"] for L in (64, 128, 256)]
    assert costs[1] == 4 * costs[0] and costs[2] == 4 * costs[1]
    levels = model.sampling_cost((128, 128))["levels"]
    assert len({l["evaluations"] for l in levels[1:]}) == 1  # the same number of steps at every finer scale


def test_wcrg_save_load_round_trip_and_sizes(tmp_path):
    x, _ = _gff(32, 32, 0.2, seed=3)
    model = WCRGModel.fit(x, J=2, k=1, n_bumps=2, check_samples=0, calibrate=0, key=jax.random.PRNGKey(0))
    path = model.save(tmp_path / "m.h5")
    back = WCRGModel.load(path)
    assert back.n_params == model.n_params and back.J == model.J
    assert [s.centres for s in back.specs] == [s.centres for s in model.specs]
    # the same draws from the loaded model; and (translation-invariant energies) at another size whose
    # sides are multiples of 2^J than the training fields' (one size only: each new shape compiles anew)
    a = np.asarray(model.sample(3, key=jax.random.PRNGKey(9), shape=(64, 32), steps=20, coarse_steps=20))
    b = np.asarray(back.sample(3, key=jax.random.PRNGKey(9), shape=(64, 32), steps=20, coarse_steps=20))
    assert a.shape == (3, 64, 32) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ParameterError, match="multiples of 2\\^J"):
        back.sample(2, key=jax.random.PRNGKey(0), shape=(30, 30))
    with pytest.raises(ParameterError, match="coarsest field"):
        back.sample(2, key=jax.random.PRNGKey(0), shape=(8, 8))
    with pytest.raises(ModelFileError):
        from phigen.diffusion.models import DiffusionModel

        DiffusionModel.load(path)


def test_wcrg_skips_magnetisation_terms_when_the_mean_is_fixed():
    # periodic vorticity and density contrasts have the same mean on every field: moment matching of
    # nM² ≈ 0 would drive the coarse energy's a → ∞ and the calibration chains off (turbulence: ×100)
    x, _ = _gff(32, 16, 0.2, seed=5)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    model = WCRGModel.fit(x, key=jax.random.PRNGKey(0), J=1, k=1, n_bumps=2, check_samples=0, calibrate=2,
                          calibrate_fields=32, sample_steps=150, sample_adapt=50, coarse_sample_steps=600, coarse_sample_adapt=150)
    assert np.all(model.magnetisation == 0)
    assert any("does not fluctuate" in n for n in model.training["calibration_notes"])
    s = np.asarray(model.sample(32, key=jax.random.PRNGKey(1), steps=150, coarse_steps=600))
    rel = per_scale_std(s, "db4", 1)["detail"] / per_scale_std(x, "db4", 1)["detail"] - 1
    assert np.all(np.isfinite(s)) and np.max(np.abs(rel)) < 0.25, rel


def test_wcrg_bad_input():
    x = np.random.default_rng(0).standard_normal((8, 32, 32)).astype(np.float32)
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        WCRGModel.fit(bad, check_samples=0, key=jax.random.PRNGKey(0))
    with pytest.raises(ParameterError, match="neighbourhood"):
        WCRGModel.fit(x, J=2, k=2, k_coarse=5, check_samples=0, key=jax.random.PRNGKey(0))
    with pytest.raises(InputError, match="multiples"):
        WCRGModel.fit(x[:, :30, :30], J=3, check_samples=0, key=jax.random.PRNGKey(0))
    with pytest.raises(ParameterError, match="one integer or 2"):
        WCRGModel.fit(x, J=2, k=(1, 1, 1), check_samples=0, key=jax.random.PRNGKey(0))
    with pytest.raises(ParameterError, match="calibrate"):
        WCRGModel.fit(x, J=2, calibrate=-1, check_samples=0, key=jax.random.PRNGKey(0))
    with pytest.raises(ParameterError, match="shifts"):
        WCRGModel.fit(x, J=2, shifts=0, check_samples=0, key=jax.random.PRNGKey(0))
    # fit's sampling budget is named apart from training steps; the old names say so
    with pytest.raises(ParameterError, match="'coarse_steps' are now 'coarse_sample_steps'"):
        WCRGModel.fit(x, J=2, coarse_steps=100, key=jax.random.PRNGKey(0))
    with pytest.raises(ParameterError, match="unknown option.*learning_rate"):
        WCRGModel.fit(x, J=2, learning_rate=1e-3, key=jax.random.PRNGKey(0))
    with pytest.raises(ParameterError, match="sample_adapt"):
        WCRGConfig(sample_steps=10, sample_adapt=10)
    with pytest.raises(ParameterError, match="WCRGConfig"):
        WCRGModel.fit(x, config={"J": 2}, key=jax.random.PRNGKey(0))


def test_wcrg_config_is_one_frozen_record():
    import dataclasses

    from phigen.models import model_options

    cfg = WCRGConfig(k=[2, 1], calibrate=0)
    assert cfg.k == (2, 1) and hash(cfg) == hash(WCRGConfig(k=(2, 1), calibrate=0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.k = 3
    assert WCRGConfig.from_options(cfg, {"ridge": 1e-3}) == dataclasses.replace(cfg, ridge=1e-3)
    # the model's options are the config's fields: phigen fit and compare check against them
    opts = model_options(WCRGModel, "fit")
    assert opts == {f.name for f in dataclasses.fields(WCRGConfig)} and "sign_symmetric" in opts


def test_wcrg_through_the_cli(tmp_path):
    import phigen
    from phigen.cli import main

    x, _ = _gff(24, 32, 0.2, seed=4)
    data = phigen.write_fields(tmp_path / "gff.h5", x, field="gaussian")
    assert main(["fit", "wcrg", str(data), "-o", str(tmp_path / "m.h5"), "--J", "2", "--set", "k=1",
                 "--set", "check_samples=4", "--set", "calibrate=0", "--quiet"]) == 0
    model = phigen.load_model(tmp_path / "m.h5")
    assert model.kind == "wcrg" and "check" in model.training
    assert main(["sample", str(tmp_path / "m.h5"), "-n", "4", "-o", str(tmp_path / "s.h5"), "--set", "steps=50",
                 "--quiet"]) == 0
    assert phigen.read_fields(tmp_path / "s.h5").shape == (4, 32, 32)


def test_fourier_mass_matrix_whitens_a_quadratic_level_and_keeps_the_law():
    """The symbol Q̂(k) applies the quadratic part's Hessian exactly; P^{1/2} Q P^{1/2} = I where no
    eigenvalue is clipped; and MALA in the whitened variable samples the same Gaussian (exact
    covariance per frequency) in a few steps where the plain chain, limited by the stiffest mode, has not."""
    from phigen.rg._preconditioner import apply_symbol, quadratic_symbol
    from phigen.rg.gibbs import _quadratic_kernel, level_preconditioner, sample_level

    L, n = 16, 512
    spec = LevelSpec(1, False, k=1, centres=(), quartic=False)
    a, b = 0.5, 0.249  # Q(k) = 2a + 2b(cos kx + cos ky): condition (2a + 4b)/(2a − 4b) = 499
    theta = np.zeros(spec.n_features, np.float32)
    terms = {t: i + spec.blocks()["yy"][0] for i, t in enumerate(spec.yy_terms)}
    theta[terms[(0, 0, (0, 0))]], theta[terms[(0, 0, (0, 1))]], theta[terms[(0, 0, (1, 0))]] = a, b, b
    consts = LevelConstants.coarsest()
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.standard_normal((4, 1, L, L)), jnp.float32)
    _, g = level_value_and_grad(jnp.asarray(theta), spec, consts)(y)
    sym = jnp.asarray(quadratic_symbol(_quadratic_kernel(jnp.asarray(theta), spec), spec.offsets, (L, L)), jnp.complex64)
    np.testing.assert_allclose(apply_symbol(sym, y), g, atol=2e-5)
    half, ihalf, cond = level_preconditioner(theta, spec, consts, y)
    assert cond == pytest.approx(499, rel=1e-3)
    np.testing.assert_allclose(apply_symbol(half, apply_symbol(sym, apply_symbol(half, y))), y, atol=2e-5)
    np.testing.assert_allclose(apply_symbol(ihalf, apply_symbol(half, y)), y, atol=2e-5)

    k = 2 * np.pi * np.fft.fftfreq(L)
    q = 2 * a + 2 * b * (np.cos(k)[None, :] + np.cos(k)[:, None])
    y0 = jnp.asarray(rng.standard_normal((n, 1, L, L)) * 3.0, jnp.float32)  # far from equilibrium
    out = {}
    for pre in (False, True):
        s, info = sample_level(theta, spec, consts, y0, key=jax.random.PRNGKey(1), n_steps=60, n_adapt=30,
                               precondition=pre)
        p = np.mean(np.abs(np.fft.fft2(np.asarray(s)[:, 0])) ** 2, axis=0) / L**2  # E|ŷ|²/V = 1/Q(k)
        out[pre] = (p * q, info)
    ratio, info = out[True]
    # |ŷ(k)|²/V is exponential with mean 1/Q(k): relative se 1/√n per frequency (√(2/n) at the 4 real ones)
    assert np.max(np.abs(ratio - 1)) < 5 * np.sqrt(2.0 / n), np.max(np.abs(ratio - 1))
    assert info.mass_condition == pytest.approx(499, rel=1e-3) and info.acceptance > 0.4
    soft = q < 0.05  # the slowest modes of the plain chain (relaxation rate ≈ 2εQ per step, ε ≲ 1/Q_max)
    assert abs(ratio[soft].mean() - 1) < 5 / np.sqrt(n * soft.sum())
    assert out[False][0][soft].mean() < 0.8  # the plain chain has not relaxed them in 60 steps
    assert np.isnan(out[False][1].mass_condition)


def test_potential_curvature_is_the_mean_second_derivative_of_the_potential():
    """Coarsest level with the quartic alone, V = θ t⁴/24: c̄ = θ⟨y²⟩/2."""
    from phigen.rg.gibbs import potential_curvature

    spec = LevelSpec(1, False, k=1, centres=())
    theta = np.zeros(spec.n_features, np.float32)
    theta[spec.blocks()["potential"][0]] = 3.0
    y = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32) * 2
    np.testing.assert_allclose(potential_curvature(theta, spec, LevelConstants.coarsest(), y),
                               [3.0 * np.mean(y**2) / 2], rtol=1e-5)


def test_rg_models_reexported():
    import phigen
    import phigen.models as pm
    from phigen.rg import WCRGModel, WSGMModel

    assert WCRGModel is pm.get_model_class("wcrg") and WSGMModel is pm.get_model_class("wsgm")
    assert phigen.rg.WCRGModel is WCRGModel
    with pytest.raises(AttributeError, match="no attribute"):
        phigen.rg.NoSuchModel


def test_sampling_runs_the_calibration_chain_batches(tmp_path):
    # sampling right after a fit reuses the kernels the calibration compiled: chains are padded to the
    # calibration's count when n is at least half of it, and a larger n runs in batches of it
    x, _ = _gff(24, 16, 0.2, seed=7)
    model = WCRGModel.fit(x, key=jax.random.PRNGKey(0), J=1, k=1, n_bumps=2, check_samples=0, calibrate=1,
                          calibrate_fields=8, sample_steps=40, sample_adapt=10, coarse_sample_steps=80, coarse_sample_adapt=20)
    chains = model.sampling["chains"]
    assert len(chains) == model.J + 1 and all(c >= 8 for c in chains)
    c = chains[0]
    for n, batches in ((c // 2 + 1, [c]), (c + 3, [c, c])):
        s = np.asarray(model.sample(n, key=jax.random.PRNGKey(n)))
        assert s.shape == (n, 16, 16) and np.all(np.isfinite(s))
        assert model.last_sample_info[-1]["level"] == 1 and model.last_sample_info[-1]["chain_batches"] == batches
        # no padded chain leaks into the output: every field is its own draw
        flat = s.reshape(n, -1)
        assert np.min(np.abs(flat[:, None] - flat[None]).sum(-1) + np.eye(n) * 1e9) > 0
    # fewer than half the calibration's chains, or another size: no padding (no new kernel is drawn here)
    assert model._chain_batch(1, c // 2 - 1, (16, 16)) == c // 2 - 1
    assert model._chain_batch(1, c // 2 + 1, (32, 32)) == c // 2 + 1
    # the batches survive a save/load
    assert WCRGModel.load(model.save(tmp_path / "m.h5")).sampling["chains"] == chains


# --- modulus features ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def modulus_setup():
    """A level of 8×8 non-Gaussian fields (4×4 details: 48 variables, so full Hessians are cheap)."""
    from phigen.rg.gibbs import modulus_scales

    x = (np.random.default_rng(0).standard_normal((4, 8, 8)) ** 3).astype(np.float32)
    f = WaveletFactorisation.fit(x, J=1)
    consts = LevelConstants.conditional("db4", f.detail_mean[0], f.detail_std[0], f.coarse_mean[1], f.coarse_std[1],
                                        f.coarse_mean[0], f.coarse_std[0])
    xc, d = f.level_data(x, 1)
    fine = modulus_scales(f.normalise_coarse(x, 0), 4)
    coarse = modulus_scales(f.normalise_coarse(xc, 1), 4)
    spec = LevelSpec(3, True, k=1, centres=(-1.0, 0.0, 1.0), width=1.0, modulus=4, modulus_centres=(0.5, 1.0, 2.0),
                     modulus_scale=tuple(fine.tolist()), coarse_modulus_scale=tuple(coarse.tolist()))
    return spec, consts, xc, d


def test_modulus_features_gradients_and_exact_laplacians(modulus_setup):
    from phigen.rg.gibbs import level_features

    spec, consts, xc, d = modulus_setup
    lo, hi = spec.blocks()["modulus"]
    assert hi - lo == 4 * 5 and hi == spec.n_features  # per orientation: t, 3 bumps, t·v
    y = jnp.asarray(d[0])
    # jitted: op-by-op autodiff of the FFTs takes a minute on a CPU, compiled a few seconds
    g_ad = jax.jit(jax.jacrev(lambda a: level_features(spec, consts, a, xc[0])))(y)
    g = jax.jit(lambda a: feature_gradients(spec, consts, a, xc[0]))(y)
    np.testing.assert_allclose(g, g_ad, atol=2e-5 * float(jnp.abs(g_ad).max()))
    # the Laplacian against the trace of the full autodiff Hessian: exact, not a probe estimate
    H = jax.jit(jax.jacfwd(lambda a: feature_gradients(spec, consts, a, xc[0])[lo:hi]))(y).reshape(hi - lo, 48, 48)
    exact = np.trace(np.asarray(H, np.float64), axis1=1, axis2=2)
    lap = np.asarray(jax.jit(lambda a: feature_laplacians(spec, consts, a, xc[0]))(y))[lo:hi]
    np.testing.assert_allclose(lap, exact, rtol=1e-4, atol=1e-4 * np.abs(exact).max())
    # and the sampler's fused energy and gradient equal θ·Φ and its autodiff gradient
    theta = jnp.asarray(np.random.default_rng(1).standard_normal(spec.n_features) * 0.1, jnp.float32)
    u, gu = jax.jit(level_value_and_grad(theta, spec, consts, xc))(d)
    u_ref = jax.jit(lambda a: level_energy(theta, spec, consts, a, xc))(d)
    g_ref = jax.jit(jax.grad(lambda a: jnp.sum(level_energy(theta, spec, consts, a, xc))))(d)
    np.testing.assert_allclose(u, u_ref, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(gu, g_ref, atol=1e-5 * float(jnp.abs(g_ref).max()))


def test_modulus_spec_validation():
    with pytest.raises(ParameterError, match="conditional levels only"):
        LevelSpec(1, False, modulus=2, modulus_scale=(1.0, 1.0), coarse_modulus_scale=(1.0, 1.0))
    with pytest.raises(ParameterError, match="modulus_scale needs 4"):
        LevelSpec(3, True, modulus=4, modulus_scale=(1.0,), coarse_modulus_scale=(1.0,) * 4)
    with pytest.raises(ParameterError, match="positive"):
        LevelSpec(3, True, modulus=2, modulus_scale=(1.0, float("nan")), coarse_modulus_scale=(1.0, 1.0))
    with pytest.raises(ParameterError, match="modulus"):
        WCRGConfig(modulus=-1)


def test_wcrg_with_modulus_features_fits_calibrates_and_round_trips(tmp_path):
    g, _ = _gff(12, 16, 0.2, seed=5)
    x = np.exp(0.8 * g / g.std()).astype(np.float32)  # lognormal: sparse fine-scale amplitudes
    model = WCRGModel.fit(x, J=1, k=1, n_bumps=3, modulus=2, modulus_bumps=3, calibrate=1, calibrate_fields=8,
                          sample_steps=30, sample_adapt=10, coarse_sample_steps=40, coarse_sample_adapt=10,
                          check_samples=0, key=jax.random.PRNGKey(0))
    assert [s.modulus for s in model.specs] == [2, 0]
    assert model.n_params == sum(s.n_features for s in model.specs)
    err = model.training["levels"][0]["calibration"]["modulus_moment_rms_rel_error_per_pass"]
    assert len(err) == 2 and np.all(np.isfinite(err))
    back = WCRGModel.load(model.save(tmp_path / "m.h5"))
    assert back.specs == model.specs
    a = np.asarray(model.sample(2, key=jax.random.PRNGKey(1), steps=10, coarse_steps=10))
    b = np.asarray(back.sample(2, key=jax.random.PRNGKey(1), steps=10, coarse_steps=10))
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_per_scale_std_null_matches_the_sampling_error_and_keeps_groups():
    """White noise, one db4 level: each detail channel of a half holds n = m·(H/2)² independent
    N(0, 1) coefficients, so s_A/s_B − 1 ≈ N(0, 1/n) per channel and the null's mean is
    E max_c |Z_c| / √n = 1.3264 / √n over the 3 channels (200 splits: a few % Monte-Carlo error).
    With a variance that differs between groups, splitting by group widens the null."""
    from phigen.rg import per_scale_std_null

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16, 16)).astype(np.float32)
    null = per_scale_std_null(x, "db4", 1, n_splits=200)
    n = null["m"] * 8 * 8
    assert null["m"] == 32 and null["max_rel_error"].shape == (200,)
    assert abs(null["mean"] * np.sqrt(n) / 1.3264 - 1) < 0.12, null["mean"] * np.sqrt(n)
    assert null["p95"] > null["mean"]
    # 8 groups of 8 fields, each group with its own amplitude (±10 %): the group-aware null is wider
    groups = np.repeat(np.arange(8), 8)
    y = x * np.repeat(1 + 0.1 * rng.standard_normal(8), 8)[:, None, None].astype(np.float32)
    plain = per_scale_std_null(y, "db4", 1, n_splits=200)
    grouped = per_scale_std_null(y, "db4", 1, groups=groups, n_splits=200)
    assert grouped["mean"] > 1.5 * plain["mean"]
    # it agrees with per_scale_std on one split
    from phigen.splits import equal_halves

    a, b = equal_halves(np.random.default_rng(0), 64, 32)
    want = np.max(np.abs(per_scale_std(x[a], "db4", 1)["detail"] / per_scale_std(x[b], "db4", 1)["detail"] - 1))
    got = per_scale_std_null(x, "db4", 1, n_splits=1, seed=0)["max_rel_error"][0]
    assert got == pytest.approx(want, rel=1e-4)
