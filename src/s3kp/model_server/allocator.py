"""Keep the memory a request frees for the next request, instead of handing it back to the kernel.

Every request allocates and frees the same few megabytes: the body, its base64 decode, the decoded image,
the model's tensors. With glibc's defaults a block over 128 KiB (raised only as such blocks are freed)
is a fresh `mmap`, and a free at the top of a heap trims it: so each request paid page faults for fresh
zeroed pages while decoding, and an `munmap` after its answer was built (measured at 640 px with
faces/1: about a quarter of the server's `time`, and 0.3 ms between the answer and its sending; see
docs/model-server.md#overhead). Fixed thresholds keep that memory in the process: its resident size stays
at its high-water mark instead of shrinking between requests, which is what a long-running server wants.
No Python API sets this (`mallopt(3)` is glibc's), hence ctypes; any other C library is left as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024  # free memory kept at the top of a heap before trimming
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum on 64-bit: larger blocks are still mmap'ed


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds for this process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no libc by that name, or one without mallopt (musl)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success, 0 for a parameter or value it refuses.
    return bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
