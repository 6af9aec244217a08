"""What every Dask worker of :class:`progrock.parallel.engines.DaskEngine` runs when it starts.

Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (its config
``distributed.nanny.pre-spawn-environ``), so that idle workers give memory back.
That setting also pins glibc's mmap threshold at 128 KiB: every temporary array
of the feature path (1-MB FFT blocks, spectrogram blocks) is then mapped and
unmapped afresh, and a song's features cost much more CPU time than in a plain
process (BENCHMARKS.md; ``benchmarks/bench_scale.py``, engines case). The plugin sets
thresholds that suit array work (:func:`progrock.parallel.malloc.array_friendly_malloc`):
blocks up to 32 MiB come from the heap, and the heap is trimmed once 64 MiB lie
free at its top. Imported only with ``distributed`` installed.
"""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from progrock.parallel.malloc import array_friendly_malloc


class ArrayFriendlyMalloc(WorkerPlugin):
    """A worker plugin: :func:`array_friendly_malloc` in every worker, restarted ones too."""

    name = "progrock-malloc"

    def setup(self, worker) -> None:
        worker.progrock_malloc_tuned = array_friendly_malloc()
