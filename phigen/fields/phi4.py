"""Lattice φ⁴ ground truth: decorrelated configurations from many MCMC chains (docs/mcmc.md).

Pipeline (all chains batched in jitted calls, every random draw derived from one seed):

1. start ``n_chains`` chains from small Gaussian noise;
2. adapt the HMC step size by dual averaging (target acceptance 0.8; ``n_leapfrog`` follows it so
   that ``ε·n ≈ trajectory_length``);
3. burn in, then a pilot run that measures τ_int of |m| and of the energy (Γ-method over chains);
4. production: one configuration per chain every ``thin = ceil(thin_factor · max τ_int)`` steps.

``sampler``: ``"hmc-cluster"`` (default: one HMC trajectory + one Swendsen–Wang sweep of the
embedded Ising signs per step, which beats critical slowing down), ``"hmc"``, ``"mala"`` or
``"flow"``: a Z₂-symmetric normalizing flow trained by reverse KL on the action (no data,
``flow_steps`` Adam steps of ``flow_batch`` draws), then independence Metropolis–Hastings with flow
proposals (:mod:`phigen.flows.mcmc`; no step size to adapt, chains start from flow draws). The
trained flow is kept beside the output as ``OUT.h5.flow.h5`` (a ``flow`` model file: a resumed run
reuses it, ``phigen sample`` can draw from it).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from .. import errors as E
from .._atomic import atomic_h5
from .._validation import check_int_at_least
from ..energies import Phi4
from ..samplers.adaptation import adapt_step_size
from ..samplers.diagnostics import integrated_autocorrelation_time
from ..samplers.kernels import make_kernel
from ..samplers.mixed import make_hmc_cluster_kernel
from ..samplers.runner import RunConfig, run_chain
from ..samplers._global import global_leaves, local_block
from ..samplers.sharding import gather_chains, shard_chains, spans_processes

__all__ = ["Phi4SamplerConfig", "Phi4Chains", "warm_up_phi4_chains", "prepare_phi4_chains", "advance_phi4_chains", "sample_phi4",
           "chain_groups", "check_lattice_size"]

SAMPLERS = ("hmc-cluster", "hmc", "mala", "flow")
_TAG_INIT, _TAG_WARMUP, _TAG_BURN, _TAG_PILOT, _TAG_PRODUCTION, _TAG_FLOW = range(6)


@dataclass(frozen=True)
class Phi4SamplerConfig:
    """How φ⁴ configurations are sampled (the defaults suit L = 16–128 near κ_c)."""

    sampler: str = "hmc-cluster"
    n_chains: int = 64
    n_warmup: int = 300
    n_burn: int = 300
    n_pilot: int = 1000
    thin: int | None = None          # None: measured, ceil(thin_factor * max(τ_|m|, τ_E))
    thin_factor: float = 2.0
    trajectory_length: float = 1.0
    init_std: float = 0.5
    flow_steps: int = 2000           # sampler "flow": reverse-KL training steps
    flow_batch: int = 64             # flow draws per training step
    flow_layers: int = 8
    flow_width: int = 16
    flow_learning_rate: float = 3e-3  # L = 8, κ = 0.3403, λ = 1, 1000 steps: ESS/N 0.22 (1e-3 and 300 steps: 0.001)
    # rational-quadratic splines: L = 8, κ = 0.3403, 1000 steps, ESS/N 0.43 against 0.14 for affine
    # couplings at 1.4× the CPU per step (docs/flows.md)
    flow_coupling: str = "spline"

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise E.ParameterError(f"sampler must be one of {SAMPLERS}; got {self.sampler!r}")
        check_int_at_least(self.n_chains, "n_chains", 1)
        check_int_at_least(self.n_warmup, "n_warmup", 20)
        check_int_at_least(self.n_burn, "n_burn", 0)
        check_int_at_least(self.n_pilot, "n_pilot", 50)
        if self.thin is not None:
            check_int_at_least(self.thin, "thin", 1)
        if not (self.thin_factor > 0 and math.isfinite(self.thin_factor)):
            raise E.ParameterError(f"thin_factor must be > 0; got {self.thin_factor!r}")
        if not (self.trajectory_length > 0 and math.isfinite(self.trajectory_length)):
            raise E.ParameterError(f"trajectory_length must be > 0; got {self.trajectory_length!r}")
        check_int_at_least(self.flow_steps, "flow_steps", 1)
        check_int_at_least(self.flow_batch, "flow_batch", 2)
        check_int_at_least(self.flow_layers, "flow_layers", 0)
        check_int_at_least(self.flow_width, "flow_width", 1)
        if self.flow_coupling not in ("affine", "spline"):
            raise E.ParameterError(f"flow_coupling must be 'affine' or 'spline'; got {self.flow_coupling!r}")
        if not (self.flow_learning_rate > 0 and math.isfinite(self.flow_learning_rate)):
            raise E.ParameterError(f"flow_learning_rate must be > 0; got {self.flow_learning_rate!r}")


class Phi4Chains(NamedTuple):
    """Warmed-up chains ready for production, with the measurements that set the thinning."""

    state: object               # sampler state (position (C, L, L), energy, grad)
    step: Callable              # kernel step(key, state) -> (state, info)
    step_size: float
    n_leapfrog: int
    thin: int
    tau_abs_m: float
    tau_abs_m_err: float
    tau_energy: float
    tau_energy_err: float
    acceptance: float           # mean acceptance in the pilot run


def _observables(state):
    pos = state.position
    return {"abs_m": jnp.abs(jnp.mean(pos, axis=(-2, -1))), "energy": state.energy}


def _kernel(energy: Phi4, config: Phi4SamplerConfig, step_size: float, n_leapfrog: int, flow=None):
    if config.sampler == "flow":
        from ..flows.mcmc import make_flow_mh_kernel

        return make_flow_mh_kernel(flow, energy)
    if config.sampler == "hmc-cluster":
        return make_hmc_cluster_kernel(energy, energy.kappa, step_size=step_size, n_leapfrog=n_leapfrog)
    if config.sampler == "hmc":
        return make_kernel("hmc", energy, step_size=step_size, n_leapfrog=n_leapfrog)
    return make_kernel("mala", energy, step_size=step_size)


def check_lattice_size(size):
    size = check_int_at_least(size, "size", 4)
    if size % 2:
        raise E.ParameterError(f"phi4 lattice size must be even (checkerboard/wavelet compatible); got {size}")
    return size


def train_phi4_flow(key, size: int, kappa: float, lam: float, config: Phi4SamplerConfig = Phi4SamplerConfig(), *,
                    progress: bool | None = None, flow_file=None, init=None):
    """The flow of ``sampler="flow"``: loaded from ``flow_file`` when it exists (a ``flow`` model fitted
    to the same φ⁴ action and shape), else trained by reverse KL (and saved there when given).
    ``init``: a flow model fitted on a smaller lattice that starts the training (transfer across
    volumes, :meth:`phigen.flows.FlowModel.fit_energy`)."""
    from ..flows.models import FlowModel

    energy = Phi4(kappa, lam)
    if flow_file is not None and Path(flow_file).exists():
        model = FlowModel.load(flow_file)
        want = {"name": "phi4", "kappa": float(energy.kappa), "lam": float(energy.lam)}
        if model.energy_record != want or tuple(model.field_shape) != (size, size):
            raise E.ModelFileError(f"the flow beside the output was fitted to {model.energy_record} on "
                                   f"{model.field_shape}, not {want} on {(size, size)}; delete it", path=flow_file)
        return model
    model = FlowModel.fit_energy(energy, size, key=jax.random.fold_in(key, _TAG_FLOW), progress=progress,
                                 steps=config.flow_steps, batch_size=config.flow_batch, layers=config.flow_layers,
                                 width=config.flow_width, learning_rate=config.flow_learning_rate,
                                 coupling=config.flow_coupling, init=init)
    if flow_file is not None:
        model.save(flow_file)
    return model


def warm_up_phi4_chains(key, size: int, kappa: float, lam: float, config: Phi4SamplerConfig = Phi4SamplerConfig(),
                        *, progress: bool | None = None, mesh=None, flow_file=None):
    """Start ``config.n_chains`` chains, adapt the step size and burn in.

    Returns ``(state, kernel, step_size, n_leapfrog)``; the kernel is ``config.sampler`` closed over
    the adapted step size. ``mesh``: a chain mesh (``global_chain_mesh()`` in every process of a
    ``jax.distributed`` group: the chains are split over all processes, with the samples, step size
    and thinning of a one-process run; docs/scale_out.md). ``sampler="flow"``: the flow is trained (or
    read from ``flow_file``), the chains start from its draws, and step size and ``n_leapfrog`` are 0
    (nothing to adapt); it runs in one process.
    """
    size = check_lattice_size(size)
    energy = Phi4(kappa, lam)
    c = config.n_chains
    if config.sampler == "flow":
        if mesh is not None:
            raise E.ParameterError("--sampler flow runs in one process (its chains are not split over processes)")
        model = train_phi4_flow(key, size, kappa, lam, config, progress=progress, flow_file=flow_file)
        kernel = _kernel(energy, config, 0.0, 0, model.flow)
        state = kernel.init(model.sample(c, key=jax.random.fold_in(key, _TAG_INIT)))
        step_size, n_leapfrog = 0.0, 0
    else:
        x0 = config.init_std * jax.random.normal(jax.random.fold_in(key, _TAG_INIT), (c, size, size), jnp.float32)
        if mesh is not None:  # every process drew the same x0; each keeps its own chains
            x0 = shard_chains(np.asarray(x0), mesh)
        kind = "mala" if config.sampler == "mala" else "hmc"
        state, step_size, ainfo = adapt_step_size(jax.random.fold_in(key, _TAG_WARMUP), kind, energy, x0,
                                                  n_warmup=config.n_warmup, trajectory_length=config.trajectory_length)
        step_size = float(step_size)
        n_leapfrog = int(ainfo.final_n_leapfrog)
        kernel = _kernel(energy, config, step_size, n_leapfrog)
        state = kernel.init(state.position)
    if config.n_burn:
        state = run_chain(jax.random.fold_in(key, _TAG_BURN), kernel.step, state,
                          RunConfig(n_steps=config.n_burn, chunk_size=min(100, config.n_burn), progress=progress),
                          desc=f"φ⁴ L={size} κ={kappa:g} burn-in", step_size=step_size, mesh=mesh).state
    return state, kernel, step_size, n_leapfrog


def prepare_phi4_chains(key, size: int, kappa: float, lam: float, config: Phi4SamplerConfig = Phi4SamplerConfig(),
                        *, progress: bool | None = None, mesh=None, flow_file=None) -> Phi4Chains:
    """Adapt, burn in and measure τ_int for ``config.n_chains`` chains of ``size × size`` φ⁴ at (κ, λ)
    (``mesh``, ``flow_file``: see :func:`warm_up_phi4_chains`; τ_int is measured on every chain of every
    process)."""
    state, kernel, step_size, n_leapfrog = warm_up_phi4_chains(key, size, kappa, lam, config, progress=progress,
                                                               mesh=mesh, flow_file=flow_file)
    pilot = run_chain(jax.random.fold_in(key, _TAG_PILOT), kernel.step, state,
                      RunConfig(n_steps=config.n_pilot, chunk_size=min(100, config.n_pilot), progress=progress),
                      observables=_observables, desc=f"φ⁴ L={size} pilot (τ_int)", step_size=step_size, mesh=mesh)
    abs_m = np.asarray(pilot.trace["abs_m"]).T  # (C, n_steps), all chains (gathered over processes)
    energies = np.asarray(pilot.trace["energy"]).T
    tau_m = integrated_autocorrelation_time(abs_m)
    tau_e = integrated_autocorrelation_time(energies)
    thin = config.thin or max(1, math.ceil(config.thin_factor * max(tau_m.tau, tau_e.tau)))
    return Phi4Chains(pilot.state, kernel.step, step_size, n_leapfrog, int(thin), float(tau_m.tau),
                      float(tau_m.error), float(tau_e.tau), float(tau_e.error),
                      float(np.mean(pilot.info_summary.mean_acceptance)))


def advance_phi4_chains(key, chains: Phi4Chains, batch_index: int, *, progress: bool | None = False) -> Phi4Chains:
    """Run ``chains.thin`` steps (keys from ``fold_in(key, batch_index)``); returns the moved chains."""
    k = jax.random.fold_in(jax.random.fold_in(key, _TAG_PRODUCTION), batch_index)
    res = run_chain(k, chains.step, chains.state,
                    RunConfig(n_steps=chains.thin, chunk_size=min(chains.thin, 200), progress=progress),
                    step_size=chains.step_size)
    return chains._replace(state=res.state)


def sample_phi4(key, n: int, size: int, kappa: float, lam: float,
                config: Phi4SamplerConfig = Phi4SamplerConfig(), *, progress: bool | None = None, mesh=None):
    """``n`` decorrelated φ⁴ configurations ``(n, size, size)`` float32, and the sampling diagnostics.

    Fields come ``config.n_chains`` at a time, one per chain, ``thin`` steps apart: field i comes
    from chain ``i mod n_chains`` (:func:`chain_groups`). ``mesh=global_chain_mesh()``, called in
    every process of a ``jax.distributed`` group: the chains are split over the processes and every
    process returns the whole (identical) result.
    """
    n = check_int_at_least(n, "n", 1)
    chains = prepare_phi4_chains(key, size, kappa, lam, config, progress=progress, mesh=mesh)
    out = []
    for b in range(-(-n // config.n_chains)):
        chains = advance_phi4_chains(key, chains, b)
        out.append(gather_chains(chains.state.position))
    fields = np.concatenate(out)[:n]
    return fields, chains_diagnostics(chains, config)


def chain_groups(n: int, n_chains: int) -> np.ndarray:
    """The chain of each of ``n`` configurations saved one per chain per batch: ``i mod n_chains``
    (int64). Configurations of one chain are correlated (thinned, not independent): one group."""
    return np.arange(int(n), dtype=np.int64) % int(n_chains)


def chains_diagnostics(chains: Phi4Chains, config: Phi4SamplerConfig) -> dict:
    return {
        "sampler": config.sampler,
        "n_chains": config.n_chains,
        "step_size": chains.step_size,
        "n_leapfrog": chains.n_leapfrog,
        "thin": chains.thin,
        "tau_int_abs_m": chains.tau_abs_m,
        "tau_int_abs_m_err": chains.tau_abs_m_err,
        "tau_int_energy": chains.tau_energy,
        "tau_int_energy_err": chains.tau_energy_err,
        "acceptance": chains.acceptance,
    }


# ---- the `phigen generate phi4` generator: resumable through a sidecar chain checkpoint ---------
def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".chains")


def _save_sidecar(path: Path, batch_index: int, chains: Phi4Chains, diag: dict, per_kappa: dict | None = None) -> None:
    """Keep the chain states after the last two batches (the writer may lag by one).

    The whole state (position, energy, gradient) is stored, not just the position: recomputing the
    energy could differ in the last bit from the value the chain carried, and a resumed run must
    be bit-identical to an uninterrupted one.
    """
    side = _sidecar(path)
    old = {}
    if side.exists():
        with h5py.File(side, "r") as h5:
            old = {k: [h5[k][f][()] for f in sorted(h5[k].keys())] for k in h5.keys() if k.startswith("after_")}
    with atomic_h5(side) as h5:
        for k, leaves in old.items():
            if int(k.split("_")[1]) >= batch_index - 1:
                for i, leaf in enumerate(leaves):
                    h5[f"{k}/leaf_{i:03d}"] = leaf
        for i, leaf in enumerate(jax.tree_util.tree_leaves(chains.state)):  # this process's chains
            h5[f"after_{batch_index}/leaf_{i:03d}"] = local_block(leaf)
        for k, v in diag.items():
            h5.attrs[k] = v
        if per_kappa is not None:  # a κ grid: the diagnostics of every κ done so far
            h5.attrs["per_kappa"] = json.dumps({k: {f: (v.item() if hasattr(v, "item") else v) for f, v in d.items()}
                                                for k, d in per_kappa.items()})


def _load_per_kappa(path: Path) -> dict:
    side = _sidecar(path)
    if not side.exists():
        return {}
    with h5py.File(side, "r") as h5:
        return json.loads(h5.attrs["per_kappa"]) if "per_kappa" in h5.attrs else {}


def _last_saved_batch(path: Path) -> int:
    """The last batch whose chains the sidecar holds (-1: none)."""
    side = _sidecar(path)
    if not side.exists():
        return -1
    with h5py.File(side, "r") as h5:
        return max((int(k.split("_")[1]) for k in h5.keys() if k.startswith("after_")), default=-1)


def _load_sidecar(path: Path, batch_index: int):
    side = _sidecar(path)
    if not side.exists():
        return None
    with h5py.File(side, "r") as h5:
        name = f"after_{batch_index}"
        if name not in h5:
            return None
        return ([np.asarray(h5[name][f][()]) for f in sorted(h5[name].keys())],
                {k: v for k, v in h5.attrs.items() if k != "per_kappa"})


def _build_phi4(size: int, seed: int, *, n: int, path: Path, progress, kappa=None,
                lam: float | None = None, sampler: str = "hmc-cluster", thin: int | None = None,
                n_chains: int | None = None, flow_steps: int | None = None, flow_coupling: str | None = None,
                _mesh=None):
    """One κ: ``n`` configurations, one per chain per batch (chain = group). A grid of K values of κ
    (``kappa`` a sequence; CLI ``--kappa START:STOP:NUM``): ``n / K`` configurations per κ, κ after κ
    (κ-major), each κ with chains of its own (warm-up, step size, τ_int, thinning), κ in the
    ``conditions`` and group ``k · n_chains + chain`` for the k-th κ. Every κ runs the same compiled
    kernels (κ is traced)."""
    if kappa is None or lam is None:
        raise E.ParameterError("phi4 needs --kappa and --lam")
    kappas = (float(kappa),) if np.ndim(kappa) == 0 else tuple(float(k) for k in kappa)
    for k in kappas:
        Phi4(k, lam)  # validates
    size = check_lattice_size(size)
    grid = len(kappas) > 1
    per_kappa = n // len(kappas)
    if grid and (n % len(kappas) or per_kappa < 1):
        raise E.ParameterError(f"a grid of {len(kappas)} κ values needs n to be a multiple of {len(kappas)} "
                               f"(the same number of configurations at every κ); got n = {n}")
    extra = {k: v for k, v in (("flow_steps", flow_steps), ("flow_coupling", flow_coupling)) if v is not None}
    config = Phi4SamplerConfig(sampler=sampler, thin=thin, n_chains=n_chains or min(per_kappa, 64), **extra)
    if sampler == "flow" and grid:
        raise E.ParameterError("--sampler flow trains one flow per action: give one κ, not a grid")
    if grid and per_kappa % config.n_chains:
        raise E.ParameterError(f"{per_kappa} configurations per κ are not a whole number of batches of "
                               f"n_chains = {config.n_chains}; choose n_chains dividing {per_kappa} "
                               f"(or n = {len(kappas)} × a multiple of {config.n_chains})")
    batches_per_kappa = -(-per_kappa // config.n_chains)
    root = jax.random.PRNGKey(seed)
    box: dict = {}
    flow_file = path.with_name(path.name + ".flow.h5") if sampler == "flow" else None  # beside the output
    mesh = _mesh if spans_processes(_mesh) else None
    if mesh is not None:  # chains split over processes: each process keeps its own chain checkpoint
        path = path.with_name(f"{path.name}.process-{jax.process_index():05d}-of-{jax.process_count():05d}")

    def at(b):
        """(κ index, its key, its energy) of batch ``b``; one κ: the run's own key, as before grids."""
        i = b // batches_per_kappa
        return i, (root if not grid else jax.random.fold_in(root, 1_000_003 + i)), Phi4(kappas[i], lam)

    def prepared(batch_index):
        """Chains as they were after batch ``batch_index - 1`` (fresh at a new κ, or from the sidecar on resume)."""
        i, key, energy = at(batch_index)
        if not batch_index % batches_per_kappa:  # the first batch of a κ: fresh chains at that κ
            return prepare_phi4_chains(key, size, kappas[i], lam, config, progress=progress, mesh=mesh,
                                       flow_file=flow_file)
        if "chains" in box and box["next"] == batch_index:
            return box["chains"]
        # within a κ, after an interruption: the chains of the batch before, from the sidecar
        saved = _load_sidecar(path, batch_index - 1)
        if saved is None:
            raise E.TruncatedFileError(f"cannot resume at batch {batch_index}: the chain checkpoint "
                                       f"{_sidecar(path).name} is missing or older; rerun with --overwrite", path=path)
        return _chains_from_sidecar(saved, energy, config, path, mesh, flow_file)

    def make_batch(b, count):  # one configuration per chain: group = chain index (offset per κ)
        i, key, _ = at(b)
        chains = advance_phi4_chains(key, prepared(b), b)
        diag = chains_diagnostics(chains, config)
        per = dict(box["per_kappa"] if "per_kappa" in box else (_load_per_kappa(path) if grid and b else {}))
        per[f"{kappas[i]:.10g}"] = diag
        _save_sidecar(path, b, chains, diag, per_kappa=per if grid else None)
        box.update(chains=chains, next=b + 1, diag=diag, per_kappa=per)
        groups = chain_groups(count, config.n_chains) + i * config.n_chains
        cond = np.full((count, 1), kappas[i], np.float32) if grid else None
        return gather_chains(chains.state.position)[:count], cond, groups

    def diagnostics():
        diag, per = box.get("diag"), box.get("per_kappa")
        if diag is None:  # resumed after the last batch was written (of the file, or of its shard)
            saved = _load_sidecar(path, _last_saved_batch(path))
            diag = saved[1] if saved else {}
            per = _load_per_kappa(path)
        _sidecar(path).unlink(missing_ok=True)
        out = {"sampling": {k: (v.item() if hasattr(v, "item") else v) for k, v in diag.items() if k != "per_kappa"}}
        if grid:
            out["sampling_per_kappa"] = {k: {f: (v.item() if hasattr(v, "item") else v) for f, v in d.items()}
                                         for k, d in (per or {}).items()}
        return out

    params = {"kappa": list(kappas) if grid else kappas[0], "lam": float(lam)}
    cfg = {"kind": "phi4", "size": size, "action": "hopping: sum -2k phi_x phi_x+mu + phi^2 + lam (phi^2-1)^2",
           **params, **_sampler_settings(config), "group_kind": "chain"}
    if grid:
        cfg.update(condition_names=["kappa"], kappa_grid=list(kappas), per_kappa=per_kappa)
    return make_batch, params, cfg, diagnostics


