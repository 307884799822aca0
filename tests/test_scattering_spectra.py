"""phigen.scattering: scattering-spectra statistics against their definitions and closed forms."""

from __future__ import annotations

from math import comb

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.errors import InputError, ParameterError
from phigen.scattering import ClassicScattering, ScatteringSpectra, classic_scattering, scattering_spectra
from phigen.wavelets import filter_bank, littlewood_paley

N, J, L = 32, 3, 4


@pytest.fixture(scope="module")
def ss():
    return ScatteringSpectra((N, N), J, L)


@pytest.fixture(scope="module")
def ss_aniso():
    return ScatteringSpectra((N, N), J, L, isotropic=False)


def _direct(x, bank):
    """The definitions, in numpy float64, with full-resolution FFT convolutions and spatial means."""
    xf = np.fft.fft2(x)
    conv = lambda f, psi: np.fft.ifft2(f * psi)  # noqa: E731
    Jb, Lb = bank.psi.shape[:2]
    z = np.array([[conv(xf, bank.psi[j, l]) for l in range(Lb)] for j in range(Jb)])      # (J, L, H, W)
    m = np.abs(z)
    mf = np.fft.fft2(m)
    s1, s2 = m.mean((-2, -1)), (m**2).mean((-2, -1))
    c01 = np.zeros((Jb, Jb, Lb, Lb), complex)
    c11 = np.zeros((Jb, Jb, Jb, Lb, Lb, Lb), complex)
    for j1 in range(Jb):
        for j2 in range(j1, Jb):
            for l1 in range(Lb):
                for l2 in range(Lb):
                    a = conv(xf, bank.psi[j2, l2])
                    b = conv(mf[j1, l1], bank.psi[j2, l2])
                    c01[j1, j2, l1, l2] = np.mean(a * np.conj(b))
            for j3 in range(j2, Jb):
                for l1 in range(Lb):
                    for l2 in range(Lb):
                        for l3 in range(Lb):
                            a = conv(mf[j1, l1], bank.psi[j3, l3])
                            b = conv(mf[j2, l2], bank.psi[j3, l3])
                            c11[j1, j2, j3, l1, l2, l3] = np.mean(a * np.conj(b))
    return x.mean(), s1, s2, c01, c11


def _flat_from_direct(entries, coeffs, L):
    """Build the flat vector from the definitions and the entry descriptions (independent of the code's plan)."""
    mean, s1, s2, c01, c11 = coeffs
    sig = np.sqrt(s2)
    out = []
    for e in entries:
        t = e["type"]
        if t == "mean":
            out.append(mean)
            continue
        if t in ("S1", "S2"):
            j = e["j1"]
            ls = [e["l1"]] if "l1" in e else range(L)
            v = np.mean([np.log(s2[j, l]) if t == "S2" else s1[j, l] / sig[j, l] for l in ls]) if t == "S1" else \
                np.log(np.mean([s2[j, l] for l in ls]))
            out.append(v)
            continue
        vals = []
        l1s = [e["l1"]] if "l1" in e else range(L)
        for l1 in l1s:
            if t == "C01":
                l2 = e["l2"] if "l2" in e else (l1 + e["dl"]) % L
                vals.append(c01[e["j1"], e["j2"], l1, l2] / (sig[e["j1"], l1] * sig[e["j2"], l2]))
            else:
                l2 = e["l2"] if "l2" in e else (l1 + e["dl2"]) % L
                l3 = e["l3"] if "l3" in e else (l1 + e["dl3"]) % L
                vals.append(c11[e["j1"], e["j2"], e["j3"], l1, l2, l3] / (sig[e["j1"], l1] * sig[e["j2"], l2]))
        v = np.mean(vals)
        out.append(v.real if e["part"] == "re" else v.imag)
    return np.array(out)


