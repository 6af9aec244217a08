"""What every Dask worker of :class:`progrock.engines.DaskEngine` runs when it starts.

Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (its config
``distributed.nanny.pre-spawn-environ``), so that idle workers give memory back.
That setting also pins glibc's mmap threshold at 128 KiB: every temporary array
of the feature path (1-MB FFT blocks, spectrogram blocks) is then mapped and
unmapped afresh, and a song's features took 1.75x the CPU time measured in a
plain process (``benchmarks/bench_scale.py``, engines case). The plugin sets
thresholds that suit array work: blocks up to 32 MiB come from the heap, and the
heap is trimmed once 64 MiB lie free at its top. Imported only with
``distributed`` installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from distributed.diagnostics.plugin import WorkerPlugin

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def array_friendly_malloc(trim_bytes: int = 64 << 20, mmap_bytes: int = 32 << 20) -> bool:
    """Set glibc's trim and mmap thresholds in this process; ``False`` where there is no glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, trim_bytes)) and bool(mallopt(M_MMAP_THRESHOLD, mmap_bytes))


class ArrayFriendlyMalloc(WorkerPlugin):
    """A worker plugin: :func:`array_friendly_malloc` in every worker, restarted ones too."""

    name = "progrock-malloc"

    def setup(self, worker) -> None:
        worker.progrock_malloc_tuned = array_friendly_malloc()
