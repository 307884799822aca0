"""Flow matching on the linear path from noise to data (docs/diffusion.md).

Path (t from 0 = noise to 1 = data): ``x_t = (1 − t) z + t x₁`` with z ~ N(0, I) and x₁ a
standardised training field. Its conditional velocity is ``x₁ − z``; the network v̂(x_t, t) is
trained on

    L = E_{x₁, z, t ~ U(0,1)} ‖v̂(x_t, t) − (x₁ − z)‖² / (H W),

whose minimiser is the marginal velocity ``E[x₁ − z | x_t]``; integrating ``dx/dt = v̂(x, t)``
from t = 0 (N(0, I) draws) to t = 1 then transports noise to the data law. Samplers accept any
velocity function ``velocity(x, t)`` (``x`` ``(N, H, W)``, scalar t), e.g. the exact Gaussian one of
:func:`phigen.diffusion.oracle.gaussian_velocity`. Euler: 1 evaluation per step (order 1);
Heun: 2 per step (order 2).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int_at_least
from ..errors import ParameterError
from .sde import SamplerInfo
from ..samplers._rng import standard_normal

__all__ = ["flow_path", "flow_matching_loss", "flow_time_grid", "flow_euler_step", "flow_heun_step",
           "flow_sample", "FLOW_METHODS"]

FLOW_METHODS = ("heun", "euler")


def flow_path(x1, z, t):
    """``x_t = (1 − t) z + t x₁`` for a batch: ``x1``, ``z`` ``(N, H, W)``, ``t`` ``(N,)``."""
    t = t[:, None, None]
    return (1.0 - t) * z + t * x1


def flow_matching_loss(velocity_fn: Callable, x1, key):
    """Conditional flow-matching loss, averaged over batch and pixels.

    ``velocity_fn(x_t, t)`` -> ``(N, H, W)`` for ``x_t`` ``(N, H, W)``, ``t`` ``(N,)``.
    """
    kt, kz = jax.random.split(key)
    t = jax.random.uniform(kt, (x1.shape[0],), x1.dtype)
    z = standard_normal(kz, x1.shape, x1.dtype)
    return jnp.mean((velocity_fn(flow_path(x1, z, t), t) - (x1 - z)) ** 2)


def flow_time_grid(n_steps: int, kind: str = "uniform") -> np.ndarray:
    """Increasing times ``0 = t_0 < … < t_n = 1`` (float32). ``uniform``, or ``cosine``
    (``t = (1 − cos(πu))/2``: finer steps at both ends, where the Gaussian velocity varies fastest)."""
    n = check_int_at_least(n_steps, "n_steps", 1)
    u = np.linspace(0.0, 1.0, n + 1)
    if kind == "uniform":
        t = u
    elif kind == "cosine":
        t = 0.5 * (1.0 - np.cos(np.pi * u))
    else:
        raise ParameterError(f"unknown flow time grid {kind!r}; choose uniform or cosine")
    t[0], t[-1] = 0.0, 1.0
    return t.astype(np.float32)


def flow_euler_step(velocity: Callable, x, t, t_next):
    """``x + h v(x, t)``, h = t_next − t."""
    return x + (t_next - t) * velocity(x, t)


def flow_heun_step(velocity: Callable, x, t, t_next):
    """Heun: ``x + h/2 [v(x, t) + v(x + h v(x, t), t_next)]``."""
    h = t_next - t
    d1 = velocity(x, t)
    d2 = velocity(x + h * d1, t_next)
    return x + 0.5 * h * (d1 + d2)


def flow_sample(velocity: Callable, x0, times, *, method: str = "heun"):
    """Integrate ``dx/dt = velocity(x, t)`` along increasing ``times`` from ``x0`` ``(N, H, W)``.

    Returns ``(x, SamplerInfo)``; ``method`` is ``heun`` (2 evaluations per step) or ``euler`` (1).
    """
    if method not in FLOW_METHODS:
        raise ParameterError(f"unknown flow sampler {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    times = jnp.asarray(times, jnp.float32)
    if times.ndim != 1 or times.shape[0] < 2:
        raise ParameterError(f"times must be a 1D grid of at least 2 values; got shape {times.shape}")
    step = flow_heun_step if method == "heun" else flow_euler_step

    def body(x, inp):
        t, t_next = inp
        x = step(velocity, x, t, t_next)
        return x, SamplerInfo(jnp.sqrt(jnp.mean(x**2)))

    return jax.lax.scan(body, jnp.asarray(x0, jnp.float32), (times[:-1], times[1:]))
