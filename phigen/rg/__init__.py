"""phigen.rg: renormalisation-group wavelet-conditional models (DESIGN §6.2).

- :mod:`phigen.rg.factor`: the wavelet factorisation ``p(x) = p(x_J) Π_j p̄_j(x̄_j | x_j)``;
- :mod:`phigen.rg.gibbs`: WC-RG, conditional Gibbs energies per scale fitted by score matching in closed form;
- :mod:`phigen.rg.score`: WSGM, conditional score networks per scale with a short reverse diffusion each.
"""

from .factor import WaveletFactorisation, default_levels, detail_row_norms, per_scale_std
