"""phigen.flows: normalizing flows for periodic fields and flow-based MCMC (docs/flows.md).

- :mod:`~phigen.flows.layers`: spectral scaling, checkerboard affine couplings (optionally Z₂
  equivariant), a global affine; exact log-determinants;
- :mod:`~phigen.flows.flow`: the flow, its samples with their log-density, its density;
- :mod:`~phigen.flows.models`: the registered ``flow`` model (maximum likelihood on fields, or
  reverse KL on a Gibbs energy: :meth:`FlowModel.fit_energy`);
- :mod:`~phigen.flows.mcmc`: independence Metropolis–Hastings with flow proposals (a phigen kernel),
  importance weights, ESS/N and reweighted means.
"""

from .flow import Flow, FlowNetConfig, flow_log_prob, flow_sample, gaussian_log_density, make_flow, resize_flow
from .layers import AffineCoupling, GlobalAffine, SpectralScale, checkerboard
from .mcmc import (FlowMHInfo, FlowMHState, effective_sample_size_fraction, flow_mh_init, flow_mh_step, log_weights,
                   make_flow_mh_kernel, reweighted_mean)
from .models import FlowFitConfig, FlowModel, free_energy_record

__all__ = ["Flow", "FlowNetConfig", "flow_log_prob", "flow_sample", "gaussian_log_density", "make_flow", "resize_flow",
           "AffineCoupling", "GlobalAffine", "SpectralScale", "checkerboard", "FlowMHInfo", "FlowMHState",
           "effective_sample_size_fraction", "flow_mh_init", "flow_mh_step", "log_weights", "make_flow_mh_kernel",
           "reweighted_mean", "FlowFitConfig", "FlowModel", "free_energy_record"]
