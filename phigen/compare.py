"""``phigen compare``: fit, sample and judge several models on one dataset, with one report.

The dataset's deterministic split (:meth:`FieldDataset.split` with ``seed``; whole groups —
simulations, runs, chains — on one side) gives a training part and a held-out truth. Each model is
fitted on the training part (or loaded from a model file, after checking that it never saw a
held-out field: :func:`phigen.models.check_training_disjoint`), samples as many fields as the
held-out set, and is judged on every registered distance (``COMPARE_STATISTICS``: the statistics
suite and the scattering spectra) against the calibrated truth-vs-truth null of
:func:`phigen.stats.null_reference` (built once, shared by all models): model value, null mean and
95th percentile, p-value and a verdict at 5 %; by field-specific statistics (φ⁴: Binder U₄ and χ;
turbulence: flatness at the smallest separation; cosmic web: peak counts) and by the memorisation
check (:func:`memorisation`: :func:`phigen.stats.memorisation.memorisation_check`, and whether the
samples are closer to the training set than to held-out fields). ``out_dir`` receives ``report.md``,
``report.html``, ``metrics.json``, ``figures/*.png``, ``samples/<model>.h5`` and the fitted
``models/<model>.h5``.

Symmetry-aware fitting: when the field's law is exactly invariant under φ → −φ (its field kind is
``sign_symmetric``: φ⁴) and a model's
``fit`` takes a ``sign_symmetric`` option, it is fitted with ``sign_symmetric=True`` unless the
caller's fit options set it; ``metrics.json`` records the value and who set it.
"""

from __future__ import annotations

import html
import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from . import errors as E
from ._json import json_safe
from ._progress import say
from .fields.kind import field_kind, kind_symmetries

__all__ = ["compare_models", "scattering_distance", "field_statistics", "write_report", "table_columns", "compare_statistics", "memorisation",
           "memorisation_reference", "MemorisationReference",
           "COMPARE_STATISTICS"]

COMPARE_STATISTICS = ("power_spectrum", "pdf", "bispectrum", "minkowski", "flatness", "scattering_spectra")


def compare_statistics(field: str | None = None) -> tuple[str, ...]:
    """The statistics ``compare`` judges on fields of kind ``field``: :data:`COMPARE_STATISTICS`, then
    those registered for that kind only (:func:`phigen.stats.registry.default_statistics`, e.g. the
    peak counts of cosmic-web maps)."""
    from .stats.registry import default_statistics

    extra = default_statistics(field)[len(default_statistics(None)):] if field is not None else ()
    return COMPARE_STATISTICS + tuple(n for n in extra if n not in COMPARE_STATISTICS)


def table_columns(field: str | None = None) -> tuple[tuple[str, str, str], ...]:
    """(statistic, distance, label) of the report table's distance columns: the registered
    distances marked ``table`` of :func:`compare_statistics` (every distance is in metrics.json)."""
    from .stats.registry import registered

    return tuple((st.name, d.name, d.label) for st in registered(compare_statistics(field))
                 for d in st.distances if d.table)


def field_statistics(fields, field: str, params: Mapping) -> dict:
    """Field-specific statistics of an ensemble ``(N, H, W)``: ``{name: {"value", "error"}}``, as the
    field kind declares them (:class:`phigen.fields.kind.FieldKind` ``statistics``).

    φ⁴ (needs params ``kappa``, ``lam``): Binder ``U4`` and ``chi`` (:func:`phigen.stats.phi4_observables`,
    the fields read as independent configurations); turbulence: ``flatness_r1`` = S₄/S₂² at the
    smallest separation; cosmic web: ``peaks`` (local maxima per field) and ``peaks_nu_gt_2``
    (those higher than 2σ). Kinds that declare none, and unknown kinds: empty.
    """
    spec = field_kind(field)
    if spec is None or spec.statistics is None:
        return {}
    return spec.statistics(np.asarray(fields, dtype=np.float32), params)


def _field_label(field: str, key: str) -> str:
    spec = field_kind(field)
    return (spec.statistic_labels.get(key, key) if spec is not None else key)


class MemorisationReference(NamedTuple):
    """The sample-independent part of :func:`memorisation`: the held-out→train distances and the
    fresh→held-out-reference distances (``fresh = held_out[n:2n]``, reference ``held_out[:n]``,
    ``n = len(held_out) // 2``; None when n < 1)."""

    symmetries: tuple
    n_train: int
    n_held_out: int
    held_out_to_train: Any
    fresh_to_held_out: Any


