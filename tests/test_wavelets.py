"""phigen.wavelets: periodic orthogonal DWT against pywavelets, and the Fourier filter banks."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pywt

from phigen.errors import InputError, ParameterError
from phigen.wavelets import (DetailStandardizer, WaveletCoeffs, bump_steerable_filter_bank, detail_statistics, dwt,
                             dwt_level, filter_bank, from_pywt, idwt, idwt_level, littlewood_paley,
                             morlet_filter_bank, to_pywt)

WAVELETS = ["haar", "db2", "db4", "sym5", "coif2"]
F32 = 2e-6  # float32 round-off, relative to the field's scale


def _fields(n=3, h=32, w=64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, w)).astype(np.float32)


# --- DWT ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("J", [1, 3])
def test_dwt_equals_pywavelets_periodization(wavelet, J):
    x = _fields()
    with warnings.catch_warnings():  # pywt warns that level 3 is "too high" for long filters on 32 px
        warnings.simplefilter("ignore", UserWarning)
        ref = pywt.wavedec2(x.astype(np.float64), wavelet, mode="periodization", level=J)
    mine = to_pywt(dwt(x, wavelet, J=J))
    assert len(mine) == len(ref) == J + 1
    assert mine[0].shape == ref[0].shape
    np.testing.assert_allclose(mine[0], ref[0], atol=F32 * 8 * 2**J, rtol=0)
    for lvl_m, lvl_r in zip(mine[1:], ref[1:]):
        for cm, cr in zip(lvl_m, lvl_r):
            assert cm.shape == cr.shape
            np.testing.assert_allclose(cm, cr, atol=F32 * 8 * 2**J, rtol=0)
    # and the inverse equals pywavelets' waverec2 of the reference coefficients
    back = idwt(from_pywt(ref), wavelet)
    np.testing.assert_allclose(np.asarray(back), pywt.waverec2(ref, wavelet, mode="periodization"), atol=F32 * 8)


@pytest.mark.parametrize("wavelet,J", [("haar", 4), ("db2", 1), ("db4", 2), ("sym5", 4), ("coif2", 3)])
def test_perfect_reconstruction_and_energy(wavelet, J):
    x = _fields(n=2, h=64, w=32, seed=J)
    c = dwt(x, wavelet, J=J)
    assert c.levels == J and c.approx.shape == (2, 64 // 2**J, 32 // 2**J)
    for j, d in enumerate(c.details, start=1):
        assert d.shape == (2, 3, 64 // 2**j, 32 // 2**j)
    np.testing.assert_allclose(np.asarray(idwt(c, wavelet)), x, atol=F32 * 10)
    # orthogonality: the energy of every field is preserved
    e_x = np.sum(x.astype(np.float64) ** 2, axis=(1, 2))
    e_c = np.sum(np.asarray(c.approx, np.float64) ** 2, axis=(1, 2))
    e_c += sum(np.sum(np.asarray(d, np.float64) ** 2, axis=(1, 2, 3)) for d in c.details)
    np.testing.assert_allclose(e_c, e_x, rtol=1e-5)


def test_transpose_is_inverse():
    """For an orthogonal transform W, Wᵀ = W⁻¹: the VJP of dwt applied to c equals idwt(c)."""
    x = jnp.asarray(_fields(n=2, h=32, w=32, seed=3))
    c = dwt(x, "db4", J=3)
    other = jax.tree_util.tree_map(lambda a: jnp.asarray(np.random.default_rng(7).normal(size=a.shape), jnp.float32), c)
    _, vjp = jax.vjp(lambda y: dwt(y, "db4", J=3), x)
    (adj,) = vjp(other)
    np.testing.assert_allclose(np.asarray(adj), np.asarray(idwt(other, "db4")), atol=1e-5)


def test_single_levels_compose_to_dwt():
    x = _fields(n=2, h=32, w=32, seed=4)
    c = dwt(x, "sym4", J=3)
    a = x
    for j in range(3):
        a, d = dwt_level(a, "sym4")
        np.testing.assert_allclose(np.asarray(d), np.asarray(c.details[j]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(a), np.asarray(c.approx), atol=1e-5)
    # x_{j-1} <-> (x_j, x̄_j), one level at a time
    a1, d1 = dwt_level(x, "db4")
    np.testing.assert_allclose(np.asarray(idwt_level(a1, d1, "db4")), x, atol=1e-5)
    cA, (cH, cV, cD) = pywt.dwt2(x.astype(np.float64), "db4", mode="periodization")
    np.testing.assert_allclose(np.asarray(a1), cA, atol=1e-5)
    np.testing.assert_allclose(np.asarray(d1), np.stack([cH, cV, cD], axis=1), atol=1e-5)


def test_single_field_and_jit_and_grad():
    x = _fields(n=1, h=16, w=16)[0]
    a, d = dwt_level(x, "haar")
    assert a.shape == (1, 8, 8) and d.shape == (1, 3, 8, 8)
    # Haar approximation is the 2x2 block sum / 2
    np.testing.assert_allclose(np.asarray(a[0]), x.reshape(8, 2, 8, 2).sum((1, 3)) / 2, atol=1e-6)
    f = jax.jit(lambda y: jnp.sum(dwt(y, "db2", J=2).details[1] ** 2))
    g = jax.grad(f)(jnp.asarray(x[None]))
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).max()) > 0


def test_white_noise_details_are_white_with_unit_variance():
    """An orthogonal transform of unit white noise is unit white noise: every channel has std 1."""
    x = _fields(n=8, h=64, w=64, seed=11)
    c = dwt(x, "db4", J=3)
    mean, std = detail_statistics(c)
    assert mean.shape == std.shape == (3, 3)
    for j in range(3):
        n = x.shape[0] * (64 // 2 ** (j + 1)) ** 2   # samples per channel at level j+1
        se_std = 1 / np.sqrt(2 * n)
        assert np.all(np.abs(np.asarray(std[j]) - 1) < 5 * se_std), (j, std[j], se_std)
        assert np.all(np.abs(np.asarray(mean[j])) < 5 / np.sqrt(n))


def test_detail_standardizer_roundtrip():
    rng = np.random.default_rng(5)
    # fields with very different power per scale (red spectrum) and an offset
    x = np.cumsum(np.cumsum(rng.normal(size=(6, 32, 32)), 1), 2).astype(np.float32) + 3.0
    c = dwt(x, "db4", J=3)
    st = DetailStandardizer.fit(c)
    z = st.apply(c)
    for d in z.details:
        np.testing.assert_allclose(np.asarray(jnp.mean(d, axis=(0, 2, 3))), 0, atol=1e-4)
        np.testing.assert_allclose(np.asarray(jnp.std(d, axis=(0, 2, 3))), 1, rtol=1e-4)
    assert abs(float(jnp.mean(z.approx))) < 1e-4 and abs(float(jnp.std(z.approx)) - 1) < 1e-4
    back = st.invert(z)
    np.testing.assert_allclose(np.asarray(idwt(back, "db4")), x, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(st.invert_level(st.apply_level(c.details[1], 2), 2)),
                               np.asarray(c.details[1]), rtol=1e-5, atol=1e-5)
    # a pytree: it goes through jit
    out = jax.jit(lambda s, c: s.apply(c))(st, c)
    np.testing.assert_allclose(np.asarray(out.details[0]), np.asarray(z.details[0]), atol=1e-6)


def test_dwt_bad_input():
    x = _fields(n=1, h=32, w=32)
    with pytest.raises(ParameterError, match="not orthogonal"):
        dwt(x, "bior2.2", J=1)
    with pytest.raises(ParameterError, match="unknown wavelet"):
        dwt(x, "db99x", J=1)
    with pytest.raises(InputError, match="multiples of 2\\^J"):
        dwt(x, "haar", J=6)
    with pytest.raises(InputError, match="multiples of 2\\^J"):
        dwt(np.zeros((1, 24, 32), np.float32), "haar", J=4)
    with pytest.raises(InputError, match="even"):
        dwt_level(np.zeros((2, 15, 16), np.float32), "haar")
    bad = x.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        dwt(bad, "haar", J=1)
    with pytest.raises(ParameterError):
        dwt(x, "haar", J=0)
    a, d = dwt_level(x, "haar")
    with pytest.raises(InputError):
        idwt_level(a, d[:, :2], "haar")
    with pytest.raises(InputError):
        idwt("not coefficients", "haar")
    assert isinstance(dwt(x, "haar", J=1), WaveletCoeffs)


# --- filter banks ---------------------------------------------------------------------------------
def test_morlet_bank_equals_kymatio_construction():
    from kymatio.scattering2d.filter_bank import morlet_2d

    bank = morlet_filter_bank((32, 48), J=3, L=4)
    assert bank.psi.shape == (3, 4, 32, 48) and bank.kind == "morlet"
    for j in range(3):
        for l in range(4):
            ref = np.fft.fft2(morlet_2d(32, 48, 0.8 * 2**j, np.pi * l / 4, 0.75 * np.pi / 2**j, 1.0))
            assert np.abs(ref.imag).max() < 1e-5 * np.abs(ref.real).max()
            # kymatio normalises its Gaussian with π ≈ 3.1415 (relative 3e-5)
            np.testing.assert_allclose(bank.psi[j, l], ref.real, atol=5e-5 * np.abs(ref.real).max())


@pytest.mark.parametrize("kind", ["morlet", "bump"])
def test_filters_zero_mean_and_littlewood_paley_bounded(kind):
    J, L, n = 5, 4, 64
    bank = filter_bank((n, n), J, L, kind=kind)
    assert np.all(bank.psi[:, :, 0, 0] == 0)
    space = np.fft.ifft2(bank.psi)          # the wavelets themselves: zero spatial mean
    assert np.abs(space.sum(axis=(-2, -1))).max() < 1e-10
    assert bank.phi[0, 0] == pytest.approx(1.0)
    a = littlewood_paley(bank)
    aw = littlewood_paley(bank, include_lowpass=False)
    assert a.max() <= 1.0 + 1e-9             # tight upper frame bound
    k = np.hypot(*np.meshgrid(2 * np.pi * np.fft.fftfreq(n), 2 * np.pi * np.fft.fftfreq(n), indexing="ij"))
    band = (k >= bank.xi[-1]) & (k <= bank.xi[0])
    assert aw[band].min() > 0.45             # no hole between the wavelets' central frequencies
    assert aw[band].max() < 0.95


def test_bump_steerable_angular_part_is_flat_and_support_compact():
    """Σ_l ½(ψ̂_l(k)² + ψ̂_l(−k)²) depends only on |k| (steerability), and ψ̂ = 0 beyond 2k_j."""
    n = 64
    bank = bump_steerable_filter_bank((n, n), J=4, L=4)
    sq = 0.5 * (np.sum(bank.psi**2, axis=1) + np.roll(np.flip(np.sum(bank.psi**2, axis=1), (-2, -1)), 1, (-2, -1)))
    for j in (1, 2, 3):
        # modes with the same radius 5 (in grid units): (5,0), (3,4), (4,3), (0,5), (-3,4), (4,-3)
        vals = [sq[j, m0 % n, m1 % n] for m0, m1 in [(5, 0), (3, 4), (4, 3), (0, 5), (-3, 4), (4, -3)]]
        assert np.ptp(vals) < 1e-12 + 1e-9 * max(vals), (j, vals)
    k = np.hypot(*np.meshgrid(2 * np.pi * np.fft.fftfreq(n), 2 * np.pi * np.fft.fftfreq(n), indexing="ij"))
    for j in (1, 2, 3):
        assert np.all(bank.psi[j][:, k >= 2 * bank.xi[j]] == 0)


def test_filter_bank_bad_input():
    with pytest.raises(ParameterError, match="too small"):
        morlet_filter_bank((16, 16), J=5)
    with pytest.raises(ParameterError):
        filter_bank((32, 32), 3, kind="gabor")
    with pytest.raises(ParameterError):
        morlet_filter_bank((32, 32), J=0)
