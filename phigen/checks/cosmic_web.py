"""Physics checks of cosmic-web simulations and maps (docs/simulations.md): numbers and figures.

- 3D: the measured matter power spectrum (CIC window deconvolved) against linear theory × D(z)²
  at low k, with the cosmic-variance error of each shell, σ_P/P = 1/√(independent modes);
- 2D maps ``y = log(1 + δ)``: power spectrum of δ (physical units), log-density PDF, moments
  (δ is positively skewed), reduced bispectrum Q = B/(P₁P₂+P₂P₃+P₃P₁) equilateral and squeezed,
  peak counts (local maxima of the standardised map by height), Minkowski functionals against the
  Gaussian closed form.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import errors as E
from .._validation import as_fields
from ..stats import (gaussian_minkowski, minkowski_functionals, minkowski_sigmas, moments, pixel_pdf,
                     power_spectrum, reduced_bispectrum)


def linear_theory_comparison(delta, box: float, cosmology=None, *, k_max: float | None = None) -> dict:
    """Measured 3D power of ``delta (N, N, N)`` (CIC-deconvolved) against ``P_L(k)·D(a=1)²``.

    Returns ``k``, ``power``, ``linear``, ``ratio`` = P/P_L and ``ratio_error`` = 1/√modes (cosmic
    variance of one box), ``modes``, and over k ≤ ``k_max`` (default k_Nyquist/8) the inverse-variance
    ``mean_ratio``, its ``mean_ratio_error`` and ``chi2``/``dof`` of ratio = 1.
    """
    from ..fields.cosmic_web import Cosmology, linear_power, matter_power_3d

    cosmology = Cosmology() if cosmology is None else Cosmology(*cosmology)
    d = np.asarray(delta, dtype=np.float64)
    k, p, modes = matter_power_3d(d, box, deconvolve_cic=True)
    lin = linear_power(k, cosmology)
    ratio = p / lin
    err = 1.0 / np.sqrt(modes)
    k_max = math.pi * d.shape[0] / box / 8.0 if k_max is None else float(k_max)
    sel = k <= k_max
    if not sel.any():
        raise E.ParameterError(f"no shell below k_max = {k_max}")
    wts = 1.0 / err[sel] ** 2
    mean = float(np.sum(wts * ratio[sel]) / wts.sum())
    return {"k": k, "power": p, "linear": lin, "ratio": ratio, "ratio_error": err, "modes": modes,
            "k_max": k_max, "mean_ratio": mean, "mean_ratio_error": float(1.0 / math.sqrt(wts.sum())),
            "chi2": float(np.sum(((ratio[sel] - 1.0) / err[sel]) ** 2)), "dof": int(sel.sum())}


def peak_counts(fields, bins=None) -> tuple[np.ndarray, np.ndarray]:
    """Peak counts of each field in units of its *own* mean and std (a map-by-map check; the
    pooled-normalised statistic of the comparisons is :func:`phigen.stats.peak_counts`, which does
    the counting here too: strict maxima over the 8 periodic neighbours, bin b holding
    e_b ≤ ν < e_{b+1}). Returns ``(edges (nb+1,), counts (N, nb))`` (default bins: −2…6 in steps of 0.5)."""
    from ..stats.peaks import peak_counts as count_peaks

    x = np.asarray(as_fields(fields), dtype=np.float64)
    x = (x - x.mean(axis=(-2, -1), keepdims=True)) / x.std(axis=(-2, -1), keepdims=True)
    edges = np.arange(-2.0, 6.01, 0.5) if bins is None else np.asarray(bins, dtype=np.float64)
    return edges, np.asarray(count_peaks(x.astype(np.float32), edges, mean=0.0, std=1.0).counts)


def cosmic_web_checks(log_maps, *, box: float | None = None) -> dict:
    """Checks of ``log(1 + δ)`` maps ``(N, H, H)`` (``box`` the map side in Mpc/h for physical k).

    Returns: ``k``, ``power`` (N, nk) of δ; ``moments_delta`` and ``moments_log`` (mean, std,
    skewness, excess kurtosis, each averaged over maps); ``pdf`` (centres, density) of the log map;
    ``bispectrum_k`` and ``Q_equilateral`` (N, nk) / ``Q_squeezed`` (N, nk) of δ (k_long = 2Δk);
    ``peaks`` (edges, counts (N, nb)); ``minkowski`` of the log maps with its ``gaussian`` closed form.
    """
    y = np.asarray(as_fields(log_maps, name="log_maps"), dtype=np.float32)
    delta = np.expm1(y.astype(np.float64)).astype(np.float32)
    n = y.shape[-1]
    ps = power_spectrum(delta, box_size=box) if box is not None else power_spectrum(delta)
    md, ml = moments(delta), moments(y)
    avg = lambda m: {f: float(np.mean(np.asarray(getattr(m, f)))) for f in ("mean", "std", "skewness", "kurtosis")}
    centers, dens = pixel_pdf(y, bins=60)
    dk = 2.0 * math.pi / n
    ks = dk * np.unique(np.round(np.geomspace(3, n / 4, 6)))
    q_eq = reduced_bispectrum(delta, ks, ks, ks)
    k_long = 2.0 * dk
    ks_sq = ks[ks >= k_long]
    q_sq = reduced_bispectrum(delta, np.full_like(ks_sq, k_long), ks_sq, ks_sq)
    mf = minkowski_functionals(y)
    s0, s1 = minkowski_sigmas(y)
    gauss = gaussian_minkowski(mf.thresholds, s0, s1, delta_width=0.2)
    edges, peaks = peak_counts(y)
    scale = (n / box) if box is not None else 1.0  # rad/pixel -> h/Mpc
    return {"k": np.asarray(ps.k), "power": np.asarray(ps.power), "moments_delta": avg(md), "moments_log": avg(ml),
            "pdf": (np.asarray(centers), np.asarray(dens)), "bispectrum_k": ks * scale,
            "Q_equilateral": np.asarray(q_eq), "bispectrum_k_squeezed": ks_sq * scale, "k_long": k_long * scale,
            "Q_squeezed": np.asarray(q_sq), "peaks": (edges, peaks), "minkowski": mf, "minkowski_gaussian": gauss}


def check_cosmic_web_file(path, *, out_dir=None, max_fields: int | None = None) -> dict:
    """Run :func:`cosmic_web_checks` on a phigen cosmic-web file (box from its parameters); figures into
    ``out_dir`` when given. With per-sample ``conditions`` the result also holds them."""
    import h5py

    from ..io import open_fields

    with open_fields(path) as ds:
        n = len(ds) if max_fields is None else min(len(ds), int(max_fields))
        x = np.asarray(ds[:n])
    with h5py.File(path, "r") as h5:
        params = json.loads(h5.attrs["params"])
        cond = np.asarray(h5["conditions"][:n]) if "conditions" in h5 else None
    res = cosmic_web_checks(x, box=params.get("box"))
    res["params"] = params
    res["conditions"] = cond
    if out_dir is not None:
        res["figures"] = plot_cosmic_web_checks(res, out_dir)
    return res


def plot_linear_theory(comparison: dict, path):
    """Figure: measured 3D P(k) against linear theory (with the cosmic-variance band), saved to ``path``."""
    from ..plot import plot_power_spectra, save_figure

    fig = plot_power_spectra(comparison["k"], {"N-body (CIC-deconvolved)": comparison["power"]},
                             truth=None, xlabel=r"$k\ [h/\mathrm{Mpc}]$", ylabel=r"$P(k)\ [(\mathrm{Mpc}/h)^3]$")
    ax = fig.axes[0]
    ax.plot(comparison["k"], comparison["linear"], "k--", label=r"linear $\times D^2$")
    ax.fill_between(comparison["k"], comparison["linear"] * (1 - comparison["ratio_error"]),
                    comparison["linear"] * (1 + comparison["ratio_error"]), color="0.7", alpha=0.4)
    ax.axvline(comparison["k_max"], color="0.5", lw=0.8, ls=":")
    ax.legend(fontsize="small", frameon=False)
    return save_figure(fig, path)


def plot_cosmic_web_checks(result: dict, out_dir) -> list:
    """Figures of a :func:`cosmic_web_checks` result into ``out_dir``: P(k) of δ, log-density PDF,
    reduced bispectrum (equilateral, squeezed), peak counts, Minkowski functionals. Returns paths."""
    from ..plot import plot_bispectrum, plot_minkowski, plot_power_spectra, plot_series, save_figure

    out = Path(out_dir)
    phys = "params" in result and result["params"].get("box") is not None
    klabel = r"$k\ [h/\mathrm{Mpc}]$" if phys else r"$k$"
    paths = [save_figure(plot_power_spectra(result["k"], {"maps": result["power"]}, xlabel=klabel,
                                            ylabel=r"$P_\delta(k)$"), out / "cosmic_web_power.png")]
    centers, dens = result["pdf"]
    dens = np.where(np.asarray(dens) > 0, dens, np.nan)
    paths.append(save_figure(plot_series(centers, {"maps": dens}, xlabel=r"$\log(1+\delta)$", ylabel="PDF",
                                         logy=True), out / "cosmic_web_log_pdf.png"))
    fig = plot_bispectrum(result["bispectrum_k"], {"equilateral": result["Q_equilateral"]}, xlabel=klabel)
    fig.axes[0].plot(result["bispectrum_k_squeezed"], np.nanmean(result["Q_squeezed"], axis=0), "o-",
                     label=f"squeezed, $k_1$={result['k_long']:.3g}")
    fig.axes[0].legend(fontsize="small", frameon=False)
    paths.append(save_figure(fig, out / "cosmic_web_bispectrum.png"))
    edges, counts = result["peaks"]
    paths.append(save_figure(plot_series(0.5 * (edges[1:] + edges[:-1]), {"peaks per map": counts},
                                         xlabel=r"peak height $\nu$", ylabel="count", marker="o"),
                             out / "cosmic_web_peaks.png"))
    mf, g = result["minkowski"], result["minkowski_gaussian"]
    paths.append(save_figure(plot_minkowski(mf.thresholds, {"maps": mf}, gaussian=g), out / "cosmic_web_minkowski.png"))
    return paths
