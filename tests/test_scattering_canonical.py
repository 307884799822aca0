"""The canonical (Gibbs) twin of the microcanonical scattering model, ``mode="canonical"``.

Small (16², J = 2) Gaussian fields whose spectrum is cut off sharply at |k| = 2 (so the band is a
strict part of the grid): gradients against autodiff in both modes, the latent round trip, band
respect, the spectrum per shell against the closed form, save/load identity, bad input. Quality on
turbulence lives in benchmarks/rg_vs_diffusion.py and docs/scattering.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen import errors as E
from phigen.fields.gaussian import gaussian_field
from phigen.models import fit, load_model
from phigen.scattering import ScatteringModel
from phigen.scattering.canonical import canonical_energy, field_to_latent, reference_amplitude
from phigen.scattering.maxent import latent_to_field
from phigen.stats import isotropic_average, power_spectrum, wavenumbers

SIZE, J, K_CUT = 16, 2, 2.0


def _spectrum(k):
    k = jnp.asarray(k)
    return jnp.where((k > 0) & (k < K_CUT), 1.0 / jnp.maximum(k, 1e-3) ** 2, 0.0)


@pytest.fixture(scope="module")
def data():
    return np.asarray(gaussian_field(jax.random.PRNGKey(0), 96, SIZE, _spectrum))


@pytest.fixture(scope="module")
def model(data):
    return ScatteringModel.fit(data, key=jax.random.PRNGKey(0), J=J, mode="canonical", steps=60, beta=100.0)


@pytest.fixture(scope="module")
def samples(model):
    return model.sample(48, key=jax.random.PRNGKey(3), steps=45)


def test_energy_gradient_matches_forward_mode_and_finite_differences(model):
    amp = reference_amplitude(model.start_power)
    energy = canonical_energy(model.statistics, model.target, model.scale, model.beta, model.mean, amp)
    z = jax.random.normal(jax.random.PRNGKey(1), (3, SIZE, SIZE))
    v = jax.random.normal(jax.random.PRNGKey(2), (3, SIZE, SIZE))
    u, g = energy.value_and_grad(z)
    assert u.shape == (3,) and g.shape == z.shape
    # reverse mode (the sampler's gradient) against forward mode, field by field
    for i in range(3):
        _, dv = jax.jvp(lambda q: energy(q[None])[0], (z[i],), (v[i],))
        np.testing.assert_allclose(float(jnp.sum(g[i] * v[i])), float(dv), rtol=2e-4)
    # and against a central difference in float64 arithmetic on the float32 energy (loose: float32 U)
    h = 1e-2
    fd = (np.asarray(energy(z + h * v), np.float64) - np.asarray(energy(z - h * v), np.float64)) / (2 * h)
    np.testing.assert_allclose(np.sum(np.asarray(g) * np.asarray(v), axis=(1, 2)), fd, rtol=2e-2)
    # as β → 0 only the Gaussian reference's ½|z|² pulls: ∇U = z
    e0 = canonical_energy(model.statistics, model.target, model.scale, 1e-12, model.mean, amp)
    np.testing.assert_allclose(np.asarray(e0.grad(z)), np.asarray(z), atol=1e-5)


def test_latent_round_trip_and_band(model, data):
    amp = reference_amplitude(model.start_power)
    band = amp > 0
    k = wavenumbers(SIZE)[:, : SIZE // 2 + 1]
    assert band.any() and not band.all() and np.all(~band[k > K_CUT + 1e-6])
    z = field_to_latent(jax.random.PRNGKey(4), data[:5], model.mean, amp)
    np.testing.assert_allclose(np.asarray(latent_to_field(z, model.mean, amp)), data[:5], atol=2e-5)
    # the latent modes outside the band are free N(0, 1) draws
    free = np.abs(np.asarray(jnp.fft.rfft2(z)))[:, ~band] / SIZE
    assert 0.5 < np.sqrt(np.mean(free ** 2)) < 1.5


def test_samples_respect_the_band_and_the_spectrum(model, samples, data):
    assert samples.shape == (48, SIZE, SIZE) and np.all(np.isfinite(samples))
    info = model.last_chains
    assert info["kernel"] == "hmc" and 0.3 < info["acceptance"] <= 1.0 and info["warmup_steps"] == 30
    p = np.abs(np.fft.rfft2(samples - model.mean)) ** 2 / SIZE ** 2
    band = reference_amplitude(model.start_power) > 0
    assert np.max(p[:, ~band]) < 1e-9 * np.max(p)  # exactly empty up to float32 round-off
    # the chains left their start: samples differ from the microcanonical syntheses' statistics well
    r = (np.asarray(model.statistics(jnp.asarray(samples))) - model.target) / model.scale
    rms = float(np.sqrt(np.mean(r ** 2)))
    assert 0.05 < rms < 0.2  # the well's spread is about β^-½ = 0.1 of the data's
    # spectrum per shell against the closed form, tolerance from both estimates' standard errors
    ps, pt = power_spectrum(samples), power_spectrum(data)
    exact = np.asarray(isotropic_average(np.asarray(_spectrum(wavenumbers(SIZE)))).power).reshape(-1)
    inside = (ps.k > 0.3) & (ps.k < K_CUT - 0.3)
    se = np.sqrt(np.var(ps.power, axis=0) / len(samples) + np.var(pt.power, axis=0) / len(data))
    dev = np.abs(ps.power.mean(0) - exact)[inside] / se[inside]
    assert np.all(dev < 4.0), dev


def test_save_load_identity_and_options(model, data, tmp_path):
    path = model.save(tmp_path / "canon.h5")
    back = load_model(path)
    assert back.mode == "canonical" and back.beta == model.beta and back.n_params == model.n_params
    assert back.n_params == ScatteringModel.fit(data, key=jax.random.PRNGKey(0), J=J, steps=60).n_params + 1
    a = model.sample(3, key=jax.random.PRNGKey(9), steps=30)
    b = back.sample(3, key=jax.random.PRNGKey(9), steps=30)
    np.testing.assert_array_equal(a, b)
    mala = back.sample(2, key=jax.random.PRNGKey(9), steps=30, kernel="mala")
    assert mala.shape == (2, SIZE, SIZE) and back.last_chains["kernel"] == "mala"


def test_bad_input(model, data):
    for beta in (0.0, -1.0, float("nan"), float("inf"), "hot"):
        with pytest.raises(E.ParameterError, match="beta"):
            ScatteringModel.fit(data[:8], key=jax.random.PRNGKey(0), J=J, mode="canonical", beta=beta)
    with pytest.raises(E.ParameterError, match="canonical"):
        fit("scattering", data[:8], J=J, mode="micro", beta=10.0)
    with pytest.raises(E.ParameterError, match="sample_steps"):
        ScatteringModel.fit(data[:8], key=jax.random.PRNGKey(0), J=J, mode="canonical", sample_steps=10)
    with pytest.raises(E.ParameterError, match="steps"):
        model.sample(2, key=jax.random.PRNGKey(0), steps=5)
    with pytest.raises(E.ParameterError, match="kernel"):
        model.sample(2, key=jax.random.PRNGKey(0), steps=30, kernel="nuts")
