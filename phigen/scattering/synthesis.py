"""Microcanonical synthesis: fields whose statistics Φ(x) match a target Φ̄, found by L-BFGS.

Loss of one field ``x`` (H, W), with per-statistic scales σ (the statistics' spread across the
training fields, so a typical training field scores ≈ 1; for one map, or copies of one, scales
that exist for one map, see :func:`statistics_scales`):

    ℓ(x) = (1/n) Σ_i ((Φ_i(x) − Φ̄_i) / σ_i)²        (n = number of statistics)

Many fields are synthesised at once, each with ITS OWN L-BFGS run (:mod:`phigen.scattering.lbfgs`:
own curvature pairs, own step acceptance), advanced in lock-step so that every iteration is ONE
batched evaluation of ℓ and ∇ℓ for all fields (the loss of one field is ``vmap``-ed): no field
waits on another's line search and a summed batch loss never couples them. ``steps`` counts these
iterations (= loss+gradient evaluations per field, as in the reference recipe, torch L-BFGS without
line search); a trial step that fails the Armijo test is backtracked in the field's next iteration.
Iterations run in jitted ``lax.scan`` chunks under a Python loop that drives a progress bar; the
last, shorter chunk reuses the compiled chunk with the steps past the end masked out.

Band: given the data's power per mode P̄(k) (:func:`band_power`, 0 outside the data's band), fields
start with exactly that power and random phases and L-BFGS moves only modes inside the band
(``band`` / ``free`` of :func:`minimize_fields`), so no sample has power where the data have none.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._chunks import run_chunks
from .._validation import check_int_at_least
from ..errors import InputError, ParameterError
from .lbfgs import lbfgs_init, lbfgs_step
from ..samplers._rng import standard_normal

__all__ = ["SynthesisConfig", "SynthesisResult", "statistics_loss", "statistics_scales", "has_spread",
           "band_power", "random_phase_start", "outside_nyquist_circle", "project_band", "minimize_fields",
           "synthesize"]

#: relative spread below which N training fields count as copies of one (periodic shifts of one map
#: give float32 round-off, ~1e-6; distinct fields give the estimator's noise, ≳ 1e-2)
NO_SPREAD_TOL = 1e-4
#: a Fourier mode is outside the data's band when its mean power is below this × the largest mode's
#: (float32 round-off of an exactly empty band sits near 1e-14; physical power, even dealiased
#: turbulence's, stays above 1e-6)
BAND_TOL = 1e-10


@dataclass(frozen=True)
class SynthesisConfig:
    """L-BFGS settings for microcanonical synthesis.

    steps : L-BFGS iterations per field, each ONE evaluation of ℓ and ∇ℓ (the scattering-spectra
        reference recipe uses 300).
    memory_size : number of curvature pairs L-BFGS keeps.
    initial_step : RMS pixel change of the first (gradient) step, in units of the starting field's
        pixel standard deviation; later steps are scaled by the learnt curvature.
    armijo : sufficient-decrease constant c₁ of the step acceptance test.
    chunk_size : iterations per jitted ``lax.scan`` chunk (the progress bar advances per chunk).
    batch_size : fields optimised together in one batched run (``None``: all of them); bounds memory.
    progress : tqdm bar; ``None`` means "when attached to a terminal", ``False`` never.
    """

    steps: int = 300
    memory_size: int = 20
    initial_step: float = 0.1
    armijo: float = 1e-4
    chunk_size: int = 25
    batch_size: int | None = None
    progress: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "steps", check_int_at_least(self.steps, "steps", 0))
        object.__setattr__(self, "memory_size", check_int_at_least(self.memory_size, "memory_size", 1))
        object.__setattr__(self, "chunk_size", check_int_at_least(self.chunk_size, "chunk_size", 1))
        if not (np.isfinite(self.initial_step) and self.initial_step > 0):
            raise ParameterError(f"initial_step must be > 0; got {self.initial_step!r}")
        if not 0 < self.armijo < 0.5:
            raise ParameterError(f"armijo must be in (0, 0.5); got {self.armijo!r}")
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", check_int_at_least(self.batch_size, "batch_size", 1))


class SynthesisResult(NamedTuple):
    fields: np.ndarray        # (N, H, W) float32 synthesised fields
    loss: np.ndarray          # (N,) final loss ℓ of each field
    initial_loss: np.ndarray  # (N,) loss of each starting field
    loss_history: np.ndarray  # (n_chunks + 1, N) loss at the start and after every chunk
    seconds: float            # wall time of the optimisation (compilation included)
    steps: int                # L-BFGS iterations (loss+gradient evaluations) run per field
    accepted: np.ndarray | None = None  # (N,) iterations whose trial step was accepted


def has_spread(rows, single) -> bool:
    """Whether per-field statistics ``rows`` (N, n) vary across fields: N ≥ 2 and the median over
    statistics of std_i / single_i exceeds :data:`NO_SPREAD_TOL` (``single``: the single-map scales).
    N identical or periodically shifted copies of one map have the same Φ up to round-off: no spread."""
    rows = np.asarray(rows, np.float64)
    if rows.shape[0] < 2:
        return False
    single = np.asarray(single, np.float64)
    return bool(np.median(rows.std(axis=0, ddof=1) / single) > NO_SPREAD_TOL)


def statistics_scales(rows, *, rel_floor: float = 1e-3, single=None):
    """Per-statistic target Φ̄ and scale σ from per-field statistics ``rows`` (N, n).

    With a spread (:func:`has_spread`): σ_i = std of Φ_i across the fields, floored at ``rel_floor``
    × its median so statistics that do not vary (normalised ones) cannot dominate the loss with a
    division by ~0. Without one (N = 1, or N copies of one map): σ_i = ``single``_i, scales that exist
    for one map (default 1 for every statistic: the uniform weighting of a normalised statistics
    vector; :meth:`ScatteringSpectra.single_map_scale` for the scattering spectra). Returns
    ``(mean (n,), σ (n,))`` float32 numpy arrays.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 1:
        raise InputError(f"statistics rows must be (N, n_stats) with N >= 1; got shape {rows.shape}")
    mean = rows.mean(axis=0)
    single = np.ones_like(mean) if single is None else np.asarray(single, np.float64)
    if single.shape != mean.shape or not np.all(np.isfinite(single) & (single > 0)):
        raise InputError(f"single-map scales must be positive and finite, shape {mean.shape}")
    if not has_spread(rows, single):
        return mean.astype(np.float32), single.astype(np.float32)
    sigma = rows.std(axis=0, ddof=1)
    positive = sigma[sigma > 0]
    floor = rel_floor * (np.median(positive) if positive.size else 1.0)
    return mean.astype(np.float32), np.maximum(sigma, floor).astype(np.float32)


