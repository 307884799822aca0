"""Figures for validating synthetic fields: sample grids, spectra, PDFs, Minkowski functionals...

Every function takes plain numpy or JAX arrays (the statistics are computed in :mod:`phigen.stats`),
draws into ``ax=`` when given (else makes a new figure) and returns the matplotlib ``Figure``;
:func:`save_figure` writes it to disk and closes it.

Conventions shared by the curve plots: ``curves`` map a legend label to an array of shape ``(n,)``
or ``(N, n)`` sampled at the ``n`` points of the x axis; an ``(N, n)`` array (one curve per field)
is drawn as its mean over the ``N`` fields. The ``truth`` is drawn first, in thick black, with a
shaded ±1σ band (standard deviation across its fields, i.e. the field-to-field spread, not the
standard error of the mean). :func:`plot_minkowski` and :func:`plot_series` shade a ±1σ band for
every two-dimensional curve. NaN values are allowed (they leave gaps); ±inf raises ``InputError``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._validation import as_fields, check_int_at_least
from .errors import InputError, ParameterError

__all__ = [
    "plot_fields",
    "plot_field_grids",
    "plot_power_spectra",
    "plot_pdfs",
    "plot_minkowski",
    "plot_bispectrum",
    "plot_structure_functions",
    "plot_series",
    "save_figure",
]

_TRUTH_STYLE = dict(color="k", linewidth=2.2, zorder=3)
_BAND_ALPHA = 0.22
_PANEL_INCHES = 2.3


# --- figure plumbing -----------------------------------------------------------------------------
def _pyplot():
    """Import pyplot, choosing Agg only when nobody chose a backend and there is no display.

    Deciding here (not at import time) leaves a user's later ``matplotlib.use(...)`` in charge.
    """
    import matplotlib

    try:
        unset = matplotlib.rcParams._get_backend_or_none() is None
    except AttributeError:  # older matplotlib: compare with the auto-backend sentinel
        from matplotlib import rcsetup

        unset = dict.__getitem__(matplotlib.rcParams, "backend") is rcsetup._auto_backend_sentinel
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if unset and headless:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _root_figure(ax):
    try:
        return ax.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10 has no subfigure/root distinction here
        return ax.figure


def _new_axes(nrows: int, ncols: int, *, width: float, height: float):
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    return fig, axes


def _axes_list(ax, n: int, what: str) -> list:
    axes = list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) < n:
        raise ParameterError(f"{what} needs {n} axes; ax= gave {len(axes)}")
    return axes


def _finish(ax, *, xlabel=None, ylabel=None, legend=True):
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", frameon=False)


def save_figure(fig, path, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (PNG unless the suffix says .pdf/.svg), creating parent folders;
    tight bounding box; the figure is closed afterwards. Returns the path written."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in ("png", "pdf", "svg"):
        raise ParameterError(f"save_figure writes .png, .pdf or .svg files; got {str(path)!r}")
    if not path.suffix:
        path = path.with_suffix(".png")
    fig = _root_figure(fig) if hasattr(fig, "get_figure") else fig
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    return path


# --- input checks --------------------------------------------------------------------------------
def _as_float(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a real numeric array ({exc})") from None
    if np.isinf(a).any():
        raise InputError(f"{name} contains inf values")
    return a


def _as_axis(x, name: str) -> np.ndarray:
    a = _as_float(x, name)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"{name} must be a non-empty 1-D array; got shape {a.shape}")
    if np.isnan(a).any():
        raise InputError(f"{name} contains NaN values")
    return a


def _as_curve(y, n: int, name: str) -> np.ndarray:
    """``(n,)`` or ``(N, n)`` → ``(N, n)``, checking the length against the x axis."""
    a = _as_float(y, name)
    if a.ndim not in (1, 2):
        raise InputError(f"{name} must have shape (n,) or (N, n); got shape {a.shape}")
    if a.shape[-1] != n:
        raise InputError(f"{name} has {a.shape[-1]} points along its last axis but the x axis has {n}")
    if a.shape[0] == 0:
        raise InputError(f"{name} holds no curves (shape {a.shape})")
    return a.reshape(-1, n)


def _as_mapping(m, name: str) -> Mapping:
    if m is None:
        return {}
    if not isinstance(m, Mapping):
        raise InputError(f"{name} must be a mapping label -> array; got {type(m).__name__}")
    return m


def _check_something(curves: Mapping, truth) -> None:
    if not curves and truth is None:
        raise InputError("nothing to plot: give at least one curve or a truth")


# --- curves --------------------------------------------------------------------------------------
def _bands(ax, x, y, *, label, band: bool, yerr=None, **style):
    """Draw the mean over fields of ``y (N, n)`` (with error bars ``yerr`` if given) and, when
    ``band`` and N > 1, a shaded ±1σ band (std across the N fields)."""
    mean = y.mean(axis=0)
    if yerr is None:
        (line,) = ax.plot(x, mean, label=label, **style)
    else:
        line = ax.errorbar(x, mean, yerr=yerr, label=label, capsize=2, **style).lines[0]
    if band and y.shape[0] > 1:
        sd = y.std(axis=0, ddof=1)
        lower, upper = mean - sd, mean + sd
        if ax.get_yscale() == "log":
            # a polygon with non-positive vertices is mangled on a log axis: stop the band just
            # below the curve's lowest positive point instead (it means "reaches down to 0")
            positive = mean[mean > 0]
            floor = 0.5 * positive.min() if positive.size else np.nan
            lower = np.where(lower > 0, lower, floor)
            upper = np.where(upper > 0, upper, np.nan)
        ax.fill_between(x, lower, upper, color=line.get_color(), alpha=_BAND_ALPHA,
                        linewidth=0, zorder=line.get_zorder() - 1)
    return line


def _draw_curves(ax, x, curves: Mapping, *, truth=None, truth_label="truth", model_bands=False,
                 what="curves"):
    """Truth (banded) first, then each labelled curve in the colour cycle's order."""
    x = _as_axis(x, "x axis")
    if truth is not None:
        _bands(ax, x, _as_curve(truth, x.size, "truth"), label=truth_label, band=True, **_TRUTH_STYLE)
    for i, (label, y) in enumerate(curves.items()):
        _bands(ax, x, _as_curve(y, x.size, f"{what}[{label!r}]"), label=str(label), band=model_bands,
               color=f"C{i}", linewidth=1.5)


