"""The periodic UNet: translation equivariance, shapes, parameter count, conditioning, errors.

Every network evaluation goes through one jitted function on two batch shapes (compilation is
what costs time here), stacking the shifted copies of a field into one batch: the depth-3 network
sees one batch of 6 non-square 16×24 fields with a per-field c (both its tests), the depth-1 one a
batch of 16×16 fields with a scalar c. The function is compiled without LLVM's optimisation passes
(``xla_backend_optimization_level=0``) and with XLA:CPU's older loop emitters instead of its fusion
emitters (``xla_cpu_use_fusion_emitters=False``): it runs a handful of times, so compiling dominated
(the depth-3 network: ≈ 10 s per shape on an idle 2-core CPU, ≈ 30 s loaded; ≈ 2 s with these options);
the arithmetic is the same up to float rounding, far below the tolerances here."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen import errors as E
from phigen.diffusion.unet import UNet, UNetConfig, apply_conv, apply_batched, count_params, make_unet


def _normal(seed, shape):
    """Standard normal float32 draws from numpy. Inputs are built with numpy: eagerly, every jax operation
    (``jax.random.normal``, ``jnp.roll`` by a new shift, ...) compiles a kernel of its own (≈ 0.1-4 s each)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# compiled without LLVM's optimisation passes and with XLA:CPU's older loop emitters (module docstring)
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
forward = jax.jit(lambda net, x, c: apply_batched(net, x, c), compiler_options=FAST_COMPILE)


def _random_output(net, seed):
    """The output convolution starts at zero; give it random weights so the tests see everything."""
    w = jnp.asarray(0.1 * _normal(seed, net.conv_out.weight.shape))
    return eqx.tree_at(lambda m: m.conv_out.weight, net, w)


@pytest.fixture(scope="module")
def net3():
    return _random_output(make_unet(key=jax.random.PRNGKey(0), width=8, depth=3), 1)


def test_translation_equivariance_for_shifts_of_the_coarsest_pixel(net3):
    x = _normal(2, (16, 24))  # the batch shape of the test below: one compilation
    shifts = [(0, 0), (4, 0), (0, 8), (12, 20), (-4, 16), (0, 1)]  # multiples of 2**(depth-1) = 4, then 1
    batch = np.stack([np.roll(x, s, axis=(0, 1)) for s in shifts])
    y = np.asarray(forward(net3, batch, np.full((len(shifts),), 0.3, np.float32)))
    assert y[0].std() > 1e-3  # a non-trivial output, so the equalities below mean something
    for s, ys in zip(shifts[1:-1], y[1:-1]):
        np.testing.assert_allclose(ys, np.roll(y[0], s, axis=(0, 1)), atol=2e-5, rtol=0)
    # a one-pixel shift is equivariant only up to the pooling's aliasing: close, but not equal
    assert np.max(np.abs(y[-1] - np.roll(y[0], shifts[-1], axis=(0, 1)))) > 1e-4


def test_depth_one_is_equivariant_for_every_shift_and_wraps_around():
    net = _random_output(make_unet(key=jax.random.PRNGKey(3), width=4, depth=1), 4)
    x = _normal(5, (16, 16))
    shifts = [(0, 0), (1, 0), (0, 3), (7, 15)]
    bump = np.zeros((16, 16), np.float32)
    bump[8, 15] = 10.0
    batch = np.stack([np.roll(x, s, (0, 1)) for s in shifts] + [x + bump])
    y = np.asarray(forward(net, batch, 0.0))
    for s, ys in zip(shifts[1:], y[1:-1]):
        np.testing.assert_allclose(ys, np.roll(y[0], s, (0, 1)), atol=2e-5)
    # the receptive field crosses the border: a bump in the last column changes the first column
    assert np.max(np.abs(y[-1][:, 0] - y[0][:, 0])) > 1e-3


