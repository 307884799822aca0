"""φ⁴ observables: closed forms on exact Gaussian-free-field samples, and the physics of the
HMC + cluster sampler (sign symmetry in the ordered phase, Binder cumulant limits)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.energies import Phi4, gff_exact_spectrum
from phigen.errors import InputError, ParameterError
from phigen.samplers.hmc import hmc_init, hmc_step
from phigen.samplers.mixed import hmc_cluster_step
from phigen.stats.phi4 import (binder_cumulant, magnetisation, phi4_observables,
                               second_moment_correlation_length, two_point_function_phi4)

KAPPA_GFF, L_GFF = 0.2, 16


def exact_gff_samples(n, size=L_GFF, kappa=KAPPA_GFF, seed=0):
    """Independent GFF fields drawn exactly in Fourier space: ⟨|φ̂(k)|²⟩ = V·P(k)."""
    spectrum = gff_exact_spectrum(size, kappa)
    white = np.random.default_rng(seed).standard_normal((n, size, size))
    return np.real(np.fft.ifft2(np.fft.fft2(white) * np.sqrt(spectrum))).astype(np.float32), spectrum


def exact_gff_correlator(spectrum):
    """G(r_y, r_x) = V⁻¹ Σ_k P(k) e^{ik·r}."""
    return np.real(np.fft.ifft2(spectrum))


# --- closed forms on exact GFF samples -----------------------------------------------------------
def test_magnetisation_shapes_and_values():
    phi = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    m = np.asarray(magnetisation(phi))
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, phi.mean(axis=(-2, -1)), rtol=1e-6)
    assert np.asarray(magnetisation(jnp.ones((5, 4, 4)))).shape == (5,)
    with pytest.raises(InputError):
        magnetisation(np.ones(4))


def test_second_moment_correlation_length_of_gff_matches_exact_propagator():
    # ξ ≪ L makes χ/F − 1 a small difference of noisy mode powers: ~9 % error at 4000 fields
    phi, spectrum = exact_gff_samples(20000)
    # the exact ξ₂ from the propagator: χ = P(0), F = mean of P at the two smallest momenta
    chi, f = spectrum[0, 0], 0.5 * (spectrum[0, 1] + spectrum[1, 0])
    exact = math.sqrt(chi / f - 1) / (2 * math.sin(math.pi / L_GFF))
    assert exact == pytest.approx(math.sqrt(KAPPA_GFF / (1 - 4 * KAPPA_GFF)), rel=1e-12)  # = 1 here
    est = second_moment_correlation_length(phi)
    assert 0 < est.error < 0.06 * exact
    assert abs(est.value - exact) < 4 * est.error, (est, exact)
    # a series layout (n_steps, C, L, L) of the same samples gives the same value
    series = second_moment_correlation_length(phi.reshape(5000, 4, L_GFF, L_GFF))
    assert series.value == pytest.approx(est.value, rel=1e-4)


def test_two_point_function_direct_sum_and_gff_closed_form():
    rng = np.random.default_rng(1)
    phi = rng.standard_normal((3, 6, 6)).astype(np.float32) + 0.3
    g = two_point_function_phi4(phi)
    direct = [0.5 * np.mean(phi * np.roll(phi, -r, 1) + phi * np.roll(phi, -r, 2)) for r in range(6)]
    np.testing.assert_allclose(g, direct, rtol=1e-5)
    conn = two_point_function_phi4(phi, connected=True)
    np.testing.assert_allclose(conn, np.array(direct) - phi.mean() ** 2, atol=2e-5)
    # zero-momentum correlator sums to V⟨m²⟩; direct definition on line sums
    g0 = two_point_function_phi4(phi, zero_momentum=True)
    v = 36
    assert g0.sum() == pytest.approx(v * np.mean(phi.mean(axis=(1, 2)) ** 2), rel=1e-5)
    rows, cols = phi.sum(axis=2), phi.sum(axis=1)
    direct0 = [0.5 * (np.mean(np.sum(rows * np.roll(rows, -t, 1), 1)) + np.mean(np.sum(cols * np.roll(cols, -t, 1), 1))) / v
               for t in range(6)]
    np.testing.assert_allclose(g0, direct0, rtol=1e-5)
    # GFF: G(r) = V⁻¹ Σ_k P(k) cos(k r); a series input (n_steps, C, L, L) is accepted
    fields, spectrum = exact_gff_samples(2000, seed=2)
    g = two_point_function_phi4(fields.reshape(500, 4, L_GFF, L_GFF))
    exact = exact_gff_correlator(spectrum)[0]
    per_sample = np.array([two_point_function_phi4(fields[i::10]) for i in range(10)])
    sem = per_sample.std(axis=0, ddof=1) / math.sqrt(10)
    assert np.all(np.abs(g - exact) < 4.5 * sem), (g - exact) / sem
    np.testing.assert_allclose(g, g[::-1][np.r_[-1, 0:L_GFF - 1]], rtol=1e-5)  # G(r) = G(L − r)


def test_phi4_observables_on_gff_match_closed_forms_within_errors():
    phi, spectrum = exact_gff_samples(4000, seed=3)
    v = L_GFF ** 2
    obs = phi4_observables(phi.reshape(500, 8, L_GFF, L_GFF), KAPPA_GFF, 0.0)
    var_m = spectrum[0, 0] / v                       # ⟨m²⟩ = P(0)/V for a Gaussian m
    corr = exact_gff_correlator(spectrum)
    link = 0.5 * (corr[0, 1] + corr[1, 0])
    exact = {
        "m": 0.0,
        "m2": var_m,
        "abs_m": math.sqrt(2 * var_m / math.pi),
        "chi_full": v * var_m,                       # = 1/(2(1 − 4κ)) = 2.5
        "chi": v * var_m * (1 - 2 / math.pi),
        "binder": 0.0,
        "phi2": corr[0, 0],
        "link_energy": link,
        "action_density": -4 * KAPPA_GFF * link + corr[0, 0],
    }
    assert exact["chi_full"] == pytest.approx(1 / (2 * (1 - 4 * KAPPA_GFF)))
    for name, value in exact.items():
        est = obs[name]
        assert est.error > 0
        assert abs(est.value - value) < 4 * est.error, (name, est, value)
    assert obs["n_configurations"] == 4000
    # independent samples: τ_int ≈ ½
    assert abs(obs["tau_int_abs_m"].value - 0.5) < 4 * obs["tau_int_abs_m"].error


def test_binder_cumulant_limits():
    rng = np.random.default_rng(5)
    two_state = rng.choice([-0.7, 0.7], size=(400, 4))
    est = binder_cumulant(two_state)
    assert est.value == pytest.approx(2 / 3, abs=1e-12)
    gauss = rng.standard_normal(20000)
    est = binder_cumulant(gauss)
    assert abs(est.value) < 4 * est.error and est.error < 0.02


def test_input_checks():
    with pytest.raises(InputError):
        phi4_observables(np.ones((4, 2, 4, 5)), 0.2, 1.0)
    with pytest.raises(InputError):
        phi4_observables(np.full((4, 2, 4, 4), np.nan), 0.2, 1.0)
    with pytest.raises(InputError):
        phi4_observables(np.ones((4, 4)), 0.2, 1.0)  # one configuration: no error bar possible
    with pytest.raises(ParameterError):
        phi4_observables(np.ones((10, 2, 4, 4)), float("inf"), 1.0)
    with pytest.raises(InputError):
        binder_cumulant(np.ones((2, 3, 4)))


# --- HMC + cluster physics -----------------------------------------------------------------------
# Fixed HMC parameters (acceptance ≈ 0.8 at these κ, λ = 1, measured with adapt_step_size) keep
# each test to one compiled scan: adaptation would add a compile per κ.
STEP_SIZE, N_LEAPFROG, N_BURN = 0.14, 7, 200


def _sample(energy, step_fn, n_chains, size, key, n_steps):
    """Start every chain at φ = 1 (ordered, m > 0); return the series after burn-in (n, C, L, L)."""
    state = hmc_init(jnp.ones((n_chains, size, size)), energy)

    @jax.jit
    def run(state, key):
        def body(s, k):
            s, info = step_fn(k, s)
            return s, (s.position, info.acceptance_rate)
        return jax.lax.scan(body, state, jax.random.split(key, N_BURN + n_steps))[1]

    phi, acceptance = run(state, key)
    assert 0.6 < float(np.mean(acceptance)) < 0.97  # the fixed step size is sensible
    return np.asarray(phi[N_BURN:])


def _sign_changes(phi):
    m = phi.mean(axis=(-2, -1))
    return np.sum(np.diff(np.sign(m), axis=0) != 0, axis=0)


def test_ordered_phase_cluster_restores_sign_symmetry_hmc_alone_does_not():
    kappa, lam, size, n_chains, n_steps = 0.35, 1.0, 12, 16, 1200
    energy = Phi4(kappa, lam)
    mixed = _sample(energy, lambda k, s: hmc_cluster_step(k, s, energy, step_size=STEP_SIZE,
                                                          n_leapfrog=N_LEAPFROG),
                    n_chains, size, jax.random.key(1), n_steps)
    alone = _sample(energy, lambda k, s: hmc_step(k, s, energy, step_size=STEP_SIZE, n_leapfrog=N_LEAPFROG),
                    n_chains, size, jax.random.key(1), n_steps)
    obs_mixed = phi4_observables(mixed, kappa, lam)
    obs_alone = phi4_observables(alone, kappa, lam)
    # with clusters: ⟨m⟩ = 0 within errors, every chain crosses m = 0 many times, m histogram symmetric
    assert abs(obs_mixed["m"].value) < 4 * obs_mixed["m"].error
    assert obs_mixed["abs_m"].value > 0.5                     # genuinely ordered
    assert _sign_changes(mixed).min() > 100
    m = mixed.mean(axis=(-2, -1)).ravel()
    hist_pos, _ = np.histogram(m, bins=10, range=(0.2, 1.2))
    hist_neg, _ = np.histogram(-m, bins=10, range=(0.2, 1.2))
    assert np.all(np.abs(hist_pos - hist_neg) < 5 * np.sqrt(hist_pos + hist_neg + 1))
    # HMC alone: chains keep the sign they started with; the Γ-method sees the frozen sign
    assert _sign_changes(alone).mean() < 10
    assert np.mean(alone.mean(axis=(-2, -1)) > 0) > 0.9
    assert obs_alone["tau_int_m"].value > 50 * obs_mixed["tau_int_m"].value
    # both sample the same |m| distribution
    diff = obs_mixed["abs_m"].value - obs_alone["abs_m"].value
    assert abs(diff) < 4 * math.hypot(obs_mixed["abs_m"].error, obs_alone["abs_m"].error)


@pytest.mark.parametrize("kappa,check", [
    (0.15, lambda est: abs(est.value) < 4 * est.error + 0.02),   # disordered: U₄ → 0 (finite size)
    (0.40, lambda est: abs(est.value - 2 / 3) < 0.03),            # ordered: U₄ → 2/3
])
def test_binder_cumulant_far_from_criticality(kappa, check):
    energy = Phi4(kappa, 1.0)
    phi = _sample(energy, lambda k, s: hmc_cluster_step(k, s, energy, step_size=STEP_SIZE,
                                                        n_leapfrog=N_LEAPFROG),
                  16, 8, jax.random.key(3), 800)
    obs = phi4_observables(phi, kappa, 1.0)
    assert obs["binder"].error < 0.015
    assert check(obs["binder"]), obs["binder"]
    # the standalone function agrees with the dict entry
    est = binder_cumulant(np.asarray(magnetisation(phi)), n_bins=obs["n_bins"])
    assert est.value == pytest.approx(obs["binder"].value, rel=1e-6)


def test_hmc_cluster_samples_the_gaussian_free_field_exactly():
    """λ = 0: the sign clusters act on a Gaussian field; ⟨m²⟩, ⟨φ²⟩ and the link energy must
    match the exact propagator (a wrong bond probability would bias them)."""
    kappa, size = 0.2, 8
    energy = Phi4(kappa, 0.0)
    phi = _sample(energy, lambda k, s: hmc_cluster_step(k, s, energy, step_size=STEP_SIZE,
                                                        n_leapfrog=N_LEAPFROG),
                  16, size, jax.random.key(4), 600)
    obs = phi4_observables(phi, kappa, 0.0)
    spectrum = gff_exact_spectrum(size, kappa)
    corr = exact_gff_correlator(spectrum)
    exact = {"chi_full": spectrum[0, 0], "phi2": corr[0, 0], "link_energy": 0.5 * (corr[0, 1] + corr[1, 0]),
             "m": 0.0}
    for name, value in exact.items():
        assert abs(obs[name].value - value) < 4 * obs[name].error, (name, obs[name], value)
