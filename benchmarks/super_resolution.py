"""Super-resolution with WC-RG: held-out truth coarse-grained by j levels, refined by the model, judged.

For each dataset: WC-RG is fitted on the training half (``compare``'s group split, seed 0); the held-out
truth is coarse-grained by j DWT levels (:func:`phigen.rg.coarse_grain`) and each coarse field is refined
by the model (``sample(from_coarse=...)``). Reported per j:

- **consistency**: max |low-pass(output) − input| / max |input| (exact up to float rounding);
- every distance of ``phigen.compare`` to the held-out truth with its truth-vs-truth null and verdict
  (the outputs share their large scales with the truth they came from, so the large-scale distances
  are expected *below* the null; the fine scales are the model's);
- the std of the wavelet details at each refined level against the truth's (relative error).

The unconditional samples of the same model are the reference row (j = "none"). Figures: off counts;
ratios: the unconditional model's off count over each j's (how much of the miss the given coarse
fields remove).

Usage: ``python benchmarks/super_resolution.py [--data F ...] [--levels 1,2,3] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ("data/phi4_64.h5", "data/cosmic_web_64.h5")


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=list(DEFAULT_DATA))
    ap.add_argument("--levels", default="1,2,3", help="comma-separated numbers of coarse-grained levels j")
    ap.add_argument("--quick", action="store_true", help="smoke run: φ⁴ only, j = 1, short chains, 32 fields")
    ap.add_argument("--json", metavar="PATH", default=None)
    return ap.parse_args(argv)


def _judged(samples, ref) -> dict:
    from phigen.stats import judge

    r = judge(samples, ref)
    rows = {}
    for v in r.values():
        if isinstance(v, dict) and "distances" in v:
            for d in v["distances"].values():
                rows[d["label"]] = {"model": d["model"], "null_p95": d["null_p95"], "verdict": d["verdict"]}
    return {"n_off": r["verdict"]["n_off"], "n_distances": r["verdict"]["n_distances"], "distances": rows}


def _detail_errors(samples, truth, wavelet, levels) -> list:
    from phigen.rg import per_scale_std

    s, t = per_scale_std(samples, wavelet, levels), per_scale_std(truth, wavelet, levels)
    return (s["detail"] / t["detail"] - 1.0).tolist()


def run_dataset(path, levels, quick: bool) -> dict:
    import jax

    from phigen.compare import compare_statistics
    from phigen.fields.kind import field_kind, field_kinds
    from phigen.io import open_fields
    from phigen.rg import WCRGModel, coarse_grain
    from phigen.stats import null_reference

    with open_fields(ROOT / path) as ds:
        tr, te = ds.split(0.5, seed=0)
        x, groups, field = ds.load(), ds.groups, ds.field
    train, truth = x[tr], x[te]
    tg = None if groups is None else groups[te]
    if quick:
        keep = np.arange(min(32, len(truth)))
        truth, tg = truth[keep], None if tg is None else tg[keep]
    opts = dict(check_samples=0)
    if quick:
        opts.update(calibrate=1, sample_steps=100, sample_adapt=40, coarse_sample_steps=1000, coarse_sample_adapt=200)
    if field in field_kinds() and field_kind(field).sign_symmetric:  # as compare fits φ⁴
        opts["sign_symmetric"] = True
    t0 = time.perf_counter()
    model = WCRGModel.fit(train, key=jax.random.PRNGKey(0), progress=False, **opts)
    fit_s = time.perf_counter() - t0
    ref = null_reference(truth, groups=tg, statistics=compare_statistics(field))
    n = len(truth)
    t0 = time.perf_counter()
    free = np.asarray(model.sample(n, key=jax.random.PRNGKey(1)))
    rows = {"none": {**_judged(free, ref), "sample_s_per_field": (time.perf_counter() - t0) / n,
                     "detail_std_rel_error": _detail_errors(free, truth, model.factorisation.wavelet, model.J)}}
    for j in levels:
        if j > model.J:
            continue
        xc = coarse_grain(truth, j, wavelet=model.factorisation.wavelet)
        t0 = time.perf_counter()
        out = np.asarray(model.sample(n, key=jax.random.PRNGKey(2 + j), from_coarse=xc))
        sec = (time.perf_counter() - t0) / n
        back = coarse_grain(out, j, wavelet=model.factorisation.wavelet)
        rows[str(j)] = {**_judged(out, ref), "sample_s_per_field": sec,
                        "consistency": float(np.abs(back - xc).max() / np.abs(xc).max()),
                        "detail_std_rel_error": _detail_errors(out, truth, model.factorisation.wavelet, j)}
    return {"data": str(path), "field": field, "n_train": int(len(train)), "n_truth": int(n), "J": model.J,
            "n_params": model.n_params, "fit_seconds": fit_s, "rows": rows}


def main(argv=None):
    args = parse(argv)
    levels = [int(v) for v in args.levels.split(",") if v.strip()]
    data = args.data
    if args.quick:
        data, levels = ["data/phi4_64.h5"], [1]
    results, ratios, figures = {}, {}, {}
    for path in data:
        res = run_dataset(path, levels, args.quick)
        name = Path(path).stem
        results[name] = res
        print(f"\n{name}: WC-RG ({res['n_params']} parameters, J = {res['J']}, fit {res['fit_seconds']:.0f} s), "
              f"{res['n_truth']} held-out fields")
        labels = list(res["rows"]["none"]["distances"])
        print("| j | off | consistency | " + " | ".join(labels) + " | detail std error, worst |")
        print("|---|---|---|" + "---|" * len(labels) + "---|")
        for j, row in res["rows"].items():
            cells = []
            for lab in labels:
                d = row["distances"][lab]
                cells.append(f"{d['model']:.3g}{' ✗' if d['verdict'] == 'off' else ''}")
            worst = float(np.max(np.abs(row["detail_std_rel_error"])))
            cons = f"{row['consistency']:.1e}" if "consistency" in row else "—"
            print(f"| {j} | {row['n_off']}/{row['n_distances']} | {cons} | " + " | ".join(cells) + f" | {worst:.1%} |")
            figures[f"{name}_off_j{j}"] = row["n_off"]
            if j != "none":
                figures[f"{name}_consistency_j{j}"] = row["consistency"]
                ratios[f"{name}_off_free_over_j{j}"] = res["rows"]["none"]["n_off"] / max(row["n_off"], 1)
        print("null p95: " + ", ".join(f"{lab} {res['rows']['none']['distances'][lab]['null_p95']:.3g}" for lab in labels))
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "load": os.getloadavg()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ratios": ratios, "figures": figures, "results": results, "machine": machine}, f, indent=2,
                      default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
