"""Scale out on this machine: sharded generation over N processes, data-parallel training over N devices.

1. Generation: ``phigen generate gaussian`` as one process (a self-contained file) and with
   ``--processes N`` (N processes joined by ``jax.distributed`` on 127.0.0.1, one shard each, a
   virtual-dataset master). Each run is a fresh command, timed from launch to exit (imports,
   ``jax.distributed`` start-up and the master included). Prints the throughput (fields/s), the
   ratio to one process and the efficiency per process (ratio / N), the bytes written, and whether
   the N-process set is bit-identical to the one-process set (fields, groups).
2. Training: the diffusion network's training step (``phigen.diffusion.train.train`` with
   ``data_parallel=True``) on 1, 2 and 4 forced host devices
   (``XLA_FLAGS=--xla_force_host_platform_device_count=N``), each in its own process, the same
   global batch; seconds per step after compilation, ratio to one device, and the largest relative
   difference of the loss curve from the one-device curve.

3. MCMC: φ⁴ chains (HMC + cluster sweeps, ``phigen.samplers.run_chain``) split over the processes of
   a ``jax.distributed`` group on 127.0.0.1 (``global_chain_mesh()``), 1, 2 (, 4) processes, the same
   chains; chain-steps per second after compilation (timed on process 0 between two barriers), ratio to
   one process, efficiency per process, and whether the final chains and the trace of |m| are
   bit-identical to the one-process run. For comparison, the same chains over N forced host devices
   of ONE process (the cost of going through processes rather than devices). And
   ``phigen generate phi4`` at ONE κ (adaptation, pilot, production, file) with ``--processes N``:
   launch to exit, and bit-identity of the set (before this change the other processes idled).

On a machine with fewer cores than processes (this project's has 2) the ratios measure overheads,
not speed-ups: N processes or N host devices share the same cores. Report them as such.

Usage: ``python benchmarks/scale_out.py [--processes 1 2 4] [--size 128] [-n 4096] [--steps 30]
[--mcmc-size 64] [--mcmc-chains 16] [--mcmc-steps 100] [--skip generation training mcmc] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_TRAIN = r"""
import json, sys, time
import jax, numpy as np
from phigen.diffusion.models import DiffusionModel
from phigen.fields.gaussian import gaussian_field, power_law_spectrum

size, steps, batch, width = (int(a) for a in sys.argv[1:5])
x = np.asarray(gaussian_field(jax.random.PRNGKey(3), 256, size, power_law_spectrum(2.0)))
x = (x - x.mean()) / x.std()
times, curves = [], []
for rep in range(2):  # the first call compiles; the second reuses it
    t = time.perf_counter()
    m = DiffusionModel.fit(x, key=jax.random.PRNGKey(5), progress=False, steps=steps, batch_size=batch,
                           width=width, depth=2, chunk=steps, warmup=5, data_parallel=jax.device_count() > 1)
    times.append(time.perf_counter() - t)
    curves.append(m.losses.tolist())
print("REPORT" + json.dumps({"devices": jax.device_count(), "seconds": times, "losses": curves[-1]}))
"""


_MCMC = r"""
import hashlib, json, os, sys, time
import phigen.distributed as D
if "PHIGEN_COORDINATOR" in os.environ:
    D.initialize()
import jax, jax.numpy as jnp, numpy as np
from phigen.energies import Phi4
from phigen.samplers import global_chain_mesh, make_hmc_cluster_kernel, shard_chains
from phigen.samplers.runner import RunConfig, run_chain

