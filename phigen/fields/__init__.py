"""phigen.fields."""
from .gaussian import PowerLawSpectrum, gaussian_field, power_law_spectrum
