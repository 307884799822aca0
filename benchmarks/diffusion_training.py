"""Training cost of the diffusion baseline: time per step and per epoch at 32² and 64², parameter counts.

For each field size and network width, one training step is the v-prediction denoising
score-matching loss of a batch, its gradient, global-norm clipping, Adam and the EMA update —
exactly :func:`phigen.diffusion.train` — timed inside the jitted ``lax.scan`` chunks that training
uses (after compilation, best of a few repeats; the machine may be shared). The script reports
figures (seconds per step, per epoch of ``--n-train`` fields, per sampled field) and RATIOS measured
in the same run:

* ``jit_speedup_L{L}``: the same step run op by op (``jax.disable_jit``) over the jitted step;
* ``batching_speedup_L{L}``: a plain per-sample loop (jitted gradient of one field at a time,
  accumulated over the batch, then the same update) over the batched step.

Usage: ``python benchmarks/diffusion_training.py [--sizes 32 64] [--widths 16] [--batch-size 16]
[--n-train 256] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from phigen.diffusion.models import DiffusionLoss, sample_diffusion
from phigen.diffusion.sde import OUProcess, time_grid
from phigen.diffusion.train import TrainConfig, run_train_chunk, init_train_state, make_optimizer
from phigen.diffusion.unet import UNetConfig, count_params, make_unet


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(size, width, batch_size, n_train, chunk, repeats, depth=3, nojit=True):
    key = jax.random.PRNGKey(0)
    data = jax.random.normal(key, (n_train, size, size), jnp.float32)
    ucfg = UNetConfig(width=width, depth=depth)
    net = make_unet(ucfg, key=key)
    tcfg = TrainConfig(steps=10**6, batch_size=batch_size, chunk=chunk)
    loss = DiffusionLoss(OUProcess())
    state, static = init_train_state(net, tcfg)
    k1, k2 = jax.random.split(key)

    def run():
        return run_train_chunk(loss, static, tcfg, batch_size, chunk, state, data, k1, k2)[1]

    run()  # compile
    per_step = _best(run, repeats) / chunk
    out = {"n_params": count_params(net), "step_s": per_step, "epoch_s": per_step * (n_train // batch_size)}

    # per-sample loop: jitted gradient of one field, accumulated, then the same optimiser update
    optimizer = make_optimizer(tcfg)
    params = state.params

    @eqx.filter_jit
    def grad_one(params, x0, k):
        return jax.grad(lambda p: loss(eqx.combine(p, static), x0, k))(params)

    @eqx.filter_jit
    def update(params, opt_state, grads):
        upd, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, upd), opt_state

    x = data[:batch_size]

    def loop_step():
        acc = None
        for i in range(batch_size):
            g = grad_one(params, x[i:i + 1], jax.random.fold_in(k2, i))
            acc = g if acc is None else jax.tree_util.tree_map(jnp.add, acc, g)
        acc = jax.tree_util.tree_map(lambda a: a / batch_size, acc)
        return update(params, state.opt_state, acc)[0]

    loop_step()
    out["loop_step_s"] = _best(loop_step, max(1, repeats // 2))

    if nojit:
        def eager_step():
            with jax.disable_jit():
                lval, g = jax.value_and_grad(lambda p: loss(eqx.combine(p, static), x, k2))(params)
                upd, _ = optimizer.update(g, state.opt_state, params)
                return optax.apply_updates(params, upd)

        out["nojit_step_s"] = _best(eager_step, 1)

    # sampling cost: probability-flow ODE, 50 network evaluations (24 Heun steps + Tweedie), 16 fields
    times = jnp.asarray(time_grid(24))
    xt = jax.random.normal(key, (16, size, size))
    sample = lambda: sample_diffusion(net, xt, key, times, "ode", True)  # noqa: E731
    sample()
    out["sample_s_per_field_nfe50"] = _best(sample, max(1, repeats // 2)) / 16
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--widths", type=int, nargs="+", default=[16])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="32² only, width 8, no eager baseline")
    ap.add_argument("--json", help="write {ratios, figures, machine} here")
    args = ap.parse_args(argv)
    sizes, widths = ([32], [8]) if args.quick else (args.sizes, args.widths)
    ratios, figures = {}, {}
    for size in sizes:
        for width in widths:
            r = measure(size, width, args.batch_size, args.n_train, args.chunk, args.repeats, nojit=not args.quick)
            tag = f"L{size}_w{width}"
            figures.update({f"n_params_{tag}": r["n_params"], f"step_s_{tag}": r["step_s"],
                            f"epoch_s_{tag}": r["epoch_s"], f"loop_step_s_{tag}": r["loop_step_s"],
                            f"sample_s_per_field_nfe50_{tag}": r["sample_s_per_field_nfe50"]})
            ratios[f"batching_speedup_{tag}"] = r["loop_step_s"] / r["step_s"]
            if "nojit_step_s" in r:
                figures[f"nojit_step_s_{tag}"] = r["nojit_step_s"]
                ratios[f"jit_speedup_{tag}"] = r["nojit_step_s"] / r["step_s"]
            print(f"{size}²  width {width}: {r['n_params']:,} parameters, {r['step_s'] * 1e3:.1f} ms/step "
                  f"(batch {args.batch_size}), {r['epoch_s']:.2f} s/epoch of {args.n_train} fields, "
                  f"per-sample loop ×{r['loop_step_s'] / r['step_s']:.1f}"
                  + (f", no jit ×{r['nojit_step_s'] / r['step_s']:.0f}" if "nojit_step_s" in r else "")
                  + f", sampling {r['sample_s_per_field_nfe50'] * 1e3:.0f} ms/field at 50 NFE")
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "jax": jax.__version__, "backend": jax.default_backend(),
               "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
               "batch_size": args.batch_size, "n_train": args.n_train}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ratios": ratios, "figures": figures, "machine": machine}, fh, indent=1)
    return {"ratios": ratios, "figures": figures, "machine": machine}


if __name__ == "__main__":
    main()
