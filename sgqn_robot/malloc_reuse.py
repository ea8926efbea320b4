"""Keep freed tensor memory in the process heap instead of handing it back to the kernel (glibc).

Why: every update allocates and frees the same 1-30 MB activation buffers. By default glibc
returns such blocks to the kernel (blocks above its mmap threshold are unmapped on free, and a free
top of the heap above the trim threshold is trimmed), so the next update page-faults them back
and the kernel zeroes every page again: ~30k page faults and ~10% of the CPU time per SGQN update
on the `fast` preset on the project machine (`bench/malloc_reuse.py`, docs/RESULTS.md). Raising
both thresholds makes free() keep the blocks; the resident size then stays at its peak, which the
next update needs anyway.
"""

from __future__ import annotations

import ctypes

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses mmap thresholds above 32 MiB on 64-bit (HEAP_MAX_SIZE / 2). Every `fast`-preset
# buffer at batch 128 is below it; the `paper` preset's largest (SVEA's 2B-batch first conv,
# SGQN's decoder at 42 px, ~55-58 MB) are still mapped and unmapped each update.
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2**30  # keep up to 1 GiB of free heap top before giving memory back


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (affects later allocations).

    Returns False, changing nothing, where the C library has no working `mallopt` (macOS, musl).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
