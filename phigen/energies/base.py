"""The :class:`Energy` protocol: a batched Gibbs energy ``U(x)`` and its gradient.

A Gibbs density is ``p(x) ∝ exp(−U(x))``. Samplers only ever see an :class:`Energy`: a pair of
batched functions ``value(x) -> (C,)`` and ``grad(x) -> x.shape`` acting on a batch
``x`` of shape ``(C, *event_shape)`` (C chains or fields), and two optional fast paths an energy
may own (:meth:`Energy.kick`, :meth:`Energy.fused_leapfrog`).

An Energy is a JAX pytree. Its functions are static (compared by identity); its parameters — the
leaves a subclass declares, e.g. κ and λ of :class:`~phigen.energies.Phi4` — are traced, so a
sampler compiled for one parameter point runs every other one of the same shape without
recompiling (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["Energy", "energy_from_fn"]


@dataclass(frozen=True)
class Energy:
    """A batched Gibbs energy ``U`` with its gradient.

    Fields
    ------
    value : ``x (C, *event) -> U(x) (C,)``
    grad  : ``x (C, *event) -> ∇U(x) (C, *event)``
    name  : a short label for reports
    value_and_grad_fn : optional fused ``x -> (U, ∇U)``; used by :meth:`value_and_grad` when given
        (saves a second pass over the data when both are needed).

    Instances are immutable and hashable, and JAX pytrees: pass them to jitted functions as
    ordinary arguments. A subclass with numeric parameters lists them in ``_parameters`` (pytree
    leaves, traced under ``jit``) and rebuilds its functions from them in ``_bind``; every other
    field is static (functions rebuilt from the parameters are listed in ``_derived``).
    Subclasses are registered as pytrees automatically.
    """

    value: Callable
    grad: Callable
    name: str = "custom"
    value_and_grad_fn: Callable | None = field(default=None, repr=False)

    def value_and_grad(self, x):
        """``(U(x) (C,), ∇U(x) (C, *event))`` for a batch ``x``."""
        if self.value_and_grad_fn is not None:
            return self.value_and_grad_fn(x)
        return self.value(x), self.grad(x)

    def __call__(self, x):
        return self.value(x)

    def kick(self, x, p, step_size):
        """Momentum update ``p − ε ∇U(x)`` (ε scalar or ``(C, 1, …)``); an energy may fuse it."""
        return p - step_size * self.grad(x)

    def fused_leapfrog(self, x):
        """A whole-trajectory fast path for positions shaped like ``x``, or ``None`` (the default).

        When given, ``f(x, p, ε, n) -> (x, p, U(x), ∇U(x), p_initial)`` must be the same map as n
        leapfrog steps (half kick, n × drift-kick, last kick halved) from the momenta ``p``.
        """
        return None

    # --- pytree protocol: parameters are leaves, everything else (the functions) is static -------
    _parameters = ()  # numeric fields: pytree leaves (traced under jit)
    _derived = ()     # fields _bind rebuilds from the parameters: neither leaves nor static

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, lambda e: e._tree_flatten(),
                                           lambda aux, leaves: cls._tree_unflatten(aux, leaves))

    def _static_fields(self):
        return tuple(f.name for f in dataclasses.fields(self)
                     if f.name not in self._parameters and f.name not in self._derived)

    def _tree_flatten(self):
        names = self._static_fields()
        return (tuple(getattr(self, n) for n in self._parameters),
                tuple(zip(names, (getattr(self, n) for n in names))))

    @classmethod
    def _tree_unflatten(cls, aux, leaves):
        obj = object.__new__(cls)  # no __post_init__: the leaves may be tracers, already validated
        for name, value in aux:
            object.__setattr__(obj, name, value)
        for name, value in zip(cls._parameters, leaves):
            object.__setattr__(obj, name, value)
        obj._bind()
        return obj

    def _bind(self):
        """Rebuild the functions from the parameters (subclasses with ``_parameters``)."""


jax.tree_util.register_pytree_node(Energy, lambda e: e._tree_flatten(),
                                   lambda aux, leaves: Energy._tree_unflatten(aux, leaves))


def energy_from_fn(fn: Callable, *, name: str = "custom") -> Energy:
    """Wrap a user energy of ONE field, ``fn(x_single) -> scalar``, as a batched :class:`Energy`.

    ``value = vmap(fn)`` and ``grad = vmap(grad(fn))`` (autodiff) over the leading chain axis:
    ``x (C, *event) -> (C,)`` and ``-> (C, *event)``. The returned object is hashable (by the
    identity of ``fn``), so keep one instance around rather than re-wrapping in a loop.
    """
    if not callable(fn):
        from ..errors import ParameterError

        raise ParameterError(f"energy_from_fn needs a callable; got {type(fn).__name__}")

    def _scalar(x):
        return jnp.asarray(fn(x)).reshape(())

    value = jax.vmap(_scalar)
    grad = jax.vmap(jax.grad(_scalar))
    value_and_grad = jax.vmap(jax.value_and_grad(_scalar))
    return Energy(value=value, grad=grad, name=name, value_and_grad_fn=value_and_grad)
