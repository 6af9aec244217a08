"""Run one function over many files in worker processes, in order, with progress."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable


def map_files(fn: Callable, paths: list[str], *, jobs: int = 1,
              progress: Callable[[int], None] | None = None) -> Iterable:
    """``map(fn, paths)`` in ``jobs`` processes, in order, calling ``progress(1)`` as each ends."""
    if jobs <= 1 or len(paths) <= 1:
        for p in paths:
            out = fn(p)
            if progress:
                progress(1)
            yield out
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for out in pool.map(fn, paths, chunksize=1):
            if progress:
                progress(1)
            yield out
