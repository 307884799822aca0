"""Run any batched MCMC kernel for many steps: jitted ``lax.scan`` chunks under a Python loop.

The outer Python loop calls ONE jitted chunk function (``chunk_size`` steps in a ``lax.scan``) again
and again; between chunks it updates a tqdm progress bar, checks for divergences, moves the recorded
trace to host memory and writes checkpoints. The last, shorter chunk reuses the same compiled
function: steps past the end are masked out with ``lax.cond`` (no re-compilation, no wasted steps).

Reproducibility contract: the key of step ``t`` (0-based, counting burn-in) is
``jax.random.fold_in(key, t)``. Samples therefore depend only on ``(key, initial state, t)`` — not
on the chunk size, on where a run was interrupted and resumed, or on how chains are spread over
devices (see :mod:`phigen.samplers.sharding`). A resumed run reproduces an uninterrupted one bit for
bit.

A kernel is any pair ``step(key, state) -> (state, info)`` acting on all chains at once: ``state`` is
a pytree (usually a NamedTuple with ``.position`` of shape ``(C, ...)``), ``info`` a NamedTuple (or
dict) of per-chain arrays; the runner reads ``info.acceptance_rate`` (C,) and ``info.divergent``
(C,) bool when present (aliases: ``acceptance_prob``/``accept_prob``, ``is_divergent``/``diverging``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import Partial

from .._chunks import run_chunks
from .._validation import check_int_at_least
from ..errors import DivergenceError, ParameterError, PhigenError
from ._checkpoint import (fingerprint_mismatches, load_checkpoint, read_fingerprint, read_n_done, save_checkpoint,
                          state_layout)
from . import _global
from .sharding import chain_mesh, n_chain_devices, process_chains, shard_chains, spans_processes

__all__ = ["RunConfig", "RunResult", "InfoSummary", "run_chain", "process_checkpoint_path"]

_ACCEPT_NAMES = ("acceptance_rate", "acceptance_prob", "accept_prob", "acceptance")
_DIVERGENT_NAMES = ("divergent", "is_divergent", "diverging")


@dataclass(frozen=True)
class RunConfig:
    """How to run a chain.

    n_steps : total number of kernel steps, burn-in included.
    thin : record the observables every ``thin`` steps after burn-in: after steps
        ``t = burn_in + thin - 1, burn_in + 2·thin - 1, …`` (0-based), i.e.
        ``(n_steps − burn_in) // thin`` records.
    chunk_size : steps per jitted ``lax.scan`` chunk (progress, divergence checks and checkpoints
        happen between chunks). Does not change the samples.
    burn_in : steps run before recording starts.
    progress : show a tqdm bar; ``True`` means "when attached to a terminal" (tqdm's
        ``disable=None``), ``False`` never.
    checkpoint_path : HDF5 file to save the run to (and resume from); ``None`` for no checkpoints.
    checkpoint_every_chunks : save every this many chunks (and always after the last one).
    stop_on_divergence : raise :class:`~phigen.errors.DivergenceError` as soon as a chunk contains a
        divergent transition or a non-finite state; otherwise only count them.
    """

    n_steps: int
    thin: int = 1
    chunk_size: int = 100
    burn_in: int = 0
    progress: bool = True
    checkpoint_path: str | os.PathLike | None = None
    checkpoint_every_chunks: int = 1
    stop_on_divergence: bool = True

    def __post_init__(self):
        object.__setattr__(self, "n_steps", check_int_at_least(self.n_steps, "n_steps", 0))
        object.__setattr__(self, "thin", check_int_at_least(self.thin, "thin", 1))
        object.__setattr__(self, "chunk_size", check_int_at_least(self.chunk_size, "chunk_size", 1))
        object.__setattr__(self, "burn_in", check_int_at_least(self.burn_in, "burn_in", 0))
        object.__setattr__(self, "checkpoint_every_chunks",
                           check_int_at_least(self.checkpoint_every_chunks, "checkpoint_every_chunks", 1))

    @property
    def n_recorded(self) -> int:
        """Number of recorded steps, ``max(0, n_steps − burn_in) // thin``."""
        return max(0, self.n_steps - self.burn_in) // self.thin


