"""What a run holds in memory: its peak so far, and freed memory handed back.

A run's memory is bounded by its batches (rows per extracted file, per processed file,
per COPY slice), never by a table's size. Arrow's allocator keeps what a batch freed
for the next one, and so does glibc's heap (numpy's arrays, the COPY buffers): pages
freed below memory still in use stay with the process until `malloc_trim` hands them
back. Between steps, between the star tables a load applies and between a first
fill's summaries both are handed back, so one step's high water does not stand under
the next one's: at 5 million orders the heap held 84 to 93 MB free through a first
load, whose peak was 298 MB, and 233 MB once trimmed.
"""

from __future__ import annotations

import ctypes
import functools
import resource


def peak_rss_mb() -> int:
    """The process's largest resident memory so far, in MB (what an ECS task's memory
    must hold)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def release() -> None:
    """Hand back to the system the memory Arrow's pool and the C heap hold unused."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if (trim := _malloc_trim()) is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