def _sampler_settings(config: Phi4SamplerConfig) -> dict:
    """The sampler settings a file records (the flow's only when the flow sampler ran)."""
    return {k: v for k, v in asdict(config).items() if config.sampler == "flow" or not k.startswith("flow_")}


def _chains_from_sidecar(saved, energy: Phi4, config: Phi4SamplerConfig, path: Path, mesh=None,
                         flow_file=None) -> Phi4Chains:
    leaves, diag = saved
    flow = None
    if config.sampler == "flow":
        if flow_file is None or not Path(flow_file).exists():
            raise E.TruncatedFileError("cannot resume flow-MH chains: the trained flow beside the output is "
                                       "missing; rerun with --overwrite", path=path)
        from ..flows.models import FlowModel

        flow = FlowModel.load(flow_file).flow
    kernel = _kernel(energy, config, float(diag["step_size"]), int(diag["n_leapfrog"]), flow)
    template = kernel.init(jnp.asarray(leaves[0]))
    treedef = jax.tree_util.tree_structure(template)
    if treedef.num_leaves != len(leaves):
        raise E.TruncatedFileError(f"chain checkpoint {_sidecar(path).name} does not match the sampler", path=path)
    if mesh is not None:  # this process's chains back into the global state
        leaves = global_leaves(leaves, mesh, config.n_chains)
    state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in leaves])
    return Phi4Chains(state, kernel.step, float(diag["step_size"]), int(diag["n_leapfrog"]), int(diag["thin"]),
                      float(diag["tau_int_abs_m"]), float(diag["tau_int_abs_m_err"]), float(diag["tau_int_energy"]),
                      float(diag["tau_int_energy_err"]), float(diag["acceptance"]))


