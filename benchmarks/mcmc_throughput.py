"""MCMC throughput on lattice φ⁴: phigen HMC/MALA against a vectorised NumPy sampler and blackjax,
plus the integrated autocorrelation time of |m| near κ_c for HMC alone and HMC + cluster.

Figure of merit: site-updates per second = sites × gradient evaluations × chains / s (HMC: one
gradient per leapfrog step; MALA: one per step). Every sampler runs the same energy (hopping φ⁴,
periodic), the same step size and number of leapfrog steps, float32, in this process, after
compilation and warm-up. Each timing is the best of several interleaved repeats (the machine may
be shared; the 1-minute load average is printed and stored). The script prints RATIOS; absolute
figures go to the JSON file:

* ``hmc_phigen_over_numpy_L{L}`` / ``mala_…``: against a vectorised float32 NumPy HMC/MALA
  (analytic force, slice-based periodic stencil into preallocated buffers, in-place updates, all
  chains in one array). NumPy's elementwise kernels run on ONE core.
* ``hmc_phigen_over_blackjax_L{L}`` / ``mala_…``: blackjax's HMC/MALA on the same energy, gradient
  by autodiff, ``vmap`` over chains, in a jitted ``lax.scan`` (one device).
* ``…_alldev_…``: phigen with the chains sharded over all host devices
  (``phigen.samplers.shard_chains``). This script (never the library) creates them by setting
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before importing jax. Note that XLA:CPU
  also splits each large fused loop over the cores of ONE device, so "one device" is not "one core".
* ``…_per_cpu_s_…``: the same ratio per CPU-second of the process (all threads): the cost in
  core-seconds, far less sensitive to other jobs on a shared machine than wall time.
* ``hmc_phigen_over_roofline_L{L}``: the leapfrog rate against the memory-bandwidth roofline: the
  copy bandwidth measured here (best of a NumPy copy and a jitted copy, read + write counted) over
  16 bytes per site-leapfrog step (read and write φ and π, float32 — the traffic of a perfectly
  fused step). Above 1 means part of the working set is served from cache.

τ_int section: |m| at κ = 0.34, λ = 1 (near κ_c; ``--tau-kappa/--tau-lam`` to change), L = 16, 32, 64,
step size adapted to acceptance 0.8 with ε·n ≈ 1, then HMC alone and HMC + Swendsen–Wang from the
same warmed-up state; τ_int by the Γ-method (in trajectories), with its error and the growth ratio
τ(2L)/τ(L).

Usage: ``python benchmarks/mcmc_throughput.py [--sizes 32 64 128] [--chains 64] [--quick]
[--json PATH] [--host-devices N] [--no-tau]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

BYTES_PER_SITE_LEAPFROG = 16  # read φ, π and write φ, π once each, float32


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="lattice sizes L (default 32 64 128)")
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("--kappa", type=float, default=0.27)
    ap.add_argument("--lam", type=float, default=0.022)
    ap.add_argument("--step-size", type=float, default=0.1, help="HMC leapfrog step")
    ap.add_argument("--n-leapfrog", type=int, default=10)
    ap.add_argument("--mala-step-size", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--host-devices", type=int, default=None,
                    help="host devices for the all-devices figures (default: number of CPUs)")
    ap.add_argument("--no-blackjax", action="store_true")
    ap.add_argument("--no-mala", action="store_true")
    ap.add_argument("--no-tau", action="store_true", help="skip the τ_int section")
    ap.add_argument("--tau-sizes", type=int, nargs="+", default=None, help="default 16 32 64 (quick: 16 32)")
    ap.add_argument("--tau-kappa", type=float, default=0.34)
    ap.add_argument("--tau-lam", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats, short τ runs")
    ap.add_argument("--json", metavar="PATH", default=None)
    args = ap.parse_args(argv)
    if args.sizes is None:
        args.sizes = [16, 32] if args.quick else [32, 64, 128]
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    if args.tau_sizes is None:
        args.tau_sizes = [16, 32] if args.quick else [16, 32, 64]
    args.work = 5e6 if args.quick else 5e7
    if args.host_devices is None:
        args.host_devices = os.cpu_count() or 1
    return args


ARGS = _parse(sys.argv[1:]) if __name__ == "__main__" else None
if ARGS is not None and ARGS.host_devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # Must happen before jax is imported; only this script does it, never the library.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={ARGS.host_devices}").strip()

import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from phigen.energies import Phi4  # noqa: E402
from phigen.samplers import (RunConfig, adapt_step_size, hmc_init, hmc_step,  # noqa: E402
                             integrated_autocorrelation_time, make_hmc_cluster_kernel, make_kernel,
                             mala_init, mala_step, run_chain, shard_chains)
from phigen.samplers.sharding import chain_mesh  # noqa: E402


# --- NumPy baseline: a fair, vectorised float32 peer ---------------------------------------------
class NumpyPhi4:
    """φ⁴ force and energy for (C, L, L) float32 batches with preallocated work buffers."""

    def __init__(self, shape, kappa, lam):
        self.kappa, self.lam = np.float32(kappa), np.float32(lam)
        self.nb = np.empty(shape, np.float32)
        self.tmp = np.empty(shape, np.float32)

    def neighbour_sum(self, phi):
        nb = self.nb  # periodic 4-neighbour sum with slices (no np.roll allocations)
        nb[:, :, 1:] = phi[:, :, :-1]
        nb[:, :, 0] = phi[:, :, -1]
        nb[:, :, :-1] += phi[:, :, 1:]
        nb[:, :, -1] += phi[:, :, 0]
        nb[:, 1:, :] += phi[:, :-1, :]
        nb[:, 0, :] += phi[:, -1, :]
        nb[:, :-1, :] += phi[:, 1:, :]
        nb[:, -1, :] += phi[:, 0, :]
        return nb

    def force(self, phi, out):
        """out ← −2κ n + 2φ + 4λ(φ² − 1)φ = φ(4λφ² + 2 − 4λ) − 2κ n."""
        nb = self.neighbour_sum(phi)
        np.multiply(phi, phi, out=out)
        out *= 4 * self.lam
        out += 2 - 4 * self.lam
        out *= phi
        nb *= -2 * self.kappa
        out += nb
        return out

    def energy(self, phi):
        """S = Σ[−2κ(φ_x φ_{x+x̂} + φ_x φ_{x+ŷ}) + φ² + λ(φ² − 1)²] per chain (float64 sums)."""
        t = self.tmp
        np.multiply(phi, phi, out=t)
        local = t.sum(axis=(1, 2), dtype=np.float64)
        t -= 1
        t *= t
        local += self.lam * t.sum(axis=(1, 2), dtype=np.float64)
        bonds = np.einsum("cij,cij->c", phi[:, :, :-1], phi[:, :, 1:], dtype=np.float64)
        bonds += np.einsum("ci,ci->c", phi[:, :, -1], phi[:, :, 0], dtype=np.float64)
        bonds += np.einsum("cij,cij->c", phi[:, :-1, :], phi[:, 1:, :], dtype=np.float64)
        bonds += np.einsum("ci,ci->c", phi[:, -1, :], phi[:, 0, :], dtype=np.float64)
        return local - 2 * float(self.kappa) * bonds


def numpy_hmc(rng, state, model, step_size, n_leapfrog, n_traj):
    """Vectorised NumPy HMC over all chains, in place; state = dict(phi, u, g, x, p, p0, gx)."""
    eps = np.float32(step_size)
    half = np.float32(0.5 * step_size)
    phi, u, g = state["phi"], state["u"], state["g"]
    x, p, p0, gx, tmp = state["x"], state["p"], state["p0"], state["gx"], state["tmp"]
    acc = []
    for _ in range(n_traj):
        rng.standard_normal(out=p0, dtype=np.float32)
        np.copyto(x, phi)
        np.multiply(g, half, out=p)
        np.subtract(p0, p, out=p)
        for i in range(n_leapfrog):
            np.multiply(p, eps, out=tmp)
            x += tmp
            model.force(x, gx)
            np.multiply(gx, eps if i < n_leapfrog - 1 else half, out=tmp)
            p -= tmp
        u1 = model.energy(x)
        k1 = np.einsum("cij,cij->c", p, p, dtype=np.float64)
        k0 = np.einsum("cij,cij->c", p0, p0, dtype=np.float64)
        dh = u1 - u + 0.5 * (k1 - k0)
        a = np.log(rng.random(dh.shape)) < -dh
        phi[a] = x[a]
        g[a] = gx[a]
        u[a] = u1[a]
        acc.append(a.mean())
    return float(np.mean(acc))


def numpy_hmc_state(phi, model):
    g = np.empty_like(phi)
    model.force(phi, g)
    return {"phi": phi.copy(), "u": model.energy(phi), "g": g, "x": np.empty_like(phi),
            "p": np.empty_like(phi), "p0": np.empty_like(phi), "gx": np.empty_like(phi),
            "tmp": np.empty_like(phi)}


def numpy_mala(rng, state, model, step_size, n_steps):
    eps = np.float32(step_size)
    phi, u, g = state["phi"], state["u"], state["g"]
    y, xi, gy = state["x"], state["p0"], state["gx"]
    acc = []
    for _ in range(n_steps):
        rng.standard_normal(out=xi, dtype=np.float32)
        np.multiply(g, -eps, out=y)
        y += phi
        y += np.sqrt(2 * eps) * xi
        uy = model.energy(y)
        model.force(y, gy)
        back = phi - y + eps * gy
        log_a = (u - uy - np.einsum("cij,cij->c", back, back, dtype=np.float64) / (4 * eps)
                 + 0.5 * np.einsum("cij,cij->c", xi, xi, dtype=np.float64))
        a = np.log(rng.random(log_a.shape)) < log_a
        phi[a] = y[a]
        g[a] = gy[a]
        u[a] = uy[a]
        acc.append(a.mean())
    return float(np.mean(acc))


# --- phigen --------------------------------------------------------------------------------------
def make_phigen_hmc(energy, step_size, n_leapfrog, n_traj):
    def run(key, state):
        def one(s, k):
            s, info = hmc_step(k, s, energy, step_size=step_size, n_leapfrog=n_leapfrog, jitter=0.0)
            return s, info.acceptance_rate.mean()
        state, acc = jax.lax.scan(one, state, jax.random.split(key, n_traj))
        return state, acc.mean()
    return jax.jit(run, donate_argnums=(1,))


def make_phigen_mala(energy, step_size, n_steps):
    def run(key, state):
        def one(s, k):
            s, info = mala_step(k, s, energy, step_size=step_size)
            return s, info.acceptance_rate.mean()
        state, acc = jax.lax.scan(one, state, jax.random.split(key, n_steps))
        return state, acc.mean()
    return jax.jit(run, donate_argnums=(1,))


# --- blackjax ------------------------------------------------------------------------------------
def make_blackjax(kind, energy, shape, step_size, n_leapfrog, n_iter):
    import blackjax

    def logdensity(phi):  # one field; gradient by autodiff, as a blackjax user would write it
        return -energy.value(phi[None])[0]

    if kind == "hmc":
        alg = blackjax.hmc(logdensity, step_size, jnp.ones(shape[-2] * shape[-1]), n_leapfrog)
    else:
        alg = blackjax.mala(logdensity, step_size)
    init = jax.jit(jax.vmap(alg.init))
    step = jax.vmap(alg.step)

    def run(key, state):
        def one(s, k):
            s, info = step(jax.random.split(k, shape[0]), s)
            return s, info.acceptance_rate.mean()
        state, acc = jax.lax.scan(one, state, jax.random.split(key, n_iter))
        return state, acc.mean()
    return init, jax.jit(run, donate_argnums=(1,))


# --- machine -------------------------------------------------------------------------------------
def measure_bandwidth(n_bytes=256 * 2 ** 20, repeats=5):
    """Bytes/s of a large copy, read + write counted: (NumPy, one thread; jitted, XLA threads)."""
    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    best_np = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best_np = min(best_np, time.perf_counter() - t)
    x = jnp.ones(n_bytes // 4, jnp.float32)
    scale = jax.jit(lambda a: a * 1.0000001)
    scale(x).block_until_ready()
    best_jax = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        scale(x).block_until_ready()
        best_jax = min(best_jax, time.perf_counter() - t)
    return 2 * n_bytes / best_np, 2 * n_bytes / best_jax


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info():
    info = {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0], "numpy": np.__version__, "jax": jax.__version__,
            "jax_devices": [str(d) for d in jax.devices()], "xla_flags": os.environ.get("XLA_FLAGS", "")}
    try:
        info["load_average_1min_start"] = os.getloadavg()[0]
    except OSError:
        pass
    try:
        import blackjax
        info["blackjax"] = blackjax.__version__
    except ImportError:
        info["blackjax"] = None
    return info


def _best_time(fns, repeats):
    """Interleave the timed callables (fair under background load). Returns the best wall time and
    the best process CPU time (all threads) of each: CPU time is what a run costs in core-seconds
    and is far less sensitive than wall time to other jobs taking the cores away."""
    best = {name: np.inf for name in fns}
    best_cpu = {name: np.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
            best_cpu[name] = min(best_cpu[name], time.process_time() - c)
    return best, best_cpu


# --- throughput ----------------------------------------------------------------------------------
def bench_size(L, args, have_blackjax, mesh):
    C, n_lf, eps = args.chains, args.n_leapfrog, args.step_size
    energy = Phi4(args.kappa, args.lam)
    sites = C * L * L
    n_traj = max(2, int(args.work / (sites * n_lf)))
    n_mala = n_traj * n_lf
    n_traj_np = max(1, n_traj // 8)
    n_mala_np = n_traj_np * n_lf
    rng = np.random.default_rng(0)
    # Start near the minimum of the uniform-field action (1 − 4κ)φ² + λ(φ² − 1)², random sign per
    # chain, so the timed runs see near-equilibrium acceptance rather than an ordering transient.
    phi_star = np.sqrt(max(0.0, 1.0 - (1.0 - 4.0 * args.kappa) / (2.0 * args.lam))) if args.lam > 0 else 0.0
    signs = rng.choice([-1.0, 1.0], size=(C, 1, 1))
    x0 = (signs * phi_star + 0.5 * rng.standard_normal((C, L, L))).astype(np.float32)

    hmc_run = make_phigen_hmc(energy, eps, n_lf, n_traj)
    st = {"hmc": hmc_init(x0, energy)}
    fns, acc = {}, {}
    keys = iter(jax.random.split(jax.random.key(1), 10_000))

    def run_jax(name, runner):
        def fn():
            st[name], a = runner(next(keys), st[name])
            acc[name] = float(jax.block_until_ready(a))
        return fn

    fns["hmc_phigen"] = run_jax("hmc", hmc_run)
    if mesh is not None:
        hmc_run_sh = make_phigen_hmc(energy, eps, n_lf, n_traj)
        st["hmc_alldev"] = shard_chains(hmc_init(x0, energy), mesh)
        fns["hmc_phigen_alldev"] = run_jax("hmc_alldev", hmc_run_sh)

    model = NumpyPhi4((C, L, L), args.kappa, args.lam)
    np_state = {"hmc": numpy_hmc_state(x0, model)}

    def np_hmc():
        acc["hmc_numpy"] = numpy_hmc(rng, np_state["hmc"], model, eps, n_lf, n_traj_np)

    fns["hmc_numpy"] = np_hmc
    if not args.no_mala:
        mala_run = make_phigen_mala(energy, args.mala_step_size, n_mala)
        st["mala"] = mala_init(x0, energy)
        fns["mala_phigen"] = run_jax("mala", mala_run)
        np_state["mala"] = numpy_hmc_state(x0, model)

        def np_mala():
            acc["mala_numpy"] = numpy_mala(rng, np_state["mala"], model, args.mala_step_size, n_mala_np)
        fns["mala_numpy"] = np_mala
    if have_blackjax:
        kinds = (("hmc", eps, n_traj),) + ((("mala", args.mala_step_size, n_mala),) if not args.no_mala else ())
        for kind, step, n_iter in kinds:
            init, runner = make_blackjax(kind, energy, (C, L, L), step, n_lf, n_iter)
            st["bj_" + kind] = init(jnp.asarray(x0))
            fns[kind + "_blackjax"] = run_jax("bj_" + kind, runner)

    for fn in fns.values():  # compile and warm up (also equilibrates a little)
        fn()
    best, best_cpu = _best_time(fns, args.repeats)
    work = {"hmc_phigen": sites * n_lf * n_traj, "hmc_phigen_alldev": sites * n_lf * n_traj,
            "mala_phigen": sites * n_mala, "hmc_numpy": sites * n_lf * n_traj_np,
            "mala_numpy": sites * n_mala_np, "hmc_blackjax": sites * n_lf * n_traj,
            "mala_blackjax": sites * n_mala}
    rate = {name: work[name] / best[name] for name in best}
    rate_cpu = {name: work[name] / best_cpu[name] for name in best_cpu}
    accept = {"hmc_phigen": acc["hmc"], "hmc_numpy": acc["hmc_numpy"]}
    for name, src in (("hmc_phigen_alldev", "hmc_alldev"), ("mala_phigen", "mala"), ("mala_numpy", "mala_numpy"),
                      ("hmc_blackjax", "bj_hmc"), ("mala_blackjax", "bj_mala")):
        if src in acc:
            accept[name] = acc[src]
    return rate, rate_cpu, accept


# --- τ_int -----------------------------------------------------------------------------------------
def tau_section(args, mesh):
    """τ_int of |m| (in trajectories) for HMC alone and HMC + cluster, per L."""
    energy = Phi4(args.tau_kappa, args.tau_lam)
    n_chains = 16
    n_warm = 100 if args.quick else 300
    n_steps = 600 if args.quick else 3000
    burn = 100 if args.quick else 300
    rows = {}

    def obs(state):
        return {"abs_m": jnp.abs(jnp.mean(state.position, axis=(1, 2)))}

    for L in args.tau_sizes:
        x0 = 0.5 * jax.random.normal(jax.random.key(L), (n_chains, L, L))
        state, eps, ainfo = adapt_step_size(jax.random.key(100 + L), "hmc", energy, x0, n_warmup=n_warm,
                                            trajectory_length=1.0)
        eps = float(eps)
        n_lf = int(ainfo.final_n_leapfrog)
        kernels = {"hmc": make_kernel("hmc", energy, step_size=eps, n_leapfrog=n_lf),
                   "hmc_cluster": make_hmc_cluster_kernel(energy, step_size=eps, n_leapfrog=n_lf)}
        row = {"step_size": eps, "n_leapfrog": n_lf}
        for name, kernel in kernels.items():
            t = time.perf_counter()
            res = run_chain(jax.random.key(200 + L), kernel.step, state,
                            RunConfig(n_steps=n_steps, burn_in=burn, chunk_size=100, progress=False),
                            observables=obs, shard=mesh is not None, mesh=mesh)
            wall = time.perf_counter() - t
            tau = integrated_autocorrelation_time(np.asarray(res.trace["abs_m"]).T)
            row[name] = {"tau": tau.tau, "error": tau.error, "window": tau.window,
                         "converged": tau.converged, "acceptance": float(np.mean(res.info_summary.mean_acceptance)),
                         "mean_abs_m": float(np.mean(res.trace["abs_m"])), "wall_s": wall}
        rows[L] = row
        h, c = row["hmc"], row["hmc_cluster"]
        print(f"  L={L:3d} (eps={eps:.3f}, n={n_lf}): tau_int(|m|) HMC {h['tau']:.1f} ± {h['error']:.1f}"
              f"{'' if h['converged'] else ' (window not converged: lower bound)'} | HMC+cluster "
              f"{c['tau']:.2f} ± {c['error']:.2f}{'' if c['converged'] else ' (not converged)'} | "
              f"ratio {h['tau'] / c['tau']:.1f}; acc {h['acceptance']:.2f}/{c['acceptance']:.2f}", flush=True)
    sizes = sorted(rows)
    growth = {}
    for a, b in zip(sizes[:-1], sizes[1:]):
        for name in ("hmc", "hmc_cluster"):
            ta, tb = rows[a][name], rows[b][name]
            r = tb["tau"] / ta["tau"]
            err = r * np.hypot(ta["error"] / ta["tau"], tb["error"] / tb["tau"])
            growth[f"{name}_L{b}_over_L{a}"] = (r, err)
    for key, (r, err) in growth.items():
        print(f"  growth {key}: {r:.2f} ± {err:.2f}")
    return rows, growth


def main():
    args = ARGS if ARGS is not None else _parse([])
    have_blackjax = False
    if not args.no_blackjax:
        try:
            import blackjax  # noqa: F401
            have_blackjax = True
        except ImportError:
            pass
    n_dev = len(jax.devices())
    mesh = chain_mesh() if n_dev > 1 and args.chains % n_dev == 0 else None

    machine = machine_info()
    bw_np, bw_jax = measure_bandwidth()
    bandwidth = max(bw_np, bw_jax)
    machine["memory_bandwidth_GBps_numpy_copy"] = bw_np / 1e9
    machine["memory_bandwidth_GBps_jax_copy"] = bw_jax / 1e9
    roofline = bandwidth / BYTES_PER_SITE_LEAPFROG
    print(f"phi^4 hopping form: kappa={args.kappa}, lam={args.lam}; chains={args.chains}; "
          f"HMC step={args.step_size} x {args.n_leapfrog} leapfrog; MALA step={args.mala_step_size}")
    print(f"machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, jax {jax.__version__}, "
          f"{n_dev} host device(s); load {machine.get('load_average_1min_start', float('nan')):.1f}; "
          f"copy bandwidth {bw_np / 1e9:.1f} GB/s (numpy) / {bw_jax / 1e9:.1f} GB/s (jax) -> roofline "
          f"{roofline:.3g} site-leapfrog/s at {BYTES_PER_SITE_LEAPFROG} B/site-step")
    print("NumPy baseline: vectorised float32, in-place; its elementwise kernels use ONE core. "
          "phigen 'one device' may still use all cores (XLA:CPU splits large fused loops); "
          f"'all devices' = chains sharded over {n_dev} host devices.")
    if not have_blackjax:
        print("blackjax not used: blackjax ratios skipped")

    ratios, figures = {}, {"kappa": args.kappa, "lam": args.lam, "chains": args.chains,
                           "step_size": args.step_size, "n_leapfrog": args.n_leapfrog,
                           "mala_step_size": args.mala_step_size, "host_devices": n_dev,
                           "roofline_site_leapfrog_per_s": roofline}
    for L in args.sizes:
        load = os.getloadavg()[0]
        rate, rate_cpu, accept = bench_size(L, args, have_blackjax, mesh)
        figures[f"load_average_1min_L{L}"] = load
        for name, r in rate.items():
            figures[f"{name}_site_updates_per_s_L{L}"] = r
            figures[f"{name}_site_updates_per_cpu_s_L{L}"] = rate_cpu[name]
        ratios[f"hmc_phigen_over_numpy_per_cpu_s_L{L}"] = rate_cpu["hmc_phigen"] / rate_cpu["hmc_numpy"]
        if have_blackjax:
            ratios[f"hmc_phigen_over_blackjax_per_cpu_s_L{L}"] = rate_cpu["hmc_phigen"] / rate_cpu["hmc_blackjax"]
        for name, a in accept.items():
            figures[f"{name}_acceptance_L{L}"] = a
        for kind in ("hmc", "mala"):
            if f"{kind}_phigen" not in rate:
                continue
            ratios[f"{kind}_phigen_over_numpy_L{L}"] = rate[f"{kind}_phigen"] / rate[f"{kind}_numpy"]
            if have_blackjax:
                ratios[f"{kind}_phigen_over_blackjax_L{L}"] = rate[f"{kind}_phigen"] / rate[f"{kind}_blackjax"]
        ratios[f"hmc_phigen_over_roofline_L{L}"] = rate["hmc_phigen"] / roofline
        line = (f"L={L:4d} (load {load:.1f}): HMC phigen 1 device: x{ratios[f'hmc_phigen_over_numpy_L{L}']:.1f} numpy")
        if have_blackjax:
            line += f", x{ratios[f'hmc_phigen_over_blackjax_L{L}']:.2f} blackjax"
        line += f", {ratios[f'hmc_phigen_over_roofline_L{L}']:.2f} of roofline (acc {accept['hmc_phigen']:.2f})"
        print(line)
        line = f"        per CPU-second (load-robust): x{ratios[f'hmc_phigen_over_numpy_per_cpu_s_L{L}']:.1f} numpy"
        if have_blackjax:
            line += f", x{ratios[f'hmc_phigen_over_blackjax_per_cpu_s_L{L}']:.2f} blackjax"
        print(line)
        if "hmc_phigen_alldev" in rate:
            r_all = rate["hmc_phigen_alldev"]
            ratios[f"hmc_phigen_alldev_over_numpy_L{L}"] = r_all / rate["hmc_numpy"]
            if have_blackjax:
                ratios[f"hmc_phigen_alldev_over_blackjax_L{L}"] = r_all / rate["hmc_blackjax"]
            ratios[f"hmc_phigen_alldev_over_roofline_L{L}"] = r_all / roofline
            ratios[f"hmc_phigen_alldev_over_1device_L{L}"] = r_all / rate["hmc_phigen"]
            line = (f"        HMC phigen {n_dev} devices: x{ratios[f'hmc_phigen_alldev_over_numpy_L{L}']:.1f} numpy")
            if have_blackjax:
                line += f", x{ratios[f'hmc_phigen_alldev_over_blackjax_L{L}']:.2f} blackjax"
            line += (f", {ratios[f'hmc_phigen_alldev_over_roofline_L{L}']:.2f} of roofline, "
                     f"x{ratios[f'hmc_phigen_alldev_over_1device_L{L}']:.2f} vs 1 device")
            print(line)
        if "mala_phigen" in rate:
            line = f"        MALA phigen 1 device: x{ratios[f'mala_phigen_over_numpy_L{L}']:.1f} numpy"
            if have_blackjax:
                line += f", x{ratios[f'mala_phigen_over_blackjax_L{L}']:.2f} blackjax"
            print(line + f" (acc {accept['mala_phigen']:.2f})", flush=True)

    tau = None
    if not args.no_tau:
        print(f"tau_int of |m| at kappa={args.tau_kappa}, lam={args.tau_lam} (16 chains; in trajectories):")
        rows, growth = tau_section(args, mesh)
        tau = {"kappa": args.tau_kappa, "lam": args.tau_lam,
               "sizes": {str(L): row for L, row in rows.items()},
               "growth": {k: {"ratio": r, "error": e} for k, (r, e) in growth.items()}}
        for L, row in rows.items():
            ratios[f"tau_hmc_over_hmc_cluster_L{L}"] = row["hmc"]["tau"] / row["hmc_cluster"]["tau"]
        figures["tau_int"] = tau

    try:
        machine["load_average_1min_end"] = os.getloadavg()[0]
    except OSError:
        pass
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ratios": ratios, "figures": figures, "machine": machine}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
