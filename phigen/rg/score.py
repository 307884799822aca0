"""WSGM: wavelet score-based generative model (docs/rg_wsgm.md; Guth, Lempereur, Bruna, Mallat).

The field is factorised over a periodic orthogonal DWT (:mod:`phigen.rg.factor`),

    p(x) = p(x_J) · Π_{j=1..J} p̄_j(d̃_j | x̃_j),

with normalised details d̃_j ``(3, h_j, w_j)`` (per level and channel) and normalised coarse fields
x̃_j. Each conditional is a score diffusion of its own (the OU process of :mod:`phigen.diffusion.sde`,
``d_t = a d̃ + s z``, a = e^{−t}, s² = 1 − a²) whose velocity ``v = a z − s d̃`` is predicted by a
small periodic CNN that sees the 3 noisy detail channels and x̃_j:

    v̂_j(d_t, x̃_j, t) : (3, h, w) × (h, w) × R → (3, h, w),

``layers`` 3×3 circular convolutions (receptive field ``(2·layers + 1)²`` pixels of level j), width
``width``, GroupNorm + SiLU and a FiLM embedding of ``c = log(t)/4``. Trained by denoising score
matching (``dsm_loss``) on the training set's pairs (d̃_j, x̃_j) with :func:`phigen.diffusion.train`.
The coarsest field x̃_J has its own model: the baseline :class:`~phigen.diffusion.models.DiffusionModel`
(default) or the :class:`~phigen.models.GaussianSpectrumModel`.

Sampling goes coarse to fine: x_J from the coarse model, then for j = J … 1 a reverse diffusion of
``nfe`` network evaluations (probability-flow ODE or reverse SDE by DPM-Solver++(2M) in the
variance-exploding variables — the baseline's Heun / Euler–Maruyama need many more steps — and a final
Tweedie step) conditioned on x̃_j, and ``x_{j−1} = refine(x_j, d̃_j)``. Every level uses the same
``nfe``, so one field costs ``nfe · Σ_j h_j w_j ≤ nfe · H W / 3`` pixel-evaluations (plus the coarse
model's): linear in the number of pixels (:meth:`WSGMModel.sampling_cost`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_fields, check_int_at_least
from ..diffusion.models import DiffusionModel, diffusion_velocity_fn
from ..diffusion.sde import (OUProcess, SamplerInfo, dsm_loss, ou_mean_std, probability_flow_sample,
                             reverse_sde_sample, score_from_velocity, time_grid, tweedie_denoise)
from ..diffusion.unet import UNet, UNetConfig
from ..nn import TrainConfig, apply_conv, count_params, group_norm, periodic_conv, sinusoidal_features, train
from ..errors import InputError, ModelFileError, ParameterError
from ..models._base import config_from_options, read_model_file, register_model, write_model_file
from ..models.gaussian import GaussianSpectrumModel
from ._shifts import level_shifts, shifted_fields
from .factor import WaveletFactorisation, per_scale_std
from ..samplers._rng import standard_normal

__all__ = ["WSGMConfig", "ScoreNetConfig", "ConditionalScoreNet", "make_score_net", "apply_score_net", "level_loss",
           "level_training_data", "train_level", "shift_augment", "sampling_times", "dpm_solver_sample",
           "reverse_diffusion", "nfe_steps", "sample_level", "WSGMModel", "COARSE_MODELS", "SAMPLERS", "TIME_GRIDS"]

COARSE_MODELS = ("diffusion", "gaussian")
DEFAULT_NFE = 9  # per level: 8 DPM-Solver steps + the Tweedie step


# --- the conditional network ------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreNetConfig:
    """Shape of a :class:`ConditionalScoreNet`.

    width: channels of the hidden layers; layers: 3×3 convolutions in all (input, ``layers − 2``
    residual layers, output; receptive field ``(2·layers + 1)²`` pixels of the level); groups:
    GroupNorm groups (reduced to a divisor of ``width``); emb_dim: noise-level embedding size
    (default ``2·width``).
    """

    width: int = 32
    layers: int = 6
    groups: int = 8
    emb_dim: int | None = None

    def __post_init__(self):
        check_int_at_least(self.width, "width", 1)
        check_int_at_least(self.layers, "layers", 2)
        check_int_at_least(self.groups, "groups", 1)
        if self.emb_dim is not None:
            check_int_at_least(self.emb_dim, "emb_dim", 2)

    @property
    def embedding(self) -> int:
        return int(self.emb_dim or 2 * self.width)

    @property
    def receptive_field(self) -> int:
        return 2 * self.layers + 1

    def to_dict(self) -> dict:
        return asdict(self)


class _ResLayer(eqx.Module):
    """``h ↦ h + conv(silu(norm(h)·(1 + γ(e)) + β(e)))``: one 3×3 convolution, FiLM-conditioned on the
    noise embedding e (scale and shift, so the layer can change its gain with the noise level)."""

    norm: eqx.nn.GroupNorm
    film: eqx.nn.Linear
    conv: eqx.nn.Conv2d

    def __init__(self, width, emb_dim, groups, *, key):
        k1, k2 = jax.random.split(key)
        self.norm = group_norm(width, groups)
        self.film = eqx.nn.Linear(emb_dim, 2 * width, key=k1)
        self.conv = periodic_conv(width, width, k2)

    def __call__(self, h, emb):
        gamma, beta = jnp.split(self.film(emb), 2)
        u = self.norm(h) * (1.0 + gamma[:, None, None]) + beta[:, None, None]
        return h + apply_conv(self.conv, jax.nn.silu(u))


class ConditionalScoreNet(eqx.Module):
    """Velocity of one level: ``(details (3, h, w), coarse (h, w), c) -> (3, h, w)``.

    Periodic and translation-equivariant (circular convolutions; GroupNorm statistics are field
    averages), so it applies to fields of any size. The output convolution starts at zero: an
    untrained network predicts v = 0, i.e. the score −d of N(0, I) (white details, never a blow-up).
    """

    emb1: eqx.nn.Linear
    emb2: eqx.nn.Linear
    conv_in: eqx.nn.Conv2d
    blocks: list
    norm_out: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d
    n_freq: int = eqx.field(static=True)

    def __init__(self, config: ScoreNetConfig, *, key):
        c, e = config.width, config.embedding
        keys = jax.random.split(key, 4 + config.layers)
        self.n_freq = max(1, e // 4)
        self.emb1 = eqx.nn.Linear(2 * self.n_freq, e, key=keys[0])
        self.emb2 = eqx.nn.Linear(e, e, key=keys[1])
        self.conv_in = periodic_conv(4, c, keys[2])
        self.blocks = [_ResLayer(c, e, config.groups, key=k) for k in keys[4:4 + config.layers - 2]]
        self.norm_out = group_norm(c, config.groups)
        conv_out = periodic_conv(c, 3, keys[3])
        self.conv_out = eqx.tree_at(lambda m: (m.weight, m.bias), conv_out,
                                    (jnp.zeros_like(conv_out.weight), jnp.zeros_like(conv_out.bias)))

    def __call__(self, details, coarse, c):
        if details.ndim != 3 or details.shape[0] != 3 or coarse.shape != details.shape[1:]:
            raise InputError(f"ConditionalScoreNet takes details (3, h, w) and a coarse field (h, w); got "
                             f"{details.shape} and {coarse.shape} (map over a batch with apply_score_net)")
        # the same sinusoidal embedding of c as the baseline UNet (fixed frequencies 1 … 1000)
        emb = self.emb2(jax.nn.silu(self.emb1(sinusoidal_features(c, self.n_freq, details.dtype))))
        h = apply_conv(self.conv_in, jnp.concatenate([details, coarse[None]], axis=0))
        for block in self.blocks:
            h = block(h, emb)
        return apply_conv(self.conv_out, jax.nn.silu(self.norm_out(h)))


def make_score_net(config: ScoreNetConfig | None = None, *, key, **overrides) -> ConditionalScoreNet:
    """A :class:`ConditionalScoreNet` from ``config`` (or ``ScoreNetConfig(**overrides)``)."""
    if config is None:
        config = ScoreNetConfig(**overrides)
    elif overrides:
        raise ParameterError("pass either a ScoreNetConfig or keyword overrides, not both")
    return ConditionalScoreNet(config, key=key)


def _condition(t):
    return jnp.log(t) / 4.0  # as the baseline: t in [1e-3, 5] -> c in [-1.7, 0.4]


def apply_score_net(net: ConditionalScoreNet, details, coarse, t):
    """``net`` on a batch: details ``(N, 3, h, w)``, coarse ``(N, h, w)``, t scalar or ``(N,)``."""
    c = _condition(jnp.asarray(t, details.dtype))
    return jax.vmap(net, in_axes=(0, 0, 0 if c.ndim else None))(details, coarse, c)


# --- training ----------------------------------------------------------------------------------------
def level_training_data(factor: WaveletFactorisation, fields, level: int, shifts: int = 1):
    """Training pairs of one level packed as ``(N·m, 4, h, w)``: the 3 normalised detail channels d̃_j,
    then the normalised coarse field x̃_j (what :func:`level_loss` unpacks), for the ``fields`` under
    m = min(4^(level−1), shifts) distinct periodic shifts (:func:`phigen.rg._shifts.level_shifts`):
    shifts that are not multiples of 2^level give new coefficients of the same joint law."""
    coarse, details = factor.level_data(shifted_fields(fields, level_shifts(level, shifts)), level)
    return jnp.concatenate([details, factor.normalise_coarse(coarse, level)[:, None]], axis=1)


def level_loss(net, packed, key, process: OUProcess = OUProcess()):
    """Denoising score-matching loss (v-prediction, :func:`~phigen.diffusion.sde.dsm_loss`) of one level
    on packed pairs ``(N, 4, h, w)``; only the 3 detail channels are noised, x̃_j conditions."""
    n, _, h, w = packed.shape
    details, coarse = packed[:, :3], packed[:, 3]

    # dsm_loss broadcasts a(t), s(t) over (N, H, W) arrays: view the details (N, 3, h, w) as (N, 3h, w)
    def velocity(x_t, t):
        return apply_score_net(net, x_t.reshape(n, 3, h, w), coarse, t).reshape(n, 3 * h, w)

    return dsm_loss(velocity, details.reshape(n, 3 * h, w), key, process)


class _LevelLoss(eqx.Module):
    process: OUProcess = eqx.field(static=True)

    def __call__(self, net, packed, key):
        return level_loss(net, packed, key, self.process)


def train_level(factor: WaveletFactorisation, fields, level: int, net_config: ScoreNetConfig,
                config: TrainConfig, *, key, process: OUProcess = OUProcess(), progress=None, shifts: int = 1,
                data_parallel=False):
    """Fit the conditional network of ``level`` (1 = finest) on :func:`level_training_data` (with
    ``shifts``); returns the ``TrainResult`` (use ``ema_model``)."""
    k_net, k_train = jax.random.split(key)
    net = make_score_net(net_config, key=k_net)
    data = level_training_data(factor, fields, level, shifts)
    return train(_LevelLoss(process), net, data, config, key=k_train, progress=progress,
                 desc=f"fit wsgm level {level}", data_parallel=data_parallel)


# --- sampling ----------------------------------------------------------------------------------------
# Few-step integrators. The baseline's Heun / Euler–Maruyama steps (phigen.diffusion.sde) integrate in x and
# t, where the score's stiffness 1/s² ≈ 1/(2t) makes any step with t/t_next ≳ 5 overshoot: with 1-7 steps
# from t = 5 to 10⁻³ they blow up or bias the variance (measured on φ⁴ 64²: per-scale std ×15 at nfe = 4,
# ×1.2 at nfe = 8). In the variance-exploding variables y = x/a, σ = s/a = √(e^{2t} − 1) and λ = −log σ the
# probability flow is dy/dλ = D(y, σ) − y, with D Tweedie's denoiser; integrating the linear part exactly
# and D by its linear extrapolation in λ from the last two evaluations is DPM-Solver++(2M) (Lu et al. 2022):
# second order, ONE evaluation per step, exact wherever D is constant (σ ≫ 1: the mean; σ ≪ 1: the field).
# With the exact score of 16² Gaussian fields and 9 evaluations it is within 2-12 % per spectral shell where
# the baseline's Heun is off by 40-270 % (the P(k) ∝ k⁻² and white cases of tests/test_rg_score.py).
SAMPLERS = ("ode", "sde", "ou-ode", "ou-sde")
TIME_GRIDS = ("lambda", "karras", "log", "uniform", "quadratic")


def _sigma(t):
    return jnp.sqrt(jnp.expm1(2.0 * jnp.asarray(t, jnp.float32)))  # s/a, accurate at small t


def sampling_times(n_steps: int, t_min: float = 1e-3, t_max: float = 5.0, kind: str = "lambda",
                   rho: float = 7.0) -> np.ndarray:
    """Decreasing OU times ``t_max = t_0 > … > t_n = t_min`` (float32, n + 1 values).

    With σ = √(e^{2t} − 1): ``lambda``: equal steps in log σ (the natural variable of the exponential
    integrators); ``karras``: equal steps in σ^{1/ρ} (Karras et al. 2022); ``log`` | ``uniform`` |
    ``quadratic``: the baseline's :func:`phigen.diffusion.sde.time_grid` in t.
    """
    if kind not in TIME_GRIDS:
        raise ParameterError(f"unknown time grid {kind!r}; choose one of {', '.join(TIME_GRIDS)}")
    if kind not in ("lambda", "karras"):
        return time_grid(n_steps, t_min, t_max, kind)
    base = time_grid(n_steps, t_min, t_max, "uniform")  # validates n_steps, t_min, t_max
    lo, hi = (float(np.sqrt(np.expm1(2.0 * float(t)))) for t in (base[-1], base[0]))
    u = np.linspace(0.0, 1.0, len(base))
    if kind == "lambda":
        sig = np.exp(np.log(hi) + u * (np.log(lo) - np.log(hi)))
    else:
        sig = (hi ** (1 / rho) + u * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    t = 0.5 * np.log1p(sig**2)
    t[0], t[-1] = base[0], base[-1]
    return t.astype(np.float32)


def _denoiser(score):
    """Tweedie's ``D(y, t) = E[x₀ | x_t = a y]`` in the variance-exploding variable y = x/a."""

    def denoise(y, t):
        a, _ = ou_mean_std(t)
        return tweedie_denoise(score, a * y, t)

    return denoise


