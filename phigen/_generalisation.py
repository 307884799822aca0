"""``phigen generalisation``: does a model generalise or memorise? (Kadkhodaie et al., ICLR 2024)

For each training-set size N, two DISJOINT training sets S₁, S₂ of N fields are drawn from the file
(one permutation of the file from ``seed``: S₁ = perm[:N], S₂ = perm[N:2N], so the sets of a
smaller N are subsets of those of a larger one). A file that records groups (the configurations of
one MCMC chain, the snapshots of one run, the maps of one simulation; ``FieldDataset.groups``) is
permuted by whole groups instead: S₁ and S₂ share no group, and the held-out truth of each N comes
only from groups in neither S₁ nor S₂ (without groups, every field is its own group and the sets
are exactly those above). One model is fitted on each with the same fit key,
and both draw ``n_samples`` fields with the SAME sampling key (the same noise). A model that
memorises returns (transformed) training fields, so its samples sit on its own training set and the
two models disagree; a model that has learnt the density maps the same noise to (nearly) the same
field whatever its training set, so the two models agree and neither sits on its training set.

Similarity of two fields a, b (ā = a − mean(a), the field minus its own spatial mean):

    s(a, b) = max_{T ∈ G} 2⟨ā, T b̄⟩ / (‖ā‖² + ‖b̄‖²)
            = 1 − min_T ‖ā − T b̄‖² / (‖ā‖² + ‖b̄‖²) ∈ [−1, 1],

1 for identical fields (modulo G), ≈ the cosine similarity for fields of equal norm. G is the
field's symmetry group as in the memorisation check (periodic shifts, the rotations/reflections,
and φ → −φ except for cosmic-web density: the field kind's ``symmetries``,
:class:`phigen.fields.kind.FieldKind`), used for
BOTH similarities so that they are compared on equal terms. Per N the report gives the mean ±
standard error over the sample pairs of

- ``model_similarity``: s(x₁ᵢ, x₂ᵢ), sample i of model 1 against sample i of model 2;
- ``train_similarity``: s(xₖᵢ, nearest field of Sₖ) (:func:`nearest_neighbour_distances`),
  averaged over k = 1, 2 within each pair;
- ``closer_to_train``: the fraction of samples more similar to a field of their own training set
  than to the other model's sample;
- ``truth_similarity``: the same nearest-training-field similarity for up to ``n_samples`` fields of
  the file in neither training set of that N nor in any of their groups (first those never used
  for any N): what a genuinely new field looks like; absent when no such field is left;

plus ``model_similarity_identity`` (no transformation, the paper's plain cosine-type measure),
fit and sampling times. ``regime`` is "generalising" when model_similarity − train_similarity
(per pair) exceeds 3 standard errors; "memorising" when it is below −3 standard errors and the
samples are also closer to their training sets than held-out truth is (train_similarity −
truth_similarity > 3 standard errors, where held-out fields exist); else "transition".

A size with 2N larger than the file, or too large for two group-disjoint sets, is an error
(ParameterError naming the file's size), raised before anything is fitted.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from . import errors as E
from ._progress import say

__all__ = ["generalisation", "field_similarity"]

SIMILARITY = ("s(a, b) = max_T 2<a', T b'>/(|a'|^2 + |b'|^2) = 1 - min_T |a' - T b'|^2/(|a'|^2 + |b'|^2), "
              "a' = a - mean(a), T over the symmetries; 1 for identical fields")

# Elements of one (pairs × group images × H × W) correlation block: bounded memory at any size.
_BLOCK_ELEMENTS = 2 ** 24


def _centred(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x - x.mean(axis=(-2, -1), keepdims=True)


def _images(b: np.ndarray, symmetries) -> np.ndarray:
    """``b (n, H, W)`` → its images under the rotations/reflections ``(n, G, H, W)`` (G = 1 without)."""
    from .stats.memorisation import dihedral_images

    return dihedral_images(b, b.shape[-1] == b.shape[-2]) if "dihedral" in symmetries else b[:, None]


def field_similarity(a, b, *, symmetries=("shifts", "dihedral", "sign"), centre: bool = True) -> np.ndarray:
    """Paired similarity ``s(aᵢ, bᵢ)`` (module docstring) of ``a, b (n, H, W)`` → ``(n,)`` float64.

    ``max_T ⟨ā, T b̄⟩`` over all periodic shifts comes from one FFT cross-correlation per pair and
    group image; pairs are processed in blocks of bounded memory. ``centre=False`` skips the mean
    subtraction.
    """
    from .stats.memorisation import check_symmetries

    sym = check_symmetries(symmetries)
    a = np.asarray(_as_fields(a, "a"))
    b = np.asarray(_as_fields(b, "b"))
    if a.shape != b.shape:
        raise E.InputError(f"field_similarity pairs a[i] with b[i]: shapes must match; got {a.shape} and {b.shape}")
    if centre:
        a, b = _centred(a), _centred(b)
    h, w = a.shape[-2:]
    g = 8 if ("dihedral" in sym and h == w) else (4 if "dihedral" in sym else 1)
    block = max(1, _BLOCK_ELEMENTS // (g * h * w))
    best = np.empty(len(a), np.float64)
    for start in range(0, len(a), block):
        x, y = a[start:start + block], _images(b[start:start + block], sym)
        if "shifts" in sym:
            corr = np.fft.irfft2(np.fft.rfft2(x)[:, None] * np.conj(np.fft.rfft2(y)), s=(h, w))
            hi, lo = corr.max(axis=(-2, -1)), corr.min(axis=(-2, -1))
        else:
            hi = lo = np.einsum("nhw,nghw->ng", x.astype(np.float64), y.astype(np.float64))
        c = np.maximum(hi, -lo) if "sign" in sym else hi
        best[start:start + block] = c.max(axis=-1)
    norm = np.sum(a.astype(np.float64) ** 2, axis=(-2, -1)) + np.sum(b.astype(np.float64) ** 2, axis=(-2, -1))
    return np.where(norm > 0, 2.0 * best / np.where(norm > 0, norm, 1.0), 1.0)


def _as_fields(x, name):
    from ._validation import as_fields

    return as_fields(x, name=name)


def _align(a: np.ndarray, b: np.ndarray, symmetries) -> np.ndarray:
    """The image T b (T in the group) closest to ``a`` (both (H, W), centred): for the example figure."""
    h, w = a.shape
    imgs = _images(b[None], symmetries)[0]  # (G, H, W)
    if "shifts" in symmetries:
        # corr[g, s] = Σ_x a(x) (g b)(x − s) = ⟨a, roll(g b, s)⟩
        corr = np.fft.irfft2(np.fft.rfft2(a)[None] * np.conj(np.fft.rfft2(imgs)), s=(h, w))
    else:
        corr = np.einsum("hw,ghw->g", a, imgs)[:, None, None]  # the zero shift only
    signs = (1.0, -1.0) if "sign" in symmetries else (1.0,)
    score = np.stack([sg * corr for sg in signs])
    k, g, di, dj = np.unravel_index(int(np.argmax(score)), score.shape)
    return signs[k] * np.roll(imgs[g], (int(di), int(dj)), axis=(0, 1))


def _parse_sizes(sizes) -> list[int]:
    if isinstance(sizes, (int, np.integer)):
        sizes = [sizes]
    elif isinstance(sizes, str):
        sizes = [s for s in sizes.replace(" ", "").split(",") if s]
    out = []
    for s in sizes:
        try:
            v = int(s)
            exact = isinstance(s, str) or float(s) == v
        except (TypeError, ValueError):
            exact = False
        if not exact or isinstance(s, bool):
            raise E.ParameterError(f"training-set sizes must be integers; got {s!r}")
        if v < 1:
            raise E.ParameterError(f"training-set sizes must be >= 1; got {v}")
        out.append(v)
    if not out:
        raise E.ParameterError("give at least one training-set size N")
    if len(set(out)) != len(out):
        raise E.ParameterError(f"training-set sizes listed twice: {out}")
    return sorted(out)


def _training_order(n_total: int, n_max: int, n_extra: int, seed: int, groups, path) -> tuple[np.ndarray, np.ndarray]:
    """Indices S₁ (n_max), S₂ (n_max), then up to ``n_extra`` fields of groups in neither, and the
    group label of each (module docstring). The groups, in one seeded random order, fill S₁ until it
    holds ≥ n_max fields, then S₂, the rest are held out; each set keeps its first n_max fields.
    Without groups (every field its own group) this is perm[:2·n_max + n_extra] of the old versions."""
    from .splits import group_members, as_groups

    g = as_groups(groups, n_total)
    labels = np.arange(n_total, dtype=np.int64) if g is None else g
    members = group_members(labels)
    order = np.random.default_rng(seed).permutation(len(members))
    parts: tuple[list, list, list] = ([], [], [])
    filled = [0, 0]
    for i in order:
        k = 0 if filled[0] < n_max else (1 if filled[1] < n_max else 2)
        parts[k].append(members[i])
        if k < 2:
            filled[k] += members[i].size
    if filled[1] < n_max:
        sizes = np.array([members[i].size for i in order])
        cum = np.cumsum(sizes)
        best = 0
        for n in range(n_total // 2, 0, -1):  # the largest N these groups (in this order) allow
            k1 = int(np.searchsorted(cum, n))
            if cum[-1] - cum[k1] >= n:
                best = n
                break
        raise E.ParameterError(
            f"holds {n_total} fields in {len(members)} groups (largest {int(sizes.max())} fields): two training sets "
            f"of N = {n_max} with no group in both do not fit (largest possible N with seed {seed}: {best})", path=path)

    def cat(p):
        return np.concatenate(p) if p else np.zeros(0, np.int64)

    used = np.concatenate([cat(parts[0])[:n_max], cat(parts[1])[:n_max], cat(parts[2])[:n_extra]])
    return used, labels[used]


def _load(data, needed_max: int, n_extra: int, seed: int, sizes):
    """The 2·max N training fields (permutation order), up to ``n_extra`` held-out fields, their
    group labels (each field its own group where the data record none) and a provenance record."""
    from .io import open_fields

    if isinstance(data, (str, Path)):
        with open_fields(data) as ds:
            if len(ds.sample_shape) != 2:
                raise E.InputError(f"generalisation needs single-channel (N, H, W) fields; the file holds samples "
                                   f"of shape {tuple(ds.sample_shape)}", path=ds.path)
            n_total = len(ds)
            _check_sizes(sizes, n_total, str(ds.path))
            groups, kind = ds.groups, ds.group_kind
            used, labels = _training_order(n_total, needed_max, n_extra, seed, groups, str(ds.path))
            x = ds[used]
            meta = {"path": str(ds.path), "field": ds.field, "params": dict(ds.params), "n_fields": n_total}
    else:
        arr = np.asarray(_as_fields(data, "data"))
        n_total = len(arr)
        _check_sizes(sizes, n_total, None)
        groups, kind = None, None
        used, labels = _training_order(n_total, needed_max, n_extra, seed, None, None)
        x = arr[used]
        meta = {"path": "<array>", "field": "custom", "params": {}, "n_fields": n_total}
    meta["shape"] = list(x.shape[1:])
    meta["group_kind"] = kind
    meta["n_groups"] = int(np.unique(groups).size) if groups is not None else n_total
    return x, used, labels, meta


def _check_sizes(sizes, n_total: int, path) -> None:
    too_big = [n for n in sizes if 2 * n > n_total]
    if too_big:
        raise E.ParameterError(
            f"holds {n_total} fields, but two disjoint training sets of N = {', '.join(map(str, too_big))} need "
            f"2N = {', '.join(str(2 * n) for n in too_big)} fields (largest possible N: {n_total // 2})", path=path)


def _regime(row: dict) -> str:
    """generalising / memorising / transition from the per-pair difference (module docstring)."""
    v, e = row["difference"]["value"], row["difference"]["error"]
    if not (math.isfinite(v) and math.isfinite(e)):
        return "undetermined"
    if v > 3 * e:
        return "generalising"
    if v < -3 * e:
        t = row.get("truth_similarity")
        if t is None:
            return "memorising"
        # closer to the training set than fresh truth is, too: not merely two poor models that disagree
        excess = row["train_similarity"]["value"] - t["value"]
        return "memorising" if excess > 3 * math.hypot(row["train_similarity"]["error"], t["error"]) else "transition"
    return "transition"


def _fmt(d: dict | None, digits: int = 3) -> str:
    if not d or d.get("value") is None or not math.isfinite(d["value"]):
        return "—"
    return f"{d['value']:.{digits}f} ± {d['error']:.2g}"


def _markdown(report: dict) -> str:
    d = report["data"]
    lines = [f"# phigen generalisation: {report['model']} on {d['field']} ({Path(d['path']).name})", "",
             f"Kadkhodaie et al. (2024) test. For each N, two {report['model']} models fitted on disjoint sets of N "
             f"of the file's {d['n_fields']} fields of {d['shape'][0]}×{d['shape'][1]} (same fit key), each drawing "
             f"{report['n_samples']} samples from the same noise (same sampling key; seed {report['seed']}).", "",
             *([f"The file's fields come in {d['n_groups']} groups (kind '{d['group_kind']}', correlated fields): the "
                "two training sets share no group, and held-out truth comes from groups in neither.", ""]
               if d.get("group_kind") not in (None, "field") else []),
             f"Similarity: s(a, b) = max_T 2⟨ā, T b̄⟩/(‖ā‖² + ‖b̄‖²), ā = a − mean(a), T over "
             f"{', '.join(report['symmetries'])}; 1 for identical fields. Mean ± standard error over the sample "
             "pairs.",
             "", "| N | model 1 vs model 2 (same noise) | sample vs nearest training field | held-out truth vs "
             "nearest training field | fraction closer to training than to the other model | fit time (s) | regime |",
             "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        fit_s = " + ".join(f"{t:.3g}" for t in r["fit_seconds"])
        lines.append(f"| {r['N']} | {_fmt(r['model_similarity'])} | {_fmt(r['train_similarity'])} | "
                     f"{_fmt(r.get('truth_similarity'))} | {_fmt(r['closer_to_train'], 2)} | {fit_s} | "
                     f"{r['regime']} |")
    lines += ["", "- Generalising: the two models map the same noise to nearly the same field (model 1 vs model 2 "
              "near 1) and their samples are no closer to their training fields than held-out truth is. "
              "Memorising: each sample sits on a field of its own training set (similarity near 1) and the two "
              "models disagree.",
              "- Regime: model 1 vs model 2 minus sample vs nearest training field, per pair; 'generalising' when "
              "it exceeds 3 standard errors, 'memorising' when it is below −3 standard errors and the samples are "
              "also closer to their training fields than held-out truth is (by 3 standard errors).", "",
              f"![similarities versus N]({report['files']['plot']})", "",
              f"![examples]({report['files']['examples']})", "",
              f"All numbers (and per-sample similarities) in {report['files']['json']}; samples in "
              f"{Path(report['files']['samples'][0]).parent}/.", ""]
    return "\n".join(lines)


def generalisation(data, *, model: str = "diffusion", sizes: Sequence[int] = (10, 100, 1000), out_dir,
                   seed: int = 0, n_samples: int = 32, fit_options: Mapping | None = None,
                   sample_options: Mapping | None = None,
                   progress: bool | Callable[[str], None] | None = None) -> dict:
    """Two-disjoint-training-sets generalisation test (module docstring) of model ``model``.

    ``data``: a phigen file (or an ``(n, H, W)`` array); ``sizes``: the training-set sizes N (each
    needs 2N ≤ the number of fields, else ParameterError); ``fit_options`` / ``sample_options`` go
    to :func:`phigen.models.fit` / :func:`phigen.models.sample` (fit key ``seed``, sampling key
    ``seed + 1`` for both models). Writes ``out_dir/generalisation.json``, ``generalisation.md``,
    ``generalisation.png`` (both similarities versus N, log x), ``generalisation_examples.png``
    and the samples ``samples/N{N}_model{1,2}.h5``. Returns the report dict (as in the JSON) with
    ``files`` (paths).
    """
    from ._json import json_safe
    from .fields.kind import kind_symmetries
    from .models import get_model_class

    get_model_class(model)  # unknown kind: a clear error before any reading or fitting
    sizes = _parse_sizes(sizes)
    if int(n_samples) != n_samples or n_samples < 2:
        raise E.ParameterError(f"n_samples must be an integer >= 2 (for the standard errors); got {n_samples!r}")
    n_samples = int(n_samples)
    fit_options, sample_options = dict(fit_options or {}), dict(sample_options or {})
    out = Path(out_dir)
    bars = bool(progress) and not callable(progress)

    n_max = sizes[-1]
    x, used, labels, meta = _load(data, n_max, n_samples, seed, sizes)
    set1, set2 = x[:n_max], x[n_max:2 * n_max]
    symmetries = kind_symmetries(meta["field"])
    say(progress, f"generalisation: {model} on {meta['n_fields']} {meta['field']} fields of "
                   f"{meta['shape'][0]}×{meta['shape'][1]}; N = {', '.join(map(str, sizes))}; {n_samples} samples")

    results, examples, sample_files = [], [], []
    for n in sizes:
        train = (set1[:n], set2[:n])
        models, samples, fit_s, sample_s = _fit_and_sample_pair(model, train, n, n_samples, seed, fit_options,
                                                                 sample_options, x.shape[1:], bars, progress)
        say(progress, f"generalisation: N = {n}: similarities")
        row, nn = _similarity_row(n, samples, train, symmetries)
        row.update({"fit_seconds": fit_s, "sample_seconds": sample_s, "n_params": int(models[0].n_params),
                    "training_indices": [used[:n].tolist(), used[n_max:n_max + n].tolist()]})
        row.update(_truth_similarity(x, labels, n, n_max, n_samples, train, symmetries))
        row["regime"] = _regime(row)
        results.append(row)
        examples.append((n, samples[0][0], samples[1][0], train[0][nn[0].index[0]]))
        sample_files += _write_pair_samples(out, n, samples, row, meta, model, seed, fit_options, sample_options)
        say(progress, f"generalisation: N = {n}: model vs model {_fmt(row['model_similarity'])}, sample vs "
                       f"training {_fmt(row['train_similarity'])} ({row['regime']})")

    out.mkdir(parents=True, exist_ok=True)
    files = {"json": "generalisation.json", "markdown": "generalisation.md", "plot": "generalisation.png",
             "examples": "generalisation_examples.png", "samples": sample_files}
    _plot_similarities(results, sizes, model, meta["field"], out / files["plot"])
    _plot_examples(examples, symmetries, out / files["examples"])

    report = json_safe({
        "model": model, "data": meta, "sizes": sizes, "n_samples": n_samples, "seed": seed,
        "fit_seed": seed, "sample_seed": seed + 1, "symmetries": list(symmetries), "similarity": SIMILARITY,
        "fit_options": fit_options, "sample_options": sample_options,
        "results": results, "files": files,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    })
    (out / files["json"]).write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    (out / files["markdown"]).write_text(_markdown(report))
    report["report"] = {k: str(out / v) for k, v in files.items() if k != "samples"}
    say(progress, f"generalisation: report in {out / files['markdown']}")
    return report


# ---- the steps of generalisation ---------------------------------------------------------------------
def _fit_and_sample_pair(model, train, n, n_samples, seed, fit_options, sample_options, shape, bars, progress):
    """Fit one model on each of the two training sets (the same fit key) and draw ``n_samples`` from
    each with the same sampling key: ``(models, samples, fit seconds, sample seconds)``."""
    from .models import fit, sample

    models, samples, fit_s, sample_s = [], [], [], []
    for k in (0, 1):
        say(progress, f"generalisation: N = {n}: fitting model {k + 1}")
        m = fit(model, train[k], seed=seed, progress=bars, **fit_options)  # same fit key for both
        fit_s.append(float((getattr(m, "training", None) or {}).get("fit_seconds", float("nan"))))
        say(progress, f"generalisation: N = {n}: sampling {n_samples} fields from model {k + 1}")
        t0 = time.perf_counter()
        s = np.asarray(sample(m, n_samples, seed=seed + 1, progress=False, **sample_options), np.float32)
        sample_s.append(time.perf_counter() - t0)
        if s.shape[1:] != tuple(shape):
            raise E.InputError(f"{model} samples have shape {s.shape[1:]}, the data {tuple(shape)}")
        models.append(m)
        samples.append(s)
    return models, samples, fit_s, sample_s


def _similarity_row(n, samples, train, symmetries):
    """The similarities of one N (model vs model, sample vs nearest training field), mean ± s.e.
    and per sample; and the nearest neighbours of each model's samples in its training set."""
    from ._estimates import mean_se
    from .stats.memorisation import nearest_neighbour_distances

    cross = field_similarity(samples[0], samples[1], symmetries=symmetries)
    cross_id = field_similarity(samples[0], samples[1], symmetries=())
    nn = [nearest_neighbour_distances(_centred(samples[k]), _centred(train[k]), symmetries=symmetries)
          for k in (0, 1)]
    s_train = [1.0 - nn[k].distance ** 2 for k in (0, 1)]
    pair_train = 0.5 * (s_train[0] + s_train[1])
    closer = 0.5 * ((s_train[0] > cross).astype(float) + (s_train[1] > cross).astype(float))
    row = {"N": n, "model_similarity": mean_se(cross), "model_similarity_identity": mean_se(cross_id),
           "train_similarity": mean_se(pair_train), "train_similarity_model_1": mean_se(s_train[0]),
           "train_similarity_model_2": mean_se(s_train[1]), "closer_to_train": mean_se(closer),
           "difference": mean_se(cross - pair_train),
           "per_sample": {"model_similarity": cross.tolist(), "train_similarity_model_1": s_train[0].tolist(),
                          "train_similarity_model_2": s_train[1].tolist(),
                          "nearest_train_index_model_1": nn[0].index.tolist(),
                          "nearest_train_index_model_2": nn[1].index.tolist()}}
    return row, nn


