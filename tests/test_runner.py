"""Chunked MCMC runner: key contract, thinning, statistics, divergences, checkpoints and resume."""

from __future__ import annotations

import os
from typing import NamedTuple

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.errors import DivergenceError, FileFormatError, NotHDF5Error, ParameterError
from phigen.samplers import _checkpoint
from phigen.samplers import runner as runner_mod
from phigen.samplers.runner import InfoSummary, RunConfig, RunResult, run_chain

RHO = 0.8  # AR(1) coefficient of the exact test kernel


class ARState(NamedTuple):
    position: jax.Array  # (C, D)
    t: jax.Array         # (C,) int32 steps taken


class ARInfo(NamedTuple):
    acceptance_rate: jax.Array
    divergent: jax.Array


def ar1_step(key, state):
    """Exact AR(1) kernel x' = ρx + √(1−ρ²)ξ: leaves N(0, 1) invariant, corr at lag k = ρ^k.
    Its fake acceptance (1/(1+t)) lets the test check the runner's per-chain averaging."""
    x = state.position
    x = RHO * x + np.sqrt(1 - RHO ** 2) * jax.random.normal(key, x.shape, x.dtype)
    t = state.t + 1
    c = x.shape[0]
    return ARState(x, t), ARInfo(1.0 / (1.0 + t.astype(jnp.float32)), jnp.zeros((c,), bool))


def ar1_state(n_chains=16, dim=3, seed=0):
    x = np.random.default_rng(seed).standard_normal((n_chains, dim)).astype(np.float32)
    return ARState(jnp.asarray(x), jnp.zeros((n_chains,), jnp.int32))


def observe(state):
    return {"x": state.position, "t": state.t}


# --- the reproducibility contract --------------------------------------------------------------

