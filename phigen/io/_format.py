"""The phigen-fields HDF5 format: names and versions (DESIGN §4).

Layout of one file (one ensemble)::

    /fields          float32 (N, H, W) or (N, C, H, W); chunks of one sample; gzip/lzf; fletcher32
    /conditions      optional float32 (N, k), attr ``names`` (per-sample physical parameters)
    /diagnostics/    optional group of generator diagnostics (acceptance, tau_int, ...)
    root attrs       format, format_version, phigen_version, field, generator, config (JSON text),
                     seed, created, n_total, n_complete, batch_size, complete, params (JSON text),
                     and every physical parameter as its own attribute ``param_<name>``.

``n_complete`` is updated only after a batch is written and flushed: the samples beyond it are
never trusted. ``complete`` becomes true when ``n_complete == n_total``.
"""

from __future__ import annotations

FORMAT = "phigen-fields"
FORMAT_VERSION = 1

FIELDS = "fields"
CONDITIONS = "conditions"
DIAGNOSTICS = "diagnostics"

REQUIRED_ATTRS = (
    "format",
    "format_version",
    "phigen_version",
    "field",
    "generator",
    "config",
    "seed",
    "created",
    "n_total",
    "n_complete",
    "complete",
)

PARAM_PREFIX = "param_"
COMPRESSIONS = ("gzip", "lzf", None)
