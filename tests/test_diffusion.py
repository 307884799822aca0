"""Score diffusion and flow matching: samplers against the exact Gaussian score (spectra within
standard errors, measured convergence orders), short training on Gaussian fields, resumable
training, model files and the CLI.

Sampler tests use standardised 16×16 Gaussian fields with P(k) ∝ k^-2 exp(-(k/1.5)²) (unit pixel
variance). The spectrum error of a set of samples is measured per isotropic shell b as the z-score
``(P̂_b − P_b)/SE_b`` (SE from the spread across samples) and as the mean relative error
``mean_b |P̂_b/P_b − 1|``. They run on 512 fields by default; the 2048-field versions (z-scores with half
the standard errors, the SDE's weak order at a 2× lower noise floor) are marked slow.

The training tests fit one small network (8×8 fields of the same spectrum, a UNet of depth 1 and width
8, 300 steps) and share it: compiling its training step and its sampler is what they cost.
"""

from __future__ import annotations

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phigen.io as pio
from phigen import errors as E
from phigen.cli import main
from phigen.diffusion import (denoised_spectrum, flow_sample, flow_time_grid, gaussian_score, gaussian_velocity,
                              marginal_spectrum, probability_flow_sample, reverse_sde_sample, spectrum_grid,
                              time_grid)
from phigen.diffusion.models import DiffusionModel, FlowMatchingModel
from phigen.fields.gaussian import gaussian_field, power_law_spectrum
from phigen.models import GaussianSpectrumModel, load_model, write_model_file
from phigen.stats import isotropic_average, power_spectrum

L = 16
L_FIT = 8  # the training tests' fields: compiling the network costs ≈ 3× less than on 16×16
T_MIN = 1e-3
SPEC = power_law_spectrum(2.0, k_cut=1.5)


@pytest.fixture(scope="module")
def P():
    p = spectrum_grid(SPEC, L)
    return p / (p.sum() / L**2)  # unit pixel variance: what the models' networks see


def _shell_errors(x, target2d):
    """(z-scores per shell, mean relative error) of the samples' spectrum against a 2D target."""
    pw = np.asarray(power_spectrum(np.asarray(x)).power, np.float64)
    mean, se = pw.mean(0), pw.std(0, ddof=1) / np.sqrt(len(pw))
    truth = np.asarray(isotropic_average(target2d).power, np.float64)[0]
    return (mean - truth) / se, float(np.mean(np.abs(mean / truth - 1)))


def _padded(ts, length):
    """The time grid ``ts`` padded to ``length`` steps by steps of zero length, which leave x unchanged (every
    sampler here moves x by h·(…) and Euler–Maruyama's noise by √(2h)·ξ): the grids of a convergence study
    then run through ONE compiled scan instead of one per step count."""
    return np.concatenate([ts, np.full(length + 1 - len(ts), ts[-1], np.float32)])


def _order(ns, errs):
    """Least-squares slope of log(error) against log(1/steps)."""
    return float(-np.polyfit(np.log(ns), np.log(errs), 1)[0])


# --- samplers with the exact score ----------------------------------------------------------------
FIELDS = [512, pytest.param(2048, marks=pytest.mark.slow)]
CONV_FIELDS = 64  # the deterministic samplers' convergence studies (no sample noise in them)


@pytest.mark.parametrize("n_fields", FIELDS)
def test_probability_flow_ode_matches_spectrum_and_is_second_order(P, n_fields):
    score = gaussian_score(P)
    x_T = jax.random.normal(jax.random.PRNGKey(0), (n_fields, L, L))
    run = jax.jit(lambda x, ts: probability_flow_sample(score, x, ts)[0])
    # accuracy: with 128 Heun steps the samples' spectrum is the exact marginal at t_min (z-scores: the
    # bounds are in units of the standard error of n_fields samples)
    z, rel = _shell_errors(run(x_T, time_grid(128, T_MIN)), marginal_spectrum(P, T_MIN))
    assert np.max(np.abs(z)) < 4.0 and np.sqrt(np.mean(z**2)) < 2.0, z
    # convergence: the same x_T for every grid, so the error against a 512-step reference is pure
    # discretisation error (for this linear flow the sample noise cancels mode by mode: CONV_FIELDS do as many
    # as 2048, the errors agree to 4 digits)
    xc = x_T[:CONV_FIELDS]
    ref = np.asarray(power_spectrum(np.asarray(run(xc, time_grid(512, T_MIN)))).power).mean(0)
    ns, errs = [8, 16, 32, 64], []
    for n in ns:
        p = np.asarray(power_spectrum(np.asarray(run(xc, _padded(time_grid(n, T_MIN), ns[-1])))).power).mean(0)
        errs.append(np.mean(np.abs(p / ref - 1)))
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    order = _order(ns[1:], errs[1:])
    assert 1.7 < order < 2.4, (order, errs)


