"""The registered ``diffusion`` and ``flow-matching`` models (the model protocol of
:mod:`phigen.models`): a periodic UNet trained on standardised fields.

Standardisation (docs/diffusion.md): the network only sees ``(x − m)/σ`` with m, σ the training set's
pixel mean and standard deviation (one number each: the fields are statistically homogeneous);
both are stored in the model file and samples are returned as ``m + σ·x``.

- ``diffusion``: OU score diffusion, v-prediction v̂ = a z − s x₀ (:mod:`phigen.diffusion.sde`), network
  conditioned on ``c = log(t)/4``. Sampling: ``sampler="ode"`` (probability flow, Heun) or ``"sde"``
  (reverse SDE, Euler–Maruyama) on a ``log`` / ``uniform`` / ``quadratic`` time grid; ``nfe``
  counts all network evaluations including the final Tweedie denoising step (``denoise=True``).
- ``flow-matching``: velocity v̂ on the linear noise→data path (:mod:`phigen.diffusion.flow`),
  conditioned on ``c = t``. Sampling: ``sampler="ode"``/``"heun"`` (Heun) or ``"euler"``.

Both sample with the EMA weights. Options of ``fit``: the fields of :class:`NetworkFitConfig`
(:class:`DiffusionConfig` adds the diffusion times), given as one ``config=`` or as keywords
(``phigen fit … --steps --batch-size --set width=32``): the
:class:`~phigen.diffusion.train.TrainConfig` fields, the :class:`~phigen.diffusion.unet.UNetConfig`
fields, and ``checkpoint`` / ``checkpoint_every`` for resumable training (``stop_at`` ends a call
early, e.g. to fit a job's time limit; the next call with the same ``checkpoint`` continues where it
stopped).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields as dataclass_fields

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError, ModelFileError, ParameterError
from ..models._base import config_from_options, read_model_file, register_model, write_model_file
from ..models._conditions import condition_settings, standardised_condition
from .flow import flow_matching_loss, flow_sample, flow_time_grid
from .sde import OUProcess, dsm_loss, ou_mean_std, reverse_sde_sample, score_from_velocity, time_grid, tweedie_denoise
from ..nn.train import TrainConfig, train
from .unet import UNet, UNetConfig, apply_batched, count_params, make_unet
from ..samplers._rng import standard_normal

__all__ = ["DiffusionModel", "FlowMatchingModel", "NetworkFitConfig", "DiffusionConfig", "diffusion_velocity_fn",
           "DiffusionLoss", "sample_diffusion"]


@dataclass(frozen=True)
class NetworkFitConfig:
    """Options of the flow-matching fit (and, with the diffusion times, of the diffusion fit): the
    training settings (:class:`~phigen.diffusion.train.TrainConfig`, same defaults), the network's
    shape (:class:`~phigen.diffusion.unet.UNetConfig`; a narrower default width, 16) and resumable
    training (``checkpoint`` path, ``checkpoint_every`` steps, ``stop_at`` total steps)."""

    steps: int = TrainConfig.steps
    batch_size: int = TrainConfig.batch_size
    learning_rate: float = TrainConfig.learning_rate
    warmup: int = TrainConfig.warmup
    ema_decay: float = TrainConfig.ema_decay
    grad_clip: float = TrainConfig.grad_clip
    chunk: int = TrainConfig.chunk
    width: int = 16
    depth: int = UNetConfig.depth
    blocks: int = UNetConfig.blocks
    max_mult: int = UNetConfig.max_mult
    emb_dim: int | None = UNetConfig.emb_dim
    groups: int = UNetConfig.groups
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    stop_at: int | None = None
    data_parallel: bool = False  # split each batch over every device of every process (docs/scale_out.md)

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)

    def unet_config(self) -> UNetConfig:
        return UNetConfig(**{f.name: getattr(self, f.name) for f in dataclass_fields(UNetConfig) if hasattr(self, f.name)})


@dataclass(frozen=True)
class DiffusionConfig(NetworkFitConfig):
    """:class:`NetworkFitConfig` and the OU process's time range [``t_min``, ``t_max``]."""

    t_min: float = 1e-3
    t_max: float = 5.0


def _diffusion_condition(t):
    return jnp.log(t) / 4.0  # t in [1e-3, 5] -> c in [-1.7, 0.4]


def _with_condition(x, cond):
    """The network input: fields ``(N, H, W)``, or with ``cond`` ``(N, D, H, W)`` (constant condition
    channels) the stack ``(N, 1 + D, H, W)``."""
    return x if cond is None else jnp.concatenate([x[:, None], cond.astype(x.dtype)], axis=1)


def diffusion_velocity_fn(net, cond=None):
    return lambda x, t: apply_batched(net, _with_condition(x, cond), _diffusion_condition(t))