class InfoSummary(NamedTuple):
    """Per-chain summary over all steps run so far (burn-in included).

    mean_acceptance : (C,) float64 mean of the kernel's acceptance; NaN if the kernel reports none.
    n_divergent : (C,) int64 number of steps with a divergent transition or a non-finite state.
    n_steps : number of steps the means are taken over.
    """

    mean_acceptance: np.ndarray
    n_divergent: np.ndarray
    n_steps: int


class RunResult(NamedTuple):
    """Output of :func:`run_chain`.

    state : final sampler state (device arrays, sharded like the run).
    trace : {name: numpy array (n_recorded, C, ...)} of the observables, in host memory
        (empty dict when no ``observables`` were given).
    info_summary : :class:`InfoSummary`.
    n_done : number of steps done (``config.n_steps`` on success).
    """

    state: Any
    trace: dict
    info_summary: InfoSummary
    n_done: int


# --- kernel plumbing -----------------------------------------------------------------------------

def _info_field(info, names):
    for name in names:
        if isinstance(info, dict) and name in info:
            return info[name]
        if hasattr(info, name):
            return getattr(info, name)
    return None


def _n_chains(state) -> int:
    pos = getattr(state, "position", None)
    leaves = [pos] if pos is not None else jax.tree_util.tree_leaves(state)
    for leaf in leaves:
        if np.ndim(leaf) >= 1:
            return int(np.shape(leaf)[0])
    raise ParameterError("the sampler state has no array with a leading chain axis (C, ...)")


def _per_chain_finite(state, n_chains):
    ok = jnp.ones((n_chains,), bool)
    for leaf in jax.tree_util.tree_leaves(state):
        if (hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact) and leaf.ndim >= 1
                and leaf.shape[0] == n_chains):
            ok = ok & jnp.all(jnp.isfinite(leaf.reshape(n_chains, -1)), axis=1)
    return ok


def _quick_per_chain_finite(state, n_chains):
    """Per-step screen: the energy (C,) when the state carries one — NaN/inf anywhere in a field
    makes its energy non-finite, and reading C numbers is free next to re-reading every leaf
    (measured: checking all leaves each step slows a 256² MALA step by ~15–70 %). Without an
    energy, the position; the full check of all leaves runs once per chunk."""
    u = getattr(state, "energy", None)
    if (u is not None and hasattr(u, "dtype") and jnp.issubdtype(u.dtype, jnp.inexact)
            and u.shape == (n_chains,)):
        return jnp.isfinite(u)
    pos = getattr(state, "position", None)
    if pos is not None and hasattr(pos, "dtype") and jnp.issubdtype(pos.dtype, jnp.inexact):
        return jnp.all(jnp.isfinite(pos.reshape(n_chains, -1)), axis=1)
    return _per_chain_finite(state, n_chains)


def _resolve_kernel(kernel_step, state):
    """Accept a bare ``step`` function or a kernel object with ``.step`` (and ``.init``)."""
    if hasattr(kernel_step, "step") and callable(kernel_step.step):
        step = kernel_step.step
        if isinstance(state, (np.ndarray, jax.Array)) and hasattr(kernel_step, "init"):
            state = kernel_step.init(state)  # a bare position: build the state
        return step, state
    if not callable(kernel_step):
        raise ParameterError(f"kernel_step must be a function step(key, state) -> (state, info) or a "
                             f"kernel with .step; got {type(kernel_step).__name__}")
    return kernel_step, state


def _check_key(key):
    if isinstance(key, (int, np.integer)):
        raise ParameterError("pass a JAX random key (jax.random.key(seed)), not an integer seed")
    key = jnp.asarray(key) if not hasattr(key, "dtype") else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ParameterError(f"run_chain needs ONE key; got a key array of shape {key.shape}")
    elif key.dtype != jnp.uint32 or key.ndim != 1:
        raise ParameterError(f"not a JAX random key: dtype {key.dtype}, shape {key.shape}")
    return key


def _key_data(key):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key)), np.asarray(jax.random.key_data(key))
    return "raw", np.asarray(key)


def _as_pytree_step(step_fn):
    """The step as a pytree argument of the jitted chunk: a :class:`~jax.tree_util.Partial` (the
    kernels' steps already are: their energy and parameters are leaves, traced, so the chunk
    compiles once per kernel kind and shape); any other callable becomes a leafless Partial,
    compiled once per function object."""
    return step_fn if isinstance(step_fn, Partial) else Partial(step_fn)


