"""Conditional Gibbs energies linear in their parameters, fitted by score matching in closed form,
and sampled with MALA: the per-scale building block of the WC-RG model (docs/rg.md).

A *level* has variables ``y`` ``(Cy, h, w)`` (the 3 normalised detail channels of one DWT level, or the
single normalised coarsest field x̃_J) and, for a conditional level, a conditioning coarse field
``z = x̃_j`` ``(h, w)``. Its energy is ``U_θ(y | z) = θ · Φ(y, z)`` with the features

- linear: ``Σ_s y_c(s)`` per channel c;
- quadratic among the variables: ``Σ_s y_c(s) y_c'(s+δ)`` for channel pairs c ≤ c' and offsets
  δ ∈ [−k, k]² (for c = c' only one of ±δ, the other being the same feature);
- quadratic with the conditioning: ``Σ_s y_c(s) z(s+δ)`` for δ ∈ [−k, k]²;
- a scalar potential of the reconstructed finer field r (the normalised x_{j−1} = A x_j + B x̄_j, or
  r = y for the coarsest field): ``Σ_s g_m(r(s))`` for a smooth basis ``g_m`` — Gaussian bumps
  ``exp(−(t − c_m)²/2w²)`` on a grid of centres, and ``t⁴/24`` (the φ⁴ quartic; t² is not needed:
  ``Σ r²`` is already a quadratic form of y and z).

Score matching (Hyvärinen): minimising ``E[½|∇_y U_θ|² − Δ_y U_θ]`` over θ gives the normal equations
``M θ = b`` with ``M = E[∇Φ ∇Φᵀ]`` (the Gram matrix of feature gradients, summed over sites and
channels) and ``b = E[ΔΦ]``. Laplacians are exact (docs/rg.md): quadratic features have constant
Laplacians (``2·h·w`` for ``y_c(s)²``, 0 otherwise), and for the potential
``Δ_y Σ_s g(r(s)) = Σ_s g''(r(s)) ω(s)`` with ``ω(s) = Σ_c σ_c² ‖B^c_{s,·}‖² / s_{j−1}²`` a constant
of the wavelet that only depends on the parity of s (:func:`~phigen.rg.factor.detail_row_norms`).
The system is solved with diagonal (Jacobi) preconditioning and a relative ridge; the condition
numbers before and after are reported. :func:`hutchinson_laplacians` gives the stochastic estimate
for checking the exact forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import DivergenceError, InputError, ParameterError
from .._chunks import run_chunks
from ..samplers.adaptation import DEFAULT_TARGET_ACCEPTANCE, DualAveragingState, dual_averaging_update
from ..samplers.mala import MALAState, mala_transition
from ..wavelets.dwt import analysis_1d, inverse_level, wavelet_level, wavelet_filters
from ._preconditioner import apply_symbol, mass_matrix_roots, quadratic_symbol
from .factor import detail_row_norms

__all__ = ["LevelSpec", "LevelConstants", "level_features", "feature_gradients", "feature_laplacians",
           "hutchinson_laplacians", "level_energy", "level_value_and_grad", "score_matching_system", "solve_score_matching",
           "ScoreMatchingFit", "LevelSampleInfo", "potential_curvature", "level_preconditioner", "sample_level",
           "modulus_scales", "modulus_statistics"]


# --- static description of a level ---------------------------------------------------------------
@dataclass(frozen=True)
class LevelSpec:
    """Which features a level's energy has (hashable: a static argument of the jitted kernels).

    channels: number of variable channels Cy (3 for details, 1 for the coarsest field);
    conditional: whether a conditioning coarse field z enters (quadratic y·z terms, and the potential
    acts on the reconstructed finer field); k: neighbourhood half-width of the quadratic terms;
    centres / width: the potential's Gaussian bumps (normalised units); quartic: include t⁴/24;
    wavelet: for reconstructing the finer field of a conditional level.
    """

    channels: int
    conditional: bool
    k: int = 2
    centres: tuple = tuple(np.round(np.linspace(-4.0, 4.0, 11), 6).tolist())
    width: float = 0.8
    quartic: bool = True
    wavelet: str = "db4"
    modulus: int = 0
    modulus_centres: tuple = ()
    modulus_width: float = 0.6
    modulus_scale: tuple = ()
    coarse_modulus_scale: tuple = ()
    modulus_eps: float = 0.1
    modulus_linear: bool = True
    modulus_cross: bool = True

    def __post_init__(self):
        if int(self.modulus) != self.modulus or self.modulus < 0:
            raise ParameterError(f"modulus (orientations of the modulus features) must be an integer >= 0; "
                                 f"got {self.modulus!r}")
        if self.modulus:
            if not self.conditional:
                raise ParameterError("modulus features act on the reconstructed finer field: conditional levels only")
            for name in ("modulus_scale", "coarse_modulus_scale"):
                v = getattr(self, name)
                if len(v) != self.modulus or not all(np.isfinite(u) and u > 0 for u in v):
                    raise ParameterError(f"{name} needs {self.modulus} positive numbers (one per orientation); got {v!r}")
            if not self.modulus_width > 0 or not self.modulus_eps > 0:
                raise ParameterError(f"modulus_width and modulus_eps must be > 0; got {self.modulus_width!r}, "
                                     f"{self.modulus_eps!r}")
        if self.channels < 1:
            raise ParameterError(f"a level needs at least one channel; got {self.channels}")
        if int(self.k) != self.k or self.k < 0:
            raise ParameterError(f"neighbourhood half-width k must be an integer >= 0; got {self.k!r}")
        if not self.width > 0:
            raise ParameterError(f"potential bump width must be > 0; got {self.width!r}")

    @property
    def offsets(self) -> tuple:
        k = self.k
        return tuple((a, b) for a in range(-k, k + 1) for b in range(-k, k + 1))

    @property
    def half_offsets(self) -> tuple:
        """One of each ±δ pair (and δ = 0): (a > 0) or (a = 0 and b ≥ 0)."""
        return tuple(d for d in self.offsets if d[0] > 0 or (d[0] == 0 and d[1] >= 0))

    @property
    def yy_terms(self) -> tuple:
        """(c, c', δ) of the quadratic variable–variable features, in feature order."""
        out = []
        for c in range(self.channels):
            for c2 in range(c, self.channels):
                for d in (self.half_offsets if c == c2 else self.offsets):
                    out.append((c, c2, d))
        return tuple(out)

    @property
    def n_potential(self) -> int:
        return len(self.centres) + (1 if self.quartic else 0)

    @property
    def n_modulus_per_orientation(self) -> int:
        """Modulus features per orientation: t, the bumps g_m(t), and t·v (the coarse modulus)."""
        return int(self.modulus_linear) + len(self.modulus_centres) + int(self.modulus_cross)

    @property
    def n_modulus(self) -> int:
        return self.modulus * self.n_modulus_per_orientation

    @property
    def n_features(self) -> int:
        n = self.channels + len(self.yy_terms) + self.n_potential + self.n_modulus
        if self.conditional:
            n += self.channels * len(self.offsets)
        return n

    def blocks(self) -> dict:
        """Feature index ranges by kind: linear, yy, yz, potential, modulus."""
        sizes = [("linear", self.channels), ("yy", len(self.yy_terms)),
                 ("yz", self.channels * len(self.offsets) if self.conditional else 0), ("potential", self.n_potential),
                 ("modulus", self.n_modulus)]
        out, start = {}, 0
        for name, n in sizes:
            out[name] = (start, start + n)
            start += n
        return out

    def min_side(self) -> int:
        """Smallest side of y for which the offsets do not wrap onto each other."""
        return 2 * self.k + 1


class LevelConstants(NamedTuple):
    """Arrays a level's energy needs besides θ (float32; a pytree so it is traced, not baked in).

    detail_mean / detail_std (Cy,): the details' normalisation (identity for the coarsest level);
    coarse_mean / coarse_std: normalisation of the conditioning x_j (scalars);
    fine_mean / fine_std: normalisation of the reconstructed finer field r (scalars);
    lap_weight (2, 2): ω(s) by site parity (ones for the coarsest level).
    """

    detail_mean: jax.Array
    detail_std: jax.Array
    coarse_mean: jax.Array
    coarse_std: jax.Array
    fine_mean: jax.Array
    fine_std: jax.Array
    lap_weight: jax.Array

    @classmethod
    def coarsest(cls) -> "LevelConstants":
        one, zero = jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32)
        return cls(jnp.zeros((1,), jnp.float32), jnp.ones((1,), jnp.float32), zero, one, zero, one,
                   jnp.ones((2, 2), jnp.float32))

    @classmethod
    def conditional(cls, wavelet, detail_mean, detail_std, coarse_mean, coarse_std, fine_mean, fine_std):
        norms = detail_row_norms(wavelet)  # (3, 2, 2)
        sd = np.asarray(detail_std, np.float64)
        w = np.einsum("c,cab->ab", sd**2, norms) / float(fine_std) ** 2
        f = partial(jnp.asarray, dtype=jnp.float32)
        return cls(f(detail_mean), f(detail_std), f(coarse_mean), f(coarse_std), f(fine_mean), f(fine_std), f(w))


