"""Figures for validating synthetic fields: sample grids, spectra, PDFs, Minkowski functionals...

Every function takes plain numpy or JAX arrays (the statistics are computed in :mod:`phigen.stats`),
draws into ``ax=`` when given (else makes a new figure) and returns the matplotlib ``Figure``;
:func:`save_figure` writes it to disk and closes it.

Conventions shared by the curve plots: ``curves`` map a legend label to an array of shape ``(n,)``
or ``(N, n)`` sampled at the ``n`` points of the x axis; an ``(N, n)`` array (one curve per field)
is drawn as its mean over the ``N`` fields. The ``truth`` is drawn first, in thick black, with a
shaded band chosen by ``band=``: ``"std"`` (default) ±1σ across its fields, i.e. the field-to-field
spread; ``"sem"`` ±2 standard errors of the mean (2σ/√N, the band a model's mean must fall in, and
said so in the legend); None. ``residuals=`` adds a panel under the main one (shared x axis):
``"ratio"`` model mean / truth mean with the truth's ±2 s.e. relative band around 1, or ``"z"`` the
z-score (mean_m − mean_t)/√(s_m²/N_m + s_t²/N_t) per point with lines at ±2; ``ax`` then takes
the residual Axes after the main ones. With ``band="std"``, :func:`plot_minkowski` and
:func:`plot_series` shade a ±1σ band for every two-dimensional curve. NaN values are allowed (they
leave gaps); ±inf raises ``InputError``.

:func:`plot_spectrum_correlation` draws the correlation matrix across fields of P(k);
:func:`plot_null_distributions` places model distances in their null (truth vs truth) histograms.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
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
    "plot_peak_counts",
    "plot_series",
    "plot_spectrum_correlation",
    "plot_null_distributions",
    "spectrum_correlation",
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
_BANDS = ("std", "sem", None)
_RESIDUALS = ("ratio", "z", None)


def _check_choice(value, allowed, name: str):
    if value is True:  # band=True: the historical ±1σ band
        value = "std"
    if value is False:
        value = None
    if value not in allowed:
        raise ParameterError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def _band_limits(mean, half, ax):
    lower, upper = mean - half, mean + half
    if ax.get_yscale() == "log":
        # a polygon with non-positive vertices is mangled on a log axis: stop the band just
        # below the curve's lowest positive point instead (it means "reaches down to 0")
        positive = mean[mean > 0]
        floor = 0.5 * positive.min() if positive.size else np.nan
        lower = np.where(lower > 0, lower, floor)
        upper = np.where(upper > 0, upper, np.nan)
    return lower, upper


def _bands(ax, x, y, *, label, band, yerr=None, **style):
    """Draw the mean over fields of ``y (N, n)`` (with error bars ``yerr`` if given) and, when N > 1,
    a shaded band: ``band="std"`` (or True) ±1σ across the N fields (the field-to-field spread),
    ``band="sem"`` ±2 standard errors of the mean (2σ/√N, labelled in the legend), None: no band."""
    band = _check_choice(band, _BANDS, "band")
    mean = y.mean(axis=0)
    if yerr is None:
        (line,) = ax.plot(x, mean, label=label, **style)
    else:
        line = ax.errorbar(x, mean, yerr=yerr, label=label, capsize=2, **style).lines[0]
    n = y.shape[0]
    if band is not None and n > 1:
        sd = y.std(axis=0, ddof=1)
        half = sd if band == "std" else 2.0 * sd / math.sqrt(n)
        lower, upper = _band_limits(mean, half, ax)
        band_label = f"{label}: ±2 s.e. of the mean (N={n})" if band == "sem" else None
        ax.fill_between(x, lower, upper, color=line.get_color(), alpha=_BAND_ALPHA, linewidth=0,
                        zorder=line.get_zorder() - 1, label=band_label)
    return line


def _draw_curves(ax, x, curves: Mapping, *, truth=None, truth_label="truth", model_bands=False,
                 what="curves", band="std"):
    """Truth (banded) first, then each labelled curve in the colour cycle's order.

    ``band="std"``: the truth gets a ±1σ band, the models one only when ``model_bands``.
    ``band="sem"``: the truth gets a ±2 s.e. band and the models none (their uncertainty is in the
    residual panel), unless there is no truth, when each model gets its own ±2 s.e. band.
    Returns ``(x, truth (N, n) or None, [(label, curves (N, n), colour), ...])``."""
    band = _check_choice(band, _BANDS, "band")
    x = _as_axis(x, "x axis")
    t = None
    if truth is not None:
        t = _as_curve(truth, x.size, "truth")
        _bands(ax, x, t, label=truth_label, band=band, **_TRUTH_STYLE)
    if band == "sem":
        m_band = "sem" if truth is None else None
    else:
        m_band = band if model_bands else None
    drawn = []
    for i, (label, y) in enumerate(curves.items()):
        y = _as_curve(y, x.size, f"{what}[{label!r}]")
        _bands(ax, x, y, label=str(label), band=m_band, color=f"C{i}", linewidth=1.5)
        drawn.append((str(label), y, f"C{i}"))
    return x, t, drawn


def _residual_values(truth, model, mode: str):
    """Residual of a model's mean against the truth's mean, per point of the x axis.

    ``truth`` (N_t, n), ``model`` (N_m, n) (or (n,): a curve without uncertainty).
    ``mode="ratio"``: mean_m / mean_t (NaN where mean_t <= 0); ``mode="z"``: the z-score
    (mean_m − mean_t) / sqrt(s_m²/N_m + s_t²/N_t) with sample standard deviations s (a group of one
    field contributes no variance; NaN where both are 0). Returns an (n,) array."""
    mode = _check_choice(mode, ("ratio", "z"), "mode")
    t = np.atleast_2d(np.asarray(truth, dtype=np.float64))
    m = np.atleast_2d(np.asarray(model, dtype=np.float64))
    mt, mm = t.mean(axis=0), m.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "ratio":
            return np.where(mt > 0, mm / mt, np.nan)
        var = np.zeros_like(mt)
        for g in (t, m):
            if g.shape[0] > 1:
                var = var + g.var(axis=0, ddof=1) / g.shape[0]
        den = np.sqrt(var)
        return np.where(den > 0, (mm - mt) / den, np.nan)


def _merge_points(x: np.ndarray, ys: list, nbins: int, log: bool):
    """Average consecutive x points into at most ``nbins`` bins (equal widths in log x when ``log``):
    each (N, n) array becomes (N, n_bins) of per-field averages over a bin's points, so means and
    standard errors are those of the merged values. Returns ``(x of each bin (mean), arrays)``."""
    keep = np.isfinite(x) & ((x > 0) if log else True)
    if not keep.any():
        return x, ys
    lo, hi = x[keep].min(), x[keep].max()
    if lo == hi:
        return x, ys
    edges = np.geomspace(lo, hi, nbins + 1) if log else np.linspace(lo, hi, nbins + 1)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, nbins - 1)
    groups = [np.flatnonzero(keep & (idx == g)) for g in range(nbins)]
    groups = [g for g in groups if g.size]
    xm = np.array([x[g].mean() for g in groups])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN bin stays NaN
        merged = [np.stack([np.nanmean(y[:, g], axis=1) for g in groups], axis=1) for y in ys]
    return xm, merged


def _draw_residuals(rax, x, truth: np.ndarray, drawn, mode: str, *, truth_label="truth", xlabel=None,
                    bins=None, logx=False):
    """Residual panel under a main panel: model/truth with the truth's ±2 s.e. relative band around
    1 (``mode="ratio"``), or per-point z-scores with lines at ±2 (``mode="z"``). ``bins``: first
    average consecutive points into at most that many bins (:func:`_merge_points`)."""
    marker = None
    if bins is not None and bins < x.size:
        x, arrays = _merge_points(x, [truth] + [y for _, y, _ in drawn], int(bins), logx)
        truth, drawn = arrays[0], [(label, y, c) for (label, _, c), y in zip(drawn, arrays[1:])]
        marker = "o"
        rax.text(0.99, 0.03, f"averaged over {x.size} {'log-' if logx else ''}bins", transform=rax.transAxes,
                 fontsize="x-small", color="0.3", ha="right", va="bottom")
    n_t = truth.shape[0]
    finite = []
    if mode == "ratio":
        mt = truth.mean(axis=0)
        rel = np.full_like(mt, np.nan)
        if n_t > 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(mt > 0, 2.0 * truth.std(axis=0, ddof=1) / math.sqrt(n_t) / mt, np.nan)
            rax.fill_between(x, 1.0 - rel, 1.0 + rel, color="k", alpha=_BAND_ALPHA, linewidth=0,
                             label=f"{truth_label} ±2 s.e.")
        rax.axhline(1.0, color="k", linewidth=1.0, zorder=2)
        ratios = []
        for label, y, color in drawn:
            r = _residual_values(truth, y, "ratio")
            rax.plot(x, r, color=color, linewidth=1.2, label=label, marker=marker, markersize=2.5)
            ratios.append((label, r, color))
        # y range: a few band widths around 1, so a bias of the order of the band is visible next
        # to a model that is far off; those are drawn off scale and their range is written instead
        b = float(np.nanmedian(rel)) if np.isfinite(rel).any() else 0.02
        b = max(b, 0.005)
        dev = [np.abs(r[np.isfinite(r)] - 1.0) for _, r, _ in ratios]
        d = max([float(v.max()) for v in dev if v.size] + [0.0])
        h = float(np.clip(1.15 * d, 2.0 * b, 6.0 * b))
        rax.set_ylim(1.0 - h, 1.0 + h)
        off = [(label, r[np.isfinite(r)], color) for label, r, color in ratios
               if np.isfinite(r).any() and np.abs(r[np.isfinite(r)] - 1.0).max() > h]
        for i, (label, r, color) in enumerate(off):
            rax.text(0.01, 0.97 - 0.2 * i, f"{label} off scale: {r.min():.3g} to {r.max():.3g}",
                     transform=rax.transAxes, color=color, fontsize="x-small", va="top", ha="left",
                     bbox=dict(facecolor="white", alpha=0.7, linewidth=0, pad=1.0))
        ylabel = f"ratio to {truth_label}\n(band ±2 s.e.)"
    else:
        rax.axhline(0.0, color="k", linewidth=1.0, zorder=2)
        for s in (-2.0, 2.0):
            rax.axhline(s, color="0.35", linestyle="--", linewidth=0.9, zorder=2)
        for label, y, color in drawn:
            z = _residual_values(truth, y, "z")
            rax.plot(x, z, color=color, linewidth=1.2, label=label, marker=marker, markersize=2.5)
            finite.append(z[np.isfinite(z)])
        vals = np.concatenate(finite) if finite else np.array([])
        top = float(np.abs(vals).max()) if vals.size else 0.0
        if top > 10.0:  # linear within ±3, logarithmic beyond
            from matplotlib.ticker import FixedLocator, FormatStrFormatter

            rax.set_yscale("symlog", linthresh=3.0, linscale=1.5)
            ticks = [0.0, 2.0] + [10.0 ** e for e in range(1, int(math.ceil(math.log10(top))) + 1)]
            rax.yaxis.set_major_locator(FixedLocator(sorted({t for t in ticks} | {-t for t in ticks})))
            rax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            rax.yaxis.set_minor_locator(FixedLocator([]))
        else:
            top = max(3.0, 1.1 * top)
            rax.set_ylim(-top, top)
        ylabel = "z-score\n(Δmean / s.e.)"
    _finish(rax, xlabel=xlabel, ylabel=ylabel, legend=False)


def _curve_axes(ax):
    if ax is None:
        fig, axes = _new_axes(1, 1, width=5.0, height=3.8)
        return fig, axes[0, 0]
    return _root_figure(ax), ax


def _set_scales(ax, *, logx: bool, logy: bool):
    # "mask" drops non-positive points (k = 0, empty bins) instead of clipping them to a tiny value
    if logx:
        ax.set_xscale("log", nonpositive="mask")
    if logy:
        ax.set_yscale("log", nonpositive="mask")


def _panel_axes(ax, ncols: int, residual: bool, what: str, *, width: float, height: float):
    """``ncols`` main panels, each with a residual panel under it when ``residual`` (shared x,
    height ratio 3:1). ``ax``: None (new figure), or ``ncols`` Axes (then ``ncols`` residual Axes
    after them when ``residual``). Returns ``(figure, mains, residuals or [None] * ncols)``."""
    if ax is None:
        plt = _pyplot()
        if residual:
            # a fixed layout (save_figure trims the margins): the constrained layout engine costs
            # about a third of the drawing time of these figures
            fig, axes = plt.subplots(2, ncols, figsize=(width, height * 1.4), squeeze=False, sharex="col",
                                     height_ratios=[3, 1], layout=None)
            fig.subplots_adjust(left=0.8 / width, right=0.98, bottom=0.1, top=0.97, hspace=0.06,
                                wspace=0.42 if ncols > 1 else 0.2)
            return fig, list(axes[0]), list(axes[1])
        fig, axes = _new_axes(1, ncols, width=width, height=height)
        return fig, list(axes[0]), [None] * ncols
    if residual or ncols > 1 or isinstance(ax, (list, tuple, np.ndarray)):
        need = ncols * (2 if residual else 1)
        axes = _axes_list(ax, need, what + (" with residual panels" if residual else ""))
        mains = axes[:ncols]
        resids = axes[ncols:need] if residual else [None] * ncols
        return _root_figure(mains[0]), mains, resids
    return _root_figure(ax), [ax], [None]


def _readable_log_ticks(ax, x):
    """A log x axis spanning under ~2.5 decades: ticks at 1, 2, 5 × 10^n labelled as plain numbers
    (the default labels every minor tick of a short range, and they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    pos = x[np.isfinite(x) & (x > 0)]
    if ax.get_xscale() != "log" or pos.size < 2 or np.log10(pos.max() / pos.min()) > 2.5:
        return
    ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _sync_x(main, rax):
    """Residual Axes given by the caller and not shared with the main one: copy its x scale/range."""
    if rax is None or rax in main.get_shared_x_axes().get_siblings(main):
        return
    rax.set_xscale(main.get_xscale())
    rax.set_xlim(main.get_xlim())


def _curve_figure(ax, x, curves, *, truth, truth_label, band, residuals, logx, logy, xlabel, ylabel, what,
                  model_bands=False, residual_bins=None):
    """One statistic: main panel (+ residual panel under it when ``residuals`` and a truth)."""
    band = _check_choice(band, _BANDS, "band")
    residuals = _check_choice(residuals, _RESIDUALS + ("auto",), "residuals")
    with_res = residuals is not None and truth is not None
    fig, (main,), (rax,) = _panel_axes(ax, 1, with_res, what, width=5.0, height=3.8)
    _set_scales(main, logx=logx, logy=logy)
    xx, t, drawn = _draw_curves(main, x, curves, truth=truth, truth_label=truth_label, band=band, what=what,
                                model_bands=model_bands)
    _finish(main, xlabel=None if with_res else xlabel, ylabel=ylabel)
    if with_res:
        if residuals == "auto":
            residuals = _auto_residual(t)
        _draw_residuals(rax, xx, t, drawn, residuals, truth_label=truth_label, xlabel=xlabel,
                        bins=residual_bins, logx=logx)
        _sync_x(main, rax)
    for a in (main, rax):
        if a is not None:
            _readable_log_ticks(a, xx)
    return fig, main, xx


def _auto_residual(truth: np.ndarray) -> str:
    """"ratio" when the truth's mean is significantly positive everywhere (mean − 2 s.e. > 0), else "z"."""
    mean = truth.mean(axis=0)
    se = truth.std(axis=0, ddof=1) / math.sqrt(truth.shape[0]) if truth.shape[0] > 1 else 0.0 * mean
    ok = np.isfinite(mean)
    return "ratio" if ok.any() and np.all((mean - 2.0 * se)[ok] > 0) else "z"


def plot_power_spectra(k, spectra: Mapping, *, truth=None, truth_label: str = "truth",
                       loglog: bool = True, reference_slopes=None, xlabel: str = r"$k$",
                       ylabel: str = r"$P(k)$", band="std", residuals=None, residual_bins=None, ax=None):
    """Isotropic power spectra P(k) against wavenumber.

    ``k`` (nk,); each spectrum (nk,) or (N, nk) (drawn as its mean over the N fields); ``truth``
    (N, nk) is drawn as its mean with a band (``band``: "std" ±1σ across fields, "sem" ±2 standard
    errors of the mean, None). ``residuals`` ("ratio", "z" or None; needs a truth, ignored without
    one): a panel under the main one with model/truth and the truth's ±2 s.e. relative band, or
    z-scores; ``ax`` is then a pair (main, residual) of Axes. ``residual_bins`` (int): the residual
    panel first averages each field's P over consecutive k into at most that many bins (log-spaced
    with ``loglog``), so the band narrows where many shells are merged and a bias of a few per cent
    shows. ``reference_slopes`` (a number or a
    sequence): dashed power-law guides ∝ k^s with the exponent s as given (e.g. -3, -5/3), passing
    a factor 2 below the truth's mean (else the first spectrum's) at the middle of the k range.
    """
    spectra = _as_mapping(spectra, "spectra")
    _check_something(spectra, truth)
    fig, ax, kk = _curve_figure(ax, k, spectra, truth=truth, truth_label=truth_label, band=band,
                                residuals=residuals, logx=loglog, logy=loglog, xlabel=xlabel, ylabel=ylabel,
                                what="spectra", residual_bins=None if residual_bins is None
                                else check_int_at_least(residual_bins, "residual_bins", 1))
    if reference_slopes is not None:
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
        _finish(ax)
    return fig


def plot_bispectrum(k, curves: Mapping, *, truth=None, truth_label: str = "truth",
                    ylabel: str = r"$Q(k)$", xlabel: str = r"$k$", logx: bool = False, band="std",
                    residuals=None, ax=None):
    """Reduced bispectrum Q(k) (equilateral or squeezed configurations) against k.

    ``k`` (nk,); curves (nk,) or (N, nk) (drawn as means); ``truth`` (N, nk) with a band (``band``
    as in :func:`plot_power_spectra`); a dotted line marks Q = 0, the Gaussian value.
    ``residuals``: "ratio", "z", "auto" (ratio when the truth's Q is significantly positive at every
    k, z-scores otherwise) or None; ``ax`` is then a pair (main, residual).
    """
    curves = _as_mapping(curves, "curves")
    _check_something(curves, truth)
    fig, ax, _ = _curve_figure(ax, k, curves, truth=truth, truth_label=truth_label, band=band,
                               residuals=residuals, logx=logx, logy=False, xlabel=xlabel, ylabel=ylabel,
                               what="curves")
    ax.axhline(0.0, color="0.5", linestyle=":", linewidth=0.8)
    return fig


def plot_structure_functions(r, curves: Mapping, *, ylabel: str, truth=None, truth_label: str = "truth",
                             xlabel: str = r"$r$", loglog: bool = True, band="std", residuals=None, ax=None):
    """Structure functions S_p(r) = ⟨|x(s + r) − x(s)|^p⟩ (or the flatness S4/S2²) against r.

    ``r`` (nr,); curves (nr,) or (N, nr) (drawn as means); ``truth`` (N, nr) with a band;
    ``band``/``residuals``/``ax`` as in :func:`plot_power_spectra`.
    """
    curves = _as_mapping(curves, "curves")
    _check_something(curves, truth)
    fig, _, _ = _curve_figure(ax, r, curves, truth=truth, truth_label=truth_label, band=band,
                              residuals=residuals, logx=loglog, logy=loglog, xlabel=xlabel, ylabel=ylabel,
                              what="curves")
    return fig


def plot_peak_counts(nu, curves: Mapping, *, truth=None, truth_label: str = "truth", logy: bool = True,
                     xlabel: str = r"peak height $\nu = (u - \mu)/\sigma$",
                     ylabel: str = r"peaks per pixel$^2$ per unit $\nu$", band="std", residuals=None, ax=None):
    """Peak counts against height: ``nu`` (nb,) bin centres; curves (nb,) or (N, nb) per-field
    densities (drawn as means); ``truth`` (N, nb) with a band; log y by default (the counts fall by
    decades in the high-ν tail, where models differ). ``band``/``residuals``/``ax`` as in
    :func:`plot_power_spectra` (``residuals="ratio"``: empty truth bins are left blank)."""
    curves = _as_mapping(curves, "curves")
    _check_something(curves, truth)
    fig, _, _ = _curve_figure(ax, nu, curves, truth=truth, truth_label=truth_label, band=band,
                              residuals=residuals, logx=False, logy=logy, xlabel=xlabel, ylabel=ylabel,
                              what="curves")
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
                   gaussian_label: str = "Gaussian", xlabel: str = r"$\nu$", band="std", residuals=None,
                   ax=None):
    """Minkowski functionals V₀ (area), V₁ (boundary length), V₂ (Euler characteristic) per unit
    area against the threshold ν, in three panels.

    ``thresholds`` (n_thr,); each ``curves[label]`` is ``(v0, v1, v2)`` (or a MinkowskiFunctionals)
    with each v (n_thr,) or (N, n_thr); ``truth`` likewise; ``gaussian`` an optional (v0, v1, v2) of
    closed-form curves (n_thr,), drawn dashed. ``band="std"``: every 2-D curve gets a ±1σ band;
    ``band="sem"``: the truth gets a ±2 s.e. band and the models are drawn as their means.
    ``residuals="z"`` (needs a truth) adds a z-score panel under each. ``ax`` a sequence of three
    Axes (six with residuals: the three main ones first).
    """
    curves = _as_mapping(curves, "curves")
    _check_something(curves, truth)
    residuals = _check_choice(residuals, _RESIDUALS, "residuals")
    nu = _as_axis(thresholds, "thresholds")
    with_res = residuals is not None and truth is not None
    fig, axes, raxes = _panel_axes(ax, 3, with_res, "plot_minkowski", width=3 * 3.4, height=3.2)
    parts = {label: _minkowski_triplet(v, f"curves[{label!r}]") for label, v in curves.items()}
    truth_parts = None if truth is None else _minkowski_triplet(truth, "truth")
    gauss_parts = None if gaussian is None else _minkowski_triplet(gaussian, "gaussian")
    for j, (a, rax) in enumerate(zip(axes[:3], raxes[:3])):
        _, t, drawn = _draw_curves(a, nu, {label: p[j] for label, p in parts.items()},
                                   truth=None if truth_parts is None else truth_parts[j], truth_label=truth_label,
                                   model_bands=True, what=f"V{j}", band=band)
        if gauss_parts is not None:
            g = _as_curve(gauss_parts[j], nu.size, f"gaussian V{j}")
            if g.shape[0] != 1:
                raise InputError(f"gaussian V{j} must have shape (n_thr,); got {g.shape}")
            a.plot(nu, g[0], linestyle="--", color="0.35", linewidth=1.2, label=gaussian_label, zorder=4)
        _finish(a, xlabel=None if with_res else xlabel, ylabel=rf"$V_{j}(\nu)$", legend=(j == 0))
        if with_res:
            _draw_residuals(rax, nu, t, drawn, residuals, truth_label=truth_label, xlabel=xlabel)
            _sync_x(a, rax)
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


