"""benchmarks/run_all.py on a temporary benchmarks directory of tiny fake scripts (never the real ones)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest



@pytest.fixture(scope="module")
def run_all(load_script):
    return load_script("benchmarks/run_all.py")


@pytest.fixture
def bench_dir(tmp_path):
    d = tmp_path / "benchmarks"
    d.mkdir()
    (d / "good.py").write_text(textwrap.dedent("""\
        import argparse, json, os
        ap = argparse.ArgumentParser()
        ap.add_argument("--quick", action="store_true")
        ap.add_argument("--reps", type=int, default=1)
        ap.add_argument("--json")
        a = ap.parse_args()
        print("good benchmark running in", os.getcwd())
        json.dump({"ratios": {"phigen_over_numpy": 12.5, "quick_flag_seen": float(a.quick), "reps": a.reps},
                   "figures": {"seconds_per_step": 0.0123}, "machine": {"cpus": 2}}, open(a.json, "w"))
        """))
    (d / "bad.py").write_text(textwrap.dedent("""\
        import sys
        print("bad benchmark: ValueError: the lattice exploded", file=sys.stderr)
        sys.exit(3)
        """))
    (d / "other_format.py").write_text(textwrap.dedent("""\
        import argparse, json
        ap = argparse.ArgumentParser(); ap.add_argument("--fast", action="store_true"); ap.add_argument("--json")
        a = ap.parse_args()
        json.dump({"results": [{"dataset": "x.h5", "fit_s": 1.5, "fast": a.fast}]}, open(a.json, "w"))
        """))
    (d / "slow.py").write_text("import time, argparse\ntime.sleep(60)\n")
    (d / "_helper.py").write_text("raise SystemExit('helpers are not benchmarks')\n")
    return d


def test_summary_records_every_script_and_the_failures(run_all, bench_dir, tmp_path):
    out, js = tmp_path / "summary.md", tmp_path / "summary.json"
    report = run_all.run_all(bench_dir=bench_dir, size="quick", skip="slow", out=out, json_path=js, timeout=60,
                             extra_args={"good": "--reps 3"}, progress=None)
    by_name = {r["name"]: r for r in report["scripts"]}
    assert list(by_name) == ["bad", "good", "other_format"]  # discovered, sorted; _helper and skipped left out
    good, bad, other = by_name["good"], by_name["bad"], by_name["other_format"]
    assert good["ok"] and good["ratios"]["phigen_over_numpy"] == 12.5
    assert good["ratios"]["quick_flag_seen"] == 1.0 and good["ratios"]["reps"] == 3  # quick flag + extra args
    assert other["ok"] and other["quick_flag"] == "--fast" and other["other"]["results[0].fit_s"] == 1.5
    assert not bad["ok"] and bad["status"] == "failed (exit 3)" and bad["returncode"] == 3
    assert report["n_failed"] == 1

    text = out.read_text()
    assert "# phigen benchmarks (quick size)" in text
    assert "| good | ok |" in text and "| bad | failed (exit 3) |" in text
    assert "| phigen_over_numpy | 12.5 |" in text and "| seconds_per_step | 0.0123 |" in text
    assert "the lattice exploded" in text  # the failure's stderr is in the summary
    assert "results[0].fit_s" in text
    m = report["machine"]
    assert f"CPU: {m['cpu_model']}, {m['cpu_count']} logical cores" in text and "devices:" in text
    saved = json.loads(js.read_text())
    assert [r["name"] for r in saved["scripts"]] == ["bad", "good", "other_format"]


def test_full_size_timeout_and_selection(run_all, bench_dir, tmp_path):
    report = run_all.run_all(bench_dir=bench_dir, size="full", only="good,slow", out=tmp_path / "s.md", timeout=1.5,
                             progress=None)
    by_name = {r["name"]: r for r in report["scripts"]}
    assert set(by_name) == {"good", "slow"}
    assert by_name["good"]["ok"] and by_name["good"]["ratios"]["quick_flag_seen"] == 0.0  # full: no quick flag
    slow = by_name["slow"]
    assert not slow["ok"] and slow["status"].startswith("timeout") and slow["wall_s"] < 30
    assert "timeout after 1.5 s" in (tmp_path / "s.md").read_text()
    with pytest.raises(run_all.UsageError, match="unknown benchmark"):
        run_all.run_all(bench_dir=bench_dir, only="nope", out=None, progress=None)


def test_main_exit_status(run_all, bench_dir, tmp_path, capsys):
    args = ["--bench-dir", str(bench_dir), "--only", "good,bad", "--out", str(tmp_path / "m.md")]
    assert run_all.main(args) == 0  # failures are reported, not fatal
    assert "1 of 2 benchmarks ok" in capsys.readouterr().out
    assert run_all.main(args + ["--strict"]) == 1
    assert run_all.main(["--bench-dir", str(bench_dir), "--skip", "nope"]) == 2
    assert run_all.quick_flag(Path(__file__).resolve().parent.parent / "benchmarks" / "mcmc_throughput.py") == "--quick"
