"""Groups of correlated samples (docs/data.md): recorded by the generators and the file format, kept
whole by every split (phigen.splits, FieldDataset.split, the generalisation test's training sets)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

import phigen.io as pio
from phigen import errors as E
from phigen.cli import main
from phigen.generators import generate, generator_groups, reconstruct_groups
from phigen.splits import as_groups, equal_halves, groups_on_both_sides, half_size, split_indices

DATA = Path(__file__).resolve().parent.parent / "data"
SHIPPED = {  # file: (kind, number of groups, fields per group)
    "phi4_64.h5": ("chain", 64, 4),
    "turbulence_64.h5": ("run", 25, 8),
    "cosmic_web_64.h5": ("simulation", 16, 12),
    "turbulence_128.h5": ("run", 25, 8),
    "cosmic_web_128.h5": ("simulation", 8, 24),
}


def _fields(n, size=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size)).astype(np.float32)


def _old_split(n, test_fraction, seed):
    """FieldDataset.split of phigen before groups (a seeded permutation of the fields)."""
    n_test = int(round(test_fraction * n))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _assert_clean_split(groups, train, test, n):
    assert len(train) and len(test) and len(train) + len(test) == n
    assert not set(train.tolist()) & set(test.tolist())
    assert groups_on_both_sides(groups, train, test).size == 0


# ---- phigen.splits ------------------------------------------------------------------------------
@pytest.mark.parametrize("n, frac, seed", [(30, 0.2, 5), (256, 0.5, 0), (7, 0.3, 2), (100, 0.9, 1)])
def test_split_indices_without_groups_is_the_old_field_split(n, frac, seed):
    tr, te = split_indices(n, frac, seed=seed)
    old_tr, old_te = _old_split(n, frac, seed)
    np.testing.assert_array_equal(tr, old_tr)
    np.testing.assert_array_equal(te, old_te)


@pytest.mark.parametrize("sizes", [[4] * 64, [12] * 16, [8] * 25, [1, 2, 3, 5, 8, 13, 21], [50, 1, 1, 1, 1]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_indices_keeps_groups_whole(sizes, seed):
    groups = np.repeat(np.arange(len(sizes)) * 3 + 7, sizes)  # labels need not be 0..G-1
    groups = np.random.default_rng(seed).permutation(groups)  # nor contiguous
    n = groups.size
    tr, te = split_indices(n, 0.25, seed=seed, groups=groups)
    _assert_clean_split(groups, tr, te, n)
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)
    # as close to the target as whole groups allow (never off by more than the largest group)
    assert abs(len(te) - round(0.25 * n)) <= max(sizes)
    tr2, te2 = split_indices(n, 0.25, seed=seed, groups=groups)
    np.testing.assert_array_equal(te, te2)


def test_split_of_equal_groups_hits_the_target_exactly():
    groups = np.arange(256) % 64  # phi4_64: 64 chains of 4
    tr, te = split_indices(256, 0.5, seed=0, groups=groups)
    assert len(te) == 128
    _assert_clean_split(groups, tr, te, 256)


def test_split_errors():
    with pytest.raises(E.ParameterError, match="single group"):
        split_indices(10, 0.5, groups=np.zeros(10, int))
    with pytest.raises(E.ParameterError, match="test_fraction"):
        split_indices(10, 1.0)
    with pytest.raises(E.ParameterError, match="cannot split"):
        split_indices(3, 0.1)
    with pytest.raises(E.ParameterError, match="one label per field"):
        split_indices(10, 0.5, groups=np.arange(9))
    with pytest.raises(E.ParameterError, match="integers"):
        as_groups(np.linspace(0, 1, 10), 10)
    with pytest.raises(E.ParameterError, match="integers"):
        as_groups(np.array(list("abcdefghij")), 10)
    np.testing.assert_array_equal(as_groups(np.arange(4.0), 4), np.arange(4))
    assert as_groups(None, 4) is None


def test_half_size():
    assert half_size(256) == 128 and half_size(7) == 3
    assert half_size(256, np.arange(256) % 64) == (256 - 4 + 1) // 2 == 126
    assert half_size(192, np.arange(192) // 12) == (192 - 12 + 1) // 2 == 90
    assert half_size(10, np.r_[np.zeros(9, int), 1]) == 1
    assert half_size(10, np.zeros(10, int)) == 0


@pytest.mark.parametrize("sizes", [[12] * 16, [8] * 25, [1, 2, 3, 5, 8, 13, 21], [1] * 9])
def test_equal_halves_have_exact_sizes_and_disjoint_groups(sizes):
    groups = np.repeat(np.arange(len(sizes)), sizes)
    n = groups.size
    m = half_size(n, groups)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        a, b = equal_halves(rng, n, m, groups)
        assert len(a) == len(b) == m
        assert not set(a.tolist()) & set(b.tolist())
        assert groups_on_both_sides(groups, a, b).size == 0
        seen.add(tuple(a))
    assert len(seen) > 1  # random draws
    with pytest.raises(E.ParameterError, match="disjoint halves"):
        equal_halves(rng, n, m + 1, groups)


def test_equal_halves_without_groups_is_the_old_permutation_halves():
    a, b = equal_halves(np.random.default_rng(3), 20, 6)
    perm = np.random.default_rng(3).permutation(20)
    np.testing.assert_array_equal(a, np.sort(perm[:6]))
    np.testing.assert_array_equal(b, np.sort(perm[6:12]))


# ---- the file format ----------------------------------------------------------------------------
def test_write_and_read_groups(tmp_path):
    g = np.repeat(np.arange(6), 4)
    p = pio.write_fields(tmp_path / "g.h5", _fields(24), groups=g, group_kind="simulation")
    with pio.open_fields(p) as ds:
        assert ds.group_kind == "simulation"
        assert ds.groups.dtype == np.int64 and ds.groups.tolist() == g.tolist()
        tr, te = ds.split(0.5, seed=1)
        _assert_clean_split(g, tr, te, 24)
        np.testing.assert_array_equal(te, split_indices(24, 0.5, seed=1, groups=g)[1])
    with h5py.File(p) as h5:
        assert h5["groups"].fletcher32 and h5["groups"].attrs["kind"] == "simulation"
    assert pio.validate(p).ok
    assert pio.info(p)["groups"] == {"kind": "simulation", "n_groups": 6, "min_size": 4, "max_size": 4}


def test_file_without_groups_splits_exactly_as_before(tmp_path):
    p = pio.write_fields(tmp_path / "plain.h5", _fields(30))
    with pio.open_fields(p) as ds:
        assert ds.groups is None and ds.group_kind is None
        for frac, seed in ((0.2, 5), (0.5, 0), (0.7, 3)):
            tr, te = ds.split(frac, seed=seed)
            old_tr, old_te = _old_split(30, frac, seed)
            np.testing.assert_array_equal(tr, old_tr)
            np.testing.assert_array_equal(te, old_te)
        with pytest.raises(E.ParameterError, match="plain.h5"):
            ds.split(0.001)
    assert pio.info(p)["groups"] is None


def test_field_kind_labels_each_sample_by_its_index(tmp_path):
    p = pio.write_fields(tmp_path / "f.h5", _fields(10), group_kind="field")
    with pio.open_fields(p) as ds:
        assert ds.group_kind == "field" and ds.groups.tolist() == list(range(10))
        # every field its own group: the same split as a file without groups
        np.testing.assert_array_equal(ds.split(0.3, seed=2)[1], _old_split(10, 0.3, 2)[1])


def test_write_fields_checks_groups_before_creating_the_file(tmp_path):
    for bad, err, match in [(np.arange(9), E.ShapeMismatchError, "one label per sample"),
                            (np.linspace(0, 1, 10), E.ShapeMismatchError, "integers"),
                            (np.arange(10), E.ParameterError, "group_kind")]:
        kind = None if err is E.ParameterError else "run"
        with pytest.raises(err, match=match):
            pio.write_fields(tmp_path / "bad.h5", _fields(10), groups=bad, group_kind=kind)
        assert not (tmp_path / "bad.h5").exists()
    with pytest.raises(E.ParameterError, match="group_kind"):
        pio.write_fields(tmp_path / "bad.h5", _fields(10), groups=np.arange(10), group_kind="  ")


def _chain_batches(n_chains=3, seed=11):
    """A writer-level generator: one sample per chain per batch, labels = chain index."""
    def make(b, count):
        x = np.random.default_rng([seed, b]).normal(size=(count, 8, 8)).astype(np.float32)
        return x, None, np.arange(count) % n_chains

    return make


def _chain_meta(n=10, bs=3):
    return pio.FieldsMeta(field="test", generator="unit", shape=(8, 8), n_total=n, seed=11, batch_size=bs,
                          group_kind="chain")


def test_groups_resume_like_the_fields(tmp_path):
    meta = _chain_meta()
    full = tmp_path / "full.h5"
    pio.write_ensemble(full, _chain_batches(), meta, progress=False)
    make = _chain_batches()

    def dying(b, count):
        if b == 2:
            raise KeyboardInterrupt
        return make(b, count)

    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        pio.write_ensemble(part, dying, meta, progress=False)
    with pio.open_fields(part, allow_incomplete=True) as ds:
        assert len(ds) == 6 and ds.groups.tolist() == [0, 1, 2] * 2
    # a batch written but never recorded (fields and labels) is dropped on resume
    with h5py.File(part, "r+") as h5:
        for name in ("fields", "groups"):
            h5[name].resize(9, axis=0)
        h5["groups"][6:9] = 99
    pio.write_ensemble(part, make, meta, resume=True, progress=False)
    with pio.open_fields(full) as a, pio.open_fields(part) as b:
        assert a.groups.tolist() == b.groups.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
        assert a.load().tobytes() == b.load().tobytes()
    # a run asking for groups cannot resume a file started without them (and vice versa)
    plain = pio.FieldsMeta(field="test", generator="unit", shape=(8, 8), n_total=10, seed=11, batch_size=3)
    w = pio.open_writer(tmp_path / "plain.h5", plain)
    w.append(_fields(3))
    w.close()
    with pytest.raises(E.FileFormatError, match="group_kind"):
        pio.write_ensemble(tmp_path / "plain.h5", _chain_batches(), meta, resume=True, progress=False)


def test_append_groups_errors(tmp_path):
    w = pio.open_writer(tmp_path / "a.h5", _chain_meta())
    with pytest.raises(E.ShapeMismatchError, match="pass groups="):
        w.append(_fields(3))
    with pytest.raises(E.ShapeMismatchError, match="one label per sample"):
        w.append(_fields(3), groups=[0, 1])
    with pytest.raises(E.ShapeMismatchError, match="integers"):
        w.append(_fields(3), groups=[0.5, 1, 2])
    assert w.n_complete == 0
    w.close()
    w = pio.open_writer(tmp_path / "b.h5", _meta_plain())
    with pytest.raises(E.ShapeMismatchError, match="without group_kind"):
        w.append(_fields(3), groups=[0, 1, 2])
    w.close()
    with pytest.raises(E.ParameterError, match="group_kind"):
        pio.FieldsMeta(field="t", generator="u", shape=(8, 8), n_total=3, group_kind="")


def _meta_plain():
    return pio.FieldsMeta(field="test", generator="unit", shape=(8, 8), n_total=9, seed=1, batch_size=3)


def _grouped_file(tmp_path, name="m.h5", n=12):
    return pio.write_fields(tmp_path / name, _fields(n), groups=np.arange(n) // 3, group_kind="run")


@pytest.mark.parametrize("tamper, err, match", [
    ("short", E.TruncatedFileError, "holds 5 labels for 12 samples"),
    ("long", E.FileFormatError, "holds 20 labels"),
    ("float", E.FileFormatError, "dtype float64.*integer"),
    ("2d", E.FileFormatError, r"shape \(12, 2\)"),
    ("no_kind", E.MissingAttributeError, "'kind'"),
])
def test_malformed_groups_dataset_is_a_clear_error(tmp_path, tamper, err, match):
    p = _grouped_file(tmp_path)
    with h5py.File(p, "r+") as h5:
        del h5["groups"]
        data = {"short": np.arange(5), "long": np.arange(20), "float": np.arange(12) / 2.0,
                "2d": np.zeros((12, 2), np.int64), "no_kind": np.arange(12)}[tamper]
        h5["groups"] = data
        if tamper != "no_kind":
            h5["groups"].attrs["kind"] = "run"
    with pytest.raises(err, match=match) as exc:
        pio.open_fields(p)
    assert str(p) in str(exc.value)
    rep = pio.validate(p)
    assert not rep.ok and str(p) in rep.problems[0]
    assert main(["validate", str(p)]) == 1


def test_corrupted_group_labels_fail_their_checksum(tmp_path):
    p = pio.write_fields(tmp_path / "c.h5", _fields(64), groups=np.arange(64) // 4, group_kind="run",
                         compression=None)
    with h5py.File(p, "r") as h5:
        info = h5["groups"].id.get_chunk_info(0)
    raw = bytearray(p.read_bytes())
    raw[info.byte_offset + 40] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pio.open_fields(p) as ds:
        with pytest.raises(E.ChecksumError):
            ds.groups
    assert not pio.validate(p).ok


# ---- annotate_groups ----------------------------------------------------------------------------
def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_annotate_adds_groups_without_touching_the_fields(tmp_path):
    x = _fields(12)
    cond = np.arange(24, dtype=np.float32).reshape(12, 2)
    p = pio.write_fields(tmp_path / "a.h5", x, conditions=cond, condition_names=["a", "b"], seed=4,
                         diagnostics={"acc": {"x": 1}})
    with pio.open_fields(p) as ds:
        attrs_before = ds.attrs
    pio.annotate_groups(p, np.arange(12) // 4, "simulation", note="3 simulations of 4 maps")
    with pio.open_fields(p) as ds:
        assert ds.group_kind == "simulation" and ds.groups.tolist() == (np.arange(12) // 4).tolist()
        assert ds.load().tobytes() == x.tobytes()
        np.testing.assert_array_equal(ds.conditions(), cond)
        assert ds.attrs == attrs_before and ds.diagnostics() == {"acc": {"x": 1}}
    with h5py.File(p) as h5:
        assert h5["groups"].attrs["note"] == "3 simulations of 4 maps"
    assert pio.validate(p).ok
    assert not list(tmp_path.glob("*.tmp"))  # no leftover temporary copy


def test_annotate_refuses_bad_input_and_leaves_the_file_intact(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields(12))
    before = _digest(p)
    for bad, err, match in [(np.arange(11), E.ShapeMismatchError, r"shape \(12,\); got shape \(11,\)"),
                            (np.arange(13), E.ShapeMismatchError, "one label per sample"),
                            (np.arange(12) / 5.0, E.ShapeMismatchError, "integers"),
                            (np.zeros((12, 1)), E.ShapeMismatchError, "one label per sample"),
                            (["a"] * 12, E.ShapeMismatchError, "integers")]:
        with pytest.raises(err, match=match) as exc:
            pio.annotate_groups(p, bad, "run")
        assert str(p) in str(exc.value)
        assert _digest(p) == before
    with pytest.raises(E.ParameterError, match="group_kind"):
        pio.annotate_groups(p, np.arange(12), "")
    assert _digest(p) == before
    # existing groups are kept unless overwrite=True
    pio.annotate_groups(p, np.arange(12) // 2, "run")
    annotated = _digest(p)
    with pytest.raises(E.FileExistsError_, match="already has groups.*overwrite=True"):
        pio.annotate_groups(p, np.arange(12) // 3, "run")
    assert _digest(p) == annotated
    pio.annotate_groups(p, np.arange(12) // 3, "chain", overwrite=True)
    with pio.open_fields(p) as ds:
        assert ds.group_kind == "chain" and ds.groups.max() == 3
    assert pio.validate(p).ok
    assert not list(tmp_path.glob("*.tmp"))


def test_annotate_refuses_unfinished_and_foreign_files(tmp_path):
    w = pio.open_writer(tmp_path / "u.h5", _meta_plain())
    w.append(_fields(3))
    w.close()
    with pytest.raises(E.TruncatedFileError, match="unfinished"):
        pio.annotate_groups(tmp_path / "u.h5", np.arange(3), "run")
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(E.NotHDF5Error):
        pio.annotate_groups(tmp_path / "x.h5", np.arange(3), "run")


def test_annotate_crash_while_writing_leaves_the_original(tmp_path, monkeypatch):
    import phigen.io.fields_file as ff

    p = pio.write_fields(tmp_path / "a.h5", _fields(6))
    before = _digest(p)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ff, "_create_groups", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        pio.annotate_groups(p, np.arange(6), "run")
    assert _digest(p) == before and not list(tmp_path.glob(".*tmp"))


# ---- generators ---------------------------------------------------------------------------------
def test_gaussian_generator_records_each_field_as_its_own_group(tmp_path):
    p = generate("gaussian", tmp_path / "g.h5", size=8, n=10, seed=0, batch_size=4, progress=False)
    with pio.open_fields(p) as ds:
        assert ds.group_kind == "field" and ds.groups.tolist() == list(range(10))
        tr, te = ds.split(0.3, seed=0)
        np.testing.assert_array_equal(te, _old_split(10, 0.3, 0)[1])
    g, kind, _ = reconstruct_groups(p)
    assert kind == "field" and g.tolist() == list(range(10))


@pytest.fixture(scope="module")
def phi4_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("phi4") / "phi4.h5"
    return generate("phi4", path, size=8, n=12, seed=1, kappa=0.25, lam=1.0, n_chains=4, progress=False)


def test_phi4_file_groups_are_its_chains(phi4_file):
    with pio.open_fields(phi4_file) as ds:
        assert ds.group_kind == "chain" and ds.config["n_chains"] == 4
        g = ds.groups
        assert g.tolist() == [0, 1, 2, 3] * 3
        tr, te = ds.split(0.5, seed=0)
        _assert_clean_split(g, tr, te, 12)
        assert len(te) == 6 or len(te) % 3 == 0
    rg, kind, _ = reconstruct_groups(phi4_file)
    assert kind == "chain" and rg.tolist() == g.tolist()
    assert pio.validate(phi4_file).ok


class _FakeState(NamedTuple):
    position: jnp.ndarray


class _FakeKernel:
    step = None

    def init(self, position):
        return _FakeState(jnp.asarray(position))


def test_phi4_resumed_run_records_the_same_chains(tmp_path, monkeypatch):
    """The groups wiring of the φ⁴ generator under interruption and --resume (sampler replaced by a
    stand-in whose chain c holds c + 100·(batches done), so the chain of every saved field is known)."""
    import phigen.fields.phi4 as P

    def prepare(key, size, kappa, lam, config, *, progress=None, mesh=None, flow_file=None):
        pos = jnp.broadcast_to(jnp.arange(config.n_chains, dtype=jnp.float32)[:, None, None],
                               (config.n_chains, size, size))
        return P.Phi4Chains(_FakeState(pos), None, 0.1, 4, 2, 1.0, 0.1, 1.0, 0.1, 0.8)

    calls = {"die": True}

    def advance(key, chains, batch_index, *, progress=False):
        if batch_index == 2 and calls["die"]:
            calls["die"] = False
            raise KeyboardInterrupt
        return chains._replace(state=_FakeState(chains.state.position + 100.0))

    monkeypatch.setattr(P, "prepare_phi4_chains", prepare)
    monkeypatch.setattr(P, "advance_phi4_chains", advance)
    monkeypatch.setattr(P, "_kernel", lambda *a, **k: _FakeKernel())
    kw = dict(size=4, n=14, seed=0, kappa=0.2, lam=1.0, n_chains=4, progress=False)
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        generate("phi4", part, **kw)
    with pio.open_fields(part, allow_incomplete=True) as ds:
        assert len(ds) == 8 and ds.groups.tolist() == [0, 1, 2, 3] * 2
    generate("phi4", part, resume=True, **kw)
    full = generate("phi4", tmp_path / "full.h5", **kw)
    with pio.open_fields(part) as a, pio.open_fields(full) as b:
        assert a.groups.tolist() == b.groups.tolist() == [0, 1, 2, 3] * 3 + [0, 1]
        assert a.load().tobytes() == b.load().tobytes()
        chain_of_field = np.round(a.load()[:, 0, 0]).astype(int) % 100
        assert chain_of_field.tolist() == a.groups.tolist()


def _fake_turbulence(monkeypatch):
    """Replace the solver: each run's snapshots are filled with one random value per run."""
    import jax

    import phigen.fields.turbulence as T

    def prepare(key, flow, config):
        return T.TurbulencePlan(flow, config, 1, 1, 1, {"decorrelation_time": 1.0})

    def sample(key, plan, n_runs):
        s = plan.config.snapshots_per_run
        run_id = np.asarray(jax.random.uniform(key, (n_runs,)), np.float32)
        fields = np.repeat(run_id, s)[:, None, None] * np.ones((1, plan.flow.size, plan.flow.size), np.float32)
        one = np.ones((2, n_runs), np.float32)
        return fields, T.FlowObservables(one, one, one, one, one)

    monkeypatch.setattr(T, "prepare_turbulence", prepare)
    monkeypatch.setattr(T, "sample_turbulence", sample)
    return T