def dpm_solver_sample(score, x_T, times, *, key=None, denoise: bool = True):
    """DPM-Solver++(2M) along ``times`` (decreasing OU times) from ``x_T`` ``(N, …)`` at ``times[0]``.

    With h = log(σ_i/σ_{i+1}), D_i = D(y_i, σ_i) and the extrapolation D' = (1 + k)D_i − k D_{i−1},
    k = h_i/(2h_{i−1}) (k = 0 at the first step):

    - ``key=None`` (probability-flow ODE): ``y_{i+1} = e^{−h} y_i + (1 − e^{−h}) D'``;
    - with ``key`` (reverse SDE, SDE-DPM-Solver++(2M), midpoint form): ``y_{i+1} = e^{−2h} y_i
      + (1 − e^{−2h}) D_i + ½(1 − e^{−2h})(D_i − D_{i−1})·h/h_{i−1} + σ_{i+1}√(1 − e^{−2h}) ξ``; its
      first-order part is the exact posterior step of a point mass at D_i (DDPM's ancestral step).

    ``len(times) − 1`` score evaluations, plus 1 for ``denoise`` (the last step to σ = 0: Tweedie at
    ``times[-1]``). ``score(x, t)`` as the baseline samplers. Returns ``(x, SamplerInfo)`` in the OU variable.
    """
    times = jnp.asarray(times, jnp.float32)
    if times.ndim != 1 or times.shape[0] < 2:
        raise ParameterError(f"times must be a 1D grid of at least 2 values; got shape {times.shape}")
    D = _denoiser(score)
    stochastic = key is not None
    keys = jax.random.split(key if stochastic else jax.random.PRNGKey(0), times.shape[0] - 1)

    def body(carry, inp):
        y, d_prev, h_prev = carry
        k, t, t_next = inp
        sig, sig_next = _sigma(t), _sigma(t_next)
        h = jnp.log(sig / sig_next)
        d = D(y, t)
        if stochastic:
            e2 = -jnp.expm1(-2.0 * h)  # 1 − e^{−2h}
            y = ((sig_next / sig) * jnp.exp(-h) * y + e2 * d + 0.5 * e2 * (h / h_prev) * (d - d_prev)
                 + sig_next * jnp.sqrt(e2) * standard_normal(k, y.shape, y.dtype))
        else:
            c = h / (2.0 * h_prev)
            y = (sig_next / sig) * y - jnp.expm1(-h) * ((1.0 + c) * d - c * d_prev)
        return (y, d, h), SamplerInfo(jnp.sqrt(jnp.mean(y**2)))

    y0 = jnp.asarray(x_T, jnp.float32) / ou_mean_std(times[0])[0]
    # h_prev = ∞ turns the first step into the first-order one (no previous D)
    (y, _, _), info = jax.lax.scan(body, (y0, jnp.zeros_like(y0), jnp.float32(jnp.inf)),
                                   (keys, times[:-1], times[1:]))
    if denoise:
        return D(y, times[-1]), info
    return ou_mean_std(times[-1])[0] * y, info


