"""phigen._generalisation (public as phigen.generalisation): the two-disjoint-training-sets test (Kadkhodaie et al. 2024) and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import phigen
from phigen import errors as E
from phigen.cli import main
from phigen._generalisation import _align, field_similarity, generalisation
from phigen.models import read_model_file, write_model_file
from phigen.stats.memorisation import nearest_neighbour_distances

N_FIELDS, SIZE = 80, 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # generator seed 7: NOT the models' sampling seed (seed + 1 = 1), whose noise a Gaussian model
    # would share with the generator — its samples would then copy the truth fields
    path = tmp_path_factory.mktemp("gen") / "g16.h5"
    return phigen.generate("gaussian", path, size=SIZE, n=N_FIELDS, seed=7, slope=1.0, progress=False)


@pytest.fixture(scope="module")
def gaussian_report(data, tmp_path_factory):
    return generalisation(data, model="gaussian", sizes=(2, 32), out_dir=tmp_path_factory.mktemp("gz"),
                          n_samples=16, seed=0)


@pytest.fixture(scope="module")
def memoriser(register_test_model):
    """A test-only model that returns its training fields, randomly shifted, plus tiny noise."""

    @register_test_model("test-memorise")
    class Memorise:
        def __init__(self, fields):
            self.fields = np.asarray(fields, np.float32)

        @property
        def n_params(self):
            return int(self.fields.size)

        @classmethod
        def fit(cls, fields, *, key, progress=None):
            return cls(fields)

        def sample(self, n, *, key):
            k1, k2, k3 = jax.random.split(key, 3)
            idx = np.asarray(jax.random.randint(k1, (n,), 0, len(self.fields)))
            shifts = np.asarray(jax.random.randint(k2, (n, 2), 0, self.fields.shape[-1]))
            out = np.stack([np.roll(self.fields[i], tuple(s), axis=(0, 1)) for i, s in zip(idx, shifts)])
            return out + 1e-3 * np.asarray(jax.random.normal(k3, out.shape))

        def save(self, path):
            return write_model_file(path, self.kind, config={}, arrays={"fields": self.fields})

        @classmethod
        def load(cls, path):
            return cls(read_model_file(path, cls.kind).arrays["fields"])

    return "test-memorise"


def _random_transform(x, rng):
    y = np.roll(x, tuple(rng.integers(0, x.shape[-1], 2)), axis=(0, 1))
    return -np.swapaxes(y, 0, 1)[::-1]


def test_similarity_is_one_for_transformed_copies_and_matches_nearest_neighbours():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 12, 12)).astype(np.float32) + 3.0  # the means are removed
    b = np.stack([_random_transform(f, rng) for f in a]) - 2.0
    np.testing.assert_allclose(field_similarity(a, b), 1.0, atol=1e-5)
    # without the group the same pairs are unrelated fields: similarity near 0, far below 1
    assert np.all(np.abs(field_similarity(a, b, symmetries=())) < 0.5)
    # agrees with the memorisation module's distance on each pair: s = 1 − d²
    c = rng.normal(size=(5, 12, 12)).astype(np.float32)
    s = field_similarity(a, c)
    for i in range(5):
        ac, cc = a[i:i + 1] - a[i].mean(), c[i:i + 1] - c[i].mean()
        d = nearest_neighbour_distances(ac, cc).distance[0]
        assert abs(s[i] - (1 - d ** 2)) < 1e-4
    # the aligned image is the copy itself
    ac, bc = a[0] - a[0].mean(), b[0] - b[0].mean()
    np.testing.assert_allclose(_align(ac, bc, ("shifts", "dihedral", "sign")), ac, atol=1e-5)
    with pytest.raises(E.InputError, match="shapes must match"):
        field_similarity(a, c[:3])


def test_gaussian_generalises(gaussian_report):
    r = gaussian_report
    out = r["report"]
    for key in ("json", "markdown", "plot", "examples"):
        assert Path(out[key]).stat().st_size > 0
    saved = json.loads(Path(out["json"]).read_text())
    assert saved["sizes"] == [2, 32] and saved["n_samples"] == 16
    big = r["results"][-1]
    for name in ("model_similarity", "train_similarity", "truth_similarity", "closer_to_train"):
        assert np.isfinite(big[name]["value"]) and np.isfinite(big[name]["error"])
    # same noise, spectra estimated from 32 disjoint fields each: nearly the same samples
    assert big["model_similarity"]["value"] > 0.95
    # ...which sit no closer to their training fields than fresh truth does (within 5 standard errors)
    assert big["train_similarity"]["value"] < 0.6
    diff = big["train_similarity"]["value"] - big["truth_similarity"]["value"]
    assert abs(diff) < 5 * np.hypot(big["train_similarity"]["error"], big["truth_similarity"]["error"])
    assert big["closer_to_train"]["value"] == 0.0 and big["regime"] == "generalising"
    # agreement grows with N: two spectra from 2 fields each disagree more than from 32
    assert r["results"][0]["model_similarity"]["value"] < big["model_similarity"]["value"] - 0.05
    # disjoint training sets, nested across N
    (a2, b2), (a32, b32) = (row["training_indices"] for row in r["results"])
    assert not set(a32) & set(b32) and set(a2) <= set(a32) and set(b2) <= set(b32)
    samples = phigen.read_fields(Path(out["json"]).parent / r["files"]["samples"][-1])
    assert samples.shape == (16, SIZE, SIZE)


def test_memorising_model_is_caught(data, memoriser, tmp_path):
    r = generalisation(data, model=memoriser, sizes=(8, 32), out_dir=tmp_path, n_samples=12, seed=3)
    for row in r["results"]:
        sims = np.asarray(row["per_sample"]["train_similarity_model_1"] + row["per_sample"]["train_similarity_model_2"])
        assert sims.min() > 0.99  # every sample is a (shifted) training field
        assert row["model_similarity"]["value"] < 0.6  # the two models return different fields
        assert row["closer_to_train"]["value"] == 1.0
        assert row["regime"] == "memorising"
    assert "memorising" in (tmp_path / "generalisation.md").read_text()


def test_sizes_too_large_for_the_file_are_an_error(data, tmp_path):
    with pytest.raises(E.ParameterError, match=f"holds {N_FIELDS} fields.*2N = 82.*largest possible N: 40"):
        generalisation(data, model="gaussian", sizes=(10, 41), out_dir=tmp_path)
    assert not (tmp_path / "generalisation.json").exists()  # refused before fitting anything
    for bad in ((0,), (4, 4), (2.5,), ()):
        with pytest.raises(E.ParameterError):
            generalisation(data, model="gaussian", sizes=bad, out_dir=tmp_path)
    with pytest.raises(E.ParameterError, match="unknown model"):
        generalisation(data, model="no-such-model", sizes=(2,), out_dir=tmp_path)
    with pytest.raises(E.ParameterError, match="n_samples"):
        generalisation(data, model="gaussian", sizes=(2,), out_dir=tmp_path, n_samples=1)


def test_cli_and_lazy_export(data, tmp_path, capsys):
    rc = main(["generalisation", str(data), "--model", "gaussian", "--N", "2,4", "-o", str(tmp_path / "rep"),
               "--n-samples", "4", "--seed", "1", "--json", str(tmp_path / "g.json"), "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0 and "generalisation.md" in printed
    rep = json.loads((tmp_path / "g.json").read_text())
    assert [row["N"] for row in rep["results"]] == [2, 4] and rep["seed"] == 1
    assert (tmp_path / "rep" / "generalisation.png").stat().st_size > 0
    rc = main(["generalisation", str(data), "--model", "gaussian", "--N", "50", "-o", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("phigen: error:") and f"holds {N_FIELDS} fields" in err
    assert len(err.strip().splitlines()) == 1
    # the public twin: callable as phigen.generalisation whether or not the submodule was imported
    assert callable(phigen.generalisation)
    r = phigen.generalisation(np.asarray(phigen.read_fields(data))[:12], model="gaussian", sizes=(3,),
                              out_dir=tmp_path / "arr", n_samples=3)
    assert r["data"]["path"] == "<array>" and "truth_similarity" in r["results"][0]