def memorisation_reference(train, held_out, *, symmetries) -> MemorisationReference:
    """The distances of :func:`memorisation` that depend on the truth only, computed once."""
    from .stats.memorisation import nearest_neighbour_distances

    sym = tuple(symmetries)
    h = nearest_neighbour_distances(held_out, train, symmetries=sym)
    n = len(held_out) // 2
    f = nearest_neighbour_distances(held_out[n:2 * n], held_out[:n], symmetries=sym) if n >= 1 else None
    return MemorisationReference(sym, len(train), len(held_out), h, f)


def memorisation(samples, train, held_out, *, symmetries, z: float = 4.0,
                 reference: MemorisationReference | None = None) -> dict:
    """:func:`~phigen.stats.memorisation.memorisation_check`, and whether the closeness is specific to
    the training set.

    The check alone flags samples closer to the training set than fresh truth is (``fraction_below``
    above its expectation); a model of another law can do that without copying anything (a Gaussian
    field with a larger |m| than any truth field is close to every large-|m| field). Copies are close
    to the *training* fields only. So the check is repeated with two reference sets — the training set,
    and n = n_held_out // 2 held-out fields — each calibrated by the same n other held-out fields
    (fresh truth): ``specificity`` = fraction_below(train) − fraction_below(held-out), ≈ 0 for a model
    that never saw the training set (each threshold absorbs how densely its own reference set, of
    whatever size, covers the law), ≈ 1 for a copier. ``memorised`` = the check's
    flag and a specificity above z times its standard deviation (the two checks' spreads in
    quadrature); the check's own flag stays in ``closer_than_truth``.

    ``reference``: :func:`memorisation_reference` of the same (train, held_out, symmetries), the
    distances that do not depend on the samples; computed here when absent (pass it when judging
    several models against one truth: it saves more than half of the nearest-neighbour searches).
    """
    from .stats.memorisation import NearestNeighbours, memorisation_check, nearest_neighbour_distances

    if reference is None:
        reference = memorisation_reference(train, held_out, symmetries=symmetries)
    elif (tuple(reference.symmetries), reference.n_train, reference.n_held_out) != (tuple(symmetries), len(train),
                                                                                    len(held_out)):
        raise E.ParameterError("memorisation: the reference was computed for other sets or symmetries")
    h = reference.held_out_to_train
    s_train = nearest_neighbour_distances(samples, train, symmetries=symmetries)
    check = memorisation_check(samples, train, held_out, symmetries=symmetries, z=z, held_out_to_train=h,
                               samples_to_train=s_train)
    out = {**check, "closer_than_truth": check["memorised"]}
    n = len(held_out) // 2
    if n < 1:  # too few held-out fields to calibrate a second reference set: the check alone decides
        return {**out, "specificity": None}
    # the fresh fields' distances to the training set are rows n..2n of the held-out ones, and the
    # samples' distances to the training set are the check's own: only samples → held_out[:n] is new
    fresh = held_out[n:2 * n]
    to_train = memorisation_check(samples, train, fresh, symmetries=symmetries, z=z, samples_to_train=s_train,
                                  held_out_to_train=NearestNeighbours(h.distance[n:2 * n], h.index[n:2 * n]))
    to_held = memorisation_check(samples, held_out[:n], fresh, symmetries=symmetries, z=z,
                                 held_out_to_train=reference.fresh_to_held_out)
    diff = to_train["fraction_below"] - to_held["fraction_below"]
    std = math.hypot(to_train["fraction_std"], to_held["fraction_std"])
    spec = {"value": diff, "std": std, "n_held_out_reference": n, "fraction_below_train": to_train["fraction_below"],
            "fraction_below_held_out": to_held["fraction_below"], "expected_fraction": to_train["expected_fraction"]}
    return {**out, "specificity": spec, "memorised": bool(check["memorised"] and diff > z * std)}


def _takes_option(kind: str, name: str) -> bool:
    """Does model ``kind``'s ``fit`` take the keyword option ``name``?"""
    from .models import get_model_class
    from .models._base import model_options

    return name in (model_options(get_model_class(kind), "fit") or ())


