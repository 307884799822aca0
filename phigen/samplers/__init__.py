"""phigen.samplers: batched, jitted MCMC kernels (``init`` / ``step`` with NamedTuple states)."""

from .langevin import DIVERGENCE_THRESHOLD, ULAInfo, ULAState, ula_init, ula_step
from .mala import MALAInfo, MALAState, mala_init, mala_step, mala_transition
from .hmc import HMCInfo, HMCState, hmc_init, hmc_step, jittered_n_leapfrog, leapfrog
from .kernels import KERNEL_KINDS, Kernel, make_kernel
from .adaptation import DEFAULT_TARGET_ACCEPTANCE, AdaptationInfo, adapt_step_size
from .runner import InfoSummary, RunConfig, RunResult, process_checkpoint_path, run_chain
from .sharding import (chain_mesh, chain_sharding, gather_chains, global_chain_mesh, process_chains, shard_chains,
                       spans_processes)
from .numpyro import numpyro_sample
from .cluster import ClusterInfo, cluster_labels, swendsen_wang_bonds, swendsen_wang_step
from .compose import ComposedInfo, compose_kernels
from .mixed import HMCClusterInfo, hmc_cluster_init, hmc_cluster_step, make_hmc_cluster_kernel
from .diagnostics import JackknifeEstimate, MeanWithError, TauInt, autocorrelation, binned_jackknife, effective_sample_size, integrated_autocorrelation_time, mean_with_error, rhat
