"""`phigen quickstart --fast` runs end to end and its report says the right things."""

from __future__ import annotations

import json
from pathlib import Path

from phigen.cli import main


def test_quickstart_fast(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "-o", str(out), "--fast"]) == 0
    assert "report:" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    assert "truth-vs-truth floor" in report and "Binder cumulant" in report
    perfect = m["comparisons"]["same generator (perfect model)"]
    wrong = m["comparisons"]["wrong slope k^-2.5"]
    for stat in ("power_spectrum", "minkowski"):
        p, w = perfect[stat]["distances"]["chi2"], wrong[stat]["distances"]["chi2"]
        # the perfect model is within a few floor spreads, the wrong one far outside
        assert p["model"] < p["floor"] + 4 * p["floor_std"] + 1.0
        assert w["model"] > 10 * w["floor"]
    u4, err = m["phi4"]["observables"]["binder"]
    assert 0.0 < u4 < 2 / 3 + 3 * err
    for path in m["figures"].values():
        assert Path(path).exists()
    assert all((out / "figures" / f"{n}.png").stat().st_size > 1000 for n in ("fields", "power_spectrum", "phi4_fields"))
