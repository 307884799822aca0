"""Statistics suite against closed forms, brute force and scipy; compare() against its null."""

import json

import jax
import numpy as np
import pytest
import scipy.stats

from phigen import stats
from phigen.errors import InputError, ParameterError
from phigen.fields.gaussian import gaussian_field, power_law_spectrum

L = 64
N = 64


def smooth_spectrum(k):
    return np.exp(-((k / 0.8) ** 2))


@pytest.fixture(scope="module")
def smooth_fields():
    """64 Gaussian fields 64² with P(k) = exp(-(k/0.8)²) (float32)."""
    return np.asarray(gaussian_field(jax.random.key(7), N, L, smooth_spectrum))


def _se(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows.std(axis=0, ddof=1) / np.sqrt(rows.shape[0])


# --- power spectrum ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, {"n_bins": 10}, {"log_bins": True}])
def test_parseval_to_float_precision(kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 48, 64)).astype(np.float32) * 2.0 + 0.7  # non-zero mean, non-square
    ps = stats.power_spectrum(x, **kwargs)
    v = 48 * 64
    assert ps.counts.sum() == v - 1  # every mode except k = 0 is in exactly one bin
    p0 = v * x.astype(np.float64).mean(axis=(1, 2)) ** 2  # the k = 0 power, left out of the bins
    lhs = (np.asarray(ps.power, dtype=np.float64) * ps.counts).sum(axis=1) / v + p0 / v
    rhs = (x.astype(np.float64) ** 2).mean(axis=(1, 2))
    rel = np.max(np.abs(lhs - rhs) / rhs)
    assert rel < 2e-6, rel  # float32 FFT rounding


@pytest.mark.parametrize("m,n", [(5, 0), (3, 4)])
def test_cosine_gives_one_peak_with_the_right_amplitude(m, n):
    amp = 1.7
    iy, ix = np.indices((L, L))
    x = amp * np.cos(2 * np.pi * (m * ix + n * iy) / L)
    ps = stats.power_spectrum(x)
    power = np.asarray(ps.power[0], dtype=np.float64)
    peak = int(np.argmax(power))
    k_true = 2 * np.pi * np.hypot(m, n) / L
    assert abs(ps.k[peak] - k_true) < 0.5 * 2 * np.pi / L
    # two modes ±k carry |x̂|²/V = (amp·V/2)²/V each
    assert power[peak] * ps.counts[peak] == pytest.approx(2 * (amp * L * L / 2) ** 2 / (L * L), rel=1e-5)
    others = np.delete(power, peak)
    assert np.max(others) < 1e-6 * power[peak]


def test_box_size_physical_units():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 32, 32)).astype(np.float32)
    box = 100.0
    a = box / 32
    ps = stats.power_spectrum(x)
    phys = stats.power_spectrum(x, box_size=box)
    np.testing.assert_allclose(phys.k, ps.k / a)
    np.testing.assert_allclose(np.asarray(phys.power), np.asarray(ps.power) * a**2, rtol=1e-6)
    # σ² = ∫ d²k/(2π)² P_phys, the integral as a sum over modes with cell (2π/box)²
    var = (np.asarray(phys.power, dtype=np.float64) * phys.counts).sum(axis=1) / box**2
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(1, 2)), rtol=1e-4)
    with pytest.raises(ParameterError):
        stats.power_spectrum(rng.standard_normal((32, 48)), box_size=1.0)
    ok = stats.power_spectrum(rng.standard_normal((32, 48)), box_size=(2.0, 3.0))
    assert ok.power.shape[0] == 1


def test_power_spectrum_2d_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 16, 20))
    ref = np.abs(np.fft.fft2(x)) ** 2 / (16 * 20)
    np.testing.assert_allclose(np.asarray(stats.power_spectrum_2d(x)), ref, rtol=1e-4, atol=1e-5)