@pytest.mark.parametrize("n_fields", FIELDS)
def test_reverse_sde_matches_spectrum_and_is_first_order(P, n_fields):
    score = gaussian_score(P)
    x_T = jax.random.normal(jax.random.PRNGKey(1), (n_fields, L, L))
    run = jax.jit(lambda x, ts: reverse_sde_sample(score, x, jax.random.PRNGKey(2), ts)[0])
    target = marginal_spectrum(P, T_MIN)
    z, _ = _shell_errors(run(x_T[:1024], time_grid(512, T_MIN)), target)
    assert np.max(np.abs(z)) < 4.0 and np.sqrt(np.mean(z**2)) < 2.0, z
    # weak error of Euler–Maruyama: the bias (≈ 4 % at 128 steps) halves per doubling. The noise floor of the
    # error is 0.6 % × √(2048/n_fields): 0.6 % for 2048 fields, 1.2 % for 512 (still ≤ 1/3 of the smallest
    # bias); the fitted order measured on 512 fields with three other seeds: 1.02-1.09 (2048: 1.035-1.038).
    ns = [16, 32, 64, 128]
    errs = [_shell_errors(run(x_T, _padded(time_grid(n, T_MIN), ns[-1])), target)[1] for n in ns]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    order = _order(ns, errs)
    assert 0.8 < order < 1.25, (order, errs)


def test_tweedie_denoising_and_time_grids(P):
    score = gaussian_score(P)
    x_T = jax.random.normal(jax.random.PRNGKey(3), (512, L, L))  # max |z| against the noisy marginal: 5·10⁶
    t_end = 0.02  # a visible denoising effect: s² = 0.04 against P at high k
    x, _ = jax.jit(lambda x: probability_flow_sample(score, x, time_grid(128, t_end), denoise=True))(x_T)
    z, _ = _shell_errors(x, denoised_spectrum(P, t_end))
    assert np.max(np.abs(z)) < 4.0, z
    z_raw, _ = _shell_errors(x, marginal_spectrum(P, t_end))  # and it is not the noisy marginal
    assert np.max(np.abs(z_raw)) > 10.0
    for kind in ("log", "uniform", "quadratic"):
        ts = time_grid(10, 1e-3, 5.0, kind)
        assert ts.shape == (11,) and ts[0] == np.float32(5.0) and ts[-1] == np.float32(1e-3)
        assert np.all(np.diff(ts) < 0)
    with pytest.raises(E.ParameterError):
        time_grid(10, kind="cubic")
    with pytest.raises(E.ParameterError):
        time_grid(10, 1.0, 0.5)


@pytest.mark.parametrize("n_fields", FIELDS)
def test_flow_samplers_with_exact_velocity(P, n_fields):
    # the velocity of modes with tiny P is stiff near t = 1 (gain ≈ −1/(1 − t)): the cosine grid
    # refines both ends. As for the ODE above, the orders compare runs from the same x0 (no sample noise).
    velocity = gaussian_velocity(P)
    x0 = jax.random.normal(jax.random.PRNGKey(4), (n_fields, L, L))
    run = {m: jax.jit(lambda x, ts, m=m: flow_sample(velocity, x, ts, method=m)[0]) for m in ("heun", "euler")}
    z, _ = _shell_errors(run["heun"](x0, flow_time_grid(128, "cosine")), P)
    assert np.max(np.abs(z)) < 4.0 and np.sqrt(np.mean(z**2)) < 2.0, z
    x0 = x0[:CONV_FIELDS]
    ref = np.asarray(power_spectrum(np.asarray(run["heun"](x0, flow_time_grid(512, "cosine")))).power).mean(0)
    orders = {}
    for m, ns in (("heun", [16, 32, 64]), ("euler", [32, 64, 128])):
        grids = [_padded(flow_time_grid(n, "cosine"), ns[-1]) for n in ns]
        errs = [np.mean(np.abs(np.asarray(power_spectrum(np.asarray(run[m](x0, ts))).power).mean(0) / ref - 1))
                for ts in grids]
        assert errs[0] > errs[1] > errs[2], (m, errs)
        orders[m] = _order(ns, errs)
    assert 1.7 < orders["heun"] < 2.4 and 0.8 < orders["euler"] < 1.25, orders


# --- training -------------------------------------------------------------------------------------
FIT = dict(steps=300, batch_size=16, width=8, depth=1, chunk=100, learning_rate=3e-3, warmup=20)