def _set_scales(ax, *, logx: bool, logy: bool):
    # "mask" drops non-positive points (k = 0, empty bins) instead of clipping them to a tiny value
    if logx:
        ax.set_xscale("log", nonpositive="mask")
    if logy:
        ax.set_yscale("log", nonpositive="mask")


def _curve_axes(ax):
    if ax is None:
        fig, axes = _new_axes(1, 1, width=5.0, height=3.8)
        return fig, axes[0, 0]
    return _root_figure(ax), ax


def plot_power_spectra(k, spectra: Mapping, *, truth=None, truth_label: str = "truth",
                       loglog: bool = True, reference_slopes=None, xlabel: str = r"$k$",
                       ylabel: str = r"$P(k)$", ax=None):
    """Isotropic power spectra P(k) against wavenumber.

    ``k`` (nk,); each spectrum (nk,) or (N, nk) (drawn as its mean over the N fields); ``truth``
    (N, nk) is drawn as its mean with a ±1σ band. ``reference_slopes`` (a number or a sequence):
    dashed power-law guides ∝ k^s with the exponent s as given (e.g. -3, -5/3), passing a factor 2
    below the truth's mean (else the first spectrum's) at the middle of the k range.
    """
    spectra = _as_mapping(spectra, "spectra")
    _check_something(spectra, truth)
    fig, ax = _curve_axes(ax)
    _set_scales(ax, logx=loglog, logy=loglog)
    _draw_curves(ax, k, spectra, truth=truth, truth_label=truth_label, what="spectra")
    if reference_slopes is not None:
        kk = _as_axis(k, "k")
        ref = truth if truth is not None else next(iter(spectra.values()))
        ref = _as_curve(ref, kk.size, "reference spectrum").mean(axis=0)
        ok = np.flatnonzero((kk > 0) & (ref > 0)) if loglog else np.flatnonzero(np.isfinite(ref))
        if ok.size == 0:
            raise InputError("no positive, finite point to anchor reference_slopes on")
        i0 = ok[ok.size // 2]
        kpos = kk[kk > 0]
        for s in np.atleast_1d(_as_float(reference_slopes, "reference_slopes")).ravel():
            # offset by 1/2 so a guide stays visible next to a curve that follows it exactly
            ax.plot(kpos, 0.5 * ref[i0] * (kpos / kk[i0]) ** s, linestyle="--", color="0.45", linewidth=1.0,
                    label=rf"$\propto k^{{{s:.3g}}}$")
    _finish(ax, xlabel=xlabel, ylabel=ylabel)
    return fig


def plot_bispectrum(k, curves: Mapping, *, truth=None, truth_label: str = "truth",
                    ylabel: str = r"$Q(k)$", xlabel: str = r"$k$", logx: bool = False, ax=None):
    """Reduced bispectrum Q(k) (equilateral or squeezed configurations) against k.

    ``k`` (nk,); curves (nk,) or (N, nk) (drawn as means); ``truth`` (N, nk) with a ±1σ band;
    a dotted line marks Q = 0, the Gaussian value.
    """
    curves = _as_mapping(curves, "curves")
    _check_something(curves, truth)
    fig, ax = _curve_axes(ax)
    _set_scales(ax, logx=logx, logy=False)
    _draw_curves(ax, k, curves, truth=truth, truth_label=truth_label)
    ax.axhline(0.0, color="0.5", linestyle=":", linewidth=0.8)
    _finish(ax, xlabel=xlabel, ylabel=ylabel)
    return fig


def plot_structure_functions(r, curves: Mapping, *, ylabel: str, truth=None, truth_label: str = "truth",
                             xlabel: str = r"$r$", loglog: bool = True, ax=None):
    """Structure functions S_p(r) = ⟨|x(s + r) − x(s)|^p⟩ (or the flatness S4/S2²) against r.

    ``r`` (nr,); curves (nr,) or (N, nr) (drawn as means); ``truth`` (N, nr) with a ±1σ band.
    """
    curves = _as_mapping(curves, "curves")
    _check_something(curves, truth)
    fig, ax = _curve_axes(ax)
    _set_scales(ax, logx=loglog, logy=loglog)
    _draw_curves(ax, r, curves, truth=truth, truth_label=truth_label)
    _finish(ax, xlabel=xlabel, ylabel=ylabel)
    return fig


def plot_series(x, series: Mapping, *, xlabel: str, ylabel: str, logx: bool = False, logy: bool = False,
                errors: Mapping | None = None, marker: str | None = None, ax=None):
    """Generic labelled curves: Binder cumulant U₄(κ) per L, autocorrelation functions, loss curves.

    ``x`` is one (n,) axis shared by all series, or a mapping label -> (n_label,) when the series
    have their own x values (e.g. loss curves of different lengths). Each series is (n,) or (N, n);
    a 2-D series is drawn as its mean with a ±1σ band. ``errors`` maps a label to (n,) standard
    errors drawn as error bars.
    """
    series = _as_mapping(series, "series")
    errors = _as_mapping(errors, "errors")
    _check_something(series, None)
    unknown = set(errors) - set(series)
    if unknown:
        raise InputError(f"errors given for unknown series {sorted(map(str, unknown))}")
    if isinstance(x, Mapping) and set(x) != set(series):
        raise InputError("when x is a mapping it must have exactly the labels of series")
    fig, ax = _curve_axes(ax)
    _set_scales(ax, logx=logx, logy=logy)
    for i, (label, y) in enumerate(series.items()):
        xi = _as_axis(x[label] if isinstance(x, Mapping) else x, f"x[{label!r}]")
        y = _as_curve(y, xi.size, f"series[{label!r}]")
        err = None
        if label in errors:
            err = _as_curve(errors[label], xi.size, f"errors[{label!r}]")
            if err.shape[0] != 1:
                raise InputError(f"errors[{label!r}] must have shape (n,); got {err.shape}")
            err = err[0]
        _bands(ax, xi, y, label=str(label), band=True, yerr=err, color=f"C{i}", linewidth=1.5,
               marker=marker, markersize=3)
    _finish(ax, xlabel=xlabel, ylabel=ylabel)
    return fig


def _minkowski_triplet(obj, name: str):
    """(v0, v1, v2) from a tuple or from anything with ``.v0 .v1 .v2`` (stats.MinkowskiFunctionals)."""
    if all(hasattr(obj, a) for a in ("v0", "v1", "v2")):
        return obj.v0, obj.v1, obj.v2
    if isinstance(obj, (str, bytes)) or not isinstance(obj, Sequence) or len(obj) != 3:
        raise InputError(f"{name} must be a tuple (v0, v1, v2) or have .v0 .v1 .v2 attributes")
    return tuple(obj)


def plot_minkowski(thresholds, curves: Mapping, *, truth=None, truth_label: str = "truth", gaussian=None,
                   gaussian_label: str = "Gaussian", xlabel: str = r"$\nu$", ax=None):
    """Minkowski functionals V₀ (area), V₁ (boundary length), V₂ (Euler characteristic) per unit
    area against the threshold ν, in three panels.

    ``thresholds`` (n_thr,); each ``curves[label]`` is ``(v0, v1, v2)`` (or a MinkowskiFunctionals)
    with each v (n_thr,) or (N, n_thr) — 2-D ones drawn as mean ± std bands; ``truth`` likewise;
    ``gaussian`` an optional (v0, v1, v2) of closed-form curves (n_thr,), drawn dashed. ``ax`` a
    sequence of three Axes.
    """
    curves = _as_mapping(curves, "curves")
    _check_something(curves, truth)
    nu = _as_axis(thresholds, "thresholds")
    if ax is None:
        fig, axes = _new_axes(1, 3, width=3 * 3.4, height=3.2)
        axes = list(axes[0])
    else:
        axes = _axes_list(ax, 3, "plot_minkowski")
        fig = _root_figure(axes[0])
    parts = {label: _minkowski_triplet(v, f"curves[{label!r}]") for label, v in curves.items()}
    truth_parts = None if truth is None else _minkowski_triplet(truth, "truth")
    gauss_parts = None if gaussian is None else _minkowski_triplet(gaussian, "gaussian")
    for j, a in enumerate(axes[:3]):
        _draw_curves(a, nu, {label: p[j] for label, p in parts.items()},
                     truth=None if truth_parts is None else truth_parts[j], truth_label=truth_label,
                     model_bands=True, what=f"V{j}")
        if gauss_parts is not None:
            g = _as_curve(gauss_parts[j], nu.size, f"gaussian V{j}")
            if g.shape[0] != 1:
                raise InputError(f"gaussian V{j} must have shape (n_thr,); got {g.shape}")
            a.plot(nu, g[0], linestyle="--", color="0.35", linewidth=1.2, label=gaussian_label, zorder=4)
        _finish(a, xlabel=xlabel, ylabel=rf"$V_{j}(\nu)$", legend=(j == 0))
    return fig


# --- pixel PDFs ----------------------------------------------------------------------------------
def _densities(values: np.ndarray, edges: np.ndarray, total: int) -> np.ndarray:
    """Histogram densities per row of ``values (N, P)``: counts / (total · bin width), so mass that
    falls outside the edges is lost rather than renormalised into the bins."""
    nb = edges.size - 1
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = nb - 1  # last bin is closed, as in np.histogram
    rows = np.broadcast_to(np.arange(values.shape[0])[:, None], values.shape)
    ok = (idx >= 0) & (idx < nb)
    counts = np.bincount((rows * nb + idx)[ok], minlength=values.shape[0] * nb).reshape(-1, nb)
    return counts / (total * np.diff(edges))


def plot_pdfs(values: Mapping, *, bins=100, logy: bool = True, truth=None, truth_label: str = "truth",
              value_range=None, xlabel: str = r"$x$", ylabel: str = "PDF", ax=None):
    """Pixel PDFs (histogram densities, log y axis by default) on common bins.

    Each ``values[label]`` is any array of pixel values (e.g. fields (N, H, W)), pooled. ``truth``
    of shape (N, ...) with N > 1 is histogrammed per field and drawn as mean ± std band; a 1-D
    truth is pooled and drawn as a thick line. ``bins``: a count or an increasing array of edges;
    ``value_range`` (lo, hi) defaults to the range of all data (ignored when edges are given).
    Densities are counts / (number of values · bin width), so mass outside the bins is not
    renormalised into them.
    """
    values = _as_mapping(values, "values")
    _check_something(values, truth)
    arrays = {}
    for label, v in values.items():
        a = _as_float(v, f"values[{label!r}]").ravel()
        if a.size == 0 or np.isnan(a).any():
            raise InputError(f"values[{label!r}] must be non-empty and free of NaN")
        arrays[label] = a
    t = None
    if truth is not None:
        t = _as_float(truth, "truth")
        if t.size == 0 or np.isnan(t).any():
            raise InputError("truth must be non-empty and free of NaN")
        t = t.reshape(t.shape[0], -1) if t.ndim >= 2 else t.reshape(1, -1)
    if np.ndim(bins) == 0:
        nb = check_int_at_least(bins, "bins", 1)
        pooled = list(arrays.values()) + ([] if t is None else [t.ravel()])
        if value_range is not None:
            lo, hi = (float(v) for v in value_range)
        else:
            lo, hi = min(a.min() for a in pooled), max(a.max() for a in pooled)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ParameterError(f"value_range must be finite with lo <= hi; got {(lo, hi)}")
        if lo == hi:  # constant data: one visible bin around the value
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, nb + 1)
    else:
        edges = _as_axis(bins, "bins")
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ParameterError("bin edges must be increasing with at least 2 entries")
    centers = 0.5 * (edges[:-1] + edges[1:])

    fig, ax = _curve_axes(ax)
    _set_scales(ax, logx=False, logy=logy)
    if t is not None:
        _bands(ax, centers, _densities(t, edges, t.shape[1]), label=truth_label, band=True, **_TRUTH_STYLE)
    for i, (label, a) in enumerate(arrays.items()):
        _bands(ax, centers, _densities(a[None], edges, a.size), label=str(label), band=False,
               color=f"C{i}", linewidth=1.5)
    _finish(ax, xlabel=xlabel, ylabel=ylabel)
    return fig


