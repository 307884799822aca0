"""Swendsen–Wang cluster update: labelling against scipy, exact invariance on a 4×4 lattice,
and the HMC + cluster kernel's bookkeeping."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage, stats

from phigen.errors import InputError, ParameterError
from phigen.samplers.cluster import (_cluster_labels_jit, cluster_labels, swendsen_wang_bonds,
                                     swendsen_wang_step)


# --- labelling -----------------------------------------------------------------------------------
def scipy_periodic_labels(bonds_right, bonds_down):
    """Reference: scipy.ndimage.label on a doubled image (sites and bonds as pixels), then the
    labels that touch across the periodic boundary merged with a small union-find."""
    h, w = bonds_right.shape
    img = np.zeros((2 * h, 2 * w), bool)
    img[::2, ::2] = True
    img[::2, 1::2] = bonds_right
    img[1::2, ::2] = bonds_down
    lab, n = ndimage.label(img)  # 4-connectivity
    parent = list(range(n + 1))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        if a and b:
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)

    for i in range(2 * h):
        union(lab[i, -1], lab[i, 0])
    for j in range(2 * w):
        union(lab[-1, j], lab[0, j])
    return np.vectorize(find)(lab[::2, ::2])


def same_partition(a, b):
    a, b = np.ravel(a).tolist(), np.ravel(b).tolist()
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


@pytest.mark.parametrize("shape,p", [((8, 8), 0.5), ((7, 12), 0.3), ((16, 16), 0.6), ((32, 32), 0.5),
                                     ((5, 3), 0.9), ((6, 6), 0.0), ((6, 9), 1.0), ((2, 2), 0.5)])
def test_labels_equal_scipy_periodic_labelling(shape, p):
    rng = np.random.default_rng(1000 * shape[0] + 10 * shape[1] + int(10 * p))
    br = rng.random((6,) + shape) < p
    bd = rng.random((6,) + shape) < p
    labels = np.asarray(cluster_labels(br, bd))
    assert labels.shape == br.shape and labels.dtype == np.int32
    idx = np.arange(shape[0] * shape[1]).reshape(shape)
    for c in range(br.shape[0]):
        assert same_partition(labels[c], scipy_periodic_labels(br[c], bd[c]))
        # each site holds the smallest flat index of its cluster, so roots point at themselves
        assert np.all(labels[c] <= idx)
        assert np.all(labels[c].ravel()[labels[c].ravel()] == labels[c].ravel())
        for root in np.unique(labels[c]):
            assert idx[labels[c] == root].min() == root


def test_labels_single_field_and_bad_input():
    rng = np.random.default_rng(3)
    br, bd = rng.random((9, 9)) < 0.5, rng.random((9, 9)) < 0.5
    lab = np.asarray(cluster_labels(br, bd))
    assert lab.shape == (9, 9)
    assert same_partition(lab, scipy_periodic_labels(br, bd))
    with pytest.raises(InputError):
        cluster_labels(br, bd[:8])
    with pytest.raises(InputError):
        cluster_labels(np.zeros(9, bool), np.zeros(9, bool))


def test_labelling_rounds_grow_like_log_L_even_for_a_snake():
    """A single path snaking through all L² sites needs ~L² rounds with plain min propagation;
    with root hooking and pointer jumping the rounds must stay O(log L)."""
    for size in (16, 128):
        br = np.ones((1, size, size), bool)
        br[:, :, -1] = False
        bd = np.zeros((1, size, size), bool)
        for i in range(size - 1):
            bd[0, i, size - 1 if i % 2 == 0 else 0] = True
        labels, n_rounds = _cluster_labels_jit(jnp.asarray(br), jnp.asarray(bd))
        assert np.all(np.asarray(labels) == 0)
        assert int(n_rounds) <= 2 * math.log2(size) + 2
    rng = np.random.default_rng(0)
    for size in (128,):  # random bonds at the percolation threshold p = 1/2
        br, bd = rng.random((1, size, size)) < 0.5, rng.random((1, size, size)) < 0.5
        _, n_rounds = _cluster_labels_jit(jnp.asarray(br), jnp.asarray(bd))
        assert int(n_rounds) <= 2 * math.log2(size) + 2


# --- the update ----------------------------------------------------------------------------------
def test_bond_probability_matches_brower_tamayo():
    """Bond frequency between two fixed same-sign neighbours is 1 − exp(−4κφ_xφ_y); 0 across signs."""
    n_chains, kappa = 20000, 0.3
    phi = np.full((n_chains, 4, 4), 0.8, np.float32)
    phi[:, 0, 1] = 1.3
    phi[:, 2, 2] = -1.0
    br, bd = swendsen_wang_bonds(jax.random.key(5), jnp.asarray(phi), kappa)
    br, bd = np.asarray(br), np.asarray(bd)
    for freq, prob in ((br[:, 0, 0].mean(), 1 - math.exp(-4 * kappa * 0.8 * 1.3)),
                       (bd[:, 1, 3].mean(), 1 - math.exp(-4 * kappa * 0.8 * 0.8))):
        assert abs(freq - prob) < 4 * math.sqrt(prob * (1 - prob) / n_chains)
    assert not br[:, 2, 1].any() and not br[:, 2, 2].any() and not bd[:, 1, 2].any() and not bd[:, 2, 2].any()


def test_update_keeps_magnitudes_and_reports_clusters():
    phi = jax.random.normal(jax.random.key(0), (8, 16, 16))
    new, info = swendsen_wang_step(jax.random.key(1), phi, 0.3)
    assert new.shape == phi.shape and new.dtype == jnp.float32
    np.testing.assert_array_equal(np.abs(np.asarray(new)), np.abs(np.asarray(phi)))
    assert info.n_clusters.shape == (8,) and info.mean_cluster_size.shape == (8,)
    np.testing.assert_allclose(np.asarray(info.mean_cluster_size), 256 / np.asarray(info.n_clusters), rtol=1e-6)
    assert int(info.n_rounds) >= 1
    # a single (H, W) field works too
    single, _ = swendsen_wang_step(jax.random.key(1), np.asarray(phi[0]), 0.3)
    assert single.shape == (16, 16)


def test_limits_kappa_zero_and_strong_coupling():
    n_chains = 4000
    phi = jnp.ones((n_chains, 4, 4))
    # κ = 0: no bonds, every site is its own cluster and flips with probability 1/2 independently
    new, info = swendsen_wang_step(jax.random.key(2), phi, 0.0)
    assert np.all(np.asarray(info.n_clusters) == 16)
    flipped = np.asarray(new) < 0
    assert abs(flipped.mean() - 0.5) < 4 * math.sqrt(0.25 / flipped.size)
    corr = np.corrcoef(flipped[:, 0, 0], flipped[:, 0, 1])[0, 1]
    assert abs(corr) < 4 / math.sqrt(n_chains)
    # huge κ with all signs equal: one cluster, the whole lattice flips with probability 1/2
    new, info = swendsen_wang_step(jax.random.key(3), phi, 50.0)
    assert np.all(np.asarray(info.n_clusters) == 1)
    signs = np.sign(np.asarray(new)).reshape(n_chains, -1)
    assert np.all(signs == signs[:, :1])
    assert abs((signs[:, 0] < 0).mean() - 0.5) < 4 * math.sqrt(0.25 / n_chains)


def test_input_checks():
    phi = np.ones((2, 4, 4), np.float32)
    with pytest.raises(ParameterError):
        swendsen_wang_step(jax.random.key(0), phi, -0.1)
    with pytest.raises(ParameterError):
        swendsen_wang_step(jax.random.key(0), phi, float("nan"))
    bad = phi.copy()
    bad[0, 1, 1] = np.nan
    with pytest.raises(InputError):
        swendsen_wang_step(jax.random.key(0), bad, 0.2)
    with pytest.raises(InputError):
        swendsen_wang_step(jax.random.key(0), np.ones(4), 0.2)


def test_update_runs_inside_scan_with_traced_kappa():
    @jax.jit
    def run(key, phi, kappa):
        def body(p, k):
            p, info = swendsen_wang_step(k, p, kappa)
            return p, info.n_clusters
        return jax.lax.scan(body, phi, jax.random.split(key, 5))

    phi = jax.random.normal(jax.random.key(0), (3, 8, 8))
    out, n_clusters = run(jax.random.key(1), phi, 0.25)
    assert n_clusters.shape == (5, 3)
    np.testing.assert_array_equal(np.abs(np.asarray(out)), np.abs(np.asarray(phi)))


# --- detailed balance against exact enumeration (4×4, 2^16 sign states) ----------------------------
L4, KAPPA4 = 4, 0.12


def _exact_sign_ensemble():
    """|φ| fixed; p(s) ∝ exp(2κ Σ_<xy> |φ_x φ_y| s_x s_y) over all 2^16 sign configurations."""
    a = np.random.default_rng(42).uniform(0.5, 1.5, (L4, L4))
    states = ((np.arange(2 ** 16)[:, None] >> np.arange(16)) & 1) * 2 - 1  # (65536, 16)
    s = states.reshape(-1, L4, L4).astype(np.float64)
    phi = s * a
    link = np.sum(phi * np.roll(phi, -1, 2) + phi * np.roll(phi, -1, 1), axis=(1, 2))
    logw = 2 * KAPPA4 * link
    prob = np.exp(logw - logw.max())
    prob /= prob.sum()
    return a, states, prob


def _sign_observables(phi):
    s = np.sign(phi)
    mag = s.sum(axis=(-2, -1))
    link = np.sum(phi * np.roll(phi, -1, -1) + phi * np.roll(phi, -1, -2), axis=(-2, -1))
    return mag, link


def _compare_with_exact(phi_final, states, prob, a):
    mag, link = _sign_observables(phi_final)
    exact_mag = states.sum(axis=1)
    exact_link = _sign_observables(states.reshape(-1, L4, L4) * a)[1]
    n = mag.size
    for sample, exact in ((mag ** 2, exact_mag ** 2), (link, exact_link), (mag ** 4, exact_mag ** 4)):
        mean = np.sum(prob * exact)
        sd = math.sqrt(np.sum(prob * (exact - mean) ** 2))
        assert abs(sample.mean() - mean) < 4.5 * sd / math.sqrt(n), (sample.mean(), mean, sd / math.sqrt(n))
    # the full distribution of the sign magnetisation (9 values) by a chi-square test
    values = np.arange(-16, 17, 2)
    expected = np.array([prob[exact_mag == v].sum() for v in values]) * n
    observed = np.array([(mag == v).sum() for v in values])
    keep = expected > 5
    if not keep.all():  # pool the rare tails into one bin
        observed = np.append(observed[keep], observed[~keep].sum())
        expected = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-4


def test_update_leaves_exact_sign_distribution_invariant():
    """Chains started exactly in equilibrium stay there after updates (detailed balance)."""
    a, states, prob = _exact_sign_ensemble()
    n_chains = 10000
    idx = np.random.default_rng(7).choice(prob.size, size=n_chains, p=prob)
    phi = (states[idx].reshape(-1, L4, L4) * a).astype(np.float32)
    key = jax.random.key(11)
    for _ in range(2):
        key, sub = jax.random.split(key)
        phi, _ = swendsen_wang_step(sub, phi, KAPPA4)
    _compare_with_exact(np.asarray(phi, np.float64), states, prob, a)


def test_update_converges_to_exact_sign_distribution_from_ordered_start():
    a, states, prob = _exact_sign_ensemble()
    phi = jnp.asarray(np.broadcast_to(a, (10000, L4, L4)), jnp.float32)  # all signs +1

    @jax.jit
    def run(key, phi):
        return jax.lax.scan(lambda p, k: (swendsen_wang_step(k, p, KAPPA4)[0], None), phi,
                            jax.random.split(key, 20))[0]

    _compare_with_exact(np.asarray(run(jax.random.key(12), phi), np.float64), states, prob, a)


# --- HMC + cluster kernel bookkeeping ------------------------------------------------------------
def test_hmc_cluster_state_is_consistent_and_checks_kappa():
    from phigen.energies import Phi4
    from phigen.samplers.mixed import hmc_cluster_init, hmc_cluster_step, make_hmc_cluster_kernel

    energy = Phi4(0.3, 1.0)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8))
    state = hmc_cluster_init(x, energy)
    for i in range(3):
        state, info = hmc_cluster_step(jax.random.key(i), state, energy, step_size=0.15, n_leapfrog=5)
    u, g = energy.value_and_grad(state.position)
    np.testing.assert_allclose(np.asarray(state.energy), np.asarray(u), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state.grad), np.asarray(g), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(info.energy), np.asarray(u), rtol=1e-5)
    assert info.acceptance_rate.shape == (4,) and info.n_clusters.shape == (4,)
    with pytest.raises(ParameterError):
        hmc_cluster_step(jax.random.key(0), state, energy, kappa=0.2, step_size=0.1, n_leapfrog=3)
    kernel = make_hmc_cluster_kernel(energy, step_size=0.15, n_leapfrog=5)
    s, info = kernel.step(jax.random.key(9), kernel.init(x))
    assert s.position.shape == x.shape
    with pytest.raises(ParameterError):
        make_hmc_cluster_kernel(energy, step_size=-1.0, n_leapfrog=5)
