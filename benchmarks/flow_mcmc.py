"""Flow-based MCMC for lattice φ⁴ against HMC and HMC + Swendsen–Wang at the same (κ, λ, L).

For each L: a Z₂-symmetric flow (spectral scaling + checkerboard affine couplings) is trained by
reverse KL on the action alone (``--flow-steps`` Adam steps of ``--flow-batch`` draws: the training
budget, timed and reported), then three samplers run ``--chains`` chains for ``--steps`` steps after
burn-in, each from its own warm start: flow-MH (independence Metropolis–Hastings with flow
proposals, chains started from flow draws), HMC (step size adapted to acceptance 0.8, ε·n ≈ 1) and
HMC + Swendsen–Wang. Measured per sampler: acceptance, τ_int of |m| and of the action S (Γ-method,
in steps), CPU seconds per step (``time.process_time``, all threads, after compilation), and the
cost of one independent sample ``2 τ_int × CPU s/step``. The flow's ESS/N (importance weights of
``--ess-samples`` independent draws) and its observables (⟨|m|⟩, χ = V⟨m²⟩, U₄ = 1 − ⟨m⁴⟩/3⟨m²⟩²)
against HMC + Swendsen–Wang (difference in combined standard errors) complete the row.

RATIOS: ``cost_{hmc,hmc_sw}_over_flow_{abs_m,action}_L{L}`` (> 1: flow-MH is cheaper per
independent sample; the training cost is NOT included — it is reported as ``flow_train_cpu_s``).
Anchors: Albergo et al. 2019 (arXiv 1904.12072) and Gerdes et al. 2022 (arXiv 2207.00283): ESS ≈ 66 %
at L = 32 for an equivariant continuous flow against ≈ 1 % for a RealNVP, GPU-days of training.

``--transfer``: each size's flow starts from the previous size's trained flow (couplings kept, spectral
layer resampled: :func:`phigen.flows.resize_flow`), so the training steps add up over the sizes;
``flow_train_cpu_s_cumulative`` reports the whole chain's cost.

Usage: ``python benchmarks/flow_mcmc.py [--sizes 8 16 32] [--flow-steps 2000 1000 300] [--transfer] [--quick]
[--kappa 0.3403] [--lam 1] [--chains 64] [--steps 2000] [--json PATH]``
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
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--flow-steps", type=int, nargs="+", default=[2000, 1000, 300],
                    help="reverse-KL training steps per size (the last repeats for further sizes)")
    ap.add_argument("--flow-batch", type=int, default=64)
    ap.add_argument("--flow-layers", type=int, default=8)
    ap.add_argument("--flow-width", type=int, default=16)
    ap.add_argument("--flow-lr", type=float, default=3e-3)
    ap.add_argument("--transfer", action="store_true", help="start each size from the previous size's flow")
    ap.add_argument("--flow-coupling", choices=("affine", "spline"), default="spline")
    ap.add_argument("--kappa", type=float, default=0.3403)
    ap.add_argument("--lam", type=float, default=1.0)
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--burn", type=int, default=200)
    ap.add_argument("--ess-samples", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="L = 8 only, 300 training steps, 600 MCMC steps")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.flow_steps, args.steps, args.burn, args.ess_samples = [8], [300], 600, 300, 2048
    return args


def _observables(state, L):
    import jax.numpy as jnp

    return {"abs_m": jnp.abs(state.position.mean((-2, -1))), "m": state.position.mean((-2, -1)),
            "action": state.energy}


def _run(key, kernel, state, n_steps, burn, L):
    """(trace, acceptance, CPU s/step): a compile-and-burn-in run, then the timed run."""
    import numpy as np

    from phigen.samplers import RunConfig, run_chain

    obs = lambda s: _observables(s, L)  # noqa: E731
    warm = run_chain(key, kernel.step, state, RunConfig(n_steps=burn, chunk_size=100, progress=False),
                     observables=obs)
    t0 = time.process_time()
    run = run_chain(key, kernel.step, warm.state, RunConfig(n_steps=n_steps, chunk_size=100, progress=False),
                    observables=obs)
    cpu = time.process_time() - t0
    return {k: np.asarray(v) for k, v in run.trace.items()}, float(np.mean(run.info_summary.mean_acceptance)), \
        cpu / n_steps


def _summary(trace, acceptance, cpu_per_step, L):
    import numpy as np

    from phigen.samplers import integrated_autocorrelation_time, mean_with_error

    V = L * L
    out = {"acceptance": acceptance, "cpu_s_per_step": cpu_per_step}
    for name in ("abs_m", "action"):
        tau = integrated_autocorrelation_time(trace[name].T)
        out[f"tau_{name}"], out[f"tau_{name}_err"] = float(tau.tau), float(tau.error)
        out[f"cost_{name}"] = 2 * float(tau.tau) * cpu_per_step
    m = trace["m"].astype(np.float64)
    m2, m4 = (m ** 2).mean(), (m ** 4).mean()
    out["abs_m"] = mean_with_error(trace["abs_m"].T)._asdict()
    # errors of χ and U₄ by jackknife over chains (chains are independent)
    chains = m.shape[1]
    jk_chi, jk_u4 = [], []
    for c in range(chains):
        keep = np.delete(m, c, axis=1)
        a2, a4 = (keep ** 2).mean(), (keep ** 4).mean()
        jk_chi.append(V * a2)
        jk_u4.append(1 - a4 / (3 * a2 ** 2))
    jk = lambda v: float(np.sqrt((chains - 1) / chains * np.sum((np.asarray(v) - np.mean(v)) ** 2)))  # noqa: E731
    out["chi"] = {"mean": V * m2, "error": jk(jk_chi)}
    out["U4"] = {"mean": 1 - m4 / (3 * m2 ** 2), "error": jk(jk_u4)}
    return out


def main(argv=None):
    args = _parse(argv)
    import jax
    import numpy as np

    from phigen.energies import Phi4
    from phigen.fields.phi4 import Phi4SamplerConfig, train_phi4_flow, warm_up_phi4_chains
    from phigen.flows import effective_sample_size_fraction, log_weights, make_flow_mh_kernel

    ratios, figures = {}, {"kappa": args.kappa, "lam": args.lam, "chains": args.chains, "steps": args.steps,
                           "flow": {"batch": args.flow_batch, "layers": args.flow_layers, "width": args.flow_width,
                                    "coupling": args.flow_coupling,
                                    "learning_rate": args.flow_lr}}
    energy = Phi4(args.kappa, args.lam)
    figures["transfer"] = bool(args.transfer)
    previous, cumulative = None, 0.0
    for i, L in enumerate(args.sizes):
        steps = args.flow_steps[min(i, len(args.flow_steps) - 1)]
        key = jax.random.fold_in(jax.random.key(args.seed), L)
        cfg = Phi4SamplerConfig(sampler="flow", n_chains=args.chains, flow_steps=steps, flow_batch=args.flow_batch,
                                flow_layers=args.flow_layers, flow_width=args.flow_width, n_warmup=200, n_burn=0,
                                flow_learning_rate=args.flow_lr, flow_coupling=args.flow_coupling)
        t0, c0 = time.perf_counter(), time.process_time()
        model = train_phi4_flow(key, L, args.kappa, args.lam, cfg, progress=False,
                                init=previous if args.transfer else None)
        train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        previous = model
        cumulative = cumulative + train_cpu if args.transfer else train_cpu
        _, lw = log_weights(model.flow, energy, key=jax.random.fold_in(key, 1), n=args.ess_samples)
        row = {"flow_train_steps": steps, "flow_train_wall_s": train_wall, "flow_train_cpu_s": train_cpu,
               "flow_train_cpu_s_cumulative": cumulative,
               "flow_n_params": model.n_params, "ess_fraction": effective_sample_size_fraction(lw),
               "free_energy_variational_per_site": float(-lw.mean()) / L**2}
        fmh = make_flow_mh_kernel(model.flow, energy)
        state = fmh.init(model.sample(args.chains, key=jax.random.fold_in(key, 2)))
        row["flow_mh"] = _summary(*_run(jax.random.fold_in(key, 3), fmh, state, args.steps, args.burn, L), L)
        for name, sampler in (("hmc", "hmc"), ("hmc_sw", "hmc-cluster")):
            c = Phi4SamplerConfig(sampler=sampler, n_chains=args.chains, n_warmup=200, n_burn=0)
            st, kernel, eps, n_lf = warm_up_phi4_chains(jax.random.fold_in(key, 4), L, args.kappa, args.lam, c,
                                                        progress=False)
            row[name] = _summary(*_run(jax.random.fold_in(key, 5), kernel, st, args.steps, args.burn, L), L)
            row[name].update(step_size=eps, n_leapfrog=n_lf)
        ref = row["hmc_sw"]
        row["flow_vs_hmc_sw_sigma"] = {
            o: abs(row["flow_mh"][o]["mean"] - ref[o]["mean"]) / float(np.hypot(row["flow_mh"][o]["error"],
                                                                                 ref[o]["error"]))
            for o in ("abs_m", "chi", "U4")}
        for base in ("hmc", "hmc_sw"):
            for o in ("abs_m", "action"):
                ratios[f"cost_{base}_over_flow_{o}_L{L}"] = row[base][f"cost_{o}"] / row["flow_mh"][f"cost_{o}"]
        figures[f"L{L}"] = row
        f = row["flow_mh"]
        print(f"L={L}: flow trained {steps} steps in {train_cpu:.0f} CPU s, ESS/N {row['ess_fraction']:.3f}, "
              f"flow-MH acceptance {f['acceptance']:.3f}, τ|m| {f['tau_abs_m']:.2f} / HMC {row['hmc']['tau_abs_m']:.2f}"
              f" / HMC+SW {row['hmc_sw']['tau_abs_m']:.2f}; cost ratio HMC/flow {ratios[f'cost_hmc_over_flow_abs_m_L{L}']:.2f}, "
              f"HMC+SW/flow {ratios[f'cost_hmc_sw_over_flow_abs_m_L{L}']:.2f}; flow vs HMC+SW (σ): "
              + ", ".join(f"{k} {v:.1f}" for k, v in row["flow_vs_hmc_sw_sigma"].items()), flush=True)
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "python": sys.version.split()[0], "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
               "loadavg": os.getloadavg()}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ratios": ratios, "figures": figures, "machine": machine}, fh, indent=2, default=float)
    return ratios, figures


if __name__ == "__main__":
    main()
