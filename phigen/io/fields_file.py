"""Writing and reading phigen-fields HDF5 files (one file = one ensemble of fields).

The writer appends in flushed batches and records ``n_complete`` after each, so an interrupted run
leaves a file whose first ``n_complete`` samples are valid and that :func:`open_writer` with
``resume=True`` continues. The reader is lazy: it touches only the samples asked for, and checks
what it reads (checksums, finiteness). Every problem raises a :class:`phigen.PhigenError` naming
the file.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import h5py
import numpy as np

from .. import errors as E
from .._atomic import atomic_h5
from .._json import to_json
from . import _format as F


def _phigen_version() -> str:
    from .. import __version__

    return __version__




def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_hdf5(path: Path) -> bool:
    try:
        return h5py.is_hdf5(path)
    except OSError:
        return False


# =================================================================================================
# writing
# =================================================================================================
@dataclass(frozen=True)
class FieldsMeta:
    """Provenance of an ensemble (stored as root attributes).

    ``shape`` is the shape of one sample: ``(H, W)`` or ``(C, H, W)``. ``params`` are the physical
    parameters (each also stored as its own attribute ``param_<name>``); ``config`` the resolved
    generator configuration (stored as JSON text). ``group_kind`` (e.g. ``"chain"``) makes the file
    record a group label per sample (dataset ``groups``): every :meth:`FieldWriter.append` then
    passes ``groups=`` (optional for ``"field"``, where each sample is its own group).
    """

    field: str
    generator: str
    shape: tuple[int, ...]
    n_total: int
    seed: int = 0
    params: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None
    batch_size: int = 0
    field_names: Sequence[str] | None = None
    condition_names: Sequence[str] | None = None
    group_kind: str | None = None
    shard: tuple[int, int, int, int] | None = None  # (index, count, offset, n_total of the whole set)

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise E.ParameterError(f"sample shape must be (H, W) or (C, H, W) with positive sizes; got {shape}")
        if int(self.n_total) < 1:
            raise E.ParameterError(f"n_total must be >= 1; got {self.n_total}")
        if self.field_names is not None and (len(shape) != 3 or len(self.field_names) != shape[0]):
            raise E.ParameterError(f"field_names {list(self.field_names)} do not match the channel axis of {shape}")
        if self.group_kind is not None:
            object.__setattr__(self, "group_kind", _check_group_kind(self.group_kind))
        if self.shard is not None:
            index, count, offset, n_global = (int(v) for v in self.shard)
            if not (0 <= index < count and 0 <= offset and offset + int(self.n_total) <= n_global):
                raise E.ParameterError(f"shard (index, count, offset, n_total of the set) = {self.shard} is "
                                       f"inconsistent with {self.n_total} samples in the shard")
            object.__setattr__(self, "shard", (index, count, offset, n_global))

    def identity(self) -> dict:
        """What must agree between an interrupted run and its resumption."""
        out = {
            "field": self.field,
            "generator": self.generator,
            "shape": list(self.shape),
            "n_total": int(self.n_total),
            "seed": int(self.seed),
            "params": _json_roundtrip(self.params or {}),
            "config": _json_roundtrip(self.config or {}),
            "batch_size": int(self.batch_size),
        }
        if self.group_kind is not None:  # absent (not null) without groups: older files resume unchanged
            out["group_kind"] = self.group_kind
        if self.shard is not None:  # a shard resumes only as the same shard of the same split
            out["shard"] = list(self.shard)
        return out


def _json_roundtrip(obj):
    return json.loads(to_json(obj))


def _check_group_kind(kind) -> str:
    if not isinstance(kind, str) or not kind.strip():
        raise E.ParameterError(f"group_kind must be a non-empty name such as {', '.join(map(repr, F.GROUP_KINDS))}; "
                               f"got {kind!r}")
    return kind.strip()


def _group_labels(groups, n: int, path=None) -> np.ndarray:
    """``groups`` as int64 labels ``(n,)``; a wrong length or non-integer labels raise naming ``path``."""
    g = np.asarray(groups)
    if g.shape != (n,):
        raise E.ShapeMismatchError(f"groups must hold one label per sample, shape ({n},); got shape {g.shape}",
                                   path=path)
    if g.dtype.kind not in "iuf":
        raise E.ShapeMismatchError(f"group labels must be integers; got dtype {g.dtype}", path=path)
    if g.dtype.kind == "f" and g.size and not (np.all(np.isfinite(g)) and np.all(g == np.round(g))):
        raise E.ShapeMismatchError("group labels must be integers; got non-integer or NaN/inf values", path=path)
    return g.astype(np.int64)


class FieldWriter:
    """Appends batches of fields to a phigen file; use :func:`open_writer` to get one.

    Each :meth:`append` writes the batch, flushes, then advances ``n_complete`` (and flushes again),
    so a crash between batches never leaves unrecorded samples counted as valid.
    """

    def __init__(self, h5: h5py.File, path: Path, meta: FieldsMeta):
        self._h5 = h5
        self.path = path
        self.meta = meta

    # -- state --------------------------------------------------------------------------------
    @property
    def n_complete(self) -> int:
        return int(self._h5.attrs["n_complete"])

    @property
    def n_total(self) -> int:
        return int(self.meta.n_total)

    @property
    def has_diagnostics(self) -> bool:
        grp = self._h5.get(F.DIAGNOSTICS)
        return grp is not None and bool(len(grp) or len(grp.attrs))

    @property
    def done(self) -> bool:
        return self.n_complete >= self.n_total

    # -- writing ------------------------------------------------------------------------------
    def append(self, fields, conditions=None, groups=None) -> int:
        """Append a batch ``(B, *shape)`` (and its ``(B, k)`` conditions and ``(B,)`` integer group
        labels); returns the new n_complete. Files with ``group_kind="field"`` label each sample by
        its index when ``groups`` is not given."""
        arr = np.asarray(fields)
        shape = self.meta.shape
        if arr.shape[1:] != shape:
            if arr.shape == shape:
                arr = arr[None]
            else:
                raise E.ShapeMismatchError(
                    f"cannot append fields of shape {arr.shape}: the file holds samples of shape {shape}",
                    path=self.path,
                )
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise E.ShapeMismatchError(f"cannot append fields of dtype {arr.dtype} to a float32 file", path=self.path)
        arr = arr.astype(np.float32, copy=False)
        if not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.all(np.isfinite(arr.reshape(len(arr), -1)), axis=1)))
            raise E.NonFiniteError(f"refusing to write {bad} sample(s) containing NaN/inf", path=self.path)
        start, b = self.n_complete, arr.shape[0]
        if start + b > self.n_total:
            raise E.ShapeMismatchError(
                f"appending {b} samples would exceed n_total={self.n_total} (already {start})", path=self.path
            )
        cond = None
        if self.meta.condition_names is not None:
            if conditions is None:
                raise E.ShapeMismatchError("this file records conditions: pass conditions= with each batch", path=self.path)
            cond = np.asarray(conditions, dtype=np.float32).reshape(b, -1)
            if cond.shape[1] != len(self.meta.condition_names):
                raise E.ShapeMismatchError(
                    f"conditions of shape {cond.shape} do not match names {list(self.meta.condition_names)}",
                    path=self.path,
                )
            if not np.all(np.isfinite(cond)):
                raise E.NonFiniteError("refusing to write NaN/inf conditions", path=self.path)
        elif conditions is not None:
            raise E.ShapeMismatchError("conditions given but the file was created without condition_names", path=self.path)
        grp = None
        if self.meta.group_kind is not None:
            if groups is not None:
                grp = _group_labels(groups, b, self.path)
            elif self.meta.group_kind == "field":  # each sample its own group: its index
                grp = np.arange(start, start + b, dtype=np.int64)
            else:
                raise E.ShapeMismatchError(f"this file records groups (kind {self.meta.group_kind!r}): pass groups= "
                                           "with each batch", path=self.path)
        elif groups is not None:
            raise E.ShapeMismatchError("groups given but the file was created without group_kind", path=self.path)

        ds = self._h5[F.FIELDS]
        if ds.shape[0] < start + b:
            ds.resize(start + b, axis=0)
        ds[start : start + b] = arr
        if cond is not None:
            cds = self._h5[F.CONDITIONS]
            if cds.shape[0] < start + b:
                cds.resize(start + b, axis=0)
            cds[start : start + b] = cond
        if grp is not None:
            gds = self._h5[F.GROUPS]
            if gds.shape[0] < start + b:
                gds.resize(start + b, axis=0)
            gds[start : start + b] = grp
        self._h5.flush()  # data first ...
        self._h5.attrs["n_complete"] = start + b  # ... then the record that it is there
        if start + b == self.n_total:
            self._h5.attrs["complete"] = True
        self._h5.flush()
        return start + b

    def set_diagnostic(self, name: str, value) -> None:
        """Store a diagnostic (number, array or JSON-able dict) in the ``diagnostics`` group."""
        grp = self._h5.require_group(F.DIAGNOSTICS)
        if name in grp:
            del grp[name]
        if isinstance(value, Mapping):
            grp.attrs[name] = to_json(value)
        else:
            grp.create_dataset(name, data=np.asarray(value))
        self._h5.flush()

    def close(self) -> None:
        if self._h5.id.valid:
            self._h5.flush()
            self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_writer(path, meta: FieldsMeta, *, resume: bool = False, overwrite: bool = False,
                compression: str | None = "gzip") -> FieldWriter:
    """Create (or, with ``resume=True``, reopen) a phigen file for writing.

    - a finished file is never replaced unless ``overwrite=True``;
    - an unfinished file is continued with ``resume=True`` (its identity — field, generator, shape,
      seed, params, config, batch size — must match), or replaced with ``overwrite=True``;
      otherwise an error says which flag to pass.
    """
    path = Path(path)
    if compression not in F.COMPRESSIONS:
        raise E.ParameterError(f"compression must be one of {F.COMPRESSIONS}; got {compression!r}")
    if path.exists() and not overwrite:
        if not resume:
            state = _describe_existing(path)
            hint = "--resume to continue it or --overwrite to replace it" if state == "unfinished" else "--overwrite to replace it"
            raise E.FileExistsError_(f"{'an' if state[0] in 'aeiou' else 'a'} {state} file exists; pass {hint}",
                                    path=path)
        return _reopen_for_resume(path, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as h5:  # the file appears only once its header is complete
        _init_file(h5, meta, compression)
    return FieldWriter(h5py.File(path, "r+"), path, meta)


def _describe_existing(path: Path) -> str:
    try:
        with h5py.File(path, "r") as h5:
            if _attr_str(h5.attrs.get("format", "")) != F.FORMAT:
                return "non-phigen"
            return "finished" if bool(h5.attrs.get("complete", False)) else "unfinished"
    except OSError:
        return "unreadable"


def _init_file(h5: h5py.File, meta: FieldsMeta, compression) -> None:
    shape = meta.shape
    h5.create_dataset(
        F.FIELDS,
        shape=(0, *shape),
        maxshape=(meta.n_total, *shape),
        dtype=np.float32,
        chunks=(1, *shape),
        compression=compression,
        fletcher32=True,
        shuffle=compression is not None,
    )
    if meta.field_names is not None:
        h5[F.FIELDS].attrs["field_names"] = [str(n) for n in meta.field_names]
    if meta.condition_names is not None:
        k = len(meta.condition_names)
        h5.create_dataset(F.CONDITIONS, shape=(0, k), maxshape=(meta.n_total, k), dtype=np.float32,
                          chunks=(max(1, min(meta.n_total, 1024)), k), fletcher32=True)
        h5[F.CONDITIONS].attrs["names"] = [str(n) for n in meta.condition_names]
    if meta.group_kind is not None:
        _create_groups(h5, 0, meta.n_total, meta.group_kind)
    _root_attrs(h5, meta)


def _root_attrs(h5: h5py.File, meta: FieldsMeta) -> None:
    """The root attributes of a new file (nothing written yet: ``n_complete`` 0)."""
    a = h5.attrs
    a["format"] = F.FORMAT
    a["format_version"] = F.FORMAT_VERSION
    a["phigen_version"] = _phigen_version()
    a["field"] = meta.field
    a["generator"] = meta.generator
    a["config"] = to_json(meta.config or {})
    a["params"] = to_json(meta.params or {})
    a["identity"] = to_json(meta.identity())
    a["seed"] = int(meta.seed)
    a["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    a["n_total"] = int(meta.n_total)
    a["n_complete"] = 0
    a["batch_size"] = int(meta.batch_size)
    a["complete"] = False
    for name, value in (meta.params or {}).items():
        a[F.PARAM_PREFIX + name] = value if isinstance(value, (int, float, str, bool)) else to_json(value)
    if meta.shard is not None:
        for name, value in zip(F.SHARD_ATTRS, meta.shard):
            a[name] = value


def _create_groups(h5: h5py.File, n: int, n_total: int, kind: str, data=None) -> h5py.Dataset:
    ds = h5.create_dataset(F.GROUPS, shape=(n,), maxshape=(n_total,), dtype=np.int64,
                           chunks=(max(1, min(n_total, 4096)),), fletcher32=True)
    if data is not None:
        ds[:] = data
    ds.attrs[F.GROUP_KIND_ATTR] = kind
    return ds


def _reopen_for_resume(path: Path, meta: FieldsMeta) -> FieldWriter:
    attrs = check_file(path, allow_incomplete=True)  # raises on anything malformed
    if F.SHARDS_ATTR in attrs:
        raise E.FileFormatError("the master file of a sharded set cannot be appended to: resume the run with the "
                                "same number of processes, or merge the shards into a new file", path=path)
    h5 = h5py.File(path, "r+")
    try:
        stored = json.loads(_attr_str(h5.attrs.get("identity", "{}")))
        wanted = meta.identity()
        diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if diff:
            details = "; ".join(f"{k}: file has {stored.get(k)!r}, run asks {wanted.get(k)!r}" for k in diff)
            raise E.FileFormatError(f"cannot resume: the run differs from the file ({details})", path=path)
        n = int(h5.attrs["n_complete"])
        ds = h5[F.FIELDS]
        if ds.shape[0] > n:  # a batch written but never recorded: drop it, it will be regenerated
            ds.resize(n, axis=0)
            for name in (F.CONDITIONS, F.GROUPS):
                if name in h5 and h5[name].shape[0] > n:
                    h5[name].resize(n, axis=0)
            h5.flush()
    except BaseException:
        h5.close()
        raise
    return FieldWriter(h5, path, meta)


def write_fields(path, fields, *, field: str = "custom", generator: str = "user", seed: int = 0,
                 params: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
                 conditions=None, condition_names: Sequence[str] | None = None,
                 field_names: Sequence[str] | None = None, overwrite: bool = False,
                 compression: str | None = "gzip", diagnostics: Mapping[str, Any] | None = None,
                 groups=None, group_kind: str | None = None) -> Path:
    """Write a whole ensemble ``(N, H, W)`` (or ``(N, C, H, W)``) to a new phigen file in one go.

    ``groups``: optional integer label per sample (``(N,)``) naming its group of correlated samples,
    with ``group_kind`` saying what a group is (``"simulation"``, ``"run"``, ``"chain"``);
    ``group_kind="field"`` without ``groups`` records every sample as its own group.
    """
    arr = np.asarray(fields)
    if arr.ndim not in (3, 4):
        raise E.InputError(f"fields must have shape (N, H, W) or (N, C, H, W); got {arr.shape}")
    if condition_names is None and conditions is not None:
        raise E.ParameterError("conditions need condition_names")
    if groups is not None:
        if group_kind is None:
            raise E.ParameterError(f"groups need group_kind (what a group is: {', '.join(map(repr, F.GROUP_KINDS))})")
        groups = _group_labels(groups, arr.shape[0], path)  # checked before the file is created
    meta = FieldsMeta(field=field, generator=generator, shape=arr.shape[1:], n_total=arr.shape[0], seed=seed,
                      params=params, config=config, batch_size=arr.shape[0], field_names=field_names,
                      condition_names=condition_names, group_kind=group_kind)
    with open_writer(path, meta, overwrite=overwrite, compression=compression) as w:
        for name, value in (diagnostics or {}).items():
            w.set_diagnostic(name, value)
        w.append(arr, conditions, groups)
    return Path(path)


def annotate_groups(path, groups, kind: str, *, overwrite: bool = False, note: str | None = None) -> Path:
    """Add (or with ``overwrite=True`` replace) the ``groups`` dataset of a finished phigen file.

    ``groups``: one integer label per sample, ``(N,)``; ``kind``: what a group is (``"simulation"``,
    ``"run"``, ``"chain"``, ``"field"``); ``note``: optional text stored with them (how they were
    derived). The fields, conditions and every other object are left as they are. Everything is
    checked before anything is written, and the file is replaced atomically by an annotated copy
    (written beside it, then renamed over it), so a bad input or a crash leaves the original file
    intact. Existing groups are refused unless ``overwrite=True``.
    """
    path = Path(path)
    attrs = check_file(path)  # a finished, well-formed file
    kind = _check_group_kind(kind)
    n = int(attrs["n_complete"])
    labels = _group_labels(groups, n, path)
    if note is not None and not isinstance(note, str):
        raise E.ParameterError(f"note must be text; got {type(note).__name__}")
    with h5py.File(path, "r") as h5:
        if F.GROUPS in h5 and not overwrite:
            old = _attr_str(h5[F.GROUPS].attrs.get(F.GROUP_KIND_ATTR, "?"))
            raise E.FileExistsError_(f"the file already has groups (kind {old!r}); pass overwrite=True to replace "
                                     "them", path=path)
    with atomic_h5(path, tmp=path.with_name(f".{path.name}.groups.tmp"), copy=True, check=check_file) as h5:
        if F.GROUPS in h5:
            del h5[F.GROUPS]
        ds = _create_groups(h5, n, n, kind, labels)
        if note:
            ds.attrs["note"] = note
    return path


# =================================================================================================
# reading
# =================================================================================================
def check_file(path, *, allow_incomplete: bool = False) -> dict:
    """Check the header of a phigen file (cheap: no sample data is read) and return its attributes.

    Raises the specific :mod:`phigen.errors` class for: missing file, not HDF5, not a phigen file,
    newer format version, missing attribute or dataset, inconsistent or unfinished progress record.
    """
    path = Path(path)
    if not path.exists():
        raise E.PhigenError("no such file", path=path)
    if path.is_dir():
        raise E.PhigenError("is a directory, not a phigen file", path=path)
    if not _is_hdf5(path):
        raise E.NotHDF5Error("not an HDF5 file (wrong signature or truncated header)", path=path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise E.TruncatedFileError(f"HDF5 file cannot be opened, probably half-written: {exc}", path=path) from None
    with h5:
        attrs = {k: h5.attrs[k] for k in h5.attrs.keys()}
        fmt = _attr_str(attrs.get("format", ""))
        if fmt != F.FORMAT:
            raise E.NotPhigenFileError(
                f"not a phigen-fields file (format attribute {fmt!r}, expected {F.FORMAT!r})", path=path
            )
        version = int(attrs.get("format_version", -1))
        if version > F.FORMAT_VERSION:
            raise E.FormatVersionError(
                f"format_version {version} is newer than this phigen reads ({F.FORMAT_VERSION}); upgrade phigen",
                path=path,
            )
        missing = [k for k in F.REQUIRED_ATTRS if k not in attrs]
        if missing:
            raise E.MissingAttributeError(f"missing attribute(s): {', '.join(missing)}", path=path)
        if F.FIELDS not in h5 or not isinstance(h5[F.FIELDS], h5py.Dataset):
            raise E.MissingAttributeError(f"missing dataset '{F.FIELDS}'", path=path)
        ds = h5[F.FIELDS]
        if ds.ndim not in (3, 4):
            raise E.FileFormatError(f"'{F.FIELDS}' has shape {ds.shape}; expected (N, H, W) or (N, C, H, W)", path=path)
        if ds.dtype != np.float32:
            raise E.FileFormatError(f"'{F.FIELDS}' has dtype {ds.dtype}; expected float32", path=path)
        n_complete, n_total = int(attrs["n_complete"]), int(attrs["n_total"])
        if n_complete > ds.shape[0] or n_complete < 0:
            raise E.TruncatedFileError(
                f"progress record says {n_complete} samples but the dataset holds {ds.shape[0]}", path=path
            )
        if n_complete > n_total:
            raise E.TruncatedFileError(f"n_complete={n_complete} exceeds n_total={n_total}", path=path)
        if n_complete < n_total and not allow_incomplete:
            raise E.TruncatedFileError(
                f"unfinished file: {n_complete} of {n_total} samples written (interrupted run? "
                "resume it with --resume, or read it with allow_incomplete=True)",
                path=path,
            )
        if F.CONDITIONS in h5:
            cds = h5[F.CONDITIONS]
            if "names" not in cds.attrs:
                raise E.MissingAttributeError(f"'{F.CONDITIONS}' has no 'names' attribute", path=path)
            if cds.shape[0] < n_complete:
                raise E.TruncatedFileError(f"'{F.CONDITIONS}' holds {cds.shape[0]} rows for {n_complete} samples", path=path)
        if F.GROUPS in h5:
            _check_groups_dataset(h5[F.GROUPS], n_complete, ds.shape[0], path)
        attrs["_shape"] = tuple(ds.shape[1:])
    if F.SHARDS_ATTR in attrs:  # a master: its samples live in shard files beside it
        from .shards import check_shards

        attrs["_shards"] = check_shards(path, attrs)
    return attrs


def _check_groups_dataset(gds, n_complete: int, n_rows: int, path: Path) -> None:
    """Shape, dtype and ``kind`` of a ``groups`` dataset (no labels are read)."""
    if not isinstance(gds, h5py.Dataset):
        raise E.FileFormatError(f"'{F.GROUPS}' is not a dataset", path=path)
    if gds.ndim != 1:
        raise E.FileFormatError(f"'{F.GROUPS}' has shape {gds.shape}; expected one label per sample, (N,)", path=path)
    if gds.dtype.kind not in "iu":
        raise E.FileFormatError(f"'{F.GROUPS}' has dtype {gds.dtype}; expected integer labels (int64)", path=path)
    if gds.shape[0] < n_complete:
        raise E.TruncatedFileError(f"'{F.GROUPS}' holds {gds.shape[0]} labels for {n_complete} samples", path=path)
    if gds.shape[0] > max(n_rows, n_complete):
        raise E.FileFormatError(f"'{F.GROUPS}' holds {gds.shape[0]} labels but the file has {n_rows} samples",
                                path=path)
    kind = gds.attrs.get(F.GROUP_KIND_ATTR)
    if kind is None or not _attr_str(kind).strip():
        raise E.MissingAttributeError(f"'{F.GROUPS}' has no '{F.GROUP_KIND_ATTR}' attribute (what a group is)",
                                      path=path)


class FieldDataset:
    """A lazy, read-only view of a phigen file: ``len(ds)``, ``ds[i]``, ``ds[a:b]``, batches, splits.

    Reads return float32 numpy arrays and are checked: a checksum failure raises ChecksumError and
    NaN/inf raises NonFiniteError, both naming the file and the sample range.
    """

    def __init__(self, path, *, allow_incomplete: bool = False):
        self.path = Path(path)
        self._attrs = check_file(self.path, allow_incomplete=allow_incomplete)
        self._h5 = h5py.File(self.path, "r")
        self._n = int(self._attrs["n_complete"])
        self._groups: np.ndarray | None = None
        self._shards = self._attrs.get("_shards")  # a master: [(path, offset, count)], else None

    # -- metadata ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self._attrs["_shape"])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self.sample_shape)

    @property
    def field(self) -> str:
        return _attr_str(self._attrs["field"])

    @property
    def generator(self) -> str:
        return _attr_str(self._attrs["generator"])

    @property
    def seed(self) -> int:
        return int(self._attrs["seed"])

    @property
    def complete(self) -> bool:
        return bool(self._attrs["complete"])

    @property
    def params(self) -> dict:
        return json.loads(_attr_str(self._attrs.get("params", "{}")))

    @property
    def config(self) -> dict:
        return json.loads(_attr_str(self._attrs["config"]))

    @property
    def attrs(self) -> dict:
        """All root attributes as plain Python values."""
        out = {}
        for k, v in self._attrs.items():
            if k.startswith("_"):
                continue
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, np.generic):
                v = v.item()
            out[k] = v
        return out

    @property
    def condition_names(self) -> list[str] | None:
        if F.CONDITIONS not in self._h5:
            return None
        return [_attr_str(n) for n in self._h5[F.CONDITIONS].attrs["names"]]

    @property
    def groups(self) -> np.ndarray | None:
        """Group label of each sample, int64 ``(N,)`` (samples of one group are correlated: every
        split keeps a group whole), or ``None`` when the file records no groups."""
        if F.GROUPS not in self._h5:
            return None
        if self._groups is None:
            self._groups = np.asarray(self._read(F.GROUPS, slice(None)), dtype=np.int64)
        return self._groups.copy()

    @property
    def group_kind(self) -> str | None:
        """What a group is (``"simulation"``, ``"run"``, ``"chain"``, ``"field"``), or ``None``."""
        if F.GROUPS not in self._h5:
            return None
        return _attr_str(self._h5[F.GROUPS].attrs[F.GROUP_KIND_ATTR])

    @property
    def field_names(self) -> list[str] | None:
        names = self._h5[F.FIELDS].attrs.get("field_names")
        return None if names is None else [_attr_str(n) for n in names]

    def diagnostics(self) -> dict:
        """The diagnostics group as a dict of numpy arrays / decoded JSON dicts."""
        if F.DIAGNOSTICS not in self._h5:
            return {}
        grp = self._h5[F.DIAGNOSTICS]
        out: dict[str, Any] = {k: grp[k][()] for k in grp.keys()}
        for k, v in grp.attrs.items():
            out[k] = json.loads(_attr_str(v))
        return out

    # -- data ----------------------------------------------------------------------------------
    def _read(self, dsname: str, index) -> np.ndarray:
        ds = self._h5[dsname]
        try:
            if isinstance(index, slice):
                start, stop, step = index.indices(self._n)
                data = ds[start:stop:step] if step > 0 else ds[start:stop:step]
            elif isinstance(index, (int, np.integer)):
                i = int(index) + (self._n if index < 0 else 0)
                if not 0 <= i < self._n:
                    raise IndexError(f"sample {index} out of range for {self._n} samples")
                data = ds[i]
            else:
                idx = np.asarray(index, dtype=np.int64).reshape(-1)
                idx = np.where(idx < 0, idx + self._n, idx)
                if idx.size and (idx.min() < 0 or idx.max() >= self._n):
                    raise IndexError(f"sample indices out of range for {self._n} samples")
                order = np.argsort(idx, kind="stable")
                uniq, inv = np.unique(idx[order], return_inverse=True)
                block = ds[uniq] if uniq.size else ds[0:0]
                data = np.empty((idx.size, *block.shape[1:]), dtype=block.dtype)
                data[order] = block[inv]
        except OSError as exc:
            msg = str(exc)
            where = self._shards_of(index)
            if "checksum" in msg.lower() or "fletcher" in msg.lower() or "filter" in msg.lower():
                raise E.ChecksumError(f"checksum failure reading '{dsname}'[{index}]{where}: data corrupted",
                                      path=self.path) from None
            raise E.TruncatedFileError(f"cannot read '{dsname}'[{index}]{where}: {msg}", path=self.path) from None
        return data

    def _shards_of(self, index) -> str:
        """`` in shard NAME`` for the shard files of a master that hold ``index`` (else empty)."""
        if not self._shards:
            return ""
        if isinstance(index, slice):
            start, stop, _ = index.indices(self._n)
            lo, hi = start, stop - 1
        else:
            idx = np.asarray(index, dtype=np.int64).reshape(-1) % max(self._n, 1)
            lo, hi = (int(idx.min()), int(idx.max())) if idx.size else (0, -1)
        names = [Path(p).name for p, off, cnt in self._shards if off <= hi and lo < off + cnt]
        return f" (in shard{'s' if len(names) > 1 else ''} {', '.join(names)})" if names else ""

    @property
    def shards(self) -> list[Path] | None:
        """The shard files of a master file (its samples, in order), or ``None`` for a self-contained file."""
        return None if self._shards is None else [Path(p) for p, _, _ in self._shards]

    def __getitem__(self, index) -> np.ndarray:
        data = np.asarray(self._read(F.FIELDS, index), dtype=np.float32)
        if not np.all(np.isfinite(data)):
            raise E.NonFiniteError(f"NaN/inf values in fields[{index}]", path=self.path)
        return data

    def conditions(self, index=slice(None)) -> np.ndarray | None:
        if F.CONDITIONS not in self._h5:
            return None
        return np.asarray(self._read(F.CONDITIONS, index), dtype=np.float32)

    def load(self, indices=None) -> np.ndarray:
        """All samples (or the given indices) as one float32 array."""
        return self[slice(None)] if indices is None else self[indices]

    def iter_batches(self, batch_size: int = 64, *, indices=None, shuffle_seed: int | None = None,
                     drop_last: bool = False) -> Iterator[np.ndarray]:
        """Yield batches of samples, reading one batch at a time (deterministic order given a seed)."""
        if batch_size < 1:
            raise E.ParameterError(f"batch_size must be >= 1; got {batch_size}")
        idx = np.arange(self._n) if indices is None else np.asarray(indices, dtype=np.int64)
        if shuffle_seed is not None:
            idx = np.random.default_rng(shuffle_seed).permutation(idx)
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            if drop_last and len(chunk) < batch_size:
                return
            yield self[chunk]

    def split(self, test_fraction: float = 0.2, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic (train, test) sorted index arrays; no group on both sides.

        :func:`phigen.splits.split_indices` with the file's :attr:`groups`: whole groups go to the
        test side until it holds about ``test_fraction`` of the samples (the nearest whole-group
        count). A file without groups splits field by field, exactly as earlier phigen versions.
        The same (file, fraction, seed) → the same split.
        """
        from ..splits import split_indices

        try:
            return split_indices(self._n, test_fraction, seed=seed, groups=self.groups)
        except E.ParameterError as exc:
            raise E.ParameterError(str(exc), path=self.path) from None

    def close(self) -> None:
        if self._h5.id.valid:
            self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return f"FieldDataset({str(self.path)!r}, field={self.field!r}, shape={self.shape})"


def open_fields(path, *, allow_incomplete: bool = False) -> FieldDataset:
    """Open a phigen file for lazy reading (see :class:`FieldDataset`)."""
    return FieldDataset(path, allow_incomplete=allow_incomplete)


def read_fields(path, indices=None) -> np.ndarray:
    """Read all samples (or ``indices``) of a phigen file into memory as float32."""
    with open_fields(path) as ds:
        return ds.load(indices)
