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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import errors as E
from ._validation import check_int_at_least
from .fields.kind import build_parameters, field_kind
from .io import FieldsMeta, write_ensemble
from .io.shards import split_units


def generate(kind: str, path, *, size: int, n: int, seed: int = 0, resume: bool = False,
             overwrite: bool = False, batch_size: int | None = None, progress: bool | None = None,
             processes: int | None = None, distributed: bool = False, **params: Any) -> Path:
    """Generate ``n`` fields of ``size × size`` of the given kind into the phigen file ``path``.

    ``params`` are the kind's physical parameters (``slope`` for ``gaussian``; ``kappa``/``lam``
    for ``phi4``; ...). Returns the path. Same (kind, size, n, seed, params, batch_size) → same bytes,
    also when an interrupted run is completed with ``resume=True``.

    Scale out (docs/scale_out.md): ``processes=N`` (N > 1) starts N local processes joined by
    ``jax.distributed`` on the loopback address; ``distributed=True`` makes this process one of a
    group started by a cluster launcher (Slurm, Open MPI: ``jax.distributed.initialize()`` detects
    it). Either way each process writes its share of the batches to a shard
    (:func:`phigen.io.shard_path`) and process 0 writes ``path`` as the master over them; the set is
    the one a single process writes (each batch depends on the seed and its global index only).
    """
    if processes is not None:
        processes = check_int_at_least(processes, "processes", 1)
    if distributed and processes is not None:
        raise E.ParameterError("pass processes=N (start N local processes) or distributed=True (started by a "
                               "cluster launcher), not both")
    common = dict(size=size, n=n, seed=seed, resume=resume, overwrite=overwrite, batch_size=batch_size,
                  progress=progress, **params)
    if processes is not None and processes > 1:
        from .distributed import launch_generate

        return launch_generate(processes, kind, path, **common)
    if distributed:
        from .distributed import initialize, process_info

        initialize()
        index, count = process_info()
        return generate_share(kind, path, process_index=index, process_count=count, **common)
    spec, size, n, bs, params = _resolve(kind, size, n, batch_size, params)
    make_batch, meta, diagnostics = _build(spec, size, n, seed, Path(path), progress, bs, params)
    return write_ensemble(path, make_batch, meta, resume=resume, overwrite=overwrite, progress=progress,
                          diagnostics=diagnostics)


def _resolve(kind, size, n, batch_size, params) -> tuple:
    """``(spec, size, n, batch size, params)``: the kind's spec and the checked, converted parameters."""
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
    return spec, size, n, bs, params


def _build(spec, size, n, seed, path: Path, progress, bs, params, mesh=None) -> tuple:
    """``(make_batch, meta, diagnostics)`` of the whole set (``path``: where the builder keeps state;
    ``mesh``: a chain mesh over all processes, for a ``collective`` kind)."""
    extra = {"_mesh": mesh} if mesh is not None else {}
    make_batch, resolved, config, diagnostics = spec.build(size, seed, n=n, path=path, progress=progress, **params,
                                                           **extra)
    # a generator may declare channels (config "sample_shape", "field_names") and per-sample
    # conditions (config "condition_names"; make_batch then returns (fields, conditions)) and per-sample
    # groups (config "group_kind"; make_batch then returns (fields, conditions or None, groups))
    meta = FieldsMeta(field=spec.name, generator=f"phigen.generate:{spec.name}",
                      shape=tuple(config.get("sample_shape") or (size, size)), n_total=n, seed=seed,
                      params=resolved, config=config, batch_size=bs, field_names=config.get("field_names"),
                      condition_names=config.get("condition_names"), group_kind=config.get("group_kind"))
    return make_batch, meta, diagnostics


def shard_plan(kind: str, *, n: int, processes: int, batch_size: int | None = None,
               **params: Any) -> list[tuple[int, int]]:
    """The sample ranges ``[(start, stop)]`` of the shards a run of ``processes`` processes writes.

    The work is cut into units of whole batches (a kind's ``shard_unit``: batches that share state,
    such as the MCMC chains of one φ⁴ κ, stay in one process), dealt out as contiguous, balanced
    ranges; ``min(processes, units)`` shards, so extra processes idle."""
    spec, _, n, bs, params = _resolve(kind, 4, n, batch_size, params)
    return _plan(spec, n, bs, params, processes)


