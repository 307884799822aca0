"""phigen.rg: renormalisation-group wavelet-conditional models (docs/rg.md).

- :mod:`phigen.rg.factor`: the wavelet factorisation ``p(x) = p(x_J) Π_j p̄_j(x̄_j | x_j)``;
- :mod:`phigen.rg.gibbs`: WC-RG, conditional Gibbs energies per scale fitted by score matching in closed form;
- :mod:`phigen.rg.score`: WSGM, conditional score networks per scale with a short reverse diffusion each;
- :mod:`phigen.rg.superres`: super-resolution, coarse-to-fine sampling from given coarse fields.
"""

from .factor import WaveletFactorisation, default_levels, detail_row_norms, per_scale_std, per_scale_std_null
from .superres import coarse_grain, coarse_grain_file

# the registered models pull in equinox, optax and the diffusion code: imported on first access
_LAZY = {"WCRGModel": "phigen.rg.wcrg", "WCRGConfig": "phigen.rg.wcrg", "ConditionalWCRGModel": "phigen.rg.conditional",
         "ConditionalWCRGConfig": "phigen.rg.conditional", "WSGMModel": "phigen.rg.score", "WSGMConfig": "phigen.rg.score"}

__all__ = ["WaveletFactorisation", "coarse_grain", "coarse_grain_file", "default_levels", "detail_row_norms",
           "per_scale_std", "per_scale_std_null", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'phigen.rg' has no attribute {name!r}")
