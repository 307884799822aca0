"""A normalizing flow for periodic 2D fields: white noise z → field x through invertible layers.

``x = A ∘ C_K ∘ … ∘ C_1 ∘ S (z)``, ``z ~ N(0, I)``: S a :class:`~phigen.flows.layers.SpectralScale`
(optional; the Gaussian part of the law, exact for a Gaussian free field), C_k checkerboard
:class:`~phigen.flows.layers.AffineCoupling` layers of alternating colour, A a
:class:`~phigen.flows.layers.GlobalAffine` (data units). Density by change of variables:

    log q(x) = log N(z; 0, I) − log|det ∂x/∂z| ,   z = f⁻¹(x),

exact (every layer's log-determinant is closed form). ``flow_sample`` returns samples and their
log-density in one pass; ``flow_log_prob`` inverts. Both act on batches ``(N, H, W)``.

A conditional flow (``cond_channels`` = D > 0) is a flow of p(x | c): every layer reads the D
standardised conditions (:mod:`phigen.flows.layers`), given as ``cond`` ``(D,)`` (one condition for
the batch) or ``(N, D)`` (one per field).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int_at_least
from ..errors import InputError, ParameterError
from ..nn.init import init_layers
from ..samplers._rng import standard_normal
from .layers import AffineCoupling, GlobalAffine, SpectralScale, SplineCoupling

__all__ = ["FlowNetConfig", "Flow", "make_flow", "resize_flow", "flow_sample", "flow_log_prob", "gaussian_log_density"]


@dataclass(frozen=True)
class FlowNetConfig:
    """Shape of a :class:`Flow`: ``layers`` affine couplings (alternating checkerboard colours), each
    conditioner ``hidden`` periodic ``kernel``×``kernel`` convolutions of ``width`` channels;
    ``spectral``: a learnable spectral scaling first; ``symmetric``: Z₂-equivariant couplings;
    ``cond_channels``: number D of conditions of a conditional flow (0: unconditional);
    ``coupling``: ``"affine"`` (RealNVP) or ``"spline"`` (rational-quadratic, ``bins`` bins)."""

    layers: int = 8
    width: int = 16
    hidden: int = 2
    kernel: int = 3
    spectral: bool = True
    symmetric: bool = False
    cond_channels: int = 0
    coupling: str = "affine"
    bins: int = 8

    def __post_init__(self):
        check_int_at_least(self.layers, "layers", 0)
        check_int_at_least(self.cond_channels, "cond_channels", 0)
        check_int_at_least(self.bins, "bins", 2)
        if self.coupling not in ("affine", "spline"):
            raise ParameterError(f"coupling must be 'affine' or 'spline'; got {self.coupling!r}")
        check_int_at_least(self.width, "width", 1)
        check_int_at_least(self.hidden, "hidden", 1)
        check_int_at_least(self.kernel, "kernel", 1)
        if self.kernel % 2 == 0:
            raise ParameterError(f"kernel must be odd (a centred periodic convolution); got {self.kernel}")
        if self.layers == 0 and not self.spectral:
            raise ParameterError("a flow needs at least one coupling layer or the spectral layer")

    def to_dict(self) -> dict:
        return asdict(self)


class Flow(eqx.Module):
    """The flow ``z ↦ x`` on one field; see the module docstring."""

    spectral: SpectralScale | None
    couplings: list
    affine: GlobalAffine
    shape: tuple = eqx.field(static=True)

    def __init__(self, config: FlowNetConfig, shape, *, key):
        shape = tuple(int(s) for s in shape)
        keys = jax.random.split(key, max(1, config.layers))
        d = config.cond_channels
        self.spectral = (SpectralScale(jnp.zeros(shape, jnp.float32), jnp.zeros((d, *shape), jnp.float32) if d else None)
                         if config.spectral else None)
        if config.coupling == "spline":
            self.couplings = [SplineCoupling(i % 2, config.width, config.hidden, config.kernel, config.symmetric,
                                             key=keys[i], cond=d, bins=config.bins) for i in range(config.layers)]
        else:
            self.couplings = [AffineCoupling(i % 2, config.width, config.hidden, config.kernel, config.symmetric,
                                             key=keys[i], cond=d) for i in range(config.layers)]
        self.affine = GlobalAffine(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32),
                                   jnp.zeros((2, d), jnp.float32) if d else None)
        self.shape = shape

    @property
    def cond_channels(self) -> int:
        """D of a conditional flow p(x | c), 0 for an unconditional one."""
        w = self.affine.cond_weights
        return 0 if w is None else int(w.shape[1])

    def layers(self) -> list:
        """The layers in the order noise → field."""
        return ([self.spectral] if self.spectral is not None else []) + list(self.couplings) + [self.affine]

    def forward(self, z, c=None):
        """``(x, log|det ∂x/∂z|)`` for one noise field ``z`` ``(H, W)`` (``c`` ``(D,)``: the condition)."""
        x, logdet = z, jnp.zeros((), z.dtype)
        for layer in self.layers():
            x, ld = layer(x, c)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, x, c=None):
        """``(z, log|det ∂z/∂x|)`` for one field ``x`` ``(H, W)`` (``c`` ``(D,)``: the condition)."""
        z, logdet = x, jnp.zeros((), x.dtype)
        for layer in reversed(self.layers()):
            z, ld = layer.inverse(z, c)
            logdet = logdet + ld
        return z, logdet


def make_flow(config: FlowNetConfig, shape, *, key, loc: float = 0.0, scale: float = 1.0,
              log_spectrum=None) -> Flow:
    """A :class:`Flow` for fields of ``shape`` (H, W) initialised from ``key`` in one random call; its
    couplings start as the identity, its output affine at ``loc + scale·x`` and its spectral layer
    at ``θ = ½ log_spectrum`` (``(H, W)``: a starting power spectrum of unit-variance noise; default flat)."""
    if len(tuple(shape)) != 2 or min(int(s) for s in shape) < 2:
        raise ParameterError(f"a flow needs a 2D field shape (H, W), each side >= 2; got {tuple(shape)}")
    if config.layers and any(int(s) % 2 for s in shape):
        raise ParameterError(f"checkerboard couplings need even field sides; got {tuple(shape)}")
    if not (math.isfinite(loc) and math.isfinite(scale) and scale > 0):
        raise ParameterError(f"loc must be finite and scale > 0; got loc={loc!r}, scale={scale!r}")
    flow = init_layers(eqx.filter_eval_shape(Flow, config, shape, key=key), key)
    zero = [jnp.zeros(c.conv_out.weight.shape) for c in flow.couplings]
    flow = eqx.tree_at(lambda f: [c.conv_out.weight for c in f.couplings], flow, zero)
    flow = eqx.tree_at(lambda f: [c.conv_out.bias for c in f.couplings], flow,
                       [jnp.zeros(c.conv_out.bias.shape) for c in flow.couplings])
    flow = eqx.tree_at(lambda f: (f.affine.loc, f.affine.log_scale), flow,
                       (jnp.asarray(loc, jnp.float32), jnp.asarray(math.log(scale), jnp.float32)))
    d = config.cond_channels
    if d:  # a conditional flow starts as the same flow at every condition
        flow = eqx.tree_at(lambda f: f.affine.cond_weights, flow, jnp.zeros((2, d), jnp.float32))
        if flow.spectral is not None:
            flow = eqx.tree_at(lambda f: f.spectral.theta_cond, flow, jnp.zeros((d, *shape), jnp.float32))
    if flow.spectral is not None:
        theta = np.zeros(tuple(shape)) if log_spectrum is None else 0.5 * np.asarray(log_spectrum, np.float64)
        if theta.shape != tuple(shape) or not np.all(np.isfinite(theta)):
            raise ParameterError(f"log_spectrum must be a finite (H, W) array; got shape {theta.shape}")
        flow = eqx.tree_at(lambda f: f.spectral.theta, flow, jnp.asarray(theta, jnp.float32))
    return flow


def _resample_spectrum(theta, shape):
    """θ on an ``(..., H, W)`` FFT grid → ``(..., *shape)``: periodic linear interpolation in the
    lattice momentum (index ``i`` of the new grid sits at old index ``i·H/H'``)."""
    theta = np.asarray(theta, np.float64)
    out = theta
    for axis, new in zip((-2, -1), shape):
        old = theta.shape[axis]
        pos = np.arange(new) * old / new
        lo = np.floor(pos).astype(int)
        w = pos - lo
        a, b = np.take(out, lo % old, axis=axis), np.take(out, (lo + 1) % old, axis=axis)
        shape_w = [1] * out.ndim
        shape_w[axis] = new
        out = (1 - w.reshape(shape_w)) * a + w.reshape(shape_w) * b
    return out


def resize_flow(flow: Flow, config: FlowNetConfig, shape) -> Flow:
    """The same flow on fields of another ``shape`` (H, W): the couplings' convolutions are local and
    translation-invariant, so they carry over unchanged; the spectral layer's θ (and its condition
    weights) is resampled in the lattice momentum; the global affine is kept. The start of a fit on
    a larger lattice from one trained on a smaller, cheaper one (transfer across volumes).
    ``config``: the flow's :class:`FlowNetConfig`."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 2 or (config.layers and any(s % 2 for s in shape)):
        raise ParameterError(f"a flow needs a 2D field shape (H, W) with even sides >= 2; got {shape}")
    skeleton = eqx.filter_eval_shape(Flow, config, shape, key=jax.random.PRNGKey(0))
    leaves, treedef = jax.tree_util.tree_flatten(skeleton)
    old = jax.tree_util.tree_leaves(flow)
    if len(old) != len(leaves):
        raise ParameterError("resize_flow: the flow does not have the layers of its config")
    new = jax.tree_util.tree_unflatten(treedef, old)  # same layers; only the static shape differs
    if flow.spectral is not None:
        theta = jnp.asarray(_resample_spectrum(flow.spectral.theta, shape), jnp.float32)
        new = eqx.tree_at(lambda f: f.spectral.theta, new, theta)
        if flow.spectral.theta_cond is not None:
            cond = jnp.asarray(_resample_spectrum(flow.spectral.theta_cond, shape), jnp.float32)
            new = eqx.tree_at(lambda f: f.spectral.theta_cond, new, cond)
    return new


def gaussian_log_density(z):
    """``log N(z; 0, I)`` per field of a batch ``(N, H, W)`` -> ``(N,)``."""
    v = z.shape[-1] * z.shape[-2]
    return -0.5 * jnp.sum(z * z, axis=(-2, -1)) - 0.5 * v * math.log(2 * math.pi)


def _batch_conditions(flow: Flow, cond, n: int):
    """``cond`` (None, ``(D,)`` or ``(n, D)``) as ``(n, D)`` float32, checked against the flow."""
    d = flow.cond_channels
    if cond is None:
        if d:
            raise InputError(f"this flow is conditional (D = {d}): pass its standardised conditions")
        return None
    if not d:
        raise InputError("this flow is not conditional; it takes no conditions")
    cond = jnp.asarray(cond, jnp.float32)
    cond = jnp.broadcast_to(cond, (n, d)) if cond.ndim == 1 else cond
    if cond.shape != (n, d):
        raise InputError(f"conditions of shape {tuple(cond.shape)} for {n} fields of a flow with D = {d}")
    return cond


def flow_sample(flow: Flow, key, n: int, cond=None):
    """``(x (n, H, W), log q(x) (n,))``: ``n`` draws of the flow and their exact log-density;
    ``cond``: the standardised condition ``(D,)`` or ``(n, D)`` of a conditional flow."""
    z = standard_normal(key, (n, *flow.shape), jnp.float32)
    c = _batch_conditions(flow, cond, n)
    x, logdet = jax.vmap(flow.forward)(z) if c is None else jax.vmap(flow.forward)(z, c)
    return x, gaussian_log_density(z) - logdet


def flow_log_prob(flow: Flow, x, cond=None):
    """``log q(x)`` ``(N,)`` of fields ``x`` ``(N, H, W)`` (shape must be the flow's); ``cond`` as in
    :func:`flow_sample`."""
    if tuple(x.shape[1:]) != tuple(flow.shape):
        raise InputError(f"fields of shape {tuple(x.shape[1:])} do not match the flow's {tuple(flow.shape)}")
    c = _batch_conditions(flow, cond, x.shape[0])
    z, logdet = jax.vmap(flow.inverse)(x) if c is None else jax.vmap(flow.inverse)(x, c)
    return gaussian_log_density(z) + logdet
