"""Full checks and a human summary of phigen files (``phigen validate`` / ``phigen info``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import errors as E
from .fields_file import FieldDataset, check_file


@dataclass
class ValidationReport:
    """Outcome of :func:`validate`: ``ok`` and the list of problems found (each a message)."""

    path: str
    ok: bool
    n_samples: int = 0
    problems: list[str] = field(default_factory=list)

    def raise_if_invalid(self) -> None:
        if not self.ok:
            raise E.FileFormatError("; ".join(self.problems), path=self.path)


def validate(path, *, batch_size: int = 256, raise_on_error: bool = False) -> ValidationReport:
    """Check a phigen file completely: header, progress record, every sample's checksum, finiteness
    (and the checksums of ``conditions`` and ``groups`` where present).

    Returns a :class:`ValidationReport`; with ``raise_on_error`` the first problem is raised as the
    specific phigen error instead.
    """
    path = Path(path)
    report = ValidationReport(path=str(path), ok=True)
    try:
        check_file(path)
        with FieldDataset(path) as ds:
            report.n_samples = len(ds)
            # a master: read shard by shard, so that a damaged sample names its own shard
            spans = [(0, len(ds))] if ds.shards is None else [(o, o + c) for _, o, c in ds._shards]
            for lo, hi in spans:
                for start in range(lo, hi, batch_size):
                    ds[start:min(start + batch_size, hi)]  # checksum + finiteness checked by the reader
            if ds.condition_names is not None:
                c = ds.conditions()
                if not np.all(np.isfinite(c)):
                    raise E.NonFiniteError("NaN/inf in conditions", path=path)
            ds.groups  # noqa: B018 — reads the labels: checksum checked by the reader
    except E.PhigenError as exc:
        if raise_on_error:
            raise
        report.ok = False
        report.problems.append(str(exc))
    return report


def info(path) -> dict:
    """A JSON-able description of a phigen file (header and group labels; no sample data is read).

    ``groups``: ``None``, or ``{"kind", "n_groups", "min_size", "max_size"}`` (fields per group)."""
    with FieldDataset(path, allow_incomplete=True) as ds:
        g = ds.groups
        groups = None
        if g is not None:
            sizes = np.unique(g, return_counts=True)[1] if g.size else np.zeros(1, np.int64)
            groups = {"kind": ds.group_kind, "n_groups": int(np.count_nonzero(sizes)),
                      "min_size": int(sizes.min()), "max_size": int(sizes.max())}
        out = {
            "path": str(ds.path),
            "field": ds.field,
            "generator": ds.generator,
            "n_samples": len(ds),
            "n_total": int(ds.attrs["n_total"]),
            "complete": ds.complete,
            "sample_shape": list(ds.sample_shape),
            "seed": ds.seed,
            "params": ds.params,
            "config": ds.config,
            "format_version": ds.attrs["format_version"],
            "phigen_version": ds.attrs["phigen_version"],
            "created": ds.attrs["created"],
            "condition_names": ds.condition_names,
            "field_names": ds.field_names,
            "diagnostics": sorted(ds.diagnostics().keys()),
            "groups": groups,
            "shards": None if ds.shards is None else [str(p.name) for p in ds.shards],
        }
    return out
