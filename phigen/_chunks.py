"""The one chunked-loop driver: MCMC runs, RG level sampling, network training and scattering
synthesis advance a jitted ``lax.scan`` by chunks under this Python loop (docs/architecture.md).

A chunk is the unit of compilation (its length is traced, so a shorter last chunk reuses the
kernel), of progress reporting and of checkpointing. :func:`run_chunks` owns the loop: chunk
lengths (ending on the caller's boundaries, e.g. the end of a warm-up), the progress bar, when to
call the save hook, closing the bar on errors. The caller's ``advance`` owns the state.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

__all__ = ["chunk_lengths", "run_chunks"]


def chunk_lengths(start: int, stop: int, chunk: int, boundaries: Sequence[int] = ()) -> Iterator[tuple[int, int]]:
    """``(done, m)``: chunks of at most ``chunk`` steps covering ``[start, stop)``, none crossing a
    step in ``boundaries`` (a chunk ends there and the next starts there)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}")
    cuts = sorted(int(b) for b in boundaries if start < b < stop)
    done = int(start)
    for end in (*cuts, int(stop)):
        while done < end:
            m = min(chunk, end - done)
            yield done, m
            done += m


def run_chunks(advance: Callable[[int, int], dict | None], *, stop: int, chunk: int, start: int = 0,
               boundaries: Sequence[int] = (), bar=None, desc: str = "", unit: str = "step",
               progress: bool | None = None, total: int | None = None, bar_scale: int = 1,
               save: Callable[[int], bool | None] | None = None, save_every: int | None = None,
               leave: bool = True) -> int:
    """Run ``advance(done, m)`` for every chunk of :func:`chunk_lengths` ``(start, stop, chunk,
    boundaries)``; returns the steps done (``stop``).

    ``advance`` returns a dict shown after the bar (or None). The bar: ``bar`` (one the caller
    shares between several loops) or a new tqdm bar with ``desc``, ``unit``, ``total`` (default
    ``stop``) and ``initial = start``, shown when ``progress`` (None: on a terminal). Each chunk
    advances it by ``m · bar_scale``. ``save(done)``: called once at least ``save_every`` steps
    (default: every chunk) have passed since the last save, and after the last chunk; a save hook
    that returns ``False`` did not save (e.g. a non-finite state) and is asked again after the
    next chunk.
    """
    own = bar is None
    if own:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop if total is None else total, initial=start, desc=desc, unit=unit,
                   disable=None if progress is None else not progress, dynamic_ncols=True, leave=leave)
    saved_at = start
    done = start
    try:
        for done, m in chunk_lengths(start, stop, chunk, boundaries):
            postfix = advance(done, m)
            done += m
            bar.update(m * bar_scale)
            if postfix:
                bar.set_postfix(refresh=False, **postfix)
            if save is not None and (done - saved_at >= (save_every or 1) or done == stop):
                if save(done) is not False:
                    saved_at = done
    finally:
        if own:
            bar.close()
    return max(done, start)
