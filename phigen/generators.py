"""Ground-truth ensembles into phigen files: ``phigen.generate(kind, path, ...)`` (CLI ``phigen generate``).

Each kind maps to a batch generator that depends only on (seed, batch index), so runs resume
exactly. Each kind is one module that registers a :class:`phigen.fields.kind.FieldKind` (the builder,
its options, groups, symmetries, statistics and checks; docs/architecture.md).

Every generator records a group label per sample (dataset ``groups``, docs/data.md): the MCMC chain of
a φ⁴ configuration, the run of a turbulence snapshot, the N-body simulation of a cosmic-web map;
independent Gaussian fields are each their own group (kind ``"field"``). Splits keep groups whole.
:func:`reconstruct_groups` derives the same labels for files written before groups were recorded.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from . import errors as E
from ._validation import check_int_at_least
from .fields.kind import build_parameters, field_kind
from .io import FieldsMeta, write_ensemble


def generate(kind: str, path, *, size: int, n: int, seed: int = 0, resume: bool = False,
             overwrite: bool = False, batch_size: int | None = None, progress: bool | None = None,
             **params: Any) -> Path:
    """Generate ``n`` fields of ``size × size`` of the given kind into the phigen file ``path``.

    ``params`` are the kind's physical parameters (``slope`` for ``gaussian``; ``kappa``/``lam``
    for ``phi4``; ...). Returns the path. Same (kind, size, n, seed, params, batch_size) → same bytes,
    also when an interrupted run is completed with ``resume=True``.
    """
    spec = field_kind(kind, required=True)
    kind = spec.name
    size = check_int_at_least(size, "size", 4)
    n = check_int_at_least(n, "n", 1)
    allowed = build_parameters(spec.build)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise E.ParameterError(f"{kind} does not take {', '.join(unknown)}; its parameters: {', '.join(sorted(allowed))}")
    params = {k: (spec.option(k).convert(v) if spec.option(k) is not None and v is not None else v)
              for k, v in params.items()}
    if spec.batch_size is not None:
        if batch_size is not None:
            raise E.ParameterError(f"{kind}: the batch size is set by the generator; do not pass batch_size")
        bs = spec.batch_size(n, params)
    else:
        bs = min(n, batch_size or spec.default_batch_size)
    check_int_at_least(bs, "batch_size", 1)
    if "batch_size" in inspect.signature(spec.build).parameters:
        params = {**params, "batch_size": bs}
    make_batch, resolved, config, diagnostics = spec.build(size, seed, n=n, path=Path(path), progress=progress,
                                                           **params)
    # a generator may declare channels (config "sample_shape", "field_names") and per-sample
    # conditions (config "condition_names"; make_batch then returns (fields, conditions)) and per-sample
    # groups (config "group_kind"; make_batch then returns (fields, conditions or None, groups))
    meta = FieldsMeta(field=kind, generator=f"phigen.generate:{kind}",
                      shape=tuple(config.get("sample_shape") or (size, size)), n_total=n, seed=seed,
                      params=resolved, config=config, batch_size=bs, field_names=config.get("field_names"),
                      condition_names=config.get("condition_names"), group_kind=config.get("group_kind"))
    return write_ensemble(path, make_batch, meta, resume=resume, overwrite=overwrite, progress=progress,
                          diagnostics=diagnostics)


def reconstruct_groups(path) -> tuple[np.ndarray, str, str]:
    """The group labels ``phigen.generate`` gives the samples of ``path`` (a file it wrote, with or
    without a ``groups`` dataset), derived from the stored generator, ``batch_size``, ``config`` and
    ``conditions`` only (no sample is read). Returns ``(groups (N,) int64, kind, note)``; with
    :func:`phigen.io.annotate_groups` it adds groups to files written before phigen recorded them::

        groups, kind, note = reconstruct_groups(path)
        phigen.io.annotate_groups(path, groups, kind, note=note)

    - ``phi4``: the chain of each configuration; batch b holds one configuration per chain,
      so sample i comes from chain ``i mod n_chains``;
    - ``turbulence``: the run; batch b advances ``R = ceil(batch_size / snapshots_per_run)`` runs and
      stores their snapshots run-major, so sample ``b·batch_size + j`` comes from run ``b·R + j // S``;
    - ``cosmic-web``: the simulation (one per batch of ``3·n_slabs`` maps), checked against the
      ``simulation`` column of ``conditions`` where present;
    - ``gaussian``: each field its own group (its index).
    """
    from .io import open_fields

    with open_fields(path) as ds:
        gen = ds.generator
        kind = gen.split(":", 1)[1] if gen.startswith("phigen.generate:") else None
        if kind is None:
            raise E.ParameterError(f"groups can be reconstructed only for files written by phigen.generate; "
                                   f"this one was written by {gen!r}", path=ds.path)
        n, bs, config = len(ds), int(ds.attrs["batch_size"]), ds.config
        cond, names = ds.conditions(), ds.condition_names
        groups, gkind, note = generator_groups(kind, n, bs, config)
        if names is not None and gkind in names:  # e.g. cosmic-web's "simulation" column: must agree
            col = np.asarray(cond[:, names.index(gkind)])
            if not np.array_equal(col, groups):
                raise E.FileFormatError(f"the conditions' {gkind} column disagrees with the generator's {gkind} "
                                        "of each sample", path=ds.path)
            note += f"; equal to the conditions' {gkind!r} column"
    return groups, gkind, note


def generator_groups(kind: str, n: int, batch_size: int, config: dict) -> tuple[np.ndarray, str, str]:
    """``(groups (n,) int64, group kind, note)`` that generator ``kind`` gives ``n`` samples written in
    batches of ``batch_size`` with the resolved ``config`` (as stored in the file): the very
    functions the generators label their batches with."""
    spec = field_kind(kind)
    if spec is None or spec.groups is None:
        raise E.ParameterError(f"no group rule for generator kind {kind!r}")
    return spec.groups(int(n), int(batch_size), config)
