"""ULA / MALA / HMC: exact Gaussian-free-field spectra, ULA's exact O(ε) bias, double-well moments,
leapfrog order and reversibility, divergence handling and step-size adaptation.

Standard errors come from the spread of per-chain means over independent chains:
SE = std(chain means) / √C, which accounts for autocorrelation within each chain.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.energies import Phi4, energy_from_fn, gaussian_free_field, gff_exact_spectrum
from phigen.errors import DivergenceError, ParameterError
from phigen.samplers import (DIVERGENCE_THRESHOLD, HMCState, Kernel, adapt_step_size, hmc_init,
                             hmc_step, leapfrog, make_kernel, mala_init, mala_step, ula_init,
                             ula_step)

KAPPA, L = 0.2, 16
N_SIGMA = 5.0  # max over up to 256 modes of a |z|: a 5σ bound has a negligible false-alarm rate


@partial(jax.jit, static_argnames=("kind", "n_burn", "n_keep", "thin"))
def _spectrum_run(key, x0, params, *, kind, n_burn, n_keep, thin):
    """Per-chain time average of |φ̂(k)|²/V over n_keep samples taken every `thin` steps.

    ``params`` (step size, ...) are traced, so runs that differ only in them share one compile.
    """
    kernel = make_kernel(kind, gaussian_free_field(KAPPA), **params)

    def run(state, key, n):
        def one(s, k):
            s, _ = kernel.step(k, s)
            return s, None
        s, _ = jax.lax.scan(one, state, jax.random.split(key, n))
        return s

    key_burn, key_keep = jax.random.split(key)
    state = run(kernel.init(x0), key_burn, n_burn)

    def sample(carry, k):
        state, acc = carry
        state = run(state, k, thin)
        phi = state.position
        power = jnp.abs(jnp.fft.fft2(phi)) ** 2 / (phi.shape[-1] * phi.shape[-2])
        return (state, acc + power), None

    acc0 = jnp.zeros(x0.shape, jnp.float32)
    (state, acc), _ = jax.lax.scan(sample, (state, acc0), jax.random.split(key_keep, n_keep))
    return acc / n_keep


def _measure_spectrum(kind, seed, *, n_chains, n_burn, n_keep, thin, **params):
    x0 = 0.5 * jax.random.normal(jax.random.key(seed + 1000), (n_chains, L, L))
    params = {k: (jnp.asarray(v, jnp.float32) if k == "step_size" else v) for k, v in params.items()}
    chain_means = np.asarray(_spectrum_run(jax.random.key(seed), x0, params, kind=kind, n_burn=n_burn,
                                           n_keep=n_keep, thin=thin), np.float64)
    mean = chain_means.mean(0)
    se = chain_means.std(0, ddof=1) / np.sqrt(n_chains)
    return mean, se


def _ula_biased_spectrum(step_size):
    """ULA on U = ½xᵀAx is Gaussian with covariance (A(I − εA/2))⁻¹: mode-wise 1/(a(1 − εa/2))."""
    a = 1.0 / gff_exact_spectrum((L, L), KAPPA)
    return 1.0 / (a * (1.0 - step_size * a / 2.0))


SAMPLER_CASES = {
    # ULA bias at ε = 0.005 is ≤ 0.9 % (ε·a_max/2), below 1 SE of this run on every mode
    "ula": dict(step_size=0.005, n_chains=128, n_burn=2000, n_keep=400, thin=10),
    "mala": dict(step_size=0.08, n_chains=128, n_burn=400, n_keep=600, thin=4),
    "hmc": dict(step_size=0.25, n_leapfrog=5, n_chains=128, n_burn=100, n_keep=400, thin=1),
}


@pytest.mark.parametrize("kind", ["ula", "mala", "hmc"])
def test_sampler_reproduces_gff_spectrum(kind):
    mean, se = _measure_spectrum(kind, seed=11, **SAMPLER_CASES[kind])
    exact = gff_exact_spectrum((L, L), KAPPA)
    z = (mean - exact) / se
    assert np.max(se / exact) < 0.06, "run too short to resolve a few-percent error"
    assert np.max(np.abs(z)) < N_SIGMA, f"worst mode off by {np.max(np.abs(z)):.1f} SE"
    # the k-averaged power is a much tighter check (modes are independent for the GFF)
    z_total = (mean.sum() - exact.sum()) / np.sqrt(np.sum(se ** 2))
    assert abs(z_total) < N_SIGMA


def test_ula_bias_matches_exact_biased_covariance_and_shrinks_with_step():
    exact = gff_exact_spectrum((L, L), KAPPA)
    stiff = exact < np.quantile(exact, 0.25)  # the high-a modes, where the bias εa/2 is largest
    measured_bias = {}
    for eps in (0.1, 0.2):
        mean, se = _measure_spectrum("ula", seed=5, step_size=eps, n_chains=128, n_burn=400,
                                     n_keep=400, thin=2)
        biased = _ula_biased_spectrum(eps)
        assert np.max(np.abs(mean - biased) / se) < N_SIGMA            # the exact biased law
        assert np.max(np.abs(mean - exact) / se) > 4 * N_SIGMA         # the bias is visible (≈40 SE at ε = 0.1)
        measured_bias[eps] = np.mean(mean[stiff] / exact[stiff]) - 1.0
        predicted = np.mean(biased[stiff] / exact[stiff]) - 1.0
        assert measured_bias[eps] == pytest.approx(predicted, rel=0.05)
    # O(ε): halving the step roughly halves the bias (a little less, the exact law is 1/(1−εa/2))
    ratio = measured_bias[0.2] / measured_bias[0.1]
    assert 2.0 < ratio < 3.0


def _double_well_moments(a):
    x = np.linspace(-4.0, 4.0, 400001)
    w = np.exp(-a * (x ** 2 - 1.0) ** 2)
    z = np.trapezoid(w, x)
    return np.trapezoid(x ** 2 * w, x) / z, np.trapezoid(x ** 4 * w, x) / z


@partial(jax.jit, static_argnames=("kernel_step", "n_burn", "n_keep"))
def _moment_run(key, state, *, kernel_step, n_burn, n_keep):
    def one(s, k):
        s, info = kernel_step(k, s)
        return s, info.is_accepted

    key_burn, key_keep = jax.random.split(key)
    state, _ = jax.lax.scan(one, state, jax.random.split(key_burn, n_burn))

    def keep(carry, k):
        s, m2, m4 = carry
        s, _ = kernel_step(k, s)
        x2 = jnp.sum(s.position.reshape(s.position.shape[0], -1) ** 2, axis=1)
        return (s, m2 + x2, m4 + x2 * x2), None

    zeros = jnp.zeros(state.energy.shape)
    (state, m2, m4), _ = jax.lax.scan(keep, (state, zeros, zeros), jax.random.split(key_keep, n_keep))
    return m2 / n_keep, m4 / n_keep


@pytest.mark.parametrize("kind,params", [("mala", dict(step_size=0.08)),
                                         ("hmc", dict(step_size=0.2, n_leapfrog=6))])
@pytest.mark.parametrize("event_shape", [(), (1,)])
def test_double_well_moments(kind, params, event_shape):
    a = 1.5
    if event_shape == ():
        energy = energy_from_fn(lambda x: a * (x ** 2 - 1.0) ** 2, name="double_well")
    else:
        energy = energy_from_fn(lambda x: a * (x[0] ** 2 - 1.0) ** 2, name="double_well_1")
    n_chains = 512
    kernel = make_kernel(kind, energy, **params)
    # start inside the wells: far out in the x⁴ tails the MALA drift overshoots and is always
    # rejected (MALA is not geometrically ergodic there), which is a property, not a bug
    x0 = jax.random.uniform(jax.random.key(3), (n_chains,) + event_shape, minval=-1.5, maxval=1.5)
    m2, m4 = _moment_run(jax.random.key(4), kernel.init(x0), kernel_step=kernel.step,
                         n_burn=300, n_keep=3000)
    exact2, exact4 = _double_well_moments(a)
    for measured, exact in ((np.asarray(m2, np.float64), exact2), (np.asarray(m4, np.float64), exact4)):
        se = measured.std(ddof=1) / np.sqrt(n_chains)
        assert se / exact < 0.02
        assert abs(measured.mean() - exact) < N_SIGMA * se, (measured.mean(), exact, se)


def test_leapfrog_is_second_order_and_reversible():
    energy = Phi4(0.25, 0.5)
    x = 0.8 * jax.random.normal(jax.random.key(0), (8, 8, 8))
    p = jax.random.normal(jax.random.key(1), x.shape)
    u0, g0 = energy.value_and_grad(x)
    h0 = u0 + 0.5 * jnp.sum(p ** 2, axis=(1, 2))
    leapfrog_ = jax.jit(leapfrog, static_argnums=(0,))
    errors = []
    for eps, n in ((0.1, 5), (0.05, 10), (0.025, 20)):   # same trajectory length 0.5
        x1, p1, u1, _ = leapfrog_(energy, x, p, g0, eps, n)
        errors.append(float(jnp.mean(jnp.abs(u1 + 0.5 * jnp.sum(p1 ** 2, axis=(1, 2)) - h0))))
    order = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((order > 1.7) & (order < 2.3)), (errors, order)
    # reversibility: flip momentum, integrate back
    x1, p1, _, g1 = leapfrog_(energy, x, p, g0, 0.1, 20)
    x2, p2, _, _ = leapfrog_(energy, x1, -p1, g1, 0.1, 20)
    np.testing.assert_allclose(x2, x, atol=2e-4)
    np.testing.assert_allclose(-p2, p, atol=2e-4)


def test_hmc_trajectory_jitter_is_shared_and_in_range():
    energy = gaussian_free_field(0.2)
    state = hmc_init(jnp.zeros((16, 8, 8)), energy)
    ns = []
    for i in range(200):
        state, info = hmc_step(jax.random.key(i), state, energy, step_size=0.2, n_leapfrog=10, jitter=0.3)
        assert info.n_leapfrog.shape == ()
        ns.append(int(info.n_leapfrog))
    assert min(ns) >= 7 and max(ns) <= 13 and len(set(ns)) >= 5
    assert abs(np.mean(ns) - 10) < 0.5
    _, info = hmc_step(jax.random.key(0), state, energy, step_size=0.2, n_leapfrog=10, jitter=0.0)
    assert int(info.n_leapfrog) == 10


@pytest.mark.parametrize("kind", ["ula", "mala", "hmc"])
def test_huge_step_is_flagged_divergent_and_rejected(kind):
    energy = Phi4(0.2, 1.0)
    x0 = jax.random.normal(jax.random.key(0), (32, 8, 8))
    # per-chain steps: the first half sane, the second half absurd
    eps = jnp.where(jnp.arange(32) < 16, 1e-3, 50.0)
    params = dict(step_size=eps, n_leapfrog=10) if kind == "hmc" else dict(step_size=eps)
    kernel = make_kernel(kind, energy, **params)
    state = kernel.init(x0)
    for i in range(5):
        state, info = kernel.step(jax.random.key(i), state)
        div = np.asarray(info.divergent)
        assert div[16:].all() and not div[:16].any()
        if kind != "ula":
            assert not np.asarray(info.is_accepted)[16:].any()
            assert np.all(np.asarray(info.acceptance_rate)[16:] == 0.0)
    for leaf in state:
        assert np.all(np.isfinite(np.asarray(leaf)))
    np.testing.assert_array_equal(state.position[16:], x0[16:])
    assert DIVERGENCE_THRESHOLD == 1000.0


@pytest.mark.parametrize("kind", ["mala", "hmc"])
def test_adaptation_reaches_target_acceptance(kind):
    energy = Phi4(0.26, 0.6)
    n_chains = 64
    x0 = jax.random.normal(jax.random.key(0), (n_chains, 8, 8))
    state, eps, info = adapt_step_size(jax.random.key(1), kind, energy, x0, n_warmup=300)
    assert eps.shape == ()
    target = 0.574 if kind == "mala" else 0.8
    params = dict(step_size=eps)
    if kind == "hmc":
        params["n_leapfrog"] = info.final_n_leapfrog
        assert info.final_n_leapfrog * float(eps) == pytest.approx(1.0, abs=float(eps))
    kernel = make_kernel(kind, energy, **params)
    run = jax.jit(lambda s, keys: jax.lax.scan(lambda c, k: kernel.step(k, c), s, keys))
    _, infos = run(state, jax.random.split(jax.random.key(2), 300))
    acc = np.asarray(infos.acceptance_rate)
    assert abs(np.mean(acc) - target) < 0.05, (np.mean(acc), float(eps))
    assert info.step_size.shape == (300,) and info.acceptance_rate.shape == (300,)


@pytest.mark.slow
def test_per_chain_adaptation_and_fixed_n_leapfrog():
    energy = Phi4(0.26, 0.6)
    x0 = jax.random.normal(jax.random.key(0), (32, 8, 8))
    _, eps, info = adapt_step_size(jax.random.key(1), "hmc", energy, x0, n_warmup=300, per_chain=True,
                                   n_leapfrog=7, target_acceptance=0.7)
    assert eps.shape == (32,) and np.all(np.isfinite(eps)) and np.all(eps > 0)
    assert info.final_n_leapfrog == 7 and np.all(np.asarray(info.n_leapfrog) == 7)
    assert 0.6 < float(jnp.mean(info.acceptance_rate[-100:])) < 0.8


def test_adaptation_collapse_raises_naming_step_size():
    # finite only at the starting point: every move is divergent, so ε is driven to 0
    hopeless = energy_from_fn(lambda x: jnp.sum(x ** 2) + jnp.where(jnp.all(x == 0.0), 0.0, jnp.nan))
    for kind in ("mala", "hmc"):
        with pytest.raises(DivergenceError, match="step size"):
            adapt_step_size(jax.random.key(0), kind, hopeless, jnp.zeros((8, 3)), n_warmup=200)


def test_kernel_factory_and_argument_checks():
    energy = gaussian_free_field(0.2)
    k = make_kernel("hmc", energy, step_size=0.2)
    assert isinstance(k, Kernel)
    state = k.init(np.zeros((4, 8, 8)))       # numpy input accepted
    assert isinstance(state, HMCState) and state.position.dtype == jnp.float32
    # kernels are traceable inside a user's jitted scan
    run = jax.jit(lambda s, keys: jax.lax.scan(lambda c, kk: k.step(kk, c), s, keys))
    state, infos = run(state, jax.random.split(jax.random.key(0), 10))
    assert infos.acceptance_rate.shape == (10, 4)
    with pytest.raises(ParameterError):
        make_kernel("nuts", energy, step_size=0.1)
    with pytest.raises(ParameterError):
        make_kernel("mala", energy)
    with pytest.raises(ParameterError):
        make_kernel("mala", energy, step_size=0.1, n_leapfrog=3)
    with pytest.raises(ParameterError):
        make_kernel("hmc", energy, step_size=-0.1)
    with pytest.raises(ParameterError):
        make_kernel("hmc", energy, step_size=0.1, n_leapfrog=2.5)
    with pytest.raises(ParameterError):
        make_kernel("ula", lambda x: x, step_size=0.1)
    with pytest.raises(ParameterError):
        adapt_step_size(jax.random.key(0), "ula", energy, np.zeros((4, 8, 8)), n_warmup=100)
    with pytest.raises(ParameterError):
        adapt_step_size(jax.random.key(0), "hmc", energy, np.zeros((4, 8, 8)), n_warmup=100,
                        target_acceptance=1.5)


def test_direct_step_functions_agree_with_kernels():
    energy = Phi4(0.22, 0.3)
    x0 = jax.random.normal(jax.random.key(0), (4, 8, 8))
    key = jax.random.key(9)
    s1, _ = ula_step(key, ula_init(x0, energy), energy, step_size=0.01)
    s2, _ = make_kernel("ula", energy, step_size=0.01).step(key, make_kernel("ula", energy, step_size=0.01).init(x0))
    np.testing.assert_array_equal(s1.position, s2.position)
    s1, i1 = mala_step(key, mala_init(x0, energy), energy, step_size=0.05)
    assert i1.is_accepted.dtype == jnp.bool_ and i1.acceptance_rate.shape == (4,)
    np.testing.assert_allclose(s1.energy, energy.value(s1.position), rtol=1e-5)


def test_random_start_on_a_large_lattice_is_not_a_divergence():
    """From N(0,1) noise on 128², proposals can change U by thousands: rejected, not divergent."""
    from phigen.energies import Phi4
    from phigen.samplers import make_kernel

    energy = Phi4(0.27, 0.022)
    x0 = jax.random.normal(jax.random.PRNGKey(0), (4, 128, 128))
    kernel = make_kernel("mala", energy, step_size=0.05)
    state = kernel.init(x0)
    state, info = kernel.step(jax.random.PRNGKey(1), state)
    assert not bool(jnp.any(info.divergent))
    # a truly runaway step is still caught
    kernel = make_kernel("mala", energy, step_size=50.0)
    _, info = kernel.step(jax.random.PRNGKey(1), kernel.init(x0))
    assert bool(jnp.all(info.divergent))
