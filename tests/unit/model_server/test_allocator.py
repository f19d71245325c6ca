"""The model server keeps the memory a request frees for the next one (glibc's mallopt)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from s3kp.model_server import allocator

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# Allocate and touch 16 MiB (an image buffer), free it, and print how much of it left the process.
_FREE_AND_MEASURE = """
import os, sys
from s3kp.model_server.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def resident() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
block = bytearray(16 * 1024 * 1024)
held = resident()
del block
print((held - resident()) / 2**20)
"""


def _mib_returned_to_the_kernel(mode: str) -> float:
    completed = subprocess.run(
        [sys.executable, "-c", _FREE_AND_MEASURE, mode], capture_output=True, text=True, check=True
    )
    return float(completed.stdout)


def test_glibc_accepts_both_thresholds() -> None:
    assert allocator.keep_freed_memory() is True


def test_freed_image_sized_blocks_stay_in_the_process_for_the_next_request() -> None:
    """By default glibc unmaps a freed 16 MiB block at once (the next request faults in fresh pages);
    with the thresholds set it keeps it."""
    assert _mib_returned_to_the_kernel("default") > 15
    assert _mib_returned_to_the_kernel("keep") < 1
