"""Physics checks of 2D turbulence vorticity ensembles (docs/simulations.md): numbers and figures.

Fields are vorticity maps ω on [0, 2π)², ``(N, H, H)``. Definitions (integer wavenumbers k):

    E(k) = Σ_{|k'| ∈ shell k} |û(k')|² / (2 V²) = counts(k) · P_ω(k) / (2 V k²),   Σ_k E(k) = ½⟨|u|²⟩,

with P_ω = ⟨|ω̂|²⟩/V from :func:`phigen.stats.power_spectrum`. Reference slopes: k^−3 (Kraichnan
direct enstrophy cascade; linear drag steepens it) and k^−5/3 (inverse energy cascade). Budget at
steady state: ⟨ε_in⟩ = 2ν⟨Z⟩ + 2α⟨E⟩, Z = ½⟨ω²⟩, E = ½⟨|u|²⟩.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import errors as E
from .._validation import as_fields
from ..stats import (flatness, isotropic_average, moments, pixel_pdf, power_spectrum_2d, structure_functions,
                     wavenumbers)


def energy_spectrum(vorticity):
    """Shell energy spectrum of vorticity fields on [0, 2π)²: returns ``(k (nk,) integer
    wavenumbers, E (N, nk))`` with ``Σ_k E(k) = ½⟨|u|²⟩`` per field (module docstring)."""
    w = as_fields(vorticity, name="vorticity")
    n = w.shape[-1]
    if w.shape[-2] != n:
        raise E.InputError(f"vorticity maps must be square; got {w.shape[-2:]}")
    kgrid = wavenumbers(n) * n / (2.0 * math.pi)
    inv_k2 = np.where(kgrid > 0, 1.0 / np.where(kgrid > 0, kgrid, 1.0) ** 2, 0.0)
    # shell sums of |ω̂|²/(V k²) per mode (exact Parseval, not the bin-centre approximation)
    avg = isotropic_average(np.asarray(power_spectrum_2d(w)) * inv_k2)
    k = avg.k * n / (2.0 * math.pi)
    e = np.asarray(avg.power, dtype=np.float64) * avg.counts / (2.0 * n * n)
    return k, e


def spectral_slope(k, spectrum, k_range) -> float:
    """Least-squares slope of ``log E`` against ``log k`` over ``k_range = (k_lo, k_hi)``, using the
    ensemble mean of ``spectrum`` ((nk,) or (N, nk))."""
    k = np.asarray(k, dtype=np.float64)
    s = np.asarray(spectrum, dtype=np.float64)
    s = s.mean(axis=0) if s.ndim == 2 else s
    lo, hi = k_range
    sel = (k >= lo) & (k <= hi) & (s > 0)
    if sel.sum() < 3:
        raise E.ParameterError(f"k_range {k_range} holds fewer than 3 positive spectrum points")
    return float(np.polyfit(np.log(k[sel]), np.log(s[sel]), 1)[0])


def turbulence_checks(vorticity, *, viscosity: float | None = None, drag: float | None = None,
                      injection: float | None = None, forcing_wavenumber: int = 4, k_range=None) -> dict:
    """All turbulence checks of an ensemble of vorticity maps ``(N, H, H)`` on [0, 2π)².

    Returns a dict: ``k``, ``energy_spectrum`` (N, nk), ``slope`` of E(k) over ``k_range`` (default
    the direct-cascade range [k_f + 2, max(k_f + 5, H/4)]), ``energy`` ⟨E⟩,
    ``enstrophy`` ⟨Z⟩, ``moments`` of ω (skewness, excess kurtosis: 0 if Gaussian), ``pdf`` (ω/σ),
    structure functions ``S2``, ``S4`` and ``flatness`` F(r), and — given ν, α and the measured
    injection ⟨ε_in⟩ — the ``budget`` residual ``(ε_in − 2νZ − 2αE)/ε_in`` (its standard error from
    the field-to-field spread of 2νZ + 2αE).
    """
    w = np.asarray(as_fields(vorticity, name="vorticity"), dtype=np.float32)
    n = w.shape[-1]
    k, e = energy_spectrum(w)
    if k_range is None:
        k_range = (forcing_wavenumber + 2, max(forcing_wavenumber + 5, n / 4))
    energy = e.sum(axis=1)
    enstrophy = 0.5 * np.mean(w.astype(np.float64) ** 2, axis=(-2, -1))
    m = moments(w)
    sigma = float(np.std(w))
    centers, density = pixel_pdf(w / sigma, bins=81, range=(-8.0, 8.0))
    sf = structure_functions(w, orders=(2, 4))
    r, flat = flatness(w)
    out = {
        "k": k, "energy_spectrum": e, "k_range": tuple(float(v) for v in k_range),
        "slope": spectral_slope(k, e, k_range),
        "energy": float(energy.mean()), "enstrophy": float(enstrophy.mean()),
        "skewness": float(np.mean(np.asarray(m.skewness))),
        "excess_kurtosis": float(np.mean(np.asarray(m.kurtosis))),
        "sigma": sigma, "pdf": (np.asarray(centers), np.asarray(density)),
        "r": np.asarray(sf.r), "S2": np.asarray(sf.values[:, 0]), "S4": np.asarray(sf.values[:, 1]),
        "flatness": np.asarray(flat),
    }
    if viscosity is not None and drag is not None and injection is not None:
        dissip = 2.0 * viscosity * enstrophy + 2.0 * drag * energy
        mean = float(dissip.mean())
        out["budget"] = {
            "injection": float(injection), "dissipation": mean,
            "viscous": float(2.0 * viscosity * enstrophy.mean()), "drag": float(2.0 * drag * energy.mean()),
            "residual": (float(injection) - mean) / float(injection),
            "residual_stderr": float(dissip.std(ddof=1) / math.sqrt(len(dissip)) / injection) if len(dissip) > 1 else float("nan"),
        }
    return out


def _read(path, max_fields):
    from ..io import open_fields

    with open_fields(path) as ds:
        n = len(ds) if max_fields is None else min(len(ds), int(max_fields))
        x = np.asarray(ds[:n])
    import h5py

    with h5py.File(path, "r") as h5:
        params = json.loads(h5.attrs["params"])
        diag = {}
        if "diagnostics" in h5:
            diag = {k: json.loads(v) for k, v in h5["diagnostics"].attrs.items()}
    return x, params, diag


def check_turbulence_file(path, *, out_dir=None, max_fields: int | None = None, k_range=None) -> dict:
    """Run :func:`turbulence_checks` on a phigen turbulence file (vorticity in channel 0 when the
    file has channels), with ν, α and the injection recorded by the generator; write the figures
    into ``out_dir`` when given. ``k_range`` is the E(k) slope's fit range (default that of
    :func:`turbulence_checks`). Returns the checks dict (plus ``params`` and ``figures``)."""
    x, params, diag = _read(path, max_fields)
    if x.ndim == 4:
        x = x[:, 0]
    injection = (diag.get("energy_budget") or {}).get("injection")
    res = turbulence_checks(x, viscosity=params.get("viscosity"), drag=params.get("drag"), injection=injection,
                            forcing_wavenumber=int(params.get("forcing_wavenumber", 4)), k_range=k_range)
    res["params"] = params
    res["generator_budget"] = diag.get("energy_budget")
    if out_dir is not None:
        res["figures"] = plot_turbulence_checks(res, out_dir)
    return res


def plot_turbulence_checks(result: dict, out_dir) -> list:
    """Figures of a :func:`turbulence_checks` result into ``out_dir``: energy spectrum with k^−3 and
    k^−5/3 guides, vorticity PDF (log scale), structure functions S2, S4 and flatness. Returns paths."""
    from ..plot import plot_power_spectra, plot_series, plot_structure_functions, save_figure

    out = Path(out_dir)
    paths = [save_figure(plot_power_spectra(result["k"], {f"slope {result['slope']:.2f}": result["energy_spectrum"]},
                                            reference_slopes=(-3.0, -5.0 / 3.0), xlabel=r"$k$", ylabel=r"$E(k)$"),
                         out / "turbulence_energy_spectrum.png")]
    centers, dens = result["pdf"]
    dens = np.asarray(dens, dtype=np.float64)
    dens = np.where(dens > 0, dens, np.nan)
    fig = plot_series(centers, {"vorticity": dens}, xlabel=r"$\omega/\sigma_\omega$", ylabel="PDF", logy=True)
    fig.axes[0].plot(centers, np.exp(-centers**2 / 2) / math.sqrt(2 * math.pi), "k--", lw=1, label="Gaussian")
    fig.axes[0].legend(fontsize="small", frameon=False)
    paths.append(save_figure(fig, out / "turbulence_vorticity_pdf.png"))
    paths.append(save_figure(plot_structure_functions(result["r"], {"S2": result["S2"], "S4": result["S4"]},
                                                      ylabel=r"$S_p(r)$"), out / "turbulence_structure_functions.png"))
    paths.append(save_figure(plot_structure_functions(result["r"], {"flatness": result["flatness"]},
                                                      ylabel=r"$S_4/S_2^2$", loglog=False),
                             out / "turbulence_flatness.png"))
    return paths
