"""phigen.stats: the physics statistics suite (spectra, PDFs, bispectrum, Minkowski functionals,
structure functions, peak counts) and the truth-vs-model comparison. One import line per module."""

from .spectrum import PowerSpectrum, isotropic_average, power_spectrum, power_spectrum_2d, wavenumbers
from .pdf import Moments, ks_distance, moments, pixel_pdf, wasserstein1
from .bispectrum import BispectrumEstimate, bispectrum, bispectrum_equilateral, bispectrum_estimate, bispectrum_squeezed, reduced_bispectrum
from .minkowski import MinkowskiFunctionals, gaussian_minkowski, minkowski_functionals, minkowski_sigmas
from .structure import StructureFunctions, TwoPointFunction, flatness, structure_functions, two_point_function
from .peaks import PeakCounts, gaussian_peak_density, lattice_peak_density, peak_counts, peak_mask
from .compare import DISTANCE_DEFINITIONS, STATISTICS, NullReference, compare, judge, null_reference, statistics_summary
from .registry import Distance, Statistic, default_statistics, get_statistic, register, registered
from .phi4 import Estimate, binder_cumulant, magnetisation, phi4_observables, second_moment_correlation_length, two_point_function_phi4
from .memorisation import NearestNeighbours, memorisation_check, nearest_neighbour_distances
