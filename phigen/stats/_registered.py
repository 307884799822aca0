"""The built-in statistics of :mod:`phigen.stats.registry` (imported once, on first use).

Order is the report's order. Each statistic's per-field rows are float64 numpy arrays computed
from float32 blocks of fields by the jitted estimators of :mod:`phigen.stats`.
"""

from __future__ import annotations

import numpy as np

from ._binning import fundamental
from .registry import Distance, Statistic, corr_rms, log_rms, pooled_chi2, register

MINKOWSKI_THRESHOLDS = np.linspace(-2.5, 2.5, 11)
PDF_BINS = 60
PDF_GRID = 1025      # quantiles of the truth's pixels on which per-field CDFs are evaluated
BISPECTRUM_WIDTH = 2.0  # shell width in units of Δk: 2Δk shells hold ~4x the triangles of Δk shells


# peak heights ν = (u − μ_truth)/σ_truth: open end bins so every peak counts; 0.5σ steps where a
# cosmic-web map (log(1+δ), 64²) has ≳ 10 peaks per bin and field, wider in the rarer high tail
PEAK_EDGES = np.array([-np.inf, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, np.inf])
PEAK_FIGURE_EDGES = np.arange(-2.0, 5.01, 0.25)
MINKOWSKI_FIGURE_NU = np.linspace(-3.0, 3.0, 25)
RESIDUAL_K_BINS = 16  # P(k) ratio panel: per-field averages over 16 log-k bins (a narrower band at high k)


def _sides(groups, truth):
    """(reference ensemble or None, the other ensembles, keyword arguments every figure shares)."""
    ref = groups.get(truth) if truth else None
    others = {k: v for k, v in groups.items() if k != truth}
    return ref, others, dict(truth_label=truth or "truth", band="sem")


