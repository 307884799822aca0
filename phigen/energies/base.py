"""The :class:`Energy` protocol: a batched Gibbs energy ``U(x)`` and its gradient.

A Gibbs density is ``p(x) ∝ exp(−U(x))``. Samplers only ever see an :class:`Energy`: a pair of
batched functions ``value(x) -> (C,)`` and ``grad(x) -> x.shape`` acting on a batch
``x`` of shape ``(C, *event_shape)`` (C chains or fields).
"""

from __future__ import annotations

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

    Instances are immutable and hashable, so an Energy can be a ``jax.jit`` static argument.
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
