"""Private: JSON for phigen files and reports — the one place numpy values, paths and non-finite
numbers are turned into JSON (:func:`to_json` for file attributes, :func:`json_safe` for strict JSON
reports such as ``metrics.json``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def to_json(obj) -> str:
    """``json.dumps`` with sorted keys that also accepts numpy scalars and arrays and paths."""

    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

    return json.dumps(obj, sort_keys=True, default=default)


def json_safe(obj):
    """Strict-JSON copy: numpy and JAX arrays → Python, named tuples → dicts, paths → str, non-finite
    floats → None (``allow_nan=False`` holds)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple result: keep its names
        return {k: json_safe(v) for k, v in zip(obj._fields, obj)}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if hasattr(obj, "__array__") and hasattr(obj, "shape") and not isinstance(obj, (str, bytes)):
        return json_safe(np.asarray(obj))  # a JAX array
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj
