"""Re-check WC-RG's and WSGM's sampling defaults on FRESH truth, not on the held-out half they were chosen on.

WC-RG's ``k`` (3), ``k_coarse`` (2) and ``coarse_ridge`` (1e-2), and WSGM's ``t_start`` (3; (2, 3, 3)
recommended at nfe 16), were chosen by looking at the held-out half of ``data/phi4_64.h5`` (the
benchmark split ``open_fields(...).split(0.5, seed=0)``). This script keeps the models fitted on the
same 128 training fields but judges them against an independent ensemble from the ground-truth
generator, e.g. (not shipped, too big for the repository)::

    phigen generate phi4 --size 64 --kappa 0.34 --lam 1 -n 256 --seed 11 --n-chains 64 \\
        --sampler hmc-cluster -o /tmp/fresh_phi4.h5

Every variant draws ``--n-samples`` fields and is judged with :func:`phigen.stats.compare`'s null
(built once on the fresh truth with its chain labels as ``truth_groups``; :func:`null_reference` +
:func:`judge` with seed 0 is exactly what ``compare`` does) on the power spectrum (χ², log-RMS), the
pixel PDF (W₁), the Minkowski functionals (χ²) and the reduced bispectrum (χ²), plus U₄ and χ
(:func:`phigen.compare.field_statistics`) of the samples and of the fresh truth. The held-out half is
never read. The JSON is rewritten after every variant (``--resume`` skips the variants it already holds).

Usage::

    python benchmarks/rg_defaults_check.py --fresh /tmp/fresh_phi4.h5 --json /tmp/rg_defaults.json
        [--variants default,k2,kc1,kc3,cr1e-3,cr1e-1] [--wsgm] [--wsgm-only] [--n-samples 256] [--quick]

``--quick``: a smoke run (tiny budgets, 32 samples, two WC-RG variants and WSGM; minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import numpy as np

STATISTICS = ["power_spectrum", "pdf", "bispectrum", "minkowski"]
DISTANCES = (("power_spectrum", "chi2"), ("power_spectrum", "log_rms"), ("pdf", "w1"), ("minkowski", "chi2"),
             ("bispectrum", "chi2_Q"))
PARAMS = {"kappa": 0.34, "lam": 1.0}

# name -> WCRGModel.fit options on top of the defaults (k=3, k_coarse=2, coarse_ridge=1e-2)
WCRG_VARIANTS = {
    "default": {},
    "k2": {"k": 2},
    "kc1": {"k_coarse": 1},
    "kc3": {"k_coarse": 3},
    "cr1e-3": {"coarse_ridge": 1e-3},
    "cr1e-1": {"coarse_ridge": 1e-1},
}
# name -> WSGMModel.sample options (nfe is --wsgm-nfe)
WSGM_VARIANTS = {"t_start=3": {"t_start": 3.0}, "t_start=2,3,3": {"t_start": (2.0, 3.0, 3.0)}}


def load_training(path, test_fraction=0.5, split_seed=0):
    """The benchmark's training half (the held-out half is not read)."""
    from phigen.io import open_fields

    with open_fields(path) as ds:
        tr, _ = ds.split(test_fraction, seed=split_seed)
        return np.asarray(ds[tr], np.float32)


def load_fresh(path):
    from phigen.io import open_fields

    with open_fields(path) as ds:
        x = np.asarray(ds[np.arange(len(ds))], np.float32)
        return x, (None if ds.groups is None else np.asarray(ds.groups)), dict(ds.params)


def _u4(x):
    from phigen.compare import field_statistics

    fs = field_statistics(x, "phi4", PARAMS)
    return {name: {"value": float(fs[name]["value"]), "error": float(fs[name]["error"])}
            for name in ("U4", "chi") if name in fs}


def measure(samples, ref, truth_std, u4_truth, J=3):
    from phigen.rg import per_scale_std
    from phigen.stats.compare import judge

    res = judge(samples, ref, seed=0)
    out = {}
    for stat, dist in DISTANCES:
        d = res[stat]["distances"][dist]
        out[f"{stat}.{dist}"] = {k: (d[k] if k == "verdict" else float(d[k]))
                                   for k in ("model", "null_mean", "null_std", "null_p95", "p_value", "verdict")}
    out["n_off"] = int(res["verdict"]["n_off"])
    out["n_distances"] = int(res["verdict"]["n_distances"])
    out["field_statistics"] = _u4(samples)
    out["field_statistics_truth"] = u4_truth
    rel = per_scale_std(samples, "db4", J)["detail"] / truth_std - 1
    out["std_per_scale_max_rel_error"] = float(np.max(np.abs(rel)))
    return out


def draw(model, n, batch, seed=1, **options):
    """``n`` samples in batches (keys ``fold_in(PRNGKey(seed), i)``, as rg_vs_diffusion) and seconds."""
    key = jax.random.PRNGKey(seed)
    t0 = time.perf_counter()
    parts = [np.asarray(model.sample(min(batch, n - i), key=jax.random.fold_in(key, i), **options))
             for i in range(0, n, batch)]
    return np.concatenate(parts), time.perf_counter() - t0


