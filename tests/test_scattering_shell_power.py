"""Shell power statistics (``shell_power=True`` of the micro and canonical scattering models):
the half-plane → full-plane reflection, agreement with phigen.stats.power_spectrum, the closed-form
spread of log P_b for Gaussian fields, the band, and the model option (save/load, synthesis, errors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import polygamma

from phigen import errors as E
from phigen.fields.gaussian import gaussian_field, power_law_spectrum
from phigen.models import load_model
from phigen.scattering import ScatteringModel
from phigen.scattering.shell_power import ShellPowerStatistics, full_plane
from phigen.scattering.synthesis import band_power
from phigen.stats import power_spectrum


@pytest.mark.parametrize("shape", [(8, 6), (7, 9), (16, 16)])
def test_full_plane_is_the_fft_power(shape):
    x = np.random.default_rng(0).normal(size=shape)
    half = np.abs(np.fft.rfft2(x)) ** 2
    np.testing.assert_allclose(full_plane(half, shape), np.abs(np.fft.fft2(x)) ** 2, rtol=1e-10, atol=1e-10)
    with pytest.raises(E.InputError, match="half-plane"):
        full_plane(half[:, :-1], shape)


def test_statistics_are_the_log_power_spectrum_over_the_data_shells():
    x = np.random.default_rng(1).normal(size=(5, 12, 12)).astype(np.float32)
    s = ShellPowerStatistics.from_power(band_power(x), (12, 12))
    ps = power_spectrum(x)  # white noise fills the band: every shell inside the Nyquist circle is there
    inside = ps.k < np.pi - np.pi / 12  # shells with no corner mode (|k| > π) at 12²
    assert s.n_stats >= inside.sum()
    assert tuple(s.counts[: inside.sum()]) == tuple(int(c) for c in ps.counts[inside])
    np.testing.assert_allclose(np.asarray(s(jnp.asarray(x)))[:, : inside.sum()],
                               np.log(np.asarray(ps.power)[:, inside] / np.asarray(s.reference)[: inside.sum()]),
                               atol=2e-5)
    assert sum(s.counts) == int(np.sum(np.hypot(*np.meshgrid(np.fft.fftfreq(12), np.fft.fftfreq(12))) <= 0.5)) - 1


def test_gaussian_spread_matches_the_closed_form_and_band():
    """Gaussian fields: P_b/⟨P_b⟩ is a mean of m = n_b/2 unit exponentials (away from the real,
    self-conjugate modes), so std(log P_b) = √ψ'(m) (trigamma); the single-map scale is √(2/n_b) ≈ it."""
    size, n = 16, 600
    cut = lambda k: jnp.where(k < 2.0, power_law_spectrum(1.0)(k), 0.0)  # a band-limited spectrum
    x = np.asarray(gaussian_field(jax.random.PRNGKey(0), n, size, cut))
    s = ShellPowerStatistics.from_power(band_power(x), (size, size))
    k_shell = 2 * np.pi / size * np.arange(1, s.n_stats + 1)
    assert s.n_stats == int(np.floor(2.0 / (2 * np.pi / size) + 0.5))  # only the shells that reach into the band
    phi = np.asarray(s(jnp.asarray(x)), np.float64)
    m = np.asarray(s.counts, np.float64) / 2
    expected = np.sqrt(polygamma(1, m))
    se = expected / np.sqrt(2 * (n - 1))  # standard error of a sample std (near-Gaussian)
    inner = k_shell < 1.5  # shells fully inside the band
    dev = (phi.std(axis=0, ddof=1) - expected)[inner] / se[inner]
    assert np.all(np.abs(dev) < 4 + 0.15 * expected[inner] / se[inner]), dev  # log P_b is skewed: 15 % slack
    np.testing.assert_allclose(s.single_map_scale(), np.sqrt(2 / np.asarray(s.counts)), rtol=1e-6)
    np.testing.assert_allclose(s.single_map_scale()[inner], expected[inner], rtol=0.2)
    assert np.all(np.isfinite(np.asarray(s(jnp.zeros((1, size, size))))))  # an empty shell: floored, not −inf


def test_model_option_round_trip_and_synthesis(gaussian_fields, tmp_path):
    x = gaussian_fields(24, 16, slope=2.0, seed=3)
    plain = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=60)
    m = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=60, shell_power=True)
    n_shells = ShellPowerStatistics.from_power(m.start_power, (16, 16)).n_stats
    assert m.shell_power and m.n_stats == plain.n_stats + n_shells and m.n_params == plain.n_params + 2 * n_shells
    back = load_model(m.save(tmp_path / "shell.h5"))
    assert back.shell_power and back.n_stats == m.n_stats
    np.testing.assert_allclose(np.asarray(back.statistics(x[:2])), np.asarray(m.statistics(x[:2])), rtol=1e-5,
                               atol=1e-6)
    res = m.synthesize(4, key=jax.random.PRNGKey(1))
    # Gaussian data: the random-phase start is already a typical field (loss ≈ 1); L-BFGS goes far below
    assert np.median(res.loss) < 0.1 * m.training["data_loss_median"] and np.all(res.loss < 0.3 * res.initial_loss)
    r = (np.asarray(m.statistics(res.fields)) - m.target) / m.scale
    assert np.sqrt(np.mean(r[:, -n_shells:] ** 2)) < 0.3  # the shells are on target too, not only Φ
    with pytest.raises(E.ParameterError, match="shell_power"):
        ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, mode="maxent", shell_power=True)


def test_micro_with_pixel_pdf_statistics(gaussian_fields, tmp_path):
    """``marginal_bins`` in the micro/canonical models: the pixel-PDF statistics sit between the
    spectra and the shells, survive save/load, and the synthesis brings them on target."""
    x = np.exp(gaussian_fields(24, 16, slope=3.0, seed=4))  # skewed pixels
    m = ScatteringModel.fit(x, key=jax.random.PRNGKey(0), J=2, steps=80, marginal_bins=6, shell_power=True)
    names = [type(p).__name__ for p in m.statistics.parts]
    assert names == ["ScatteringSpectra", "MarginalStatistics", "ShellPowerStatistics"]
    back = load_model(m.save(tmp_path / "pdf.h5"))
    assert back.marginal is not None and back.n_params == m.n_params and back.n_stats == m.n_stats
    np.testing.assert_allclose(np.asarray(back.statistics(x[:2])), np.asarray(m.statistics(x[:2])), rtol=1e-5,
                               atol=1e-6)
    res = m.synthesize(4, key=jax.random.PRNGKey(1))
    n0 = m.spectra.n_stats
    r = (np.asarray(m.statistics(res.fields)) - m.target) / m.scale
    shrunk = x[:4].mean() + 0.5 * (x[:4] - x[:4].mean())  # data fields with half their contrast: the PDF is off
    r0 = (np.asarray(m.statistics(shrunk)) - m.target) / m.scale
    assert np.sqrt(np.mean(r[:, n0:n0 + 6] ** 2)) < 0.3 < np.sqrt(np.mean(r0[:, n0:n0 + 6] ** 2))