@pytest.mark.parametrize("batch_size, spr", [(8, 3), (6, 3), (64, 8)])
def test_turbulence_groups_are_its_runs(tmp_path, monkeypatch, batch_size, spr):
    _fake_turbulence(monkeypatch)
    n = 20
    p = generate("turbulence", tmp_path / "t.h5", size=16, n=n, seed=0, batch_size=batch_size,
                 snapshots_per_run=spr, progress=False)
    with pio.open_fields(p) as ds:
        g, x = ds.groups, ds.load()[:, 0, 0]
        assert ds.group_kind == "run"
    # same label <=> same run (the stand-in gives each run its own value)
    for a in range(n):
        for b in range(n):
            assert (g[a] == g[b]) == (x[a] == x[b])
    assert g.tolist() == sorted(g.tolist()) and np.unique(g).tolist() == list(range(g.max() + 1))
    if batch_size % spr == 0:
        assert g.tolist() == (np.arange(n) // spr).tolist()
    rg, kind, _ = reconstruct_groups(p)
    assert kind == "run" and rg.tolist() == g.tolist()


def test_turbulence_resume_gives_the_same_runs(tmp_path, monkeypatch):
    T = _fake_turbulence(monkeypatch)
    real = T.sample_turbulence
    calls = {"n": 0}

    def dying(key, plan, n_runs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(key, plan, n_runs)

    kw = dict(size=16, n=14, seed=0, batch_size=6, snapshots_per_run=4, progress=False)
    full = generate("turbulence", tmp_path / "full.h5", **kw)
    monkeypatch.setattr(T, "sample_turbulence", dying)
    with pytest.raises(KeyboardInterrupt):
        generate("turbulence", tmp_path / "part.h5", **kw)
    monkeypatch.setattr(T, "sample_turbulence", real)
    generate("turbulence", tmp_path / "part.h5", resume=True, **kw)
    with pio.open_fields(full) as a, pio.open_fields(tmp_path / "part.h5") as b:
        assert a.groups.tolist() == b.groups.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4]
        assert a.load().tobytes() == b.load().tobytes()
    # the Python twin labels the same way
    t = T.generate_turbulence(tmp_path / "twin.h5", **kw)
    assert pio.open_fields(t).groups.tolist() == pio.open_fields(full).groups.tolist()


def _fake_cosmic_web(monkeypatch):
    import phigen.fields.cosmic_web as C

    def maps(key, cosmology, config):
        import jax

        v = float(jax.random.uniform(key))
        m = np.full((config.maps_per_simulation, config.size, config.size), v, np.float32)
        return m, None

    monkeypatch.setattr(C, "cosmic_web_maps", maps)
    return C


def test_cosmic_web_groups_are_its_simulations_and_resume(tmp_path, monkeypatch):
    C = _fake_cosmic_web(monkeypatch)
    kw = dict(size=16, n=15, seed=0, box=64.0, n_slabs=2)
    full = generate("cosmic-web", tmp_path / "full.h5", progress=False, **kw)
    with pio.open_fields(full) as ds:
        g = ds.groups
        assert ds.group_kind == "simulation"
        assert g.tolist() == (np.arange(15) // 6).tolist()
        assert g.tolist() == ds.conditions()[:, C.CONDITION_NAMES.index("simulation")].astype(int).tolist()
        x = ds.load()[:, 0, 0]
        assert all((g[a] == g[b]) == (x[a] == x[b]) for a in range(15) for b in range(15))
    real = C.cosmic_web_maps
    calls = {"n": 0}

    def dying(*a):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(C, "cosmic_web_maps", dying)
    with pytest.raises(KeyboardInterrupt):
        C.generate_cosmic_web(tmp_path / "part.h5", progress=False, **kw)
    monkeypatch.setattr(C, "cosmic_web_maps", real)
    C.generate_cosmic_web(tmp_path / "part.h5", resume=True, progress=False, **kw)
    with pio.open_fields(tmp_path / "part.h5") as ds:
        assert ds.groups.tolist() == g.tolist()
    rg, kind, note = reconstruct_groups(full)
    assert kind == "simulation" and rg.tolist() == g.tolist() and "conditions" in note


def test_reconstruct_groups_refuses_other_writers(tmp_path):
    p = pio.write_fields(tmp_path / "u.h5", _fields(4))
    with pytest.raises(E.ParameterError, match="phigen.generate"):
        reconstruct_groups(p)
    with pytest.raises(E.ParameterError, match="no group rule"):
        generator_groups("nope", 4, 4, {})


# ---- shipped data -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_files_carry_groups_and_split_cleanly(name):
    kind, n_groups, size = SHIPPED[name]
    path = DATA / name
    with pio.open_fields(path) as ds:
        g = ds.groups
        assert ds.group_kind == kind and g.shape == (len(ds),)
        labels, counts = np.unique(g, return_counts=True)
        assert labels.tolist() == list(range(n_groups)) and set(counts.tolist()) == {size}
        for frac, seed in ((0.5, 0), (0.2, 1), (0.25, 7)):
            tr, te = ds.split(frac, seed=seed)
            _assert_clean_split(g, tr, te, len(ds))
        if ds.condition_names:
            np.testing.assert_array_equal(ds.conditions()[:, ds.condition_names.index("simulation")], g)
    # the stored labels are the generator's rule applied to the stored provenance
    rg, rkind, _ = reconstruct_groups(path)
    assert rkind == kind and np.array_equal(rg, g)
    assert pio.validate(path).ok


def test_shipped_group_layouts_follow_the_generators():
    g = pio.open_fields(DATA / "phi4_64.h5").groups
    assert g.tolist() == (np.arange(256) % 64).tolist()
    assert pio.open_fields(DATA / "turbulence_64.h5").groups.tolist() == (np.arange(200) // 8).tolist()
    assert pio.open_fields(DATA / "cosmic_web_64.h5").groups.tolist() == (np.arange(192) // 12).tolist()


def test_cli_info_prints_groups(capsys):
    assert main(["info", str(DATA / "cosmic_web_64.h5")]) == 0
    out = capsys.readouterr().out
    assert "groups     16 (kind simulation; 12 fields each" in out


# ---- the generalisation test's training sets ----------------------------------------------------
def test_generalisation_training_sets_are_group_disjoint():
    from phigen._generalisation import _training_order

    groups = np.arange(96) // 6  # 16 groups of 6
    n_max, n_extra = 20, 10
    used, labels = _training_order(96, n_max, n_extra, 3, groups, None)
    assert len(used) == 2 * n_max + n_extra and len(set(used.tolist())) == len(used)
    np.testing.assert_array_equal(labels, groups[used])
    s1, s2, extra = labels[:n_max], labels[n_max:2 * n_max], labels[2 * n_max:]
    assert not set(s1) & set(s2) and not (set(s1) | set(s2)) & set(extra)
    # without groups: the old single permutation
    used0, _ = _training_order(50, 10, 5, 4, None, None)
    np.testing.assert_array_equal(used0, np.random.default_rng(4).permutation(50)[:25])
    lopsided = np.r_[np.zeros(50, int), np.ones(10, int)]  # 2N = 30 <= 60, but no two disjoint sets of 15
    with pytest.raises(E.ParameterError, match="f.h5: holds 60 fields in 2 groups.*largest possible N with seed 3: 10"):
        _training_order(60, 15, 0, 3, lopsided, "f.h5")
    assert len(_training_order(60, 10, 0, 3, lopsided, "f.h5")[0]) == 20


def test_generalisation_on_a_grouped_file(tmp_path):
    from phigen._generalisation import generalisation

    x = _fields(48, size=16, seed=5)
    p = pio.write_fields(tmp_path / "grp.h5", x, field="custom", groups=np.arange(48) // 4, group_kind="run")
    r = generalisation(p, model="gaussian", sizes=(4, 12), out_dir=tmp_path / "rep", n_samples=4, seed=0)
    g = np.arange(48) // 4
    for row in r["results"]:
        a, b = (np.asarray(i) for i in row["training_indices"])
        assert len(a) == len(b) == row["N"]
        assert not set(g[a]) & set(g[b])
    assert r["data"]["group_kind"] == "run" and r["data"]["n_groups"] == 12
    assert "share no group" in (tmp_path / "rep" / "generalisation.md").read_text()
