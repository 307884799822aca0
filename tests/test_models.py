"""The model protocol, the model file format and `phigen fit` / `phigen sample` (on the Gaussian model)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import jax
import phigen.io as pio
from phigen import errors as E
from phigen.cli import main
from phigen.fields.gaussian import gaussian_field, power_law_spectrum
from phigen.models import GaussianSpectrumModel, fit, load_model, read_model_file, sample, write_model_file
from phigen.stats import compare


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    x = np.asarray(gaussian_field(jax.random.PRNGKey(0), 200, 32, power_law_spectrum(2.5)))
    p = tmp_path_factory.mktemp("d") / "g.h5"
    pio.write_fields(p, x, field="gaussian", params={"slope": 2.5})
    return p, x


def test_gaussian_model_reproduces_spectrum(data, tmp_path):
    p, x = data
    m = fit("gaussian", p, out=tmp_path / "m.h5", test_fraction=0.5)
    assert m.training["n_train"] == 100 and m.training["field"] == "gaussian"
    assert m.n_params == 32 * 17 + 1
    y = np.asarray(sample(m, 100, seed=1))
    cmp = compare(y, x, seed=0, statistics=("power_spectrum", "pdf"))
    d = cmp["power_spectrum"]["distances"]["chi2"]
    # fitted on 100 fields, the model's spectrum error is comparable to the floor's (both O(1))
    assert d["model"] < 3.0 and d["floor"] < 3.0


def test_save_load_round_trip_and_sample_file(data, tmp_path):
    p, _ = data
    m = fit("gaussian", p, out=tmp_path / "m.h5")
    m2 = load_model(tmp_path / "m.h5")
    assert isinstance(m2, GaussianSpectrumModel)
    np.testing.assert_array_equal(m2.spectrum, m.spectrum)
    assert m2.training["data"] == str(p)
    a = np.asarray(m.sample(4, key=jax.random.PRNGKey(3)))
    b = np.asarray(m2.sample(4, key=jax.random.PRNGKey(3)))
    np.testing.assert_array_equal(a, b)
    out = sample(tmp_path / "m.h5", 10, out=tmp_path / "s.h5", seed=2, batch_size=4)
    with pio.open_fields(out) as ds:
        assert len(ds) == 10 and ds.field == "gaussian" and ds.generator == "phigen.models:gaussian"
        assert ds.config["model_file"] == str(tmp_path / "m.h5")


def test_model_file_errors(data, tmp_path):
    p, _ = data
    with pytest.raises(E.ModelFileError, match="fields file, not a model"):
        load_model(p)
    write_model_file(tmp_path / "other.h5", "diffusion-test", config={})
    with pytest.raises(E.ModelFileError, match="not a 'gaussian' model"):
        GaussianSpectrumModel.load(tmp_path / "other.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(E.ModelFileError):
        load_model(bad)
    # a damaged array fails its checksum
    m = fit("gaussian", p, out=tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as h5:
        off = h5["arrays/spectrum"].id.get_chunk_info(0).byte_offset
    raw = bytearray((tmp_path / "m.h5").read_bytes())
    raw[off + 40] ^= 0xFF
    (tmp_path / "m.h5").write_bytes(bytes(raw))
    with pytest.raises(E.ModelFileError, match="damaged"):
        read_model_file(tmp_path / "m.h5")


def test_cli_fit_sample(data, tmp_path, capsys):
    p, _ = data
    mf = tmp_path / "m.h5"
    assert main(["fit", "gaussian", str(p), "-o", str(mf), "--quiet"]) == 0
    assert "parameters" in capsys.readouterr().out
    assert main(["fit", "gaussian", str(p), "-o", str(mf), "--quiet"]) == 1  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["sample", str(mf), "-n", "8", "-o", str(tmp_path / "s.h5"), "--quiet"]) == 0
    assert pio.validate(tmp_path / "s.h5").ok
    assert main(["fit", "nonsense", str(p), "-o", str(tmp_path / "x.h5")]) == 1
    assert "unknown model" in capsys.readouterr().err
    assert main(["sample", str(p), "-n", "3", "-o", str(tmp_path / "y.h5")]) == 1
    assert "not a model" in capsys.readouterr().err
    assert main(["fit", "gaussian", str(p), "-o", str(tmp_path / "z.h5"), "--set", "nonsense=1"]) == 1
    assert "unknown option(s) nonsense" in capsys.readouterr().err


def test_register_model_checks_the_protocol_and_refuses_a_taken_name():
    from phigen.models import MODELS, GenerativeModel, register_model
    from phigen.models._base import available_models

    kinds = available_models()
    assert {"gaussian", "scattering", "wcrg", "wsgm", "diffusion", "flow-matching"} <= set(kinds)
    for k in kinds:  # every registered class has the protocol's members
        assert MODELS[k].kind == k and all(hasattr(MODELS[k], m) for m in dir(GenerativeModel) if not m.startswith("_"))

    class NoSample:
        n_params = 0

        @classmethod
        def fit(cls, fields, *, key, progress=None):
            return cls()

        def save(self, path): ...

        @classmethod
        def load(cls, path): ...

    with pytest.raises(E.ParameterError, match="lacks sample"):
        register_model("test-no-sample")(NoSample)

    class PositionalKey(NoSample):
        def sample(self, n, key):
            return np.zeros((n, 4, 4))

    with pytest.raises(E.ParameterError, match="keyword-only key="):
        register_model("test-positional-key")(PositionalKey)

    class DefaultKey(NoSample):
        def sample(self, n, *, key=None):
            return np.zeros((n, 4, 4))

    with pytest.raises(E.ParameterError, match="key= must be required"):
        register_model("test-default-key")(DefaultKey)

    class Fine(NoSample):
        def sample(self, n, *, key):
            return np.zeros((n, 4, 4))

    with pytest.raises(E.ParameterError, match="already registered by phigen.models.gaussian"):
        register_model("gaussian")(Fine)
    assert MODELS["gaussian"] is GaussianSpectrumModel
    assert "test-no-sample" not in MODELS and "test-positional-key" not in MODELS
    with pytest.raises(E.ParameterError, match="non-empty name"):
        register_model(" ")


def test_model_options_come_from_one_frozen_config():
    """Models with many options declare them as one frozen dataclass (fit_config); the option checks
    of phigen fit / compare read its fields, a whole config equals the same keywords, and a training
    'steps' is named apart from a sampling budget."""
    import dataclasses

    import equinox as eqx

    from phigen.diffusion.models import DiffusionConfig, DiffusionModel
    from phigen.models import fit as fit_kind, get_model_class, model_options
    from phigen.rg import WCRGConfig, WSGMConfig
    from phigen.scattering import ScatteringConfig

    for kind, config in (("wcrg", WCRGConfig), ("wsgm", WSGMConfig), ("diffusion", DiffusionConfig),
                         ("scattering", ScatteringConfig)):
        cls = get_model_class(kind)
        assert cls.fit_config is config and dataclasses.is_dataclass(config)
        # besides the record's fields, a conditional fit takes its data's conditions (not options)
        assert model_options(cls) - {"conditions", "condition_names"} == {f.name for f in dataclasses.fields(config)}, kind
        with pytest.raises(dataclasses.FrozenInstanceError):
            config().steps = 3
    assert "steps" not in model_options(get_model_class("wcrg"))  # WC-RG's fit trains nothing step by step
    x = np.random.default_rng(0).standard_normal((8, 8, 8)).astype(np.float32)
    with pytest.raises(E.ParameterError, match="unknown option.*nfe"):
        fit_kind("diffusion", x, nfe=3)
    with pytest.raises(E.ParameterError, match="config must be a DiffusionConfig"):
        DiffusionModel.fit(x, key=jax.random.PRNGKey(0), config={"steps": 2})
    small = dict(steps=3, batch_size=4, width=4, depth=1, chunk=3)
    a = DiffusionModel.fit(x, key=jax.random.PRNGKey(1), progress=False, **small)
    b = DiffusionModel.fit(x, key=jax.random.PRNGKey(1), progress=False,
                           config=DiffusionConfig(**{**small, "width": 8}), width=4)  # a keyword overrides the record
    la, lb = jax.tree_util.tree_leaves(eqx.filter(a.net, eqx.is_array)), jax.tree_util.tree_leaves(
        eqx.filter(b.net, eqx.is_array))
    assert all(np.array_equal(u, v) for u, v in zip(la, lb)) and np.array_equal(a.losses, b.losses)
    with pytest.raises(E.ParameterError, match="coarse must be one of"):
        WSGMConfig(coarse="flow")
    with pytest.raises(E.ParameterError, match="modes 'micro' and 'canonical'"):
        ScatteringConfig(mode="maxent", shell_power=True)
    with pytest.raises(E.ParameterError, match="mode 'canonical' only"):
        ScatteringConfig(beta=10.0)
    assert ScatteringConfig(marginal_bins=4).marginal_bins == 4  # pixel-PDF statistics: any mode