def _line(name, r):
    f = lambda k: f"{r[k]['model']:.3g} ({r[k]['null_mean']:.3g}/{r[k]['null_p95']:.3g} {r[k]['verdict']})"
    u = r["field_statistics"].get("U4", {})
    return (f"  {name:16s} P(k) chi2 {f('power_spectrum.chi2')}  logrms {f('power_spectrum.log_rms')}  "
            f"W1 {f('pdf.w1')}  Mink {f('minkowski.chi2')}  bisp {f('bispectrum.chi2_Q')}  "
            f"U4 {u.get('value', float('nan')):.3f}±{u.get('error', float('nan')):.3f}  "
            f"std/scale {100 * r['std_per_scale_max_rel_error']:.1f}%  fit {r.get('fit_s', 0):.0f}s "
            f"sample {r.get('sample_s', 0):.0f}s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/phi4_64.h5", help="the benchmark file (its training half is used)")
    ap.add_argument("--fresh", default="/tmp/fresh_phi4.h5", help="fresh truth from the generator (see the docstring)")
    ap.add_argument("--variants", default=",".join(WCRG_VARIANTS), help="WC-RG variants, comma-separated "
                    f"({', '.join(WCRG_VARIANTS)}); empty: none")
    ap.add_argument("--wsgm", action="store_true", help="also fit WSGM and compare its t_start choices")
    ap.add_argument("--wsgm-steps", type=int, default=1500)
    ap.add_argument("--wsgm-batch-size", type=int, default=8)
    ap.add_argument("--wsgm-nfe", type=int, default=16)
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--wcrg-steps", type=int, default=None, help="MALA steps per level at sampling (default: model's)")
    ap.add_argument("--n-splits", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny budgets, 32 samples")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --json and skip them")
    ap.add_argument("--json", default="rg_defaults_check.json")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in WCRG_VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {', '.join(WCRG_VARIANTS)}")
    fit_extra, sample_extra = {}, {}
    if args.quick:
        variants = variants[:2]
        args.n_samples, args.batch, args.wsgm_steps, args.n_splits = 32, 32, 30, 50
        fit_extra = {"calibrate": 1, "calibrate_fields": 16, "sample_steps": 60, "sample_adapt": 20,
                     "coarse_sample_steps": 200, "coarse_sample_adapt": 50, "shifts": 2}
    if args.wcrg_steps:
        sample_extra["steps"] = args.wcrg_steps

    from phigen.splits import half_size
    from phigen.stats.compare import null_reference

    train = load_training(args.data)
    fresh, groups, fparams = load_fresh(args.fresh)
    from phigen.rg import per_scale_std

    truth_std = per_scale_std(fresh, "db4", 3)["detail"]
    m = min(args.n_samples, half_size(len(fresh), groups))
    t0 = time.perf_counter()
    ref = null_reference(fresh, m=m, groups=groups, n_splits=args.n_splits, seed=0, statistics=STATISTICS)
    null_s = time.perf_counter() - t0
    u4_truth = _u4(fresh)
    print(f"training {train.shape}, fresh truth {fresh.shape} ({'no groups' if groups is None else f'{len(np.unique(groups))} groups'}),"
          f" params {fparams}; sets of m={m}; null {null_s:.0f}s; truth U4 {u4_truth['U4']['value']:.3f}"
          f"±{u4_truth['U4']['error']:.3f}", flush=True)

    out = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
           "fresh_truth": {"path": args.fresh, "n": len(fresh), "n_groups": None if groups is None else int(len(np.unique(groups))),
                           "params": fparams, "field_statistics": u4_truth},
           "n_train": len(train), "m": m,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                       "python": sys.version.split()[0]},
           "wcrg": {}, "wsgm": {}}
    if args.resume and os.path.exists(args.json):
        with open(args.json) as fh:
            old = json.load(fh)
        out["wcrg"], out["wsgm"] = old.get("wcrg", {}), old.get("wsgm", {})

    def save():
        out["machine"]["load_average"] = os.getloadavg()
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(out, fh, indent=1, default=float)
        os.replace(tmp, args.json)

    from phigen.rg.wcrg import WCRGModel

    for name in variants:
        if name in out["wcrg"]:
            print(_line(name, out["wcrg"][name]) + "  (kept)", flush=True)
            continue
        opts = {**WCRG_VARIANTS[name], **fit_extra}
        t0 = time.perf_counter()
        model = WCRGModel.fit(train, key=jax.random.PRNGKey(0), sign_symmetric=True, check_samples=0,
                              progress=False, **opts)
        fit_s = time.perf_counter() - t0
        samples, sample_s = draw(model, args.n_samples, args.batch, **sample_extra)
        row = {"options": WCRG_VARIANTS[name], "n_params": model.n_params, "fit_s": fit_s, "sample_s": sample_s,
               "load_average": os.getloadavg(), **measure(samples, ref, truth_std, u4_truth)}
        out["wcrg"][name] = row
        save()
        print(_line(name, row), flush=True)

    if args.wsgm:
        todo = [n for n in WSGM_VARIANTS if n not in out["wsgm"]]
        if todo:
            from phigen.rg.score import WSGMModel

            t0 = time.perf_counter()
            model = WSGMModel.fit(train, key=jax.random.PRNGKey(0), steps=args.wsgm_steps,
                                  batch_size=args.wsgm_batch_size, progress=False)
            fit_s = time.perf_counter() - t0
            for name in todo:
                o = {"nfe": args.wsgm_nfe, **WSGM_VARIANTS[name]}
                samples, sample_s = draw(model, args.n_samples, args.batch, **o)
                row = {"options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in o.items()},
                       "n_params": model.n_params, "fit_s": fit_s, "sample_s": sample_s,
                       "load_average": os.getloadavg(), **measure(samples, ref, truth_std, u4_truth)}
                out["wsgm"][name] = row
                save()
                print(_line(name, row), flush=True)
    save()
    return out


if __name__ == "__main__":
    main()
