"""Projected cosmic web (phigen.fields.cosmic_web): mass conservation, linear growth at low k, maps."""

from __future__ import annotations

import math

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phigen
from phigen import errors as E
from phigen.checks import cosmic_web_checks, linear_theory_comparison, peak_counts
from phigen.fields import cosmic_web as C
from phigen.generators import generate

# one grid for every test: a single compilation (~20 s) serves them all
CFG = C.CosmicWebConfig(size=32, box=256.0, n_slabs=4)


@pytest.fixture(scope="module")
def sims():
    out = []
    for seed in range(3):
        lin, mass = C.simulate_density(jax.random.PRNGKey(seed), C.Cosmology(), CFG)
        out.append((lin, mass))
    return out


def test_painting_conserves_mass(sims):
    from jaxpm.painting import cic_paint

    for _, mass in sims:
        assert mass.sum() == pytest.approx(CFG.size**3, rel=1e-5)
        assert mass.min() >= 0
    # CIC of arbitrary (wrapped) positions: every particle deposits exactly unit mass
    pos = jax.random.uniform(jax.random.PRNGKey(9), (8, 8, 8, 3), minval=-3.0, maxval=11.0)
    painted = cic_paint(jnp.zeros((8, 8, 8)), pos)
    assert float(painted.sum()) == pytest.approx(512.0, rel=1e-5)


