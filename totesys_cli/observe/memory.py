"""What a run holds in memory: its peak so far, and Arrow's freed memory handed back.

A run's memory is bounded by its batches (rows per extracted file, per processed file,
per COPY slice), never by a table's size. Arrow's allocator keeps what a batch freed
for the next one; between steps, and between the star tables a load applies, it is
handed back, so one step's high water does not stand under the next one's.
"""

from __future__ import annotations

import resource


def peak_rss_mb() -> int:
    """The process's largest resident memory so far, in MB (what an ECS task's memory
    must hold)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def release() -> None:
    """Hand back to the system the memory Arrow's pool holds unused."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