# --- the basis of the scalar potential -----------------------------------------------------------
def _potential_basis(spec: LevelSpec, t):
    """``g_m(t)``, ``g_m'(t)``, ``g_m''(t)`` for every basis function: 3 arrays ``(M, *t.shape)``."""
    c = jnp.asarray(spec.centres, t.dtype).reshape((-1,) + (1,) * t.ndim)
    u = (t[None] - c) / spec.width
    g = jnp.exp(-0.5 * u * u)
    g1 = -u / spec.width * g
    g2 = (u * u - 1.0) / spec.width**2 * g
    if spec.quartic:
        t2 = t * t
        g = jnp.concatenate([g, (t2 * t2 / 24.0)[None]])
        g1 = jnp.concatenate([g1, (t2 * t / 6.0)[None]])
        g2 = jnp.concatenate([g2, (t2 / 2.0)[None]])
    return g, g1, g2


def _potential_and_derivative(spec: LevelSpec, pot, t):
    """``V(t) = Σ_m pot_m g_m(t)`` and ``V'(t)`` (the basis of :func:`_potential_basis`), written as one
    elementwise expression so that XLA fuses it into a single loop (no ``(M, *t.shape)`` arrays)."""
    v = v1 = jnp.zeros_like(t)
    for m, c in enumerate(spec.centres):
        u = (t - c) / spec.width
        e = jnp.exp(-0.5 * u * u)
        v = v + pot[m] * e
        v1 = v1 + pot[m] * (-u / spec.width * e)
    if spec.quartic:
        t2 = t * t
        v = v + pot[-1] * (t2 * t2 / 24.0)
        v1 = v1 + pot[-1] * (t2 * t / 6.0)
    return v, v1


def _fine_field(spec: LevelSpec, consts: LevelConstants, y, x_c, matmul: bool = False):
    """The normalised field the potential acts on: r = (x_{j−1} − m)/s, or y[0] for the coarsest level.

    ``y`` ``(..., Cy, h, w)``, ``x_c`` ``(..., h, w)`` the unnormalised conditioning x_j; ``matmul``:
    synthesise with :func:`_synthesis_mm` (the sampler's energy) rather than the filter taps.
    """
    if not spec.conditional:
        return y[..., 0, :, :]
    d = y * consts.detail_std[:, None, None] + consts.detail_mean[:, None, None]
    r = _synthesis_mm(x_c, d, spec.wavelet) if matmul else _synthesis(x_c, d, spec.wavelet)
    return (r - consts.fine_mean) / consts.fine_std


@lru_cache(maxsize=64)
def _dwt_matrix(wavelet: str, n: int) -> np.ndarray:
    """The periodic one-axis DWT level of length ``n`` as an orthogonal ``(n, n)`` float32 matrix:
    ``x @ A = [low | high]`` (the taps of :func:`phigen.wavelets.dwt.wavelet_level`, probed on the identity)."""
    with jax.ensure_compile_time_eval():  # a constant, also when first asked for inside a trace
        low, high = analysis_1d(np.eye(n, dtype=np.float32), *_filters(wavelet), axis=1)  # row p: response to e_p
    return np.ascontiguousarray(np.concatenate([np.asarray(low), np.asarray(high)], axis=1), dtype=np.float32)


