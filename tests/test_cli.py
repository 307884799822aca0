"""The command line: verbs work, errors are one line with the right exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import phigen.io as pio
from phigen.cli import main


def _run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_info_validate(tmp_path, capsys):
    f = tmp_path / "g.h5"
    code, out, err = _run(["generate", "gaussian", "--size", "32", "-n", "20", "-o", str(f), "--slope", "3",
                           "--seed", "4", "--quiet"], capsys)
    assert code == 0, err
    assert "wrote 20 gaussian" in out
    code, out, _ = _run(["info", str(f)], capsys)
    assert code == 0 and "gaussian" in out and "slope=3.0" in out and "20 × (32, 32)" in out
    code, out, _ = _run(["info", str(f), "--as-json"], capsys)
    assert json.loads(out)["params"]["slope"] == 3.0
    code, out, _ = _run(["validate", str(f), "--json", str(tmp_path / "v.json")], capsys)
    assert code == 0 and "OK (20 samples" in out
    assert json.loads((tmp_path / "v.json").read_text())["ok"] is True
    # same seed -> same bytes; finished file not overwritten without --overwrite
    code, _, err = _run(["generate", "gaussian", "--size", "32", "-n", "20", "-o", str(f), "--quiet"], capsys)
    assert code == 1 and err.startswith("phigen: error:") and "--overwrite" in err and err.count("\n") == 1
    g = tmp_path / "g2.h5"
    _run(["generate", "gaussian", "--size", "32", "-n", "20", "-o", str(g), "--slope", "3", "--seed", "4",
          "--quiet", "--batch-size", "256"], capsys)
    assert pio.read_fields(f).tobytes() == pio.read_fields(g).tobytes()


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("plain text"), "not an HDF5 file"),
        (lambda p: h5py.File(p, "w").close(), "not a phigen-fields file"),
    ],
    ids=["missing", "not-hdf5", "not-phigen"],
)
@pytest.mark.parametrize("verb", ["info", "validate", "stats"])
def test_bad_files_one_line_errors(tmp_path, capsys, make, needle, verb):
    p = tmp_path / "bad.h5"
    make(p)
    code, out, err = _run([verb, str(p)], capsys)
    assert code == 1
    assert err.startswith("phigen: error:") and needle in err and str(p) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_validate_flags_corrupted_data(tmp_path, capsys):
    p = pio.write_fields(tmp_path / "a.h5", np.ones((3, 8, 8), np.float32))
    with h5py.File(p, "r+") as h5:
        h5["fields"][1, 0, 0] = np.nan
    code, _, err = _run(["validate", str(p)], capsys)
    assert code == 1 and "NaN" in err


def test_bad_usage_exit_2(capsys):
    code, _, err = _run(["generate", "gaussian", "--size", "abc"], capsys)
    assert code == 2 and err.startswith("phigen: error:") and err.count("\n") == 1
    code, _, err = _run(["frobnicate"], capsys)
    assert code == 2


def test_bad_parameters_exit_1(tmp_path, capsys):
    code, _, err = _run(["generate", "gaussian", "--size", "2", "-n", "3", "-o", str(tmp_path / "x.h5")], capsys)
    assert code == 1 and "size" in err
    code, _, err = _run(["generate", "nonsense", "--size", "8", "-n", "3", "-o", str(tmp_path / "x.h5")], capsys)
    assert code == 1 and "unknown field kind" in err
    assert not (tmp_path / "x.h5").exists()


def test_console_script_installed():
    r = subprocess.run([sys.executable, "-m", "phigen.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("phigen ")


def test_closed_pipe_is_not_an_error():
    # `phigen info FILE | head`: the reader closes the pipe before phigen writes; exit 0, nothing on stderr
    proc = subprocess.Popen([sys.executable, "-m", "phigen.cli", "info", "data/phi4_64.h5"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(Path(__file__).parents[1]))
    proc.stdout.close()  # before the interpreter has even imported phigen
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == ""


def test_stats_writes_json_and_pngs(tmp_path, capsys):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["generate", "gaussian", "--size", "32", "-n", "40", "-o", str(a), "--slope", "3", "--quiet"]) == 0
    assert main(["generate", "gaussian", "--size", "32", "-n", "20", "-o", str(b), "--slope", "2", "--seed", "1",
                 "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "rep"
    code, stdout, err = _run(["stats", str(b), "--ref", str(a), "--out", str(out), "--json", str(tmp_path / "s.json"),
                              "--quiet"], capsys)
    assert code == 0, err
    d = json.loads((tmp_path / "s.json").read_text())
    ps = d["comparison"]["power_spectrum"]["distances"]["chi2"]
    assert ps["model"] > 5 * ps["null_p95"] and ps["verdict"] == "off"  # slope 2 vs 3: far beyond the null
    assert "power_spectrum" in stdout and "null" in stdout and "off" in stdout
    import matplotlib.image as mpimg

    for name in ("fields", "power_spectrum", "pdf", "minkowski", "bispectrum", "flatness"):
        img = mpimg.imread(out / f"{name}.png")
        assert img.shape[0] > 100 and img.shape[1] > 100
    # without --ref: statistics only
    code, _, _ = _run(["stats", str(a), "--json", str(tmp_path / "t.json")], capsys)
    assert code == 0 and "comparison" not in json.loads((tmp_path / "t.json").read_text())


def test_stats_shape_mismatch(tmp_path, capsys):
    a = pio.write_fields(tmp_path / "a.h5", np.random.default_rng(0).normal(size=(4, 16, 16)).astype(np.float32))
    b = pio.write_fields(tmp_path / "b.h5", np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32))
    code, _, err = _run(["stats", str(a), "--ref", str(b)], capsys)
    assert code == 1 and "(16, 16)" in err and err.count("\n") == 1


def test_every_cli_verb_has_a_python_twin():
    import phigen

    for name in ("generate", "info", "validate", "stats_report", "binder_crossing", "fit", "sample", "quickstart",
                 "compare_models", "check_file", "generalisation"):
        assert callable(getattr(phigen, name)), name
    assert phigen.generate.__module__ == "phigen.generators"


def test_json_safe_takes_jax_arrays_and_named_tuples():
    import json
    from typing import NamedTuple

    import jax.numpy as jnp

    from phigen._json import json_safe

    class Pair(NamedTuple):
        a: object
        b: object

    out = json_safe({"x": jnp.arange(3.0), "p": Pair(np.float32(np.inf), [np.int64(2), Path("f.h5")]),
                     "t": (1, np.bool_(True))})
    assert out == {"x": [0.0, 1.0, 2.0], "p": {"a": None, "b": [2, "f.h5"]}, "t": [1, True]}
    json.dumps(out, allow_nan=False)
