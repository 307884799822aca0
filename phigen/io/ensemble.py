"""Resumable, batch-deterministic writing of a generated ensemble into a phigen file.

A generator is a function ``make_batch(batch_index, count) -> fields`` (or ``(fields, conditions)``,
or ``(fields, conditions, groups)`` with ``conditions`` possibly ``None``) that depends only on its
batch index (derive keys with ``jax.random.fold_in(key, batch_index)``). Then an interrupted run
resumed from its file writes exactly the bytes an uninterrupted run writes — group labels included,
which must therefore also be a function of the batch index (e.g. the index of the MCMC chain or of
the simulation a sample comes from, not a counter kept across calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from .. import errors as E
from .fields_file import FieldsMeta, open_writer


def write_ensemble(path, make_batch: Callable, meta: FieldsMeta, *, resume: bool = False,
                   overwrite: bool = False, progress: bool | None = None, compression: str | None = "gzip",
                   diagnostics: Callable[[], dict] | None = None, desc: str | None = None) -> Path:
    """Generate ``meta.n_total`` samples in batches of ``meta.batch_size`` into ``path``.

    ``diagnostics`` (optional) is called after the last batch and its dict is stored in the
    file's diagnostics group. ``progress=None`` shows a bar only on a terminal.
    """
    bs = int(meta.batch_size)
    if bs < 1:
        raise E.ParameterError(f"batch_size must be >= 1; got {bs}")
    writer = open_writer(path, meta, resume=resume, overwrite=overwrite, compression=compression)
    with writer:
        start = writer.n_complete
        if start % bs and start != meta.n_total:
            raise E.TruncatedFileError(
                f"cannot resume: {start} samples is not a whole number of batches of {bs}", path=path
            )
        n_batches = -(-meta.n_total // bs)
        disable = (not progress) if progress is not None else None
        generated = False
        with tqdm(total=meta.n_total, initial=start, desc=desc or f"{meta.field} → {Path(path).name}",
                  unit="field", disable=disable, leave=False) as bar:
            for b in range(start // bs, n_batches):
                generated = True
                count = min(bs, meta.n_total - b * bs)
                out = make_batch(b, count)
                if not isinstance(out, tuple):
                    out = (out,)
                if not 1 <= len(out) <= 3:
                    raise E.ParameterError(f"make_batch must return fields, (fields, conditions) or (fields, "
                                           f"conditions, groups); got a tuple of {len(out)}")
                fields, conditions, groups = (*out, None, None)[:3]
                writer.append(fields, conditions, groups)
                bar.update(count)
        # a resumed run with nothing left to do keeps the diagnostics its file already holds
        if diagnostics is not None and (generated or not writer.has_diagnostics):
            for name, value in diagnostics().items():
                writer.set_diagnostic(name, value)
    return Path(path)
