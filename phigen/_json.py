"""Private: JSON text for attributes of phigen files (numpy scalars/arrays and paths allowed)."""

from __future__ import annotations

import json
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
