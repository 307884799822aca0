"""Ground-truth ensembles into phigen files: ``phigen.generate(kind, path, ...)`` (CLI ``phigen generate``).

Each kind maps to a batch generator that depends only on (seed, batch index), so runs resume
exactly. Kinds are registered in :data:`GENERATORS`; later modules add theirs (phi4, turbulence, ...).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import errors as E
from ._validation import check_int_at_least
from .io import FieldsMeta, write_ensemble


@dataclass(frozen=True)
class GeneratorSpec:
    """How to generate one kind.

    ``build(size, seed, *, n, path, progress, **params) -> (make_batch, params, config, diagnostics)``:
    ``make_batch(batch_index, count)`` must depend only on the seed and the batch index (or on state
    the builder checkpoints beside ``path`` itself), so that a resumed run writes the same bytes.
    ``batch_size(n, params)`` may impose the batch size (e.g. one field per MCMC chain).
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


def _build_gaussian(size: int, seed: int, *, n: int, path, progress, slope: float = 2.0, amplitude: float = 1.0):
    import jax

    from .fields.gaussian import gaussian_field, power_law_spectrum

    spectrum = power_law_spectrum(slope, amplitude)
    key = jax.random.PRNGKey(seed)
    fn = jax.jit(lambda k, n: gaussian_field(k, n, size, spectrum), static_argnums=1)

    def make_batch(b, count):
        return jax.device_get(fn(jax.random.fold_in(key, b), count))

    params = {"slope": float(slope), "amplitude": float(amplitude)}
    config = {"kind": "gaussian", "size": size, "spectrum": "amplitude * k**-slope, P(0)=0", **params}
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
    allowed -= {"n", "path", "progress"}
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
    make_batch, resolved, config, diagnostics = spec.build(size, seed, n=n, path=Path(path), progress=progress,
                                                           **params)
    # a generator may declare channels (config "sample_shape", "field_names") and per-sample
    # conditions (config "condition_names"; make_batch then returns (fields, conditions))
    meta = FieldsMeta(field=kind, generator=f"phigen.generate:{kind}",
                      shape=tuple(config.get("sample_shape") or (size, size)), n_total=n, seed=seed,
                      params=resolved, config=config, batch_size=bs, field_names=config.get("field_names"),
                      condition_names=config.get("condition_names"))
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
