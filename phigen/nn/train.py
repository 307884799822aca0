"""The training loop of every network model (diffusion, flow matching, WSGM, flows, VAE, GAN):
Adam + EMA + gradient clipping, deterministic shuffling, a progress bar with the loss, and exact
resumption from checkpoints.

Everything that happens at step s is a pure function of (state, s):

- the batch: epoch ``e = s // E`` (E = ⌊N/B⌋ steps per epoch; the last incomplete batch of each
  epoch is dropped), permutation ``π_e = permutation(fold_in(data_key, e), N)``, batch
  ``π_e[(s mod E)·B : (s mod E + 1)·B]``;
- the loss noise: ``fold_in(noise_key, s)``;
- the update: ``g ← clip(∇L, max global norm)``, Adam with linear warm-up and cosine decay of the
  learning rate (to 10 % at the last step), then ``ema ← d_s·ema + (1 − d_s)·θ`` with
  ``d_s = min(ema_decay, (1 + s)/(10 + s))`` (so a short run's EMA is not stuck at the init).

Steps run in jitted ``lax.scan`` chunks of ``chunk`` steps; after each chunk the bar shows the mean
loss, and every ``checkpoint_every`` steps the state (parameters, Adam moments, EMA, step, loss
history) is written as equinox leaf bytes inside an HDF5 file (:func:`phigen.models.write_model_file`,
no pickle). Since the state and the step number determine everything, a training resumed from a
checkpoint equals an uninterrupted one (up to float reassociation across chunk boundaries).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._chunks import run_chunks
from .._validation import as_fields, check_int_at_least, check_positive
from ..errors import ModelFileError, ParameterError

__all__ = ["TrainConfig", "TrainState", "TrainResult", "make_optimizer", "init_train_state", "batch_indices",
           "data_parallel_mesh",
           "train", "save_checkpoint", "load_checkpoint", "CHECKPOINT_KIND", "run_train_chunk"]

CHECKPOINT_KIND = "training-checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (all steps counted from 0; ``steps`` is the total budget)."""

    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    chunk: int = 50

    @classmethod
    def of(cls, options) -> "TrainConfig":
        """The training settings held by an options record with fields of the same names (the fit
        configs of the network models)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})

    def __post_init__(self):
        check_int_at_least(self.steps, "steps", 1)
        check_int_at_least(self.batch_size, "batch_size", 1)
        check_int_at_least(self.warmup, "warmup", 0)
        check_int_at_least(self.chunk, "chunk", 1)
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.grad_clip, "grad_clip")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ParameterError(f"ema_decay must be in [0, 1); got {self.ema_decay}")


class TrainState(NamedTuple):
    """Trainable arrays, Adam state, EMA arrays and the number of steps done (int32 scalar)."""

    params: Any
    opt_state: Any
    ema: Any
    step: jax.Array


class TrainResult(NamedTuple):
    """``model``: last weights; ``ema_model``: EMA weights (use these to sample); ``state``;
    ``losses``: per-step training loss ``(steps,)`` (numpy); ``aux``: the per-step auxiliary values
    ``{name: (steps,)}`` of a loss with ``has_aux`` (None otherwise)."""

    model: Any
    ema_model: Any
    state: TrainState
    losses: np.ndarray
    aux: dict | None = None   # {name: (steps,)} with has_aux, else None


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam on a warm-up + cosine schedule."""
    warmup = min(config.warmup, max(config.steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warmup, max(config.steps, warmup + 1),
                                                  end_value=0.1 * config.learning_rate)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), optax.adam(schedule))


