"""A budget of bytes that work running in parallel may hold at once.

The ingest function processes the records of a batch in parallel threads; each would be fine alone in
1024 MB, but ten decodes of 100 MP images at once would not. So what a record holds in memory is counted
against a budget shared by the container's threads (`ingest_dependencies` builds one for downloaded
objects and one for decoded pixels): a record reserves the bytes before it allocates them, and waits for
its turn while the budget cannot take them.

- A `Reservation` belongs to one record. It is empty, then `acquire(n)` takes `n` bytes (waiting), then
  it may only shrink (`shrink_to`) and is released at the end (`release`, or leaving its `with`).
- `acquire` waits while the budget would go over its capacity, except when the budget holds nothing
  else: a reservation larger than the whole budget still goes, alone.
- No deadlock: a reservation that waits holds nothing of that budget, and one that holds never waits on
  it again (it only shrinks), so every holder runs on and eventually releases.

A budget counts bytes; whether freed bytes leave the process is malloc's call: see
`unmap_large_blocks_on_free`, which the ingest function calls before its records share a budget.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from types import TracebackType

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
LARGE_BLOCK_BYTES = 128 * 1024  # glibc's initial mmap threshold, kept fixed


def unmap_large_blocks_on_free() -> bool:
    """Have glibc serve every allocation of LARGE_BLOCK_BYTES or more with its own mmap, unmapped when
    freed; True if it did (False elsewhere: macOS, musl, a C library without `mallopt`).

    Why: by default glibc raises its mmap threshold (up to 32 MiB) each time such a block is freed, so
    later large blocks, Pillow's 16 MiB image blocks among them, come from the allocating thread's heap
    arena, which keeps their pages once freed. With records in parallel threads, every thread's arena kept
    the largest image it had decoded: a batch of ten 100 MP PNGs peaked at 3.1-4.2 GiB although the pixel
    budget let one decode run at a time (487 MiB in sequence, one thread). Setting the threshold also
    stops it moving (mallopt M_MMAP_THRESHOLD).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))


class MemoryBudget:
    """At most `capacity` bytes reserved at once (None: no limit; the figures are still kept)."""

    def __init__(self, capacity: int | None, *, name: str = "memory") -> None:
        if capacity is not None and capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.name = name
        self._held = 0
        self._peak = 0
        self._waiting = 0
        self._waits = 0
        self._condition = threading.Condition()

    def reservation(self) -> Reservation:
        """An empty reservation against this budget."""
        return Reservation(self)

    @property
    def held(self) -> int:
        """Bytes reserved right now."""
        with self._condition:
            return self._held

    @property
    def peak(self) -> int:
        """The most bytes ever reserved at once."""
        with self._condition:
            return self._peak

    @property
    def waiting(self) -> int:
        """Reservations waiting for room right now."""
        with self._condition:
            return self._waiting

    @property
    def waits(self) -> int:
        """How many reservations had to wait so far."""
        with self._condition:
            return self._waits

    def _take(self, nbytes: int) -> None:
        with self._condition:
            if not self._fits(nbytes):
                self._waits += 1
                self._waiting += 1
                try:
                    self._condition.wait_for(lambda: self._fits(nbytes))
                finally:
                    self._waiting -= 1
            self._held += nbytes
            self._peak = max(self._peak, self._held)

    def _give_back(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        with self._condition:
            self._held -= nbytes
            self._condition.notify_all()

    def _fits(self, nbytes: int) -> bool:
        return self.capacity is None or self._held == 0 or self._held + nbytes <= self.capacity


class Reservation:
    """One record's share of a `MemoryBudget`; see the module docstring for its life."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0
        self._acquired = False

    def acquire(self, nbytes: int) -> None:
        """Take `nbytes`, waiting until the budget has room; only once, on an empty reservation."""
        if self._acquired:
            raise RuntimeError("a reservation acquires once; it can only shrink afterwards")
        if nbytes < 0:
            raise ValueError(f"cannot reserve {nbytes} bytes")
        self._acquired = True
        self.budget._take(nbytes)
        self.held = nbytes

    def shrink_to(self, nbytes: int) -> None:
        """Keep only `nbytes` (what is still allocated); never more than held."""
        nbytes = max(0, min(nbytes, self.held))
        freed, self.held = self.held - nbytes, nbytes
        self.budget._give_back(freed)

    def release(self) -> None:
        self.shrink_to(0)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
