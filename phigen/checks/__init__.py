"""phigen.checks: physics checks of the simulated ground truths, as functions and figures.

- :mod:`phigen.checks.turbulence`: energy spectrum E(k) and its slope, energy budget residual,
  vorticity PDF, structure functions and flatness of 2D turbulence ensembles;
- :mod:`phigen.checks.cosmic_web`: 3D P(k) against linear theory × D², log-density PDF, reduced
  bispectrum, peak counts and Minkowski functionals of projected cosmic-web maps.

Each module has ``*_checks(fields, ...) -> dict`` (numbers), ``check_*_file(path, out_dir=None)``
(reads a phigen file, optionally writes figures) and ``plot_*_checks(result, out_dir)``.
"""

from .turbulence import (check_turbulence_file, energy_spectrum, plot_turbulence_checks, spectral_slope,
                         turbulence_checks)
from .cosmic_web import (check_cosmic_web_file, cosmic_web_checks, linear_theory_comparison, peak_counts,
                         plot_linear_theory,
                         plot_cosmic_web_checks)

__all__ = [
    "energy_spectrum",
    "spectral_slope",
    "turbulence_checks",
    "check_turbulence_file",
    "plot_turbulence_checks",
    "linear_theory_comparison",
    "peak_counts",
    "plot_linear_theory",
    "cosmic_web_checks",
    "check_cosmic_web_file",
    "plot_cosmic_web_checks",
]