@pytest.fixture(scope="module")
def gauss_data(tmp_path_factory):
    # not standardised (mean 1, std ≈ 3): the model must standardise and undo it
    x = 1.0 + 3.0 * np.asarray(gaussian_field(jax.random.PRNGKey(10), 256, L_FIT, SPEC))
    path = tmp_path_factory.mktemp("diff") / "g.h5"
    pio.write_fields(path, x, field="gaussian", params={"slope": 2.0})
    return path, x


@pytest.fixture(scope="module")
def trained(gauss_data):
    _, x = gauss_data
    return DiffusionModel.fit(x, key=jax.random.PRNGKey(11), progress=False, **FIT)


def _log_spectrum_error(y, x):
    """RMS over the shells |k| ≤ π of log(P̂_samples / P̂_truth). The corner shells beyond hold modes of
    standardised power < 2·10⁻³ (7·10⁻⁶ in the last), below the noise s²(t_min) = 2·10⁻³ where training
    stops: no network learns them in a short fit, and on 8×8 fields (3 of 6 shells) they would dominate the
    RMS (log-ratios up to 7 there, ≤ 0.45 below π)."""
    sy, sx = power_spectrum(np.asarray(y)), power_spectrum(np.asarray(x))
    keep = np.asarray(sx.k) <= np.pi
    py, px = (np.asarray(s.power).mean(0)[keep] for s in (sy, sx))
    return float(np.sqrt(np.mean(np.log(py / px) ** 2)))


def test_short_training_reduces_loss_and_beats_initial_noise(trained, gauss_data):
    _, x = gauss_data
    m = trained
    assert m.losses.shape == (300,) and m.n_params == m.training["n_params"] > 1000
    # the loss of the first 20 steps (≈1 for an untrained v-predictor) against the last 50 (the exact
    # Gaussian score would reach 0.64 of it: measured 0.71-0.75 over 4 seeds)
    assert m.losses[-50:].mean() < 0.8 * m.losses[:20].mean(), (m.losses[:20].mean(), m.losses[-50:].mean())
    assert abs(m.mean - x.mean()) < 1e-4 and abs(m.std - x.std()) < 1e-4
    y = np.asarray(m.sample(128, key=jax.random.PRNGKey(12), sampler="ode", nfe=21))
    assert y.shape == (128, L_FIT, L_FIT) and np.all(np.isfinite(y))
    # the initial noise: what the untrained model samples (score −x: white noise with the data's mean/std);
    # measured e_model / e_noise 0.08-0.18 over 4 seeds
    noise = m.mean + m.std * np.asarray(jax.random.normal(jax.random.PRNGKey(13), (128, L_FIT, L_FIT)))
    e_model, e_noise = _log_spectrum_error(y, x), _log_spectrum_error(noise, x)
    assert e_model < 0.6 * e_noise, (e_model, e_noise)
    assert abs(y.mean() - x.mean()) < 0.3 * x.std() and 0.7 < y.std() / x.std() < 1.3


def test_resumed_training_equals_uninterrupted(trained, gauss_data, tmp_path):
    _, x = gauss_data
    ck = tmp_path / "ck.h5"
    half = DiffusionModel.fit(x, key=jax.random.PRNGKey(11), progress=False, checkpoint=ck, stop_at=100, **FIT)
    assert half.losses.shape == (100,) and ck.exists()
    resumed = DiffusionModel.fit(x, key=jax.random.PRNGKey(11), progress=False, checkpoint=ck, **FIT)
    np.testing.assert_allclose(resumed.losses, trained.losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.net), jax.tree_util.tree_leaves(trained.net)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # a checkpoint of another configuration is refused, not silently mixed in
    with pytest.raises(E.ModelFileError, match="another configuration"):
        DiffusionModel.fit(x, key=jax.random.PRNGKey(11), progress=False, checkpoint=ck, **{**FIT, "steps": 400})


def test_save_load_and_cli_sample(trained, tmp_path):
    path = trained.save(tmp_path / "m.h5")
    m2 = load_model(path)
    assert isinstance(m2, DiffusionModel) and m2.n_params == trained.n_params
    assert (m2.mean, m2.std, m2.field_shape) == (trained.mean, trained.std, trained.field_shape)
    key = jax.random.fold_in(jax.random.PRNGKey(0), 0)  # what `phigen sample --seed 0` uses for batch 0
    out = tmp_path / "s.h5"
    assert main(["sample", str(path), "-n", "128", "--batch-size", "128", "--sampler", "ode", "--nfe", "21",
                 "-o", str(out), "--quiet"]) == 0  # from the loaded file
    with pio.open_fields(out) as ds:
        assert len(ds) == 128 and ds.generator == "phigen.models:diffusion"
        np.testing.assert_allclose(ds[:], np.asarray(trained.sample(128, key=key, nfe=21)), rtol=1e-6, atol=1e-6)
    with pytest.raises(E.ParameterError):
        m2.sample(4, key=key, sampler="langevin")


