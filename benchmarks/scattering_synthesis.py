"""Scattering-spectra statistics and microcanonical L-BFGS synthesis: timings as ratios.

Measured in the same run:
- phigen ``ScatteringSpectra`` (J, L = 4, isotropic, ``strict_scales``: 1013 statistics at J = 6)
  forward and forward+backward per field, as ratios against kymatio's own 2D scattering
  (``kymatio.jax.Scattering2D`` through ``phigen.scattering.ClassicScattering``, same J, L, order 2)
  on the same fields;
- microcanonical synthesis (lognormal training fields, the model's batched L-BFGS with its spectral
  preconditioner) of 8 fields at 128² (300 iterations; ``--quick``: 20; the full run repeats it
  without the preconditioner for the final-loss comparison) and at 256² in one batch of 8
  (100 iterations; ``--quick``: 5): seconds per iteration (for the whole batch) and per field,
  compilation excluded and reported separately; final losses; peak RSS of the process; load average.

Targets (issue 5): the PyTorch reference code of the scattering-spectra paper (``s_cov_iso``, J = 6,
L = 4, torch L-BFGS) on a 2-core machine: 0.034 s for the statistics of one 128² field, 0.09 s
forward + backward, 100–220 s to synthesise ONE 128² field with 300 iterations, 95 s for 100
iterations at 256². Printed as ``reference / phigen`` (> 1: phigen faster): the 128² synthesis
ratio is the reference's time for one field over phigen's time for all 8 (≥ 1 means ≥ 8× throughput).

    python benchmarks/scattering_synthesis.py [--quick] [--json PATH]
    python benchmarks/scattering_synthesis.py --quality [--json PATH]   # distances vs the truth floor
    python benchmarks/scattering_synthesis.py --single-map [--quick] [--json PATH]   # fit on ONE map

``--single-map`` (issue 19): the reference code's main use, one lognormal 128² map (P ∝ k⁻³,
skewness 3.6), J = 6, L = 4, 300 iterations, 8 syntheses in one batch, against the reference's
figures on a machine like this one (38 s per field, spectrum RMS log error 0.30, skewness 3.5,
loss 7.5–8.2 ×10⁻⁸ in its normalisation); ratios > 1 mean phigen better or faster. ``--quick``:
64², J = 4, 100 iterations (a smoke run; the ratios then compare different sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

REFERENCE = {"forward_128_s": 0.034, "forward_backward_128_s": 0.09,
             "synthesis_one_field_128_300it_s": (100.0, 220.0), "synthesis_one_field_256_100it_s": 95.0}


def _best(fn, repeat):
    fn()  # compile / warm up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def _lognormal(key, n, size):
    from phigen.fields.gaussian import gaussian_field, power_law_spectrum

    g = np.asarray(gaussian_field(key, n, size, power_law_spectrum(3.0)), np.float64)
    x = np.exp((g - g.mean()) / g.std())
    return ((x - x.mean()) / x.std()).astype(np.float32)


def _statistics_timings(size, J, L, batch, repeat):
    from phigen.scattering import ClassicScattering, ScatteringSpectra

    x = jnp.asarray(_lognormal(jax.random.PRNGKey(0), batch, size))
    ss = ScatteringSpectra((size, size), J, L, strict_scales=True)  # ≈ the reference's 1,000 statistics
    ks = ClassicScattering((size, size), J, L)
    ss_fwd = jax.jit(lambda y: ss(y))
    ss_bwd = jax.jit(jax.grad(lambda y: jnp.sum(ss(y) ** 2)))
    ks_fwd = jax.jit(lambda y: ks(y))
    ks_bwd = jax.jit(jax.grad(lambda y: jnp.sum(ks(y) ** 2)))
    out = {"n_stats": ss.n_stats, "kymatio_n_coefficients": ks.n_coefficients}
    for name, fn in (("phigen_forward", ss_fwd), ("phigen_forward_backward", ss_bwd),
                     ("kymatio_forward", ks_fwd), ("kymatio_forward_backward", ks_bwd)):
        out[name + "_s_per_field"] = _best(lambda fn=fn: fn(x), repeat) / batch
    return out


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def _synthesis_timings(size, J, L, n_fields, steps, batch_size, precondition=True, model=None):
    from phigen.scattering import ScatteringModel

    if model is None:
        data = _lognormal(jax.random.PRNGKey(1), 16, size)
        model = ScatteringModel.fit(data, J=J, L=L, mode="micro", steps=steps, strict_scales=True, key=jax.random.PRNGKey(0))
    bs = batch_size or n_fields
    t = time.perf_counter()  # compile: one chunk on one batch, same compiled functions as the real run
    model.synthesize(bs, key=jax.random.PRNGKey(2), steps=1, batch_size=bs, precondition=precondition)
    compile_s = time.perf_counter() - t
    res = model.synthesize(n_fields, key=jax.random.PRNGKey(3), steps=steps, batch_size=bs, precondition=precondition)
    n_batches = -(-n_fields // bs)
    out = {"n_stats": model.n_stats, "fields": n_fields, "iterations": steps, "batch_size": bs,
           "compile_s": compile_s, "total_s": res.seconds, "s_per_iteration_batch": res.seconds / (steps * n_batches),
           "s_per_field": res.seconds / n_fields, "final_loss_median": float(np.median(res.loss)),
           "final_loss_max": float(np.max(res.loss)), "initial_loss_median": float(np.median(res.initial_loss)),
           "accepted_fraction": float(np.mean(res.accepted) / max(steps, 1)),
           "data_loss_median": model.training["data_loss_median"], "peak_rss_mb": _peak_rss_mb()}
    return out, model


SINGLE_MAP_REFERENCE = {"seconds_per_field": 38.0, "spectrum_rms_log_error": 0.30, "skewness": 3.5,
                        "normalised_loss_x1e8": (7.5, 8.2), "target_skewness": 3.6}


def lognormal_map(key, size=128, skewness=3.6, slope=3.0):
    """ONE standardised lognormal field exp(a·g), g Gaussian with P(k) ∝ k^-slope (unit std), with
    ``a`` set by bisection so that the field's own skewness is ``skewness`` (the benchmark target of
    the reference code's single-map use). Returns (size, size) float32."""
    from phigen.fields.gaussian import gaussian_field, power_law_spectrum

    g = np.asarray(gaussian_field(key, 1, size, power_law_spectrum(slope)), np.float64)[0]
    g = (g - g.mean()) / g.std()

    def skew(a):
        x = np.exp(a * g)
        d = x - x.mean()
        return float(np.mean(d**3) / np.mean(d**2) ** 1.5)

    lo, hi = 0.01, 3.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if skew(mid) < skewness else (lo, mid)
    x = np.exp(0.5 * (lo + hi) * g)
    return ((x - x.mean()) / x.std()).astype(np.float32)


