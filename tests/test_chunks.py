"""The one chunked-loop driver (phigen._chunks) used by MCMC, RG sampling, training and synthesis."""

from __future__ import annotations

import pytest

from phigen._chunks import chunk_lengths, run_chunks


def test_chunk_lengths_cover_the_range_and_end_on_boundaries():
    assert list(chunk_lengths(0, 10, 4)) == [(0, 4), (4, 4), (8, 2)]
    assert list(chunk_lengths(3, 10, 4)) == [(3, 4), (7, 3)]                     # resumed mid-run
    assert list(chunk_lengths(0, 10, 4, boundaries=(6,))) == [(0, 4), (4, 2), (6, 4)]  # warm-up ends at 6
    assert list(chunk_lengths(0, 10, 4, boundaries=(0, 10, 12))) == list(chunk_lengths(0, 10, 4))
    assert list(chunk_lengths(5, 5, 4)) == []
    with pytest.raises(ValueError):
        list(chunk_lengths(0, 5, 0))


class _Bar:
    def __init__(self):
        self.updates, self.postfix, self.closed = [], None, False

    def update(self, n):
        self.updates.append(n)

    def set_postfix(self, refresh=True, **kw):
        self.postfix = kw

    def close(self):
        self.closed = True


def test_save_cadence_retry_and_bar():
    bar, calls, saves = _Bar(), [], []
    fail_at = {8}

    def advance(done, m):
        calls.append((done, m))
        return {"done": done + m}

    def save(done):
        saves.append(done)
        return done not in fail_at  # a save that could not write is asked again after the next chunk

    assert run_chunks(advance, stop=14, chunk=2, save=save, save_every=4, bar=bar, bar_scale=3) == 14
    assert calls == [(0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2)]
    assert saves == [4, 8, 10, 14]          # every 4 steps; 8 failed so 10 retried; the end always
    assert bar.updates == [6] * 7 and bar.postfix == {"done": 14} and not bar.closed  # a shared bar stays open


def test_own_bar_is_closed_on_error(monkeypatch):
    import tqdm.auto

    bars = []

    class Recording(_Bar):
        def __init__(self, **kw):
            super().__init__()
            self.kw = kw
            bars.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)

    def advance(done, m):
        if done == 4:
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        run_chunks(advance, start=2, stop=10, chunk=2, desc="x", total=20, progress=False)
    (bar,) = bars
    assert bar.closed and bar.kw["initial"] == 2 and bar.kw["total"] == 20 and bar.kw["disable"] is True
    assert bar.updates == [2]
