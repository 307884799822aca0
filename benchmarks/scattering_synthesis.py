"""Scattering-spectra statistics and microcanonical L-BFGS synthesis: timings as ratios.

Measured in the same run:
- phigen ``ScatteringSpectra`` (J, L = 4, isotropic) forward and forward+backward per field, as
  ratios against kymatio's own 2D scattering (``kymatio.jax.Scattering2D`` through
  ``phigen.scattering.ClassicScattering``, same J, L, order 2) on the same fields;
- microcanonical synthesis of 8 fields at 128² (300 L-BFGS iterations; ``--quick``: 20) and at 256²
  in batches of 4 (100 iterations; ``--quick``: 5): seconds per iteration (for the whole batch) and
  per field, compilation excluded and reported separately.

Targets (issue 5): the PyTorch reference code of the scattering-spectra paper (``s_cov_iso``, J = 6,
L = 4, torch L-BFGS) on a 2-core machine: 0.034 s for the statistics of one 128² field, 0.09 s
forward + backward, 100–220 s to synthesise ONE 128² field with 300 iterations, 95 s for 100
iterations at 256². Printed as ``reference / phigen`` (> 1: phigen faster): the 128² synthesis
ratio is the reference's time for one field over phigen's time for all 8 (≥ 1 means ≥ 8× throughput).

    python benchmarks/scattering_synthesis.py [--quick] [--json PATH]
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
    ss = ScatteringSpectra((size, size), J, L)
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


def _synthesis_timings(size, J, L, n_fields, steps, batch_size):
    from phigen.scattering import ScatteringModel
    from phigen.scattering.synthesis import SynthesisConfig, statistics_loss, synthesize

    data = _lognormal(jax.random.PRNGKey(1), 16, size)
    model = ScatteringModel.fit(data, J=J, L=L, mode="micro", steps=steps)
    loss = statistics_loss(model.statistics, model.target, model.scale)
    chunk = min(25, steps)
    bs = batch_size or n_fields
    cfg = SynthesisConfig(steps=steps, chunk_size=chunk, batch_size=bs, progress=False)
    t = time.perf_counter()  # compile: one chunk on one batch, same compiled function as the real run
    synthesize(jax.random.PRNGKey(2), loss, bs, (size, size), mean=model.mean, std=model.std,
               config=SynthesisConfig(steps=1, chunk_size=chunk, batch_size=bs, progress=False))
    compile_s = time.perf_counter() - t
    res = synthesize(jax.random.PRNGKey(3), loss, n_fields, (size, size), mean=model.mean, std=model.std, config=cfg)
    n_batches = -(-n_fields // bs)
    return {"n_stats": model.n_stats, "fields": n_fields, "iterations": steps, "batch_size": bs,
            "compile_s": compile_s, "total_s": res.seconds, "s_per_iteration_batch": res.seconds / (steps * n_batches),
            "s_per_field": res.seconds / n_fields, "final_loss_median": float(np.median(res.loss)),
            "initial_loss_median": float(np.median(res.initial_loss)),
            "data_loss_median": model.training["data_loss_median"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke run)")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--J", type=int, default=6)
    ap.add_argument("--L", type=int, default=4)
    args = ap.parse_args(argv)
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

    s128 = _synthesis_timings(128, J, L, 8, 20 if args.quick else 300, None)
    figures.update({f"synthesis_128_{k}": v for k, v in s128.items()})
    per_iter_fwd_bwd = s128["s_per_iteration_batch"] / (8 * st["kymatio_forward_backward_s_per_field"])
    ratios["lbfgs_iteration_8_fields_over_kymatio_forward_backward_8_fields_128"] = per_iter_fwd_bwd
    # time for 8 fields × 300 iterations, extrapolated linearly when --quick ran fewer
    t8_300 = s128["s_per_iteration_batch"] * 300
    figures["synthesis_128_8_fields_300it_s"] = t8_300
    lo, hi = REFERENCE["synthesis_one_field_128_300it_s"]
    ratios["synthesis_reference_one_field_over_phigen_8_fields_128_low"] = lo / t8_300
    ratios["synthesis_reference_one_field_over_phigen_8_fields_128_high"] = hi / t8_300

    s256 = _synthesis_timings(256, J, L, 8, 5 if args.quick else 100, 4)
    figures.update({f"synthesis_256_{k}": v for k, v in s256.items()})
    per_field_100 = s256["s_per_iteration_batch"] * 100 * 2 / 8  # 2 batches of 4 fields
    figures["synthesis_256_s_per_field_100it"] = per_field_100
    ratios["synthesis_reference_over_phigen_per_field_256"] = REFERENCE["synthesis_one_field_256_100it_s"] / per_field_100

    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
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
