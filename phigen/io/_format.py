"""The phigen-fields HDF5 format: names and versions (docs/data.md).

Layout of one file (one ensemble)::

    /fields          float32 (N, H, W) or (N, C, H, W); chunks of one sample; gzip/lzf; fletcher32
    /conditions      optional float32 (N, k), attr ``names`` (per-sample physical parameters)
    /groups          optional int64 (N,), attr ``kind`` ("simulation", "run", "chain", "field"): the
                     group label of each sample; samples of one group are correlated (the maps of one
                     N-body simulation, the snapshots of one run, the configurations of one chain) and
                     every split keeps a group on one side (:mod:`phigen.splits`)
    /diagnostics/    optional group of generator diagnostics (acceptance, tau_int, ...)
    root attrs       format, format_version, phigen_version, field, generator, config (JSON text),
                     seed, created, n_total, n_complete, batch_size, complete, params (JSON text),
                     and every physical parameter as its own attribute ``param_<name>``.

Sharded sets (one file per process, docs/scale_out.md): each shard is a file of this layout that
also records ``shard_index``, ``shard_count``, ``shard_offset`` (global index of its first sample)
and ``shard_n_total``; the master ``FILE`` has the same root attributes as a self-contained file, an
attribute ``shards`` (JSON: ``[{"file", "offset", "count"}]``, names relative to the master's folder)
and ``fields`` / ``conditions`` / ``groups`` as HDF5 virtual datasets over the shards.

``n_complete`` is updated only after a batch is written and flushed: the samples beyond it are
never trusted (the same holds for the rows of ``conditions`` and ``groups``, appended with the
fields). ``complete`` becomes true when ``n_complete == n_total``.
"""

from __future__ import annotations

FORMAT = "phigen-fields"
FORMAT_VERSION = 1

FIELDS = "fields"
CONDITIONS = "conditions"
GROUPS = "groups"
GROUP_KIND_ATTR = "kind"
# what a group is, for phigen's own generators; any other non-empty name is accepted too
GROUP_KINDS = ("simulation", "run", "chain", "field")
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

# sharded ensembles (docs/scale_out.md): a shard is an ordinary file that also records which part of
# the whole set it holds; a master holds virtual datasets over its shards and lists them (JSON text)
SHARD_ATTRS = ("shard_index", "shard_count", "shard_offset", "shard_n_total")
SHARDS_ATTR = "shards"
COMPRESSIONS = ("gzip", "lzf", None)