# --- PDF and its distances ----------------------------------------------------------------------
def test_wasserstein_and_ks_basic():
    rng = np.random.default_rng(3)
    a = rng.standard_normal(5000)
    assert stats.wasserstein1(a, a) == 0.0
    assert stats.ks_distance(a, a) == 0.0
    assert stats.wasserstein1(a, a + 0.3) == pytest.approx(0.3, rel=1e-9)  # exact for a shift
    b = rng.standard_normal(7000) + 0.3  # independent draws: W1 ≈ δ up to O(1/sqrt(n))
    assert abs(stats.wasserstein1(a, b) - 0.3) < 0.05
    assert stats.wasserstein1(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_ks_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 10, 10))
    b = np.round(rng.standard_normal(333) * 1.2 + 0.1, 1)  # ties and a different size
    assert stats.ks_distance(a, b) == pytest.approx(scipy.stats.ks_2samp(a.ravel(), b).statistic, abs=1e-12)


def test_pixel_pdf_and_moments():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 64, 64)).astype(np.float32)
    centers, dens = stats.pixel_pdf(x, bins=40, range=(-4, 4))
    ref, edges = np.histogram(x, bins=40, range=(-4, 4), density=True)
    np.testing.assert_allclose(np.asarray(dens), ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(centers, 0.5 * (edges[1:] + edges[:-1]))
    _, per = stats.pixel_pdf(x, bins=40, per_field=True)
    assert per.shape == (8, 40)
    np.testing.assert_allclose(np.asarray(per).sum(axis=1) * (np.ptp(x) / 40), 1.0, rtol=1e-4)
    y = np.exp(x)  # lognormal: strongly skewed
    m = stats.moments(y)
    flat = y.reshape(8, -1).astype(np.float64)
    np.testing.assert_allclose(np.asarray(m.mean), flat.mean(1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(m.std), flat.std(1), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(m.skewness), scipy.stats.skew(flat, axis=1), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(m.kurtosis), scipy.stats.kurtosis(flat, axis=1), rtol=1e-3)


# --- bispectrum ---------------------------------------------------------------------------------
def _brute_force_bispectrum(x, k1, k2, k3, width):
    """Triangle average of Re(x̂(q1) x̂(q2) x̂(q3))/V over q1 + q2 + q3 ≡ 0 (mod the grid)."""
    h, w = x.shape
    xh = np.fft.fft2(x)
    kmag = np.hypot(2 * np.pi * np.fft.fftfreq(h)[:, None], 2 * np.pi * np.fft.fftfreq(w)[None, :])

    def shell(k):
        return np.argwhere((kmag >= k - width / 2) & (kmag < k + width / 2))

    s3 = set(map(tuple, shell(k3)))
    total, count = 0.0, 0
    for a in shell(k1):
        for b in shell(k2):
            c = ((-a[0] - b[0]) % h, (-a[1] - b[1]) % w)
            if c in s3:
                total += (xh[tuple(a)] * xh[tuple(b)] * xh[c]).real
                count += 1
    return total / count / (h * w), count


def test_bispectrum_equals_brute_force_triangle_sum():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 14)) + 0.3 * rng.standard_normal((12, 14)) ** 2
    width = 2 * np.pi / 12
    tri = (0.9, 1.3, 1.7)
    est = stats.bispectrum_estimate(x, *tri, width=width)
    ref, count = _brute_force_bispectrum(x, *tri, width)
    assert est.n_triangles[0] == count
    assert float(est.bispectrum[0, 0]) == pytest.approx(ref, rel=1e-4)


def test_bispectrum_of_gaussian_fields_is_zero(smooth_fields):
    ks = np.array([0.4, 0.7, 1.0])
    b = np.asarray(stats.bispectrum_equilateral(smooth_fields, ks, width=0.2), dtype=np.float64)
    z = b.mean(axis=0) / _se(b)
    assert np.max(np.abs(z)) < 4.0, z
    sq = np.asarray(stats.bispectrum_squeezed(smooth_fields, 0.3, ks, width=0.2), dtype=np.float64)
    assert np.max(np.abs(sq.mean(axis=0) / _se(sq))) < 4.0


