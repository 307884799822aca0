"""MCMC throughput on lattice φ⁴: phigen HMC/MALA against a vectorised NumPy sampler and blackjax.

Figure of merit: site-updates per second = sites × gradient evaluations × chains / s (for HMC one
gradient per leapfrog step, for MALA one per step). Every sampler runs the same energy (hopping
φ⁴, periodic), the same step size and number of leapfrog steps, float32, in this process, after
compilation and warm-up. Each timing is the best of several interleaved repeats (the machine may
be shared), and the script prints RATIOS, not bare times:

* ``hmc_phigen_over_numpy_L{L}`` / ``mala_phigen_over_numpy_L{L}``: against a vectorised NumPy
  implementation (analytic force, ``np.roll`` stencil, all chains in one array);
* ``hmc_phigen_over_blackjax_L{L}`` / ``mala_phigen_over_blackjax_L{L}`` (if blackjax imports):
  blackjax's HMC/MALA on the same energy, gradient by autodiff, ``vmap`` over chains, in a jitted
  ``lax.scan``;
* ``hmc_phigen_over_roofline_L{L}``: phigen's leapfrog rate against a memory-bandwidth roofline,
  bandwidth measured here with a large NumPy copy, 16 bytes moved per site-leapfrog step (read and
  write φ and π, float32) — the traffic of a perfectly fused leapfrog step. A ratio above 1 means
  the working set lives in cache.

Usage: ``python benchmarks/mcmc_throughput.py [--sizes 32 64 128] [--chains 64] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp

from phigen.energies import Phi4
from phigen.samplers import hmc_init, hmc_step, mala_init, mala_step

BYTES_PER_SITE_LEAPFROG = 16  # read φ, π and write φ, π once each, float32


# --- NumPy baseline ------------------------------------------------------------------------------
def _np_force(phi, kappa, lam):
    nb = np.roll(phi, 1, -1) + np.roll(phi, -1, -1) + np.roll(phi, 1, -2) + np.roll(phi, -1, -2)
    return np.float32(-2 * kappa) * nb + 2 * phi + np.float32(4 * lam) * (phi * phi - 1) * phi


def _np_energy(phi, kappa, lam):
    nb = np.roll(phi, 1, -1) + np.roll(phi, 1, -2)
    phi2 = phi * phi
    return np.sum(np.float32(-2 * kappa) * phi * nb + phi2 + np.float32(lam) * (phi2 - 1) ** 2, axis=(-2, -1))


def numpy_hmc(rng, phi, kappa, lam, step_size, n_leapfrog, n_traj):
    """Vectorised NumPy HMC over all chains (leading axis); returns (phi, acceptance)."""
    eps = np.float32(step_size)
    u = _np_energy(phi, kappa, lam)
    g = _np_force(phi, kappa, lam)
    acc = []
    for _ in range(n_traj):
        p0 = rng.standard_normal(phi.shape, dtype=np.float32)
        x = phi.copy()
        p = p0 - 0.5 * eps * g
        for i in range(n_leapfrog):
            x += eps * p
            gx = _np_force(x, kappa, lam)
            p -= (eps if i < n_leapfrog - 1 else 0.5 * eps) * gx
        u1 = _np_energy(x, kappa, lam)
        dh = u1 - u + 0.5 * (np.sum(p * p, axis=(-2, -1)) - np.sum(p0 * p0, axis=(-2, -1)))
        a = np.log(rng.random(dh.shape)) < -dh
        phi = np.where(a[:, None, None], x, phi)
        g = np.where(a[:, None, None], gx, g)
        u = np.where(a, u1, u)
        acc.append(a.mean())
    return phi, float(np.mean(acc))


def numpy_mala(rng, phi, kappa, lam, step_size, n_steps):
    eps = np.float32(step_size)
    u = _np_energy(phi, kappa, lam)
    g = _np_force(phi, kappa, lam)
    acc = []
    for _ in range(n_steps):
        xi = rng.standard_normal(phi.shape, dtype=np.float32)
        y = phi - eps * g + np.sqrt(2 * eps) * xi
        uy, gy = _np_energy(y, kappa, lam), _np_force(y, kappa, lam)
        back = phi - y + eps * gy
        log_a = u - uy - np.sum(back * back, axis=(-2, -1)) / (4 * eps) + 0.5 * np.sum(xi * xi, axis=(-2, -1))
        a = np.log(rng.random(log_a.shape)) < log_a
        phi = np.where(a[:, None, None], y, phi)
        g = np.where(a[:, None, None], gy, g)
        u = np.where(a, uy, u)
        acc.append(a.mean())
    return phi, float(np.mean(acc))


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
    """Bytes/s of a large NumPy copy (read + write counted)."""
    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * n_bytes / best


def machine_info():
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
            "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()]}
    try:
        info["load_average_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    try:
        import blackjax
        info["blackjax"] = blackjax.__version__
    except ImportError:
        info["blackjax"] = None
    return info


def _best_time(fns, repeats):
    """Interleave the timed callables (fair under background load); best wall time of each."""
    best = {name: np.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def bench_size(L, args, have_blackjax):
    C, n_lf, eps = args.chains, args.n_leapfrog, args.step_size
    energy = Phi4(args.kappa, args.lam)
    sites = C * L * L
    # a fixed amount of work per timing (~50M site-updates for JAX, fewer for NumPy)
    n_traj = max(2, int(args.work / (sites * n_lf)))
    n_mala = n_traj * n_lf
    n_traj_np = max(1, n_traj // 8)
    n_mala_np = n_traj_np * n_lf
    rng = np.random.default_rng(0)
    x0 = (0.5 * rng.standard_normal((C, L, L))).astype(np.float32)

    hmc_run = make_phigen_hmc(energy, eps, n_lf, n_traj)
    mala_run = make_phigen_mala(energy, args.mala_step_size, n_mala)
    st = {"hmc": hmc_init(x0, energy), "mala": mala_init(x0, energy)}
    acc = {}
    keys = iter(jax.random.split(jax.random.key(1), 10_000))

    def run_jax(name, runner):
        def fn():
            st[name], a = runner(next(keys), st[name])
            acc[name] = float(jax.block_until_ready(a))
        return fn

    fns = {"hmc_phigen": run_jax("hmc", hmc_run), "mala_phigen": run_jax("mala", mala_run)}
    np_state = {"hmc": x0.copy(), "mala": x0.copy()}

    def np_hmc():
        np_state["hmc"], acc["hmc_numpy"] = numpy_hmc(rng, np_state["hmc"], args.kappa, args.lam, eps, n_lf, n_traj_np)

    def np_mala():
        np_state["mala"], acc["mala_numpy"] = numpy_mala(rng, np_state["mala"], args.kappa, args.lam,
                                                          args.mala_step_size, n_mala_np)

    fns["hmc_numpy"], fns["mala_numpy"] = np_hmc, np_mala
    if have_blackjax:
        for kind, step, n_iter in (("hmc", eps, n_traj), ("mala", args.mala_step_size, n_mala)):
            init, runner = make_blackjax(kind, energy, (C, L, L), step, n_lf, n_iter)
            st["bj_" + kind] = init(jnp.asarray(x0))
            fns[kind + "_blackjax"] = run_jax("bj_" + kind, runner)

    for fn in fns.values():  # compile and warm up (also equilibrates a little)
        fn()
    best = _best_time(fns, args.repeats)
    work = {"hmc_phigen": sites * n_lf * n_traj, "mala_phigen": sites * n_mala,
            "hmc_numpy": sites * n_lf * n_traj_np, "mala_numpy": sites * n_mala_np,
            "hmc_blackjax": sites * n_lf * n_traj, "mala_blackjax": sites * n_mala}
    rate = {name: work[name] / best[name] for name in best}
    accept = {"hmc_phigen": acc["hmc"], "mala_phigen": acc["mala"], "hmc_numpy": acc["hmc_numpy"],
              "mala_numpy": acc["mala_numpy"]}
    if have_blackjax:
        accept["hmc_blackjax"], accept["mala_blackjax"] = acc["bj_hmc"], acc["bj_mala"]
    return rate, accept


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="lattice sizes L (default 32 64 128)")
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("--kappa", type=float, default=0.27)
    ap.add_argument("--lam", type=float, default=0.022)
    ap.add_argument("--step-size", type=float, default=0.1, help="HMC leapfrog step")
    ap.add_argument("--n-leapfrog", type=int, default=10)
    ap.add_argument("--mala-step-size", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke test)")
    ap.add_argument("--json", metavar="PATH", default=None)
    args = ap.parse_args(argv)
    if args.sizes is None:
        args.sizes = [16, 32] if args.quick else [32, 64, 128]
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    args.work = 5e6 if args.quick else 5e7

    try:
        import blackjax  # noqa: F401
        have_blackjax = True
    except ImportError:
        have_blackjax = False

    machine = machine_info()
    bandwidth = measure_bandwidth()
    machine["memory_bandwidth_GBps"] = bandwidth / 1e9
    roofline = bandwidth / BYTES_PER_SITE_LEAPFROG
    print(f"phi^4 hopping form: kappa={args.kappa}, lam={args.lam}; chains={args.chains}; "
          f"HMC step={args.step_size} x {args.n_leapfrog} leapfrog; MALA step={args.mala_step_size}")
    print(f"machine: {machine['processor']}, {machine['cpu_count']} CPUs, jax {jax.__version__} on "
          f"{machine['jax_devices']}, load {machine.get('load_average_1min', float('nan')):.1f}; "
          f"copy bandwidth {bandwidth / 1e9:.1f} GB/s -> roofline {roofline:.3g} site-leapfrog/s "
          f"at {BYTES_PER_SITE_LEAPFROG} B/site-step")
    if not have_blackjax:
        print("blackjax not importable: blackjax ratios skipped")

    ratios, figures = {}, {"kappa": args.kappa, "lam": args.lam, "chains": args.chains,
                           "step_size": args.step_size, "n_leapfrog": args.n_leapfrog,
                           "mala_step_size": args.mala_step_size,
                           "roofline_site_leapfrog_per_s": roofline}
    for L in args.sizes:
        rate, accept = bench_size(L, args, have_blackjax)
        for name, r in rate.items():
            figures[f"{name}_site_updates_per_s_L{L}"] = r
        for name, a in accept.items():
            figures[f"{name}_acceptance_L{L}"] = a
        for kind in ("hmc", "mala"):
            ratios[f"{kind}_phigen_over_numpy_L{L}"] = rate[f"{kind}_phigen"] / rate[f"{kind}_numpy"]
            if have_blackjax:
                ratios[f"{kind}_phigen_over_blackjax_L{L}"] = rate[f"{kind}_phigen"] / rate[f"{kind}_blackjax"]
        ratios[f"hmc_phigen_over_roofline_L{L}"] = rate["hmc_phigen"] / roofline
        line = (f"L={L:4d}: HMC phigen {rate['hmc_phigen']:.3g} site-upd/s "
                f"(acc {accept['hmc_phigen']:.2f}) | x{ratios[f'hmc_phigen_over_numpy_L{L}']:.1f} numpy")
        if have_blackjax:
            line += f" | x{ratios[f'hmc_phigen_over_blackjax_L{L}']:.2f} blackjax"
        line += f" | {ratios[f'hmc_phigen_over_roofline_L{L}']:.2f} of roofline"
        print(line)
        line = (f"        MALA phigen {rate['mala_phigen']:.3g} site-upd/s "
                f"(acc {accept['mala_phigen']:.2f}) | x{ratios[f'mala_phigen_over_numpy_L{L}']:.1f} numpy")
        if have_blackjax:
            line += f" | x{ratios[f'mala_phigen_over_blackjax_L{L}']:.2f} blackjax"
        print(line, flush=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ratios": ratios, "figures": figures, "machine": machine}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