def _symmetry_fit_options(kind: str, field: str, options: Mapping) -> tuple[dict, dict]:
    """Fit options with ``sign_symmetric=True`` added where the field has the sign symmetry and the
    model can use it (the caller's own setting wins); and the record of that decision."""
    opts = dict(options)
    if "sign_symmetric" in opts:
        return opts, {"sign_symmetric": bool(opts["sign_symmetric"]), "set_by": "fit options"}
    if not _takes_option(kind, "sign_symmetric"):
        return opts, {"sign_symmetric": None, "set_by": "model has no sign_symmetric option"}
    spec = field_kind(field)
    if spec is None or not spec.sign_symmetric:
        return opts, {"sign_symmetric": False, "set_by": f"compare ({field!r} fields lack the φ → −φ symmetry)"}
    opts["sign_symmetric"] = True
    return opts, {"sign_symmetric": True, "set_by": f"compare ({field!r} fields have the φ → −φ symmetry)"}


def scattering_distance(samples, truth, *, seed: int = 0, n_splits: int = 200, truth_groups=None) -> dict:
    """Scattering-spectra distance of ``samples`` to ``truth`` (both ``(N, H, W)``) with its null.

    Φ = isotropic scattering spectra (mean, log S2, S1/√S2, C01, C11; each field normalised by its own
    S2; :class:`phigen.scattering.ScatteringSpectra`) with J = min(3, log2(side) − 2) scales and 4
    orientations; distance: the pooled χ² per component of :mod:`phigen.stats.registry`, judged by
    :func:`phigen.stats.compare` (the registered statistic ``scattering_spectra``).
    Returns ``{"J", "L", "n_stats", "samples": {"mean", "std"}, "truth": {...}, "distances": {"chi2": ...}}``.
    """
    from .stats import compare

    res = compare(samples, truth, seed=seed, n_splits=n_splits, statistics=["scattering_spectra"],
                  truth_groups=truth_groups)["scattering_spectra"]
    s, t = res["samples"], res["truth"]
    return {"J": s["J"], "L": s["L"], "n_stats": s["n_stats"], "samples": {"mean": s["mean"], "std": s["std"]},
            "truth": {"mean": t["mean"], "std": t["std"]}, "distances": res["distances"]}


