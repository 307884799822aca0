"""Training fields of a network model: checked, and their mean / std for standardisation."""

from __future__ import annotations

import numpy as np

from .._validation import as_fields
from ..errors import InputError, ParameterError

__all__ = ["training_fields"]


def training_fields(fields, *, multiple: int = 1, what: str = "this model") -> tuple[np.ndarray, float, float]:
    """``(x (N, H, W), mean, std)`` of training ``fields``: at least 2 fields, sides divisible by
    ``multiple`` (a network that pools or up-samples ``log2(multiple)`` times), not constant. ``what``
    names the model and its setting in the error (e.g. ``"a VAE with down=2"``)."""
    x = as_fields(fields, name="training fields")
    if x.shape[0] < 2:
        raise InputError(f"need at least 2 training fields; got {x.shape[0]}")
    if any(s % multiple or s < multiple for s in x.shape[1:]):
        raise ParameterError(f"{what} needs field sides divisible by {multiple}; got {x.shape[1:]}")
    mean, std = float(np.mean(x, dtype=np.float64)), float(np.std(x, dtype=np.float64))
    if not std > 0:
        raise InputError("training fields are constant (zero standard deviation)")
    return x, mean, std