def spectrum_rms_log_error(samples, target, rel_cut=1e-8):
    """Per sample: RMS over the radial bins (``phigen.stats.power_spectrum``, up to the grid corner)
    where the target has power (> ``rel_cut`` × its maximum) of log(P_sample(k) / P_target(k)). (N,)"""
    from phigen.stats import power_spectrum

    pt = np.asarray(power_spectrum(target[None]).power, np.float64)[0]
    ps = np.asarray(power_spectrum(samples).power, np.float64)
    band = pt > rel_cut * pt.max()
    return np.sqrt(np.mean(np.log(ps[:, band] / pt[band]) ** 2, axis=1))


def skewness(x):
    d = x - x.mean(axis=(-2, -1), keepdims=True)
    return np.mean(d**3, axis=(-2, -1)) / np.mean(d**2, axis=(-2, -1)) ** 1.5


def normalised_loss_x1e8(samples, target, J, L):
    """phigen's APPROXIMATION of the reference code's loss normalisation (its code is not installed
    here): mean over the statistics vector of the squared difference to the target's, ×10⁸, the
    vector being the scattering spectra (``strict_scales``: the reference's j1 < j2 < j3 set)
    normalised by the TARGET's wavelet power S2 ("P00"), with uniform weights, the mean divided by the
    target's pixel std. Entries differ from the reference's (log S2 and S1/√S2 instead of its P00 and
    S1 ratios; Morlet banks not identical), so compare orders of magnitude. (N,)"""
    from phigen.scattering import ScatteringSpectra

    base = ScatteringSpectra(target.shape, J, L, strict_scales=True)
    ss = base.with_reference(target[None])
    scale = ss.single_map_scale(float(target.std()))
    t = np.asarray(ss(target[None]), np.float64)[0] / scale
    v = np.asarray(ss(samples), np.float64) / scale
    return 1e8 * np.mean((v - t) ** 2, axis=1)


