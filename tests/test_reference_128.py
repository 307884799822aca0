"""The shipped 128² reference sets (data/turbulence_128.h5, data/cosmic_web_128.h5): they validate,
have the shapes and groups their cards state, split without cutting a group, and the key numbers of
their cards in data/README.md are recomputed from the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

import phigen.io as pio
from phigen.checks import energy_spectrum, spectral_slope, turbulence_checks
from phigen.splits import groups_on_both_sides

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TURB = DATA / "turbulence_128.h5"
COSMO = DATA / "cosmic_web_128.h5"

# the card numbers (data/README.md)
TURB_N, TURB_RUNS, TURB_PER_RUN = 200, 25, 8
TURB_K_RANGE = (5.0, 40.0)
TURB_SLOPE = -4.623              # E(k) slope over TURB_K_RANGE
TURB_SNAPSHOT_RESIDUAL = -0.0126  # (ε_in − 2ν⟨Z⟩ − 2α⟨E⟩)/ε_in from the saved snapshots
TURB_SKEWNESS, TURB_KURTOSIS = 0.003, 1.041
COSMO_SIMS, COSMO_PER_SIM = 8, 24
COSMO_RATIOS = [0.916, 0.942, 0.957, 0.975, 1.008, 1.059, 1.135]  # P/P_lin per shell, k ≤ k_Nyquist/8
COSMO_MEAN_RATIO = 1.0344       # inverse-variance mean of those
COSMO_LOW_K_RATIO = 0.957       # same over the 4 shells k ≤ 0.11 h/Mpc
COSMO_LOG_MOMENTS = [-0.3165, 0.7228, 0.6588]  # mean, std, skewness of log(1 + δ), per map, averaged


def _params(path):
    with h5py.File(path, "r") as h5:
        diag = {k: json.loads(v) for k, v in h5["diagnostics"].attrs.items()} if "diagnostics" in h5 else {}
        return json.loads(h5.attrs["params"]), diag


# ---- both files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, shape, kind, n_groups, per_group", [
    (TURB, (TURB_N, 128, 128), "run", TURB_RUNS, TURB_PER_RUN),
    (COSMO, (COSMO_SIMS * COSMO_PER_SIM, 128, 128), "simulation", COSMO_SIMS, COSMO_PER_SIM),
])
def test_shipped_128_file_validates_with_its_shape_and_groups(path, shape, kind, n_groups, per_group):
    report = pio.validate(path)
    assert report.ok, report
    with pio.open_fields(path) as ds:
        assert tuple(ds.shape) == shape and len(ds) == shape[0]
        assert ds[0].shape == shape[1:] and ds[0].dtype == np.float32
        assert ds.group_kind == kind
        # fields are written group by group: group of field i is i // per_group
        np.testing.assert_array_equal(ds.groups, np.arange(shape[0]) // per_group)
        labels, sizes = np.unique(ds.groups, return_counts=True)
        assert labels.size == n_groups and set(sizes.tolist()) == {per_group}
        for frac, seed in [(0.2, 0), (0.5, 1), (0.25, 7)]:
            train, test = ds.split(frac, seed=seed)
            assert len(train) + len(test) == shape[0] and len(test) % per_group == 0 and len(test) > 0
            assert groups_on_both_sides(ds.groups, train, test).size == 0
    assert path.stat().st_size < 13e6  # both together stay within the 25 MB shipping budget


def test_shipped_128_files_fit_the_shipping_budget():
    assert TURB.stat().st_size + COSMO.stat().st_size <= 25e6


# ---- turbulence_128.h5 -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def turbulence():
    with pio.open_fields(TURB) as ds:
        w = np.asarray(ds[:], dtype=np.float32)
    params, diag = _params(TURB)
    return w, params, diag


def test_turbulence_128_parameters_and_plan_match_the_card(turbulence):
    _, params, diag = turbulence
    assert params["viscosity"] == pytest.approx(1.25e-3) and params["dt"] == pytest.approx(0.0025)
    assert params["drag"] == pytest.approx(0.1) and params["forcing_wavenumber"] == 4
    plan = diag["plan"]
    assert plan["kmax_eta"] > 1.0            # enstrophy-dissipation scale resolved
    assert plan["pilot_max_courant"] < 0.35  # well inside ETDRK2's stable range
    assert abs(diag["energy_budget"]["residual"]) < 0.01  # budget of the production runs (time series)


def test_turbulence_128_spectrum_slope_budget_and_pdf_are_the_card_numbers(turbulence, load_script):
    w, params, diag = turbulence
    k, e = energy_spectrum(w)
    slope = spectral_slope(k, e, TURB_K_RANGE)
    assert slope == pytest.approx(TURB_SLOPE, abs=0.01)
    # a power law over the range: both halves (in log k) within 0.5 of the overall slope, small scatter
    fit = load_script("scripts/make_reference_data.py")._power_law_fit(k, e, TURB_K_RANGE)
    assert fit["slope"] == pytest.approx(slope, abs=1e-9)
    assert abs(fit["slope_lower_half"] - slope) < 0.5 and abs(fit["slope_upper_half"] - slope) < 0.5
    assert fit["rms_log10_deviation"] < 0.1 and fit["decades"] > 0.9
    res = turbulence_checks(w, viscosity=params["viscosity"], drag=params["drag"],
                            injection=diag["energy_budget"]["injection"], k_range=TURB_K_RANGE)
    assert res["budget"]["residual"] == pytest.approx(TURB_SNAPSHOT_RESIDUAL, abs=1e-3)
    assert abs(res["budget"]["residual"]) < 4 * res["budget"]["residual_stderr"] + 0.01
    assert res["skewness"] == pytest.approx(TURB_SKEWNESS, abs=0.005)
    assert res["excess_kurtosis"] == pytest.approx(TURB_KURTOSIS, abs=0.005)


# ---- cosmic_web_128.h5 -----------------------------------------------------------------------------
def test_cosmic_web_128_conditions_and_parameters_match_the_card():
    params, _ = _params(COSMO)
    assert params["box"] == 256.0 and params["n_slabs"] == 8 and params["pixel_size"] == 2.0
    with pio.open_fields(COSMO) as ds:
        cond, names = ds.conditions(), ds.condition_names
        groups = ds.groups
    np.testing.assert_array_equal(cond[:, names.index("simulation")], groups)
    np.testing.assert_allclose(cond[:, names.index("omega_m")], 0.3075, rtol=1e-6)


def test_cosmic_web_128_low_k_power_and_log_pdf_are_the_card_numbers(load_script):
    res = load_script("scripts/make_reference_data.py").projected_linear_comparison(COSMO)
    assert res["n_simulations"] == COSMO_SIMS and len(res["k"]) == 7
    np.testing.assert_allclose(res["ratio"], COSMO_RATIOS, atol=1e-3)
    assert res["mean_ratio"] == pytest.approx(COSMO_MEAN_RATIO, abs=1e-3)
    k, ratio, err = (np.asarray(res[name]) for name in ("k", "ratio", "ratio_error"))
    low = k <= 0.11  # the 4 lowest shells (what projected_linear_comparison(path, k_max=0.11) averages)
    w = 1.0 / err[low] ** 2
    low_mean, low_err = np.sum(w * ratio[low]) / w.sum(), 1.0 / math.sqrt(w.sum())
    assert low.sum() == 4 and low_mean == pytest.approx(COSMO_LOW_K_RATIO, abs=1e-3)
    # linear theory × D² holds at low k within the errors (cosmic variance of 8 simulations) and the
    # PM growth deficit of a few percent; nonlinear growth raises the ratio towards k_Nyquist/8
    assert abs(low_mean - 1.0) < 3 * low_err
    assert res["ratio"][-1] > res["ratio"][0]
    with pio.open_fields(COSMO) as ds:
        y = np.asarray(ds[:], dtype=np.float64)
    mean, std = y.mean(axis=(-2, -1)), y.std(axis=(-2, -1))
    skew = (((y - mean[:, None, None]) / std[:, None, None]) ** 3).mean(axis=(-2, -1))
    np.testing.assert_allclose([mean.mean(), std.mean(), skew.mean()], COSMO_LOG_MOMENTS, atol=2e-3)
    delta = np.expm1(y)
    assert abs(delta.mean()) < 1e-4 and (((delta - delta.mean()) / delta.std()) ** 3).mean() > 1.0