def _f64(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def _mean_std(rows):
    rows = _f64(rows)
    return rows.mean(axis=0).tolist(), (rows.std(axis=0, ddof=1) if rows.shape[0] > 1
                                        else np.zeros(rows.shape[1:])).tolist()


def equilateral_ks(shape):
    """Equilateral triangle sides: integer multiples of Δk, log-spaced from 2Δk to L/4·Δk."""
    l_min = min(shape)
    top = max(2, l_min // 4)
    mult = np.unique(np.round(np.geomspace(2, top, 7)).astype(int))
    return mult * fundamental(shape)


# -- power spectrum ----------------------------------------------------------------------------

def _ps_setup(shape, truth):
    from .spectrum import power_spectrum

    ps = power_spectrum(np.zeros((1, *shape), np.float32))
    return {"k": np.asarray(ps.k), "counts": np.asarray(ps.counts)}


def _ps_rows(block, axes):
    from .spectrum import power_spectrum

    return {"power": _f64(power_spectrum(block).power)}


def _ps_summary(rows, axes):
    p = _f64(rows["power"])
    mean, std = _mean_std(p)
    out = {"k": axes["k"].tolist(), "counts": axes["counts"].astype(float).tolist(), "mean": mean, "std": std}
    if p.shape[0] >= 3:
        use = p.std(axis=0) > 0
        r = np.corrcoef(p[:, use], rowvar=False) if use.sum() >= 2 else np.ones((1, 1))
        iu = np.triu_indices(r.shape[0], k=1)
        out["corr_offdiag_mean"] = float(np.mean(r[iu])) if iu[0].size else None
    return out


def _spectra(groups, truth):
    from .spectrum import power_spectrum

    ref, others, common = _sides(groups, truth)
    ps = {k: power_spectrum(v) for k, v in groups.items()}
    k_ps = next(iter(ps.values())).k
    spectra = {k: _f64(ps[k].power) for k in others}
    return k_ps, spectra, (None if ref is None else _f64(ps[truth].power)), common


def _ps_figure(groups, truth):
    from .. import plot as P

    k, spectra, t, common = _spectra(groups, truth)
    return P.plot_power_spectra(k, spectra, truth=t, residuals="ratio", residual_bins=RESIDUAL_K_BINS, **common)


def _ps_correlation_figure(groups, truth):
    from .. import plot as P

    k, spectra, t, common = _spectra(groups, truth)
    return P.plot_spectrum_correlation(k, spectra, truth=t, truth_label=common["truth_label"])


register(Statistic(
    name="power_spectrum", label="power spectrum", setup=_ps_setup, rows=_ps_rows, summary=_ps_summary,
    figures=(("power_spectrum", _ps_figure), ("spectrum_correlation", _ps_correlation_figure)),
    distances=(
        Distance("chi2", "P(k) χ²",
                 "mean over k of log²(P̄_a/P̄_b) / (s_rel²(1/m_a + 1/m_b)), s_rel the pooled relative spread "
                 "of the per-field P(k)", lambda a, b, ax: pooled_chi2(a["power"], b["power"], log=True), table=True),
        Distance("log_rms", "P(k) log-RMS",
                 "sqrt(mean over k of log²(P̄_a(k)/P̄_b(k))) on the bins where b has power",
                 lambda a, b, ax: log_rms(a["power"], b["power"]), table=True),
        Distance("corr_rms", "P(k) corr. RMS",
                 "RMS over k < k' of the difference of the correlation matrices of the per-field P(k)",
                 lambda a, b, ax: corr_rms(a["power"], b["power"]), table=True),
    )))


# -- pixel PDF ---------------------------------------------------------------------------------

def _pdf_setup(shape, truth):
    pix = np.asarray(truth, dtype=np.float64).ravel()
    grid = np.unique(np.quantile(pix, np.linspace(0.0, 1.0, PDF_GRID)))
    lo, hi = float(grid[0]), float(grid[-1])
    return {"grid": grid, "range": (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)}


def _pdf_rows(block, axes):
    from .pdf import moments

    x = _f64(block).reshape(block.shape[0], -1)
    grid = axes["grid"]
    lo, hi = axes["range"]
    xs = np.sort(x, axis=1)
    cdf = np.stack([np.searchsorted(row, grid, side="right") for row in xs]) / x.shape[1]
    hist = np.stack([np.histogram(row, bins=PDF_BINS, range=(lo, hi))[0] for row in x]) / x.shape[1]
    m = moments(block)
    return {"cdf": cdf, "hist": hist,
            "above": np.maximum(x - grid[-1], 0.0).mean(axis=1), "below": np.maximum(grid[0] - x, 0.0).mean(axis=1),
            "m1": x.mean(axis=1), "m2": (x * x).mean(axis=1),
            "moments": np.stack([_f64(v) for v in m], axis=1)}


def _pooled_pixel_std(a, b) -> np.ndarray:
    m1 = np.concatenate([a["m1"], b["m1"]], axis=1).mean(axis=1)
    m2 = np.concatenate([a["m2"], b["m2"]], axis=1).mean(axis=1)
    return np.sqrt(np.maximum(m2 - m1 * m1, 0.0))


def _w1(a, b, axes) -> np.ndarray:
    grid = axes["grid"]
    diff = np.abs(a["cdf"].mean(axis=1) - b["cdf"].mean(axis=1))
    # between grid points F is taken at the left point (each cell holds 1/1024 of the truth's
    # pixels); beyond the grid the tails are exact: ∫_{max}^∞ (1 − F) = E[(x − max)+], same below
    w1 = diff[:, :-1] @ np.diff(grid)
    w1 = w1 + np.abs(a["above"].mean(axis=1) - b["above"].mean(axis=1)) \
        + np.abs(a["below"].mean(axis=1) - b["below"].mean(axis=1))
    std = _pooled_pixel_std(a, b)
    return np.where(std > 0, w1 / np.where(std > 0, std, 1.0), w1)


def _ks(a, b, axes) -> np.ndarray:
    return np.max(np.abs(a["cdf"].mean(axis=1) - b["cdf"].mean(axis=1)), axis=1)


def _pdf_summary(rows, axes):
    lo, hi = axes["range"]
    width = (hi - lo) / PDF_BINS
    centers = lo + width * (np.arange(PDF_BINS) + 0.5)
    mass = _f64(rows["hist"]).mean(axis=0)
    mean, std = _mean_std(rows["moments"])
    return {"centers": centers.tolist(), "density": (mass / width).tolist(),
            "moment_names": ["mean", "std", "skewness", "kurtosis"], "moments_mean": mean, "moments_std": std}


def _pdf_figure(groups, truth):
    from .. import plot as P

    ref, others, common = _sides(groups, truth)
    return P.plot_pdfs(others, truth=ref, residuals="z" if ref is not None else None, **common)


register(Statistic(
    name="pdf", label="pixel PDF", setup=_pdf_setup, rows=_pdf_rows, summary=_pdf_summary,
    figures=(("pdf", _pdf_figure),),
    distances=(
        Distance("w1", "PDF W₁/σ", "Wasserstein-1 between the pooled pixel values / pooled pixel std of a ∪ b",
                 _w1, table=True),
        Distance("ks", "PDF KS", "two-sample Kolmogorov-Smirnov statistic of the pooled pixel values", _ks),
        Distance("moments_chi2", "moments χ²",
                 "pooled χ² per component of the per-field mean, std, skewness and excess kurtosis",
                 lambda a, b, ax: pooled_chi2(a["moments"], b["moments"])),
    )))


# -- bispectrum --------------------------------------------------------------------------------

def _bis_setup(shape, truth):
    return {"k": equilateral_ks(shape), "width": BISPECTRUM_WIDTH * fundamental(shape)}


def _bis_rows(block, axes):
    from .bispectrum import bispectrum_estimate

    ks = axes["k"]
    est = bispectrum_estimate(block, ks, ks, ks, width=axes["width"])
    return {"B": _f64(est.bispectrum), "Q": _f64(est.reduced)}


def _bis_summary(rows, axes):
    b_mean, b_std = _mean_std(rows["B"])
    q_mean, q_std = _mean_std(rows["Q"])
    return {"k": axes["k"].tolist(), "B_mean": b_mean, "B_std": b_std, "Q_mean": q_mean, "Q_std": q_std}


def _bis_figure(groups, truth):
    from .. import plot as P
    from .bispectrum import reduced_bispectrum

    ref, others, common = _sides(groups, truth)
    ks = equilateral_ks(next(iter(groups.values())).shape[-2:])
    q = {k: np.asarray(reduced_bispectrum(v, ks, ks, ks)) for k, v in others.items()}
    t = None if ref is None else np.asarray(reduced_bispectrum(ref, ks, ks, ks))
    return P.plot_bispectrum(ks, q, truth=t, ylabel="equilateral Q(k)", residuals="auto" if ref is not None else None,
                             **common)


register(Statistic(
    name="bispectrum", label="equilateral bispectrum", setup=_bis_setup, rows=_bis_rows, summary=_bis_summary,
    figures=(("bispectrum", _bis_figure),),
    distances=(
        Distance("chi2_B", "bispectrum χ²", "pooled χ² per component of the equilateral bispectrum B(k,k,k), "
                 "shells of width 2Δk", lambda a, b, ax: pooled_chi2(a["B"], b["B"]), table=True),
        Distance("chi2_Q", "reduced bispectrum χ²", "pooled χ² per component of the equilateral reduced "
                 "bispectrum Q(k,k,k), same shells", lambda a, b, ax: pooled_chi2(a["Q"], b["Q"])),
    )))


# -- Minkowski functionals ---------------------------------------------------------------------

def _mink_setup(shape, truth):
    return {"thresholds": MINKOWSKI_THRESHOLDS}


def _mink_rows(block, axes):
    from .minkowski import minkowski_functionals

    mf = minkowski_functionals(block, axes["thresholds"])
    return {"v": np.stack([_f64(v) for v in mf[1:]], axis=1)}


def _mink_summary(rows, axes):
    mean, std = _mean_std(rows["v"])
    return {"thresholds": axes["thresholds"].tolist(), "v0_mean": mean[0], "v1_mean": mean[1], "v2_mean": mean[2],
            "v0_std": std[0], "v1_std": std[1], "v2_std": std[2]}


def _mink_figure(groups, truth):
    from .. import plot as P
    from .minkowski import gaussian_minkowski, minkowski_functionals, minkowski_sigmas

    ref, others, common = _sides(groups, truth)
    nu = MINKOWSKI_FIGURE_NU

    def curves(v):
        mf = minkowski_functionals(v, nu)
        return np.asarray(mf.v0), np.asarray(mf.v1), np.asarray(mf.v2)

    s0, s1 = minkowski_sigmas(ref if ref is not None else next(iter(groups.values())))
    g = gaussian_minkowski(nu, s0, s1)
    return P.plot_minkowski(nu, {k: curves(v) for k, v in others.items()},
                            truth=None if ref is None else curves(ref), residuals="z" if ref is not None else None,
                            gaussian=(g.v0, g.v1, g.v2), gaussian_label="Gaussian (same σ₀, σ₁)", **common)


register(Statistic(
    name="minkowski", label="Minkowski functionals", setup=_mink_setup, rows=_mink_rows, summary=_mink_summary,
    figures=(("minkowski", _mink_figure),),
    distances=(Distance("chi2", "Minkowski χ²", "pooled χ² per component over V0, V1, V2 at all thresholds "
                        "(standardised fields)", lambda a, b, ax: pooled_chi2(a["v"], b["v"]), table=True),)))


# -- flatness ----------------------------------------------------------------------------------

def _flat_setup(shape, truth):
    from .structure import flatness

    r, _ = flatness(np.zeros((1, *shape), np.float32) + np.arange(shape[-1], dtype=np.float32))
    return {"r": np.asarray(r)}


def _flat_rows(block, axes):
    from .structure import flatness

    return {"f": _f64(flatness(block)[1])}


def _flat_summary(rows, axes):
    mean, std = _mean_std(rows["f"])
    return {"r": axes["r"].astype(float).tolist(), "mean": mean, "std": std}


def _flat_figure(groups, truth):
    from .. import plot as P
    from .structure import flatness

    ref, others, common = _sides(groups, truth)
    curves, r = {}, None
    for k, v in others.items():
        r, f = flatness(v)
        curves[k] = np.asarray(f)
    t = None
    if ref is not None:
        r, f = flatness(ref)
        t = np.asarray(f)
    return P.plot_structure_functions(np.asarray(r), curves, truth=t, ylabel="flatness S₄/S₂²",
                                      residuals="z" if ref is not None else None, **common)


register(Statistic(
    name="flatness", label="flatness of increments", setup=_flat_setup, rows=_flat_rows, summary=_flat_summary,
    figures=(("flatness", _flat_figure),),
    distances=(Distance("chi2", "flatness χ²", "pooled χ² per component of the flatness S4/S2² at all separations",
                        lambda a, b, ax: pooled_chi2(a["f"], b["f"])),)))


# -- peak counts (cosmic web) ------------------------------------------------------------------

def _reference_moments(x) -> tuple[float, float]:
    """Pooled pixel mean and std of an ensemble: the fixed μ, σ of the peak heights."""
    x = np.asarray(x)
    mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
    # a constant reference has no strict maxima at all; any σ > 0 then bins nothing
    return mean, (std if std > 0 else 1.0)


def _peak_setup(shape, truth):
    mean, std = _reference_moments(truth)
    return {"edges": PEAK_EDGES, "mean": mean, "std": std, "area": int(shape[0] * shape[1])}


def _peak_rows(block, axes):
    from .peaks import peak_counts

    pc = peak_counts(block, axes["edges"], mean=axes["mean"], std=axes["std"])
    return {"n": _f64(pc.counts) / pc.area}


def _json_edges(edges) -> list:
    return [float(e) if np.isfinite(e) else None for e in edges]  # None: −∞ first, +∞ last


def _peak_summary(rows, axes):
    n = _f64(rows["n"])
    mean, std = _mean_std(n)
    total = n.sum(axis=1)
    root_n = np.sqrt(n.shape[0])
    return {"edges": _json_edges(axes["edges"]), "nu_mean": axes["mean"], "nu_std": axes["std"],
            "mean": mean, "std": std, "error": (np.asarray(std) / root_n).tolist(),  # standard errors
            "total_mean": float(total.mean()),
            "total_error": float(total.std(ddof=1) / root_n) if n.shape[0] > 1 else 0.0}


def _peak_figure(groups, truth):
    from .. import plot as P
    from .peaks import peak_counts

    ref, others, common = _sides(groups, truth)
    mean, std = _reference_moments(ref if ref is not None else np.concatenate(list(groups.values())))
    edges = PEAK_FIGURE_EDGES

    def density(v):  # per pixel² and unit ν, per field
        return _f64(peak_counts(v, edges, mean=mean, std=std).counts) / (v.shape[-2] * v.shape[-1]) / np.diff(edges)

    return P.plot_peak_counts(0.5 * (edges[1:] + edges[:-1]), {k: density(v) for k, v in others.items()},
                              truth=None if ref is None else density(ref),
                              residuals="ratio" if ref is not None else None, **common)


register(Statistic(
    name="peak_counts", label="peak counts", setup=_peak_setup, rows=_peak_rows, summary=_peak_summary,
    figures=(("peak_counts", _peak_figure),), fields=("cosmic-web",),
    distances=(Distance("chi2", "peak counts χ²", "pooled χ² per component of the peaks (strict periodic "
                        "8-neighbour maxima) per pixel² in 11 height bins of ν = (u − μ)/σ, μ and σ the "
                        "truth's pooled pixel mean and std", lambda a, b, ax: pooled_chi2(a["n"], b["n"]),
                        table=True),)))


# -- scattering spectra (not in the default set: compare adds it) ------------------------------

SCATTERING_J = 3   # a few scales only: the large scales are judged by P(k), and ~300 numbers per field
SCATTERING_L = 4


def _scat_setup(shape, truth):
    from ..scattering import ScatteringSpectra, default_J

    J = min(SCATTERING_J, default_J(tuple(shape)))
    op = ScatteringSpectra(tuple(shape), J, SCATTERING_L)
    return {"J": int(J), "L": SCATTERING_L, "n_stats": int(op.n_stats), "op": op}


def _scat_rows(block, axes):
    return {"phi": _f64(axes["op"](block))}


def _scat_summary(rows, axes):
    phi = _f64(rows["phi"])
    return {"J": axes["J"], "L": axes["L"], "n_stats": axes["n_stats"], "mean": phi.mean(axis=0).tolist(),
            "std": phi.std(axis=0, ddof=1).tolist() if phi.shape[0] > 1 else None}


register(Statistic(
    name="scattering_spectra", label="scattering spectra", setup=_scat_setup, rows=_scat_rows,
    summary=_scat_summary,
    distances=(Distance("chi2", "scattering χ²", "pooled χ² per component of the isotropic scattering spectra "
                        "Φ (mean, log S2, S1/√S2, C01, C11; each field normalised by its own S2), J ≤ 3, L = 4",
                        lambda a, b, ax: pooled_chi2(a["phi"], b["phi"]), table=True),)), default=False)
