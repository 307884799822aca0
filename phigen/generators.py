"""Ground-truth ensembles into phigen files: ``phigen.generate(kind, path, ...)`` (CLI ``phigen generate``).

Each kind maps to a batch generator that depends only on (seed, batch index), so runs resume
exactly. Kinds are registered in :data:`GENERATORS`; later modules add theirs (phi4, turbulence, ...).

Every generator records a group label per sample (dataset ``groups``, docs/data.md): the MCMC chain of
a φ⁴ configuration, the run of a turbulence snapshot, the N-body simulation of a cosmic-web map;
independent Gaussian fields are each their own group (kind ``"field"``). Splits keep groups whole.
:func:`reconstruct_groups` derives the same labels for files written before groups were recorded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import errors as E
from ._validation import check_int_at_least
from .io import FieldsMeta, write_ensemble


@dataclass(frozen=True)
class GeneratorSpec:
    """How to generate one kind.

    ``build(size, seed, *, n, path, progress, **params) -> (make_batch, params, config, diagnostics)``:
    ``make_batch(batch_index, count)`` must depend only on the seed and the batch index (or on state
    the builder checkpoints beside ``path`` itself), so that a resumed run writes the same bytes.
    ``batch_size(n, params)`` may impose the batch size (e.g. one field per MCMC chain). A builder
    that declares a keyword ``batch_size`` receives the batch size in use. Groups: the config may
    name ``group_kind`` (then ``make_batch`` returns ``(fields, conditions or None, groups)``, the
    labels a function of the batch index only), like ``condition_names`` for conditions.
    """

    name: str
    build: Callable[..., tuple]
    default_batch_size: int = 64
    help: str = ""
    batch_size: Callable[..., int] | None = None


GENERATORS: dict[str, GeneratorSpec] = {}


def register_generator(spec: GeneratorSpec) -> GeneratorSpec:
    GENERATORS[spec.name] = spec
    return spec


def _build_gaussian(size: int, seed: int, *, n: int, path, progress, batch_size: int, slope: float = 2.0,
                    amplitude: float = 1.0):
    import jax

    from .fields.gaussian import gaussian_field, power_law_spectrum

    spectrum = power_law_spectrum(slope, amplitude)
    key = jax.random.PRNGKey(seed)
    fn = jax.jit(lambda k, n: gaussian_field(k, n, size, spectrum), static_argnums=1)

    def make_batch(b, count):  # independent fields: each its own group, labelled by its index
        start = b * batch_size
        return jax.device_get(fn(jax.random.fold_in(key, b), count)), None, np.arange(start, start + count)

    params = {"slope": float(slope), "amplitude": float(amplitude)}
    config = {"kind": "gaussian", "size": size, "spectrum": "amplitude * k**-slope, P(0)=0", **params,
              "group_kind": "field"}
    return make_batch, params, config, None


register_generator(GeneratorSpec("gaussian", _build_gaussian, 256, "Gaussian random field with P(k) ∝ k^-slope"))


def generate(kind: str, path, *, size: int, n: int, seed: int = 0, resume: bool = False,
             overwrite: bool = False, batch_size: int | None = None, progress: bool | None = None,
             **params: Any) -> Path:
    """Generate ``n`` fields of ``size × size`` of the given kind into the phigen file ``path``.

    ``params`` are the kind's physical parameters (``slope`` for ``gaussian``; ``kappa``/``lam``
    for ``phi4``; ...). Returns the path. Same (kind, size, n, seed, params, batch_size) → same bytes,
    also when an interrupted run is completed with ``resume=True``.
    """
    if kind not in GENERATORS:
        _load_optional_generators()
    if kind not in GENERATORS:
        raise E.ParameterError(f"unknown field kind {kind!r}; choose one of: {', '.join(sorted(GENERATORS))}")
    size = check_int_at_least(size, "size", 4)
    n = check_int_at_least(n, "n", 1)
    spec = GENERATORS[kind]
    sig = inspect.signature(spec.build)
    allowed = {name for name, prm in sig.parameters.items() if prm.kind is inspect.Parameter.KEYWORD_ONLY}
    allowed -= {"n", "path", "progress", "batch_size"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise E.ParameterError(f"{kind} does not take {', '.join(unknown)}; its parameters: {', '.join(sorted(allowed))}")
    if spec.batch_size is not None:
        if batch_size is not None:
            raise E.ParameterError(f"{kind}: the batch size is set by the generator; do not pass batch_size")
        bs = spec.batch_size(n, params)
    else:
        bs = min(n, batch_size or spec.default_batch_size)
    check_int_at_least(bs, "batch_size", 1)
    if "batch_size" in sig.parameters:
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


def _load_optional_generators() -> None:
    """Import modules that register more kinds (kept lazy so `phigen info` stays fast)."""
    import importlib

    for mod in ("phigen.fields.phi4", "phigen.fields.turbulence", "phigen.fields.cosmic_web"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # that module is not part of this install; real bugs still raise
            if not exc.name or not (mod == exc.name or mod.startswith(exc.name + ".")):
                raise


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
        if kind == "cosmic-web" and names is not None and "simulation" in names:
            sim = np.asarray(cond[:, names.index("simulation")])
            if not np.array_equal(sim, groups):
                raise E.FileFormatError("the conditions' simulation column disagrees with one simulation per batch",
                                        path=ds.path)
            note += "; equal to the conditions' 'simulation' column"
    return groups, gkind, note


def generator_groups(kind: str, n: int, batch_size: int, config: dict) -> tuple[np.ndarray, str, str]:
    """``(groups (n,) int64, group kind, note)`` that generator ``kind`` gives ``n`` samples written in
    batches of ``batch_size`` with the resolved ``config`` (as stored in the file): the very
    functions the generators label their batches with."""
    n, batch_size = int(n), int(batch_size)
    if kind == "phi4":
        from .fields.phi4 import chain_groups

        c = int(config["n_chains"])
        if batch_size != min(n, c):
            raise E.ParameterError(f"phi4 writes one configuration per chain per batch: batch_size {batch_size} "
                                   f"does not match n_chains = {c}")
        return chain_groups(n, c), "chain", f"chain index i mod n_chains, n_chains = {c}"
    if kind == "turbulence":
        from .fields.turbulence import run_groups

        s = int(config["sampler"]["snapshots_per_run"])
        r = -(-batch_size // s)
        return (run_groups(n, batch_size, s), "run",
                f"run index b*{r} + j//{s} of sample j of batch b (batch_size {batch_size}, snapshots_per_run {s})")
    if kind == "cosmic-web":
        from .fields.cosmic_web import simulation_groups

        per = int(config["maps_per_simulation"])
        if batch_size != min(n, per):
            raise E.ParameterError(f"cosmic-web writes one simulation per batch: batch_size {batch_size} does not "
                                   f"match maps_per_simulation = {per}")
        return simulation_groups(n, per), "simulation", f"simulation index i // {per} (maps_per_simulation)"
    if kind == "gaussian":
        return np.arange(n, dtype=np.int64), "field", "independent fields: each its own group"
    raise E.ParameterError(f"no group rule for generator kind {kind!r}")
