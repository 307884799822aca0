"""Peak counts (phigen.stats.peaks) and their registration for cosmic-web fields."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from phigen import stats
from phigen.errors import InputError, ParameterError
from phigen.fields.gaussian import gaussian_field, power_law_spectrum
from phigen.stats import default_statistics, gaussian_peak_density, lattice_peak_density, peak_counts, peak_mask
from phigen.stats._binning import wavenumber_grid
from phigen.stats.registry import get_statistic


def _hand_made() -> np.ndarray:
    """8×8 zeros with: peaks 2.5 at (2, 5) (its diagonal neighbour 2.0 at (3, 4) is then no peak),
    0.7 at (5, 6), and 3.0 at (7, 0), which hides 1.0 at (0, 0) across the periodic edge; a plateau
    of two 1.5s (no strict maximum) and a dip of −0.5 at (1, 6)."""
    x = np.zeros((8, 8), np.float32)
    x[2, 5], x[3, 4], x[5, 6] = 2.5, 2.0, 0.7
    x[7, 0], x[0, 0] = 3.0, 1.0
    x[5, 1] = x[5, 2] = 1.5
    x[1, 6] = -0.5
    return x


def test_peak_counts_hand_made_field():
    x = _hand_made()
    edges = [-np.inf, 0.0, 1.0, 2.75, np.inf]
    pc = peak_counts(np.stack([x, -x]), edges, mean=0.0, std=1.0)
    assert pc.counts.dtype == np.int32 and pc.area == 64
    # x: 0.7, 2.5 and the wrap-around 3.0; −x: only the dip (0.5); flat zeros and plateaus are no peaks
    np.testing.assert_array_equal(np.asarray(pc.counts), [[0, 1, 1, 1], [0, 1, 0, 0]])
    # ν = (u − μ)/σ with the given μ, σ; a height on an edge belongs to the bin above it: ν(3.0) = 1
    pc = peak_counts(jax.numpy.asarray(x), edges, mean=1.0, std=2.0)
    np.testing.assert_array_equal(np.asarray(pc.counts), [[1, 1, 1, 0]])
    # default μ, σ: pooled over every pixel of the batch
    pc = peak_counts(np.stack([x, 2 * x]), edges)
    both = np.stack([x, 2 * x]).astype(np.float64)
    assert pc.mean == pytest.approx(both.mean(), rel=1e-5) and pc.std == pytest.approx(both.std(), rel=1e-5)
    # the same pattern anywhere on the torus: shifts move the peaks, never change their number
    for shift in ((3, 5), (-1, 2)):
        np.testing.assert_array_equal(np.asarray(peak_counts(np.roll(x, shift, (0, 1)), edges, mean=0, std=1).counts),
                                      [[0, 1, 1, 1]])


def test_peak_mask_hand_made_field():
    x = _hand_made()
    mask = np.asarray(peak_mask(np.stack([x, -x])))
    assert mask.shape == (2, 8, 8) and mask.dtype == bool
    # x: 2.5, 0.7 and the wrap-around 3.0 (not 1.0 at (0, 0), not the plateau); −x: the dip only
    assert sorted(zip(*np.nonzero(mask[0]))) == [(2, 5), (5, 6), (7, 0)]
    assert sorted(zip(*np.nonzero(mask[1]))) == [(1, 6)]
    with pytest.raises(InputError, match="3"):
        peak_mask(x[:2])
    y = x.copy()
    y[4, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        peak_mask(y)


def test_peak_counts_bad_input():
    x = np.random.default_rng(0).standard_normal((2, 8, 8)).astype(np.float32)
    edges = [0.0, 1.0, 2.0]
    for bad in (x[None], x[0, 0]):                     # (1, N, H, W) and (W,)
        with pytest.raises(InputError, match="fields"):
            peak_counts(bad, edges)
    y = x.copy()
    y[1, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        peak_counts(y, edges)
    with pytest.raises(InputError, match="3×3"):
        peak_counts(x[:, :2, :], edges)
    for bad_edges in ([0.0, 2.0, 1.0], [0.0, 0.0, 1.0], [0.0, np.nan, 1.0], [1.0], [[0.0, 1.0]]):
        with pytest.raises(ParameterError, match="thresholds"):
            peak_counts(x, bad_edges)
    with pytest.raises(ParameterError, match="std"):
        peak_counts(np.ones((2, 8, 8)), edges)          # constant fields: no σ to measure heights in
    with pytest.raises(ParameterError, match="smoothing"):
        peak_counts(x, edges, smoothing=-1.0)


def _correlation(spectrum, size: int) -> np.ndarray:
    """Lattice correlation C(r) = (1/V) Σ_k P(k) e^{ik·r} of gaussian_field's fields with ``spectrum``."""
    return np.real(np.fft.ifft2(spectrum(wavenumber_grid((size, size)))))


