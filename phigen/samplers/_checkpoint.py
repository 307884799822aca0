"""Crash-safe HDF5 checkpoints of an MCMC run (no pickle).

A checkpoint holds everything :func:`phigen.samplers.runner.run_chain` needs to continue a run so
that it produces exactly the samples an uninterrupted run would:

* the sampler state pytree, flattened with ``jax.tree_util`` into datasets ``state/leaf_000 …``;
  the leaf count, shapes, dtypes, the state's type name and ``str(treedef)`` are stored as
  attributes and checked against a *template* state on load (the caller's treedef is used to
  unflatten, so no code is ever deserialised);
* the number of steps done, the trace recorded so far (``trace/obs_000 …`` with their names),
  per-chain acceptance sums and divergence counts;
* the run's fingerprint (JSON: seed key data, thin, burn-in, state layout, initial-state hash …),
  compared field by field on resume.

Writes go to ``path + ".tmp"``, are flushed and fsync'ed, then ``os.replace``'d over ``path``:
a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._atomic import atomic_h5
from ..errors import FileFormatError, FormatVersionError, MissingAttributeError, NotHDF5Error, ParameterError

FORMAT = "phigen-checkpoint"
FORMAT_VERSION = 1

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "read_fingerprint", "read_n_done",
           "fingerprint_mismatches", "state_layout", "FORMAT", "FORMAT_VERSION"]


class Checkpoint(NamedTuple):
    """A loaded checkpoint: ``state`` (same pytree type as the template), ``n_done`` steps,
    ``trace`` {name: (n_recorded, C, ...) numpy}, ``acceptance_sum`` (C,) float64 (summed over
    ``n_done`` steps), ``n_divergent`` (C,) int64, ``fingerprint`` dict."""

    state: Any
    n_done: int
    trace: dict
    acceptance_sum: np.ndarray
    n_divergent: np.ndarray
    fingerprint: dict


def _is_key_array(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaf_to_numpy(x):
    """Host array plus the attributes needed to rebuild it (typed PRNG keys, non-HDF5 dtypes)."""
    attrs = {}
    if _is_key_array(x):
        attrs["prng_impl"] = str(jax.random.key_impl(x))
        x = jax.random.key_data(x)
    arr = np.asarray(x)
    attrs["dtype"] = str(arr.dtype)
    if arr.dtype.kind == "V" or arr.dtype.name == "bfloat16" or arr.dtype.name.startswith("float8"):
        # ml_dtypes types (bfloat16, float8) are not HDF5 types: store their raw bits.
        arr = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
    return arr, attrs


def _leaf_from_dataset(ds):
    arr = ds[()]
    dtype = ds.attrs.get("dtype")
    if dtype is not None and str(arr.dtype) != dtype:
        arr = arr.view(jnp.dtype(dtype))
    impl = ds.attrs.get("prng_impl")
    if impl is not None:
        return jax.random.wrap_key_data(jnp.asarray(arr), impl=impl)
    return arr


def state_layout(state) -> dict:
    """JSON-able description of a state pytree: type name, treedef, leaf shapes and dtypes."""
    leaves, treedef = jax.tree_util.tree_flatten(state)
    shapes, dtypes = [], []
    for leaf in leaves:
        shapes.append([int(s) for s in np.shape(leaf)])
        dtypes.append(str(leaf.dtype) if hasattr(leaf, "dtype") else str(np.asarray(leaf).dtype))
    return {"type": f"{type(state).__module__}.{type(state).__qualname__}", "treedef": str(treedef),
            "n_leaves": len(leaves), "shapes": shapes, "dtypes": dtypes}


def save_checkpoint(path, *, state, n_done: int, trace: dict, acceptance_sum, n_divergent,
                    fingerprint: dict) -> None:
    """Write a checkpoint atomically (``path.tmp`` then ``os.replace``); see the module docstring."""
    leaves, _ = jax.tree_util.tree_flatten(state)
    layout = state_layout(state)
    with atomic_h5(os.fspath(path)) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_done"] = int(n_done)
        f.attrs["fingerprint"] = json.dumps(fingerprint, sort_keys=True)
        f.attrs["state_layout"] = json.dumps(layout, sort_keys=True)
        g = f.create_group("state")
        for i, leaf in enumerate(leaves):
            arr, attrs = _leaf_to_numpy(leaf)
            ds = g.create_dataset(f"leaf_{i:03d}", data=arr)
            ds.attrs.update(attrs)
        t = f.create_group("trace")
        names = list(trace)
        t.attrs["names"] = json.dumps(names)
        for i, name in enumerate(names):
            arr, attrs = _leaf_to_numpy(trace[name])
            ds = t.create_dataset(f"obs_{i:03d}", data=arr)
            ds.attrs.update(attrs)
            ds.attrs["name"] = name
        a = f.create_group("accumulators")
        a.create_dataset("acceptance_sum", data=np.asarray(acceptance_sum, dtype=np.float64))
        a.create_dataset("n_divergent", data=np.asarray(n_divergent, dtype=np.int64))


def _open(path):
    import h5py

    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        if not os.path.exists(path):
            raise FileFormatError("checkpoint file does not exist", path=path) from None
        raise NotHDF5Error(f"not a readable HDF5 checkpoint ({e})", path=path) from None
    fmt = f.attrs.get("format")
    if fmt != FORMAT:
        f.close()
        raise FileFormatError(f"not a phigen checkpoint (format attribute {fmt!r})", path=path)
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        f.close()
        raise FormatVersionError(f"checkpoint format version {version} is newer than this phigen "
                                 f"reads ({FORMAT_VERSION})", path=path)
    return f


def read_n_done(path) -> int:
    """The number of steps a checkpoint holds."""
    with _open(path) as f:
        return int(f.attrs["n_done"])


def read_fingerprint(path) -> dict:
    """The fingerprint dict stored in a checkpoint."""
    with _open(path) as f:
        return json.loads(f.attrs["fingerprint"])


# kernel names recorded before kernels' steps became module-level functions (one name then covered
# every kind make_kernel built): a checkpoint written with one still resumes with its successors
_LEGACY_KERNEL_NAMES = {
    "make_kernel.<locals>.step": {"_ula_kernel_step", "_mala_kernel_step", "_hmc_kernel_step"},
    "make_hmc_cluster_kernel.<locals>.step": {"_cluster_kernel_step"},
}


def fingerprint_mismatches(stored: dict, current: dict) -> list[str]:
    """Human-readable list of the fields where two fingerprints differ (empty when they match)."""
    out = []
    for k in sorted(set(stored) | set(current)):
        a, b = stored.get(k, "<absent>"), current.get(k, "<absent>")
        if k == "kernel" and b in _LEGACY_KERNEL_NAMES.get(a, ()):
            continue
        if a != b:
            sa, sb = json.dumps(a), json.dumps(b)
            if len(sa) > 80:
                sa = sa[:77] + "..."
            if len(sb) > 80:
                sb = sb[:77] + "..."
            out.append(f"{k}: {sa} in the checkpoint vs {sb} now")
    return out


def load_checkpoint(path, template_state) -> Checkpoint:
    """Read a checkpoint; its state is rebuilt with ``template_state``'s treedef after checking
    that the stored leaf count, shapes, dtypes and type name match the template."""
    path = os.fspath(path)
    with _open(path) as f:
        try:
            stored = json.loads(f.attrs["state_layout"])
            fingerprint = json.loads(f.attrs["fingerprint"])
            n_done = int(f.attrs["n_done"])
            g = f["state"]
            leaves = [_leaf_from_dataset(g[f"leaf_{i:03d}"]) for i in range(stored["n_leaves"])]
            t = f["trace"]
            names = json.loads(t.attrs["names"])
            trace = {name: _leaf_from_dataset(t[f"obs_{i:03d}"]) for i, name in enumerate(names)}
            acc = np.asarray(f["accumulators/acceptance_sum"][()], dtype=np.float64)
            ndiv = np.asarray(f["accumulators/n_divergent"][()], dtype=np.int64)
        except (KeyError, ValueError) as e:
            raise MissingAttributeError(f"incomplete or malformed checkpoint ({e})", path=path) from None
    layout = state_layout(template_state)
    problems = [f"{k}: {stored.get(k)!r} in the checkpoint vs {layout[k]!r} for the given state"
                for k in ("type", "treedef", "n_leaves", "shapes", "dtypes") if stored.get(k) != layout[k]]
    if problems:
        raise ParameterError("checkpoint state does not match the sampler state: " + "; ".join(problems),
                             path=path)
    _, treedef = jax.tree_util.tree_flatten(template_state)
    state = jax.tree_util.tree_unflatten(treedef, [leaf if _is_key_array(leaf) else jnp.asarray(leaf)
                                                   for leaf in leaves])
    return Checkpoint(state, n_done, trace, acc, ndiv, fingerprint)