def band_power(fields, *, rel_tol: float = BAND_TOL) -> np.ndarray:
    """The data's mean power per Fourier mode on the half plane, zero outside the data's band:

        P̄(k) = ⟨|F(x − μ)(k)|²⟩_fields / V   if P̄(k) > rel_tol · max_k P̄(k),  else 0

    (μ the pixel mean of all fields; ``fields`` (N, H, W) → (H, W//2 + 1) float64). The band
    (P̄ > 0) is where the training data have power; for one map P̄ is its periodogram.
    """
    x = np.asarray(fields, np.float64)
    if x.ndim != 3:
        raise InputError(f"fields must be (N, H, W); got shape {x.shape}")
    p = np.mean(np.abs(np.fft.rfft2(x - x.mean())) ** 2, axis=0) / (x.shape[-1] * x.shape[-2])
    top = p.max()
    return np.where(p > rel_tol * top, p, 0.0) if top > 0 else np.zeros_like(p)


def random_phase_start(key, n: int, mean: float, power, *, exact: bool = True) -> jax.Array:
    """``n`` fields with pixel mean ``mean``, the power ``power`` (H, W//2 + 1) per Fourier mode (from
    :func:`band_power`) and random phases. ``exact``: x = μ + F⁻¹(√(V P̄) · ξ̂/|ξ̂|), EXACTLY |x̂|²/V = P̄
    (for one map: its phase-randomised surrogate); else x = μ + F⁻¹(√P̄ · ξ̂), a Gaussian field with
    spectrum P̄ (moduli scatter as in a Gaussian sample, the mean included). ξ white N(0, 1), whose
    phases are Hermitian-consistent, so x is real. Exactly no power where P̄ = 0."""
    power = jnp.asarray(power, jnp.float32)
    shape = (power.shape[0], 2 * (power.shape[1] - 1))
    xf = jnp.fft.rfft2(standard_normal(key, (n, *shape), jnp.float32))
    if not exact:
        return mean + jnp.fft.irfft2(xf * jnp.sqrt(power), s=shape)
    r = jnp.abs(xf)
    phase = jnp.where(r > 0, xf / jnp.where(r > 0, r, 1.0), 1.0)
    return mean + jnp.fft.irfft2(phase * jnp.sqrt(power * (shape[0] * shape[1])), s=shape)