def test_model_file_errors(trained, gauss_data, tmp_path):
    data_path, x = gauss_data
    good = trained.save(tmp_path / "m.h5")
    with pytest.raises(E.ModelFileError, match="not a 'flow-matching' model"):
        FlowMatchingModel.load(good)
    GaussianSpectrumModel.fit(x, key=jax.random.PRNGKey(0)).save(tmp_path / "g.h5")
    with pytest.raises(E.ModelFileError, match="not a 'diffusion' model"):
        DiffusionModel.load(tmp_path / "g.h5")
    with pytest.raises(E.ModelFileError, match="fields file, not a model"):
        DiffusionModel.load(data_path)
    # corrupted network bytes: the fletcher32 checksum catches them
    bad = tmp_path / "bad.h5"
    bad.write_bytes(good.read_bytes())
    with h5py.File(bad, "r") as h5:
        offset = h5["modules/net"].id.get_chunk_info(0).byte_offset  # chunked: fletcher32 needs chunks
    raw = bytearray(bad.read_bytes())
    raw[offset + 100:offset + 108] = b"\xff" * 8
    bad.write_bytes(bytes(raw))
    with pytest.raises(E.ModelFileError):
        DiffusionModel.load(bad)
    # a truncated file
    (tmp_path / "trunc.h5").write_bytes(good.read_bytes()[:2000])
    with pytest.raises(E.ModelFileError):
        load_model(tmp_path / "trunc.h5")
    # a network of another shape than the config says
    write_model_file(tmp_path / "mismatch.h5", "diffusion",
                     config={"unet": {**trained.unet_config.to_dict(), "width": 4}, "shape": [L_FIT, L_FIT]},
                     arrays={"mean": 0.0, "std": 1.0}, modules={"net": trained.net})
    with pytest.raises(E.ModelFileError, match="does not match"):
        DiffusionModel.load(tmp_path / "mismatch.h5")


@pytest.mark.slow
def test_flow_matching_training_and_cli_fit(gauss_data, tmp_path):
    data_path, x = gauss_data
    m = FlowMatchingModel.fit(x, key=jax.random.PRNGKey(20), progress=False, **FIT)
    assert m.losses[-50:].mean() < 0.8 * m.losses[:20].mean()
    y = np.asarray(m.sample(128, key=jax.random.PRNGKey(21), nfe=20))
    noise = m.mean + m.std * np.asarray(jax.random.normal(jax.random.PRNGKey(22), (128, L_FIT, L_FIT)))
    assert _log_spectrum_error(y, x) < 0.6 * _log_spectrum_error(noise, x)
    with pytest.raises(E.ParameterError, match="no SDE"):
        m.sample(4, key=jax.random.PRNGKey(0), sampler="sde")
    out = tmp_path / "fm.h5"
    assert main(["fit", "flow-matching", str(data_path), "--steps", "20", "--batch-size", "8", "--set", "width=4",
                 "--set", "depth=2", "-o", str(out), "--quiet"]) == 0
    assert isinstance(load_model(out), FlowMatchingModel)
    assert main(["fit", "diffusion", str(data_path), "--steps", "20", "--set", "width=4", "--set", "depth=2",
                 "-o", str(tmp_path / "d.h5"), "--quiet"]) == 0
    assert main(["sample", str(tmp_path / "d.h5"), "-n", "8", "--sampler", "sde", "--nfe", "10",
                 "-o", str(tmp_path / "ds.h5"), "--quiet"]) == 0


@pytest.mark.parametrize("denoise", [False, True])
def test_one_call_site_heun_equals_heun_then_tweedie(P, denoise):
    """The models' sampler (one network call site per scan step) is Heun's probability flow followed,
    with ``denoise``, by Tweedie's step: the same values up to float32 rounding."""
    from phigen.diffusion.models import _heun_one_call_site
    from phigen.diffusion.sde import tweedie_denoise

    score = gaussian_score(P)
    x_T = jnp.asarray(np.random.default_rng(3).standard_normal((8, L, L)), jnp.float32)  # no RNG kernel to compile
    times = time_grid(12, T_MIN)

    @jax.jit  # one compilation for both (eagerly, every small operation compiles on its own)
    def ref_and_got(x):
        ref, _ = probability_flow_sample(score, x, times)
        if denoise:
            ref = tweedie_denoise(score, ref, times[-1])
        return ref, _heun_one_call_site(score, x, times, denoise)

    ref, got = ref_and_got(x_T)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(ref))))
    # and it really moved: not the starting noise
    assert float(jnp.mean((got - x_T) ** 2)) > 0.1
