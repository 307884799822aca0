"""phigen: synthetic physical fields and the statistics that prove how faithful they are.

The public API, one import away (every CLI verb has its twin here):

- ``phigen.generate(kind, path, size=, n=, ...)``      — ``phigen generate``
- ``phigen.generate(..., processes=N)``                — ``phigen generate ... --processes N`` (shards + master)
- ``phigen.merge_shards(shards, out)``                 — ``phigen merge SHARDS... -o FILE``
- ``phigen.info(path)`` / ``phigen.validate(path)``    — ``phigen info`` / ``phigen validate``
- ``phigen.stats_report(path, ref=, out_dir=)``        — ``phigen stats``
- ``phigen.check_file(path, out_dir=)``                — ``phigen check``
- ``phigen.binder_crossing(lam, sizes, kappas)``       — ``phigen critical phi4``
- ``phigen.fit(kind, data, out=)`` / ``phigen.sample(model, n, out=)`` — ``phigen fit`` / ``phigen sample``
- ``phigen.compare_models(data, models=, out_dir=)``   — ``phigen compare``
- ``phigen.compare_conditions(data, condition=, models=, out_dir=)`` — ``phigen compare --condition``
- ``phigen.generalisation(data, model=, sizes=, out_dir=)`` — ``phigen generalisation``
- ``phigen.quickstart(out_dir)``                       — ``phigen quickstart``

A new field kind is one module that registers a ``phigen.FieldKind`` (docs/architecture.md).

Subpackages: ``phigen.io`` (HDF5 ensembles), ``phigen.fields`` (generators), ``phigen.energies``,
``phigen.samplers`` (MCMC), ``phigen.stats`` (statistics suite), ``phigen.models``, ``phigen.plot``,
``phigen.nn`` (network building blocks), ``phigen.flows`` (normalizing flows, flow-based MCMC),
``phigen.vae``, ``phigen.gan``.
Heavy submodules are imported lazily, so ``import phigen`` stays fast.
"""

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _PNF, version as _version

try:
    __version__ = _version("phigen")
except _PNF:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from . import errors
from .errors import PhigenError

# name -> (module, attribute); resolved on first access (PEP 562)
_LAZY = {
    "generate": ("phigen.generators", "generate"),
    "info": ("phigen.io", "info"),
    "validate": ("phigen.io", "validate"),
    "open_fields": ("phigen.io", "open_fields"),
    "read_fields": ("phigen.io", "read_fields"),
    "write_fields": ("phigen.io", "write_fields"),
    "merge_shards": ("phigen.io", "merge_shards"),
    "stats_report": ("phigen.report", "stats_report"),
    "check_file": ("phigen.checks", "check_file"),
    "register_field_kind": ("phigen.fields.kind", "register_field_kind"),
    "FieldKind": ("phigen.fields.kind", "FieldKind"),
    "FieldOption": ("phigen.fields.kind", "FieldOption"),
    "compare_fields": ("phigen.stats", "compare"),
    "binder_crossing": ("phigen.critical", "binder_crossing"),
    "fit": ("phigen.models", "fit"),
    "sample": ("phigen.models", "sample"),
    "load_model": ("phigen.models", "load_model"),
    "quickstart": ("phigen._quickstart", "quickstart"),
    "compare_models": ("phigen.compare", "compare_models"),
    "compare_conditions": ("phigen.compare_conditions", "compare_conditions"),
    "generalisation": ("phigen._generalisation", "generalisation"),
}
_SUBPACKAGES = ("io", "fields", "energies", "samplers", "stats", "models", "plot", "critical", "report", "compare",
                "wavelets", "scattering", "diffusion", "checks", "rg", "distributed", "nn", "flows", "vae", "gan")


def __getattr__(name):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(_import_module(mod), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        value = _import_module(f"phigen.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'phigen' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))


__all__ = ["__version__", "errors", "PhigenError", *_LAZY]