def _truth_similarity(x, labels, n, n_max, n_samples, train, symmetries) -> dict:
    """Held-out truth for this N (fields of groups in neither training set, the never-used ones
    first) against the nearest training field: ``{"truth_similarity", "n_truth"}`` (empty when
    fewer than 2 such fields are left)."""
    from ._estimates import mean_se
    from .stats.memorisation import nearest_neighbour_distances

    touched = np.concatenate([labels[:n], labels[n_max:n_max + n]])
    cand = np.concatenate([np.arange(2 * n_max, len(x)), np.arange(n, n_max), np.arange(n_max + n, 2 * n_max)])
    truth = x[cand[~np.isin(labels[cand], touched)]][:n_samples]
    if len(truth) < 2:
        return {}
    t_sim = [1.0 - nearest_neighbour_distances(_centred(truth), _centred(train[k]),
                                               symmetries=symmetries).distance ** 2 for k in (0, 1)]
    return {"truth_similarity": mean_se(0.5 * (t_sim[0] + t_sim[1])), "n_truth": int(len(truth))}


def _write_pair_samples(out: Path, n, samples, row, meta, model, seed, fit_options, sample_options) -> list[str]:
    """The two models' samples as phigen files ``samples/N{n}_model{1,2}.h5``; their relative paths."""
    from .io import write_fields

    paths = []
    for k in (0, 1):
        path = out / "samples" / f"N{n}_model{k + 1}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_fields(path, samples[k], field=meta["field"], generator=f"phigen.generalisation:{model}",
                     seed=seed + 1, params=meta["params"], overwrite=True,
                     config={"model_kind": model, "N": n, "model": k + 1, "fit_seed": seed,
                             "training_indices": row["training_indices"][k], "data": meta["path"],
                             "fit_options": fit_options, "sample_options": sample_options})
        paths.append(str(path.relative_to(out)))
    return paths


