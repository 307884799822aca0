"""The samplers' fast normal generator (``phigen.samplers._rng``) and HMC's φ⁴ fast path.

The generator must be the exact N(0, 1) law: Threefry-2x32 is checked bit for bit against jax's
own hash; the draws against the moments, the tail mass and the CDF of N(0, 1) (KS test), with
tolerances of several standard errors of each estimator; independence of the two words of a hash,
of neighbouring positions and of neighbouring chains. HMC's φ⁴ fast path (stencil without rolls,
kick–drift leapfrog) must reproduce the generic computation to float32 rounding, also with the
chains sharded over devices.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from phigen.energies import Phi4
from phigen.samplers import leapfrog
from phigen.samplers._rng import chain_block_normal, standard_normal, threefry2x32

N_SIGMA = 5.0


def test_threefry_matches_jax_bit_for_bit():
    from jax.extend.random import threefry2x32_p

    rng = np.random.default_rng(0)
    for seed in (0, 1, 12345, 2 ** 31 + 7):
        k = jax.random.key_data(jax.random.key(seed))
        x0 = jnp.asarray(rng.integers(0, 2 ** 32, 4096, dtype=np.uint64).astype(np.uint32))
        x1 = jnp.asarray(rng.integers(0, 2 ** 32, 4096, dtype=np.uint64).astype(np.uint32))
        ref = threefry2x32_p.bind(k[0], k[1], x0, x1)
        ours = jax.jit(threefry2x32)(k[0], k[1], x0, x1)
        for a, b in zip(ref, ours):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def draws():
    # 64 chains × (2 × 8192) positions ≈ 1.05e6 draws
    return np.asarray(jax.jit(lambda k: standard_normal(k, (64, 128, 128)))(jax.random.key(7)), np.float64)


def test_moments_match_standard_normal(draws):
    z = draws.ravel()
    n = z.size
    assert abs(z.mean()) < N_SIGMA / math.sqrt(n)
    assert abs(z.var() - 1.0) < N_SIGMA * math.sqrt(2.0 / n)            # Var(z²) = 2
    assert abs(np.mean(z ** 3)) < N_SIGMA * math.sqrt(15.0 / n)          # E z⁶ = 15
    assert abs(np.mean(z ** 4) - 3.0) < N_SIGMA * math.sqrt(96.0 / n)    # E z⁸ − 9 = 96
    for t in (2.0, 3.0, 4.0):   # two-sided tail mass
        p = 2 * stats.norm.sf(t)
        assert abs(np.mean(np.abs(z) > t) - p) < N_SIGMA * math.sqrt(p * (1 - p) / n), t


def test_ks_against_scipy_normal(draws):
    result = stats.kstest(draws.ravel(), stats.norm.cdf)
    # D·√n is ~Kolmogorov distributed: P(D√n > 1.95) ≈ 0.001
    assert result.statistic * math.sqrt(draws.size) < 1.95, result


def test_independence(draws):
    c, h, w = draws.shape
    flat = draws.reshape(c, h * w)
    half = flat.shape[1] // 2
    pairs = {
        "two words of one hash": (flat[:, :half], flat[:, half:]),
        "neighbouring positions": (flat[:, :-1], flat[:, 1:]),
        "neighbouring chains": (flat[:-1], flat[1:]),
    }
    for name, (a, b) in pairs.items():
        r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert abs(r) < N_SIGMA / math.sqrt(a.size), (name, r)
    # squares too: a dependence through the radius of a shared hash would show here
    a, b = pairs["two words of one hash"]
    r2 = np.corrcoef((a ** 2).ravel(), (b ** 2).ravel())[0, 1]
    assert abs(r2) < N_SIGMA / math.sqrt(a.size), r2


def test_tails_reach_6_5_sigma_symmetrically():
    """The extreme words map to ±Φ⁻¹(2⁻³³) ≈ ±6.56 (jax.random.normal stops near 5.3σ); the sign bit
    alone flips the sign; the middle words map to ≈ 0."""
    from phigen.samplers._rng import _normal_from_bits

    words = jnp.asarray([0, 2 ** 31, 2 ** 31 - 1, 2 ** 32 - 1, 12345, 2 ** 31 + 12345], jnp.uint32)
    z = np.asarray(jax.jit(_normal_from_bits)(words), np.float64)
    edge = stats.norm.isf(2.0 ** -33)
    np.testing.assert_allclose(z[:2], [edge, -edge], rtol=1e-5)
    np.testing.assert_allclose(z[2:4], [0.0, 0.0], atol=1e-8)
    assert z[4] == -z[5] and z[4] > 0
    # and the inverse CDF is right in between: word m ↦ −Φ⁻¹((m + ½)·2⁻³²)
    m = np.array([1, 1000, 2 ** 20, 2 ** 28, 2 ** 30], np.uint32)
    z = np.asarray(jax.jit(_normal_from_bits)(jnp.asarray(m)), np.float64)
    np.testing.assert_allclose(z, stats.norm.isf((m + 0.5) * 2.0 ** -32), rtol=2e-5)


def test_inverse_cdf_relative_error_below_1e6_on_every_word_range():
    """Dense words from the centre to the 2⁻³³ tail: |z| = −Φ⁻¹(q) within 1e-6 relative of scipy's
    float64 value, both branches of the erfinv polynomial and the switch between them included."""
    from phigen.samplers._rng import _normal_from_bits

    m = np.unique(np.concatenate([np.geomspace(1, 2 ** 31 - 1, 200_000).astype(np.uint32),
                                  np.arange(0, 4096, dtype=np.uint32)]))
    z = np.asarray(jax.jit(_normal_from_bits)(jnp.asarray(m)), np.float64)
    # the reference inverts the float32 tail probability the transform sees: this checks the
    # polynomial, not the (intended) 24-bit quantisation of q
    q32 = (m.astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -32)
    exact = stats.norm.isf(q32.astype(np.float64))
    rel = np.abs(z - exact) / np.maximum(np.abs(exact), 1e-2)
    assert rel.max() < 1e-6, (rel.max(), m[rel.argmax()])


def test_draws_depend_only_on_key_chain_and_position():
    key = jax.random.key(11)
    full = np.asarray(standard_normal(key, (12, 5, 7)))   # odd event size
    rows = jnp.asarray([3, 0, 11], jnp.int32)
    block = np.asarray(chain_block_normal(key, (3, 5, 7), rows))
    np.testing.assert_array_equal(block, full[np.asarray(rows)])
    again = np.asarray(standard_normal(key, (12, 5, 7)))
    np.testing.assert_array_equal(again, full)
    other = np.asarray(standard_normal(jax.random.key(12), (12, 5, 7)))
    assert not np.allclose(other, full)


def test_non_threefry_key_falls_back_to_jax_normal():
    key = jax.random.key(0, impl="rbg")
    z = np.asarray(standard_normal(key, (4, 6, 6)))
    assert z.shape == (4, 6, 6) and np.isfinite(z).all() and z.std() > 0.5


# --- the φ⁴ energy's own fast path (flat haloed layout) ------------------------------------------
@pytest.mark.parametrize("shape", [(4, 8, 8), (3, 5, 7), (2, 3, 3), (2, 16, 12)])
def test_phi4_fast_force_and_energy_match_the_energy(shape):
    from phigen.energies import phi4_grad, phi4_value_and_grad

    energy = Phi4(0.27, 0.5)
    x = jax.random.normal(jax.random.key(0), shape)
    p = jax.random.normal(jax.random.key(1), shape)
    u, g = jax.jit(lambda en, x: (en.value(x), en.grad(x)))(energy, x)  # the roll-based expressions
    u_fast, g_fast = jax.jit(lambda en, x: en.value_and_grad(x))(energy, x)
    np.testing.assert_allclose(u_fast, u, rtol=2e-5, atol=1e-3)
    np.testing.assert_allclose(g_fast, g, rtol=1e-5, atol=1e-5)
    if min(shape[1:]) >= 4:  # the checked public functions refuse lattices below 4×4
        np.testing.assert_allclose(g, phi4_grad(x, 0.27, 0.5), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(u, phi4_value_and_grad(x, 0.27, 0.5)[0], rtol=1e-5)
    eps = jnp.linspace(0.05, 0.2, shape[0]).reshape(-1, 1, 1)   # per-chain step
    kicked = jax.jit(lambda en, x, p: en.kick(x, p, eps))(energy, x, p)
    np.testing.assert_allclose(kicked, p - eps * g, rtol=1e-5, atol=1e-5)
    assert energy.fused_leapfrog(x) is not None


def test_kick_drift_leapfrog_equals_public_leapfrog():
    from phigen.energies import Energy

    energy = Phi4(0.25, 0.5)
    plain = Energy(value=energy.value, grad=energy.grad)  # the generic leapfrog, no fast path
    x = 0.8 * jax.random.normal(jax.random.key(0), (6, 8, 8))
    p = jax.random.normal(jax.random.key(1), x.shape)
    _, g = energy.value_and_grad(x)
    ref = jax.jit(leapfrog, static_argnums=(0, 5))(plain, x, p, g, 0.1, 7)
    fast = jax.jit(lambda en, x, p: en.fused_leapfrog(x)(x, p, 0.1, 7))(energy, x, p)
    for a, b in zip(ref, fast[:4]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(fast[4], p)


_SHARDED_CHILD = """
import json, jax, jax.numpy as jnp, numpy as np
from phigen.energies import Phi4
from phigen.samplers import hmc as H
from phigen.samplers import hmc_init, hmc_step, shard_chains
assert jax.device_count() == 2, jax.devices()
energy = Phi4(0.27, 0.5)
x0 = 0.5 * jax.random.normal(jax.random.key(2), (8, 16, 16))
step = jax.jit(lambda k, s: hmc_step(k, s, energy, step_size=0.1, n_leapfrog=5))
def run(state):
    acc = []
    for i in range(3):
        state, info = step(jax.random.key(i), state)
        acc.append(np.asarray(info.is_accepted))
    return np.asarray(state.position), np.asarray(acc)
one = run(hmc_init(x0, energy))
sharded_state = shard_chains(hmc_init(x0, energy))
two = run(sharded_state)
hlo = step.lower(jax.random.key(0), sharded_state).compile().as_text()
collectives = [c for c in ("all-gather", "all-to-all", "collective-permute", "all-reduce") if c in hlo]
print("REPORT" + json.dumps({"max_diff": float(np.abs(one[0] - two[0]).max()),
                             "same_accepts": bool((one[1] == two[1]).all()), "collectives": collectives}))
"""


def test_sharded_hmc_matches_one_device_without_communication(host_devices):
    report = host_devices(_SHARDED_CHILD, 2)
    assert report["same_accepts"], report
    assert report["max_diff"] < 1e-5, report
    assert report["collectives"] == [], report
