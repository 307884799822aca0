"""Compile once per lattice size: the Binder scan of ``phigen critical`` with traced (κ, λ, ε).

The φ⁴ energy's κ and λ and the kernels' step sizes are pytree leaves, traced under ``jit``, so a
κ scan compiles its adaptation, burn-in and measurement once per lattice size and reuses them at
every other κ. The baseline, in the same process, is the same scan with every compilation cache
cleared before each κ point (``jax.clear_caches()`` and the runner's chunk cache): what every
point cost when κ was a static jit argument and the runner cached by a per-κ lambda.

Both runs are timed from cold caches and count XLA backend compilations (``jax.monitoring``).
Prints the ratio baseline / compile-once wall time and the compilation counts; the Binder values
of both runs agree (the same keys) — printed as their largest difference over the error bar.

Usage: ``python benchmarks/critical_compile.py [--sizes 8 16] [--n-kappa 7] [--n-steps 300]
[--chains 16] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--n-kappa", type=int, default=7)
    ap.add_argument("--kappa-range", type=float, nargs=2, default=[0.325, 0.355])
    ap.add_argument("--lam", type=float, default=1.0)
    ap.add_argument("--n-steps", type=int, default=500)
    ap.add_argument("--chains", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="sizes 8 16, 16 chains, 200 steps")
    ap.add_argument("--json", metavar="PATH", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.chains, args.n_steps = [8, 16], 16, 200
    return args


def main(argv=None):
    args = _parse(argv)
    import jax
    import numpy as np

    from phigen import critical
    from phigen.fields.phi4 import Phi4SamplerConfig
    from phigen.samplers import runner

    compiles = {"n": 0, "seconds": 0.0}

    def _listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles["n"] += 1
            compiles["seconds"] += duration

    jax.monitoring.register_event_duration_secs_listener(_listener)

    def clear():
        jax.clear_caches()
        runner._chunk_function.cache_clear()

    kappas = np.linspace(*args.kappa_range, args.n_kappa)
    config = Phi4SamplerConfig(n_chains=args.chains)
    original = critical.warm_up_phi4_chains

    def recompiling(*a, **k):  # the baseline: every κ point starts from empty caches
        clear()
        return original(*a, **k)

    runs = {}
    for name, warm_up in (("recompile_per_point", recompiling), ("compile_once", original)):
        clear()
        compiles.update(n=0, seconds=0.0)
        critical.warm_up_phi4_chains = warm_up
        try:
            t0 = time.perf_counter()
            curves = critical.binder_curves(args.lam, args.sizes, kappas, n_steps=args.n_steps, config=config,
                                            progress=False)
            seconds = time.perf_counter() - t0
        finally:
            critical.warm_up_phi4_chains = original
        runs[name] = {"seconds": seconds, "compilations": compiles["n"], "compile_seconds": compiles["seconds"],
                      "curves": curves}
        print(f"{name:20s} {seconds:7.1f} s, {compiles['n']:3d} compilations ({compiles['seconds']:.1f} s compiling)",
              flush=True)

    base, once = runs["recompile_per_point"], runs["compile_once"]
    worst = 0.0
    for L in args.sizes:
        a, b = base["curves"][L], once["curves"][L]
        err = np.hypot(np.asarray(a["binder_err"]), np.asarray(b["binder_err"]))
        worst = max(worst, float(np.max(np.abs(np.asarray(a["binder"]) - np.asarray(b["binder"])) / err)))
    ratios = {"binder_scan_speedup": base["seconds"] / once["seconds"],
              "compilations_ratio": base["compilations"] / max(1, once["compilations"])}
    figures = {name: {k: v for k, v in r.items() if k != "curves"} for name, r in runs.items()}
    figures.update(sizes=args.sizes, n_kappa=args.n_kappa, n_steps=args.n_steps, chains=args.chains, lam=args.lam,
                   binder_max_difference_over_error=worst)
    print(f"speed-up of the Binder scan (sizes {args.sizes}, {args.n_kappa} κ, {args.n_steps} steps, "
          f"{args.chains} chains): {ratios['binder_scan_speedup']:.2f}×; compilations "
          f"{base['compilations']} → {once['compilations']}; Binder values differ by ≤ {worst:.2g} σ")
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "python": sys.version.split()[0], "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ratios": ratios, "figures": figures, "machine": machine}, f, indent=2)
    return ratios, figures


if __name__ == "__main__":
    main()
