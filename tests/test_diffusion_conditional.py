"""Conditional diffusion / flow matching: p(x | c) with the condition as constant input channels."""

import warnings

import jax
import numpy as np
import pytest

from phigen.diffusion.models import DiffusionModel, FlowMatchingModel
from phigen.errors import InputError, ParameterError

NET = dict(width=8, depth=2, batch_size=16, steps=400, chunk=200, progress=False)


@pytest.fixture(scope="module")
def amplitude_data(gaussian_fields):
    """Gaussian fields whose amplitude is the condition a ∈ {0.5, 1, 2} (the law depends on a in closed form)."""
    a = np.repeat([0.5, 1.0, 2.0], 32)
    return gaussian_fields(96, 8, slope=2.0, seed=7) * a[:, None, None], a


@pytest.mark.slow
@pytest.mark.parametrize("cls", [DiffusionModel, FlowMatchingModel], ids=["diffusion", "flow-matching"])
def test_conditional_model_follows_the_condition(cls, amplitude_data, tmp_path):
    x, a = amplitude_data
    m = cls.fit(x, key=jax.random.PRNGKey(0), conditions=a, condition_names=["a"], **NET)
    assert m.condition_names == ["a"] and m.unet_config.cond_channels == 1
    stds = [float(np.std(m.sample(96, key=jax.random.PRNGKey(1), condition=[v], nfe=16))) for v in (0.5, 2.0)]
    truth = [float(np.std(x[a == v])) for v in (0.5, 2.0)]
    # the law scales with a: the model's ratio of standard deviations follows the truth's 4 (within 25 %)
    assert abs(stds[1] / stds[0] / (truth[1] / truth[0]) - 1) < 0.25
    back = cls.load(m.save(tmp_path / "m.h5"))
    np.testing.assert_array_equal(np.asarray(back.sample(4, key=jax.random.PRNGKey(2), condition=[1.0], nfe=4)),
                                  np.asarray(m.sample(4, key=jax.random.PRNGKey(2), condition=[1.0], nfe=4)))


def test_conditional_sampling_errors_and_extrapolation(amplitude_data, tmp_path):
    x, a = amplitude_data
    tiny = {**NET, "steps": 2, "chunk": 2, "depth": 1}
    m = DiffusionModel.fit(x, key=jax.random.PRNGKey(0), conditions=a, **tiny)
    back = DiffusionModel.load(m.save(tmp_path / "m.h5"))  # the condition record survives the file
    assert back.condition_names == ["c0"] and back.unet_config.cond_channels == 1
    with pytest.raises(ParameterError, match="pass condition="):
        m.sample(2, key=jax.random.PRNGKey(0), nfe=4)
    with pytest.raises(ParameterError, match="finite"):
        m.sample(2, key=jax.random.PRNGKey(0), nfe=4, condition=[float("nan")])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        back.sample(2, key=jax.random.PRNGKey(0), nfe=4, condition=[3.0])
    assert any("outside the training range" in str(v.message) for v in w)
    plain = DiffusionModel.fit(x, key=jax.random.PRNGKey(0), **tiny)
    with pytest.raises(ParameterError, match="not conditional"):
        plain.sample(2, key=jax.random.PRNGKey(0), nfe=4, condition=[1.0])
    with pytest.raises(InputError, match="one row per field"):
        DiffusionModel.fit(x, key=jax.random.PRNGKey(0), conditions=a[:5], **NET)
