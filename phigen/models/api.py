"""``phigen.fit`` / ``phigen.sample``: the Python twins of ``phigen fit`` and ``phigen sample``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors as E
from ..io import FieldsMeta, open_fields, write_ensemble
from ._base import get_model_class, load_model, model_options
from ._provenance import training_provenance

__all__ = ["fit", "sample", "load_training_fields"]


def _check_options(obj, method: str, options: dict, what: str) -> None:
    """Unknown options are a clear ParameterError, not a TypeError deep inside."""
    allowed = model_options(obj, method)
    if allowed is None:
        return
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise E.ParameterError(f"{what}: unknown option(s) {', '.join(unknown)}; "
                               f"allowed: {', '.join(sorted(allowed)) or 'none'}")


def load_training_fields(data, *, test_fraction: float = 0.0, split_seed: int = 0, max_fields: int | None = None):
    """Fields ``(N, H, W)`` to fit on and a provenance record.

    ``data``: a phigen file path or an array. With ``test_fraction > 0`` only the training part of
    the file's deterministic split (:meth:`FieldDataset.split`) is returned. ``record["provenance"]``
    identifies the training data (:mod:`phigen.models._provenance`: file path and content hash,
    training indices and groups, split, one digest per training field) for
    :func:`phigen.models.check_training_disjoint`.
    """
    if isinstance(data, (str, Path)):
        with open_fields(data) as ds:
            idx = np.arange(len(ds)) if test_fraction == 0 else ds.split(test_fraction, seed=split_seed)[0]
            if max_fields is not None:
                idx = idx[: int(max_fields)]
            x = ds[idx]
            _check_fields(x)
            record = {"data": str(ds.path), "field": ds.field, "params": ds.params, "n_train": int(len(idx)),
                      "test_fraction": test_fraction, "split_seed": split_seed,
                      "provenance": training_provenance(x, ds=ds, indices=idx, test_fraction=test_fraction,
                                                        split_seed=split_seed, max_fields=max_fields)}
    else:
        x = np.asarray(data, dtype=np.float32)
        if max_fields is not None:
            x = x[: int(max_fields)]
        _check_fields(x)
        record = {"data": "<array>", "field": "custom", "params": {}, "n_train": int(len(x)),
                  "provenance": training_provenance(x, max_fields=max_fields)}
    return x, record


def _check_fields(x) -> None:
    if x.ndim != 3:
        raise E.InputError(f"models are fitted on (N, H, W) fields; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise E.InputError("training fields contain NaN or inf")


def fit(kind: str, data, *, out=None, seed: int = 0, test_fraction: float = 0.0, split_seed: int = 0,
        max_fields: int | None = None, progress: bool | None = None, **options: Any):
    """Fit a model of ``kind`` on ``data`` (phigen file or array) and save it to ``out`` if given.

    ``options`` go to the model's ``fit`` (e.g. ``J``, ``L``, ``mode`` for scattering; ``steps`` for
    diffusion). Returns the fitted model; ``model.training`` records data, options, fit time and
    ``provenance`` (what it was fitted on: see :func:`load_training_fields`).
    """
    import jax

    cls = get_model_class(kind)
    _check_options(cls, "fit", options, f"fit {kind}")
    x, record = load_training_fields(data, test_fraction=test_fraction, split_seed=split_seed,
                                     max_fields=max_fields)
    t0 = time.perf_counter()
    model = cls.fit(x, key=jax.random.PRNGKey(seed), progress=progress, **options)
    model.training = {**record, **getattr(model, "training", {}), "options": options, "seed": seed,
                      "fit_seconds": time.perf_counter() - t0, "shape": list(x.shape[1:]),
                      "provenance": record["provenance"]}
    if out is not None:
        model.save(out)
    return model


def sample(model, n: int, *, out=None, seed: int = 0, batch_size: int = 64, overwrite: bool = False,
           resume: bool = False, progress: bool | None = None, **options: Any):
    """Draw ``n`` fields from a model (object or model-file path).

    Without ``out`` returns the ``(n, H, W)`` array. With ``out`` writes a phigen file (batch by
    batch, resumable; batch ``b`` uses key ``fold_in(PRNGKey(seed), b)``, which the model folds with
    its own tag — :func:`phigen.models.sampling_tag` — so no generator's noise is reproduced)
    recording the model, and returns its path.
    """
    import jax

    model_path = None
    if isinstance(model, (str, Path)):
        model_path = str(model)
        model = load_model(model)
    if int(n) != n or n < 1:
        raise E.ParameterError(f"n must be a positive integer; got {n!r}")
    _check_options(model, "sample", options, f"sample {model.kind}")
    key = jax.random.PRNGKey(seed)
    bs = int(min(n, batch_size))

    def make_batch(b, count):
        x = np.asarray(model.sample(count, key=jax.random.fold_in(key, b), **options), dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise E.DivergenceError(f"{model.kind} sampling produced NaN/inf in batch {b}; "
                                    "try more sampling steps or a smaller step size")
        return x

    if out is None:
        return np.concatenate([make_batch(b, min(bs, n - b * bs)) for b in range(-(-n // bs))])
    training = getattr(model, "training", {}) or {}
    shape = tuple(training.get("shape") or model.field_shape)
    meta = FieldsMeta(field=training.get("field", "custom"), generator=f"phigen.models:{model.kind}",
                      shape=shape, n_total=int(n), seed=seed, batch_size=bs,
                      params=training.get("params", {}),
                      config={"model_kind": model.kind, "model_file": model_path, "sample_options": options,
                              "n_params": int(model.n_params), "trained_on": training.get("data")})
    return write_ensemble(out, make_batch, meta, resume=resume, overwrite=overwrite, progress=progress,
                          desc=f"{model.kind} samples")
