"""Forced 2D turbulence (phigen.fields.turbulence) and its checks: closed forms, budgets, decorrelation."""

from __future__ import annotations

import json
import math

import h5py
import jax
import numpy as np
import pytest

import phigen
from phigen.generators import generate
from phigen import errors as E
from phigen.checks import energy_spectrum, turbulence_checks
from phigen.fields import turbulence as T


# ---- closed forms ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3])
def test_taylor_green_decays_at_exact_viscous_rate(k):
    # Taylor–Green is steady under Euler: only ν∇² and drag act, ω(t) = ω(0) e^{−(2νk² + α)t}
    flow = T.KolmogorovFlow(32, viscosity=0.02, dt=0.02, drag=0.1, forcing_amplitude=0.0)
    w0 = T.taylor_green_vorticity(32, k=k)
    w, obs = T.simulate(w0[None], flow, n_records=10, steps_per_record=10)
    t = np.arange(1, 11) * 10 * flow.dt
    rate_exact = 2 * flow.viscosity * k**2 + flow.drag
    amp = np.asarray(obs.enstrophy)[:, 0] / float(T.flow_observables(w0, flow).enstrophy[0])
    rate = -np.polyfit(t, 0.5 * np.log(amp), 1)[0]  # Z ∝ ω² decays at twice the rate
    assert abs(rate / rate_exact - 1) < 1e-4, (rate, rate_exact)
    # the shape is preserved (the nonlinear term of an Euler steady state is zero)
    np.testing.assert_allclose(np.asarray(w[0]), np.asarray(w0) * math.exp(-rate_exact * t[-1]), atol=2e-5)


def test_inviscid_unforced_flow_conserves_energy_and_enstrophy():
    # the dealiased Jacobian conserves E and Z exactly in continuous time; ETDRK2 error is O(dt²)
    flow = T.KolmogorovFlow(32, viscosity=1e-12, dt=0.005, drag=0.0, forcing_amplitude=0.0)
    w0 = T.random_vorticity(jax.random.PRNGKey(3), 4, 32, k_max=6.0, rms=2.0)
    _, obs = T.simulate(w0, flow, n_records=20, steps_per_record=10)
    e0, z0 = T.flow_observables(w0, flow)[:2]
    e, z = np.asarray(obs.energy), np.asarray(obs.enstrophy)
    assert np.max(np.abs(e / np.asarray(e0) - 1)) < 2e-3
    assert np.max(np.abs(z / np.asarray(z0) - 1)) < 5e-3
    # and the field did change (the nonlinear term is active)
    assert np.asarray(obs.palinstrophy)[-1].mean() > 1.05 * np.asarray(T.flow_observables(w0, flow).palinstrophy).mean()


def test_forcing_injection_formula_matches_laminar_kolmogorov_flow():
    # below the instability the flow is the laminar profile ω = −k γ cos(kx)/(νk² + α):
    # ε_in = γ²/(2(νk² + α)), Z = k²γ²/(4(νk²+α)²), E = γ²/(4(νk²+α)²)
    flow = T.KolmogorovFlow(32, viscosity=0.2, dt=0.02, drag=0.1)
    _, obs = T.simulate(np.zeros((1, 32, 32), np.float32), flow, n_records=10, steps_per_record=100)
    lam = flow.viscosity * 16 + flow.drag
    assert float(obs.injection[-1, 0]) == pytest.approx(1 / (2 * lam), rel=1e-4)
    assert float(obs.energy[-1, 0]) == pytest.approx(1 / (4 * lam**2), rel=1e-4)
    assert float(obs.enstrophy[-1, 0]) == pytest.approx(16 / (4 * lam**2), rel=1e-4)


def test_mser_finds_a_step_transient():
    rng = np.random.default_rng(0)
    x = np.r_[np.linspace(10, 1, 100), np.ones(400)] + 0.05 * rng.normal(size=500)
    d = T.mser_truncation(x)
    assert 90 <= d <= 120
    assert T.mser_truncation(np.linspace(0, 10, 200)) == -1  # still drifting: not steady


# ---- the forced, spun-up ensemble ------------------------------------------------------------------
@pytest.fixture(scope="module")
def forced():
    flow = T.kolmogorov_flow(32)
    cfg = T.TurbulenceSamplerConfig(snapshots_per_run=6, shift=False)
    plan = T.prepare_turbulence(jax.random.PRNGKey(0), flow, cfg)
    fields, obs = T.sample_turbulence(jax.random.PRNGKey(1), plan, 8)
    return flow, plan, fields, obs


def test_spin_up_is_detected_and_recorded(forced):
    flow, plan, _, _ = forced
    m = plan.measured
    assert 0 < m["spin_up_detected_time"] <= m["pilot_time"] / 2
    assert plan.spin_up_time >= 1.5 * m["spin_up_detected_time"] - 1e-9
    assert m["kmax_eta"] >= 1.0  # default ν resolves the enstrophy dissipation scale
    assert m["pilot_max_courant"] < 0.6


def test_energy_budget_closes_at_steady_state(forced):
    flow, _, _, obs = forced
    b = T.budget(obs, flow)
    # time average of dE/dt = ε − 2νZ − 2αE over the snapshot phase; (E_end − E_start)/T is ~1e-3
    assert abs(b["residual"]) < 0.03, b
    assert b["viscous_dissipation"] > 0.1 * b["injection"] and b["drag_dissipation"] > 0.1 * b["injection"]


