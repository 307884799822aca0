"""Test-session settings shared by every test file."""

from __future__ import annotations


def pytest_configure(config):
    # ``-n auto`` balances single tests over the xdist workers, so a module fixture (a fitted model)
    # was built once per worker that got one of its tests (WC-RG's φ⁴ fixture: 2 × 120 s). Whole files
    # per worker build each fixture once. An explicit ``--dist`` other than plain load is left alone.
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadfile"
