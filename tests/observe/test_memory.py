"""Freed memory goes back to the system between a run's steps and tables."""

from __future__ import annotations

import subprocess
import sys

# Fills glibc's heap with 2 KB blocks (past pymalloc, under the mmap threshold), frees all
# but every 64th, so no free run reaches the top of the heap, and prints the resident MB
# before and after `release`.
_FRAGMENTED = """
from totesys_cli.observe import memory

def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20

blocks = [bytes(2048) for _ in range(100_000)]
kept = blocks[::64]
del blocks
before = resident()
memory.release()
print(before, resident())
"""


def test_release_hands_back_the_heap_pages_freed_below_what_is_still_held():
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENTED], capture_output=True, text=True, check=True
    )
    before, after = map(int, out.stdout.split())
    assert before - after > 100, (before, after)  # of the 200 MB filled, 3 MB are held
