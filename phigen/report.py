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

FIGURE_NAMES = ("fields", "power_spectrum", "spectrum_correlation", "pdf", "minkowski", "bispectrum", "flatness")
# the statistics whose registered figures write_figures draws (phigen.stats.registry)
FIGURE_STATISTICS = ("power_spectrum", "pdf", "minkowski", "bispectrum", "flatness")


def _load(path, max_fields: int | None):
    with open_fields(path) as ds:
        n = len(ds) if max_fields is None else min(len(ds), int(max_fields))
        x = ds[:n]
        meta = {"path": str(ds.path), "field": ds.field, "generator": ds.generator, "n_fields": int(n),
                "n_in_file": len(ds), "sample_shape": list(ds.sample_shape), "params": ds.params}
        groups = getattr(ds, "groups", None)
        if groups is not None:
            meta["groups"] = np.asarray(groups)[:n]
    if x.ndim == 4:  # (N, C, H, W): statistics of the first channel, said in the report
        meta["channel"] = 0
        x = x[:, 0]
    return x, meta


def write_figures(groups: Mapping[str, np.ndarray], out_dir, *, truth: str | None = None,
                  names=FIGURE_NAMES, extra_statistics=()) -> dict[str, str]:
    """Standard figures for ensembles ``groups = {label: (N, H, W)}`` into ``out_dir``.

    ``truth`` names the reference group: drawn as its mean (thick line) with a ±2 standard-error
    band of that mean (2σ/√N), with each model as its mean (thin line) and, under each statistic,
    a residual panel: the ratio model/truth with the truth's ±2 s.e. relative band for P(k) (and for
    the bispectrum Q when the truth's Q is significantly positive), the z-score (Δmean/s.e.) with
    lines at ±2 for the PDF, Minkowski functionals, Q and the flatness. ``spectrum_correlation``:
    the correlation matrix across fields of P(k) per group and model − truth. Without a truth every
    group gets its own ±2 s.e. band and there are no residual panels. ``extra_statistics``: names of
    further registered statistics (e.g. a field kind's own, :func:`phigen.stats.registry.default_statistics`)
    whose figures are all drawn too. Returns ``{figure name: path}``.
    """
    from . import plot as P
    from .stats.registry import registered

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = {k: np.asarray(v, dtype=np.float32) for k, v in groups.items()}
    if truth is not None and truth not in groups:
        raise E.ParameterError(f"truth {truth!r} is not one of the groups {list(groups)}")
    paths: dict[str, str] = {}
    if "fields" in names:
        ref = {truth: groups[truth]} if truth else {}
        fig = P.plot_field_grids(ref | {k: v for k, v in groups.items() if k != truth}, n_per_group=4)
        paths["fields"] = str(P.save_figure(fig, out / "fields.png"))
    # every other figure belongs to a registered statistic (phigen.stats.registry: Statistic.figures)
    extra = tuple(n for n in extra_statistics if n not in FIGURE_STATISTICS)
    for stat in registered(FIGURE_STATISTICS + extra):
        for name, draw in stat.figures:
            if name in names or stat.name in extra:
                paths[name] = str(P.save_figure(draw(groups, truth), out / f"{name}.png"))
    return paths


def distance_table(comparison: dict) -> list[str]:
    """Markdown table of every distance: model value, the truth-vs-truth null (mean ± std, 95th
    percentile), the p-value and the verdict at 5 % (:func:`phigen.stats.compare`)."""
    lines = ["| statistic | distance | model | null mean ± std | null 95th pct. | p-value | verdict |",
             "|---|---|---|---|---|---|---|"]
    for stat, block in comparison.items():
        if not isinstance(block, dict) or "distances" not in block:
            continue
        for dname, d in block["distances"].items():
            lines.append(f"| {stat} | {d.get('label', dname)} | {d['model']:.4g} | {d['null_mean']:.4g} ± "
                         f"{d['null_std']:.2g} | {d['null_p95']:.4g} | {d['p_value']:.2g} | {d['verdict']} |")
    v = comparison.get("verdict")
    if v:
        lines.append(f"\n{v['n_off']} of {v['n_distances']} distances off at 5 % (a perfect model: "
                     f"{v['expected_off']:.2g} on average)")
    return lines


def stats_report(path, *, ref=None, out_dir=None, json_path=None, max_fields: int | None = 2048,
                 seed: int = 0, progress: bool | None = None) -> dict:
    """Statistics of the ensemble in ``path`` (and distances to the reference file ``ref``).

    Writes ``json_path`` (default ``out_dir/stats.json`` when ``out_dir`` is given) and, with
    ``out_dir``, the PNG figures of :data:`FIGURE_NAMES`. At most ``max_fields`` fields of each
    file are used. Returns the JSON dict plus ``summary_lines`` (what the CLI prints).
    """
    from .stats import compare, statistics_summary
    from .stats.registry import default_statistics

    x, meta = _load(path, max_fields)
    meta.pop("groups", None)
    result: dict = {"file": meta, "statistics": statistics_summary(x)}
    truth = None
    if ref is not None:
        truth, tmeta = _load(ref, max_fields)
        if truth.shape[-2:] != x.shape[-2:]:
            raise E.InputError(f"{path} has fields {x.shape[-2:]} but the reference {ref} has {truth.shape[-2:]}")
        result["reference"] = tmeta
        # the null's halves keep the reference's groups (simulations, runs, chains) whole
        result["comparison"] = compare(x, truth, seed=seed, truth_groups=tmeta.get("groups"),
                                       statistics=default_statistics(tmeta.get("field")))
        result["comparison"].pop("null", None)
        tmeta.pop("groups", None)
    if out_dir is not None:
        label = Path(path).stem
        groups = {label: x} if truth is None else {"truth": truth, label: x}
        kind = (tmeta if truth is not None else meta).get("field")
        result["figures"] = write_figures(groups, out_dir, truth="truth" if truth is not None else None,
                                          extra_statistics=default_statistics(kind)[len(default_statistics(None)):])
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
        lines.append(f"  distances to {ref} (model vs the truth-vs-truth null):")
        lines += ["  " + line for line in distance_table(result["comparison"])]
    if "json" in result:
        lines.append(f"  statistics written to {result['json']}")
    if "figures" in result:
        lines.append(f"  figures in {out_dir}: {', '.join(Path(p).name for p in result['figures'].values())}")
    result["summary_lines"] = lines
    return result
