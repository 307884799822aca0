"""Microcanonical synthesis: fields whose statistics Φ(x) match a target Φ̄, found by L-BFGS.

Loss of one field ``x`` (H, W), with per-statistic scales σ (the statistics' spread across the
training fields, so a typical training field scores ≈ 1):

    ℓ(x) = (1/n) Σ_i ((Φ_i(x) − Φ̄_i) / σ_i)²        (n = number of statistics)

Many fields are synthesised at once, each with ITS OWN L-BFGS run (history, line search, step):
the optax ``lbfgs`` update of one field is ``vmap``-ed over the batch, so fields never share a
step size or curvature pairs (a summed batch loss would couple them through the line search).
Iterations run in jitted ``lax.scan`` chunks under a Python loop that drives a progress bar; the
last, shorter chunk reuses the compiled chunk with the steps past the end masked out.

A field whose update turns non-finite (a line search at a converged point can produce 0/0) keeps
its previous iterate and optimiser state, so one converged field never poisons the batch.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int_at_least
from ..errors import InputError, ParameterError

__all__ = ["SynthesisConfig", "SynthesisResult", "statistics_loss", "statistics_scales", "minimize_fields",
           "synthesize"]


@dataclass(frozen=True)
class SynthesisConfig:
    """L-BFGS settings for microcanonical synthesis.

    steps : L-BFGS iterations per field (the scattering-spectra reference recipe uses ~300).
    memory_size : number of curvature pairs L-BFGS keeps.
    max_linesearch_steps : cap on the zoom line search of each iteration.
    chunk_size : iterations per jitted ``lax.scan`` chunk (the progress bar advances per chunk).
    batch_size : fields optimised together in one vmapped run (``None``: all of them); bounds memory.
    progress : tqdm bar; ``None`` means "when attached to a terminal", ``False`` never.
    """

    steps: int = 300
    memory_size: int = 10
    max_linesearch_steps: int = 20
    chunk_size: int = 25
    batch_size: int | None = None
    progress: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "steps", check_int_at_least(self.steps, "steps", 0))
        object.__setattr__(self, "memory_size", check_int_at_least(self.memory_size, "memory_size", 1))
        object.__setattr__(self, "max_linesearch_steps",
                           check_int_at_least(self.max_linesearch_steps, "max_linesearch_steps", 1))
        object.__setattr__(self, "chunk_size", check_int_at_least(self.chunk_size, "chunk_size", 1))
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", check_int_at_least(self.batch_size, "batch_size", 1))


class SynthesisResult(NamedTuple):
    fields: np.ndarray        # (N, H, W) float32 synthesised fields
    loss: np.ndarray          # (N,) final loss ℓ of each field
    initial_loss: np.ndarray  # (N,) loss of each starting field
    loss_history: np.ndarray  # (n_chunks + 1, N) loss at the start and after every chunk
    seconds: float            # wall time of the optimisation (compilation included)
    steps: int                # L-BFGS iterations run per field


def statistics_scales(rows, *, rel_floor: float = 1e-3):
    """Per-statistic scale σ from per-field statistics ``rows`` (N, n): the std across fields.

    With fewer than 2 fields (no spread to measure) σ_i = |Φ̄_i|. Either way σ is floored at
    ``rel_floor`` × its median so statistics that do not vary (normalised ones) cannot dominate
    the loss with a division by ~0. Returns ``(mean (n,), σ (n,))`` float32 numpy arrays.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 1:
        raise InputError(f"statistics rows must be (N, n_stats) with N >= 1; got shape {rows.shape}")
    mean = rows.mean(axis=0)
    sigma = rows.std(axis=0, ddof=1) if rows.shape[0] >= 2 else np.abs(mean)
    positive = sigma[sigma > 0]
    floor = rel_floor * (np.median(positive) if positive.size else 1.0)
    return mean.astype(np.float32), np.maximum(sigma, floor).astype(np.float32)


def statistics_loss(stats_fn: Callable, target, scale) -> Callable:
    """ℓ(x) of ONE field ``x`` (H, W) → scalar: the mean of ((Φ(x) − target)/scale)².

    ``stats_fn`` maps a batch ``(N, H, W)`` to ``(N, n)``; ``target`` and ``scale`` are ``(n,)``.
    """
    target = jnp.asarray(target, jnp.float32)
    inv = 1.0 / jnp.asarray(scale, jnp.float32)

    def loss(x):
        r = (stats_fn(x[None])[0] - target) * inv
        return jnp.mean(r * r)

    return loss


