"""`phigen quickstart --fast` runs the main job end to end, and its report says the right things.

One fast run (32² block-averaged critical φ⁴, 64 training / 64 held-out fields, tiny budgets) is
checked by one test, so that pytest-xdist workers do not each repeat it: by default with the Gaussian
reference and WC-RG (``--models gaussian,wcrg``), with every available model under ``-m slow``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from phigen._quickstart import BUDGETS, _block_average, _is_reference, find_reference_data, quickstart
from phigen.cli import main
from phigen.errors import ParameterError
from phigen.io import open_fields, write_fields


@pytest.mark.parametrize("models", [
    # the default run's twin: the Gaussian reference and WC-RG, the models the verdict checks below
    # are about (the other kinds go through the same compare_models, tested in test_compare.py)
    pytest.param(("gaussian", "wcrg"), id="gaussian,wcrg"),
    pytest.param(None, marks=pytest.mark.slow, id="all"),
])
def test_quickstart_fast_end_to_end(tmp_path, models):
    out = tmp_path / "report"
    buf = io.StringIO()
    argv = ["quickstart", "-o", str(out), "--fast"] + (["--models", ",".join(models)] if models else [])
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    run = out, buf.getvalue(), json.loads((out / "metrics.json").read_text())
    expected = list(models) if models else [b.kind for b in BUDGETS]
    assert list(run[2]["models"]) == expected
    _check_every_file_with_finite_numbers(run)
    _check_table_has_the_null_and_one_row_per_model(run)
    _check_numbers_say_the_right_things(run)


def _numbers(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    else:
        yield path, obj


def _check_every_file_with_finite_numbers(run):
    out, printed, m = run
    kinds = list(m["models"])
    assert kinds[0] == "gaussian" and "wcrg" in kinds
    assert f"report: {out / 'report.md'}" in printed
    for name in ("report.md", "report.html", "metrics.json"):
        assert (out / name).stat().st_size > 1000
    for fig in ("fields", "power_spectrum", "pdf", "minkowski", "bispectrum"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    for kind in kinds:
        with open_fields(out / "samples" / f"{kind}.h5") as ds:
            assert len(ds) == m["data"]["n_held_out"] == 64 and ds.sample_shape == (32, 32)
        assert (out / "models" / f"{kind}.h5").exists()
    # every number of the report is finite (non-finite values would be null in the strict JSON)
    judged = {"truth": m["truth"]}
    for kind, mk in m["models"].items():
        judged[kind] = {k: mk[k] for k in ("distances", "comparison", "field_statistics", "memorisation", "n_params",
                                           "fit_seconds", "sample_seconds_per_field")}
    values = list(_numbers(judged))
    assert len(values) > 1000
    for path, v in values:
        assert v is not None, path
        if isinstance(v, float):
            assert math.isfinite(v), path
    q = m["quickstart"]
    assert q["fast"] and q["total_seconds"] > 0 and q["data"]["source"] == "shipped, block-averaged"
    # the block averages keep the shipped file's chains as groups: the split keeps every chain whole
    assert m["data"]["groups"] == {"kind": "chain", "n_train": 32, "n_held_out": 32}
    assert set(q["budgets"]) == set(kinds)
    assert {"data", "figures", "wcrg.fit", "wcrg.sample", "wcrg.statistics"} <= set(q["stages_seconds"])
    assert all(f"{kind}.statistics" in q["stages_seconds"] for kind in kinds)


def _check_table_has_the_null_and_one_row_per_model(run):
    out, printed, m = run
    md = (out / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    for col in ("P(k) χ²", "PDF W₁/σ", "bispectrum χ²", "Minkowski χ²", "scattering χ²", "U₄", "| χ |",
                "parameters", "fit time (s)", "sampling (s/field)"):
        assert col in header, col
    # the main table: the rows above the per-distance table ("## Every distance")
    rows = [line for line in md.split("## Every distance")[0].splitlines()
            if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["null: truth vs truth (mean / 95th pct.)", *m["models"]]
    assert all(len(r.split("|")) == len(header.split("|")) for r in rows)
    for r in rows:  # the same table is printed
        assert r in printed
    # budgets, data source and total time sit above the table
    assert "Budgets:" in md and "block-averaged" in md and "Total time" in md
    assert "sign_symmetric=True (set by compare" in md  # wcrg was fitted sign-symmetric automatically
    assert m["models"]["wcrg"]["symmetry_fit"]["sign_symmetric"] is True
    if "scattering" in m["models"]:
        assert m["models"]["scattering"]["symmetry_fit"]["sign_symmetric"] is None  # no such option


def _check_numbers_say_the_right_things(run):
    _, _, m = run
    truth = m["truth"]["field_statistics"]["U4"]
    g = m["models"]["gaussian"]
    # The Gaussian reference has the training spectrum: within the null's 95th percentile (+1 for the
    # spectrum it estimated from 64 fields, which adds ≈ m/n_train = 0.5 to the χ² of its samples).
    ps = g["distances"]["power_spectrum"]["chi2"]
    assert ps["model"] < ps["null_p95"] + 1.0
    # ... but a Gaussian field has U₄ = 0 exactly (its samples' estimate is within its errors of that; from
    # 64 fields of a nearly-zero-mean law the jackknife error is ≈ 0.5), while the critical truth's
    # ≈ 0.6 lies many of its standard errors away from 0
    gu = g["field_statistics"]["U4"]
    assert abs(gu["value"]) < 4 * gu["error"]
    assert truth["value"] > 4 * truth["error"] and truth["value"] > 0.4
    # ... nor the critical field's level sets: Minkowski χ² off, beyond the null's 95th percentile
    mk = g["distances"]["minkowski"]["chi2"]
    assert mk["verdict"] == "off" and mk["model"] > mk["null_p95"]
    # WC-RG gets the Binder cumulant: within 4 combined standard errors (jackknife, 64 fields each;
    # the model's own bias at these budgets is measured at |ΔU₄| ≈ 0.02, about one standard error)
    wu = m["models"]["wcrg"]["field_statistics"]["U4"]
    assert abs(wu["value"] - truth["value"]) < 4 * math.hypot(wu["error"], truth["error"])
    # nothing here copies its training fields (the Gaussian may sit close to the data, not to the training set)
    assert not any(mk["memorisation"]["memorised"] for mk in m["models"].values())
    # and WC-RG's non-Gaussian statistics are far closer to the truth than the Gaussian reference's
    for stat, d in (("minkowski", "chi2"), ("scattering_spectra", "chi2")):
        assert m["models"]["wcrg"]["distances"][stat][d]["model"] < g["distances"][stat][d]["model"], stat


def test_reference_data_lookup_and_block_average(tmp_path, monkeypatch):
    ref = find_reference_data()
    assert ref is not None and ref.name == "phi4_64.h5" and _is_reference(ref)
    # another file under that name is not taken for the reference ensemble
    write_fields(tmp_path / "other.h5", np.zeros((4, 8, 8), np.float32), field="phi4", params={"kappa": 0.3, "lam": 1.0})
    assert not _is_reference(tmp_path / "other.h5")
    # the block average keeps each field's mean (so U₄ and the magnetisation law) and is periodic
    x = np.random.default_rng(0).normal(size=(3, 8, 8)).astype(np.float32)
    y = _block_average(x, 2)
    assert y.shape == (3, 4, 4) and np.allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-6)
    assert np.allclose(_block_average(np.roll(x, 2, axis=1), 2), np.roll(y, 1, axis=1), atol=1e-6)


def test_budget_registry_and_bad_model_names(tmp_path):
    kinds = [b.kind for b in BUDGETS]
    assert kinds[0] == "gaussian" and {"wcrg", "scattering", "diffusion"} <= set(kinds)
    for b in BUDGETS:
        fit, sample = b.options(fast=True)
        assert isinstance(fit, dict) and isinstance(sample, dict)
    with pytest.raises(ParameterError, match="no-such-model"):
        quickstart(tmp_path / "q", fast=True, models=["no-such-model"], progress=False, echo=False)


@pytest.mark.slow
def test_fast_data_without_the_shipped_file_is_generated_at_criticality(tmp_path, monkeypatch):
    """Installed elsewhere (no data/ beside the package): --fast generates 128 fields of 32² at κ = 0.34
    (≈ 16 s on an idle 2-core CPU), critical: U₄ near the 2D Ising 0.61 (0.60 ± 0.01 measured); a second
    run into the same directory reuses the file."""
    import phigen._quickstart as q
    from phigen.compare import field_statistics

    monkeypatch.setattr(q, "find_reference_data", lambda name=q.DATA_NAME: None)
    path, source = q._prepare_data(tmp_path, True, 0, lambda msg: None)
    assert source["source"] == "generated" and path == tmp_path / "data" / "phi4_32.h5"
    with open_fields(path) as ds:
        assert len(ds) == 128 and ds.sample_shape == (32, 32) and ds.params["kappa"] == 0.34
        u4 = field_statistics(ds[:], "phi4", ds.params)["U4"]
    assert abs(u4["value"] - 0.61) < 4 * u4["error"] + 0.03  # + finite-size shift of U₄ at L = 32 (~0.01)
    mtime = path.stat().st_mtime
    assert q._prepare_data(tmp_path, True, 0, lambda msg: None)[0] == path and path.stat().st_mtime == mtime
