"""glibc's allocator thresholds for array work: :func:`array_friendly_malloc`.

glibc hands blocks above its mmap threshold (128 KiB at first, raised
dynamically up to 32 MiB) to fresh ``mmap`` calls, and gives the top of the heap
back to the OS once more than its trim threshold lies free there. Array code
that allocates and frees tens of megabytes per step (a training step's
activations, a song's spectrogram blocks) then pays page faults on every step:
in a training step at the seed's batch size a quarter of the time went to the
kernel (``benchmarks/bench_training.py``). Raising both thresholds keeps that
memory in the process for reuse. The settings hold for the whole process.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def array_friendly_malloc(trim_bytes: int = 64 << 20, mmap_bytes: int = 32 << 20) -> bool:
    """Set glibc's trim and mmap thresholds in this process; ``False`` where there is no glibc.

    Parameters
    ----------
    trim_bytes : int
        Free memory at the top of the heap kept before it is returned to the OS.
    mmap_bytes : int
        Blocks at least this large get their own mapping (32 MiB is glibc's maximum).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, trim_bytes)) and bool(mallopt(M_MMAP_THRESHOLD, mmap_bytes))
