"""``phigen compare``: fit, sample and judge several models on one dataset, with one report.

The dataset's deterministic split (:meth:`FieldDataset.split` with ``seed``) gives a training part
and a held-out truth. Each model is fitted on the training part (or loaded from a model file),
samples as many fields as the held-out set, and is judged by :func:`phigen.stats.compare` next to
the truth-vs-truth floor (DESIGN §10), by field-specific statistics (φ⁴: Binder U₄ and χ;
turbulence: flatness at the smallest separation; cosmic web: peak counts) and by the memorisation
check (:func:`phigen.stats.memorisation.memorisation_check`). ``out_dir`` receives ``report.md``,
``report.html``, ``metrics.json``, ``figures/*.png``, ``samples/<model>.h5`` and the fitted
``models/<model>.h5``.
"""

from __future__ import annotations

import html
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from . import errors as E

__all__ = ["compare_models", "TABLE_COLUMNS"]

# (statistic, distance) shown in the table; every distance is in metrics.json.
TABLE_COLUMNS = (("power_spectrum", "chi2", "P(k) χ²"), ("pdf", "w1", "PDF W₁/σ"),
                 ("bispectrum", "chi2_B", "bispectrum χ²"), ("minkowski", "chi2", "Minkowski χ²"))


def _say(progress, msg: str) -> None:
    if callable(progress):
        progress(msg)
    elif progress:
        print(msg, file=sys.stderr, flush=True)


def _finite(obj):
    """JSON-safe copy: numpy → Python, non-finite floats → None (so metrics.json is strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _mean_se(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"value": float("nan"), "error": float("nan")}
    return {"value": float(v.mean()), "error": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0}


def field_statistics(fields, field: str, params: Mapping) -> dict:
    """Field-specific statistics of an ensemble ``(N, H, W)``: ``{name: {"value", "error"}}``.

    φ⁴ (needs params ``kappa``, ``lam``): Binder ``U4`` and ``chi`` (:func:`phi4_observables`,
    the fields read as independent configurations); turbulence: ``flatness_r1`` = S₄/S₂² at the
    smallest separation; cosmic web: ``peaks`` (local maxima per field) and ``peaks_nu_gt_2``
    (those higher than 2σ). Other fields: empty.
    """
    x = np.asarray(fields, dtype=np.float32)
    if field == "phi4" and "kappa" in params and "lam" in params:
        from .stats.phi4 import phi4_observables

        # The ensembles compared are independent draws (model samples; truth thinned by the
        # generator), so the jackknife blocks need not be τ_int-sized — and the τ_int estimate of
        # a few dozen fields is too noisy to size them.
        obs = phi4_observables(x, float(params["kappa"]), float(params["lam"]), n_bins=min(len(x), 32))
        return {"U4": {"value": float(obs["binder"].value), "error": float(obs["binder"].error)},
                "chi": {"value": float(obs["chi"].value), "error": float(obs["chi"].error)}}
    if field == "turbulence":
        from .stats.structure import flatness

        r, f = flatness(x)
        return {"flatness_r1": {**_mean_se(np.asarray(f)[:, 0]), "r": float(np.asarray(r)[0])}}
    if field == "cosmic-web":
        from .checks.cosmic_web import peak_counts

        edges, counts = peak_counts(x)
        counts = np.asarray(counts)
        high = counts[:, edges[:-1] >= 2.0].sum(axis=1)
        return {"peaks": _mean_se(counts.sum(axis=1)), "peaks_nu_gt_2": _mean_se(high)}
    return {}


_FIELD_LABELS = {"U4": "U₄", "chi": "χ", "flatness_r1": "flatness (r=1)", "peaks": "peaks/field",
                 "peaks_nu_gt_2": "peaks ν>2"}


def _default_symmetries(field: str) -> tuple[str, ...]:
    # φ → −φ is a symmetry of φ⁴ and (with a reflection) of 2D vorticity, not of a log-density map.
    return ("shifts", "dihedral") if field == "cosmic-web" else ("shifts", "dihedral", "sign")


def _fmt(v, err=None, digits=4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    s = f"{v:.{digits}g}"
    if err is not None and math.isfinite(err):
        s += f" ± {err:.2g}"
    return s


def _table(metrics: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings) of the one report table: the floor first, then each model."""
    field_keys = list(metrics["truth"]["field_statistics"])
    header = (["model"] + [c[2] for c in TABLE_COLUMNS] + [_FIELD_LABELS.get(k, k) for k in field_keys]
              + ["memorised?", "parameters", "fit time (s)", "sampling (s/field)"])
    rows = []
    first = next(iter(metrics["models"].values()))["distances"]
    floor = ["truth vs truth (floor)"] + [_fmt(first[s][d]["floor"], first[s][d]["floor_std"]) for s, d, _ in TABLE_COLUMNS]
    floor += [_fmt(metrics["truth"]["field_statistics"][k]["value"], metrics["truth"]["field_statistics"][k]["error"])
              for k in field_keys]
    rows.append(floor + ["—", "—", "—", "—"])
    for name, m in metrics["models"].items():
        row = [name] + [_fmt(m["distances"][s][d]["model"], m["distances"][s][d]["model_std"]) for s, d, _ in TABLE_COLUMNS]
        row += [_fmt(m["field_statistics"][k]["value"], m["field_statistics"][k]["error"]) for k in field_keys]
        mem = m["memorisation"]
        row += [f"{'YES' if mem['memorised'] else 'no'} ({mem['fraction_below']:.2f})", str(m["n_params"]),
                _fmt(m["fit_seconds"], digits=3), _fmt(m["sample_seconds_per_field"], digits=3)]
        rows.append(row)
    return header, rows