def _analysis_mm(x, wavelet):
    """:func:`_analysis` as two dense matrix products (on a CPU about twice as fast as the filter taps,
    whose strided slices XLA does not vectorise well); the same sums up to float32 rounding."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    ar = _dwt_matrix(wavelet, x.shape[-2])
    ac = _dwt_matrix(wavelet, x.shape[-1])
    r = jnp.einsum("...nw,nk->...kw", x, ar)            # rows: [low; high]
    lo_c = jnp.einsum("...hn,nk->...hk", r[..., :h, :], ac)
    hi_c = jnp.einsum("...hn,nk->...hk", r[..., h:, :], ac)
    return lo_c[..., :w], jnp.stack([hi_c[..., :w], lo_c[..., w:], hi_c[..., w:]], axis=-3)


def _synthesis_mm(a, d, wavelet):
    """:func:`_synthesis` as dense matrix products (the transpose of :func:`_analysis_mm`)."""
    ar = _dwt_matrix(wavelet, 2 * a.shape[-2])
    ac = _dwt_matrix(wavelet, 2 * a.shape[-1])
    lo_c = jnp.einsum("...hk,nk->...hn", jnp.concatenate([a, d[..., 1, :, :]], axis=-1), ac)
    hi_c = jnp.einsum("...hk,nk->...hn", jnp.concatenate([d[..., 0, :, :], d[..., 2, :, :]], axis=-1), ac)
    return jnp.einsum("...kw,nk->...nw", jnp.concatenate([lo_c, hi_c], axis=-2), ar)


def _filters(wavelet):
    lo, hi = wavelet_filters(wavelet)
    return lo.astype(np.float32), hi.astype(np.float32)


def _synthesis(x_c, d, wavelet):
    """x_{j−1} from x_j ``(..., h, w)`` and details ``(..., 3, h, w)`` (traceable, no input checks)."""
    return inverse_level(x_c, d, *_filters(wavelet))


def _analysis(x, wavelet):
    """(x_j, details) of x_{j−1} ``(..., H, W)`` (traceable, no input checks)."""
    return wavelet_level(x, *_filters(wavelet))


# --- modulus features (wavelet-modulus potentials of the reconstructed finer field) ----------------
# t_ℓ(s) = √(|w_ℓ(s)|²/μ_ℓ² + ε²), w_ℓ = ψ_ℓ ⋆ r (finest Morlet octave, orientation ℓ, on r's grid):
# the local amplitude of the level's fluctuations in one direction, in units of the data's mean μ_ℓ
# (ε keeps t smooth where w = 0). Features per orientation: Σ t (a sparsity / L¹ term), Σ g_m(t) (the
# law of the amplitude), Σ t·v with v_ℓ = |ψ_ℓ ⋆ z|/μ'_ℓ − 1 the conditioning field's amplitude one
# octave coarser, upsampled (the cross-scale modulus correlation of scattering covariances).
@lru_cache(maxsize=32)
def _modulus_filters(shape, n_orient: int) -> np.ndarray:
    """ψ̂_ℓ ``(L, H, W)`` float32: the finest-octave Morlet filters of fields ``shape`` (real in Fourier)."""
    from ..wavelets.filters import morlet_filter_bank

    return np.ascontiguousarray(morlet_filter_bank(tuple(shape), 1, int(n_orient)).psi[0], dtype=np.float32)


def _filtered(spec: LevelSpec, f):
    """``ψ_ℓ ⋆ f`` ``(..., L, H, W)`` complex64 of real fields ``f`` ``(..., H, W)``."""
    psi = _modulus_filters(tuple(f.shape[-2:]), spec.modulus)
    return jnp.fft.ifft2(jnp.fft.fft2(f)[..., None, :, :] * psi)


def _pull_back(spec: LevelSpec, c):
    """Adjoint of ``r ↦ (Re w, Im w)`` applied to complex cotangents ``c = α + iβ`` ``(..., L, H, W)``,
    summed over orientations: ``Re ifft2(Σ_ℓ ψ̂_ℓ fft2(c_ℓ))`` ``(..., H, W)`` (ψ̂ real)."""
    psi = _modulus_filters(tuple(c.shape[-2:]), spec.modulus)
    return jnp.real(jnp.fft.ifft2(jnp.sum(jnp.fft.fft2(c) * psi, axis=-3)))


def _amplitude(spec: LevelSpec, r):
    """``(w, t)`` of the normalised finer field ``r`` ``(..., H, W)``: both ``(..., L, H, W)``."""
    w = _filtered(spec, r)
    mu = jnp.asarray(spec.modulus_scale, jnp.float32)[:, None, None]
    t = jnp.sqrt((jnp.real(w) ** 2 + jnp.imag(w) ** 2) / mu**2 + spec.modulus_eps**2)
    return w, t


def _coarse_amplitude(spec: LevelSpec, z):
    """``v`` ``(..., L, 2h, 2w)``: ``|ψ_ℓ ⋆ z|/μ'_ℓ − 1`` of the normalised conditioning ``z`` ``(..., h, w)``,
    repeated 2×2 onto the finer grid."""
    mu = jnp.asarray(spec.coarse_modulus_scale, jnp.float32)[:, None, None]
    v = jnp.abs(_filtered(spec, z)) / mu - 1.0
    return jnp.repeat(jnp.repeat(v, 2, axis=-2), 2, axis=-1)


def _modulus_basis(spec: LevelSpec, t, v):
    """Values, first and second t-derivatives of the modulus basis: three ``(..., L, K, H, W)`` arrays,
    K = 2 + M: ``t``, ``g_m(t)`` (Gaussian bumps), ``t·v``."""
    c = jnp.asarray(spec.modulus_centres, t.dtype).reshape((-1, 1, 1))
    u = (t[..., None, :, :] - c) / spec.modulus_width
    e = jnp.exp(-0.5 * u * u)
    one, zero = jnp.ones_like(t)[..., None, :, :], jnp.zeros_like(t)[..., None, :, :]
    parts = [([t[..., None, :, :]], [one], [zero]) if spec.modulus_linear else ([], [], []),
             ([e], [-u / spec.modulus_width * e], [(u * u - 1.0) / spec.modulus_width**2 * e]),
             ([(t * v)[..., None, :, :]], [v[..., None, :, :]], [zero]) if spec.modulus_cross else ([], [], [])]
    return tuple(jnp.concatenate(sum((p[i] for p in parts), []), axis=-3) for i in range(3))


def modulus_statistics(spec: LevelSpec, consts, y, x_c) -> np.ndarray:
    """The modulus features of a batch, ``(N, n_modulus)`` float64 (``y`` ``(N, 3, h, w)``, ``x_c``
    ``(N, h, w)``): the statistics the calibration moment-matches (:mod:`phigen.rg.wcrg`)."""
    out = []
    for start in range(0, len(y), 32):
        r = _fine_field(spec, consts, jnp.asarray(y[start:start + 32]), jnp.asarray(x_c[start:start + 32]))
        _, t = _amplitude(spec, r)
        g, _, _ = _modulus_basis(spec, t, _coarse_amplitude(spec, _z(consts, jnp.asarray(x_c[start:start + 32]))))
        out.append(np.asarray(jnp.sum(g, axis=(-2, -1)), np.float64).reshape(len(r), -1))
    return np.concatenate(out)


def modulus_scales(fields, n_orient: int) -> np.ndarray:
    """``μ_ℓ`` ``(L,)``: the mean of ``|ψ_ℓ ⋆ f|`` over fields ``(N, H, W)`` (normalised units), the unit
    of the modulus features of a level."""
    spec = LevelSpec(3, True, modulus=int(n_orient), modulus_scale=(1.0,) * int(n_orient),
                     coarse_modulus_scale=(1.0,) * int(n_orient))
    f = np.asarray(fields, np.float32)
    sums = np.zeros(int(n_orient))
    for start in range(0, len(f), 16):
        sums += np.asarray(jnp.sum(jnp.abs(_filtered(spec, jnp.asarray(f[start:start + 16]))), axis=(0, 2, 3)),
                           np.float64)
    return sums / (len(f) * f.shape[-2] * f.shape[-1])


@lru_cache(maxsize=32)
def _modulus_row_norms(wavelet: str, shape, n_orient: int) -> np.ndarray:
    """``(3, L, 3, 2, 2)`` float64: for each orientation ℓ, detail channel c and site parity of the
    finer grid ``shape`` = (H, W): ``‖P‖², ⟨P, Q⟩, ‖Q‖²`` of the rows ``P = ∂ Re w(s)/∂d_c``,
    ``Q = ∂ Im w(s)/∂d_c`` (unit detail scale and fine scale; ``w = ψ_ℓ ⋆ synthesis(d)``). The map is
    invariant under shifts by 2, so these four parities give every site."""
    h, w = shape
    psi = _modulus_filters(tuple(shape), n_orient).astype(np.float64)
    ar = _dwt_matrix(wavelet, h).astype(np.float64)
    ac = _dwt_matrix(wavelet, w).astype(np.float64)
    out = np.zeros((3, n_orient, 3, 2, 2))
    for a in range(2):
        for b in range(2):
            delta = np.zeros(shape)
            delta[a, b] = 1.0
            base = np.fft.ifft2(psi * np.fft.fft2(delta))  # ψ̂ real: the rows of w(s) w.r.t. r, conjugated
            for part, row in ((0, np.real(base)), (1, -np.imag(base))):
                rr = np.einsum("lnw,nk->lkw", row, ar)  # the analysis (adjoint of the synthesis)
                lo = np.einsum("lhn,nk->lhk", rr[:, : h // 2], ac)
                hi = np.einsum("lhn,nk->lhk", rr[:, h // 2:], ac)
                det = np.stack([hi[..., : w // 2], lo[..., w // 2:], hi[..., w // 2:]], axis=1)  # (L, 3, h, w)
                if part == 0:
                    p_rows = det
                else:
                    q_rows = det
            out[0, :, :, a, b] = np.sum(p_rows * p_rows, axis=(-2, -1))
            out[1, :, :, a, b] = np.sum(p_rows * q_rows, axis=(-2, -1))
            out[2, :, :, a, b] = np.sum(q_rows * q_rows, axis=(-2, -1))
    return out


def _modulus_laplacian_weights(spec: LevelSpec, consts, shape):
    """``(PP, PQ, QQ)`` each ``(L, H, W)``: the row norms of :func:`_modulus_row_norms` with the level's
    scales σ_c/s folded in, tiled over the finer grid."""
    norms = _modulus_row_norms(spec.wavelet, tuple(shape), spec.modulus)
    scale = (consts.detail_std / consts.fine_std) ** 2  # (3,)
    n = jnp.einsum("c,klcab->klab", scale, jnp.asarray(norms, jnp.float32))
    return tuple(jnp.tile(n[i], (1, shape[0] // 2, shape[1] // 2)) for i in range(3))


def _z(consts, x_c):
    return (x_c - consts.coarse_mean) / consts.coarse_std


def _shift(a, d):
    """``a(s + δ)`` for fields ``(..., h, w)`` (periodic): ``roll`` by −δ."""
    return jnp.roll(a, (-d[0], -d[1]), axis=(-2, -1))


def _shift_stack(y, offsets):
    """``y(s + δ)`` for every δ: ``(..., h, w)`` → ``(nδ, ..., h, w)``."""
    return jnp.stack([_shift(y, d) for d in offsets])


# --- features, gradients, Laplacians (one field: y (Cy, h, w), x_c (h, w)) -------------------------
def _yy_index(spec: LevelSpec):
    """Static index arrays of the yy terms: channels c, c', offset index of δ and of −δ."""
    index = {d: i for i, d in enumerate(spec.offsets)}
    t = spec.yy_terms
    c = np.asarray([u[0] for u in t], np.int32)
    c2 = np.asarray([u[1] for u in t], np.int32)
    d = np.asarray([index[u[2]] for u in t], np.int32)
    nd = np.asarray([index[(-u[2][0], -u[2][1])] for u in t], np.int32)
    return c, c2, d, nd


