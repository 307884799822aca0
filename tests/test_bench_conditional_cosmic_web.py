"""benchmarks/conditional_cosmic_web.py: the reference it judges the model against — the training
simulations' own quadratic regression of the band power, and its standard error."""

from __future__ import annotations

import numpy as np


def test_regression_reference_is_exact_on_a_quadratic_and_its_error_is_calibrated(load_script):
    bench = load_script("benchmarks/conditional_cosmic_web.py")
    rng = np.random.default_rng(0)
    params = np.stack([rng.uniform(0.2, 0.4, 24), rng.uniform(0.6, 1.0, 24)], axis=1)  # a hypercube's span
    coef = np.array([1.0, -2.0, 3.0, 0.5, -1.5, 2.0])
    truth = lambda p: bench._quadratic(p) @ coef
    for at in ([0.3, 0.8], [0.37, 0.615]):  # the middle, a corner
        pred, se = bench.regression_reference(params, truth(params), np.array(at))
        np.testing.assert_allclose(pred, truth(np.array(at))[0], rtol=1e-10)
        assert se < 1e-8
    # with scatter σ per simulation, the prediction's error matches its stated s.e. (larger at a corner)
    sigma, errs, ses = 0.03, {0: [], 1: []}, {0: [], 1: []}
    for _ in range(2000):
        band = truth(params) + sigma * rng.normal(size=24)
        for i, at in enumerate(([0.3, 0.8], [0.39, 0.61])):
            pred, se = bench.regression_reference(params, band, np.array(at))
            errs[i].append(pred - truth(np.array(at))[0])
            ses[i].append(se)
    for i in (0, 1):
        rms, mean_se = np.sqrt(np.mean(np.square(errs[i]))), np.sqrt(np.mean(np.square(ses[i])))
        # 2000 draws: the RMS is known to ≈ 1.6 %; the s.e. from 18 degrees of freedom is unbiased in variance
        assert abs(rms / mean_se - 1) < 0.08, (i, rms, mean_se)
    assert np.mean(ses[1]) > 1.5 * np.mean(ses[0])
