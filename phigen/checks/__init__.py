"""phigen.checks: physics checks of the simulated ground truths, as functions and figures.

- :mod:`phigen.checks.turbulence`: energy spectrum E(k) and its slope, energy budget residual,
  vorticity PDF, structure functions and flatness of 2D turbulence ensembles;
- :mod:`phigen.checks.cosmic_web`: 3D P(k) against linear theory × D², log-density PDF, reduced
  bispectrum, peak counts and Minkowski functionals of projected cosmic-web maps.

Each module has ``*_checks(fields, ...) -> dict`` (numbers), ``check_*_file(path, out_dir=None)``
(reads a phigen file, optionally writes figures) and ``plot_*_checks(result, out_dir)``. A field kind
names its file check in its spec (:class:`phigen.fields.kind.FieldKind` ``checks``);
:func:`check_file` (CLI ``phigen check``) runs the one of a file's kind.
"""

from .turbulence import (check_turbulence_file, energy_spectrum, plot_turbulence_checks, spectral_slope,
                         turbulence_checks)
from .cosmic_web import (check_cosmic_web_file, cosmic_web_checks, linear_theory_comparison, peak_counts,
                         plot_linear_theory,
                         plot_cosmic_web_checks)



def check_file(path, *, out_dir=None, max_fields: int | None = None) -> dict:
    """The physics checks of the ground-truth file ``path``, as its field kind declares them
    (``FieldKind.checks``): a dict of numbers (and ``figures``, the PNG paths, when ``out_dir`` is
    given). A kind without checks, or a file whose kind phigen does not know, is a
    :class:`phigen.errors.ParameterError` naming the kinds that have some."""
    from ..errors import ParameterError
    from ..fields.kind import field_kind, field_kinds
    from ..io import open_fields

    with open_fields(path) as ds:
        kind = ds.field
    spec = field_kind(kind)
    if spec is None or spec.checks is None:
        have = sorted(n for n, s in field_kinds().items() if s.checks is not None)
        raise ParameterError(f"no physics checks for field kind {kind!r}; kinds with checks: {', '.join(have)}",
                             path=path)
    return spec.checks(path, out_dir=out_dir, max_fields=max_fields)


__all__ = [
    "check_file",
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