def single_map(*, size=128, J=6, L=4, steps=300, n_fields=8, seed=0, shifted_copies=4):
    """Fit the microcanonical model on ONE lognormal map (skewness 3.6, P ∝ k^-3; ``strict_scales``,
    the reference's statistics set) and synthesise ``n_fields`` fields in one batch: spectrum RMS log
    error, skewness, relative and normalised losses, seconds per field (compilation excluded, and
    reported). Then the same fit on ``shifted_copies`` periodically shifted copies of the map (no
    spread across fields: must fall back to the single-map scales) and its synthesis loss."""
    from phigen.scattering import ScatteringModel

    target = lognormal_map(jax.random.PRNGKey(seed + 100), size)
    model = ScatteringModel.fit(target[None], J=J, L=L, mode="micro", steps=steps, strict_scales=True, key=jax.random.PRNGKey(0))
    t = time.perf_counter()
    model.synthesize(n_fields, key=jax.random.PRNGKey(seed + 1), steps=1)
    compile_s = time.perf_counter() - t
    cpu = time.process_time()
    res = model.synthesize(n_fields, key=jax.random.PRNGKey(seed + 2))
    cpu = time.process_time() - cpu  # CPU seconds of all threads: the wall time on a loaded machine overstates
    rms = spectrum_rms_log_error(res.fields, target)
    sk = skewness(np.asarray(res.fields, np.float64))
    out = {"size": size, "J": J, "L": L, "steps": steps, "n_fields": n_fields, "n_stats": model.n_stats,
           "scales": model.training["scales"], "target_skewness": float(skewness(target.astype(np.float64))),
           "spectrum_rms_log_error": rms.tolist(), "spectrum_rms_log_error_median": float(np.median(rms)),
           "spectrum_rms_log_error_max": float(np.max(rms)), "skewness": sk.tolist(),
           "skewness_median": float(np.median(sk)),
           "loss_initial_median": float(np.median(res.initial_loss)), "loss_final_median": float(np.median(res.loss)),
           "loss_final_max": float(np.max(res.loss)),
           "relative_loss_median": float(np.median(res.loss / res.initial_loss)),
           "normalised_loss_x1e8": normalised_loss_x1e8(res.fields, target, J, L).tolist(),
           "compile_s": compile_s, "total_s": res.seconds, "seconds_per_field": res.seconds / n_fields,
           "cpu_seconds_per_field": cpu / n_fields, "load_average_1": os.getloadavg()[0]}
    if shifted_copies:
        rng = np.random.default_rng(seed)
        copies = np.stack([np.roll(target, tuple(rng.integers(0, size, 2)), axis=(0, 1))
                           for _ in range(shifted_copies)])
        m4 = ScatteringModel.fit(copies, J=J, L=L, mode="micro", steps=steps, strict_scales=True, key=jax.random.PRNGKey(0))
        r4 = m4.synthesize(n_fields, key=jax.random.PRNGKey(seed + 2))
        out["shifted_copies"] = {"copies": shifted_copies, "scales": m4.training["scales"],
                                 "loss_initial_median": float(np.median(r4.initial_loss)),
                                 "loss_final_median": float(np.median(r4.loss)),
                                 "spectrum_rms_log_error_median":
                                     float(np.median(spectrum_rms_log_error(r4.fields, target))),
                                 "skewness_median": float(np.median(skewness(np.asarray(r4.fields, np.float64))))}
    return out


QUALITY_STATISTICS = (("power_spectrum", "chi2"), ("pdf", "w1"), ("minkowski", "chi2"), ("bispectrum", "chi2_Q"),
                      ("flatness", "chi2"))


