"""φ⁴ ground-truth datasets and the Binder-crossing estimate of κ_c."""

from __future__ import annotations

import json

import numpy as np
import pytest

import phigen.fields.phi4 as phi4_mod
import phigen.io as pio
from phigen import errors as E
from phigen.cli import main
from phigen.critical import crossing_point, parse_kappa_range
from phigen.generators import generate

SMALL = dict(size=8, kappa=0.25, lam=1.0, n_chains=8)


def _gen(path, n=16, **kw):
    args = {**SMALL, **kw}
    return generate("phi4", path, size=args.pop("size"), n=n, seed=3, progress=False, **args)


def test_generate_phi4_records_sampling(tmp_path):
    p = _gen(tmp_path / "phi4.h5")
    with pio.open_fields(p) as ds:
        x = ds.load()
        assert x.shape == (16, 8, 8) and ds.field == "phi4"
        assert ds.params == {"kappa": 0.25, "lam": 1.0}
        s = ds.diagnostics()["sampling"]
        assert s["thin"] >= 1 and s["tau_int_abs_m"] > 0 and 0.6 < s["acceptance"] < 0.95
        assert s["sampler"] == "hmc-cluster" and ds.config["n_chains"] == 8
    # successive batches come from the same chains thinned by τ_int: not identical, finite, O(1)
    assert not np.allclose(x[:8], x[8:]) and 0.1 < np.std(x) < 2.0
    assert not (tmp_path / "phi4.h5.chains").exists()  # the chain checkpoint is removed when done


def test_phi4_interrupted_run_resumes_to_same_bytes(tmp_path, monkeypatch):
    full = pio.read_fields(_gen(tmp_path / "full.h5", n=24))
    real = phi4_mod.advance_phi4_chains
    calls = {"n": 0}

    def dying(key, chains, batch_index, **kw):
        if batch_index == 2 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt
        return real(key, chains, batch_index, **kw)

    monkeypatch.setattr(phi4_mod, "advance_phi4_chains", dying)
    p = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        _gen(p, n=24)
    assert len(pio.open_fields(p, allow_incomplete=True)) == 16
    assert (tmp_path / "part.h5.chains").exists()
    monkeypatch.setattr(phi4_mod, "advance_phi4_chains", real)
    _gen(p, n=24, resume=True)
    assert pio.read_fields(p).tobytes() == full.tobytes()


def test_kappa_grid_is_one_file_with_kappa_in_the_conditions(tmp_path, monkeypatch):
    """``--kappa START:STOP:NUM``: n/K configurations per κ, κ-major, each κ with its own chains
    (group k·n_chains + chain); an interruption inside a κ and at a κ boundary resumes to the same bytes."""
    from phigen.generators import reconstruct_groups

    kw = dict(size=8, n=24, seed=2, kappa="0.25:0.40:3", lam=1.0, n_chains=4, progress=False)
    full = generate("phi4", tmp_path / "grid.h5", **kw)
    with pio.open_fields(full) as ds:
        x, kappa, groups, diag = ds.load(), ds.conditions()[:, 0], ds.groups, ds.diagnostics()
        assert ds.condition_names == ["kappa"] and ds.params["kappa"] == [0.25, 0.325, 0.4]
    np.testing.assert_allclose(kappa, np.repeat([0.25, 0.325, 0.4], 8), rtol=1e-6)
    assert groups.tolist() == [0, 1, 2, 3] * 2 + [4, 5, 6, 7] * 2 + [8, 9, 10, 11] * 2
    assert reconstruct_groups(full)[0].tolist() == groups.tolist() and pio.validate(full).ok
    assert sorted(diag["sampling_per_kappa"]) == ["0.25", "0.325", "0.4"]
    # each κ sampled its own law: on 8×8 at λ = 1 the order parameter grows across the transition
    # (single-κ runs: ⟨|m|⟩ ≈ 0.25 at κ = 0.25, ≈ 1.0 at κ = 0.40; 8 fields per κ)
    m = np.abs(x.mean(axis=(1, 2)))
    assert m[16:].mean() > 2.5 * m[:8].mean()
    assert not (tmp_path / "grid.h5.chains").exists()

    real = phi4_mod.advance_phi4_chains
    for die_at in (3, 4):  # inside the second κ; at the first batch of the third
        calls = {"n": 0}

        def dying(key, chains, batch_index, **k):
            if batch_index == die_at and calls["n"] == 0:
                calls["n"] += 1
                raise KeyboardInterrupt
            return real(key, chains, batch_index, **k)

        monkeypatch.setattr(phi4_mod, "advance_phi4_chains", dying)
        part = tmp_path / f"part{die_at}.h5"
        with pytest.raises(KeyboardInterrupt):
            generate("phi4", part, **kw)
        monkeypatch.setattr(phi4_mod, "advance_phi4_chains", real)
        generate("phi4", part, resume=True, **kw)
        with pio.open_fields(part) as a:
            assert a.load().tobytes() == x.tobytes() and a.groups.tolist() == groups.tolist()
            assert sorted(a.diagnostics()["sampling_per_kappa"]) == ["0.25", "0.325", "0.4"]