def test_local_fnl_bispectrum_sign_and_linear_scaling(smooth_fields):
    g = smooth_fields.astype(np.float64)
    g = g / g.std()
    ks = np.array([0.4, 0.7, 1.0])

    def est(f):
        y = (g + f * (g * g - 1.0)).astype(np.float32)
        return stats.bispectrum_estimate(y, ks, ks, ks, width=0.2)

    for f in (0.3, -0.3):  # about 6 standard errors from zero on each triangle
        b = np.asarray(est(f).bispectrum, dtype=np.float64)
        assert np.all(np.sign(b.mean(axis=0)) == np.sign(f)), b.mean(axis=0) / _se(b)
    # the part odd in f_NL: the Gaussian term and the O(f²) terms cancel, leaving
    # B(f) − B(−f) = 2f B₁ + O(f³): doubling f doubles it (same g, so almost noise-free)
    e = {f: est(f) for f in (0.05, -0.05, 0.1, -0.1)}
    odd1 = np.asarray(e[0.05].bispectrum - e[-0.05].bispectrum, dtype=np.float64).mean(axis=0)
    odd2 = np.asarray(e[0.1].bispectrum - e[-0.1].bispectrum, dtype=np.float64).mean(axis=0)
    np.testing.assert_allclose(odd2 / odd1, 2.0, rtol=0.05)
    # tree level of the local model: Q = 2 f_NL
    q_odd = np.asarray(e[0.05].reduced - e[-0.05].reduced, dtype=np.float64) / 2.0
    z = (q_odd.mean(axis=0) - 2 * 0.05) / _se(q_odd)
    assert np.max(np.abs(z)) < 4.0, z


def test_bispectrum_errors():
    x = np.random.default_rng(0).standard_normal((2, 16, 16))
    with pytest.raises(ParameterError):
        stats.bispectrum(x, 0.5, 0.5, 2.5)  # cannot close
    with pytest.raises(ParameterError):
        stats.bispectrum(x, -0.5, 0.5, 0.5)


# --- Minkowski functionals ----------------------------------------------------------------------
def _spectral_sigmas(spectrum, size):
    """σ0, σ1 of a Gaussian field from its spectrum, with the estimator's spectral derivative."""
    k1d = 2 * np.pi * np.fft.fftfreq(size)
    p = spectrum(np.hypot(k1d[:, None], k1d[None, :]))
    kd = np.where(np.abs(k1d) == np.pi, 0.0, k1d)  # no derivative of the Nyquist mode
    v = size * size
    return np.sqrt(p.sum() / v), np.sqrt(((kd[:, None] ** 2 + kd[None, :] ** 2) * p).sum() / v)


def test_minkowski_gaussian_closed_forms(smooth_fields):
    nu = np.linspace(-2.0, 2.0, 17)
    delta = 0.2
    s0, s1 = _spectral_sigmas(smooth_spectrum, L)
    # exact thresholds in field units (no standardisation bias): the estimator's expectation is
    # the closed form averaged over the box of width Δ
    mf = stats.minkowski_functionals(smooth_fields, nu * s0, standardize=False, delta_width=delta * s0)
    ref = stats.gaussian_minkowski(nu, s0, s1, delta_width=delta)
    assert mf.v0.shape == (N, nu.size)
    for name in ("v0", "v1", "v2"):
        est = np.asarray(getattr(mf, name), dtype=np.float64)
        z = (est.mean(axis=0) - getattr(ref, name)) / _se(est)
        assert np.max(np.abs(z)) < 4.0, (name, np.round(z, 2))
    # measured σ's agree with the spectrum's
    m0, m1 = stats.minkowski_sigmas(smooth_fields, standardize=False)
    assert m0 == pytest.approx(s0, rel=0.03) and m1 == pytest.approx(s1, rel=0.03)


