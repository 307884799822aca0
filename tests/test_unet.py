"""The periodic UNet: translation equivariance, shapes, parameter count, conditioning, errors.

Every network evaluation goes through one jitted function on a few batch shapes (compilation is
what costs time here), stacking the shifted copies of a field into one batch."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen import errors as E
from phigen.diffusion.unet import UNet, UNetConfig, apply_batched, count_params, make_unet

forward = eqx.filter_jit(lambda net, x, c: apply_batched(net, x, c))


def _random_output(net, key):
    """The output convolution starts at zero; give it random weights so the tests see everything."""
    w = 0.1 * jax.random.normal(key, net.conv_out.weight.shape)
    return eqx.tree_at(lambda m: m.conv_out.weight, net, w)


@pytest.fixture(scope="module")
def net3():
    return _random_output(make_unet(key=jax.random.PRNGKey(0), width=8, depth=3), jax.random.PRNGKey(1))


def test_translation_equivariance_for_shifts_of_the_coarsest_pixel(net3):
    x = jax.random.normal(jax.random.PRNGKey(2), (32, 32))
    shifts = [(0, 0), (4, 0), (0, 8), (12, 28), (-4, 20), (0, 1)]  # multiples of 2**(depth-1) = 4, then 1
    batch = jnp.stack([jnp.roll(x, s, axis=(0, 1)) for s in shifts])
    y = np.asarray(forward(net3, batch, 0.3))
    assert y[0].std() > 1e-3  # a non-trivial output, so the equalities below mean something
    for s, ys in zip(shifts[1:-1], y[1:-1]):
        np.testing.assert_allclose(ys, np.roll(y[0], s, axis=(0, 1)), atol=2e-5, rtol=0)
    # a one-pixel shift is equivariant only up to the pooling's aliasing: close, but not equal
    assert np.max(np.abs(y[-1] - np.roll(y[0], shifts[-1], axis=(0, 1)))) > 1e-4


def test_depth_one_is_equivariant_for_every_shift_and_wraps_around():
    net = _random_output(make_unet(key=jax.random.PRNGKey(3), width=4, depth=1), jax.random.PRNGKey(4))
    x = jax.random.normal(jax.random.PRNGKey(5), (16, 16))
    shifts = [(0, 0), (1, 0), (0, 3), (7, 15)]
    bump = jnp.zeros((16, 16)).at[8, 15].set(10.0)
    batch = jnp.stack([jnp.roll(x, s, (0, 1)) for s in shifts] + [x + bump])
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


@pytest.mark.parametrize("width,depth,blocks,max_mult", [(4, 1, 1, 2), (8, 3, 1, 2), (6, 2, 2, 2), (32, 4, 2, 4)])
def test_parameter_count_matches_hand_count(width, depth, blocks, max_mult):
    cfg = UNetConfig(width=width, depth=depth, blocks=blocks, max_mult=max_mult)
    abstract = eqx.filter_eval_shape(UNet, cfg, key=jax.random.PRNGKey(0))  # nothing allocated
    assert count_params(abstract) == _expected_params(width, depth, cfg.embedding, blocks, max_mult)


def test_count_params_on_a_real_network(net3):
    assert count_params(net3) == _expected_params(8, 3, 32)


def test_shapes_batching_and_conditioning(net3):
    x = jax.random.normal(jax.random.PRNGKey(6), (3, 16, 24))  # non-square, sides divisible by 4
    x = x.at[2].set(x[1])
    c = jnp.array([0.1, 0.5, -1.0])
    y = forward(net3, x, c)
    assert y.shape == (3, 16, 24) and y.dtype == jnp.float32
    # each field is processed on its own: reversing the batch reverses the output
    np.testing.assert_allclose(np.asarray(forward(net3, x[::-1], c[::-1])), np.asarray(y[::-1]), atol=1e-5)
    # the conditioning scalar matters (fields 1 and 2 are equal, their c differ)
    assert float(jnp.max(jnp.abs(y[1] - y[2]))) > 1e-3
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