def test_peak_density_of_gaussian_fields_against_closed_forms():
    """256 fields of 64², P(k) ∝ e^{−k²ℓ²} with ℓ = 3 pixels (σ₂²/σ₁² = 2/ℓ²: ~21 peaks per field).

    Continuum (BBKS): n = σ₂²/(8√3 π σ₁²) with σⱼ² = (1/V) Σ_k k^{2j} P(k). The lattice finds fewer
    8-neighbour maxima than the continuum has maxima; the exact lattice expectation (an orthant
    probability) is 1.5 % low at ℓ = 3, so the continuum check allows 3 % on top of 4 standard errors,
    and the lattice check only 4 standard errors (plus the integration's 1e-3)."""
    size, ell = 64, 3.0
    spectrum = power_law_spectrum(0.0, k_cut=1.0 / ell)           # e^{−k²ℓ²}, P(0) = 0
    x = gaussian_field(jax.random.key(7), 256, size, spectrum)
    n = np.asarray(peak_counts(x, [-np.inf, np.inf]).counts)[:, 0] / size**2
    mean, se = n.mean(), n.std(ddof=1) / np.sqrt(n.size)
    k = wavenumber_grid((size, size))
    p = spectrum(k)
    continuum = gaussian_peak_density(np.sqrt(np.sum(k**2 * p)), np.sqrt(np.sum(k**4 * p)))
    assert continuum == pytest.approx(1.0 / (4.0 * np.sqrt(3.0) * np.pi * ell**2), rel=1e-6)  # 2/ℓ² in the formula
    lattice = lattice_peak_density(_correlation(spectrum, size))
    print(f"\npeak density: measured {mean:.6f} ± {se:.6f}, lattice {lattice:.6f}, continuum {continuum:.6f}")
    assert abs(mean - lattice) < 4.0 * se + 1e-3 * lattice
    assert 0.97 < lattice / continuum < 1.0
    assert abs(mean - continuum) < 4.0 * se + 0.03 * continuum
    assert se < 0.01 * mean                                        # the checks above have teeth


def test_peak_density_white_and_smoothed_noise():
    """White noise: a pixel is the largest of 9 i.i.d. values with probability exactly 1/9.
    Smoothing s = 1.5 pixels makes the correlation IFFT(e^{−k²s²}): its exact lattice density."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 64, 64)).astype(np.float32)
    edges = [-np.inf, -1.0, 0.0, 1.0, np.inf]
    for smoothing in (0.0, 1.5):
        pc = peak_counts(x, edges, smoothing=smoothing)
        n = np.asarray(pc.counts).sum(axis=1) / pc.area
        mean, se = n.mean(), n.std(ddof=1) / np.sqrt(n.size)
        corr = _correlation(lambda k: np.exp(-(k * smoothing) ** 2), 64)
        exact = lattice_peak_density(corr)
        if smoothing == 0.0:
            assert exact == pytest.approx(1.0 / 9.0, rel=1e-4)
        assert abs(mean - exact) < 4.0 * se + 1e-3 * exact, (smoothing, mean, se, exact)
    # heights in the smoothed fields' own σ: a smoothed Gaussian field has few peaks below −1σ
    assert np.asarray(pc.counts)[:, 0].sum() < 0.05 * np.asarray(pc.counts).sum()
    with pytest.raises(ParameterError):
        lattice_peak_density(np.ones((8, 8)))           # constant correlation: no differences at all


def _skewed(key, n: int, f: float) -> np.ndarray:
    """Cosmic-web-like maps: a standardised Gaussian field g (P ∝ k⁻³ e^{−k²}) plus f(g² − 1),
    positively skewed like log(1 + δ)."""
    g = np.asarray(gaussian_field(key, n, 32, power_law_spectrum(3.0, k_cut=1.0)), dtype=np.float64)
    g /= g.std()
    return (g + f * (g * g - 1.0)).astype(np.float32)


def test_peak_counts_registered_for_cosmic_web_and_judged_against_the_null():
    assert "peak_counts" in default_statistics("cosmic-web") and "peak_counts" in default_statistics("cosmic_web")
    assert "peak_counts" not in default_statistics("turbulence") and "peak_counts" not in default_statistics()
    assert "peak_counts" not in stats.STATISTICS                  # the every-field default set is unchanged
    stat = get_statistic("peak_counts")
    assert [d.name for d in stat.distances if d.table] == ["chi2"]

    truth = _skewed(jax.random.key(30), 64, 0.3)
    wrong = _skewed(jax.random.key(32), 32, 0.0)                  # Gaussian, same pixel std
    wrong *= truth.std() / wrong.std()
    res = stats.compare(wrong, truth, seed=0, n_splits=100, statistics=["peak_counts"])
    json.dumps(res, allow_nan=False)                              # ±∞ bin edges are written as null
    d = res["peak_counts"]["distances"]["chi2"]
    assert {"model", "null_mean", "null_p95", "p_value", "verdict"} <= set(d)
    assert len(res["null"]["peak_counts.chi2"]) == 100
    assert d["null_mean"] <= d["null_p95"] and d["model"] > d["null_p95"] and d["verdict"] == "off", d
    # the summary: per-bin density per pixel² (mean, standard error) in the truth's ν units
    summ = res["peak_counts"]["truth"]
    assert summ["edges"][0] is None and summ["edges"][-1] is None
    assert summ["nu_mean"] == pytest.approx(truth.mean(dtype=np.float64), abs=1e-6)
    assert summ["nu_std"] == pytest.approx(truth.std(dtype=np.float64), rel=1e-6)
    direct = np.asarray(peak_counts(truth, summ["edges"][1:-1], mean=summ["nu_mean"], std=summ["nu_std"]).counts)
    inner = np.asarray(summ["mean"][1:-1]) * 32 * 32             # the finite bins, back in peaks per field
    np.testing.assert_allclose(inner, direct.mean(axis=0), rtol=1e-9)
    assert summ["total_mean"] == pytest.approx(sum(summ["mean"])) and summ["total_error"] > 0
    assert all(e > 0 for e in summ["error"])


def test_peak_counts_figure():
    truth = _skewed(jax.random.key(40), 24, 0.3)
    model = _skewed(jax.random.key(41), 24, 0.0)
    (name, draw), = get_statistic("peak_counts").figures
    assert name == "peak_counts"
    fig = draw({"truth": truth, "model": model}, "truth")
    assert len(fig.axes) == 2 and "ratio" in fig.axes[1].get_ylabel()
    assert fig.axes[0].get_yscale() == "log"
    assert len(draw({"a": truth, "b": model}, None).axes) == 1   # no truth: no residual panel