def _per_field(a: np.ndarray) -> np.ndarray:
    """(N, ...) with N > 1 → (N, P) one row per field; anything else pooled → (1, P)."""
    return a.reshape(a.shape[0], -1) if a.ndim >= 2 else a.reshape(1, -1)


def plot_pdfs(values: Mapping, *, bins=100, logy: bool = True, truth=None, truth_label: str = "truth",
              value_range=None, xlabel: str = r"$x$", ylabel: str = "PDF", band="std", residuals=None,
              ax=None):
    """Pixel PDFs (histogram densities, log y axis by default) on common bins.

    Each ``values[label]`` is any array of pixel values: fields (N, ...) are histogrammed per field
    and drawn as the mean density (equal to the pooled density), a 1-D array is pooled. ``truth``
    (N, ...) with N > 1 is drawn as its mean with a band (``band``: "std" ±1σ across fields, "sem"
    ±2 s.e. of the mean); a 1-D truth is pooled and drawn as a thick line. ``residuals="z"`` (needs
    a truth) adds a panel of per-bin z-scores; ``ax`` is then a pair (main, residual).
    ``bins``: a count or an increasing array of edges; ``value_range`` (lo, hi) defaults to the
    range of all data (ignored when edges are given). Densities are counts / (number of values ·
    bin width), so mass outside the bins is not renormalised into them.
    """
    values = _as_mapping(values, "values")
    _check_something(values, truth)
    band = _check_choice(band, _BANDS, "band")
    residuals = _check_choice(residuals, _RESIDUALS, "residuals")
    arrays = {}
    for label, v in values.items():
        a = _as_float(v, f"values[{label!r}]")
        if a.size == 0 or np.isnan(a).any():
            raise InputError(f"values[{label!r}] must be non-empty and free of NaN")
        arrays[label] = _per_field(a)
    t = None
    if truth is not None:
        t = _as_float(truth, "truth")
        if t.size == 0 or np.isnan(t).any():
            raise InputError("truth must be non-empty and free of NaN")
        t = _per_field(t)
    if np.ndim(bins) == 0:
        nb = check_int_at_least(bins, "bins", 1)
        pooled = list(arrays.values()) + ([] if t is None else [t])
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

    with_res = residuals is not None and t is not None
    fig, (ax,), (rax,) = _panel_axes(ax, 1, with_res, "plot_pdfs", width=5.0, height=3.8)
    _set_scales(ax, logx=False, logy=logy)
    curves = {label: _densities(a, edges, a.shape[1]) for label, a in arrays.items()}
    td = None if t is None else _densities(t, edges, t.shape[1])
    _, td, drawn = _draw_curves(ax, centers, curves, truth=td, truth_label=truth_label, band=band, what="values")
    _finish(ax, xlabel=None if with_res else xlabel, ylabel=ylabel)
    if with_res:
        _draw_residuals(rax, centers, td, drawn, residuals, truth_label=truth_label, xlabel=xlabel)
        _sync_x(ax, rax)
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