def test_snapshots_are_decorrelated_and_mean_free(forced):
    flow, plan, fields, _ = forced
    s = plan.config.snapshots_per_run
    runs = fields.reshape(-1, s, flow.size, flow.size)  # run-major
    c = T.vorticity_correlation(np.swapaxes(runs, 0, 1), max_lag=2)
    # consecutive saved snapshots (lag 1) are one decorrelation time apart; the threshold is 0.1, and
    # 8 runs × 5 pairs give an estimator spread of ≈ 0.05
    assert abs(c[1]) < 0.25, c
    assert abs(c[2]) < 0.25, c
    # independent runs are uncorrelated too
    a = runs[:, -1] - runs[:, -1].mean(axis=0)
    cross = np.mean(a[:-1] * a[1:]) / np.mean(a * a)
    assert abs(cross) < 0.3
    # incompressible vorticity: ω = ∂x v − ∂y u has zero mean on the torus
    assert np.max(np.abs(fields.mean(axis=(-2, -1)))) < 1e-5 * fields.std()


def test_turbulence_checks_numbers(forced):
    flow, plan, fields, obs = forced
    b = T.budget(obs, flow)
    res = turbulence_checks(fields, viscosity=flow.viscosity, drag=flow.drag, injection=b["injection"])
    k, e = energy_spectrum(fields)
    # Parseval: Σ E(k) = ½⟨|u|²⟩ from the velocity field
    u = np.asarray(T.velocity_from_vorticity(fields[:4]))
    np.testing.assert_allclose(e[:4].sum(axis=1), 0.5 * np.mean(u**2, axis=(-3, -2, -1)) * 2, rtol=1e-4)
    # direct cascade steeper than Kraichnan's −3 (drag and viscosity at this Re), and decaying
    assert -9.0 < res["slope"] < -3.0
    # budget from the saved snapshots alone: within a few standard errors of 0
    assert abs(res["budget"]["residual"]) < max(0.05, 4 * res["budget"]["residual_stderr"])
    assert res["flatness"].shape == (len(fields), len(res["r"]))


# ---- the generator ----------------------------------------------------------------------------------
def test_generate_turbulence_file(tmp_path):
    path = generate("turbulence", tmp_path / "t.h5", size=32, n=16, seed=2, batch_size=8, progress=False)
    with h5py.File(path, "r") as h5:
        a = dict(h5.attrs)
        assert h5["fields"].shape == (16, 32, 32)
        budget = json.loads(h5["diagnostics"].attrs["energy_budget"])
    for name in ("viscosity", "drag", "forcing_wavenumber", "dt", "spin_up_time", "decorrelation_time"):
        assert f"param_{name}" in a
    assert a["param_viscosity"] == pytest.approx(T.default_viscosity(32))
    assert a["param_decorrelation_time"] > 0 and a["param_spin_up_time"] > 0
    assert abs(budget["residual"]) < 0.05
    assert phigen.io.validate(path).ok
    # the kind's declared physics checks (phigen check) are the turbulence file checks
    from phigen.checks import check_file, check_turbulence_file

    res, direct = check_file(path, max_fields=8), check_turbulence_file(path, max_fields=8)
    assert res["slope"] == direct["slope"] and res["budget"]["residual"] == direct["budget"]["residual"]
    assert np.isfinite(res["slope"]) and res["slope"] < 0

    # the same set in two shards (one batch each): the master's budget is over both shards' batches,
    # not the last shard's, and so is that of the merged file
    from phigen.generators import generate_share

    kw = dict(size=32, n=16, seed=2, batch_size=8, progress=False)
    for k in (1, 0):  # process 0 last: it writes the master
        generate_share("turbulence", tmp_path / "s.h5", process_index=k, process_count=2, **kw)
    merged = phigen.io.merge_shards(tmp_path / "s.h5", tmp_path / "m.h5", progress=False)
    shard_budgets = []
    for shard in sorted(tmp_path.glob("s.shard-*.h5")):
        with phigen.io.open_fields(shard) as f:
            shard_budgets.append(f.diagnostics()["energy_budget"])
    assert [b["n_batches"] for b in shard_budgets] == [1, 1]
    assert shard_budgets[0]["injection"] != shard_budgets[1]["injection"]
    for f in (tmp_path / "s.h5", merged):
        with phigen.io.open_fields(f) as ds:
            b = ds.diagnostics()["energy_budget"]
        assert b["n_batches"] == 2 and b["n_runs"] == budget["n_runs"]
        for key in ("injection", "viscous_dissipation", "drag_dissipation", "residual"):
            assert b[key] == pytest.approx(budget[key], rel=1e-12)


def test_generate_turbulence_with_velocity_channels(tmp_path):
    path = T.generate_turbulence(tmp_path / "tv.h5", size=32, n=4, seed=0, velocity=True, snapshots_per_run=4,
                                 progress=False)
    with phigen.io.open_fields(path) as ds:
        x = np.asarray(ds[:])
    assert x.shape == (4, 3, 32, 32)
    np.testing.assert_allclose(x[:, 1:], np.asarray(T.velocity_from_vorticity(x[:, 0])), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=33), "even integer"),
    (dict(size=8), "even integer"),
    (dict(size=32, viscosity=-1e-3), "viscosity"),
    (dict(size=32, drag=-0.1), "drag"),
    (dict(size=32, dt=0.0), "dt"),
    (dict(size=16, forcing_wavenumber=8), "not resolved"),
])
def test_bad_parameters_raise(kwargs, match):
    size = kwargs.pop("size")
    with pytest.raises(E.ParameterError, match=match):
        T.kolmogorov_flow(size, **kwargs)
    with pytest.raises(E.ParameterError, match=match):
        generate("turbulence", "never.h5", size=size, n=4, progress=False, **kwargs)

