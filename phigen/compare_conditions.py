"""Judge conditional models condition by condition: ``phigen compare DATA --condition NAME[,NAME]``.

A file over a grid of conditions (a κ scan of φ⁴, cosmologies of the cosmic web: the values in its
``conditions`` columns) is split twice:

- whole condition values named in ``hold_out`` never reach the fit: the model is judged there at
  conditions it never saw (all their fields are the truth);
- at every other value, whole groups (chains, simulations) go to the truth side with ``test_fraction``,
  the rest to training (as ``compare`` splits one ensemble).

Every model (a conditional kind: its ``fit`` takes ``conditions``) is fitted once on the training side
and sampled at each condition value, as many fields as that value's truth holds. Per value: every
``compare`` distance to that value's truth with its own truth-vs-truth null (groups kept whole) and
verdict, and the field kind's own statistics (φ⁴: U₄ and χ with jackknife errors) of model and truth.
Written to ``out_dir``: ``metrics.json``, ``report.md`` (one table per model) and, where the kind has
statistics, their curves against the condition (model vs truth, held-out values marked).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import errors as E
from ._json import json_safe
from ._progress import say

__all__ = ["compare_conditions", "parse_hold_out"]


def parse_hold_out(text, names: Sequence[str]) -> np.ndarray:
    """``"0.295,0.34"`` (one condition) or ``"0.3:0.8;0.35:0.9"`` (values of several conditions joined by
    ``:``, condition points by ``;``), or an array → ``(K, D)`` float64 condition points."""
    d = len(names)
    if text is None:
        return np.zeros((0, d))
    if not isinstance(text, str):
        pts = np.asarray(text, np.float64).reshape(-1, d)
    else:
        sep = ";" if (d > 1 or ";" in text) else ","
        try:
            pts = np.asarray([[float(v) for v in item.split(":")] for item in text.split(sep) if item.strip()],
                             np.float64)
        except ValueError:
            raise E.ParameterError(f"hold_out must be condition values ({', '.join(names)}); got {text!r}") from None
    if pts.ndim != 2 or pts.shape[1] != d or not np.all(np.isfinite(pts)):
        raise E.ParameterError(f"hold_out needs points of {d} value(s) ({', '.join(names)}); got {text!r}")
    return pts


def _split(values, index, groups, hold, test_fraction, seed):
    """(train, truth) index arrays and the held-out flag per condition value (module docstring)."""
    from .splits import split_indices

    held = np.zeros(len(values), bool)
    for p in hold:
        hit = np.all(np.isclose(values, p[None], rtol=1e-6, atol=1e-9), axis=1)
        if not hit.any():
            raise E.ParameterError(f"hold_out value {p.tolist()} is not a condition of the file; its values: "
                                   + ", ".join(str(v.tolist()) for v in values))
        held |= hit
    train, truth = [], []
    for k in range(len(values)):
        idx = np.flatnonzero(index == k)
        if held[k]:
            truth.append(idx)
            continue
        g = None if groups is None else groups[idx]
        tr, te = split_indices(len(idx), test_fraction, seed=seed, groups=g)
        train.append(idx[tr])
        truth.append(idx[te])
    return np.concatenate(train), truth, held


def compare_conditions(data, *, condition, models: Sequence[str] = ("wcrg-conditional",), out_dir,
                       hold_out=None, test_fraction: float = 0.5, seed: int = 0,
                       fit_options: Mapping[str, Mapping] | None = None,
                       sample_options: Mapping[str, Mapping] | None = None, n_splits: int = 200,
                       progress=None) -> dict:
    """Fit each conditional model of ``models`` on the file ``data`` and judge it per value of
    ``condition`` (module docstring). ``hold_out``: condition values kept out of the fit (see
    :func:`parse_hold_out`). Returns the metrics written to ``out_dir/metrics.json``."""
    import jax

    from .compare import _symmetry_fit_options, compare_statistics, field_statistics
    from .io import open_fields
    from .models import get_model_class
    from .models._base import model_options
    from .models.api import condition_names
    from .stats import judge, null_reference

    t_start = time.perf_counter()
    names = condition_names(condition)
    fit_options, sample_options = dict(fit_options or {}), dict(sample_options or {})
    for kind in models:
        if "conditions" not in (model_options(get_model_class(kind), "fit") or ()):
            raise E.ParameterError(f"compare --condition judges conditional models; {kind} is not one")
    with open_fields(data) as ds:
        have = list(ds.condition_names or [])
        missing = [n for n in names if n not in have]
        if missing:
            raise E.ParameterError(f"{ds.path} has no condition {', '.join(missing)}; its conditions: "
                                   f"{', '.join(have) or 'none'}")
        x = ds.load()
        cond = np.asarray(ds.conditions(), np.float64)[:, [have.index(n) for n in names]]
        groups = None if ds.groups is None else np.asarray(ds.groups)
        field, params = ds.field, dict(ds.params or {})
    values, index = np.unique(cond, axis=0, return_inverse=True)
    index = index.reshape(-1)
    hold = parse_hold_out(hold_out, names)
    train, truths, held = _split(values, index, groups, hold, test_fraction, seed)
    say(progress, f"compare: {len(values)} values of {', '.join(names)}; {len(train)} training fields, "
                  f"{int(held.sum())} value(s) held out whole")
    stats = compare_statistics(field)
    refs, truth_stats = [], []
    for k, idx in enumerate(truths):
        p = {**params, **dict(zip(names, values[k].tolist()))}
        refs.append(null_reference(x[idx], groups=None if groups is None else groups[idx], n_splits=n_splits,
                                   seed=seed, statistics=stats))
        truth_stats.append(field_statistics(x[idx], field, p))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"data": str(data), "field": field, "condition_names": names, "values": values.tolist(),
                     "held_out": held.tolist(), "n_train": int(len(train)),
                     "n_truth": [int(len(t)) for t in truths], "test_fraction": test_fraction, "seed": seed,
                     "models": {}}
    key = jax.random.PRNGKey(seed)
    for m_i, kind in enumerate(models):
        opts, _ = _symmetry_fit_options(kind, field, fit_options.get(kind, {}))
        t0 = time.perf_counter()
        say(progress, f"compare: fitting {kind} on {len(train)} fields")
        model = get_model_class(kind).fit(x[train], key=jax.random.fold_in(key, 2 * m_i), conditions=cond[train],
                                          condition_names=names, progress=bool(progress) or None, **opts)
        fit_s = time.perf_counter() - t0
        rows = []
        for k, idx in enumerate(truths):
            p = {**params, **dict(zip(names, values[k].tolist()))}
            t0 = time.perf_counter()
            samples = np.asarray(model.sample(len(idx), key=jax.random.fold_in(key, 1000 * (m_i + 1) + k),
                                              condition=values[k], **sample_options.get(kind, {})))
            sample_s = time.perf_counter() - t0
            j = judge(samples, refs[k])
            dist = {d["label"]: {key_: d[key_] for key_ in ("model", "null_mean", "null_p95", "p_value", "verdict")}
                    for s in j.values() if isinstance(s, dict) and "distances" in s for d in s["distances"].values()}
            rows.append({"value": values[k].tolist(), "held_out": bool(held[k]), "n": int(len(idx)),
                         "n_off": j["verdict"]["n_off"], "n_distances": j["verdict"]["n_distances"],
                         "distances": dist, "statistics": field_statistics(samples, field, p),
                         "truth_statistics": truth_stats[k], "sample_seconds": sample_s})
            say(progress, f"compare: {kind} at {dict(zip(names, values[k].tolist()))}: "
                          f"{rows[-1]['n_off']}/{rows[-1]['n_distances']} off")
        metrics["models"][kind] = {"n_params": int(model.n_params), "fit_seconds": fit_s, "options": opts,
                                   "rows": rows}
    metrics["seconds"] = time.perf_counter() - t_start
    metrics["figures"] = _figures(metrics, out)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=1) + "\n")
    (out / "report.md").write_text(_markdown(metrics))
    say(progress, f"compare: report in {out / 'report.md'}")
    return metrics


def _figures(metrics: dict, out: Path) -> dict:
    """One figure per field statistic (U₄, χ, …): model vs truth against the first condition, with
    jackknife error bars; the held-out values are listed in the title."""
    from .plot import plot_series, save_figure

    figures = {}
    vals = np.asarray(metrics["values"])[:, 0]
    name = metrics["condition_names"][0]
    for kind, m in metrics["models"].items():
        keys = sorted(set().union(*(r["truth_statistics"].keys() for r in m["rows"])))
        for key in keys:
            if not all(key in r["truth_statistics"] and key in r["statistics"] for r in m["rows"]):
                continue
            series = {"truth": np.asarray([r["truth_statistics"][key]["value"] for r in m["rows"]]),
                      kind: np.asarray([r["statistics"][key]["value"] for r in m["rows"]])}
            errors = {"truth": np.asarray([r["truth_statistics"][key]["error"] for r in m["rows"]]),
                      kind: np.asarray([r["statistics"][key]["error"] for r in m["rows"]])}
            fig = plot_series(vals, series, xlabel=name, ylabel=key, errors=errors, marker="o")
            held = [v for v, h in zip(vals, metrics["held_out"]) if h]
            if held:
                ax = fig.axes[0]
                for v in held:
                    ax.axvline(v, color="0.8", linestyle=":", zorder=0)
                ax.set_title(f"held out: {', '.join(f'{v:g}' for v in held)} (dotted)")
            path = save_figure(fig, out / "figures" / f"{kind}_{key}.png")
            figures[f"{kind}:{key}"] = str(path)
    return figures


def _markdown(metrics: dict) -> str:
    names = metrics["condition_names"]
    lines = [f"# Per-condition comparison: {metrics['data']}", "",
             f"{metrics['field']} fields over {len(metrics['values'])} values of {', '.join(names)}; "
             f"{metrics['n_train']} training fields; values held out whole: "
             + ("; ".join("/".join(f"{u:g}" for u in v) for v, h in zip(metrics["values"], metrics["held_out"]) if h)
                or "none") + ".", ""]
    for kind, m in metrics["models"].items():
        labels = list(m["rows"][0]["distances"]) if m["rows"] else []
        stat_keys = sorted(set().union(*(r["truth_statistics"].keys() for r in m["rows"])))
        lines += [f"## {kind} ({m['n_params']} parameters, fit {m['fit_seconds']:.1f} s)", "",
                  "| " + " | ".join(names) + " | held out | truth fields | off | "
                  + " | ".join(labels) + "".join(f" | {k} model | {k} truth" for k in stat_keys) + " |",
                  "|" + "---|" * (len(names) + 3 + len(labels) + 2 * len(stat_keys))]
        for r in m["rows"]:
            cells = [f"{v:g}" for v in r["value"]] + ["yes" if r["held_out"] else "", str(r["n"]),
                                                      f"{r['n_off']}/{r['n_distances']}"]
            for lab in labels:
                d = r["distances"][lab]
                cells.append(f"{d['model']:.3g}" + (" ✗" if d["verdict"] == "off" else ""))
            for k in stat_keys:
                for src in (r["statistics"], r["truth_statistics"]):
                    s = src.get(k)
                    cells.append("—" if s is None else f"{s['value']:.4g} ± {s['error']:.2g}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for label, path in metrics.get("figures", {}).items():
        lines.append(f"![{label}]({Path(path).relative_to(Path(path).parents[1])})")
    return "\n".join(lines) + "\n"
