"""Chains sharded over devices give the same samples as on one device.

Several CPU devices only exist if ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` is set
before jax is imported, so the multi-device half runs in a subprocess and writes its results to an
``.npz`` that this (single-device) process compares with its own run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phigen.errors import ParameterError
from phigen.samplers.sharding import chain_mesh, shard_chains

N_CHAINS, L, N_STEPS, STEP_SIZE, SEED = 8, 8, 60, 0.08, 4

# Shared by both processes: a real sampler (MALA on φ⁴ near criticality) under the runner.
SETUP = f"""
import jax, jax.numpy as jnp, numpy as np
from phigen.energies import Phi4
from phigen.samplers import make_kernel
from phigen.samplers.runner import RunConfig, run_chain
kernel = make_kernel("mala", Phi4(0.2, 0.5), step_size={STEP_SIZE})
x0 = jax.random.normal(jax.random.key(0), ({N_CHAINS}, {L}, {L}), jnp.float32)
def observe(s):
    return {{"m": jnp.mean(s.position, axis=(-2, -1)), "phi": s.position}}
def cfg(n_steps, path=None):
    return RunConfig(n_steps=n_steps, thin=3, burn_in=6, chunk_size=16, progress=False,
                     checkpoint_path=path)
"""

CHILD = SETUP + """
import sys, json, warnings
from phigen.errors import ParameterError
from phigen.samplers.sharding import shard_chains, chain_mesh
out, ck = sys.argv[1], sys.argv[2]
assert jax.device_count() == 4, jax.devices()
res = run_chain(jax.random.key(SEED), kernel, x0, cfg(N_STEPS), observables=observe)         # shard=None: auto → sharded
pos = res.state.position
report = {
    "named_chains": isinstance(pos.sharding, jax.sharding.NamedSharding)
                    and pos.sharding.spec == jax.sharding.PartitionSpec("chains"),
    "n_devices": len(pos.sharding.device_set),
    "shard_shapes": sorted({tuple(s.data.shape) for s in pos.addressable_shards}),
    "shard_devices": len({s.device for s in pos.addressable_shards}),
}
one = run_chain(jax.random.key(SEED), kernel, x0, cfg(N_STEPS), shard=False, observables=observe)
report["unsharded_devices"] = len(one.state.position.sharding.device_set)
try:
    shard_chains(jnp.zeros((6, 3)))
except ParameterError as e:
    report["error"] = str(e)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    six = run_chain(jax.random.key(SEED), kernel, x0[:6], cfg(10))      # auto mode falls back
    report["fallback_warning"] = " ".join(str(x.message) for x in w)
    report["fallback_devices"] = len(six.state.position.sharding.device_set)
try:
    run_chain(jax.random.key(SEED), kernel, x0[:6], cfg(10), shard=True)
except ParameterError as e:
    report["explicit_error"] = str(e)
run_chain(jax.random.key(SEED), kernel, x0, cfg(N_STEPS // 2, ck), observables=observe)  # checkpoint for the parent
np.savez(out, position=np.asarray(pos), m=res.trace["m"], phi=res.trace["phi"],
         position_1dev=np.asarray(one.state.position), acc=res.info_summary.mean_acceptance)
print("REPORT" + json.dumps(report))
""".replace("SEED", str(SEED)).replace("N_STEPS", str(N_STEPS))


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory, host_devices):
    tmp = tmp_path_factory.mktemp("shard")
    out, ck = tmp / "four.npz", tmp / "ck.h5"
    return host_devices(CHILD, 4, out, ck), dict(np.load(out)), ck


def _one_device_run(n_steps=N_STEPS, path=None):
    ns: dict = {}
    exec(SETUP, ns)
    return ns["run_chain"](jax.random.key(SEED), ns["kernel"], ns["x0"], ns["cfg"](n_steps, path),
                           observables=ns["observe"])


def test_threefry_is_partitionable_by_default():
    # the device-count independence of the samples rests on this jax default (never set by phigen)
    assert jax.config.jax_threefry_partitionable


def test_state_is_really_sharded_over_four_devices(four_devices):
    report, _, _ = four_devices
    assert report["named_chains"]  # NamedSharding(mesh, PartitionSpec("chains"))
    assert report["n_devices"] == 4 and report["shard_devices"] == 4
    assert report["shard_shapes"] == [[N_CHAINS // 4, L, L]]
    assert report["unsharded_devices"] == 1


def test_four_devices_give_bitwise_the_samples_of_one_device(four_devices):
    _, four, _ = four_devices
    one = _one_device_run()
    # bitwise: chains never interact, and partitionable threefry draws the same bits per chain
    np.testing.assert_array_equal(four["position"], np.asarray(one.state.position))
    np.testing.assert_array_equal(four["phi"], one.trace["phi"])
    np.testing.assert_array_equal(four["m"], one.trace["m"])
    np.testing.assert_array_equal(four["position_1dev"], four["position"])
    assert one.trace["phi"].shape == ((N_STEPS - 6) // 3, N_CHAINS, L, L)
    np.testing.assert_allclose(four["acc"], one.info_summary.mean_acceptance, rtol=1e-6)
    assert 0.3 < one.info_summary.mean_acceptance.mean() < 1.0


def test_a_checkpoint_written_on_four_devices_resumes_on_one(four_devices, tmp_path):
    _, four, ck = four_devices
    path = tmp_path / "ck.h5"
    path.write_bytes(ck.read_bytes())
    resumed = _one_device_run(N_STEPS, path)
    np.testing.assert_array_equal(np.asarray(resumed.state.position), four["position"])
    np.testing.assert_array_equal(resumed.trace["phi"], four["phi"])


def test_indivisible_chain_counts_are_explained(four_devices):
    report, _, _ = four_devices
    assert "multiple of 4, e.g. 4 or 8" in report["error"]
    assert "multiple of 4" in report["explicit_error"]
    assert "6 chains cannot be split over 4 devices" in report["fallback_warning"]
    assert report["fallback_devices"] == 1


def test_single_device_mesh_and_sharding_are_no_ops():
    mesh = chain_mesh()
    assert mesh.axis_names == ("chains",) and mesh.devices.size == jax.device_count()
    tree = {"x": jnp.ones((5, 2)), "s": jnp.float32(1.0)}
    placed = shard_chains(tree, mesh)
    np.testing.assert_array_equal(placed["x"], tree["x"])
    assert placed["s"].shape == ()
    with pytest.raises(ParameterError, match="at least one device"):
        chain_mesh(devices=[])
