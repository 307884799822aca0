"""Mean ± standard error of per-field values, as the reports write them."""

from __future__ import annotations

import math

import numpy as np


def mean_se(values) -> dict:
    """``{"value": mean, "error": std/√n}`` of the finite entries of ``values`` (NaN when none; error 0
    for one)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"value": float("nan"), "error": float("nan")}
    return {"value": float(v.mean()), "error": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0}
