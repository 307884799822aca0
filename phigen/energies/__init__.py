"""phigen.energies: batched Gibbs energies ``U(x)`` (``p ∝ e^{−U}``) with gradients."""

from .base import Energy, energy_from_fn
from .phi4 import (Phi4, gaussian_free_field, gff_exact_spectrum, phi4_energy, phi4_grad,
                   phi4_value_and_grad)

__all__ = ["Energy", "energy_from_fn", "Phi4", "gaussian_free_field", "gff_exact_spectrum",
           "phi4_energy", "phi4_grad", "phi4_value_and_grad"]