def test_kappa_grid_bad_input(tmp_path, capsys):
    with pytest.raises(E.ParameterError, match="multiple of 3"):
        _gen(tmp_path / "x.h5", n=16, kappa=[0.2, 0.25, 0.3])
    with pytest.raises(E.ParameterError, match="n_chains dividing 6"):
        _gen(tmp_path / "x.h5", n=12, kappa=[0.2, 0.25], n_chains=4)
    with pytest.raises(E.ParameterError, match="START:STOP:NUM"):
        _gen(tmp_path / "x.h5", kappa="0.2:0.3")
    assert not (tmp_path / "x.h5").exists()
    code = main(["generate", "phi4", "--size", "8", "-n", "8", "--kappa", "0.2:0.3:2", "--lam", "1", "--n-chains", "4",
                 "-o", str(tmp_path / "c.h5"), "--quiet"])
    assert code == 0
    with pio.open_fields(tmp_path / "c.h5") as ds:
        assert ds.params["kappa"] == [0.2, 0.3] and ds.conditions()[:, 0].tolist() == pytest.approx([0.2] * 4 + [0.3] * 4)


@pytest.mark.parametrize("bad", [dict(kappa=-0.1), dict(lam=-1.0), dict(size=6, kappa=0.2, lam=0.0, n_chains=4) | {"size": 3},
                                 dict(size=9)])
def test_phi4_bad_parameters(tmp_path, bad):
    with pytest.raises(E.ParameterError):
        _gen(tmp_path / "x.h5", **bad)
    assert not (tmp_path / "x.h5").exists()


def test_cli_generate_phi4_needs_kappa(tmp_path, capsys):
    code = main(["generate", "phi4", "--size", "8", "-n", "4", "-o", str(tmp_path / "x.h5")])
    assert code == 1 and "--kappa" in capsys.readouterr().err


def test_crossing_point_recovers_known_crossing():
    # two sigmoid "Binder curves" whose difference vanishes exactly at κ* = 0.2713
    kappa = np.linspace(0.25, 0.30, 11)
    ks = 0.2713
    u_small = 1 / 3 + 0.3 * np.tanh((kappa - ks) * 40)
    u_large = 1 / 3 + 0.3 * np.tanh((kappa - ks) * 80)
    err = np.full_like(kappa, 0.005)
    rng = np.random.default_rng(0)
    kx, kerr, ux = crossing_point(kappa, u_small + rng.normal(0, 0.005, 11), err,
                                  u_large + rng.normal(0, 0.005, 11), err)
    assert abs(kx - ks) < 4 * kerr and 0 < kerr < 0.003
    assert abs(ux - 1 / 3) < 0.05
    with pytest.raises(E.ParameterError, match="do not cross"):
        crossing_point(kappa, u_small, err, u_small + 0.1, err)


def test_parse_kappa_range():
    np.testing.assert_allclose(parse_kappa_range("0.2:0.3:5"), [0.2, 0.225, 0.25, 0.275, 0.3])
    for bad in ["0.3:0.2:5", "0.2:0.3", "a:b:c", "0.2:0.3:1"]:
        with pytest.raises(E.ParameterError):
            parse_kappa_range(bad)


@pytest.mark.slow
def test_critical_cli_end_to_end(tmp_path, capsys):
    """κ_c(λ=1) from L = 8, 16 lies inside the scanned window, with a finite error and U₄ near U*."""
    j = tmp_path / "kc.json"
    code = main(["critical", "phi4", "--lam", "1", "--size", "8", "16", "--kappa", "0.28:0.40:7",
                 "--n-steps", "400", "--n-chains", "16", "--json", str(j), "--quiet"])
    assert code == 0
    r = json.loads(j.read_text())
    assert 0.28 < r["kappa_c"] < 0.40 and 0 < r["kappa_c_err"] < 0.02
    assert 0.45 < r["binder_at_crossing"] < 0.68
    assert (tmp_path / "kc.png").stat().st_size > 1000


def test_crossing_point_stays_in_bracket_for_steep_curves():
    # large-L Binder curves are steep and curved near κ_c: the root must stay inside the grid
    # interval where ΔU₄ changes sign (a straight line through 4 points would leave it)
    # smooth Binder-like sigmoids through (κ*, U* = 0.61), the larger lattice 4× steeper
    a = np.arctanh((0.61 - 1 / 3) / (1 / 3))
    true = 0.3412

    def u_small(k):
        return 1 / 3 + np.tanh(40 * (k - true) + a) / 3

    def u_large(k):
        return 1 / 3 + np.tanh(160 * (k - true) + a) / 3

    kappa = np.linspace(0.325, 0.355, 7)
    err = np.full_like(kappa, 1e-3)
    kx, kerr, ux = crossing_point(kappa, u_small(kappa), err, u_large(kappa), err)
    d = u_large(kappa) - u_small(kappa)
    i = int(np.nonzero(np.sign(d[:-1]) * np.sign(d[1:]) < 0)[0][0])
    assert kappa[i] <= kx <= kappa[i + 1]
    assert abs(kx - true) < 3 * kerr + 2e-4 and abs(ux - 0.61) < 0.02