def _field_statistics(fields, params) -> dict:
    """Binder ``U4`` and susceptibility ``chi`` of an ensemble of configurations (needs params ``kappa``,
    ``lam``; else none), jackknife errors."""
    if "kappa" not in params or "lam" not in params or np.ndim(params["kappa"]) != 0:
        return {}  # a κ grid: per-condition statistics are not defined here
    from ..stats.phi4 import phi4_observables

    x = np.asarray(fields, dtype=np.float32)
    # The ensembles compared are independent draws (model samples; truth thinned by the generator),
    # so the jackknife blocks need not be τ_int-sized — and the τ_int estimate of a few dozen fields
    # is too noisy to size them.
    obs = phi4_observables(x, float(params["kappa"]), float(params["lam"]), n_bins=min(len(x), 32))
    return {"U4": {"value": float(obs["binder"].value), "error": float(obs["binder"].error)},
            "chi": {"value": float(obs["chi"].value), "error": float(obs["chi"].error)}}


def _batch_size(n: int, params) -> int:
    """One configuration per chain per batch; with a κ grid, chains default to min(n / K, 64)."""
    k = 1 if np.ndim(params.get("kappa")) == 0 else max(1, len(params["kappa"]))
    return min(n, params.get("n_chains") or min(max(1, n // k), 64))


def _shard_unit(n: int, batch_size: int, params) -> int:
    """Batches one process generates together: all the batches of one κ (they advance the same
    chains, adapted and thinned together); a single κ is one unit, a κ grid one unit per κ."""
    kappa = params.get("kappa")
    k = 1 if np.ndim(kappa) == 0 else max(1, len(kappa))
    return -(-(n // k) // batch_size)


def _groups(n: int, batch_size: int, config) -> tuple[np.ndarray, str, str]:
    c = int(config["n_chains"])
    if batch_size != min(n, c):
        raise E.ParameterError(f"phi4 writes one configuration per chain per batch: batch_size {batch_size} "
                               f"does not match n_chains = {c}")
    if "kappa_grid" in config:  # κ-major: the chains of the k-th κ are groups k·c … k·c + c − 1
        per = int(config["per_kappa"])
        i = np.arange(int(n), dtype=np.int64)
        return ((i // per) * c + (i % per) % c, "chain",
                f"chain index (i mod {per}) mod n_chains + n_chains · (i // {per}) over the κ grid, n_chains = {c}")
    return chain_groups(n, c), "chain", f"chain index i mod n_chains, n_chains = {c}"


def _register():
    from .kind import FieldKind, FieldOption, register_field_kind

    register_field_kind(FieldKind(
        "phi4", _build_phi4, 64, "lattice φ⁴ (hopping form) by HMC + cluster updates, thinned by τ_int",
        batch_size=_batch_size,
        options=(FieldOption("kappa", "grid", "hopping parameter κ, or a grid START:STOP:NUM (one file, κ in "
                             "the conditions, the same number of configurations per κ)"),
                 FieldOption("lam", float, "quartic coupling λ"),
                 FieldOption("sampler", str, "MCMC kernel (flow: reverse-KL flow, then independence MH)",
                             choices=("hmc", "hmc-cluster", "mala", "flow")),
                 FieldOption("flow_steps", int, "training steps of the flow (--sampler flow)"),
                 FieldOption("flow_coupling", str, "coupling layers of the flow (--sampler flow; default spline)",
                             choices=("affine", "spline")),
                 FieldOption("thin", int, "steps between saved fields (default: from measured τ_int)"),
                 FieldOption("n_chains", int, "parallel chains")),
        groups=_groups, shard_unit=_shard_unit, collective=True,
        # the lattice action is even in φ: φ → −φ alone is an exact symmetry
        symmetries=("shifts", "dihedral", "sign"), sign_symmetric=True,
        statistics=_field_statistics, statistic_labels={"U4": "U₄", "chi": "χ"}))


_register()
