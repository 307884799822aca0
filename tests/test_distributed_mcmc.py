"""MCMC chains split over the processes of a jax.distributed group (docs/scale_out.md): the same
samples, step size, trace and diagnostics as one process, bit for bit; per-process checkpoints that
resume at the latest step every process holds; φ⁴ at one κ spread over ``--processes N``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import jax
import numpy as np
import pytest

import phigen
import phigen.io as pio
from phigen import errors as E
from phigen.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, free_port
from phigen.samplers import global_chain_mesh, process_chains, spans_processes
from phigen.samplers.diagnostics import integrated_autocorrelation_time, rhat
from phigen.samplers.runner import process_checkpoint_path

C, L, HALF, FULL, MARK = 16, 8, 20, 40, 1000.0  # 16 chains: a plain jnp.mean of 16 acceptances
# already sums in another order on 2 devices than on one (8 did not show it)

# Run by the parent (one process) and by each process of the group: adaptation + HMC/cluster chains.
SETUP = f"""
import jax, jax.numpy as jnp, numpy as np
from phigen.energies import Phi4
from phigen.samplers import adapt_step_size, make_hmc_cluster_kernel, shard_chains
from phigen.samplers.runner import RunConfig, run_chain
energy = Phi4(0.22, 0.5)
def observe(s):
    return {{"m": jnp.mean(s.position, axis=(-2, -1)), "phi": s.position}}
def cfg(n_steps, path=None):
    return RunConfig(n_steps=n_steps, thin=2, burn_in=4, chunk_size=10, progress=False, checkpoint_path=path)
def chains(mesh=None):
    x0 = np.asarray(jax.random.normal(jax.random.key(0), ({C}, {L}, {L})))
    x0 = x0 if mesh is None else shard_chains(x0, mesh)
    state, eps, info = adapt_step_size(jax.random.key(1), "hmc", energy, x0, n_warmup=20)
    kernel = make_hmc_cluster_kernel(energy, step_size=float(eps), n_leapfrog=int(info.final_n_leapfrog))
    return kernel, kernel.init(state.position), float(eps)
"""

CHILD = SETUP + f"""
import json, os, sys, h5py
import phigen.distributed as D
D.initialize()
from phigen.samplers import global_chain_mesh, process_chains
from phigen.samplers.runner import process_checkpoint_path
out, ck = sys.argv[1], sys.argv[2]
k, n = D.process_info()
mesh = global_chain_mesh()
kernel, state, eps = chains(mesh)
run_chain(jax.random.key(2), kernel, state, cfg({HALF}, ck), observables=observe, mesh=mesh)
mine = process_checkpoint_path(ck, k, n)
if k == 1:  # killed between its last two saves: its latest is lost, the one before is what it has
    os.replace(mine + ".prev", mine)
    with h5py.File(mine, "r+") as f:  # a marker: the resumed sums must come from this very file
        f["accumulators/acceptance_sum"][...] += {MARK}
D.barrier("sabotaged")
res = run_chain(jax.random.key(2), kernel, state, cfg({FULL}, ck), observables=observe, mesh=mesh)
pos = res.state.position
rep = dict(process=k, count=n, eps=eps, chains=list(process_chains({C}, mesh)), n_done=res.n_done,
           devices=len(pos.sharding.device_set), local=[list(s.data.shape) for s in pos.addressable_shards])
if k == 0:
    np.savez(out, m=res.trace["m"], phi=res.trace["phi"], acc=res.info_summary.mean_acceptance)
D.barrier("saved")
if k == 1:  # a process that lost both its saves: no step all processes hold, every process refuses
    os.remove(mine)
    os.remove(mine + ".prev")
D.barrier("lost")
try:
    run_chain(jax.random.key(2), kernel, state, cfg({FULL} + 10, ck), observables=observe, mesh=mesh)
except Exception as e:
    rep["lost"] = str(e)