def test_low_k_power_matches_linear_theory_times_growth(sims):
    # three boxes; the lowest shells (k ≤ k_Nyquist/8) must agree with P_L(k)·D(1)² within cosmic
    # variance (σ_P/P = 1/√modes per box)
    comps = [linear_theory_comparison(m / m.mean() - 1.0, CFG.box) for _, m in sims]
    sel = comps[0]["k"] <= comps[0]["k_max"]
    ratio = np.mean([c["ratio"][sel] for c in comps], axis=0)
    err = comps[0]["ratio_error"][sel] / math.sqrt(len(comps))
    chi2 = float(np.sum(((ratio - 1.0) / err) ** 2))
    assert chi2 < sel.sum() + 4 * math.sqrt(2 * sel.sum()), (ratio, err)
    wts = 1 / err**2
    mean = np.sum(wts * ratio) / wts.sum()
    assert abs(mean - 1.0) < 3 / math.sqrt(wts.sum()) + 0.05, mean
    # the initial conditions themselves follow the input spectrum (same estimator, no window)
    ics = [C.matter_power_3d(lin, CFG.box) for lin, _ in sims]
    k, p_ic = ics[0][0], np.mean([p for _, p, _ in ics], axis=0)
    lin_th = C.linear_power(k)
    modes = ics[0][2] * len(ics)
    z = (p_ic / lin_th - 1.0) * np.sqrt(modes)
    assert np.mean(z[: len(z) // 2] ** 2) < 3.0  # χ²/dof of the IC spectrum over the lower half of k


def test_growth_is_linear_for_each_realisation(sims):
    # final / initial power of the same modes at the fundamental: free of cosmic variance; the PM force
    # (one mesh cell per particle) costs a few percent of growth at k = k_N/16 (see module docstring)
    r = []
    for lin, mass in sims:
        k, p, _ = C.matter_power_3d(mass / mass.mean() - 1.0, CFG.box, deconvolve_cic=True)
        _, p0, _ = C.matter_power_3d(lin, CFG.box)
        r.append(p[0] / p0[0])
    assert 0.85 < np.mean(r) < 1.1, r


def test_maps_are_skewed_and_finite(sims):
    _, mass = sims[0]
    delta = C.project_slabs(mass, CFG.n_slabs)
    assert delta.shape == (3 * CFG.n_slabs, CFG.size, CFG.size)
    np.testing.assert_allclose(delta.mean(axis=(-2, -1)), 0.0, atol=1e-6)
    d = delta - delta.mean(axis=(-2, -1), keepdims=True)
    skew = np.mean(d**3, axis=(-2, -1)) / np.mean(d**2, axis=(-2, -1)) ** 1.5
    assert np.all(skew > 0.3), skew
    maps, _ = C.cosmic_web_maps(jax.random.PRNGKey(0), C.Cosmology(), CFG)
    assert maps.dtype == np.float32 and np.all(np.isfinite(maps))
    assert maps.min() >= math.log(CFG.n_slabs / (2 * CFG.size)) - 1e-6
    res = cosmic_web_checks(maps, box=CFG.box)
    assert res["moments_delta"]["skewness"] > 0.3
    assert np.nanmean(res["Q_equilateral"]) > 0  # gravity makes a positive reduced bispectrum
    edges, counts = res["peaks"]
    assert counts.shape == (len(maps), len(edges) - 1) and counts.sum() > 0


def test_sigma8_raises_the_variance():
    key = jax.random.PRNGKey(5)
    var = []
    for s8 in (0.6, 0.8, 1.0):
        maps, _ = C.cosmic_web_maps(key, C.Cosmology(sigma8=s8), CFG)
        var.append((np.var(maps), np.var(np.expm1(maps.astype(np.float64)))))
    var = np.array(var)
    assert np.all(np.diff(var[:, 0]) > 0) and np.all(np.diff(var[:, 1]) > 0), var


def test_peak_counts_of_a_known_field():
    x = np.zeros((1, 16, 16))
    x[0, 3, 4] = 5.0
    x[0, 10, 12] = 2.0
    x[0, 15, 15] = 1.0  # periodic corner: still a maximum
    edges, counts = peak_counts(x, bins=np.array([-10.0, 100.0]))
    assert counts.tolist() == [[3]]


def test_latin_hypercube_hits_every_stratum_once():
    pts = C.latin_hypercube(jax.random.PRNGKey(0), 10, [(0.2, 0.4), (0.6, 1.0)])
    for j, (lo, hi) in enumerate([(0.2, 0.4), (0.6, 1.0)]):
        strata = np.floor((pts[:, j] - lo) / (hi - lo) * 10).astype(int)
        assert sorted(strata.tolist()) == list(range(10))


def test_generate_with_latin_hypercube_records_conditions(tmp_path):
    path = C.generate_cosmic_web(tmp_path / "cw.h5", size=32, n=12, seed=1, box=256.0, n_slabs=2,
                                 omega_m_range=(0.25, 0.35), sigma8_range="0.7:0.9", progress=False)
    with phigen.io.open_fields(path) as ds:
        x = np.asarray(ds[:])
    with h5py.File(path, "r") as h5:
        cond = np.asarray(h5["conditions"][:])
        names = [str(n) for n in h5["conditions"].attrs["names"]]
        attrs = dict(h5.attrs)
    assert x.shape == (12, 32, 32) and np.all(np.isfinite(x))
    assert names == list(C.CONDITION_NAMES)
    om, s8, sim, axis, slab = (cond[:, names.index(n)] for n in ("omega_m", "sigma8", "simulation", "axis", "slab"))
    assert sim.tolist() == [0] * 6 + [1] * 6
    assert axis[:6].tolist() == [0, 0, 1, 1, 2, 2] and slab[:6].tolist() == [0, 1] * 3
    assert np.all((om >= 0.25) & (om <= 0.35)) and np.all((s8 >= 0.7) & (s8 <= 0.9))
    assert len(np.unique(om)) == 2  # one draw per simulation
    assert (om.min() < 0.3) != (om.max() < 0.3)  # Latin hypercube: the two draws sit in different halves
    assert attrs["param_box"] == 256.0 and attrs["param_pixel_size"] == 8.0
    assert phigen.io.validate(path).ok


def test_generate_registry_kind(tmp_path):
    path = generate("cosmic-web", tmp_path / "g.h5", size=32, n=6, seed=0, box=256.0, n_slabs=2, progress=False)
    with h5py.File(path, "r") as h5:
        assert h5["fields"].shape == (6, 32, 32)
        assert h5["conditions"].shape == (6, len(C.CONDITION_NAMES))
        assert list(h5["conditions"].attrs["names"]) == list(C.CONDITION_NAMES)
        assert h5.attrs["param_omega_m"] == pytest.approx(C.Cosmology().omega_m)


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=33), "even integer"),
    (dict(size=32, box=0.0), "box"),
    (dict(size=32, box=-10.0), "box"),
    (dict(size=32, omega_m=1.2), "omega_m"),
    (dict(size=32, omega_m=0.01), "omega_m"),
    (dict(size=32, sigma8=-0.8), "sigma8"),
    (dict(size=32, n_slabs=5), "divide"),
    (dict(size=32, omega_m_range=(0.3, 0.9)), "omega_m"),
])
def test_bad_parameters_raise(kwargs, match, tmp_path):
    size = kwargs.pop("size")
    with pytest.raises(E.ParameterError, match=match):
        generate("cosmic-web", tmp_path / "never.h5", size=size, n=4, progress=False, **kwargs)
    assert not (tmp_path / "never.h5").exists()
