"""Private: the one way phigen publishes an HDF5 file — write a temporary file beside it, flush and
fsync it, then ``os.replace`` it over the target, so a reader (or a crash) sees either the old file
or the complete new one, never a half-written one. Used by model files, MCMC checkpoints, the φ⁴
chain side-car and the field files' header and group writes."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


def fsync_file(path) -> None:
    """Make a closed file's bytes durable before a rename publishes them."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def atomic_h5(path, *, tmp=None, copy: bool = False, check: Callable | None = None):
    """``with atomic_h5(path) as h5: ...`` writes ``h5`` (an open ``h5py.File``) and publishes it at
    ``path`` only if the block ends without an exception; otherwise the temporary file is removed
    and ``path`` is untouched.

    tmp : the temporary path (default ``path`` + ``.tmp``).
    copy : start from a copy of the existing ``path`` opened ``r+`` (an in-place edit made atomic).
    check : ``check(tmp_path)`` runs on the closed temporary file before it is published (e.g. a
        format validation); an exception there discards it.
    """
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp") if tmp is None else Path(tmp)
    try:
        if copy:
            shutil.copy2(path, tmp)
        with h5py.File(tmp, "r+" if copy else "w") as h5:
            yield h5
            h5.flush()
        if check is not None:
            check(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
