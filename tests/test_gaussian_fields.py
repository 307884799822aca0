"""Gaussian random fields: the power spectrum comes out as put in, in expectation, per bin."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.errors import ParameterError
from phigen.fields.gaussian import PowerLawSpectrum, gaussian_field, power_law_spectrum
from phigen.stats import isotropic_average, power_spectrum, wavenumbers


def expected_spectrum_and_se(spectrum, shape, n_fields):
    """Exact mean of the binned spectrum and its standard error over ``n_fields`` fields.

    Each bin sum is Σ_modes |x̂|²/V. A ±k pair is one complex Gaussian: both members equal
    Y ~ P·Exp(1), so the pair adds Var(2Y) = 4P², i.e. 2P² per member; a self-conjugate
    (real) mode is P·χ²₁ with variance 2P². Hence Var(bin mean) = 2 Σ_bin P² / counts², / n_fields.
    """
    p = np.asarray(spectrum(wavenumbers(shape)), dtype=np.float64)
    mean = isotropic_average(p)
    mean_sq = isotropic_average(p**2)
    var = 2.0 * np.asarray(mean_sq.power[0], dtype=np.float64) / mean.counts / n_fields
    return np.asarray(mean.power[0], dtype=np.float64), np.sqrt(var)


@pytest.mark.parametrize("shape,slope", [((64, 64), 2.0), ((48, 64), 3.0)])
def test_power_spectrum_matches_input_in_every_bin(shape, slope):
    n = 64
    spec = power_law_spectrum(slope, 2.5, k_cut=1.5)
    x = gaussian_field(jax.random.key(11), n, shape, spec)
    assert x.shape == (n, *shape) and x.dtype == jnp.float32
    ps = power_spectrum(x)
    mean, se = expected_spectrum_and_se(spec, shape, n)
    z = (np.asarray(ps.power, dtype=np.float64).mean(axis=0) - mean) / se
    # ~45 bins of nearly normal z-scores: |z| > 4.5 anywhere has probability < 1e-3
    assert np.max(np.abs(z)) < 4.5, np.round(z, 2)
    # and the scatter is the one derived above (a wrong dof count would give chi2/nb ≈ 2 or 0.5)
    chi2 = float(np.mean(z**2))
    assert abs(chi2 - 1.0) < 5.0 * np.sqrt(2.0 / z.size), chi2


def test_pixel_variance_and_zero_mean():
    spec = power_law_spectrum(1.5)
    x = np.asarray(gaussian_field(jax.random.key(3), 32, 64, spec), dtype=np.float64)
    # P(0) = 0: every field has exactly zero mean (up to float32 rounding)
    assert np.max(np.abs(x.mean(axis=(1, 2)))) < 1e-6 * x.std()
    sigma2 = float(np.sum(spec(wavenumbers(64)))) / 64**2
    var = x.var(axis=(1, 2))
    assert abs(var.mean() - sigma2) < 4.0 * var.std() / np.sqrt(var.size)


def test_reproducible_and_jittable():
    spec = power_law_spectrum(2.0)
    a = gaussian_field(jax.random.key(0), 3, 16, spec)
    b = gaussian_field(jax.random.key(0), 3, 16, spec)
    c = gaussian_field(jax.random.key(1), 3, 16, spec)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))
    jitted = jax.jit(lambda k: gaussian_field(k, 3, 16, spec))
    np.testing.assert_allclose(np.asarray(jitted(jax.random.key(0))), np.asarray(a), atol=1e-6)


def test_power_law_spectrum_values():
    spec = power_law_spectrum(3.0, 2.0)
    assert isinstance(spec, PowerLawSpectrum)
    k = np.array([0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(spec(k), [0.0, 2.0 * 8.0, 2.0, 2.0 / 8.0])
    np.testing.assert_allclose(np.asarray(spec(jnp.asarray(k))), spec(k), rtol=1e-6)
    cut = power_law_spectrum(1.0, k_cut=0.5)
    np.testing.assert_allclose(cut(np.array([1.0])), [np.exp(-4.0)])


def test_white_noise_spectrum_is_flat():
    x = gaussian_field(jax.random.key(5), 8, 32, lambda k: np.ones_like(k))
    v = np.asarray(x).var()
    assert abs(v - 1.0) < 0.05  # 8192 unit-variance pixels


@pytest.mark.parametrize(
    "kwargs",
    [dict(n=0, size=16), dict(n=2, size=1), dict(n=2, size=(16, 1)), dict(n=2, size=(4, 4, 4))],
)
def test_bad_sizes(kwargs):
    with pytest.raises(ParameterError):
        gaussian_field(jax.random.key(0), kwargs["n"], kwargs["size"], power_law_spectrum(2.0))


def test_bad_spectra():
    key = jax.random.key(0)
    with pytest.raises(ParameterError):
        gaussian_field(key, 2, 16, "k^-2")
    with pytest.raises(ParameterError):
        gaussian_field(key, 2, 16, lambda k: -np.ones_like(k))
    with pytest.raises(ParameterError, match="not finite"):
        gaussian_field(key, 2, 16, lambda k: k**-2.0)  # inf at k = 0
    with pytest.raises(ParameterError):
        power_law_spectrum(2.0, amplitude=-1.0)
    with pytest.raises(ParameterError):
        power_law_spectrum(float("nan"))