size, chains, steps = (int(a) for a in sys.argv[1:4])
mesh = global_chain_mesh()
energy = Phi4(0.27, 1.0)
kernel = make_hmc_cluster_kernel(energy, step_size=0.15, n_leapfrog=7)
x0 = shard_chains(np.asarray(0.5 * jax.random.normal(jax.random.key(0), (chains, size, size))), mesh)
obs = lambda s: {"abs_m": jnp.abs(jnp.mean(s.position, axis=(-2, -1)))}
cfg = lambda n: RunConfig(n_steps=n, chunk_size=min(n, 25), progress=False)
state = run_chain(jax.random.key(1), kernel, kernel.init(x0), cfg(25), observables=obs, mesh=mesh).state  # compiles
D.barrier("mcmc-start")
t = time.perf_counter()
res = run_chain(jax.random.key(2), kernel, state, cfg(steps), observables=obs, mesh=mesh)
from phigen.samplers import gather_chains
final = gather_chains(res.state.position)
D.barrier("mcmc-stop")
dt = time.perf_counter() - t
digest = hashlib.sha256(final.tobytes() + res.trace["abs_m"].tobytes()).hexdigest()
print("REPORT" + json.dumps({"seconds": dt, "digest": digest, "acceptance": float(res.info_summary.mean_acceptance.mean())}))
"""


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("-n", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="training steps timed per device count")
    ap.add_argument("--train-size", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--mcmc-size", type=int, default=64, help="φ⁴ lattice of the MCMC rows")
    ap.add_argument("--mcmc-chains", type=int, default=16)
    ap.add_argument("--mcmc-steps", type=int, default=100)
    ap.add_argument("--phi4-batches", type=int, default=32, help="batches of the φ⁴ one-κ generation row")
    ap.add_argument("--skip", nargs="*", default=[], choices=["generation", "training", "mcmc", "phi4"])
    ap.add_argument("--quick", action="store_true", help="64², 1024 fields, 10 training steps on 16², MCMC 32² 50 steps")
    ap.add_argument("--json", metavar="PATH", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.n, args.steps, args.train_size, args.train_batch = 64, 1024, 10, 16, 16
        args.mcmc_size, args.mcmc_steps = 32, 50
    return args


def _generate(out: Path, args, processes: int, kind_args=None) -> float:
    kind_args = kind_args or ["gaussian", "--size", str(args.size), "-n", str(args.n), "--batch-size",
                              str(args.batch_size)]
    cmd = [sys.executable, "-m", "phigen.cli", "generate", *kind_args, "--seed", "7", "-o", str(out), "--quiet"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    dt = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"generation with {processes} process(es) failed: {r.stderr[-2000:]}")
    return dt


def _identical(a: Path, b: Path) -> bool:
    import numpy as np

    import phigen.io as pio

    with pio.open_fields(a) as x, pio.open_fields(b) as y:
        return bool(np.array_equal(x[:], y[:]) and np.array_equal(x.groups, y.groups))


def _train(devices: int, args) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}").strip())
    r = subprocess.run([sys.executable, "-c", _TRAIN, str(args.train_size), str(args.steps), str(args.train_batch),
                        "8"], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"training on {devices} device(s) failed: {r.stderr[-2000:]}")
    return json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("REPORT"))[6:])


def _mcmc(processes: int, args, devices: int = 1) -> dict:
    """The MCMC child in ``processes`` processes joined on 127.0.0.1 (each with ``devices`` forced
    host devices); process 0's report."""
    from phigen.distributed import free_port

    coordinator = f"127.0.0.1:{free_port()}"
    procs = []
    for k in range(processes):
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        if devices > 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}").strip()
        if processes > 1:
            env.update(PHIGEN_COORDINATOR=coordinator, PHIGEN_NUM_PROCESSES=str(processes), PHIGEN_PROCESS_ID=str(k))
        procs.append(subprocess.Popen([sys.executable, "-c", _MCMC, str(args.mcmc_size), str(args.mcmc_chains),
                                       str(args.mcmc_steps)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise SystemExit(f"MCMC with {processes} process(es) failed: {err[-2000:]}")
    return json.loads(next(ln for ln in outs[0][0].splitlines() if ln.startswith("REPORT"))[6:])


def main(argv=None):
    args = _parse(argv)
    import numpy as np

    ratios, figures = {}, {"generation": {}, "training": {}, "mcmc": {}, "phi4_one_kappa": {}}
    with tempfile.TemporaryDirectory(prefix="phigen-scale-out-") as tmp:
        tmp = Path(tmp)
        base = None
        for p in ([] if "generation" in args.skip else args.processes):
            out = tmp / f"p{p}" / "set.h5"
            out.parent.mkdir()
            dt = _generate(out, args, p)
            size = sum(f.stat().st_size for f in out.parent.iterdir())
            rec = {"seconds": dt, "fields_per_s": args.n / dt, "bytes_written": size,
                   "files": len(list(out.parent.iterdir()))}
            if base is None:
                base = (out, dt, size)
            rec["speedup_vs_1"] = base[1] / dt
            rec["efficiency_per_process"] = base[1] / dt / p
            rec["bytes_vs_1"] = size / base[2]
            rec["bit_identical_to_1"] = _identical(base[0], out) if p > 1 else True
            figures["generation"][f"{p}_processes"] = rec
            ratios[f"generation_speedup_{p}_processes"] = rec["speedup_vs_1"]
            print(f"generate {args.n} gaussian {args.size}² with {p} process(es): {dt:.1f} s, "
                  f"{rec['fields_per_s']:.0f} fields/s, ×{rec['speedup_vs_1']:.2f} vs 1 "
                  f"(efficiency {rec['efficiency_per_process']:.2f}/process), {size / 2**20:.1f} MiB in "
                  f"{rec['files']} files, bit-identical to 1 process: {rec['bit_identical_to_1']}", flush=True)
    base_curve = None
    for d in ([] if "training" in args.skip else args.processes):
        rep = _train(d, args)
        step = rep["seconds"][1] / args.steps
        curve = np.asarray(rep["losses"])
        if base_curve is None:
            base_curve, base_step = curve, step
        rel = float(np.max(np.abs(curve - base_curve) / np.maximum(np.abs(base_curve), 1e-12)))
        rec = {"seconds_per_step": step, "first_call_seconds": rep["seconds"][0], "speedup_vs_1": base_step / step,
               "efficiency_per_device": base_step / step / d, "max_rel_loss_difference_vs_1": rel}
        figures["training"][f"{d}_devices"] = rec
        ratios[f"training_step_speedup_{d}_devices"] = rec["speedup_vs_1"]
        print(f"diffusion training step, batch {args.train_batch} of {args.train_size}², {d} host device(s): "
              f"{1e3 * step:.1f} ms/step, ×{rec['speedup_vs_1']:.2f} vs 1 (efficiency {rec['efficiency_per_device']:.2f}"
              f"/device), loss curve max rel. difference {rel:.1e}", flush=True)
    phi4 = ["phi4", "--size", str(args.mcmc_size), "-n", str(args.mcmc_chains * args.phi4_batches), "--kappa", "0.27",
            "--lam", "1.0", "--n-chains", str(args.mcmc_chains), "--thin", "10"]
    base_phi4 = None
    with tempfile.TemporaryDirectory(prefix="phigen-scale-out-phi4-") as tmp:
        for p in ([] if "phi4" in args.skip else args.processes):
            out = Path(tmp) / f"p{p}" / "phi4.h5"
            out.parent.mkdir()
            dt = _generate(out, args, p, phi4)
            n = args.mcmc_chains * args.phi4_batches
            if base_phi4 is None:
                base_phi4 = (out, dt)
            rec = {"seconds": dt, "fields_per_s": n / dt, "speedup_vs_1": base_phi4[1] / dt,
                   "efficiency_per_process": base_phi4[1] / dt / p,
                   "bit_identical_to_1": _identical(base_phi4[0], out) if p > 1 else True}
            figures["phi4_one_kappa"][f"{p}_processes"] = rec
            ratios[f"phi4_one_kappa_speedup_{p}_processes"] = rec["speedup_vs_1"]
            print(f"generate {n} phi4 {args.mcmc_size}² at one κ ({args.mcmc_chains} chains, adaptation, pilot, thin 10) "
                  f"with {p} process(es): {dt:.1f} s, ×{rec['speedup_vs_1']:.2f} vs 1 (efficiency "
                  f"{rec['efficiency_per_process']:.2f}/process), bit-identical to 1 process: {rec['bit_identical_to_1']}",
                  flush=True)
    base_mcmc = None
    runs = [(p, 1) for p in args.processes] + [(1, d) for d in args.processes if d > 1]
    for p, d in ([] if "mcmc" in args.skip else runs):
        rep = _mcmc(p, args, d)
        rate = args.mcmc_chains * args.mcmc_steps / rep["seconds"]
        if base_mcmc is None:
            base_mcmc = (rate, rep["digest"])
        rec = {"seconds": rep["seconds"], "chain_steps_per_s": rate, "speedup_vs_1": rate / base_mcmc[0],
               "efficiency_per_process": rate / base_mcmc[0] / (p * d), "bit_identical_to_1": rep["digest"] == base_mcmc[1],
               "acceptance": rep["acceptance"]}
        name = f"{p}_processes" if d == 1 else f"1_process_{d}_devices"
        figures["mcmc"][name] = rec
        ratios[f"mcmc_speedup_{name}"] = rec["speedup_vs_1"]
        where = f"{p} process(es)" if d == 1 else f"1 process with {d} host devices"
        print(f"φ⁴ MCMC {args.mcmc_chains} chains {args.mcmc_size}², HMC + cluster, {args.mcmc_steps} steps over {where}"
              f": {rate:.1f} chain-steps/s, ×{rec['speedup_vs_1']:.2f} vs 1 (efficiency "
              f"{rec['efficiency_per_process']:.2f}/process), bit-identical to 1 process: {rec['bit_identical_to_1']}",
              flush=True)
    figures.update(mcmc_size=args.mcmc_size, mcmc_chains=args.mcmc_chains, mcmc_steps=args.mcmc_steps)
    figures.update(size=args.size, n=args.n, batch_size=args.batch_size, steps=args.steps,
                   note=f"{os.cpu_count()} CPU cores: with more processes/devices than cores the ratios measure "
                        "the overhead of sharing them, not a speed-up")
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "python": platform.python_version()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ratios": ratios, "figures": figures, "machine": machine}, f, indent=2)
    return ratios, figures


if __name__ == "__main__":
    main()