def _velocity_fn(net, cond=None):
    return lambda x, t: apply_batched(net, _with_condition(x, cond), t)


def _split_batch(batch):
    """A training batch ``(N, H, W)``, or ``(N, 1 + D, H, W)`` packed with its condition channels."""
    return (batch, None) if batch.ndim == 3 else (batch[:, 0], batch[:, 1:])


class DiffusionLoss(eqx.Module):
    process: OUProcess = eqx.field(static=True)

    def __call__(self, net, x0, key):
        x0, cond = _split_batch(x0)
        return dsm_loss(diffusion_velocity_fn(net, cond), x0, key, self.process)


class _FlowLoss(eqx.Module):
    def __call__(self, net, x1, key):
        x1, cond = _split_batch(x1)
        return flow_matching_loss(_velocity_fn(net, cond), x1, key)


@eqx.filter_jit
def sample_diffusion(net, x_T, key, times, method: str, denoise: bool, cond=None):
    score = score_from_velocity(diffusion_velocity_fn(net, cond))
    if method == "sde":
        x, _ = reverse_sde_sample(score, x_T, key, times)
        return tweedie_denoise(score, x, times[-1]) if denoise else x
    return _heun_one_call_site(score, x_T, times, denoise)


def _heun_one_call_site(score, x_T, times, denoise: bool):
    """:func:`~phigen.diffusion.sde.probability_flow_sample` (Heun) then, with ``denoise``, Tweedie's
    step — the same operations on the same values, but as ONE scan over the network evaluations
    (predictor, corrector, …, Tweedie) with a single call of the network in its body. The network
    is the whole compilation cost of a sampler on a CPU; written as a Heun body (2 calls) plus the
    Tweedie step (1 more), XLA compiled it three times over (measured: ~3× the compile time)."""
    times = jnp.asarray(times, jnp.float32)
    n = times.shape[0] - 1
    t, t_next = times[:-1], times[1:]
    h = t - t_next
    # evaluation e: 2j predictor at t_j, 2j+1 corrector at t_{j+1}; the last one Tweedie's at t_n
    kind = jnp.tile(jnp.asarray([0, 1], jnp.int32), n)
    t_eval = jnp.stack([t, t_next], axis=1).reshape(-1)
    h_eval = jnp.repeat(h, 2)
    if denoise:
        kind = jnp.concatenate([kind, jnp.asarray([2], jnp.int32)])
        t_eval = jnp.concatenate([t_eval, times[-1:]])
        h_eval = jnp.concatenate([h_eval, jnp.zeros((1,), jnp.float32)])

    def body(carry, inp):
        x, x_pred, d1 = carry
        k, te, he = inp
        z = jnp.where(k == 1, x_pred, x)
        sc = score(z, te)
        d1_new = x + sc                         # predictor: d1 = x + score(x, t)
        x_pred_new = x + he * d1_new
        d2 = x_pred + sc                        # corrector: d2 = x_pred + score(x_pred, t_next)
        x_corr = x + 0.5 * he * (d1 + d2)
        a, s = ou_mean_std(te)
        x_tw = (x + s**2 * sc) / a              # Tweedie: (x + s² ∇log p_t(x)) / a
        x = jnp.where(k == 1, x_corr, jnp.where(k == 2, x_tw, x))
        return (x, jnp.where(k == 0, x_pred_new, x_pred), jnp.where(k == 0, d1_new, d1)), None

    x0 = jnp.asarray(x_T, jnp.float32)
    (x, _, _), _ = jax.lax.scan(body, (x0, x0, jnp.zeros_like(x0)), (kind, t_eval, h_eval))
    return x


@eqx.filter_jit
def _sample_flow(net, x0, times, method: str, cond=None):
    x, _ = flow_sample(lambda x, t: apply_batched(net, _with_condition(x, cond), jnp.full((x.shape[0],), t, x.dtype)),
                       x0, times, method=method)
    return x