def test_matches_definitions(ss, ss_aniso, gaussian_fields):
    """Coefficients and the flat vector (iso and not) equal the spatial-domain definitions."""
    x = gaussian_fields(2, N, slope=1.0, seed=1) + 0.3 * np.abs(gaussian_fields(2, N, slope=3.0, seed=2))  # non-Gaussian, non-zero mean
    bank = filter_bank((N, N), J, L)
    c = ss.coefficients(x)
    for i in range(2):
        mean, s1, s2, c01, c11 = _direct(x[i].astype(np.float64), bank)
        scale = np.sqrt(s2.max())
        np.testing.assert_allclose(np.asarray(c.S1[i]), s1, rtol=2e-5)
        np.testing.assert_allclose(np.asarray(c.S2[i]), s2, rtol=2e-5)
        np.testing.assert_allclose(np.asarray(c.C01[i]), c01, atol=2e-5 * scale**2)
        np.testing.assert_allclose(np.asarray(c.C11[i]), c11, atol=2e-5 * scale**2)
        for model in (ss, ss_aniso):
            expect = _flat_from_direct(model.describe(), (mean, s1, s2, c01, c11), L)
            got = np.asarray(model(x[i]))[0]
            np.testing.assert_allclose(got, expect, atol=5e-5, rtol=1e-4)


def _count(J, L, iso, strict=False):
    """Closed-form number of statistics for the documented selection rules."""
    pairs = comb(J, 2) if strict else J * (J + 1) // 2
    trip_lt = comb(J, 3) if strict else comb(J + 1, 3)       # j1 < j2 (≤ or <) j3
    trip_eq = comb(J, 2) if strict else J * (J + 1) // 2      # j1 = j2 (≤ or <) j3
    if iso:
        return 1 + 2 * J + pairs * 2 * L + trip_lt * 2 * L**2 + trip_eq * L**2
    return 1 + 2 * J * L + pairs * 2 * L**2 + trip_lt * 2 * L**3 + trip_eq * L**3


@pytest.mark.parametrize("Jc", [5, 6])
def test_number_of_statistics(Jc):
    for iso in (True, False):
        for strict in (False, True):
            m = ScatteringSpectra((64, 64), Jc, 4, isotropic=iso, strict_scales=strict)
            assert m.n_stats == _count(Jc, 4, iso, strict) == len(m.describe())
    assert ScatteringSpectra((64, 64), 6, 4, strict_scales=True).n_stats == 1013  # ≈ the reference's 1,000


def test_translation_invariance(ss, gaussian_fields):
    x = gaussian_fields(3, N, seed=3) ** 2
    base = np.asarray(ss(x))
    for shift in [(1, 0), (0, 7), (13, 29)]:
        np.testing.assert_allclose(np.asarray(ss(np.roll(x, shift, axis=(1, 2)))), base, atol=3e-5, rtol=1e-4)


def test_rotation_by_90_degrees_isotropic_real_parts(ss, gaussian_fields):
    """L = 4: a quarter turn maps orientation l to l + 2; isotropic moduli-based entries are invariant
    (imaginary parts of C01/C11 flip sign where the rotation wraps an orientation past π)."""
    x = gaussian_fields(2, N, seed=4) ** 2
    a, b = np.asarray(ss(x)), np.asarray(ss(np.rot90(x, axes=(1, 2))))
    real = np.array([e.get("part", "re") == "re" for e in ss.describe()])
    np.testing.assert_allclose(b[:, real], a[:, real], atol=3e-5, rtol=1e-4)


