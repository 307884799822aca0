"""phigen.io: the phigen-fields HDF5 format (docs/data.md) — writer, lazy reader, validation."""

from ._format import FORMAT, FORMAT_VERSION
from .ensemble import write_ensemble
from .fields_file import (
    FieldDataset,
    FieldsMeta,
    FieldWriter,
    annotate_groups,
    check_file,
    open_fields,
    open_writer,
    read_fields,
    write_fields,
)
from .shards import is_master, merge_shards, shard_path, write_master
from .validate import ValidationReport, info, validate

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FieldDataset",
    "FieldsMeta",
    "FieldWriter",
    "ValidationReport",
    "annotate_groups",
    "check_file",
    "info",
    "is_master",
    "merge_shards",
    "open_fields",
    "open_writer",
    "read_fields",
    "shard_path",
    "validate",
    "write_ensemble",
    "write_fields",
    "write_master",
]