def _select(ok, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def _build(loss: Callable, config: SynthesisConfig):
    """(init, chunk) jitted functions for a batch of fields, each running its own L-BFGS."""
    import optax

    opt = optax.lbfgs(memory_size=config.memory_size,
                      linesearch=optax.scale_by_zoom_linesearch(
                          max_linesearch_steps=config.max_linesearch_steps, initial_guess_strategy="one"))
    value_and_grad = jax.value_and_grad(loss)

    def init_one(x):
        value, grad = value_and_grad(x)
        return opt.init(x), value, grad

    def step_one(x, state, value, grad):
        updates, new_state = opt.update(grad, state, x, value=value, grad=grad, value_fn=loss)
        new_x = x + updates
        # The line search already evaluated ℓ and ∇ℓ at the accepted point: reuse them.
        new_value = optax.tree.get(new_state, "value")
        new_grad = optax.tree.get(new_state, "grad")
        ok = jnp.isfinite(new_value) & jnp.all(jnp.isfinite(new_x)) & jnp.all(jnp.isfinite(new_grad))
        return _select(ok, (new_x, new_state, new_value, new_grad), (x, state, value, grad))

    step_batch = jax.vmap(step_one)

    @jax.jit
    def init(x):
        return jax.vmap(init_one)(x)

    @jax.jit
    def chunk(x, state, value, grad, n_valid):
        def body(carry, i):
            return jax.lax.cond(i < n_valid, lambda c: step_batch(*c), lambda c: c, carry), None

        (x, state, value, grad), _ = jax.lax.scan(body, (x, state, value, grad), jnp.arange(config.chunk_size))
        return x, state, value, grad

    return init, chunk


# Compiled (init, chunk) pairs, keyed by the identity of the loss: a model that keeps its loss
# function object synthesises batch after batch without re-tracing. The loss is kept in the value
# so its id cannot be reused while the entry lives.
_COMPILED: OrderedDict = OrderedDict()
_MAX_COMPILED = 8


def _compiled(loss, config):
    key = (id(loss), config.memory_size, config.max_linesearch_steps, config.chunk_size)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is loss:
        _COMPILED.move_to_end(key)
        return hit[1]
    fns = _build(loss, config)
    _COMPILED[key] = (loss, fns)
    while len(_COMPILED) > _MAX_COMPILED:
        _COMPILED.popitem(last=False)
    return fns


def minimize_fields(loss: Callable, x0, config: SynthesisConfig = SynthesisConfig()) -> SynthesisResult:
    """Minimise ``loss`` (one field (H, W) → scalar) independently for every field of ``x0`` (N, H, W).

    Runs ``config.steps`` L-BFGS iterations per field, ``config.batch_size`` fields per vmapped run.
    """
    from tqdm.auto import tqdm

    x0 = jnp.asarray(x0, jnp.float32)
    if x0.ndim != 3:
        raise InputError(f"starting fields must be (N, H, W); got shape {tuple(x0.shape)}")
    n = x0.shape[0]
    bs = n if config.batch_size is None else min(n, config.batch_size)
    init, chunk = _compiled(loss, config)
    n_chunks = -(-config.steps // config.chunk_size)
    t0 = time.perf_counter()
    out_x, out_loss, out_init, history = [], [], [], []
    bar = tqdm(total=config.steps * n, desc="L-BFGS synthesis", unit="field-it", disable=(
        None if config.progress is None else not config.progress), leave=False)
    try:
        for start in range(0, n, bs):
            x = x0[start:start + bs]
            used = x.shape[0]
            if used < bs:  # pad the last batch so every batch reuses one compilation
                x = jnp.concatenate([x, x0[:bs - used]])
            state, value, grad = init(x)
            hist = [np.asarray(value)[:used]]
            done = 0
            for _ in range(n_chunks):
                n_valid = min(config.chunk_size, config.steps - done)
                x, state, value, grad = chunk(x, state, value, grad, jnp.int32(n_valid))
                done += n_valid
                v = np.asarray(value)[:used]
                hist.append(v)
                bar.update(n_valid * used)
                bar.set_postfix(median_loss=f"{np.median(v):.3g}")
            out_x.append(np.asarray(x)[:used])
            out_loss.append(hist[-1])
            out_init.append(hist[0])
            history.append(np.stack(hist))
    finally:
        bar.close()
    return SynthesisResult(np.concatenate(out_x), np.concatenate(out_loss), np.concatenate(out_init),
                           np.concatenate(history, axis=1), time.perf_counter() - t0, config.steps)


def synthesize(key, loss: Callable, n: int, shape, *, mean: float = 0.0, std: float = 1.0,
               config: SynthesisConfig = SynthesisConfig()) -> SynthesisResult:
    """Microcanonical synthesis of ``n`` fields of ``shape`` (H, W) minimising ``loss``.

    Each field starts as white noise ``mean + std·ξ`` (ξ ~ N(0, 1) per pixel, drawn from ``key``)
    and is optimised by its own L-BFGS run (:func:`minimize_fields`). Build ``loss`` once with
    :func:`statistics_loss` and keep it: the compiled optimiser is cached on its identity.
    """
    n = check_int_at_least(n, "n", 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ParameterError(f"shape must be (H, W); got {shape}")
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ParameterError(f"mean must be finite and std > 0; got mean={mean!r}, std={std!r}")
    x0 = mean + std * jax.random.normal(key, (n, *shape), jnp.float32)
    return minimize_fields(loss, x0, config)
