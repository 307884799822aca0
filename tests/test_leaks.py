"""No leaks between data and models: sampling keys carry a tag of their own (no model reproduces a
generator's noise), and a model's training record lets `check_training_disjoint` refuse a model that
saw the held-out fields."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

import jax
import phigen.io as pio
from phigen import errors as E
from phigen.fields.gaussian import gaussian_field, power_law_spectrum
from phigen.generators import generate
from phigen.models import (GaussianSpectrumModel, check_training_disjoint, field_digests, fit, load_model,
                           sample, sampling_tag, write_model_file)

SIZE, N, K = 32, 16, 7


def _nn_distances(samples, data):
    """Relative L2 distance of each sample to its nearest data field."""
    s = np.asarray(samples, np.float64).reshape(len(samples), -1)
    d = np.asarray(data, np.float64).reshape(len(data), -1)
    dist = np.linalg.norm(s[:, None] - d[None], axis=-1) / np.linalg.norm(d, axis=-1).mean()
    return dist.min(axis=1)


def _independent_distance(data):
    d = np.asarray(data, np.float64).reshape(len(data), -1)
    dist = np.linalg.norm(d[:, None] - d[None], axis=-1) / np.linalg.norm(d, axis=-1).mean()
    return float(np.median(dist[np.triu_indices(len(d), 1)]))


@pytest.fixture(scope="module")
def gfile(tmp_path_factory):
    p = generate("gaussian", tmp_path_factory.mktemp("leak") / "g.h5", size=SIZE, n=N, seed=K, slope=2.0)
    return p, pio.read_fields(p)


# --- sampling keys ---------------------------------------------------------------------------------
def test_seed_collision_with_the_generator_is_gone(gfile):
    path, data = gfile
    model = fit("gaussian", path)
    # the collision condition: `generate --seed K` draws batch 0 from normal(fold_in(PRNGKey(K), 0)) ...
    gen_key = jax.random.fold_in(jax.random.PRNGKey(K), 0)
    noise = jax.random.normal(gen_key, (N, SIZE, SIZE), jax.numpy.float32)
    np.testing.assert_allclose(np.asarray(gaussian_field(gen_key, N, SIZE, power_law_spectrum(2.0))), data,
                               rtol=1e-5, atol=1e-5)
    # ... and compare --seed K-1 samples with `sample(..., seed=K)`, whose batch 0 key is the same one:
    # without the tag the model filtered that very noise and returned near-copies of the data
    untagged = np.asarray(type(model).sample.__wrapped__(model, N, key=gen_key))
    amp = np.sqrt(model.spectrum)
    np.testing.assert_allclose(untagged, model.mean + np.real(np.fft.ifft2(np.fft.fft2(noise) * amp)),
                               rtol=1e-4, atol=1e-4)
    floor = _independent_distance(data)  # ≈ √2 for independent fields
    assert floor > 1.0
    assert _nn_distances(untagged, data).max() < 0.35 * floor

    seed = K - 1
    new = np.asarray(sample(model, N, seed=seed + 1))  # the way compare samples
    assert new.shape == data.shape
    assert _nn_distances(new, data).min() > 0.6 * floor
    # nor does a direct call with the generator's own key
    direct = np.asarray(model.sample(N, key=gen_key))
    assert _nn_distances(direct, data).min() > 0.6 * floor
    direct0 = np.asarray(model.sample(N, key=jax.random.PRNGKey(K)))
    assert _nn_distances(direct0, data).min() > 0.6 * floor


def test_same_kind_same_key_same_noise_and_kinds_differ(gfile):
    _, data = gfile
    a = GaussianSpectrumModel.fit(data[:8], key=jax.random.PRNGKey(0))
    b = GaussianSpectrumModel(a.mean + 1.0, a.spectrum * 4.0)
    key = jax.random.PRNGKey(3)
    xa, xb = np.asarray(a.sample(4, key=key)), np.asarray(b.sample(4, key=key))
    np.testing.assert_allclose(xb - b.mean, 2.0 * (xa - a.mean), rtol=1e-4, atol=1e-4)  # the same noise
    np.testing.assert_array_equal(np.asarray(sample(a, 4, seed=5)), np.asarray(sample(a, 4, seed=5)))
    assert sampling_tag("gaussian") != sampling_tag("diffusion") != sampling_tag("scattering")
    assert 0 <= sampling_tag("wcrg") < 2**31


def test_nested_sampling_is_tagged_once(gfile, register_test_model):
    from phigen.models._base import read_model_file, tag_sampling_key, write_model_file

    _, data = gfile
    inner = GaussianSpectrumModel.fit(data[:8], key=jax.random.PRNGKey(0))

    @register_test_model("test-nested")
    class Outer:  # a model whose sampling calls another model's
        n_params = inner.n_params

        @classmethod
        def fit(cls, fields, *, key, progress=None):
            return cls()

        def sample(self, n, *, key):
            return inner.sample(n, key=key)

        def save(self, path):
            return write_model_file(path, self.kind, config={})

        @classmethod
        def load(cls, path):
            read_model_file(path, cls.kind)
            return cls()

    key = jax.random.PRNGKey(1)
    got = np.asarray(Outer().sample(2, key=key))
    want = np.asarray(GaussianSpectrumModel.sample.__wrapped__(inner, 2, key=tag_sampling_key(key, "test-nested")))
    np.testing.assert_array_equal(got, want)


# --- the training record and the leak guard --------------------------------------------------------
def test_model_fitted_on_everything_is_refused(gfile):
    path, data = gfile
    model = fit("gaussian", path)  # the old default: test_fraction 0
    with pio.open_fields(path) as ds:
        _, test_idx = ds.split(0.5, seed=0)
    with pytest.raises(E.DataLeakError, match=r"trained on 8 of the 8 held-out fields.*--test-fraction 0.5 "
                                              r"--split-seed 0") as info:
        check_training_disjoint(model, data[test_idx], data_path=path, held_out_indices=test_idx,
                                test_fraction=0.5, split_seed=0)
    assert "\n" not in str(info.value) and "by file index" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, E.PhigenError)
    # without the file: the digests alone find them
    with pytest.raises(E.DataLeakError, match="8 of the 8"):
        check_training_disjoint(model, data[test_idx])
    # the index check alone (same file by content), without the fields
    with pytest.raises(E.DataLeakError, match="8 of the 8"):
        check_training_disjoint(model, None, data_path=path, held_out_indices=test_idx)


def test_model_fitted_on_the_training_split_is_accepted(gfile, tmp_path):
    path, data = gfile
    model = fit("gaussian", path, out=tmp_path / "m.h5", test_fraction=0.5, split_seed=0)
    with pio.open_fields(path) as ds:
        train_idx, test_idx = ds.split(0.5, seed=0)
    prov = model.training["provenance"]
    np.testing.assert_array_equal(prov["train_indices"], train_idx)
    assert prov["test_fraction"] == 0.5 and prov["split_seed"] == 0 and prov["data_shape"] == [N, SIZE, SIZE]
    np.testing.assert_array_equal(prov["field_digests"], field_digests(data[train_idx]))
    for m in (model, load_model(tmp_path / "m.h5"), tmp_path / "m.h5"):
        rec = check_training_disjoint(m, data[test_idx], data_path=path, held_out_indices=test_idx)
        assert rec["n_overlap"] == 0 and rec["same_data_file"] is True
        assert rec["checked"] == ["field_digests", "train_indices"] and rec["n_held_out"] == 8
        json.dumps(rec)
    # another split of the same file does overlap, and the error names the model file
    with pio.open_fields(path) as ds:
        _, other_test = ds.split(0.5, seed=1)
    n_common = len(np.intersect1d(other_test, train_idx))
    assert n_common > 0
    with pytest.raises(E.DataLeakError, match=rf"gaussian model {tmp_path / 'm.h5'} was trained on {n_common} of"):
        check_training_disjoint(load_model(tmp_path / "m.h5"), data[other_test], data_path=path,
                                held_out_indices=other_test)


def test_model_fitted_on_an_array_with_held_out_fields_is_refused(gfile, tmp_path):
    path, data = gfile
    with pio.open_fields(path) as ds:
        train_idx, test_idx = ds.split(0.5, seed=0)
    leaked = np.concatenate([data[train_idx], data[test_idx[:3]]])
    model = fit("gaussian", leaked)
    assert model.training["provenance"]["data"] == "<array>"
    with pytest.raises(E.DataLeakError, match=r"trained on 3 of the 8 held-out fields \(3 by field content\)"):
        check_training_disjoint(model, data[test_idx], data_path=path, held_out_indices=test_idx)
    # a copy in another file is found too: the digests do not depend on where the fields live
    copy = pio.write_fields(tmp_path / "copy.h5", data[test_idx])
    with pytest.raises(E.DataLeakError, match="3 of the 8"):
        check_training_disjoint(model, pio.read_fields(copy))
    clean = fit("gaussian", data[train_idx])
    assert check_training_disjoint(clean, data[test_idx], data_path=path)["same_data_file"] is False


def test_old_model_without_record_is_refused(gfile, tmp_path):
    _, data = gfile
    m = GaussianSpectrumModel.fit(data, key=jax.random.PRNGKey(0))
    # an old-style file: no provenance in its training record; it still loads
    write_model_file(tmp_path / "old.h5", "gaussian", config={"shape": [SIZE, SIZE]},
                     arrays={"mean": np.float32(m.mean), "spectrum": m.spectrum},
                     training={"data": "g.h5", "n_train": N})
    old = load_model(tmp_path / "old.h5")
    assert "provenance" not in old.training
    with pytest.raises(E.DataLeakError, match="no record of its training data.*refit with `phigen fit gaussian"):
        check_training_disjoint(old, data[:4])
    with pytest.raises(E.DataLeakError, match="no record"):
        check_training_disjoint(m, data[:4])


def test_round_trip_keeps_record_and_digests_in_datasets(gfile, tmp_path):
    path, data = gfile
    model = fit("gaussian", path, out=tmp_path / "m.h5", test_fraction=0.25, split_seed=3)
    back = load_model(tmp_path / "m.h5")
    a, b = model.training["provenance"], back.training["provenance"]
    assert a["data_sha256"] == b["data_sha256"] and a["data_sha256"].startswith("sha256:")
    assert b["data"] == os.path.abspath(path) and b["test_fraction"] == 0.25 and b["split_seed"] == 3
    for k in ("train_indices", "field_digests"):
        np.testing.assert_array_equal(a[k], b[k])
    assert b["field_digests"].dtype == np.uint64
    with pio.open_fields(path) as ds:  # groups: None, or per field (generators may record "field" groups)
        groups = getattr(ds, "groups", None)
    if groups is None:
        assert b["train_groups"] is None
    else:
        np.testing.assert_array_equal(b["train_groups"], np.unique(groups[b["train_indices"]]))
    with h5py.File(tmp_path / "m.h5", "r") as h5:
        assert h5["provenance/field_digests"].shape == (12,)
        attr = json.loads(h5.attrs["training"])
        assert attr["provenance"]["field_digests"] == {"dataset": "provenance/field_digests"}
    # a rewritten file (save of a loaded model) keeps it as well
    back.save(tmp_path / "m2.h5")
    np.testing.assert_array_equal(load_model(tmp_path / "m2.h5").training["provenance"]["field_digests"],
                                  a["field_digests"])


def test_large_training_record_fits_in_the_file(tmp_path):
    n = 100_000
    prov = {"train_indices": np.arange(n, dtype=np.int64), "field_digests": np.arange(n, dtype=np.uint64),
            "train_groups": None, "data": "x.h5"}
    write_model_file(tmp_path / "big.h5", "gaussian", config={"shape": [4, 4]},
                     arrays={"mean": np.float32(0), "spectrum": np.ones((4, 4), np.float32)},
                     training={"provenance": prov})
    back = load_model(tmp_path / "big.h5").training["provenance"]
    np.testing.assert_array_equal(back["train_indices"], prov["train_indices"])


def test_groups_are_recorded_and_checked(gfile, monkeypatch):
    path, data = gfile
    labels = np.arange(N, dtype=np.int64) // 2  # pairs of correlated fields
    monkeypatch.setattr(pio.FieldDataset, "groups", property(lambda self: labels), raising=False)
    model = fit("gaussian", path, max_fields=5)  # fields 0..4: groups 0, 1, 2
    np.testing.assert_array_equal(model.training["provenance"]["train_groups"], [0, 1, 2])
    held = np.array([5, 6, 7, 8])  # field 5 shares group 2 with field 4
    with pytest.raises(E.DataLeakError, match=r"trained on 1 of the 4 held-out fields \(1 by group\)"):
        check_training_disjoint(model, data[held], data_path=path, held_out_indices=held,
                                held_out_groups=labels[held])
    ok = np.array([6, 7, 8, 9])
    assert check_training_disjoint(model, data[ok], data_path=path, held_out_indices=ok,
                                   held_out_groups=labels[ok])["checked"] == ["field_digests", "train_indices",
                                                                                "train_groups"]
