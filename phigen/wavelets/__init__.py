"""phigen.wavelets: periodic orthogonal DWT (pywavelets filters, JAX transform) and Fourier-domain
Morlet / bump-steerable filter banks. One import line per module."""

from .dwt import DetailStandardizer, WaveletCoeffs, detail_statistics, dwt, dwt_level, from_pywt, idwt, idwt_level, to_pywt, wavelet_filters
from .filters import FilterBank, bump_steerable_filter_bank, filter_bank, littlewood_paley, morlet_filter_bank
