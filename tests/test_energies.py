"""Energies: analytic φ⁴ force vs autodiff, hand-computed values, the GFF closed form, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.energies import (Energy, Phi4, energy_from_fn, gaussian_free_field, gff_exact_spectrum,
                             phi4_energy, phi4_grad, phi4_value_and_grad)
from phigen.errors import InputError, ParameterError


def _loop_action(phi, kappa, lam):
    """Independent reference: the hopping action by explicit loops over sites and forward bonds."""
    h, w = phi.shape
    s = 0.0
    for i in range(h):
        for j in range(w):
            f = float(phi[i, j])
            s += -2 * kappa * f * (float(phi[(i + 1) % h, j]) + float(phi[i, (j + 1) % w]))
            s += f * f + lam * (f * f - 1) ** 2
    return s


@pytest.mark.parametrize("kappa,lam", [(0.2, 0.0), (0.27, 0.022), (0.3, 1.5)])
@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 6, 10)])
def test_analytic_grad_matches_autodiff(kappa, lam, shape):
    phi = jax.random.normal(jax.random.key(1), shape) * 1.3
    auto = jax.grad(lambda p: jnp.sum(phi4_energy(p, kappa, lam)))(phi)
    g = phi4_grad(phi, kappa, lam)
    assert g.shape == phi.shape and g.dtype == jnp.float32
    np.testing.assert_allclose(g, auto, rtol=1e-5, atol=1e-4)
    u2, g2 = phi4_value_and_grad(phi, kappa, lam)
    np.testing.assert_allclose(u2, phi4_energy(phi, kappa, lam), rtol=1e-6)
    np.testing.assert_allclose(g2, g, rtol=1e-6, atol=1e-6)


def test_energy_matches_loop_reference_and_closed_forms():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(2, 5, 7)).astype(np.float32)
    u = np.asarray(phi4_energy(phi, 0.23, 0.7))
    for c in range(2):
        assert u[c] == pytest.approx(_loop_action(phi[c], 0.23, 0.7), rel=1e-5)
    # constant field c: every site has 2 forward bonds of value c²
    V, c0, kappa, lam = 36, 0.8, 0.21, 0.4
    const = np.full((1, 6, 6), c0, np.float32)
    assert float(phi4_energy(const, kappa, lam)[0]) == pytest.approx(
        V * (-4 * kappa * c0 ** 2 + c0 ** 2 + lam * (c0 ** 2 - 1) ** 2), rel=1e-5)
    # checkerboard: every bond is −c²
    checker = const * (-1.0) ** np.add.outer(np.arange(6), np.arange(6))[None]
    assert float(phi4_energy(checker, kappa, lam)[0]) == pytest.approx(
        V * (4 * kappa * c0 ** 2 + c0 ** 2 + lam * (c0 ** 2 - 1) ** 2), rel=1e-5)
    # single spike a at one site, zero elsewhere: no bonds; the zero sites cost λ each
    spike = np.zeros((1, 4, 4), np.float32)
    spike[0, 1, 2] = 1.7
    assert float(phi4_energy(spike, kappa, lam)[0]) == pytest.approx(
        1.7 ** 2 + lam * (1.7 ** 2 - 1) ** 2 + 15 * lam, rel=1e-5)
    # its force: −2κ·a on the four neighbours, 2a + 4λ(a²−1)a on the spike, 4λ·0 elsewhere
    g = np.asarray(phi4_grad(spike, kappa, lam))[0]
    assert g[1, 2] == pytest.approx(2 * 1.7 + 4 * lam * (1.7 ** 2 - 1) * 1.7, rel=1e-5)
    for (i, j) in [(0, 2), (2, 2), (1, 1), (1, 3)]:
        assert g[i, j] == pytest.approx(-2 * kappa * 1.7, rel=1e-5)
    assert g[3, 0] == 0.0


def test_phi4_energy_object_matches_functions_and_is_hashable():
    e = Phi4(0.25, 0.5)
    assert isinstance(e, Energy) and e == Phi4(0.25, 0.5) and hash(e) == hash(Phi4(kappa=0.25, lam=0.5))
    assert e != Phi4(0.25, 0.6)
    phi = jax.random.normal(jax.random.key(2), (4, 8, 8))
    np.testing.assert_allclose(e.value(phi), phi4_energy(phi, 0.25, 0.5), rtol=1e-6)
    np.testing.assert_allclose(e.grad(phi), phi4_grad(phi, 0.25, 0.5), rtol=1e-6)
    u, g = e.value_and_grad(phi)
    np.testing.assert_allclose(u, e.value(phi), rtol=1e-6)
    # usable as a jit static argument
    f = jax.jit(lambda x, en: en.value(x), static_argnums=1)
    np.testing.assert_allclose(f(phi, e), e.value(phi), rtol=1e-5)
    gff = gaussian_free_field(0.2)
    assert gff.lam == 0.0 and gff.name == "gaussian_free_field"


def test_gff_spectrum_equals_inverse_hessian():
    """⟨|φ̂(k)|²⟩/V from the exact covariance A⁻¹ (A = Hessian of S) on a 6×8 lattice."""
    kappa, shape = 0.2, (6, 8)
    V = shape[0] * shape[1]
    hess = jax.hessian(lambda v: phi4_energy(v.reshape((1,) + shape), kappa, 0.0)[0])(
        jnp.zeros(V, jnp.float32))
    cov = np.linalg.inv(np.asarray(hess, np.float64))
    # Fourier transform of the covariance: (1/V) F C F^†
    F = np.fft.fft2(np.eye(V).reshape(V, *shape)).reshape(V, V)  # row x = fft2 of δ_x
    spec = np.real(np.einsum("xk,xy,yk->k", np.conj(F), cov, F)).reshape(shape) / V
    np.testing.assert_allclose(spec, gff_exact_spectrum(shape, kappa), rtol=1e-5)
    np.testing.assert_allclose(gff_exact_spectrum(8, kappa), gff_exact_spectrum((8, 8), kappa))


def test_energy_from_fn_vmaps_and_differentiates():
    e = energy_from_fn(lambda x: 2.0 * (x ** 2 - 1.0) ** 2, name="double_well")
    x = jnp.array([-1.5, 0.0, 0.3, 2.0])
    np.testing.assert_allclose(e.value(x), 2 * (x ** 2 - 1) ** 2, rtol=1e-6)
    np.testing.assert_allclose(e.grad(x), 8 * x * (x ** 2 - 1), rtol=1e-6)
    u, g = e.value_and_grad(x)
    np.testing.assert_allclose(g, 8 * x * (x ** 2 - 1), rtol=1e-6)
    assert e.name == "double_well" and hash(e) == hash(e)
    e2 = energy_from_fn(lambda v: jnp.sum(v ** 2))
    y = jnp.ones((3, 2, 5))
    assert e2.value(y).shape == (3,) and e2.grad(y).shape == (3, 2, 5)
    with pytest.raises(ParameterError):
        energy_from_fn(3.0)


@pytest.mark.parametrize("kappa,lam", [(-0.1, 0.5), (0.2, -1.0), (0.25, 0.0), (0.3, 0.0),
                                       (float("nan"), 1.0), (0.2, float("inf")), ("a", 1.0)])
def test_bad_parameters_raise(kappa, lam):
    with pytest.raises(ParameterError):
        Phi4(kappa, lam)
    with pytest.raises(ParameterError):
        phi4_energy(np.zeros((1, 8, 8)), kappa, lam)


def test_bad_inputs_raise():
    with pytest.raises(ParameterError):
        phi4_energy(np.zeros((2, 3, 8)), 0.2, 1.0)   # L < 4
    with pytest.raises(ParameterError):
        gff_exact_spectrum((3, 8), 0.2)
    with pytest.raises(ParameterError):
        gff_exact_spectrum((8, 8), 0.26)
    bad = np.zeros((1, 8, 8))
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError):
        phi4_grad(bad, 0.2, 1.0)
    with pytest.raises(InputError):
        phi4_energy(np.zeros(8), 0.2, 1.0)


def test_phi4_is_a_pytree_whose_parameters_are_traced():
    """κ and λ are leaves: one compilation serves every (κ, λ) of a shape, with the right values;
    λ = 0 (the Gaussian free field) is a different structure (its name is static)."""
    phi = jax.random.normal(jax.random.key(3), (3, 8, 8))
    assert jax.tree_util.tree_leaves(Phi4(0.25, 0.5)) == [0.25, 0.5]
    f = jax.jit(lambda en, x: en.value_and_grad(x))
    for kappa, lam in [(0.2, 0.5), (0.27, 1.0), (0.3, 0.02)]:
        u, g = f(Phi4(kappa, lam), phi)
        u_ref, g_ref = phi4_value_and_grad(phi, kappa, lam)
        np.testing.assert_allclose(u, u_ref, rtol=1e-5)
        np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-5)
    assert f._cache_size() == 1
    f(gaussian_free_field(0.2), phi)
    assert f._cache_size() == 2
    same = jax.tree_util.tree_structure(Phi4(0.2, 0.5)) == jax.tree_util.tree_structure(Phi4(0.3, 0.7))
    assert same and jax.tree_util.tree_structure(Phi4(0.2, 0.5)) != jax.tree_util.tree_structure(Phi4(0.2, 0.0))


def test_phi4_fast_paths_fall_back_where_the_flat_layout_does_not_apply():
    """(The fast paths themselves are checked against the plain expressions in test_rng.py.)"""
    e = Phi4(0.27, 0.8)
    plain = Energy(value=e.value, grad=e.grad, name="plain")
    assert plain.fused_leapfrog(jnp.zeros((2, 6, 6))) is None  # a plain Energy has none
    assert e.fused_leapfrog(jnp.zeros((2, 2, 8))) is None and e.fused_leapfrog(jnp.zeros((8, 8))) is None
    x = jax.random.normal(jax.random.key(4), (2, 2, 8))
    p = jax.random.normal(jax.random.key(5), (2, 2, 8))
    u, g = e.value_and_grad(x)
    np.testing.assert_allclose(u, e.value(x), rtol=1e-5)
    np.testing.assert_allclose(g, e.grad(x), rtol=1e-6)
    np.testing.assert_allclose(e.kick(x, p, 0.1), p - 0.1 * e.grad(x), rtol=1e-6)


def test_an_energy_subclass_with_parameters_is_a_pytree_too():
    from dataclasses import dataclass as dc

    @dc(frozen=True)
    class Harmonic(Energy):
        stiffness: float = 1.0
        _parameters = ("stiffness",)
        _derived = ("value", "grad", "value_and_grad_fn")

        def __init__(self, stiffness):
            object.__setattr__(self, "stiffness", stiffness)
            object.__setattr__(self, "name", "harmonic")
            object.__setattr__(self, "value_and_grad_fn", None)
            self._bind()

        def _bind(self):
            k = self.stiffness
            object.__setattr__(self, "value", lambda x: 0.5 * k * jnp.sum(x * x, axis=(-2, -1)))
            object.__setattr__(self, "grad", lambda x: k * x)

    x = jnp.ones((2, 4, 4))
    f = jax.jit(lambda en, x: en.value(x))
    np.testing.assert_allclose(f(Harmonic(2.0), x), [16.0, 16.0])
    np.testing.assert_allclose(f(Harmonic(3.0), x), [24.0, 24.0])
    assert f._cache_size() == 1
