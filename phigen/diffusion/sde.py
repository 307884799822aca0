"""Score diffusion with the Ornstein–Uhlenbeck process (docs/diffusion.md): forward marginals, the
denoising score-matching loss, Tweedie's formula and the two reverse-time samplers.

Forward process on standardised fields: ``dx = −x dt + √2 dW``, so

    x_t = a(t) x₀ + s(t) z,   a = e^{−t},   s² = 1 − e^{−2t},   z ~ N(0, I),

and the stationary law N(0, I) is reached for t → ∞ (T ≈ 5 leaves e^{−5} ≈ 0.7 % of x₀).

Parametrisation (documented choice): the network predicts the **velocity** ``v = a z − s x₀``
(Salimans & Ho's v-prediction), trained with

    L = E_{x₀, t, z} ‖v̂(a x₀ + s z, t) − (a z − s x₀)‖² / (H W),   log t ~ U(log t_min, log T).

For standardised data v has unit variance at every t, so the regression target is equally well
scaled from the pixel scale (small t) to the field scale (t ~ 1), and log-uniform times give every
scale the same weight. The noise and clean-field predictions follow linearly,

    ε̂ = s x_t + a v̂,   x̂₀ = E[x₀ | x_t] ≈ a x_t − s v̂,   ∇log p_t(x) = −ε̂/s = −x − (a/s) v̂,

(‖ε̂ − z‖ = a‖v̂ − v‖, so this is denoising score matching with weight s²/a²). An untrained
network (v̂ = 0) has the score −x of N(0, I): its samples are white noise, never a blow-up.

Samplers take ANY score function ``score(x, t)`` (``x``: ``(N, H, W)``, ``t``: scalar) — a network,
or the exact Gaussian score of :mod:`phigen.diffusion.oracle` — and a decreasing time grid
``T = t_0 > t_1 > … > t_n = t_min`` (:func:`time_grid`). With ``τ = T − t``:

- reverse SDE ``dx = [x + 2∇log p_t(x)] dτ + √2 dW`` by Euler–Maruyama (n score evaluations);
- probability-flow ODE ``dx/dτ = x + ∇log p_t(x)`` by Heun's method (2n evaluations).

Both are ``lax.scan`` loops over the grid; the optional last step replaces x_{t_min} by Tweedie's
denoised mean (removes the residual noise of standard deviation s(t_min)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int_at_least, check_positive
from ..errors import ParameterError
from ..samplers._rng import standard_normal

__all__ = ["OUProcess", "ou_mean_std", "perturb", "dsm_loss", "score_from_velocity", "tweedie_denoise",
           "time_grid", "euler_maruyama_step", "heun_step", "reverse_sde_sample",
           "probability_flow_sample", "SamplerInfo", "TIME_GRIDS"]

TIME_GRIDS = ("log", "uniform", "quadratic")


@dataclass(frozen=True)
class OUProcess:
    """The OU forward process restricted to ``[t_min, t_max]`` (training and sampling range)."""

    t_min: float = 1e-3
    t_max: float = 5.0

    def __post_init__(self):
        check_positive(self.t_min, "t_min")
        check_positive(self.t_max, "t_max")
        if not self.t_max > self.t_min:
            raise ParameterError(f"t_max must exceed t_min; got t_min={self.t_min}, t_max={self.t_max}")

    def sample_times(self, key, n: int):
        """``n`` log-uniform times in ``[t_min, t_max]``."""
        u = jax.random.uniform(key, (n,))
        return jnp.exp(jnp.log(self.t_min) + u * (jnp.log(self.t_max) - jnp.log(self.t_min)))


def ou_mean_std(t):
    """``(a, s) = (e^{−t}, √(1 − e^{−2t}))`` of the OU marginal ``x_t | x₀ ~ N(a x₀, s² I)``."""
    t = jnp.asarray(t, jnp.float32)
    return jnp.exp(-t), jnp.sqrt(-jnp.expm1(-2.0 * t))  # expm1: accurate for small t


def perturb(x0, t, z):
    """``x_t = a(t) x₀ + s(t) z`` for a batch: ``x0``, ``z`` ``(N, H, W)``, ``t`` ``(N,)``."""
    a, s = ou_mean_std(t)
    return a[:, None, None] * x0 + s[:, None, None] * z


def dsm_loss(velocity_fn: Callable, x0, key, process: OUProcess = OUProcess()):
    """Denoising score-matching loss in v-prediction form, averaged over batch and pixels.

    ``velocity_fn(x_t, t)`` -> predicted ``v = a z − s x₀`` ``(N, H, W)`` for ``x_t`` ``(N, H, W)``,
    ``t`` ``(N,)``.
    """
    kt, kz = jax.random.split(key)
    t = process.sample_times(kt, x0.shape[0])
    z = standard_normal(kz, x0.shape, x0.dtype)
    a, s = (v[:, None, None] for v in ou_mean_std(t))
    return jnp.mean((velocity_fn(a * x0 + s * z, t) - (a * z - s * x0)) ** 2)


def score_from_velocity(velocity_fn: Callable) -> Callable:
    """The score ``∇log p_t(x) = −x − (a/s) v̂(x, t)`` of a v-predictor (``t`` a scalar)."""

    def score(x, t):
        a, s = ou_mean_std(t)
        return -x - (a / s) * velocity_fn(x, jnp.full((x.shape[0],), t, x.dtype))

    return score


def tweedie_denoise(score: Callable, x, t):
    """Tweedie: ``E[x₀ | x_t = x] = (x + s² ∇log p_t(x)) / a`` (``x`` ``(N, H, W)``, scalar t)."""
    a, s = ou_mean_std(t)
    return (x + s**2 * score(x, t)) / a


def time_grid(n_steps: int, t_min: float = 1e-3, t_max: float = 5.0, kind: str = "log") -> np.ndarray:
    """Decreasing times ``t_0 = t_max > … > t_n = t_min`` (``n_steps + 1`` values, float32).

    ``log``: geometric (equal steps in log t; stable for the stiff small-t score, whose scale is
    1/s² ≈ 1/(2t)); ``uniform``: equal steps in t; ``quadratic``: equal steps in √t.
    """
    n = check_int_at_least(n_steps, "n_steps", 1)
    check_positive(t_min, "t_min")
    if not t_max > t_min:
        raise ParameterError(f"t_max must exceed t_min; got {t_min}, {t_max}")
    u = np.linspace(0.0, 1.0, n + 1)
    if kind == "log":
        t = np.exp(np.log(t_max) + u * (np.log(t_min) - np.log(t_max)))
    elif kind == "uniform":
        t = t_max + u * (t_min - t_max)
    elif kind == "quadratic":
        t = (np.sqrt(t_max) + u * (np.sqrt(t_min) - np.sqrt(t_max))) ** 2
    else:
        raise ParameterError(f"unknown time grid {kind!r}; choose one of {', '.join(TIME_GRIDS)}")
    t[0], t[-1] = t_max, t_min
    return t.astype(np.float32)


class SamplerInfo(NamedTuple):
    """Per-step record of a sampler: the RMS of the state (watch for divergence)."""

    rms: jax.Array


def euler_maruyama_step(score: Callable, key, x, t, t_next):
    """One reverse-SDE step from ``t`` to ``t_next < t``: ``x + h(x + 2∇log p_t(x)) + √(2h) ξ``."""
    h = t - t_next
    drift = x + 2.0 * score(x, t)
    return x + h * drift + jnp.sqrt(2.0 * h) * standard_normal(key, x.shape, x.dtype)


def heun_step(score: Callable, x, t, t_next):
    """One probability-flow step by Heun (trapezoidal predictor–corrector), 2 score evaluations."""
    h = t - t_next
    d1 = x + score(x, t)
    x_pred = x + h * d1
    d2 = x_pred + score(x_pred, t_next)
    return x + 0.5 * h * (d1 + d2)


def _check_times(times):
    times = jnp.asarray(times, jnp.float32)
    if times.ndim != 1 or times.shape[0] < 2:
        raise ParameterError(f"times must be a 1D grid of at least 2 values; got shape {times.shape}")
    return times


def reverse_sde_sample(score: Callable, x_T, key, times, *, denoise: bool = False):
    """Integrate the reverse SDE by Euler–Maruyama along ``times`` (decreasing), from ``x_T``.

    ``x_T``: ``(N, H, W)`` (normally N(0, I) draws); returns ``(x, SamplerInfo)`` with x at
    ``times[-1]`` (Tweedie-denoised if ``denoise``).
    """
    times = _check_times(times)
    keys = jax.random.split(key, times.shape[0] - 1)

    def body(x, inp):
        k, t, t_next = inp
        x = euler_maruyama_step(score, k, x, t, t_next)
        return x, SamplerInfo(jnp.sqrt(jnp.mean(x**2)))

    x, info = jax.lax.scan(body, jnp.asarray(x_T, jnp.float32), (keys, times[:-1], times[1:]))
    if denoise:
        x = tweedie_denoise(score, x, times[-1])
    return x, info


def probability_flow_sample(score: Callable, x_T, times, *, denoise: bool = False):
    """Integrate the probability-flow ODE by Heun along ``times`` (decreasing), from ``x_T``.

    Deterministic; ``2·(len(times) − 1)`` score evaluations. Returns ``(x, SamplerInfo)``.
    """
    times = _check_times(times)

    def body(x, inp):
        t, t_next = inp
        x = heun_step(score, x, t, t_next)
        return x, SamplerInfo(jnp.sqrt(jnp.mean(x**2)))

    x, info = jax.lax.scan(body, jnp.asarray(x_T, jnp.float32), (times[:-1], times[1:]))
    if denoise:
        x = tweedie_denoise(score, x, times[-1])
    return x, info