def _step_name(step_fn) -> str:
    fn = step_fn.func if isinstance(step_fn, Partial) else step_fn
    return getattr(fn, "__qualname__", type(fn).__qualname__)


@functools.lru_cache(maxsize=32)
def _chunk_function(observables, chunk_size: int, thin: int, burn_in: int, has_acc: bool):
    """The jitted chunk ``(step, key, state, t0, n_valid) -> (state, records, n_rec, acc, n_bad,
    first_bad, finite)`` (all but ``n_rec`` per chain, ``(C,)``: no reduction over chains, so chains
    split over devices or processes never communicate inside a chunk); built once per (observables, chunk geometry), compiled by jit once
    per step structure (:func:`_as_pytree_step`) and state shape."""
    n_buf = -(-chunk_size // thin)  # at most this many record steps in any chunk_size window

    def chunk(step_fn, key, state, t0, n_valid):
        n_chains = _n_chains(state)
        obs_struct = jax.eval_shape(observables, state) if observables is not None else {}
        records0 = jax.tree_util.tree_map(lambda s: jnp.zeros((n_buf,) + s.shape, s.dtype), obs_struct)

        def advance(state, t):
            new, info = step_fn(jax.random.fold_in(key, t), state)
            acc = _info_field(info, _ACCEPT_NAMES) if has_acc else None
            acc = jnp.zeros((n_chains,), jnp.float32) if acc is None else jnp.asarray(acc, jnp.float32)
            div = _info_field(info, _DIVERGENT_NAMES)
            div = jnp.zeros((n_chains,), bool) if div is None else jnp.asarray(div, bool)
            bad = div | ~_quick_per_chain_finite(new, n_chains)
            return new, jnp.broadcast_to(acc, (n_chains,)), jnp.broadcast_to(bad, (n_chains,))

        def hold(state, t):
            return state, jnp.zeros((n_chains,), jnp.float32), jnp.zeros((n_chains,), bool)

        def body(carry, i):
            state, records, n_rec, acc_sum, n_bad, first_bad = carry
            t = t0 + i
            active = i < n_valid
            state, acc, bad = lax.cond(active, advance, hold, state, t)
            if observables is not None:
                is_record = active & (t >= burn_in) & ((t - burn_in + 1) % thin == 0)

                def write(records):
                    obs = observables(state)
                    return jax.tree_util.tree_map(
                        lambda buf, o: lax.dynamic_update_index_in_dim(buf, o.astype(buf.dtype), n_rec, 0),
                        records, obs)

                records = lax.cond(is_record, write, lambda r: r, records)
                n_rec = n_rec + is_record.astype(jnp.int32)
            first_bad = jnp.where((first_bad < 0) & bad, t, first_bad)
            return (state, records, n_rec, acc_sum + acc, n_bad + bad.astype(jnp.int32), first_bad), None

        init = (state, records0, jnp.int32(0), jnp.zeros((n_chains,), jnp.float32),
                jnp.zeros((n_chains,), jnp.int32), jnp.full((n_chains,), -1, jnp.int32))
        (state, records, n_rec, acc_sum, n_bad, first_bad), _ = lax.scan(
            body, init, jnp.arange(chunk_size, dtype=jnp.int32))
        return state, records, n_rec, acc_sum, n_bad, first_bad, _per_chain_finite(state, n_chains)

    return jax.jit(chunk)


def _canonical_state(step_fn, key, state):
    """Numpy/weak-typed leaves → the exact dtypes the kernel returns, so the scan carry is stable."""
    state = jax.tree_util.tree_map(lambda x: x if isinstance(x, jax.Array) else jnp.asarray(x), state)
    out_state, out_info = jax.eval_shape(step_fn, key, state)
    try:
        state = jax.tree_util.tree_map(
            lambda x, s: x if (x.dtype == s.dtype and not getattr(x, "weak_type", False))
            else lax.convert_element_type(x, s.dtype) if x.shape == s.shape else x, state, out_state)
    except ValueError as e:
        raise ParameterError(f"the kernel's step returns a state of a different structure than it "
                             f"was given ({e})") from None
    return state, out_info


def _hash_state(state) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(state):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(str((arr.shape, arr.dtype.str)).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _fingerprint(key, step_fn, state, obs_struct, config, step_size) -> dict:
    impl, data = _key_data(key)
    fp = {
        "key_impl": impl,
        "key_data": data.astype(np.int64).ravel().tolist(),
        "thin": config.thin,
        "burn_in": config.burn_in,
        "state": state_layout(state),
        "initial_state_sha256": _hash_state(state),
        "observables": {k: [list(v.shape), str(v.dtype)] for k, v in sorted(obs_struct.items())},
        "kernel": _step_name(step_fn),
    }
    if step_size is not None:
        fp["step_size"] = np.asarray(step_size, dtype=np.float64).tolist()
    return fp


def _format_step_size(step_size) -> str:
    arr = np.asarray(step_size, dtype=np.float64)
    if arr.size == 1:
        return f"{float(arr.ravel()[0]):.4g}"
    return f"{arr.min():.4g}…{arr.max():.4g}"


def _find_step_size(kernel_step, state):
    for obj in (kernel_step, state):
        s = getattr(obj, "step_size", None)
        if s is not None:
            return s
    return None


def _global_mesh_of(state):
    """The mesh of a state already split over several processes (chains continued from a global
    run stay global), else None."""
    for leaf in jax.tree_util.tree_leaves(state):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, jax.sharding.NamedSharding) and spans_processes(sharding.mesh):
            return sharding.mesh
    return None


def _resolve_mesh(shard, mesh, n_chains, state=None):
    if shard is False:
        return None
    if mesh is None:
        mesh = _global_mesh_of(state)
    if mesh is None:
        if shard is None and jax.local_device_count() == 1:  # a process of a group runs its own chains
            return None
        mesh = chain_mesh()
    n_dev = n_chain_devices(mesh)
    if n_chains % n_dev:
        if shard is None:  # sharding was only the default: run unsharded rather than fail
            warnings.warn(f"{n_chains} chains cannot be split over {n_dev} devices; running them on one "
                          f"device (use a multiple of {n_dev} chains to use all devices)", stacklevel=3)
            return None
        shard_chains(jnp.zeros((n_chains,)), mesh)  # raises the explanatory ParameterError
    return mesh


# --- the runner ----------------------------------------------------------------------------------

def run_chain(key, kernel_step, state, config: RunConfig, *, observables: Callable | None = None,
              desc: str | None = None, shard: bool | None = None, mesh=None, resume: bool = True,
              step_size=None) -> RunResult:
    """Run ``config.n_steps`` steps of a batched kernel on all chains; record observables.

    key : a JAX key; step ``t`` uses ``fold_in(key, t)``.
    kernel_step : ``step(key, state) -> (state, info)`` (or a kernel object with ``.step``; then
        ``state`` may also be a bare position ``(C, ...)``, turned into a state by ``.init``).
    state : initial sampler state, a pytree whose leaves have a leading chain axis ``C``.
    observables : ``observables(state) -> {name: array (C, ...)}`` recorded every ``config.thin``
        steps after burn-in into ``trace[name]`` of shape ``(n_recorded, C, ...)``. Default ``None``:
        record nothing; the last state is ``result.state``.
    desc : progress-bar label.
    shard : split the chains over all visible devices (:func:`~phigen.samplers.sharding.shard_chains`);
        default: when more than one device is visible (falls back to one device, with a warning, if
        ``C`` is not divisible by the device count). ``mesh`` overrides the devices used.
    mesh : ``global_chain_mesh()`` (every process of a ``jax.distributed`` group runs this same call)
        splits the chains over all processes' devices (docs/scale_out.md); a state already split that
        way keeps its mesh. Then ``state`` is global, ``trace`` and ``info_summary`` hold every chain
        on every process, and each process checkpoints its own chains to
        :func:`process_checkpoint_path` ``(config.checkpoint_path, index, count)`` (and its previous
        save, ``….prev``); a resumed run restarts all processes at the latest step they all hold.
    resume : with ``config.checkpoint_path`` set and the file present, continue from it (its
        fingerprint — seed, thin, burn-in, state layout, initial state, observables, kernel name —
        must match, else :class:`~phigen.errors.ParameterError`); ``False`` starts over and
        overwrites it.
    step_size : only for messages and the fingerprint (default: ``kernel_step.step_size`` or
        ``state.step_size`` when present).

    Raises :class:`~phigen.errors.DivergenceError` naming the first bad step (and the step size)
    if a chunk contains a divergent transition or non-finite state and ``config.stop_on_divergence``;
    nothing from that chunk is saved, so a checkpoint never holds a diverged state.
    """
    if not isinstance(config, RunConfig):
        raise ParameterError(f"config must be a RunConfig; got {type(config).__name__}")
    key = _check_key(key)
    step_fn, state = _resolve_kernel(kernel_step, state)
    if step_size is None:
        step_size = _find_step_size(kernel_step, state)
    if observables is not None and not callable(observables):
        raise ParameterError("observables must be a function state -> {name: array}")
    state, info_struct = _canonical_state(step_fn, key, state)
    n_chains = _n_chains(state)
    has_acc = _info_field(info_struct, _ACCEPT_NAMES) is not None

    obs_struct = {}
    if observables is not None:
        obs_struct = jax.eval_shape(observables, state)
        if not isinstance(obs_struct, dict) or not all(isinstance(k, str) for k in obs_struct):
            raise ParameterError("observables(state) must return a dict {name: array (C, ...)}")
        obs_struct = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in obs_struct.items()}

    mesh = _resolve_mesh(shard, mesh, n_chains, state)
    multi = spans_processes(mesh)  # chains split over the processes of a jax.distributed group

    def place(s):
        return s if mesh is None else shard_chains(s, mesh)

    path = None if config.checkpoint_path is None else os.fspath(config.checkpoint_path)
    if multi:
        state = place(state)
        lo, hi = process_chains(n_chains, mesh)
        if path is not None:
            path = process_checkpoint_path(path, jax.process_index(), jax.process_count())
        local_state = _global.local_tree(state)
        fingerprint = None
        if path:
            fingerprint = _fingerprint(key, step_fn, local_state, obs_struct, config, step_size)
            fingerprint.update(process=[jax.process_index(), jax.process_count()], chains=[lo, hi],
                               n_chains=n_chains)
        resumed, n_done, acc_sum, n_bad, trace_parts = _start_or_resume_processes(
            path, resume, fingerprint, local_state, config, obs_struct, mesh, lo, hi)
        if resumed is not None:
            state = _global.global_tree(resumed, state, mesh)
    else:
        fingerprint = _fingerprint(key, step_fn, state, obs_struct, config, step_size) if path else None
        state, n_done, acc_sum, n_bad, trace_parts = _start_or_resume(path, resume, fingerprint, state, config,
                                                                       obs_struct, n_chains)
        state = place(state)

    def to_host(*xs):
        """Per-chain (C,) results as numpy; over processes: whole on every process (so every process
        decides alike), gathered together in ONE collective (as int32 bit patterns)."""
        if not multi:
            return [np.asarray(x) for x in xs]
        blocks = [_global.local_block(x) for x in xs]
        packed = np.stack([b.astype(np.int32) if b.dtype == bool else b.view(np.int32) for b in blocks], axis=1)
        whole = _global.gather_local(packed, mesh)
        return [whole[:, i].copy().view(b.dtype) if b.dtype != bool else whole[:, i].astype(bool)
                for i, b in enumerate(blocks)]

    chunk_fn = functools.partial(_chunk_function(observables, config.chunk_size, config.thin, config.burn_in,
                                                 has_acc), _as_pytree_step(step_fn))
    saved_at = n_done if n_done else None  # for the divergence message
    last_finite = None

    def advance(done, n_valid):
        nonlocal state, trace_parts, acc_sum, n_bad, last_finite
        with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
            # under the chain mesh, kernels may keep per-chain work on each device (cluster labels)
            new_state, records, n_rec, acc_c, bad_c, first_bad_c, finite = chunk_fn(
                key, state, jnp.int32(done), jnp.int32(n_valid))
        first_bad_c, bad_c, finite, acc_c = to_host(first_bad_c, bad_c, finite, acc_c)
        first_bad = int(first_bad_c[first_bad_c >= 0].min()) if (first_bad_c >= 0).any() else -1
        bad_c = bad_c.astype(np.int64)
        finite = finite.astype(bool)
        # NaN/inf in a leaf the per-step screen does not read: known only to the chunk
        unseen = ~finite & (bad_c == 0)
        bad_c[unseen] += 1
        if (first_bad >= 0 or unseen.any()) and config.stop_on_divergence:
            raise _divergence(first_bad, bad_c, done, n_valid, n_chains, step_size, saved_at)
        state = place(new_state)
        n_rec = int(n_rec)
        for name in obs_struct:  # this process's chains only (all of them in one process)
            rec = _global.local_block(records[name]) if multi else np.asarray(records[name])
            trace_parts[name].append(rec[:n_rec])
        acc_sum += acc_c.astype(np.float64)
        n_bad += bad_c
        last_finite = finite
        if has_acc:
            return {"acc": f"{acc_sum.mean() / (done + n_valid):.3f}", "div": int(n_bad.sum())}
        return None

    def save(done):
        nonlocal trace_parts, saved_at
        if not last_finite.all():
            warnings.warn(f"step {done}: the state holds NaN/inf; checkpoint not updated", stacklevel=3)
            return False
        joined = _join(trace_parts, obs_struct, local_chains=None if not multi else hi - lo)
        trace_parts = {name: [arr] for name, arr in joined.items()}  # join each chunk once
        if multi:  # keep the previous one too: the processes' latest saves may be one apart when killed
            if os.path.exists(path):
                os.replace(path, _previous(path))
            save_checkpoint(path, state=_global.local_tree(state), n_done=done, trace=joined,
                            acceptance_sum=acc_sum[lo:hi], n_divergent=n_bad[lo:hi], fingerprint=fingerprint)
        else:
            save_checkpoint(path, state=state, n_done=done, trace=joined, acceptance_sum=acc_sum,
                            n_divergent=n_bad, fingerprint=fingerprint)
        saved_at = done
        return True

    n_done = run_chunks(advance, start=n_done, stop=config.n_steps, chunk=config.chunk_size, desc=desc or "mcmc",
                        progress=None if config.progress else False, leave=False,
                        save=None if path is None else save,
                        save_every=config.checkpoint_every_chunks * config.chunk_size)

    mean_acc = acc_sum / n_done if (has_acc and n_done) else np.full(n_chains, np.nan)
    trace = _join(trace_parts, obs_struct, local_chains=None if not multi else hi - lo)
    if multi:
        trace = {name: _global.gather_local(arr, mesh, axis=1) for name, arr in trace.items()}
    return RunResult(state, trace, InfoSummary(mean_acc, n_bad, n_done), n_done)


