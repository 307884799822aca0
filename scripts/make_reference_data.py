"""Regenerate the small reference datasets in data/ and print the numbers quoted in data/README.md.

    python scripts/make_reference_data.py [--only turbulence|cosmic-web] [--out data]
    python scripts/make_reference_data.py --annotate-groups [--out data]

Both files are deterministic in their seed (same phigen/jax versions → same bytes up to the
`created` timestamp). Takes a few minutes on a 2-core CPU. The generators record the group of each
sample (dataset `groups`: the run of a turbulence snapshot, the simulation of a cosmic-web map).

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


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", choices=["turbulence", "cosmic-web"])
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
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
