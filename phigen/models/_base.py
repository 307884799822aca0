"""The model protocol shared by every generative model (DESIGN §3) and its file format.

Every model kind implements

- ``fit(fields, *, key, **options) -> model`` (a classmethod; ``fields`` is ``(N, H, W)``),
- ``sample(n, *, key, **options) -> (n, H, W)`` float32 array,
- ``n_params`` (int), ``kind`` (str, the registry name),
- ``save(path)`` and ``load(path)`` (classmethod) — through :func:`write_model_file` /
  :func:`read_model_file`: HDF5, no pickle. Arrays go in as datasets; equinox modules as the bytes
  of ``equinox.tree_serialise_leaves`` plus the configuration needed to rebuild their skeleton.

Model files carry ``format = "phigen-model"``, ``model_kind``, ``format_version``,
``phigen_version``, ``created``, ``config`` (JSON) and ``training`` (JSON: data file, fit options,
fit time, diagnostics). Loading a file of another kind, a non-model file or a damaged one raises
:class:`phigen.errors.ModelFileError` naming the file and the problem.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np

from .. import errors as E
from .._json import to_json

MODEL_FORMAT = "phigen-model"
MODEL_FORMAT_VERSION = 1

MODELS: dict[str, type] = {}


def register_model(kind: str) -> Callable[[type], type]:
    """Class decorator: make a model class available as ``kind`` to fit/sample/load and the CLI."""

    def deco(cls):
        cls.kind = kind
        MODELS[kind] = cls
        return cls

    return deco




def _phigen_version() -> str:
    from .. import __version__

    return __version__


def write_model_file(path, kind: str, *, config: Mapping[str, Any], arrays: Mapping[str, Any] | None = None,
                     modules: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
                     overwrite: bool = True) -> Path:
    """Write a model file atomically (``path.tmp`` then rename): nothing half-written is ever left.

    ``arrays``: name → numpy/JAX array (nested names with ``/`` make groups). ``modules``: name →
    equinox module (or any pytree of arrays), stored as ``tree_serialise_leaves`` bytes.
    """
    import equinox as eqx

    path = Path(path)
    if path.exists() and not overwrite:
        raise E.FileExistsError_("a model file exists; pass overwrite=True (--overwrite)", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as h5:
            a = h5.attrs
            a["format"] = MODEL_FORMAT
            a["format_version"] = MODEL_FORMAT_VERSION
            a["model_kind"] = kind
            a["phigen_version"] = _phigen_version()
            a["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            a["config"] = to_json(dict(config))
            a["training"] = to_json(dict(training or {}))
            for name, value in (arrays or {}).items():
                arr = np.asarray(value)
                h5.create_dataset(f"arrays/{name}", data=arr, fletcher32=arr.ndim > 0)  # scalars cannot be filtered
            for name, module in (modules or {}).items():
                buf = io.BytesIO()
                eqx.tree_serialise_leaves(buf, module)
                h5.create_dataset(f"modules/{name}", data=np.frombuffer(buf.getvalue(), dtype=np.uint8),
                                  fletcher32=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
            training = json.loads(h5.attrs["training"])
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
    return MODELS[kind].load(path)


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
)


def get_model_class(kind: str) -> type:
    _import_model_modules()
    if kind not in MODELS:
        raise E.ParameterError(f"unknown model {kind!r}; available: {', '.join(sorted(MODELS)) or 'none'}")
    return MODELS[kind]