def process_checkpoint_path(path, index: int, count: int) -> str:
    """The checkpoint of process ``index`` of ``count`` when chains are split over processes:
    ``ck.h5`` → ``ck.process-00001-of-00004.h5`` (each process saves and resumes its own chains)."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.process-{int(index):05d}-of-{int(count):05d}{ext}"


def _previous(path: str) -> str:
    return path + ".prev"


def _start_or_resume_processes(path, resume, fingerprint, local_state, config: RunConfig, obs_struct: dict,
                               mesh, lo: int, hi: int):
    """:func:`_start_or_resume` for chains split over processes: ``(this process's resumed block of
    the state or None, n_done, whole acceptance sums, whole divergence counts, this process's trace
    parts)``. Each process offers the steps of its checkpoint and of the one before; all resume at
    the latest step every process holds (a process killed between two saves is one save behind).
    Every decision is taken from gathered facts, so the processes agree (or all fail)."""
    n_local = hi - lo
    trace_parts = {name: [] for name in obs_struct}
    acc_sum, n_bad = np.zeros(n_local, np.float64), np.zeros(n_local, np.int64)
    offers, problem = {}, None
    if path is not None and not resume:  # starting over: an earlier run's saves must not be offered later
        for p in (path, _previous(path)):
            if os.path.exists(p):
                os.remove(p)
    if path is not None and resume:
        for p in (path, _previous(path)):
            if not os.path.exists(p):
                continue
            try:
                mismatches = fingerprint_mismatches(read_fingerprint(p), fingerprint)
                if mismatches:
                    problem = ParameterError("checkpoint belongs to a different run (" + "; ".join(mismatches)
                                             + "); pass resume=False to start over and overwrite it", path=p)
                    break
                offers[read_n_done(p)] = p
            except PhigenError as e:
                problem = e
                break
    row = [1 if problem is not None else 0] + sorted(offers, reverse=True)[:2] + [-1] * (2 - min(2, len(offers)))
    rows = _global.allgather_rows(row)
    failed = [k for k in range(len(rows)) if rows[k, 0]]
    if failed:
        if problem is not None:
            raise problem
        raise ParameterError(f"the checkpoint of process {failed[0]} does not belong to this run (its own error "
                             f"says why); pass resume=False to start over", path=path)
    steps = [{int(v) for v in r[1:] if v >= 0} for r in rows]
    if not any(steps):
        return None, 0, _global.gather_local(acc_sum, mesh), _global.gather_local(n_bad, mesh), trace_parts
    common = set.intersection(*steps)
    if not common:
        raise ParameterError("the processes' checkpoints have no step in common ("
                             + "; ".join(f"process {k}: {sorted(s) or 'none'}" for k, s in enumerate(steps))
                             + "); pass resume=False to start over", path=path)
    n_done = max(common)
    if n_done > config.n_steps:
        raise ParameterError(f"checkpoint is at step {n_done}, past n_steps={config.n_steps}; "
                             f"ask for at least {n_done} steps or pass resume=False", path=path)
    ck = load_checkpoint(offers[n_done], local_state)
    for name in obs_struct:
        trace_parts[name].append(np.asarray(ck.trace[name]))
    state = jax.tree_util.tree_map(lambda leaf: jax.random.key_data(leaf) if _global._is_key(leaf) else leaf, ck.state)
    return (state, ck.n_done, _global.gather_local(ck.acceptance_sum, mesh),
            _global.gather_local(ck.n_divergent, mesh), trace_parts)


def _start_or_resume(path, resume: bool, fingerprint, state, config: RunConfig, obs_struct: dict, n_chains: int):
    """``(state, n_done, acceptance sums, divergence counts, trace parts)``: a fresh start, or the
    checkpoint at ``path`` when ``resume`` and it belongs to this run (same fingerprint)."""
    trace_parts = {name: [] for name in obs_struct}
    acc_sum, n_bad = np.zeros(n_chains, np.float64), np.zeros(n_chains, np.int64)
    if path is None or not resume or not os.path.exists(path):
        return state, 0, acc_sum, n_bad, trace_parts
    mismatches = fingerprint_mismatches(read_fingerprint(path), fingerprint)
    if mismatches:
        raise ParameterError("checkpoint belongs to a different run (" + "; ".join(mismatches)
                             + "); pass resume=False to start over and overwrite it", path=path)
    ck = load_checkpoint(path, state)
    if ck.n_done > config.n_steps:
        raise ParameterError(f"checkpoint is at step {ck.n_done}, past n_steps={config.n_steps}; "
                             f"ask for at least {ck.n_done} steps or pass resume=False", path=path)
    for name in obs_struct:
        trace_parts[name].append(np.asarray(ck.trace[name]))
    return ck.state, ck.n_done, ck.acceptance_sum, ck.n_divergent, trace_parts


def _divergence(first_bad: int, bad_c, done: int, n_valid: int, n_chains: int, step_size, saved_at):
    """The DivergenceError of a chunk with a divergent transition or a non-finite state."""
    chains = np.flatnonzero(bad_c)
    shown = ", ".join(map(str, chains[:8])) + (", …" if chains.size > 8 else "")
    ss = "" if step_size is None else f" with step size {_format_step_size(step_size)}"
    where = f"at step {first_bad}" if first_bad >= 0 else f"between steps {done} and {done + n_valid - 1}"
    err = DivergenceError(f"MCMC diverged {where}{ss}: divergent transition or non-finite state "
                          f"in chain(s) {shown} of {n_chains}; reduce the step size"
                          + (f"; the checkpoint holds step {saved_at}" if saved_at is not None else ""))
    err.step = first_bad if first_bad >= 0 else done
    err.chains = chains
    return err


def _join(parts: dict, obs_struct: dict, local_chains: int | None = None) -> dict:
    """The recorded chunks joined along time; ``local_chains``: this process holds that many chains."""
    out = {}
    for name, s in obs_struct.items():
        chunks = parts[name]
        shape = tuple(s.shape) if local_chains is None else (local_chains,) + tuple(s.shape[1:])
        out[name] = np.concatenate(chunks, axis=0) if chunks else np.zeros((0,) + shape, dtype=s.dtype)
    return out