def reverse_diffusion(score, x_T, key, times, sampler: str = "ode", denoise: bool = True):
    """x₀ from x_T ``(N, …)`` along ``times`` with ``sampler``: ``ode`` / ``sde`` (:func:`dpm_solver_sample`,
    deterministic / stochastic), ``ou-ode`` / ``ou-sde`` (the baseline's Heun / Euler–Maruyama in x and t,
    :mod:`phigen.diffusion.sde`); all end with Tweedie's step if ``denoise``."""
    if sampler in ("ode", "sde"):
        return dpm_solver_sample(score, x_T, times, key=key if sampler == "sde" else None, denoise=denoise)[0]
    if sampler == "ou-sde":
        x, _ = reverse_sde_sample(score, x_T, key, times)
    elif sampler == "ou-ode":
        x, _ = probability_flow_sample(score, x_T, times)
    else:
        raise ParameterError(f"wsgm sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    return tweedie_denoise(score, x, times[-1]) if denoise else x


def nfe_steps(nfe: int, sampler: str, denoise: bool = True) -> tuple[int, int]:
    """``(time steps, network evaluations actually used)`` for a budget of ``nfe`` evaluations: Heun
    (``ou-ode``) takes 2 per step, DPM-Solver (``ode``, ``sde``) and Euler–Maruyama (``ou-sde``) 1, the final
    Tweedie step 1 (as the baseline counts them)."""
    if sampler not in SAMPLERS:
        raise ParameterError(f"wsgm sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    per_step = 2 if sampler == "ou-ode" else 1
    nfe = check_int_at_least(nfe, "nfe", per_step + int(bool(denoise)))
    steps = (nfe - int(bool(denoise))) // per_step
    return steps, steps * per_step + int(bool(denoise))


@eqx.filter_jit
def sample_level(net: ConditionalScoreNet, coarse_normalised, noise, key, times, sampler: str, denoise: bool):
    """Normalised details ``(N, 3, h, w)`` of one level given x̃_j ``(N, h, w)``: reverse diffusion
    (:func:`reverse_diffusion`) along ``times`` from ``noise`` ``(N, 3, h, w)``."""
    score = score_from_velocity(lambda d, t: apply_score_net(net, d, coarse_normalised, t))
    return reverse_diffusion(score, noise, key, times, sampler, denoise)


@eqx.filter_jit
def _sample_coarse_unet(net: UNet, noise, key, times, sampler: str, denoise: bool):
    score = score_from_velocity(diffusion_velocity_fn(net))
    return reverse_diffusion(score, noise, key, times, sampler, denoise)


def shift_augment(fields, key, max_fields: int = 16384):
    """Periodic shifts of each field ``(N, h, w)`` → ``(N·m, h, w)``, m = min(h·w, max(1, max_fields // N))
    distinct shifts per field drawn from ``key`` (all of them when m = h·w).

    Shifts of x_J are exact symmetries of a stationary field's coarse field (shifting the field by 2^J
    pixels shifts x_J by one: the periodic DWT commutes with those shifts), but the coarse UNet is only
    equivariant to shifts by its pooling factor. Measured on the 256 coarse fields (8×8) of critical φ⁴
    64², 500 steps, ODE sampler at 9-33 evaluations: U₄ of the samples 0.55-0.575 without, 0.58-0.59 with
    (truth 0.608 ± 0.006); with 1500 steps and augmentation 0.600-0.607.
    """
    x = np.asarray(fields)
    n, h, w = x.shape
    m = min(h * w, max(1, int(max_fields) // n))
    shifts = np.asarray(jnp.argsort(jax.random.uniform(key, (n, h * w)), axis=1)[:, :m])  # distinct per field
    iy = (np.arange(h) - (shifts // w)[..., None]) % h  # (n, m, h): out[i, k, y, x] = x[i, y − dy, x − dx]
    ix = (np.arange(w) - (shifts % w)[..., None]) % w
    return x[np.arange(n)[:, None, None, None], iy[..., :, None], ix[..., None, :]].reshape(n * m, h, w)


def _coarse_depth(shape, max_depth: int = 3) -> int:
    """Deepest UNet (≤ ``max_depth`` resolutions) whose coarsest grid is ≥ 2 pixels on x_J of ``shape``."""
    depth = 1
    while depth < max_depth and all(s % 2**depth == 0 and s // 2**depth >= 2 for s in shape):
        depth += 1
    return depth


def _parse_shape(shape) -> tuple[int, int]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"shape must be (H, W); got {shape!r}") from None
    if len(out) != 2 or min(out) < 1 or any(int(s) != s for s in shape):
        raise ParameterError(f"shape must be two positive integers (H, W); got {shape!r}")
    return out


# --- the registered model ----------------------------------------------------------------------------
@dataclass(frozen=True)
class WSGMConfig:
    """Options of :meth:`WSGMModel.fit` (docs/rg_wsgm.md).

    ``J``, ``wavelet``: the factorisation. Training of each level's score network (``steps`` training
    steps per level, ``batch_size`` fields per batch at the finest level — level j uses
    ``batch_size · 4^{j−1}`` so every step sees as many coefficients —, ``learning_rate``, ``warmup``,
    ``ema_decay``, ``grad_clip``, ``chunk``: :class:`~phigen.diffusion.train.TrainConfig`); ``shifts``:
    level j is trained on the fields under min(4^(j−1), shifts) periodic shifts (1: off; without them
    the coarse levels overfit their few small fields). The network: ``width``, ``layers``, ``groups``,
    ``emb_dim`` (:class:`ScoreNetConfig`); the diffusion times ``t_min``, ``t_max``. The coarse model
    ``coarse``: ``"diffusion"`` (a UNet of ``coarse_width`` and ``coarse_depth`` — default the deepest
    that fits x_J, at most 3 — trained ``coarse_steps`` steps, default 3·``steps``, batch
    ``coarse_batch_size``, on up to ``coarse_augment`` periodic shifts of the training x_J, 0: none)
    or ``"gaussian"`` (the stationary Gaussian of x_J's 2D spectrum).
    """

    J: int | None = None
    wavelet: str = "db4"
    steps: int = 500
    batch_size: int = 8
    learning_rate: float = 2e-3
    warmup: int = 50
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    chunk: int = 50
    shifts: int = 16
    width: int = 32
    layers: int = 6
    groups: int = 8
    emb_dim: int | None = None
    t_min: float = 1e-3
    t_max: float = 5.0
    coarse: str = "diffusion"
    coarse_steps: int | None = None
    coarse_batch_size: int = 32
    coarse_width: int = 16
    coarse_depth: int | None = None
    coarse_augment: int = 16384
    data_parallel: bool = False  # split each batch over every device of every process (docs/scale_out.md)

    def __post_init__(self):
        if self.coarse not in COARSE_MODELS:
            raise ParameterError(f"coarse must be one of {', '.join(COARSE_MODELS)}; got {self.coarse!r}")
        TrainConfig(batch_size=self.batch_size, **self.train_base())  # validate every option before any training
        check_int_at_least(self.shifts, "shifts", 1)
        check_int_at_least(self.coarse_augment, "coarse_augment", 0)
        if self.coarse == "diffusion":
            TrainConfig(**{**self.train_base(), "steps": self.coarse_train_steps,
                           "batch_size": self.coarse_batch_size})

    def train_base(self) -> dict:
        """The TrainConfig fields shared by every level (all but the batch size)."""
        return dict(steps=self.steps, learning_rate=self.learning_rate, warmup=self.warmup, ema_decay=self.ema_decay,
                    grad_clip=self.grad_clip, chunk=self.chunk)

    @property
    def coarse_train_steps(self) -> int:
        return 3 * self.steps if self.coarse_steps is None else self.coarse_steps

    def coarse_unet_depth(self, coarse_shape) -> int | None:
        """The coarse UNet's depth for x_J of ``coarse_shape`` (checked to fit), None for a Gaussian coarse model."""
        if self.coarse != "diffusion":
            return None
        depth = _coarse_depth(coarse_shape) if self.coarse_depth is None else self.coarse_depth
        UNetConfig(width=self.coarse_width, depth=depth).check_shape(coarse_shape)
        return depth


@register_model("wsgm")
class WSGMModel:
    """Wavelet score-based generative model: a conditional score network per wavelet level and a coarse
    model of x_J (module docstring). Fitted with :meth:`fit`; samples coarse to fine with :meth:`sample`."""

    def __init__(self, factor: WaveletFactorisation, nets: list, net_config: ScoreNetConfig, coarse_model,
                 field_shape, settings: dict | None = None, losses: list | None = None, training: dict | None = None):
        self.factor = factor
        self.nets = list(nets)  # nets[j - 1] models level j (1 = finest)
        self.net_config = net_config
        self.coarse_model = coarse_model  # fitted on x̃_J (normalised coarse fields)
        self._shape = tuple(int(s) for s in field_shape)
        self.settings = dict(settings or {})
        self.losses = [np.asarray(v, np.float32) for v in (losses or [np.zeros(0)] * len(self.nets))]
        self.training = training or {}
        if len(self.nets) != factor.J:
            raise ParameterError(f"a WSGM with J={factor.J} levels needs {factor.J} networks; got {len(self.nets)}")

    @property
    def J(self) -> int:
        return self.factor.J

    @property
    def field_shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def coarse_kind(self) -> str:
        return "gaussian" if isinstance(self.coarse_model, GaussianSpectrumModel) else "diffusion"

    @property
    def n_params(self) -> int:
        return int(sum(count_params(n) for n in self.nets) + self.coarse_model.n_params)

    @property
    def process(self) -> OUProcess:
        return OUProcess(float(self.settings.get("t_min", 1e-3)), float(self.settings.get("t_max", 5.0)))

    # --- fitting ---------------------------------------------------------------------------------
    fit_config = WSGMConfig  # fit(..., config=None, **options): every field of WSGMConfig is an option

    @classmethod
    def fit(cls, fields, *, key, progress=None, config: "WSGMConfig | None" = None, **options):
        """Fit on ``fields`` ``(N, H, W)``: wavelet statistics, one score network per level
        (:meth:`_train_levels`), then the coarse model (:meth:`_fit_coarse`). ``config`` /
        ``options``: :class:`WSGMConfig` (options override its fields)."""
        cfg = config_from_options(WSGMConfig, config, options, "fit wsgm")
        x = as_fields(fields, name="training fields")
        if x.ndim != 3:
            raise InputError(f"wsgm is fitted on fields (N, H, W); got shape {x.shape}")
        factor = WaveletFactorisation.fit(x, wavelet=cfg.wavelet, J=cfg.J)
        net_config = ScoreNetConfig(width=cfg.width, layers=cfg.layers, groups=cfg.groups, emb_dim=cfg.emb_dim)
        process = OUProcess(float(cfg.t_min), float(cfg.t_max))
        x_J = np.asarray(factor.normalise_coarse(factor.coarse(x), factor.J))
        depth = cfg.coarse_unet_depth(x_J.shape[1:])  # checked before any training
        k_levels, k_coarse = jax.random.split(key)
        nets, losses, levels = cls._train_levels(factor, x, net_config, process, cfg, k_levels, progress)
        coarse_model, coarse_record = cls._fit_coarse(x_J, depth, cfg, k_coarse, progress)
        settings = {"t_min": process.t_min, "t_max": process.t_max}
        training = {"levels": levels, "coarse": coarse_record,
                    "train_config": {**cfg.train_base(), "batch_size": cfg.batch_size, "shifts": cfg.shifts},
                    "net": net_config.to_dict(), "n_params_per_level": count_params(nets[0]),
                    "per_scale_std_truth": _std_record(per_scale_std(x, factor.wavelet, factor.J)),
                    "std_growth_truth": [float(g) for g in factor.std_growth]}
        return cls(factor, nets, net_config, coarse_model, x.shape[1:], settings, losses, training)

    @staticmethod
    def _train_levels(factor, x, net_config, process, cfg: "WSGMConfig", key, progress):
        """One conditional score network per level (finest first): ``(EMA nets, losses, records)``.
        Level j trains on ``batch_size · 4^{j−1}`` fields per batch (at most its pairs)."""
        nets, losses, levels = [], [], []
        for j in range(1, factor.J + 1):
            n_pairs = x.shape[0] * len(level_shifts(j, cfg.shifts))
            config = TrainConfig(batch_size=min(n_pairs, cfg.batch_size * 4 ** (j - 1)), **cfg.train_base())
            t0 = time.perf_counter()
            result = train_level(factor, x, j, net_config, config, key=jax.random.fold_in(key, j),
                                 process=process, progress=progress, shifts=cfg.shifts,
                                 data_parallel=bool(cfg.data_parallel))
            seconds = time.perf_counter() - t0
            nets.append(result.ema_model)
            losses.append(result.losses)
            levels.append({"level": j, "shape": list(factor.level_shape(x.shape, j)), "batch_size": config.batch_size,
                           "n_train": n_pairs, **_loss_summary(result.losses), "seconds": seconds})
        return nets, losses, levels

    @staticmethod
    def _fit_coarse(x_J, depth, cfg: "WSGMConfig", key, progress):
        """The model of the normalised coarse field x_J and its record: a diffusion UNet on periodic
        shifts of the training x_J, or the Gaussian of its 2D spectrum."""
        t0 = time.perf_counter()
        if cfg.coarse == "diffusion":
            k_aug, k_coarse = jax.random.split(key)
            x_train = shift_augment(x_J, k_aug, cfg.coarse_augment) if cfg.coarse_augment else x_J
            coarse_model = DiffusionModel.fit(x_train, key=k_coarse, progress=progress, steps=cfg.coarse_train_steps,
                                              batch_size=cfg.coarse_batch_size, learning_rate=cfg.learning_rate,
                                              warmup=cfg.warmup, ema_decay=cfg.ema_decay, grad_clip=cfg.grad_clip,
                                              chunk=cfg.chunk, width=cfg.coarse_width, depth=depth, t_min=cfg.t_min,
                                              t_max=cfg.t_max)
            record = {"kind": "diffusion", **_loss_summary(coarse_model.losses), "n_train": len(x_train),
                      "n_params": coarse_model.n_params, "unet": coarse_model.unet_config.to_dict()}
        else:
            coarse_model = GaussianSpectrumModel.fit(x_J, key=key)
            record = {"kind": "gaussian", "n_params": coarse_model.n_params}
        record["seconds"] = time.perf_counter() - t0
        record["shape"] = list(x_J.shape[1:])
        return coarse_model, record

    # --- sampling --------------------------------------------------------------------------------
    def check_shape(self, shape=None) -> tuple[int, int]:
        """The shape samples will have (``None``: the training shape); ParameterError if this model cannot
        sample it. Another size needs sides that are multiples of 2^J and a translation-invariant coarse
        model whose network fits x_J (a UNet's pooling); the Gaussian coarse model only has its own size."""
        if shape is None:
            return self._shape
        shape = _parse_shape(shape)
        if shape == self._shape:
            return shape
        h, w = self._shape
        what = f"this wsgm model was fitted on {h}×{w} fields with J={self.J} wavelet levels"
        if shape[0] % 2**self.J or shape[1] % 2**self.J:
            raise ParameterError(f"{what}; it can only sample sides that are multiples of 2^J = {2**self.J}, "
                                 f"got {shape[0]}×{shape[1]}")
        coarse = tuple(s // 2**self.J for s in shape)
        if self.coarse_kind == "gaussian":
            raise ParameterError(f"{what} and a Gaussian-spectrum coarse model of fixed size "
                                 f"{self._shape[0] // 2**self.J}×{self._shape[1] // 2**self.J}, which is not "
                                 f"translation-invariant: it samples only {h}×{w} fields, not {shape[0]}×{shape[1]} "
                                 "(refit with coarse='diffusion' to sample other sizes)")
        try:
            self.coarse_model.unet_config.check_shape(coarse)
        except ParameterError as exc:
            raise ParameterError(f"{what}; its coarse UNet cannot take x_J of {coarse[0]}×{coarse[1]} for "
                                 f"{shape[0]}×{shape[1]} fields: {exc}") from None
        return shape

    @staticmethod
    def _coarse_nfe(nfe, coarse_nfe):
        # twice the steps of a level: the coarse field carries the global, most non-Gaussian structure
        # (φ⁴'s magnetisation) on the fewest pixels (measured, φ⁴ 64²: χ of the coarse model 111 at 9
        # evaluations, 91 at 17, 87 at 33; truth 83 ± 8)
        return 2 * int(nfe) - 1 if coarse_nfe is None else coarse_nfe

    def _times(self, nfe, sampler, time_grid_kind, denoise, t_min, t_max):
        return jnp.asarray(sampling_times(nfe_steps(nfe, sampler, denoise)[0], t_min, t_max, time_grid_kind))

    def sample_coarse(self, n: int, *, key, shape=None, nfe: int = DEFAULT_NFE, sampler: str = "ode",
                      time_grid_kind: str = "lambda", denoise: bool = True):
        """``n`` coarse fields x_J ``(n, H/2^J, W/2^J)`` (unnormalised) for fields of ``shape``."""
        shape = self.check_shape(shape)
        n = check_int_at_least(n, "n", 1)
        if self.coarse_kind == "gaussian":
            x = self.coarse_model.sample(n, key=key)
        else:
            cm = self.coarse_model
            # the coarse field is strongly correlated (its k = 0 mode carries the magnetisation): start at
            # t_max, where e^{−2t} P(k) is negligible for every mode
            times = self._times(nfe, sampler, time_grid_kind, denoise, float(cm.settings.get("t_min", 1e-3)),
                                float(cm.settings.get("t_max", 5.0)))
            k_init, k_path = jax.random.split(key)
            noise = standard_normal(k_init, (n, *(s // 2**self.J for s in shape)), jnp.float32)
            x = cm.unstandardise(_sample_coarse_unet(cm.net, noise, k_path, times, sampler, bool(denoise)))
        return self.factor.unnormalise_coarse(jnp.asarray(x, jnp.float32), self.J)

    def sample(self, n: int, *, key, nfe: int = DEFAULT_NFE, sampler: str = "ode", shape=None,
               coarse_nfe: int | None = None, time_grid_kind: str = "lambda", t_start=3.0,
               denoise: bool = True, from_coarse=None):
        """``n`` new fields ``(n, H, W)``, coarse to fine.

        ``nfe``: network evaluations per level (the final Tweedie step included, as the baseline counts
        them); ``sampler``: ``ode`` / ``sde`` (DPM-Solver++(2M) on the probability flow / reverse SDE, one
        evaluation per step), ``ou-ode`` / ``ou-sde`` (the baseline's Heun / Euler–Maruyama; they need many
        more steps); ``coarse_nfe``: the coarse diffusion model's budget (default ``2·nfe − 1``); ``shape``: another
        field size (:meth:`check_shape`); ``time_grid_kind``: :func:`sampling_times`; ``t_start``: where the
        detail levels' reverse diffusions start (None: the training t_max). The normalised details have unit
        variance, so N(0, I) is their OU marginal at any t up to correlations of relative size e^{−2t}
        (0.25 % at t = 3): starting at 3 rather than 5 puts the few steps where the details are decided
        (measured on φ⁴ 64², per-level std error at nfe = 5: 11 % from t = 5, 3 % from t = 3). A sequence
        gives one start per level, finest first: on critical φ⁴ 64² at nfe = 16 the finest level's error is
        the integrator's (its high-k power +2.8 %, +1.6 % at nfe = 32) and starting it at 2 — a shorter path
        for the same steps — brings the spectrum χ² from 2.02 to 1.53 (256 fresh truth fields; nfe = 32:
        1.42), while the coarser levels, whose errors are the networks', lose from starting below 3.

        ``from_coarse``: super-resolution (:mod:`phigen.rg.superres`): ``n`` coarse fields ``x_j``
        ``(n, H/2^j, W/2^j)`` (the DWT low-pass of the model's wavelet) to start from; only the levels
        ``j … 1`` are sampled, so the low-pass of every output equals its input.
        """
        shape = self.check_shape(shape)
        n = check_int_at_least(n, "n", 1)
        p = self.process
        starts = self._level_starts(t_start)
        times = {t: self._times(nfe, sampler, time_grid_kind, denoise, p.t_min, t) for t in set(starts)}
        keys = jax.random.split(key, 2 * self.J + 1)
        top = self.J
        if from_coarse is not None:
            from .superres import coarse_level, read_coarse

            xc, _ = read_coarse(from_coarse)
            if len(xc) != n:
                raise ParameterError(f"from_coarse holds {len(xc)} coarse fields for n = {n} samples")
            top = coarse_level(xc.shape[-2:], shape, self.J, kind="this WSGM model")
            x = jnp.asarray(xc)
        else:
            x = self.sample_coarse(n, key=keys[0], shape=shape, nfe=self._coarse_nfe(nfe, coarse_nfe),
                                   sampler=sampler, time_grid_kind=time_grid_kind, denoise=denoise)
        for j in range(top, 0, -1):
            h, w = self.factor.level_shape(shape, j)
            noise = standard_normal(keys[2 * j - 1], (n, 3, h, w), jnp.float32)
            d = sample_level(self.nets[j - 1], self.factor.normalise_coarse(x, j), noise, keys[2 * j],
                             times[starts[j - 1]], sampler, bool(denoise))
            x = self.factor.refine(x, d, j)
        return x

    def _level_starts(self, t_start) -> list[float]:
        """``t_start`` (a number, None, or one value per level, finest first) as J start times, validated."""
        p = self.process
        starts = [t_start] * self.J if t_start is None or np.ndim(t_start) == 0 else list(t_start)
        if len(starts) != self.J:
            raise ParameterError(f"t_start needs one value per level (finest first) for this J={self.J} model; "
                                 f"got {len(starts)}: {starts}")
        starts = [p.t_max if t is None else float(t) for t in starts]
        for t in starts:
            if not p.t_min < t <= p.t_max:
                raise ParameterError(f"t_start must be in ({p.t_min}, {p.t_max}] (the times the networks were trained "
                                     f"on); got {t}")
        return starts

    def sampling_cost(self, shape=None, nfe: int = DEFAULT_NFE, *, sampler: str = "ode", coarse_nfe: int | None = None,
                      denoise: bool = True) -> dict:
        """Network evaluations of :meth:`sample` for one field of ``shape`` (default the training shape).

        Returns ``{"shape", "network_evaluations": {level: evaluations, ..., "coarse": …},
        "network_evaluations_per_field" (their sum), "pixels": {level: h_j·w_j, ..., "coarse": …},
        "pixel_evaluations": Σ evaluations × pixels, "pixel_evaluations_per_pixel"}`` — the work of one
        sample up to the (fixed) cost of a network evaluation per pixel; linear in H·W since every level
        uses the same ``nfe``. (The Gaussian coarse model is an FFT filter: 0 evaluations.)
        """
        shape = self.check_shape(shape)
        _, used = nfe_steps(nfe, sampler, denoise)
        _, c_used = nfe_steps(self._coarse_nfe(nfe, coarse_nfe), sampler, denoise)
        if self.coarse_kind == "gaussian":
            c_used = 0  # an FFT filter, no network
        evals = {j: used for j in range(1, self.J + 1)}
        pixels = {j: int(np.prod(self.factor.level_shape(shape, j))) for j in range(1, self.J + 1)}
        evals["coarse"], pixels["coarse"] = c_used, pixels[self.J]
        total = sum(evals[k] * pixels[k] for k in evals)
        return {"shape": list(shape), "network_evaluations": evals,
                "network_evaluations_per_field": int(sum(evals.values())), "pixels": pixels,
                "pixel_evaluations": int(total), "pixel_evaluations_per_pixel": total / float(np.prod(shape))}

    def per_scale_diagnostics(self, samples, truth=None) -> dict:
        """Per-scale std of ``samples`` ``(N, H, W)`` next to the truth's (``truth`` fields, or the
        training set's record): ``{"model", "truth", "detail_ratio" (J, 3), "coarse_ratio" (J+1,)}``."""
        model = per_scale_std(samples, self.factor.wavelet, self.J)
        if truth is None:
            ref = self.training.get("per_scale_std_truth")
            if ref is None:
                raise ParameterError("this model has no recorded truth statistics; pass truth fields")
            ref = {k: np.asarray(v, np.float64) for k, v in ref.items()}
        else:
            ref = per_scale_std(truth, self.factor.wavelet, self.J)
        return {"model": _std_record(model), "truth": _std_record(ref),
                "detail_ratio": (model["detail"] / ref["detail"]).tolist(),
                "coarse_ratio": (model["coarse"] / ref["coarse"]).tolist()}

    # --- files -----------------------------------------------------------------------------------
    def save(self, path):
        """One HDF5 model file: factorisation arrays, one equinox module per level, the coarse model."""
        arrays = {f"factor/{k}": v for k, v in self.factor.to_arrays().items()}
        arrays.update({f"losses/level_{j}": self.losses[j - 1] for j in range(1, self.J + 1)})
        modules = {f"level_{j}": self.nets[j - 1] for j in range(1, self.J + 1)}
        cm = self.coarse_model
        if self.coarse_kind == "gaussian":
            coarse = {"kind": "gaussian"}
            arrays.update({"coarse/mean": np.float64(cm.mean), "coarse/spectrum": cm.spectrum})
        else:
            coarse = {"kind": "diffusion", "unet": cm.unet_config.to_dict(), "shape": list(cm.field_shape),
                      "settings": cm.settings}
            arrays.update({"coarse/mean": np.float64(cm.mean), "coarse/std": np.float64(cm.std),
                           "coarse/losses": cm.losses})
            modules["coarse"] = cm.net
        config = {"wavelet": self.factor.wavelet, "J": self.J, "shape": list(self._shape),
                  "net": self.net_config.to_dict(), "coarse": coarse, **self.settings}
        return write_model_file(path, self.kind, config=config, arrays=arrays, modules=modules,
                                training=self.training)

    @classmethod
    def load(cls, path):
        f = read_model_file(path, cls.kind)
        try:
            config = dict(f.config)
            J, wavelet, shape = int(config.pop("J")), str(config.pop("wavelet")), config.pop("shape")
            net_config = ScoreNetConfig(**config.pop("net"))
            coarse = config.pop("coarse")
            factor = WaveletFactorisation.from_arrays(wavelet, J, {k.split("/", 1)[1]: v for k, v in f.arrays.items()
                                                                   if k.startswith("factor/")})
            losses = [f.arrays.get(f"losses/level_{j}") for j in range(1, J + 1)]
            if coarse["kind"] == "gaussian":
                coarse_model = GaussianSpectrumModel(float(f.arrays["coarse/mean"]), f.arrays["coarse/spectrum"])
            elif coarse["kind"] == "diffusion":
                unet_config = UNetConfig(**coarse["unet"])
                skeleton = eqx.filter_eval_shape(UNet, unet_config, key=jax.random.PRNGKey(0))  # shapes only
                coarse_model = DiffusionModel(f.module("coarse", like=skeleton), unet_config, coarse["shape"],
                                              float(f.arrays["coarse/mean"]), float(f.arrays["coarse/std"]),
                                              coarse["settings"], f.arrays.get("coarse/losses"))
            else:
                raise ModelFileError(f"unknown coarse model kind {coarse['kind']!r}", path=path)
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise ModelFileError(f"incomplete wsgm model file: {exc!r}", path=path) from None
        skeleton = eqx.filter_eval_shape(ConditionalScoreNet, net_config, key=jax.random.PRNGKey(0))
        nets = [f.module(f"level_{j}", like=skeleton) for j in range(1, J + 1)]
        return cls(factor, nets, net_config, coarse_model, shape, config, losses, f.training)


def _loss_summary(losses) -> dict:
    losses = np.asarray(losses, np.float64)
    k = max(1, len(losses) // 20)  # mean of the first / last 5 % of steps
    return {"initial_loss": float(losses[:k].mean()), "final_loss": float(losses[-k:].mean()),
            "steps_done": int(len(losses))}


def _std_record(stds: dict) -> dict:
    return {k: np.asarray(v, np.float64).tolist() for k, v in stds.items()}