def test_minkowski_standardized_and_central(smooth_fields):
    nu = np.linspace(-2.0, 2.0, 9)
    for derivative in ("spectral", "central"):
        mf = stats.minkowski_functionals(smooth_fields, nu, derivative=derivative)
        s0, s1 = stats.minkowski_sigmas(smooth_fields, derivative=derivative)
        ref = stats.gaussian_minkowski(nu, s0, s1, delta_width=0.2)
        # V1 is exact with either derivative (u and ∇u independent, ∇u isotropic); V2 with central
        # differences has an O(k²) lattice error, so it is only checked for the spectral one
        names = ("v0", "v1", "v2") if derivative == "spectral" else ("v0", "v1")
        for name in names:
            est = np.asarray(getattr(mf, name), dtype=np.float64)
            z = (est.mean(axis=0) - getattr(ref, name)) / _se(est)
            assert np.max(np.abs(z)) < 4.5, (derivative, name, np.round(z, 2))


def test_minkowski_topology_of_a_blob_lattice():
    # u = cos x + cos y: for 0 < ν < 2 one disc per period (χ = 1), for −2 < ν < 0 the torus
    # minus one disc per period (χ = −1); V0 is the area fraction.
    size = 128
    s = 2 * np.pi * np.arange(size) / size
    u = (np.cos(s)[None, :] + np.cos(s)[:, None]).astype(np.float32)
    nu = np.array([-1.0, -0.5, 0.5, 1.0])
    mf = stats.minkowski_functionals(u, nu, standardize=False, delta_width=0.4)
    np.testing.assert_allclose(np.asarray(mf.v2[0]) * size**2, [-1, -1, 1, 1], rtol=0.03)
    np.testing.assert_allclose(np.asarray(mf.v0[0]), (u[None] > nu[:, None, None]).mean(axis=(1, 2)))
    # oblique stripes u = cos(2π (m x + n y) / L): two straight boundaries per wavelength, so a
    # boundary length 2√(m²+n²)/L per unit area, χ = 0. A plane wave is sampled at only L phases,
    # so the band |u − ν| < Δ/2 must be wide to hold many of them (the length is the same for
    # every |ν| < 1, so the box average is exact)
    m, n = 1, 2
    iy, ix = np.indices((size, size))
    stripes = np.cos(2 * np.pi * (m * ix + n * iy) / size).astype(np.float32)
    nu = np.array([-0.3, 0.0, 0.3])
    mf = stats.minkowski_functionals(stripes, nu, standardize=False, delta_width=0.8)
    np.testing.assert_allclose(np.asarray(mf.v1[0]), np.hypot(m, n) / (2.0 * size), rtol=0.025)
    np.testing.assert_allclose(np.asarray(mf.v2[0]), 0.0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(mf.v0[0]), np.arccos(nu) / np.pi, atol=2.0 / size)


# --- structure functions and two-point function -------------------------------------------------
def test_structure_functions_of_gaussian_fields(smooth_fields):
    sf = stats.structure_functions(smooth_fields, separations=[1, 2, 4, 8], orders=(2, 4))
    assert sf.values.shape == (N, 2, 4)
    # closed form: S2(r) = 2 (C(0) − C(r)), C(r e_x) = (1/V) Σ_k P(k) cos(k_x r)
    k1d = 2 * np.pi * np.fft.fftfreq(L)
    p = smooth_spectrum(np.hypot(k1d[:, None], k1d[None, :]))
    c = lambda r: (p * np.cos(k1d[None, :] * r)).sum() / L**2  # noqa: E731 (isotropic: same along y)
    s2_exact = np.array([2 * (c(0) - c(r)) for r in sf.r])
    s2 = np.asarray(sf.values[:, 0], dtype=np.float64)
    assert np.max(np.abs((s2.mean(axis=0) - s2_exact) / _se(s2))) < 4.0
    # Gaussian increments: S4 = 3 S2² exactly in expectation
    s4 = np.asarray(sf.values[:, 1], dtype=np.float64)
    assert np.max(np.abs((s4.mean(axis=0) - 3 * s2_exact**2) / _se(s4))) < 4.0
    r, f = stats.flatness(smooth_fields, separations=[1, 2, 4, 8])
    assert f.shape == (N, 4) and np.all(np.abs(np.asarray(f).mean(axis=0) - 3.0) < 0.3)


