"""Compare an ensemble of generated fields with the truth, next to the truth-vs-truth floor.

Every statistic is computed once per field; a distance d(A, B) between two sets of fields is then
a function of their per-field rows. Following DESIGN §10, for each of ``n_splits`` random splits
the truth is cut into two disjoint halves A, B of size m = min(n_samples, n_truth // 2), and

    model = d(S, B)   (S: the samples, or a random m-subset of them),   floor = d(A, B);

both are reported as mean and std over the splits. A model is as good as the truth on a statistic
when its distance lies within the floor's spread. Distances (see ``DISTANCE_DEFINITIONS``):

- ``chi2`` (power spectrum, bispectrum, Minkowski, flatness): the squared difference of the two
  set means per component, divided by its expected variance s²(1/m_A + 1/m_B) where s is the
  std across *all* truth fields, averaged over the components with s > 0. For the power spectrum
  the difference is of log-means, with s the truth's relative std. It is ≈ 1 for two independent
  sets of truth fields (a χ² per degree of freedom), and grows as m·bias² for a biased model.
- ``w1``: exact Wasserstein-1 distance between the pooled pixel values, divided by the truth's
  pixel std (unit-free). ``ks``: two-sample Kolmogorov–Smirnov statistic of the pooled pixels.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_fields, check_int_at_least
from ..errors import InputError, ParameterError
from ._binning import fundamental
from .bispectrum import bispectrum_estimate
from .minkowski import minkowski_functionals
from .pdf import moments, pixel_pdf, w1_and_ks
from .spectrum import power_spectrum
from .structure import flatness

STATISTICS = ("power_spectrum", "pdf", "bispectrum", "minkowski", "flatness")

DISTANCE_DEFINITIONS = {
    "power_spectrum": {"chi2": "mean over k of (log mean P_A − log mean P_B)² / (s_rel²(1/m_A + 1/m_B)), "
                               "s_rel = std/mean of the truth's per-field P(k)"},
    "pdf": {"w1": "Wasserstein-1 between pooled pixel values / truth pixel std",
            "ks": "two-sample Kolmogorov-Smirnov statistic of pooled pixel values"},
    "bispectrum": {"chi2_B": "chi2 per component of the equilateral bispectrum B(k,k,k), shells of width 2Δk",
                   "chi2_Q": "chi2 per component of the equilateral reduced bispectrum Q(k,k,k), same shells"},
    "minkowski": {"chi2": "chi2 per component over V0, V1, V2 at all thresholds (standardised fields)"},
    "flatness": {"chi2": "chi2 per component of the flatness S4/S2² at all separations"},
}

MINKOWSKI_THRESHOLDS = np.linspace(-2.5, 2.5, 11)
PDF_BINS = 60


BISPECTRUM_WIDTH = 2.0  # shell width in units of Δk: 2Δk shells hold ~4x the triangles of Δk shells


def _equilateral_ks(shape):
    """Equilateral triangle sides: integer multiples of Δk, log-spaced from 2Δk to L/4·Δk."""
    l_min = min(shape)
    top = max(2, l_min // 4)
    mult = np.unique(np.round(np.geomspace(2, top, 7)).astype(int))
    return mult * fundamental(shape)


CHUNK = 16  # fields per jitted call: one compilation per field shape, bounded memory at 256²


def _per_field(x, names):
    """Per-field statistic rows (numpy float64) and their axes for the statistics in ``names``.

    Evaluated in chunks of ``CHUNK`` fields, the last one zero-padded, so every ensemble of a
    given field shape reuses the same compiled functions (padding rows are dropped)."""
    n = x.shape[0]
    parts = []
    for start in range(0, n, CHUNK):
        block = np.asarray(x[start:start + CHUNK])
        used = block.shape[0]
        if used < CHUNK:
            block = np.concatenate([block, np.zeros((CHUNK - used, *block.shape[1:]), block.dtype)])
        rows, axes = _per_field_block(block, names)
        parts.append({key: val[:used] for key, val in rows.items()})
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}, axes


def _per_field_block(x, names):
    rows, axes = {}, {}
    if "power_spectrum" in names:
        ps = power_spectrum(x)
        rows["power_spectrum"] = np.asarray(ps.power, dtype=np.float64)
        axes["power_spectrum"] = {"k": ps.k, "counts": ps.counts}
    if "pdf" in names:
        m = moments(x)
        rows["moments"] = np.stack([np.asarray(v, dtype=np.float64) for v in m], axis=1)
    if "bispectrum" in names:
        ks = _equilateral_ks(x.shape[-2:])
        est = bispectrum_estimate(x, ks, ks, ks, width=BISPECTRUM_WIDTH * fundamental(x.shape[-2:]))
        rows["bispectrum_B"] = np.asarray(est.bispectrum, dtype=np.float64)
        rows["bispectrum_Q"] = np.asarray(est.reduced, dtype=np.float64)
        axes["bispectrum"] = {"k": ks}
    if "minkowski" in names:
        mf = minkowski_functionals(x, MINKOWSKI_THRESHOLDS)
        rows["minkowski"] = np.stack([np.asarray(v, dtype=np.float64) for v in mf[1:]], axis=1)
        axes["minkowski"] = {"thresholds": mf.thresholds}
    if "flatness" in names:
        r, f = flatness(x)
        rows["flatness"] = np.asarray(f, dtype=np.float64)
        axes["flatness"] = {"r": r}
    return rows, axes


def _chi2(a, b, scale, *, log=False):
    """Mean over components of (mean_a − mean_b)² / (scale²(1/m_a + 1/m_b)); components with
    scale == 0 (no spread in the truth) are skipped."""
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    scale = scale.ravel()
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    if log:
        ok = (ma > 0) & (mb > 0)
        diff = np.where(ok, np.log(np.where(ok, ma, 1.0) / np.where(ok, mb, 1.0)), np.inf)
    else:
        diff = ma - mb
    use = np.isfinite(scale) & (scale > 0)
    if not np.any(use):
        return 0.0
    var = scale[use] ** 2 * (1.0 / a.shape[0] + 1.0 / b.shape[0])
    return float(np.mean(diff[use] ** 2 / var))


def _spread(rows, *, relative=False):
    flat = rows.reshape(rows.shape[0], -1)
    s = flat.std(axis=0, ddof=1)
    if relative:
        mean = np.abs(flat.mean(axis=0))
        s = np.where(mean > 0, s / np.where(mean > 0, mean, 1.0), 0.0)
    return s


def _mean_std(rows):
    return rows.mean(axis=0).tolist(), (rows.std(axis=0, ddof=1) if rows.shape[0] > 1
                                        else np.zeros(rows.shape[1:])).tolist()


def _check_names(statistics):
    names = STATISTICS if statistics is None else tuple(statistics)
    unknown = [n for n in names if n not in STATISTICS]
    if unknown:
        raise ParameterError(f"unknown statistics {unknown}; choose from {list(STATISTICS)}")
    return names


def _summary(x, rows, axes, names, pdf_range):
    out = {}
    if "power_spectrum" in names:
        mean, std = _mean_std(rows["power_spectrum"])
        out["power_spectrum"] = {"k": axes["power_spectrum"]["k"].tolist(),
                                 "counts": axes["power_spectrum"]["counts"].astype(float).tolist(),
                                 "mean": mean, "std": std}
    if "pdf" in names:
        centers, dens = pixel_pdf(x, bins=PDF_BINS, range=pdf_range)
        mean, std = _mean_std(rows["moments"])
        out["pdf"] = {"centers": centers.tolist(), "density": np.asarray(dens, dtype=float).tolist(),
                      "moment_names": ["mean", "std", "skewness", "kurtosis"],
                      "moments_mean": mean, "moments_std": std}
    if "bispectrum" in names:
        b_mean, b_std = _mean_std(rows["bispectrum_B"])
        q_mean, q_std = _mean_std(rows["bispectrum_Q"])
        out["bispectrum"] = {"k": axes["bispectrum"]["k"].tolist(), "B_mean": b_mean, "B_std": b_std,
                             "Q_mean": q_mean, "Q_std": q_std}
    if "minkowski" in names:
        mean, std = _mean_std(rows["minkowski"])
        out["minkowski"] = {"thresholds": axes["minkowski"]["thresholds"].tolist(),
                            "v0_mean": mean[0], "v1_mean": mean[1], "v2_mean": mean[2],
                            "v0_std": std[0], "v1_std": std[1], "v2_std": std[2]}
    if "flatness" in names:
        mean, std = _mean_std(rows["flatness"])
        out["flatness"] = {"r": axes["flatness"]["r"].astype(float).tolist(), "mean": mean, "std": std}
    return out


def statistics_summary(fields, *, statistics=None) -> dict:
    """All statistics of one ensemble ``(N, H, W)``: for each, its axis (k, thresholds, r, bin
    centres) and the mean and std across fields, as a JSON-serialisable dict of floats and lists."""
    names = _check_names(statistics)
    x = as_fields(fields)
    rows, axes = _per_field(x, names)
    return _summary(x, rows, axes, names, None)


def _distances(names, s_rows, t_rows, s_pix, t_pix, scales, s_idx, a_idx, b_idx):
    """{statistic: {distance: (model, floor)}} for one split."""
    out = {}

    def pair(fn):
        return fn(s_idx, b_idx, s_rows, s_pix), fn(a_idx, b_idx, t_rows, t_pix)

    if "power_spectrum" in names:
        out["power_spectrum"] = {"chi2": pair(lambda i, j, rows, _: _chi2(
            rows["power_spectrum"][i], t_rows["power_spectrum"][j], scales["power_spectrum"], log=True))}
    if "pdf" in names:
        std = scales["pixel_std"]
        (w1_model, ks_model), (w1_floor, ks_floor) = pair(lambda i, j, _, pix: w1_and_ks(pix[i], t_pix[j]))
        out["pdf"] = {"w1": (w1_model / std, w1_floor / std), "ks": (ks_model, ks_floor)}
    if "bispectrum" in names:
        out["bispectrum"] = {
            name: pair(lambda i, j, rows, _, key=key: _chi2(rows[key][i], t_rows[key][j], scales[key]))
            for name, key in (("chi2_B", "bispectrum_B"), ("chi2_Q", "bispectrum_Q"))}
    for key in ("minkowski", "flatness"):
        if key in names:
            out[key] = {"chi2": pair(lambda i, j, rows, _, key=key: _chi2(rows[key][i], t_rows[key][j],
                                                                           scales[key]))}
    return out


def compare(samples, truth, *, seed: int = 0, n_splits: int = 3, statistics=None) -> dict:
    """Statistics of ``samples`` and ``truth`` (both ``(N, H, W)``, same H, W) and their distances
    next to the truth-vs-truth floor (module docstring). Needs at least 2 truth fields.

    Returns a JSON-serialisable dict (floats and lists only): ``meta`` (sizes), and for each
    statistic in ``statistics`` (default all of ``STATISTICS``) ``{"samples": summary, "truth":
    summary, "distances": {name: {"model", "model_std", "floor", "floor_std"}}}``.
    """
    names = _check_names(statistics)
    n_splits = check_int_at_least(n_splits, "n_splits", 1)
    xs = as_fields(samples, name="samples")
    xt = as_fields(truth, name="truth")
    if tuple(xs.shape[-2:]) != tuple(xt.shape[-2:]):
        raise InputError(f"samples and truth must have the same field shape; got {xs.shape[-2:]} "
                         f"and {xt.shape[-2:]}")
    n_s, n_t = xs.shape[0], xt.shape[0]
    if n_t < 2:
        raise InputError(f"truth needs at least 2 fields for the truth-vs-truth floor; got {n_t}")
    m = min(n_s, n_t // 2)

    s_rows, s_axes = _per_field(xs, names)
    t_rows, _ = _per_field(xt, names)
    s_pix = np.asarray(xs).reshape(n_s, -1)
    t_pix = np.asarray(xt).reshape(n_t, -1)
    scales = {key: _spread(rows, relative=(key == "power_spectrum")) for key, rows in t_rows.items()}
    scales["pixel_std"] = float(np.std(t_pix)) or 1.0

    rng = np.random.default_rng(seed)
    per_split = []
    for _ in range(n_splits):
        perm = rng.permutation(n_t)
        a_idx, b_idx = np.sort(perm[:m]), np.sort(perm[m:2 * m])
        s_idx = np.sort(rng.choice(n_s, size=m, replace=False)) if n_s > m else np.arange(n_s)
        per_split.append(_distances(names, s_rows, t_rows, s_pix, t_pix, scales, s_idx, a_idx, b_idx))

    lo = float(min(np.min(s_pix), np.min(t_pix)))
    hi = float(max(np.max(s_pix), np.max(t_pix)))
    pdf_range = (lo, hi) if hi > lo else None
    s_sum = _summary(xs, s_rows, s_axes, names, pdf_range)
    t_sum = _summary(xt, t_rows, s_axes, names, pdf_range)

    result = {"meta": {"n_samples": float(n_s), "n_truth": float(n_t), "n_half": float(m),
                       "n_splits": float(n_splits), "seed": float(seed)}}
    for name in names:
        dists = {}
        for dname in per_split[0][name]:
            model = np.array([split[name][dname][0] for split in per_split])
            floor = np.array([split[name][dname][1] for split in per_split])
            dists[dname] = {"model": float(model.mean()), "model_std": float(model.std()),
                            "floor": float(floor.mean()), "floor_std": float(floor.std())}
        result[name] = {"samples": s_sum[name], "truth": t_sum[name], "distances": dists}
    return result
