"""phigen: synthetic physical fields and the statistics that prove how faithful they are."""

from importlib.metadata import PackageNotFoundError as _PNF, version as _version

try:
    __version__ = _version("phigen")
except _PNF:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from . import errors
from .errors import PhigenError

__all__ = ["__version__", "errors", "PhigenError"]