def _fmt(v, err=None, digits=4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    s = f"{v:.{digits}g}"
    if err is not None and math.isfinite(err):
        s += f" ± {err:.2g}"
    return s


def _null_cell(d: dict) -> str:
    return f"{_fmt(d.get('null_mean'), digits=3)} / {_fmt(d.get('null_p95'), digits=3)}"


def _model_cell(d: dict) -> str:
    """Model value with its verdict: ✓ consistent with the null at 5 %, ✗ off (p-value)."""
    if d.get("verdict") == "off":
        return f"{_fmt(d['model'], digits=3)} ✗ (p {d['p_value']:.2g})"
    if d.get("verdict") == "consistent":
        return f"{_fmt(d['model'], digits=3)} ✓"
    return _fmt(d.get("model"), digits=3)


def _table(metrics: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings) of the one report table: the null first, then each model."""
    cols = [c for c in table_columns(metrics["data"]["field"])
            if c[0] in next(iter(metrics["models"].values()))["distances"]]
    field_keys = list(metrics["truth"]["field_statistics"])
    header = (["model"] + [c[2] for c in cols] + ["off / distances"] + [_field_label(metrics["data"]["field"], k) for k in field_keys]
              + ["memorised?", "parameters", "fit time (s)", "sampling (s/field)"])
    rows = []
    first = next(iter(metrics["models"].values()))["distances"]
    null = ["null: truth vs truth (mean / 95th pct.)"] + [_null_cell(first[s][d]) for s, d, _ in cols] + ["—"]
    null += [_fmt(metrics["truth"]["field_statistics"][k]["value"], metrics["truth"]["field_statistics"][k]["error"])
             for k in field_keys]
    rows.append(null + ["—", "—", "—", "—"])
    for name, m in metrics["models"].items():
        v = m.get("verdict", {})
        row = [name] + [_model_cell(m["distances"][s][d]) for s, d, _ in cols]
        row += [f"{v.get('n_off', '—')} / {v.get('n_distances', '—')}"]
        row += [_fmt(m["field_statistics"][k]["value"], m["field_statistics"][k]["error"]) for k in field_keys]
        mem = m["memorisation"]
        spec = mem.get("specificity") or {}
        row += [f"{'YES' if mem['memorised'] else 'no'} ({mem['fraction_below']:.2f}"
                + (f", {spec['value']:+.2f})" if spec else ")"),
                str(m["n_params"]),
                _fmt(m["fit_seconds"], digits=3), _fmt(m["sample_seconds_per_field"], digits=3)]
        rows.append(row)
    return header, rows


def _distance_lines(metrics: dict) -> list[str]:
    """Every distance of every model: value, null mean / std / 95th percentile, p-value, verdict."""
    lines = ["| model | statistic | distance | model | null mean ± std | null 95th pct. | p-value | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in metrics["models"].items():
        for stat, block in m["distances"].items():
            for dname, d in block.items():
                lines.append(f"| {name} | {stat} | {d.get('label', dname)} | {_fmt(d['model'])} | "
                             f"{_fmt(d['null_mean'], d['null_std'])} | {_fmt(d['null_p95'])} | "
                             f"{_fmt(d['p_value'], digits=2)} | {d['verdict']} |")
    return lines


_NOTES = [
    "Distances and their null: each distance compares m model samples with m held-out truth fields; the "
    "null is the same distance between two disjoint sets of m held-out fields (groups — simulations, runs, "
    "chains — never on both sides), over many random splits. Every scale is pooled from the two sets "
    "compared, so the null is not 1 by construction. The null row gives its mean / 95th percentile. "
    "✓: consistent with the null at 5 %; ✗: off (p-value = fraction of null splits at least as far). "
    "A perfect model is off on each distance 5 % of the time, so about 0.05 × (number of distances) "
    "distances off is what the truth itself scores.",
    "χ² columns: mean over components of t², t the two-sample t statistic of the component's mean "
    "(pooled within-set variance); P(k) χ² compares log-means. P(k) log-RMS: RMS over k of "
    "log(P_model/P_truth) where the truth has power. P(k) corr. RMS: RMS of the difference of the "
    "correlation matrices across fields of P(k) (the ensemble covariance). W₁ of the pooled pixel "
    "values in units of their pooled std. Scattering χ²: the χ² over the isotropic scattering spectra Φ "
    "(mean, log S2, S1/√S2, C01, C11, each field normalised by its own S2).",
    "Field statistics (U₄, χ, flatness, peaks): value ± standard error of each ensemble; the null row "
    "holds the held-out truth's own value.",
    "Memorised? (a, b): a = fraction of samples closer (modulo shifts, rotations/reflections and, where it "
    "applies, φ → −φ) to a training field than the 1st percentile of held-out→training distances (≈ 0.01 "
    "for fresh truth); b = the same fraction against the training set minus that against half of the "
    "held-out fields, each calibrated by the other half (≈ 0 unless the closeness is specific to the "
    "training set). YES when a exceeds what fresh truth gives AND b exceeds 0, each by more than 4 standard "
    "deviations: a model of another law can sit close to the data without copying the training set.",
    "Sampling time per field includes JIT compilation; fit time is as recorded by the model.",
]


def _options_text(opts: Mapping) -> str:
    return ", ".join(f"{k}={v}" for k, v in opts.items()) or "defaults"


def _model_lines(metrics: dict) -> list[str]:
    """One line per model: how it was fitted (options, symmetry, model file) and sampled."""
    lines = []
    for name, m in metrics["models"].items():
        sym = m.get("symmetry_fit") or {}
        how = f"loaded from {m['model_file']}" if m.get("loaded") else f"fit: {_options_text(m.get('fit_options_used', {}))}"
        txt = f"{name} — {how}; sampling: {_options_text(m.get('sample_options', {}))}"
        if sym.get("sign_symmetric") is not None:
            txt += f"; sign_symmetric={sym['sign_symmetric']} (set by {sym['set_by']})"
        lines.append(txt)
    return lines


def _specificity_text(mem: dict) -> str:
    spec = mem.get("specificity")
    if not spec:
        return "—"
    return (f"{spec['fraction_below_train']:.3g} − {spec['fraction_below_held_out']:.3g} = {spec['value']:+.3g} "
            f"± {spec['std']:.2g}")


def _memorisation_flag(mem: dict) -> str:
    if mem["memorised"]:
        return "MEMORISED"
    return "ok (close to the data, not to the training set)" if mem.get("closer_than_truth") else "ok"


def _data_sentence(metrics: dict) -> str:
    d = metrics["data"]
    g = d.get("groups") or {}
    nul = metrics.get("null") or {}
    txt = (f"{d['n_train']} training fields, {d['n_held_out']} held-out truth fields of "
           f"{d['shape'][0]}×{d['shape'][1]} (split seed {metrics['seed']}); each model drew {d['n_held_out']} samples. ")
    if g.get("kind"):
        txt += (f"Splits keep each {g['kind']} whole ({g['n_train']} {g['kind']}s for training, {g['n_held_out']} "
                "held out). ")
    else:
        txt += "The file records no groups: its fields were split one by one, as if independent. "
    if nul:
        txt += f"Null: {nul['n_splits']} random splits of the held-out truth into two sets of m = {nul['m']} fields."
    return txt.strip()


def _markdown(metrics: dict, figures: dict) -> str:
    header, rows = _table(metrics)
    d = metrics["data"]
    sc = metrics.get("scattering_spectra", {})
    lines = [f"# phigen compare: {d['field']} ({Path(d['path']).name})", ""]
    if metrics.get("preamble"):
        lines += list(metrics["preamble"]) + [""]
    lines += [_data_sentence(metrics), "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"- {n}" for n in _NOTES]
    if sc:
        lines.append(f"- Scattering spectra: J = {sc['J']}, L = {sc['L']}, {sc['n_stats']} coefficients per field.")
    lines += ["", "## Every distance", ""] + _distance_lines(metrics)
    lines += ["", "## Models", ""] + [f"- {t}" for t in _model_lines(metrics)]
    if metrics.get("timings"):
        t = metrics["timings"]
        lines += ["", f"Total {t['total']:.0f} s (truth statistics {t['truth']:.1f} s, figures {t['figures']:.1f} s; "
                      "per model: " + "; ".join(f"{k} fit {v['fit']:.1f} s, sample {v['sample']:.1f} s, "
                                                 f"statistics {v['statistics']:.1f} s" for k, v in t["models"].items())
                  + ")."]
    lines += ["", "## Memorisation", "",
              "| model | median NN to train (samples) | median NN to train (held-out) "
              "| fraction below threshold | expected | specificity (train − held-out) | flag |", "|---|---|---|---|---|---|---|"]
    for name, m in metrics["models"].items():
        mem = m["memorisation"]
        lines.append(f"| {name} | {mem['samples_to_train']['median']:.4g} | {mem['held_out_to_train']['median']:.4g} | "
                     f"{mem['fraction_below']:.3g} | {mem['expected_fraction']:.3g} ± {mem['fraction_std']:.2g} | "
                     f"{_specificity_text(mem)} | "
                     f"{_memorisation_flag(mem)} |")
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
             f"<h1>phigen compare: {esc(d['field'])} ({esc(Path(d['path']).name)})</h1>"]
    parts += [f"<p>{esc(line)}</p>" for line in metrics.get("preamble") or [] if line.strip()]
    parts += [f"<p>{esc(_data_sentence(metrics))}</p>",
              "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
    parts += ["</table>"] + [f"<p>{esc(n)}</p>" for n in _NOTES]
    parts += ["<h2>Models</h2><ul>"] + [f"<li>{esc(t)}</li>" for t in _model_lines(metrics)] + ["</ul>"]
    parts += ["<h2>Figures</h2>"]
    parts += [f"<img src='{esc(v)}' alt='{esc(k)}'>" for k, v in figures.items()]
    parts += ["</body></html>", ""]
    return "\n".join(parts)


def write_report(metrics: dict, out_dir) -> dict:
    """(Re)write ``metrics.json``, ``report.md`` and ``report.html`` in ``out_dir`` from ``metrics``
    (as returned by :func:`compare_models`; callers may add keys, e.g. a ``preamble`` list of
    Markdown lines shown under the title). Returns the ``report`` paths and table lines."""
    out = Path(out_dir)
    clean = json_safe({k: v for k, v in metrics.items() if k != "report"})
    figures = clean.get("figures", {})
    (out / "metrics.json").write_text(json.dumps(clean, indent=1, allow_nan=False) + "\n")
    (out / "report.md").write_text(_markdown(clean, figures))
    (out / "report.html").write_text(_html(clean, figures))
    header, rows = _table(clean)
    return {"dir": str(out), "markdown": str(out / "report.md"), "html": str(out / "report.html"),
            "metrics": str(out / "metrics.json"),
            "table_lines": ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(r) + " |" for r in rows]}


def compare_models(data, *, models: Sequence[str] = ("gaussian",), out_dir, test_fraction: float = 0.5,
                   seed: int = 0, fit_options: Mapping[str, Mapping] | None = None,
                   sample_options: Mapping[str, Mapping] | None = None,
                   model_files: Mapping[str, str] | None = None, n_splits: int = 200,
                   preamble: Sequence[str] | None = None,
                   progress: bool | Callable[[str], None] | None = None) -> dict:
    """Fit (or load), sample and judge each model of ``models`` on the phigen file ``data``.

    Split: ``open_fields(data).split(test_fraction, seed=seed)`` → (train, held-out truth), whole
    groups on one side. Each model ``kind`` is fitted with ``phigen.models.fit(kind, data,
    test_fraction=, split_seed=seed, seed=seed, **fit_options[kind])`` (plus ``sign_symmetric=True``
    for φ⁴ where the model takes it; module docstring) unless ``model_files[kind]`` names a model
    file to load — refused (:class:`phigen.errors.DataLeakError`) if its training set holds any
    held-out field — and draws ``n_held_out`` samples (``sample_options[kind]``) into
    ``out_dir/samples/<kind>.h5``. Every distance is judged against the null of ``n_splits`` (≥ 20)
    random splits of the held-out truth. ``preamble``: Markdown lines shown under the report's
    title. ``progress``: True prints stage messages and bars, a callable receives the messages.
    Returns the metrics dict written to ``out_dir/metrics.json`` (with ``timings`` in seconds) plus
    ``report`` (paths, table lines).
    """
    from .report import write_figures
    from .stats import null_reference

    t_start = time.perf_counter()
    models, fit_options, sample_options, model_files = _check_compare_request(models, n_splits, fit_options,
                                                                              sample_options, model_files)
    out = Path(out_dir)
    bars = bool(progress) and not callable(progress)
    split = _split_data(data, test_fraction, seed)
    held_out, n, field, params = split.held_out, len(split.held_out), split.field, split.params
    symmetries = kind_symmetries(field)
    say(progress, f"compare: {len(split.train)} training / {n} held-out {field} fields of "
                  f"{held_out.shape[1]}×{held_out.shape[2]}")
    if split.all_groups is None:
        say(progress, f"compare: {split.path} records no groups; fields are split one by one, as if independent")

    t0 = time.perf_counter()
    ref = null_reference(held_out, groups=split.held_groups, n_splits=n_splits, seed=seed,
                         statistics=compare_statistics(field))
    metrics = _truth_metrics(split, ref, test_fraction=test_fraction, seed=seed, n_splits=n_splits,
                             symmetries=symmetries, preamble=preamble)
    # the memorisation distances that depend on the truth only: once, not once per model
    mem_ref = memorisation_reference(split.train, held_out, symmetries=symmetries)
    timings: dict = {"truth": time.perf_counter() - t0, "models": {}}
    fields_by_label = {"truth": held_out}
    for kind in models:
        t0 = time.perf_counter()
        model, model_path, opts_used, symmetry, leak_check = _fitted_model(
            kind, data, split, out, model_files.get(kind), fit_options.get(kind, {}), test_fraction=test_fraction,
            seed=seed, bars=bars, progress=progress)
        t_fit = time.perf_counter() - t0
        samples, samples_path, sample_seconds = _model_samples(kind, model, n, out, seed, sample_options.get(kind, {}),
                                                               held_out.shape[1:], bars=bars, progress=progress)
        say(progress, f"compare: statistics of {kind}")
        t0 = time.perf_counter()
        metrics["models"][kind] = {
            "n_params": int(model.n_params),
            "fit_seconds": float((getattr(model, "training", None) or {}).get("fit_seconds", float("nan"))),
            "sample_seconds": sample_seconds, "sample_seconds_per_field": sample_seconds / n,
            "loaded": kind in model_files, "model_file": str(model_path) if model_path.exists() else None,
            "samples_file": str(samples_path.relative_to(out)), "leak_check": leak_check,
            "fit_options": dict(fit_options.get(kind, {})), "fit_options_used": opts_used,
            "symmetry_fit": symmetry, "sample_options": dict(sample_options.get(kind, {})),
            **_judged(samples, ref, split, mem_ref, symmetries, seed),
        }
        timings["models"][kind] = {"fit": t_fit, "sample": sample_seconds, "statistics": time.perf_counter() - t0}
        fields_by_label[kind] = samples

    say(progress, "compare: figures")
    t0 = time.perf_counter()
    fig_paths = write_figures(fields_by_label, out / "figures", truth="truth",
                              extra_statistics=compare_statistics(field)[len(COMPARE_STATISTICS):])
    fig_paths.update(_null_figure(metrics, out / "figures"))
    metrics["figures"] = {k: str(Path(p).relative_to(out)) for k, p in fig_paths.items()}
    timings["figures"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    metrics["timings"] = timings
    metrics = json_safe(metrics)
    metrics["report"] = write_report(metrics, out)
    say(progress, f"compare: report in {out / 'report.md'}")
    return metrics


# ---- the steps of compare_models -------------------------------------------------------------------
class _Split(NamedTuple):
    """The data file's deterministic split: training part, held-out truth, their groups."""

    train: np.ndarray
    held_out: np.ndarray
    test_idx: np.ndarray
    all_groups: np.ndarray | None
    held_groups: np.ndarray | None
    train_groups: np.ndarray | None
    group_kind: str | None
    field: str
    params: dict
    path: str


def _check_compare_request(models, n_splits, fit_options, sample_options, model_files):
    """The model list and the per-model option dicts, checked before any time is spent."""
    from .models import get_model_class
    from .stats.compare import MIN_SPLITS

    models = [m.strip() for m in ([models] if isinstance(models, str) else models) if m.strip()]
    if not models:
        raise E.ParameterError("compare needs at least one model")
    if len(set(models)) != len(models):
        raise E.ParameterError(f"models listed twice: {models}")
    if int(n_splits) != n_splits or n_splits < MIN_SPLITS:
        raise E.ParameterError(f"n_splits must be an integer >= {MIN_SPLITS} (the null's 95th percentile); got {n_splits!r}")
    fit_options = dict(fit_options or {})
    sample_options = dict(sample_options or {})
    model_files = dict(model_files or {})
    for what, d in (("fit_options", fit_options), ("sample_options", sample_options), ("model_files", model_files)):
        extra = sorted(set(d) - set(models))
        if extra:
            raise E.ParameterError(f"{what} given for models not being compared: {', '.join(extra)}")
    for kind in models:
        if kind not in model_files:
            get_model_class(kind)  # an unknown kind fails here
    return models, fit_options, sample_options, model_files


def _split_data(data, test_fraction: float, seed: int) -> _Split:
    from .io import open_fields

    with open_fields(data) as ds:
        if len(ds.sample_shape) != 2:
            raise E.InputError(f"compare needs single-channel (N, H, W) fields; {ds.path} holds samples of "
                               f"shape {tuple(ds.sample_shape)}")
        train_idx, test_idx = ds.split(test_fraction, seed=seed)
        train, held_out = ds[train_idx], ds[test_idx]
        all_groups = getattr(ds, "groups", None)
        group_kind = getattr(ds, "group_kind", None)
        field, params, path = ds.field, dict(ds.params), str(ds.path)
    if len(held_out) < 4:
        raise E.ParameterError(f"the held-out set needs at least 4 fields for the null; got {len(held_out)}")
    groups = None if all_groups is None else np.asarray(all_groups)
    return _Split(train, held_out, test_idx, groups, None if groups is None else groups[test_idx],
                  None if groups is None else groups[train_idx], group_kind, field, params, path)


def _truth_metrics(split: _Split, ref, *, test_fraction, seed, n_splits, symmetries, preamble) -> dict:
    """The metrics record before any model: the data, the split, the truth's statistics, the null."""
    groups_info = None
    if split.all_groups is not None:
        groups_info = {"kind": split.group_kind or "group", "n_train": int(np.unique(split.train_groups).size),
                       "n_held_out": int(np.unique(split.held_groups).size)}
    metrics: dict = {
        "data": {"path": split.path, "field": split.field, "params": split.params,
                 "shape": list(split.held_out.shape[1:]), "n_train": int(len(split.train)),
                 "n_held_out": int(len(split.held_out)), "test_fraction": test_fraction, "groups": groups_info},
        "seed": seed, "n_splits": n_splits, "symmetries": list(symmetries),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "truth": {"field_statistics": field_statistics(split.held_out, split.field, split.params)},
        "null": {"m": ref.m, "n_splits": n_splits, "alpha": 0.05,
                 "distances": {st.name: {d.name: {"label": d.label, "values": ref.null[st.name][d.name].tolist()}
                                         for d in st.distances} for st in ref.statistics}},
        "models": {},
    }
    scat_axes = ref.axes.get("scattering_spectra")
    if scat_axes:
        metrics["scattering_spectra"] = {k: scat_axes[k] for k in ("J", "L", "n_stats")}
    if preamble:
        metrics["preamble"] = list(preamble)
    return metrics


def _fitted_model(kind, data, split: _Split, out: Path, model_file, fit_opts, *, test_fraction, seed, bars,
                  progress):
    """``(model, model path, options used, symmetry record, leak check)``: the model loaded from
    ``model_file`` (refused if it saw a held-out field) or fitted on the training split."""
    from .models import check_training_disjoint, fit, load_model

    if model_file is not None:
        say(progress, f"compare: loading {kind} from {model_file}")
        model = load_model(model_file)
        if model.kind != kind:
            raise E.ModelFileError(f"is a {model.kind!r} model, not {kind!r}", path=model_file)
        leak_check = check_training_disjoint(model, split.held_out, held_out_groups=split.held_groups,
                                             data_path=split.path, held_out_indices=split.test_idx,
                                             test_fraction=test_fraction, split_seed=seed)
        training = getattr(model, "training", None) or {}
        opts_used = dict(training.get("options", {}))
        sym = training.get("sign_symmetric", opts_used.get("sign_symmetric"))
        return (model, Path(model_file), opts_used,
                {"sign_symmetric": None if sym is None else bool(sym), "set_by": "model file"}, leak_check)
    opts_used, symmetry = _symmetry_fit_options(kind, split.field, fit_opts)
    say(progress, f"compare: fitting {kind}" + (" (sign_symmetric)" if opts_used.get("sign_symmetric") else ""))
    model_path = out / "models" / f"{kind}.h5"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model = fit(kind, data, out=model_path, seed=seed, test_fraction=test_fraction, split_seed=seed,
                progress=bars, **opts_used)
    return model, model_path, opts_used, symmetry, None


def _model_samples(kind, model, n, out: Path, seed, sample_opts, shape, *, bars, progress):
    """``n`` samples of ``model`` written to ``out/samples/<kind>.h5``: ``(samples, path, seconds)``."""
    from .io import read_fields
    from .models import sample

    say(progress, f"compare: sampling {n} fields from {kind}")
    samples_path = out / "samples" / f"{kind}.h5"
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sample(model, n, out=samples_path, seed=seed + 1, overwrite=True, progress=bars, **dict(sample_opts))
    seconds = time.perf_counter() - t0
    samples = read_fields(samples_path)
    if samples.shape[1:] != tuple(shape):
        raise E.InputError(f"{kind} samples have shape {samples.shape[1:]}, the data {tuple(shape)} "
                           "(a model file fitted on other data?)")
    return samples, samples_path, seconds


def _judged(samples, ref, split: _Split, mem_ref, symmetries, seed) -> dict:
    """A model's samples judged: every distance against the null, field statistics, memorisation."""
    from .stats import judge

    comparison = judge(samples, ref, seed=seed)
    return {"distances": {st.name: comparison[st.name]["distances"] for st in ref.statistics},
            "verdict": comparison["verdict"], "comparison": comparison,
            "field_statistics": field_statistics(samples, split.field, split.params),
            "memorisation": memorisation(samples, split.train, split.held_out, symmetries=symmetries,
                                         reference=mem_ref)}


def _null_figure(metrics: dict, fig_dir: Path) -> dict:
    """The null distribution of every table distance with each model's value (``null.png``)."""
    from . import plot as P

    if not hasattr(P, "plot_null_distributions"):
        return {}
    null, p95, values = {}, {}, {}
    for stat, dname, label in table_columns(metrics["data"]["field"]):
        entry = metrics["null"]["distances"].get(stat, {}).get(dname)
        if entry is None:
            continue
        null[label] = np.asarray(entry["values"], dtype=float)
        for name, m in metrics["models"].items():
            d = m["distances"][stat][dname]
            p95[label] = d["null_p95"]
            values.setdefault(name, {})[label] = d["model"]
    if not null:
        return {}
    fig = P.plot_null_distributions(null, values, p95=p95, title="null (truth vs truth) and each model")
    return {"null": str(P.save_figure(fig, fig_dir / "null.png"))}