def _expected_params(width, depth, emb_dim, blocks=1, max_mult=2):
    """Hand count: conv k×k cin→cout has k²·cin·cout + cout; GroupNorm 2c; Linear i·o + o."""
    conv = lambda ci, co, k=3: k * k * ci * co + co  # noqa: E731
    ch = [width * min(2**i, max_mult) for i in range(depth)]
    e = emb_dim
    n_freq = e // 4

    def res(ci, co):
        return 2 * ci + conv(ci, co) + e * co + co + 2 * co + conv(co, co) + (0 if ci == co else conv(ci, co, 1))

    total = (2 * n_freq * e + e) + (e * e + e) + conv(1, ch[0])
    cin = ch[0]
    for level in range(depth):
        for _ in range(blocks):
            total += res(cin, ch[level])
            cin = ch[level]
    total += res(cin, cin)
    for level in reversed(range(depth)):
        total += res(cin + ch[level], ch[level])
        cin = ch[level]
        total += sum(res(cin, cin) for _ in range(blocks - 1))
        if level > 0:
            total += conv(cin, ch[level - 1])
            cin = ch[level - 1]
    return total + 2 * cin + conv(cin, 1)


@pytest.mark.parametrize("cin, cout, kernel", [(3, 5, 3), (4, 2, 1), (2, 3, 5)])
def test_matmul_convolution_equals_circular_conv2d(cin, cout, kernel):
    """The UNet's convolution (shifted copies and one dot) is equinox's circular Conv2d, weights and bias
    included, on a non-square field where a transposed shift or a wrong weight order would show."""
    conv = eqx.nn.Conv2d(cin, cout, kernel, padding=kernel // 2, padding_mode="CIRCULAR", key=jax.random.PRNGKey(8))
    conv = eqx.tree_at(lambda c: c.bias, conv, jnp.asarray(_normal(9, conv.bias.shape)))
    x = jnp.asarray(_normal(10, (cin, 8, 12)))
    ref, got = jax.jit(lambda c, x: (c(x), apply_conv(c, x)))(conv, x)
    assert got.shape == (cout, 8, 12) and float(jnp.abs(ref).max()) > 0.1
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-5)


@pytest.mark.parametrize("width,depth,blocks,max_mult", [(4, 1, 1, 2), (8, 3, 1, 2), (6, 2, 2, 2), (32, 4, 2, 4)])
def test_parameter_count_matches_hand_count(width, depth, blocks, max_mult):
    cfg = UNetConfig(width=width, depth=depth, blocks=blocks, max_mult=max_mult)
    abstract = eqx.filter_eval_shape(UNet, cfg, key=jax.random.PRNGKey(0))  # nothing allocated
    assert count_params(abstract) == _expected_params(width, depth, cfg.embedding, blocks, max_mult)


def test_count_params_on_a_real_network(net3):
    assert count_params(net3) == _expected_params(8, 3, 32)


def test_shapes_batching_and_conditioning(net3):
    x = _normal(6, (6, 16, 24))  # non-square, sides divisible by 4
    x[2] = x[1]
    c = np.array([0.1, 0.5, -1.0, 0.3, 0.0, 0.7], np.float32)
    y = forward(net3, x, c)
    assert y.shape == (6, 16, 24) and y.dtype == jnp.float32
    y = np.asarray(y)
    # each field is processed on its own: reversing the batch reverses the output
    np.testing.assert_allclose(np.asarray(forward(net3, x[::-1].copy(), c[::-1].copy())), y[::-1], atol=1e-5)
    # the conditioning scalar matters (fields 1 and 2 are equal, their c differ)
    assert float(np.max(np.abs(y[1] - y[2]))) > 1e-3
    # untrained networks start at the zero function
    fresh = make_unet(key=jax.random.PRNGKey(7), width=4, depth=2)
    assert not np.any(np.asarray(fresh.conv_out.weight)) and not np.any(np.asarray(fresh.conv_out.bias))


def test_bad_configurations_raise():
    with pytest.raises(E.ParameterError, match="divisible by 4"):
        UNetConfig(depth=3).check_shape((20, 18))
    with pytest.raises(E.ParameterError):
        UNetConfig(width=0)
    with pytest.raises(E.ParameterError):
        make_unet(UNetConfig(), key=jax.random.PRNGKey(0), width=4)
    net = make_unet(key=jax.random.PRNGKey(0), width=4, depth=1)
    with pytest.raises(E.InputError, match="one field"):
        net(jnp.zeros((2, 8, 8)), 0.0)