def in_band_spectrum_chi2(samples, truth, *, seed=0, n_splits=3, rel_cut=1e-8, groups=None):
    """``phigen.stats.compare``'s power-spectrum χ² (log of set means over the truth's relative std,
    per k bin) restricted to the bins that the statistics can see and the truth populates:
    |k| ≤ π (inside the Nyquist circle: the Morlet bank's Littlewood–Paley sum vanishes in the grid
    corners, so Φ does not constrain them and synthesis keeps its starting noise there) and truth
    power > ``rel_cut`` × its maximum (the turbulence maps are dealiased, 2/3 rule, so their power
    beyond k = 2/3 k_Nyquist is 10⁻¹⁴ round-off). Returns model and floor as mean ± std over
    ``n_splits`` random half splits of the truth with no group (``groups``: label per truth field)
    on both sides (:func:`phigen.splits.equal_halves`, m = min(n_samples, half_size); without
    groups the field-level halves of earlier versions)."""
    from phigen.splits import equal_halves, half_size
    from phigen.stats import power_spectrum

    ps_t = power_spectrum(truth)
    ts, ss = np.asarray(ps_t.power, np.float64), np.asarray(power_spectrum(samples).power, np.float64)
    mean = ts.mean(0)
    band = (np.asarray(ps_t.k) <= np.pi) & (mean > rel_cut * mean.max())
    rel = ts.std(0, ddof=1)[band] / mean[band]

    def chi2(a, b):
        d = np.log(a[:, band].mean(0) / b[:, band].mean(0))
        return float(np.mean(d**2 / (rel**2 * (1 / a.shape[0] + 1 / b.shape[0]))))

    rng = np.random.default_rng(seed)
    m = min(len(ss), half_size(len(ts), groups))
    model, floor = [], []
    for _ in range(n_splits):
        a_idx, b_idx = equal_halves(rng, len(ts), m, groups)
        model.append(chi2(ss[rng.permutation(len(ss))[:m]], ts[b_idx]))
        floor.append(chi2(ts[a_idx], ts[b_idx]))
    return {"model": float(np.mean(model)), "model_std": float(np.std(model)), "floor": float(np.mean(floor)),
            "floor_std": float(np.std(floor)), "bins": int(band.sum()), "of_bins": int(band.size)}


def quality(names=("turbulence_64", "cosmic_web_64"), *, J=5, L=4, n_train=64, n_samples=16, steps=300, seed=0,
            plain=True):
    """Distances of microcanonical samples (preconditioned and plain L-BFGS) and of a Gaussian field
    with the training spectrum to the HELD-OUT truth, next to the truth-vs-truth floor, for the
    shipped reference datasets (``plain=False``: no plain-L-BFGS run). Training set: about
    ``n_train`` fields in whole groups (turbulence runs, N-body simulations) of the file's
    deterministic split (:func:`phigen.splits.split_indices`, seed ``seed``); the truth: the other
    groups. Returns {name: {"scattering": {"distances": {...}, "loss_median": …}, "gaussian": …, …}}."""
    from pathlib import Path

    import phigen.io as pio
    from phigen.models import GaussianSpectrumModel
    from phigen.scattering import ScatteringModel
    from phigen.splits import split_indices
    from phigen.stats import compare

    root = Path(__file__).resolve().parent.parent / "data"
    out = {}
    for name in names:
        with pio.open_fields(root / f"{name}.h5") as ds:
            x = np.asarray(ds[:], np.float32)
            groups = ds.groups
        x = (x - x.mean()) / x.std()
        tr, te = split_indices(len(x), 1.0 - n_train / len(x), seed=seed, groups=groups)
        train, truth = x[tr], x[te]
        truth_groups = None if groups is None else groups[te]
        group_kw = {"truth_groups": truth_groups}  # compare's null halves keep the truth's groups whole
        model = ScatteringModel.fit(train, J=J, L=L, mode="micro", steps=steps, key=jax.random.PRNGKey(0))
        runs = {}
        for label, pre in (("scattering", True), ("scattering_plain_lbfgs", False))[: 2 if plain else 1]:
            res = model.synthesize(n_samples, key=jax.random.PRNGKey(seed + 1), precondition=pre)
            runs[label] = (res.fields, {"loss_median": float(np.median(res.loss)), "loss_max": float(res.loss.max()),
                                        "seconds": res.seconds})
        gauss = GaussianSpectrumModel.fit(train, key=jax.random.PRNGKey(0)).sample(n_samples, key=jax.random.PRNGKey(seed + 2))
        runs["gaussian"] = (np.asarray(gauss), {})
        entry = {"n_stats": model.n_stats, "n_train": int(train.shape[0]), "n_truth": int(truth.shape[0]),
                 "n_samples": n_samples,
                 "data_loss_median": model.training["data_loss_median"]}
        for label, (fields, info) in runs.items():
            cmp = compare(fields, truth, seed=seed, statistics=tuple(dict.fromkeys(k for k, _ in QUALITY_STATISTICS)),
                          **group_kw)
            d = {f"{k}_{m}": cmp[k]["distances"][m] for k, m in QUALITY_STATISTICS}
            d["power_spectrum_chi2_in_band"] = in_band_spectrum_chi2(fields, truth, seed=seed, groups=truth_groups)
            entry[label] = {"distances": d, **info}
        out[name] = entry
    return out


