"""phigen.diffusion: score diffusion (OU SDE) and flow-matching baselines on periodic fields.

- :mod:`~phigen.diffusion.unet`: the periodic UNet (equinox);
- :mod:`~phigen.diffusion.sde`: OU process, denoising score matching, Tweedie, reverse-SDE
  (Euler–Maruyama) and probability-flow ODE (Heun) samplers for any score function;
- :mod:`~phigen.diffusion.flow`: flow matching on the linear path, Euler/Heun samplers;
- :mod:`~phigen.diffusion.oracle`: exact scores/velocities of Gaussian data (sampler tests);
- :mod:`~phigen.diffusion.train`: Adam + EMA + clipping, deterministic shuffling, resumable;
- :mod:`~phigen.diffusion.models`: the registered ``diffusion`` and ``flow-matching`` models.
"""

from .flow import FLOW_METHODS, flow_euler_step, flow_heun_step, flow_matching_loss, flow_path, flow_sample, flow_time_grid
from .oracle import (denoised_spectrum, flow_marginal_spectrum, gaussian_score, gaussian_velocity, marginal_spectrum,
                     spectrum_grid)
from .sde import (TIME_GRIDS, OUProcess, SamplerInfo, dsm_loss, euler_maruyama_step, heun_step, ou_mean_std, perturb,
                  probability_flow_sample, reverse_sde_sample, score_from_velocity, time_grid, tweedie_denoise)
from .unet import UNet, UNetConfig, apply_batched, count_params, make_unet
