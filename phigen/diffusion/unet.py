"""A small equinox UNet for periodic 2D fields, conditioned on a scalar noise level / time.

Every 3×3 convolution pads circularly (the fields live on a torus), normalisation is GroupNorm over
the whole field, down-sampling is 2×2 average pooling and up-sampling is nearest-neighbour
repetition. The network is therefore exactly equivariant under periodic translations by multiples
of ``2**(depth - 1)`` pixels (the coarsest grid's pixel); other shifts are equivariant up to the
aliasing of the pooling.

Layout (``C_l = width · min(2**l, max_mult)``, l = 0 … depth−1)::

    in conv 1→C_0 ─ [ResBlock×blocks]_0 ─ pool ─ [ResBlock×blocks]_1 ─ … ─ middle ResBlock
                       │ skip                       │ skip
    out conv C_0→1 ─ [ResBlock×blocks]_0 ← up ─ [ResBlock×blocks]_1 ← … (skip concatenated)

The conditioning scalar ``c`` enters every residual block through sinusoidal features
``sin(ω_i c), cos(ω_i c)`` (ω_i geometric from 1 to 1000) and a two-layer MLP; callers map
their time variable to ``c`` of order one (diffusion: ``log(t)/4``, flow matching: ``t``).
The output convolution starts at zero, so an untrained network outputs 0.

``UNet(x, c)`` takes one field ``(H, W)`` and a scalar; :func:`apply_batched` maps it over a batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_int_at_least
from ..errors import InputError, ParameterError
from ..nn.conv import apply_conv, group_norm, periodic_conv, pool2, upsample2
from ..nn.embedding import sinusoidal_features
from ..nn.init import count_params, init_layers

__all__ = ["UNetConfig", "UNet", "apply_batched", "count_params", "make_unet", "apply_conv"]


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a :class:`UNet`.

    width: channels at full resolution; depth: number of resolutions (fields' sides must be
    divisible by ``2**(depth-1)``); blocks: residual blocks per resolution; max_mult: channel
    multiplier cap (``C_l = width·min(2**l, max_mult)``); emb_dim: conditioning embedding size
    (default ``4·width``); groups: GroupNorm groups (reduced to a divisor of each channel count);
    cond_channels: constant input channels carrying a condition vector (conditional models: the
    network takes ``(1 + cond_channels, H, W)``, the field then the standardised conditions).
    """

    width: int = 32
    depth: int = 3
    blocks: int = 1
    max_mult: int = 2
    emb_dim: int | None = None
    groups: int = 8
    cond_channels: int = 0

    def __post_init__(self):
        check_int_at_least(self.width, "width", 1)
        check_int_at_least(self.depth, "depth", 1)
        check_int_at_least(self.blocks, "blocks", 1)
        check_int_at_least(self.max_mult, "max_mult", 1)
        check_int_at_least(self.groups, "groups", 1)
        check_int_at_least(self.cond_channels, "cond_channels", 0)
        if self.emb_dim is not None:
            check_int_at_least(self.emb_dim, "emb_dim", 2)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.width * min(2**level, self.max_mult) for level in range(self.depth))

    @property
    def embedding(self) -> int:
        return int(self.emb_dim or 4 * self.width)

    def to_dict(self) -> dict:
        return asdict(self)

    def check_shape(self, shape) -> None:
        """Raise ParameterError unless fields of ``shape`` (H, W) fit this network's pooling."""
        f = 2 ** (self.depth - 1)
        if len(shape) != 2 or any(int(s) % f or int(s) < f for s in shape):
            raise ParameterError(f"a UNet of depth {self.depth} needs field sides divisible by {f}; "
                                 f"got {tuple(shape)} (use a smaller depth)")


