"""Scale out (docs/scale_out.md): sharded generation joined by a master file, read transparently,
merged, resumed per shard; several processes on the loopback address; data-parallel training."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import phigen
import phigen.io as pio
from phigen import errors as E
from phigen.cli import main
from phigen.generators import generate_share, shard_plan

GAUSS = dict(size=16, n=40, seed=3, batch_size=8, slope=2.0)
PHI4 = dict(size=8, n=8, seed=1, kappa=(0.2, 0.3), lam=1.0, n_chains=2, sampler="hmc", thin=2)


def _same_set(a, b):
    """Fields, groups, conditions and the run identity of two files are identical (bit for bit)."""
    with pio.open_fields(a) as x, pio.open_fields(b) as y:
        assert x.shape == y.shape
        assert np.array_equal(x[:], y[:])
        assert (x.groups is None and y.groups is None) or np.array_equal(x.groups, y.groups)
        cx, cy = x.conditions(), y.conditions()
        assert (cx is None and cy is None) or np.array_equal(cx, cy)
        assert x.attrs["identity"] == y.attrs["identity"]
        assert x.params == y.params and x.group_kind == y.group_kind


def _shares(kind, path, count, **kw):
    for k in reversed(range(count)):  # process 0 last: it writes the master once every shard is there
        generate_share(kind, path, process_index=k, process_count=count, progress=False, **kw)


@pytest.fixture(scope="module")
def gauss_sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("scale_out")
    phigen.generate("gaussian", d / "one.h5", progress=False, **GAUSS)
    _shares("gaussian", d / "three.h5", 3, **GAUSS)
    return d


def test_shard_plan_contiguous_whole_batches():
    assert shard_plan("gaussian", n=40, processes=3, batch_size=8) == [(0, 8), (8, 24), (24, 40)]
    # φ⁴: the batches of one κ advance the same chains, so a κ is never split; a single κ is one unit
    assert shard_plan("phi4", n=8, processes=4, kappa=(0.2, 0.3), lam=1.0, n_chains=2) == [(0, 4), (4, 8)]
    assert shard_plan("phi4", n=8, processes=4, kappa=0.2, lam=1.0, n_chains=2) == [(0, 8)]


def test_sharded_gaussian_is_the_one_process_set(gauss_sets):
    d = gauss_sets
    _same_set(d / "one.h5", d / "three.h5")
    with pio.open_fields(d / "three.h5") as ds:
        assert [p.name for p in ds.shards] == [f"three.shard-0000{k}-of-00003.h5" for k in range(3)]
        assert ds.complete and ds.groups.tolist() == list(range(40))
    assert pio.validate(d / "three.h5").ok
    assert pio.info(d / "three.h5")["shards"] == [f"three.shard-0000{k}-of-00003.h5" for k in range(3)]
    # a shard is an ordinary file holding its part
    with pio.open_fields(d / "three.shard-00001-of-00003.h5") as s, pio.open_fields(d / "one.h5") as one:
        assert s.attrs["shard_offset"] == 8 and np.array_equal(s[:], one[8:24])
    # the master moves with its shards (sources are named relative to it)
    moved = d / "moved"
    moved.mkdir()
    for p in d.glob("three*"):
        shutil.copy2(p, moved / p.name)
    _same_set(d / "one.h5", moved / "three.h5")


def test_merge_makes_a_self_contained_copy(gauss_sets, tmp_path):
    d = gauss_sets
    pio.merge_shards(d / "three.h5", tmp_path / "m.h5", progress=False)
    shards = sorted(d.glob("three.shard-*.h5"))
    assert main(["merge", *map(str, shards[::-1]), "-o", str(tmp_path / "m2.h5"), "--quiet"]) == 0
    for m in ("m.h5", "m2.h5"):
        _same_set(d / "one.h5", tmp_path / m)
        with pio.open_fields(tmp_path / m) as ds:
            assert ds.shards is None
    with pytest.raises(E.MissingShardError, match="three.shard-00001-of-00003.h5"):
        pio.merge_shards([shards[0], shards[2]], tmp_path / "m3.h5")
    with pytest.raises(E.FileExistsError_):
        pio.merge_shards(shards, tmp_path / "m.h5")
    assert not (tmp_path / "m3.h5").exists()


def test_missing_or_corrupt_shard_named_in_one_line(gauss_sets, tmp_path, capsys):
    for p in gauss_sets.glob("three*"):
        shutil.copy2(p, tmp_path / p.name)
    master, victim = tmp_path / "three.h5", tmp_path / "three.shard-00002-of-00003.h5"
    victim.rename(tmp_path / "elsewhere.h5")
    for verb in ("info", "validate"):
        assert main([verb, str(master)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "three.shard-00002-of-00003.h5 is missing" in err, err
    with pytest.raises(E.MissingShardError, match="samples 24–39"):
        pio.open_fields(master)
    (tmp_path / "elsewhere.h5").rename(victim)
    import h5py

    with h5py.File(victim, "r") as h5:
        offset = h5["fields"].id.get_chunk_info(3).byte_offset
    raw = bytearray(victim.read_bytes())
    raw[offset + 5] ^= 0xFF
    victim.write_bytes(bytes(raw))
    rep = pio.validate(master)
    assert not rep.ok and "in shard three.shard-00002-of-00003.h5" in rep.problems[0]
    assert "three.shard-00001" not in rep.problems[0]


def test_phi4_kappa_grid_shards_are_the_one_process_set(tmp_path):
    phigen.generate("phi4", tmp_path / "one.h5", progress=False, **PHI4)
    _shares("phi4", tmp_path / "two.h5", 2, **PHI4)
    _same_set(tmp_path / "one.h5", tmp_path / "two.h5")
    with pio.open_fields(tmp_path / "one.h5") as a, pio.open_fields(tmp_path / "two.h5") as b:
        assert a.diagnostics()["sampling_per_kappa"] == b.diagnostics()["sampling_per_kappa"]
    assert not list(tmp_path.glob("*.chains"))  # per-shard chain checkpoints are gone once finished


def test_interrupted_shard_resumes_without_duplicates_or_gaps(gauss_sets, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = pio.FieldWriter.append

    def dying_append(self, *a, **k):  # the process dies after the first of the two batches of its shard
        if "shard-00001" in self.path.name:
            calls["n"] += 1
            if calls["n"] > 1:
                raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(pio.FieldWriter, "append", dying_append)
    path = tmp_path / "three.h5"
    generate_share("gaussian", path, process_index=2, process_count=3, progress=False, **GAUSS)
    with pytest.raises(KeyboardInterrupt):
        generate_share("gaussian", path, process_index=1, process_count=3, progress=False, **GAUSS)
    monkeypatch.setattr(pio.FieldWriter, "append", original)
    with pio.open_fields(tmp_path / "three.shard-00001-of-00003.h5", allow_incomplete=True) as s:
        assert len(s) == 8 and not s.complete
    with pytest.raises(E.FileExistsError_, match="unfinished file exists; pass --resume"):
        generate_share("gaussian", path, process_index=1, process_count=3, progress=False, **GAUSS)
    _shares("gaussian", path, 3, resume=True, **GAUSS)
    _same_set(gauss_sets / "one.h5", path)
    with pio.open_fields(path) as ds:
        assert ds.groups.tolist() == list(range(40))  # no duplicate, no gap
    # resuming with another number of processes, or another run, is refused, naming the mismatch
    with pytest.raises(E.ParameterError, match="split into 3 shards; resume it with 3 processes"):
        _shares("gaussian", path, 2, resume=True, **GAUSS)
    with pytest.raises(E.FileFormatError, match="cannot resume.*seed"):
        _shares("gaussian", path, 3, resume=True, **{**GAUSS, "seed": 4})


def test_overwrite_with_fewer_processes_removes_stale_shards(gauss_sets, tmp_path):
    for p in gauss_sets.glob("three*"):
        shutil.copy2(p, tmp_path / p.name)
    _shares("gaussian", tmp_path / "three.h5", 2, overwrite=True, **GAUSS)
    assert sorted(p.name for p in tmp_path.glob("three.shard-*")) == [
        "three.shard-00000-of-00002.h5", "three.shard-00001-of-00002.h5"]
    _same_set(gauss_sets / "one.h5", tmp_path / "three.h5")


def _cli(*argv, timeout=240, **popen):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "phigen.cli", *map(str, argv)], env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


def test_two_processes_on_loopback_write_the_one_process_set(gauss_sets, tmp_path):
    """The real thing: `phigen generate --processes 2` starts two processes joined by jax.distributed."""
    out = tmp_path / "two.h5"
    proc = _cli("generate", "gaussian", "--size", 16, "-n", 40, "--seed", 3, "--batch-size", 8, "--slope", 2.0,
                "-o", out, "--processes", 2, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 shards" in proc.stdout
    _same_set(gauss_sets / "one.h5", out)


@pytest.mark.slow
def test_two_processes_phi4_and_a_killed_run_resumed(tmp_path):
    """φ⁴ over a κ grid in two real processes equals one process; a run whose processes are all killed
    mid-way (SIGKILL to the whole launch) completes with --resume, without duplicates or gaps."""
    phigen.generate("phi4", tmp_path / "one.h5", progress=False, **PHI4)
    args = ["generate", "phi4", "--size", 8, "-n", 8, "--seed", 1, "--kappa", "0.2,0.3", "--lam", 1.0,
            "--n-chains", 2, "--sampler", "hmc", "--thin", 2, "--processes", 2, "--quiet"]
    proc = _cli(*args, "-o", tmp_path / "two.h5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_set(tmp_path / "one.h5", tmp_path / "two.h5")

    big = ["generate", "gaussian", "--size", 64, "-n", 4000, "--seed", 5, "--batch-size", 40, "--quiet"]
    phigen.generate("gaussian", tmp_path / "ref.h5", size=64, n=4000, seed=5, batch_size=40, progress=False)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    launch = subprocess.Popen([sys.executable, "-m", "phigen.cli", *map(str, big), "-o", str(tmp_path / "k.h5"),
                               "--processes", "2"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard = tmp_path / "k.shard-00001-of-00002.h5"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with pio.open_fields(shard, allow_incomplete=True) as s:
                if len(s) >= 200:
                    break
        except E.PhigenError:
            pass
        time.sleep(0.2)
    os.killpg(launch.pid, signal.SIGKILL)  # the launcher and both processes: a lost job
    launch.wait()
    assert not (tmp_path / "k.h5").exists()
    proc = _cli(*big, "-o", tmp_path / "k.h5", "--processes", 2, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_set(tmp_path / "ref.h5", tmp_path / "k.h5")
    with pio.open_fields(tmp_path / "k.h5") as ds:
        assert ds.groups.tolist() == list(range(4000))


_DATA_PARALLEL = """
import json, sys
import jax, numpy as np
from phigen.diffusion.models import DiffusionModel, FlowMatchingModel
from phigen.fields.gaussian import gaussian_field, power_law_spectrum

