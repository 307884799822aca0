"""Conditional WC-RG: θ_j(c) = Σ_b g_b(c) θ_{j,b} by closed-form score matching across conditions."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import phigen
from phigen import errors as E
from phigen.rg.conditional import ConditionalWCRGModel, condition_basis
from phigen.rg.gibbs import score_matching_system, solve_score_matching
from phigen.rg.wcrg import _shifted_level_data
from phigen.rg._shifts import level_shifts

OPTS = dict(J=2, k=1, k_coarse=1, n_bumps=2, shifts=2, sample_steps=40, sample_adapt=10, coarse_sample_steps=80,
            coarse_sample_adapt=20)


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    """φ⁴ 16² at three κ across the transition (λ = 1), 16 configurations each, κ in the conditions."""
    path = tmp_path_factory.mktemp("cond") / "grid.h5"
    return phigen.generate("phi4", path, size=16, n=48, seed=4, kappa=[0.26, 0.33, 0.40], lam=1.0, n_chains=8,
                           progress=False)


def test_basis_is_the_monomials_of_the_standardised_condition():
    g = condition_basis([[1.0, 2.0], [3.0, 4.0]], mean=[2.0, 3.0], std=[1.0, 1.0], degree=2)
    z = np.array([[-1.0, -1.0], [1.0, 1.0]])
    want = np.stack([np.ones(2), z[:, 0], z[:, 1], z[:, 0] ** 2, z[:, 0] * z[:, 1], z[:, 1] ** 2], axis=1)
    np.testing.assert_allclose(g, want)


def test_interpolating_basis_reproduces_each_conditions_own_fit(grid_file):
    """With K conditions and degree K − 1 the basis spans every function of the condition, so θ(c_k)
    minimises condition k's own score-matching loss ½θᵀMθ − bᵀθ (tiny ridge, the same wavelet
    normalisation). Compared by the loss: ill-conditioned directions leave θ itself loosely fixed."""
    with phigen.open_fields(grid_file) as ds:
        x, c = ds[:], ds.conditions()[:, 0].astype(np.float64)
    # no potential bumps: with 16 fields of 16² they make the systems near-singular (condition numbers
    # 10¹²…), where equal losses no longer pin θ down; the quadratic and quartic features are well posed
    m = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, condition_names=["kappa"], degree=2,
                                 **{**OPTS, "ridge": 1e-9, "coarse_ridge": 1e-9, "n_bumps": 0})
    base = m.base
    for kappa in np.unique(c):
        got = m.thetas_at(kappa)
        for lvl in range(1, base.J + 2):
            spec, consts = base.specs[lvl - 1], base.level_constants(lvl)
            cond, y = _shifted_level_data(base.factorisation, x[c == kappa], lvl, level_shifts(min(lvl, base.J), 2))
            Mk, bk, nk = score_matching_system(spec, consts, y, cond)
            own = solve_score_matching(Mk, bk, nk, ridge=1e-9).theta

            def loss(t):
                t = np.asarray(t, np.float64)
                return (0.5 * t @ Mk @ t - bk @ t) / nk

            assert abs(loss(got[lvl - 1]) - loss(own)) <= 1e-8 * abs(loss(own)), (kappa, lvl, loss(got[lvl - 1]), loss(own))
            # a wrong assembly (another condition's θ) is far off
            other = m.thetas_at(np.unique(c)[(list(np.unique(c)).index(kappa) + 1) % 3])[lvl - 1]
            assert loss(other) - loss(own) > 1e-2 * abs(loss(own))


def test_fit_sample_save_load_through_the_api(grid_file, tmp_path):
    model = phigen.fit("wcrg-conditional", grid_file, condition="kappa", out=tmp_path / "m.h5", sign_symmetric=True,
                       **OPTS)
    assert model.condition_names == ["kappa"] and model.training["n_conditions"] == 3
    assert model.n_params == 3 * sum(s.n_features for s in model.base.specs)
    back = phigen.load_model(tmp_path / "m.h5")
    for a, b in zip(model.thetas_at(0.3), back.thetas_at(0.3)):
        np.testing.assert_array_equal(a, b)
    # an unseen κ between the training ones: a WC-RG energy of its own, sampled and recorded
    out = phigen.sample(tmp_path / "m.h5", 8, out=tmp_path / "s.h5", condition={"kappa": 0.3}, progress=False)
    with phigen.open_fields(out) as ds:
        s = ds[:]
        assert ds.condition_names == ["kappa"] and np.allclose(ds.conditions()[:, 0], 0.3)
        assert ds.params["kappa"] == pytest.approx(0.3) and ds.field == "phi4"
    assert s.shape == (8, 16, 16) and np.all(np.isfinite(s))
    a = np.asarray(back.sample(4, key=jax.random.PRNGKey(2), condition=0.3))
    b = np.asarray(model.at(0.3).sample(4, key=jax.random.PRNGKey(2)))
    assert a.shape == b.shape == (4, 16, 16)


def test_conditional_bad_input(grid_file, tmp_path):
    with phigen.open_fields(grid_file) as ds:
        x, c = ds[:], ds.conditions()[:, 0]
    with pytest.raises(E.ParameterError, match="needs the conditions"):
        ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), **OPTS)
    with pytest.raises(E.ParameterError, match="3 distinct conditions cannot determine a degree-3"):
        ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, degree=3, **OPTS)
    with pytest.raises(E.InputError, match="one row per field"):
        ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c[:5], **OPTS)
    with pytest.raises(E.ParameterError, match="no condition omega_m"):
        phigen.fit("wcrg-conditional", grid_file, condition="omega_m", **OPTS)
    with pytest.raises(E.ParameterError, match="wcrg is not a conditional model"):
        phigen.fit("wcrg", grid_file, condition="kappa", J=2, k=1, check_samples=0)
    m = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, condition_names=["kappa"], **OPTS)
    with pytest.raises(E.ParameterError, match="--condition kappa=VALUE"):
        m.sample(2, key=jax.random.PRNGKey(0))
    with pytest.raises(E.ParameterError, match="conditioned on kappa"):
        phigen.sample(m, 2, condition={"lam": 1.0})
    with pytest.raises(E.ParameterError, match="1 finite number"):
        m.thetas_at([0.3, 0.4])
    with pytest.raises(E.ParameterError, match="1 finite number"):
        m.sample(2, key=jax.random.PRNGKey(0), condition=float("nan"))
    # outside the training κ (0.26 … 0.40) the polynomials extrapolate: a warning, and still a sample
    with pytest.warns(UserWarning, match=r"outside the training range.*θ\(c\) extrapolates"):
        s = m.sample(2, key=jax.random.PRNGKey(0), condition=0.45)
    assert s.shape == (2, 16, 16)
    with pytest.warns(UserWarning, match="outside the training range"):
        phigen.sample(m, 2, condition={"kappa": 0.2}, progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        m.at(0.3)  # inside: no warning
        m.at(0.40)  # the range's end is inside


def test_magnetisation_terms_are_matched_jointly_and_saved(grid_file, tmp_path):
    with phigen.open_fields(grid_file) as ds:
        x, c = ds[:], ds.conditions()[:, 0]
    m = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, condition_names=["kappa"],
                                 magnetisation_passes=2, magnetisation_chains=32, sign_symmetric=True, **OPTS)
    rec = m.training["magnetisation"]
    assert rec["passes"] == 2 and len(rec["moment_rel_error_per_pass"]) == 3
    assert len(rec["moment_rel_error_per_pass"][0]) == 3  # one (nM², nM⁴) error pair per training κ
    assert np.any(m.magnetisation_basis != 0) and m.magnetisation_basis.shape == (3, 2)
    # the per-condition WC-RG model carries (a, b)(κ) = g(κ)·basis
    np.testing.assert_allclose(m.at(0.3).magnetisation, m.magnetisation_at(0.3))
    m.save(tmp_path / "mag.h5")
    back = phigen.load_model(tmp_path / "mag.h5")
    np.testing.assert_array_equal(back.magnetisation_basis, m.magnetisation_basis)
    # without passes there are no terms (the default)
    assert not np.any(ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, **OPTS).magnetisation_basis)


def test_spectral_calibration_per_condition_moves_only_the_calibrated_couplings(grid_file):
    from phigen.rg.wcrg import _spectral_basis

    with phigen.open_fields(grid_file) as ds:
        x, c = ds[:], ds.conditions()[:, 0]
    plain = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, **OPTS)
    cal = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, spectral_passes=1, spectral_chains=8,
                                   **OPTS)
    rec = cal.training["spectral_calibration"]
    assert rec["passes"] == 1 and len(rec["spectrum_rms_log_ratio_per_condition"]) == 3
    assert rec["projected"] == "steps"  # per-condition Newton steps projected on the basis
    for per_level in rec["spectrum_rms_log_ratio_per_condition"]:  # before the step and after it, per level
        assert sorted(per_level) == list(range(1, cal.base.factorisation.J + 1))
        assert all(len(e) == 2 and np.all(np.isfinite(e)) for e in per_level.values())
    for lvl in range(1, cal.base.factorisation.J + 1):  # conditional levels: the same-channel couplings move
        spec = cal.base.specs[lvl - 1]
        terms, _ = _spectral_basis(spec, (4, 4))
        moved = np.zeros(spec.n_features, bool)
        moved[[i for idx in terms.values() for i in idx]] = True
        a, b = plain.theta_basis[lvl - 1], cal.theta_basis[lvl - 1]
        np.testing.assert_allclose(b[:, ~moved], a[:, ~moved], rtol=1e-4, atol=1e-5 * np.abs(a).max())
        assert not np.allclose(b[:, moved], a[:, moved])
    # the coarsest energy is not calibrated (as WC-RG's default)
    np.testing.assert_allclose(cal.theta_basis[-1], plain.theta_basis[-1], rtol=1e-4, atol=1e-6)


def test_per_condition_magnetisation_matches_each_condition_and_interpolates(grid_file, tmp_path):
    """magnetisation_mode="per-condition": one a per training κ, its E[nM²] matched there (the chains'
    moment error shrinks from the first pass to the last), a(κ) a monotone cubic through the knots,
    constant beyond them, saved and loaded; bad input fails in one line."""
    with phigen.open_fields(grid_file) as ds:
        x, c = ds[:], ds.conditions()[:, 0]
    m = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, condition_names=["kappa"],
                                 magnetisation_passes=6, magnetisation_chains=64, magnetisation_mode="per-condition",
                                 sign_symmetric=True, **OPTS)
    rec = m.training["magnetisation"]
    knots = m.magnetisation_knots
    assert rec["mode"] == "per-condition" and knots.shape == (3, 2)
    np.testing.assert_allclose(knots[:, 0], np.unique(c), rtol=1e-6)
    err = np.abs(np.asarray(rec["moment_rel_error_per_pass"]))[..., 0]  # (3 κ, 6 passes) of E[nM²]
    assert err.shape == (3, 6) and np.all(np.isfinite(err))
    # chains from noise at a = 0 miss the data's E[nM²] somewhere (80 coarse steps); Newton brings it in
    assert err[:, 0].max() > 0.2 and err[:, -2:].mean() < 0.5 * err[:, 0].max(), err
    assert not np.any(m.magnetisation_basis)  # the polynomial basis of (a, b) stays unused
    for kappa, a in knots:  # the knots are the values at the training κ; (a, b = 0)
        np.testing.assert_allclose(m.magnetisation_at(kappa), [a, 0.0], rtol=1e-5, atol=1e-7)
    lo, hi = sorted(knots[:2, 1])
    mid = m.magnetisation_at(0.5 * (knots[0, 0] + knots[1, 0]))[0]
    assert lo - 1e-7 <= mid <= hi + 1e-7  # PCHIP: no overshoot between knots
    np.testing.assert_allclose(m.magnetisation_at(0.2), [knots[0, 1], 0.0], rtol=1e-6)  # constant beyond
    np.testing.assert_allclose(m.at(0.33).magnetisation, m.magnetisation_at(0.33))
    assert m.n_params == sum(t.size for t in m.theta_basis) + 3
    back = phigen.load_model(m.save(tmp_path / "perk.h5"))
    np.testing.assert_array_equal(back.magnetisation_knots, knots)
    np.testing.assert_allclose(back.magnetisation_at(0.3), m.magnetisation_at(0.3))
    with pytest.raises(E.ParameterError, match="magnetisation_mode"):
        ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, magnetisation_mode="spline", **OPTS)
    with pytest.raises(E.ParameterError, match="one condition"):
        ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=np.stack([c, c * 2], 1),
                                 magnetisation_passes=2, magnetisation_mode="per-condition", **OPTS)


def test_per_condition_width_terms_match_both_moments_and_interpolate(grid_file, tmp_path):
    """magnetisation_mode="per-condition-width": (a, A) of n·(a M² + A·bump(|M|)) per training κ, the
    bump at the data's E|M| with s = 1.5·std|M|, matched on E[nM²] and E[n·bump] (both errors shrink),
    (a, A, m₀, s) interpolated together, saved and loaded."""
    with phigen.open_fields(grid_file) as ds:
        x, c = ds[:], ds.conditions()[:, 0]
    m = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, condition_names=["kappa"],
                                 magnetisation_passes=6, magnetisation_chains=64,
                                 magnetisation_mode="per-condition-width", sign_symmetric=True, **OPTS)
    rec, knots = m.training["magnetisation"], m.magnetisation_knots
    assert rec["mode"] == "per-condition-width" and knots.shape == (3, 5)
    err = np.abs(np.asarray(rec["moment_rel_error_per_pass"]))  # (3 κ, 6 passes, (nM², n·bump))
    assert err.shape == (3, 6, 2) and np.all(np.isfinite(err))
    assert err[:, 0].max() > 0.2 and err[:, -2:].mean() < 0.5 * err[:, 0].max(), err
    # the bump sits at the data's own E|M| and 1.5 × its std, per κ (normalised coarsest field)
    f = m.base.factorisation
    for (kappa, _, _, m0, s), value in zip(knots, np.unique(c)):
        xs = x[c == value]
        fk = m.factorisation_at(kappa)
        mags = np.abs(np.asarray(fk.normalise_coarse(fk.coarse(np.concatenate([xs, -xs]), f.J), f.J)).mean(axis=(-2, -1)))
        np.testing.assert_allclose([m0, s], [mags.mean(), 1.5 * mags.std()], rtol=1e-4)
    for kappa, a, amp, m0, s in knots:  # (a, b = 0, A, m₀, s) at the training κ
        np.testing.assert_allclose(m.magnetisation_at(kappa), [a, 0.0, amp, m0, s], rtol=1e-5, atol=1e-6)
    mid = m.magnetisation_at(0.5 * (knots[1, 0] + knots[2, 0]))
    for col, v in ((1, mid[0]), (2, mid[2]), (3, mid[3])):  # PCHIP per coefficient: no overshoot
        lo, hi = sorted(knots[1:, col])
        assert lo - 1e-6 <= v <= hi + 1e-6
    assert m.at(0.35).magnetisation.shape == (5,)
    assert m.n_params == sum(t.size for t in m.theta_basis) + 12
    back = phigen.load_model(m.save(tmp_path / "width.h5"))
    np.testing.assert_array_equal(back.magnetisation_knots, knots)
    np.testing.assert_allclose(back.magnetisation_at(0.3), m.magnetisation_at(0.3))
    y = np.asarray(back.sample(4, key=jax.random.PRNGKey(1), condition=0.36))
    assert y.shape == (4, 16, 16) and np.all(np.isfinite(y))
    # the WC-RG model at one κ carries the bump through its own file
    at = phigen.load_model(m.at(0.36).save(tmp_path / "at.h5"))
    np.testing.assert_allclose(at.magnetisation, m.magnetisation_at(0.36))


def test_per_condition_normalisation_carries_an_amplitude_law_exactly(tmp_path):
    """Fields x = m(c) + s(c)·z with the same zero-mean z at every condition, log s and m quadratic in c:
    each condition's normalisation is exactly s(c) (stds) and 2^j m(c) (coarse means), so the regression
    on the degree-2 basis recovers them at any c, the normalised fields are the same at every condition
    and θ(c) does not depend on c (the shared normalisation makes it); samples at an unseen c have
    the amplitude s(c)."""
    from phigen.fields.gaussian import gaussian_field, power_law_spectrum
    from phigen.rg.factor import WaveletFactorisation

    z = np.asarray(gaussian_field(jax.random.PRNGKey(3), 24, 16, power_law_spectrum(2.0, k_cut=None)), np.float64)
    z = z - z.mean()
    c_train = np.array([0.0, 0.3, 0.7, 1.0])
    log_s = lambda c: 0.2 + 0.5 * c - 0.3 * c ** 2  # noqa: E731
    m_of = lambda c: 1.0 + 0.4 * c + 0.2 * c ** 2  # noqa: E731
    x = np.concatenate([m_of(c) + np.exp(log_s(c)) * z for c in c_train]).astype(np.float32)
    c = np.repeat(c_train, len(z))
    opts = {**OPTS, "n_bumps": 0, "ridge": 1e-6, "coarse_ridge": 1e-6}
    per = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, condition_names=["q"],
                                   normalisation="per-condition", **opts)
    shared = ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, condition_names=["q"], **opts)
    fz = WaveletFactorisation.fit(z.astype(np.float32), J=2)
    for q in (0.0, 0.45, 1.0):  # training, unseen, training
        f = per.factorisation_at(q)
        np.testing.assert_allclose(f.detail_std, np.exp(log_s(q)) * fz.detail_std, rtol=1e-4)
        np.testing.assert_allclose(f.coarse_std, np.exp(log_s(q)) * fz.coarse_std, rtol=1e-4)
        np.testing.assert_allclose(f.coarse_mean, m_of(q) * 2.0 ** np.arange(3), rtol=1e-5, atol=1e-4)
    assert per.factorisation_at(0.45) is not per.base.factorisation
    assert shared.factorisation_at(0.45) is shared.base.factorisation

    def spread(model):  # the largest relative change of any level's θ between the ends of the range
        return max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                   for a, b in zip(model.thetas_at(0.0), model.thetas_at(1.0)))

    assert spread(per) < 1e-3 < 0.1 < spread(shared), (spread(per), spread(shared))
    assert per.n_params == shared.n_params + 3 * (8 * 2 + 2)

    # sampled at unseen conditions with one key: the same normalised draws, so the amplitudes are in the
    # ratio of s(c) and the means differ by m(c)
    k = jax.random.PRNGKey(5)
    lo, hi = (np.asarray(per.sample(32, key=k, condition=q), np.float64) for q in (0.2, 0.9))
    ratio = (hi - m_of(0.9)).std() / (lo - m_of(0.2)).std()
    assert ratio == pytest.approx(np.exp(log_s(0.9) - log_s(0.2)), rel=1e-3), ratio
    assert hi.mean() - lo.mean() == pytest.approx(m_of(0.9) - m_of(0.2), abs=0.01)

    per.save(tmp_path / "n.h5")
    back = phigen.load_model(tmp_path / "n.h5")
    np.testing.assert_array_equal(back.normalisation_basis, per.normalisation_basis)
    np.testing.assert_array_equal(back.factorisation_at(0.45).detail_std, per.factorisation_at(0.45).detail_std)
    assert back.training["normalisation"] == "per-condition"
    with pytest.raises(E.ParameterError, match="normalisation must be 'shared' or 'per-condition'"):
        ConditionalWCRGModel.fit(x, key=jax.random.PRNGKey(0), conditions=c, normalisation="local", **opts)
    keep = np.ones(len(x), bool)
    keep[len(z) + 1:2 * len(z)] = False  # condition 0.3 keeps a single field
    with pytest.raises(E.InputError, match="at least 2 fields per condition; condition 1 has 1"):
        ConditionalWCRGModel.fit(x[keep], key=jax.random.PRNGKey(0), conditions=c[keep],
                                 normalisation="per-condition", **opts)


def test_reference_kappa_grids_are_finer_beside_kappa_c_at_l64(load_script):
    """The L = 32 grid file keeps the 11 κ of ``phigen generate --kappa 0.25:0.40:11``; at L = 64, where the
    transition is half as wide in κ, two more κ sit beside κ_c = 0.3403 (half the spacing there)."""
    from phigen.fields.kind import parse_grid

    script = load_script("scripts/make_reference_data.py")
    k32, k64 = script.phi4_kappa_grid(32), script.phi4_kappa_grid(64)
    assert k32 == list(parse_grid("0.25:0.40:11", "kappa"))
    assert len(k64) == 13 and set(k32) < set(k64) and k64 == sorted(k64)
    extra = sorted(set(k64) - set(k32))
    assert all(abs(k - 0.3403) < 0.01 for k in extra)
    np.testing.assert_allclose(np.diff(k64)[np.searchsorted(k64, 0.3325) - 1:][:4], 0.0075, atol=1e-9)
