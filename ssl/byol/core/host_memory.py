"""Host memory reuse for CPU tensors: glibc's allocator told to keep freed blocks instead of returning them.

By default glibc's ``malloc`` serves a large block (from 128 KiB, a threshold it raises as such blocks are freed)
with a fresh ``mmap`` and gives it back to the system on ``free``; and it trims the top of its heap once enough is
free there. A CPU tensor op that makes a new tensor of a few megabytes (a batch of 224 px images is 4.8 MB) then
pays a page fault for every 4 KiB page it writes, each time. The views run dozens of such ops per batch: on the
2-core machine of ``BENCHMARKS.md`` the page faults took about half of the views' time at 96 and 224 px.

:func:`reuse_freed_host_memory` sets the two thresholds (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``) so that
blocks up to 32 MiB come from the heap and freed memory stays there for the next tensor: what PyTorch's caching
allocator does for GPU memory, and what jemalloc or tcmalloc (which PyTorch's CPU tuning guide suggests preloading)
do. The cost is that the process keeps its peak heap instead of shrinking after it. It changes the whole process,
so applications call it (``byol`` and the scripts do, at start), never an import.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses more on 64-bit systems (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = (1 << 31) - 1  # the largest int: only a free top of heap over 2 GiB is given back


def reuse_freed_host_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse (see the module docstring). Returns whether it took
    effect: ``False`` where the C library is not glibc (macOS, musl), which is then left as it is."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
