"""Statistics reports of phigen files: JSON numbers and PNG figures (``phigen stats``).

:func:`stats_report` computes the statistics suite of one ensemble and, given a reference (the
truth), every distance next to the truth-vs-truth floor; :func:`write_figures` draws the standard
figures for any set of ensembles (reused by the comparison harness).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from . import errors as E
from .io import open_fields

__all__ = ["stats_report", "write_figures", "distance_table", "FIGURE_NAMES"]

FIGURE_NAMES = ("fields", "power_spectrum", "pdf", "minkowski", "bispectrum", "flatness")
_MINKOWSKI_NU = np.linspace(-3.0, 3.0, 25)


def _load(path, max_fields: int | None):
    with open_fields(path) as ds:
        n = len(ds) if max_fields is None else min(len(ds), int(max_fields))
        x = ds[:n]
        meta = {"path": str(ds.path), "field": ds.field, "generator": ds.generator, "n_fields": int(n),
                "n_in_file": len(ds), "sample_shape": list(ds.sample_shape), "params": ds.params}
    if x.ndim == 4:  # (N, C, H, W): statistics of the first channel, said in the report
        meta["channel"] = 0
        x = x[:, 0]
    return x, meta


def write_figures(groups: Mapping[str, np.ndarray], out_dir, *, truth: str | None = None,
                  names=FIGURE_NAMES) -> dict[str, str]:
    """Standard figures for ensembles ``groups = {label: (N, H, W)}`` into ``out_dir``.

    ``truth`` names the group drawn as the reference (thick line and ±1σ band across its fields).
    Returns ``{figure name: path}``.
    """
    from . import plot as P
    from .stats import (flatness, reduced_bispectrum, gaussian_minkowski, minkowski_functionals,
                        minkowski_sigmas, power_spectrum)
    from .stats.compare import _equilateral_ks

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = {k: np.asarray(v, dtype=np.float32) for k, v in groups.items()}
    if truth is not None and truth not in groups:
        raise E.ParameterError(f"truth {truth!r} is not one of the groups {list(groups)}")
    others = {k: v for k, v in groups.items() if k != truth}
    ref = groups.get(truth) if truth else None
    paths: dict[str, str] = {}

    def save(name, fig):
        paths[name] = str(P.save_figure(fig, out / f"{name}.png"))

    if "fields" in names:
        ordered = ({truth: ref} if truth else {}) | others
        save("fields", P.plot_field_grids(ordered, n_per_group=4))
    if "power_spectrum" in names:
        spectra = {k: np.asarray(power_spectrum(v).power) for k, v in others.items()}
        ps_ref = power_spectrum(ref if ref is not None else next(iter(groups.values())))
        save("power_spectrum", P.plot_power_spectra(
            ps_ref.k, spectra, truth=None if ref is None else np.asarray(ps_ref.power), truth_label=truth or "truth"))
    if "pdf" in names:
        save("pdf", P.plot_pdfs(others, truth=ref, truth_label=truth or "truth"))
    if "minkowski" in names:
        curves = {}
        for k, v in others.items():
            mf = minkowski_functionals(v, _MINKOWSKI_NU)
            curves[k] = (np.asarray(mf.v0), np.asarray(mf.v1), np.asarray(mf.v2))
        gauss_src = ref if ref is not None else next(iter(groups.values()))
        s0, s1 = minkowski_sigmas(gauss_src)
        g = gaussian_minkowski(_MINKOWSKI_NU, s0, s1)
        t = None
        if ref is not None:
            mf = minkowski_functionals(ref, _MINKOWSKI_NU)
            t = (np.asarray(mf.v0), np.asarray(mf.v1), np.asarray(mf.v2))
        save("minkowski", P.plot_minkowski(_MINKOWSKI_NU, curves, truth=t, truth_label=truth or "truth",
                                           gaussian=(g.v0, g.v1, g.v2), gaussian_label="Gaussian (same σ₀, σ₁)"))
    if "bispectrum" in names:
        ks = _equilateral_ks(next(iter(groups.values())).shape[-2:])
        q = {k: np.asarray(reduced_bispectrum(v, ks, ks, ks)) for k, v in others.items()}
        t = None if ref is None else np.asarray(reduced_bispectrum(ref, ks, ks, ks))
        save("bispectrum", P.plot_bispectrum(ks, q, truth=t, truth_label=truth or "truth",
                                             ylabel="equilateral Q(k)"))
    if "flatness" in names:
        curves, r = {}, None
        for k, v in others.items():
            r, f = flatness(v)
            curves[k] = np.asarray(f)
        t = None
        if ref is not None:
            r, f = flatness(ref)
            t = np.asarray(f)
        save("flatness", P.plot_structure_functions(np.asarray(r), curves, truth=t, truth_label=truth or "truth",
                                                    ylabel="flatness S₄/S₂²"))
    return paths


def distance_table(comparison: dict) -> list[str]:
    """Markdown table of every distance: model vs truth-vs-truth floor (mean ± std over splits)."""
    lines = ["| statistic | distance | model | floor (truth vs truth) | model/floor |", "|---|---|---|---|---|"]
    for stat, block in comparison.items():
        if stat == "meta":
            continue
        for dname, d in block["distances"].items():
            ratio = d["model"] / d["floor"] if d["floor"] > 0 else float("inf")
            lines.append(f"| {stat} | {dname} | {d['model']:.4g} ± {d['model_std']:.2g} | "
                         f"{d['floor']:.4g} ± {d['floor_std']:.2g} | {ratio:.3g} |")
    return lines


def stats_report(path, *, ref=None, out_dir=None, json_path=None, max_fields: int | None = 2048,
                 seed: int = 0, progress: bool | None = None) -> dict:
    """Statistics of the ensemble in ``path`` (and distances to the reference file ``ref``).

    Writes ``json_path`` (default ``out_dir/stats.json`` when ``out_dir`` is given) and, with
    ``out_dir``, the PNG figures of :data:`FIGURE_NAMES`. At most ``max_fields`` fields of each
    file are used. Returns the JSON dict plus ``summary_lines`` (what the CLI prints).
    """
    from .stats import compare, statistics_summary

    x, meta = _load(path, max_fields)
    result: dict = {"file": meta, "statistics": statistics_summary(x)}
    truth = None
    if ref is not None:
        truth, tmeta = _load(ref, max_fields)
        if truth.shape[-2:] != x.shape[-2:]:
            raise E.InputError(f"{path} has fields {x.shape[-2:]} but the reference {ref} has {truth.shape[-2:]}")
        result["reference"] = tmeta
        result["comparison"] = compare(x, truth, seed=seed)
    if out_dir is not None:
        label = Path(path).stem
        groups = {label: x} if truth is None else {"truth": truth, label: x}
        result["figures"] = write_figures(groups, out_dir, truth="truth" if truth is not None else None)
        if json_path is None:
            json_path = Path(out_dir) / "stats.json"
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=1) + "\n")
        result["json"] = str(json_path)

    s = result["statistics"]
    mom = dict(zip(s["pdf"]["moment_names"], s["pdf"]["moments_mean"]))
    lines = [f"{meta['path']}: {meta['n_fields']} {meta['field']} fields of {x.shape[-2]}×{x.shape[-1]}",
             f"  pixel mean {mom['mean']:.4g}, std {mom['std']:.4g}, skewness {mom['skewness']:.3g}, "
             f"kurtosis {mom['kurtosis']:.3g}"]
    if "comparison" in result:
        lines.append(f"  distances to {ref} (model vs truth-vs-truth floor):")
        lines += ["  " + line for line in distance_table(result["comparison"])]
    if "json" in result:
        lines.append(f"  statistics written to {result['json']}")
    if "figures" in result:
        lines.append(f"  figures in {out_dir}: {', '.join(Path(p).name for p in result['figures'].values())}")
    result["summary_lines"] = lines
    return result
