"""HMC + Swendsen–Wang: one HMC trajectory (moves |φ| and small sign changes) then one cluster
sweep of the embedded Ising signs (moves whole domains), per step, for lattice φ⁴.

Both moves leave ``exp(−S)`` invariant — HMC by its Metropolis test, the cluster sweep exactly
(Brower–Tamayo bonds, see :mod:`phigen.samplers.cluster`) — so their composition does too, with no
extra accept step. The cluster sweep is valid only for energies whose sign dependence is the φ⁴
hopping term ``−2κ Σ φ_x φ_{x+μ}`` with κ ≥ 0 and everything else even in each φ_x
(:class:`phigen.energies.Phi4`; not with an external field). After the sweep the energy and force
are recomputed: U changes through the hopping term whenever a cluster boundary moves.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.tree_util import Partial

from ..errors import ParameterError
from .cluster import _swendsen_wang_step
from .hmc import HMCState, hmc_init, hmc_step
from .kernels import Kernel

__all__ = ["HMCClusterInfo", "hmc_cluster_init", "hmc_cluster_step", "make_hmc_cluster_kernel"]


class HMCClusterInfo(NamedTuple):
    acceptance_rate: jax.Array    # (C,) HMC min(1, exp(−ΔH))
    is_accepted: jax.Array        # (C,) bool, HMC trajectory accepted
    energy: jax.Array             # (C,) energy after the cluster sweep
    divergent: jax.Array          # (C,) bool, HMC trajectory divergent (rejected)
    n_leapfrog: jax.Array         # () int32
    n_clusters: jax.Array         # (C,) int32
    mean_cluster_size: jax.Array  # (C,) float32
    n_rounds: jax.Array           # () int32 labelling rounds


def _resolve_kappa(energy, kappa):
    own = getattr(energy, "kappa", None)
    if kappa is None:
        if own is None:
            raise ParameterError("kappa is required for an energy without a .kappa attribute")
        return own
    if isinstance(kappa, jax.core.Tracer):
        return kappa
    k = np.asarray(kappa)
    if k.ndim != 0 or not np.isfinite(k) or k < 0:
        raise ParameterError(f"kappa must be a finite scalar >= 0; got {kappa!r}")
    if own is not None and not np.isclose(float(k), float(own), rtol=1e-6, atol=0.0):
        # A cluster sweep at the wrong κ samples a different distribution, silently.
        raise ParameterError(f"kappa={float(k)!r} differs from the energy's kappa={float(own)!r}")
    return float(k)


def hmc_cluster_init(position, energy) -> HMCState:
    """Start the HMC + cluster kernel at ``position`` ``(C, L1, L2)`` (same state as HMC)."""
    return hmc_init(position, energy)


@jax.jit
def _hmc_cluster_step(key, state, energy, kappa, step_size, n_leapfrog, jitter):
    key_hmc, key_cluster = jax.random.split(key)
    state, hinfo = hmc_step(key_hmc, state, energy, step_size=step_size, n_leapfrog=n_leapfrog,
                            jitter=jitter)
    phi, cinfo = _swendsen_wang_step(key_cluster, state.position, kappa)
    u, g = energy.value_and_grad(phi)
    info = HMCClusterInfo(hinfo.acceptance_rate, hinfo.is_accepted, u, hinfo.divergent,
                          hinfo.n_leapfrog, cinfo.n_clusters, cinfo.mean_cluster_size, cinfo.n_rounds)
    return HMCState(phi, u, g), info


def hmc_cluster_step(key, state: HMCState, energy, *, kappa=None, step_size, n_leapfrog,
                     jitter=0.2) -> tuple[HMCState, HMCClusterInfo]:
    """One HMC trajectory then one Swendsen–Wang sweep, all chains at once.

    state: :class:`HMCState` with position ``(C, L1, L2)``; ``kappa`` defaults to ``energy.kappa``
    (and must equal it when both exist); ``step_size`` (scalar or ``(C,)``), ``n_leapfrog`` and
    ``jitter`` as in :func:`phigen.samplers.hmc_step`. Returns ``(HMCState, HMCClusterInfo)``.
    """
    kappa = _resolve_kappa(energy, kappa)
    if np.ndim(state.position) != 3:
        raise ParameterError(f"the cluster sweep needs positions of shape (C, L1, L2); got {np.shape(state.position)}")
    return _hmc_cluster_step(key, state, energy, kappa, step_size, n_leapfrog, jitter)


def make_hmc_cluster_kernel(energy, kappa=None, *, step_size, n_leapfrog, jitter=0.2) -> Kernel:
    """:class:`Kernel` ``(init, step)`` for HMC + cluster on ``energy`` (a φ⁴ energy, κ as above)."""
    kappa = _resolve_kappa(energy, kappa)
    step_arr = np.asarray(step_size, dtype=float) if not isinstance(step_size, jax.core.Tracer) else None
    if step_arr is not None and (step_arr.ndim > 1 or np.any(~np.isfinite(step_arr)) or np.any(step_arr <= 0)):
        raise ParameterError(f"step_size must be a positive finite scalar or (C,) array; got {step_size!r}")
    if not isinstance(n_leapfrog, jax.core.Tracer) and (int(n_leapfrog) != n_leapfrog or n_leapfrog < 1):
        raise ParameterError(f"n_leapfrog must be an integer >= 1; got {n_leapfrog!r}")
    if not 0.0 <= float(jitter) < 1.0:
        raise ParameterError(f"jitter must be in [0, 1); got {jitter!r}")

    return Kernel(Partial(_cluster_init, energy),
                  Partial(_cluster_kernel_step, energy, kappa, step_size, n_leapfrog, jitter))


def _cluster_init(energy, position):
    return hmc_cluster_init(position, energy)


def _cluster_kernel_step(energy, kappa, step_size, n_leapfrog, jitter, key, state):
    # kappa was checked against the energy's when the kernel was made; here it is traced
    return hmc_cluster_step(key, state, energy, kappa=kappa, step_size=step_size, n_leapfrog=n_leapfrog,
                            jitter=jitter)