# --- images --------------------------------------------------------------------------------------
def _color_limits(arrays, symmetric: bool, vmin, vmax):
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    if symmetric:
        m = max(abs(lo), abs(hi)) or 1.0
        lo, hi = -m, m
    elif lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return (lo if vmin is None else vmin), (hi if vmax is None else vmax)


def _show(ax, field, *, cmap, vmin, vmax):
    # origin="lower": row index = y, as physicists draw (x, y) lattices
    im = ax.imshow(field, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def plot_fields(fields, *, titles=None, ncols: int = 4, cmap: str = "RdBu_r", symmetric: bool = True,
                suptitle: str | None = None, max_fields: int = 16, vmin=None, vmax=None,
                colorbar_label: str | None = None, ax=None):
    """Grid of fields (N, H, W) (the first ``max_fields`` of them) on one shared colour scale.

    ``symmetric``: limits ±max|x| (diverging maps centred on 0); ``vmin``/``vmax`` override.
    ``titles`` one per field shown (or per field). ``ax``: a sequence of Axes, one per field shown.
    """
    x = np.asarray(as_fields(fields, name="fields"))
    check_int_at_least(ncols, "ncols", 1)
    check_int_at_least(max_fields, "max_fields", 1)
    if x.shape[0] == 0:
        raise InputError("fields is empty: nothing to plot")
    n = min(x.shape[0], int(max_fields))
    if titles is not None and (isinstance(titles, str) or len(titles) < n):
        raise InputError(f"titles must be a sequence of at least {n} strings (one per field shown)")
    if ax is None:
        ncol = min(int(ncols), n)
        nrow = math.ceil(n / ncol)
        fig, axes = _new_axes(nrow, ncol, width=_PANEL_INCHES * ncol + 0.9, height=_PANEL_INCHES * nrow
                              + (0.35 if suptitle else 0.0))
        axes = list(axes.ravel())
    else:
        axes = _axes_list(ax, n, "plot_fields")
        fig = _root_figure(axes[0])
    lo, hi = _color_limits(x[:n], symmetric, vmin, vmax)
    for i, a in enumerate(axes):
        if i >= n:
            a.set_axis_off()
            continue
        im = _show(a, x[i], cmap=cmap, vmin=lo, vmax=hi)
        if titles is not None:
            a.set_title(str(titles[i]), fontsize="small")
    fig.colorbar(im, ax=axes[:n], shrink=0.85, label=colorbar_label)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_field_grids(groups: Mapping, *, n_per_group: int = 4, cmap: str = "RdBu_r", symmetric: bool = True,
                     vmin=None, vmax=None, suptitle: str | None = None, colorbar_label: str | None = None,
                     ax=None):
    """Samples beside the truth: one row per group (e.g. "truth", "model A") of its first
    ``n_per_group`` fields (N, H, W), all rows on the same colour scale; the row label is the key.

    ``ax``: a (n_groups, n_per_group) array (or flat sequence) of Axes.
    """
    groups = _as_mapping(groups, "groups")
    if not groups:
        raise InputError("groups is empty: nothing to plot")
    npg = check_int_at_least(n_per_group, "n_per_group", 1)
    shown = {label: np.asarray(as_fields(g, name=f"groups[{label!r}]"))[:npg] for label, g in groups.items()}
    empty = [str(label) for label, x in shown.items() if x.shape[0] == 0]
    if empty:
        raise InputError(f"groups {empty} hold no fields")
    nrow = len(shown)
    if ax is None:
        fig, axes = _new_axes(nrow, npg, width=_PANEL_INCHES * npg + 1.2,
                              height=_PANEL_INCHES * nrow + (0.35 if suptitle else 0.0))
        axes = list(axes.ravel())
    else:
        axes = _axes_list(ax, nrow * npg, "plot_field_grids")
        fig = _root_figure(axes[0])
    lo, hi = _color_limits(list(shown.values()), symmetric, vmin, vmax)
    used = []
    for r, (label, x) in enumerate(shown.items()):
        for c in range(npg):
            a = axes[r * npg + c]
            if c >= x.shape[0]:
                a.set_axis_off()
                continue
            im = _show(a, x[c], cmap=cmap, vmin=lo, vmax=hi)
            used.append(a)
            if c == 0:
                a.set_ylabel(str(label))
    fig.colorbar(im, ax=used, shrink=0.85, label=colorbar_label)
    if suptitle:
        fig.suptitle(suptitle)
    return fig
