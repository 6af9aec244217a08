"""Parts of a batch on parallel threads: :class:`BatchThreads`.

The seed's network is small: its convolutions have 8-16 channels, so PyTorch's
own parallelism (each operation split over the cores) spends much of its time
starting and joining threads for short operations. Splitting each batch into
one contiguous part per thread instead keeps each core on its own snippets
from the first convolution to the last gradient: on the CPU each part is one
call of the compiled backend (:mod:`progrock.model.backends.fused`, compiled
without the GIL); elsewhere each thread runs PyTorch single-threaded (PyTorch
releases the GIL inside its operations). BENCHMARKS.md has the measured gain
(``benchmarks/bench_training.py --only threads``).

Results do not depend on which thread runs which part: every part is computed
single-threaded and the caller combines the parts in their order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, TypeVar

import torch

from progrock.errors import ConfigError

T = TypeVar("T")


def available_cores() -> int:
    """Cores this process may run on (:func:`progrock.parallel.engines.usable_cores`)."""
    from progrock.parallel.engines import usable_cores

    return usable_cores()


class BatchThreads:
    """``n_threads`` threads, each running its part of a batch with single-threaded PyTorch.

    Use as a context manager: on entry PyTorch is set to one thread per
    operation (the setting is restored on exit) and the threads are started
    (none for ``n_threads=1``: the only part runs in the calling thread).

    Parameters
    ----------
    n_threads : int
        Threads, and so parts per batch.
    """

    def __init__(self, n_threads: int):
        if n_threads < 1:
            raise ConfigError(f"n_threads must be positive, got {n_threads}")
        self.n_threads = n_threads
        self._pool: ThreadPoolExecutor | None = None
        self._old_threads: int | None = None

    def __enter__(self) -> "BatchThreads":
        self._old_threads = torch.get_num_threads()
        # before the pool starts: a thread takes PyTorch's setting when it first runs an operation
        torch.set_num_threads(1)
        if self.n_threads > 1:
            self._pool = ThreadPoolExecutor(self.n_threads, thread_name_prefix="progrock-batch")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._old_threads is not None:
            torch.set_num_threads(self._old_threads)

    def parts(self, n: int) -> list[slice]:
        """Contiguous, non-empty row ranges of ``n`` rows, one per thread (fewer if ``n`` is small)."""
        k = max(1, min(self.n_threads, n))
        bounds = [round(i * n / k) for i in range(k + 1)]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    def map(self, fn: Callable[[int, slice], T], n: int) -> list[T]:
        """``[fn(part_number, rows) for each part of n rows]``, the parts in parallel, results in order.

        An exception in any part is raised here after all parts have finished.
        """
        parts = self.parts(n)
        if self._pool is None or len(parts) == 1:
            return [fn(i, rows) for i, rows in enumerate(parts)]
        futures = [self._pool.submit(fn, i, rows) for i, rows in enumerate(parts)]
        wait(futures)                       # no part may still be running when an error is raised
        return [f.result() for f in futures]
