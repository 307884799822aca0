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

On a machine with fewer cores than processes (this project's has 2) the ratios measure overheads,
not speed-ups: N processes or N host devices share the same cores. Report them as such.

Usage: ``python benchmarks/scale_out.py [--processes 1 2 4] [--size 128] [-n 4096] [--steps 30]
[--quick] [--json PATH]``
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


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("-n", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="training steps timed per device count")
    ap.add_argument("--train-size", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="64², 1024 fields, 10 training steps on 16²")
    ap.add_argument("--json", metavar="PATH", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.n, args.steps, args.train_size, args.train_batch = 64, 1024, 10, 16, 16
    return args


def _generate(out: Path, args, processes: int) -> float:
    cmd = [sys.executable, "-m", "phigen.cli", "generate", "gaussian", "--size", str(args.size), "-n", str(args.n),
           "--batch-size", str(args.batch_size), "--seed", "7", "-o", str(out), "--quiet"]
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


def main(argv=None):
    args = _parse(argv)
    import numpy as np

    ratios, figures = {}, {"generation": {}, "training": {}}
    with tempfile.TemporaryDirectory(prefix="phigen-scale-out-") as tmp:
        tmp = Path(tmp)
        base = None
        for p in args.processes:
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
    for d in args.processes:
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