class _NetworkModel:
    """Shared state and file format: the EMA network, its config, field shape, standardisation."""

    kind = "network"

    def __init__(self, net: UNet, unet_config: UNetConfig, field_shape, mean: float, std: float,
                 settings: dict | None = None, losses=None, training: dict | None = None):
        self.net = net
        self.unet_config = unet_config
        self._shape = tuple(int(s) for s in field_shape)
        self.mean, self.std = float(mean), float(std)
        self.settings = dict(settings or {})
        self.losses = np.zeros((0,), np.float32) if losses is None else np.asarray(losses, np.float32)
        self.training = training or {}

    @property
    def field_shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def n_params(self) -> int:
        return count_params(self.net)

    @property
    def condition_names(self) -> list:
        """The conditions a conditional model was fitted on (empty: unconditional)."""
        return list(self.settings.get("condition_names", []))

    def _condition_channels(self, n: int, condition):
        """``(n, D, H, W)`` standardised condition channels at ``condition`` (None: unconditional);
        warns when the condition lies outside the training range (the network extrapolates)."""
        z = standardised_condition(self.settings, condition, self.kind)
        if z is None:
            return None
        return jnp.broadcast_to(jnp.asarray(z)[None, :, None, None], (n, z.size, *self._shape))

    def standardise(self, x):
        """``(x − mean)/std`` with the training statistics stored in the model."""
        return (jnp.asarray(x, jnp.float32) - self.mean) / self.std

    def unstandardise(self, x):
        return self.mean + self.std * jnp.asarray(x, jnp.float32)

    # --- fitting ---------------------------------------------------------------------------------
    @classmethod
    def _fit(cls, fields, key, progress, loss, settings, cfg: NetworkFitConfig, conditions=None,
             condition_names=None):
        x = as_fields(fields, name="training fields")
        if x.shape[0] < 2:
            raise InputError(f"need at least 2 training fields; got {x.shape[0]}")
        mean, std = float(np.mean(x, dtype=np.float64)), float(np.std(x, dtype=np.float64))
        if not std > 0:
            raise InputError("training fields are constant (zero standard deviation)")
        data = (x - mean) / std
        unet_config = cfg.unet_config()
        if conditions is not None:  # conditional: the standardised conditions ride along as constant channels
            z, cond_settings = condition_settings(conditions, condition_names, len(x))
            settings = {**settings, **cond_settings}
            data = np.concatenate([data[:, None], np.broadcast_to(z[:, :, None, None], (len(x), z.shape[1],
                                                                                         *x.shape[1:]))], axis=1)
            unet_config = dataclasses.replace(unet_config, cond_channels=z.shape[1])
        unet_config.check_shape(x.shape[1:])
        config = cfg.train_config()
        k_net, k_train = jax.random.split(key)
        net = make_unet(unet_config, key=k_net)
        fingerprint = {"kind": cls.kind, "unet": unet_config.to_dict(), "shape": list(x.shape), "mean": mean,
                       "std": std, "settings": settings}
        result = train(loss, net, data, config, key=k_train, progress=progress, checkpoint=cfg.checkpoint,
                       checkpoint_every=cfg.checkpoint_every, stop_at=cfg.stop_at, fingerprint=fingerprint,
                       desc=f"fit {cls.kind}", data_parallel=bool(cfg.data_parallel))
        losses = result.losses
        head, tail = losses[: max(1, len(losses) // 20)], losses[-max(1, len(losses) // 20):]
        training = {"train_config": asdict(config), "initial_loss": float(head.mean()),
                    "final_loss": float(tail.mean()), "n_params": count_params(net), "steps_done": int(len(losses))}
        return cls(result.ema_model, unet_config, x.shape[1:], mean, std, settings, losses, training)

    # --- files -----------------------------------------------------------------------------------
    def save(self, path):
        config = {"unet": self.unet_config.to_dict(), "shape": list(self._shape), **self.settings}
        return write_model_file(path, self.kind, config=config,
                                arrays={"mean": np.float64(self.mean), "std": np.float64(self.std),
                                        "losses": self.losses},
                                modules={"net": self.net}, training=self.training)

    @classmethod
    def load(cls, path):
        f = read_model_file(path, cls.kind)
        try:
            config = dict(f.config)
            unet_config = UNetConfig(**config.pop("unet"))
            shape = config.pop("shape")
            mean, std = float(f.arrays["mean"]), float(f.arrays["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"incomplete {cls.kind} model file: {exc!r}", path=path) from None
        skeleton = eqx.filter_eval_shape(UNet, unet_config, key=jax.random.PRNGKey(0))  # shapes only
        net = f.module("net", like=skeleton)
        return cls(net, unet_config, shape, mean, std, config, f.arrays.get("losses"), f.training)

    def _noise(self, n, key):
        n = check_int_at_least(n, "n", 1)
        return standard_normal(key, (n, *self._shape), jnp.float32)


@register_model("diffusion")
class DiffusionModel(_NetworkModel):
    """Score diffusion (OU process, v-predicting periodic UNet) on standardised fields."""

    fit_config = DiffusionConfig  # fit(..., config=None, **options): every field is an option

    @classmethod
    def fit(cls, fields, *, key, progress=None, conditions=None, condition_names=None,
            config: DiffusionConfig | None = None, **options):
        """Train on ``fields`` ``(N, H, W)`` by denoising score matching; returns the model.
        ``config`` / ``options``: :class:`DiffusionConfig` (options override its fields).
        ``conditions`` ``(N,)`` or ``(N, D)``: a conditional model p(x | c), the standardised c given to
        the network as constant input channels (``condition_names`` name them)."""
        cfg = config_from_options(DiffusionConfig, config, options, "fit diffusion")
        process = OUProcess(float(cfg.t_min), float(cfg.t_max))
        return cls._fit(fields, key, progress, DiffusionLoss(process), {"t_min": process.t_min, "t_max": process.t_max},
                        cfg, conditions, condition_names)

    def score(self, x, t):
        """Learned ``∇log p_t`` of the *standardised* fields: ``x`` ``(N, H, W)``, scalar t."""
        return score_from_velocity(diffusion_velocity_fn(self.net))(jnp.asarray(x, jnp.float32), t)

    def sample(self, n: int, *, key, sampler: str = "ode", nfe: int = 100, time_grid_kind: str = "log",
               denoise: bool = True, t_min: float | None = None, condition=None):
        """``n`` new fields ``(n, H, W)``: N(0, I) at t_max, reverse process to t_min, unstandardised.
        ``condition``: the values of a conditional model's conditions (required for one).

        ``sampler``: ``ode`` (Heun, 2 evaluations per step) or ``sde`` (Euler–Maruyama, 1);
        ``nfe``: total network evaluations (with ``denoise`` one goes to the Tweedie step);
        ``time_grid_kind``: ``log`` | ``uniform`` | ``quadratic``; ``t_min`` defaults to training's.
        """
        if sampler not in ("ode", "sde"):
            raise ParameterError(f"diffusion sampler must be 'ode' or 'sde'; got {sampler!r}")
        nfe = check_int_at_least(nfe, "nfe", 2 if sampler == "sde" else 3)
        budget = nfe - (1 if denoise else 0)
        n_steps = max(1, budget // 2 if sampler == "ode" else budget)
        t_lo = float(self.settings.get("t_min", 1e-3) if t_min is None else t_min)
        times = jnp.asarray(time_grid(n_steps, t_lo, float(self.settings.get("t_max", 5.0)), time_grid_kind))
        cond = self._condition_channels(int(n), condition)
        k_init, k_path = jax.random.split(key)
        x = sample_diffusion(self.net, self._noise(n, k_init), k_path, times, sampler, bool(denoise), cond)
        return self.unstandardise(x)


@register_model("flow-matching")
class FlowMatchingModel(_NetworkModel):
    """Flow matching (linear noise→data path, velocity-predicting periodic UNet) on standardised fields."""

    fit_config = NetworkFitConfig  # fit(..., config=None, **options): every field is an option

    @classmethod
    def fit(cls, fields, *, key, progress=None, conditions=None, condition_names=None,
            config: NetworkFitConfig | None = None, **options):
        """Train on ``fields`` ``(N, H, W)`` by conditional flow matching; returns the model.
        ``config`` / ``options``: :class:`NetworkFitConfig` (options override its fields);
        ``conditions``: a model p(x | c), as :meth:`DiffusionModel.fit`."""
        return cls._fit(fields, key, progress, _FlowLoss(), {},
                        config_from_options(NetworkFitConfig, config, options, "fit flow-matching"), conditions,
                        condition_names)

    def velocity(self, x, t):
        """Learned velocity of the *standardised* fields: ``x`` ``(N, H, W)``, scalar t in [0, 1]."""
        x = jnp.asarray(x, jnp.float32)
        return apply_batched(self.net, x, jnp.full((x.shape[0],), t, jnp.float32))

    def sample(self, n: int, *, key, sampler: str = "ode", nfe: int = 100, time_grid_kind: str = "cosine",
               condition=None):
        """``n`` new fields ``(n, H, W)``: integrate from N(0, I) at t = 0 to t = 1, unstandardised.

        ``sampler``: ``ode``/``heun`` (2 evaluations per step) or ``euler`` (1); ``nfe``: total
        network evaluations; ``time_grid_kind``: ``cosine`` (finer at both ends; the velocity of
        low-power modes is stiff near t = 1) | ``uniform``.
        """
        methods = {"ode": "heun", "heun": "heun", "euler": "euler"}
        if sampler not in methods:
            raise ParameterError(f"flow-matching sampler must be one of ode, heun, euler; got {sampler!r} "
                                 "(flow matching has no SDE sampler)")
        method = methods[sampler]
        nfe = check_int_at_least(nfe, "nfe", 2 if method == "heun" else 1)
        n_steps = max(1, nfe // 2 if method == "heun" else nfe)
        times = jnp.asarray(flow_time_grid(n_steps, time_grid_kind))
        cond = self._condition_channels(int(n), condition)
        return self.unstandardise(_sample_flow(self.net, self._noise(n, key), times, method, cond))
