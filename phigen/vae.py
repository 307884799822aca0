"""The registered ``vae`` model: a variational autoencoder on periodic fields (Kingma and Welling 2014).

Generative model on standardised fields ``x̃ = (x − m)/σ``: ``z ~ N(0, I)``, ``x̃ | z ~ N(D(z), s² I)``
with D a periodic convolutional decoder and ``s`` one learned noise scale. Inference model
``q(z | x̃) = N(μ(x̃), diag e^{ℓ(x̃)})`` with a periodic convolutional encoder. Training maximises the
evidence lower bound with the reparameterisation ``z = μ + e^{ℓ/2} ε``:

    ELBO(x̃) = E_q[log p(x̃ | z)] − KL(q(z | x̃) ‖ N(0, I)) ≤ log p(x̃),

``KL = ½ Σ (μ² + e^ℓ − 1 − ℓ)``, ``log p(x̃|z) = −½ Σ [(x̃ − D(z))²/s² + log 2π s²]``. In field units
``ELBO(x) = ELBO(x̃) − V log σ`` (:meth:`VAEModel.elbo`). The loss is −ELBO per site.

Latent (``latent``): ``spatial`` — ``latent_channels`` maps at ``1/2^down`` of the field's side
(translation-equivariant; the decoder is a stack of periodic convolutions and up-samplings), or
``global`` — one ``latent_dim`` vector (the encoder pools the whole field, the decoder starts from a
learned linear map to the coarse grid). Samples include the observation noise ``s ε`` unless
``noise=False`` (the decoder mean: smoother fields, the usual VAE picture, not the model's law).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._validation import as_fields, check_int_at_least
from .errors import InputError, ModelFileError, ParameterError
from .models._base import config_from_options, read_model_file, register_model, write_model_file
from .nn.conv import apply_conv, periodic_conv, pool2, upsample2
from .nn.data import training_fields
from .nn.init import count_params, init_layers
from .nn.train import TrainConfig, train
from .samplers._rng import standard_normal

__all__ = ["VAEConfig", "VAE", "VAEModel", "elbo_terms"]

LATENTS = ("spatial", "global")


@dataclass(frozen=True)
class VAEConfig:
    """Options of ``fit vae``: network shape (``width`` channels, ``down`` poolings by 2, ``latent``
    ``spatial`` with ``latent_channels`` or ``global`` with ``latent_dim``), the training settings
    (:class:`phigen.nn.TrainConfig`) and resumable training (``checkpoint``, ``checkpoint_every``,
    ``stop_at``)."""

    width: int = 32
    down: int = 2
    latent: str = "spatial"
    latent_channels: int = 4
    latent_dim: int = 64
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup: int = 100
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    chunk: int = 50
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    stop_at: int | None = None
    data_parallel: bool = False  # split each batch over every device of every process (docs/scale_out.md)

    def __post_init__(self):
        check_int_at_least(self.width, "width", 1)
        check_int_at_least(self.down, "down", 0)
        check_int_at_least(self.latent_channels, "latent_channels", 1)
        check_int_at_least(self.latent_dim, "latent_dim", 1)
        if self.latent not in LATENTS:
            raise ParameterError(f"latent must be one of {LATENTS}; got {self.latent!r}")

    def net_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("width", "down", "latent", "latent_channels", "latent_dim")}

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


class VAE(eqx.Module):
    """Encoder and decoder of one field ``(H, W)``; see the module docstring."""

    enc: list
    enc_out: eqx.Module
    dec_in: eqx.Module
    dec: list
    dec_out: eqx.nn.Conv2d
    log_noise: jax.Array
    shape: tuple = eqx.field(static=True)
    down: int = eqx.field(static=True)
    latent: str = eqx.field(static=True)
    latent_channels: int = eqx.field(static=True)

    def __init__(self, net: dict, shape, *, key):
        w, d = int(net["width"]), int(net["down"])
        keys = iter(jax.random.split(key, 4 * d + 8))
        self.shape, self.down, self.latent = tuple(int(s) for s in shape), d, net["latent"]
        coarse = (self.shape[0] >> d) * (self.shape[1] >> d)
        self.enc = [periodic_conv(1, w, next(keys))] + [periodic_conv(w, w, next(keys)) for _ in range(d)]
        self.dec = [periodic_conv(w, w, next(keys)) for _ in range(d)]
        self.dec_out = periodic_conv(w, 1, next(keys))
        if self.latent == "spatial":
            c = self.latent_channels = int(net["latent_channels"])
            self.enc_out = periodic_conv(w, 2 * c, next(keys), kernel=1)
            self.dec_in = periodic_conv(c, w, next(keys))
        else:
            k = int(net["latent_dim"])
            self.latent_channels = k
            self.enc_out = eqx.nn.Linear(w, 2 * k, key=next(keys))
            self.dec_in = eqx.nn.Linear(k, w * coarse, key=next(keys))
        self.log_noise = jnp.zeros((), jnp.float32)

    @property
    def latent_shape(self) -> tuple:
        if self.latent == "global":
            return (self.latent_channels,)
        return (self.latent_channels, self.shape[0] >> self.down, self.shape[1] >> self.down)

    def encode(self, x):
        """``(μ, ℓ)`` of q(z | x) for one standardised field ``(H, W)``."""
        h = jax.nn.silu(apply_conv(self.enc[0], x[None]))
        for conv in self.enc[1:]:
            h = pool2(jax.nn.silu(apply_conv(conv, h)))
        if self.latent == "global":
            out = self.enc_out(h.mean(axis=(1, 2)))
        else:
            out = apply_conv(self.enc_out, h)
        mu, logvar = jnp.split(out, 2)
        return mu, jnp.clip(logvar, -12.0, 6.0)

    def decode(self, z):
        """Decoder mean ``D(z)`` ``(H, W)`` of one latent."""
        h0, w0 = self.shape[0] >> self.down, self.shape[1] >> self.down
        if self.latent == "global":
            h = self.dec_in(z).reshape(-1, h0, w0)
        else:
            h = apply_conv(self.dec_in, z)
        for conv in self.dec:
            h = jax.nn.silu(apply_conv(conv, upsample2(jax.nn.silu(h))))
        return apply_conv(self.dec_out, jax.nn.silu(h))[0]


def elbo_terms(vae: VAE, x, key):
    """``(reconstruction log-likelihood (N,), KL (N,))`` of a batch of standardised fields, one
    reparameterised latent draw each; ELBO = first − second."""
    mu, logvar = jax.vmap(vae.encode)(x)
    eps = jax.random.normal(key, mu.shape, mu.dtype)
    z = mu + jnp.exp(0.5 * logvar) * eps
    mean = jax.vmap(vae.decode)(z)
    s2 = jnp.exp(2.0 * vae.log_noise)
    v = x.shape[-1] * x.shape[-2]
    rec = -0.5 * jnp.sum((x - mean) ** 2, axis=(-2, -1)) / s2 - 0.5 * v * (math.log(2 * math.pi) + 2.0 * vae.log_noise)
    axes = tuple(range(1, mu.ndim))
    kl = 0.5 * jnp.sum(mu * mu + jnp.exp(logvar) - 1.0 - logvar, axis=axes)
    return rec, kl


class _NegativeELBO(eqx.Module):
    def __call__(self, vae, x, key):
        rec, kl = elbo_terms(vae, x, key)
        v = x.shape[-1] * x.shape[-2]
        return -jnp.mean(rec - kl) / v, {"reconstruction": -jnp.mean(rec) / v, "kl": jnp.mean(kl) / v}


def _make_vae(net: dict, shape, key) -> VAE:
    vae = init_layers(eqx.filter_eval_shape(VAE, net, shape, key=key), key)
    return eqx.tree_at(lambda v: v.log_noise, vae, jnp.zeros((), jnp.float32))


@eqx.filter_jit
def _elbo_batch(vae, x, key):
    rec, kl = elbo_terms(vae, x, key)
    return rec - kl


@eqx.filter_jit
def _decode_batch(vae, z, noise_key, noise: bool):
    mean = jax.vmap(vae.decode)(z)
    if not noise:
        return mean
    return mean + jnp.exp(vae.log_noise) * standard_normal(noise_key, mean.shape, mean.dtype)


@register_model("vae")
class VAEModel:
    """A variational autoencoder with periodic convolutions, Gaussian latent and Gaussian decoder."""

    fit_config = VAEConfig

    def __init__(self, vae: VAE, net: dict, mean: float, std: float, losses=None, training=None):
        self.vae, self.net = vae, dict(net)
        self.mean, self.std = float(mean), float(std)
        self.losses = np.zeros((0,), np.float32) if losses is None else np.asarray(losses, np.float32)
        self.training = dict(training or {})

    @property
    def field_shape(self):
        return tuple(self.vae.shape)

    @property
    def n_params(self) -> int:
        return count_params(self.vae)

    @classmethod
    def fit(cls, fields, *, key, progress=None, config: VAEConfig | None = None, **options):
        """Maximise the ELBO on ``fields`` ``(N, H, W)``; ``config`` / ``options``: :class:`VAEConfig`."""
        cfg = config_from_options(VAEConfig, config, options, "fit vae")
        x, mean, std = training_fields(fields, multiple=2 ** cfg.down, what=f"a VAE with down={cfg.down}")
        k_net, k_train, k_eval = jax.random.split(key, 3)
        net = cfg.net_dict()
        vae = _make_vae(net, x.shape[1:], k_net)
        fp = {"kind": "vae", "net": net, "shape": list(x.shape), "mean": mean, "std": std}
        res = train(_NegativeELBO(), vae, (x - mean) / std, cfg.train_config(), key=k_train, progress=progress,
                    checkpoint=cfg.checkpoint, checkpoint_every=cfg.checkpoint_every, stop_at=cfg.stop_at,
                    fingerprint=fp, desc="fit vae", has_aux=True,
                    data_parallel=bool(cfg.data_parallel))
        model = cls(res.ema_model, net, mean, std, res.losses)
        tail = max(1, len(res.losses) // 20)
        model.training = {"train_config": asdict(cfg.train_config()), "n_params": count_params(vae),
                          "initial_loss": float(res.losses[:tail].mean()), "final_loss": float(res.losses[-tail:].mean()),
                          "steps_done": int(len(res.losses)), "loss_units": "-ELBO nats per site (standardised)",
                          "final_kl_per_site": float(res.aux["kl"][-tail:].mean()),
                          "final_reconstruction_per_site": float(res.aux["reconstruction"][-tail:].mean()),
                          "train_elbo_per_site": float(np.mean(model.elbo(x[:256], key=k_eval)) / np.prod(x.shape[1:])),
                          "noise_scale": float(np.exp(res.ema_model.log_noise)) * std}
        return model

    def elbo(self, fields, *, key):
        """ELBO ``(N,)`` of ``fields`` in field units (one latent draw each; ≤ log p(x) of the model)."""
        x = as_fields(fields, name="fields")
        if tuple(x.shape[1:]) != self.field_shape:
            raise InputError(f"fields of shape {x.shape[1:]} do not match the VAE's {self.field_shape}")
        v = x.shape[-1] * x.shape[-2]
        out = [np.asarray(_elbo_batch(self.vae, jnp.asarray((x[s:s + 256] - self.mean) / self.std),
                                      jax.random.fold_in(key, i)), np.float64)
               for i, s in enumerate(range(0, len(x), 256))]
        return np.concatenate(out) - v * math.log(self.std)

    def sample(self, n: int, *, key, noise: bool = True):
        """``n`` fields ``(n, H, W)``: ``z ~ N(0, I)``, decoder mean plus (with ``noise``) ``s ε``."""
        n = check_int_at_least(n, "n", 1)
        k_z, k_x = jax.random.split(key)
        z = jax.random.normal(k_z, (n, *self.vae.latent_shape), jnp.float32)
        out = [np.asarray(_decode_batch(self.vae, z[s:s + 256], jax.random.fold_in(k_x, s), bool(noise)))
               for s in range(0, n, 256)]
        return jnp.asarray(self.mean + self.std * np.concatenate(out))

    def save(self, path):
        return write_model_file(path, self.kind, config={"net": self.net, "shape": list(self.field_shape)},
                                arrays={"mean": np.float64(self.mean), "std": np.float64(self.std),
                                        "losses": self.losses}, modules={"vae": self.vae}, training=self.training)

    @classmethod
    def load(cls, path):
        f = read_model_file(path, cls.kind)
        try:
            net, shape = dict(f.config["net"]), tuple(int(s) for s in f.config["shape"])
            VAEConfig(**net)  # validates
            mean, std = float(f.arrays["mean"]), float(f.arrays["std"])
        except (KeyError, TypeError, ValueError, ParameterError) as exc:
            raise ModelFileError(f"incomplete vae model file: {exc!r}", path=path) from None
        skeleton = eqx.filter_eval_shape(VAE, net, shape, key=jax.random.PRNGKey(0))
        return cls(f.module("vae", like=skeleton), net, mean, std, f.arrays.get("losses"), f.training)
