"""The test session's own scheduling (conftest.py, _xdist_whole_files.py): a worker that crashes is
replaced, its unfinished files run, the test it crashed on runs once more, and a test that crashes
every time still fails the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

HERE = Path(__file__).resolve().parent

CRASH_ONCE = """
import os, pathlib
FLAG = pathlib.Path(os.environ["CRASH_FLAG_DIR"]) / "{name}"
def test_before(): pass
def test_crashes_once():
    if not FLAG.exists():
        FLAG.write_text("crashed")
        os._exit(11)
def test_after(): pass
"""
CRASH_ALWAYS = """
import os
def test_crashes_always(): os._exit(11)
def test_after(): pass
"""


def _suite(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "suite"
    (root / "tests").mkdir(parents=True)
    for name in ("conftest.py", "_xdist_whole_files.py"):
        shutil.copy(HERE / name, root / "tests" / name)
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\naddopts = "-p no:cacheprovider"\n')
    for name, text in files.items():
        (root / "tests" / name).write_text(text)
    (tmp_path / "flags").mkdir()
    return root


def _run(root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    # an outer xdist worker's PYTEST_* variables must not leak into the inner session
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["CRASH_FLAG_DIR"] = str(tmp_path / "flags")
    return subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-q", "-rA"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=240)


def test_a_crash_reruns_its_test_and_the_run_passes(tmp_path):
    files = {f"test_pass_{i}.py": "def test_a(): pass\ndef test_b(): pass\n" for i in range(4)}
    files["test_one_crash.py"] = CRASH_ONCE.format(name="one")
    files["test_single.py"] = CRASH_ONCE.format(name="single").replace("def test_before(): pass\n", "").replace(
        "def test_after(): pass\n", "")  # a file of one test: its worker must not wait for a next one
    proc = _run(_suite(tmp_path, files), tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "12 passed, 2 rerun" in out, out
    assert sorted(p.name for p in (tmp_path / "flags").iterdir()) == ["one", "single"]


def test_a_test_that_always_crashes_fails_and_the_rest_runs(tmp_path):
    files = {f"test_pass_{i}.py": "def test_a(): pass\n" for i in range(3)}
    files["test_always.py"] = CRASH_ALWAYS
    proc = _run(_suite(tmp_path, files), tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 4 passed, 1 rerun" in out, out
    assert "FAILED tests/test_always.py::test_crashes_always" in out
