"""phigen.nn: the shared network blocks and training loop (data-free losses, auxiliary curves,
resume with them) and the old import paths that re-export them."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.nn import TrainConfig, apply_conv, count_params, init_layers, periodic_conv, train, zero_conv


class _Mean(eqx.Module):
    mu: jax.Array


def _free_loss(model, x0, key):  # data-free: the batch comes from the key
    assert x0 is None
    z = 2.0 + jax.random.normal(key, (64,))
    return jnp.mean((model.mu - z) ** 2), {"gap": jnp.abs(model.mu - 2.0)}


def test_old_import_paths_are_the_same_objects():
    from phigen.diffusion import train as old_train
    from phigen.diffusion.unet import apply_conv as old_conv, count_params as old_count
    import phigen.nn as nn

    assert old_train.train is nn.train and old_train.TrainConfig is nn.TrainConfig
    assert old_conv is nn.apply_conv and old_count is nn.count_params


def test_data_free_training_with_aux_and_resume(tmp_path):
    cfg = TrainConfig(steps=120, batch_size=8, learning_rate=0.05, warmup=5, chunk=20, ema_decay=0.9)
    model = _Mean(jnp.zeros(()))
    full = train(_free_loss, model, None, cfg, key=jax.random.key(0), progress=False, has_aux=True)
    assert abs(float(full.model.mu) - 2.0) < 0.1                       # the minimiser of E(μ − z)²
    assert set(full.aux) == {"gap"} and full.aux["gap"].shape == (120,)
    assert full.aux["gap"][-10:].mean() < 0.2 * full.aux["gap"][:10].mean()
    ck = tmp_path / "ck.h5"
    part = train(_free_loss, model, None, cfg, key=jax.random.key(0), progress=False, has_aux=True,
                 checkpoint=ck, stop_at=60)
    assert len(part.losses) == 60
    resumed = train(_free_loss, model, None, cfg, key=jax.random.key(0), progress=False, has_aux=True, checkpoint=ck)
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.aux["gap"], full.aux["gap"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(resumed.ema_model.mu), float(full.ema_model.mu), rtol=1e-6)


def test_periodic_conv_blocks():
    key = jax.random.key(1)
    conv = init_layers(periodic_conv(2, 3, key), key)
    x = jax.random.normal(key, (2, 8, 8))
    np.testing.assert_allclose(apply_conv(conv, x), conv(x), atol=1e-5)
    # periodic: a shift of the input shifts the output
    np.testing.assert_allclose(apply_conv(conv, jnp.roll(x, 3, axis=2)), jnp.roll(apply_conv(conv, x), 3, axis=2),
                               atol=1e-5)
    assert float(jnp.abs(apply_conv(zero_conv(2, 3, key), x)).max()) == 0.0
    assert count_params(conv) == 2 * 3 * 9 + 3


def test_training_data_with_nan_is_refused():
    from phigen.errors import InputError

    bad = np.ones((4, 8, 8), np.float32)
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        train(lambda m, x, k: jnp.mean((m.mu - x) ** 2), _Mean(jnp.zeros(())), bad, TrainConfig(steps=2), key=jax.random.key(0),
              progress=False)
