"""Private input checks shared by all modules (arrays in, clear phigen errors out)."""

from __future__ import annotations

import numpy as np

from .errors import InputError, ParameterError


def as_fields(x, *, name: str = "fields", min_ndim: int = 2, allow_batchless: bool = True,
              check_finite: bool = True, dtype=np.float32):
    """Return ``x`` as a float array of shape ``(N, H, W)`` (a single ``(H, W)`` field gets N=1).

    Works for numpy and JAX arrays; under ``jit`` (tracers) the finiteness check is skipped.
    """
    import jax
    import jax.numpy as jnp

    is_tracer = isinstance(x, jax.core.Tracer)
    arr = x if isinstance(x, (jax.Array,)) else np.asarray(x)
    if arr.ndim < min_ndim:
        raise InputError(f"{name} must have at least {min_ndim} dimensions (…, H, W); got shape {tuple(arr.shape)}")
    if arr.ndim == 2 and allow_batchless:
        arr = arr[None]
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    if check_finite and not is_tracer:
        if isinstance(arr, jax.Array) and any(d.platform != "cpu" for d in arr.devices()):
            ok = bool(jnp.all(jnp.isfinite(arr)))  # on the device: no copy to the host
        else:  # numpy (a CPU jax.Array is viewed without a copy): no XLA compilation per shape
            ok = bool(np.isfinite(np.asarray(arr)).all())
        if not ok:
            raise InputError(f"{name} contains NaN or inf values")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def check_positive(value, name: str, *, strict: bool = True):
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        raise ParameterError(f"{name} must be {'>' if strict else '>='} 0; got {value!r}")
    return value


def check_int_at_least(value, name: str, minimum: int):
    if int(value) != value or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)
