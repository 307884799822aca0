"""VAE and GAN (phigen.vae, phigen.gan): the ELBO is below the exact log-likelihood of Gaussian data,
loss curves and the mode-collapse indicator in the fit record, save/load identity, resume equal to
an uninterrupted fit, bad input; and the three new models through ``phigen fit`` / ``sample`` / ``compare``."""


import jax
import numpy as np
import pytest

from phigen.cli import main
from phigen.energies import gff_exact_spectrum
from phigen.errors import InputError, ParameterError
from phigen.gan import GANModel, diversity_ratio
from phigen.io import open_fields, write_fields
from phigen.vae import VAEConfig, VAEModel, _make_vae

L, KAPPA = 8, 0.2


def _gff(n, seed):
    P = gff_exact_spectrum(L, KAPPA)
    w = np.fft.fft2(np.random.default_rng(seed).standard_normal((n, L, L)))
    return np.real(np.fft.ifft2(w * np.sqrt(P))).astype(np.float32)


def _gff_log_density(x):
    """Exact log p(x) of the GFF: −½ Σ_k |x̂_k|²/(V P_k) − ½ Σ_k log(2π P_k)."""
    P = gff_exact_spectrum(L, KAPPA)
    xk = np.fft.fft2(np.asarray(x, np.float64))
    return -0.5 * np.sum(np.abs(xk) ** 2 / P, axis=(-2, -1)) / L**2 - 0.5 * np.sum(np.log(2 * np.pi * P))


def test_vae_elbo_is_below_the_exact_log_likelihood():
    """E[ELBO] ≤ E[log p_model] ≤ E[log p_true] on held-out GFF fields (cross-entropy ≥ entropy); the
    trained bound is also close (within 0.1 nat per site): the ELBO is neither loose nor wrong-signed."""
    train, held = _gff(256, 0), _gff(256, 1)
    model = VAEModel.fit(train, key=jax.random.key(0), progress=False, steps=200, width=8, down=1,
                         learning_rate=3e-3, warmup=10)
    assert model.losses[-10:].mean() < model.losses[:10].mean()
    gap = (model.elbo(held, key=jax.random.key(1)) - _gff_log_density(held)) / L**2
    se = gap.std(ddof=1) / np.sqrt(len(gap))
    assert gap.mean() < 3 * se, (gap.mean(), se)
    assert gap.mean() > -0.1, gap.mean()
    assert {"final_kl_per_site", "final_reconstruction_per_site", "train_elbo_per_site"} <= set(model.training)


@pytest.mark.parametrize("latent", ["spatial", pytest.param("global", marks=pytest.mark.slow)])
def test_vae_save_load_and_resume(tmp_path, latent):
    x = _gff(32, 2)
    opts = dict(steps=20, batch_size=8, width=4, down=1, latent=latent, latent_dim=8, chunk=10, warmup=2)
    full = VAEModel.fit(x, key=jax.random.key(0), progress=False, **opts)
    back = VAEModel.load(full.save(tmp_path / "vae.h5"))
    np.testing.assert_array_equal(back.sample(4, key=jax.random.key(1)), full.sample(4, key=jax.random.key(1)))
    assert back.n_params == full.n_params > 0
    ck = str(tmp_path / "ck.h5")
    VAEModel.fit(x, key=jax.random.key(0), progress=False, checkpoint=ck, stop_at=10, **opts)
    resumed = VAEModel.fit(x, key=jax.random.key(0), progress=False, checkpoint=ck, **opts)
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.sample(4, key=jax.random.key(1)), full.sample(4, key=jax.random.key(1)),
                               rtol=1e-4, atol=1e-5)


def test_gan_record_save_load_and_resume(tmp_path):
    x = _gff(32, 3)
    opts = dict(steps=20, batch_size=8, width=4, up=1, latent_channels=2, chunk=10, warmup=2)
    full = GANModel.fit(x, key=jax.random.key(0), progress=False, **opts)
    for curve in ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein"):
        assert full.curves[curve].shape == (20,) and np.all(np.isfinite(full.curves[curve]))
    mc = full.training["mode_collapse"]
    assert mc["diversity_ratio"] > 0 and mc["n_fields"] == 32
    back = GANModel.load(full.save(tmp_path / "gan.h5"))
    np.testing.assert_array_equal(back.sample(4, key=jax.random.key(1)), full.sample(4, key=jax.random.key(1)))
    np.testing.assert_array_equal(back.curves["critic_loss"], full.curves["critic_loss"])
    ck = str(tmp_path / "ck.h5")
    GANModel.fit(x, key=jax.random.key(0), progress=False, checkpoint=ck, stop_at=10, **opts)
    resumed = GANModel.fit(x, key=jax.random.key(0), progress=False, checkpoint=ck, **opts)
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(resumed.curves["critic_loss"], full.curves["critic_loss"], rtol=1e-4, atol=1e-5)


def test_diversity_ratio_detects_collapse():
    x = _gff(64, 4)
    assert abs(diversity_ratio(_gff(64, 5), x) - 1) < 0.1
    collapsed = np.repeat(x[:1], 64, axis=0) + 0.01 * _gff(64, 6)
    assert diversity_ratio(collapsed, x) < 0.05


def test_bad_input_is_refused():
    x = _gff(8, 7)
    with pytest.raises(ParameterError, match="latent must be"):
        VAEModel.fit(x, key=jax.random.key(0), progress=False, latent="flat")
    with pytest.raises(ParameterError, match="divisible by 16"):
        GANModel.fit(x, key=jax.random.key(0), progress=False, up=4)
    bad = x.copy()
    bad[0, 0, 0] = np.inf
    for cls in (VAEModel, GANModel):
        with pytest.raises(InputError, match="NaN or inf"):
            cls.fit(bad, key=jax.random.key(0), progress=False, steps=2)
    net = VAEConfig(width=2, down=1).net_dict()
    untrained = VAEModel(_make_vae(net, (L, L), jax.random.key(0)), net, 0.0, 1.0)
    with pytest.raises(InputError, match="do not match"):
        untrained.elbo(np.zeros((2, 4, 4)), key=jax.random.key(0))


@pytest.mark.parametrize("kind, opts", [
    ("flow", ["--set", "layers=2", "--set", "width=4", "--set", "hidden=1"]),
    pytest.param("vae", ["--set", "width=4"], marks=pytest.mark.slow),   # the same registry path as flow
    pytest.param("gan", ["--set", "width=4", "--set", "up=1"], marks=pytest.mark.slow)])
def test_new_models_through_the_cli(tmp_path, capsys, kind, opts):
    data = tmp_path / "gff.h5"
    write_fields(data, _gff(32, 8), field="custom", generator="test")
    model = tmp_path / f"{kind}.h5"
    assert main(["fit", kind, str(data), "--steps", "4", "-o", str(model), "--quiet", *opts]) == 0
    out = tmp_path / f"{kind}_samples.h5"
    assert main(["sample", str(model), "-n", "6", "-o", str(out), "--quiet"]) == 0
    with open_fields(out) as ds:
        assert ds[:].shape == (6, L, L) and np.all(np.isfinite(ds[:]))
    # a wrong option is one line naming the allowed ones
    assert main(["fit", kind, str(data), "--steps", "2", "-o", str(tmp_path / "x.h5"), "--set", "widht=3"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "widht" in err[0]
