"""Canonical (Gibbs) twin of the microcanonical scattering model.

With the microcanonical model's statistics Φ, target Φ̄ and scales σ, and the data's Gaussian
reference ``x(z) = μ + F⁻¹(√P̄ · F z)`` (P̄ the data's power per Fourier mode, zero outside the
data's band: :func:`~phigen.scattering.maxent.latent_to_field`), the Gibbs energy on latent fields z is

    U_β(z) = ½|z|² + (β/2) Σ_i r_i(z)²,        r(z) = (Φ(x(z)) − Φ̄)/σ.

As β → ∞ the law concentrates on the microcanonical set r = 0; at finite β each statistic's spread
about Φ̄ is about β^−½ of the data's. Nothing is fitted beyond the microcanonical model and β.
Samples have no power outside the data's band, whatever z does (the amplitude there is exactly 0).

Sampling (:func:`sample_canonical`): chains start at the microcanonical syntheses mapped back to z
(:func:`field_to_latent`; r ≈ 0 there, so the chains start inside the well rather than crossing
into it from the Gaussian reference), adapt the HMC (or MALA) step by dual averaging, then run. The
step size scales as β^−½ and HMC's leapfrog count with it: the cost grows as β^½.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int_at_least
from ..energies.base import Energy
from ..errors import InputError, ParameterError
from ..samplers._rng import standard_normal
from .maxent import latent_to_field

__all__ = ["canonical_energy", "reference_amplitude", "field_to_latent", "sample_canonical", "check_beta",
           "warmup_steps"]

_REL_FLOOR = 1e-6  # as the max-ent model's Gaussian reference: every in-band mode keeps some amplitude


def check_beta(beta) -> float:
    """β > 0 and finite, as a float (the inverse temperature of the canonical twin)."""
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ParameterError(f"beta must be a number > 0; got {beta!r}") from None
    if not (math.isfinite(b) and b > 0):
        raise ParameterError(f"beta must be finite and > 0; got {beta!r}")
    return b


def reference_amplitude(power) -> np.ndarray:
    """√P̄ per mode ``(H, W//2 + 1)`` from the band power (:func:`~phigen.scattering.synthesis.band_power`):
    floored at 10⁻⁶·max P̄ inside the band, exactly 0 outside it."""
    p = np.asarray(power, np.float64)
    top = p.max()
    if not top > 0:
        raise InputError("the data's power is zero everywhere: there is no Gaussian reference to build")
    return np.sqrt(np.where(p > 0, np.maximum(p, _REL_FLOOR * top), 0.0)).astype(np.float32)


def field_to_latent(key, x, mean, amplitude) -> jax.Array:
    """The inverse of :func:`~phigen.scattering.maxent.latent_to_field` on the band: ``z`` (C, H, W)
    with ``latent_to_field(z) = x`` for fields ``x`` whose power lies inside the band; the latent
    modes outside it (which do not touch the field) are drawn N(0, 1) from ``key``."""
    x = jnp.asarray(x, jnp.float32)
    amp = jnp.asarray(amplitude, jnp.float32)
    h, w = x.shape[-2:]
    amp = amp[:, : w // 2 + 1]
    band = amp > 0
    free = jnp.fft.rfft2(standard_normal(key, x.shape, jnp.float32))
    zf = jnp.where(band, jnp.fft.rfft2(x - mean) / jnp.where(band, amp, 1.0), free)
    return jnp.fft.irfft2(zf, s=(h, w))


def canonical_energy(stats_fn: Callable, target, scale, beta, mean, amplitude) -> Energy:
    """``U_β(z) = ½|z|² + (β/2)|r(z)|²`` (module doc) as a batched phigen :class:`Energy` on latent
    fields ``z`` (C, H, W) → (C,). β is traced (one compilation serves every β)."""
    target = jnp.asarray(target, jnp.float32)
    inv = 1.0 / jnp.asarray(scale, jnp.float32)
    amp = jnp.asarray(amplitude, jnp.float32)
    beta = jnp.asarray(beta, jnp.float32)

    def value(z):
        r = (stats_fn(latent_to_field(z, mean, amp)) - target) * inv
        return 0.5 * jnp.sum(z * z, axis=(-2, -1)) + 0.5 * beta * jnp.sum(r * r, axis=-1)

    def value_and_grad(z):
        u, vjp = jax.vjp(value, z)  # the fields are independent: one VJP with unit cotangents gives every ∇U
        return u, vjp(jnp.ones_like(u))[0]

    return Energy(value=value, grad=lambda z: value_and_grad(z)[1], name="scattering-canonical",
                  value_and_grad_fn=value_and_grad)


def warmup_steps(steps: int) -> int:
    """Of ``steps`` sampling iterations, the first two thirds (at least 20) adapt the step size."""
    return max(20, (2 * int(steps)) // 3)


def sample_canonical(key, energy: Energy, z0, *, steps: int, kernel: str = "hmc", beta: float = 100.0,
                     progress: bool | None = False):
    """Run ``steps`` iterations of ``kernel`` ("hmc" or "mala") on ``energy`` from latent fields ``z0``
    (C, H, W): :func:`warmup_steps` of them adapt the step size by dual averaging, the rest sample.
    Returns ``(z, info)``: the final positions and a dict (step size, leapfrog steps, acceptance)."""
    from ..samplers import RunConfig, adapt_step_size, make_kernel, run_chain

    steps = check_int_at_least(steps, "steps", 30)
    if kernel not in ("mala", "hmc"):
        raise ParameterError(f"kernel must be 'mala' or 'hmc'; got {kernel!r}")
    n_warm = warmup_steps(steps)
    k_adapt, k_run = jax.random.split(key)
    # the stiff directions set the stable step, about β^-½ (0.0115 at β = 100 on 64² turbulence)
    eps0 = (0.1 if kernel == "hmc" else 0.003) / math.sqrt(max(beta, 1.0))
    state, eps, info = adapt_step_size(k_adapt, kernel, energy, z0, n_warmup=n_warm, initial_step_size=eps0)
    extra = {"n_leapfrog": info.final_n_leapfrog} if kernel == "hmc" else {}
    kern = make_kernel(kernel, energy, step_size=eps, **extra)
    out = run_chain(k_run, kern.step, state, RunConfig(n_steps=steps - n_warm, chunk_size=5 if kernel == "hmc" else 50,
                                                       progress=bool(progress), stop_on_divergence=False))
    acc = float(np.nanmean(np.asarray(out.info_summary.mean_acceptance)))
    return out.state.position, {"step_size": float(eps), "kernel": kernel, "warmup_steps": n_warm,
                                "n_leapfrog": int(extra.get("n_leapfrog", 1)), "acceptance": acc}