def test_step_keys_are_fold_in_of_the_step_index():
    state = ar1_state(8)
    cfg = RunConfig(n_steps=23, chunk_size=5, progress=False)
    res = run_chain(jax.random.key(7), ar1_step, state, cfg, observables=observe)
    # the same chain by hand: step t uses fold_in(key, t)
    s = state
    xs = []
    for t in range(23):
        s, _ = ar1_step(jax.random.fold_in(jax.random.key(7), t), s)
        xs.append(np.asarray(s.position))
    np.testing.assert_allclose(res.trace["x"], np.stack(xs), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(res.state.t, 23)
    assert isinstance(res, RunResult) and isinstance(res.info_summary, InfoSummary)
    assert res.n_done == 23


def test_samples_do_not_depend_on_chunk_size_and_the_chunk_fn_compiles_once():
    state = ar1_state(8)
    out = []
    for chunk in (1, 6, 64):
        cfg = RunConfig(n_steps=40, thin=3, burn_in=5, chunk_size=chunk, progress=False)
        out.append(run_chain(jax.random.key(3), ar1_step, state, cfg, observables=observe))
    for r in out[1:]:
        np.testing.assert_array_equal(r.trace["x"], out[0].trace["x"])  # bit for bit
        np.testing.assert_array_equal(r.state.position, out[0].state.position)
    # 40 steps in chunks of 6: the last, shorter chunk is masked, not re-compiled
    fn = runner_mod._chunk_function(observe, 6, 3, 5, True)
    assert fn._cache_size() == 1


def _abs_m(state):
    return {"m": jnp.abs(jnp.mean(state.position, axis=(-2, -1)))}


@pytest.mark.parametrize("kind", ["mala", "hmc"])
def test_a_kappa_scan_compiles_the_chunk_once_and_each_point_samples_its_own_kappa(kind):
    """κ, λ and the step size are traced leaves of the kernel's step: new parameter points reuse
    the compiled chunk, and each point gives exactly what a kernel closed over its constants gives."""
    from phigen.energies import Phi4
    from phigen.samplers import hmc_step, make_kernel, mala_step

    x0 = 0.5 * jax.random.normal(jax.random.key(0), (4, 8, 8), jnp.float32)
    cfg = RunConfig(n_steps=12, chunk_size=5, progress=False)
    extra = {"n_leapfrog": 4} if kind == "hmc" else {}
    points = [(0.20, 0.5, 0.05), (0.26, 1.0, 0.04), (0.30, 0.8, 0.03)]
    results = []
    fn = runner_mod._chunk_function(_abs_m, 5, 1, 0, True)
    before = fn._cache_size()
    for kappa, lam, eps in points:
        kern = make_kernel(kind, Phi4(kappa, lam), step_size=eps, **extra)
        results.append(run_chain(jax.random.key(1), kern, kern.init(x0), cfg, observables=_abs_m))
    assert fn._cache_size() == before + 1  # three (κ, λ, ε) points, one compilation

    kappa, lam, eps = points[1]
    energy = Phi4(kappa, lam)
    if kind == "hmc":
        def closed(key, state):  # a closure: constants baked in, its own compilation
            return hmc_step(key, state, energy, step_size=eps, n_leapfrog=4, jitter=0.2)
    else:
        def closed(key, state):
            return mala_step(key, state, energy, step_size=eps)
    kern = make_kernel(kind, energy, step_size=eps, **extra)
    ref = run_chain(jax.random.key(1), closed, kern.init(x0), cfg, observables=_abs_m)
    np.testing.assert_allclose(results[1].trace["m"], ref.trace["m"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0].trace["m"], results[1].trace["m"])


def test_typed_and_raw_keys_give_the_same_samples():
    state = ar1_state(4)
    cfg = RunConfig(n_steps=10, chunk_size=4, progress=False)
    a = run_chain(jax.random.key(11), ar1_step, state, cfg)
    b = run_chain(jax.random.PRNGKey(11), ar1_step, state, cfg)
    np.testing.assert_array_equal(a.state.position, b.state.position)
    assert a.trace == {} and b.trace == {}  # default: record nothing but the final state


@pytest.mark.parametrize("n_steps,burn_in,thin", [(50, 0, 1), (50, 7, 4), (31, 10, 5), (9, 12, 2)])
def test_thinning_and_burn_in_record_exactly_the_documented_steps(n_steps, burn_in, thin):
    cfg = RunConfig(n_steps=n_steps, burn_in=burn_in, thin=thin, chunk_size=6, progress=False)
    res = run_chain(jax.random.key(0), ar1_step, ar1_state(4), cfg, observables=observe)
    # a record after step t (0-based) holds a state that has taken t + 1 steps
    expected = np.arange(burn_in + thin, n_steps + 1, thin)
    assert res.trace["t"].shape == (cfg.n_recorded, 4) == (expected.size, 4)
    np.testing.assert_array_equal(res.trace["t"], np.repeat(expected[:, None], 4, axis=1))
    assert res.trace["x"].shape == (expected.size, 4, 3) and res.trace["x"].dtype == np.float32


def test_info_summary_averages_the_kernel_acceptance_per_chain():
    n = 30
    res = run_chain(jax.random.key(0), ar1_step, ar1_state(5), RunConfig(n_steps=n, chunk_size=7, progress=False))
    expected = np.mean(1.0 / (1.0 + np.arange(1, n + 1)))  # acceptance 1/(1+t) after step t
    np.testing.assert_allclose(res.info_summary.mean_acceptance, expected, rtol=1e-5)
    np.testing.assert_array_equal(res.info_summary.n_divergent, 0)
    assert res.info_summary.n_steps == n


def test_ar1_trace_has_the_exact_stationary_statistics():
    """From a N(0,1) start every recorded x is N(0,1); records `thin` apart have corr ρ^thin."""
    c, d, thin, n_steps = 64, 4, 2, 4000
    cfg = RunConfig(n_steps=n_steps, thin=thin, chunk_size=500, progress=False)
    x = run_chain(jax.random.key(5), ar1_step, ar1_state(c, d), cfg, observables=observe).trace["x"]
    x = x.astype(np.float64)
    n = x.shape[0]
    r = RHO ** thin
    m = n * c * d
    # variance of the mean of an AR(1) series: (1+r)/(1−r)/n per independent series
    se_mean = np.sqrt((1 + r) / (1 - r) / m)
    assert abs(x.mean()) < 5 * se_mean
    # x² has unit mean and lag-k correlation r^{2k}; Var(x²) = 2
    se_var = np.sqrt(2 * (1 + r ** 2) / (1 - r ** 2) / m)
    assert abs((x ** 2).mean() - 1.0) < 5 * se_var
    lag1 = (x[1:] * x[:-1]).mean()
    # Var(x_t x_{t+1}) = 1 + r²; its autocorrelation decays like r^{2k}, hence the same inflation
    se_lag = np.sqrt((1 + r ** 2) * (1 + r ** 2) / (1 - r ** 2) / m)
    assert abs(lag1 - r) < 5 * se_lag


# --- divergences ---------------------------------------------------------------------------------

def _nan_at(step_index, chain):
    def step(key, state):
        new, info = ar1_step(key, state)
        poison = (new.t == step_index + 1) & (jnp.arange(new.t.shape[0]) == chain)
        return new._replace(position=jnp.where(poison[:, None], jnp.nan, new.position)), info
    return step


def _flag_divergent_at(step_index):
    def step(key, state):
        new, info = ar1_step(key, state)
        return new, info._replace(divergent=(new.t == step_index + 1) & (jnp.arange(new.t.shape[0]) == 1))
    return step


def test_non_finite_state_raises_naming_step_and_step_size(tmp_path):
    path = tmp_path / "run.h5"
    cfg = RunConfig(n_steps=40, chunk_size=5, checkpoint_path=path, progress=False)
    with pytest.raises(DivergenceError, match=r"step 13 with step size 0\.05.*chain\(s\) 2 of 6") as exc:
        run_chain(jax.random.key(0), _nan_at(13, 2), ar1_state(6), cfg, step_size=0.05)
    assert exc.value.step == 13
    # the checkpoint holds the last good chunk boundary (10), never the diverged state
    ck = _checkpoint.load_checkpoint(path, ar1_state(6))
    assert ck.n_done == 10
    assert np.all(np.isfinite(ck.state.position))
    assert not os.path.exists(str(path) + ".tmp")


class EState(NamedTuple):
    position: jax.Array
    energy: jax.Array  # (C,): the runner's cheap per-step finiteness screen
    aux: jax.Array


def test_nan_in_a_leaf_the_per_step_screen_skips_is_caught_at_the_chunk_end():
    def step(key, state):
        x = state.position + 0.1 * jax.random.normal(key, state.position.shape)
        t = state.aux[:, 0] + 1
        aux = jnp.where((t == 8)[:, None] & (jnp.arange(4) == 0)[:, None], jnp.nan, t[:, None])
        return EState(x, jnp.sum(x ** 2, axis=1), aux), ARInfo(jnp.ones(4), jnp.zeros(4, bool))

    s0 = EState(jnp.zeros((4, 2)), jnp.zeros(4), jnp.zeros((4, 1)))
    with pytest.raises(DivergenceError, match=r"between steps 5 and 9.*chain\(s\) 0 of 4"):
        run_chain(jax.random.key(0), step, s0, RunConfig(n_steps=20, chunk_size=5, progress=False))


def test_divergent_flag_raises_or_is_counted():
    cfg = RunConfig(n_steps=20, chunk_size=8, progress=False)
    with pytest.raises(DivergenceError, match="step 4"):
        run_chain(jax.random.key(0), _flag_divergent_at(4), ar1_state(3), cfg)
    cfg = RunConfig(n_steps=20, chunk_size=8, progress=False, stop_on_divergence=False)
    res = run_chain(jax.random.key(0), _flag_divergent_at(4), ar1_state(3), cfg)
    np.testing.assert_array_equal(res.info_summary.n_divergent, [0, 1, 0])


# --- checkpoints and resume ----------------------------------------------------------------------

def _cfg(path, n_steps, **kw):
    return RunConfig(n_steps=n_steps, thin=2, burn_in=3, chunk_size=7, checkpoint_path=path,
                     progress=False, **kw)


def test_resume_after_a_shorter_run_is_bitwise_identical(tmp_path):
    key, state = jax.random.key(42), ar1_state(8)
    full = run_chain(key, ar1_step, state, _cfg(None, 60), observables=observe)
    path = tmp_path / "ck.h5"
    part = run_chain(key, ar1_step, state, _cfg(path, 25), observables=observe)
    assert part.n_done == 25 and part.trace["x"].shape[0] == 11
    resumed = run_chain(key, ar1_step, state, _cfg(path, 60), observables=observe)
    assert resumed.n_done == 60
    for name in ("x", "t"):
        np.testing.assert_array_equal(resumed.trace[name], full.trace[name])
    np.testing.assert_array_equal(resumed.state.position, full.state.position)
    np.testing.assert_array_equal(resumed.info_summary.n_divergent, full.info_summary.n_divergent)
    np.testing.assert_allclose(resumed.info_summary.mean_acceptance, full.info_summary.mean_acceptance,
                               rtol=1e-6)
    # a finished run is answered from its checkpoint without stepping
    again = run_chain(key, ar1_step, state, _cfg(path, 60), observables=observe)
    np.testing.assert_array_equal(again.trace["x"], full.trace["x"])
    with pytest.raises(ParameterError, match="past n_steps=40"):
        run_chain(key, ar1_step, state, _cfg(path, 40), observables=observe)


def test_crash_while_writing_keeps_the_previous_checkpoint_and_resume_is_exact(tmp_path, monkeypatch):
    key, state = jax.random.key(1), ar1_state(4)
    full = run_chain(key, ar1_step, state, _cfg(None, 50), observables=observe)
    path = tmp_path / "ck.h5"
    real_save = _checkpoint.save_checkpoint
    calls = []

    def crashing_save(p, **kw):
        calls.append(kw["n_done"])
        if len(calls) == 3:
            with open(str(p) + ".tmp", "wb") as fh:  # a half-written file, then the "crash"
                fh.write(b"\x89HDF garbage")
            raise KeyboardInterrupt
        real_save(p, **kw)

    monkeypatch.setattr(runner_mod, "save_checkpoint", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        run_chain(key, ar1_step, state, _cfg(path, 50), observables=observe)
    monkeypatch.setattr(runner_mod, "save_checkpoint", real_save)
    assert calls == [7, 14, 21]
    assert _checkpoint.load_checkpoint(path, state).n_done == 14
    resumed = run_chain(key, ar1_step, state, _cfg(path, 50), observables=observe)
    np.testing.assert_array_equal(resumed.trace["x"], full.trace["x"])
    np.testing.assert_array_equal(resumed.state.position, full.state.position)


def test_checkpoint_every_chunks(tmp_path, monkeypatch):
    saved = []
    real_save = _checkpoint.save_checkpoint
    monkeypatch.setattr(runner_mod, "save_checkpoint",
                        lambda p, **kw: (saved.append(kw["n_done"]), real_save(p, **kw)))
    cfg = RunConfig(n_steps=50, chunk_size=7, checkpoint_path=tmp_path / "c.h5", checkpoint_every_chunks=3,
                    progress=False)
    run_chain(jax.random.key(0), ar1_step, ar1_state(2), cfg)
    assert saved == [21, 42, 50]


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    path = tmp_path / "ck.h5"
    state = ar1_state(4)
    run_chain(jax.random.key(0), ar1_step, state, _cfg(path, 14), observables=observe)
    with pytest.raises(ParameterError, match="key_data"):
        run_chain(jax.random.key(1), ar1_step, state, _cfg(path, 28), observables=observe)
    with pytest.raises(ParameterError, match="thin: 2 in the checkpoint vs 3 now"):
        run_chain(jax.random.key(0), ar1_step, state,
                  RunConfig(n_steps=28, thin=3, burn_in=3, chunk_size=7, checkpoint_path=path, progress=False),
                  observables=observe)
    with pytest.raises(ParameterError, match="initial_state_sha256"):
        run_chain(jax.random.key(0), ar1_step, ar1_state(4, seed=9), _cfg(path, 28), observables=observe)
    # resume=False starts over and overwrites
    res = run_chain(jax.random.key(1), ar1_step, state, _cfg(path, 28), observables=observe, resume=False)
    assert _checkpoint.load_checkpoint(path, state).n_done == 28
    fresh = run_chain(jax.random.key(1), ar1_step, state, _cfg(None, 28), observables=observe)
    np.testing.assert_array_equal(res.trace["x"], fresh.trace["x"])


def test_kernel_names_in_fingerprints_and_the_legacy_alias():
    from phigen.samplers import make_kernel
    from phigen.energies import Phi4

    fp = runner_mod._fingerprint(jax.random.key(0), make_kernel("hmc", Phi4(0.2, 0.5), step_size=0.1).step,
                                 ar1_state(2), {}, RunConfig(n_steps=4, progress=False), None)
    assert fp["kernel"] == "_hmc_kernel_step"
    mism = _checkpoint.fingerprint_mismatches
    assert mism({"kernel": "make_kernel.<locals>.step"}, {"kernel": "_hmc_kernel_step"}) == []
    assert mism({"kernel": "make_hmc_cluster_kernel.<locals>.step"}, {"kernel": "_cluster_kernel_step"}) == []
    assert mism({"kernel": "make_kernel.<locals>.step"}, {"kernel": "_cluster_kernel_step"})  # another kind
    assert mism({"kernel": "_mala_kernel_step"}, {"kernel": "_hmc_kernel_step"})


def test_checkpoint_roundtrip_typed_keys_ints_and_bfloat16(tmp_path):
    class S(NamedTuple):
        position: jax.Array
        rng: jax.Array
        count: jax.Array
        low: jax.Array

    s = S(jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3), jax.random.split(jax.random.key(3), 2),
          jnp.array([4, 5], jnp.int32), jnp.array([1.5, -2.25], jnp.bfloat16))
    path = tmp_path / "s.h5"
    trace = {"m": np.ones((3, 2), np.float32)}
    _checkpoint.save_checkpoint(path, state=s, n_done=9, trace=trace, acceptance_sum=[1.0, 2.0],
                                n_divergent=[0, 1], fingerprint={"a": 1})
    ck = _checkpoint.load_checkpoint(path, s)
    assert type(ck.state) is S and ck.n_done == 9 and ck.fingerprint == {"a": 1}
    np.testing.assert_array_equal(jax.random.key_data(ck.state.rng), jax.random.key_data(s.rng))
    assert ck.state.low.dtype == jnp.bfloat16 and ck.state.count.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(ck.state.low, np.float32), [1.5, -2.25])
    np.testing.assert_array_equal(ck.trace["m"], trace["m"])
    with h5py.File(path) as f:  # plain datasets, no pickled objects
        assert sorted(f["state"]) == ["leaf_000", "leaf_001", "leaf_002", "leaf_003"]
    # a template of another structure is refused by name
    with pytest.raises(ParameterError, match="shapes"):
        _checkpoint.load_checkpoint(path, s._replace(position=jnp.zeros((2, 4))))
    with pytest.raises(ParameterError, match="type"):
        _checkpoint.load_checkpoint(path, ar1_state(2))