def test_structure_function_of_a_cosine_is_exact():
    s = np.arange(32)
    x = np.broadcast_to(2.0 * np.cos(2 * np.pi * 3 * s / 32)[None, :], (32, 32))
    sf = stats.structure_functions(x, orders=(2,))
    # along x: <(cos(a+b) − cos a)²> = 1 − cos b, times amp²; along y: 0; then the axis average
    exact = 0.5 * 4.0 * (1 - np.cos(2 * np.pi * 3 * sf.r / 32))
    np.testing.assert_allclose(np.asarray(sf.values[0, 0]), exact, rtol=2e-5, atol=1e-5)


def test_two_point_function(smooth_fields):
    x = smooth_fields[:8]
    tp = stats.two_point_function(x)
    xc = x - x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(np.asarray(tp.c[:, 0]), xc.var(axis=(1, 2)), rtol=1e-4)
    # the unit shell around r = 1 holds the 4 displacements at distance 1 and the 4 at √2
    assert tp.r[0] == 0 and tp.counts[0] == 1 and tp.counts[1] == 8
    assert tp.r[1] == pytest.approx((1 + np.sqrt(2)) / 2)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    direct = np.mean([(xc * np.roll(xc, sh, axis=(1, 2))).mean(axis=(1, 2)) for sh in shifts], axis=0)
    np.testing.assert_allclose(np.asarray(tp.c[:, 1]), direct, rtol=1e-4, atol=1e-7)
    coarse = stats.two_point_function(x, n_bins=5)
    assert coarse.c.shape == (8, 5) and coarse.counts.sum() == tp.counts.sum()


# --- compare ------------------------------------------------------------------------------------
def _local_model(key, n, slope, f):
    g = np.asarray(gaussian_field(key, n, 32, power_law_spectrum(slope, k_cut=1.0)), dtype=np.float64)
    g /= g.std()
    return (g + f * (g * g - 1.0)).astype(np.float32)


def test_compare_null_below_wrong_ensemble():
    truth = _local_model(jax.random.key(20), 64, 3.0, 0.3)
    good = _local_model(jax.random.key(21), 32, 3.0, 0.3)
    wrong = _local_model(jax.random.key(22), 32, 2.0, 0.0)  # wrong slope and Gaussian
    wrong *= truth.std() / wrong.std()
    res_wrong = stats.compare(wrong, truth, seed=1, n_splits=100)
    res_good = stats.compare(good, truth, seed=1, n_splits=100)
    text = json.dumps(res_wrong, allow_nan=False)  # raises on NaN/inf or non-JSON types
    assert json.loads(text) == res_wrong
    json.dumps(res_good, allow_nan=False)
    assert res_wrong["meta"]["m"] == 32 and res_wrong["meta"]["n_splits"] == 100
    for name in stats.STATISTICS:
        entry = res_wrong[name]
        assert set(entry) == {"samples", "truth", "distances"}
        for dname, d in entry["distances"].items():
            assert d["null_mean"] <= d["null_p95"] and 0 < d["p_value"] <= 1
            assert len(res_wrong["null"][f"{name}.{dname}"]) == 100
            if dname == "corr_rms":   # both are Gaussian-like in their spectra's correlations
                continue
            # beyond every null split: the smallest p-value 100 splits can give
            assert d["model"] > d["null_p95"] and d["verdict"] == "off" and d["p_value"] == 1 / 101, (name, dname, d)
    assert res_wrong["verdict"]["n_off"] >= res_wrong["verdict"]["n_distances"] - 1
    # a model drawn from the truth's own law: the χ² (per degree of freedom) is ≈ 1 on both sides
    ps = res_good["power_spectrum"]["distances"]["chi2"]
    assert ps["model"] < 3.0 and 0.5 < ps["null_mean"] < 1.5
    with pytest.raises(ParameterError):
        stats.compare(good, truth, n_splits=5)   # too few splits to resolve a 95th percentile