def level_features(spec: LevelSpec, consts: LevelConstants, y, x_c=None):
    """``Φ(y, z)`` ``(P,)`` of one field (see the module docstring for the order)."""
    c, c2, d, _ = _yy_index(spec)
    shifted = _shift_stack(y, spec.offsets)  # (nδ, Cy, h, w): y(s + δ)
    feats = [jnp.sum(y, axis=(-2, -1)), jnp.sum(y[c] * shifted[d, c2], axis=(-2, -1))]
    if spec.conditional:
        zs = _shift_stack(_z(consts, x_c), spec.offsets)  # (nδ, h, w)
        feats.append(jnp.einsum("chw,dhw->cd", y, zs).reshape(-1))
    r = _fine_field(spec, consts, y, x_c)
    g, _, _ = _potential_basis(spec, r)
    feats.append(jnp.sum(g, axis=(-2, -1)))
    if spec.modulus:
        _, t = _amplitude(spec, r)
        gm, _, _ = _modulus_basis(spec, t, _coarse_amplitude(spec, _z(consts, x_c)))
        feats.append(jnp.sum(gm, axis=(-2, -1)).reshape(-1))
    return jnp.concatenate(feats)


def feature_gradients(spec: LevelSpec, consts: LevelConstants, y, x_c=None):
    """``∇_y Φ`` ``(P, Cy, h, w)`` of one field, in closed form (no autodiff)."""
    cy, h, w = y.shape
    eye = jnp.eye(cy, dtype=y.dtype)[:, :, None, None]
    grads = [jnp.broadcast_to(eye, (cy, cy, h, w))]  # linear
    # ∂/∂y_c(s) Σ y_c(s) y_c'(s+δ) = y_c'(s+δ);  ∂/∂y_c'(s) = y_c(s−δ)
    c, c2, d, nd = _yy_index(spec)
    shifted = _shift_stack(y, spec.offsets)
    # placed in their channels by exact 0/1 masks rather than a scatter (XLA's batched scatter under
    # vmap was 90 % of the score-matching time on a CPU); the sums are the same, bit for bit
    one_c = (np.arange(cy)[None, :] == c[:, None]).astype(np.float32)[:, :, None, None]    # (T, Cy, 1, 1)
    one_c2 = (np.arange(cy)[None, :] == c2[:, None]).astype(np.float32)[:, :, None, None]
    gyy = one_c * shifted[d, c2][:, None] + one_c2 * shifted[nd, c][:, None]
    grads.append(gyy.astype(y.dtype))
    if spec.conditional:
        zs = _shift_stack(_z(consts, x_c), spec.offsets)  # (nδ, h, w)
        nd_ = len(spec.offsets)
        gyz = jnp.eye(cy, dtype=y.dtype)[:, None, :, None, None] * zs[None, :, None]  # (Cy, nδ, Cy, h, w)
        grads.append(gyz.reshape(cy * nd_, cy, h, w))
    r = _fine_field(spec, consts, y, x_c)
    _, g1, _ = _potential_basis(spec, r)
    if spec.conditional:
        # ∂r/∂y_c = σ_c B^cᵀ / s: the detail part of the (orthogonal) analysis of g'(r)
        _, det = _analysis(g1, spec.wavelet)
        grads.append(det * (consts.detail_std / consts.fine_std)[:, None, None])
    else:
        grads.append(g1[:, None])
    if spec.modulus:
        # ∂t/∂(Re w, Im w) = w/(μ² t): each feature's cotangent on w, pulled back to r, then to y
        w, t = _amplitude(spec, r)
        _, gm1, _ = _modulus_basis(spec, t, _coarse_amplitude(spec, _z(consts, x_c)))  # (L, K, H, W)
        mu2 = jnp.asarray(spec.modulus_scale, jnp.float32)[:, None, None] ** 2
        c = gm1 * (w / (mu2 * t))[:, None]  # (L, K, H, W)
        psi = _modulus_filters(tuple(r.shape[-2:]), spec.modulus)[:, None]
        rows = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(c) * psi))  # each feature's own orientation (ψ̂ real)
        _, det = _analysis(rows.reshape((spec.n_modulus,) + rows.shape[-2:]), spec.wavelet)
        grads.append(det * (consts.detail_std / consts.fine_std)[:, None, None])
    return jnp.concatenate(grads)


