"""Maximum-entropy (macrocanonical) Gibbs model with a statistics potential ``U_θ = θ·Φ``.

The model lives in the latent coordinates ``z`` of the training data's Gaussian model,
``x = μ + F⁻¹(√P̄ · F z)`` (P̄ the data's mean 2D power spectrum), and has the energy

    U_θ(z) = ½|z|² + θ · Φ̃(x(z)),        Φ̃(x) = (Φ(x) − Φ̄) / σ        (σ: spread of Φ over the data)

i.e. the maximum-entropy density relative to the data's Gaussian field: θ = 0 is exactly that
Gaussian model, and θ adds the non-Gaussian constraints Φ. The quadratic term is itself a fixed
``θ·Φ`` potential (one power-spectrum statistic per Fourier mode); it keeps the density
normalisable in the directions Φ does not see (the mean, the modes below the largest wavelet) and,
working in ``z``, makes Langevin dynamics well conditioned: at θ = 0 every coordinate has unit
variance however red the spectrum is.

Fit by moment matching (stochastic maximum likelihood with persistent chains): ∂(−log p_θ(data))/∂θ
= ⟨Φ̃⟩_data − ⟨Φ̃⟩_θ = −⟨Φ̃⟩_θ, and the Hessian is Cov_θ(Φ̃), so the (damped, regularised) Newton step

    θ ← θ + η · (Ĉ_θ + δI)⁻¹ ⟨Φ̃⟩_θ,

with ⟨Φ̃⟩_θ averaged over C persistent MALA chains advanced a few steps per update and Ĉ_θ a
running average of the chains' covariance of Φ̃ (started at the data's). A trust region caps every
multiplier's change per update. The MALA step size follows the acceptance (Robbins–Monro on log ε
towards 0.574).

Which θ is returned (``selection``): ``"best"`` (default) averages θ over the chunk of updates whose
mean moment residual was lowest, and the fit stops once ``patience`` chunks have gone by without a
lower one (early stopping on the training moments: on turbulence and the cosmic web the residual
falls for 20–40 updates and then climbs back, with twice the chains too; as θ grows the potential
stiffens, the MALA step shrinks and the persistent chains lag θ, and more MALA steps per update
shrink the climb — docs/scattering.md); ``"last"`` Polyak-averages θ over the last
``average_fraction`` of the updates, all of them run.

Φ must not grow faster than quadratically with the field's amplitude, or some θ makes U unbounded
below and the chains run away: use self-normalised statistics (C01, C11 divided by the field's
own S2, log S2), as :class:`~phigen.scattering.ScatteringSpectra` does by default.
Sampling uses the phigen samplers: MALA (or HMC) with dual-averaging warm-up, then ``run_chain``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least, check_positive
from ..energies.base import Energy
from ..errors import DivergenceError, InputError, ParameterError
from ..samplers.mala import mala_init, mala_step
from .synthesis import BAND_TOL, statistics_scales
from ..samplers._rng import standard_normal

__all__ = ["MaxEntConfig", "MaxEntParams", "MaxEntHistory", "statistics_rows", "gaussian_reference",
           "latent_to_field", "maxent_energy", "fit_maxent", "sample_maxent", "moment_residual"]

_TARGET_ACCEPTANCE = 0.574
_MAX_UPDATE = 0.5
_COV_DECAY = 0.1  # weight of the newest chain covariance in the running estimate of Cov_θ(Φ̃)


@dataclass(frozen=True)
class MaxEntConfig:
    """Moment-matching settings.

    iterations : θ updates.
    n_chains : persistent MALA chains whose statistics estimate ⟨Φ̃⟩_θ.
    steps_per_iteration : MALA steps between two θ updates.
    learning_rate : η of the Newton update.
    ridge : δ added to the running covariance estimate Ĉ_θ before solving with it.
    initial_step_size : MALA step ε in the latent coordinates (adapted during the fit).
    selection : ``"best"``: θ averaged over the chunk with the lowest mean moment residual, with early
        stopping after ``patience`` chunks without a lower one; ``"last"``: θ averaged over the last
        ``average_fraction`` of the updates (all ``iterations`` run).
    patience : chunks without a new best residual before the fit stops (``selection="best"``;
        ``None``: run all ``iterations``, still returning the best chunk).
    average_fraction : ``selection="last"``: θ is the average of its iterates over this last fraction.
    chunk_size : updates per jitted ``lax.scan`` chunk (progress bar advances per chunk; the unit of
        ``selection="best"`` and ``patience``).
    theta_prior : λ ≥ 0 of a Gaussian prior ``λ|θ|²/2`` on the multipliers: the fit then solves
        ⟨Φ̃⟩_θ = λθ (moments matched up to a shrinkage of θ) and θ stays out of the stiff region
        where the persistent chains lag it (docs/scattering.md).
    progress : tqdm bar; ``None``: when attached to a terminal; ``False``: never.
    """

    iterations: int = 200
    n_chains: int = 64
    steps_per_iteration: int = 10
    learning_rate: float = 0.5
    ridge: float = 0.5
    initial_step_size: float = 0.1
    selection: str = "best"
    patience: int | None = 4
    average_fraction: float = 0.25
    chunk_size: int = 10
    theta_prior: float = 0.0
    progress: bool | None = None

    def __post_init__(self):
        for name, low in (("iterations", 1), ("n_chains", 2), ("steps_per_iteration", 1), ("chunk_size", 1)):
            object.__setattr__(self, name, check_int_at_least(getattr(self, name), name, low))
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.ridge, "ridge", strict=False)
        check_positive(self.initial_step_size, "initial_step_size")
        check_positive(self.theta_prior, "theta_prior", strict=False)
        if self.selection not in ("best", "last"):
            raise ParameterError(f"selection must be 'best' or 'last'; got {self.selection!r}")
        if self.patience is not None:
            object.__setattr__(self, "patience", check_int_at_least(self.patience, "patience", 1))
        if not 0.0 < self.average_fraction <= 1.0:
            raise ParameterError(f"average_fraction must be in (0, 1]; got {self.average_fraction!r}")


class MaxEntParams(NamedTuple):
    """A fitted model: ``U(z) = ½|z|² + θ·(Φ(x(z)) − target)/scale``, ``x(z) = mean + F⁻¹(amplitude·F z)``."""

    theta: np.ndarray      # (n,) float32 Lagrange multipliers (whitened statistics)
    target: np.ndarray     # (n,) Φ̄ over the data
    scale: np.ndarray      # (n,) σ over the data
    mean: float            # μ, the data's pixel mean
    amplitude: np.ndarray  # (H, W) √P̄(k), floored
    step_size: float       # MALA ε (latent coordinates) at the end of the fit


class MaxEntHistory(NamedTuple):
    residual: np.ndarray     # (iterations,) mean_i ⟨Φ̃_i⟩²_chains before each update (floor ≈ 1/n_chains)
    acceptance: np.ndarray   # (iterations,) mean MALA acceptance over each update's steps
    step_size: np.ndarray    # (iterations,) ε used
    initial_residual: float  # residual of the Gaussian reference (θ = 0) on fresh chains
    seconds: float
    selected: tuple[int, int] = (0, 0)  # [first, last) updates whose θ were averaged into the result
    selected_residual: float = float("nan")  # mean residual over those updates


def statistics_rows(stats_fn: Callable, fields, *, chunk: int = 16) -> np.ndarray:
    """Per-field statistics ``(N, n)`` (float64 numpy) of ``fields`` (N, H, W), ``chunk`` fields per call."""
    x = as_fields(fields)
    return np.concatenate([np.asarray(stats_fn(jnp.asarray(x[i:i + chunk])), dtype=np.float64)
                           for i in range(0, x.shape[0], chunk)])


def gaussian_reference(fields, *, rel_floor: float = 1e-6, band_tol: float = BAND_TOL):
    """``(μ, amplitude (H, W))`` of the data's Gaussian model: pixel mean and √ of the mean 2D power
    spectrum ``P̄(k) = ⟨|F(x − μ)(k)|²⟩/V``. Inside the data's band (P̄ > ``band_tol``·max P̄) it is
    floored at ``rel_floor``·max P̄ so every mode moves; outside it the amplitude is exactly 0, so
    no sample of the model has power where the training data have none (a latent mode there is a
    free N(0, 1) coordinate that does not touch the field)."""
    x = np.asarray(as_fields(fields), dtype=np.float64)
    mean = float(x.mean())
    p = np.mean(np.abs(np.fft.fft2(x - mean)) ** 2, axis=0) / (x.shape[-1] * x.shape[-2])
    top = p.max()
    if not top > 0:
        raise InputError("the training fields are constant: there is no Gaussian reference to build")
    p = np.where(p > band_tol * top, np.maximum(p, rel_floor * top), 0.0)
    return mean, np.sqrt(p).astype(np.float32)


def latent_to_field(z, mean, amplitude):
    """``x = μ + F⁻¹(amplitude · F z)`` for a batch ``z`` (C, H, W) → (C, H, W)."""
    h, w = z.shape[-2:]
    half = jnp.asarray(amplitude, jnp.float32)[:, : w // 2 + 1]
    return mean + jnp.fft.irfft2(jnp.fft.rfft2(z) * half, s=(h, w))


def _whitened(stats_fn, target, scale):
    target = jnp.asarray(target, jnp.float32)
    inv = 1.0 / jnp.asarray(scale, jnp.float32)
    return lambda x: (stats_fn(x) - target) * inv


def _energy_fns(stats_fn, theta, target, scale, mean, amplitude):
    phi_w = _whitened(stats_fn, target, scale)
    theta = jnp.asarray(theta, jnp.float32)

    def value(z):
        return 0.5 * jnp.sum(z * z, axis=(-2, -1)) + phi_w(latent_to_field(z, mean, amplitude)) @ theta

    def value_and_grad(z):
        u, vjp = jax.vjp(value, z)  # fields are independent: one VJP with unit cotangents gives every ∇U
        return u, vjp(jnp.ones_like(u))[0]

    return value, value_and_grad


def maxent_energy(stats_fn: Callable, params: MaxEntParams) -> Energy:
    """The fitted Gibbs energy as a batched phigen :class:`Energy` on latent fields ``z`` (C, H, W).

    Map samples back with :func:`latent_to_field`. Build it once and reuse it (it is a jit key).
    """
    value, value_and_grad = _energy_fns(stats_fn, params.theta, params.target, params.scale, params.mean,
                                        params.amplitude)
    return Energy(value=value, grad=lambda z: value_and_grad(z)[1], name="scattering-maxent",
                  value_and_grad_fn=value_and_grad)


def moment_residual(stats_fn: Callable, fields, target, scale) -> float:
    """``mean_i ((⟨Φ_i⟩_fields − target_i)/scale_i)²``: how far an ensemble's mean statistics are from
    the target, in units of the per-field spread (≈ 1/N for N fields drawn from the target's ensemble)."""
    rows = statistics_rows(stats_fn, fields)
    r = (rows.mean(axis=0) - np.asarray(target, np.float64)) / np.asarray(scale, np.float64)
    return float(np.mean(r * r))


def _fit_chunk_fn(stats_fn, config: MaxEntConfig):
    phi_w_raw = stats_fn
    k_steps = config.steps_per_iteration

    @jax.jit
    def chunk(key, t0, n_valid, z, theta, theta_sum, n_sum, log_eps, cov, avg_start, target, scale, mean,
              amplitude):
        phi_w = _whitened(phi_w_raw, target, scale)
        eye = jnp.eye(target.shape[0], dtype=jnp.float32)

        def update(carry, t):
            z, theta, theta_sum, n_sum, log_eps, cov = carry
            value, value_and_grad = _energy_fns(phi_w_raw, theta, target, scale, mean, amplitude)
            energy = Energy(value=value, grad=lambda q: value_and_grad(q)[1], name="maxent-fit",
                            value_and_grad_fn=value_and_grad)
            state = mala_init(z, energy)
            eps = jnp.exp(log_eps)

            def mala(state, s):
                state, info = mala_step(jax.random.fold_in(jax.random.fold_in(key, t), s), state, energy,
                                        step_size=eps)
                return state, jnp.mean(info.acceptance_rate)

            state, acc = jax.lax.scan(mala, state, jnp.arange(k_steps))
            z = state.position
            w = phi_w(latent_to_field(z, mean, amplitude))
            m = jnp.mean(w, axis=0)
            d = w - m
            cov = (1.0 - _COV_DECAY) * cov + _COV_DECAY * (d.T @ d) / (w.shape[0] - 1)
            acc = jnp.mean(acc)
            # Newton step on the penalised likelihood −log p_θ(data) + λ|θ|²/2: gradient −(m − λθ),
            # Hessian Cov_θ(Φ̃) + λI (the prior keeps θ out of the stiff region where the chains lag)
            prior = config.theta_prior
            delta = config.learning_rate * jnp.linalg.solve(cov + (config.ridge + prior) * eye, m - prior * theta)
            # trust region: no multiplier moves by more than _MAX_UPDATE (whitened units) per update,
            # so a noisy covariance estimate cannot throw the chains into a stiff region
            delta = delta * jnp.minimum(1.0, _MAX_UPDATE / (jnp.max(jnp.abs(delta)) + 1e-12))
            theta_used = theta  # the θ the chains just ran under (what this update's residual measures)
            theta = theta + delta
            take = t >= avg_start
            theta_sum = theta_sum + jnp.where(take, theta, 0.0)
            n_sum = n_sum + take.astype(jnp.float32)
            log_eps = log_eps + 0.5 * (acc - _TARGET_ACCEPTANCE)
            return (z, theta, theta_sum, n_sum, log_eps, cov), (jnp.mean(m * m), acc, eps, theta_used)

        def body(carry, i):
            t = t0 + i
            return jax.lax.cond(i < n_valid, lambda c: update(c, t),
                                lambda c: (c, (jnp.nan, jnp.nan, jnp.nan, jnp.full_like(c[1], jnp.nan))), carry)

        carry, trace = jax.lax.scan(body, (z, theta, theta_sum, n_sum, log_eps, cov), jnp.arange(config.chunk_size))
        return carry, trace

    return chunk


def fit_maxent(key, stats_fn: Callable, fields, config: MaxEntConfig = MaxEntConfig()):
    """Fit ``θ`` of the maximum-entropy model of ``fields`` (N, H, W) under statistics ``stats_fn``
    (batch ``(C, H, W)`` → ``(C, n)``, differentiable). Returns ``(MaxEntParams, MaxEntHistory)``.

    Raises :class:`~phigen.errors.DivergenceError` if the chains turn non-finite (try a smaller
    ``learning_rate`` or more ``steps_per_iteration``).
    """
    from tqdm.auto import tqdm

    x = as_fields(fields)
    if x.shape[0] < 2:
        raise InputError(f"the maximum-entropy fit needs at least 2 training fields (for the spread of Φ); "
                         f"got {x.shape[0]}")
    rows = statistics_rows(stats_fn, x)
    target, scale = statistics_scales(rows)
    white = (rows - target) / scale
    cov = jnp.asarray(white.T @ white / (rows.shape[0] - 1), jnp.float32)
    mean, amplitude = gaussian_reference(x)
    shape = tuple(x.shape[1:])
    n = target.shape[0]

    key_init, key_run = jax.random.split(key)
    z = standard_normal(key_init, (config.n_chains, *shape), jnp.float32)
    phi_w = _whitened(stats_fn, target, scale)
    m0 = np.asarray(jnp.mean(phi_w(latent_to_field(z, mean, amplitude)), axis=0))
    initial_residual = float(np.mean(m0 ** 2))

    chunk = _fit_chunk_fn(stats_fn, config)
    theta = jnp.zeros(n, jnp.float32)
    theta_sum = jnp.zeros(n, jnp.float32)
    n_sum = jnp.float32(0.0)
    log_eps = jnp.float32(np.log(config.initial_step_size))
    avg_start = jnp.int32(config.iterations - max(1, int(round(config.average_fraction * config.iterations))))
    args = tuple(jnp.asarray(a, jnp.float32) for a in (target, scale, mean, amplitude))
    traces = []
    best = (np.inf, None, (0, 0))  # (mean residual, mean θ, [first, last) updates) of the best chunk
    since_best = 0
    t0 = time.perf_counter()
    bar = tqdm(total=config.iterations, desc="max-ent moment matching", unit="update",
               disable=None if config.progress is None else not config.progress, leave=False)
    try:
        done = 0
        while done < config.iterations:
            n_valid = min(config.chunk_size, config.iterations - done)
            (z, theta, theta_sum, n_sum, log_eps, cov), trace = chunk(
                key_run, jnp.int32(done), jnp.int32(n_valid), z, theta, theta_sum, n_sum, log_eps, cov, avg_start, *args)
            trace = tuple(np.asarray(a)[:n_valid] for a in trace)
            traces.append(trace[:3])
            if not (np.all(np.isfinite(trace[0])) and bool(jnp.all(jnp.isfinite(z)))):
                raise DivergenceError(f"max-ent fit diverged by update {done + n_valid} (MALA step {float(np.exp(log_eps)):.3g}); "
                                      "try a smaller learning_rate or more steps_per_iteration")
            chunk_residual = float(np.mean(trace[0]))
            if chunk_residual < best[0]:
                best = (chunk_residual, trace[3].mean(axis=0), (done, done + n_valid))
                since_best = 0
            else:
                since_best += 1
            done += n_valid
            bar.update(n_valid)
            bar.set_postfix(residual=f"{trace[0][-1]:.3g}", best=f"{best[0]:.3g}", acceptance=f"{trace[1][-1]:.2f}")
            if config.selection == "best" and config.patience is not None and since_best >= config.patience:
                break
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    residual, acceptance, step_size = (np.concatenate([tr[i] for tr in traces]) for i in range(3))
    if config.selection == "best":
        theta_out, selected, selected_residual = np.asarray(best[1], np.float32), best[2], best[0]
    else:
        theta_out = np.asarray(theta_sum / jnp.maximum(n_sum, 1.0), np.float32)
        first = int(avg_start) + 1  # θ after update avg_start = the θ the chains of update avg_start + 1 ran under
        selected = (min(first, done), done)
        selected_residual = float(np.mean(residual[selected[0]:])) if selected[0] < done else float("nan")
    params = MaxEntParams(theta_out, target, scale, float(mean), amplitude, float(np.exp(log_eps)))
    return params, MaxEntHistory(residual, acceptance, step_size, initial_residual, seconds,
                                 tuple(int(v) for v in selected), float(selected_residual))


def sample_maxent(key, stats_fn: Callable, params: MaxEntParams, n: int, *, steps: int = 500,
                  kernel: str = "mala", progress: bool | None = False, energy: Energy | None = None):
    """Draw ``n`` fields ``(n, H, W)`` from the fitted Gibbs model with a phigen sampler.

    Chains start from the Gaussian reference (z ~ N(0, I)); the first ``steps // 2`` steps adapt
    the step size by dual averaging (:func:`~phigen.samplers.adapt_step_size`), the rest run with it
    (:func:`~phigen.samplers.run_chain`); the final chain positions are mapped back to fields.
    ``energy``: pass :func:`maxent_energy`'s result to reuse its compilation across calls.
    """
    from ..samplers import RunConfig, adapt_step_size, make_kernel, run_chain

    n = check_int_at_least(n, "n", 1)
    steps = check_int_at_least(steps, "steps", 40)
    if kernel not in ("mala", "hmc"):
        raise ParameterError(f"kernel must be 'mala' or 'hmc'; got {kernel!r}")
    energy = maxent_energy(stats_fn, params) if energy is None else energy
    k_init, k_adapt, k_run = jax.random.split(key, 3)
    shape = tuple(params.amplitude.shape)
    z = standard_normal(k_init, (n, *shape), jnp.float32)
    n_warm = steps // 2
    state, eps, info = adapt_step_size(k_adapt, kernel, energy, z, n_warmup=n_warm,
                                       initial_step_size=float(params.step_size) if kernel == "mala" else 0.1)
    extra = {"n_leapfrog": info.final_n_leapfrog} if kernel == "hmc" else {}
    kern = make_kernel(kernel, energy, step_size=eps, **extra)
    result = run_chain(k_run, kern.step, state, RunConfig(n_steps=steps - n_warm, chunk_size=50, progress=bool(progress),
                                                           stop_on_divergence=False))
    z = result.state.position
    return latent_to_field(z, params.mean, jnp.asarray(params.amplitude))
