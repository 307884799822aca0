"""phigen's exceptions: every error phigen raises on purpose is a :class:`PhigenError`.

The CLI turns any ``PhigenError`` into one line ``phigen: error: <message>`` and exit status 1.
Errors about a file carry its path in the message (and in ``.path``).
"""

from __future__ import annotations


class PhigenError(Exception):
    """Base class of all phigen errors."""

    def __init__(self, message: str, *, path: str | None = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ParameterError(PhigenError, ValueError):
    """Impossible or unsupported parameters (negative kappa, lattice too small, bad shape...)."""


class InputError(PhigenError, ValueError):
    """Bad array input: wrong shape, wrong dtype, NaN or inf values."""


class DivergenceError(PhigenError, FloatingPointError):
    """A sampler or solver produced NaN/inf or ran away; the message names the step size."""


# --- files ---------------------------------------------------------------------------------------
class FileFormatError(PhigenError):
    """A file is not what phigen expects."""


class NotHDF5Error(FileFormatError):
    """The file is not an HDF5 file at all."""


class NotPhigenFileError(FileFormatError):
    """An HDF5 file without the phigen-fields format marker."""


class FormatVersionError(FileFormatError):
    """The file was written by a newer, incompatible format version."""


class MissingAttributeError(FileFormatError):
    """A required attribute or dataset is missing."""


class TruncatedFileError(FileFormatError):
    """The file is half-written (interrupted run) or its progress record is inconsistent."""


class ChecksumError(FileFormatError):
    """Stored data failed its fletcher32 checksum: the file is corrupted."""


class NonFiniteError(FileFormatError, InputError):
    """NaN or inf values in fields (in a file, or about to be written)."""


class ShapeMismatchError(FileFormatError, InputError):
    """Shape or dtype of appended data does not match the file."""


class FileExistsError_(PhigenError, FileExistsError):
    """A finished file exists and would be overwritten (pass overwrite=True / --overwrite)."""


class MissingShardError(FileFormatError):
    """A master file of a sharded ensemble names a shard file that is not there."""


class ModelFileError(FileFormatError):
    """A model file of the wrong kind, or corrupted."""


class DataLeakError(PhigenError, ValueError):
    """A model was fitted on fields it is about to be judged against (or on unknown data)."""


__all__ = [
    "PhigenError",
    "MissingShardError",
    "ParameterError",
    "InputError",
    "DivergenceError",
    "FileFormatError",
    "NotHDF5Error",
    "NotPhigenFileError",
    "FormatVersionError",
    "MissingAttributeError",
    "TruncatedFileError",
    "ChecksumError",
    "NonFiniteError",
    "ShapeMismatchError",
    "FileExistsError_",
    "ModelFileError",
    "DataLeakError",
]
