"""Conditions of a network model of p(x | c) (conditional diffusion, flow matching, flows).

A conditional network reads the *standardised* conditions ``(c − mean)/std`` (per column, std 1 for
a constant column). The model keeps, in its settings, the names, the mean and std, and the training
range, so that sampling can check a condition and warn when it extrapolates.

- :func:`condition_settings`: the checked ``(N, D)`` training conditions, their standardised values
  and the settings record;
- :func:`standardised_condition`: one condition given at sampling, checked against the settings and
  standardised ``(D,)``;
- :func:`warn_if_extrapolating`: the warning for a condition outside the training range (also used by
  conditional WC-RG, whose energies are polynomials of the condition).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError, ParameterError

__all__ = ["condition_settings", "standardised_condition", "warn_if_extrapolating"]


def condition_settings(conditions, condition_names, n_fields: int):
    """``(z (N, D) float32, settings)`` for training conditions ``(N,)`` or ``(N, D)``, one row per field:
    ``z`` the standardised conditions, ``settings`` ``condition_names``, ``condition_mean``,
    ``condition_std``, ``condition_min``, ``condition_max`` (JSON lists)."""
    c = np.asarray(conditions, np.float64)
    c = c[:, None] if c.ndim == 1 else c
    if c.ndim != 2 or len(c) != n_fields or not np.all(np.isfinite(c)):
        raise InputError(f"conditions must be finite, one row per field ({n_fields}); got shape "
                         f"{np.shape(conditions)}")
    names = list(condition_names) if condition_names is not None else [f"c{i}" for i in range(c.shape[1])]
    if len(names) != c.shape[1]:
        raise ParameterError(f"{len(names)} condition names for {c.shape[1]} condition columns")
    mean, std = c.mean(axis=0), c.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    settings = {"condition_names": names, "condition_mean": mean.tolist(), "condition_std": std.tolist(),
                "condition_min": c.min(axis=0).tolist(), "condition_max": c.max(axis=0).tolist()}
    return ((c - mean) / std).astype(np.float32), settings


def standardised_condition(settings: dict, condition, kind: str):
    """``(D,)`` float32 standardised ``condition`` of a model with these ``settings`` (None for an
    unconditional model, which must get ``condition=None``). A missing, misshapen or non-finite
    condition is a one-line :class:`ParameterError`; one outside the training range warns."""
    names = list(settings.get("condition_names", []) or [])
    if not names:
        if condition is not None:
            raise ParameterError(f"this {kind} model is not conditional (fit it with --condition)")
        return None
    if condition is None:
        raise ParameterError(f"this {kind} model samples at a condition: pass condition= "
                             f"(phigen sample --condition {','.join(nm + '=VALUE' for nm in names)})")
    c = np.asarray(condition, np.float64).reshape(-1)
    if c.size != len(names) or not np.all(np.isfinite(c)):
        raise ParameterError(f"condition must be {len(names)} finite number(s) ({', '.join(names)}); "
                             f"got {condition!r}")
    warn_if_extrapolating(kind, names, c, settings["condition_min"], settings["condition_max"], what="the network",
                          stacklevel=4)
    return ((c - np.asarray(settings["condition_mean"])) / np.asarray(settings["condition_std"])).astype(np.float32)


def warn_if_extrapolating(kind: str, names, condition, lo, hi, *, what: str = "the model", stacklevel: int = 3):
    """Warn (``UserWarning``) when ``condition`` ``(D,)`` lies outside the box ``[lo, hi]`` of the
    training conditions: the model is then used where no training field constrained it."""
    c, lo, hi = (np.asarray(v, np.float64).reshape(-1) for v in (condition, lo, hi))
    if np.any(c < lo) or np.any(c > hi):
        warnings.warn(f"{kind}: condition {dict(zip(names, c.tolist()))} lies outside the training range "
                      f"{dict(zip(names, zip(lo.tolist(), hi.tolist())))}: {what} extrapolates",
                      stacklevel=stacklevel)
