"""Locating κ_c of lattice φ⁴ from Binder-cumulant crossings (``phigen critical phi4``).

At fixed λ, U₄(κ) = 1 − ⟨m⁴⟩/(3⟨m²⟩²) rises from ≈ 0 (disordered) to ≈ 2/3 (ordered) ever more
steeply as L grows; the curves of two sizes cross near κ_c (at U* ≈ 0.611, 2D Ising class), with a
shift that vanishes as L → ∞. For each pair of consecutive sizes the crossing of ΔU₄(κ) = U₄(L₂) − U₄(L₁)
is the root of a cubic interpolation of ΔU₄ inside the grid interval where ΔU₄ changes sign;
its error combines a parametric bootstrap of the U₄ values within their (autocorrelation-aware,
jackknife) error bars and half the cubic-vs-chord difference. The reported ``kappa_c`` is the crossing of the two
largest sizes; ``kappa_c_err`` adds in quadrature its bootstrap error and, when there are ≥ 3 sizes,
half the shift from the previous pair's crossing (a finite-size systematic).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from . import errors as E
from .energies import Phi4
from .fields.phi4 import Phi4SamplerConfig, check_lattice_size, warm_up_phi4_chains
from .samplers.diagnostics import integrated_autocorrelation_time
from .samplers.runner import RunConfig, run_chain
from .stats.phi4 import binder_cumulant

__all__ = ["binder_curves", "binder_crossing", "crossing_point", "parse_kappa_range", "plot_binder_curves"]


def parse_kappa_range(text: str) -> np.ndarray:
    """``"START:STOP:NUM"`` → ``NUM`` evenly spaced κ values (inclusive), like ``numpy.linspace``."""
    parts = str(text).split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise E.ParameterError(f"--kappa must be START:STOP:NUM (e.g. 0.26:0.29:7); got {text!r}") from None
    if num < 2 or not (0 <= start < stop) or not math.isfinite(stop):
        raise E.ParameterError(f"--kappa needs 0 <= START < STOP and NUM >= 2; got {text!r}")
    return np.linspace(start, stop, num)


def _magnetisation(state):
    # module-level (not a lambda per κ): the runner's compiled chunk is cached by this function
    return {"m": jnp.mean(state.position, axis=(-2, -1))}


def binder_curves(lam: float, sizes: Sequence[int], kappas, *, n_steps: int = 2000,
                  config: Phi4SamplerConfig = Phi4SamplerConfig(n_chains=32), seed: int = 0,
                  progress: bool | None = None) -> dict:
    """U₄(κ) with error bars for each lattice size: ``{L: {"kappa", "binder", "binder_err", ...}}``."""
    sizes = [check_lattice_size(L) for L in sizes]
    if len(set(sizes)) != len(sizes):
        raise E.ParameterError(f"sizes must be distinct; got {sizes}")
    kappas = np.asarray(kappas, dtype=float)
    if kappas.ndim != 1 or kappas.size < 2 or np.any(np.diff(kappas) <= 0):
        raise E.ParameterError("kappas must be an increasing sequence of at least 2 values")
    for k in kappas:
        Phi4(float(k), lam)  # validate every point before spending time
    if n_steps < 100:
        raise E.ParameterError(f"n_steps must be >= 100 for a Binder estimate; got {n_steps}")
    key = jax.random.PRNGKey(seed)
    curves: dict = {}
    bar = tqdm(total=len(sizes) * len(kappas), desc="Binder scan", unit="point", disable=None if progress is None else not progress)
    with bar:
        for L in sizes:
            rows = {"kappa": [], "binder": [], "binder_err": [], "abs_m": [], "tau_int_m2": [], "step_size": [],
                    "acceptance": []}
            for i, kappa in enumerate(kappas):
                k = jax.random.fold_in(jax.random.fold_in(key, L), i)
                state, kernel, step_size, _ = warm_up_phi4_chains(k, L, float(kappa), lam, config, progress=False)
                res = run_chain(jax.random.fold_in(k, 99), kernel.step, state,
                                RunConfig(n_steps=n_steps, chunk_size=min(250, n_steps), progress=False),
                                observables=_magnetisation,
                                step_size=step_size)
                m = np.asarray(res.trace["m"], dtype=np.float64)  # (n_steps, C)
                u4 = binder_cumulant(m)
                rows["kappa"].append(float(kappa))
                rows["binder"].append(float(u4.value))
                rows["binder_err"].append(float(u4.error))
                rows["abs_m"].append(float(np.mean(np.abs(m))))
                rows["tau_int_m2"].append(float(integrated_autocorrelation_time((m * m).T).tau))
                rows["step_size"].append(step_size)
                rows["acceptance"].append(float(np.mean(res.info_summary.mean_acceptance)))
                bar.update(1)
            curves[int(L)] = rows
    return curves


def _bracket_root(kappa, d, i):
    """Root of ΔU₄ in [κ_i, κ_{i+1}]: cubic interpolation through up to 4 points around the bracket
    (the Binder curves are strongly curved near κ_c at large L), falling back to the chord."""
    lo, hi = kappa[i], kappa[i + 1]
    chord = lo - d[i] * (hi - lo) / (d[i + 1] - d[i])
    sel = np.arange(max(0, i - 1), min(len(kappa), i + 3))
    if sel.size >= 3:
        coef = np.polyfit(kappa[sel] - lo, d[sel], deg=min(3, sel.size - 1))
        roots = np.roots(coef)
        real = roots[np.abs(roots.imag) < 1e-12].real + lo
        inside = real[(real >= lo) & (real <= hi)]
        if inside.size:
            return float(inside[np.argmin(np.abs(inside - chord))]), float(chord)
    return float(chord), float(chord)


def crossing_point(kappa, u_small, err_small, u_large, err_large, *, n_boot: int = 2000, seed: int = 0):
    """κ where U₄ of the larger lattice crosses that of the smaller: ``(kappa_x, err, u_at_crossing)``.

    The root of ΔU₄ = U₄(L₂) − U₄(L₁) is taken inside the grid interval where ΔU₄ changes sign
    (cubic interpolation through the neighbouring points). ``err`` combines in quadrature a
    parametric bootstrap of the U₄ values within their error bars and half the difference between
    the cubic and the straight-chord root (an interpolation systematic). Raises ParameterError
    when ΔU₄ does not change sign inside the scanned range.
    """
    kappa = np.asarray(kappa, float)
    d = np.asarray(u_large, float) - np.asarray(u_small, float)
    s = np.sqrt(np.asarray(err_small, float) ** 2 + np.asarray(err_large, float) ** 2)
    sign = np.sign(d)
    changes = np.nonzero(sign[:-1] * sign[1:] < 0)[0]
    if changes.size == 0:
        where = "below" if np.all(d > 0) else "above"
        raise E.ParameterError(
            f"the Binder curves do not cross in κ ∈ [{kappa[0]:g}, {kappa[-1]:g}]: κ_c lies {where} the range; "
            "widen or move --kappa")
    # the upward crossing with the steepest rise (the finite-size crossing; noise makes flat wiggles)
    up = changes[d[changes + 1] > d[changes]]
    cand = up if up.size else changes
    i = int(cand[np.argmax(d[cand + 1] - d[cand])])
    root, chord = _bracket_root(kappa, d, i)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        db = d + rng.normal(size=d.size) * s
        if db[i] < 0 < db[i + 1] or db[i] > 0 > db[i + 1]:
            boots.append(_bracket_root(kappa, db, i)[0])
        else:  # the noise removed the sign change: the chord's extrapolation is still the estimate
            boots.append(kappa[i] - db[i] * (kappa[i + 1] - kappa[i]) / (db[i + 1] - db[i]))
    stat = float(np.std(boots))
    err = float(np.hypot(stat, 0.5 * abs(root - chord)))
    u_at = float(np.interp(root, kappa, np.asarray(u_large, float)))
    return float(root), err, u_at


def binder_crossing(lam: float, sizes: Sequence[int], kappas, *, n_steps: int = 2000,
                    config: Phi4SamplerConfig = Phi4SamplerConfig(n_chains=32), seed: int = 0,
                    progress: bool | None = None, json_path=None, plot_path=None) -> dict:
    """Estimate κ_c(λ) from Binder-cumulant crossings of consecutive lattice sizes.

    Returns (and with ``json_path`` writes) ``{"kappa_c", "kappa_c_err", "crossings": [...],
    "curves": {L: {...}}, "lam", "sizes", "n_steps", "config"}``; ``plot_path`` saves U₄(κ) per L.
    """
    sizes = sorted(int(L) for L in sizes)
    if len(sizes) < 2:
        raise E.ParameterError("a Binder crossing needs at least two lattice sizes")
    curves = binder_curves(lam, sizes, kappas, n_steps=n_steps, config=config, seed=seed, progress=progress)
    crossings = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        ca, cb = curves[a], curves[b]
        kx, err, ux = crossing_point(ca["kappa"], ca["binder"], ca["binder_err"], cb["binder"], cb["binder_err"],
                                     seed=seed)
        crossings.append({"sizes": [a, b], "kappa": kx, "kappa_err": err, "binder_at_crossing": ux})
    last = crossings[-1]
    syst = 0.5 * abs(last["kappa"] - crossings[-2]["kappa"]) if len(crossings) > 1 else 0.0
    result = {
        "lam": float(lam),
        "sizes": sizes,
        "kappa_c": last["kappa"],
        "kappa_c_err": float(math.hypot(last["kappa_err"], syst)),
        "kappa_c_stat_err": last["kappa_err"],
        "kappa_c_finite_size_err": syst,
        "binder_at_crossing": last["binder_at_crossing"],
        "crossings": crossings,
        "curves": {str(L): c for L, c in curves.items()},
        "n_steps": int(n_steps),
        "config": asdict(config),
        "seed": int(seed),
    }
    if json_path is not None:
        import json

        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    if plot_path is not None:
        from .plot import save_figure

        save_figure(plot_binder_curves(result), plot_path)
    return result


def plot_binder_curves(result: dict):
    """U₄(κ) per lattice size with error bars, the estimated κ_c band and U* ≈ 0.611."""
    from .plot import plot_series

    curves = result["curves"]
    series = {f"L = {L}": np.asarray(c["binder"]) for L, c in curves.items()}
    errs = {f"L = {L}": np.asarray(c["binder_err"]) for L, c in curves.items()}
    xs = {f"L = {L}": np.asarray(c["kappa"]) for L, c in curves.items()}
    fig = plot_series(xs, series, xlabel="κ", ylabel="Binder cumulant U₄", errors=errs, marker="o")
    ax = fig.axes[0]
    kc, ke = result["kappa_c"], result["kappa_c_err"]
    ax.axvspan(kc - ke, kc + ke, color="0.8", alpha=0.6, label=f"κ_c = {kc:.4f} ± {ke:.4f}")
    ax.axhline(0.611, color="0.4", linestyle=":", linewidth=1, label="U* ≈ 0.611 (2D Ising)")
    ax.set_title(f"φ⁴, λ = {result['lam']:g}")
    ax.legend(fontsize=8)
    return fig
