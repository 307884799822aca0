"""Sample quality of the diffusion / flow-matching baselines after a stated training budget.

For each dataset (a phigen file), the model is fitted on the training half of the file's
deterministic split (``test_fraction=0.5``, split seed 0; whole groups of correlated fields on
one side, ``FieldDataset.split``) with the stated budget (steps, batch,
width, depth), ``n_samples`` fields are drawn (probability-flow ODE, ``nfe`` network evaluations),
and :func:`phigen.stats.compare` measures the power-spectrum chi2 and the pixel-PDF W1 and KS
distances to the HELD-OUT half, each with its truth-vs-truth null (mean ± std, 95th percentile), p-value
and verdict at 5 %.
A Gaussian random field with the training spectrum (``gaussian`` model) is measured the same way
as a reference: it matches the spectrum by construction, so it shows what the PDF distances
look like for a model that ignores non-Gaussianity.

The script reports the fit time, the sampling time per field, the per-step training time and the
distances. Figures depend on the machine; the verdicts against the null are the quality measure.

Usage: ``python benchmarks/diffusion_quality.py [--data PATH ...] [--kind diffusion] [--steps 600]
[--batch-size 16] [--width 16] [--depth 3] [--n-samples 64] [--nfe 50] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

import phigen.models as models
from phigen.io import open_fields
from phigen.stats import compare

DEFAULT_DATA = ["data/phi4_64.h5", "data/turbulence_64.h5"]
STATISTICS = ("power_spectrum", "pdf")
DISTANCES = (("power_spectrum", "chi2"), ("pdf", "w1"), ("pdf", "ks"))


def held_out(path, test_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The test half of the same split ``phigen.models.fit`` trains on the other half of (no group of
    correlated fields on both sides: ``FieldDataset.split``), and its group labels (or None)."""
    with open_fields(path) as ds:
        test = ds.split(test_fraction, seed=split_seed)[1]
        groups = ds.groups
        return np.asarray(ds[test], np.float32), (None if groups is None else groups[test])


def _truth_groups(groups) -> dict:
    """``truth_groups=`` for :func:`phigen.stats.compare`: its null's halves keep the truth's groups whole."""
    return {"truth_groups": groups}


def _rows(result) -> dict:
    out = {}
    for stat, dist in DISTANCES:
        d = result[stat]["distances"][dist]
        out[f"{stat}.{dist}"] = {k: (float(d[k]) if k != "verdict" else d[k])
                                   for k in ("model", "null_mean", "null_std", "null_p95", "p_value", "verdict", "floor",
                                             "floor_std")}
    return out


def measure(path, kind, *, steps, batch_size, width, depth, n_samples, nfe, sampler, learning_rate,
            test_fraction=0.5, split_seed=0, seed=0):
    truth, truth_groups = held_out(path, test_fraction, split_seed)
    model = models.fit(kind, path, test_fraction=test_fraction, split_seed=split_seed, seed=seed, progress=False,
                       steps=steps, batch_size=batch_size, width=width, depth=depth, learning_rate=learning_rate)
    fit_s = float(model.training["fit_seconds"])
    # batches of a fixed size, so that the warm-up call compiles the sampler for all of them
    bs = min(16, n_samples)
    models.sample(model, bs, seed=seed + 2, batch_size=bs, sampler=sampler, nfe=nfe)
    t0 = time.perf_counter()
    samples = models.sample(model, n_samples, seed=seed + 1, batch_size=bs, sampler=sampler, nfe=nfe)
    sample_s = (time.perf_counter() - t0) / n_samples
    result = {"dataset": str(path), "kind": kind, "shape": list(truth.shape[1:]),
              "n_train": int(model.training["n_train"]), "n_truth": int(len(truth)), "n_params": int(model.n_params),
              "budget": {"steps": steps, "batch_size": batch_size, "width": width, "depth": depth,
                         "learning_rate": learning_rate, "epochs": steps * batch_size / model.training["n_train"]},
              "fit_s": fit_s, "fit_s_per_step": fit_s / steps, "sampler": sampler, "nfe": nfe,
              "n_samples": n_samples, "sample_s_per_field": sample_s,
              "distances": _rows(compare(samples, truth, statistics=STATISTICS, **_truth_groups(truth_groups)))}
    gauss = models.fit("gaussian", path, test_fraction=test_fraction, split_seed=split_seed, seed=seed)
    result["gaussian_reference"] = _rows(compare(models.sample(gauss, n_samples, seed=seed + 1), truth,
                                                 statistics=STATISTICS, **_truth_groups(truth_groups)))
    return result


def _print(r):
    b = r["budget"]
    print(f"\n{r['dataset']} {r['shape'][0]}x{r['shape'][1]}: {r['kind']}, {r['n_params']:,} parameters, "
          f"{b['steps']} steps x batch {b['batch_size']} ({b['epochs']:.0f} epochs of {r['n_train']} fields), "
          f"width {b['width']} depth {b['depth']}, lr {b['learning_rate']}")
    print(f"  fit {r['fit_s']:.0f} s ({r['fit_s_per_step'] * 1e3:.0f} ms/step incl. compile); sampling "
          f"{r['sample_s_per_field'] * 1e3:.0f} ms/field ({r['sampler']}, {r['nfe']} NFE); "
          f"{r['n_samples']} samples vs {r['n_truth']} held-out fields")
    print(f"  {'distance':22s} {'model':>8s} {'null mean':>16s} {'null p95':>9s} {'p':>6s} {'verdict':>10s} "
          f"{'gaussian GRF':>12s}")
    for name, d in r["distances"].items():
        g = r["gaussian_reference"][name]
        print(f"  {name:22s} {d['model']:8.3f} {d['null_mean']:8.3f} ± {d['null_std']:<5.3f} {d['null_p95']:9.3f} "
              f"{d['p_value']:6.3f} {d['verdict']:>10s} {g['model']:8.3f} ({g['verdict']})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    ap.add_argument("--kind", default="diffusion", choices=["diffusion", "flow-matching"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--learning-rate", type=float, default=2e-3)
    ap.add_argument("--n-samples", type=int, default=64)
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--sampler", default="ode")
    ap.add_argument("--quick", action="store_true", help="smoke run: 60 steps, width 8, 16 samples, 12 NFE")
    ap.add_argument("--json", help="write {results, machine} here")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.width, args.n_samples, args.nfe = 60, 8, 16, 12
    results = []
    for path in args.data:
        r = measure(path, args.kind, steps=args.steps, batch_size=args.batch_size, width=args.width,
                    depth=args.depth, n_samples=args.n_samples, nfe=args.nfe, sampler=args.sampler,
                    learning_rate=args.learning_rate)
        _print(r)
        results.append(r)
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "jax": jax.__version__, "backend": jax.default_backend(),
               "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "machine": machine}, fh, indent=1)
    return {"results": results, "machine": machine}


if __name__ == "__main__":
    main()
