"""Test-session settings and fixtures shared by every test file.

- Scheduling: ``-n auto`` runs whole files per xdist worker (a module fixture is built once), the
  longest files first (:data:`_FILE_SECONDS`), so that no worker idles at the end waiting for a long
  file started late.
- A crashed worker is replaced and its unfinished files go back on the queue; the test it crashed on
  runs once more (``RERUN`` in the report) and fails only if it crashes again
  (:mod:`_xdist_whole_files`: xdist 3.8's own whole-file scheduler hangs or stops the run there).
- JAX's persistent compilation cache is off unless ``PHIGEN_TEST_JAX_CACHE=DIR`` asks for it:
  jaxlib 0.10's CPU executable serialisation crashed a worker in two of about a dozen cold-cache
  runs (``compilation_cache.put_executable_and_time``), for a few minutes saved.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Seconds per test file (README test command with --junitxml on a fresh clone, 2026-12-07, no
# persistent compilation cache, 2 cores). Only the order matters: a file
# missing here counts as short. Re-measure with --junitxml when files change a lot.
_FILE_SECONDS = {
    "test_docs.py": 178, "test_rg_wcrg.py": 176, "test_flows.py": 133,
    "test_scattering_canonical.py": 88, "test_rg_score.py": 71, "test_scattering_models.py": 65,
    "test_rg_conditional.py": 85, "test_quickstart.py": 52, "test_vae_gan.py": 48,
    "test_scattering_single_map.py": 48, "test_samplers.py": 41, "test_compare.py": 39,
    "test_maxent_selection.py": 38, "test_scale_out.py": 36, "test_scattering_spectra.py": 34,
    "test_scattering_detail_power.py": 30, "test_scattering_morphology.py": 27,
    "test_phi4_generate.py": 25, "test_diffusion.py": 25,
    "test_turbulence.py": 23, "test_cosmic_web.py": 23, "test_phi4_observables.py": 22,
    "test_wavelets.py": 22, "test_scattering_peak_counts.py": 22, "test_energies.py": 22,
    "test_rng.py": 21, "test_numpyro_route.py": 20, "test_distributed_mcmc.py": 20,
    "test_runner.py": 19, "test_diffusion_conditional.py": 17, "test_cli.py": 16, "test_cluster.py": 16,
    "test_models.py": 15, "test_compare_conditions.py": 13, "test_scattering_lbfgs.py": 13,
    "test_stats.py": 13, "test_scattering_shell_power.py": 13, "test_superres.py": 12,
    "test_sharding.py": 11, "test_xdist_crash_rerun.py": 19, "test_plot.py": 11, "test_generalisation.py": 9,
    "test_reference_128.py": 7,
    "test_unet.py": 7, "test_groups.py": 7, "test_run_all.py": 6, "test_peaks.py": 5,
    "test_gaussian_fields.py": 5,
}


def pytest_configure(config):
    # ``-n auto`` balances single tests over the xdist workers, so a module fixture (a fitted model)
    # was built once per worker that got one of its tests (WC-RG's φ⁴ fixture: 2 × 120 s). Whole files
    # per worker build each fixture once. An explicit ``--dist`` other than plain load is left alone.
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadfile"
    if getattr(config.option, "dist", "no") == "loadfile":
        # xdist would reorder files by their number of tests; ours is by measured time (below)
        config.option.loadscopereorder = False
    if getattr(config.option, "dist", "no") == "loadfile" and getattr(config.option, "numprocesses", None):
        from _xdist_whole_files import CrashRerunReporting

        config.pluginmanager.register(CrashRerunReporting(), "phigen-crash-rerun")
    cache = os.environ.get("PHIGEN_TEST_JAX_CACHE", "off")
    if cache != "off":
        import jax

        jax.config.update("jax_compilation_cache_dir", cache)
        # CPU kernels here compile in 0.1–5 s: cache all but the trivial ones
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadfile":
        from _xdist_whole_files import WholeFileScheduling

        return WholeFileScheduling(config, log)
    return None


def pytest_collection_modifyitems(session, config, items):
    # longest files first (stable: the tests of a file keep their order)
    items.sort(key=lambda item: -_FILE_SECONDS.get(Path(str(item.fspath)).name, 0))


# ---- shared fixtures ------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmarks/x.py")``: a script of the repository (not a package module) imported as
    a module, once per session and path, for tests of its helpers."""
    import importlib.util

    loaded = {}

    def load(relative_path: str):
        if relative_path not in loaded:
            path = ROOT / relative_path
            name = "phigen_script_" + "".join(c if c.isalnum() else "_" for c in relative_path)
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            loaded[relative_path] = mod
        return loaded[relative_path]

    return load


@pytest.fixture(scope="session")
def gaussian_fields():
    """``make(n, size, slope=2.0, seed=0) -> (n, size, size)`` float32 Gaussian fields with P(k) ∝ k^-slope
    (the closed-form reference of many statistical tests)."""
    import jax

    from phigen.fields.gaussian import gaussian_field, power_law_spectrum

    def make(n: int, size: int, slope: float = 2.0, seed: int = 0, **spectrum_kw):
        return np.asarray(gaussian_field(jax.random.PRNGKey(seed), n, size, power_law_spectrum(slope, **spectrum_kw)))

    return make


@pytest.fixture(scope="session")
def host_devices():
    """``run(code, n_devices, *argv, timeout=300) -> report``: run Python ``code`` in a child process
    that sees ``n_devices`` CPU devices (``XLA_FLAGS`` must be set before jax is imported, so a
    child, not this process) with ``argv`` as ``sys.argv[1:]``; the child prints one line
    ``REPORT{json}``, returned as a dict. A failing child fails the test with its stderr."""
    import json
    import subprocess
    import sys
    import textwrap

    import jax

    def run(code: str, n_devices: int, *argv, timeout: float = 300) -> dict:
        env = dict(os.environ)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n_devices}").strip()
        env["JAX_PLATFORMS"] = "cpu"
        cache = jax.config.jax_compilation_cache_dir
        if cache:  # the child shares the run's compilation cache
            env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, argv)], env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-4000:]
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT"))
        return json.loads(line[len("REPORT"):])

    return run


@pytest.fixture(scope="module")
def register_test_model():
    """``register_test_model(kind)``: the ``register_model(kind)`` decorator for a test-only model
    (checked against the protocol like any other), removed from the registry after the module."""
    from phigen.models import MODELS, register_model

    added = []

    def register(kind: str):
        decorate = register_model(kind)

        def wrapper(cls):
            out = decorate(cls)
            added.append(kind)
            return out

        return wrapper

    yield register
    for kind in added:
        MODELS.pop(kind, None)