assert jax.device_count() == 4
x = np.asarray(gaussian_field(jax.random.PRNGKey(3), 64, 8, power_law_spectrum(2.0)))
steps, with_sampling = int(sys.argv[1]), sys.argv[2] == "1"
out = {}
for cls in (DiffusionModel, FlowMatchingModel)[: int(sys.argv[3])]:
    runs = [cls.fit(x, key=jax.random.PRNGKey(5), progress=False, steps=steps, batch_size=16, width=4, depth=1,
                    chunk=steps // 2, warmup=5, data_parallel=dp) for dp in (False, True)]
    finite = True
    if with_sampling:  # a data-parallel model samples as usual
        finite = bool(np.all(np.isfinite(np.asarray(runs[1].sample(4, key=jax.random.PRNGKey(1), nfe=4)))))
    out[cls.kind] = [r.losses.tolist() for r in runs] + [finite]
if int(sys.argv[3]) > 2:  # the seeds' network models train through the same loop
    from phigen.flows.models import FlowModel
    from phigen.gan import GANModel
    from phigen.vae import VAEModel

    small = {"flow": dict(layers=2, width=4), "vae": dict(width=4, down=1), "gan": dict(width=4, up=1)}
    for cls in (FlowModel, VAEModel, GANModel):
        runs = [cls.fit(x, key=jax.random.PRNGKey(5), progress=False, steps=steps, batch_size=16, chunk=steps // 2,
                        data_parallel=dp, **small[cls.kind]) for dp in (False, True)]
        out[cls.kind] = [r.losses.tolist() for r in runs] + [True]
print("REPORT" + json.dumps(out))
"""


def _check_same_curves(rep, steps):
    for kind, (one, four, finite) in rep.items():
        one, four = np.asarray(one), np.asarray(four)
        assert one.shape == four.shape == (steps,) and finite, kind
        assert np.allclose(one, four, rtol=2e-4, atol=1e-5), (kind, np.max(np.abs(one - four)))
        assert not np.array_equal(one[:1], one[-1:])  # it trained


_TRAIN_HOOK = """
import json
import equinox as eqx, jax, jax.numpy as jnp, numpy as np
from phigen.diffusion.train import TrainConfig, train

assert jax.device_count() == 4
x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (64, 8, 8)))
net = eqx.nn.MLP(64, 64, 32, 2, key=jax.random.PRNGKey(1))

def loss(model, x0, key):  # denoising: noise drawn per batch from the step's key, as the real losses do
    noisy = x0 + 0.5 * jax.random.normal(key, x0.shape)
    pred = jax.vmap(model)(noisy.reshape(len(x0), -1)).reshape(x0.shape)
    return jnp.mean((pred - x0) ** 2)

cfg = TrainConfig(steps=30, batch_size=16, chunk=15, warmup=3)
runs = [train(loss, net, x, cfg, key=jax.random.PRNGKey(2), progress=False, data_parallel=dp) for dp in (False, True)]
print("REPORT" + json.dumps({"mlp": [r.losses.tolist() for r in runs] + [True]}))
"""


def test_data_parallel_training_on_four_devices_matches_one(host_devices):
    """The training loop's data-parallel hook: the batch split over 4 devices (gradients reduced by
    XLA) gives the one-device loss curve to float tolerance (the networks' own: slow twin)."""
    _check_same_curves(host_devices(_TRAIN_HOOK, 4), 30)


@pytest.mark.slow
def test_data_parallel_training_of_every_network_model(host_devices):
    _check_same_curves(host_devices(_DATA_PARALLEL, 4, 60, 1, 5), 60)
