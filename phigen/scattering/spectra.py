"""Scattering-spectra statistics (Cheng, Morel, Allys, Ménard, Mallat 2023) of periodic 2D fields.

With oriented wavelets ψ_λ, λ = (j, l) (see :mod:`phigen.wavelets.filters`), V = H·W pixels, ⟨·⟩ the
spatial mean and ``I_λ = |x∗ψ_λ|`` the modulus field:

    S1(λ)          = ⟨|x∗ψ_λ|⟩
    S2(λ)          = ⟨|x∗ψ_λ|²⟩                                                (wavelet power spectrum)
    C01(λ1, λ2)    = ⟨(x∗ψ_λ2)(I_λ1∗ψ_λ2)*⟩ / √(S2(λ1) S2(λ2)),               j1 ≤ j2
    C11(λ1,λ2,λ3)  = ⟨(I_λ1∗ψ_λ3)(I_λ2∗ψ_λ3)*⟩ / √(S2(λ1) S2(λ2)),           j1 ≤ j2 ≤ j3

(``strict_scales=True``: j1 < j2 for C01 and j2 < j3 for C11, the compact set of the reference code.)
All filters have ψ̂(0) = 0 and real ψ̂, so by Parseval the second-layer averages never leave Fourier
space:  ⟨(a∗ψ)(b∗ψ)*⟩ = V⁻² Σ_k â(k) b̂(k)* ψ̂(k)²;  and ψ̂_λ3² is negligible (< ``crop_tol`` of its
peak) outside a box of ~(2H/2^j3)² modes, so the sum for scale j3 runs over that box only; and since
the fields are real, only the half plane of modes (``rfft2``) is kept, with the sum written as real
matrix products.

Flat statistics vector (``ScatteringSpectra.__call__``), in this order:
  ``mean`` ⟨x⟩ · ``S2`` log S2 (``log_s2``) · ``S1`` S1/√S2 (sparsity; √π/2 for Gaussian fields) ·
  ``C01`` re, im · ``C11`` re, im;
normalisation by the field's own S2, or by a fixed reference S2 (``with_reference``), which keeps
the synthesis loss landscape stable. Isotropic reduction: average over the global orientation l1
at fixed relative orientations, C01(j1,j2,Δl) and C11(j1,j2,j3,Δl2,Δl3). Exactly redundant entries
are dropped: for j1 = j2, C11(l1,l2,·) = C11(l2,l1,·)*, so only one of each conjugate pair is kept and
identically-real entries lose their imaginary part.

Memory plan (docs/scattering.md): filters precomputed in Fourier; each modulus field I_λ computed once per
(j, l) at full resolution (inside ``jax.checkpoint`` by default, so the backward pass recomputes it rather than
storing the complex intermediates) and kept only as its Fourier transform cropped to the box of
scale j; C01 and C11 reuse it through small real contractions per j2 / j3 on cropped boxes, over
only the rows j1 they need (j1 < j with ``strict_scales``, so scale 0 has no second-layer block).
The contractions are three-operand real einsums (Re/Im parts × even/odd ψ̂²), not realified
[Re; Im] stacks: the stacks' backward pass (transposes and concatenations of (N, 2L, a, 2K)
arrays) used to cost ~10× its forward and dominated the gradient.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError
from ..wavelets.filters import filter_bank

TYPES = ("mean", "S2", "S1", "C01", "C11")


class SpectraCoefficients(NamedTuple):
    """Structured (un-reduced) scattering spectra of a batch, for analysis.

    ``mean`` (N,); ``S1``, ``S2`` (N, J, L); ``C01`` (N, J, J, L, L) complex, [j1, j2, l1, l2];
    ``C11`` (N, J, J, J, L, L, L) complex, [j1, j2, j3, l1, l2, l3]. C01/C11 are *not* normalised;
    entries outside j1 ≤ j2 (≤ j3) are zero.
    """

    mean: jax.Array
    S1: jax.Array
    S2: jax.Array
    C01: jax.Array
    C11: jax.Array


# --- static plan ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)  # hashed by identity: plans are cached per configuration
class _Plan:
    shape: tuple
    J: int
    L: int
    isotropic: bool
    strict_scales: bool
    log_s2: bool
    include_mean: bool
    checkpoint: bool
    boxes: tuple          # per j: (n0, n1) half-widths of the Fourier box (n = None: full axis)
    c01_sel: tuple        # per j2: (idx_re (n, m), idx_im (n, m)) into the flattened block
    c11_sel: tuple        # per j3: likewise
    entries: tuple        # one dict per output entry (describe())
    orientation_power: bool = False  # isotropic, but log S2 kept per orientation (J·L entries)


def _box_halfwidths(sq, tol):
    """Smallest symmetric Fourier box outside which ψ̂² < tol·max, as half-widths (None = whole axis)."""
    h, w = sq.shape
    big = sq > tol * sq.max()
    m0 = np.abs(((np.arange(h) + h // 2) % h) - h // 2)
    m1 = np.abs(((np.arange(w) + w // 2) % w) - w // 2)
    n0 = int(m0[np.any(big, axis=1)].max()) + 1
    n1 = int(m1[np.any(big, axis=0)].max()) + 1
    return (None if 2 * n0 - 1 >= h else n0), (None if 2 * n1 - 1 >= w else n1)


def _crop(a, box):
    """Keep modes |m0| < n0, 0 ≤ m1 < n1 of the last two axes of a half-plane (``rfft2``) array.

    Works on an array already cropped to a larger nested box (same layout).
    """
    n0, n1 = box
    if n0 is not None:
        size = a.shape[-2]
        a = jnp.concatenate([a[..., :n0, :], a[..., size - n0 + 1:, :]], axis=-2)
    if n1 is not None:
        a = a[..., :n1]
    return a


def _half_weights(sq, box):
    """Even/odd parts of ψ̂² on the half-plane box, with the multiplicity of each half-plane mode, (…, K) each.

    For real fields a, b, G = â b̂* has G(−k) = G(k)*, so Σ_all G ψ̂² = Σ_half m(k) [Re G · ψ̂²_even + i Im G · ψ̂²_odd]
    with m = 1 on the self-conjugate columns (k1 = 0 and, if present, the Nyquist column), else 2.
    """
    h, w = sq.shape[-2:]
    flipped = np.roll(np.flip(sq, axis=(-2, -1)), 1, axis=(-2, -1))
    even, odd = 0.5 * (sq + flipped), 0.5 * (sq - flipped)
    half = w // 2 + 1
    mult = np.full(half, 2.0)
    mult[0] = 1.0
    if w % 2 == 0:
        mult[-1] = 1.0
    even, odd = even[..., :half] * mult, odd[..., :half] * mult
    crop = lambda a: np.asarray(_crop(jnp.asarray(a), box))  # noqa: E731
    even, odd = crop(even), crop(odd)
    return even.reshape(even.shape[:-2] + (-1,)), odd.reshape(odd.shape[:-2] + (-1,))


def _rows(j, strict_scales):
    """Number of first-layer scales j1 (0..rows−1) entering the C01 / C11 blocks of scale j."""
    return j if strict_scales else j + 1


def _selection(J, L, isotropic, strict_scales):
    """Index plan of C01 / C11 blocks and the description of every output entry."""
    c01_re, c01_im, c11_re, c11_im = [], [], [], []
    c01_sel, c11_sel = [], []
    # C01 block for j2: flattened (j1, l1, l2) with j1 in 0.._rows(j2) − 1
    for j2 in range(J):
        re_idx, im_idx = [], []
        for j1 in range(j2 + 1):
            if strict_scales and j1 == j2:
                continue
            if isotropic:
                for dl in range(L):
                    idx = [(j1 * L + l1) * L + (l1 + dl) % L for l1 in range(L)]
                    d = dict(j1=j1, j2=j2, dl=dl)
                    re_idx.append(idx); c01_re.append(d)
                    im_idx.append(idx); c01_im.append(d)
            else:
                for l1 in range(L):
                    for l2 in range(L):
                        idx = [(j1 * L + l1) * L + l2]
                        d = dict(j1=j1, j2=j2, l1=l1, l2=l2)
                        re_idx.append(idx); c01_re.append(d)
                        im_idx.append(idx); c01_im.append(d)
        c01_sel.append((np.asarray(re_idx, np.int32).reshape(-1, L if isotropic else 1),
                        np.asarray(im_idx, np.int32).reshape(-1, L if isotropic else 1)))
    # C11 block for j3: flattened (j1, l1, j2, l2, l3) with j1, j2 in 0.._rows(j3) − 1
    A = lambda j3: _rows(j3, strict_scales) * L  # noqa: E731
    for j3 in range(J):
        re_idx, im_idx = [], []
        flat = lambda j1, l1, j2, l2, l3: ((j1 * L + l1) * A(j3) + j2 * L + l2) * L + l3  # noqa: E731
        for j1 in range(j3 + 1):
            for j2 in range(j1, j3 + 1):
                if strict_scales and j2 == j3:
                    continue
                if isotropic:
                    for d2 in range(L):
                        for d3 in range(L):
                            keep_re, keep_im = True, True
                            if j1 == j2:
                                partner = ((-d2) % L, (d3 - d2) % L)
                                keep_re = (d2, d3) <= partner
                                keep_im = (d2, d3) < partner
                            idx = [flat(j1, l1, j2, (l1 + d2) % L, (l1 + d3) % L) for l1 in range(L)]
                            d = dict(j1=j1, j2=j2, j3=j3, dl2=d2, dl3=d3)
                            if keep_re:
                                re_idx.append(idx); c11_re.append(d)
                            if keep_im:
                                im_idx.append(idx); c11_im.append(d)
                else:
                    for l1 in range(L):
                        for l2 in range(L):
                            for l3 in range(L):
                                keep_re = not (j1 == j2 and l2 < l1)
                                keep_im = not (j1 == j2 and l2 <= l1)
                                idx = [flat(j1, l1, j2, l2, l3)]
                                d = dict(j1=j1, j2=j2, j3=j3, l1=l1, l2=l2, l3=l3)
                                if keep_re:
                                    re_idx.append(idx); c11_re.append(d)
                                if keep_im:
                                    im_idx.append(idx); c11_im.append(d)
        m = L if isotropic else 1
        c11_sel.append((np.asarray(re_idx, np.int32).reshape(-1, m), np.asarray(im_idx, np.int32).reshape(-1, m)))
    return tuple(c01_sel), tuple(c11_sel), (c01_re, c01_im, c11_re, c11_im)


@functools.lru_cache(maxsize=32)
def _plan(shape, J, L, kind, isotropic, strict_scales, log_s2, include_mean, checkpoint, crop_tol,
          orientation_power=False):
    bank = filter_bank(shape, J, L, kind=kind)
    boxes = [_box_halfwidths(np.max(bank.psi[j] ** 2, axis=0), crop_tol) for j in range(J)]
    # Nest the boxes (box_j ⊆ box_j' for j > j'), so that a field stored on box j' can be re-cropped.
    for j in range(J - 2, -1, -1):
        boxes[j] = tuple(None if (a is None or b is None) else max(a, b) for a, b in zip(boxes[j], boxes[j + 1]))
    c01_sel, c11_sel, (c01_re, c01_im, c11_re, c11_im) = _selection(J, L, isotropic, strict_scales)
    entries = []
    if include_mean:
        entries.append(dict(type="mean"))
    per_orientation = [dict(j1=j, l1=l) for j in range(J) for l in range(L)]
    scale_keys = [dict(j1=j) for j in range(J)] if isotropic else per_orientation
    orientation_power = bool(orientation_power and isotropic)  # without isotropy S2 already is per orientation
    s2_keys = per_orientation if orientation_power else scale_keys
    entries += [dict(type="S2", transform="log" if log_s2 else "none", **k) for k in s2_keys]
    entries += [dict(type="S1", transform="S1/sqrt(S2)", **k) for k in scale_keys]
    entries += [dict(type="C01", part="re", **d) for d in c01_re] + [dict(type="C01", part="im", **d) for d in c01_im]
    entries += [dict(type="C11", part="re", **d) for d in c11_re] + [dict(type="C11", part="im", **d) for d in c11_im]
    for e in entries:
        e["isotropic"] = bool(isotropic)
    return _Plan(tuple(shape), J, L, isotropic, strict_scales, log_s2, include_mean, checkpoint,
                 tuple(boxes), c01_sel, c11_sel, tuple(entries), orientation_power)


# --- the computation ----------------------------------------------------------------------------
def _safe_modulus(z):
    """|z| with a zero (not NaN) gradient where z = 0."""
    r2 = z.real**2 + z.imag**2
    pos = r2 > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)


def _first_layer(xf, psi_j, box):
    """For one scale: S1, S2 (N, L) and the half-plane FFT of the modulus fields on box j, / V (N, L, h', w')."""
    v = xf.shape[-1] * xf.shape[-2]
    z = jnp.fft.ifft2(xf[:, None] * psi_j[None])
    m = _safe_modulus(z)
    s1 = jnp.mean(m, axis=(-2, -1))
    s2 = jnp.mean(m**2, axis=(-2, -1))
    mf = _crop(jnp.fft.rfft2(m), box) / v  # the 1/V makes the Parseval sums below plain means
    return s1, s2, mf


def _second_layer(mods, xh, weights, box):
    """C01 (N, a, L) and C11 (N, a, a, L) blocks, (re, im) each, for one scale j, on the half-plane box of j.

    ``mods``: modulus spectra Î of the a = rows·L first-layer channels (each on a box ⊇ box j);
    ``weights`` = (even, odd) ψ̂²_j with multiplicities, (L, K). With ŷ = Î, x̂ on the box:
    C01 = Σ_k x̂ ŷ_a* ψ̂² → Re Σ ψ̂²_even (x_r y_r + x_i y_i), Im Σ ψ̂²_odd (x_i y_r − x_r y_i);
    C11 = Σ_k ŷ_a ŷ_b* ψ̂² → Re Σ ψ̂²_even (y_ra y_rb + y_ia y_ib), Im = A − Aᵀ with A = Σ ψ̂²_odd y_ia y_rb.
    Real three-operand contractions (no complex or realified intermediates): their backward is ~4× cheaper.
    """
    n = xh.shape[0]
    ws, wa = weights
    y = jnp.concatenate([_crop(m, box) for m in mods], axis=1)
    y = y.reshape(n, y.shape[1], -1)                                      # (N, a, K) complex
    x = _crop(xh, box).reshape(n, -1)                                     # (N, K)
    yr, yi, xr, xi = y.real, y.imag, x.real, x.imag
    ein = jnp.einsum
    c01 = (ein("nak,lk,nk->nal", yr, ws, xr) + ein("nak,lk,nk->nal", yi, ws, xi),
           ein("nak,lk,nk->nal", yr, wa, xi) - ein("nak,lk,nk->nal", yi, wa, xr))
    asym = ein("nak,lk,nbk->nabl", yi, wa, yr)
    c11 = (ein("nak,lk,nbk->nabl", yr, ws, yr) + ein("nak,lk,nbk->nabl", yi, ws, yi),
           asym - jnp.swapaxes(asym, 1, 2))
    return c01, c11


def _compute(x, psi, weights, plan: _Plan, strict_scales: bool):
    """mean (N,), S1, S2 (N, J, L) and per scale j the (re, im) parts of the C01 block (N, a, L)
    [(j1,l1), l2] and C11 block (N, a, a, L) [(j1,l1), (j2,l2), l3] with a = _rows(j)·L (None when a = 0),
    unnormalised. ``weights[j]`` = (even, odd) ψ̂²_j on the half-plane box of j, (L, K_j) each."""
    h, w = plan.shape
    v = h * w
    J = plan.J
    xf = jnp.fft.fft2(x.astype(jnp.float32))
    mean = xf[:, 0, 0].real / v
    layer = jax.checkpoint(_first_layer, static_argnums=(2,)) if plan.checkpoint else _first_layer
    s1, s2, mods = [], [], []
    for j in range(J):
        a, b, c = layer(xf, psi[j], plan.boxes[j])
        s1.append(a), s2.append(b), mods.append(c)
    s1, s2 = jnp.stack(s1, 1), jnp.stack(s2, 1)
    xh = xf[..., : w // 2 + 1] / v
    c01, c11 = [], []
    for j in range(J):
        rows = _rows(j, strict_scales)
        a, b = _second_layer(tuple(mods[:rows]), xh, weights[j], plan.boxes[j]) if rows else (None, None)
        c01.append(a), c11.append(b)
    return mean, s1, s2, c01, c11


def _flat(x, psi, sq_boxes, ref_s2, plan: _Plan):
    J, L = plan.J, plan.L
    mean, s1, s2, c01_blocks, c11_blocks = _compute(x, psi, sq_boxes, plan, plan.strict_scales)
    n = x.shape[0]
    norm_s2 = s2 if ref_s2 is None else jnp.broadcast_to(ref_s2, s2.shape)
    sig = jnp.sqrt(norm_s2)                                        # (N, J, L)
    s1n = s1 / sig
    if plan.isotropic:
        s2_out, s1_out = jnp.mean(s2, -1), jnp.mean(s1n, -1)
        if plan.orientation_power:  # the power of each orientation, not only their mean
            s2_out = s2.reshape(n, -1)
    else:
        s2_out, s1_out = s2.reshape(n, -1), s1n.reshape(n, -1)
    parts = [mean[:, None]] if plan.include_mean else []
    parts += [jnp.log(s2_out) if plan.log_s2 else s2_out, s1_out]
    sig_flat = sig.reshape(n, J * L)
    re01, im01, re11, im11 = [], [], [], []
    for j in range(J):
        if c01_blocks[j] is None:
            continue
        a = _rows(j, plan.strict_scales) * L
        sa = sig_flat[:, :a]
        # normalise by σ(j1,l1) σ(j2,l2), then pick (and, isotropic, average over l1) the kept entries
        d01 = sa[:, :, None] * sig[:, j][:, None, :]
        ir, ii = plan.c01_sel[j]
        if ir.size:
            re01.append(jnp.mean((c01_blocks[j][0] / d01).reshape(n, -1)[:, ir], -1))
            im01.append(jnp.mean((c01_blocks[j][1] / d01).reshape(n, -1)[:, ii], -1))
        d11 = sa[:, :, None, None] * sa[:, None, :, None]
        ir, ii = plan.c11_sel[j]
        if ir.size:
            re11.append(jnp.mean((c11_blocks[j][0] / d11).reshape(n, -1)[:, ir], -1))
        if ii.size:
            im11.append(jnp.mean((c11_blocks[j][1] / d11).reshape(n, -1)[:, ii], -1))
    parts += re01 + im01 + re11 + im11
    return jnp.concatenate(parts, axis=1).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("plan",))
def _flat_jit(x, psi, sq_boxes, ref_s2, plan):
    return _flat(x, psi, sq_boxes, ref_s2, plan)


@functools.partial(jax.jit, static_argnames=("plan", "batch_size"))
def _flat_chunked(x, psi, sq_boxes, ref_s2, plan, batch_size):
    n = x.shape[0]
    pad = (-n) % batch_size
    xp = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,) + x.shape[1:])]) if pad else x
    chunks = xp.reshape((-1, batch_size) + x.shape[1:])
    out = jax.lax.map(lambda c: _flat(c, psi, sq_boxes, ref_s2, plan), chunks)
    return out.reshape(-1, out.shape[-1])[:n]


@functools.partial(jax.jit, static_argnames=("plan",))
def _coefficients_jit(x, psi, sq_boxes, plan):
    J, L = plan.J, plan.L
    n = x.shape[0]
    mean, s1, s2, c01_blocks, c11_blocks = _compute(x, psi, sq_boxes, plan, False)  # always all j1 ≤ j2 ≤ j3
    c01 = jnp.zeros((n, J, J, L, L), jnp.complex64)
    c11 = jnp.zeros((n, J, J, J, L, L, L), jnp.complex64)
    for j in range(J):
        a = j + 1
        blk = c01_blocks[j][0] + 1j * c01_blocks[j][1]
        c01 = c01.at[:, :a, j].set(blk.reshape(n, a, L, L))
        blk = c11_blocks[j][0] + 1j * c11_blocks[j][1]
        blk = blk.reshape(n, a, L, a, L, L).transpose(0, 1, 3, 2, 4, 5)  # j1, j2, l1, l2, l3
        c11 = c11.at[:, :a, :a, j].set(blk)
    # keep only the computed range j1 ≤ j2 for C11 (the block also holds j1 > j2)
    tri = np.triu(np.ones((J, J), bool))[None, :, :, None, None, None, None]
    return SpectraCoefficients(mean, s1, s2, c01, jnp.where(tri, c11, 0))


# --- public API ----------------------------------------------------------------------------------
class ScatteringSpectra(eqx.Module):
    """Configured scattering-spectra statistics Φ(x) for fields of one shape (a pytree: jit/vmap-friendly).

    ``ScatteringSpectra(shape, J, L=4, *, isotropic=True, wavelets="morlet", strict_scales=False,
    log_s2=True, include_mean=True, reference_s2=None, checkpoint=True, crop_tol=1e-6,
    orientation_power=False)``; ``orientation_power`` (with ``isotropic``): log S2 per scale AND
    orientation (J·L entries instead of J), the other statistics still averaged over orientations —
    isotropic statistics leave free how a field shares its power between orientations;
    ``ss(x)`` maps fields ``(N, H, W)`` (or one ``(H, W)``) to ``(N, n_stats)`` float32, differentiable
    in x. ``describe()`` names every entry; see the module docstring for the formulas.
    """

    psi: jax.Array                # (J, L, H, W) float32, Fourier domain
    sq_boxes: tuple               # per j: (even, odd) parts of ψ̂² on the half-plane box of scale j, (L, K_j) each
    reference_s2: jax.Array | None
    plan: _Plan = eqx.field(static=True)

    def __init__(self, shape, J: int, L: int = 4, *, isotropic: bool = True, wavelets: str = "morlet",
                 strict_scales: bool = False, log_s2: bool = True, include_mean: bool = True,
                 reference_s2=None, checkpoint: bool = True, crop_tol: float = 1e-6,
                 orientation_power: bool = False):
        if np.ndim(shape) == 0:
            shape = (int(shape), int(shape))
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2:
            raise ParameterError(f"shape must be (H, W); got {shape!r}")
        if int(J) != J or J < 1:
            raise ParameterError(f"J must be an integer >= 1; got {J!r}")
        if int(L) != L or L < 1:
            raise ParameterError(f"L must be an integer >= 1; got {L!r}")
        J, L = int(J), int(L)
        if min(shape) < 2**J:
            raise ParameterError(f"fields of shape {shape} are too small for J={J}: need H, W >= 2^J = {2**J}")
        if not 0 < crop_tol < 1:
            raise ParameterError(f"crop_tol must be in (0, 1); got {crop_tol!r}")
        plan = _plan(shape, J, L, wavelets, bool(isotropic), bool(strict_scales), bool(log_s2),
                     bool(include_mean), bool(checkpoint), float(crop_tol), bool(orientation_power))
        bank = filter_bank(shape, J, L, kind=wavelets)
        self.psi = jnp.asarray(bank.psi, jnp.float32)
        weights = []
        for j in range(J):
            even, odd = _half_weights(bank.psi[j] ** 2, plan.boxes[j])
            weights.append((jnp.asarray(even, jnp.float32), jnp.asarray(odd, jnp.float32)))
        self.sq_boxes = tuple(weights)
        if reference_s2 is not None:
            ref = np.asarray(reference_s2, np.float32)
            if ref.shape != (J, L) or not np.all(np.isfinite(ref)) or np.any(ref <= 0):
                raise ParameterError(f"reference_s2 must be a positive finite (J, L) = {(J, L)} array; got shape {ref.shape}")
            reference_s2 = jnp.asarray(ref)
        self.reference_s2 = reference_s2
        self.plan = plan

    # -- configuration ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.plan.shape

    @property
    def J(self) -> int:
        return self.plan.J

    @property
    def L(self) -> int:
        return self.plan.L

    @property
    def isotropic(self) -> bool:
        return self.plan.isotropic

    @property
    def n_stats(self) -> int:
        return len(self.plan.entries)

    def describe(self) -> list[dict]:
        """One dict per entry of the statistics vector: ``type`` (mean/S2/S1/C01/C11), ``part``
        (re/im for C01, C11), scales ``j1, j2, j3`` and orientations ``l1, l2, l3`` (or, isotropic,
        the relative orientations ``dl`` = l2 − l1 for C01 and ``dl2``, ``dl3`` for C11), ``index``."""
        return [dict(index=i, **e) for i, e in enumerate(self.plan.entries)]

    def table(self) -> dict[str, np.ndarray]:
        """The description as arrays (−1 where a key does not apply): ``type`` (str), ``part``, j1…l3."""
        keys = ("j1", "j2", "j3", "l1", "l2", "l3", "dl", "dl2", "dl3")
        out = {"type": np.array([e["type"] for e in self.plan.entries]),
               "part": np.array([e.get("part", "") for e in self.plan.entries])}
        for k in keys:
            out[k] = np.array([e.get(k, -1) for e in self.plan.entries], np.int32)
        return out

    def _check(self, x):
        x = as_fields(x, name="fields")
        if x.ndim != 3 or tuple(x.shape[-2:]) != self.shape:
            raise InputError(f"fields must have shape (N, {self.shape[0]}, {self.shape[1]}); got {tuple(x.shape)}")
        return jnp.asarray(x)

    # -- statistics ------------------------------------------------------------------------------
    def __call__(self, x, *, batch_size: int | None = None):
        """Φ(x): ``(N, H, W) -> (N, n_stats)`` float32. ``batch_size`` bounds memory (lax.map over chunks)."""
        x = self._check(x)
        if batch_size is not None and x.shape[0] > int(batch_size):
            return _flat_chunked(x, self.psi, self.sq_boxes, self.reference_s2, self.plan, int(batch_size))
        return _flat_jit(x, self.psi, self.sq_boxes, self.reference_s2, self.plan)

    def coefficients(self, x) -> SpectraCoefficients:
        """Un-reduced, un-normalised S1, S2, C01, C11 (see :class:`SpectraCoefficients`)."""
        return _coefficients_jit(self._check(x), self.psi, self.sq_boxes, self.plan)

    def power(self, fields, *, batch_size: int = 16) -> np.ndarray:
        """Mean S2(j, l) over a dataset, ``(J, L)`` (the usual ``reference_s2``)."""
        x = np.asarray(as_fields(fields, name="fields"))
        total = np.zeros((self.J, self.L))
        for i in range(0, x.shape[0], batch_size):
            total += np.asarray(self.coefficients(x[i:i + batch_size]).S2, np.float64).sum(0)
        return (total / x.shape[0]).astype(np.float32)

    def with_reference(self, fields, *, batch_size: int = 16) -> "ScatteringSpectra":
        """A copy normalising S1, C01, C11 by the dataset's mean S2 instead of each field's own."""
        return eqx.tree_at(lambda s: s.reference_s2, self, jnp.asarray(self.power(fields, batch_size=batch_size)),
                           is_leaf=lambda v: v is None)

    def mean_and_std(self, fields, *, batch_size: int = 16):
        """Mean and standard deviation (ddof = 1 when N > 1) of Φ over a dataset, each ``(n_stats,)``.

        Accumulated in float64 over batches of ``batch_size`` fields (numpy or HDF5-backed arrays).
        """
        n = len(fields)
        if n < 1:
            raise InputError("fields is empty")
        s = np.zeros(self.n_stats)
        s2 = np.zeros(self.n_stats)
        for i in range(0, n, batch_size):
            phi = np.asarray(self(np.asarray(fields[i:i + batch_size])), np.float64)
            s += phi.sum(0)
            s2 += (phi**2).sum(0)
        mean = s / n
        var = np.maximum(s2 - n * mean**2, 0.0) / max(n - 1, 1)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)

    def single_map_scale(self, pixel_std: float) -> np.ndarray:
        """Per-statistic scales σ (n_stats,) float32 that exist for ONE map (no spread to measure):

            σ_mean = pixel std,   σ_i = 1 for log S2, S1/√S2_ref, C01 and C11 (re and im)

        i.e. the uniform weighting of the P00-normalised vector of the reference code: every entry
        but the mean is dimensionless (a log, or a normalised correlation of order ≤ 1), so a unit
        difference means the same everywhere. With ``log_s2=False`` the S2 entries are scaled by
        ``reference_s2`` (S2/S2_ref is the dimensionless one)."""
        if not (np.isfinite(pixel_std) and pixel_std > 0):
            raise InputError(f"the pixel standard deviation must be > 0 (a constant field has no statistics to "
                             f"match); got {pixel_std!r}")
        out = np.ones(self.n_stats, np.float32)
        types = self.table()["type"]
        out[types == "mean"] = pixel_std
        if not self.plan.log_s2:
            if self.reference_s2 is None:
                raise ParameterError("single_map_scale with log_s2=False needs a reference_s2")
            ref = np.asarray(self.reference_s2, np.float32)
            out[types == "S2"] = ref.mean(-1) if self.isotropic and not self.plan.orientation_power else ref.reshape(-1)
        return out

    def preconditioner(self, s2=None) -> np.ndarray:
        """Spectral weights p(k) for synthesis, ``(H, W//2 + 1)`` float32 (mean 1): the band-wise wavelet power

            p(k) = Σ_λ S2(λ) ψ̂_λ(k)² / Σ_λ ψ̂_λ(k)²

        of ``s2`` (J, L) (default: ``reference_s2``); below the coarsest band p = mean_l S2(J−1, l),
        outside the finest one p = mean_l S2(0, l). Why: with log S2 in Φ and σ(log S2_λ) ∝ 1/√(modes
        in band λ), the Gauss–Newton curvature of ℓ along a mode k of band λ scales as 1/(P_λ·A_λ) ∝
        1/S2(λ) (P the power per mode, A the band's area), so H₀ = M = F⁻¹ diag(p) F is the inverse
        Hessian's scale-by-scale shape that L-BFGS (:mod:`phigen.scattering.lbfgs`) cannot learn
        from 20 pairs when S2 spans decades across scales.
        """
        if s2 is None:
            if self.reference_s2 is None:
                raise ParameterError("preconditioner() needs s2 (J, L) or a reference_s2 (see with_reference)")
            s2 = self.reference_s2
        s2 = np.asarray(s2, np.float64)
        if s2.shape != (self.J, self.L) or not np.all(np.isfinite(s2)) or np.any(s2 <= 0):
            raise ParameterError(f"s2 must be a positive finite (J, L) = {(self.J, self.L)} array; got shape {s2.shape}")
        h, w = self.shape
        sq = np.asarray(self.psi, np.float64) ** 2                               # (J, L, H, W)
        den = sq.sum((0, 1))
        num = np.einsum("jl,jlhw->hw", s2, sq)
        k = np.hypot(2 * np.pi * np.fft.fftfreq(h)[:, None], 2 * np.pi * np.fft.fftfreq(w)[None, :])
        xi = 0.75 * np.pi / 2.0 ** np.arange(self.J)                              # both filter kinds
        outside = np.where(k < xi[-1], s2[-1].mean(), s2[0].mean())
        covered = den > 1e-3 * den.max()
        p = np.where(covered, num / np.where(covered, den, 1.0), outside)
        # p(k) = p(−k), so that q ↦ irfft2(p · rfft2(q)) is a symmetric map on real fields
        p = 0.5 * (p + np.roll(np.flip(p, axis=(0, 1)), 1, axis=(0, 1)))
        p = p[:, : w // 2 + 1]
        return (p / p.mean()).astype(np.float32)

    # -- cost ------------------------------------------------------------------------------------
    def flop_estimate(self) -> dict:
        """Analytic FLOP count of the forward pass per field (FFT = 5 V log2 V real flops for a complex
        transform, half that for a real one) and the largest live tensors (bytes)."""
        h, w = self.shape
        v = h * w
        J, L = self.J, self.L
        fft = 5.0 * v * math.log2(v)
        first = fft + J * L * (1.5 * fft + 14 * v)  # x̂ψ̂ (6V), complex ifft, modulus (~8V), real rfft
        second = 0.0
        for j in range(J):
            k = int(self.sq_boxes[j][0].shape[1])       # half-plane modes of box j
            a = _rows(j, self.plan.strict_scales) * L
            if a:
                second += 4 * (2 * a * L * k + L * k)           # C01: four (a × K)·(K × L) contractions
                second += 3 * (2 * a * a * L * k + a * L * k)   # C11: three (aL × K)·(K × a) contractions
        kept = sum(int(self.sq_boxes[j][0].shape[1]) for j in range(J)) * L * 8   # complex64 Î on the boxes
        return {"flops_first_layer": first, "flops_second_layer": second, "flops_total": first + second,
                "bytes_modulus_fourier_kept": float(kept), "bytes_one_scale_full": float(L * v * 8 * 3)}

    def cost(self, batch: int = 1, *, backward: bool = False) -> dict:
        """XLA's compiled cost and memory for ``batch`` fields (forward, or forward+backward of Σ Φ²).

        Keys: ``flops``, ``bytes_accessed`` (XLA cost analysis; FFTs may be under-counted),
        ``temp_bytes``, ``argument_bytes``, ``output_bytes`` (memory analysis), per call.
        """
        x = jax.ShapeDtypeStruct((int(batch),) + self.shape, jnp.float32)
        if backward:
            fn = jax.jit(jax.grad(lambda m, x: jnp.sum(_flat(x, m.psi, m.sq_boxes, m.reference_s2, m.plan) ** 2), argnums=1))
        else:
            fn = jax.jit(lambda m, x: _flat(x, m.psi, m.sq_boxes, m.reference_s2, m.plan))
        compiled = fn.lower(self, x).compile()
        ca = compiled.cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0] if ca else {}
        ma = compiled.memory_analysis()
        out = {"flops": float(ca.get("flops", float("nan"))), "bytes_accessed": float(ca.get("bytes accessed", float("nan")))}
        for key in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes"):
            out[key.replace("_size_in", "")] = float(getattr(ma, key, float("nan"))) if ma is not None else float("nan")
        return out


@functools.lru_cache(maxsize=16)
def _cached(shape, J, L, kw):
    return ScatteringSpectra(shape, J, L, **dict(kw))


def scattering_spectra(x, J: int, L: int = 4, **kwargs):
    """Functional form: ``Φ(x)`` of fields ``(N, H, W)`` -> ``(N, n_stats)`` (see :class:`ScatteringSpectra`)."""
    xs = as_fields(x, name="fields")
    try:
        kw = tuple(sorted(kwargs.items()))
        hash(kw)
    except TypeError:  # e.g. an array reference_s2: build without the cache
        return ScatteringSpectra(tuple(xs.shape[-2:]), J, L, **kwargs)(xs)
    return _cached(tuple(int(s) for s in xs.shape[-2:]), J, L, kw)(xs)


def scattering_spectra_describe(shape, J: int, L: int = 4, **kwargs) -> list[dict]:
    """The :meth:`ScatteringSpectra.describe` list for a configuration, without computing anything."""
    if np.ndim(shape) == 0:
        shape = (int(shape), int(shape))
    return ScatteringSpectra(tuple(shape), J, L, **kwargs).describe()