_NOTES = [
    "Distances: χ² per component of the difference of means (≈ 1 for two independent sets of truth "
    "fields, grows as m·bias² for a biased model); W₁ of the pooled pixel values in units of the truth's "
    "pixel std. Each is the mean ± std over random splits of the held-out truth; the floor is the same "
    "distance between two disjoint halves of the truth. A model is as good as the truth on a statistic "
    "when its distance is within the floor's spread.",
    "Memorised?: fraction of samples closer (modulo shifts, rotations/reflections and, where it applies, "
    "φ → −φ) to a training field than the 1st percentile of held-out→training distances; YES when it "
    "exceeds the fraction expected for fresh truth by more than 4 standard deviations.",
    "Sampling time per field includes JIT compilation; fit time is as recorded by the model.",
]


def _markdown(metrics: dict, figures: dict) -> str:
    header, rows = _table(metrics)
    d = metrics["data"]
    lines = [f"# phigen compare: {d['field']} ({Path(d['path']).name})", "",
             f"{d['n_train']} training fields, {d['n_held_out']} held-out truth fields of "
             f"{d['shape'][0]}×{d['shape'][1]} (split seed {metrics['seed']}); each model drew "
             f"{d['n_held_out']} samples.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"- {n}" for n in _NOTES] + ["", "## Memorisation", "",
                                                   "| model | median NN to train (samples) | median NN to train (held-out) "
                                                   "| fraction below threshold | expected | flag |", "|---|---|---|---|---|---|"]
    for name, m in metrics["models"].items():
        mem = m["memorisation"]
        lines.append(f"| {name} | {mem['samples_to_train']['median']:.4g} | {mem['held_out_to_train']['median']:.4g} | "
                     f"{mem['fraction_below']:.3g} | {mem['expected_fraction']:.3g} ± {mem['fraction_std']:.2g} | "
                     f"{'MEMORISED' if mem['memorised'] else 'ok'} |")
    lines += ["", "## Figures", ""]
    lines += [f"![{k}]({v})" for k, v in figures.items()]
    lines += ["", f"Samples: {', '.join(m['samples_file'] for m in metrics['models'].values())}; "
                  "all numbers in metrics.json.", ""]
    return "\n".join(lines)


def _html(metrics: dict, figures: dict) -> str:
    header, rows = _table(metrics)
    d = metrics["data"]
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>phigen compare: {esc(d['field'])}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #999;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
             "img{max-width:48%;margin:4px}</style></head><body>",
             f"<h1>phigen compare: {esc(d['field'])} ({esc(Path(d['path']).name)})</h1>",
             f"<p>{d['n_train']} training fields, {d['n_held_out']} held-out truth fields of "
             f"{d['shape'][0]}×{d['shape'][1]}; each model drew {d['n_held_out']} samples.</p>",
             "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
    parts += ["</table>"] + [f"<p>{esc(n)}</p>" for n in _NOTES] + ["<h2>Figures</h2>"]
    parts += [f"<img src='{esc(v)}' alt='{esc(k)}'>" for k, v in figures.items()]
    parts += ["</body></html>", ""]
    return "\n".join(parts)


