"""Group-aware splits: every train/held-out split and every half of a null keeps a group whole.

Fields of one group (the maps of one N-body simulation, the snapshots of one turbulence run, the
configurations of one MCMC chain) are correlated, so a split that puts a group on both sides leaks
its shared large-scale modes across the split. Here a *group* is an integer label per field
(``groups[i]``); ``None`` means every field is its own group (independent fields) and reproduces the
field-level splits of earlier phigen versions exactly.

- :func:`split_indices`: the deterministic train/test split of ``n`` fields (``FieldDataset.split``,
  ``fit --test-fraction``, ``compare``): whole groups, in a seeded random order, go to the test side
  until it holds ``round(test_fraction · n)`` fields or the nearest whole-group count to it.
- :func:`equal_halves`: two disjoint sets of exactly ``m`` fields each with no group on both sides,
  the halves of the truth-vs-truth null (:func:`phigen.stats.compare`); :func:`half_size` is the
  ``m`` that every draw can reach.
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

__all__ = ["as_groups", "split_indices", "equal_halves", "half_size", "groups_on_both_sides", "group_members"]


def as_groups(groups, n: int) -> np.ndarray | None:
    """``groups`` as an int64 array of length ``n`` (or ``None``), checked."""
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ParameterError(f"groups must have one label per field, shape ({n},); got {g.shape}")
    if g.dtype.kind not in "iuf":
        raise ParameterError(f"group labels must be integers; got dtype {g.dtype}")
    if g.size and not np.issubdtype(g.dtype, np.integer):
        if not np.all(np.isfinite(g)) or not np.all(g == np.round(g)):
            raise ParameterError("group labels must be integers")
    return g.astype(np.int64)


def group_members(g: np.ndarray) -> list[np.ndarray]:
    """Index arrays of each distinct group, in order of the label."""
    labels, inverse = np.unique(g, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=labels.size))[:-1]
    return np.split(order, bounds)


def split_indices(n: int, test_fraction: float, *, seed: int = 0, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, test) index arrays (sorted) of ``n`` fields; no group on both sides.

    Without groups: a seeded permutation, the first ``round(test_fraction·n)`` fields to test (the
    field-level split of earlier versions). With groups: the groups in a seeded random order go to
    the test side one by one while that brings its size closer to ``round(test_fraction·n)``; the
    test side always gets at least one group and the training side keeps at least one.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ParameterError(f"test_fraction must be in (0, 1); got {test_fraction}")
    n = int(n)
    n_test = int(round(test_fraction * n))
    g = as_groups(groups, n)
    rng = np.random.default_rng(seed)
    if g is None:
        if n_test < 1 or n_test >= n:
            raise ParameterError(f"cannot split {n} samples with test_fraction={test_fraction}")
        perm = rng.permutation(n)
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    members = group_members(g)
    if len(members) < 2:
        raise ParameterError(f"cannot split {n} samples of a single group with test_fraction={test_fraction}: "
                             "a group never goes to both sides")
    test: list[np.ndarray] = []
    size = 0
    for i in rng.permutation(len(members)):
        if len(test) == len(members) - 1:
            break
        grow = size + members[i].size
        if not test or abs(grow - n_test) < abs(size - n_test):
            test.append(members[i])
            size = grow
        if size >= n_test:
            break
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(n, bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def half_size(n: int, groups=None) -> int:
    """The largest ``m`` such that :func:`equal_halves` always finds two disjoint ``m``-sets of
    whole-group-separated fields: ``floor((n − g_max + 1) / 2)`` with ``g_max`` the largest group
    (``floor(n/2)`` without groups)."""
    g = as_groups(groups, n)
    g_max = 1 if g is None or n == 0 else int(np.bincount(np.unique(g, return_inverse=True)[1]).max())
    return max(0, (int(n) - g_max + 1) // 2)


def equal_halves(rng: np.random.Generator, n: int, m: int, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sorted index arrays of exactly ``m`` fields each, no group on both sides.

    Groups in random order fill side A until it holds ≥ m fields; the rest is side B; each side is
    then cut to a random ``m`` of its fields. ``m`` must be at most :func:`half_size`.
    """
    g = as_groups(groups, n)
    if m < 1 or m > half_size(n, g):
        raise ParameterError(f"cannot draw two disjoint halves of {m} fields from {n} fields"
                             + ("" if g is None else f" in {np.unique(g).size} groups"))
    if g is None:
        perm = rng.permutation(n)
        return np.sort(perm[:m]), np.sort(perm[m:2 * m])
    members = group_members(g)
    a_parts, b_parts, size = [], [], 0
    for i in rng.permutation(len(members)):
        if size < m:
            a_parts.append(members[i])
            size += members[i].size
        else:
            b_parts.append(members[i])
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    return np.sort(rng.choice(a, m, replace=False)), np.sort(rng.choice(b, m, replace=False))


def groups_on_both_sides(groups, a, b) -> np.ndarray:
    """The group labels that occur in both index sets ``a`` and ``b`` (empty when the split is clean)."""
    g = np.asarray(groups)
    return np.intersect1d(g[np.asarray(a, dtype=np.int64)], g[np.asarray(b, dtype=np.int64)])