def test_s2_sum_and_littlewood_paley():
    """Σ_{j,l} S2 = V⁻² Σ_k |x̂|² Σ ψ̂²(k) exactly, hence for white noise of variance σ²
    E Σ S2 = σ² mean_k Σψ̂² and the band-limited variance bounds it through the LP sum."""
    n, Jw = 64, 4
    model = ScatteringSpectra((n, n), Jw, L)
    bank = filter_bank((n, n), Jw, L)
    x = np.random.default_rng(8).normal(size=(64, n, n)).astype(np.float32) * 1.7
    s2sum = np.asarray(model.coefficients(x).S2, np.float64).sum((1, 2))
    xf2 = np.abs(np.fft.fft2(x.astype(np.float64))) ** 2
    exact = (xf2 * np.sum(bank.psi**2, axis=(0, 1))).sum((1, 2)) / n**4
    np.testing.assert_allclose(s2sum, exact, rtol=1e-5)
    # expectation for white noise: σ² · mean over modes of the (wavelet) Littlewood–Paley sum
    lp = littlewood_paley(bank, include_lowpass=False)
    expect = 1.7**2 * lp.mean()
    se = s2sum.std(ddof=1) / np.sqrt(len(s2sum))
    assert abs(s2sum.mean() - expect) < 4 * se, (s2sum.mean(), expect, se)
    # frame bounds: ΣS2 ≤ max(A)·var(x), and ≥ min_band(A)·(variance in the band)
    var = x.astype(np.float64).var(axis=(1, 2))
    assert np.all(s2sum <= lp.max() * var * (1 + 1e-5))
    k = np.hypot(*np.meshgrid(2 * np.pi * np.fft.fftfreq(n), 2 * np.pi * np.fft.fftfreq(n), indexing="ij"))
    band = (k >= bank.xi[-1]) & (k <= bank.xi[0])
    var_band = (xf2 * band).sum((1, 2)) / n**4
    assert np.all(s2sum >= lp[band].min() * var_band)


def test_c01_vanishes_for_gaussian_fields(gaussian_fields):
    """x -> −x flips C01 (odd in x) and leaves the Gaussian law unchanged: E C01 = 0. A lognormal
    field of the same spectrum is a positive control: its C01 is many standard errors away from 0."""
    n, Jc, nf = 64, 4, 48
    model = ScatteringSpectra((n, n), Jc, L)
    c01 = np.array([e["type"] == "C01" for e in model.describe()])
    g = gaussian_fields(nf, n, slope=2.5, seed=9)
    phi = np.asarray(model(g))[:, c01]
    z = phi.mean(0) / (phi.std(0, ddof=1) / np.sqrt(nf))
    assert np.abs(z).max() < 5.0, np.abs(z).max()     # 80 entries; |z| > 5 has probability ~5e-5 in all
    logn = np.exp(g / g.std())
    phi_ln = np.asarray(model(logn))[:, c01]
    z_ln = phi_ln.mean(0) / (phi_ln.std(0, ddof=1) / np.sqrt(nf))
    assert np.abs(z_ln).max() > 20


def test_gradients_finite_and_correct(ss, gaussian_fields):
    x = jnp.asarray(gaussian_fields(2, N, seed=5))
    w = jnp.asarray(np.random.default_rng(0).normal(size=ss.n_stats), jnp.float32)
    f = lambda y: jnp.sum(ss(y) * w)  # noqa: E731
    g = jax.grad(f)(x)
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).max()) > 0
    v = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
    eps = 1e-2
    fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(float(fd), float(jnp.vdot(g, v)), rtol=2e-2)
    # zero field regions: the modulus has a zero (not NaN) gradient at z = 0
    g0 = jax.grad(f)(jnp.zeros((2, N, N)).at[0, 3, 3].set(1.0).at[1, 5, 9].set(-2.0))
    assert np.all(np.isfinite(np.asarray(g0)))


