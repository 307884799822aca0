"""The registered ``gan`` model: a periodic DCGAN-style generator and critic trained as a
Wasserstein GAN with gradient penalty (Gulrajani et al. 2017) on standardised fields.

Generator G: a latent ``z`` of ``latent_channels`` white-noise maps at ``1/2^up`` of the field's side,
then ``up`` × (nearest up-sampling, periodic 3×3 convolution, SiLU) and a 3×3 output convolution —
translation-equivariant by construction (the fields are homogeneous). Critic D: periodic 3×3
convolutions with leaky ReLU and 2×2 average pooling ``up`` times, a field average, then a linear
read-out (one number per field). Losses (per batch of real x and fake G(z)):

    L_D = ⟨D(G(z))⟩ − ⟨D(x)⟩ + γ ⟨(‖∇D(x̂)‖ − 1)²⟩ + ε ⟨D(x)²⟩,   x̂ = u x + (1 − u) G(z),
    L_G = −⟨D(G(z))⟩,

with γ = ``gp_weight``, ε = 10⁻³ (keeps D's offset from drifting). Both players step together on
one scalar ``L_D(D, stop(G)) + L_G(stop(D), G)`` (:mod:`phigen.nn.train`: gradients of each player
come only from its own loss), with Adam without momentum (β₁ = 0, β₂ = 0.9: momentum makes
simultaneous game steps rotate and diverge; measured) and two time scales (TTUR, Heusel et al.
2017): the critic's learning rate is ``critic_lr_ratio`` × the generator's, in place of several
critic steps per generator step. The fit record keeps both loss curves (``critic_loss``,
``generator_loss``, ``gradient_penalty`` per step) and a mode-collapse indicator: the mean pairwise
distance between generated fields over that between training fields (``diversity_ratio``; ≈ 1
for a model as diverse as the truth, → 0 when the generator collapses), and the same ratio of the
per-field standard deviations' spread.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._validation import check_int_at_least, check_positive
from .errors import ModelFileError, ParameterError
from .models._base import config_from_options, read_model_file, register_model, write_model_file
from .nn.conv import apply_conv, periodic_conv, pool2, upsample2
from .nn.data import training_fields
from .nn.init import count_params, init_layers
from .nn.train import TrainConfig, train

__all__ = ["GANConfig", "Generator", "Critic", "GANModel", "diversity_ratio"]

_DRIFT = 1e-3


@dataclass(frozen=True)
class GANConfig:
    """Options of ``fit gan``: ``width`` channels, ``up`` up-samplings (the latent grid is ``1/2^up``
    of the field), ``latent_channels``, ``gp_weight`` γ; the training settings (:class:`phigen.nn.TrainConfig`;
    ``ema_decay`` smooths the generator that samples) and resumable training."""

    width: int = 32
    up: int = 2
    latent_channels: int = 8
    gp_weight: float = 10.0
    critic_lr_ratio: float = 4.0
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-3   # 16² GFF, 600 steps: 2e-4 left the generator collapsed (diversity 0.10), 1e-3: 0.99
    warmup: int = 50
    ema_decay: float = 0.99
    grad_clip: float = 10.0
    chunk: int = 50
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    stop_at: int | None = None
    data_parallel: bool = False  # split each batch over every device of every process (docs/scale_out.md)

    def __post_init__(self):
        check_int_at_least(self.width, "width", 1)
        check_int_at_least(self.up, "up", 0)
        check_int_at_least(self.latent_channels, "latent_channels", 1)
        check_positive(self.gp_weight, "gp_weight", strict=False)
        check_positive(self.critic_lr_ratio, "critic_lr_ratio")

    def net_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("width", "up", "latent_channels")}

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


class Generator(eqx.Module):
    conv_in: eqx.nn.Conv2d
    ups: list
    conv_out: eqx.nn.Conv2d

    def __init__(self, net: dict, *, key):
        w, n = int(net["width"]), int(net["up"])
        keys = jax.random.split(key, n + 2)
        self.conv_in = periodic_conv(int(net["latent_channels"]), w, keys[0])
        self.ups = [periodic_conv(w, w, k) for k in keys[1:n + 1]]
        self.conv_out = periodic_conv(w, 1, keys[-1])

    def __call__(self, z):
        h = jax.nn.silu(apply_conv(self.conv_in, z))
        for conv in self.ups:
            h = jax.nn.silu(apply_conv(conv, upsample2(h)))
        return apply_conv(self.conv_out, h)[0]


class Critic(eqx.Module):
    conv_in: eqx.nn.Conv2d
    downs: list
    readout: eqx.nn.Linear

    def __init__(self, net: dict, *, key):
        w, n = int(net["width"]), int(net["up"])
        keys = jax.random.split(key, n + 2)
        self.conv_in = periodic_conv(1, w, keys[0])
        self.downs = [periodic_conv(w, w, k) for k in keys[1:n + 1]]
        self.readout = eqx.nn.Linear(w, 1, key=keys[-1])

    def __call__(self, x):
        h = jax.nn.leaky_relu(apply_conv(self.conv_in, x[None]), 0.2)
        for conv in self.downs:
            h = pool2(jax.nn.leaky_relu(apply_conv(conv, h), 0.2))
        return self.readout(h.mean(axis=(1, 2)))[0]


class _Pair(eqx.Module):
    generator: Generator
    critic: Critic


def _latent_shape(net: dict, shape) -> tuple:
    f = 2 ** int(net["up"])
    return (int(net["latent_channels"]), int(shape[0]) // f, int(shape[1]) // f)


class _WGANGPLoss(eqx.Module):
    latent_shape: tuple = eqx.field(static=True)
    gp_weight: float = eqx.field(static=True)

    def __call__(self, pair, x, key):
        k_z, k_u = jax.random.split(key)
        n = x.shape[0]
        z = jax.random.normal(k_z, (n, *self.latent_shape), x.dtype)
        gen, crit = pair.generator, pair.critic
        fake = jax.vmap(gen)(z)
        # the critic's loss sees the generator frozen, the generator's the critic frozen
        fake_d = jax.lax.stop_gradient(fake)
        d_real, d_fake = jax.vmap(crit)(x), jax.vmap(crit)(fake_d)
        u = jax.random.uniform(k_u, (n, 1, 1), x.dtype)
        x_hat = u * x + (1.0 - u) * fake_d
        grads = jax.vmap(jax.grad(crit))(x_hat)
        norms = jnp.sqrt(jnp.sum(grads * grads, axis=(-2, -1)) + 1e-12)
        gp = jnp.mean((norms - 1.0) ** 2)
        loss_d = jnp.mean(d_fake) - jnp.mean(d_real) + self.gp_weight * gp + _DRIFT * jnp.mean(d_real ** 2)
        frozen = jax.lax.stop_gradient(crit)
        loss_g = -jnp.mean(jax.vmap(frozen)(fake))
        return loss_d + loss_g, {"critic_loss": loss_d, "generator_loss": loss_g, "gradient_penalty": gp,
                                 "wasserstein": jnp.mean(d_real) - jnp.mean(d_fake)}


def _optimizer(cfg: GANConfig) -> optax.GradientTransformation:
    """Clipping then Adam(β₁ = 0, β₂ = 0.9) per player, the critic at ``critic_lr_ratio`` × the rate."""
    def adam(rate):
        warmup = min(cfg.warmup, max(cfg.steps - 1, 0))
        sched = optax.warmup_cosine_decay_schedule(0.0, rate, warmup, max(cfg.steps, warmup + 1), end_value=0.1 * rate)
        return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(sched, b1=0.0, b2=0.9))

    def labels(params):
        return _Pair(jax.tree_util.tree_map(lambda _: "generator", params.generator),
                     jax.tree_util.tree_map(lambda _: "critic", params.critic))

    return optax.multi_transform({"generator": adam(cfg.learning_rate),
                                  "critic": adam(cfg.learning_rate * cfg.critic_lr_ratio)}, labels)


def diversity_ratio(samples, truth, *, n_pairs: int = 2048, seed: int = 0) -> float:
    """Mean distance ‖a − b‖ between random pairs of generated fields over that of truth fields: ≈ 1
    when the model is as diverse as the truth, → 0 under mode collapse."""
    rng = np.random.default_rng(seed)

    def mean_pair_distance(x):
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        i, j = rng.integers(0, len(x), (2, n_pairs))
        keep = i != j
        return float(np.mean(np.linalg.norm(x[i[keep]] - x[j[keep]], axis=1)))

    return mean_pair_distance(samples) / mean_pair_distance(truth)


@eqx.filter_jit
def _generate(gen, z):
    return jax.vmap(gen)(z)


@register_model("gan")
class GANModel:
    """A periodic convolutional WGAN-GP; samples with the EMA generator."""

    fit_config = GANConfig

    def __init__(self, generator: Generator, critic: Critic, net: dict, shape, mean: float, std: float,
                 losses=None, curves: dict | None = None, training: dict | None = None):
        self.generator, self.critic, self.net = generator, critic, dict(net)
        self._shape = tuple(int(s) for s in shape)
        self.mean, self.std = float(mean), float(std)
        self.losses = np.zeros((0,), np.float32) if losses is None else np.asarray(losses, np.float32)
        self.curves = {k: np.asarray(v, np.float32) for k, v in (curves or {}).items()}
        self.training = dict(training or {})

    @property
    def field_shape(self):
        return self._shape

    @property
    def n_params(self) -> int:
        """Generator parameters (what samples); the critic's are in the fit record."""
        return count_params(self.generator)

    @classmethod
    def fit(cls, fields, *, key, progress=None, config: GANConfig | None = None, **options):
        """Train on ``fields`` ``(N, H, W)``; ``config`` / ``options``: :class:`GANConfig`."""
        cfg = config_from_options(GANConfig, config, options, "fit gan")
        x, mean, std = training_fields(fields, multiple=2 ** cfg.up, what=f"a GAN with up={cfg.up}")
        net = cfg.net_dict()
        k_g, k_d, k_train, k_eval = jax.random.split(key, 4)
        pair = _Pair(init_layers(eqx.filter_eval_shape(Generator, net, key=k_g), k_g),
                     init_layers(eqx.filter_eval_shape(Critic, net, key=k_d), k_d))
        fp = {"kind": "gan", "net": net, "shape": list(x.shape), "mean": mean, "std": std, "gp": cfg.gp_weight,
              "optimizer": {"adam_b1": 0.0, "adam_b2": 0.9, "critic_lr_ratio": cfg.critic_lr_ratio}}
        res = train(_WGANGPLoss(_latent_shape(net, x.shape[1:]), float(cfg.gp_weight)), pair, (x - mean) / std,
                    cfg.train_config(), key=k_train, progress=progress, checkpoint=cfg.checkpoint,
                    checkpoint_every=cfg.checkpoint_every, stop_at=cfg.stop_at, fingerprint=fp, desc="fit gan",
                    has_aux=True, optimizer=_optimizer(cfg), data_parallel=bool(cfg.data_parallel))
        model = cls(res.ema_model.generator, res.model.critic, net, x.shape[1:], mean, std, res.losses, res.aux)
        tail = max(1, len(res.losses) // 20)
        n_eval = min(256, len(x))
        s = np.asarray(model.sample(n_eval, key=k_eval))
        model.training = {"train_config": asdict(cfg.train_config()), "gp_weight": cfg.gp_weight,
                          "critic_lr_ratio": cfg.critic_lr_ratio,
                          "n_params_generator": count_params(pair.generator),
                          "n_params_critic": count_params(pair.critic), "steps_done": int(len(res.losses)),
                          **{f"final_{k}": float(v[-tail:].mean()) for k, v in res.aux.items()},
                          "mode_collapse": {"diversity_ratio": diversity_ratio(s, x[:n_eval]),
                                            "field_std_spread_ratio": float(np.std(s.std(axis=(1, 2))) /
                                                                            max(np.std(x[:n_eval].std(axis=(1, 2))), 1e-12)),
                                            "n_fields": n_eval}}
        return model

    def sample(self, n: int, *, key):
        """``n`` fields ``(n, H, W)``: G(z), z white noise on the latent grid, unstandardised."""
        n = check_int_at_least(n, "n", 1)
        z = jax.random.normal(key, (n, *_latent_shape(self.net, self._shape)), jnp.float32)
        out = [np.asarray(_generate(self.generator, z[s:s + 256])) for s in range(0, n, 256)]
        return jnp.asarray(self.mean + self.std * np.concatenate(out))

    def save(self, path):
        arrays = {"mean": np.float64(self.mean), "std": np.float64(self.std), "losses": self.losses}
        arrays.update({f"curves/{k}": v for k, v in self.curves.items()})
        return write_model_file(path, self.kind, config={"net": self.net, "shape": list(self._shape)}, arrays=arrays,
                                modules={"generator": self.generator, "critic": self.critic}, training=self.training)

    @classmethod
    def load(cls, path):
        f = read_model_file(path, cls.kind)
        try:
            net, shape = dict(f.config["net"]), tuple(int(s) for s in f.config["shape"])
            GANConfig(**net)
            mean, std = float(f.arrays["mean"]), float(f.arrays["std"])
        except (KeyError, TypeError, ValueError, ParameterError) as exc:
            raise ModelFileError(f"incomplete gan model file: {exc!r}", path=path) from None
        key = jax.random.PRNGKey(0)
        gen = f.module("generator", like=eqx.filter_eval_shape(Generator, net, key=key))
        crit = f.module("critic", like=eqx.filter_eval_shape(Critic, net, key=key))
        curves = {k[len("curves/"):]: v for k, v in f.arrays.items() if k.startswith("curves/")}
        return cls(gen, crit, net, shape, mean, std, f.arrays.get("losses"), curves, f.training)
