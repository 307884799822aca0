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
        model = ScatteringModel.fit(data, J=J, L=L, mode="micro", steps=steps, strict_scales=True)
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
        model = ScatteringModel.fit(train, J=J, L=L, mode="micro", steps=steps)
        runs = {}
        for label, pre in (("scattering", True), ("scattering_plain_lbfgs", False))[: 2 if plain else 1]:
            res = model.synthesize(n_samples, key=jax.random.PRNGKey(seed + 1), precondition=pre)
            runs[label] = (res.fields, {"loss_median": float(np.median(res.loss)), "loss_max": float(res.loss.max()),
                                        "seconds": res.seconds})
        gauss = GaussianSpectrumModel.fit(train).sample(n_samples, key=jax.random.PRNGKey(seed + 2))
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
    ap.add_argument("--quality", action="store_true",
                    help="only the quality comparison on data/turbulence_64.h5 and data/cosmic_web_64.h5 (J = 5)")
    args = ap.parse_args(argv)
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