def test_jit_pytree_batching_and_reference(ss, gaussian_fields):
    x = gaussian_fields(5, N, seed=6) + 1.0
    base = np.asarray(ss(x))
    np.testing.assert_allclose(np.asarray(jax.jit(lambda m, y: m(y))(ss, jnp.asarray(x))), base, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ss(x, batch_size=2)), base, atol=1e-5)
    np.testing.assert_allclose(np.asarray(scattering_spectra(x, J, L)), base, atol=1e-5)
    mean, std = ss.mean_and_std(x, batch_size=2)
    np.testing.assert_allclose(mean, base.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std, base.std(0, ddof=1), rtol=1e-3, atol=1e-5)
    # reference normalisation with the field's own S2 reproduces the self-normalised statistics
    own = ss.with_reference(x[:1])
    np.testing.assert_allclose(np.asarray(own(x[:1])), base[:1], atol=3e-5, rtol=1e-4)
    assert own.reference_s2.shape == (J, L) and ss.reference_s2 is None
    ref = ss.with_reference(x)
    s2 = np.asarray(ss.coefficients(x).S2).mean(0)
    np.testing.assert_allclose(np.asarray(ref.reference_s2), s2, rtol=1e-5)


def test_describe_and_table(ss, ss_aniso):
    d = ss.describe()
    assert d[0] == {"index": 0, "type": "mean", "isotropic": True}
    types = [e["type"] for e in d]
    assert types == sorted(types, key=["mean", "S2", "S1", "C01", "C11"].index)
    t = ss_aniso.table()
    assert set(t["type"]) == {"mean", "S1", "S2", "C01", "C11"}
    c11 = t["type"] == "C11"
    assert np.all(t["j1"][c11] <= t["j2"][c11]) and np.all(t["j2"][c11] <= t["j3"][c11])
    # j1 = j2: one of each conjugate pair (l1 ≤ l2), no imaginary part when l1 = l2
    eq = c11 & (t["j1"] == t["j2"])
    assert np.all(t["l1"][eq] <= t["l2"][eq])
    assert not np.any(eq & (t["l1"] == t["l2"]) & (t["part"] == "im"))


def test_flops_and_memory_reported(ss):
    est = ss.flop_estimate()
    assert est["flops_total"] > est["flops_first_layer"] > 0
    cost = ss.cost(2)
    assert cost["temp_bytes"] > 0 and np.isfinite(cost["flops"])


