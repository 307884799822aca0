"""phigen compare --condition: conditional models judged value by value, whole values held out."""

import json

import numpy as np
import pytest

from phigen import io as pio
from phigen.cli import main
from phigen.compare_conditions import compare_conditions, parse_hold_out
from phigen.errors import ParameterError

FIT = {"J": 1, "k": 1, "k_coarse": 1, "n_bumps": 2, "degree": 1, "sample_steps": 40, "sample_adapt": 10,
       "coarse_sample_steps": 60, "coarse_sample_adapt": 20}


@pytest.fixture(scope="module")
def grid_file(gaussian_fields, tmp_path_factory):
    """Gaussian fields whose amplitude is the condition 'a' (4 values, 4 runs of 4 fields each)."""
    amps = np.repeat([0.5, 1.0, 1.5, 2.0], 16)
    x = gaussian_fields(64, 16, slope=2.0, seed=3) * amps[:, None, None]
    path = tmp_path_factory.mktemp("cond") / "grid.h5"
    pio.write_fields(path, x.astype(np.float32), field="gaussian", conditions=amps[:, None], condition_names=["a"],
                     groups=np.arange(64) // 4, group_kind="run")
    return path


def test_parse_hold_out():
    np.testing.assert_array_equal(parse_hold_out("0.3,0.34", ["kappa"]), [[0.3], [0.34]])
    np.testing.assert_array_equal(parse_hold_out("0.3:0.8;0.35:0.9", ["omega_m", "sigma8"]), [[0.3, 0.8], [0.35, 0.9]])
    assert parse_hold_out(None, ["kappa"]).shape == (0, 1)
    with pytest.raises(ParameterError, match="points of 2 value"):
        parse_hold_out("0.3", ["omega_m", "sigma8"])


def test_compare_per_condition_holds_whole_values_out(grid_file, tmp_path):
    m = compare_conditions(grid_file, condition="a", models=["wcrg-conditional"], out_dir=tmp_path / "r",
                           hold_out="1.5", n_splits=20, fit_options={"wcrg-conditional": FIT})
    assert m["held_out"] == [False, False, True, False]
    assert m["n_truth"] == [8, 8, 16, 8] and m["n_train"] == 24  # half the runs of the seen values
    rows = m["models"]["wcrg-conditional"]["rows"]
    assert [r["value"] for r in rows] == [[0.5], [1.0], [1.5], [2.0]]
    for r in rows:
        assert r["n_distances"] >= 8 and 0 <= r["n_off"] <= r["n_distances"]
        assert np.isfinite(r["distances"]["P(k) χ²"]["model"])
    back = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert back["held_out"] == m["held_out"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| 1.5 | yes | 16 |" in report


def test_compare_per_condition_bad_input(grid_file, tmp_path):
    with pytest.raises(ParameterError, match="gaussian is not one"):
        compare_conditions(grid_file, condition="a", models=["gaussian"], out_dir=tmp_path)
    with pytest.raises(ParameterError, match="has no condition kappa"):
        compare_conditions(grid_file, condition="kappa", out_dir=tmp_path)
    with pytest.raises(ParameterError, match="not a condition of the file"):
        compare_conditions(grid_file, condition="a", hold_out="0.7", out_dir=tmp_path)
    assert main(["compare", str(grid_file), "--hold-out", "1.5", "-o", str(tmp_path / "x"), "--quiet"]) != 0
