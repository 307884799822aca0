"""The statistics registry: one object per statistic, iterated over by every comparison.

A :class:`Statistic` says, in one place, how to compute its **per-field rows** from a block of
fields (computed once per ensemble), how to **summarise** an ensemble from its rows (the report and
``metrics.json``), which **distances** between two sets of fields it defines (each a function of
the two sets' rows alone, so the null distribution costs nothing but index draws), how to **draw**
its figures, and which distances are **columns** of the report table.
:func:`phigen.stats.compare`, :func:`phigen.compare.compare_models`, the reports and the plots all
iterate over :func:`registered`; adding a statistic is one :func:`register` call.

Distances compare two sets a, b of sizes m_a, m_b. Every scale a distance divides by is **pooled
from the two sets being compared** (never estimated from a third set, never from one side only),
so the model's distance d(S, B) and the null d(A, B) are the same function on sets of the same size:

- ``chi2`` (a χ² per degree of freedom): ``mean_i t_i²``, ``t_i = (ā_i − b̄_i) / (s_i √(1/m_a + 1/m_b))``
  with ``s_i² = ((m_a−1)var_a,i + (m_b−1)var_b,i) / (m_a+m_b−2)`` the pooled within-set variance
  of component i (components with s_i = 0 are skipped). For the power spectrum the difference is of
  log-means, ``log(P̄_a/P̄_b)``, and s_i is the pooled relative spread ``s_i / mean_i(a ∪ b)``.
  It is ≈ 1 for two independent sets of the same law and grows as m·bias²/s² for a biased one.
- ``log_rms`` (power spectrum): ``sqrt(mean_k log²(P̄_a(k)/P̄_b(k)))`` over the bins where
  set b has power (P̄_b > 10⁻¹⁰ max P̄_b): the distance a physicist reads off a log-log plot.
- ``corr_rms`` (power spectrum): the RMS over k < k' of ``r_a(k, k') − r_b(k, k')``, r the
  correlation matrix across fields of the per-field P(k): the ensemble covariance check.
- ``w1``, ``ks`` (pixel PDF): Wasserstein-1 and Kolmogorov–Smirnov distances of the pooled pixel
  values, through per-field CDFs on a fixed grid of 1025 quantiles of the truth (plus the exact
  tail mass beyond the truth's range, so a model with values outside it is not under-counted);
  W₁ is divided by the pooled pixel std of a ∪ b.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..errors import ParameterError

__all__ = ["Distance", "Statistic", "register", "registered", "get_statistic", "DEFAULT_STATISTICS",
           "default_statistics", "pooled_chi2", "log_rms", "corr_rms"]

Rows = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Distance:
    """One distance between two sets of fields, batched over R pairs of sets:
    ``fn(rows_a, rows_b, axes) -> (R,)`` with every row array of shape ``(R, m, ...)``.

    ``name`` is its key in ``metrics.json`` (``distances[name]``), ``label`` what the report and
    the plots call it, ``definition`` the formula in words, ``table`` whether the report's main
    table shows it as a column.
    """

    name: str
    label: str
    definition: str
    fn: Callable[[Rows, Rows, Mapping], np.ndarray]
    table: bool = False


@dataclass(frozen=True)
class Statistic:
    """One statistic: per-field rows, summary, distances, figure.

    - ``setup(shape, truth) -> axes``: everything fixed for one comparison (wavenumber bins, the
      pixel grid, an operator), computed from the field shape and the reference ensemble
      ``truth (N, H, W)`` (or the single ensemble being summarised).
    - ``rows(block, axes) -> {key: (C, ...)}``: float64 rows of a block of C fields.
    - ``summary(rows, axes) -> dict``: JSON-able summary of one ensemble (its axis, mean, std ...).
    - ``distances``: the :class:`Distance` objects.
    - ``figures``: ``((name, draw), ...)``, ``draw(groups, truth) -> matplotlib Figure`` for
      ensembles ``groups = {label: (N, H, W)}`` and the label of the reference group (or None);
      :func:`phigen.report.write_figures` saves each as ``<name>.png``.
    - ``fields``: the field kinds (``FieldDataset.field``: ``"cosmic-web"``, ``"turbulence"`` ...)
      whose default set includes it; None: every kind (:func:`default_statistics`).
    """

    name: str
    label: str
    setup: Callable[[tuple, np.ndarray], dict]
    rows: Callable[[np.ndarray, Mapping], dict]
    summary: Callable[[Rows, Mapping], dict]
    distances: tuple[Distance, ...] = field(default_factory=tuple)
    figures: tuple[tuple[str, Callable], ...] = field(default_factory=tuple)
    fields: tuple[str, ...] | None = None


_REGISTRY: dict[str, Statistic] = {}


def _field_kind(kind: str) -> str:
    return str(kind).replace("_", "-")  # "cosmic_web" and "cosmic-web" name the same kind


def register(stat: Statistic, *, default: bool = True) -> Statistic:
    """Add ``stat`` to the registry (replacing one of the same name); ``default``: part of the
    statistics computed when a caller names none — for every field kind (:data:`DEFAULT_STATISTICS`)
    when ``stat.fields`` is None, else only for those kinds (:func:`default_statistics`)."""
    if not isinstance(stat, Statistic):
        raise ParameterError(f"register takes a Statistic; got {type(stat).__name__}")
    names = [d.name for d in stat.distances]
    if len(set(names)) != len(names):
        raise ParameterError(f"statistic {stat.name!r} lists a distance twice: {names}")
    if stat.fields is not None and (isinstance(stat.fields, str) or not stat.fields):
        raise ParameterError(f"statistic {stat.name!r}: fields must be a non-empty tuple of field kinds or None")
    _REGISTRY[stat.name] = stat
    everywhere = default and stat.fields is None
    if everywhere and stat.name not in DEFAULT_STATISTICS:
        DEFAULT_STATISTICS.append(stat.name)
    elif not everywhere and stat.name in DEFAULT_STATISTICS:
        DEFAULT_STATISTICS.remove(stat.name)
    if default and stat.fields is not None:
        _FIELD_DEFAULTS[stat.name] = tuple(_field_kind(f) for f in stat.fields)
    else:
        _FIELD_DEFAULTS.pop(stat.name, None)
    return stat


DEFAULT_STATISTICS: list[str] = []          # the default set of every field kind
_FIELD_DEFAULTS: dict[str, tuple[str, ...]] = {}  # statistic -> the field kinds whose default set adds it


def default_statistics(field: str | None = None) -> tuple[str, ...]:
    """Names of the statistics computed by default for fields of kind ``field``: the
    :data:`DEFAULT_STATISTICS`, then those registered for that kind only (e.g. peak counts for
    ``"cosmic-web"``; ``"cosmic_web"`` is the same kind). ``field=None``: the former alone."""
    from . import _registered  # noqa: F401  (registers the built-in statistics on first use)

    extra = [] if field is None else [n for n, kinds in _FIELD_DEFAULTS.items() if _field_kind(field) in kinds]
    return tuple(DEFAULT_STATISTICS) + tuple(n for n in extra if n not in DEFAULT_STATISTICS)


def registered(names=None) -> tuple[Statistic, ...]:
    """The registered statistics named in ``names`` (default: :data:`DEFAULT_STATISTICS`), in order."""
    from . import _registered  # noqa: F401  (registers the built-in statistics on first use)

    names = list(DEFAULT_STATISTICS) if names is None else [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise ParameterError(f"unknown statistics {unknown}; choose from {sorted(_REGISTRY)}")
    return tuple(_REGISTRY[n] for n in names)


def get_statistic(name: str) -> Statistic:
    return registered([name])[0]


# -- distance building blocks ------------------------------------------------------------------
# Every distance is batched: rows of shape (R, m, ...) for R pairs of sets at once (the null's
# splits, or R = 1 for a model), returning (R,). Means and variances are taken over axis 1.

def _flat(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows.reshape(rows.shape[0], rows.shape[1], -1)


def _masked_mean(values: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Mean over axis 1 of ``values`` where ``use``; 0 where a row uses nothing."""
    count = use.sum(axis=1)
    total = np.where(use, values, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def pooled_chi2(a: np.ndarray, b: np.ndarray, *, log: bool = False) -> np.ndarray:
    """χ² per component of the difference of two sets' means with the pooled within-set variance
    (module docstring). ``a (R, m_a, ...)``, ``b (R, m_b, ...)`` per-field rows -> ``(R,)``.
    ``log``: compare log-means, scaled by the pooled relative spread (positive statistics, P(k))."""
    a, b = _flat(a), _flat(b)
    na, nb = a.shape[1], b.shape[1]
    ma, mb = a.mean(axis=1), b.mean(axis=1)
    # pooled within-set variance: Σ over both sets of (x − own set mean)², over m_a + m_b − 2
    var = (a.var(axis=1) * na + b.var(axis=1) * nb) / max(na + nb - 2, 1)
    pooled_mean = (na * ma + nb * mb) / (na + nb)
    if log:
        ok = (ma > 0) & (mb > 0)
        diff = np.log(np.where(ok, ma, 1.0) / np.where(ok, mb, 1.0))
        var = np.where(ok, var / np.where(ok, pooled_mean, 1.0) ** 2, 0.0)
        floor = 1e-12
        # a set with no power where the other has some is infinitely far on a log scale
        infinite = np.any((ma > 0) != (mb > 0), axis=1)
    else:
        diff = ma - mb
        floor = (1e-6 * np.abs(pooled_mean)) ** 2  # below float32 round-off of the rows: no spread
        infinite = np.zeros(a.shape[0], bool)
    use = np.isfinite(var) & (var > floor) & (var > 0)
    t2 = diff ** 2 / np.where(use, var, 1.0) / (1.0 / na + 1.0 / nb)
    return np.where(infinite, np.inf, _masked_mean(t2, use))


POWER_FLOOR = 1e-10  # bins with less than this fraction of the truth's largest mean power are "no power"


def _has_power(pb: np.ndarray) -> np.ndarray:
    top = np.max(pb, axis=1, keepdims=True)
    return (pb > POWER_FLOOR * top) & (top > 0)


def log_rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS over k of log(P̄_a(k)/P̄_b(k)) on the bins where ``b`` has power -> ``(R,)``."""
    pa, pb = _flat(a).mean(axis=1), _flat(b).mean(axis=1)
    use = _has_power(pb)
    tiny = POWER_FLOOR * np.max(pb, axis=1, keepdims=True)
    logs = np.log(np.maximum(pa, tiny) / np.where(use, pb, 1.0))
    return np.sqrt(_masked_mean(logs ** 2, use))


def _corr(x: np.ndarray) -> np.ndarray:
    """Correlation matrices ``(R, C, C)`` of rows ``(R, m, C)`` (components without spread: 0)."""
    x = x - x.mean(axis=1, keepdims=True)
    cov = np.einsum("rmi,rmj->rij", x, x)
    s = np.sqrt(np.einsum("rii->ri", cov))
    denom = s[:, :, None] * s[:, None, :]
    return np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)


def corr_rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS over k < k' of the difference of the two sets' correlation matrices of the per-field
    P(k), on the bins where both sets vary and ``b`` has power -> ``(R,)`` (NaN for sets of < 3)."""
    a, b = _flat(a), _flat(b)
    if a.shape[1] < 3 or b.shape[1] < 3:
        return np.full(a.shape[0], np.nan)
    use = _has_power(b.mean(axis=1)) & (a.std(axis=1) > 0) & (b.std(axis=1) > 0)
    pair = use[:, :, None] & use[:, None, :] & np.triu(np.ones(use.shape[1:] * 2, bool), k=1)[None]
    d2 = (_corr(a) - _corr(b)) ** 2
    r = a.shape[0]
    return np.sqrt(_masked_mean(d2.reshape(r, -1), pair.reshape(r, -1)))