def test_bad_input(ss):
    with pytest.raises(ParameterError, match="too small"):
        ScatteringSpectra((16, 16), 5)
    with pytest.raises(ParameterError):
        ScatteringSpectra((32, 32), 0)
    with pytest.raises(ParameterError):
        ScatteringSpectra((32, 32), 3, reference_s2=np.ones((2, 2)))
    with pytest.raises(InputError, match="shape"):
        ss(np.zeros((2, 32, 16), np.float32))
    bad = np.zeros((1, N, N), np.float32)
    bad[0, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ss(bad)
    with pytest.raises(InputError):
        ss(np.zeros((N,), np.float32))
    with pytest.raises(ParameterError):
        ClassicScattering((16, 16), 5)


def test_non_square_fields_supported(gaussian_fields):
    model = ScatteringSpectra((32, 64), 3, 4)
    x = gaussian_fields(1, 64, seed=7)[:, :32] ** 2
    a = np.asarray(model(x))
    assert a.shape == (1, model.n_stats) and np.all(np.isfinite(a))
    np.testing.assert_allclose(np.asarray(model(np.roll(x, (5, 11), (1, 2)))), a, atol=3e-5, rtol=1e-4)


def test_classic_scattering_kymatio(gaussian_fields):
    x = gaussian_fields(2, 32, seed=2) + 0.5
    out = np.asarray(classic_scattering(x, 2, L=4))
    assert out.shape == (2, 1 + 2 * 4 + 16 * 2 * 1 // 2)
    assert ClassicScattering((32, 32), 2, 4).n_coefficients == out.shape[1]
    assert np.all(np.isfinite(out)) and np.all(out[:, 1:] > 0)
    # a constant field: zeroth order is the constant (φ̂(0) = 1), higher orders vanish (zero-mean wavelets)
    const = np.asarray(classic_scattering(np.full((1, 32, 32), 2.5, np.float32), 2, L=4))
    np.testing.assert_allclose(const[0, 0], 2.5, rtol=1e-3)
    assert np.abs(const[0, 1:]).max() < 1e-4


def test_preconditioner_weights(ss):
    """p(k) = Σ S2 ψ̂² / Σ ψ̂² (band-wise wavelet power): positive, mean 1, p(k) = p(−k) (a symmetric
    map), equal to S2 of a band where that band's filters dominate, and scale-free in S2."""
    rng = np.random.default_rng(3)
    s2 = np.exp(rng.normal(size=(J, L)) * 2.0)
    p = ss.preconditioner(s2)
    assert p.shape == (N, N // 2 + 1) and p.dtype == np.float32
    assert np.all(p > 0) and abs(p.mean() - 1) < 1e-5
    np.testing.assert_allclose(ss.preconditioner(7.5 * s2), p, rtol=1e-5)
    # the k1 = 0 column holds both k and −k: equal values, so irfft2(p·rfft2(q)) is symmetric
    np.testing.assert_allclose(p[1:, 0], p[1:, 0][::-1], rtol=1e-6)
    q = jnp.asarray(rng.normal(size=(2, N, N)), jnp.float32)
    m = lambda v: jnp.fft.irfft2(jnp.asarray(p) * jnp.fft.rfft2(v), s=(N, N))  # noqa: E731
    np.testing.assert_allclose(float(jnp.vdot(q[0], m(q[1]))), float(jnp.vdot(m(q[0]), q[1])), rtol=1e-4)
    assert float(jnp.vdot(q[0], m(q[0]))) > 0
    # equal S2 everywhere: p ≡ 1; S2 = 10^j (a decade per scale): at the centre frequency ξ_j of band j
    # (along axis 0) p lies between its neighbours' S2 and falls monotonically towards fine scales
    np.testing.assert_allclose(ss.preconditioner(np.full((J, L), 3.0)), 1.0, rtol=1e-5)
    c = 10.0 ** np.arange(J)
    pj = ss.preconditioner(np.repeat(c[:, None], L, 1))
    xi = 0.75 * np.pi / 2.0 ** np.arange(J)
    at = np.array([pj[int(round(x * N / (2 * np.pi))), 0] for x in xi])
    steps = at[1:] / at[:-1]                # a decade per scale, blurred by the bands' overlap (≈ 7–8 at 32²)
    assert np.all((steps > 4.0) & (steps < 10.0)), at
    with pytest.raises(ParameterError, match="reference_s2"):
        ss.preconditioner()
    with pytest.raises(ParameterError):
        ss.preconditioner(-s2)


def test_orientation_power_keeps_s2_per_orientation(ss, ss_aniso, gaussian_fields):
    """``orientation_power``: the isotropic statistics with log S2 per (j, ℓ) in place of its
    orientation mean; every other entry unchanged, and S2 equal to the anisotropic set's."""
    J, L = ss.J, ss.L
    op = ScatteringSpectra(ss.shape, J, L, orientation_power=True)
    assert op.n_stats == ss.n_stats + J * (L - 1) == len(op.describe())
    x = jnp.asarray(gaussian_fields(3, N, slope=1.0, seed=3))
    a, b, c = np.asarray(op(x)), np.asarray(ss(x)), np.asarray(ss_aniso(x))
    t_op, t_iso, t_an = (m.table()["type"] for m in (op, ss, ss_aniso))
    np.testing.assert_allclose(a[:, t_op == "S2"], c[:, t_an == "S2"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.log(np.mean(np.exp(a[:, t_op == "S2"]).reshape(3, J, L), -1)), b[:, t_iso == "S2"],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a[:, t_op != "S2"], b[:, t_iso != "S2"])
    # without isotropy S2 is already per orientation: the option changes nothing
    assert ScatteringSpectra(ss.shape, J, L, isotropic=False, orientation_power=True).n_stats == ss_aniso.n_stats
