"""Normalizing flows (phigen.flows): exact inverses and log-determinants, reverse KL on the Gaussian
free field against its closed-form free energy, flow-based MCMC (invariance of the target, ESS/N),
the registered ``flow`` model (save/load, resume) and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.energies import Phi4, gaussian_free_field, gff_exact_spectrum
from phigen.errors import InputError, ParameterError
from phigen.flows import (FlowModel, FlowNetConfig, effective_sample_size_fraction, flow_log_prob, flow_sample,
                          log_weights, make_flow, make_flow_mh_kernel, reweighted_mean)
from phigen.samplers import RunConfig, compose_kernels, make_kernel, mean_with_error, run_chain

KAPPA = 0.2  # GFF tests: correlation length ~1.3 sites


def _gff_log_z(L, kappa):
    """log Z of exp(−½ φᵀAφ): (V/2) log 2π + ½ Σ_k log P_k, P_k = 1/eig_k(A)."""
    P = gff_exact_spectrum(L, kappa)
    return 0.5 * L * L * np.log(2 * np.pi) + 0.5 * np.sum(np.log(P))


def _random_flow(config, shape, seed=0):
    """A flow whose couplings and spectral layer are far from the identity."""
    f = make_flow(config, shape, key=jax.random.key(seed))
    keys = iter(jax.random.split(jax.random.key(seed + 1), 2 * len(f.couplings) + 1))
    f = eqx.tree_at(lambda f: [c.conv_out.weight for c in f.couplings], f,
                    [0.3 * jax.random.normal(next(keys), c.conv_out.weight.shape) for c in f.couplings])
    if f.spectral is not None:
        f = eqx.tree_at(lambda f: f.spectral.theta, f, 0.3 * jax.random.normal(next(keys), shape))
    return f


@pytest.mark.parametrize("coupling", ["affine", "spline"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_inverse_and_log_det_equal_autodiff_jacobian(symmetric, coupling):
    f = _random_flow(FlowNetConfig(layers=4, width=8, symmetric=symmetric, coupling=coupling, bins=4), (4, 6))
    z = jax.random.normal(jax.random.key(3), (4, 6))
    x, logdet = eqx.filter_jit(lambda f, z: f.forward(z))(f, z)  # jitted: eager is op by op, slow
    z_back, logdet_inv = eqx.filter_jit(lambda f, x: f.inverse(x))(f, x)
    np.testing.assert_allclose(z_back, z, atol=2e-5)
    assert abs(float(logdet + logdet_inv)) < 1e-4
    jac = eqx.filter_jit(lambda f, z: jax.jacfwd(lambda u: f.forward(u)[0])(z))(f, z).reshape(24, 24)
    sign, ref = np.linalg.slogdet(np.asarray(jac, np.float64))
    assert sign > 0 and abs(float(logdet) - ref) < 1e-4 * max(1.0, abs(ref))
    # the density integrates the change of variables: log q(x) = log N(z) − log|det|
    x_b, logq = flow_sample(f, jax.random.key(4), 3)
    np.testing.assert_allclose(flow_log_prob(f, x_b), logq, atol=1e-3)
    if symmetric:  # Z₂-equivariant couplings: f(−z) = −f(z)
        np.testing.assert_allclose(eqx.filter_jit(lambda f, z: f.forward(z))(f, -z)[0], -x, atol=1e-5)


def test_exact_gff_flow_has_unit_ess_and_exact_log_z():
    L = 8
    P = gff_exact_spectrum(L, KAPPA)
    flow = make_flow(FlowNetConfig(layers=0, spectral=True), (L, L), key=jax.random.key(0), log_spectrum=np.log(P))
    _, lw = log_weights(flow, gaussian_free_field(KAPPA), key=jax.random.key(1), n=512)
    assert effective_sample_size_fraction(lw) > 1 - 1e-6
    # every weight is Z itself: −U − log q = log Z
    np.testing.assert_allclose(lw, _gff_log_z(L, KAPPA), atol=2e-3 * L * L)


def test_reverse_kl_on_gff_reaches_exact_free_energy():
    """Data-free fit: the variational free energy ⟨log q + U⟩ is within 2·10⁻³ nats per site of
    F = −log Z (closed form), the importance-sampling log Z within 5 standard errors (+10⁻³ per site),
    ESS/N > 0.9, and the samples have the exact spectrum."""
    L = 8
    model = FlowModel.fit_energy(gaussian_free_field(KAPPA), L, key=jax.random.key(0), progress=False, steps=200,
                                 layers=2, width=4, hidden=1, learning_rate=1e-2, warmup=20, chunk=50,
                                 eval_samples=512)
    tr, log_z = model.training, _gff_log_z(L, KAPPA)
    assert 0 <= (tr["free_energy_variational"] + log_z) / L**2 < 2e-3, tr
    assert abs(tr["log_z"] - log_z) < 5 * tr["log_z_error"] + 1e-3 * L * L, (tr["log_z"], log_z)
    assert tr["ess_fraction"] > 0.9
    x = np.asarray(model.sample(1024, key=jax.random.key(2)), np.float64)
    power = np.abs(np.fft.fft2(x)) ** 2 / L**2
    P = gff_exact_spectrum(L, KAPPA)
    z = (power.mean(0) - P) / (P / np.sqrt(len(x)))  # |φ̂_k|²/V is P_k·Exp(1): sd P_k
    assert np.abs(z).max() < 5, np.abs(z).max()


def test_flow_mh_on_gff_with_a_wrong_flow_has_the_exact_spectrum():
    """An inexact proposal (spectrum ×1.6) is corrected by the accept step."""
    L, n_chains = 8, 128
    P = gff_exact_spectrum(L, KAPPA)
    flow = make_flow(FlowNetConfig(layers=0), (L, L), key=jax.random.key(0), log_spectrum=np.log(1.6 * P))
    kernel = make_flow_mh_kernel(flow, gaussian_free_field(KAPPA))
    x0 = flow_sample(flow, jax.random.key(9), n_chains)[0]  # independence MH starts from its proposal
    run = run_chain(jax.random.key(5), kernel, kernel.init(x0), RunConfig(n_steps=500, burn_in=100, thin=10,
                                                                           progress=False),
                    observables=lambda s: {"p": jnp.abs(jnp.fft.fft2(s.position)) ** 2 / L**2})
    acc = float(run.info_summary.mean_acceptance.mean())
    assert 0.05 < acc < 0.95
    p = run.trace["p"].reshape(-1, L, L)            # 40 records × 128 chains, τ ≲ 1/acc steps ≪ thin·…
    n_eff = p.shape[0] * acc                       # conservative: rejections repeat a state
    z = (p.mean(0) - P) / (P / np.sqrt(n_eff))
    assert np.abs(z).max() < 5, np.abs(z).max()
    # composed with HMC (one flow proposal, then one trajectory per step): still the exact spectrum
    both = compose_kernels(kernel, make_kernel("hmc", gaussian_free_field(KAPPA), step_size=0.4, n_leapfrog=4))
    run = run_chain(jax.random.key(6), both, both.init(x0), RunConfig(n_steps=300, burn_in=60, thin=6,
                                                                       progress=False),
                    observables=lambda s: {"p": jnp.abs(jnp.fft.fft2(s.position)) ** 2 / L**2})
    p = run.trace["p"].reshape(-1, L, L)
    z = (p.mean(0) - P) / (P / np.sqrt(p.shape[0] * acc))
    assert np.abs(z).max() < 5, np.abs(z).max()


def test_reweighted_means_of_a_wrong_flow_are_exact():
    """Importance sampling with an inexact flow (spectrum ×1.3): self-normalised reweighted ⟨|φ̂_k|²⟩/V
    equal the exact spectrum within 5 errors; ESS/N < 1 and matches the Gaussian closed form
    ``ESS/N = (√(2·1.3 − 1)/1.3)^V`` within 20 % (a product over the V independent real modes)."""
    L = 8
    P = gff_exact_spectrum(L, KAPPA)
    flow = make_flow(FlowNetConfig(layers=0), (L, L), key=jax.random.key(0), log_spectrum=np.log(1.3 * P))
    x, lw = log_weights(flow, gaussian_free_field(KAPPA), key=jax.random.key(1), n=4096)
    power = np.abs(np.fft.fft2(x)) ** 2 / L**2
    for k in [(0, 0), (0, 1), (2, 3), (4, 4)]:
        mean, err = reweighted_mean(power[:, k[0], k[1]], lw)
        assert abs(mean - P[k]) < 5 * err + 1e-3 * P[k], (k, mean, err, P[k])
    # per mode, q = N(0, 1.3 P), p = N(0, P): E_q[w²]/E_q[w]² = 1.3 / sqrt(2·1.3 − 1)
    ess_exact = (np.sqrt(2 * 1.3 - 1) / 1.3) ** (L * L)
    ess = effective_sample_size_fraction(lw)
    assert 0 < ess < 1 and abs(ess / ess_exact - 1) < 0.2, (ess, ess_exact)


def _phi4_moments(trace):
    return {k: mean_with_error(np.asarray(v).T) for k, v in trace.items()}


@pytest.mark.slow  # 16 s; the default twin is the GFF spectrum test above (same kernel, exact reference)
def test_flow_mh_leaves_phi4_invariant_against_hmc():
    """4×4 φ⁴ near the transition: flow-MH with a briefly trained (inexact) flow, and flow-MH
    composed with HMC, give ⟨|m|⟩ and ⟨S⟩/V of HMC within 4 combined standard errors."""
    L, energy = 4, Phi4(0.3, 1.0)
    obs = lambda s: {"abs_m": jnp.abs(s.position.mean((-2, -1))), "s": s.energy / L**2}
    cfg = RunConfig(n_steps=1000, burn_in=200, progress=False)
    model = FlowModel.fit_energy(energy, L, key=jax.random.key(2), progress=False, steps=100, layers=2, width=4,
                                 hidden=1, learning_rate=1e-2, warmup=10, eval_samples=64)
    x0 = model.sample(64, key=jax.random.key(0))
    hmc = make_kernel("hmc", energy, step_size=0.25, n_leapfrog=5)
    x_hmc = 0.5 * jax.random.normal(jax.random.key(5), x0.shape)
    ref = _phi4_moments(run_chain(jax.random.key(1), hmc, hmc.init(x_hmc), cfg, observables=obs).trace)
    fmh = make_flow_mh_kernel(model.flow, energy)
    run = run_chain(jax.random.key(3), fmh, fmh.init(x0), cfg, observables=obs)
    assert float(run.info_summary.mean_acceptance.mean()) > 0.1
    got = _phi4_moments(run.trace)
    both = compose_kernels(fmh, hmc)
    mixed = run_chain(jax.random.key(4), both, both.init(x0), RunConfig(n_steps=400, burn_in=50, progress=False),
                      observables=obs)
    got_mixed = _phi4_moments(mixed.trace)
    for name in ("abs_m", "s"):
        for other in (got, got_mixed):
            a, b = ref[name], other[name]
            assert abs(a.mean - b.mean) < 4 * np.hypot(a.error, b.error), (name, a, b)


def test_flow_mh_runner_checkpoint_resumes_bit_for_bit(tmp_path):
    L = 4
    flow = make_flow(FlowNetConfig(layers=2, width=4, hidden=1), (L, L), key=jax.random.key(0))
    kernel = make_flow_mh_kernel(flow, Phi4(0.25, 1.0))
    x0 = jnp.zeros((8, L, L))
    obs = lambda s: {"m": s.position.mean((-2, -1))}
    full = run_chain(jax.random.key(1), kernel, x0, RunConfig(n_steps=60, chunk_size=20, progress=False),
                     observables=obs)
    ck = tmp_path / "fmh.h5"
    part = run_chain(jax.random.key(1), kernel, x0, RunConfig(n_steps=40, chunk_size=20, progress=False,
                                                                checkpoint_path=ck), observables=obs)
    assert part.n_done == 40
    resumed = run_chain(jax.random.key(1), kernel, x0, RunConfig(n_steps=60, chunk_size=20, progress=False,
                                                                   checkpoint_path=ck), observables=obs)
    np.testing.assert_array_equal(resumed.trace["m"], full.trace["m"])


def test_flow_model_fit_save_load_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    x = (1.5 + 0.7 * rng.standard_normal((32, 8, 8))).astype(np.float32)
    opts = dict(steps=20, batch_size=8, layers=2, width=4, hidden=1, chunk=10, warmup=2, learning_rate=3e-3)
    full = FlowModel.fit(x, key=jax.random.key(0), progress=False, **opts)
    assert full.losses.shape == (20,) and full.losses[-5:].mean() < full.losses[:5].mean()
    path = full.save(tmp_path / "flow.h5")
    back = FlowModel.load(path)
    np.testing.assert_array_equal(back.sample(4, key=jax.random.key(1)), full.sample(4, key=jax.random.key(1)))
    np.testing.assert_allclose(back.log_prob(x[:4]), full.log_prob(x[:4]), rtol=1e-6)
    assert back.n_params == full.n_params > 0
    ck = tmp_path / "ck.h5"
    FlowModel.fit(x, key=jax.random.key(0), progress=False, checkpoint=str(ck), stop_at=10, **opts)
    resumed = FlowModel.fit(x, key=jax.random.key(0), progress=False, checkpoint=str(ck), **opts)
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.log_prob(x[:4]), full.log_prob(x[:4]), rtol=1e-5)


def test_bad_input_is_refused():
    flow = make_flow(FlowNetConfig(layers=2, width=4, hidden=1), (4, 4), key=jax.random.key(0))
    with pytest.raises(InputError, match="do not match"):
        flow_log_prob(flow, jnp.zeros((2, 4, 6)))
    with pytest.raises(ParameterError, match="even field sides"):
        make_flow(FlowNetConfig(layers=2), (5, 4), key=jax.random.key(0))
    with pytest.raises(ParameterError, match="kernel must be odd"):
        FlowNetConfig(kernel=2)
    with pytest.raises(ParameterError, match="Energy"):
        make_flow_mh_kernel(flow, lambda x: x)
    with pytest.raises(InputError, match="positions"):
        make_flow_mh_kernel(flow, Phi4(0.2, 1.0)).init(jnp.zeros((3, 6, 6)))
    bad = np.ones((4, 4, 4), np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        FlowModel.fit(bad, key=jax.random.key(0), progress=False, steps=2)
    with pytest.raises(ParameterError, match="unknown option"):
        FlowModel.fit(np.ones((4, 4, 4)), key=jax.random.key(0), progress=False, widht=3)


@pytest.mark.slow  # 14 CPU s (the pilot run that measures τ_int); default twin below
def test_generate_phi4_with_the_flow_sampler(tmp_path):
    """``phigen generate phi4 --sampler flow``: trains the flow (kept beside the output), then flow-MH;
    a second run reuses the saved flow; a flow of another action is refused."""
    import phigen
    from phigen.errors import ModelFileError

    out = tmp_path / "phi4.h5"
    phigen.generate("phi4", out, size=4, n=8, seed=0, kappa=0.3, lam=1.0, sampler="flow", flow_steps=30, thin=2,
                    n_chains=8, progress=False)
    flow_file = tmp_path / "phi4.h5.flow.h5"
    assert flow_file.exists()
    with phigen.open_fields(out) as ds:
        x, config = ds[:], ds.config
    assert x.shape == (8, 4, 4) and np.all(np.isfinite(x)) and config["sampler"] == "flow"
    trained = FlowModel.load(flow_file)
    assert trained.energy_record == {"name": "phi4", "kappa": 0.3, "lam": 1.0}
    assert trained.training["objective"] == "reverse-kl" and trained.training["steps_done"] == 30
    again = tmp_path / "again.h5"
    flow_file.rename(tmp_path / "again.h5.flow.h5")
    phigen.generate("phi4", again, size=4, n=8, seed=0, kappa=0.3, lam=1.0, sampler="flow", flow_steps=30, thin=2,
                    n_chains=8, progress=False)
    with phigen.open_fields(again) as ds:
        np.testing.assert_array_equal(ds[:], x)  # the same flow, loaded: the same chains
    (tmp_path / "other.h5.flow.h5").write_bytes((tmp_path / "again.h5.flow.h5").read_bytes())
    with pytest.raises(ModelFileError, match="fitted to"):
        phigen.generate("phi4", tmp_path / "other.h5", size=4, n=8, seed=0, kappa=0.25, lam=1.0, sampler="flow",
                        flow_steps=30, thin=2, n_chains=8, progress=False)


def test_flow_sampler_warm_up_trains_saves_and_reuses_its_flow(tmp_path):
    """The default twin of the generate test: the ``flow`` sampler of the φ⁴ pipeline trains a flow by
    reverse KL, saves it, reuses it, refuses one of another action, and starts chains from its draws."""
    from phigen.errors import ModelFileError
    from phigen.fields.phi4 import Phi4SamplerConfig, warm_up_phi4_chains

    cfg = Phi4SamplerConfig(sampler="flow", n_chains=8, n_burn=0, flow_steps=10, flow_layers=2, flow_width=4)
    flow_file = tmp_path / "f.flow.h5"
    state, kernel, eps, n_lf = warm_up_phi4_chains(jax.random.key(0), 4, 0.3, 1.0, cfg, progress=False,
                                                   flow_file=flow_file)
    assert flow_file.exists() and (eps, n_lf) == (0.0, 0) and state.position.shape == (8, 4, 4)
    state2, _, _, _ = warm_up_phi4_chains(jax.random.key(0), 4, 0.3, 1.0, cfg, progress=False, flow_file=flow_file)
    np.testing.assert_array_equal(state2.position, state.position)
    new, info = kernel.step(jax.random.key(1), state)
    assert new.position.shape == (8, 4, 4) and info.acceptance_rate.shape == (8,)
    with pytest.raises(ModelFileError, match="fitted to"):
        warm_up_phi4_chains(jax.random.key(0), 4, 0.25, 1.0, cfg, progress=False, flow_file=flow_file)


# --- conditional flows p(x | c) ------------------------------------------------------------------
def _random_conditional_flow(shape, d, seed=0):
    """A conditional flow with every condition weight (spectral, affine, couplings) far from zero."""
    f = _random_flow(FlowNetConfig(layers=2, width=4, symmetric=True, cond_channels=d), shape, seed)
    k1, k2, k3 = jax.random.split(jax.random.key(seed + 7), 3)
    f = eqx.tree_at(lambda f: f.spectral.theta_cond, f, 0.3 * jax.random.normal(k1, (d, *shape)))
    f = eqx.tree_at(lambda f: f.affine.cond_weights, f, 0.3 * jax.random.normal(k2, (2, d)))
    return eqx.tree_at(lambda f: f.couplings[0].convs[0].weight, f,
                       f.couplings[0].convs[0].weight + 0.3 * jax.random.normal(k3, f.couplings[0].convs[0].weight.shape))


def test_conditional_flow_inverse_log_det_and_symmetry():
    f = _random_conditional_flow((4, 6), 2)
    c = jnp.asarray([0.7, -1.3])
    z = jax.random.normal(jax.random.key(3), (4, 6))
    x, logdet = eqx.filter_jit(lambda f, z, c: f.forward(z, c))(f, z, c)
    z_back, logdet_inv = eqx.filter_jit(lambda f, x, c: f.inverse(x, c))(f, x, c)
    np.testing.assert_allclose(z_back, z, atol=2e-5)
    assert abs(float(logdet + logdet_inv)) < 1e-4
    jac = eqx.filter_jit(lambda f, z, c: jax.jacfwd(lambda u: f.forward(u, c)[0])(z))(f, z, c).reshape(24, 24)
    sign, ref = np.linalg.slogdet(np.asarray(jac, np.float64))
    assert sign > 0 and abs(float(logdet) - ref) < 1e-4 * max(1.0, abs(ref))
    # the condition changes the map (every layer reads it), and per-field conditions equal a shared one
    assert float(jnp.abs(f.forward(z, -c)[0] - x).max()) > 1e-2
    xs, logq = flow_sample(f, jax.random.key(4), 3, c)
    np.testing.assert_allclose(flow_log_prob(f, xs, jnp.broadcast_to(c, (3, 2))), logq, atol=1e-3)
    loc = f.affine._loc_scale(c)[0]  # Z₂-equivariant couplings at fixed c: x(−z) − loc = −(x(z) − loc)
    np.testing.assert_allclose(f.forward(-z, c)[0] - loc, -(x - loc), atol=1e-5)
    with pytest.raises(InputError, match="conditional"):
        flow_sample(f, jax.random.key(4), 3)


@pytest.fixture(scope="module")
def amplitude_fields(gaussian_fields):
    """Gaussian fields of amplitude e^{c/2}, c ∈ {−1, 0, 1}: log-spectrum linear in c (a closed form)."""
    c = np.repeat([-1.0, 0.0, 1.0], 64)
    return gaussian_fields(192, 8, slope=2.0, seed=11) * np.exp(0.5 * c)[:, None, None], c


def test_conditional_flow_recovers_a_conditional_gaussian(amplitude_fields, tmp_path):
    x, c = amplitude_fields
    # the spectral layer alone: θ(c) = θ₀ + c θ₁ holds this family exactly
    m = FlowModel.fit(x, key=jax.random.key(0), conditions=c, condition_names=["a"], layers=0, steps=600,
                      batch_size=32, learning_rate=1e-2, progress=False)
    assert m.condition_names == ["a"] and m.net_config.cond_channels == 1
    for v in (-1.0, 1.0):
        s = np.asarray(m.sample(512, key=jax.random.key(1), condition=[v]))
        truth = x[c == v]
        # per-pixel variance: truth's 64 fields x 64 sites, correlated; 8 % is several standard errors
        assert abs(s.var() / truth.var() - 1) < 0.08
    back = FlowModel.load(m.save(tmp_path / "c.h5"))
    np.testing.assert_array_equal(np.asarray(back.sample(3, key=jax.random.key(2), condition=[0.5])),
                                  np.asarray(m.sample(3, key=jax.random.key(2), condition=[0.5])))
    np.testing.assert_allclose(back.log_prob(x[:4], condition=[0.0]), m.log_prob(x[:4], condition=[0.0]))
    with pytest.raises(ParameterError, match="pass condition="):
        m.sample(2, key=jax.random.key(0))
    with pytest.raises(ParameterError, match="finite"):
        m.sample(2, key=jax.random.key(0), condition=[float("inf")])
    with pytest.warns(UserWarning, match="outside the training range"):
        m.sample(2, key=jax.random.key(0), condition=[3.0])
    with pytest.raises(InputError, match="one row per field"):
        FlowModel.fit(x, key=jax.random.key(0), conditions=c[:5], layers=0, steps=2, progress=False)


def test_conditional_flow_through_the_cli(amplitude_fields, tmp_path):
    from phigen import io as pio
    from phigen.cli import main

    x, c = amplitude_fields
    data = tmp_path / "amp.h5"
    pio.write_fields(data, x.astype(np.float32), field="gaussian", conditions=c[:, None], condition_names=["a"])
    model = tmp_path / "f.h5"
    assert main(["fit", "flow", str(data), "--condition", "a", "-o", str(model), "--set", "layers=2",
                 "--set", "width=4", "--set", "steps=20", "--quiet"]) == 0
    assert main(["sample", str(model), "-n", "6", "--condition", "a=0.5", "-o", str(tmp_path / "s.h5"),
                 "--quiet"]) == 0
    with pio.open_fields(tmp_path / "s.h5") as ds:
        assert ds.condition_names == ["a"] and np.allclose(ds.conditions()[:, 0], 0.5) and ds[:].shape == (6, 8, 8)
    assert main(["sample", str(model), "-n", "2", "-o", str(tmp_path / "t.h5"), "--quiet"]) != 0  # no condition


# --- transfer across volumes ---------------------------------------------------------------------
def test_resize_flow_keeps_couplings_and_resamples_the_spectrum():
    from phigen.flows import resize_flow

    config = FlowNetConfig(layers=2, width=4, symmetric=True)
    f = _random_flow(config, (8, 8))
    g = resize_flow(f, config, (16, 16))
    assert g.shape == (16, 16) and g.spectral.theta.shape == (16, 16)
    # the old momenta are a sub-grid of the new: θ there is unchanged, between them interpolated
    np.testing.assert_allclose(g.spectral.theta[::2, ::2], f.spectral.theta, atol=1e-6)
    np.testing.assert_allclose(g.spectral.theta[1, 0], 0.5 * (f.spectral.theta[0, 0] + f.spectral.theta[1, 0]),
                               atol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(f.couplings), jax.tree_util.tree_leaves(g.couplings)):
        np.testing.assert_array_equal(a, b)
    x, logq = flow_sample(g, jax.random.key(1), 3)
    np.testing.assert_allclose(flow_log_prob(g, x), logq, atol=2e-3)
    with pytest.raises(ParameterError, match="even"):
        resize_flow(f, config, (9, 9))


def test_reverse_kl_fit_started_from_a_smaller_lattice():
    """A GFF flow fitted at L = 4 starts the L = 8 fit much closer to F than a fresh flow does."""
    energy = gaussian_free_field(KAPPA)
    opts = dict(progress=False, layers=2, width=4, hidden=1, learning_rate=1e-2, warmup=5, chunk=20,
                eval_samples=256)
    small = FlowModel.fit_energy(energy, 4, key=jax.random.key(0), steps=200, **opts)
    fresh = FlowModel.fit_energy(energy, 8, key=jax.random.key(1), steps=20, **opts)
    moved = FlowModel.fit_energy(energy, 8, key=jax.random.key(1), steps=20, init=small, **opts)
    log_z = _gff_log_z(8, KAPPA)
    gap = lambda m: (m.training["free_energy_variational"] + log_z) / 64  # noqa: E731  (≥ 0, nats per site)
    assert moved.training["init"]["shape"] == [4, 4] and moved.field_shape == (8, 8)
    assert gap(moved) < 0.25 * gap(fresh), (gap(moved), gap(fresh))
    assert moved.losses[:5].mean() < fresh.losses[:5].mean()


def test_rational_quadratic_spline_is_monotone_invertible_and_mirrors():
    from phigen.flows.layers import rational_quadratic_spline as rqs

    k, bound = 5, 3.0
    x = jnp.linspace(-4.0, 4.0, 401)  # inside and outside [−bound, bound]
    zero = [jnp.zeros((k, 401)), jnp.zeros((k, 401)), jnp.zeros((k - 1, 401))]
    y0, ld0 = rqs(x, *zero, bound)
    np.testing.assert_allclose(y0, x, atol=1e-5)  # zero parameters: the identity
    np.testing.assert_allclose(ld0, 0.0, atol=1e-5)
    r = jax.random.normal(jax.random.key(0), (3 * k - 1, 1)) * jnp.ones((1, 401))
    params = (r[:k], r[k:2 * k], r[2 * k:])
    y, ld = rqs(x, *params, bound)
    assert np.all(np.diff(np.asarray(y)) > 0) and float(jnp.abs(y - x).max()) > 0.1
    np.testing.assert_allclose(ld, jnp.log(jax.vmap(jax.grad(lambda u: rqs(u, *[p[:, 0] for p in params], bound)[0]))(x)),
                               atol=1e-4)
    xb, ldi = rqs(y, *params, bound, inverse=True)
    np.testing.assert_allclose(xb, x, atol=2e-5)
    np.testing.assert_allclose(ldi, -ld, atol=1e-4)
    mirrored = (r[:k][::-1], r[k:2 * k][::-1], r[2 * k:][::-1])  # bins in reverse order: the odd reflection
    np.testing.assert_allclose(rqs(-x, *mirrored, bound)[0], -y, atol=1e-5)
