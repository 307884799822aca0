"""phigen.scattering: scattering-spectra statistics (and classic scattering via kymatio for comparison),
microcanonical, canonical (its Gibbs twin) and maximum-entropy models. One import line per module."""

from .spectra import TYPES, ScatteringSpectra, SpectraCoefficients, scattering_spectra, scattering_spectra_describe
from .classic import ClassicScattering, classic_scattering
from .marginal import ConcatenatedStatistics, MarginalStatistics
from .morphology import MinkowskiStatistics
from .peak_counts import PeakStatistics
from .detail_power import DetailPowerStatistics
from .shell_power import ShellPowerStatistics
from .models import ScatteringConfig, ScatteringModel, default_J
