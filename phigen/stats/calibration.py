"""How often each distance's 5 % verdict says ``off``: false-alarm rate and power, by repetition.

:func:`verdict_rates` repeats a comparison on fresh draws: each repetition r draws a truth ensemble
and a model ensemble from the caller's functions, runs :func:`phigen.stats.compare` and records
every distance's verdict. With a *perfect* model (the model ensemble drawn from the truth's own
generator) the rate of ``off`` is the false-alarm rate, 5 % for a calibrated null; with a biased
model it is the power to detect the bias at those set sizes. The binomial standard error of a rate
q over R repetitions is sqrt(q(1 − q)/R) (1.1 % at q = 5 %, R = 400).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .._validation import check_int_at_least
from .compare import compare

__all__ = ["verdict_rates"]


def verdict_rates(make_truth: Callable[[int], np.ndarray], make_samples: Callable[[int], np.ndarray], *,
                  reps: int = 200, n_splits: int = 200, statistics=None, truth_groups=None,
                  progress: bool | None = None) -> dict:
    """Rate of ``off`` verdicts per distance over ``reps`` repetitions.

    ``make_truth(r)`` and ``make_samples(r)`` return the truth ``(N_t, H, W)`` and model
    ``(N_s, H, W)`` ensembles of repetition r (fresh, independent draws); ``truth_groups``: group
    labels of the truth fields (the same every repetition). Returns ``{"reps", "rates": {"stat.distance":
    rate}, "stderr": {...}, "any_off": rate of at least one distance off, "m": set size}``.
    """
    reps = check_int_at_least(reps, "reps", 1)
    counts: dict[str, int] = {}
    seen: dict[str, int] = {}
    any_off, m = 0, None
    it = range(reps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="verdict rates")
    for r in it:
        res = compare(make_samples(r), make_truth(r), seed=r, n_splits=n_splits, statistics=statistics,
                      truth_groups=truth_groups)
        m = res["meta"]["m"]
        any_off += res["verdict"]["n_off"] > 0
        for name, block in res.items():
            if not isinstance(block, dict) or "distances" not in block:
                continue
            for dname, d in block["distances"].items():
                key = f"{name}.{dname}"
                if d["verdict"] == "n/a":
                    continue
                seen[key] = seen.get(key, 0) + 1
                counts[key] = counts.get(key, 0) + (d["verdict"] == "off")
    rates = {k: counts[k] / seen[k] for k in seen}
    return {"reps": reps, "m": m, "rates": rates,
            "stderr": {k: math.sqrt(max(q * (1 - q), 1e-12) / seen[k]) for k, q in rates.items()},
            "any_off": any_off / reps}