# --- correlations of the power spectrum across fields ---------------------------------------------
def spectrum_correlation(spectra) -> np.ndarray:
    """Correlation matrix ``(nk, nk)`` of P(k_i) and P(k_j) over the fields of ``spectra (N, nk)``
    (``np.corrcoef`` of the columns); NaN where a bin does not vary or N < 2."""
    s = np.asarray(spectra, dtype=np.float64)
    if s.shape[0] < 2:
        return np.full((s.shape[1], s.shape[1]), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.atleast_2d(np.corrcoef(s, rowvar=False))


def _edges_of(centers: np.ndarray) -> np.ndarray:
    if centers.size == 1:
        return np.array([centers[0] - 0.5, centers[0] + 0.5])
    mid = 0.5 * (centers[1:] + centers[:-1])
    return np.concatenate([[2 * centers[0] - mid[0]], mid, [2 * centers[-1] - mid[-1]]])


def plot_spectrum_correlation(k, spectra: Mapping, *, truth=None, truth_label: str = "truth",
                              xlabel: str = r"$k$", cmap: str = "RdBu_r"):
    """Correlation across fields of the per-field power spectrum: corr(P(k_i), P(k_j)) over each
    ensemble's fields, drawn as a matrix with k on both axes.

    ``k`` (nk,) increasing; ``spectra[label]`` and ``truth`` are per-field spectra (N, nk). Top row:
    the truth's matrix and each model's; bottom row (with a truth): model − truth under each model.
    All panels share one symmetric diverging colour scale ±max(1, max|model − truth|). A group of
    one field has no correlation (NaN, drawn blank). Returns the figure.
    """
    spectra = _as_mapping(spectra, "spectra")
    _check_something(spectra, truth)
    kk = _as_axis(k, "k")
    if np.any(np.diff(kk) <= 0):
        raise InputError("k must be increasing")
    mats, sizes = {}, {}
    if truth is not None:
        t = _as_curve(truth, kk.size, "truth")
        mats[truth_label], sizes[truth_label] = spectrum_correlation(t), t.shape[0]
    diffs = {}
    for label, y in spectra.items():
        y = _as_curve(y, kk.size, f"spectra[{label!r}]")
        mats[str(label)], sizes[str(label)] = spectrum_correlation(y), y.shape[0]
        if truth is not None:
            diffs[str(label)] = mats[str(label)] - mats[truth_label]
    big = [np.nanmax(np.abs(d)) for d in diffs.values() if np.isfinite(d).any()]
    vmax = max([1.0] + big)
    ncols = len(mats)
    nrows = 2 if diffs else 1
    plt = _pyplot()
    # shared axes with labels on the outer panels only, and a fixed layout: text layout is most of
    # the drawing time (the constrained layout engine would double it)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.5 * ncols + 1.2, 2.6 * nrows + 0.2), squeeze=False,
                             sharex=True, sharey=True, layout=None)
    fig.subplots_adjust(left=0.5 / (2.5 * ncols + 1.2) + 0.03, right=0.97, bottom=0.1 if nrows > 1 else 0.17,
                        top=0.92 if nrows > 1 else 0.86, wspace=0.12, hspace=0.3)
    edges = _edges_of(kk)
    mesh = None

    def show(a, m, title):
        nonlocal mesh
        mesh = a.pcolormesh(edges, edges, np.ma.masked_invalid(m), cmap=cmap, vmin=-vmax, vmax=vmax,
                            shading="flat", rasterized=True)
        a.set_aspect("equal")
        a.set_title(title, fontsize="small")

    for c, (label, m) in enumerate(mats.items()):
        note = "" if sizes[label] > 1 else ", undefined"
        show(axes[0, c], m, f"{label} (N={sizes[label]}{note})")
        if diffs:
            if label in diffs:
                show(axes[1, c], diffs[label], f"{label} − {truth_label}")
            else:  # the truth's column: no difference panel, so its own x axis gets the labels
                axes[1, c].set_axis_off()
                axes[0, c].xaxis.set_tick_params(labelbottom=True)
                axes[0, c].set_xlabel(xlabel)
    for a in axes[-1]:
        if a.axison:
            a.set_xlabel(xlabel)
    for a in axes[:, 0]:
        if a.axison:
            a.set_ylabel(xlabel)
    if diffs and not axes[-1, 0].axison:
        axes[-1, 1].set_ylabel(xlabel)
        axes[-1, 1].yaxis.set_tick_params(labelleft=True)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.85,
                 label=r"corr$(P(k_i), P(k_j))$ across fields" + (f"; model − {truth_label}" if diffs else ""))
    return fig


