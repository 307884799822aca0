"""What phigen knows about a field kind, declared once: :class:`FieldKind` (docs/architecture.md).

A field kind (``"phi4"``, ``"turbulence"``, ``"cosmic-web"``, ``"gaussian"``, or one of yours) is one
module that builds its ground truth and registers one :class:`FieldKind`. Everything else reads the
spec:

- :func:`phigen.generate` calls ``build`` (and ``batch_size``) and checks the parameters against it;
- ``phigen generate`` derives its command-line options from ``options``;
- :func:`phigen.generators.generator_groups` labels samples with ``groups``;
- ``phigen compare`` and ``phigen generalisation`` take the field's ``symmetries`` (memorisation
  distances), fit sign-symmetric models where ``sign_symmetric``, and report ``statistics``;
- :func:`phigen.checks.check_file` and ``phigen check`` run ``checks``.

Kinds register on import; :func:`field_kind` imports the built-in modules (:data:`FIELD_MODULES`)
on first use, so reading a file never pays for the simulators.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .. import errors as E

__all__ = ["FieldKind", "FieldOption", "register_field_kind", "field_kind", "field_kinds", "FIELD_MODULES",
           "DEFAULT_SYMMETRIES"]

#: The modules that register the built-in kinds: a new built-in kind adds one line here.
FIELD_MODULES = ("phigen.fields.gaussian", "phigen.fields.phi4", "phigen.fields.turbulence",
                 "phigen.fields.cosmic_web")

#: Names ``phigen generate`` uses itself: no kind may declare an option of that name.
RESERVED_OPTIONS = frozenset({"kind", "size", "n", "count", "output", "seed", "resume", "overwrite", "batch_size",
                              "quiet", "help", "debug", "version", "path", "progress"})

#: Symmetries assumed for a kind phigen does not know (a file written by ``write_fields``).
DEFAULT_SYMMETRIES = ("shifts", "dihedral", "sign")


def parse_range(value, name: str) -> tuple[float, float]:
    """``"LO:HI"`` or ``(lo, hi)`` → ``(lo, hi)`` floats with ``lo <= hi``."""
    if isinstance(value, str):
        parts = value.replace(",", ":").split(":")
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = []
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise E.ParameterError(f"{name} must be LO:HI (two numbers); got {value!r}") from None
    if not lo <= hi:
        raise E.ParameterError(f"{name}: LO must not exceed HI; got {lo}:{hi}")
    return lo, hi


def parse_grid(value, name: str):
    """A number (returned as a float), or a grid of them: ``"START:STOP:NUM"`` (``NUM`` ≥ 2 evenly
    spaced values, both ends included), ``"a,b,c"`` or a sequence (a tuple of floats)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    try:
        if isinstance(value, str):
            if ":" in value:
                parts = value.split(":")
                if len(parts) != 3:
                    raise ValueError
                start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
                if num < 2:
                    raise ValueError
                return tuple(float(v) for v in np.round(np.linspace(start, stop, num), 10))
            items = [float(v) for v in value.split(",") if v.strip()]
        else:
            items = [float(v) for v in value]
    except (TypeError, ValueError):
        raise E.ParameterError(f"{name} must be a number, START:STOP:NUM (NUM >= 2) or a list; got {value!r}") from None
    if not items:
        raise E.ParameterError(f"{name}: empty grid")
    return items[0] if len(items) == 1 else tuple(items)


@dataclass(frozen=True)
class FieldOption:
    """One generator parameter, as ``phigen generate --<name>`` (underscores become dashes).

    ``type``: ``float``, ``int``, ``str``, ``bool`` (a flag), ``"range"`` (``LO:HI``, passed on as a
    pair of floats) or ``"grid"`` (a number, or ``START:STOP:NUM`` / a list: a tuple of floats, as
    ``phigen generate phi4 --kappa 0.25:0.40:11``); ``choices``: the allowed values of a ``str`` option.
    """

    name: str
    type: Any = float
    help: str = ""
    choices: tuple | None = None

    def __post_init__(self):
        if self.type not in (float, int, str, bool, "range", "grid"):
            raise E.ParameterError(f"option {self.name!r}: type must be float, int, str, bool, 'range' or 'grid'; "
                                   f"got {self.type!r}")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, value):
        """The value as the generator receives it (a CLI string or a Python value)."""
        if self.type == "range":
            return parse_range(value, self.flag)
        if self.type == "grid":
            return parse_grid(value, self.flag)
        return value


