"""What a model was trained on, and the guard that refuses to judge it on those fields (docs/statistics.md).

:func:`phigen.models.fit` stores ``model.training["provenance"]``:

- ``data``: the absolute path of the data file (``"<array>"`` for an array), ``data_sha256``: the
  content hash of the file's ``fields`` dataset (:func:`fields_sha256`; None for an array),
  ``data_shape``, ``test_fraction``, ``split_seed``, ``max_fields``;
- ``train_indices``: the file indices of the training fields (int64 array; None for an array),
  ``train_groups``: the distinct group labels among them (int64 array; None without groups);
- ``field_digests``: one 64-bit digest per training field (:func:`field_digests`: the first 8 bytes
  of blake2b of the field's float32 bytes), so that overlap is found whatever file or array the
  held-out fields come from.

The arrays are stored as datasets under ``provenance/`` of the model file (HDF5 attributes are
limited to 64 KiB); see :func:`phigen.models.write_model_file`.

:func:`check_training_disjoint` raises :class:`phigen.errors.DataLeakError` when a model's training
fields meet the held-out fields, and also when the model carries no record at all (older files).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .. import errors as E

__all__ = ["PROVENANCE_VERSION", "DIGEST", "field_digests", "fields_sha256", "dataset_sha256",
           "training_provenance", "check_training_disjoint"]

PROVENANCE_VERSION = 1
DIGEST = "blake2b-64 of float32 C-order bytes, little-endian uint64"
_ARRAY_KEYS = ("train_indices", "train_groups", "field_digests")
_CHUNK_BYTES = 64 << 20
_SHA_CACHE: dict[tuple, str] = {}


def field_digests(fields) -> np.ndarray:
    """``(N,)`` uint64: the first 8 bytes of blake2b of each field's float32 C-order bytes."""
    x = np.asarray(fields)
    if x.ndim < 2:
        raise E.InputError(f"field_digests needs (N, ...) fields; got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(len(x), dtype=np.uint64)
    for i in range(len(x)):
        out[i] = int.from_bytes(hashlib.blake2b(x[i].tobytes(), digest_size=8).digest(), "little")
    return out


def dataset_sha256(ds) -> str:
    """``"sha256:<hex>"`` of an open :class:`~phigen.io.FieldDataset`'s fields: the shape, then the
    float32 bytes, read in chunks of about 64 MiB."""
    shape = tuple(int(s) for s in ds.shape)
    h = hashlib.sha256(b"phigen-fields:" + json.dumps(list(shape)).encode())
    per_field = int(np.prod(shape[1:], dtype=np.int64)) * 4
    step = max(1, _CHUNK_BYTES // max(per_field, 1))
    for start in range(0, shape[0], step):
        h.update(np.ascontiguousarray(ds[start:start + step], dtype=np.float32).tobytes())
    return "sha256:" + h.hexdigest()


def fields_sha256(path) -> str:
    """:func:`dataset_sha256` of a phigen file (cached per process on path, size and mtime)."""
    from ..io import open_fields

    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        with open_fields(path) as ds:
            _SHA_CACHE[key] = dataset_sha256(ds)
    return _SHA_CACHE[key]


def _groups_of(ds):
    g = getattr(ds, "groups", None)
    if callable(g):
        g = g()
    return None if g is None else np.asarray(g, dtype=np.int64)


def training_provenance(fields, *, ds=None, indices=None, test_fraction: float = 0.0, split_seed: int = 0,
                        max_fields: int | None = None) -> dict:
    """The provenance record of training ``fields`` (``ds``: the open file they came from, with the
    file ``indices`` of the fields; None for an array)."""
    rec = {"version": PROVENANCE_VERSION, "digest": DIGEST, "test_fraction": float(test_fraction),
           "split_seed": int(split_seed), "max_fields": None if max_fields is None else int(max_fields),
           "n_train": int(len(fields)), "field_digests": field_digests(fields)}
    if ds is None:
        rec.update(data="<array>", data_sha256=None, data_shape=None, train_indices=None, train_groups=None)
        return rec
    idx = np.asarray(indices, dtype=np.int64)
    groups = _groups_of(ds)
    path = Path(ds.path)
    st = path.stat()
    sha = dataset_sha256(ds)
    _SHA_CACHE[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = sha
    rec.update(data=os.path.abspath(path), data_sha256=sha, data_shape=[int(s) for s in ds.shape],
               train_indices=idx, train_groups=None if groups is None else np.unique(groups[idx]))
    return rec


def _model_name(model) -> str:
    path = getattr(model, "model_file", None)
    kind = getattr(model, "kind", type(model).__name__)
    return f"{kind} model {path}" if path else f"{kind} model"


def _fix(model, data, test_fraction, split_seed) -> str:
    kind = getattr(model, "kind", "MODEL")
    f = "F" if test_fraction is None else f"{test_fraction:g}"
    s = "S" if split_seed is None else str(int(split_seed))
    return (f"refit with `phigen fit {kind} {data or 'DATA.h5'} -o MODEL.h5 --test-fraction {f} --split-seed {s}` "
            f"matching compare's split (its --test-fraction and --seed)")


def check_training_disjoint(model, held_out_fields, *, held_out_groups=None, data_path=None, held_out_indices=None,
                            test_fraction: float | None = None, split_seed: int | None = None) -> dict:
    """Refuse to judge ``model`` on fields it was trained on; return what was checked.

    ``model``: a model object (or a model-file path); ``held_out_fields``: ``(M, H, W)``; when the
    held-out fields come from a phigen file, pass ``data_path`` with their file ``held_out_indices``
    (length M) and, if the file has groups, ``held_out_groups`` (the group label of each held-out
    field). ``test_fraction`` / ``split_seed`` only make the advice in
    the error exact.

    Raises :class:`~phigen.errors.DataLeakError` (one line: the model, how many held-out fields it
    was trained on, how to refit) when a held-out field's digest is among the training digests, or —
    ``data_path`` holding the same content as the training file — when a held-out index or group is a
    training one; and when the model has no training record (fitted by an older phigen). Returns a
    JSON-able dict: ``checked`` (the checks made), ``n_held_out``, ``n_training_fields``,
    ``same_data_file``, ``n_overlap`` (0), ``training_data``.
    """
    if isinstance(model, (str, Path)):
        from ._base import load_model

        model = load_model(model)
    name = _model_name(model)
    training = getattr(model, "training", None) or {}
    prov = training.get("provenance")
    data_hint = None if data_path is None else str(data_path)
    if not prov or prov.get("field_digests") is None:
        raise E.DataLeakError(f"{name} has no record of its training data (fitted by an older phigen), so it may "
                              f"have been trained on the held-out fields; {_fix(model, data_hint, test_fraction, split_seed)}")
    x = None if held_out_fields is None else np.asarray(held_out_fields)
    if x is not None and x.ndim == 2:
        x = x[None]
    m = None if x is None else len(x)
    if held_out_indices is not None:
        held_out_indices = np.asarray(held_out_indices, dtype=np.int64).reshape(-1)
        m = len(held_out_indices) if m is None else m
    if m is None:
        raise E.ParameterError("check_training_disjoint needs held_out_fields or held_out_indices")
    if held_out_groups is not None:
        held_out_groups = np.asarray(held_out_groups, dtype=np.int64).reshape(-1)
    for what, arr in (("held_out_indices", held_out_indices), ("held_out_groups", held_out_groups)):
        if arr is not None and len(arr) != m:
            raise E.ParameterError(f"{what} must have one entry per held-out field ({m}); got {len(arr)}")

    checked, counts = [], {}
    flags = np.zeros(m, dtype=bool)
    train_dig = np.asarray(prov["field_digests"], dtype=np.uint64)
    if x is not None:
        hit = np.isin(field_digests(x), train_dig)
        counts["by field content"] = int(hit.sum())
        flags |= hit
        checked.append("field_digests")
    same_file = None
    if data_path is not None:
        same_file = prov.get("data_sha256") is not None and fields_sha256(data_path) == prov["data_sha256"]
        if same_file:
            for what, arr, key in (("by file index", held_out_indices, "train_indices"),
                                   ("by group", held_out_groups, "train_groups")):
                if arr is not None and prov.get(key) is not None:
                    hit = np.isin(arr, np.asarray(prov[key], dtype=np.int64))
                    counts[what] = int(hit.sum())
                    flags |= hit
                    checked.append(key)
    n_overlap = int(flags.sum())
    if n_overlap:
        how = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        raise E.DataLeakError(f"{name} was trained on {n_overlap} of the {m} held-out fields ({how}); "
                              f"{_fix(model, data_hint or prov.get('data'), test_fraction, split_seed)}")
    return {"checked": checked, "n_held_out": int(m), "n_training_fields": int(len(train_dig)),
            "same_data_file": same_file, "n_overlap": 0, "training_data": prov.get("data"),
            "training_test_fraction": prov.get("test_fraction"), "training_split_seed": prov.get("split_seed")}