class ResBlock(eqx.Module):
    """``x ↦ skip(x) + conv(silu(norm(conv(silu(norm(x))) + W·emb))))``."""

    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    emb: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None

    def __init__(self, cin, cout, emb_dim, groups, *, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.norm1 = group_norm(cin, groups)
        self.conv1 = periodic_conv(cin, cout, k1)
        self.emb = eqx.nn.Linear(emb_dim, cout, key=k2)
        self.norm2 = group_norm(cout, groups)
        self.conv2 = periodic_conv(cout, cout, k3)
        self.skip = None if cin == cout else periodic_conv(cin, cout, k4, kernel=1)

    def __call__(self, x, emb):
        h = apply_conv(self.conv1, jax.nn.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, None, None]
        h = apply_conv(self.conv2, jax.nn.silu(self.norm2(h)))
        return (x if self.skip is None else apply_conv(self.skip, x)) + h


class UNet(eqx.Module):
    """Periodic UNet ``(H, W), scalar c -> (H, W)``; see the module docstring for the layout."""

    emb1: eqx.nn.Linear
    emb2: eqx.nn.Linear
    conv_in: eqx.nn.Conv2d
    down: list
    middle: ResBlock
    up: list
    upconv: list
    norm_out: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d
    depth: int = eqx.field(static=True)
    n_freq: int = eqx.field(static=True)

    def __init__(self, config: UNetConfig, *, key):
        ch, e, g = config.channels, config.embedding, config.groups
        keys = iter(jax.random.split(key, 8 + 4 * config.depth * (config.blocks + 1)))
        n_freq = self.n_freq = max(1, e // 4)
        self.emb1 = eqx.nn.Linear(2 * n_freq, e, key=next(keys))
        self.emb2 = eqx.nn.Linear(e, e, key=next(keys))
        self.conv_in = periodic_conv(1 + config.cond_channels, ch[0], next(keys))
        self.down, cin = [], ch[0]
        for level in range(config.depth):
            blocks = []
            for _ in range(config.blocks):
                blocks.append(ResBlock(cin, ch[level], e, g, key=next(keys)))
                cin = ch[level]
            self.down.append(blocks)
        self.middle = ResBlock(cin, cin, e, g, key=next(keys))
        self.up, self.upconv = [], []
        for level in reversed(range(config.depth)):
            blocks = [ResBlock(cin + ch[level], ch[level], e, g, key=next(keys))]
            cin = ch[level]
            for _ in range(config.blocks - 1):
                blocks.append(ResBlock(cin, cin, e, g, key=next(keys)))
            self.up.append(blocks)
            if level > 0:
                self.upconv.append(periodic_conv(cin, ch[level - 1], next(keys)))
                cin = ch[level - 1]
        self.norm_out = group_norm(cin, g)
        conv_out = periodic_conv(cin, 1, next(keys))
        # start from the zero function: the first loss is the data's, and samplers start sane
        self.conv_out = eqx.tree_at(lambda m: (m.weight, m.bias), conv_out,
                                    (jnp.zeros_like(conv_out.weight), jnp.zeros_like(conv_out.bias)))
        self.depth = config.depth

    def __call__(self, x, c):
        n_in = self.conv_in.weight.shape[1]
        if x.ndim == 2 and n_in == 1:
            x = x[None]
        if x.ndim != 3 or x.shape[0] != n_in:
            raise InputError(f"this UNet takes {'one field (H, W)' if n_in == 1 else f'({n_in}, H, W): a field and its condition channels'}; "
                             f"got shape {x.shape} (use apply_batched)")
        emb = self.emb2(jax.nn.silu(self.emb1(sinusoidal_features(c, self.n_freq, x.dtype))))
        h = apply_conv(self.conv_in, x)
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < self.depth - 1:
                h = pool2(h)
        h = self.middle(h, emb)
        for i, blocks in enumerate(self.up):
            h = jnp.concatenate([h, skips.pop()], axis=0)
            for block in blocks:
                h = block(h, emb)
            if i < self.depth - 1:
                h = apply_conv(self.upconv[i], upsample2(h))
        return apply_conv(self.conv_out, jax.nn.silu(self.norm_out(h)))[0]


def make_unet(config: UNetConfig | None = None, *, key, **overrides) -> UNet:
    """A :class:`UNet` from ``config`` (or ``UNetConfig(**overrides)``), initialised from ``key``.

    Same initial law as equinox's layers (weights and biases uniform in ±1/√fan_in, GroupNorm
    scale 1 and offset 0; the output convolution 0), but drawn in ONE random call and laid out
    with numpy: eager per-layer initialisation compiles a kernel per parameter shape, which
    dominates start-up time on a CPU.
    """
    if config is None:
        config = UNetConfig(**overrides)
    elif overrides:
        raise ParameterError("pass either a UNetConfig or keyword overrides, not both")
    net = init_layers(eqx.filter_eval_shape(UNet, config, key=key), key)
    return eqx.tree_at(lambda m: (m.conv_out.weight, m.conv_out.bias), net,
                       (jnp.zeros(net.conv_out.weight.shape), jnp.zeros(net.conv_out.bias.shape)))


def apply_batched(net: UNet, x, c):
    """``net`` on a batch: ``x`` ``(N, H, W)``, ``c`` a scalar or ``(N,)`` -> ``(N, H, W)``."""
    c = jnp.asarray(c, x.dtype)
    return jax.vmap(net, in_axes=(0, 0 if c.ndim else None))(x, c)