def outside_nyquist_circle(shape) -> np.ndarray:
    """bool (H, W//2 + 1): the half-plane modes with |k| > π (the grid corners), k in rad/pixel."""
    h, w = shape
    k = np.hypot(2 * np.pi * np.fft.fftfreq(h)[:, None], 2 * np.pi * np.fft.rfftfreq(w)[None, :])
    return k > np.pi * (1 + 1e-9)


def project_band(x, band) -> jax.Array:
    """Fields ``x`` (N, H, W) with every Fourier mode outside ``band`` (bool, (H, W//2 + 1)) set to 0."""
    x = jnp.asarray(x, jnp.float32)
    return jnp.fft.irfft2(jnp.fft.rfft2(x) * jnp.asarray(band, jnp.float32), s=x.shape[-2:])


def statistics_loss(stats_fn: Callable, target, scale) -> Callable:
    """ℓ(x) of ONE field ``x`` (H, W) → scalar: the mean of ((Φ(x) − target)/scale)².

    ``stats_fn`` maps a batch ``(N, H, W)`` to ``(N, n)``; ``target`` and ``scale`` are ``(n,)``.
    """
    target = jnp.asarray(target, jnp.float32)
    inv = 1.0 / jnp.asarray(scale, jnp.float32)

    def loss(x):
        r = (stats_fn(x[None])[0] - target) * inv
        return jnp.mean(r * r)

    return loss


def _spectral_map(weights, shape):
    """M q = irfft2(p · rfft2(q)) per field, on flattened fields (N, H·W): symmetric positive definite
    for p > 0 (p(k) = p(−k) holds by construction on the half plane); ``None`` weights: no map."""
    if weights is None:
        return None

    def apply(q):
        qf = jnp.fft.rfft2(q.reshape((-1,) + shape))
        return jnp.fft.irfft2(qf * weights, s=shape).reshape(q.shape)

    return apply


def _build(loss: Callable, config: SynthesisConfig):
    """(init, chunk) jitted functions for a batch of fields, each running its own L-BFGS.

    Both take the preconditioner weights (``None`` or (H, W//2+1)) as an argument, so one loss
    serves preconditioned and plain runs (each traced once)."""
    one = jax.value_and_grad(loss)

    def value_and_grad(xflat, shape):
        value, grad = jax.vmap(one)(xflat.reshape((-1,) + shape))
        return value, grad.reshape(xflat.shape)

    @jax.jit
    def init(x, weights):
        shape = x.shape[1:]
        vg = lambda z: value_and_grad(z, shape)  # noqa: E731
        return lbfgs_init(vg, x.reshape(x.shape[0], -1), config.memory_size, config.initial_step,
                          _spectral_map(weights, shape))

    @functools.partial(jax.jit, static_argnames=("shape",), donate_argnums=(0,))
    def chunk(state, n_valid, weights, shape):
        vg = lambda z: value_and_grad(z, shape)  # noqa: E731
        precondition = _spectral_map(weights, shape)

        def body(st, i):
            def advance(s):
                return lbfgs_step(vg, s, armijo=config.armijo, precondition=precondition)

            return jax.lax.cond(i < n_valid, advance, lambda s: s, st), None

        state, _ = jax.lax.scan(body, state, jnp.arange(config.chunk_size))
        return state

    return init, chunk