# --- null distributions of distances -------------------------------------------------------------
def _finite_1d(v, name: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a real numeric array ({exc})") from None
    return a[np.isfinite(a)]


def plot_null_distributions(null: Mapping, models: Mapping, *, p95: Mapping | None = None, title=None,
                            ncols: int = 3, bins: int = 30):
    """Where each model's distance falls in the distance's null distribution (truth vs truth).

    ``null`` maps a distance label (e.g. "P(k) χ²") to its null values (any shape, non-finite ones
    dropped); ``models`` maps a model name to ``{distance label: value}``; ``p95`` optional
    ``{distance label: value}`` of the 95th percentiles to mark (default: computed from ``null``).
    One panel per distance: the null histogram, a dashed line at its 95th percentile, and a solid
    line, a marker and the value per model. When a model lies far beyond the null (more than 10×
    its largest value, all values positive) the x axis is logarithmic (log-spaced bins); otherwise
    the range is extended to every model. Returns the figure.
    """
    null = _as_mapping(null, "null")
    models = _as_mapping(models, "models")
    p95 = _as_mapping(p95, "p95")
    if not null:
        raise InputError("null is empty: nothing to plot")
    for name, vals in models.items():
        if not isinstance(vals, Mapping):
            raise InputError(f"models[{name!r}] must be a mapping distance label -> value")
    check_int_at_least(ncols, "ncols", 1)
    nbins = check_int_at_least(bins, "bins", 1)
    from matplotlib.transforms import blended_transform_factory

    n = len(null)
    ncol = min(int(ncols), n)
    nrow = math.ceil(n / ncol)
    fig, axes = _new_axes(nrow, ncol, width=3.4 * ncol, height=2.7 * nrow + 0.6)
    axes = list(axes.ravel())
    colors = {str(name): f"C{i}" for i, name in enumerate(models)}
    handles = {}
    for a, (dname, values) in zip(axes, null.items()):
        v = _finite_1d(values, f"null[{dname!r}]")
        a.set_ylabel(f"count (of {v.size})")
        shown, skipped = [], []
        for name, vals in models.items():
            if dname in vals:
                val = float(vals[dname])
                (shown if math.isfinite(val) else skipped).append((str(name), val))
        p = float(p95[dname]) if dname in p95 else (float(np.percentile(v, 95)) if v.size else math.nan)
        a.set_title(f"{dname}" + (f"   (null 95 %: {p:.3g})" if math.isfinite(p) else ""), fontsize="medium")
        a.set_xlabel("distance" + ("   (not shown: " + ", ".join(f"{nm} = {val}" for nm, val in skipped) + ")"
                                   if skipped else ""))
        every = np.concatenate([v, [val for _, val in shown], [p] if math.isfinite(p) else []])
        if every.size == 0:
            a.text(0.5, 0.5, "no finite values", transform=a.transAxes, ha="center", va="center")
            continue
        log = (v.size > 0 and every.min() > 0 and every.max() > 10.0 * v.max())
        if v.size:
            lo, hi = v.min(), v.max()
            if lo == hi:
                lo, hi = (lo / 1.5, hi * 1.5) if (log or lo > 0) else (lo - 0.5, hi + 0.5)
            edges = np.geomspace(lo, hi, nbins + 1) if log else np.linspace(lo, hi, nbins + 1)
            h = a.hist(v, bins=edges, color="0.6", edgecolor="0.45", linewidth=0.4,
                       label="null: truth vs truth")
            handles.setdefault("null", h[2][0])
        if log:
            a.set_xscale("log")
            x0, x1 = every.min(), every.max()
            a.set_xlim(x0 / 1.6, x1 * 1.6)
        else:
            x0, x1 = every.min(), every.max()
            pad = 0.06 * (x1 - x0) if x1 > x0 else 0.5 * max(abs(x0), 1.0)
            a.set_xlim(x0 - pad, x1 + pad)
        if math.isfinite(p):
            ln = a.axvline(p, color="k", linestyle="--", linewidth=1.3, label="null 95th percentile")
            handles.setdefault("p95", ln)
        trans = blended_transform_factory(a.transData, a.transAxes)
        for i, (name, val) in enumerate(shown):
            c = colors[name]
            ln = a.axvline(val, color=c, linewidth=1.6, label=name)
            y = 0.93 - 0.12 * (i % 6)
            a.plot([val], [y], marker="v", markersize=7, color=c, transform=trans, linestyle="none")
            a.annotate(f"{val:.3g}", xy=(val, y), xycoords=trans, xytext=(4, -3), textcoords="offset points",
                       color=c, fontsize="x-small", ha="left", va="top")
            handles.setdefault(("model", name), ln)
        a.grid(True, alpha=0.3)
    for a in axes[n:]:
        a.set_axis_off()
    if handles:
        fig.legend(list(handles.values()), [h.get_label() for h in handles.values()], loc="outside lower center",
                   ncols=min(len(handles), 4), fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig
