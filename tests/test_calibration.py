"""The null's 5 % verdicts are calibrated: a perfect model (fresh fields from the truth's own
generator) is ``off`` on each distance about 5 % of the time, and small known biases are caught.

The default run holds a small twin (16² Gaussian fields, 60 repetitions); ``-m slow`` runs the full
calibration (400 repetitions of Gaussian fields and of lattice φ⁴ from the MCMC) and the power at the
quickstart's set sizes (m = 64 fields a side).
"""

import jax
import numpy as np
import pytest

from phigen.fields.gaussian import gaussian_field, power_law_spectrum
from phigen.stats.calibration import verdict_rates

K = jax.random.PRNGKey


def _gaussian(seed_stream: int, size: int, n: int, slope: float = 3.0):
    def draw(r):
        return np.asarray(gaussian_field(jax.random.fold_in(K(seed_stream), r), n, size, power_law_spectrum(slope)))
    return draw


def _binomial_window(rate: float, reps: int, z: float = 4.0) -> tuple[float, float]:
    se = np.sqrt(rate * (1 - rate) / reps)
    return rate - z * se, rate + z * se


def test_false_alarm_rate_small_twin():
    """60 repetitions, 16² fields, sets of 16: every distance's rate within 4 binomial standard errors
    of 5 % (0–16 %), and their average (about 600 verdicts) within 2–10 %."""
    reps = 60
    res = verdict_rates(_gaussian(101, 16, 32), _gaussian(202, 16, 16), reps=reps, n_splits=100)
    assert res["m"] == 16 and len(res["rates"]) >= 10
    lo, hi = _binomial_window(0.05, reps)
    for key, q in res["rates"].items():
        assert lo <= q <= hi, (key, q, res["rates"])
    assert 0.02 <= np.mean(list(res["rates"].values())) <= 0.10, res["rates"]


def test_verdict_rates_catch_a_gross_bias():
    """Power is real: a spectral slope off by 30 % is off on the P(k) χ² in every repetition."""
    res = verdict_rates(_gaussian(101, 16, 32), _gaussian(303, 16, 16, slope=3.9), reps=10, n_splits=50,
                        statistics=["power_spectrum"])
    assert res["rates"]["power_spectrum.chi2"] == 1.0 and res["any_off"] == 1.0


@pytest.mark.slow
def test_false_alarm_rate_gaussian_full():
    """400 repetitions of Gaussian 16² fields (truth 32, sets of 16): every distance in 2–10 %."""
    res = verdict_rates(_gaussian(11, 16, 32), _gaussian(12, 16, 16), reps=400, n_splits=200)
    print("gaussian false-alarm rates", res)
    for key, q in res["rates"].items():
        assert 0.02 <= q <= 0.10, (key, q, res["rates"])


@pytest.fixture(scope="module")
def phi4_pool():
    """4096 decorrelated φ⁴ configurations of 8² (κ = 0.3, λ = 1: ordered side of the crossover at this
    size, strongly non-Gaussian), thinned by the measured τ_int."""
    from phigen.fields.phi4 import Phi4SamplerConfig, sample_phi4

    cfg = Phi4SamplerConfig(n_chains=256, n_warmup=100, n_burn=100, n_pilot=200)
    x, _ = sample_phi4(K(7), 4096, 8, 0.3, 1.0, cfg, progress=False)
    return np.asarray(x, np.float32)


@pytest.mark.slow
def test_false_alarm_rate_phi4_full(phi4_pool):
    """400 repetitions drawing disjoint truth (32) and model (16) sets from the MCMC pool: every
    distance in 2–10 %."""
    pool = phi4_pool

    def split(r):
        idx = np.random.default_rng(r).permutation(len(pool))[:48]
        return pool[idx[:32]], pool[idx[32:]]

    res = verdict_rates(lambda r: split(r)[0], lambda r: split(r)[1], reps=400, n_splits=200)
    print("phi4 false-alarm rates", res)
    for key, q in res["rates"].items():
        assert 0.02 <= q <= 0.10, (key, q, res["rates"])


def _skewed(draw, eps):
    def skew(r):
        x = draw(r)
        s = x.std()
        z = x / s
        return (s * (z + eps * (z * z - 1.0))).astype(np.float32)
    return skew


@pytest.mark.slow
@pytest.mark.parametrize("bias, distance", [
    ("slope", "power_spectrum.chi2"),
    ("std", "power_spectrum.chi2"),
    ("skewness", "minkowski.chi2"),
])
def test_power_at_quickstart_set_sizes(bias, distance):
    """m = 64 fields a side (the quickstart's held-out 128), 32² Gaussian fields of slope 3: a slope
    3 % steeper, a pixel std × 1.03, or a skewness of about 0.24 the truth lacks is off with power ≥ 80 %."""
    truth = _gaussian(21, 32, 128)
    model = {"slope": _gaussian(22, 32, 128, slope=3.09),
             "std": lambda r: 1.03 * _gaussian(22, 32, 128)(r),
             "skewness": _skewed(_gaussian(22, 32, 128), 0.04)}[bias]
    res = verdict_rates(truth, model, reps=50, n_splits=200)
    print(f"power, {bias}", res)
    assert res["m"] == 64
    assert res["rates"][distance] >= 0.8, res["rates"]
