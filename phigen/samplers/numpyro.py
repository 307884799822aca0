"""Sample a phigen :class:`~phigen.energies.Energy` with numpyro's NUTS or HMC (with warm-up).

numpyro adapts the step size and a diagonal mass matrix during warm-up and builds NUTS trajectories;
phigen only hands it a potential of ONE field, ``potential_fn(x) = U(x[None])[0]``. Several chains
run side by side with ``chain_method="vectorized"`` (one jitted program for all chains).
phigen's own kernels (:mod:`phigen.samplers`) stay the fast path for large lattices; this route is
the well-tested reference and gives numpyro's diagnostics (ESS, split R-hat) for free.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int_at_least
from ..errors import InputError, ParameterError

__all__ = ["numpyro_sample"]

_EXTRA_FIELDS = ("accept_prob", "diverging", "num_steps")


def _potential_of_one(energy):
    value = getattr(energy, "value", None)
    if value is None:
        if not callable(energy):
            raise ParameterError(f"energy must be a phigen Energy (with .value) or a batched function "
                                 f"x (C, ...) -> (C,); got {type(energy).__name__}")
        value = energy

    def potential_fn(x):
        return value(x[None])[0]

    return potential_fn


def numpyro_sample(key, energy, init_position, *, num_warmup: int, num_samples: int, kernel: str = "nuts",
                   num_chains: int = 1, target_accept: float = 0.8, progress: bool = False,
                   **kernel_kwargs):
    """Draw ``num_samples`` states per chain from ``p(x) ∝ exp(−U(x))`` with numpyro NUTS/HMC.

    key : a JAX key. energy : a phigen ``Energy`` (``value(x (C, ...)) -> (C,)``) or such a function.
    init_position : ``(num_chains, *event_shape)`` starting points (numpy or JAX), float32.
    kernel : ``"nuts"`` or ``"hmc"``; ``kernel_kwargs`` go to numpyro's ``NUTS``/``HMC``
        (e.g. ``max_tree_depth``, ``dense_mass``, ``step_size``, ``trajectory_length``).
    target_accept : the dual-averaging target acceptance probability during warm-up.

    Returns ``(samples, extra)``: ``samples`` of shape ``(num_chains, num_samples, *event_shape)``
    (JAX array) and ``extra`` a dict with ``summary`` (numpyro.diagnostics.summary: mean, std,
    median, HPDI, ``n_eff``, ``r_hat`` per site, each of shape ``event_shape``), ``ess`` and
    ``r_hat`` (the same two arrays), ``mean_accept_prob`` (num_chains,), ``num_divergent``
    (num_chains,), ``mean_num_steps`` (num_chains,) leapfrog steps per sample and ``step_size``
    (num_chains,) after adaptation.
    """
    from numpyro.diagnostics import summary
    from numpyro.infer import HMC, MCMC, NUTS

    num_warmup = check_int_at_least(num_warmup, "num_warmup", 0)
    num_samples = check_int_at_least(num_samples, "num_samples", 1)
    num_chains = check_int_at_least(num_chains, "num_chains", 1)
    if not 0.0 < float(target_accept) < 1.0:
        raise ParameterError(f"target_accept must be in (0, 1); got {target_accept!r}")
    kinds = {"nuts": NUTS, "hmc": HMC}
    if not isinstance(kernel, str) or kernel.lower() not in kinds:
        raise ParameterError(f"kernel must be 'nuts' or 'hmc'; got {kernel!r}")

    x0 = init_position if isinstance(init_position, jax.Array) else np.asarray(init_position)
    if x0.ndim < 1 or x0.shape[0] != num_chains:
        raise InputError(f"init_position must have shape (num_chains={num_chains}, *event_shape); got "
                         f"{tuple(x0.shape)} (add a leading axis of size 1 for a single chain)")
    if not np.issubdtype(x0.dtype, np.floating) and not np.issubdtype(x0.dtype, np.integer):
        raise InputError(f"init_position must be real numbers; got dtype {x0.dtype}")
    x0 = jnp.asarray(x0, jnp.float32)
    if not bool(jnp.all(jnp.isfinite(x0))):
        raise InputError("init_position contains NaN or inf values")

    potential_fn = _potential_of_one(energy)
    u0 = jax.eval_shape(potential_fn, jax.ShapeDtypeStruct(x0.shape[1:], x0.dtype))
    if u0.shape != ():
        raise ParameterError(f"energy.value must return one number per chain (C,); for one field it "
                             f"returned shape {u0.shape}")

    if jnp.issubdtype(getattr(key, "dtype", np.uint32), jax.dtypes.prng_key):
        key = jax.random.key_data(key)  # numpyro expects raw uint32 keys

    sampler = kinds[kernel.lower()](potential_fn=potential_fn, target_accept_prob=float(target_accept),
                                    **kernel_kwargs)
    mcmc = MCMC(sampler, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="vectorized" if num_chains > 1 else "sequential", progress_bar=progress)
    mcmc.run(key, init_params=x0 if num_chains > 1 else x0[0], extra_fields=_EXTRA_FIELDS)

    samples = mcmc.get_samples(group_by_chain=True)
    fields = mcmc.get_extra_fields(group_by_chain=True)
    stats = summary(np.asarray(samples), group_by_chain=True)["Param:0"]
    step_size = mcmc.last_state.adapt_state.step_size
    extra = {
        "summary": dict(stats),
        "ess": stats["n_eff"],
        "r_hat": stats["r_hat"],
        "mean_accept_prob": np.asarray(fields["accept_prob"]).mean(axis=1),
        "num_divergent": np.asarray(fields["diverging"]).sum(axis=1),
        "mean_num_steps": np.asarray(fields["num_steps"]).mean(axis=1),
        "step_size": np.broadcast_to(np.asarray(step_size), (num_chains,)).copy(),
    }
    return samples, extra
