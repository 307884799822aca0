"""phigen.io: round trips, crash-safe resumable writes, and one clear error per kind of bad file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import phigen.io as pio
from phigen import errors as E


def _fields(n=12, h=8, w=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, w)).astype(np.float32)


def _meta(n=20, bs=4, shape=(8, 8), **kw):
    return pio.FieldsMeta(field="test", generator="unit", shape=shape, n_total=n, seed=7, batch_size=bs,
                          params={"kappa": 0.25}, config={"a": 1}, **kw)


def _make_batch(seed=7, shape=(8, 8)):
    # deterministic in the batch index only, like every phigen generator
    def make(b, count):
        return np.random.default_rng([seed, b]).normal(size=(count, *shape)).astype(np.float32)

    return make


# ------------------------------------------------------------------------------------------------
def test_round_trip_bit_exact_with_provenance(tmp_path):
    x = _fields()
    cond = np.arange(24, dtype=np.float32).reshape(12, 2)
    p = pio.write_fields(tmp_path / "a.h5", x, field="gaussian", generator="gaussian_field", seed=3,
                         params={"slope": 2.5}, config={"size": 8}, conditions=cond,
                         condition_names=["omega_m", "sigma8"], diagnostics={"acc": np.ones(3)})
    with pio.open_fields(p) as ds:
        assert ds.shape == x.shape
        got = ds.load()
        assert got.dtype == np.float32 and got.tobytes() == x.tobytes()
        np.testing.assert_array_equal(ds.conditions(), cond)
        assert ds.condition_names == ["omega_m", "sigma8"]
        assert ds.params == {"slope": 2.5} and ds.config == {"size": 8}
        a = ds.attrs
        assert a["format"] == "phigen-fields" and a["field"] == "gaussian" and a["seed"] == 3
        assert a["param_slope"] == 2.5 and a["complete"] and a["n_complete"] == 12
        np.testing.assert_array_equal(ds.diagnostics()["acc"], np.ones(3))
    with h5py.File(p) as h5:
        ds = h5["fields"]
        assert ds.chunks == (1, 8, 8) and ds.fletcher32 and ds.compression == "gzip"


def test_lazy_reads_batches_and_split(tmp_path):
    x = _fields(n=30)
    p = pio.write_fields(tmp_path / "a.h5", x)
    with pio.open_fields(p) as ds:
        np.testing.assert_array_equal(ds[5], x[5])
        np.testing.assert_array_equal(ds[-1], x[-1])
        np.testing.assert_array_equal(ds[[7, 2, 7]], x[[7, 2, 7]])
        np.testing.assert_array_equal(ds[3:20:4], x[3:20:4])
        batches = list(ds.iter_batches(8, shuffle_seed=1))
        assert [len(b) for b in batches] == [8, 8, 8, 6]
        np.testing.assert_array_equal(np.sort(np.concatenate(batches).ravel()), np.sort(x.ravel()))
        tr, te = ds.split(0.2, seed=5)
        tr2, te2 = ds.split(0.2, seed=5)
        assert len(te) == 6 and len(tr) == 24 and not set(tr) & set(te)
        np.testing.assert_array_equal(te, te2)
        assert not np.array_equal(te, ds.split(0.2, seed=6)[1])
        with pytest.raises(IndexError):
            ds[30]


def test_channels_and_field_names(tmp_path):
    x = np.random.default_rng(1).normal(size=(4, 2, 8, 8)).astype(np.float32)
    p = pio.write_fields(tmp_path / "c.h5", x, field_names=["u", "v"])
    with pio.open_fields(p) as ds:
        assert ds.sample_shape == (2, 8, 8) and ds.field_names == ["u", "v"]
        np.testing.assert_array_equal(ds.load(), x)


def test_finished_file_never_overwritten(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields())
    before = p.read_bytes()
    with pytest.raises(E.FileExistsError_, match="--overwrite"):
        pio.write_fields(p, _fields(seed=1))
    assert p.read_bytes() == before
    pio.write_fields(p, _fields(seed=1), overwrite=True)
    np.testing.assert_array_equal(pio.read_fields(p), _fields(seed=1))


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    meta = _meta()
    full = pio.write_ensemble(tmp_path / "full.h5", _make_batch(), meta, progress=False)

    part = tmp_path / "part.h5"
    make = _make_batch()

    def dying(b, count):
        if b == 3:
            raise KeyboardInterrupt  # the run is stopped during batch 3
        return make(b, count)

    with pytest.raises(KeyboardInterrupt):
        pio.write_ensemble(part, dying, meta, progress=False)
    with pytest.raises(E.TruncatedFileError, match="12 of 20"):
        pio.open_fields(part)
    with pio.open_fields(part, allow_incomplete=True) as ds:
        assert len(ds) == 12
    with pytest.raises(E.FileExistsError_, match="--resume"):
        pio.write_ensemble(part, make, meta, progress=False)
    pio.write_ensemble(part, make, meta, resume=True, progress=False)
    assert pio.read_fields(part).tobytes() == pio.read_fields(full).tobytes()
    assert pio.validate(part).ok


def test_half_written_batch_is_dropped_on_resume(tmp_path):
    meta = _meta()
    full = pio.read_fields(pio.write_ensemble(tmp_path / "full.h5", _make_batch(), meta, progress=False))
    p = tmp_path / "p.h5"
    w = pio.open_writer(p, meta)
    w.append(_make_batch()(0, 4))
    # a batch reached the dataset but the run died before recording it
    w._h5["fields"].resize(8, axis=0)
    w._h5["fields"][4:8] = 99.0
    w.close()
    with pio.open_fields(p, allow_incomplete=True) as ds:
        assert len(ds) == 4
    pio.write_ensemble(p, _make_batch(), meta, resume=True, progress=False)
    assert pio.read_fields(p).tobytes() == full.tobytes()


def test_killed_process_resumes_to_identical_bytes(tmp_path):
    """A real SIGKILL in the middle of a run, then --resume, gives the uninterrupted file's bytes."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import numpy as np
        import phigen.io as pio
        meta = pio.FieldsMeta(field="test", generator="unit", shape=(8, 8), n_total=20, seed=7,
                              batch_size=4, params={{"kappa": 0.25}}, config={{"a": 1}})
        def make(b, count):
            if b == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)
            return np.random.default_rng([7, b]).normal(size=(count, 8, 8)).astype(np.float32)
        pio.write_ensemble(sys.argv[1], make, meta, resume=sys.argv[3] == "1", progress=False)
        """
    )
    p = tmp_path / "killed.h5"
    r = subprocess.run([sys.executable, "-c", script, str(p), "2", "0"], capture_output=True)
    assert r.returncode == -9
    with pio.open_fields(p, allow_incomplete=True) as ds:
        assert len(ds) == 8
    r = subprocess.run([sys.executable, "-c", script, str(p), "-1", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    full = pio.write_ensemble(tmp_path / "full.h5", _make_batch(), _meta(), progress=False)
    assert pio.read_fields(p).tobytes() == pio.read_fields(full).tobytes()


def test_resume_with_different_run_is_refused(tmp_path):
    meta = _meta()
    p = tmp_path / "p.h5"
    w = pio.open_writer(p, meta)
    w.append(_make_batch()(0, 4))
    w.close()
    other = pio.FieldsMeta(field="test", generator="unit", shape=(8, 8), n_total=20, seed=8, batch_size=4,
                           params={"kappa": 0.25}, config={"a": 1})
    with pytest.raises(E.FileFormatError, match="seed"):
        pio.open_writer(p, other, resume=True)
    assert len(pio.open_fields(p, allow_incomplete=True)) == 4  # untouched


# ---- one error per kind of bad file -------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(E.PhigenError, match="no such file"):
        pio.open_fields(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("hello, not hdf5")
    with pytest.raises(E.NotHDF5Error, match=str(p.name)):
        pio.open_fields(p)


def test_not_phigen(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as h5:
        h5["fields"] = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(E.NotPhigenFileError, match="not a phigen-fields file"):
        pio.open_fields(p)


def test_newer_format_version(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields())
    with h5py.File(p, "r+") as h5:
        h5.attrs["format_version"] = pio.FORMAT_VERSION + 1
    with pytest.raises(E.FormatVersionError, match="newer"):
        pio.open_fields(p)


@pytest.mark.parametrize("attr", ["seed", "config", "n_complete"])
def test_missing_attribute(tmp_path, attr):
    p = pio.write_fields(tmp_path / "a.h5", _fields())
    with h5py.File(p, "r+") as h5:
        del h5.attrs[attr]
    with pytest.raises(E.MissingAttributeError, match=attr):
        pio.open_fields(p)


def test_missing_fields_dataset(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields())
    with h5py.File(p, "r+") as h5:
        del h5["fields"]
    with pytest.raises(E.MissingAttributeError, match="fields"):
        pio.open_fields(p)


def test_truncated_file(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields(n=50, h=32, w=32), compression=None)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises((E.TruncatedFileError, E.ChecksumError, E.NotHDF5Error)) as info:
        pio.validate(p, raise_on_error=True)
    assert str(p) in str(info.value)


def test_inconsistent_progress_record(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields())
    with h5py.File(p, "r+") as h5:
        h5.attrs["n_complete"] = 99
    with pytest.raises(E.TruncatedFileError, match="progress record"):
        pio.open_fields(p)


def test_checksum_failure(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields(n=4, h=16, w=16), compression=None)
    with h5py.File(p, "r") as h5:
        info = h5["fields"].id.get_chunk_info(2)
    raw = bytearray(p.read_bytes())
    raw[info.byte_offset + 100] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pio.open_fields(p) as ds:
        ds[0]  # undamaged sample still reads
        with pytest.raises(E.ChecksumError, match="checksum"):
            ds[2]
    rep = pio.validate(p)
    assert not rep.ok and "checksum" in rep.problems[0]


def test_nan_in_file_and_on_write(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields())
    with h5py.File(p, "r+") as h5:
        h5["fields"][3, 1, 1] = np.nan  # data rewritten (checksum updated) but not finite
    with pio.open_fields(p) as ds:
        with pytest.raises(E.NonFiniteError, match="NaN"):
            ds.load()
    assert not pio.validate(p).ok
    bad = _fields()
    bad[2, 0, 0] = np.inf
    with pytest.raises(E.NonFiniteError):
        pio.write_fields(tmp_path / "b.h5", bad)


def test_append_shape_and_dtype_mismatch(tmp_path):
    p = tmp_path / "a.h5"
    with pio.open_writer(p, _meta()) as w:
        w.append(_fields(n=4))
        with pytest.raises(E.ShapeMismatchError, match=r"\(4, 8, 9\)"):
            w.append(np.zeros((4, 8, 9), np.float32))
        with pytest.raises(E.ShapeMismatchError, match="dtype"):
            w.append(np.zeros((4, 8, 8), np.complex64))
        with pytest.raises(E.ShapeMismatchError, match="exceed"):
            w.append(np.zeros((17, 8, 8), np.float32))
        assert w.n_complete == 4  # nothing written by the failed appends
    with pio.open_fields(p, allow_incomplete=True) as ds:
        np.testing.assert_array_equal(ds.load(), _fields(n=4))


def test_info_is_json(tmp_path):
    p = pio.write_fields(tmp_path / "a.h5", _fields(), params={"kappa": 0.2})
    d = pio.info(p)
    json.dumps(d)
    assert d["n_samples"] == 12 and d["params"] == {"kappa": 0.2}


def test_atomic_h5_publishes_only_complete_files(tmp_path):
    """The one HDF5 publishing path (model files, checkpoints, field headers, group edits): an error
    in the block or in the check leaves the old file byte for byte and no temporary file."""
    from phigen._atomic import atomic_h5

    path = tmp_path / "f.h5"
    with atomic_h5(path) as h5:
        h5["x"] = np.arange(3)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_h5(path) as h5:
            h5["y"] = np.arange(5)
            raise RuntimeError("midway")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["f.h5"]

    def refuse(tmp):
        raise ValueError(f"bad {tmp.name}")

    with pytest.raises(ValueError, match="bad f.h5.tmp"):
        with atomic_h5(path, copy=True, check=refuse) as h5:
            h5["z"] = np.arange(2)  # an in-place edit of a copy
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["f.h5"]
    with atomic_h5(path, copy=True) as h5:
        h5["z"] = np.arange(2)
    with h5py.File(path, "r") as h5:
        assert sorted(h5) == ["x", "z"]