print("REPORT" + json.dumps(rep), flush=True)
"""


def _group(code: str, n: int, *argv, timeout: float = 300) -> list[dict]:
    """Run ``code`` in ``n`` processes joined by jax.distributed on 127.0.0.1; their REPORT lines."""
    coordinator = f"127.0.0.1:{free_port()}"
    procs = []
    for k in range(n):
        env = dict(os.environ, JAX_PLATFORMS="cpu", **{ENV_COORDINATOR: coordinator, ENV_NUM_PROCESSES: str(n),
                                                       ENV_PROCESS_ID: str(k)})
        cache = jax.config.jax_compilation_cache_dir
        if cache:
            env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, argv)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err[-4000:]
            outs.append(json.loads(next(ln for ln in out.splitlines() if ln.startswith("REPORT"))[len("REPORT"):]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def test_global_chain_mesh_in_one_process():
    mesh = global_chain_mesh()
    assert mesh.axis_names == ("chains",) and mesh.devices.size == jax.device_count()
    assert not spans_processes(mesh) and not spans_processes(None)
    assert process_chains(C, mesh) == (0, C)
    assert process_checkpoint_path("run/ck.h5", 1, 4) == "run/ck.process-00001-of-00004.h5"


def test_two_processes_give_the_one_process_chains_and_diagnostics(tmp_path):
    """Chains split over 2 processes (8 each): step size, trace, τ_int and R̂ bitwise those of one
    process; process 1 resumed from the save before its last (one save behind process 0), and both
    restarted at that step: no step run twice or skipped. A process with no save at all: every
    process refuses to resume, naming each one's steps."""
    reports = _group(CHILD, 2, tmp_path / "two.npz", tmp_path / "ck.h5")
    ns: dict = {}
    exec(SETUP, ns)
    kernel, state, eps = ns["chains"]()
    one = ns["run_chain"](jax.random.key(2), kernel, state, ns["cfg"](FULL), observables=ns["observe"])
    two = np.load(tmp_path / "two.npz")

    for k, rep in enumerate(reports):
        assert rep["process"] == k and rep["count"] == 2 and rep["n_done"] == FULL
        assert rep["eps"] == eps  # dual averaging on the mean over all chains, summed in one-device order
        assert rep["chains"] == [8 * k, 8 * k + 8]
        assert rep["devices"] == 2 and rep["local"] == [[C // 2, L, L]]  # each process holds its own block
    np.testing.assert_array_equal(two["phi"], one.trace["phi"])
    np.testing.assert_array_equal(two["m"], one.trace["m"])
    assert two["m"].shape == ((FULL - 4) // 2, C)
    m1, m2 = one.trace["m"].T, two["m"].T
    assert integrated_autocorrelation_time(m2) == integrated_autocorrelation_time(m1)
    assert rhat(m2) == rhat(m1)
    # chains 8–15 carry the marker of process 1's checkpoint at step 10: it resumed from that file, and
    # the sums of the 30 steps after it were added once (chains 0–7: no marker, the same sums)
    np.testing.assert_array_equal(two["acc"][:8], one.info_summary.mean_acceptance[:8])
    np.testing.assert_allclose(two["acc"][8:], one.info_summary.mean_acceptance[8:] + MARK / FULL, rtol=1e-12)
    for rep in reports:
        assert "no step in common (process 0: [30, 40]; process 1: none)" in rep["lost"], rep["lost"]
    assert sorted(p.name for p in tmp_path.glob("ck.*")) == [
        "ck.process-00000-of-00002.h5", "ck.process-00000-of-00002.h5.prev"]


PHI4 = ["--size", 8, "--seed", 1, "--kappa", 0.25, "--lam", 1.0, "--n-chains", 16, "--thin", 20, "--quiet"]


def _cli(*argv, timeout=300):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "phigen.cli", *map(str, argv)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _same(a, b):
    with pio.open_fields(a) as x, pio.open_fields(b) as y:
        assert np.array_equal(x[:], y[:]) and np.array_equal(x.groups, y.groups)
        assert x.attrs["identity"] == y.attrs["identity"]
        assert x.diagnostics()["sampling"] == y.diagnostics()["sampling"]
        return len(x), x.groups


@pytest.mark.slow
def test_phi4_at_one_kappa_over_two_processes_killed_and_resumed(tmp_path):
    """`phigen generate phi4 --processes 2` at one κ runs the 16 chains 8 + 8 in two processes (before:
    one process, the other idle) and writes the one-process set; all processes SIGKILLed mid-way,
    then --resume (each process from its own chain checkpoint): the same set, no duplicate, no gap."""
    n = 480
    phigen.generate("phi4", tmp_path / "one.h5", size=8, n=n, seed=1, kappa=0.25, lam=1.0, n_chains=16, thin=20,
                    progress=False)
    proc = _cli("generate", "phi4", "-n", n, *PHI4, "-o", tmp_path / "two.h5", "--processes", 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same(tmp_path / "one.h5", tmp_path / "two.h5")
    assert not list(tmp_path.glob("*.chains*"))  # every process removed its chain checkpoint

    launch = subprocess.Popen([sys.executable, "-m", "phigen.cli", "generate", "phi4", "-n", str(n),
                               *map(str, PHI4), "-o", str(tmp_path / "k.h5"), "--processes", "2"],
                              env=dict(os.environ, JAX_PLATFORMS="cpu"), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard = tmp_path / "k.shard-00000-of-00001.h5"
    # the shard is locked while written; process 1's chain checkpoint (replaced atomically) says how far it is
    side = tmp_path / "k.shard-00000-of-00001.h5.process-00001-of-00002.chains"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with h5py.File(side, "r") as h5:
                if max((int(k.split("_")[1]) for k in h5 if k.startswith("after_")), default=-1) >= 6:
                    break
        except OSError:
            pass
        time.sleep(0.05)
    os.killpg(launch.pid, signal.SIGKILL)  # the launcher and both processes
    launch.wait()
    for _ in range(100):  # the killed workers release the shard's file lock as they go
        try:
            with pio.open_fields(shard, allow_incomplete=True) as s:
                written = len(s)
            break
        except E.TruncatedFileError:
            time.sleep(0.1)
    assert 40 <= written < n
    sidecars = sorted(p.name for p in tmp_path.glob("k.*.chains"))
    assert sidecars == [f"k.shard-00000-of-00001.h5.process-0000{k}-of-00002.chains" for k in range(2)]
    proc = _cli("generate", "phi4", "-n", n, *PHI4, "-o", tmp_path / "k.h5", "--processes", 2, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, groups = _same(tmp_path / "one.h5", tmp_path / "k.h5")
    assert count == n and groups.tolist() == [i % 16 for i in range(n)]