# Compiled (init, chunk) pairs, keyed by the identity of the loss: a model that keeps its loss
# function object synthesises batch after batch without re-tracing. The loss is kept in the value
# so its id cannot be reused while the entry lives.
_COMPILED: OrderedDict = OrderedDict()
_MAX_COMPILED = 8


def _compiled(loss, config):
    key = (id(loss), config.memory_size, config.initial_step, config.armijo, config.chunk_size)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is loss:
        _COMPILED.move_to_end(key)
        return hit[1]
    fns = _build(loss, config)
    _COMPILED[key] = (loss, fns)
    while len(_COMPILED) > _MAX_COMPILED:
        _COMPILED.popitem(last=False)
    return fns


def minimize_fields(loss: Callable, x0, config: SynthesisConfig = SynthesisConfig(), *,
                    preconditioner=None, band=None, free=None) -> SynthesisResult:
    """Minimise ``loss`` (one field (H, W) → scalar) independently for every field of ``x0`` (N, H, W).

    Runs ``config.steps`` L-BFGS iterations per field, ``config.batch_size`` fields per batched run.
    ``preconditioner``: positive spectral weights p(k), (H, W//2 + 1), making the initial inverse
    Hessian γ F⁻¹ diag(p) F (e.g. :meth:`ScatteringSpectra.preconditioner`); ``None``: γ I.
    ``band``: bool (H, W//2 + 1), the Fourier modes the fields may have. The start is projected onto
    it and p(k) is set to 0 outside it, so every L-BFGS direction (γMq plus stored steps, all made of
    such directions) lies in the band; the results are projected once more to clear FFT round-off.
    ``free``: bool (H, W//2 + 1) ⊆ band, the modes L-BFGS may move (default: the band); the others
    keep their starting values.
    """
    from tqdm.auto import tqdm

    x0 = jnp.asarray(x0, jnp.float32)
    if x0.ndim != 3:
        raise InputError(f"starting fields must be (N, H, W); got shape {tuple(x0.shape)}")
    n, shape = x0.shape[0], tuple(int(s) for s in x0.shape[1:])
    half = (shape[0], shape[1] // 2 + 1)
    if preconditioner is not None:
        preconditioner = np.asarray(preconditioner, np.float32)
        if preconditioner.shape != half:
            raise InputError(f"preconditioner must have shape (H, W//2 + 1) = {half}; got {preconditioner.shape}")
        if not (np.all(np.isfinite(preconditioner)) and np.all(preconditioner > 0)):
            raise InputError("preconditioner weights must be finite and > 0")
    masks = []
    for name, m in (("band", band), ("free", free)):
        if m is not None:
            m = np.asarray(m, bool)
            if m.shape != half:
                raise InputError(f"{name} must have shape (H, W//2 + 1) = {half}; got {m.shape}")
            if not m.any():
                raise InputError(f"{name} is empty: no Fourier mode to synthesise")
        masks.append(m)
    band, free = masks
    if free is None:
        free = band
    elif band is not None:
        free = free & band
    if band is not None and band.all():
        band = None  # the whole plane: nothing to project
    if band is not None:
        x0 = project_band(x0, band)
    if free is not None and not free.all():  # otherwise the plain run, bit for bit
        preconditioner = (np.ones(half, np.float32) if preconditioner is None else preconditioner) * free
    if preconditioner is not None:
        preconditioner = jnp.asarray(preconditioner)
    bs = n if config.batch_size is None else min(n, config.batch_size)
    init, chunk = _compiled(loss, config)
    t0 = time.perf_counter()
    out_x, out_loss, out_init, out_acc, history = [], [], [], [], []
    bar = tqdm(total=config.steps * n, desc="L-BFGS synthesis", unit="field-it", disable=(
        None if config.progress is None else not config.progress), leave=False)
    try:
        for start in range(0, n, bs):
            x = x0[start:start + bs]
            used = x.shape[0]
            if used < bs:  # pad the last batch so every batch reuses one compilation
                x = jnp.concatenate([x, x0[:bs - used]])
            state = init(x, preconditioner)
            hist = [np.asarray(state.value)[:used]]

            def advance(done, n_valid):
                nonlocal state
                state = chunk(state, jnp.int32(n_valid), preconditioner, shape)
                hist.append(np.asarray(state.value)[:used])
                return {"median_loss": f"{np.median(hist[-1]):.3g}"}

            run_chunks(advance, stop=config.steps, chunk=config.chunk_size, bar=bar, bar_scale=used)
            out_x.append(np.asarray(state.x).reshape((-1,) + shape)[:used])
            out_acc.append(np.asarray(state.accepted)[:used])
            out_loss.append(hist[-1])
            out_init.append(hist[0])
            history.append(np.stack(hist))
    finally:
        bar.close()
    fields = np.concatenate(out_x)
    if band is not None:
        fields = np.asarray(project_band(fields, band))
    return SynthesisResult(fields, np.concatenate(out_loss), np.concatenate(out_init),
                           np.concatenate(history, axis=1), time.perf_counter() - t0, config.steps,
                           np.concatenate(out_acc))


def synthesize(key, loss: Callable, n: int, shape, *, mean: float = 0.0, std: float = 1.0,
               config: SynthesisConfig = SynthesisConfig(), preconditioner=None, start_power=None,
               band=None, free=None, exact_power: bool = True) -> SynthesisResult:
    """Microcanonical synthesis of ``n`` fields of ``shape`` (H, W) minimising ``loss``.

    Each field starts as white noise ``mean + std·ξ`` (ξ ~ N(0, 1) per pixel, drawn from ``key``),
    or, given ``start_power`` (H, W//2 + 1) from :func:`band_power`, as a random-phase field with
    exactly that power per mode (:func:`random_phase_start`; ``band`` then defaults to where it is
    > 0), and is optimised by its own L-BFGS run (:func:`minimize_fields`, restricted to ``band``,
    moving only the ``free`` modes; ``exact_power=False``: a Gaussian start with that spectrum).
    Build ``loss`` once with
    :func:`statistics_loss` and keep it: the compiled optimiser is cached on its identity.
    ``preconditioner``: spectral weights (H, W//2 + 1) for the initial inverse Hessian.
    """
    n = check_int_at_least(n, "n", 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ParameterError(f"shape must be (H, W); got {shape}")
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ParameterError(f"mean must be finite and std > 0; got mean={mean!r}, std={std!r}")
    if start_power is not None:
        start_power = np.asarray(start_power, np.float64)
        ok = np.all(np.isfinite(start_power) & (start_power >= 0))
        if start_power.shape != (shape[0], shape[1] // 2 + 1) or not ok:
            raise ParameterError(f"start_power must be finite, >= 0, of shape {(shape[0], shape[1] // 2 + 1)}")
        x0 = random_phase_start(key, n, mean, start_power, exact=exact_power)
        if band is None:
            band = start_power > 0
            # k = 0 (the mean) stays in the band: fields start at ``mean``; when the data's means do
            # not vary (P̄(0) = 0) it is also kept out of the moving modes, so it stays exactly there
            free = (band.copy() if free is None else np.asarray(free, bool) & band)
            band[0, 0] = True
    else:
        x0 = mean + std * standard_normal(key, (n, *shape), jnp.float32)
    return minimize_fields(loss, x0, config, preconditioner=preconditioner, band=band, free=free)
