"""Sharded ensembles: one phigen file per process, joined by a master file (docs/scale_out.md).

A run of N processes writes shard ``k`` of ``S`` to ``FILE.shard-0000k-of-0000S.h5`` (an ordinary
phigen file that also records which contiguous range of the whole set it holds: ``shard_index``,
``shard_count``, ``shard_offset``, ``shard_n_total``), then process 0 writes the master ``FILE``: the
same root attributes as a self-contained file, an attribute ``shards`` listing the shard files
(names relative to the master's folder) and ``fields`` / ``conditions`` / ``groups`` as HDF5 virtual
datasets (``h5py.VirtualLayout``) that map rows ``[offset, offset + count)`` to each shard. Readers
(:class:`~phigen.io.FieldDataset`, :func:`~phigen.io.validate`, :func:`~phigen.io.info`) open a master
like any file; every open checks that each shard is there, finished and of the same run, and names
the first one that is not. :func:`merge_shards` writes a self-contained copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from .. import errors as E
from .._atomic import atomic_h5, fsync_file
from .._json import to_json
from . import _format as F

__all__ = ["shard_path", "split_units", "write_master", "merge_shards", "check_shards", "is_master"]


def shard_path(path, index: int, count: int) -> Path:
    """``FILE.shard-00001-of-00004.h5`` beside ``FILE`` (``out.h5`` → ``out.shard-00001-of-00004.h5``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.shard-{int(index):05d}-of-{int(count):05d}{path.suffix or '.h5'}")


def split_units(n_units: int, n_processes: int) -> list[tuple[int, int]]:
    """Contiguous, balanced ranges ``[u0, u1)`` of ``n_units`` work units over at most ``n_processes``
    shards: ``S = min(n_units, n_processes)`` ranges, shard ``k`` taking ``[⌊k·U/S⌋, ⌊(k+1)·U/S⌋)``."""
    n_units, n_processes = int(n_units), int(n_processes)
    if n_units < 1 or n_processes < 1:
        raise E.ParameterError(f"cannot split {n_units} work units over {n_processes} processes")
    s = min(n_units, n_processes)
    return [(k * n_units // s, (k + 1) * n_units // s) for k in range(s)]


def is_master(path) -> bool:
    """Whether ``path`` is the master file of a sharded set (header only; False for anything else)."""
    try:
        with h5py.File(path, "r") as h5:
            return F.SHARDS_ATTR in h5.attrs
    except (OSError, ValueError):
        return False


def _strip(exc: E.PhigenError) -> str:
    msg = str(exc)
    return msg[len(exc.path) + 2:] if exc.path and msg.startswith(f"{exc.path}: ") else msg


def _set_identity(attrs) -> dict:
    """The identity of the whole set a file belongs to (a shard's, less its shard entry)."""
    ident = json.loads(_str(attrs.get("identity", "{}")))
    if "shard" in ident:
        ident["n_total"] = int(ident.pop("shard")[3])
    return ident


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def check_shards(path, attrs) -> list[tuple[str, int, int]]:
    """Check every shard a master lists (present, finished, of the same run, the rows it maps) and
    return ``[(shard path, offset, count)]``; the first problem raises naming the shard."""
    from .fields_file import check_file

    path = Path(path)
    try:
        entries = json.loads(_str(attrs[F.SHARDS_ATTR]))
        entries = [(str(e["file"]), int(e["offset"]), int(e["count"])) for e in entries]
    except (ValueError, KeyError, TypeError):
        raise E.FileFormatError(f"unreadable '{F.SHARDS_ATTR}' attribute (the list of shard files)", path=path) from None
    want = _set_identity(attrs)
    out, expect = [], 0
    for name, offset, count in entries:
        p = path.parent / name
        rows = f"samples {offset}–{offset + count - 1}"
        if not p.exists():
            raise E.MissingShardError(f"shard {name} is missing (it holds {rows} of this master file); copy it back, "
                                      "or regenerate the set with --resume", path=path)
        try:
            sa = check_file(p)
        except E.PhigenError as exc:
            raise type(exc)(f"shard {name} ({rows}): {_strip(exc)}", path=path) from None
        if offset != expect or int(sa.get("shard_offset", -1)) != offset or int(sa["n_complete"]) != count:
            raise E.FileFormatError(f"shard {name} does not hold {rows} as this master file says (it records "
                                    f"offset {sa.get('shard_offset')}, {int(sa['n_complete'])} samples)", path=path)
        if _set_identity(sa) != want:
            raise E.FileFormatError(f"shard {name} belongs to another run (its identity differs from the master's)",
                                    path=path)
        out.append((str(p), offset, count))
        expect += count
    if expect != int(attrs["n_complete"]):
        raise E.FileFormatError(f"the shards hold {expect} samples; the master records {int(attrs['n_complete'])}",
                                path=path)
    return out


# =================================================================================================
# a complete shard set
# =================================================================================================
def _shard_set(inputs: Sequence) -> tuple[list[Path], dict]:
    """Sorted shard paths of one complete set (given as its shards, or as one master) and the
    attributes of shard 0; raises naming a missing, unfinished or foreign shard."""
    from .fields_file import check_file

    paths = [Path(p) for p in inputs]
    if not paths:
        raise E.ParameterError("no shard files given")
    if len(paths) == 1 and is_master(paths[0]):
        attrs = check_file(paths[0])
        paths = [Path(p) for p, _, _ in attrs["_shards"]]
    shards = {}
    for p in paths:
        a = check_file(p)
        if "shard_index" not in a:
            raise E.FileFormatError("not a shard of a sharded set (no shard_index attribute); a master file is "
                                    "given alone", path=p)
        k = int(a["shard_index"])
        if k in shards:
            raise E.ParameterError(f"shard {k} given twice: {shards[k][0]} and {p}")
        shards[k] = (p, a)
    first_path, first = shards[min(shards)]
    count, ident = int(first["shard_count"]), _set_identity(first)
    for k, (p, a) in shards.items():
        if int(a["shard_count"]) != count or _set_identity(a) != ident:
            raise E.FileFormatError(f"not a shard of the same run as {first_path.name}", path=p)
    missing = [k for k in range(count) if k not in shards]
    if missing:
        name = shard_path(Path(first_path.name.split(".shard-")[0] + first_path.suffix), missing[0], count).name
        raise E.MissingShardError(f"shard {missing[0]} of {count} ({name}) is missing from the set", path=first_path)
    expect = 0
    for k in range(count):
        p, a = shards[k]
        if int(a["shard_offset"]) != expect:
            raise E.FileFormatError(f"shard {k} starts at sample {int(a['shard_offset'])}, expected {expect}", path=p)
        expect += int(a["n_complete"])
    if expect != int(ident["n_total"]):
        raise E.FileFormatError(f"the shards hold {expect} samples, the set {ident['n_total']}", path=first_path)
    return [shards[k][0] for k in range(count)], shards[0][1]


def _set_meta(path: Path, attrs):
    """The :class:`~phigen.io.FieldsMeta` of the whole set a shard belongs to."""
    from .fields_file import FieldsMeta

    ident = _set_identity(attrs)
    with h5py.File(path, "r") as h5:
        names = h5[F.FIELDS].attrs.get("field_names")
        cond = [_str(n) for n in h5[F.CONDITIONS].attrs["names"]] if F.CONDITIONS in h5 else None
        gkind = _str(h5[F.GROUPS].attrs[F.GROUP_KIND_ATTR]) if F.GROUPS in h5 else None
    return FieldsMeta(field=ident["field"], generator=ident["generator"], shape=tuple(ident["shape"]),
                      n_total=int(ident["n_total"]), seed=int(ident["seed"]), params=ident["params"],
                      config=ident["config"], batch_size=int(ident["batch_size"]),
                      field_names=None if names is None else [_str(n) for n in names], condition_names=cond,
                      group_kind=ident.get("group_kind", gkind))


def _deep_update(base: dict, new: dict) -> dict:
    for k, v in new.items():
        base[k] = _deep_update(dict(base[k]), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def _merged_diagnostics(paths: Sequence[Path], meta) -> dict:
    """The shards' diagnostics in shard order: a later shard's value replaces an earlier one's, and
    JSON dicts are merged key by key (e.g. φ⁴ ``sampling_per_kappa`` gathers every κ of the set);
    then the field kind's ``merge_diagnostics`` (of ``meta.field``) recomputes what is a mean over
    the whole set's batches (e.g. the turbulence energy budget)."""
    from ..fields.kind import field_kind

    out: dict = {}
    for p in paths:
        with h5py.File(p, "r") as h5:
            if F.DIAGNOSTICS not in h5:
                continue
            grp = h5[F.DIAGNOSTICS]
            new = {k: grp[k][()] for k in grp.keys()}
            new.update({k: json.loads(_str(v)) for k, v in grp.attrs.items()})
        _deep_update(out, new)
    spec = field_kind(meta.field)
    if out and spec is not None and spec.merge_diagnostics is not None:
        out = spec.merge_diagnostics(out, meta.params)
    return out


def write_master(path, shards: Sequence) -> Path:
    """Write the master ``path`` over a complete set of finished shards (any order): virtual
    ``fields`` / ``conditions`` / ``groups``, the set's root attributes, the merged diagnostics.
    Written atomically (a reader sees the old master or the new one)."""
    from .fields_file import _root_attrs, check_file

    path = Path(path)
    paths, first = _shard_set(shards)
    meta = _set_meta(paths[0], first)
    n = int(meta.n_total)
    rows, offset = [], 0
    for p in paths:
        c = int(check_file(p)["n_complete"])
        rows.append((p, offset, c))
        offset += c

    def rel(p: Path) -> str:  # HDF5 looks for a relative source beside the master first
        return os.path.relpath(p.resolve(), path.resolve().parent)

    def virtual(h5, name, dtype, tail, fill):
        layout = h5py.VirtualLayout(shape=(n, *tail), dtype=dtype)
        for p, off, c in rows:
            layout[off:off + c] = h5py.VirtualSource(rel(p), name, shape=(c, *tail), dtype=dtype)
        return h5.create_virtual_dataset(name, layout, fillvalue=fill)

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as h5:
        ds = virtual(h5, F.FIELDS, np.float32, meta.shape, np.nan)  # a vanished shard reads as NaN, refused
        if meta.field_names is not None:
            ds.attrs["field_names"] = [str(x) for x in meta.field_names]
        if meta.condition_names is not None:
            cds = virtual(h5, F.CONDITIONS, np.float32, (len(meta.condition_names),), np.nan)
            cds.attrs["names"] = [str(x) for x in meta.condition_names]
        if meta.group_kind is not None:
            gds = virtual(h5, F.GROUPS, np.int64, (), -1)
            gds.attrs[F.GROUP_KIND_ATTR] = meta.group_kind
        _root_attrs(h5, meta)
        h5.attrs["n_complete"] = n
        h5.attrs["complete"] = True
        h5.attrs[F.SHARDS_ATTR] = json.dumps([{"file": rel(p), "offset": off, "count": c} for p, off, c in rows])
        diag = _merged_diagnostics(paths, meta)
        if diag:
            grp = h5.create_group(F.DIAGNOSTICS)
            for k, v in diag.items():
                if isinstance(v, dict):
                    grp.attrs[k] = to_json(v)
                else:
                    grp.create_dataset(k, data=np.asarray(v))
    return path


def merge_shards(inputs, out, *, overwrite: bool = False, compression: str | None = "gzip",
                 progress: bool | None = None) -> Path:
    """A self-contained phigen file ``out`` holding a whole sharded set: ``inputs`` are all its shard
    files (any order) or its master. The same samples, conditions, groups and attributes as the set
    (a 1-process run of the same generation writes the same ``fields``), the merged diagnostics.
    Python twin of ``phigen merge SHARDS… -o FILE``."""
    from tqdm.auto import tqdm

    from .fields_file import FieldDataset, open_writer

    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out = Path(out)
    if any(Path(p).resolve() == out.resolve() for p in inputs):
        raise E.ParameterError(f"merge writes a new file: {out} is one of the inputs; choose another output path")
    if out.exists() and not overwrite:
        raise E.FileExistsError_("the output file exists; pass --overwrite to replace it", path=out)
    paths, first = _shard_set(inputs)
    meta = _set_meta(paths[0], first)
    step = max(1, min(int(meta.batch_size) or 256, 256))
    tmp = out.with_name(f".{out.name}.merging")  # published only once every sample is copied and checked
    try:
        with open_writer(tmp, meta, overwrite=True, compression=compression) as w, \
                tqdm(total=meta.n_total, desc=f"merge → {out.name}", unit="field", leave=False,
                     disable=(not progress) if progress is not None else None) as bar:
            for p in paths:
                with FieldDataset(p) as ds:
                    for start in range(0, len(ds), step):
                        sl = slice(start, min(start + step, len(ds)))
                        groups = ds._read(F.GROUPS, sl) if meta.group_kind is not None else None
                        w.append(ds[sl], ds.conditions(sl), groups)
                        bar.update(sl.stop - sl.start)
            for k, v in _merged_diagnostics(paths, meta).items():
                w.set_diagnostic(k, v)
        fsync_file(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