@dataclass(frozen=True)
class FieldKind:
    """One field kind: how to generate it and what is true of it.

    - ``build(size, seed, *, n, path, progress, **params) -> (make_batch, params, config, diagnostics)``:
      ``make_batch(batch_index, count)`` depends only on the seed and the batch index (or on state
      the builder checkpoints beside ``path``), so that a resumed run writes the same bytes; a
      builder that declares a keyword ``batch_size`` receives the batch size in use. The config may
      name ``group_kind`` (``make_batch`` then returns ``(fields, conditions or None, groups)``) and
      ``condition_names``, ``sample_shape``, ``field_names`` (docs/data.md).
    - ``batch_size(n, params)``: imposes the batch size (e.g. one field per MCMC chain); None: the
      caller's, up to ``default_batch_size``.
    - ``options``: the parameters of ``build`` as :class:`FieldOption` (the CLI is derived from them).
    - ``groups(n, batch_size, config) -> (groups (n,) int64, group kind, note)``: the labels the
      generator gives ``n`` samples written in batches of ``batch_size`` (files written before
      phigen recorded groups get them back from it).
    - ``symmetries``: exact symmetries of the law, among ``"shifts"``, ``"dihedral"``, ``"sign"``
      (nearest-neighbour distances of the memorisation test minimise over them); ``sign_symmetric``:
      the law is invariant under φ → −φ *alone* (then ``compare`` fits sign-symmetric models).
    - ``statistics(fields (N, H, W), params) -> {name: {"value", "error", ...}}``: the kind's own
      ensemble statistics in ``compare`` reports, labelled by ``statistic_labels``.
    - ``checks(path, *, out_dir=None, max_fields=None) -> dict``: physics checks of a ground-truth file
      (figures into ``out_dir``).
    - ``shard_unit(n, batch_size, params) -> int``: how many consecutive batches one process must
      generate together in a sharded run (batches that share state, such as the MCMC chains of one
      φ⁴ κ); None: every batch stands alone (docs/scale_out.md).
    - ``collective``: the builder takes ``_mesh`` (a chain mesh over every process's devices) and can
      spread ONE unit over all the processes of a ``jax.distributed`` group (the chains of a single φ⁴
      κ); a sharded run with a single unit then uses every process instead of one.
    - ``merge_diagnostics(diagnostics, params) -> dict``: the set's diagnostics from its shards' ones
      merged key by key (a later shard's value replaces an earlier one's): recompute what is a mean
      over batches from the per-batch records the shards keep (turbulence: the energy budget); None:
      the merged dict as it is.
    """

    name: str
    build: Callable[..., tuple]
    default_batch_size: int = 64
    help: str = ""
    batch_size: Callable[..., int] | None = None
    options: tuple[FieldOption, ...] = ()
    groups: Callable[[int, int, Mapping], tuple] | None = None
    symmetries: tuple[str, ...] = DEFAULT_SYMMETRIES
    sign_symmetric: bool = False
    statistics: Callable[[Any, Mapping], dict] | None = None
    statistic_labels: Mapping[str, str] = field(default_factory=dict)
    checks: Callable[..., dict] | None = None
    shard_unit: Callable[[int, int, Mapping], int] | None = None
    collective: bool = False
    merge_diagnostics: Callable[[dict, Mapping], dict] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise E.ParameterError("a field kind needs a non-empty name")
        bad = sorted(set(self.symmetries) - {"shifts", "dihedral", "sign"})
        if bad:
            raise E.ParameterError(f"field kind {self.name!r}: unknown symmetries {bad}; "
                                   "use 'shifts', 'dihedral', 'sign'")
        if self.sign_symmetric and "sign" not in self.symmetries:
            raise E.ParameterError(f"field kind {self.name!r} is sign_symmetric but 'sign' is not among its symmetries")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise E.ParameterError(f"field kind {self.name!r} lists an option twice: {names}")
        reserved = sorted(set(names) & RESERVED_OPTIONS)
        if reserved:
            raise E.ParameterError(f"field kind {self.name!r}: option names {reserved} are taken by phigen generate "
                                   f"itself ({', '.join(sorted(RESERVED_OPTIONS))})")
        takes = build_parameters(self.build)
        foreign = [n for n in names if n not in takes]
        if foreign:
            raise E.ParameterError(f"field kind {self.name!r}: options {foreign} are not keyword parameters of its "
                                   f"builder (it takes {sorted(takes)})")

    def option(self, name: str) -> FieldOption | None:
        return next((o for o in self.options if o.name == name), None)