def _print_quality(q):
    for name, e in q.items():
        print(f"{name}: {e['n_stats']} statistics, {e['n_train']} training fields, {e['n_samples']} samples vs "
              f"{e['n_truth']} held-out truth fields (typical training field loss {e['data_loss_median']:.3g})")
        for label in ("scattering", "scattering_plain_lbfgs", "gaussian"):
            if label not in e:
                continue
            r = e[label]
            extra = f"  final loss median {r['loss_median']:.3g} ({r['seconds']:.0f} s)" if "loss_median" in r else ""
            print(f"  {label}{extra}")
            for k, d in r["distances"].items():
                if "verdict" in d:
                    print(f"    {k:28s} model {d['model']:8.3g}   null {d['null_mean']:8.3g} (95th pct. "
                          f"{d['null_p95']:.3g})   p {d['p_value']:.3g} {d['verdict']}")
                else:
                    print(f"    {k:28s} model {d['model']:8.3g} ± {d['model_std']:.2g}   "
                          f"floor {d['floor']:8.3g} ± {d['floor_std']:.2g}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke run)")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--J", type=int, default=6)
    ap.add_argument("--L", type=int, default=4)
    ap.add_argument("--single-map", action="store_true",
                    help="only the single-map case: fit on ONE lognormal 128² map, J = 6 (--quick: 64², J = 4)")
    ap.add_argument("--quality", action="store_true",
                    help="only the quality comparison on data/turbulence_64.h5 and data/cosmic_web_64.h5 (J = 5)")
    args = ap.parse_args(argv)
    if args.single_map:
        kw = dict(size=64, J=4, steps=100) if args.quick else dict(size=128, J=args.J, L=args.L, steps=300)
        sm = single_map(**kw)
        ref = SINGLE_MAP_REFERENCE
        ratios = {"single_map_fields_per_second_phigen_over_reference":
                      ref["seconds_per_field"] / sm["seconds_per_field"],
                  "single_map_spectrum_rms_log_error_reference_over_phigen":
                      ref["spectrum_rms_log_error"] / sm["spectrum_rms_log_error_median"],
                  "single_map_skewness_error_phigen": abs(sm["skewness_median"] - sm["target_skewness"]),
                  "shifted_copies_final_loss_over_single_map_final_loss":
                      sm["shifted_copies"]["loss_final_median"] / sm["loss_final_median"]}
        for k, v in sm.items():
            if not isinstance(v, (list, dict)):
                print(f"  {k:40s} {v}")
        print(f"  {'normalised_loss_x1e8 (phigen approx.)':40s} {np.round(sm['normalised_loss_x1e8'], 2).tolist()}")
        print(f"  {'spectrum_rms_log_error per field':40s} {np.round(sm['spectrum_rms_log_error'], 3).tolist()}")
        print(f"  {'skewness per field':40s} {np.round(sm['skewness'], 2).tolist()}")
        print(f"  shifted copies: {sm['shifted_copies']}")
        print("ratios:")
        for k, v in ratios.items():
            print(f"  {k:70s} {v:.3g}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"ratios": ratios, "figures": {"single_map": sm}, "reference": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in ref.items()},
                    "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                                "load_average_1_5_15": list(os.getloadavg()), "quick": args.quick}}, f, indent=2)
        return
    if args.quality:
        q = quality()
        _print_quality(q)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"quality": q, "load_average_1_5_15": list(os.getloadavg())}, f, indent=2)
        return
    J, L = args.J, args.L
    repeat = 2 if args.quick else 5
    figures, ratios = {}, {}

    st = _statistics_timings(128, J, L, 8, repeat)
    figures.update({f"stats_128_{k}": v for k, v in st.items()})
    ratios["forward_phigen_over_kymatio_128"] = st["phigen_forward_s_per_field"] / st["kymatio_forward_s_per_field"]
    ratios["forward_backward_phigen_over_kymatio_128"] = (st["phigen_forward_backward_s_per_field"]
                                                          / st["kymatio_forward_backward_s_per_field"])
    ratios["forward_reference_over_phigen_128"] = REFERENCE["forward_128_s"] / st["phigen_forward_s_per_field"]
    ratios["forward_backward_reference_over_phigen_128"] = (REFERENCE["forward_backward_128_s"]
                                                            / st["phigen_forward_backward_s_per_field"])

    s128, model128 = _synthesis_timings(128, J, L, 8, 20 if args.quick else 300, None)
    figures.update({f"synthesis_128_{k}": v for k, v in s128.items()})
    per_iter_fwd_bwd = s128["s_per_iteration_batch"] / (8 * st["kymatio_forward_backward_s_per_field"])
    ratios["lbfgs_iteration_8_fields_over_kymatio_forward_backward_8_fields_128"] = per_iter_fwd_bwd
    ratios["lbfgs_iteration_8_fields_over_phigen_forward_backward_8_fields_128"] = (
        s128["s_per_iteration_batch"] / (8 * st["phigen_forward_backward_s_per_field"]))
    if not args.quick:  # the same run without the spectral preconditioner: quality (final loss) comparison
        plain, _ = _synthesis_timings(128, J, L, 8, 300, None, precondition=False, model=model128)
        figures["synthesis_128_unpreconditioned_final_loss_median"] = plain["final_loss_median"]
        figures["synthesis_128_unpreconditioned_total_s"] = plain["total_s"]
    # time for 8 fields × 300 iterations, extrapolated linearly when --quick ran fewer
    t8_300 = s128["s_per_iteration_batch"] * 300
    figures["synthesis_128_8_fields_300it_s"] = t8_300
    lo, hi = REFERENCE["synthesis_one_field_128_300it_s"]
    ratios["synthesis_reference_one_field_over_phigen_8_fields_128_low"] = lo / t8_300
    ratios["synthesis_reference_one_field_over_phigen_8_fields_128_high"] = hi / t8_300

    s256, _ = _synthesis_timings(256, J, L, 8, 5 if args.quick else 100, 8)
    figures.update({f"synthesis_256_{k}": v for k, v in s256.items()})
    per_field_100 = s256["s_per_iteration_batch"] * 100 / 8  # one batch of 8 fields
    figures["synthesis_256_s_per_field_100it"] = per_field_100
    ratios["synthesis_reference_over_phigen_per_field_256"] = REFERENCE["synthesis_one_field_256_100it_s"] / per_field_100

    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
               "load_average_1_5_15": list(os.getloadavg()),
               "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "quick": args.quick,
               "J": J, "L": L}
    print(f"scattering spectra J={J} L={L}: {st['n_stats']} statistics (kymatio: {st['kymatio_n_coefficients']} coefficients)")
    for k, v in figures.items():
        print(f"  {k:58s} {v:.4g}")
    print("ratios:")
    for k, v in ratios.items():
        print(f"  {k:70s} {v:.3g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ratios": ratios, "figures": figures, "machine": machine}, f, indent=2)


if __name__ == "__main__":
    main()
