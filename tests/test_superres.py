"""Super-resolution with WC-RG: sampling that starts at given coarse fields keeps their low-pass exactly."""

import jax
import numpy as np
import pytest

from phigen import io as pio
from phigen.cli import main
from phigen.errors import InputError, ParameterError
from phigen.rg import WCRGModel, coarse_grain
from phigen.wavelets.dwt import dwt


@pytest.fixture(scope="module")
def model_and_truth(gaussian_fields):
    x = gaussian_fields(40, 16, slope=3.0, seed=4)
    m = WCRGModel.fit(x[:32], J=2, k=1, k_coarse=1, n_bumps=2, calibrate=0, check_samples=0, sample_steps=40, sample_adapt=10,
                      coarse_sample_steps=40, coarse_sample_adapt=10, key=jax.random.PRNGKey(0))
    return m, x[32:]


def test_coarse_grain_is_the_dwt_approximation(gaussian_fields):
    x = gaussian_fields(3, 16, seed=1)
    np.testing.assert_allclose(coarse_grain(x, 2), np.asarray(dwt(x, "db4", J=2).approx), atol=1e-6)
    assert coarse_grain(x, 1).shape == (3, 8, 8)
    with pytest.raises(ParameterError, match="divisible by 2\\^3"):
        coarse_grain(np.zeros((2, 12, 12)), 3)


@pytest.mark.parametrize("levels", [1, 2])
def test_wcrg_super_resolution_keeps_the_low_pass(model_and_truth, levels):
    m, truth = model_and_truth
    xc = coarse_grain(truth, levels)
    y = np.asarray(m.sample(len(xc), key=jax.random.PRNGKey(1), from_coarse=xc))
    assert y.shape == truth.shape and np.all(np.isfinite(y))
    np.testing.assert_allclose(coarse_grain(y, levels), xc, atol=1e-5 * np.abs(xc).max())
    assert not np.allclose(y, truth, atol=1e-3)  # new details, not the truth's
    steps = {i["level"] for i in m.last_sample_info}
    assert steps == set(range(1, levels + 1))  # only the levels below the given coarse fields are sampled


def test_super_resolution_bad_input(model_and_truth, tmp_path):
    m, truth = model_and_truth
    xc = coarse_grain(truth, 1)
    with pytest.raises(ParameterError, match="coarse fields of one of its 2 levels \\(8×8, 4×4\\); got 16×16"):
        m.sample(len(truth), key=jax.random.PRNGKey(0), from_coarse=truth)
    with pytest.raises(ParameterError, match="holds 8 coarse fields for n = 3"):
        m.sample(3, key=jax.random.PRNGKey(0), from_coarse=xc)
    bad = xc.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="coarse fields contains NaN"):
        m.sample(len(bad), key=jax.random.PRNGKey(0), from_coarse=bad)


def test_super_resolution_from_the_command_line(model_and_truth, tmp_path):
    m, truth = model_and_truth
    mpath = m.save(tmp_path / "m.h5")
    src = tmp_path / "t.h5"
    pio.write_fields(src, truth, field="gaussian", groups=np.arange(len(truth)) // 2, group_kind="run")
    assert main(["coarse-grain", str(src), "--levels", "1", "-o", str(tmp_path / "c.h5"), "--quiet"]) == 0
    assert main(["sample", str(mpath), "-n", "6", "--from-coarse", str(tmp_path / "c.h5"),
                 "-o", str(tmp_path / "hi.h5"), "--quiet"]) == 0
    with pio.open_fields(tmp_path / "hi.h5") as ds:
        hi, groups = ds.load(), ds.groups
        assert ds.config["sample_options"]["coarse_levels"] == 1
    np.testing.assert_allclose(coarse_grain(hi, 1), coarse_grain(truth[:6], 1), atol=1e-5 * np.abs(hi).max())
    np.testing.assert_array_equal(groups, np.arange(6) // 2)  # each output keeps its coarse field's group
    # one line each: more samples than coarse fields; another wavelet's low-pass; a model without levels
    assert main(["sample", str(mpath), "-n", "9", "--from-coarse", str(tmp_path / "c.h5"),
                 "-o", str(tmp_path / "x.h5"), "--quiet"]) != 0
    assert main(["coarse-grain", str(src), "--levels", "1", "--wavelet", "haar", "-o", str(tmp_path / "h.h5"),
                 "--quiet"]) == 0
    assert main(["sample", str(mpath), "-n", "2", "--from-coarse", str(tmp_path / "h.h5"),
                 "-o", str(tmp_path / "y.h5"), "--quiet"]) != 0
    assert main(["fit", "gaussian", str(src), "-o", str(tmp_path / "g.h5"), "--quiet"]) == 0
    assert main(["sample", str(tmp_path / "g.h5"), "-n", "2", "--from-coarse", str(tmp_path / "c.h5"),
                 "-o", str(tmp_path / "z.h5"), "--quiet"]) != 0
