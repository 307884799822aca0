"""The model protocol shared by every generative model (docs/architecture.md) and its file format.

Every model kind implements

- ``fit(fields, *, key, **options) -> model`` (a classmethod; ``fields`` is ``(N, H, W)``),
- ``sample(n, *, key, **options) -> (n, H, W)`` float32 array,
- ``n_params`` (int), ``kind`` (str, the registry name),
- ``save(path)`` and ``load(path)`` (classmethod) — through :func:`write_model_file` /
  :func:`read_model_file`: HDF5, no pickle. Arrays go in as datasets; equinox modules as the bytes
  of ``equinox.tree_serialise_leaves`` plus the configuration needed to rebuild their skeleton.

Model files carry ``format = "phigen-model"``, ``model_kind``, ``format_version``,
``phigen_version``, ``created``, ``config`` (JSON) and ``training`` (JSON: data file, fit options,
fit time, diagnostics). ``training["provenance"]`` (:mod:`phigen.models._provenance`: what the model
was fitted on) keeps its arrays — training indices, groups, per-field digests — as datasets under
``provenance/`` (an attribute is limited to 64 KiB); files without it (older phigen) still load.
Loading a file of another kind, a non-model file or a damaged one raises
:class:`phigen.errors.ModelFileError` naming the file and the problem.

Sampling keys: :func:`register_model` wraps each model's ``sample`` (and ``synthesize`` /
``sample_coarse`` where defined) so that the key it receives is first folded with a tag of its own,
``fold_in(key, sampling_tag(kind))``. No model can then draw a generator's noise (``phigen generate
--seed k`` and a model sampled with ``PRNGKey(k)`` would otherwise filter the very same white noise
and return near-copies of the data), while two models of one kind given one key still share their
noise (the generalisation test). Calls nested inside a sampling call are not tagged twice.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import functools
import hashlib
import inspect
import io
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import h5py
import numpy as np

from .. import errors as E
from .._atomic import atomic_h5
from .._json import to_json

MODEL_FORMAT = "phigen-model"
MODEL_FORMAT_VERSION = 1

MODELS: dict[str, type] = {}


# public methods that draw with a caller's ``key``: their key is tagged (module docstring)
SAMPLING_METHODS: tuple[str, ...] = ("sample", "synthesize", "sample_coarse")
_IN_SAMPLING = contextvars.ContextVar("phigen_models_in_sampling", default=False)


def sampling_tag(kind: str) -> int:
    """The fixed 31-bit tag folded into every sampling key of a ``kind`` model."""
    digest = hashlib.blake2b(f"phigen.models.sample:{kind}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def tag_sampling_key(key, kind: str):
    """``fold_in(key, sampling_tag(kind))``: the key a ``kind`` model really draws with."""
    import jax

    return jax.random.fold_in(key, sampling_tag(kind))


def _tag_keys(fn, kind: str):
    if getattr(fn, "__phigen_tagged__", False):
        return fn

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        if _IN_SAMPLING.get() or kwargs.get("key") is None:
            return fn(self, *args, **kwargs)
        kwargs["key"] = tag_sampling_key(kwargs["key"], getattr(self, "kind", kind))
        token = _IN_SAMPLING.set(True)
        try:
            return fn(self, *args, **kwargs)
        finally:
            _IN_SAMPLING.reset(token)

    wrapper.__phigen_tagged__ = True
    return wrapper


@runtime_checkable
class GenerativeModel(Protocol):
    """What :func:`register_model` checks a model class against (module docstring)."""

    kind: str

    @classmethod
    def fit(cls, fields, *, key, progress=None, **options) -> "GenerativeModel": ...

    def sample(self, n: int, *, key, **options): ...

    @property
    def n_params(self) -> int: ...

    def save(self, path): ...

    @classmethod
    def load(cls, path) -> "GenerativeModel": ...


def model_options(cls_or_model, method: str = "fit") -> frozenset[str] | None:
    """The keyword options ``cls.<method>`` takes (``key`` and ``progress`` aside): its keyword-only
    parameters, plus the fields of the configuration dataclass a model declares for it
    (``fit_config = WCRGConfig``: ``fit(..., config=None, **options)`` takes each field as an
    option). None when the method takes arbitrary ``**options`` without declaring them. The one
    place phigen asks what a model accepts (``phigen fit``/``sample`` option checks, ``compare``)."""
    import dataclasses

    fn = getattr(cls_or_model, method)
    params = inspect.signature(fn).parameters
    names = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"key", "progress"}
    config = getattr(cls_or_model, f"{method}_config", None)
    if config is not None:
        names = (names - {"config"}) | {f.name for f in dataclasses.fields(config)}
    elif any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(names)


def config_from_options(config_cls, config, options, what: str, renamed=None):
    """``config`` (a ``config_cls`` instance; default: ``config_cls()``) with ``options`` (its field
    names) replacing fields: how a model's ``fit(..., config=None, **options)`` reads its options. An
    unknown option, or one in ``renamed`` (old name → new name), is a ParameterError naming the right
    ones."""
    import dataclasses

    options = dict(options or {})
    if config is not None and not isinstance(config, config_cls):
        raise E.ParameterError(f"{what}: config must be a {config_cls.__name__}; got {type(config).__name__}")
    moved = sorted(set(options) & set(renamed or {}))
    if moved:
        raise E.ParameterError(f"{what}: option(s) " + ", ".join(f"{o!r} are now {renamed[o]!r}" for o in moved))
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise E.ParameterError(f"{what}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    return dataclasses.replace(config if config is not None else config_cls(), **options)


def _check_model_class(cls, kind: str) -> None:
    """Refuse a class that does not follow :class:`GenerativeModel` (naming what is missing)."""
    where = f"model class {cls.__module__}.{cls.__qualname__} (kind {kind!r})"
    missing = [m for m in ("fit", "sample", "save", "load") if not callable(getattr(cls, m, None))]
    missing += [] if hasattr(cls, "n_params") else ["n_params"]
    if missing:
        raise E.ParameterError(f"{where} lacks {', '.join(missing)} (see phigen.models.GenerativeModel)")
    for name in ("fit", "sample"):
        params = inspect.signature(getattr(cls, name)).parameters
        if "key" not in params or params["key"].kind is not inspect.Parameter.KEYWORD_ONLY:
            raise E.ParameterError(f"{where}: {name}() must take the random key as keyword-only key=")
        if params["key"].default is not inspect.Parameter.empty:
            # a hidden default key makes two "independent" fits or samplings silently identical
            raise E.ParameterError(f"{where}: {name}()'s key= must be required (no default)")


def register_model(kind: str) -> Callable[[type], type]:
    """Class decorator: make a model class available as ``kind`` to fit/sample/load and the CLI, and
    tag its sampling keys (module docstring). The class is checked against
    :class:`GenerativeModel`; a name already taken by another class is refused."""
    if not isinstance(kind, str) or not kind or kind != kind.strip():
        raise E.ParameterError(f"a model kind must be a non-empty name; got {kind!r}")

    def deco(cls):
        taken = MODELS.get(kind)
        if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
            raise E.ParameterError(f"model kind {kind!r} is already registered by "
                                   f"{taken.__module__}.{taken.__qualname__}; choose another name")
        _check_model_class(cls, kind)
        cls.kind = kind
        for name in SAMPLING_METHODS:
            if callable(cls.__dict__.get(name)):
                setattr(cls, name, _tag_keys(cls.__dict__[name], kind))
        MODELS[kind] = cls
        return cls

    return deco


_PROVENANCE_ARRAYS = ("train_indices", "train_groups", "field_digests")


def _split_provenance(training: Mapping[str, Any]) -> tuple[dict, dict]:
    """(training with the provenance arrays replaced by dataset references, {dataset name: array})."""
    training = dict(training)
    prov = training.get("provenance")
    if not isinstance(prov, Mapping):
        return training, {}
    prov, arrays = dict(prov), {}
    for name in _PROVENANCE_ARRAYS:
        if prov.get(name) is not None and not isinstance(prov[name], Mapping):
            arrays[f"provenance/{name}"] = np.asarray(prov[name])
            prov[name] = {"dataset": f"provenance/{name}"}
    training["provenance"] = prov
    return training, arrays


def _join_provenance(training: dict, h5, path) -> dict:
    prov = training.get("provenance")
    if not isinstance(prov, dict):
        return training
    for name in _PROVENANCE_ARRAYS:
        ref = prov.get(name)
        if isinstance(ref, dict) and "dataset" in ref:
            if ref["dataset"] not in h5:
                raise E.ModelFileError(f"missing dataset {ref['dataset']!r} of the training record", path=path)
            prov[name] = h5[ref["dataset"]][()]
    return training




def _phigen_version() -> str:
    from .. import __version__

    return __version__


def write_model_file(path, kind: str, *, config: Mapping[str, Any], arrays: Mapping[str, Any] | None = None,
                     modules: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
                     overwrite: bool = True) -> Path:
    """Write a model file atomically (``path.tmp``, fsync, then rename): nothing half-written is ever left.

    ``arrays``: name → numpy/JAX array (nested names with ``/`` make groups). ``modules``: name →
    equinox module (or any pytree of arrays), stored as ``tree_serialise_leaves`` bytes.
    """
    import equinox as eqx
    import jax

    path = Path(path)
    if jax.process_count() > 1 and jax.process_index() != 0:
        return path  # a jax.distributed group: the processes hold the same model; process 0 writes it
    if path.exists() and not overwrite:
        raise E.FileExistsError_("a model file exists; pass overwrite=True (--overwrite)", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as h5:
        a = h5.attrs
        a["format"] = MODEL_FORMAT
        a["format_version"] = MODEL_FORMAT_VERSION
        a["model_kind"] = kind
        a["phigen_version"] = _phigen_version()
        a["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        a["config"] = to_json(dict(config))
        training, prov_arrays = _split_provenance(training or {})
        a["training"] = to_json(training)
        for name, arr in prov_arrays.items():
            h5.create_dataset(name, data=arr, fletcher32=arr.size > 0)
        for name, value in (arrays or {}).items():
            arr = np.asarray(value)
            h5.create_dataset(f"arrays/{name}", data=arr, fletcher32=arr.ndim > 0)  # scalars cannot be filtered
        for name, module in (modules or {}).items():
            buf = io.BytesIO()
            eqx.tree_serialise_leaves(buf, module)
            h5.create_dataset(f"modules/{name}", data=np.frombuffer(buf.getvalue(), dtype=np.uint8),
                              fletcher32=True)
    return path


class ModelFile:
    """What :func:`read_model_file` returns: attributes, config, training record, arrays, modules."""

    def __init__(self, path: Path, kind: str, config: dict, training: dict, arrays: dict, modules: dict):
        self.path, self.kind, self.config, self.training = path, kind, config, training
        self.arrays = arrays
        self._modules = modules

    def module(self, name: str, like):
        """Rebuild the equinox module ``name`` into the skeleton ``like`` (same structure)."""
        import equinox as eqx

        if name not in self._modules:
            raise E.ModelFileError(f"model file has no module {name!r}", path=self.path)
        try:
            return eqx.tree_deserialise_leaves(io.BytesIO(self._modules[name].tobytes()), like)
        except Exception as exc:  # structure or shape mismatch: a file of another configuration
            raise E.ModelFileError(f"module {name!r} does not match this model's structure: {exc}",
                                   path=self.path) from None


def model_kind(path) -> str:
    """The ``model_kind`` of a model file (raises ModelFileError if it is not one)."""
    path = Path(path)
    if not path.exists():
        raise E.PhigenError("no such model file", path=path)
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") != MODEL_FORMAT:
                what = "a phigen fields file, not a model" if h5.attrs.get("format") == "phigen-fields" else "not a phigen model file"
                raise E.ModelFileError(what, path=path)
            return str(h5.attrs["model_kind"])
    except OSError as exc:
        raise E.ModelFileError(f"cannot be read as a model file (not HDF5, or damaged): {exc}", path=path) from None


def read_model_file(path, expected_kind: str | None = None) -> ModelFile:
    """Read a model file completely (checksums verified); check its kind."""
    path = Path(path)
    kind = model_kind(path)
    if expected_kind is not None and kind != expected_kind:
        raise E.ModelFileError(f"is a {kind!r} model, not a {expected_kind!r} model", path=path)
    try:
        with h5py.File(path, "r") as h5:
            version = int(h5.attrs.get("format_version", -1))
            if version > MODEL_FORMAT_VERSION:
                raise E.FormatVersionError(f"model format_version {version} is newer than this phigen reads", path=path)
            for attr in ("config", "training"):
                if attr not in h5.attrs:
                    raise E.ModelFileError(f"missing attribute {attr!r}", path=path)
            config = json.loads(h5.attrs["config"])
            training = _join_provenance(json.loads(h5.attrs["training"]), h5, path)
            arrays: dict = {}
            if "arrays" in h5:
                h5["arrays"].visititems(lambda n, obj: arrays.__setitem__(n, obj[()]) if isinstance(obj, h5py.Dataset) else None)
            modules = {n: h5["modules"][n][()] for n in h5["modules"]} if "modules" in h5 else {}
    except OSError as exc:
        raise E.ModelFileError(f"damaged model file (checksum or read failure): {exc}", path=path) from None
    except json.JSONDecodeError as exc:
        raise E.ModelFileError(f"damaged model attributes: {exc}", path=path) from None
    return ModelFile(path, kind, config, training, arrays, modules)


def load_model(path):
    """Load any phigen model file, dispatching on its ``model_kind``."""
    kind = model_kind(path)
    _import_model_modules()
    if kind not in MODELS:
        raise E.ModelFileError(f"unknown model kind {kind!r} (written by a newer phigen?)", path=path)
    model = MODELS[kind].load(path)
    try:
        model.model_file = str(path)  # names the model in messages (e.g. check_training_disjoint)
    except AttributeError:  # a frozen model class
        pass
    return model


def _import_model_modules() -> None:
    """Import the modules that register model kinds (lazy: they pull in heavier dependencies)."""
    import importlib

    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if not exc.name or not (mod == exc.name or mod.startswith(exc.name + ".")):
                raise


# Modules that call ``register_model``; each model issue adds its module here.
_MODEL_MODULES: tuple[str, ...] = (
    "phigen.scattering.models",
    "phigen.diffusion.models",
    "phigen.rg.models",
    "phigen.flows.models",
    "phigen.vae",
    "phigen.gan",
)


def available_models() -> list[str]:
    """The registered model kinds (every model module imported), sorted: what the CLI lists."""
    _import_model_modules()
    return sorted(MODELS)


def get_model_class(kind: str) -> type:
    _import_model_modules()
    if kind not in MODELS:
        raise E.ParameterError(f"unknown model {kind!r}; available: {', '.join(sorted(MODELS)) or 'none'}")
    return MODELS[kind]
