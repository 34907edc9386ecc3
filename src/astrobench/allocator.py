"""Keep freed memory in the process for reuse (glibc), instead of handing it back to the system.

Training on a CPU allocates and frees tensors of tens of MB on every step (an augmented batch of
256 x 5 x 64 x 64 floats is 21 MB). glibc serves blocks that large with fresh ``mmap`` pages and
returns them on free, so every step touches new pages and takes a page fault per 4 kB: on the
2-core development VM that was 15,000-18,000 faults a batch and about a third of the augmentation
time. (glibc adapts its thresholds to the blocks it frees, so how often it happens depends on the
order of allocations: later versions of the view pipeline saw 0-8,000 faults a batch without this.)
Raising the mmap and trim thresholds keeps such blocks on the heap, where the next step reuses
them (the same reason PyTorch's CPU tuning guide suggests jemalloc or tcmalloc).

The cost is that the process keeps its peak heap; the ``astrobench`` command, which owns its
process, opts in by calling :func:`reuse_freed_memory`. Importing astrobench changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc caps M_MMAP_THRESHOLD at HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit; larger blocks still use mmap
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024  # give memory back only when 1 GiB at the heap top is free

_applied: bool | None = None


def reuse_freed_memory() -> bool:
    """Set glibc's thresholds so freed blocks up to 32 MiB stay in the heap; True when in effect.

    Idempotent; a no-op returning False off Linux/glibc (other allocators do not return such
    blocks eagerly). Call it once at the start of a process that trains or augments on the CPU.
    """
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; set the mmap threshold first: it also fixes the trim threshold
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
