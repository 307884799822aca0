"""Regenerate the small reference datasets in data/ and print the numbers quoted in data/README.md.

    python scripts/make_reference_data.py [--only turbulence|cosmic-web] [--out data]
    python scripts/make_reference_data.py --only turbulence-128|cosmic-web-128 [--n-simulations 8] [--out data]
    python scripts/make_reference_data.py --only phi4-kappa-32|phi4-kappa-64|cosmic-web-lhs|cosmic-web-lhs-repeats [--out DIR]
    python scripts/make_reference_data.py --annotate-groups [--out data]

Without ``--only`` it makes the two 64² files (a few minutes on a 2-core CPU). The 128² files are
made only when named: ``turbulence-128`` (200 snapshots of 25 runs, ~18 min) and
``cosmic-web-128`` (8 simulations of 128³ particles × 24 maps, ~30 min). Every file is
deterministic in its seed (same phigen/jax versions → same bytes up to the `created` timestamp).
The generators record the group of each sample (dataset `groups`: the run of a turbulence
snapshot, the simulation of a cosmic-web map). The JSON printed at the end holds the numbers quoted
in the cards of data/README.md.

`--annotate-groups` adds `groups` to the shipped files (phi4_64.h5, turbulence_64.h5,
cosmic_web_64.h5) written before phigen recorded them, without regenerating anything: the labels
are reconstructed from each file's stored generator, batch size, config and conditions
(`phigen.generators.reconstruct_groups`, the same rules the generators use) and written with
`phigen.io.annotate_groups` (fields untouched; checksums still pass).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import numpy as np


def _group_layout(path: Path) -> dict:
    from phigen.io import open_fields

    with open_fields(path) as ds:
        g = ds.groups
        sizes = np.unique(g, return_counts=True)[1]
        return {"kind": ds.group_kind, "n_groups": int(sizes.size), "sizes": sorted(set(sizes.tolist()))}


def annotate_groups(out: Path, names=("phi4_64.h5", "turbulence_64.h5", "cosmic_web_64.h5")) -> dict:
    """Add reconstructed ``groups`` to the shipped files (replacing any already there with the same
    labels; a disagreement with stored groups is an error). Returns the group layout of each file."""
    from phigen.generators import reconstruct_groups
    from phigen.io import annotate_groups as annotate
    from phigen.io import open_fields, validate

    report = {}
    for name in names:
        path = out / name
        groups, kind, note = reconstruct_groups(path)
        with open_fields(path) as ds:
            old, old_kind = ds.groups, ds.group_kind
        if old is not None and (old_kind != kind or not np.array_equal(old, groups)):
            raise SystemExit(f"{path}: stored groups ({old_kind}) differ from the reconstruction ({kind})")
        if old is None:
            annotate(path, groups, kind, note=note)
        if not validate(path).ok:
            raise SystemExit(f"{path}: does not validate after annotation")
        report[name] = {**_group_layout(path), "note": note}
    return report


def make_turbulence(out: Path) -> dict:
    from phigen.checks import check_turbulence_file
    from phigen.generators import generate

    path = out / "turbulence_64.h5"
    t0 = time.perf_counter()
    # identical to: phigen generate turbulence --size 64 -n 200 --seed 0 -o data/turbulence_64.h5 --overwrite
    generate("turbulence", path, size=64, n=200, seed=0, overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    res = check_turbulence_file(path)
    with h5py.File(path, "r") as h5:
        params = json.loads(h5.attrs["params"])
        plan = json.loads(h5["diagnostics"].attrs["plan"])
    return {"file": str(path), "seconds": seconds, "seconds_per_map": seconds / 200, "params": params, "plan": plan,
            "generator_budget": res["generator_budget"], "snapshot_budget": res["budget"], "slope": res["slope"],
            "k_range": res["k_range"], "skewness": res["skewness"], "excess_kurtosis": res["excess_kurtosis"],
            "flatness_r1": float(np.mean(res["flatness"][:, 0])), "energy": res["energy"],
            "enstrophy": res["enstrophy"], "bytes": path.stat().st_size, "groups": _group_layout(path)}


# 128² turbulence: the grid default ν(128) = 1.25·10⁻³ keeps k_max·η_ω > 1; the default dt = 0.64/N
# = 0.005 is unstable at 128² (ETDRK2 at Courant ≈ 0.45 blew up within 10 time units), so dt is halved
TURBULENCE_128 = {"size": 128, "n": 200, "seed": 0, "viscosity": 1.25e-3, "dt": 0.0025}
# fit range of the E(k) slope: from just above the forcing k_f = 4 to the dealiasing cutoff (41.7)
TURBULENCE_128_K_RANGE = (5.0, 40.0)


def _power_law_fit(k, spectrum, k_range) -> dict:
    """Slope of the ensemble-mean E(k) over ``k_range`` with the RMS deviation of log E from the fit
    (in decades) and the slopes of the two halves of the range (in log k): a power law has equal
    halves and a small deviation."""
    k = np.asarray(k, dtype=np.float64)
    e = np.asarray(spectrum, dtype=np.float64).mean(axis=0)
    lo, hi = k_range
    sel = (k >= lo) & (k <= hi) & (e > 0)
    lk, le = np.log10(k[sel]), np.log10(e[sel])
    coef = np.polyfit(lk, le, 1)
    mid = 0.5 * (lk.min() + lk.max())
    halves = [float(np.polyfit(lk[m], le[m], 1)[0]) for m in (lk <= mid, lk >= mid)]
    return {"slope": float(coef[0]), "k_range": [float(lo), float(hi)], "decades": float(np.log10(hi / lo)),
            "rms_log10_deviation": float(np.sqrt(np.mean((le - np.polyval(coef, lk)) ** 2))),
            "slope_lower_half": halves[0], "slope_upper_half": halves[1]}


def _vorticity_tails(path) -> dict:
    """Tails of the pooled vorticity PDF: fraction of pixels beyond 3σ and 4σ (Gaussian: 2.7·10⁻³,
    6.3·10⁻⁵) and the largest |ω|/σ."""
    from phigen.io import open_fields

    with open_fields(path) as ds:
        w = np.asarray(ds[:], dtype=np.float64)
    z = np.abs(w - w.mean()) / w.std()
    return {"frac_beyond_3sigma": float(np.mean(z > 3)), "frac_beyond_4sigma": float(np.mean(z > 4)),
            "max_abs_over_sigma": float(z.max())}


def make_turbulence_128(out: Path) -> dict:
    from phigen.checks import check_turbulence_file
    from phigen.generators import generate

    c = TURBULENCE_128
    path = out / "turbulence_128.h5"
    t0 = time.perf_counter()
    # phigen.generate("turbulence", path, size=128, n=200, seed=0, viscosity=1.25e-3, dt=0.0025)
    generate("turbulence", path, size=c["size"], n=c["n"], seed=c["seed"], viscosity=c["viscosity"], dt=c["dt"],
             overwrite=True, progress=True)
    seconds = time.perf_counter() - t0
    res = check_turbulence_file(path, k_range=TURBULENCE_128_K_RANGE)
    with h5py.File(path, "r") as h5:
        params = json.loads(h5.attrs["params"])
        plan = json.loads(h5["diagnostics"].attrs["plan"])
    return {"file": str(path), "seconds": seconds, "seconds_per_map": seconds / c["n"], "params": params,
            "plan": plan, "generator_budget": res["generator_budget"], "snapshot_budget": res["budget"],
            "power_law": _power_law_fit(res["k"], res["energy_spectrum"], TURBULENCE_128_K_RANGE),
            "skewness": res["skewness"], "excess_kurtosis": res["excess_kurtosis"], "tails": _vorticity_tails(path),
            "flatness_r1": float(np.mean(res["flatness"][:, 0])), "energy": res["energy"],
            "enstrophy": res["enstrophy"], "bytes": path.stat().st_size, "groups": _group_layout(path)}


def make_cosmic_web(out: Path) -> dict:
    from phigen.checks import check_cosmic_web_file
    from phigen.fields.cosmic_web import generate_cosmic_web

    path = out / "cosmic_web_64.h5"
    t0 = time.perf_counter()
    # 16 simulations of 64³ particles in a 128 Mpc/h box, Planck15, 3 axes × 4 slabs = 12 maps each
    generate_cosmic_web(path, size=64, n=192, seed=0, box=128.0, n_slabs=4, overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    res = check_cosmic_web_file(path)
    with h5py.File(path, "r") as h5:
        params = json.loads(h5.attrs["params"])
    return {"file": str(path), "seconds": seconds, "seconds_per_map": seconds / 192, "params": params,
            "moments_delta": res["moments_delta"], "moments_log": res["moments_log"],
            "Q_equilateral": np.nanmean(res["Q_equilateral"], axis=0).tolist(),
            "bispectrum_k": res["bispectrum_k"].tolist(), "bytes": path.stat().st_size,
            "groups": _group_layout(path)}


# 128² cosmic web: 128³ particles in a 256 Mpc/h box (2 Mpc/h cells, as in cosmic_web_64.h5),
# 8 slabs of 32 Mpc/h per axis (the slab depth of cosmic_web_64.h5) -> 24 maps per simulation.
# One 128³ simulation takes 3.5–4 min on the shared 2-core CPU, so 8 simulations (not 16) fit the
# ~30 min budget of this script
COSMIC_WEB_128 = {"size": 128, "n_simulations": 8, "seed": 0, "box": 256.0, "n_slabs": 8}
# low-k comparison with linear theory: shells up to k_Nyquist/8 of the maps
COSMIC_WEB_128_K_MAX = np.pi * 128 / 256.0 / 8.0


def projected_linear_comparison(path, k_max: float | None = None) -> dict:
    """Low-k power of the slab maps of a cosmic-web file against linear theory × D(z=0)², projected
    exactly as the maps are: ``δ₂`` is the mean of the 3D contrast over a slab of t mesh cells, so on
    the periodic mesh

        P₂(k⊥) = (1/L) Σ_{k_z = 2πn/L} P_L(√(k⊥² + k_z²)) W(k_z)²,   W = sin(π n t/N) / (t sin(π n/N)),

    (L the box side, N the mesh, n = −N/2…N/2 − 1), averaged over the modes of each integer shell of
    the maps. The measured power is that of δ₂ = exp(y) − 1 (the log floor only touches empty pixels),
    averaged per simulation (groups) and then over simulations; ``ratio_error`` is the spread between
    simulations / √(number of simulations). Returns shells ``k`` [h/Mpc], ``power``, ``linear``,
    ``ratio``, ``ratio_error`` and the inverse-variance ``mean_ratio`` ± ``mean_ratio_error`` over
    k ≤ ``k_max`` (default k_Nyquist/8)."""
    from phigen.fields.cosmic_web import Cosmology, linear_power
    from phigen.io import open_fields
    from phigen.stats import power_spectrum

    with open_fields(path) as ds:
        y = np.asarray(ds[:], dtype=np.float64)
        groups = ds.groups
    with h5py.File(path, "r") as h5:
        params = json.loads(h5.attrs["params"])
    box, n_slabs = float(params["box"]), int(params["n_slabs"])
    cosmo = Cosmology(params["omega_m"], params["sigma8"], params["h"], params["n_s"])
    n = y.shape[-1]
    t = n // n_slabs
    k_max = np.pi * n / box / 8.0 if k_max is None else float(k_max)
    ps = power_spectrum(np.expm1(y).astype(np.float32), box_size=box)
    shells = np.flatnonzero(np.asarray(ps.k) <= k_max + 1e-9)
    labels = np.unique(groups)
    per_sim = np.stack([np.asarray(ps.power)[groups == g][:, shells].mean(axis=0) for g in labels])
    power = per_sim.mean(axis=0)
    err = per_sim.std(axis=0, ddof=1) / np.sqrt(len(labels))
    # theory on the exact modes of each shell
    kf = 2.0 * np.pi / box
    m = np.fft.fftfreq(n, 1.0 / n)
    mx, my = np.meshgrid(m, m, indexing="ij")
    kperp = kf * np.sqrt(mx**2 + my**2)
    nz = np.fft.fftfreq(n, 1.0 / n)
    with np.errstate(invalid="ignore", divide="ignore"):
        win = np.where(nz == 0, 1.0, np.sin(np.pi * nz * t / n) / (t * np.sin(np.pi * nz / n)))
    shell_index = np.rint(kperp / kf).astype(int)
    # distinct |k⊥| of each shell's modes with their multiplicities; one P_L call for all of them
    per_shell = []
    for s_ in shells:
        sel = (shell_index == int(round(np.asarray(ps.k)[s_] / kf))) & (kperp > 0)
        per_shell.append(np.unique(kperp[sel], return_counts=True))
    kp_all = np.concatenate([kp for kp, _ in per_shell])
    k3 = np.sqrt(kp_all[:, None] ** 2 + (kf * nz[None, :]) ** 2)
    p2_all = (linear_power(k3.ravel(), cosmo).reshape(k3.shape) * win[None, :] ** 2).sum(axis=1) / box
    linear, start = [], 0
    for kp, counts in per_shell:
        p2 = p2_all[start:start + kp.size]
        start += kp.size
        linear.append(float(np.sum(counts * p2) / counts.sum()))
    linear = np.asarray(linear)
    ratio, rerr = power / linear, err / linear
    w = 1.0 / rerr**2
    return {"k": np.asarray(ps.k)[shells].tolist(), "power": power.tolist(), "linear": linear.tolist(),
            "ratio": ratio.tolist(), "ratio_error": rerr.tolist(), "k_max": k_max,
            "mean_ratio": float(np.sum(w * ratio) / w.sum()), "mean_ratio_error": float(1.0 / np.sqrt(w.sum())),
            "n_simulations": int(len(labels))}


def make_cosmic_web_128(out: Path, n_simulations: int | None = None) -> dict:
    from phigen.checks import check_cosmic_web_file
    from phigen.fields.cosmic_web import generate_cosmic_web

    c = COSMIC_WEB_128
    n_sims = c["n_simulations"] if n_simulations is None else int(n_simulations)
    n = 3 * c["n_slabs"] * n_sims
    path = out / "cosmic_web_128.h5"
    t0 = time.perf_counter()
    # generate_cosmic_web(path, size=128, n=24·n_sims, seed=0, box=256.0, n_slabs=8)
    generate_cosmic_web(path, size=c["size"], n=n, seed=c["seed"], box=c["box"], n_slabs=c["n_slabs"],
                        overwrite=True, progress=True)
    seconds = time.perf_counter() - t0
    res = check_cosmic_web_file(path)
    with h5py.File(path, "r") as h5:
        params = json.loads(h5.attrs["params"])
    centers, dens = res["pdf"]
    return {"file": str(path), "seconds": seconds, "seconds_per_simulation": seconds / n_sims,
            "seconds_per_map": seconds / n, "params": params,
            "moments_delta": res["moments_delta"], "moments_log": res["moments_log"],
            "log_pdf_range": [float(np.min(centers[np.asarray(dens) > 0])), float(np.max(centers[np.asarray(dens) > 0]))],
            "Q_equilateral": np.nanmean(res["Q_equilateral"], axis=0).tolist(),
            "bispectrum_k": res["bispectrum_k"].tolist(),
            "peaks_per_map": float(res["peaks"][1].sum(axis=1).mean()),
            "linear_theory": projected_linear_comparison(path), "bytes": path.stat().st_size,
            "groups": _group_layout(path)}


# Conditional training sets (κ-conditioned φ⁴, cosmology-conditioned cosmic web): made only when
# named, written to --out (not shipped in data/: 6–23 MB each), each with the numbers of its card.
PHI4_KAPPA_GRID = {"kappa": "0.25:0.40:11", "lam": 1.0, "per_kappa": 128, "n_chains": 64, "seed": 0}
# κ added to the grid at L = 64 beside κ_c: the transition is half as wide in κ as at L = 32 (width ∝ L^(−1/ν),
# ν = 1), so half the spacing there keeps a conditional model's knots as close, relative to it (docs/rg.md)
PHI4_KAPPA_GRID_EXTRA = {64: (0.3325, 0.3475)}
COSMIC_WEB_LHS = {"size": 64, "n_simulations": 32, "seed": 0, "box": 128.0, "n_slabs": 4,
                  "omega_m_range": (0.2, 0.4), "sigma8_range": (0.6, 1.0)}


def phi4_kappa_grid(size: int) -> list[float]:
    """The κ of the L = ``size`` grid file: ``PHI4_KAPPA_GRID``'s 11 and the size's extra ones, increasing."""
    from phigen.fields.kind import parse_grid

    return sorted(set(parse_grid(PHI4_KAPPA_GRID["kappa"], "kappa")) | set(PHI4_KAPPA_GRID_EXTRA.get(size, ())))


def make_phi4_kappa_grid(out: Path, size: int) -> dict:
    """φ⁴ over 11 κ in [0.25, 0.40] at λ = 1 (κ_c = 0.3403), and at L = 64 two more beside κ_c
    (``PHI4_KAPPA_GRID_EXTRA``): 128 configurations per κ from 64 chains, κ in the conditions. The card:
    per κ, the thinning, τ_int and U₄, χ, ⟨|m|⟩ with jackknife errors."""
    from phigen.generators import generate
    from phigen.io import open_fields
    from phigen.stats import phi4_observables

    c = PHI4_KAPPA_GRID
    path = out / f"phi4_kappa_grid_{size}.h5"
    kappas = phi4_kappa_grid(size)
    t0 = time.perf_counter()
    # phigen generate phi4 --size 32 --kappa 0.25:0.40:11 --lam 1 -n 1408 --n-chains 64 --seed 0
    # (L = 64: --kappa 0.25,0.265,…,0.325,0.3325,0.34,0.3475,0.355,…,0.40 -n 1664)
    generate("phi4", path, size=size, n=len(kappas) * c["per_kappa"], seed=c["seed"], kappa=kappas, lam=c["lam"],
             n_chains=c["n_chains"], overwrite=True, progress=True)
    seconds = time.perf_counter() - t0
    with open_fields(path) as ds:
        x, kappas, diag = ds[:], ds.params["kappa"], ds.diagnostics()["sampling_per_kappa"]
    rows = []
    for i, k in enumerate(kappas):  # κ-major blocks of per_kappa configurations
        obs = phi4_observables(x[i * c["per_kappa"]:(i + 1) * c["per_kappa"]], k, c["lam"], n_bins=32)
        d = diag[f"{k:.10g}"]
        rows.append({"kappa": k, "U4": [float(obs["binder"].value), float(obs["binder"].error)],
                     "chi": [float(obs["chi"].value), float(obs["chi"].error)],
                     "abs_m": [float(obs["abs_m"].value), float(obs["abs_m"].error)],
                     "thin": int(d["thin"]), "tau_int_abs_m": float(d["tau_int_abs_m"]),
                     "acceptance": float(d["acceptance"])})
    return {"file": str(path), "seconds": seconds, "bytes": path.stat().st_size, "per_kappa": rows,
            "groups": _group_layout(path)}


def make_cosmic_web_lhs(out: Path) -> dict:
    """64² cosmic-web maps of 32 simulations over a Latin hypercube in (Ω_m, σ₈), 12 maps each."""
    from phigen.fields.cosmic_web import generate_cosmic_web
    from phigen.io import open_fields

    c = COSMIC_WEB_LHS
    path = out / "cosmic_web_lhs_64.h5"
    per = 3 * c["n_slabs"]
    t0 = time.perf_counter()
    generate_cosmic_web(path, size=c["size"], n=c["n_simulations"] * per, seed=c["seed"], box=c["box"],
                        n_slabs=c["n_slabs"], omega_m_range=c["omega_m_range"], sigma8_range=c["sigma8_range"],
                        overwrite=True, progress=True)
    seconds = time.perf_counter() - t0
    with open_fields(path) as ds:
        cond, names = ds.conditions(), ds.condition_names
    om, s8 = cond[::per, names.index("omega_m")], cond[::per, names.index("sigma8")]
    return {"file": str(path), "seconds": seconds, "seconds_per_simulation": seconds / c["n_simulations"],
            "bytes": path.stat().st_size, "omega_m": [float(om.min()), float(om.max())],
            "sigma8": [float(s8.min()), float(s8.max())], "condition_names": list(names),
            "groups": _group_layout(path)}


COSMIC_WEB_LHS_REPEATS = {"repeats": 4, "every": 4, "seed": 1000}


def make_cosmic_web_lhs_repeats(out: Path) -> dict:
    """More simulations at the cosmologies the conditional benchmark holds out (every 4th of the Latin
    hypercube): 4 new simulations (new seeds) per cosmology, 12 maps each, so a held-out cosmology's
    truth is 5 simulations and its scatter can be measured between simulations, not from one."""
    import tempfile

    from phigen.fields.cosmic_web import Cosmology, generate_cosmic_web, simulation_table
    from phigen.io import open_fields, write_fields

    c, r = COSMIC_WEB_LHS, COSMIC_WEB_LHS_REPEATS
    path = out / "cosmic_web_lhs_repeats_64.h5"
    table = simulation_table(c["seed"], c["n_simulations"], Cosmology(), omega_m_range=c["omega_m_range"],
                             sigma8_range=c["sigma8_range"])
    per = 3 * c["n_slabs"]
    xs, conds, groups = [], [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, sim in enumerate(range(0, c["n_simulations"], r["every"])):
            om, s8 = table[sim, 0], table[sim, 1]
            part = Path(tmp) / f"cosmology_{sim}.h5"
            # phigen generate cosmic-web --size 64 --box 128 --omega-m OM --sigma8 S8 -n 48 --seed 1000+i
            generate_cosmic_web(part, size=c["size"], n=per * r["repeats"], seed=r["seed"] + i, box=c["box"],
                                n_slabs=c["n_slabs"], omega_m=om, sigma8=s8, overwrite=True, progress=True)
            with open_fields(part) as ds:
                x, cond, names = ds[:], np.asarray(ds.conditions(), np.float64), list(ds.condition_names)
                params = dict(ds.params)
            sim_col = names.index("simulation")
            # simulations numbered after the hypercube's: 32 + 4 i + repeat
            cond[:, sim_col] = c["n_simulations"] + r["repeats"] * i + cond[:, sim_col]
            xs.append(x), conds.append(cond), groups.append(cond[:, sim_col].astype(np.int64))
    seconds = time.perf_counter() - t0
    params.update(omega_m="per simulation", sigma8="per simulation")
    write_fields(path, np.concatenate(xs), field="cosmic-web", generator="scripts/make_reference_data.py",
                 seed=r["seed"], params=params, conditions=np.concatenate(conds).astype(np.float32),
                 condition_names=names, groups=np.concatenate(groups), group_kind="simulation", overwrite=True,
                 config={"kind": "cosmic-web", "repeats_of": "cosmic_web_lhs_64.h5 simulations "
                         f"0, {r['every']}, …", "repeats": r["repeats"], "maps_per_simulation": per})
    return {"file": str(path), "seconds": seconds, "bytes": path.stat().st_size,
            "cosmologies": table[::r["every"], :2].round(4).tolist(), "groups": _group_layout(path)}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", choices=["turbulence", "cosmic-web", "turbulence-128", "cosmic-web-128", "phi4-kappa-32",
                                      "phi4-kappa-64", "cosmic-web-lhs", "cosmic-web-lhs-repeats"],
                   help="one dataset (default: the two 64² sets; the 128² sets only when named)")
    p.add_argument("--n-simulations", type=int, default=None,
                   help="cosmic-web-128 only: number of simulations (default %d)" % COSMIC_WEB_128["n_simulations"])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "data"))
    p.add_argument("--annotate-groups", action="store_true",
                   help="only add the reconstructed groups to the existing files (no generation)")
    args = p.parse_args()
    out = Path(args.out)
    if args.annotate_groups:
        print(json.dumps(annotate_groups(out), indent=2))
        return
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    if args.only in (None, "turbulence"):
        report["turbulence"] = make_turbulence(out)
    if args.only in (None, "cosmic-web"):
        report["cosmic-web"] = make_cosmic_web(out)
    if args.only == "turbulence-128":
        report["turbulence-128"] = make_turbulence_128(out)
    if args.only == "cosmic-web-128":
        report["cosmic-web-128"] = make_cosmic_web_128(out, args.n_simulations)
    if args.only in ("phi4-kappa-32", "phi4-kappa-64"):
        report[args.only] = make_phi4_kappa_grid(out, int(args.only.rsplit("-", 1)[1]))
    if args.only == "cosmic-web-lhs":
        report["cosmic-web-lhs"] = make_cosmic_web_lhs(out)
    if args.only == "cosmic-web-lhs-repeats":
        report["cosmic-web-lhs-repeats"] = make_cosmic_web_lhs_repeats(out)
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