def init_train_state(model, config: TrainConfig, optimizer=None) -> tuple[TrainState, Any]:
    """``(state, static)``: the model split into trainable arrays and the rest (equinox); ``optimizer``
    defaults to :func:`make_optimizer` of ``config``."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = (make_optimizer(config) if optimizer is None else optimizer).init(params)
    ema = jax.tree_util.tree_map(jnp.copy, params)
    return TrainState(params, opt_state, ema, jnp.zeros((), jnp.int32)), static


def data_parallel_mesh(devices=None):
    """A 1-D mesh with axis ``"batch"`` over ``devices`` (default: every device of every process,
    ``jax.devices()``): the mesh of data-parallel training (docs/scale_out.md)."""
    from jax.sharding import Mesh

    return Mesh(np.asarray(list(jax.devices() if devices is None else devices), dtype=object), ("batch",))


def _data_parallel(mesh, batch_size: int):
    """``(batch sharding, replicated sharding)`` of data-parallel training on ``mesh``: each step's
    batch is split along its first axis over the mesh's devices, everything else is replicated, and
    XLA sums the gradients across devices (and processes)."""
    from jax.sharding import NamedSharding, PartitionSpec

    n_dev = int(mesh.devices.size)
    if batch_size % n_dev:
        raise ParameterError(f"data-parallel training splits each batch over {n_dev} devices: batch_size "
                             f"{batch_size} must be a multiple of {n_dev}")
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])), NamedSharding(mesh, PartitionSpec())


def batch_indices(data_key, step, n_data: int, batch_size: int):
    """Indices of the batch used at ``step`` (see the module docstring); works under jit."""
    per_epoch = n_data // batch_size
    epoch, pos = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), n_data)
    return jax.lax.dynamic_slice_in_dim(perm, pos * batch_size, batch_size)


@eqx.filter_jit
def run_train_chunk(loss_fn, static, config: TrainConfig, batch_size: int, n_steps: int, state: TrainState, data,
                    data_key, noise_key, has_aux: bool = False, optimizer=None, batch_sharding=None):
    """``n_steps`` training steps from ``state`` in one ``lax.scan``: ``(state, losses (n_steps,))``, or
    ``(state, (losses, aux))`` with ``has_aux``. ``data`` ``(N, ...)`` or None (data-free loss).
    ``optimizer``: an optax transformation (default :func:`make_optimizer`); pass the SAME object to
    every chunk (it is static: a new one recompiles)."""
    optimizer = make_optimizer(config) if optimizer is None else optimizer

    def loss_of(params, x0, key):
        return loss_fn(eqx.combine(params, static), x0, key)

    def body(state, _):
        s = state.step
        x0 = None if data is None else data[batch_indices(data_key, s, data.shape[0], batch_size)]
        if batch_sharding is not None and x0 is not None:  # data parallel: each device takes its slice
            x0 = jax.lax.with_sharding_constraint(x0, batch_sharding)
        out, grads = jax.value_and_grad(loss_of, has_aux=has_aux)(state.params, x0, jax.random.fold_in(noise_key, s))
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        decay = jnp.minimum(config.ema_decay, (1.0 + s) / (10.0 + s))
        ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)
        return TrainState(params, opt_state, ema, s + 1), out

    return jax.lax.scan(body, state, None, length=n_steps)


def _fingerprint(config: TrainConfig, extra: dict | None) -> dict:
    # through JSON, so that it compares equal to what a checkpoint file gives back
    return json.loads(json.dumps({"train": asdict(config), "extra": dict(extra or {})}, sort_keys=True))


def save_checkpoint(path, state: TrainState, losses, config: TrainConfig, extra: dict | None = None,
                    aux: dict | None = None) -> Path:
    """Write ``state``, the loss history (and ``aux`` histories) to ``path`` (HDF5, equinox leaf bytes, atomic)."""
    from ..models import write_model_file

    arrays = {"step": np.int64(state.step), "losses": np.asarray(losses, np.float32)}
    arrays.update({f"aux/{k}": np.asarray(v, np.float32) for k, v in (aux or {}).items()})
    return write_model_file(path, CHECKPOINT_KIND, config=_fingerprint(config, extra), arrays=arrays,
                            modules={"params": state.params, "opt_state": state.opt_state, "ema": state.ema})


def load_checkpoint(path, like: TrainState, config: TrainConfig, extra: dict | None = None, *,
                    with_aux: bool = False):
    """``(state, losses)`` (``(state, losses, aux)`` with ``with_aux``) from a checkpoint written for
    the same configuration as ``like``.

    Raises ModelFileError if the file is not a checkpoint, is damaged, or was written for another
    training configuration (then resuming would not reproduce an uninterrupted run).
    """
    from ..models import read_model_file

    f = read_model_file(path, CHECKPOINT_KIND)
    want = _fingerprint(config, extra)
    if f.config != want:
        raise ModelFileError(f"checkpoint was written for another configuration ({f.config}); expected {want}. "
                             "Delete it or use another checkpoint path", path=path)
    state = TrainState(f.module("params", like.params), f.module("opt_state", like.opt_state),
                       f.module("ema", like.ema), jnp.asarray(int(f.arrays["step"]), jnp.int32))
    losses = np.asarray(f.arrays["losses"], np.float32)
    if not with_aux:
        return state, losses
    aux = {k[len("aux/"):]: np.asarray(v, np.float32) for k, v in f.arrays.items() if k.startswith("aux/")}
    return state, losses, aux


def train(loss_fn: Callable, model, data, config: TrainConfig = TrainConfig(), *, key, progress: bool | None = None,
          checkpoint=None, checkpoint_every: int | None = None, stop_at: int | None = None,
          fingerprint: dict | None = None, desc: str = "training", has_aux: bool = False,
          optimizer=None, data_parallel=False) -> TrainResult:
    """Minimise ``loss_fn(model, x0_batch, key) -> scalar`` over batches of ``data`` ``(N, ...)``.

    ``data=None``: no data, ``x0_batch`` is None (the loss draws what it needs from ``key``).
    ``has_aux``: the loss returns ``(scalar, {name: scalar})``; the values are kept per step
    (``TrainResult.aux``) and shown on the progress bar. ``optimizer``: an optax transformation
    replacing :func:`make_optimizer` (e.g. one learning rate per player of a game; name what it
    changes in ``fingerprint`` so that a checkpoint is only resumed by the same optimiser).

    ``key`` fixes the shuffling and the loss noise. With ``checkpoint`` (a path), an existing
    checkpoint of the same configuration (``config`` and ``fingerprint``) is resumed, and the state is
    saved every ``checkpoint_every`` steps (default: every chunk) and at the end. ``stop_at`` ends
    the call after that many total steps (an interruption that can be resumed). ``progress``: tqdm
    bar (None: only on a terminal). ``data_parallel``: ``True`` (all devices of all processes,
    :func:`data_parallel_mesh`) or a 1-D mesh: each batch is split over the devices, the gradients
    summed by XLA; the same steps and losses as on one device up to float reassociation. In a
    ``jax.distributed`` group every process calls ``train`` with the same data and key, and only
    process 0 writes checkpoints. Returns a :class:`TrainResult`.
    """
    if data is None:
        batch_size = config.batch_size
    else:
        data = jnp.asarray(as_fields(data, name="training fields"))
        batch_size = min(config.batch_size, int(data.shape[0]))  # a tiny dataset is one batch per epoch
    state, static = init_train_state(model, config, optimizer)
    losses, aux = np.zeros((0,), np.float32), {}
    if checkpoint is not None and Path(checkpoint).exists():
        state, losses, aux = load_checkpoint(checkpoint, state, config, fingerprint, with_aux=True)
    data_key, noise_key = jax.random.split(key)
    batch_sharding = None
    if data_parallel is not False and data_parallel is not None:
        if data is None:
            raise ParameterError("data-parallel training splits the data's batches: a data-free loss has none")
        mesh = data_parallel_mesh() if data_parallel is True else data_parallel
        batch_sharding, replicated = _data_parallel(mesh, batch_size)
        data, state = jax.device_put((data, state), replicated)  # the same value on every process
        data_key, noise_key = jax.device_put((data_key, noise_key), replicated)
    end = config.steps if stop_at is None else min(int(stop_at), config.steps)
    every = config.chunk if checkpoint_every is None else check_int_at_least(checkpoint_every, "checkpoint_every", 1)
    done = int(state.step)
    history = [losses[:done]]
    aux_history = {k: [v[:done]] for k, v in aux.items()}

    def advance(done, n_steps):
        nonlocal state
        state, out = run_train_chunk(loss_fn, static, config, batch_size, n_steps, state, data, data_key,
                                     noise_key, has_aux, optimizer, batch_sharding)
        chunk_losses, chunk_aux = out if has_aux else (out, {})
        chunk_losses = np.asarray(chunk_losses)
        if not np.all(np.isfinite(chunk_losses)):
            from ..errors import DivergenceError

            raise DivergenceError(f"training loss became NaN/inf between steps {done} and {done + n_steps}; "
                                  f"lower learning_rate ({config.learning_rate}) or grad_clip")
        history.append(chunk_losses)
        shown = {"loss": f"{float(chunk_losses.mean()):.4f}"}
        for k, v in chunk_aux.items():
            v = np.asarray(v, np.float32)
            aux_history.setdefault(k, []).append(v)
            shown[k] = f"{float(v.mean()):.4f}"
        return shown

    def joined_aux():
        return {k: np.concatenate(v) for k, v in aux_history.items()}

    def save(done):
        save_checkpoint(checkpoint, state, np.concatenate(history), config, fingerprint, aux=joined_aux())

    run_chunks(advance, start=done, stop=max(done, end), chunk=config.chunk, desc=desc, total=config.steps,
               progress=progress, save=None if checkpoint is None else save, save_every=every)
    losses = np.concatenate(history)
    if batch_sharding is not None:  # back to ordinary arrays on this process's default device
        state = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), state)
    return TrainResult(eqx.combine(state.params, static), eqx.combine(state.ema, static), state, losses,
                       joined_aux() if has_aux else None)

