"""Generic kernels: ``make_kernel(kind, energy, **params)`` closes a sampler over its parameters.

A :class:`Kernel` is ``(init, step)`` with ``init(position) -> State`` and
``step(key, state) -> (State, Info)``, the shape every driver (runner, adaptation, benchmarks)
expects. ``step`` is a :class:`jax.tree_util.Partial` of a module-level function over the energy
and the sampler's parameters: a pytree whose structure depends on the kernel kind alone, so the
runner's compiled chunk is reused for every energy parameter and step size (docs/architecture.md).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
from jax.tree_util import Partial

from ..energies.base import Energy
from ..errors import ParameterError
from .hmc import hmc_init, hmc_step
from .langevin import ula_init, ula_step
from .mala import mala_init, mala_step

__all__ = ["Kernel", "make_kernel", "KERNEL_KINDS"]

KERNEL_KINDS = ("ula", "mala", "hmc")

_DEFAULTS = {"ula": {}, "mala": {}, "hmc": {"n_leapfrog": 10, "jitter": 0.2}}
_REQUIRED = ("step_size",)


class Kernel(NamedTuple):
    init: Callable   # position (C, *event) -> State
    step: Callable   # (key, State) -> (State, Info)


def _check_step_size(step_size):
    import numpy as np

    if isinstance(step_size, jax.core.Tracer):  # traced: the caller owns the check
        return
    arr = np.asarray(step_size, dtype=float)
    if arr.ndim > 1 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ParameterError(f"step_size must be a positive finite scalar or per-chain (C,) array; got {step_size!r}")


def make_kernel(kind: str, energy: Energy, **params) -> Kernel:
    """Close sampler ``kind`` ∈ {"ula", "mala", "hmc"} over ``energy`` and its parameters.

    ``params``: ``step_size`` (required; scalar or ``(C,)``) and, for HMC, ``n_leapfrog``
    (default 10) and ``jitter`` (default 0.2). Unknown parameters raise ParameterError.
    """
    if kind not in KERNEL_KINDS:
        raise ParameterError(f"unknown kernel kind {kind!r}; choose one of {KERNEL_KINDS}")
    if not isinstance(energy, Energy):
        raise ParameterError(f"energy must be a phigen Energy; got {type(energy).__name__} "
                             "(wrap a function of one field with phigen.energies.energy_from_fn)")
    allowed = set(_REQUIRED) | set(_DEFAULTS[kind])
    unknown = set(params) - allowed
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)} for {kind!r}; allowed: {sorted(allowed)}")
    if "step_size" not in params:
        raise ParameterError(f"make_kernel({kind!r}, ...) needs step_size")
    _check_step_size(params["step_size"])
    p = {**_DEFAULTS[kind], **params}

    if kind == "ula":
        return Kernel(Partial(_ula_init, energy), Partial(_ula_kernel_step, energy, p["step_size"]))
    if kind == "mala":
        return Kernel(Partial(_mala_init, energy), Partial(_mala_kernel_step, energy, p["step_size"]))

    n = p["n_leapfrog"]
    try:
        n_value = float(n)
    except (TypeError, jax.errors.ConcretizationTypeError):  # traced: the caller owns the check
        n_value = None
    if n_value is not None and (n_value != int(n_value) or n_value < 1):
        raise ParameterError(f"n_leapfrog must be an integer >= 1; got {n!r}")
    if not 0.0 <= float(p["jitter"]) < 1.0:
        raise ParameterError(f"jitter must be in [0, 1); got {p['jitter']!r}")

    return Kernel(Partial(_hmc_init, energy),
                  Partial(_hmc_kernel_step, energy, p["step_size"], p["n_leapfrog"], p["jitter"]))


# module-level step functions: a kernel's step is a Partial of one of these (its pytree structure
# names the kind; energy and parameters are its leaves)
def _ula_init(energy, position):
    return ula_init(position, energy)


def _mala_init(energy, position):
    return mala_init(position, energy)


def _hmc_init(energy, position):
    return hmc_init(position, energy)


def _ula_kernel_step(energy, step_size, key, state):
    return ula_step(key, state, energy, step_size=step_size)


def _mala_kernel_step(energy, step_size, key, state):
    return mala_step(key, state, energy, step_size=step_size)


def _hmc_kernel_step(energy, step_size, n_leapfrog, jitter, key, state):
    return hmc_step(key, state, energy, step_size=step_size, n_leapfrog=n_leapfrog, jitter=jitter)