def test_checkpoint_file_errors(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(NotHDF5Error, match="bad.h5"):
        _checkpoint.load_checkpoint(bad, ar1_state(2))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "phigen-fields"
    with pytest.raises(FileFormatError, match="not a phigen checkpoint"):
        _checkpoint.read_fingerprint(other)


def test_config_and_input_validation():
    with pytest.raises(ParameterError):
        RunConfig(n_steps=10, thin=0)
    with pytest.raises(ParameterError):
        RunConfig(n_steps=-1)
    with pytest.raises(ParameterError, match="key"):
        run_chain(0, ar1_step, ar1_state(2), RunConfig(n_steps=3, progress=False))
    with pytest.raises(ParameterError, match="dict"):
        run_chain(jax.random.key(0), ar1_step, ar1_state(2), RunConfig(n_steps=3, progress=False),
                  observables=lambda s: s.position)
    with pytest.raises(ParameterError, match="RunConfig"):
        run_chain(jax.random.key(0), ar1_step, ar1_state(2), {"n_steps": 3})


def test_progress_bar_reports_steps_and_acceptance(monkeypatch):
    import tqdm.auto

    bars = []

    class RecordingBar:
        def __init__(self, **kw):
            self.kw, self.updates, self.postfix, self.closed = kw, [], None, False
            bars.append(self)

        def update(self, n):
            self.updates.append(n)

        def set_postfix(self, **kw):
            self.postfix = kw

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    run_chain(jax.random.key(0), ar1_step, ar1_state(2), RunConfig(n_steps=10, chunk_size=4), desc="ar1")
    run_chain(jax.random.key(0), ar1_step, ar1_state(2), RunConfig(n_steps=3, progress=False))
    bar, quiet = bars
    assert bar.kw["total"] == 10 and bar.kw["desc"] == "ar1" and bar.updates == [4, 4, 2] and bar.closed
    assert bar.kw["disable"] is None and quiet.kw["disable"] is True  # None: tqdm's "only on a TTY"
    expected = np.mean(1.0 / (1.0 + np.arange(1, 11)))
    assert float(bar.postfix["acc"]) == pytest.approx(expected, abs=1e-3) and bar.postfix["div"] == 0


# --- with phigen's own sampler: the Gaussian free field's exact variance --------------------------

def test_mala_on_the_gaussian_free_field_matches_the_exact_variance():
    from phigen.energies import gaussian_free_field, gff_exact_spectrum
    from phigen.samplers import make_kernel

    L, kappa, c = 6, 0.2, 64
    kernel = make_kernel("mala", gaussian_free_field(kappa), step_size=0.12)
    x0 = jnp.zeros((c, L, L), jnp.float32)
    cfg = RunConfig(n_steps=3000, burn_in=300, thin=5, chunk_size=1000, progress=False)
    res = run_chain(jax.random.key(2), kernel, x0, cfg, step_size=0.12,
                    observables=lambda s: {"phi2": jnp.mean(s.position ** 2, axis=(-2, -1))})
    q = res.trace["phi2"].astype(np.float64)  # (n, C) site-averaged φ²
    exact = gff_exact_spectrum(L, kappa).mean()
    # chains are independent: standard error from the spread of the per-chain time averages
    per_chain = q.mean(axis=0)
    se = per_chain.std(ddof=1) / np.sqrt(c)
    assert abs(q.mean() - exact) < 4 * se, (q.mean(), exact, se)
    assert 0.4 < res.info_summary.mean_acceptance.mean() < 0.99