def _plot_similarities(results, sizes, model, field, path) -> None:
    """Both similarities (and the held-out truth's) versus N, log x."""
    from .plot import plot_series, save_figure

    series = {"model 1 vs model 2 (same noise)": [r["model_similarity"]["value"] for r in results],
              "sample vs nearest training field": [r["train_similarity"]["value"] for r in results]}
    errors = {"model 1 vs model 2 (same noise)": [r["model_similarity"]["error"] for r in results],
              "sample vs nearest training field": [r["train_similarity"]["error"] for r in results]}
    xs = {k: np.asarray(sizes, float) for k in series}
    with_truth = [r for r in results if "truth_similarity" in r]
    if with_truth:
        label = "held-out truth vs nearest training field"
        xs[label] = np.asarray([r["N"] for r in with_truth], float)
        series[label] = [r["truth_similarity"]["value"] for r in with_truth]
        errors[label] = [r["truth_similarity"]["error"] for r in with_truth]
    fig = plot_series(xs, series, errors=errors, xlabel="training set size N",
                      ylabel="similarity (1 = identical)", logx=True, marker="o")
    fig.axes[0].set_title(f"{model} on {field}: generalisation test", fontsize="medium")
    save_figure(fig, path)


def _plot_examples(examples, symmetries, path) -> None:
    """One row per N (at most 6): the two models' first samples and model 1's nearest training field."""
    from .plot import plot_fields, save_figure

    pick = np.unique(np.linspace(0, len(examples) - 1, min(6, len(examples))).round().astype(int))
    shown, titles = [], []
    for n, a, b, t in (examples[i] for i in pick):
        shown += [a, b, _align(_centred(a), _centred(t), symmetries) + a.mean()]
        titles += [f"N={n}: model 1", f"N={n}: model 2", f"N={n}: nearest training (model 1)"]
    save_figure(plot_fields(np.stack(shown), titles=titles, ncols=3, max_fields=len(shown),
                            symmetric="sign" in symmetries), path)