def build_parameters(build) -> set[str]:
    """The physical parameters a builder takes: its keyword-only parameters, less those
    :func:`phigen.generate` passes itself (``n``, ``path``, ``progress``, ``batch_size``) and private ones."""
    sig = inspect.signature(build)
    return {name for name, prm in sig.parameters.items() if prm.kind is inspect.Parameter.KEYWORD_ONLY
            and name not in ("n", "path", "progress", "batch_size") and not name.startswith("_")}


_KINDS: dict[str, FieldKind] = {}


def _origin(fn) -> tuple:
    return getattr(fn, "__module__", None), getattr(fn, "__qualname__", repr(fn))


def register_field_kind(spec: FieldKind, *, replace: bool = False) -> FieldKind:
    """Add ``spec`` to the registry. A name already taken by another spec is refused unless
    ``replace=True`` (re-importing a module registers the same kind again: allowed)."""
    if not isinstance(spec, FieldKind):
        raise E.ParameterError(f"register_field_kind takes a FieldKind; got {type(spec).__name__}")
    old = _KINDS.get(spec.name)
    if old is not None and not replace and _origin(old.build) != _origin(spec.build):
        raise E.ParameterError(f"field kind {spec.name!r} is already registered (by {old.build.__module__}); "
                               "pass replace=True to replace it")
    _KINDS[spec.name] = spec
    return spec


def _load_builtin_kinds() -> None:
    for mod in FIELD_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # that module is not part of this install; real bugs still raise
            if not exc.name or not (mod == exc.name or mod.startswith(exc.name + ".")):
                raise


def field_kinds() -> dict[str, FieldKind]:
    """All registered kinds, ``{name: FieldKind}`` (the built-in ones loaded)."""
    _load_builtin_kinds()
    return dict(_KINDS)


def field_kind(name: str | None, *, required: bool = False) -> FieldKind | None:
    """The spec of kind ``name`` (``"cosmic_web"`` and ``"cosmic-web"`` are the same kind). Unknown:
    None, or a :class:`phigen.errors.ParameterError` listing the kinds when ``required``."""
    if name is not None:
        name = str(name)
        for candidate in (name, name.replace("_", "-")):
            if candidate in _KINDS:
                return _KINDS[candidate]
        _load_builtin_kinds()
        for candidate in (name, name.replace("_", "-")):
            if candidate in _KINDS:
                return _KINDS[candidate]
    if required:
        raise E.ParameterError(f"unknown field kind {name!r}; choose one of: {', '.join(sorted(_KINDS))}")
    return None


def kind_symmetries(name: str | None) -> tuple[str, ...]:
    """The symmetries of kind ``name`` (:data:`DEFAULT_SYMMETRIES` for a kind phigen does not know)."""
    spec = field_kind(name)
    return tuple(spec.symmetries) if spec is not None else DEFAULT_SYMMETRIES