def feature_laplacians(spec: LevelSpec, consts: LevelConstants, y, x_c=None):
    """Exact ``Δ_y Φ`` ``(P,)`` of one field (constants for the quadratic features)."""
    cy, h, w = y.shape
    lin = jnp.zeros((cy,), y.dtype)
    yy = jnp.asarray([2.0 * h * w if (c == c2 and d == (0, 0)) else 0.0 for c, c2, d in spec.yy_terms], y.dtype)
    parts = [lin, yy]
    if spec.conditional:
        parts.append(jnp.zeros((cy * len(spec.offsets),), y.dtype))
    r = _fine_field(spec, consts, y, x_c)
    _, _, g2 = _potential_basis(spec, r)
    rh, rw = r.shape[-2:]
    omega = jnp.tile(consts.lap_weight, (rh // 2, rw // 2)) if spec.conditional else jnp.ones((rh, rw), y.dtype)
    parts.append(jnp.sum(g2 * omega, axis=(-2, -1)))
    if spec.modulus:
        # Δ_y h(t) = h''(t)|∇t|² + h'(t)Δt with t = u/μ, u = √(a² + b² + e²), e = εμ (a, b = Re, Im w):
        # |∇t|² = (a²PP + 2ab PQ + b²QQ)/(μu)², Δt = ((b² + e²)PP − 2ab PQ + (a² + e²)QQ)/(μu³)
        w, t = _amplitude(spec, r)
        _, gm1, gm2 = _modulus_basis(spec, t, _coarse_amplitude(spec, _z(consts, x_c)))
        pp, pq, qq = _modulus_laplacian_weights(spec, consts, (rh, rw))
        mu = jnp.asarray(spec.modulus_scale, jnp.float32)[:, None, None]
        a, b = jnp.real(w), jnp.imag(w)
        u = mu * t
        e2 = (spec.modulus_eps * mu) ** 2
        grad2 = (a * a * pp + 2 * a * b * pq + b * b * qq) / (mu * u) ** 2
        lap_t = ((b * b + e2) * pp - 2 * a * b * pq + (a * a + e2) * qq) / (mu * u**3)
        parts.append(jnp.sum(gm2 * grad2[:, None] + gm1 * lap_t[:, None], axis=(-2, -1)).reshape(-1))
    return jnp.concatenate(parts)


def hutchinson_laplacians(spec: LevelSpec, consts: LevelConstants, y, x_c=None, *, key, n_probes: int = 64):
    """Stochastic estimate ``E_v[vᵀ ∇²Φ v]`` (Rademacher v) of :func:`feature_laplacians`: ``(P,)``.

    Only for checking the exact forms (it costs ``n_probes`` Hessian-vector products).
    """
    grad_fn = lambda yy: feature_gradients(spec, consts, yy, x_c)  # noqa: E731  (∇Φ, P outputs)

    def one(k):
        v = jax.random.rademacher(k, y.shape, y.dtype)
        _, hv = jax.jvp(grad_fn, (y,), (v,))  # (P, Cy, h, w) = ∇²Φ_p v
        return jnp.sum(hv * v, axis=(1, 2, 3))

    return jnp.mean(jax.lax.map(one, jax.random.split(key, n_probes)), axis=0)


def level_energy(theta, spec: LevelSpec, consts: LevelConstants, y, x_c=None):
    """``U_θ(y | x_c) = θ · Φ`` for a batch: ``y`` ``(C, Cy, h, w)``, ``x_c`` ``(C, h, w)`` → ``(C,)``."""
    if spec.conditional:
        return jax.vmap(lambda a, b: theta @ level_features(spec, consts, a, b))(y, x_c)
    return jax.vmap(lambda a: theta @ level_features(spec, consts, a))(y)


# --- score matching ------------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("spec",))
def _moments_chunk(spec, consts, y, x_c, weight):
    """Σ over a chunk of fields of ``weight·∇Φ∇Φᵀ`` (P, P) and ``weight·ΔΦ`` (P,); ``weight`` ``(chunk,)``
    is 1 for real fields and 0 for the padding of a short last chunk (so every chunk of a level has
    the same shape and the kernel compiles once per level). The Gram matrix is one contraction over
    fields and sites (a per-field product then a weighted sum ran 10× slower on a CPU)."""

    def one(a, b):
        return feature_gradients(spec, consts, a, b).reshape(spec.n_features, -1), feature_laplacians(spec, consts, a, b)

    if spec.conditional:
        g, lap = jax.vmap(one)(y, x_c)
    else:
        g, lap = jax.vmap(lambda a: one(a, None))(y)
    return jnp.einsum("fpn,fqn->pq", g * weight[:, None, None], g), jnp.sum(lap * weight[:, None], axis=0)


def score_matching_system(spec: LevelSpec, consts: LevelConstants, y, x_c=None, *, chunk: int = 16):
    """``(M, b, n)``: sums over the fields ``y`` ``(N, Cy, h, w)`` of ``∇Φ∇Φᵀ`` and ``ΔΦ`` (float64),
    and N. The expectation is the sum over N; chunks of fields keep memory at ``chunk·P·Cy·h·w``.
    A short last chunk is padded to ``chunk`` fields with weight 0 (one compilation per field shape)."""
    # chunks are cut on the host (slicing a device array compiles a kernel per slice shape)
    y = np.asarray(y, np.float32)
    x_c = None if x_c is None else np.asarray(x_c, np.float32)
    n = int(y.shape[0])
    p = spec.n_features
    size = chunk
    parts = []
    for start in range(0, n, size):
        yc = y[start:start + size]
        xc = None if x_c is None else x_c[start:start + size]
        weight = np.ones(size, np.float32)
        short = size - yc.shape[0]
        if short:  # pad with copies of real fields (finite features), weighted 0
            weight[size - short:] = 0.0
            yc = np.concatenate([yc, np.resize(y, (short,) + y.shape[1:])])
            xc = None if xc is None else np.concatenate([xc, np.resize(x_c, (short,) + x_c.shape[1:])])
        parts.append(_moments_chunk(spec, consts, jnp.asarray(yc), None if xc is None else jnp.asarray(xc),
                                    jnp.asarray(weight)))  # dispatched, not waited on
    M, b = np.zeros((p, p)), np.zeros(p)
    for m, lap in parts:
        M += np.asarray(m, np.float64)
        b += np.asarray(lap, np.float64)
    return M, b, n


class ScoreMatchingFit(NamedTuple):
    """θ ``(P,)`` and the diagnostics of the solve."""

    theta: np.ndarray
    condition_number: float               # of E[∇Φ∇Φᵀ]
    preconditioned_condition_number: float  # of D M D + ridge·I (D = diag(M)^{-1/2})
    loss: float                            # ½θᵀMθ − θᵀb per field at the solution


def solve_score_matching(M, b, n: int, *, ridge: float = 1e-5) -> ScoreMatchingFit:
    """``θ = (M + ridge·diag(M))⁻¹ b`` in Jacobi-preconditioned form (M, b: sums over n fields)."""
    M = np.asarray(M, np.float64) / n
    b = np.asarray(b, np.float64) / n
    if not (np.all(np.isfinite(M)) and np.all(np.isfinite(b))):
        raise DivergenceError("score-matching moments are not finite (NaN/inf in the training data's features)")
    diag = np.diag(M).copy()
    if np.any(diag <= 0):
        bad = int(np.sum(diag <= 0))
        raise InputError(f"{bad} feature(s) have identically zero gradient on the training data; "
                         "the fields may be constant or the neighbourhood larger than the field")
    d = 1.0 / np.sqrt(diag)
    Mp = M * d[:, None] * d[None, :]
    A = Mp + ridge * np.eye(len(b))
    theta = d * np.linalg.solve(A, d * b)
    ev = np.linalg.eigvalsh(M)
    ev_p = np.linalg.eigvalsh(A)
    cond = float(ev[-1] / max(ev[0], 1e-300))
    cond_p = float(ev_p[-1] / ev_p[0])
    loss = float(0.5 * theta @ M @ theta - theta @ b)
    return ScoreMatchingFit(theta, cond, cond_p, loss)


# --- sampling ------------------------------------------------------------------------------------
class LevelSampleInfo(NamedTuple):
    """Per-level sampling record: the adapted step, the mean MALA acceptance after adaptation, the
    fraction of accepted global flips (coarsest level only), energy evaluations per chain."""

    step_size: float
    acceptance: float
    flip_acceptance: float
    n_steps: int
    mass_condition: float = float("nan")  # max/min eigenvalue of the Fourier mass matrix (nan: none)


def _quadratic_kernel(theta, spec: LevelSpec):
    """The symmetric kernel ``Q[c, c', δ]`` (Cy, Cy, nδ) with ``Σ_yy θ·Φ = ½⟨y, Q⋆y⟩``,
    ``(Q⋆y)_c(s) = Σ_{c',δ} Q[c,c',δ] y_c'(s+δ)``: each term ``θ Σ y_c(s) y_c'(s+δ)`` adds θ at
    (c, c', δ) and at (c', c, −δ)."""
    cy, offs = spec.channels, spec.offsets
    index = {d: i for i, d in enumerate(offs)}
    start = spec.blocks()["yy"][0]
    rows, vals = [], []
    for t, (c, c2, d) in enumerate(spec.yy_terms):
        rows.append((c, c2, index[d]))
        rows.append((c2, c, index[(-d[0], -d[1])]))
        vals.extend([start + t, start + t])
    r = np.asarray(rows)
    q = jnp.zeros((cy, cy, len(offs)), theta.dtype)
    return q.at[r[:, 0], r[:, 1], r[:, 2]].add(theta[np.asarray(vals)])


def _offset_symbol(kernel, offsets, shape):
    """``Σ_δ kernel[..., δ] e^{i k·δ}`` on the ``rfft2`` grid of fields ``shape`` = (h, w):
    ``(..., h, w//2+1)`` complex64. Multiplying ``rfft2(a)`` by it and transforming back gives
    ``Σ_δ kernel[..., δ] a(s + δ)`` (periodic), as a stack of rolls would, at FFT cost."""
    h, w = (int(v) for v in shape)
    ky = 2 * np.pi * np.fft.fftfreq(h)[:, None]
    kx = 2 * np.pi * np.fft.rfftfreq(w)[None, :]
    phase = np.stack([np.exp(1j * (ky * a + kx * b)) for a, b in offsets]).astype(np.complex64)
    return jnp.einsum("...d,dhw->...hw", kernel.astype(jnp.complex64), phase)


def level_value_and_grad(theta, spec: LevelSpec, consts: LevelConstants, x_c=None, shape=None):
    """Fast ``y (C, Cy, h, w) -> (U (C,), ∇U (C, Cy, h, w))`` for fixed θ and conditioning ``x_c (C, h, w)``.

    Equal to ``level_energy`` and its gradient, but computed directly: the quadratic part as one
    periodic convolution ``Q⋆y`` (value ½⟨y, Q⋆y⟩, gradient Q⋆y), the conditioning part as a field
    ``F = K⋆z`` computed once (value ⟨y, F⟩, gradient F), the potential as ``V = Σ_m θ_m g_m`` on the
    reconstructed field (gradient σ_c/s·B^cᵀ V'(r), one analysis step). Both convolutions are done
    by FFT (the same sums as the (2k+1)² shifted copies of :func:`level_energy`, up to float32
    rounding: relative differences ~3·10⁻⁷; on a CPU about 30× faster per step than the stack of
    rolls, and a far smaller program to compile). ``shape``: the (h, w) of y, for computing Q's
    symbol once outside a sampling loop (taken from ``x_c``, or from ``y`` at the call, otherwise).
    """
    theta = jnp.asarray(theta, jnp.float32)
    blocks = spec.blocks()
    q = _quadratic_kernel(theta, spec)
    lin = theta[blocks["linear"][0]:blocks["linear"][1]]
    pot = theta[blocks["potential"][0]:blocks["potential"][1]]
    offs = spec.offsets
    field = lin[None, :, None, None]
    if spec.conditional:
        kyz = theta[blocks["yz"][0]:blocks["yz"][1]].reshape(spec.channels, len(offs))
        z = _z(consts, x_c)
        shape = z.shape[-2:]
        kz = _offset_symbol(kyz, offs, shape)[None] * jnp.fft.rfft2(z)[:, None]  # (C, Cy, h, w//2+1)
        field = field + jnp.fft.irfft2(kz, s=tuple(shape))
    q_hat = None if shape is None else _offset_symbol(q, offs, shape)
    if spec.modulus:
        th_m = theta[blocks["modulus"][0]:blocks["modulus"][1]].reshape(spec.modulus, spec.n_modulus_per_orientation)
        v_c = _coarse_amplitude(spec, _z(consts, x_c))  # (C, L, H, W): fixed while y moves
        mu2 = jnp.asarray(spec.modulus_scale, jnp.float32)[:, None, None] ** 2

    def modulus_energy(r):
        """Σ_ℓ Σ_s H_ℓ(t_ℓ(s)) and its gradient in r (H_ℓ = Σ_k θ_ℓk h_k)."""
        w, t = _amplitude(spec, r)
        g, g1, _ = _modulus_basis(spec, t, v_c)
        val = jnp.einsum("lk,clkhw->c", th_m, g)
        h1 = jnp.einsum("lk,clkhw->clhw", th_m, g1)
        return val, _pull_back(spec, h1 * w / (mu2 * t))

    def vg(y):
        qh = _offset_symbol(q, offs, y.shape[-2:]) if q_hat is None else q_hat
        # the channel sum as a broadcast product (a complex einsum here is 4× slower on a CPU)
        qy = jnp.fft.irfft2(jnp.sum(qh[None] * jnp.fft.rfft2(y)[:, None], axis=2), s=y.shape[-2:])
        r = _fine_field(spec, consts, y, x_c, matmul=True)
        v, v1 = _potential_and_derivative(spec, pot, r)
        extra = 0.0
        if spec.modulus:
            extra, gm = modulus_energy(r)
            v1 = v1 + gm
        if spec.conditional:
            _, det = _analysis_mm(v1, spec.wavelet)
            gpot = det * (consts.detail_std / consts.fine_std)[:, None, None]
        else:
            gpot = v1[:, None]
        u = jnp.sum(y * (0.5 * qy + field), axis=(1, 2, 3)) + jnp.sum(v, axis=(-2, -1)) + extra
        return u, qy + field + gpot

    return vg


def with_magnetisation_terms(vg, coeffs):
    """``vg`` plus the global-mode energy ``n·(a M² + b M⁴ + A·exp(−(|M| − m₀)²/2s²))``, ``M`` the mean
    of channel 0 over the ``n`` sites of each field, ``coeffs = (a, b)`` or ``(a, b, A, m₀, s)``; its
    gradient at every site is ``2aM + 4bM³ − A·e·(|M| − m₀)/s²·sign(M)``, e the exponential.

    The coarsest field of a critical lattice is a handful of sites whose mean (the magnetisation) has a
    double-well law that local features pin down poorly; these terms are fitted by moment matching
    (``phigen.rg.wcrg``, ``phigen.rg.conditional``), never by score matching. The Gaussian bump at
    |M| = m₀ (the data's E|M|) flattens the ordered phase's peaks where a polynomial cannot: halving
    their curvature with a(|M| − m₀)² lowers the ordered wells against M = 0 by ≈ n|a|m₀², which
    disorders the chains; a bump of width s ≪ m₀ changes the curvature by nA/s² and the wells by only
    nA (docs/rg.md)."""
    if coeffs is None:
        return vg
    a, b = coeffs[0], coeffs[1]
    bump = coeffs.shape[0] > 2
    A, m0, s = (coeffs[2], coeffs[3], coeffs[4]) if bump else (0.0, 0.0, 1.0)

    def vg2(y):
        u, g = vg(y)
        n = y.shape[-2] * y.shape[-1]
        m = jnp.mean(y[:, 0], axis=(-2, -1))
        d = (jnp.abs(m) - m0) / s
        e = jnp.exp(-0.5 * d * d) if bump else 0.0
        de = -e * d / s * jnp.sign(m) if bump else 0.0
        return (u + n * (a * m * m + b * m**4 + A * e),
                g.at[:, 0].add((2 * a * m + 4 * b * m**3 + A * de)[:, None, None]))

    return vg2


def _whitened(vg, half):
    """``vg`` in the whitened variable ``u`` (``half`` = P^{1/2} = M^{−1/2}, ``y = half·u``):
    ``u ↦ (U(half·u), half·∇U(half·u))`` — ``half`` is Hermitian, so this is the exact chain rule."""
    if half is None:
        return vg

    def vg_u(u):
        val, g = vg(apply_symbol(half, u))
        return val, apply_symbol(half, g)

    return vg_u


@partial(jax.jit, static_argnames=("spec", "flip"))
def _mala_chunk(theta, spec, consts, x_c, position, da, key, t0, *, n_steps, adapt, flip, target, glob=None,
                half=None):
    """``n_steps`` MALA steps from ``position`` (the energy and gradient there are computed first, so no
    separate kernel is compiled for the initial state); returns ``(position, da, Σ acceptance,
    Σ flip acceptance)``. Shared step size ε = exp(log_step); with ``adapt`` the step size follows
    dual averaging on the chain-mean acceptance; with ``flip`` each step also proposes y → −y; ``glob``:
    magnetisation-term coefficients (:func:`with_magnetisation_terms`) or None; ``half``: the Fourier
    preconditioner ``P^{1/2}`` (the chain's position is then the whitened ``u``, ``y = P^{1/2} u``).

    ``n_steps``, ``adapt``, ``t0`` and ``target`` are traced: one compilation per level shape serves
    every chunk length (warm-up remainders, the shorter re-equilibration passes of the calibration).
    On a CPU the compilation of this kernel costs as much as thousands of its steps."""
    vg = _whitened(with_magnetisation_terms(level_value_and_grad(theta, spec, consts, x_c, position.shape[-2:]),
                                            glob), half)
    state = MALAState(position, *vg(position))

    def body(i, carry):
        state, da, acc_sum, flip_sum = carry
        k = jax.random.fold_in(key, i)
        eps = jnp.exp(da.log_step)
        state, info = mala_transition(k, state, vg, eps)
        acc = jnp.mean(info.acceptance_rate)
        # ``adapt`` is traced (one compilation serves warm-up and sampling): keep or drop the update
        da_new = dual_averaging_update(da, (t0 + i + 1).astype(jnp.float32), acc, target)
        da = jax.tree.map(lambda new, old: jnp.where(adapt, new, old), da_new, da)
        if flip:  # Metropolis global flip: an involution, so accept with min(1, e^{U(y) − U(−y)})
            u_f, g_f = vg(-state.position)
            log_u = jnp.log(jax.random.uniform(jax.random.fold_in(k, 7), u_f.shape))
            ok = log_u < state.energy - u_f
            sel = ok.reshape((-1,) + (1,) * (state.position.ndim - 1))
            state = MALAState(jnp.where(sel, -state.position, state.position), jnp.where(ok, u_f, state.energy),
                              jnp.where(sel, g_f, state.grad))
            flip_sum = flip_sum + jnp.mean(ok.astype(jnp.float32))
        return state, da, acc_sum + acc, flip_sum

    zero = jnp.zeros((), jnp.float32)
    state, da, acc_sum, flip_sum = jax.lax.fori_loop(jnp.int32(0), jnp.asarray(n_steps, jnp.int32), body,
                                                     (state, da, zero, zero))
    return state.position, da, acc_sum, flip_sum


def potential_curvature(theta, spec: LevelSpec, consts: LevelConstants, y, x_c=None) -> np.ndarray:
    """Mean diagonal Hessian of the potential part per channel, ``c̄_c`` ``(Cy,)``, over the chains ``y``
    ``(C, Cy, h, w)``: ``(σ_c/s)² ⟨V''(r)⟩`` for a conditional level (the synthesis has orthonormal
    columns), ``⟨V''(y)⟩`` for the coarsest field; ``V = Σ_m θ_m g_m``."""
    theta = jnp.asarray(theta, jnp.float32)
    b = spec.blocks()["potential"]
    r = _fine_field(spec, consts, jnp.asarray(y, jnp.float32), x_c)
    v2 = float(jnp.mean(jnp.einsum("m,m...->...", theta[b[0]:b[1]], _potential_basis(spec, r)[2])))
    if not spec.conditional:
        return np.full((spec.channels,), v2)
    return v2 * (np.asarray(consts.detail_std, np.float64) / float(consts.fine_std)) ** 2


def level_preconditioner(theta, spec: LevelSpec, consts: LevelConstants, y, x_c=None, *, floor_ratio: float = 1e-3):
    """``(P^{1/2}, P^{−1/2}, condition)`` of the Fourier mass matrix ``M̂(k) = Q̂(k) + diag(c̄)``
    (:mod:`phigen.rg._preconditioner`) at the chains ``y`` ``(C, Cy, h, w)``; ``P = M^{−1}`` and
    ``condition`` is the clipped max/min eigenvalue ratio of M. ``(None, None, nan)`` if M has no
    positive eigenvalue (nothing to precondition with)."""
    q = np.asarray(_quadratic_kernel(jnp.asarray(theta, jnp.float32), spec), np.float64)
    sym = quadratic_symbol(q, spec.offsets, tuple(np.shape(y)[-2:]))
    sym = sym + np.diag(potential_curvature(theta, spec, consts, y, x_c))
    root, iroot, cond = mass_matrix_roots(sym, floor_ratio)
    # P^{1/2} = M^{−1/2} maps the whitened u to y; P^{−1/2} = M^{1/2} maps y to u
    return iroot, root, cond


def sample_level(theta, spec: LevelSpec, consts: LevelConstants, y0, x_c=None, *, key, n_steps: int,
                 n_adapt: int, step_size: float = 0.1, target: float | None = None, flip: bool = False,
                 chunk: int = 100, bar=None, magnetisation=None, precondition: bool = False):
    """Sample ``p_θ(y | x_c)`` for a batch of chains with MALA, starting from ``y0`` ``(C, Cy, h, w)``.

    The first ``n_adapt`` steps adapt one shared step size by dual averaging towards ``target``
    (MALA's 0.574 by default); the remaining ``n_steps − n_adapt`` steps run at the adapted (averaged)
    step size. Returns ``(y, LevelSampleInfo)``. ``bar``: a tqdm bar advanced by the steps done;
    ``magnetisation``: ``(a, b)`` or ``(a, b, A, m₀, s)`` of :func:`with_magnetisation_terms` (coarsest level) or None;
    ``precondition``: run MALA with the Fourier mass matrix of :func:`level_preconditioner`, rebuilt
    from the chains at every warm-up chunk boundary (so the potential's mean curvature is taken where
    the chains are) and fixed after the warm-up.
    """
    target = DEFAULT_TARGET_ACCEPTANCE["mala"] if target is None else float(target)
    theta = jnp.asarray(theta, jnp.float32)
    y0 = jnp.asarray(y0, jnp.float32)
    glob = None if magnetisation is None else jnp.asarray(magnetisation, jnp.float32)
    x_c = None if x_c is None else jnp.asarray(x_c, jnp.float32)
    half, cond = None, float("nan")

    def whiten(y):  # (re)build the preconditioner at y and put the chains in its variable
        nonlocal half, cond
        if precondition:
            half, ihalf, cond = level_preconditioner(theta, spec, consts, y, x_c)
            if half is not None:
                return apply_symbol(ihalf, y)
        return y

    def position(u):
        return u if half is None else apply_symbol(half, u)

    state = whiten(y0)  # the chains' position (whitened with a preconditioner)
    log0 = jnp.asarray(math.log(step_size), jnp.float32)
    da = DualAveragingState(log0, log0, jnp.zeros((), jnp.float32), jnp.log(10.0 * step_size).astype(jnp.float32))
    acc_total, flip_total, acc_steps = 0.0, 0.0, 0

    def advance(done, m):
        # chunks end at the end of the warm-up; their length is traced, so every chunk of a level runs
        # the same compiled kernel
        nonlocal state, da, acc_total, flip_total, acc_steps
        adapting = done < n_adapt
        state, da, acc_sum, flip_sum = _mala_chunk(theta, spec, consts, x_c, state, da, jax.random.fold_in(key, done),
                                                   jnp.asarray(done, jnp.int32), n_steps=m,
                                                   adapt=jnp.asarray(adapting), flip=flip, target=target, glob=glob,
                                                   half=half)
        if adapting and done + m >= n_adapt:  # end of warm-up: continue at the averaged step
            da = da._replace(log_step=da.log_step_bar)
        elif adapting and precondition:  # warm-up continues: re-fit the mass matrix where the chains are
            state = whiten(position(state))
        if not adapting:
            acc_total += float(acc_sum)
            acc_steps += m
        flip_total += float(flip_sum)

    run_chunks(advance, stop=n_steps, chunk=chunk, boundaries=(n_adapt,), bar=bar, progress=False)
    y = position(state)
    if not np.all(np.isfinite(np.asarray(y))):  # on the host: no per-shape compilation
        raise DivergenceError("WC-RG level sampling produced NaN/inf; the fitted energy may not be confining "
                              "(try a larger ridge or fewer potential functions)")
    acc = acc_total / acc_steps if acc_steps else float("nan")
    return y, LevelSampleInfo(float(jnp.exp(da.log_step)), acc, flip_total / n_steps if flip else float("nan"),
                              int(n_steps), cond)