def test_null_is_the_model_distance_on_truth_halves():
    """The null's values are exactly the model's distance function applied to two truth halves: judging
    a 'model' made of the truth fields of split r's A against the null gives that split's null value."""
    from phigen.stats.registry import pooled_chi2

    truth = _local_model(jax.random.key(30), 40, 3.0, 0.3)
    ref = stats.null_reference(truth, n_splits=20, seed=2, statistics=["power_spectrum"])
    assert ref.m == 20
    for r, (a, b) in enumerate(ref.splits[:3]):
        assert not set(a) & set(b)
        p = ref.rows["power_spectrum"]["power"]
        direct = pooled_chi2(p[a][None], p[b][None], log=True)[0]
        assert np.isclose(ref.null["power_spectrum"]["chi2"][r], direct, rtol=1e-12)
    # with groups, no group lies on both sides of any split
    groups = np.repeat(np.arange(10), 4)
    ref = stats.null_reference(truth, groups=groups, n_splits=20, seed=2, statistics=["power_spectrum"])
    assert ref.m == (40 - 4 + 1) // 2
    for a, b in ref.splits:
        assert len(a) == len(b) == ref.m and not set(groups[a]) & set(groups[b])


def test_null_sees_a_duplicated_truth():
    """A truth made of duplicated heavy-tailed fields, each copy pair one group (as a generator records
    the fields of one simulation): the null's χ² distances come out ≈ 2, the effective number of
    fields being half the count, where 64 distinct fields in the same pairs give ≈ 1. (The former floor,
    scaled by the spread of all truth fields and averaged over overlapping halves, was 1.00 for both.)"""
    rng = np.random.default_rng(3)

    def heavy(n):
        return (rng.standard_t(5, size=(n, 16, 16)) * np.exp(0.5 * rng.normal(size=(n, 1, 1)))).astype(np.float32)

    base = heavy(32)
    pairs = np.repeat(np.arange(32), 2)
    dup = np.repeat(base, 2, axis=0)
    names = ["power_spectrum", "minkowski", "bispectrum"]
    res_dup = stats.compare(dup, dup, seed=0, n_splits=100, statistics=names, truth_groups=pairs)
    res_ind = stats.compare(dup, heavy(64), seed=0, n_splits=100, statistics=names, truth_groups=pairs)
    for name in names:
        for dname, d in res_dup[name]["distances"].items():
            if "chi2" in dname:
                ind = res_ind[name]["distances"][dname]["null_mean"]
                assert d["null_mean"] > 1.5 and 0.6 < ind < 1.4 and d["null_mean"] > 1.5 * ind, (name, dname, d, ind)


def test_statistics_summary_and_subsets():
    x = _local_model(jax.random.key(0), 6, 2.0, 0.0)
    summary = stats.statistics_summary(x, statistics=["power_spectrum", "minkowski"])
    assert set(summary) == {"power_spectrum", "minkowski"}
    json.dumps(summary, allow_nan=False)
    assert len(summary["power_spectrum"]["mean"]) == len(summary["power_spectrum"]["k"])
    with pytest.raises(ParameterError):
        stats.compare(x, x, statistics=["nope"])
    with pytest.raises(InputError):
        stats.compare(x, x[:, :16, :16])
    with pytest.raises(InputError):
        stats.compare(x, x[:3])   # two sets of 2 fields need 4


# --- bad input ----------------------------------------------------------------------------------
BATCH_FUNCTIONS = [
    stats.power_spectrum,
    stats.power_spectrum_2d,
    stats.moments,
    stats.pixel_pdf,
    lambda x: stats.bispectrum_equilateral(x, [1.0]),
    lambda x: stats.minkowski_functionals(x, [0.0]),
    stats.structure_functions,
    stats.flatness,
    stats.two_point_function,
    stats.statistics_summary,
]


@pytest.mark.parametrize("fn", BATCH_FUNCTIONS)
def test_bad_input_raises_input_error(fn):
    bad = np.ones((2, 16, 16))
    bad[1, 3, 4] = np.nan
    with pytest.raises(InputError):
        fn(bad)
    with pytest.raises(InputError):
        fn(np.ones(16))


def test_distances_reject_nan():
    with pytest.raises(InputError):
        stats.wasserstein1([1.0, np.nan], [1.0])
    with pytest.raises(InputError):
        stats.ks_distance([], [1.0])