def _plan(spec, n, bs, params, processes) -> list[tuple[int, int]]:
    n_batches = -(-n // bs)
    per = max(1, int(spec.shard_unit(n, bs, params))) if spec.shard_unit is not None else 1
    units = -(-n_batches // per)
    return [(min(u0 * per * bs, n), min(u1 * per * bs, n)) for u0, u1 in split_units(units, processes)]


def generate_share(kind: str, path, *, size: int, n: int, process_index: int, process_count: int, seed: int = 0,
                   resume: bool = False, overwrite: bool = False, batch_size: int | None = None,
                   progress: bool | None = None, barrier=None, **params: Any) -> Path:
    """The part of a sharded :func:`generate` that process ``process_index`` of ``process_count`` does:
    write its shard (:func:`shard_plan`), wait for the others (``barrier(name)``; default: a
    ``jax.distributed`` barrier when several processes are joined), and, on process 0, write the master
    ``path``. Called by each process of ``generate(processes=N)`` / ``generate(distributed=True)``.

    A single unit of a ``collective`` kind (φ⁴ at one κ) in a joined group of ``process_count``
    processes: all of them run its chains, split over every process's devices
    (:func:`phigen.samplers.global_chain_mesh`), and process 0 writes the one shard."""
    from .io.shards import shard_path, write_master

    path = Path(path)
    spec, size, n, bs, params = _resolve(kind, size, n, batch_size, params)
    index, count = int(process_index), check_int_at_least(process_count, "process_count", 1)
    if not 0 <= index < count:
        raise E.ParameterError(f"process_index must be in [0, {count}); got {process_index}")
    _check_master_target(path, resume, overwrite)
    plan = _plan(spec, n, bs, params, count)
    n_shards = len(plan)
    if resume and not overwrite:
        other = sorted(k for k in _shard_counts(path) if k != n_shards)
        if other:
            raise E.ParameterError(f"the interrupted run was split into {other[0]} shards; resume it with "
                                   f"{other[0]} processes (this run makes {n_shards}), or pass --overwrite",
                                   path=path)
    if barrier is None:
        from .distributed import barrier
    import jax

    if spec.collective and n_shards == 1 and count > 1 and jax.process_count() == count:
        _collective_share(spec, path, size, n, seed, bs, params, index, n_shards, plan, resume, overwrite, progress)
    elif index < n_shards:
        start, stop = plan[index]
        sp = shard_path(path, index, n_shards)
        make_batch, meta, diagnostics = _build(spec, size, n, seed, sp, progress, bs, params)
        meta = replace(meta, n_total=stop - start, shard=(index, n_shards, start, n))
        b0 = start // bs
        write_ensemble(sp, lambda b, c: make_batch(b0 + b, c), meta, resume=resume, overwrite=overwrite,
                       progress=progress, diagnostics=diagnostics,
                       desc=f"{spec.name} shard {index + 1}/{n_shards} → {sp.name}")
    barrier("phigen-generate-shards")
    if index == 0:
        write_master(path, [shard_path(path, k, n_shards) for k in range(n_shards)])
        if overwrite:
            _remove_stale_shards(path, n_shards)
    barrier("phigen-generate-master")
    return path


def _collective_share(spec, path, size, n, seed, bs, params, index, n_shards, plan, resume, overwrite,
                      progress) -> None:
    """One unit computed by every process of the group (its chains split over all their devices);
    process 0 writes the shard, the others make the same batch calls in step and discard the
    fields. On resume process 0 tells the others the batch its shard stops at."""
    import jax
    from jax.experimental import multihost_utils

    from .io import open_fields
    from .io.shards import shard_path
    from .samplers.sharding import global_chain_mesh

    start, stop = plan[0]
    sp = shard_path(path, 0, n_shards)
    make_batch, meta, diagnostics = _build(spec, size, n, seed, sp, progress if index == 0 else False, bs, params,
                                           mesh=global_chain_mesh())
    done = 0
    if index == 0 and resume and not overwrite and sp.exists():
        try:
            with open_fields(sp, allow_incomplete=True) as f:
                done = len(f)
        except E.PhigenError:
            done = 0  # write_ensemble below names what is wrong with it
    done = int(multihost_utils.broadcast_one_to_all(np.int32(done)))
    if index == 0:
        meta = replace(meta, n_total=stop - start, shard=(0, n_shards, start, n))
        write_ensemble(sp, make_batch, meta, resume=resume, overwrite=overwrite, progress=progress,
                       diagnostics=diagnostics, desc=f"{spec.name} over {jax.process_count()} processes → {sp.name}")
        return
    total = stop - start
    for b in range(done // bs, -(-total // bs)):
        make_batch(b, min(bs, total - b * bs))
    diagnostics()  # removes this process's chain checkpoint


def _check_master_target(path: Path, resume: bool, overwrite: bool) -> None:
    from .io.fields_file import _describe_existing
    from .io.shards import is_master

    if not path.exists() or overwrite:
        return
    if not resume:
        state = _describe_existing(path)
        hint = "--resume to continue it or --overwrite to replace it" if state == "unfinished" else "--overwrite to replace it"
        raise E.FileExistsError_(f"{'an' if state[0] in 'aeiou' else 'a'} {state} file exists; pass {hint}",
                                    path=path)
    if not is_master(path):
        raise E.FileExistsError_("a file written by one process exists: resume it without --processes, or pass "
                                 "--overwrite", path=path)


def _shard_files(path: Path) -> list[tuple[Path, int]]:
    """``[(file, shard count)]``: the shard files of ``path`` beside it (and their chain checkpoints)."""
    import re

    pat = re.compile(re.escape(path.stem) + r"\.shard-\d{5}-of-(\d{5})" + re.escape(path.suffix or ".h5")
                     + r"(\.chains)?$")
    if not path.parent.is_dir():
        return []
    return [(p, int(m.group(1))) for p in path.parent.iterdir() if (m := pat.match(p.name))]


def _shard_counts(path: Path) -> set[int]:
    return {k for _, k in _shard_files(path)}


def _remove_stale_shards(path: Path, n_shards: int) -> None:
    """After ``--overwrite``: remove the shards of an earlier split of the same file into another count."""
    for p, k in _shard_files(path):
        if k != n_shards:
            p.unlink(missing_ok=True)


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
