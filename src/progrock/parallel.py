"""Run one function over many files in worker processes, in order, with progress.

Kept for the callers that only ever run on this machine (scan, corpus); the
engines that can also run on a cluster are in :mod:`progrock.engines`.
"""

from __future__ import annotations

from typing import Callable, Iterable

from progrock.engines import LocalEngine


def map_files(fn: Callable, paths: list, *, jobs: int = 1,
              progress: Callable[[int], None] | None = None) -> Iterable:
    """``map(fn, paths)`` in ``jobs`` processes, in order, calling ``progress(1)`` as each ends."""
    yield from LocalEngine(jobs).map_ordered(fn, list(paths), progress=progress)
