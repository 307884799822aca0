"""``phigen.fit`` / ``phigen.sample``: the Python twins of ``phigen fit`` and ``phigen sample``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors as E
from ..io import FieldsMeta, open_fields, write_ensemble
from ._base import available_models, get_model_class, load_model, model_options
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


def load_training_fields(data, *, test_fraction: float = 0.0, split_seed: int = 0, max_fields: int | None = None,
                         condition=None):
    """Fields ``(N, H, W)`` to fit on and a provenance record.

    ``condition``: names of the file's ``conditions`` columns (``"kappa"``, ``"omega_m,sigma8"`` or a
    list) to return with the fields, as ``record["conditions"]`` ``(N, D)`` float64 and
    ``record["condition_names"]``.
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
            if condition is not None:
                names = condition_names(condition)
                have = list(ds.condition_names or [])
                missing = [n for n in names if n not in have]
                if missing:
                    raise E.ParameterError(f"{ds.path} has no condition {', '.join(missing)}; its conditions: "
                                           f"{', '.join(have) or 'none'}", path=ds.path)
                cond = np.asarray(ds.conditions(), np.float64)[idx]
                record.update(conditions=cond[:, [have.index(n) for n in names]], condition_names=names)
    elif condition is not None:
        raise E.ParameterError("conditions are read from a phigen file's 'conditions' by name; pass a file")
    else:
        x = np.asarray(data, dtype=np.float32)
        if max_fields is not None:
            x = x[: int(max_fields)]
        _check_fields(x)
        record = {"data": "<array>", "field": "custom", "params": {}, "n_train": int(len(x)),
                  "provenance": training_provenance(x, max_fields=max_fields)}
    return x, record


def _model_wavelet(model) -> str | None:
    """The wavelet of a wavelet-factorised model (WC-RG, WSGM, conditional WC-RG), else None."""
    for path in (("factorisation",), ("factor",), ("base", "factorisation")):
        obj = model
        for name in path:
            obj = getattr(obj, name, None)
        if obj is not None and getattr(obj, "wavelet", None):
            return str(obj.wavelet)
    return None


def condition_names(condition) -> list[str]:
    """``"kappa"`` / ``"omega_m,sigma8"`` / a list → the condition names, in order."""
    names = [n.strip() for n in condition.split(",")] if isinstance(condition, str) else [str(n) for n in condition]
    names = [n for n in names if n]
    if not names or len(set(names)) != len(names):
        raise E.ParameterError(f"condition must name one or more distinct conditions; got {condition!r}")
    return names


def condition_values(model, condition) -> np.ndarray:
    """A conditional model's condition as its ``(D,)`` values, in ``model.condition_names`` order:
    ``{"kappa": 0.33}``, ``"kappa=0.33"``, ``"omega_m=0.3,sigma8=0.8"``, or the values themselves."""
    names = list(getattr(model, "condition_names", []))
    if isinstance(condition, str):
        try:
            condition = {k.strip(): float(v) for k, v in (item.split("=", 1) for item in condition.split(","))}
        except ValueError:
            raise E.ParameterError(f"condition must be NAME=VALUE[,NAME=VALUE]; got {condition!r}") from None
    if isinstance(condition, dict):
        if sorted(condition) != sorted(names):
            raise E.ParameterError(f"this model is conditioned on {', '.join(names)}; got {', '.join(condition)}")
        return np.asarray([float(condition[n]) for n in names])
    return np.atleast_1d(np.asarray(condition, np.float64))


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
    condition = options.pop("condition", None)
    _check_options(cls, "fit", options, f"fit {kind}")
    if condition is not None and "conditions" not in (model_options(cls, "fit") or ()):
        raise E.ParameterError(f"{kind} is not a conditional model (conditional: "
                               f"{', '.join(k for k in available_models() if 'conditions' in (model_options(get_model_class(k), 'fit') or ()))})")
    x, record = load_training_fields(data, test_fraction=test_fraction, split_seed=split_seed,
                                     max_fields=max_fields, condition=condition)
    if condition is not None:
        options = {**options, "conditions": record.pop("conditions"), "condition_names": record["condition_names"]}
    t0 = time.perf_counter()
    model = cls.fit(x, key=jax.random.PRNGKey(seed), progress=progress, **options)
    options = {k: v for k, v in options.items() if k != "conditions"}  # the record keeps names, not the values
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
    coarse, coarse_record = None, None
    if options.get("from_coarse") is not None:  # super-resolution: each batch starts at its coarse fields
        allowed = model_options(model, "sample")
        if allowed is not None and "from_coarse" not in allowed:
            raise E.ParameterError(f"{model.kind} cannot start from coarse fields; super-resolution needs a "
                                   "wavelet-factorised model (wcrg, wsgm, wcrg-conditional)")
        from ..rg.superres import read_coarse

        coarse, coarse_record = read_coarse(options.pop("from_coarse"), wavelet=_model_wavelet(model))
        if n > len(coarse):
            raise E.ParameterError(f"n = {n} samples from {len(coarse)} coarse fields: one sample per coarse field "
                                   f"(n ≤ {len(coarse)})")
    _check_options(model, "sample", options, f"sample {model.kind}")
    cond = None
    if options.get("condition") is not None:  # a conditional model: the values, recorded per sample
        cond = condition_values(model, options["condition"])
        options = {**options, "condition": cond}
    key = jax.random.PRNGKey(seed)
    bs = int(min(n, batch_size))
    coarse_groups = None if coarse_record is None else coarse_record.get("groups")

    def make_batch(b, count):
        extra = {} if coarse is None else {"from_coarse": coarse[b * bs:b * bs + count]}
        x = np.asarray(model.sample(count, key=jax.random.fold_in(key, b), **options, **extra), dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise E.DivergenceError(f"{model.kind} sampling produced NaN/inf in batch {b}; "
                                    "try more sampling steps or a smaller step size")
        groups = None
        if out is not None and coarse_groups is not None:  # a super-resolved field keeps its coarse field's group
            groups = coarse_groups[b * bs:b * bs + count]
        if out is not None and (cond is not None or groups is not None):
            c = None if cond is None else np.broadcast_to(cond.astype(np.float32), (count, cond.size))
            return x, c, groups
        return x

    if out is None:
        return np.concatenate([make_batch(b, min(bs, n - b * bs)) for b in range(-(-n // bs))])
    training = getattr(model, "training", {}) or {}
    shape = tuple(options.get("shape") or training.get("shape") or model.field_shape)
    params = dict(training.get("params", {}))
    names = list(getattr(model, "condition_names", []) or [])
    recorded = dict(options)
    if coarse_record is not None:
        recorded.update(from_coarse=coarse_record["from_coarse"], coarse_levels=coarse_record.get("coarse_levels"))
    if cond is not None:  # the samples' own parameter values (e.g. one κ of a training grid)
        params.update({nm: float(v) for nm, v in zip(names, cond)})
        recorded["condition"] = cond.tolist()
    meta = FieldsMeta(field=training.get("field", "custom"), generator=f"phigen.models:{model.kind}",
                      shape=shape, n_total=int(n), seed=seed, batch_size=bs, params=params,
                      condition_names=names if cond is not None else None,
                      group_kind=(coarse_record or {}).get("group_kind") if coarse_groups is not None else None,
                      config={"model_kind": model.kind, "model_file": model_path, "sample_options": recorded,
                              "n_params": int(model.n_params), "trained_on": training.get("data")})
    return write_ensemble(out, make_batch, meta, resume=resume, overwrite=overwrite, progress=progress,
                          desc=f"{model.kind} samples")