def compare_models(data, *, models: Sequence[str] = ("gaussian",), out_dir, test_fraction: float = 0.5,
                   seed: int = 0, fit_options: Mapping[str, Mapping] | None = None,
                   sample_options: Mapping[str, Mapping] | None = None,
                   model_files: Mapping[str, str] | None = None, n_splits: int = 3,
                   progress: bool | Callable[[str], None] | None = None) -> dict:
    """Fit (or load), sample and judge each model of ``models`` on the phigen file ``data``.

    Split: ``open_fields(data).split(test_fraction, seed=seed)`` → (train, held-out truth). Each
    model ``kind`` is fitted with ``phigen.models.fit(kind, data, test_fraction=, split_seed=seed,
    seed=seed, **fit_options[kind])`` unless ``model_files[kind]`` names a model file to load, and
    draws ``n_held_out`` samples (``sample_options[kind]``) into ``out_dir/samples/<kind>.h5``.
    ``progress``: True prints stage messages and bars, a callable receives the messages.
    Returns the metrics dict written to ``out_dir/metrics.json`` plus ``report`` (paths).
    """
    from .io import open_fields, read_fields
    from .models import fit, load_model, sample
    from .report import write_figures
    from .stats import compare
    from .stats.memorisation import memorisation_check

    models = [m.strip() for m in ([models] if isinstance(models, str) else models) if m.strip()]
    if not models:
        raise E.ParameterError("compare needs at least one model")
    if len(set(models)) != len(models):
        raise E.ParameterError(f"models listed twice: {models}")
    fit_options = dict(fit_options or {})
    sample_options = dict(sample_options or {})
    model_files = dict(model_files or {})
    for what, d in (("fit_options", fit_options), ("sample_options", sample_options), ("model_files", model_files)):
        extra = sorted(set(d) - set(models))
        if extra:
            raise E.ParameterError(f"{what} given for models not being compared: {', '.join(extra)}")
    out = Path(out_dir)
    bars = bool(progress) and not callable(progress)

    with open_fields(data) as ds:
        if len(ds.sample_shape) != 2:
            raise E.InputError(f"compare needs single-channel (N, H, W) fields; {ds.path} holds samples of "
                               f"shape {tuple(ds.sample_shape)}")
        train_idx, test_idx = ds.split(test_fraction, seed=seed)
        train, held_out = ds[train_idx], ds[test_idx]
        field, params, path = ds.field, dict(ds.params), str(ds.path)
    n = int(held_out.shape[0])
    if n < 2:
        raise E.ParameterError(f"the held-out set needs at least 2 fields for the floor; got {n}")
    symmetries = _default_symmetries(field)
    _say(progress, f"compare: {len(train)} training / {n} held-out {field} fields of {held_out.shape[1]}×{held_out.shape[2]}")

    metrics: dict = {
        "data": {"path": path, "field": field, "params": params, "shape": list(held_out.shape[1:]),
                 "n_train": int(len(train)), "n_held_out": n, "test_fraction": test_fraction},
        "seed": seed, "n_splits": n_splits, "symmetries": list(symmetries),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "truth": {"field_statistics": field_statistics(held_out, field, params)},
        "models": {},
    }
    groups = {"truth": held_out}
    for kind in models:
        if kind in model_files:
            _say(progress, f"compare: loading {kind} from {model_files[kind]}")
            model = load_model(model_files[kind])
            if model.kind != kind:
                raise E.ModelFileError(f"is a {model.kind!r} model, not {kind!r}", path=model_files[kind])
            model_path = Path(model_files[kind])
        else:
            _say(progress, f"compare: fitting {kind}")
            model_path = out / "models" / f"{kind}.h5"
            model_path.parent.mkdir(parents=True, exist_ok=True)
            model = fit(kind, data, out=model_path, seed=seed, test_fraction=test_fraction, split_seed=seed,
                        progress=bars, **dict(fit_options.get(kind, {})))
        fit_seconds = float((getattr(model, "training", None) or {}).get("fit_seconds", float("nan")))
        _say(progress, f"compare: sampling {n} fields from {kind}")
        samples_path = out / "samples" / f"{kind}.h5"
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        sample(model, n, out=samples_path, seed=seed + 1, overwrite=True, progress=bars,
               **dict(sample_options.get(kind, {})))
        sample_seconds = time.perf_counter() - t0
        samples = read_fields(samples_path)
        if samples.shape[1:] != held_out.shape[1:]:
            raise E.InputError(f"{kind} samples have shape {samples.shape[1:]}, the data {held_out.shape[1:]} "
                               "(a model file fitted on other data?)")
        _say(progress, f"compare: statistics of {kind}")
        comparison = compare(samples, held_out, seed=seed, n_splits=n_splits)
        metrics["models"][kind] = {
            "n_params": int(model.n_params), "fit_seconds": fit_seconds, "sample_seconds": sample_seconds,
            "sample_seconds_per_field": sample_seconds / n,
            "model_file": str(model_path) if model_path.exists() else None,
            "samples_file": str(samples_path.relative_to(out)),
            "fit_options": dict(fit_options.get(kind, {})), "sample_options": dict(sample_options.get(kind, {})),
            "distances": {s: c["distances"] for s, c in comparison.items() if s != "meta"},
            "comparison": comparison,
            "field_statistics": field_statistics(samples, field, params),
            "memorisation": memorisation_check(samples, train, held_out, symmetries=symmetries),
        }
        groups[kind] = samples

    _say(progress, "compare: figures")
    fig_paths = write_figures(groups, out / "figures", truth="truth")
    figures = {k: str(Path(p).relative_to(out)) for k, p in fig_paths.items()}
    metrics["figures"] = figures
    metrics = _finite(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n")
    (out / "report.md").write_text(_markdown(metrics, figures))
    (out / "report.html").write_text(_html(metrics, figures))
    header, rows = _table(metrics)
    metrics["report"] = {"dir": str(out), "markdown": str(out / "report.md"), "html": str(out / "report.html"),
                         "metrics": str(out / "metrics.json"),
                         "table_lines": ["| " + " | ".join(header) + " |"] + ["| " + " | ".join(r) + " |" for r in rows]}
    _say(progress, f"compare: report in {out / 'report.md'}")
    return metrics
