"""Compare an ensemble of generated fields with the truth, against a calibrated truth-vs-truth null.

Every statistic of :mod:`phigen.stats.registry` is computed once per field; a distance d(a, b)
between two sets of fields is a function of their per-field rows, with every scale pooled from the
two sets being compared (see the registry's docstring for the formulas). Then, with m the set size
(:func:`phigen.splits.half_size` of the truth, at most the number of samples):

- **null**: for each of ``n_splits`` (≥ 20, default 200) random splits r, two disjoint m-subsets
  A_r, B_r of the truth with no group on both sides (:func:`phigen.splits.equal_halves`), and
  ``null_r = d(A_r, B_r)``: the distribution of the distance between two independent sets of m
  truth fields;
- **model**: ``d(S, B_0)`` with S a random m-subset of the samples and B_0 the first split's B:
  the same function on sets of the same size, so under "the model is the truth's law" it is one
  more draw of the null;
- per distance: the model value, the null's mean, std and 95th percentile, the empirical p-value
  ``p = (1 + #{r: null_r ≥ model}) / (1 + n_splits)`` and the verdict ``consistent`` / ``off``
  (p < 0.05). A perfect model is ``off`` on each distance 5 % of the time.

The null costs index draws only (the rows are computed once), and depends on the truth alone:
:func:`null_reference` builds it once, :func:`judge` measures any number of models against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError, ParameterError
from ..splits import as_groups, equal_halves, half_size
from .registry import _FIELD_DEFAULTS, DEFAULT_STATISTICS, Statistic, registered

__all__ = ["compare", "statistics_summary", "null_reference", "judge", "NullReference", "STATISTICS",
           "DISTANCE_DEFINITIONS", "ALPHA", "MIN_SPLITS"]

ALPHA = 0.05        # the verdict's level
MIN_SPLITS = 20     # fewer splits cannot resolve a 95th percentile
CHUNK = 16          # fields per jitted call: one compilation per field shape, bounded memory at 256²
_SPLIT_BLOCK = 25   # null splits evaluated together


from . import _registered  # noqa: E402,F401  (the built-in statistics)

STATISTICS = tuple(DEFAULT_STATISTICS)  # the default statistics (snapshot at import)
# the definitions of every built-in distance: the default set, the field kinds' own (peak counts of
# cosmic-web maps) and the scattering spectra
DISTANCE_DEFINITIONS = {s.name: {d.name: d.definition for d in s.distances} for s in registered(
    list(dict.fromkeys([*DEFAULT_STATISTICS, *_FIELD_DEFAULTS, "scattering_spectra"])))}


def per_field_rows(x, stats: tuple[Statistic, ...], axes: dict) -> dict:
    """``{statistic: {key: (N, ...)}}`` per-field rows of ``x (N, H, W)``.

    Evaluated in blocks of ``CHUNK`` fields, the last one padded with copies of its first field
    (zeros would make logs and standardisations undefined), so every ensemble of a given field
    shape reuses the same compiled functions; padding rows are dropped."""
    n = x.shape[0]
    parts: dict = {s.name: [] for s in stats}
    for start in range(0, n, CHUNK):
        block = np.asarray(x[start:start + CHUNK], dtype=np.float32)
        used = block.shape[0]
        if used < CHUNK:
            block = np.concatenate([block, np.repeat(block[:1], CHUNK - used, axis=0)])
        for s in stats:
            parts[s.name].append({k: np.asarray(v)[:used] for k, v in s.rows(block, axes[s.name]).items()})
    return {name: {k: np.concatenate([p[k] for p in blocks]) for k in blocks[0]} for name, blocks in parts.items()}


def _subset(rows: dict, idx) -> dict:
    return {k: v[idx] for k, v in rows.items()}


def statistics_summary(fields, *, statistics=None) -> dict:
    """All statistics of one ensemble ``(N, H, W)``: for each, its axis (k, thresholds, r, bin
    centres) and the mean and std across fields, as a JSON-serialisable dict of floats and lists."""
    stats = registered(statistics)
    x = np.asarray(as_fields(fields))
    axes = {s.name: s.setup(tuple(x.shape[-2:]), x) for s in stats}
    rows = per_field_rows(x, stats, axes)
    return {s.name: s.summary(rows[s.name], axes[s.name]) for s in stats}


@dataclass
class NullReference:
    """A truth ensemble prepared for judging models: its per-field rows, the null's splits and the
    null distribution of every distance (``null[statistic][distance]``, shape ``(n_splits,)``)."""

    statistics: tuple
    shape: tuple
    axes: dict
    rows: dict
    m: int
    splits: list
    null: dict
    n_truth: int
    groups: np.ndarray | None
    seed: int

    def summary(self) -> dict:
        return {s.name: s.summary(self.rows[s.name], self.axes[s.name]) for s in self.statistics}


def null_reference(truth, *, m: int | None = None, groups=None, n_splits: int = 200, seed: int = 0,
                   statistics=None) -> NullReference:
    """The truth-vs-truth null of every distance (module docstring) for sets of ``m`` fields
    (default: :func:`phigen.splits.half_size` of the truth). ``groups``: one label per truth field;
    a group never lies on both sides of a split (None: every field its own group)."""
    stats = registered(statistics)
    n_splits = check_int_at_least(n_splits, "n_splits", MIN_SPLITS)
    xt = np.asarray(as_fields(truth, name="truth"))
    n_t = xt.shape[0]
    g = as_groups(groups, n_t)
    top = half_size(n_t, g)
    if top < 2:
        raise InputError(f"the truth needs two disjoint sets of at least 2 fields for the null; {n_t} fields"
                         + ("" if g is None else f" in {np.unique(g).size} groups") + " give sets of " + str(top))
    m = top if m is None else check_int_at_least(m, "m", 2)
    if m > top:
        raise ParameterError(f"sets of {m} fields need more truth: {n_t} fields"
                             + ("" if g is None else f" in {np.unique(g).size} groups") + f" allow at most {top}")
    shape = tuple(xt.shape[-2:])
    axes = {s.name: s.setup(shape, xt) for s in stats}
    rows = per_field_rows(xt, stats, axes)
    rng = np.random.default_rng([seed, 0])
    splits = [equal_halves(rng, n_t, m, g) for _ in range(n_splits)]
    null = {s.name: {d.name: [] for d in s.distances} for s in stats}
    for start in range(0, n_splits, _SPLIT_BLOCK):  # blocks bound the memory of (R, m, ...) rows
        a_idx = np.stack([a for a, _ in splits[start:start + _SPLIT_BLOCK]])
        b_idx = np.stack([b for _, b in splits[start:start + _SPLIT_BLOCK]])
        for s in stats:
            ra, rb = _subset(rows[s.name], a_idx), _subset(rows[s.name], b_idx)
            for d in s.distances:
                null[s.name][d.name].append(np.asarray(d.fn(ra, rb, axes[s.name]), dtype=np.float64))
    null = {s: {d: np.concatenate(v) for d, v in block.items()} for s, block in null.items()}
    return NullReference(stats, shape, axes, rows, m, splits, null, n_t, g, seed)


def _verdict(model: float, null: np.ndarray) -> dict:
    null = np.asarray(null, dtype=np.float64)
    fin = null[np.isfinite(null)]
    out = {"null_mean": float(fin.mean()) if fin.size else float("nan"),
           "null_std": float(fin.std(ddof=1)) if fin.size > 1 else float("nan"),
           "null_p95": float(np.quantile(fin, 1 - ALPHA)) if fin.size else float("nan")}
    if np.isnan(model) or not fin.size:
        return {**out, "p_value": float("nan"), "verdict": "n/a"}
    p = (1.0 + np.count_nonzero(null >= model)) / (1.0 + null.size)
    return {**out, "p_value": float(p), "verdict": "off" if p < ALPHA else "consistent"}


def judge(samples, ref: NullReference, *, seed: int | None = None) -> dict:
    """Distances of ``samples (N, H, W)`` to the truth of ``ref`` with their null and verdicts.

    Returns ``{"meta", "verdict": {"n_distances", "n_off", "off", "expected_off"}, <statistic>:
    {"samples": summary, "truth": summary, "distances": {name: {"label", "model", "null_mean",
    "null_std", "null_p95", "p_value", "verdict", "floor", "floor_std"}}}}``; ``floor`` and
    ``floor_std`` repeat the null's mean and std under their pre-0.2 names (kept for one release).
    """
    xs = np.asarray(as_fields(samples, name="samples"))
    if tuple(xs.shape[-2:]) != ref.shape:
        raise InputError(f"samples and truth must have the same field shape; got {xs.shape[-2:]} and {ref.shape}")
    n_s = xs.shape[0]
    if n_s < ref.m:
        raise InputError(f"the null was built for sets of {ref.m} fields; got only {n_s} samples")
    seed = ref.seed if seed is None else seed
    s_rows = per_field_rows(xs, ref.statistics, ref.axes)
    s_idx = np.sort(np.random.default_rng([seed, 1]).choice(n_s, size=ref.m, replace=False))
    b_idx = ref.splits[0][1]
    result: dict = {"meta": {"n_samples": n_s, "n_truth": ref.n_truth, "m": ref.m, "n_splits": len(ref.splits),
                             "seed": seed, "alpha": ALPHA,
                             "groups": None if ref.groups is None else int(np.unique(ref.groups).size)}}
    off, n_dist = [], 0
    for s in ref.statistics:
        dists = {}
        for d in s.distances:
            model = float(d.fn(_subset(s_rows[s.name], s_idx[None]), _subset(ref.rows[s.name], b_idx[None]),
                               ref.axes[s.name])[0])
            v = _verdict(model, ref.null[s.name][d.name])
            dists[d.name] = {"label": d.label, "model": float(model), **v, "floor": v["null_mean"],
                             "floor_std": v["null_std"]}
            n_dist += v["verdict"] != "n/a"
            if v["verdict"] == "off":
                off.append(d.label)
        result[s.name] = {"samples": s.summary(s_rows[s.name], ref.axes[s.name]),
                          "truth": s.summary(ref.rows[s.name], ref.axes[s.name]), "distances": dists}
    result["verdict"] = {"n_distances": n_dist, "n_off": len(off), "off": off, "expected_off": ALPHA * n_dist}
    return result


def null_values(ref: NullReference) -> dict:
    """``{label: null values}`` of every distance (for plots)."""
    return {d.label: ref.null[s.name][d.name] for s in ref.statistics for d in s.distances}


def compare(samples, truth, *, seed: int = 0, n_splits: int = 200, statistics=None, truth_groups=None) -> dict:
    """Statistics of ``samples`` and ``truth`` (both ``(N, H, W)``, same H, W) and every distance with
    its truth-vs-truth null, p-value and verdict (module docstring; returns :func:`judge`'s dict).

    ``truth_groups``: a group label per truth field (simulation, run, chain) so the null's halves keep
    groups whole; without it every field is its own group. The sets have m = min(number of samples,
    :func:`phigen.splits.half_size` of the truth) fields.
    """
    xs = as_fields(samples, name="samples")
    xt = as_fields(truth, name="truth")
    if tuple(xs.shape[-2:]) != tuple(xt.shape[-2:]):
        raise InputError(f"samples and truth must have the same field shape; got {xs.shape[-2:]} "
                         f"and {xt.shape[-2:]}")
    g = as_groups(truth_groups, xt.shape[0])
    top = half_size(xt.shape[0], g)
    if top < 2:
        raise InputError(f"truth needs at least 4 fields (2 per side of the null) after keeping groups whole; "
                         f"got {xt.shape[0]} fields" + ("" if g is None else f" in {np.unique(g).size} groups"))
    m = min(int(xs.shape[0]), top)
    if m < 2:
        raise InputError(f"need at least 2 samples; got {xs.shape[0]}")
    ref = null_reference(xt, m=m, groups=g, n_splits=n_splits, seed=seed, statistics=statistics)
    out = judge(xs, ref, seed=seed)
    out["null"] = {f"{s.name}.{d.name}": ref.null[s.name][d.name].tolist() for s in ref.statistics for d in s.distances}
    return out
